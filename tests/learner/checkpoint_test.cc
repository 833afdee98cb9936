// Full learner checkpoints (learner/checkpoint.h): a trainer restored from the checkpoint of
// step k takes, on the same batches, bitwise the steps the uninterrupted trainer took after
// step k: replicated fp32, replicated bf16 with fp32 masters, and ZeRO-2 over two Gloo ranks
// (threads). A checkpoint of another layout, or a corrupt optimizer file, is a clear error.
#include "learner/checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/checkpoint_dir.h"
#include "learner/distributed.h"
#include "learner/optimizer.h"
#include "learner/trainer.h"
#include "model/qwen2.h"
#include "model/safetensors.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::CloneParams;
using trainer_testing::MakeTrajectory;
using trainer_testing::RunRanks;
using trainer_testing::TinyConfig;
using trainer_testing::TinyPolicyIn;

constexpr int kStepsBefore = 2;
constexpr int kStepsAfter = 2;
constexpr int64_t kBucket = 1000;

// A different batch per step.
std::vector<v1::Trajectory> Batch(int step) {
  std::mt19937 rng(100 + step);
  std::vector<v1::Trajectory> out;
  const double rewards[] = {1.0, 0.0, 0.25, 0.5, 0.0, 1.0};
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 4; ++i) {
      out.push_back(MakeTrajectory(absl::StrCat("s", step, "g", g), i, 4,
                                   rewards[(g + i + step) % 6], 3 + g, 4 + 3 * i + g, rng));
    }
  }
  return out;
}

TrainerOptions Options(int zero_stage, torch::ScalarType dtype) {
  TrainerOptions o;
  o.lr = dtype == torch::kFloat32 ? 1e-2 : 1e-3;
  o.adam_eps = 1e-3;
  o.grpo.kl_coef = 0.1;
  o.micro_batch_tokens = 48;
  o.zero_stage = zero_stage;
  o.bucket_elements = kBucket;
  o.lr_schedule = "cosine";  // the schedule must continue from the restored step
  o.warmup_steps = 1;
  o.total_steps = 6;
  return o;
}

struct TrainRun {
  std::vector<std::vector<torch::Tensor>> params;  // per rank, after the last step
  std::vector<std::vector<double>> losses;         // per rank, per step taken
};

