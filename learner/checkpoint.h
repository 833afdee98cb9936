// The tensor side of full learner checkpoints (layout and atomic commit: common/checkpoint_dir.h):
// the policy's weights (HF safetensors, SavePolicy), each rank's optimizer state
// (PolicyOptimizer::StateTensors), and the CPU torch generator. A learner restored from a
// checkpoint of step N takes, from the same batches, bitwise the steps the uninterrupted
// learner took after step N (tests/learner/checkpoint_test.cc; replicated and ZeRO-2).
// Bad input (missing files, other shapes, another world size or bucket layout) is an error
// naming the file, never a crash. Thread safety: free functions; callers serialise per policy.
#ifndef ENVTUNE_LEARNER_CHECKPOINT_H_
#define ENVTUNE_LEARNER_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/checkpoint_dir.h"

namespace envtune {

class Distributed;
class PolicyImpl;
class PolicyOptimizer;
class Trainer;

// Collective over `distributed` (null: one process): every rank calls it at the same point.
// Writes <checkpoint_dir>/<label> (common/checkpoint_dir.h): rank 0 the policy and, replicated,
// the optimizer state; with ZeRO-2 each rank its own shard. Committed by rank 0 once every rank
// wrote its part (one all-reduce of the failures); `keep` > 0 keeps the newest `keep` step-N
// checkpoints. Returns this rank's error, or rank 0's view of all ranks on rank 0.
absl::Status SaveLearnerCheckpoint(Trainer& trainer, Distributed* distributed,
                                   const std::string& checkpoint_dir, const std::string& label,
                                   uint64_t policy_version, int keep);

// Restores a complete checkpoint directory into `trainer` (weights, optimizer state of this rank,
// step count, CPU generator) and returns its info. The trainer must have been built as the one
// that wrote it (same initial policy and reference, options, world size and zero_stage).
absl::StatusOr<CheckpointInfo> RestoreLearnerCheckpoint(Trainer& trainer,
                                                        Distributed* distributed,
                                                        const std::string& dir);

// Writes this rank's optimizer state into `dir` as OptimizerFileName(sharded, rank, world).
// Replicated optimizers hold the same state on every rank: only rank 0 needs to call it.
absl::Status WriteOptimizerState(const PolicyOptimizer& optimizer, const std::string& dir,
                                 int rank, int world_size);

// Restores this rank's optimizer state from the checkpoint `info` describes. FailedPrecondition
// when the checkpoint's sharding or world size differs from this optimizer's (names both).
absl::Status ReadOptimizerState(PolicyOptimizer& optimizer, const CheckpointInfo& info, int rank,
                                int world_size);

// Copies the checkpoint's weights (<dir>/model*.safetensors) into `policy` (same names and
// shapes; bitwise when the dtypes agree).
absl::Status LoadPolicyWeights(PolicyImpl& policy, const std::string& dir);

// The default CPU generator's state as hex, and back (InvalidArgument on a malformed string).
std::string TorchRngState();
absl::Status SetTorchRngState(const std::string& hex);

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_CHECKPOINT_H_
