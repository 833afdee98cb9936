// A small seeded learning run: a synthetic reward that favours one token (the fraction of
// generated tokens equal to it). Rolling out with Generate() and training with the GRPO trainer
// for 30 steps must raise the mean reward well above its start.
#include <numeric>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/trainer.h"
#include "model/generate.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

constexpr int64_t kVocab = 16;
constexpr int64_t kFavoured = 5;

TEST(TrainerLearning, MeanRewardRisesOnASyntheticTask) {
  torch::manual_seed(0);
  auto policy = trainer_testing::TinyPolicy(3, kVocab);
  TrainerOptions options;
  options.lr = 1e-2;
  options.grpo.kl_coef = 0;
  options.grpo.entropy_coef = 0;
  auto trainer = Trainer::Create(policy, nullptr, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const int kGroups = 4, kGroupSize = 8, kSteps = 30;
  std::vector<double> mean_rewards;
  uint64_t version = 1;
  for (int step = 0; step < kSteps; ++step) {
    std::vector<std::vector<int64_t>> prompts;
    for (int g = 0; g < kGroups; ++g) {
      for (int i = 0; i < kGroupSize; ++i) prompts.push_back({1, 2, 3 + g});
    }
    GenerationOptions gen;
    gen.max_new_tokens = 6;
    gen.seed = 1000 + static_cast<uint64_t>(step);
    policy->eval();
    absl::StatusOr<std::vector<GenerationResult>> results = Generate(*policy, prompts, gen);
    policy->train();
    ASSERT_TRUE(results.ok()) << results.status();
    std::vector<v1::Trajectory> trajectories;
    double reward_sum = 0;
    for (size_t k = 0; k < prompts.size(); ++k) {
      const GenerationResult& r = (*results)[k];
      v1::Trajectory t;
      t.set_episode_id(absl::StrCat(step, "/", k));
      t.set_group_id(absl::StrCat(step, "/g", k / kGroupSize));
      t.set_group_size(kGroupSize);
      t.set_stage(1);
      t.set_policy_version(version);
      std::string mask;
      for (int64_t id : prompts[k]) {
        t.add_token_ids(static_cast<int32_t>(id));
        t.add_behaviour_logprobs(0);
        mask.push_back(0);
      }
      int hits = 0;
      for (size_t j = 0; j < r.token_ids.size(); ++j) {
        t.add_token_ids(static_cast<int32_t>(r.token_ids[j]));
        t.add_behaviour_logprobs(r.logprobs[j]);
        mask.push_back(1);
        hits += r.token_ids[j] == kFavoured;
      }
      t.set_loss_mask(mask);
      double reward = r.token_ids.empty() ? 0.0 : static_cast<double>(hits) / r.token_ids.size();
      t.set_reward(reward);
      reward_sum += reward;
      trajectories.push_back(std::move(t));
    }
    mean_rewards.push_back(reward_sum / static_cast<double>(prompts.size()));
    absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, version, options.grpo);
    ASSERT_TRUE(batch.ok()) << batch.status();
    absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_LE(m->logprob_mismatch_max, 1e-4) << "step " << step;
    ++version;
  }
  double first = std::accumulate(mean_rewards.begin(), mean_rewards.begin() + 5, 0.0) / 5;
  double last = std::accumulate(mean_rewards.end() - 5, mean_rewards.end(), 0.0) / 5;
  EXPECT_LT(first, 0.2);
  EXPECT_GT(last, first + 0.3) << "first 5 steps " << first << ", last 5 steps " << last;
}

}  // namespace
}  // namespace envtune