// `world` ranks as threads (world 1: no group). Each rank builds a trainer from the same initial
// weights; with `restore_from` non-empty it restores that checkpoint first. It then trains from
// its step count up to kStepsBefore + kStepsAfter, saving `save_label` after kStepsBefore.
TrainRun Train(int world, int zero_stage, torch::ScalarType dtype,
               const std::string& checkpoint_dir, const std::string& restore_from, bool save) {
  TrainRun run;
  run.params.resize(world);
  run.losses.resize(world);
  auto body = [&](int rank, Distributed* dist) -> absl::Status {
    auto trainer = Trainer::Create(TinyPolicyIn(5, dtype), TinyPolicyIn(6, dtype),
                                   Options(zero_stage, dtype), dist);
    if (!trainer.ok()) return trainer.status();
    if (!restore_from.empty()) {
      auto info = RestoreLearnerCheckpoint(**trainer, dist, restore_from);
      if (!info.ok()) return info.status();
      if (info->step != kStepsBefore) return absl::InternalError("restored the wrong step");
    }
    while ((*trainer)->steps() < kStepsBefore + kStepsAfter) {
      const int step = static_cast<int>((*trainer)->steps());
      absl::StatusOr<TrainBatch> batch = BuildTrainBatch(Batch(step), 1);
      if (!batch.ok()) return batch.status();
      TrainBatch shard = world > 1 ? ShardTrainBatch(*batch, world)[rank] : *batch;
      auto m = (*trainer)->Step(shard);
      if (!m.ok()) return m.status();
      run.losses[rank].push_back(m->loss);
      if (save && m->step == kStepsBefore) {
        if (absl::Status s = SaveLearnerCheckpoint(**trainer, dist, checkpoint_dir,
                                                   absl::StrCat("step-", m->step), m->step + 1,
                                                   /*keep=*/0);
            !s.ok()) {
          return s;
        }
      }
    }
    run.params[rank] = CloneParams((*trainer)->policy());
    return absl::OkStatus();
  };
  const std::vector<absl::Status> status = RunRanks(world, /*with_group=*/world > 1, body);
  for (int r = 0; r < world; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  return run;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/ckpt-", name, "-", getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

// Returns the checkpoint directory.
std::string ExpectBitwiseResume(int world, int zero_stage, torch::ScalarType dtype,
                         const std::string& name) {
  const std::string dir = FreshDir(name);
  const TrainRun whole = Train(world, zero_stage, dtype, dir, "", /*save=*/true);
  auto info = ReadCheckpointInfo(dir + "/step-2");
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return dir;
  EXPECT_EQ(info->step, kStepsBefore);
  EXPECT_EQ(info->policy_version, static_cast<uint64_t>(kStepsBefore + 1));
  EXPECT_EQ(info->world_size, world);
  EXPECT_EQ(info->sharded, zero_stage == 2 && world > 1);
  EXPECT_FALSE(info->torch_rng.empty());
  const TrainRun resumed = Train(world, zero_stage, dtype, dir, dir + "/step-2", /*save=*/false);
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(whole.params[r].size(), resumed.params[r].size()) << "rank " << r;
    EXPECT_EQ(resumed.losses[r].size(), static_cast<size_t>(kStepsAfter));
    if (whole.params[r].size() != resumed.params[r].size() ||
        resumed.losses[r].size() != static_cast<size_t>(kStepsAfter)) {
      continue;
    }
    for (int k = 0; k < kStepsAfter; ++k) {
      EXPECT_EQ(resumed.losses[r][k], whole.losses[r][kStepsBefore + k]) << "step " << k;
    }
    for (size_t i = 0; i < whole.params[r].size(); ++i) {
      EXPECT_TRUE(torch::equal(whole.params[r][i], resumed.params[r][i]))
          << "rank " << r << " parameter " << i << " differs after resuming";
    }
  }
  return dir;
}

TEST(Checkpoint, ReplicatedFp32ResumesBitwise) {
  ExpectBitwiseResume(1, 0, torch::kFloat32, "fp32");
}

TEST(Checkpoint, ReplicatedBf16WithFp32MastersResumesBitwise) {
  ExpectBitwiseResume(1, 0, torch::kBFloat16, "bf16");
}

TEST(Checkpoint, ZeroTwoOverTwoGlooRanksResumesBitwise) {
  const std::string dir = ExpectBitwiseResume(2, 2, torch::kFloat32, "zero2");
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(std::filesystem::exists(
        absl::StrCat(dir, "/step-2/optimizer-rank", r, "-of-2.safetensors")));
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/step-2/optimizer.safetensors"));
}

TEST(Checkpoint, ResumedStepsDifferFromAFreshStart) {
  // The restored optimizer state matters: a trainer given only the step-2 weights (fresh AdamW
  // moments) does not reproduce the uninterrupted steps.
  const std::string dir = FreshDir("fresh-moments");
  const TrainRun whole = Train(1, 0, torch::kFloat32, dir, "", /*save=*/true);
  auto trainer = Trainer::Create(TinyPolicyIn(5, torch::kFloat32), TinyPolicyIn(6, torch::kFloat32),
                                 Options(0, torch::kFloat32));
  ASSERT_TRUE(trainer.ok());
  ASSERT_TRUE(LoadPolicyWeights((*trainer)->policy(), dir + "/step-2").ok());
  (*trainer)->set_steps(kStepsBefore);
  for (int step = kStepsBefore; step < kStepsBefore + kStepsAfter; ++step) {
    auto batch = BuildTrainBatch(Batch(step), 1);
    ASSERT_TRUE(batch.ok());
    ASSERT_TRUE((*trainer)->Step(*batch).ok());
  }
  const auto params = CloneParams((*trainer)->policy());
  bool differs = false;
  for (size_t i = 0; i < params.size(); ++i) {
    differs |= !torch::equal(params[i], whole.params[0][i]);
  }
  EXPECT_TRUE(differs);
}

TEST(Checkpoint, AnotherLayoutIsAClearError) {
  const std::string dir = FreshDir("layout");
  Train(2, 2, torch::kFloat32, dir, "", /*save=*/true);
  // A ZeRO-2 checkpoint into one replicated rank.
  auto trainer = Trainer::Create(TinyPolicyIn(5, torch::kFloat32), TinyPolicyIn(6, torch::kFloat32),
                                 Options(0, torch::kFloat32));
  ASSERT_TRUE(trainer.ok());
  auto restored = RestoreLearnerCheckpoint(**trainer, nullptr, dir + "/step-2");
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(restored.status().message().find("ZeRO-2 over 2 ranks"), std::string::npos)
      << restored.status();

  // The layout tensor catches what the file name cannot: another bucket size.
  auto optimizer_state = ReadSafetensors(dir + "/step-2/optimizer-rank0-of-2.safetensors");
  ASSERT_TRUE(optimizer_state.ok());
  auto replicated = Trainer::Create(TinyPolicyIn(5, torch::kFloat32), TinyPolicyIn(6, torch::kFloat32),
                                    Options(0, torch::kFloat32));
  ASSERT_TRUE(replicated.ok());
  absl::Status s = (*replicated)->optimizer().LoadStateTensors(*optimizer_state);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("replicated"), std::string::npos) << s;
}

