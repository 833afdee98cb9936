#include "learner/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "learner/distributed.h"
#include "learner/optimizer.h"
#include "learner/trainer.h"
#include "model/qwen2.h"
#include "model/safetensors.h"

namespace envtune {

absl::Status WriteOptimizerState(const PolicyOptimizer& optimizer, const std::string& dir,
                                 int rank, int world_size) {
  absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> tensors =
      optimizer.StateTensors();
  if (!tensors.ok()) return tensors.status();
  const std::string path =
      absl::StrCat(dir, "/", OptimizerFileName(optimizer.sharded(), rank, world_size));
  try {
    return WriteSafetensors(path, *tensors);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("writing ", path, ": ", e.what_without_backtrace()));
  }
}

absl::Status ReadOptimizerState(PolicyOptimizer& optimizer, const CheckpointInfo& info, int rank,
                                int world_size) {
  if (info.sharded != optimizer.sharded() || (info.sharded && info.world_size != world_size)) {
    auto describe = [](bool sharded, int world) {
      return sharded ? absl::StrCat("ZeRO-2 over ", world, " ranks")
                     : std::string("replicated (zero_stage 0 or one rank)");
    };
    return absl::FailedPreconditionError(absl::StrCat(
        info.dir, ": written by a learner whose optimizer was ",
        describe(info.sharded, info.world_size), "; this one is ",
        describe(optimizer.sharded(), world_size),
        " (resume with the same learner.distributed.world_size and learner.zero_stage)"));
  }
  const std::string path =
      absl::StrCat(info.dir, "/", OptimizerFileName(info.sharded, rank, world_size));
  absl::StatusOr<TensorMap> tensors = ReadSafetensors(path);
  if (!tensors.ok()) return tensors.status();
  absl::Status s = optimizer.LoadStateTensors(*tensors);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  return absl::OkStatus();
}

absl::Status LoadPolicyWeights(PolicyImpl& policy, const std::string& dir) {
  absl::StatusOr<TensorMap> tensors = ReadSafetensorsDir(dir);
  if (!tensors.ok()) return tensors.status();
  absl::Status s = policy.LoadStateDict(*tensors);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(dir, ": ", s.message()));
  return absl::OkStatus();
}

std::string TorchRngState() {
  try {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    at::Tensor state = gen.get_state().contiguous();
    return absl::BytesToHexString(absl::string_view(
        reinterpret_cast<const char*>(state.data_ptr<uint8_t>()), state.numel()));
  } catch (const c10::Error&) {
    return "";
  }
}

absl::Status SetTorchRngState(const std::string& hex) {
  if (hex.empty()) return absl::OkStatus();
  const bool hex_digits = std::all_of(hex.begin(), hex.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
  if (hex.size() % 2 != 0 || !hex_digits) {
    return absl::InvalidArgumentError("torch_rng: not a hex string");
  }
  const std::string bytes = absl::HexStringToBytes(hex);
  try {
    at::Tensor state = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
    std::memcpy(state.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("torch_rng: not a CPU generator state: ", e.what_without_backtrace()));
  }
}

absl::Status SaveLearnerCheckpoint(Trainer& trainer, Distributed* distributed,
                                   const std::string& checkpoint_dir, const std::string& label,
                                   uint64_t policy_version, int keep) {
  const int rank = distributed != nullptr ? distributed->rank() : 0;
  const int world = distributed != nullptr ? distributed->world_size() : 1;
  PolicyOptimizer& optimizer = trainer.optimizer();
  const std::string tmp = absl::StrCat(checkpoint_dir, "/.tmp-", label);
  absl::Status mine = absl::OkStatus();
  if (rank == 0) {
    absl::StatusOr<std::string> begun = BeginCheckpoint(checkpoint_dir, label);
    mine = begun.status();
  }
  if (world > 1) {
    // The temp directory exists before any rank writes into it.
    if (absl::Status s = distributed->Barrier("checkpoint"); !s.ok()) return s;
  }
  if (mine.ok() && rank == 0) mine = SavePolicy(trainer.policy(), tmp);
  if (mine.ok() && (rank == 0 || optimizer.sharded())) {
    mine = WriteOptimizerState(optimizer, tmp, rank, world);
  }
  double failures = mine.ok() ? 0.0 : 1.0;
  if (world > 1) {
    try {
      std::vector<at::Tensor> flag{
          torch::full({1}, failures, torch::TensorOptions().device(distributed->device()))};
      if (absl::Status s = distributed->AllReduceSum(flag, "checkpoint"); !s.ok()) return s;
      failures = flag[0].item<double>();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("checkpoint: ", e.what_without_backtrace()));
    }
  }
  if (rank != 0) return mine;
  if (failures > 0) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    if (!mine.ok()) return mine;
    return absl::UnavailableError(absl::StrCat("checkpoint ", label, ": ", failures,
                                               " rank(s) failed to write their optimizer shard"));
  }
  CheckpointInfo info;
  info.step = trainer.steps();
  info.policy_version = policy_version;
  info.world_size = world;
  info.sharded = optimizer.sharded();
  info.torch_rng = TorchRngState();
  return CommitCheckpoint(checkpoint_dir, label, tmp, &info, keep);
}

absl::StatusOr<CheckpointInfo> RestoreLearnerCheckpoint(Trainer& trainer,
                                                        Distributed* distributed,
                                                        const std::string& dir) {
  const int rank = distributed != nullptr ? distributed->rank() : 0;
  const int world = distributed != nullptr ? distributed->world_size() : 1;
  absl::StatusOr<CheckpointInfo> info = ReadCheckpointInfo(dir);
  if (!info.ok()) return info.status();
  if (absl::Status s = LoadPolicyWeights(trainer.policy(), dir); !s.ok()) return s;
  if (absl::Status s = ReadOptimizerState(trainer.optimizer(), *info, rank, world); !s.ok()) {
    return s;
  }
  if (absl::Status s = SetTorchRngState(info->torch_rng); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": ", s.message()));
  }
  trainer.set_steps(info->step);
  return info;
}

}  // namespace envtune
