// `envtune status` rendering: the env-server fleet in the table and in JSON.
#include "deploy/status_command.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::ClusterStatus FleetStatus() {
  v1::ClusterStatus s;
  s.set_stage(1);
  s.set_stage_name("syntax");
  v1::WorkerStatus* actor = s.add_workers();
  actor->set_worker_id("w1");
  actor->set_role(v1::ROLE_ACTOR);
  actor->set_name("actor-0");
  for (int i = 0; i < 2; ++i) {
    v1::WorkerStatus* w = s.add_workers();
    w->set_worker_id(i == 0 ? "w2" : "w3");
    w->set_role(v1::ROLE_ENV_SERVER);
    w->set_name(i == 0 ? "env-server-0" : "env-server-1");
    w->set_address(i == 0 ? "127.0.0.1:5001" : "127.0.0.1:5002");
    w->set_serving_state(i == 0 ? v1::SERVING_STATE_SERVING : v1::SERVING_STATE_DRAINING);
    w->mutable_env_load()->set_steps_per_s(i == 0 ? 12.5 : 0.5);
    w->mutable_env_load()->set_step_latency_p50_ms(1.25);
    w->mutable_env_load()->set_step_latency_p99_ms(7.5);
    w->mutable_env_load()->set_inflight_steps(i == 0 ? 4 : 1);
    w->mutable_env_load()->set_steps_total(i == 0 ? 900 : 80);
  }
  return s;
}

TEST(StatusCommandTest, TableShowsEveryEnvServerWithItsLoad) {
  const std::string table = RenderStatusTable(FleetStatus());
  EXPECT_THAT(table, HasSubstr("env servers 2 (1 serving, 1 draining)  13.0 steps/s  5 in flight"));
  EXPECT_THAT(table, HasSubstr("P99 MS"));
  EXPECT_THAT(table, HasSubstr("env-server-0"));
  EXPECT_THAT(table,
              HasSubstr("127.0.0.1:5001         serving        12.5     1.25     7.50         4        900"));
  EXPECT_THAT(table, HasSubstr("127.0.0.1:5002         draining        0.5"));
}

TEST(StatusCommandTest, NoEnvServersSaysSo) {
  v1::ClusterStatus s;
  const std::string table = RenderStatusTable(s);
  EXPECT_THAT(table, HasSubstr("env servers 0 (0 serving, 0 draining)"));
  EXPECT_THAT(table, Not(HasSubstr("P99 MS")));
}

TEST(StatusCommandTest, JsonCarriesServingStateAndLoad) {
  nlohmann::json j = nlohmann::json::parse(RenderStatusJson(FleetStatus()));
  const nlohmann::json& env = j["workers"][2];
  EXPECT_EQ(env["serving_state"], "SERVING_STATE_DRAINING");
  EXPECT_EQ(env["env_load"]["inflight_steps"], 1);
  EXPECT_DOUBLE_EQ(env["env_load"]["step_latency_p99_ms"].get<double>(), 7.5);
  EXPECT_EQ(env["env_load"]["steps_total"], "80");  // proto3 JSON: 64-bit integers are strings
  EXPECT_EQ(j["workers"][0]["serving_state"], "SERVING_STATE_UNSPECIFIED");
}

}  // namespace
}  // namespace envtune
