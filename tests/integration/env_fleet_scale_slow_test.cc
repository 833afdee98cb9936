// Scaling env servers while a run goes on (processes on loopback ports): `envtune train` starts
// with 1 env server; `envtune scale` adds 2 more, and every replica must serve steps within
// 10 s of the request; then one is drained and removed (`envtune scale ... 2`) with no failed
// episode (the learner's trajectory ledger and the actors' logs). Prints the fleet's steps/s
// before and after scaling and how long each new replica took to serve its first step.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "deploy/process.h"
#include "deploy/status_command.h"
#include "gtest/gtest.h"
#include "tests/integration/integration_util.h"

namespace envtune {
namespace {

using integration::Binary;
using integration::ReadJsonLines;
using integration::SourceDir;
using integration::TinyLearnerYaml;

std::string Config(const std::string& dir) {
  return absl::StrCat(R"(
launch:
  env_servers: 1
  actors: 2
  run_dir: )", dir, R"(/run
  startup_timeout_s: 300
  max_wall_s: 900
  poll_interval_ms: 200
coordinator:
  heartbeat_interval_ms: 250
  worker_expiry_ms: 30000
  lease_timeout_ms: 600000
  max_policy_staleness: 1
  ledger_path: )", dir, R"(/leases.jsonl
curriculum:
  stages:
    - {name: syntax, split: train, categories: [base], limit: 4, reward: format,
       group_size: 2, max_new_tokens: 12, max_episode_tokens: 32768,
       advance: {after_steps: 100000}}
)", TinyLearnerYaml(absl::StrCat("  ledger_path: ", dir, "/trajectories.jsonl\n")), R"(actor:
  concurrency: 8
  max_model_turns: 6
  max_episode_seconds: 300
  env_fleet_refresh_ms: 500
  tokenizer: )", SourceDir(), R"(/third_party/qwen-tokenizer
)");
}

struct Fleet {
  std::map<std::string, uint64_t> steps;  // address -> steps served (live replicas)
  std::map<std::string, std::string> state;
  uint64_t total() const {
    uint64_t sum = 0;
    for (const auto& [address, n] : steps) sum += n;
    return sum;
  }
};

absl::StatusOr<Fleet> ReadFleet(const std::string& coordinator) {
  absl::StatusOr<v1::ClusterStatus> status = FetchStatus(coordinator, 5000);
  if (!status.ok()) return status.status();
  Fleet fleet;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.role() != v1::ROLE_ENV_SERVER) continue;
    fleet.steps[w.address()] = w.env_load().steps_total();
    fleet.state[w.address()] = ServingStateName(w.serving_state());
  }
  return fleet;
}

// Fleet steps per second over `window`, from the replicas' step totals (replicas present at both
// ends of the window).
double StepsPerSecond(const std::string& coordinator, absl::Duration window) {
  absl::StatusOr<Fleet> a = ReadFleet(coordinator);
  const absl::Time start = absl::Now();
  absl::SleepFor(window);
  absl::StatusOr<Fleet> b = ReadFleet(coordinator);
  if (!a.ok() || !b.ok()) return -1;
  uint64_t steps = 0;
  for (const auto& [address, n] : b->steps) {
    auto it = a->steps.find(address);
    steps += n - (it == a->steps.end() ? 0 : it->second);
  }
  return static_cast<double>(steps) / absl::ToDoubleSeconds(absl::Now() - start);
}

