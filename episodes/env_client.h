// EnvClient: the actor's side of EnvService over every env-server replica. Servers are
// stateless, so a call that fails with a transient code is retried with the SAME request (the
// same episode_state) on another replica, with exponential backoff and jitter, until
// `retry_deadline` after the call began (long enough to outlast an env server's restart by the
// launcher or Kubernetes; channels reconnect within max_reconnect_backoff, common/channels.h),
// or `max_attempts` when that is set.
//
// Replicas come from two places:
//   * the fleet: with `options.coordinator` set, a background thread polls the coordinator's
//     ListEnvServers every `fleet_refresh` and rebuilds the replica set when its generation
//     changes. Each call goes to the SERVING replica with the fewest calls in flight from this
//     client (ties round-robin), so a new replica gets work as soon as the client has seen it,
//     and a DRAINING one gets no new calls. A replica that just failed a call is avoided for
//     `failed_replica_backoff` while others serve.
//   * the fallback target: one channel over a static list ("ipv4:a:1,b:2") or DNS
//     ("dns:///name:port"), round_robin, used while the fleet knows no SERVING replica (no
//     coordinator, nothing registered yet, the coordinator unreachable before the first
//     answer). Env servers close connections after a maximum age, so a DNS channel re-resolves.
// A stale fleet (coordinator unreachable later) is kept: failures are retried elsewhere.
//
// Retried: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL (the proto says retrying elsewhere is safe).
// Not retried (returned at once): INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION and every
// other code. Every error names the peer, the phase and the attempt, e.g.
//   "env server ipv4:127.0.0.1:5001 (Step, attempt 3/3): connection refused"
//   "env server 127.0.0.1:5001 (Step, attempt 41 in 2m0s): connection refused"
// Thread safety: thread-safe; calls block the calling thread (run them on a pool).
#ifndef ENVTUNE_EPISODES_ENV_CLIENT_H_
#define ENVTUNE_EPISODES_ENV_CLIENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "envtune/v1/coordinator.grpc.pb.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/channel.h"

namespace envtune {

struct EnvClientOptions {
  absl::Duration start_timeout = absl::Seconds(60);  // per StartEpisode attempt
  absl::Duration step_timeout = absl::Seconds(60);   // per Step attempt
  // Retrying a call ends at whichever comes first: retry_deadline after it began, or
  // max_attempts attempts (0 = no count, the deadline alone).
  absl::Duration retry_deadline = absl::Minutes(2);
  int max_attempts = 0;
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);      // between attempts (x 0.5..1.5 jitter)
  // Fleet discovery: the coordinator's host:port ("" = the fallback target only).
  std::string coordinator;
  absl::Duration fleet_refresh = absl::Seconds(1);
  absl::Duration fleet_rpc_timeout = absl::Seconds(2);
  absl::Duration failed_replica_backoff = absl::Seconds(2);
};

// True for the codes EnvClient retries.
bool IsRetryableEnvCode(absl::StatusCode code);

// "host:port", "a:1,b:2" (a static list) or a gRPC target ("dns:///...", "ipv4:...") -> the
// gRPC target to dial. "" stays "" (no fallback).
std::string EnvTarget(const std::string& spec);

class EnvClient {
 public:
  // Dials `target` (see EnvTarget; "" = none, then options.coordinator is required) with
  // round_robin, and follows the fleet when options.coordinator is set.
  explicit EnvClient(const std::string& target, EnvClientOptions options = {});
  // Uses an existing fallback channel (tests); `name` is used in error messages.
  EnvClient(std::shared_ptr<grpc::Channel> channel, std::string name,
            EnvClientOptions options = {});
  // Fleet discovery through an existing coordinator channel, with an optional fallback (tests).
  EnvClient(std::shared_ptr<grpc::Channel> coordinator, std::shared_ptr<grpc::Channel> fallback,
            std::string name, EnvClientOptions options);
  ~EnvClient();

  absl::StatusOr<v1::StartEpisodeResponse> StartEpisode(const v1::StartEpisodeRequest& request);
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& request);

  // Attempts that were retried since construction (for tests and metrics).
  int64_t retries() const { return retries_.load(); }
  const std::string& name() const { return name_; }

  // Fleet view (tests, logs): the SERVING replicas calls go to now, the generation they came
  // from (0 = none yet), and calls answered per replica address (fallback calls under "").
  std::vector<std::string> ServingReplicas();
  uint64_t fleet_generation();
  std::map<std::string, int64_t> CallsByReplica();
  // Polls the coordinator once now (the background thread does it every fleet_refresh).
  absl::Status RefreshFleet();

 private:
  struct Replica {
    std::string address;
    std::unique_ptr<v1::EnvService::Stub> stub;
    std::atomic<int> inflight{0};
    absl::Time avoid_until = absl::InfinitePast();  // guarded by EnvClient::mu_
  };
  // The replica for the next attempt (null = use the fallback). `avoid` is the replica that
  // failed the previous attempt, if any.
  std::shared_ptr<Replica> Pick(const Replica* avoid);
  void FleetLoop();
  template <typename Request, typename Response, typename Call>
  absl::StatusOr<Response> WithRetries(const char* phase, absl::Duration timeout,
                                       const Request& request, Call call);

  const std::string name_;
  const EnvClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;           // fallback; may be null
  std::unique_ptr<v1::EnvService::Stub> stub_;       // on channel_
  std::unique_ptr<v1::CoordinatorService::Stub> coordinator_;  // null: no fleet
  std::atomic<int64_t> retries_{0};

  absl::Mutex mu_;
  // Every replica of the last fleet answer, by address; `serving_` are the SERVING ones.
  std::map<std::string, std::shared_ptr<Replica>> replicas_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Replica>> serving_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> calls_ ABSL_GUARDED_BY(mu_);

  absl::Notification stop_;
  std::thread fleet_thread_;
};

}  // namespace envtune

#endif  // ENVTUNE_EPISODES_ENV_CLIENT_H_
