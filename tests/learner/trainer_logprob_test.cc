// The learner's log-probs of actor-generated tokens equal the actor's behaviour log-probs
// (GenerationResult::logprobs) on CPU fp32: the acceptance bound is 1e-4 for trajectories of the
// version being trained. Trajectories of an older version are left out of the mismatch metric.
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/trainer.h"
#include "model/generate.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::TinyPolicy;

// Rolls out `n` sampled replies to random prompts with `policy` and packs them as trajectories
// of one group (reward = number of generated tokens, arbitrary but varied).
std::vector<v1::Trajectory> Rollouts(PolicyImpl& policy, int n, uint64_t version, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<std::vector<int64_t>> prompts;
  for (int i = 0; i < n; ++i) {
    std::vector<int64_t> prompt;
    int len = 3 + static_cast<int>(rng() % 6);
    for (int j = 0; j < len; ++j) prompt.push_back(static_cast<int64_t>(rng() % 60));
    prompts.push_back(prompt);
  }
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.do_sample = true;
  options.temperature = 0.7;  // behaviour log-probs are still the temperature-1 ones
  options.top_k = 20;
  options.seed = seed;
  options.stop_token_ids = {63};
  absl::StatusOr<std::vector<GenerationResult>> results = Generate(policy, prompts, options);
  EXPECT_TRUE(results.ok()) << results.status();
  std::vector<v1::Trajectory> out;
  if (!results.ok()) return out;
  for (int i = 0; i < n; ++i) {
    const GenerationResult& r = (*results)[static_cast<size_t>(i)];
    v1::Trajectory t;
    t.set_episode_id(absl::StrCat("g", seed, "/", i));
    t.set_group_id(absl::StrCat("g", seed));
    t.set_group_size(static_cast<uint32_t>(n));
    t.set_stage(1);
    t.set_policy_version(version);
    std::string mask;
    for (int64_t id : prompts[static_cast<size_t>(i)]) {
      t.add_token_ids(static_cast<int32_t>(id));
      t.add_behaviour_logprobs(0);
      mask.push_back(0);
    }
    for (size_t j = 0; j < r.token_ids.size(); ++j) {
      t.add_token_ids(static_cast<int32_t>(r.token_ids[j]));
      t.add_behaviour_logprobs(r.logprobs[j]);
      mask.push_back(1);
    }
    t.set_loss_mask(mask);
    t.set_prompt_tokens(static_cast<uint32_t>(prompts[static_cast<size_t>(i)].size()));
    t.set_reward(static_cast<double>(r.token_ids.size()));
    out.push_back(std::move(t));
  }
  return out;
}

TEST(TrainerLogprobs, LearnerMatchesGenerateWithinOneEMinus4) {
  auto policy = TinyPolicy(21, 64, /*tie=*/false, /*std=*/0.5);  // peaked, not uniform
  policy->eval();
  std::vector<v1::Trajectory> trajectories = Rollouts(*policy, 6, /*version=*/5, /*seed=*/3);
  ASSERT_FALSE(trajectories.empty());
  // An older version's rollouts (made with another policy) are not compared.
  auto old_policy = TinyPolicy(22, 64, false, 0.5);
  old_policy->eval();
  std::vector<v1::Trajectory> stale = Rollouts(*old_policy, 4, /*version=*/4, /*seed=*/4);
  double generated = 0;
  for (const auto& t : trajectories) generated += t.token_ids_size() - t.prompt_tokens();
  trajectories.insert(trajectories.end(), stale.begin(), stale.end());

  TrainerOptions options;
  options.grpo.kl_coef = 0;
  options.micro_batch_tokens = 40;  // several padded micro-batches
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 5, options.grpo);
  ASSERT_TRUE(batch.ok()) << batch.status();
  auto trainer = Trainer::Create(policy, nullptr, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->mismatch_tokens, generated);
  EXPECT_LE(m->logprob_mismatch_max, 1e-4);
  EXPECT_LE(m->logprob_mismatch_mean, 1e-5);
  EXPECT_GT(m->micro_batches, 1);
  // On-policy: the truncated-IS weights are 1 for the current version's tokens; the stale
  // ones (another policy) pull the mean away from 1.
  EXPECT_NE(m->tis_weight_mean, 1.0);
  EXPECT_DOUBLE_EQ(m->batch.staleness_max, 1.0);
}

