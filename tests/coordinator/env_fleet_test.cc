// The env-server fleet in the coordinator: registration, load heartbeats, draining, STOPPED,
// expiry, replacement on the same address, and the fleet generation.
#include <string>

#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "tests/coordinator/fake_clock.h"

namespace envtune {
namespace {

std::unique_ptr<Coordinator> MakeCoordinator(Clock* clock) {
  CoordinatorOptions options;
  StageConfig stage;
  stage.stage = 1;
  stage.name = "syntax";
  stage.task_ids = {"a"};
  options.stages = {stage};
  options.worker_expiry = absl::Seconds(10);
  auto c = Coordinator::Create(options, clock);
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

std::string RegisterEnv(Coordinator& c, const std::string& address) {
  v1::RegisterRequest request;
  request.set_role(v1::ROLE_ENV_SERVER);
  request.set_address(address);
  request.set_name("env-" + address);
  auto response = c.Register(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response->worker_id();
}

absl::StatusOr<v1::HeartbeatResponse> Beat(Coordinator& c, const std::string& id,
                                           v1::ServingState state, double steps_per_s = 0) {
  v1::HeartbeatRequest request;
  request.set_worker_id(id);
  request.set_serving_state(state);
  request.mutable_env_load()->set_steps_per_s(steps_per_s);
  request.mutable_env_load()->set_step_latency_p50_ms(3);
  request.mutable_env_load()->set_step_latency_p99_ms(9);
  request.mutable_env_load()->set_inflight_steps(2);
  request.mutable_env_load()->set_steps_total(100);
  return c.Heartbeat(request);
}

TEST(EnvFleetTest, ListsServersInRegistrationOrderWithLoad) {
  FakeClock clock;
  auto c = MakeCoordinator(&clock);
  const uint64_t g0 = c->ListEnvServers().generation();
  std::string ids[11];
  for (int i = 0; i < 11; ++i) ids[i] = RegisterEnv(*c, "10.0.0.1:" + std::to_string(5000 + i));
  v1::RegisterRequest actor;
  actor.set_role(v1::ROLE_ACTOR);
  ASSERT_TRUE(c->Register(actor).ok());
  ASSERT_TRUE(Beat(*c, ids[3], v1::SERVING_STATE_SERVING, 42.5).ok());

  v1::ListEnvServersResponse fleet = c->ListEnvServers();
  ASSERT_EQ(fleet.env_servers_size(), 11);  // the actor is not listed
  for (int i = 0; i < 11; ++i) {
    EXPECT_EQ(fleet.env_servers(i).worker_id(), ids[i]);  // w10 after w9, not after w1
    EXPECT_EQ(fleet.env_servers(i).serving_state(), v1::SERVING_STATE_SERVING);
  }
  EXPECT_DOUBLE_EQ(fleet.env_servers(3).env_load().steps_per_s(), 42.5);
  EXPECT_EQ(fleet.env_servers(3).env_load().inflight_steps(), 2u);
  EXPECT_GT(fleet.generation(), g0);
  // A load report alone does not change the generation.
  ASSERT_TRUE(Beat(*c, ids[3], v1::SERVING_STATE_SERVING, 1).ok());
  EXPECT_EQ(c->ListEnvServers().generation(), fleet.generation());
  EXPECT_EQ(c->Status().env_fleet_generation(), fleet.generation());
}

TEST(EnvFleetTest, DrainByAdminReachesTheServerAndStoppedRemovesIt) {
  FakeClock clock;
  auto c = MakeCoordinator(&clock);
  std::string a = RegisterEnv(*c, "h:1");
  std::string b = RegisterEnv(*c, "h:2");
  const uint64_t g = c->ListEnvServers().generation();

  v1::DrainEnvServerRequest drain;
  drain.set_address("h:2");
  absl::StatusOr<v1::WorkerStatus> drained = c->DrainEnvServer(drain);
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->worker_id(), b);
  EXPECT_EQ(drained->serving_state(), v1::SERVING_STATE_DRAINING);
  v1::ListEnvServersResponse fleet = c->ListEnvServers();
  EXPECT_GT(fleet.generation(), g);
  EXPECT_EQ(fleet.env_servers(1).serving_state(), v1::SERVING_STATE_DRAINING);
  // Draining again changes nothing.
  ASSERT_TRUE(c->DrainEnvServer(drain).ok());
  EXPECT_EQ(c->ListEnvServers().generation(), fleet.generation());

  // The server hears it in its heartbeat, and cannot undo it by saying SERVING.
  absl::StatusOr<v1::HeartbeatResponse> beat = Beat(*c, b, v1::SERVING_STATE_SERVING);
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->drain());
  EXPECT_EQ(c->ListEnvServers().env_servers(1).serving_state(), v1::SERVING_STATE_DRAINING);
  beat = Beat(*c, a, v1::SERVING_STATE_SERVING);
  ASSERT_TRUE(beat.ok());
  EXPECT_FALSE(beat->drain());

  // Its last word removes it at once.
  ASSERT_TRUE(Beat(*c, b, v1::SERVING_STATE_STOPPED).ok());
  fleet = c->ListEnvServers();
  ASSERT_EQ(fleet.env_servers_size(), 1);
  EXPECT_EQ(fleet.env_servers(0).worker_id(), a);
  EXPECT_EQ(Beat(*c, b, v1::SERVING_STATE_SERVING).status().code(), absl::StatusCode::kNotFound);
}

TEST(EnvFleetTest, SelfReportedDrainingAndExpiryChangeTheFleet) {
  FakeClock clock;
  auto c = MakeCoordinator(&clock);
  std::string a = RegisterEnv(*c, "h:1");
  std::string b = RegisterEnv(*c, "h:2");
  uint64_t g = c->ListEnvServers().generation();
  ASSERT_TRUE(Beat(*c, a, v1::SERVING_STATE_DRAINING).ok());  // SIGTERM on the server
  EXPECT_EQ(c->ListEnvServers().env_servers(0).serving_state(), v1::SERVING_STATE_DRAINING);
  EXPECT_GT(c->ListEnvServers().generation(), g);
  g = c->ListEnvServers().generation();
  clock.Advance(absl::Seconds(6));
  ASSERT_TRUE(Beat(*c, b, v1::SERVING_STATE_SERVING).ok());
  clock.Advance(absl::Seconds(6));  // a expired, b did not
  v1::ListEnvServersResponse fleet = c->ListEnvServers();
  ASSERT_EQ(fleet.env_servers_size(), 1);
  EXPECT_EQ(fleet.env_servers(0).worker_id(), b);
  EXPECT_GT(fleet.generation(), g);
}

TEST(EnvFleetTest, RestartOnTheSameAddressReplacesTheOldEntry) {
  FakeClock clock;
  auto c = MakeCoordinator(&clock);
  std::string old_id = RegisterEnv(*c, "h:1");
  std::string new_id = RegisterEnv(*c, "h:1");
  v1::ListEnvServersResponse fleet = c->ListEnvServers();
  ASSERT_EQ(fleet.env_servers_size(), 1);
  EXPECT_EQ(fleet.env_servers(0).worker_id(), new_id);
  EXPECT_EQ(Beat(*c, old_id, v1::SERVING_STATE_SERVING).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(EnvFleetTest, BadRequestsAreClearErrors) {
  FakeClock clock;
  auto c = MakeCoordinator(&clock);
  std::string a = RegisterEnv(*c, "h:1");
  v1::RegisterRequest actor;
  actor.set_role(v1::ROLE_ACTOR);
  std::string actor_id = c->Register(actor)->worker_id();

  v1::DrainEnvServerRequest drain;
  EXPECT_EQ(c->DrainEnvServer(drain).status().code(), absl::StatusCode::kInvalidArgument);
  drain.set_worker_id(a);
  drain.set_address("h:1");
  EXPECT_EQ(c->DrainEnvServer(drain).status().code(), absl::StatusCode::kInvalidArgument);
  drain.clear_address();
  drain.set_worker_id(actor_id);
  EXPECT_EQ(c->DrainEnvServer(drain).status().code(), absl::StatusCode::kInvalidArgument);
  drain.set_worker_id("w999");
  EXPECT_EQ(c->DrainEnvServer(drain).status().code(), absl::StatusCode::kNotFound);

  v1::HeartbeatRequest beat;
  beat.set_worker_id(a);
  beat.set_serving_state(static_cast<v1::ServingState>(77));
  EXPECT_EQ(c->Heartbeat(beat).status().code(), absl::StatusCode::kInvalidArgument);
  // An env server without an address cannot register.
  v1::RegisterRequest no_address;
  no_address.set_role(v1::ROLE_ENV_SERVER);
  EXPECT_EQ(c->Register(no_address).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace envtune