int RunScale(const std::string& dir, int n) {
  auto scale = ChildProcess::Spawn(
      "envtune-scale",
      {Binary(), "scale", "--run_dir=" + dir + "/run", "env-servers", std::to_string(n),
       "--wait_s=120"},
      dir + "/scale.log");
  if (!scale.ok()) return -1;
  const absl::Time deadline = absl::Now() + absl::Minutes(3);
  while (!scale->PollExit().has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  return scale->PollExit().value_or(-2);
}

TEST(EnvFleetScaleTest, ReplicasAddedMidRunServeWithinSecondsAndADrainLosesNoEpisode) {
  if (!std::filesystem::exists(Binary())) GTEST_SKIP() << "envtune binary not built at " << Binary();
  const std::string dir = integration::RunDir("envtune_env_fleet_scale_test");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.yaml") << Config(dir);
  auto train = ChildProcess::Spawn(
      "envtune-train", {Binary(), "train", "--config=" + dir + "/config.yaml"},
      dir + "/train.log");
  ASSERT_TRUE(train.ok()) << train.status();

  // The coordinator's address, then the first training step (the run is under way).
  std::string coordinator;
  bool trained = false;
  absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (absl::Now() < deadline && !train->PollExit().has_value() && !trained) {
    if (coordinator.empty()) {
      const std::string log = train->LogTail(1 << 20);
      const size_t at = log.find("coordinator ");
      if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
        coordinator = log.substr(at + 12, log.find('\n', at) - at - 12);
        // The run is sealed (TLS and a cluster token): status calls need its credentials.
        absl::Status sealed = integration::UseRunSecurity(dir + "/run");
        ASSERT_TRUE(sealed.ok()) << sealed;
      }
    } else {
      absl::StatusOr<v1::ClusterStatus> status = FetchStatus(coordinator, 5000);
      trained = status.ok() && status->learner_step() >= 1;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_FALSE(coordinator.empty()) << train->LogTail(4000);
  ASSERT_TRUE(trained) << "no training step:\n" << train->LogTail(4000);
  absl::StatusOr<Fleet> fleet = ReadFleet(coordinator);
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  ASSERT_EQ(fleet->steps.size(), 1u) << "the run starts with one env server";
  const std::string first_replica = fleet->steps.begin()->first;

  const double before = StepsPerSecond(coordinator, absl::Seconds(10));

  // Scale to 3 and time each new replica until its first served step.
  const absl::Time requested = absl::Now();
  ASSERT_EQ(RunScale(dir, 3), 0) << train->LogTail(4000);
  const absl::Duration scale_command = absl::Now() - requested;
  std::map<std::string, absl::Duration> first_step;
  deadline = requested + absl::Seconds(30);
  while (absl::Now() < deadline) {
    fleet = ReadFleet(coordinator);
    if (fleet.ok()) {
      for (const auto& [address, steps] : fleet->steps) {
        if (address != first_replica && steps > 0 && first_step.count(address) == 0) {
          first_step[address] = absl::Now() - requested;
        }
      }
      if (first_step.size() == 2) break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(first_step.size(), 2u) << train->LogTail(4000);
  std::cout << absl::StrFormat("[fleet] scale 1 -> 3: envtune scale returned after %.2fs\n",
                               absl::ToDoubleSeconds(scale_command));
  for (const auto& [address, after] : first_step) {
    std::cout << absl::StrFormat("[fleet] new replica %s served its first step %.2fs after the "
                                 "scale request\n",
                                 address, absl::ToDoubleSeconds(after));
    EXPECT_LE(after, absl::Seconds(10)) << address;
  }
  const double after = StepsPerSecond(coordinator, absl::Seconds(10));
  fleet = ReadFleet(coordinator);
  ASSERT_TRUE(fleet.ok());
  for (const auto& [address, steps] : fleet->steps) EXPECT_GT(steps, 0u) << address;
  std::cout << absl::StrFormat("[fleet] env steps/s: %.1f with 1 replica, %.1f with 3\n", before,
                               after);

  // Scale down to 2: the newest replica drains and leaves; the run goes on.
  ASSERT_EQ(RunScale(dir, 2), 0) << train->LogTail(4000);
  fleet = ReadFleet(coordinator);
  ASSERT_TRUE(fleet.ok());
  EXPECT_EQ(fleet->steps.size(), 2u);
  const double after_drain = StepsPerSecond(coordinator, absl::Seconds(5));
  std::cout << absl::StrFormat("[fleet] env steps/s after draining one: %.1f\n", after_drain);
  EXPECT_GT(after_drain, 0);

  train->Terminate(absl::Seconds(60));
  const std::string log = train->LogTail(1 << 20);
  EXPECT_TRUE(absl::StrContains(log, "env servers: scaling 1 -> 3")) << log;
  EXPECT_TRUE(absl::StrContains(log, "env-server-2 (")) << log;
  EXPECT_TRUE(absl::StrContains(log, "env-server-2 stopped after draining (exit status 0)")) << log;

  // No failed episode: not in the learner's ledger, not in any actor's log.
  int trajectories = 0;
  for (const nlohmann::json& t : ReadJsonLines(dir + "/trajectories.jsonl")) {
    ++trajectories;
    EXPECT_FALSE(t.value("failed", false)) << t.dump();
  }
  EXPECT_GT(trajectories, 0);
  for (const char* actor : {"actor-0", "actor-1"}) {
    std::ifstream in(dir + "/run/logs/" + actor + ".log");
    for (std::string line; std::getline(in, line);) {
      EXPECT_FALSE(absl::StrContains(line, " failed: ")) << actor << ": " << line;
    }
  }
}

}  // namespace
}  // namespace envtune
