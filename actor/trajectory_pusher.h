// TrajectoryPusher: one long-lived LearnerService.PushTrajectories client stream per actor.
//
// Flow control: at most one write is outstanding. Push() returns when gRPC has taken the
// message; while the learner holds its reads (trajectory queue full) HTTP/2 flow control keeps
// the write pending and Push() blocks, up to write_timeout (then DEADLINE_EXCEEDED and the
// stream is cancelled: a write that did not complete may or may not have arrived).
// If the stream breaks (the learner restarted or ended it), the next Push opens a new stream and
// retries the message, with exponential backoff and jitter, until retry_deadline after the Push
// began, when the stream ended with UNAVAILABLE, CANCELLED or OK; other final codes (INVALID_ARGUMENT, FAILED_PRECONDITION, ...) are returned with the
// learner's message. Errors name the learner and the phase.
// Thread safety: thread-safe (pushes are serialised).
#ifndef ENVTUNE_ACTOR_TRAJECTORY_PUSHER_H_
#define ENVTUNE_ACTOR_TRAJECTORY_PUSHER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "envtune/v1/learner.grpc.pb.h"
#include "grpcpp/channel.h"

namespace envtune {

struct TrajectoryPusherOptions {
  absl::Duration write_timeout = absl::Minutes(10);
  absl::Duration retry_deadline = absl::Minutes(2);  // outlasts a learner restart
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(2);
};

class TrajectoryPusher {
 public:
  TrajectoryPusher(std::shared_ptr<grpc::Channel> channel, std::string learner_name,
                   TrajectoryPusherOptions options = {});
  ~TrajectoryPusher();  // cancels an open stream and waits for it to end

  absl::Status Push(const v1::Trajectory& trajectory);
  // Half-closes the stream and waits up to `timeout` for the learner's answer (totals of this
  // stream only). OK with an empty response when no stream is open.
  absl::StatusOr<v1::PushTrajectoriesResponse> Close(absl::Duration timeout);

  uint64_t pushed() const { return pushed_.load(); }

 private:
  class Stream;

  const std::string learner_name_;
  const TrajectoryPusherOptions options_;
  std::unique_ptr<v1::LearnerService::Stub> stub_;
  absl::Mutex mu_;
  std::unique_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> pushed_{0};
};

}  // namespace envtune

#endif  // ENVTUNE_ACTOR_TRAJECTORY_PUSHER_H_