TEST(Checkpoint, CorruptOrIncompleteFilesAreErrors) {
  const std::string dir = FreshDir("corrupt");
  Train(1, 0, torch::kFloat32, dir, "", /*save=*/true);
  const std::string ckpt = dir + "/step-2";
  auto fresh = [] {
    auto t = Trainer::Create(TinyPolicyIn(5, torch::kFloat32), TinyPolicyIn(6, torch::kFloat32),
                             Options(0, torch::kFloat32));
    EXPECT_TRUE(t.ok());
    return std::move(*t);
  };
  // Truncated optimizer file.
  const std::string opt = ckpt + "/optimizer.safetensors";
  std::filesystem::resize_file(opt, std::filesystem::file_size(opt) / 2);
  auto trainer = fresh();
  auto r = RestoreLearnerCheckpoint(*trainer, nullptr, ckpt);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("optimizer.safetensors"), std::string::npos) << r.status();
  // No optimizer file at all.
  std::filesystem::remove(opt);
  r = RestoreLearnerCheckpoint(*fresh(), nullptr, ckpt);
  EXPECT_FALSE(r.ok());
  // A malformed trainer_state.json.
  std::ofstream(ckpt + "/trainer_state.json") << "{\"format\":\"envtune-learner-checkpoint/1\","
                                                 "\"step\":-3}";
  r = RestoreLearnerCheckpoint(*fresh(), nullptr, ckpt);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  // Tensors of another model.
  auto other = std::make_shared<PolicyImpl>(PolicyOptions(TinyConfig(/*vocab=*/32)));
  other->InitRandom(3);
  EXPECT_FALSE(LoadPolicyWeights(*other, ckpt).ok());
  // A malformed generator state.
  EXPECT_FALSE(SetTorchRngState("zz").ok());
  EXPECT_FALSE(SetTorchRngState("00ff").ok());
  const std::string state = TorchRngState();
  EXPECT_TRUE(SetTorchRngState(state).ok());
  const double a = torch::rand({1}).item<double>();
  EXPECT_TRUE(SetTorchRngState(state).ok());
  EXPECT_EQ(torch::rand({1}).item<double>(), a);
}

}  // namespace
}  // namespace envtune
