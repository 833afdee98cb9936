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
