// Policy weights on the wire: a v1::WeightsHeader (every parameter's HF checkpoint name, dtype
// "F32"/"BF16", shape and byte size, in state-dict order, plus the model's config.json) followed
// by the tensors' raw little-endian bytes in header order. This is what LearnerService::
// GetWeights streams (learner/weight_store.h). The learner publishes per-tensor host buffers
// (SnapshotPolicyWeights); an actor receives the stream chunk by chunk straight into per-tensor
// buffers allocated from the header (WeightsReceiver) and builds or refreshes its policy from
// them. Neither side assembles a whole-model buffer. SerializePolicyWeights and the
// string_view overloads (one contiguous buffer) remain for tests, tools and the benchmark.
//
// No torch types in this header (the policy is forward-declared), so actor code may include it.
// Thread safety: free functions. Serialising reads the parameters and refreshing writes them:
// neither may race with training/generation on the same policy.
#ifndef ENVTUNE_MODEL_WEIGHTS_IO_H_
#define ENVTUNE_MODEL_WEIGHTS_IO_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "envtune/v1/learner.pb.h"

namespace envtune {

class PolicyImpl;

struct PolicyWeights {
  v1::WeightsHeader header;
  std::string data;  // raw bytes, concatenated in header order
};

// Every parameter of `policy` copied into its own host buffer (dtype and header as for
// SerializePolicyWeights below). tensors[i] views the bytes of header.tensors(i); `storage` owns
// them (opaque; shared so a snapshot can outlive this call in a store). With
// `async_device_copy` and a CUDA policy the buffers are pinned and the device-to-host copies are
// only queued on the device's current stream: the bytes may be read only after that stream has
// reached this point (the caller synchronises, e.g. with an event); the training thread does
// not wait for the copy. Otherwise the copies are complete on return.
struct WeightBuffers {
  v1::WeightsHeader header;
  std::vector<std::string_view> tensors;
  std::shared_ptr<const void> storage;
};
absl::StatusOr<WeightBuffers> SnapshotPolicyWeights(PolicyImpl& policy,
                                                    const std::string& dtype = "",
                                                    bool async_device_copy = false);

// Snapshots of one policy, version after version, that recycle host buffers: a snapshot's
// buffers are overwritten by a later Snapshot once every holder released them (the store moved
// on and no GetWeights stream reads them), so steady state is two host copies (the published
// one and a spare) written without fresh page faults or pinning. Same arguments and errors as
// SnapshotPolicyWeights. Thread-compatible.
class PolicySnapshotter {
 public:
  PolicySnapshotter(std::string dtype, bool async_device_copy);
  ~PolicySnapshotter();
  absl::StatusOr<WeightBuffers> Snapshot(PolicyImpl& policy);
  int64_t reused() const;  // snapshots written into recycled buffers

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serialises every parameter of `policy` (PolicyImpl::StateDict order; tied models carry no
// lm_head.weight) converted to `dtype` ("F32" or "BF16"; "" = F32 for fp32 policies and BF16
// otherwise). header.config_json is the policy's config.json with torch_dtype matching `dtype`.
// Errors: InvalidArgument (unknown dtype), Internal (LibTorch failure).
absl::StatusOr<PolicyWeights> SerializePolicyWeights(PolicyImpl& policy,
                                                     const std::string& dtype = "");

// Checks a header against a data size: known dtypes, non-negative shapes whose element count
// times the dtype size equals byte_size, byte sizes adding up to total_bytes and data_size,
// no duplicate names. The message names the offending tensor.
absl::Status ValidateWeightsHeader(const v1::WeightsHeader& header, uint64_t data_size);

struct WeightsLoadOptions {
  // Parameter dtype of the built policy: "" = from the header (BF16 if every tensor is BF16,
  // else float32), or "float32" / "bfloat16" / "float16".
  std::string dtype;
  std::string device = "cpu";  // a LibTorch device string: "cpu", "cuda", "cuda:1"
};

// Builds a new policy (eval mode) from header.config_json and the tensors.
// Errors: InvalidArgument (bad header/config/device), NotFound (a parameter is missing),
// Internal (LibTorch failure).
absl::StatusOr<std::shared_ptr<PolicyImpl>> BuildPolicyFromWeights(
    const v1::WeightsHeader& header, std::string_view data, const WeightsLoadOptions& options = {});

// Copies the tensors into an existing policy in place (dtype/device converted). The header's
// config must describe the same architecture (FailedPrecondition otherwise: build a new one).
absl::Status RefreshPolicyFromWeights(PolicyImpl& policy, const v1::WeightsHeader& header,
                                      std::string_view data);

// Receives a GetWeights stream: Create allocates one host tensor per header entry (pinned when
// the load device is CUDA, so the copy to the GPU is a plain DMA), Append writes each chunk's
// bytes straight into the tensors in header order, and Build / Refresh load them into a policy.
// Reset reuses the tensors for a later version of the same layout (no reallocation per version).
// Thread-compatible (one stream at a time).
class WeightsReceiver {
 public:
  // InvalidArgument for a header ValidateWeightsHeader rejects (against its own total_bytes).
  static absl::StatusOr<std::unique_ptr<WeightsReceiver>> Create(v1::WeightsHeader header,
                                                                 WeightsLoadOptions options = {});
  ~WeightsReceiver();

  // Starts a new stream with `header`, keeping the buffers when every tensor's name, dtype and
  // shape is unchanged. InvalidArgument for a bad header.
  absl::Status Reset(v1::WeightsHeader header);
  // The next bytes of the stream. InvalidArgument when they go past the header's total_bytes.
  absl::Status Append(std::string_view bytes);
  uint64_t received() const;
  uint64_t total() const;
  const v1::WeightsHeader& header() const;
  bool pinned() const;  // the buffers are pinned host memory (CUDA load device)

  // REQUIRES: received() == total() (FailedPrecondition otherwise). Errors as
  // BuildPolicyFromWeights / RefreshPolicyFromWeights below.
  absl::StatusOr<std::shared_ptr<PolicyImpl>> Build() const;
  absl::Status Refresh(PolicyImpl& policy) const;

 private:
  struct Impl;
  explicit WeightsReceiver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when `header`'s config_json describes the same architecture as `policy` (same shapes),
// i.e. RefreshPolicyFromWeights can be used.
bool SameArchitecture(const PolicyImpl& policy, const v1::WeightsHeader& header);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_WEIGHTS_IO_H_
