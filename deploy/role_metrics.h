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
//   The env-server fleet, one series per live replica (removed when it leaves):
//   envtune_env_server_steps_per_second{worker,name,address}        Step rate over its window
//   envtune_env_server_step_latency_p50_seconds{...}, ..._p99_seconds   Step latency percentiles
//   envtune_env_server_inflight_steps{...}                          calls being served
//   envtune_env_server_draining{...}                                1 while draining
//   envtune_env_servers{state="serving|draining"}                   replicas by state
//   envtune_env_fleet_steps_per_second, envtune_env_fleet_inflight_steps   summed over replicas
// Every role also gets envtune_role_info{role} and, when it serves gRPC, the per-method RPC
// metrics of common/metrics.h. An env server also names its work (StartRoleMetrics):
//   envtune_env_steps_total{code}, envtune_env_step_duration_seconds          (Step)
//   envtune_env_episodes_started_total{code}, envtune_env_start_duration_seconds  (StartEpisode)
// An env server also exports its own load (EnvServerMetrics, every second), the metrics the
// Kubernetes HorizontalPodAutoscaler scales on (deploy/k8s/base/envserver-hpa.yaml):
//   envtune_env_inflight_steps                 StartEpisode/Step calls being served now
//   envtune_env_steps_per_second               Step rate over the load window
//   envtune_env_step_latency_p50_seconds, envtune_env_step_latency_p99_seconds
//   envtune_env_draining                       1 while draining
#ifndef ENVTUNE_DEPLOY_ROLE_METRICS_H_
#define ENVTUNE_DEPLOY_ROLE_METRICS_H_

#include <cstdint>
#include <iosfwd>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "common/metrics.h"
#include "envtune/v1/coordinator.pb.h"

namespace envtune {

// Starts serving Metrics::Global() on host:port for `role` unless port < 0 (metrics off), over
// HTTPS when ProcessSecurity() has TLS; prints "metrics on http[s]://HOST:PORT/metrics" to `log`.
absl::Status StartRoleMetrics(const std::string& role, const std::string& host, int port, std::ostream& log);

// The metric the HorizontalPodAutoscaler of deploy/k8s scales env servers on.
inline constexpr char kEnvInflightMetric[] = "envtune_env_inflight_steps";

// Mirrors an env server's load into `metrics` (no-ops when disabled).
void UpdateEnvServerMetrics(Metrics& metrics, const v1::EnvServerLoad& load, bool draining);

class CoordinatorMetrics {
 public:
  // Registers the metrics above on `metrics` (no-ops when it is disabled).
  explicit CoordinatorMetrics(Metrics& metrics) : metrics_(metrics) {}
  void Update(const v1::ClusterStatus& status);

 private:
  GaugeHandle Gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  void UpdateEnvFleet(const v1::ClusterStatus& status);
  Metrics& metrics_;
  std::set<MetricLabels> env_replicas_;  // label sets of the replicas exported last time
  std::string last_stage_name_;
  uint32_t last_stage_ = 0;
};

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_ROLE_METRICS_H_
