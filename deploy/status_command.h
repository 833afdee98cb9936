// `envtune status --coordinator HOST:PORT [--json]`: one GetStatus call rendered as a table
// (or the ClusterStatus as JSON). The table has the header line, every worker, the env-server
// fleet (RenderEnvFleetTable: serving state and load per replica) and the recent metrics. In
// JSON every worker carries "serving_state" and "env_load" (coordinator.proto EnvServerLoad).
#ifndef ENVTUNE_DEPLOY_STATUS_COMMAND_H_
#define ENVTUNE_DEPLOY_STATUS_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"
#include "envtune/v1/coordinator.pb.h"

namespace envtune {

absl::StatusOr<v1::ClusterStatus> FetchStatus(const std::string& coordinator, int timeout_ms);
std::string RenderStatusTable(const v1::ClusterStatus& status);
std::string RenderStatusJson(const v1::ClusterStatus& status);
// "serving", "draining", "stopped" (UNSPECIFIED reads "serving", as the coordinator treats it).
std::string ServingStateName(v1::ServingState state);
// The env-server section of the table: a summary line, then one row per env server.
std::string RenderEnvFleetTable(const v1::ClusterStatus& status);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_STATUS_COMMAND_H_
