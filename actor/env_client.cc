#include "actor/env_client.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"

namespace envtune {

bool IsRetryableEnvCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

std::string EnvTarget(const std::string& spec) {
  if (absl::StrContains(spec, ":///") || absl::StartsWith(spec, "ipv4:") ||
      absl::StartsWith(spec, "ipv6:") || absl::StartsWith(spec, "dns:") ||
      absl::StartsWith(spec, "unix:")) {
    return spec;
  }
  std::vector<std::string> parts = absl::StrSplit(spec, ',', absl::SkipWhitespace());
  for (std::string& p : parts) p = std::string(absl::StripAsciiWhitespace(p));
  return StaticListTarget(parts);
}

EnvClient::EnvClient(const std::string& target, EnvClientOptions options)
    : EnvClient(MakeChannel(EnvTarget(target)), EnvTarget(target), options) {}

EnvClient::EnvClient(std::shared_ptr<grpc::Channel> channel, std::string name,
                     EnvClientOptions options)
    : name_(std::move(name)),
      options_(options),
      channel_(std::move(channel)),
      stub_(v1::EnvService::NewStub(channel_)) {}

template <typename Request, typename Response, typename Call>
absl::StatusOr<Response> EnvClient::WithRetries(const char* phase, absl::Duration timeout,
                                                const Request& request, Call call) {
  const int attempts = std::max(1, options_.max_attempts);
  absl::Duration backoff = options_.initial_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    grpc::ClientContext context;
    SetDeadline(context, absl::ToChronoMilliseconds(timeout));
    Response response;
    grpc::Status status = call(&context, request, &response);
    if (status.ok()) return response;
    std::string peer = context.peer();
    if (peer.empty()) peer = name_;
    last = FromGrpcStatus(status, absl::StrCat("env server ", peer),
                          absl::StrCat(phase, ", attempt ", attempt, "/", attempts));
    if (!IsRetryableEnvCode(last.code()) || attempt == attempts) break;
    retries_.fetch_add(1);
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return last;
}

absl::StatusOr<v1::StartEpisodeResponse> EnvClient::StartEpisode(
    const v1::StartEpisodeRequest& request) {
  return WithRetries<v1::StartEpisodeRequest, v1::StartEpisodeResponse>(
      "StartEpisode", options_.start_timeout, request,
      [this](grpc::ClientContext* c, const v1::StartEpisodeRequest& r,
             v1::StartEpisodeResponse* out) { return stub_->StartEpisode(c, r, out); });
}

absl::StatusOr<v1::StepResponse> EnvClient::Step(const v1::StepRequest& request) {
  return WithRetries<v1::StepRequest, v1::StepResponse>(
      "Step", options_.step_timeout, request,
      [this](grpc::ClientContext* c, const v1::StepRequest& r, v1::StepResponse* out) {
        return stub_->Step(c, r, out);
      });
}

}  // namespace envtune
