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

// An empty stage-1 trajectory: member `index` of group `group` (of `group_size`) at `version`.
v1::Trajectory GroupMember(const std::string& group, int index, int group_size, uint64_t version) {
  v1::Trajectory t;
  t.set_episode_id(absl::StrCat(group, "/", index));
  t.set_group_id(group);
  t.set_group_size(static_cast<uint32_t>(group_size));
  t.set_stage(1);
  t.set_policy_version(version);
  return t;
}

// Appends `ids` to `t` with their behaviour log-probs (empty: 0 each) and loss-mask bit `loss`.
void Append(v1::Trajectory& t, const std::vector<int64_t>& ids, const std::vector<float>& logprobs,
            bool loss) {
  for (size_t j = 0; j < ids.size(); ++j) {
    t.add_token_ids(static_cast<int32_t>(ids[j]));
    t.add_behaviour_logprobs(logprobs.empty() ? 0.0f : logprobs[j]);
    t.mutable_loss_mask()->push_back(loss ? 1 : 0);
  }
}

// One GRPO step of a fresh trainer on `policy` (no KL) over `trajectories` at `version`.
absl::StatusOr<StepMetrics> StepOnce(std::shared_ptr<PolicyImpl> policy,
                                     const std::vector<v1::Trajectory>& trajectories,
                                     uint64_t version, TrainerOptions options = {}) {
  options.grpo.kl_coef = 0;
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, version, options.grpo);
  if (!batch.ok()) return batch.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(policy, nullptr, options);
  if (!trainer.ok()) return trainer.status();
  return (*trainer)->Step(*batch);
}

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
    v1::Trajectory t = GroupMember(absl::StrCat("g", seed), i, n, version);
    Append(t, prompts[static_cast<size_t>(i)], {}, /*loss=*/false);
    Append(t, r.token_ids, r.logprobs, /*loss=*/true);
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
  options.micro_batch_tokens = 40;  // several padded micro-batches
  absl::StatusOr<StepMetrics> m = StepOnce(policy, trajectories, 5, options);
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
  absl::StatusOr<StepMetrics> m = StepOnce(policy, trajectories, 1);
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
  std::vector<v1::Trajectory> trajectories;
  for (int i = 0; i < kRows; ++i) {
    trajectories.push_back(GroupMember("long", i, kRows, /*version=*/1));
    Append(trajectories.back(), prompt, {}, /*loss=*/false);
    trajectories.back().set_prompt_tokens(static_cast<uint32_t>(prompt.size()));
    trajectories.back().set_reward(i);
  }
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
      std::vector<int64_t> observation;
      for (int j = 0; j < 40; ++j) observation.push_back(static_cast<int64_t>(rng() % 60));
      Append(trajectories[i], r.token_ids, r.logprobs, /*loss=*/true);
      Append(trajectories[i], observation, {}, /*loss=*/false);
      prompts[i].insert(prompts[i].end(), r.token_ids.begin(), r.token_ids.end());
      prompts[i].insert(prompts[i].end(), observation.begin(), observation.end());
    }
    ++options.seed;
  }
  absl::StatusOr<StepMetrics> m = StepOnce(policy, trajectories, 1);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GT(m->mismatch_tokens, 0);
  EXPECT_LE(m->logprob_mismatch_max, 1e-4);
  EXPECT_LE(m->logprob_mismatch_mean, 1e-5);
}

}  // namespace
}  // namespace envtune
