// WeightPublisher: puts the learner policy's weights into a WeightStore as per-tensor host
// buffers (model/weights_io.h SnapshotPolicyWeights; no whole-model string), version by version.
//
// Publish() takes the snapshot on the calling (training) thread. A CPU policy is copied there.
// A CUDA policy's device-to-host copies into pinned buffers are only queued on the device's
// current stream, ahead of the next step's kernels (so the optimizer cannot change a parameter
// before it was copied), and a background thread makes the version visible in the store once an
// event recorded after the copies completes: the training thread does not wait for the
// transfer. Actors are served (GetWeights) from the stored buffers on gRPC threads. At most one
// version is in flight: Publish first waits for the previous one. Host buffers are recycled
// (model/weights_io.h PolicySnapshotter): a version's buffers are written again two versions
// later, once no stream reads them, so steady state holds two host copies of the weights.
//
// Thread-compatible: one thread (the training thread) calls Publish/Flush.
#ifndef ENVTUNE_LEARNER_WEIGHT_PUBLISHER_H_
#define ENVTUNE_LEARNER_WEIGHT_PUBLISHER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "learner/weight_store.h"
#include "model/weights_io.h"

namespace envtune {

class PolicyImpl;

class WeightPublisher {
 public:
  // `store` is not owned and must outlive the publisher. `dtype`: "" (F32 for fp32 policies,
  // else BF16), "F32" or "BF16".
  WeightPublisher(WeightStore* store, std::string dtype);
  ~WeightPublisher();  // waits for a version still in flight

  // Snapshots `policy` as `version`. Errors: the snapshot's (InvalidArgument for a bad dtype,
  // Internal for LibTorch), or the previous asynchronous publish's error.
  absl::Status Publish(PolicyImpl& policy, uint64_t version, uint64_t learner_step);
  // Waits until every version handed to Publish is in the store; the last one's error.
  absl::Status Flush();
  // Versions written into recycled host buffers (benchmarks, tests).
  int64_t recycled() const { return snapshotter_.reused(); }

 private:
  struct Pending;
  WeightStore* const store_;
  PolicySnapshotter snapshotter_;
  std::unique_ptr<Pending> pending_;
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_WEIGHT_PUBLISHER_H_
