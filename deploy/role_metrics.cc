// Role metrics (see role_metrics.h).
#include "deploy/role_metrics.h"

#include <ostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/security.h"

namespace envtune {

absl::Status StartRoleMetrics(const std::string& role, const std::string& host, int port, std::ostream& log) {
  if (port < 0) return absl::OkStatus();
  Metrics& metrics = Metrics::Global();
  // HTTPS with the process's TLS (common/security.h); set before this is called.
  std::shared_ptr<const Security> security = ProcessSecurity();
  const TlsOptions* tls = security->tls() ? &security->options().tls : nullptr;
  if (absl::Status s = metrics.Serve(host, port, tls); !s.ok()) return s;
  metrics.SetRole(role);
  // Role-specific names for the RPCs that are the role's work.
  struct Alias {
    const char* role;
    const char* method;
    const char* counter;
    const char* histogram;
    const char* help;
  };
  static constexpr Alias kAliases[] = {
      {"env-server", "/envtune.v1.EnvService/Step", "envtune_env_steps_total", "envtune_env_step_duration_seconds",
       "Environment steps served, by status code"},
      {"env-server", "/envtune.v1.EnvService/StartEpisode", "envtune_env_episodes_started_total",
       "envtune_env_start_duration_seconds", "Episodes started, by status code"},
  };
  for (const Alias& a : kAliases) {
    if (role == a.role) AddRpcAlias(a.method, a.counter, a.histogram, a.help);
  }
  log << "metrics on " << (tls != nullptr ? "https://" : "http://") << host << ":" << metrics.port() << "/metrics" << std::endl;
  return absl::OkStatus();
}

void UpdateEnvServerMetrics(Metrics& metrics, const v1::EnvServerLoad& load, bool draining) {
  const std::pair<const char*, std::pair<const char*, double>> kGauges[] = {
      {kEnvInflightMetric, {"StartEpisode/Step calls being served now", load.inflight_steps()}},
      {"envtune_env_steps_per_second", {"Step RPCs per second over the load window", load.steps_per_s()}},
      {"envtune_env_step_latency_p50_seconds",
       {"Median Step latency over the load window", load.step_latency_p50_ms() / 1000.0}},
      {"envtune_env_step_latency_p99_seconds",
       {"99th percentile Step latency over the load window", load.step_latency_p99_ms() / 1000.0}},
      {"envtune_env_draining", {"1 while this env server drains", draining ? 1.0 : 0.0}},
  };
  for (const auto& [name, help_value] : kGauges) {
    absl::StatusOr<GaugeHandle> g = metrics.Gauge(name, help_value.first);
    if (g.ok()) g->Set(help_value.second);
  }
}

GaugeHandle CoordinatorMetrics::Gauge(const std::string& name, const std::string& help, const MetricLabels& labels) {
  absl::StatusOr<GaugeHandle> g = metrics_.Gauge(name, help, labels);
  return g.ok() ? *g : GaugeHandle();
}

void CoordinatorMetrics::Update(const v1::ClusterStatus& status) {
  Gauge("envtune_curriculum_stage", "Current curriculum stage (1-based)").Set(status.stage());
  Gauge("envtune_curriculum_paused", "1 while the run is paused").Set(status.paused() ? 1 : 0);
  Gauge("envtune_curriculum_finished", "1 once the curriculum has ended").Set(status.finished() ? 1 : 0);
  const char* kStageInfoHelp = "The current stage's name (value 1; 0 for stages left)";
  if (status.stage() != last_stage_ || status.stage_name() != last_stage_name_) {
    if (!last_stage_name_.empty() || last_stage_ != 0) {
      Gauge("envtune_stage_info", kStageInfoHelp,
            {{"stage", absl::StrCat(last_stage_)}, {"name", last_stage_name_}})
          .Set(0);
    }
    last_stage_ = status.stage();
    last_stage_name_ = status.stage_name();
  }
  Gauge("envtune_stage_info", kStageInfoHelp, {{"stage", absl::StrCat(status.stage())}, {"name", status.stage_name()}})
      .Set(1);
  Gauge("envtune_learner_step", "Optimiser steps the learner reported").Set(static_cast<double>(status.learner_step()));
  Gauge("envtune_policy_version", "Latest published policy version").Set(static_cast<double>(status.policy_version()));
  Gauge("envtune_leases_outstanding", "Leases handed out and not yet completed")
      .Set(static_cast<double>(status.leases_outstanding()));

  // Live workers per role; every role is set so one that drops to zero reads 0.
  static constexpr std::pair<v1::Role, const char*> kRoles[] = {
      {v1::ROLE_UNSPECIFIED, "unspecified"}, {v1::ROLE_ACTOR, "actor"},         {v1::ROLE_LEARNER, "learner"},
      {v1::ROLE_ENV_SERVER, "env_server"},   {v1::ROLE_EVALUATOR, "evaluator"},
  };
  double episodes_per_s = 0, tokens_per_s = 0;
  for (const auto& [role, name] : kRoles) {
    int count = 0;
    for (const v1::WorkerStatus& w : status.workers()) count += w.role() == role ? 1 : 0;
    Gauge("envtune_workers", "Registered, live workers by role", {{"role", name}}).Set(count);
  }
  for (const v1::WorkerStatus& w : status.workers()) {
    episodes_per_s += w.episodes_per_s();
    tokens_per_s += w.tokens_per_s();
  }
  Gauge("envtune_cluster_episodes_per_second", "Episodes per second summed over workers").Set(episodes_per_s);
  Gauge("envtune_cluster_tokens_per_second", "Tokens per second summed over workers").Set(tokens_per_s);

  // Counters follow the coordinator's running totals (which never decrease).
  const std::pair<const char*, uint64_t> kTotals[] = {
      {"envtune_episodes_completed_total", status.episodes_completed()},
      {"envtune_leases_reissued_total", status.leases_reissued()},
  };
  for (const auto& [name, total] : kTotals) {
    absl::StatusOr<CounterHandle> c =
        metrics_.Counter(name, std::string(name) == "envtune_episodes_completed_total"
                                   ? "Episodes completed (reported through CompleteLease)"
                                   : "Leases re-issued after their worker expired or the lease timed out");
    if (c.ok()) c->Increment(static_cast<double>(total) - c->Value());
  }
  UpdateEnvFleet(status);
  for (const v1::Metric& m : status.metrics()) {
    Gauge("envtune_run_metric", "Recent run metrics of the coordinator's status (rewards, accuracy, rates)",
          {{"name", m.name()}})
        .Set(m.value());
  }
}

void CoordinatorMetrics::UpdateEnvFleet(const v1::ClusterStatus& status) {
  static constexpr const char* kPerReplica[] = {
      "envtune_env_server_steps_per_second", "envtune_env_server_step_latency_p50_seconds",
      "envtune_env_server_step_latency_p99_seconds", "envtune_env_server_inflight_steps",
      "envtune_env_server_draining"};
  std::set<MetricLabels> replicas;
  int serving = 0, draining = 0;
  double fleet_steps_per_s = 0, fleet_inflight = 0;
  for (const v1::WorkerStatus& w : status.workers()) {
    if (w.role() != v1::ROLE_ENV_SERVER) continue;
    const v1::EnvServerLoad& load = w.env_load();
    const bool is_draining = w.serving_state() == v1::SERVING_STATE_DRAINING;
    (is_draining ? draining : serving) += 1;
    fleet_steps_per_s += load.steps_per_s();
    fleet_inflight += load.inflight_steps();
    MetricLabels labels{{"worker", w.worker_id()}, {"name", w.name()}, {"address", w.address()}};
    Gauge(kPerReplica[0], "Env server: Step RPCs per second over its load window", labels)
        .Set(load.steps_per_s());
    Gauge(kPerReplica[1], "Env server: median Step latency over its load window", labels)
        .Set(load.step_latency_p50_ms() / 1000.0);
    Gauge(kPerReplica[2], "Env server: 99th percentile Step latency over its load window", labels)
        .Set(load.step_latency_p99_ms() / 1000.0);
    Gauge(kPerReplica[3], "Env server: StartEpisode/Step calls being served", labels)
        .Set(load.inflight_steps());
    Gauge(kPerReplica[4], "Env server: 1 while draining (no new work)", labels)
        .Set(is_draining ? 1 : 0);
    replicas.insert(std::move(labels));
  }
  for (const MetricLabels& gone : env_replicas_) {
    if (replicas.count(gone) > 0) continue;
    for (const char* name : kPerReplica) metrics_.RemoveGauge(name, gone);
  }
  env_replicas_ = std::move(replicas);
  Gauge("envtune_env_servers", "Live env servers by serving state", {{"state", "serving"}})
      .Set(serving);
  Gauge("envtune_env_servers", "Live env servers by serving state", {{"state", "draining"}})
      .Set(draining);
  Gauge("envtune_env_fleet_steps_per_second", "Step RPCs per second summed over env servers")
      .Set(fleet_steps_per_s);
  Gauge("envtune_env_fleet_inflight_steps", "Calls being served, summed over env servers")
      .Set(fleet_inflight);
}

}  // namespace envtune
