// The env-server fleet as separate processes on loopback ports (no LibTorch needed): `envtune
// coordinator` and `envtune env-server --coordinator ...` processes, and in this process an
// EnvClient that follows the fleet the way an actor does (refresh every second), with 8 threads
// playing episodes. The run starts with 1 env server; 2 more are started mid-run and each must
// serve within 10 s; one is then drained by SIGTERM and leaves with no failed call, and one is
// killed (SIGKILL) with no failed call either. Prints the steps/s before and after scaling and
// the time until each new replica served.
#include <atomic>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "episodes/env_client.h"
#include "common/channels.h"
#include "deploy/process.h"
#include "deploy/status_command.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}
std::string SourceDir() { return EnvOr("ENVTUNE_SOURCE_DIR", "."); }
std::string Binary() { return EnvOr("ENVTUNE_BINARY_DIR", "build") + "/deploy/envtune"; }

class EnvFleetProcessesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(Binary())) GTEST_SKIP() << "no envtune binary at " << Binary();
    if (!std::filesystem::exists(SourceDir() + "/data/bfcl")) GTEST_SKIP() << "no BFCL data";
    dir_ = ::testing::TempDir() + "/envtune_env_fleet_processes";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto coordinator = ChildProcess::Spawn(
        "coordinator",
        {Binary(), "coordinator", "--config=" + SourceDir() + "/configs/tiny-cpu.yaml",
         "--data_dir=" + SourceDir() + "/data", "--port=0",
         "coordinator.heartbeat_interval_ms=250"},
        dir_ + "/coordinator.log");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_.emplace(*std::move(coordinator));
    absl::StatusOr<std::string> address = coordinator_->WaitForListeningAddress(absl::Seconds(60));
    ASSERT_TRUE(address.ok()) << address.status();
    coordinator_address_ = *address;
  }
  void TearDown() override {
    for (auto& server : env_servers_) server.Terminate(absl::Seconds(10));
    if (coordinator_.has_value()) coordinator_->Terminate(absl::Seconds(10));
  }

  // Starts env-server-<i>; returns its address.
  std::string StartEnvServer() {
    const std::string name = absl::StrCat("env-server-", env_servers_.size());
    auto child = ChildProcess::Spawn(
        name,
        {Binary(), "env-server", "--port=0", "--data_dir=" + SourceDir() + "/data",
         "--coordinator=" + coordinator_address_, "--name=" + name, "--drain_grace_ms=1500"},
        dir_ + "/" + name + ".log");
    EXPECT_TRUE(child.ok()) << child.status();
    env_servers_.push_back(*std::move(child));
    absl::StatusOr<std::string> address =
        env_servers_.back().WaitForListeningAddress(absl::Seconds(60));
    EXPECT_TRUE(address.ok()) << address.status();
    return address.value_or("");
  }

  std::string dir_;
  std::optional<ChildProcess> coordinator_;
  std::string coordinator_address_;
  std::vector<ChildProcess> env_servers_;
};

struct Players {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> steps{0};
  std::atomic<int64_t> failures{0};
  absl::Mutex mu;
  std::string first_error;
  std::vector<std::thread> threads;

  void Start(EnvClient* client, int n) {
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([this, client, i] {
        const char* kTasks[] = {"multi_turn_base_0", "multi_turn_base_1", "multi_turn_base_2"};
        while (!stop.load()) {
          v1::StartEpisodeRequest start;
          start.set_task_id(kTasks[i % 3]);
          absl::StatusOr<v1::StartEpisodeResponse> started = client->StartEpisode(start);
          if (!started.ok()) {
            Fail(started.status());
            continue;
          }
          std::string state = started->episode_state();
          for (int turn = 0; turn < 50 && !stop.load(); ++turn) {
            v1::StepRequest step;
            step.set_episode_state(state);
            step.set_model_output("<think>x</think>\n<tool_call>[{\"name\": \"ls\", \"arguments\": {}}]</tool_call>");
            absl::StatusOr<v1::StepResponse> stepped = client->Step(step);
            if (!stepped.ok()) {
              Fail(stepped.status());
              break;
            }
            steps.fetch_add(1);
            if (stepped->episode_ended()) break;
            state = stepped->episode_state();
          }
        }
      });
    }
  }
  void Fail(const absl::Status& status) {
    if (failures.fetch_add(1) > 0) return;
    absl::MutexLock lock(&mu);
    first_error = status.ToString();
  }
  void Stop() {
    stop = true;
    for (std::thread& t : threads) t.join();
  }
};

double StepsPerSecond(const Players& players, absl::Duration window) {
  const int64_t before = players.steps.load();
  const absl::Time start = absl::Now();
  absl::SleepFor(window);
  return static_cast<double>(players.steps.load() - before) /
         absl::ToDoubleSeconds(absl::Now() - start);
}