TEST(TrainerLogprobs, SameVersionOnlyGivesUnitImportanceWeights) {
  auto policy = TinyPolicy(23, 64, false, 0.5);
  policy->eval();
  std::vector<v1::Trajectory> trajectories = Rollouts(*policy, 5, 1, 9);
  TrainerOptions options;
  options.grpo.kl_coef = 0;
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 1, options.grpo);
  ASSERT_TRUE(batch.ok());
  auto trainer = Trainer::Create(policy, nullptr, options);
  ASSERT_TRUE(trainer.ok());
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(m->tis_weight_mean, 1.0, 1e-4);
  EXPECT_LE(m->logprob_mismatch_max, 1e-4);
}

// The actor's real shape: a prompt of thousands of tokens, then two turns generated with the
// key/value cache carried over (the second prompt is the first + reply + an observation), scored
// by the learner in one pass with the group's prompt shared. rope_theta, positions and the
// vocabulary size as Qwen2.5's: over 152k logits LibTorch's fp32 log_softmax alone was off by
// ~1e-4 (a trained tiny model showed max 6e-4, mean 1.2e-4 before AccurateLogSoftmax).
TEST(TrainerLogprobs, LongPromptsAndCachedTurnsMatch) {
  ModelConfig config = trainer_testing::TinyConfig(151669, /*tie=*/false);
  config.hidden_size = 64;
  config.intermediate_size = 128;
  config.head_dim = 32;
  config.rope_theta = 1e6;
  config.max_position_embeddings = 32768;
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(config));
  policy->InitRandom(31, 0.3);
  {
    // A trained model's shape of output: a few likely tokens and a long tail of unlikely ones
    // (here: every token outside the first 64 gets logit 0, ~17 below the best; each exp() of
    // the tail is under half an ulp of a running fp32 sum near 1). Before AccurateLogSoftmax:
    // max 9.7e-4, mean 3.1e-4; after: max 4.1e-5, mean 4.9e-6.
    torch::NoGradGuard no_grad;
    policy->lm_head->weight.narrow(0, 64, config.vocab_size - 64).zero_();
    policy->lm_head->weight.narrow(0, 0, 64).mul_(3.0);
  }
  policy->eval();
  std::mt19937 rng(5);
  const int kRows = 4;
  std::vector<int64_t> prompt;
  for (int j = 0; j < 3000; ++j) prompt.push_back(static_cast<int64_t>(rng() % 60));
  std::vector<std::vector<int64_t>> prompts(kRows, prompt);
  std::vector<std::string> masks(kRows, std::string(prompt.size(), 0));
  std::vector<std::vector<float>> behaviour(kRows, std::vector<float>(prompt.size(), 0));
  std::vector<SequenceCachePtr> caches(kRows);
  GenerationOptions options;
  options.max_new_tokens = 16;
  options.temperature = 1.0;
  options.seed = 7;
  for (int turn = 0; turn < 2; ++turn) {
    absl::StatusOr<std::vector<GenerationResult>> results =
        Generate(*policy, prompts, options, nullptr, &caches);
    ASSERT_TRUE(results.ok()) << results.status();
    for (int i = 0; i < kRows; ++i) {
      const GenerationResult& r = (*results)[static_cast<size_t>(i)];
      for (size_t j = 0; j < r.token_ids.size(); ++j) {
        prompts[i].push_back(r.token_ids[j]);
        masks[i].push_back(1);
        behaviour[i].push_back(r.logprobs[j]);
      }
      for (int j = 0; j < 40; ++j) {  // the observation
        prompts[i].push_back(static_cast<int64_t>(rng() % 60));
        masks[i].push_back(0);
        behaviour[i].push_back(0);
      }
    }
    ++options.seed;
  }
  std::vector<v1::Trajectory> trajectories;
  for (int i = 0; i < kRows; ++i) {
    v1::Trajectory t;
    t.set_episode_id(absl::StrCat("long/", i));
    t.set_group_id("long");
    t.set_group_size(kRows);
    t.set_stage(1);
    t.set_policy_version(1);
    for (size_t j = 0; j < prompts[i].size(); ++j) {
      t.add_token_ids(static_cast<int32_t>(prompts[i][j]));
      t.add_behaviour_logprobs(behaviour[i][j]);
    }
    t.set_loss_mask(masks[i]);
    t.set_prompt_tokens(static_cast<uint32_t>(prompt.size()));
    t.set_reward(i);
    trajectories.push_back(std::move(t));
  }
  TrainerOptions trainer_options;
  trainer_options.grpo.kl_coef = 0;
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 1, trainer_options.grpo);
  ASSERT_TRUE(batch.ok()) << batch.status();
  auto trainer = Trainer::Create(policy, nullptr, trainer_options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GT(m->mismatch_tokens, 0);
  EXPECT_LE(m->logprob_mismatch_max, 1e-4);
  EXPECT_LE(m->logprob_mismatch_mean, 1e-5);
}

}  // namespace
}  // namespace envtune
