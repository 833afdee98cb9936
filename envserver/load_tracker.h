// LoadTracker: what an env server reports as its load (coordinator.proto EnvServerLoad): RPCs in
// flight, and the rate and latency percentiles of Step RPCs over a sliding window of wall time.
//
// Time is passed in (`now`), so tests drive it without sleeping. Thread-safe (one mutex; the
// per-RPC cost is a push onto a deque).
#ifndef ENVTUNE_ENVSERVER_LOAD_TRACKER_H_
#define ENVTUNE_ENVSERVER_LOAD_TRACKER_H_

#include <atomic>
#include <cstdint>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "envtune/v1/coordinator.pb.h"

namespace envtune {

class LoadTracker {
 public:
  // REQUIRES: window > 0. At most `max_samples` Step latencies are kept (the oldest go first).
  // `start`: when the server started; a server younger than the window divides by its age (at
  // least 1 s), so a new replica's rate is not understated.
  explicit LoadTracker(absl::Duration window = absl::Seconds(10), size_t max_samples = 100'000,
                       absl::Time start = absl::Now());

  // Around every StartEpisode/Step handler: in-flight accounting.
  void RpcStarted() { inflight_.fetch_add(1); }
  void RpcFinished() { inflight_.fetch_sub(1); }
  uint32_t inflight() const { return static_cast<uint32_t>(inflight_.load()); }

  // A Step RPC finished (any status) after `latency`, at `now`.
  void StepFinished(absl::Duration latency, absl::Time now);
  void EpisodeStarted() { episodes_started_.fetch_add(1); }

  // The load over (now - window, now].
  v1::EnvServerLoad Snapshot(absl::Time now);

 private:
  struct Sample {
    absl::Time at;
    double latency_ms;
  };
  void PruneLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration window_;
  const size_t max_samples_;
  const absl::Time start_;
  std::atomic<int64_t> inflight_{0};
  std::atomic<uint64_t> episodes_started_{0};
  absl::Mutex mu_;
  std::deque<Sample> samples_ ABSL_GUARDED_BY(mu_);
  uint64_t steps_total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_LOAD_TRACKER_H_
