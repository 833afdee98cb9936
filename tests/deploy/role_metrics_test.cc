// deploy/role_metrics: the coordinator's ClusterStatus mirrored into Prometheus metrics.
#include "deploy/role_metrics.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace envtune {
namespace {

double SeriesValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

v1::ClusterStatus MakeStatus(uint32_t stage, const std::string& name, uint64_t step, uint64_t episodes,
                             uint64_t reissued, int actors) {
  v1::ClusterStatus s;
  s.set_stage(stage);
  s.set_stage_name(name);
  s.set_learner_step(step);
  s.set_policy_version(step + 1);
  s.set_episodes_completed(episodes);
  s.set_leases_reissued(reissued);
  s.set_leases_outstanding(3);
  for (int i = 0; i < actors; ++i) {
    v1::WorkerStatus* w = s.add_workers();
    w->set_role(v1::ROLE_ACTOR);
    w->set_episodes_per_s(1.5);
    w->set_tokens_per_s(100);
  }
  v1::WorkerStatus* l = s.add_workers();
  l->set_role(v1::ROLE_LEARNER);
  v1::Metric* m = s.add_metrics();
  m->set_name("reward/stage2/progress");
  m->set_value(0.25);
  return s;
}

TEST(RoleMetricsTest, CoordinatorStatusBecomesMetrics) {
  Metrics metrics;
  CoordinatorMetrics cm(metrics);
  cm.Update(MakeStatus(1, "syntax", 4, 40, 2, 2));
  std::string text = metrics.Render();
  EXPECT_EQ(SeriesValue(text, "envtune_curriculum_stage"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_stage_info{name=\"syntax\",stage=\"1\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_learner_step"), 4) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_policy_version"), 5) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_workers{role=\"actor\"}"), 2) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_workers{role=\"learner\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_workers{role=\"env_server\"}"), 0) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_cluster_episodes_per_second"), 3) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_episodes_completed_total"), 40) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_leases_reissued_total"), 2) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_leases_outstanding"), 3) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_run_metric{name=\"reward/stage2/progress\"}"), 0.25) << text;

  // The next stage: totals follow, the old stage's info drops to 0, a dead actor is gone.
  cm.Update(MakeStatus(2, "hints", 9, 100, 5, 1));
  text = metrics.Render();
  EXPECT_EQ(SeriesValue(text, "envtune_curriculum_stage"), 2) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_stage_info{name=\"syntax\",stage=\"1\"}"), 0) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_stage_info{name=\"hints\",stage=\"2\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_episodes_completed_total"), 100) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_leases_reissued_total"), 5) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_workers{role=\"actor\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_learner_step"), 9) << text;
}

v1::WorkerStatus* AddEnvServer(v1::ClusterStatus& s, const std::string& id, double steps_per_s,
                               v1::ServingState state) {
  v1::WorkerStatus* w = s.add_workers();
  w->set_worker_id(id);
  w->set_role(v1::ROLE_ENV_SERVER);
  w->set_name("env-" + id);
  w->set_address("10.0.0.9:" + id.substr(1));
  w->set_serving_state(state);
  w->mutable_env_load()->set_steps_per_s(steps_per_s);
  w->mutable_env_load()->set_step_latency_p50_ms(4);
  w->mutable_env_load()->set_step_latency_p99_ms(20);
  w->mutable_env_load()->set_inflight_steps(3);
  return w;
}

TEST(RoleMetricsTest, EnvFleetPerReplicaAndRemovedWhenGone) {
  Metrics metrics;
  CoordinatorMetrics cm(metrics);
  v1::ClusterStatus s = MakeStatus(1, "syntax", 1, 1, 0, 1);
  AddEnvServer(s, "w7", 120, v1::SERVING_STATE_SERVING);
  AddEnvServer(s, "w8", 30, v1::SERVING_STATE_DRAINING);
  cm.Update(s);
  std::string text = metrics.Render();
  const std::string w7 = "{address=\"10.0.0.9:7\",name=\"env-w7\",worker=\"w7\"}";
  const std::string w8 = "{address=\"10.0.0.9:8\",name=\"env-w8\",worker=\"w8\"}";
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_steps_per_second" + w7), 120) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_step_latency_p50_seconds" + w7), 0.004) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_step_latency_p99_seconds" + w7), 0.02) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_inflight_steps" + w7), 3) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_draining" + w7), 0) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_draining" + w8), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_servers{state=\"serving\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_servers{state=\"draining\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_fleet_steps_per_second"), 150) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_fleet_inflight_steps"), 6) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_workers{role=\"env_server\"}"), 2) << text;

  // w8 left the fleet: its series are gone, not frozen.
  v1::ClusterStatus after = MakeStatus(1, "syntax", 2, 2, 0, 1);
  AddEnvServer(after, "w7", 100, v1::SERVING_STATE_SERVING);
  cm.Update(after);
  text = metrics.Render();
  EXPECT_EQ(SeriesValue(text, "envtune_env_server_steps_per_second" + w7), 100) << text;
  EXPECT_TRUE(std::isnan(SeriesValue(text, "envtune_env_server_steps_per_second" + w8))) << text;
  EXPECT_TRUE(std::isnan(SeriesValue(text, "envtune_env_server_draining" + w8))) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_servers{state=\"draining\"}"), 0) << text;
}

TEST(RoleMetricsTest, DisabledRegistryIsANoOp) {
  // Metrics::Global() is off until a role serves it: updates must be harmless.
  CoordinatorMetrics cm(Metrics::Global());
  cm.Update(MakeStatus(1, "syntax", 1, 1, 0, 1));
  EXPECT_EQ(Metrics::Global().Render().find("envtune_learner_step"), std::string::npos);
  std::ostringstream log;
  EXPECT_TRUE(StartRoleMetrics("actor", "127.0.0.1", -1, log).ok());
  EXPECT_TRUE(log.str().empty());
  EXPECT_FALSE(Metrics::Global().enabled());
}

}  // namespace
}  // namespace envtune
