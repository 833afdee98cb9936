// Policy weights as one flat snapshot: a v1::WeightsHeader (every parameter's HF checkpoint name,
// dtype "F32"/"BF16", shape and byte size, in state-dict order, plus the model's config.json)
// and one contiguous buffer of the tensors' raw little-endian bytes in header order. This is
// the format LearnerService::GetWeights streams (learner/weight_store.h): the learner publishes
// with SerializePolicyWeights, an actor rebuilds or refreshes its policy from it.
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "envtune/v1/learner.pb.h"

namespace envtune {

class PolicyImpl;

struct PolicyWeights {
  v1::WeightsHeader header;
  std::string data;  // raw bytes, concatenated in header order
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

// True when `header`'s config_json describes the same architecture as `policy` (same shapes),
// i.e. RefreshPolicyFromWeights can be used.
bool SameArchitecture(const PolicyImpl& policy, const v1::WeightsHeader& header);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_WEIGHTS_IO_H_
