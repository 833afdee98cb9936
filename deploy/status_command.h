// `envtune status --coordinator HOST:PORT [--json]`: one GetStatus call rendered as a table
// (or the ClusterStatus as JSON).
#ifndef ENVTUNE_DEPLOY_STATUS_COMMAND_H_
#define ENVTUNE_DEPLOY_STATUS_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"
#include "envtune/v1/coordinator.pb.h"

namespace envtune {

absl::StatusOr<v1::ClusterStatus> FetchStatus(const std::string& coordinator, int timeout_ms);
std::string RenderStatusTable(const v1::ClusterStatus& status);
std::string RenderStatusJson(const v1::ClusterStatus& status);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_STATUS_COMMAND_H_
