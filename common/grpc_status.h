// Conversion between absl::Status and grpc::Status, used only at component boundaries.
// Codes map one to one (both follow google.rpc.Code). A transport "Stream removed" / connection
// reset is reported as UNAVAILABLE so callers retry it.
#ifndef ENVTUNE_COMMON_GRPC_STATUS_H_
#define ENVTUNE_COMMON_GRPC_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace envtune {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
// FromGrpcStatus with the peer and phase prefixed to the message, e.g.
// "env server 127.0.0.1:5001 (Step): deadline exceeded".
absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view peer,
                            std::string_view phase);

// A request field as error messages quote it: at most `max_bytes` bytes (cut on a UTF-8
// boundary), then "... (N bytes)". Keeps hostile input from growing replies and logs.
std::string Excerpt(std::string_view text, size_t max_bytes = 64);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_GRPC_STATUS_H_
