// AdamW over a policy's parameters: mixed precision, and data parallelism replicated or sharded
// (ZeRO-2) over a learner/distributed.h group.
//
// Precision. An fp32 policy is optimised in fp32. A bf16 (or fp16) policy gets fp32 master
// weights: AdamW's moments and updates live in fp32, gradients are accumulated across
// micro-batches in fp32 (AccumulateGradients after each backward), reduced and clipped in fp32,
// and each Step rounds the updated masters back into the policy's parameters. Without this,
// updates of size lr (1e-6 in the paper setting) round away against bf16's spacing (1.2e-4 near
// |w| = 0.02) and a bf16 run does not learn.
//
// Data parallelism (OptimizerSharding):
//   replicated (no group, or shard = false): every rank keeps full fp32 gradients, masters and
//       moments; ReduceGradients all-reduces the gradients once after the last micro-batch.
//   sharded (ZeRO-2; shard = true with a group): the flattened parameters (in parameters()
//       order) are cut into buckets of `bucket_elements`; each bucket is padded to a multiple of
//       the world size and rank r owns the r-th equal slice of every bucket. A rank keeps fp32
//       masters, both moments and the fp32 gradient accumulator of its slices only (1/N of the
//       whole). AccumulateGradients reduce-scatters each bucket's gradients (fp32) into the
//       owned accumulator, so every rank must call it the same number of times per step (ranks
//       with fewer micro-batches call it with zero gradients); ClipGradNorm all-reduces one
//       squared norm; Step updates the owned slices and all-gathers them, bucket by bucket, in
//       the parameters' dtype, into every rank's full parameters. The policy's parameters and
//       16-bit gradients stay whole on every rank (what checkpoints and actors read).
// AdamW is elementwise, so both layouts take the same step up to fp32 rounding of the norm.
//
// Errors: collectives fail with the group's UNAVAILABLE/DEADLINE_EXCEEDED naming the phase;
// LibTorch failures are Internal. Not thread-safe; one optimizer per policy.
#ifndef ENVTUNE_LEARNER_OPTIMIZER_H_
#define ENVTUNE_LEARNER_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace envtune {

class PolicyImpl;
class Distributed;

struct AdamWSettings {
  double lr = 1e-6;
  double weight_decay = 0.01;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct OptimizerSharding {
  Distributed* distributed = nullptr;  // null: one process
  bool shard = false;                  // ZeRO-2 over `distributed` (any world size)
  int64_t bucket_elements = int64_t{1} << 25;  // per reduce-scatter / all-gather
};

class PolicyOptimizer {
 public:
  // The policy's trainable parameters (requires_grad is set on them). The policy and the group
  // must outlive the optimizer. Every rank's policy must hold the same weights (broadcast them
  // first): sharded masters are taken from the local copy.
  static absl::StatusOr<std::unique_ptr<PolicyOptimizer>> Create(
      PolicyImpl& policy, const AdamWSettings& settings, const OptimizerSharding& sharding = {});
  ~PolicyOptimizer();

  // True when the policy is 16-bit and fp32 masters are kept.
  bool mixed_precision() const;
  bool sharded() const;
  // Clears the gradients (the policy's and the fp32 accumulators).
  void ZeroGrad();
  // After each backward: folds the policy's gradients into the fp32 accumulators (sharded: a
  // reduce-scatter over the group) and clears the policy's 16-bit gradients.
  absl::Status AccumulateGradients();
  // After the last micro-batch: the gradient sum over ranks (replicated: one all-reduce;
  // sharded or one process: nothing left to do).
  absl::Status ReduceGradients();
  // Clips the (reduced) gradients to max_norm (<= 0: no clipping); returns the global norm
  // before clipping, identical on every rank.
  absl::StatusOr<double> ClipGradNorm(double max_norm);
  // One AdamW step at `lr`, then the policy's parameters updated from the fp32 weights
  // (sharded: all-gathered).
  absl::Status Step(double lr);
  // The fp32 weights this rank optimises: the masters or fp32 parameters (replicated), or the
  // owned slice of every bucket (sharded).
  std::vector<at::Tensor> MasterWeights();
  // Bytes this rank holds for fp32 masters and AdamW moments (moments: 0 before the first
  // step), and for the fp32 gradient accumulators beyond the policy's own .grad.
  int64_t StateBytes() const;
  int64_t GradientBytes() const;

  // Checkpointing (learner/checkpoint.h writes these into a safetensors file per rank).
  // The state this rank holds, as CPU tensors: "layout" (int64 [sharded, world size, rank,
  // parameters, elements, buckets, first bucket's elements]; world size and rank are 1 and 0
  // when replicated, whose ranks hold the same state), and per optimised tensor i (a parameter,
  // or a sharded bucket slice) "weight.<i>" (fp32 masters or shards; absent for an fp32
  // replicated policy, whose weights are its own masters), "exp_avg.<i>", "exp_avg_sq.<i>" and
  // "step.<i>" (int64 [1]) once AdamW has taken a step. Bitwise copies.
  absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> StateTensors() const;
  // Restores StateTensors' output. REQUIRES: the policy already holds the checkpoint's weights.
  // A different layout (replicated vs sharded, world size, rank, parameter count or sizes,
  // buckets) is FailedPrecondition naming both; a missing or misshapen tensor InvalidArgument.
  // On error the optimizer is unchanged.
  absl::Status LoadStateTensors(const std::map<std::string, at::Tensor>& tensors);

 private:
  struct Impl;
  explicit PolicyOptimizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_OPTIMIZER_H_
