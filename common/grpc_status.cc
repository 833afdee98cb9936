#include "common/grpc_status.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace envtune {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::StatusCode code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnknown &&
      (absl::StrContains(status.error_message(), "Stream removed") ||
       absl::StrContains(status.error_message(), "Connection reset"))) {
    code = absl::StatusCode::kUnavailable;
  }
  return absl::Status(code, status.error_message());
}

absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view peer,
                            std::string_view phase) {
  absl::Status converted = FromGrpcStatus(status);
  if (converted.ok()) return converted;
  return absl::Status(converted.code(),
                      absl::StrCat(std::string(peer), " (", std::string(phase), "): ", std::string(converted.message())));
}

}  // namespace envtune
