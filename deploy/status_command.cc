#include "deploy/status_command.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "envtune/v1/coordinator.grpc.pb.h"
#include "google/protobuf/util/json_util.h"

namespace envtune {

absl::StatusOr<v1::ClusterStatus> FetchStatus(const std::string& coordinator, int timeout_ms) {
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(coordinator));
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::milliseconds(timeout_ms));
  v1::ClusterStatus status;
  grpc::Status rpc = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  if (!rpc.ok()) return FromGrpcStatus(rpc, "coordinator " + coordinator, "GetStatus");
  return status;
}

std::string RenderStatusTable(const v1::ClusterStatus& s) {
  std::string out = absl::StrFormat(
      "stage %d (%s)%s%s  learner step %d  policy v%d  leases out %d  episodes %d  re-issued %d"
      "  groups in flight %d/%s\n",
      s.stage(), s.stage_name(), s.paused() ? " PAUSED" : "", s.finished() ? " FINISHED" : "",
      s.learner_step(), s.policy_version(), s.leases_outstanding(), s.episodes_completed(),
      s.leases_reissued(), s.groups_in_flight(),
      s.max_groups_in_flight() > 0 ? absl::StrCat(s.max_groups_in_flight()) : "-");
  absl::StrAppend(&out, "\n", absl::StrFormat("%-8s %-10s %-14s %-22s %9s %10s %9s %7s\n", "WORKER",
                                              "ROLE", "NAME", "ADDRESS", "LAST BEAT",
                                              "EPISODES/S", "TOKENS/S", "POLICY"));
  int64_t now_ms = absl::ToUnixMillis(absl::Now());
  for (const v1::WorkerStatus& w : s.workers()) {
    std::string role = v1::Role_Name(w.role());
    if (role.rfind("ROLE_", 0) == 0) role = role.substr(5);
    absl::StrAppend(&out, absl::StrFormat("%-8s %-10s %-14s %-22s %8.1fs %10.2f %9.1f %7d\n",
                                          w.worker_id(), role, w.name(),
                                          w.address().empty() ? "-" : w.address(),
                                          (now_ms - w.last_heartbeat_unix_ms()) / 1000.0,
                                          w.episodes_per_s(), w.tokens_per_s(),
                                          w.policy_version()));
  }
  absl::StrAppend(&out, RenderEnvFleetTable(s));
  if (s.metrics_size() > 0) {
    absl::StrAppend(&out, "\n", absl::StrFormat("%-36s %12s %8s\n", "METRIC", "VALUE", "STEP"));
    for (const v1::Metric& m : s.metrics()) {
      absl::StrAppend(&out, absl::StrFormat("%-36s %12.5g %8d\n", m.name(), m.value(), m.step()));
    }
  }
  return out;
}

std::string ServingStateName(v1::ServingState state) {
  switch (state) {
    case v1::SERVING_STATE_SERVING:
    case v1::SERVING_STATE_UNSPECIFIED:
      return "serving";
    case v1::SERVING_STATE_DRAINING:
      return "draining";
    case v1::SERVING_STATE_STOPPED:
      return "stopped";
    default:
      return "unknown";
  }
}

std::string RenderEnvFleetTable(const v1::ClusterStatus& s) {
  int serving = 0, draining = 0;
  double steps_per_s = 0;
  uint32_t inflight = 0;
  for (const v1::WorkerStatus& w : s.workers()) {
    if (w.role() != v1::ROLE_ENV_SERVER) continue;
    (w.serving_state() == v1::SERVING_STATE_DRAINING ? draining : serving) += 1;
    steps_per_s += w.env_load().steps_per_s();
    inflight += w.env_load().inflight_steps();
  }
  std::string out = absl::StrFormat(
      "\nenv servers %d (%d serving, %d draining)  %.1f steps/s  %d in flight\n", serving + draining,
      serving, draining, steps_per_s, inflight);
  if (serving + draining == 0) return out;
  absl::StrAppend(&out, absl::StrFormat("%-8s %-14s %-22s %-9s %9s %8s %8s %9s %10s\n", "WORKER",
                                        "NAME", "ADDRESS", "STATE", "STEPS/S", "P50 MS", "P99 MS",
                                        "IN FLIGHT", "STEPS"));
  for (const v1::WorkerStatus& w : s.workers()) {
    if (w.role() != v1::ROLE_ENV_SERVER) continue;
    const v1::EnvServerLoad& load = w.env_load();
    absl::StrAppend(&out, absl::StrFormat("%-8s %-14s %-22s %-9s %9.1f %8.2f %8.2f %9d %10d\n",
                                          w.worker_id(), w.name(), w.address(),
                                          ServingStateName(w.serving_state()), load.steps_per_s(),
                                          load.step_latency_p50_ms(), load.step_latency_p99_ms(),
                                          load.inflight_steps(), load.steps_total()));
  }
  return out;
}

std::string RenderStatusJson(const v1::ClusterStatus& status) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(status, &json, options);
  return json + "\n";
}

}  // namespace envtune
