// Memory plans (learner/plan.h): parameter counts of published checkpoints and the learner's
// plan against a measured peak: a GRPO step of a ~12M-parameter model on CPU (reference, checkpointing, one
// full micro-batch) peaks within 15% of what the plan says.
#include "learner/plan.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "learner/trainer.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

// A /proc/self/status field in bytes (VmRSS, VmHWM).
int64_t StatusBytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    int64_t kb = 0;
    fields >> kb;
    return kb * 1024;
  }
  return -1;
}

// Runs first (gtest keeps file order): the process's peak is reset before the model exists.
TEST(PlanMemory, LearnerPeakOnCpuIsWithin15PercentOfThePlan) {
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";  // resets VmHWM to the current RSS (Linux >= 4.0)
  }
  const int64_t baseline = StatusBytes("VmRSS");
  ASSERT_GT(baseline, 0);
  ASSERT_LE(StatusBytes("VmHWM") - baseline, int64_t{8} << 20) << "peak reset unsupported";

  ModelConfig c = trainer_testing::TinyConfig(16384);
  c.hidden_size = 256;
  c.intermediate_size = 1024;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.eos_token_ids = {16383};
  TrainerOptions t;
  t.lr = 1e-4;
  t.grpo.kl_coef = 0.1;
  t.micro_batch_tokens = 2048;
  t.share_prefix = false;
  t.gradient_checkpointing = true;
  t.zero_stage = 0;

  LearnerPlanInputs in;
  in.model = c;
  in.dtype_bytes = 4;
  in.world_size = 1;
  in.reference = true;
  in.micro_batch_tokens = t.micro_batch_tokens;
  in.score_chunk_size = t.score_chunk_size;
  in.gradient_checkpointing = true;
  const RolePlan plan = PlanLearner(in);

  int64_t peak = 0;
  {
    auto policy = std::make_shared<PolicyImpl>(PolicyOptions(c));
    policy->InitRandom(3, 0.02);
    auto reference = std::make_shared<PolicyImpl>(PolicyOptions(c));
    reference->InitRandom(3, 0.02);
    auto trainer = Trainer::Create(policy, reference, t);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    // 8 rows x 256 tokens: one full micro-batch of 2048 tokens.
    std::mt19937 rng(7);
    std::vector<v1::Trajectory> trajectories;
    for (int g = 0; g < 2; ++g) {
      for (int i = 0; i < 4; ++i) {
        trajectories.push_back(trainer_testing::MakeTrajectory(
            absl::StrCat("g", g), i, 4, i % 2, 64, 192, rng, c.vocab_size));
      }
    }
    absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 1, t.grpo);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (int step = 0; step < 2; ++step) {
      auto m = (*trainer)->Step(*batch);
      ASSERT_TRUE(m.ok()) << m.status();
      EXPECT_EQ(m->micro_batches, 1);
    }
    peak = StatusBytes("VmHWM") - baseline;
  }
  const double ratio = static_cast<double>(peak) / static_cast<double>(plan.total);
  std::cout << FormatPlans({plan}) << "measured peak above the baseline: "
            << static_cast<double>(peak) / (1 << 20) << " MiB (" << ratio << " of the plan)\n";
  EXPECT_GE(ratio, 0.85);
  EXPECT_LE(ratio, 1.15);
}

TEST(Plan, ParameterCountsMatchPublishedCheckpoints) {
  // Hugging Face's model cards: 7.61B (Qwen2.5-7B-Instruct), 494M (Qwen2.5-0.5B-Instruct).
  std::optional<ModelConfig> seven = KnownModelConfig("/models/Qwen2.5-7B-Instruct");
  ASSERT_TRUE(seven.has_value());
  EXPECT_EQ(ParameterCount(*seven), 7615616512);
  std::optional<ModelConfig> half = KnownModelConfig("Qwen2.5-0.5B-Instruct/");
  ASSERT_TRUE(half.has_value());
  EXPECT_EQ(ParameterCount(*half), 494032768);
  EXPECT_FALSE(KnownModelConfig("/models/Llama-9B").has_value());
  // Tiny policies: the count the module itself holds.
  for (bool tie : {false, true}) {
    auto p = trainer_testing::TinyPolicy(1, 64, tie);
    int64_t n = 0;
    for (const auto& t : p->parameters()) n += t.numel();
    EXPECT_EQ(ParameterCount(trainer_testing::TinyConfig(64, tie)), n) << tie;
  }
  // 2 x layers x kv heads x head dim x bytes: 57344 B per token for the 7B in bf16.
  EXPECT_EQ(KvBytesPerToken(*seven, 2), 57344);
}

TEST(Plan, ShardingDividesOptimizerStateAcrossRanks) {
  LearnerPlanInputs in;
  in.model = *KnownModelConfig("Qwen2.5-7B-Instruct");
  in.dtype_bytes = 2;
  in.world_size = 1;
  const RolePlan one = PlanLearner(in);
  in.world_size = 8;
  const RolePlan eight = PlanLearner(in);
  auto item = [](const RolePlan& p, const std::string& name) {
    for (const MemoryItem& i : p.items) {
      if (i.name == name) return i.bytes;
    }
    return int64_t{-1};
  };
  EXPECT_NEAR(static_cast<double>(item(eight, "AdamW moments")),
              static_cast<double>(item(one, "AdamW moments")) / 8, 1e6);
  EXPECT_EQ(item(eight, "parameters"), item(one, "parameters"));
  EXPECT_LT(eight.total, one.total);
}

}  // namespace
}  // namespace envtune
