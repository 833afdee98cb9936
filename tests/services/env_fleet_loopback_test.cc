// The env-server fleet in one process: a coordinator, env servers that join it
// (EnvFleetMember), and an EnvClient that follows the coordinator's list. Replicas are added
// while clients step episodes, then one is drained through the admin RPC; no call may fail.
#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "episodes/env_client.h"
#include "coordinator/service.h"
#include "envserver/env_service.h"
#include "envserver/fleet_member.h"
#include "tests/envserver/episode_test_util.h"
#include "tests/common/security_test_util.h"
#include "tests/services/test_server.h"

namespace envtune {
namespace {

CoordinatorOptions OneStage() {
  CoordinatorOptions options;
  StageConfig stage;
  stage.stage = 1;
  stage.name = "syntax";
  stage.task_ids = {"multi_turn_base_0"};
  options.stages = {stage};
  options.heartbeat_interval = absl::Milliseconds(200);
  options.worker_expiry = absl::Seconds(5);
  return options;
}

// One env-server process, in-process: the server, its membership, and what the env-server
// command does when asked to drain (deploy/env_commands.cc).
struct Replica {
  std::unique_ptr<EnvServer> server;
  std::unique_ptr<EnvFleetMember> member;
  std::thread drainer;
  std::string address;

  void DrainWhenAsked(absl::Duration grace) {
    drainer = std::thread([this, grace] {
      member->drain_requested().WaitForNotification();
      server->BeginDrain();
      member->ReportDraining();
      server->DrainAndShutdown(grace, absl::Seconds(30));
      member->Leave();
    });
  }
  ~Replica() {
    if (drainer.joinable()) {
      if (!member->drain_requested().HasBeenNotified()) member->drain_requested().Notify();
      drainer.join();
    }
  }
};

class EnvFleetLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_util::HaveData()) GTEST_SKIP() << "no BFCL data under " << testing_util::DataDir();
    // Admin RPCs need the admin token (common/security.h); worker RPCs stay open here.
    const std::string admin_token_file = ::testing::TempDir() + "/env_fleet_loopback-admin-token";
    ASSERT_TRUE(WritePrivateFile(admin_token_file, "s3cret-admin-token-0123456789").ok());
    SecurityOptions security;
    security.admin_token_file = admin_token_file;
    security_ = std::make_unique<testing_util::ScopedProcessSecurity>(
        testing_util::LoadOrDie(security));
    coordinator_ = *Coordinator::Create(OneStage());
    service_ = std::make_unique<CoordinatorServiceImpl>(coordinator_.get());
    server_ = std::make_unique<TestServer>(std::vector<grpc::Service*>{service_.get()});
    stub_ = v1::CoordinatorService::NewStub(server_->Channel());
  }
  void TearDown() override {
    replicas_.clear();
    if (service_ != nullptr) service_->Shutdown();
    server_.reset();
  }

  Replica* AddReplica(const std::string& name) {
    EnvServiceOptions options;
    options.data_dir = testing_util::DataDir();
    options.load_window = absl::Seconds(2);
    auto replica = std::make_unique<Replica>();
    absl::StatusOr<std::unique_ptr<EnvServer>> server = EnvServer::Start(options, "127.0.0.1:0");
    EXPECT_TRUE(server.ok()) << server.status();
    replica->server = *std::move(server);
    replica->address = absl::StrCat("127.0.0.1:", replica->server->port());
    absl::StatusOr<std::unique_ptr<EnvFleetMember>> member = EnvFleetMember::Start(
        replica->server.get(), {.coordinator = server_->address(), .address = replica->address,
                                .name = name});
    EXPECT_TRUE(member.ok()) << member.status();
    replica->member = *std::move(member);
    replicas_.push_back(std::move(replica));
    return replicas_.back().get();
  }

  v1::ClusterStatus Status() { return coordinator_->Status(); }

  std::unique_ptr<testing_util::ScopedProcessSecurity> security_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServiceImpl> service_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

