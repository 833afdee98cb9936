// Fault injection on a running cluster. Every role runs as its own process on a loopback port
// (coordinator, one env server, learner, one actor, started the way `envtune train` starts
// them); once the learner has trained a step, one peer is SIGKILLed. Within seconds the actor's
// log must name that peer by the exact address it listens on and the phase that failed, the
// actor must still be running (no crash, no exit), and it must still stop cleanly on SIGTERM
// (no hang). Short actor deadlines (2 s RPCs, 5 s weights/push waits and retries, 2 attempts
// per env call) make the failures surface quickly. Cases: env server, learner (mid-rollout, and
// while the actor waits for leases held back by flow control), coordinator (also `envtune
// status`).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "deploy/process.h"
#include "gtest/gtest.h"
#include "tests/integration/integration_util.h"

namespace envtune {
namespace {

using integration::Binary;
using integration::SourceDir;
using integration::TinyLearnerYaml;

// The address as a literal inside a regular expression.
std::string Quote(const std::string& text) {
  static const std::regex kSpecial(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(text, kSpecial, R"(\$&)");
}

std::string Config(const std::string& dir) {
  return absl::StrCat(R"(
coordinator:
  heartbeat_interval_ms: 500
  worker_expiry_ms: 30000
  lease_timeout_ms: 600000
  max_policy_staleness: 1
  ledger_path: )", dir, R"(/leases.jsonl
curriculum:
  stages:
    - {name: syntax, split: train, categories: [base], limit: 2, reward: format,
       group_size: 2, max_new_tokens: 12, max_episode_tokens: 32768,
       advance: {after_steps: 1000}}
)", TinyLearnerYaml("  rpc_timeout_ms: 2000\n"), R"(actor:
  concurrency: 4
  max_model_turns: 3
  max_episode_seconds: 300
  rpc_timeout_ms: 2000
  weights_timeout_s: 5
  push_timeout_s: 5
  env_timeout_ms: 2000
  env_max_attempts: 2
  retry_deadline_s: 5
  tokenizer: )", SourceDir(), R"(/third_party/qwen-tokenizer
)");
}

class PeerFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(Binary())) {
      GTEST_SKIP() << "envtune binary not built at " << Binary();
    }
  }

