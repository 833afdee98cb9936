// LoadTracker: the Step rate and latency percentiles over a sliding window, calls in flight.
#include "envserver/load_tracker.h"

#include "gtest/gtest.h"

namespace envtune {
namespace {

TEST(LoadTrackerTest, RateAndPercentilesOverTheWindow) {
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  LoadTracker load(absl::Seconds(10), 100'000, t0 - absl::Minutes(1));
  v1::EnvServerLoad empty = load.Snapshot(t0);
  EXPECT_EQ(empty.steps_per_s(), 0);
  EXPECT_EQ(empty.step_latency_p50_ms(), 0);
  EXPECT_EQ(empty.window_ms(), 10'000u);
  // 100 steps in the first second with latencies 1..100 ms.
  for (int i = 1; i <= 100; ++i) load.StepFinished(absl::Milliseconds(i), t0 + absl::Milliseconds(10 * i));
  v1::EnvServerLoad now = load.Snapshot(t0 + absl::Seconds(1));
  EXPECT_DOUBLE_EQ(now.steps_per_s(), 10.0);  // 100 steps / 10 s window
  EXPECT_DOUBLE_EQ(now.step_latency_p50_ms(), 50);
  EXPECT_DOUBLE_EQ(now.step_latency_p99_ms(), 99);
  EXPECT_EQ(now.steps_total(), 100u);
  // 11 s later they have left the window; the total stays.
  v1::EnvServerLoad later = load.Snapshot(t0 + absl::Seconds(12));
  EXPECT_EQ(later.steps_per_s(), 0);
  EXPECT_EQ(later.step_latency_p99_ms(), 0);
  EXPECT_EQ(later.steps_total(), 100u);
}

TEST(LoadTrackerTest, AYoungServerDividesByItsAge) {
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  LoadTracker load(absl::Seconds(10), 100'000, t0);
  for (int i = 0; i < 40; ++i) load.StepFinished(absl::Milliseconds(1), t0 + absl::Seconds(1));
  EXPECT_DOUBLE_EQ(load.Snapshot(t0 + absl::Seconds(2)).steps_per_s(), 20.0);  // 40 in 2 s
  EXPECT_DOUBLE_EQ(load.Snapshot(t0 + absl::Milliseconds(1500)).steps_per_s(), 40.0 / 1.5);
}

TEST(LoadTrackerTest, InflightAndEpisodes) {
  LoadTracker load;
  load.RpcStarted();
  load.RpcStarted();
  load.RpcFinished();
  load.EpisodeStarted();
  v1::EnvServerLoad now = load.Snapshot(absl::Now());
  EXPECT_EQ(now.inflight_steps(), 1u);
  EXPECT_EQ(now.episodes_started_total(), 1u);
}

TEST(LoadTrackerTest, SampleCapKeepsTheNewest) {
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  LoadTracker load(absl::Seconds(10), /*max_samples=*/4, t0);
  for (int i = 1; i <= 8; ++i) load.StepFinished(absl::Milliseconds(i * 10), t0);
  v1::EnvServerLoad now = load.Snapshot(t0);
  EXPECT_DOUBLE_EQ(now.step_latency_p50_ms(), 60);  // samples 50, 60, 70, 80
  EXPECT_EQ(now.steps_total(), 8u);
}

}  // namespace
}  // namespace envtune
