// Versioned policy weights as published by the learner for actors: an immutable snapshot
// (header + one contiguous byte buffer) per version; only the latest is kept. Thread-safe.
#ifndef ENVTUNE_LEARNER_WEIGHT_STORE_H_
#define ENVTUNE_LEARNER_WEIGHT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "envtune/v1/learner.pb.h"

namespace envtune {

struct WeightSnapshot {
  uint64_t version = 0;
  uint64_t learner_step = 0;
  v1::WeightsHeader header;
  std::string data;  // tensors' raw bytes, concatenated in header order
};

class WeightStore {
 public:
  // Publishes a new version. INVALID_ARGUMENT when the version does not increase or the header's
  // byte sizes do not add up to data.size().
  absl::Status Publish(std::shared_ptr<const WeightSnapshot> snapshot);
  // The latest snapshot (nullptr before the first Publish).
  std::shared_ptr<const WeightSnapshot> Latest();
  uint64_t version();

 private:
  absl::Mutex mu_;
  std::shared_ptr<const WeightSnapshot> latest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_WEIGHT_STORE_H_
