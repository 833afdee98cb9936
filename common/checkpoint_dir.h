// Learner checkpoint directories, without torch (the launcher reads them too; the tensors are
// written by learner/checkpoint.h).
//
// <checkpoint_dir>/<label>/  (label "step-<N>" or "final")
//   config.json, generation_config.json, model*.safetensors   the policy, a HF checkpoint
//   optimizer.safetensors                  replicated AdamW state (one copy for all ranks)
//   optimizer-rank<r>-of-<N>.safetensors   ZeRO-2: rank r's shard of it
//   trainer_state.json                     CheckpointInfo; written last, into the temp
//                                          directory, so a checkpoint without it is weights only
//                                          (e.g. the initial step-0) and is never resumed from
// Atomicity: a checkpoint is assembled in <checkpoint_dir>/.tmp-<label>/ and renamed into place
// in one step (an existing <label> is first renamed to .old-<label> and removed afterwards).
// A crash at any moment leaves every complete checkpoint readable; .tmp-* and .old-* leftovers
// are ignored by readers and removed by the next BeginCheckpoint.
// Thread safety: free functions; one writer per checkpoint_dir.
#ifndef ENVTUNE_COMMON_CHECKPOINT_DIR_H_
#define ENVTUNE_COMMON_CHECKPOINT_DIR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace envtune {

// trainer_state.json: what a learner needs beside the tensors to continue a run.
struct CheckpointInfo {
  std::string dir;              // filled by readers: the checkpoint directory
  int64_t step = 0;             // optimiser steps taken
  uint64_t policy_version = 1;  // the version these weights were published as
  int world_size = 1;           // learner ranks that wrote it
  bool sharded = false;         // ZeRO-2: optimizer-rank<r>-of-<world_size>.safetensors
  std::string torch_rng;        // the CPU generator's state, hex ("" = none)
};

// "optimizer.safetensors" or "optimizer-rank<r>-of-<N>.safetensors".
std::string OptimizerFileName(bool sharded, int rank, int world_size);

// Parses <dir>/trainer_state.json. NotFound when absent (weights-only or incomplete);
// InvalidArgument naming the file and field when malformed.
absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& dir);

// The complete checkpoint (with trainer_state.json) of the highest step under checkpoint_dir
// ("final" wins a tie with the same step: they hold the same state); nullopt when there is none
// (or checkpoint_dir does not exist). Unreadable trainer_state.json files are errors.
absl::StatusOr<std::optional<CheckpointInfo>> LatestCheckpoint(const std::string& checkpoint_dir);

// Creates an empty <checkpoint_dir>/.tmp-<label>/ (removing leftovers of earlier attempts and
// crashed saves) and returns its path.
absl::StatusOr<std::string> BeginCheckpoint(const std::string& checkpoint_dir,
                                            const std::string& label);

// Writes trainer_state.json into `tmp_dir` (from BeginCheckpoint; info null: a weights-only
// checkpoint, none written), then renames it to <checkpoint_dir>/<label>. Then, with keep > 0,
// removes the oldest complete "step-<N>" checkpoints beyond the newest `keep` (never "final",
// never weights-only ones such as step-0).
absl::Status CommitCheckpoint(const std::string& checkpoint_dir, const std::string& label,
                              const std::string& tmp_dir, const CheckpointInfo* info, int keep);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_CHECKPOINT_DIR_H_