  // Starts coordinator, env server, learner (each on port 0, address read from its log) and
  // one actor, in the launcher's order, under RunDir("envtune_peer_failure_<name>").
  absl::Status Start(const std::string& name) {
    dir_ = integration::RunDir("envtune_peer_failure_" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_ = dir_ + "/cluster.yaml";
    std::ofstream(config_) << Config(dir_);
    const absl::Duration startup = absl::Minutes(2);

    absl::StatusOr<std::string> address;
    if (absl::Status s = Spawn("coordinator", {"--port=0"}, coordinator_); !s.ok()) return s;
    if (address = coordinator_->WaitForListeningAddress(startup); !address.ok()) {
      return address.status();
    }
    coordinator_address_ = *address;
    if (absl::Status s = Spawn("env-server", {"--port=0", "--coordinator=" + coordinator_address_},
                               env_server_);
        !s.ok()) {
      return s;
    }
    if (address = env_server_->WaitForListeningAddress(startup); !address.ok()) {
      return address.status();
    }
    env_address_ = *address;
    if (absl::Status s =
            Spawn("learner", {"--port=0", "--coordinator=" + coordinator_address_}, learner_);
        !s.ok()) {
      return s;
    }
    if (address = learner_->WaitForListeningAddress(startup); !address.ok()) {
      return address.status();
    }
    learner_address_ = *address;
    // Actors print no listening address.
    return Spawn("actor",
                 {"--coordinator=" + coordinator_address_, "--learner=" + learner_address_,
                  "--env=" + env_address_},
                 actor_);
  }

  // Waits for the learner's first training step: the run is well under way.
  absl::Status WaitForTrainingStep() {
    static const std::regex kStep(R"(step [0-9]+ version [0-9]+: groups)");
    const absl::Time start = absl::Now();
    if (WaitForLine(*learner_, kStep, 0, absl::Minutes(3)).has_value()) {
      std::cout << "[timing] first training step " << absl::ToDoubleSeconds(absl::Now() - start)
                << " s after the actor started" << std::endl;
      return absl::OkStatus();
    }
    return absl::DeadlineExceededError(
        absl::StrCat("no training step in the learner's log; learner:\n", learner_->LogTail(4000),
                     "\nactor:\n", actor_->LogTail(4000)));
  }

  // The first line of `process`'s log from byte `offset` on that matches `pattern`; nullopt
  // once `timeout` passes or the process exits without one.
  static std::optional<std::string> WaitForLine(ChildProcess& process, const std::regex& pattern,
                                                size_t offset, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const bool exited = process.PollExit().has_value();
      std::string log = process.LogTail(size_t{1} << 26);
      std::istringstream lines(log.size() > offset ? log.substr(offset) : std::string());
      for (std::string line; std::getline(lines, line);) {
        if (std::regex_search(line, pattern)) return line;
      }
      if (exited || absl::Now() > deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  static size_t LogSize(const ChildProcess& process) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(process.log_path(), ec);
    return ec ? 0 : static_cast<size_t>(size);
  }

  // SIGKILLs `victim`, then waits for an actor log line (written after the kill) that matches
  // `pattern`; fails the test (quoting the actor's log) when none comes within `timeout` or the
  // actor exits.
  void KillAndExpectActorError(ChildProcess& victim, const std::string& pattern,
                               absl::Duration timeout) {
    const size_t offset = LogSize(*actor_);
    const absl::Time killed = absl::Now();
    victim.Kill();
    std::optional<std::string> line = WaitForLine(*actor_, std::regex(pattern), offset, timeout);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - killed);
    EXPECT_TRUE(line.has_value())
        << "no actor log line matching /" << pattern << "/ within " << timeout << " of killing "
        << victim.name() << " (actor exit: "
        << (actor_->PollExit().has_value() ? std::to_string(*actor_->PollExit()) : "running")
        << "); actor log:\n"
        << actor_->LogTail(6000);
    std::cout << "[timing] " << victim.name() << " killed -> actor error after " << seconds
              << " s: " << line.value_or("(none)") << std::endl;
    EXPECT_TRUE(victim.PollExit().has_value()) << victim.name() << " still running";
  }

  // The actor is still up a moment after the failure and stops cleanly on SIGTERM.
  void ExpectActorAliveAndStopsCleanly() {
    absl::SleepFor(absl::Seconds(1));
    ASSERT_FALSE(actor_->PollExit().has_value())
        << "the actor exited with status " << *actor_->PollExit() << "; log:\n"
        << actor_->LogTail(6000);
    const absl::Duration grace = absl::Seconds(30);
    const absl::Time start = absl::Now();
    const int status = actor_->Terminate(grace);
    const absl::Duration took = absl::Now() - start;
    std::cout << "[timing] actor stopped on SIGTERM in " << absl::ToDoubleSeconds(took)
              << " s with status " << status << std::endl;
    EXPECT_EQ(status, 0) << "the actor did not stop cleanly within " << grace
                         << " of SIGTERM; log:\n"
                         << actor_->LogTail(6000);
  }

  std::vector<std::string> overrides_;  // key.sub=value, given to every role
  std::string dir_;
  std::string config_;
  std::string coordinator_address_;
  std::string env_address_;
  std::string learner_address_;
  // Destroyed in reverse order: actor first, coordinator last (each SIGTERM, then SIGKILL).
  std::optional<ChildProcess> coordinator_;
  std::optional<ChildProcess> env_server_;
  std::optional<ChildProcess> learner_;
  std::optional<ChildProcess> actor_;

 private:
  absl::Status Spawn(const std::string& role, std::vector<std::string> flags,
                     std::optional<ChildProcess>& slot) {
    std::vector<std::string> argv{Binary(), role, "--config=" + config_,
                                  "--data_dir=" + SourceDir() + "/data"};
    for (std::string& flag : flags) argv.push_back(std::move(flag));
    for (const std::string& o : overrides_) argv.push_back(o);
    absl::StatusOr<ChildProcess> child =
        ChildProcess::Spawn(role, std::move(argv), dir_ + "/" + role + ".log");
    if (!child.ok()) return child.status();
    slot.emplace(*std::move(child));
    return absl::OkStatus();
  }
};

TEST_F(PeerFailureTest, EnvServerKilledActorNamesItAndStaysUp) {
  absl::Status started = Start("env");
  ASSERT_TRUE(started.ok()) << started;
  absl::Status step = WaitForTrainingStep();
  ASSERT_TRUE(step.ok()) << step;
  // env_client.cc: "env server PEER (StartEpisode|Step, attempt a/n): ..."; the peer is the
  // configured address or, for a call on an open connection, gRPC's "ipv4:" form of it.
  KillAndExpectActorError(
      *env_server_,
      absl::StrCat("env server (ipv4:)?", Quote(env_address_),
                   R"( \((StartEpisode|Step), attempt [12]/2\))"),
      absl::Seconds(30));
  ExpectActorAliveAndStopsCleanly();
}

TEST_F(PeerFailureTest, LearnerKilledActorNamesItAndStaysUp) {
  absl::Status started = Start("learner");
  ASSERT_TRUE(started.ok()) << started;
  absl::Status step = WaitForTrainingStep();
  ASSERT_TRUE(step.ok()) << step;
  KillAndExpectActorError(
      *learner_,
      absl::StrCat("learner ", Quote(learner_address_),
                   R"( \((PushTrajectories|GetWeights|GetPolicyVersion))"),
      absl::Seconds(30));
  ExpectActorAliveAndStopsCleanly();
}

// The learner dies while the actor has nothing to roll out: the coordinator's flow control
// holds leases back until the learner consumes the groups in flight, the state an actor is in
// whenever the learner is the bottleneck (e.g. mid-way through a long step). Here a learner
// that wants 2 groups per step and a coordinator that allows 1 in flight pin the actor there
// after its first lease. The actor's lease wait must not be silent about the dead learner.
TEST_F(PeerFailureTest, LearnerKilledWhileActorWaitsForLeases) {
  overrides_ = {"learner.train_batch_groups=2", "coordinator.max_inflight_groups=1"};
  absl::Status started = Start("learner_idle");
  ASSERT_TRUE(started.ok()) << started;
  // The first (and only possible) lease completed: the actor now waits for a lease.
  static const std::regex kCompleted(R"("event":"completed")");
  const absl::Time deadline = absl::Now() + absl::Minutes(3);
  bool completed = false;
  while (!completed && absl::Now() < deadline && !actor_->PollExit().has_value()) {
    std::ifstream ledger(dir_ + "/leases.jsonl");
    for (std::string line; std::getline(ledger, line);) {
      completed = completed || std::regex_search(line, kCompleted);
    }
    if (!completed) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(completed) << "no lease completed; actor log:\n" << actor_->LogTail(4000);
  KillAndExpectActorError(
      *learner_,
      absl::StrCat("learner ", Quote(learner_address_),
                   R"( \((PushTrajectories|GetWeights|GetPolicyVersion))"),
      absl::Seconds(30));
  ExpectActorAliveAndStopsCleanly();
}

TEST_F(PeerFailureTest, CoordinatorKilledActorAndStatusNameIt) {
  absl::Status started = Start("coordinator");
  ASSERT_TRUE(started.ok()) << started;
  absl::Status step = WaitForTrainingStep();
  ASSERT_TRUE(step.ok()) << step;

  // `envtune status` works while the coordinator is up ...
  auto status_command = [&](const std::string& log) {
    auto child = ChildProcess::Spawn(
        "envtune-status",
        {Binary(), "status", "--coordinator=" + coordinator_address_, "--timeout_ms=2000"},
        dir_ + "/" + log);
    EXPECT_TRUE(child.ok()) << child.status();
    return child;
  };
  {
    auto up = status_command("status-up.log");
    ASSERT_TRUE(up.ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (!up->PollExit().has_value() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_TRUE(up->PollExit().has_value()) << "envtune status hung:\n" << up->LogTail();
    EXPECT_EQ(*up->PollExit(), 0) << up->LogTail();
  }

  KillAndExpectActorError(
      *coordinator_,
      absl::StrCat("coordinator ", Quote(coordinator_address_),
                   R"( \((Heartbeat|AcquireLease|WatchStage)\))"),
      absl::Seconds(30));

  // ... and fails fast, naming the coordinator, once it is gone.
  auto down = status_command("status-down.log");
  ASSERT_TRUE(down.ok());
  const absl::Time start = absl::Now();
  while (!down->PollExit().has_value() && absl::Now() < start + absl::Seconds(15)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  ASSERT_TRUE(down->PollExit().has_value()) << "envtune status hung:\n" << down->LogTail();
  std::cout << "[timing] envtune status against the dead coordinator exited "
            << *down->PollExit() << " after " << seconds << " s: " << down->LogTail();
  EXPECT_NE(*down->PollExit(), 0) << down->LogTail();
  EXPECT_LT(seconds, 10.0);
  EXPECT_TRUE(std::regex_search(
      down->LogTail(), std::regex(absl::StrCat("coordinator ", Quote(coordinator_address_),
                                               R"( \(GetStatus\))"))))
      << down->LogTail();

  ExpectActorAliveAndStopsCleanly();
}

}  // namespace
}  // namespace envtune
