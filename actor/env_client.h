// EnvClient: the actor's side of EnvService over ONE channel spanning every env-server replica
// (a static list "ipv4:a:1,b:2" or "dns:///name:port", round_robin). Servers are stateless, so
// a call that fails with a transient code is retried, with bounded exponential backoff, with
// the SAME request (the same episode_state): round_robin sends it to another replica.
//
// Retried: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL (the proto says retrying elsewhere is safe).
// Not retried (returned at once): INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION and every
// other code. Every error names the peer, the phase and the attempt, e.g.
//   "env server ipv4:127.0.0.1:5001 (Step, attempt 3/3): connection refused".
// Thread safety: thread-safe; calls block the calling thread (run them on a pool).
#ifndef ENVTUNE_ACTOR_ENV_CLIENT_H_
#define ENVTUNE_ACTOR_ENV_CLIENT_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/channel.h"

namespace envtune {

struct EnvClientOptions {
  absl::Duration start_timeout = absl::Seconds(60);  // per StartEpisode attempt
  absl::Duration step_timeout = absl::Seconds(60);   // per Step attempt
  int max_attempts = 5;                               // >= 1, per call
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
};

// True for the codes EnvClient retries.
bool IsRetryableEnvCode(absl::StatusCode code);

// "host:port", "a:1,b:2" (a static list) or a gRPC target ("dns:///...", "ipv4:...") -> the
// gRPC target to dial.
std::string EnvTarget(const std::string& spec);

class EnvClient {
 public:
  // Dials `target` (see EnvTarget) with round_robin.
  explicit EnvClient(const std::string& target, EnvClientOptions options = {});
  // Uses an existing channel (tests); `name` is used in error messages.
  EnvClient(std::shared_ptr<grpc::Channel> channel, std::string name,
            EnvClientOptions options = {});

  absl::StatusOr<v1::StartEpisodeResponse> StartEpisode(const v1::StartEpisodeRequest& request);
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& request);

  // Attempts that were retried since construction (for tests and metrics).
  int64_t retries() const { return retries_.load(); }
  const std::string& name() const { return name_; }

 private:
  template <typename Request, typename Response, typename Call>
  absl::StatusOr<Response> WithRetries(const char* phase, absl::Duration timeout,
                                       const Request& request, Call call);

  const std::string name_;
  const EnvClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EnvService::Stub> stub_;
  std::atomic<int64_t> retries_{0};
};

}  // namespace envtune

#endif  // ENVTUNE_ACTOR_ENV_CLIENT_H_