// Plays whole episodes (an answer every turn) until `stop`; counts steps and failures.
void PlayEpisodes(EnvClient* client, const std::atomic<bool>* stop, std::atomic<int64_t>* steps,
                  std::atomic<int64_t>* failures, std::string* first_error) {
  while (!stop->load()) {
    v1::StartEpisodeRequest start;
    start.set_task_id("multi_turn_base_0");
    absl::StatusOr<v1::StartEpisodeResponse> started = client->StartEpisode(start);
    if (!started.ok()) {
      if (failures->fetch_add(1) == 0) *first_error = started.status().ToString();
      continue;
    }
    std::string state = started->episode_state();
    for (int i = 0; i < 50 && !stop->load(); ++i) {
      v1::StepRequest step;
      step.set_episode_state(state);
      step.set_model_output(testing_util::Answer("done"));
      absl::StatusOr<v1::StepResponse> stepped = client->Step(step);
      if (!stepped.ok()) {
        if (failures->fetch_add(1) == 0) *first_error = stepped.status().ToString();
        break;
      }
      steps->fetch_add(1);
      if (stepped->episode_ended()) break;
      state = stepped->episode_state();
    }
  }
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

TEST_F(EnvFleetLoopbackTest, ReplicasAddedMidRunServeAndADrainedOneLeavesWithoutFailures) {
  Replica* first = AddReplica("env-0");
  EnvClientOptions options;
  options.fleet_refresh = absl::Milliseconds(200);
  EnvClient client(server_->Channel(), /*fallback=*/nullptr, "fleet", options);
  ASSERT_TRUE(WaitFor([&] { return client.ServingReplicas().size() == 1; }, absl::Seconds(10)));

  std::atomic<bool> stop{false};
  std::atomic<int64_t> steps{0}, failures{0};
  std::string first_error;
  std::vector<std::thread> players;
  for (int i = 0; i < 6; ++i) {
    players.emplace_back(PlayEpisodes, &client, &stop, &steps, &failures, &first_error);
  }
  ASSERT_TRUE(WaitFor([&] { return steps.load() > 50; }, absl::Seconds(20)));

  // Two more replicas join mid-run: each serves within seconds of starting.
  const absl::Time added = absl::Now();
  Replica* second = AddReplica("env-1");
  Replica* third = AddReplica("env-2");
  std::map<std::string, absl::Duration> first_served;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int64_t> calls = client.CallsByReplica();
        for (Replica* r : {second, third}) {
          if (calls[r->address] > 0 && first_served.count(r->address) == 0) {
            first_served[r->address] = absl::Now() - added;
          }
        }
        return first_served.size() == 2;
      },
      absl::Seconds(10)))
      << "new replicas got no calls within 10 s";
  for (const auto& [address, after] : first_served) {
    std::cerr << "replica " << address << " served its first call "
              << absl::FormatDuration(after) << " after it started\n";
  }
  // The coordinator's status shows every replica with its load (heartbeats every 200 ms).
  ASSERT_TRUE(WaitFor(
      [&] {
        int loaded = 0;
        const v1::ClusterStatus status = Status();
        for (const v1::WorkerStatus& w : status.workers()) {
          loaded += w.role() == v1::ROLE_ENV_SERVER &&
                    w.serving_state() == v1::SERVING_STATE_SERVING &&
                    w.env_load().steps_total() > 0 && w.env_load().steps_per_s() > 0;
        }
        return loaded == 3;
      },
      absl::Seconds(10)));

  // Drain the second through the admin RPC; clients keep playing.
  second->DrainWhenAsked(absl::Milliseconds(600));
  v1::DrainEnvServerRequest drain;
  drain.set_address(second->address);
  v1::WorkerStatus drained;
  grpc::ClientContext no_token;
  EXPECT_EQ(stub_->DrainEnvServer(&no_token, drain, &drained).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer s3cret-admin-token-0123456789");
  grpc::Status status = stub_->DrainEnvServer(&context, drain, &drained);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(drained.serving_state(), v1::SERVING_STATE_DRAINING);
  ASSERT_TRUE(WaitFor([&] { return client.ServingReplicas().size() == 2; }, absl::Seconds(5)));
  // It leaves the fleet once its in-flight calls are done (its STOPPED heartbeat).
  ASSERT_TRUE(WaitFor([&] { return coordinator_->ListEnvServers().env_servers_size() == 2; },
                      absl::Seconds(10)));
  const int64_t on_second = client.CallsByReplica()[second->address];
  const int64_t steps_at_drain = steps.load();
  ASSERT_TRUE(WaitFor([&] { return steps.load() > steps_at_drain + 50; }, absl::Seconds(20)));
  EXPECT_EQ(client.CallsByReplica()[second->address], on_second);
  stop = true;
  for (std::thread& t : players) t.join();
  EXPECT_EQ(failures.load(), 0) << first_error;
  std::cerr << "steps " << steps.load() << ", client retries " << client.retries() << "\n";
  (void)first;
}

