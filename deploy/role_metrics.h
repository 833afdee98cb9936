// Prometheus metrics of the roles the `envtune` binary runs (common/metrics.h underneath).
//
// CoordinatorMetrics mirrors the coordinator's ClusterStatus after every sweep:
//   envtune_curriculum_stage, envtune_curriculum_paused, envtune_curriculum_finished   gauges
//   envtune_stage_info{stage,name} 1                                the current stage's name
//   envtune_learner_step, envtune_policy_version                    gauges
//   envtune_workers{role="actor|learner|env_server|evaluator|unspecified"}   live workers
//   envtune_cluster_episodes_per_second, envtune_cluster_tokens_per_second   summed over workers
//   envtune_leases_outstanding                                      gauge
//   envtune_episodes_completed_total, envtune_leases_reissued_total counters (follow the
//                                                                    coordinator's totals)
//   envtune_run_metric{name="reward/stage2/progress",...}           the status' recent metrics
// Every role also gets envtune_role_info{role} and, when it serves gRPC, the per-method RPC
// metrics of common/metrics.h. An env server also names its work (StartRoleMetrics):
//   envtune_env_steps_total{code}, envtune_env_step_duration_seconds          (Step)
//   envtune_env_episodes_started_total{code}, envtune_env_start_duration_seconds  (StartEpisode)
#ifndef ENVTUNE_DEPLOY_ROLE_METRICS_H_
#define ENVTUNE_DEPLOY_ROLE_METRICS_H_

#include <cstdint>
#include <iosfwd>
#include <string>

#include "absl/status/status.h"
#include "common/metrics.h"
#include "envtune/v1/coordinator.pb.h"

namespace envtune {

// Starts serving Metrics::Global() on host:port for `role` unless port < 0 (metrics off); prints
// "metrics on http://HOST:PORT/metrics" to `log`.
absl::Status StartRoleMetrics(const std::string& role, const std::string& host, int port, std::ostream& log);

class CoordinatorMetrics {
 public:
  // Registers the metrics above on `metrics` (no-ops when it is disabled).
  explicit CoordinatorMetrics(Metrics& metrics) : metrics_(metrics) {}
  void Update(const v1::ClusterStatus& status);

 private:
  GaugeHandle Gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  Metrics& metrics_;
  std::string last_stage_name_;
  uint32_t last_stage_ = 0;
};

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_ROLE_METRICS_H_
