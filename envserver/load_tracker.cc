#include "envserver/load_tracker.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace envtune {
namespace {

// Nearest-rank percentile of sorted `v` (non-empty), q in (0, 1].
double Percentile(const std::vector<double>& v, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

}  // namespace

LoadTracker::LoadTracker(absl::Duration window, size_t max_samples, absl::Time start)
    : window_(window > absl::ZeroDuration() ? window : absl::Seconds(10)),
      max_samples_(std::max<size_t>(1, max_samples)),
      start_(start) {}

void LoadTracker::StepFinished(absl::Duration latency, absl::Time now) {
  absl::MutexLock lock(&mu_);
  ++steps_total_;
  samples_.push_back(Sample{now, absl::ToDoubleMilliseconds(latency)});
  while (samples_.size() > max_samples_) samples_.pop_front();
  PruneLocked(now);
}

void LoadTracker::PruneLocked(absl::Time now) {
  while (!samples_.empty() && samples_.front().at <= now - window_) samples_.pop_front();
}

v1::EnvServerLoad LoadTracker::Snapshot(absl::Time now) {
  v1::EnvServerLoad load;
  std::vector<double> latencies;
  {
    absl::MutexLock lock(&mu_);
    PruneLocked(now);
    latencies.reserve(samples_.size());
    for (const Sample& s : samples_) latencies.push_back(s.latency_ms);
    load.set_steps_total(steps_total_);
  }
  load.set_window_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(window_)));
  load.set_inflight_steps(inflight());
  load.set_episodes_started_total(episodes_started_.load());
  const absl::Duration span = std::clamp(now - start_, absl::Seconds(1), window_);
  load.set_steps_per_s(static_cast<double>(latencies.size()) / absl::ToDoubleSeconds(span));
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    load.set_step_latency_p50_ms(Percentile(latencies, 0.50));
    load.set_step_latency_p99_ms(Percentile(latencies, 0.99));
  }
  return load;
}

}  // namespace envtune
