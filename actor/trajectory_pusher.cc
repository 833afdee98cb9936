#include "actor/trajectory_pusher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"

namespace envtune {

// One PushTrajectories call. A hold keeps the call open between writes made from outside
// reactions; it is released exactly once (after WritesDone, or when the stream broke).
class TrajectoryPusher::Stream final : public grpc::ClientWriteReactor<v1::Trajectory> {
 public:
  explicit Stream(v1::LearnerService::Stub* stub) {
    stub->async()->PushTrajectories(&context_, &response_, this);
    AddHold();
    StartCall();
  }

  ~Stream() override {
    Cancel();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

  // OK once gRPC took the message; Unavailable-like "broken" when the write failed (see
  // final_status()); DeadlineExceeded when it did not complete in time (stream cancelled).
  absl::Status Write(const v1::Trajectory& trajectory, absl::Duration timeout) {
    {
      absl::MutexLock lock(&mu_);
      if (done_ || broken_) return absl::AbortedError("stream already ended");
      message_ = trajectory;
      writing_ = true;
    }
    StartWrite(&message_);
    absl::MutexLock lock(&mu_);
    auto written = [this] { return !writing_ || done_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&written), timeout)) {
      broken_ = true;
      mu_.Unlock();
      Cancel();
      mu_.Lock();
      return absl::DeadlineExceededError("the learner did not take the trajectory in time");
    }
    if (write_ok_ && !writing_) return absl::OkStatus();
    broken_ = true;
    return absl::AbortedError("stream broken");
  }

  // Waits for the call to end (cancelling it after `timeout`) and returns its final status.
  absl::Status WaitDone(absl::Duration timeout) {
    ReleaseHold();
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&done_), timeout)) {
      mu_.Unlock();
      context_.TryCancel();
      mu_.Lock();
      mu_.Await(absl::Condition(&done_));
    }
    return final_;
  }

  absl::StatusOr<v1::PushTrajectoriesResponse> HalfCloseAndWait(absl::Duration timeout) {
    bool can_close;
    {
      absl::MutexLock lock(&mu_);
      can_close = !done_ && !broken_;
      closing_ = true;
    }
    if (can_close) StartWritesDone();
    absl::Status status = WaitDone(timeout);
    if (!status.ok()) return status;
    return response_;
  }

  bool broken() {
    absl::MutexLock lock(&mu_);
    return broken_ || done_;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    write_ok_ = ok;
  }
  void OnWritesDoneDone(bool ok) override {}
  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    final_ = FromGrpcStatus(status);
    done_ = true;
  }

 private:
  void ReleaseHold() {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      release = !hold_released_;
      hold_released_ = true;
    }
    if (release) RemoveHold();
  }
  void Cancel() {
    context_.TryCancel();
    ReleaseHold();
  }

  grpc::ClientContext context_;
  v1::PushTrajectoriesResponse response_;
  v1::Trajectory message_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_ ABSL_GUARDED_BY(mu_);
};

TrajectoryPusher::TrajectoryPusher(std::shared_ptr<grpc::Channel> channel,
                                   std::string learner_name, TrajectoryPusherOptions options)
    : learner_name_(std::move(learner_name)),
      options_(options),
      stub_(v1::LearnerService::NewStub(std::move(channel))) {}

TrajectoryPusher::~TrajectoryPusher() {
  absl::MutexLock lock(&mu_);
  stream_.reset();
}

absl::Status TrajectoryPusher::Push(const v1::Trajectory& trajectory) {
  absl::MutexLock lock(&mu_);
  const std::string peer = absl::StrCat("learner ", learner_name_);
  absl::Status last;
  const absl::Time begin = absl::Now();
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    if (stream_ == nullptr || stream_->broken()) {
      stream_.reset();
      stream_ = std::make_unique<Stream>(stub_.get());
    }
    absl::Status written = stream_->Write(trajectory, options_.write_timeout);
    if (written.ok()) {
      pushed_.fetch_add(1);
      return absl::OkStatus();
    }
    const std::string phase = absl::StrCat(
        "PushTrajectories ", trajectory.episode_id(), ", attempt ", attempt, " in ",
        absl::FormatDuration(absl::Trunc(absl::Now() - begin, absl::Milliseconds(100))));
    if (absl::IsDeadlineExceeded(written)) {
      stream_.reset();
      return absl::DeadlineExceededError(absl::StrCat(
          peer, " (", phase, "): not accepted within ",
          absl::FormatDuration(options_.write_timeout), " (learner holding reads?)"));
    }
    absl::Status final_status = stream_->WaitDone(absl::Seconds(10));
    stream_.reset();
    const absl::StatusCode code = final_status.code();
    last = absl::Status(
        code == absl::StatusCode::kOk ? absl::StatusCode::kUnavailable : code,
        absl::StrCat(peer, " (", phase, "): stream ended: ",
                     final_status.ok() ? std::string("OK (learner closed it)")
                                       : std::string(final_status.message())));
    if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kCancelled &&
        code != absl::StatusCode::kOk) {
      return last;
    }
    // Backoff x 0.5..1.5: actors whose streams broke together do not come back together.
    const absl::Duration sleep = Jittered(backoff);
    if (absl::Now() + sleep - begin >= options_.retry_deadline) return last;
    absl::SleepFor(sleep);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<v1::PushTrajectoriesResponse> TrajectoryPusher::Close(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return v1::PushTrajectoriesResponse();
  absl::StatusOr<v1::PushTrajectoriesResponse> out = stream_->HalfCloseAndWait(timeout);
  stream_.reset();
  if (!out.ok()) {
    return absl::Status(out.status().code(), absl::StrCat("learner ", learner_name_,
                                                          " (PushTrajectories close): ",
                                                          out.status().message()));
  }
  return out;
}

}  // namespace envtune
