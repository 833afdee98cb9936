// A manual clock for coordinator tests: time moves only when the test advances it.
#ifndef ENVTUNE_TESTS_COORDINATOR_FAKE_CLOCK_H_
#define ENVTUNE_TESTS_COORDINATOR_FAKE_CLOCK_H_

#include "absl/time/time.h"
#include "coordinator/coordinator.h"

namespace envtune {

class FakeClock : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

}  // namespace envtune

#endif  // ENVTUNE_TESTS_COORDINATOR_FAKE_CLOCK_H_
