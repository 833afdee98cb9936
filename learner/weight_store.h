// Versioned policy weights as published by the learner for actors: an immutable snapshot per
// version (header + one host buffer per tensor, in header order; no whole-model buffer is ever
// assembled); only the latest is kept, and GetWeights streams that hold an older one keep it
// alive through its shared_ptr. Thread-safe.
#ifndef ENVTUNE_LEARNER_WEIGHT_STORE_H_
#define ENVTUNE_LEARNER_WEIGHT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "envtune/v1/learner.pb.h"

namespace envtune {

struct WeightSnapshot {
  uint64_t version = 0;
  uint64_t learner_step = 0;
  v1::WeightsHeader header;
  // tensors[i]: the raw little-endian bytes of header.tensors(i), owned by `storage` (opaque:
  // e.g. the host tensors the learner copied its parameters into). Immutable once published.
  std::vector<std::string_view> tensors;
  std::shared_ptr<const void> storage;

  // A snapshot over one contiguous buffer holding the tensors in header order (tests, and
  // callers that already have such a buffer); `data` is moved into the storage.
  static std::shared_ptr<WeightSnapshot> FromContiguous(uint64_t version, uint64_t learner_step,
                                                        v1::WeightsHeader header,
                                                        std::string data);
  uint64_t total_bytes() const;
};

class WeightStore {
 public:
  // Publishes a new version. INVALID_ARGUMENT when the version does not increase, there is not
  // one buffer per header tensor of its byte_size, or the byte sizes do not add up to
  // total_bytes.
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