TEST_F(EnvFleetLoopbackTest, FallsBackToTheStaticTargetWhileTheFleetIsEmpty) {
  EnvServiceOptions options;
  options.data_dir = testing_util::DataDir();
  absl::StatusOr<std::unique_ptr<EnvServer>> lone = EnvServer::Start(options, "127.0.0.1:0");
  ASSERT_TRUE(lone.ok()) << lone.status();
  EnvClientOptions client_options;
  client_options.fleet_refresh = absl::Milliseconds(100);
  EnvClient client(server_->Channel(),
                   MakeChannel(absl::StrCat("127.0.0.1:", (*lone)->port())), "fallback",
                   client_options);
  v1::StartEpisodeRequest start;
  start.set_task_id("multi_turn_base_0");
  absl::StatusOr<v1::StartEpisodeResponse> started = client.StartEpisode(start);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(client.CallsByReplica()[""], 1);
  // Bad input is the server's clear error, not retried.
  start.set_task_id("no_such_task");
  EXPECT_EQ(client.StartEpisode(start).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client.retries(), 0);
}

// An env server that restarts on its port (the launcher's supervision) is back within a second
// or two; a call made meanwhile waits it out (actor.retry_deadline_s) instead of failing the
// episode after a fixed count of attempts (5 attempts, ~0.75 s before).
TEST_F(EnvFleetLoopbackTest, ACallOutlastsAnEnvServerRestartOnItsPort) {
  EnvServiceOptions options;
  options.data_dir = testing_util::DataDir();
  absl::StatusOr<std::unique_ptr<EnvServer>> server = EnvServer::Start(options, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());
  EnvClientOptions client_options;
  client_options.retry_deadline = absl::Seconds(30);
  EnvClient client(address, client_options);
  v1::StartEpisodeRequest start;
  start.set_task_id("multi_turn_base_0");
  ASSERT_TRUE(client.StartEpisode(start).ok());

  server->reset();  // down
  const absl::Duration downtime = absl::Milliseconds(1500);
  absl::StatusOr<std::unique_ptr<EnvServer>> restarted;
  std::thread restart([&] {
    absl::SleepFor(downtime);
    restarted = EnvServer::Start(options, address);
  });
  const absl::Time begin = absl::Now();
  absl::StatusOr<v1::StartEpisodeResponse> started = client.StartEpisode(start);
  const absl::Duration took = absl::Now() - begin;
  restart.join();
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_TRUE(started.ok()) << started.status();
  EXPECT_GE(took, downtime - absl::Milliseconds(100));
  EXPECT_LT(took, downtime + absl::Seconds(5)) << "reconnecting took too long";
  EXPECT_GT(client.retries(), 0);
  std::cerr << "call across a " << downtime << " restart took " << took << ", "
            << client.retries() << " retries\n";
}

TEST_F(EnvFleetLoopbackTest, NoReplicaAndNoFallbackIsUnavailable) {
  EnvClientOptions options;
  options.max_attempts = 2;
  options.initial_backoff = absl::Milliseconds(1);
  EnvClient client(server_->Channel(), nullptr, "fleet", options);
  v1::StartEpisodeRequest start;
  start.set_task_id("multi_turn_base_0");
  absl::StatusOr<v1::StartEpisodeResponse> started = client.StartEpisode(start);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(started.status().message().find("no env server is serving"), std::string::npos);
}

}  // namespace
}  // namespace envtune
