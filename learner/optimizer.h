// AdamW over a policy's parameters, in mixed precision when the policy computes in 16 bits.
//
// An fp32 policy is optimised in place, as torch::optim::AdamW does. A bf16 (or fp16) policy gets
// fp32 master copies of its parameters: AdamW's moments and updates live in fp32, gradients are
// accumulated across micro-batches in fp32 (AccumulateGradients after each backward), reduced and
// clipped in fp32, and each Step rounds the updated masters back into the policy's parameters.
// Without this, updates of size lr (1e-6 in the paper setting) round away against bf16's spacing
// (1.2e-4 near |w| = 0.02) and a bf16 run does not learn.
//
// Used by the GRPO trainer and SFT alike. Not thread-safe; one optimizer per policy.
#ifndef ENVTUNE_LEARNER_OPTIMIZER_H_
#define ENVTUNE_LEARNER_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace envtune {

class PolicyImpl;

struct AdamWSettings {
  double lr = 1e-6;
  double weight_decay = 0.01;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class PolicyOptimizer {
 public:
  // The policy's trainable parameters (requires_grad is set on them). The policy must outlive
  // the optimizer.
  static absl::StatusOr<std::unique_ptr<PolicyOptimizer>> Create(PolicyImpl& policy,
                                                                 const AdamWSettings& settings);
  ~PolicyOptimizer();

  // True when the policy is 16-bit and fp32 masters are kept.
  bool mixed_precision() const;
  // Clears the gradients (the policy's and the fp32 accumulators).
  void ZeroGrad();
  // After each backward: folds the policy's 16-bit gradients into the fp32 accumulators and
  // clears them (no-op in fp32, where .grad accumulates in fp32 already).
  void AccumulateGradients();
  // The fp32 gradients the step will apply, one per parameter (for reductions across ranks).
  std::vector<at::Tensor> Gradients();
  // Clips the gradients to max_norm (<= 0: no clipping); returns the norm before clipping.
  double ClipGradNorm(double max_norm);
  // One AdamW step at `lr`, then (mixed precision) the masters rounded into the parameters.
  void Step(double lr);
  // The fp32 weights being optimised: the masters, or the parameters themselves in fp32.
  std::vector<at::Tensor> MasterWeights();
  // fp32 master weights and AdamW moments held, in bytes (0 before the first step for moments).
  int64_t StateBytes() const;

 private:
  struct Impl;
  explicit PolicyOptimizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_OPTIMIZER_H_