TEST_F(EnvFleetProcessesTest, ScaleOneToThreeThenDrainOneWithoutFailures) {
  const std::string first = StartEnvServer();
  ASSERT_FALSE(first.empty());
  EnvClientOptions options;  // the actor's defaults: fleet refresh every second
  EnvClient client(MakeChannel(coordinator_address_), nullptr, "fleet", options);
  const absl::Time wait_until = absl::Now() + absl::Seconds(20);
  while (client.ServingReplicas().size() != 1 && absl::Now() < wait_until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(client.ServingReplicas().size(), 1u);

  Players players;
  players.Start(&client, 8);
  absl::SleepFor(absl::Seconds(2));  // warm up
  const double before = StepsPerSecond(players, absl::Seconds(5));

  // A watcher notes when each address first shows up in the client's per-replica counts.
  absl::Mutex seen_mu;
  std::map<std::string, absl::Time> first_seen;
  std::atomic<bool> watching{true};
  std::thread watcher([&] {
    while (watching.load()) {
      const absl::Time now = absl::Now();
      for (const auto& [address, calls] : client.CallsByReplica()) {
        absl::MutexLock lock(&seen_mu);
        if (calls > 0 && first_seen.count(address) == 0) first_seen[address] = now;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  std::vector<std::pair<std::string, absl::Time>> added;  // address, spawn time
  for (int i = 0; i < 2; ++i) {
    const absl::Time spawned = absl::Now();
    added.emplace_back(StartEnvServer(), spawned);
    std::cout << absl::StrFormat("[fleet] %s listening %.2f s after spawn\n", added.back().first,
                                 absl::ToDoubleSeconds(absl::Now() - spawned));
  }
  const absl::Time scale_deadline = absl::Now() + absl::Seconds(20);
  bool all_served = false;
  while (!all_served && absl::Now() < scale_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    absl::MutexLock lock(&seen_mu);
    all_served = first_seen.count(added[0].first) > 0 && first_seen.count(added[1].first) > 0;
  }
  watching = false;
  watcher.join();
  ASSERT_TRUE(all_served) << "new replicas got no steps";
  for (const auto& [address, spawned] : added) {
    const absl::Duration after = first_seen[address] - spawned;
    std::cout << absl::StrFormat("[fleet] replica %s served its first step %.2f s after its "
                                 "process was started\n",
                                 address, absl::ToDoubleSeconds(after));
    EXPECT_LE(after, absl::Seconds(10)) << address;
  }
  absl::SleepFor(absl::Seconds(1));
  const double after = StepsPerSecond(players, absl::Seconds(5));

  // The status shows all three with their load (heartbeats every 250 ms).
  absl::StatusOr<v1::ClusterStatus> status = FetchStatus(coordinator_address_, 5000);
  ASSERT_TRUE(status.ok()) << status.status();
  int serving = 0;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.role() != v1::ROLE_ENV_SERVER) continue;
    ++serving;
    EXPECT_GT(w.env_load().steps_total(), 0u) << w.address();
    EXPECT_GT(w.env_load().steps_per_s(), 0) << w.address();
  }
  EXPECT_EQ(serving, 3);
  std::cout << RenderEnvFleetTable(*status);

  // Drain the last one with SIGTERM, as the launcher and Kubernetes do.
  const absl::Time drain_start = absl::Now();
  env_servers_.back().RequestStop();
  std::optional<int> exited;
  while (!(exited = env_servers_.back().PollExit()).has_value() &&
         absl::Now() - drain_start < absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(exited.has_value()) << "the drained env server did not exit";
  EXPECT_EQ(*exited, 0) << env_servers_.back().LogTail();
  const absl::Duration drain_took = absl::Now() - drain_start;
  const int64_t on_drained = client.CallsByReplica()[added.back().first];
  absl::SleepFor(absl::Seconds(1));
  const double after_drain = StepsPerSecond(players, absl::Seconds(3));
  EXPECT_EQ(client.CallsByReplica()[added.back().first], on_drained);
  status = FetchStatus(coordinator_address_, 5000);
  ASSERT_TRUE(status.ok());
  int left = 0;
  for (const v1::WorkerStatus& w : status->workers()) left += w.role() == v1::ROLE_ENV_SERVER;
  EXPECT_EQ(left, 2);

  // A replica that dies without draining (SIGKILL) costs retries, not failed calls: it stays
  // listed until it expires, but the client avoids it after its first failure.
  const int64_t retries_before_kill = client.retries();
  env_servers_[1].Kill();
  const int64_t steps_at_kill = players.steps.load();
  absl::SleepFor(absl::Seconds(4));
  EXPECT_GT(players.steps.load(), steps_at_kill + 1000);
  std::cout << absl::StrFormat("[fleet] SIGKILL of a replica: %d client retries, %d failed calls\n",
                               client.retries() - retries_before_kill, players.failures.load());
  players.Stop();
  EXPECT_EQ(players.failures.load(), 0) << players.first_error;
  std::cout << absl::StrFormat(
      "[fleet] env steps/s: %.0f with 1 replica, %.0f with 3, %.0f after draining one "
      "(drain + exit took %.2f s; %d client retries; %d failed calls)\n",
      before, after, after_drain, absl::ToDoubleSeconds(drain_took), client.retries(),
      players.failures.load());
}

}  // namespace
}  // namespace envtune
