// A bounded queue of validated trajectories between the LearnerService streams (producers) and
// the training loop (consumer). Producers never block: TryPush fails when full and the caller
// registers a callback with NotifyWhenSpace, which the consumer runs once space frees up; the
// gRPC reactors use this to hold back StartRead() (HTTP/2 flow control then pushes back on
// actors). Thread-safe.
#ifndef ENVTUNE_LEARNER_TRAJECTORY_QUEUE_H_
#define ENVTUNE_LEARNER_TRAJECTORY_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "envtune/v1/learner.pb.h"

namespace envtune {

// Structural checks of a trajectory: matching lengths, spans in range, finite values, ids set,
// token ids in [0, vocab_size) (vocab_size 0: only >= 0). INVALID_ARGUMENT naming the episode and
// field. A trajectory that passes cannot make the trainer fail.
absl::Status ValidateTrajectory(const v1::Trajectory& trajectory, int64_t vocab_size = 0);

class TrajectoryQueue {
 public:
  explicit TrajectoryQueue(size_t capacity);

  // Adds `trajectory` unless the queue is full or closed (then returns false, trajectory kept).
  bool TryPush(v1::Trajectory& trajectory);
  // Runs `callback` (once, on the thread that frees space or closes the queue) when a TryPush
  // may succeed again. Runs it at once if there is space already.
  void NotifyWhenSpace(std::function<void()> callback);
  // Waits up to `timeout` for at least `min_count` trajectories (or close) and takes up to
  // `max_count`. Returns fewer than min_count only on timeout or close.
  std::vector<v1::Trajectory> PopBatch(size_t min_count, size_t max_count,
                                       absl::Duration timeout);
  // Wakes every waiter; further pushes fail. Idempotent.
  void Close();
  bool closed();
  size_t size();
  size_t capacity() const { return capacity_; }

 private:
  void RunSpaceCallbacks();

  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<v1::Trajectory> items_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> space_callbacks_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_TRAJECTORY_QUEUE_H_
