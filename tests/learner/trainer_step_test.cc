// The GRPO trainer on tiny random policies: batch building (groups, failed episodes, advantages,
// statistics), sharding and its byte encoding, the LR schedule, and one optimisation step
// (parameters change, masked tokens and failed episodes contribute no gradient).
#include "learner/trainer.h"

#include <cmath>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/grpo.h"
#include "model/qwen2.h"
#include "model/score.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::MakeTrajectory;
using trainer_testing::MaxAbsDiff;
using trainer_testing::TinyPolicy;

TrainerOptions TestOptions() {
  TrainerOptions o;
  o.lr = 1e-3;
  o.grpo.kl_coef = 0;
  o.max_grad_norm = 1e9;  // compare raw gradients
  return o;
}

std::vector<v1::Trajectory> TwoGroups(std::mt19937& rng) {
  std::vector<v1::Trajectory> batch;
  const double rewards_a[] = {1.0, 0.0, 0.5, 0.0};
  const double rewards_b[] = {0.2, 0.9, 0.4, 0.4};
  for (int i = 0; i < 4; ++i) batch.push_back(MakeTrajectory("a", i, 4, rewards_a[i], 5, 7, rng));
  for (int i = 0; i < 4; ++i) batch.push_back(MakeTrajectory("b", i, 4, rewards_b[i], 3, 11, rng));
  return batch;
}

// Gradients left in the policy's .grad after Trainer::Step (they are not cleared after it).
std::vector<torch::Tensor> Grads(PolicyImpl& policy) {
  std::vector<torch::Tensor> out;
  for (const auto& p : policy.parameters()) out.push_back(p.grad().clone());
  return out;
}

std::vector<torch::Tensor> StepAndGrads(const std::vector<v1::Trajectory>& trajectories,
                                        StepMetrics* metrics = nullptr,
                                        TrainerOptions options = TestOptions()) {
  auto policy = TinyPolicy(7);
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 1, options.grpo);
  EXPECT_TRUE(batch.ok()) << batch.status();
  auto trainer = Trainer::Create(policy, nullptr, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  EXPECT_TRUE(m.ok()) << m.status();
  if (metrics != nullptr && m.ok()) *metrics = *m;
  return Grads(*policy);
}

double MaxGradDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, MaxAbsDiff(a[i], b[i]));
  return d;
}

double MaxGradAbs(const std::vector<torch::Tensor>& a) {
  double d = 0;
  for (const auto& g : a) d = std::max(d, g.abs().max().item<double>());
  return d;
}

TEST(BuildTrainBatch, GroupsAdvantagesAndFailedEpisodes) {
  std::mt19937 rng(1);
  std::vector<v1::Trajectory> trajectories = TwoGroups(rng);
  // A failed episode in group a: counted, not in the group statistics nor the loss.
  v1::Trajectory failed = MakeTrajectory("a", 4, 5, 100.0, 2, 2, rng);
  failed.set_failed(true);
  trajectories.push_back(failed);
  for (auto& t : trajectories) t.set_group_size(t.group_id() == "a" ? 5 : 4);
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 3);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->stats.trajectories, 9);
  EXPECT_EQ(batch->stats.failed, 1);
  EXPECT_EQ(batch->stats.groups, 2);
  ASSERT_EQ(batch->items.size(), 8u);
  std::vector<double> expected_a = GroupAdvantages({1.0, 0.0, 0.5, 0.0});
  std::vector<double> expected_b = GroupAdvantages({0.2, 0.9, 0.4, 0.4});
  for (int i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(batch->items[i].advantage, expected_a[i]);
    EXPECT_DOUBLE_EQ(batch->items[4 + i].advantage, expected_b[i]);
  }
  EXPECT_DOUBLE_EQ(batch->loss_tokens, 4 * 7 + 4 * 11);
  EXPECT_DOUBLE_EQ(batch->stats.staleness_mean, 2.0);  // version 3 - trajectory version 1
  EXPECT_DOUBLE_EQ(batch->stats.staleness_max, 2.0);
  EXPECT_NEAR(batch->stats.rewards.at("reward/stage2/reward"), (1.5 + 1.9) / 8, 1e-12);
  EXPECT_NEAR(batch->stats.rewards.at("reward/stage2/progress"), (1.5 + 1.9) / 8, 1e-12);
  EXPECT_EQ(batch->stats.rewards.count("reward/stage2/format"), 1u);
  EXPECT_EQ(batch->stats.rewards.count("reward/stage2/tool_call"), 1u);
}

TEST(BuildTrainBatch, TrajectoryWithoutLossTokensIsCountedNotTrained) {
  std::mt19937 rng(2);
  std::vector<v1::Trajectory> trajectories = TwoGroups(rng);
  v1::Trajectory silent = MakeTrajectory("b", 4, 5, 0.0, 6, 0, rng);
  trajectories.push_back(silent);
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 1);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->stats.no_loss_tokens, 1);
  EXPECT_EQ(batch->items.size(), 8u);
}

TEST(BuildTrainBatch, RejectsMalformedTrajectory) {
  std::mt19937 rng(3);
  std::vector<v1::Trajectory> trajectories = TwoGroups(rng);
  trajectories[2].mutable_behaviour_logprobs()->RemoveLast();
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, 1);
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(batch.status().message(), ::testing::HasSubstr("a/2"));
}

TEST(ShardTrainBatch, BalancedAndRoundTrips) {
  std::mt19937 rng(4);
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(TwoGroups(rng), 1);
  ASSERT_TRUE(batch.ok());
  std::vector<TrainBatch> shards = ShardTrainBatch(*batch, 3);
  ASSERT_EQ(shards.size(), 3u);
  size_t items = 0;
  for (const TrainBatch& s : shards) {
    items += s.items.size();
    EXPECT_DOUBLE_EQ(s.loss_tokens, batch->loss_tokens);
    EXPECT_FALSE(s.items.empty());
  }
  EXPECT_EQ(items, batch->items.size());
  std::string bytes = SerializeTrainBatch(*batch);
  absl::StatusOr<TrainBatch> parsed = ParseTrainBatch(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(SerializeTrainBatch(*parsed), bytes);
  EXPECT_EQ(parsed->stats.rewards, batch->stats.rewards);
  EXPECT_FALSE(ParseTrainBatch(bytes.substr(0, bytes.size() - 3)).ok());
  EXPECT_FALSE(ParseTrainBatch("garbage").ok());
}

TEST(LearningRate, Schedules) {
  TrainerOptions o;
  o.lr = 1.0;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 0), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 100), 1.0);
  o.lr_schedule = "linear";
  o.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 0), 0.25);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 3), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 10), 1.0);
  o.lr_schedule = "cosine";
  o.total_steps = 14;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 4), 1.0);
  EXPECT_NEAR(ScheduledLearningRate(o, 9), 0.55, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(o, 14), 0.1, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(o, 50), 0.1, 1e-12);
  EXPECT_TRUE(ValidateTrainerOptions(o).ok());
  o.total_steps = 2;
  EXPECT_FALSE(ValidateTrainerOptions(o).ok());
  o.lr_schedule = "exp";
  EXPECT_FALSE(ValidateTrainerOptions(o).ok());
}

TEST(Trainer, OneStepChangesParametersAndReportsMetrics) {
  std::mt19937 rng(5);
  auto policy = TinyPolicy(7);
  std::vector<torch::Tensor> before;
  for (const auto& p : policy->parameters()) before.push_back(p.detach().clone());
  TrainerOptions options = TestOptions();
  options.max_grad_norm = 1.0;
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(TwoGroups(rng), 1, options.grpo);
  ASSERT_TRUE(batch.ok());
  auto trainer = Trainer::Create(policy, nullptr, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  ASSERT_TRUE(m.ok()) << m.status();
  double changed = 0;
  size_t i = 0;
  for (const auto& p : policy->parameters()) changed = std::max(changed, MaxAbsDiff(p, before[i++]));
  EXPECT_GT(changed, 1e-4);
  EXPECT_EQ(m->step, 1);
  EXPECT_EQ((*trainer)->steps(), 1);
  EXPECT_GT(m->grad_norm, 0);
  EXPECT_TRUE(std::isfinite(m->loss));
  EXPECT_DOUBLE_EQ(m->loss_tokens, 72);
  EXPECT_DOUBLE_EQ(m->tokens, 4 * 12 + 4 * 14);
  EXPECT_GT(m->entropy, 3.0);  // near log(64) for a near-uniform random policy
  EXPECT_DOUBLE_EQ(m->clip_fraction, 0.0);  // on-policy: ratio 1
  EXPECT_DOUBLE_EQ(m->lr, 1e-3);
  EXPECT_GT(m->tokens_per_s, 0);
  // Behaviour log-probs were made up (-4): every loss token of the version-1 batch mismatches.
  EXPECT_DOUBLE_EQ(m->mismatch_tokens, 72);
  EXPECT_GT(m->logprob_mismatch_mean, 0.01);
  bool has_grad_norm = false;
  for (const auto& [name, value] : m->Named()) has_grad_norm |= name == "grad_norm";
  EXPECT_TRUE(has_grad_norm);
}

TEST(Trainer, GradientClippingBoundsTheNorm) {
  std::mt19937 rng(6);
  TrainerOptions options = TestOptions();
  options.max_grad_norm = 1e-4;
  StepMetrics m;
  std::vector<torch::Tensor> grads = StepAndGrads(TwoGroups(rng), &m, options);
  double sq = 0;
  for (const auto& g : grads) sq += g.to(torch::kFloat64).pow(2).sum().item<double>();
  EXPECT_GT(m.grad_norm, 1e-4);              // the pre-clip norm is reported
  EXPECT_NEAR(std::sqrt(sq), 1e-4, 1e-6);    // the applied gradient is clipped
}

TEST(Trainer, MaskedTokensGetNoGradient) {
  std::mt19937 rng(7);
  std::vector<v1::Trajectory> base = TwoGroups(rng);
  std::vector<torch::Tensor> reference = StepAndGrads(base);
  ASSERT_GT(MaxGradAbs(reference), 1e-6);
  // Observation tokens appended after the last generated token, and junk behaviour log-probs
  // at masked positions, change nothing.
  std::vector<v1::Trajectory> padded = base;
  for (v1::Trajectory& t : padded) {
    for (int i = 0; i < 6; ++i) {
      t.add_token_ids(static_cast<int>(rng() % 63));
      t.mutable_loss_mask()->push_back(0);
      t.add_behaviour_logprobs(-1.5f);
    }
    for (int i = 0; i < static_cast<int>(t.prompt_tokens()); ++i) t.set_behaviour_logprobs(i, -9);
  }
  std::vector<torch::Tensor> grads = StepAndGrads(padded);
  EXPECT_LT(MaxGradDiff(reference, grads), 1e-6);
  // Changing the tokens of a masked region inside the sequence does change the gradient
  // (context matters), so the comparison above is not vacuous.
  std::vector<v1::Trajectory> changed = base;
  changed[0].set_token_ids(1, (changed[0].token_ids(1) + 1) % 63);
  EXPECT_GT(MaxGradDiff(reference, StepAndGrads(changed)), 1e-6);
}

TEST(Trainer, FailedEpisodesContributeNothing) {
  std::mt19937 rng(8);
  std::vector<v1::Trajectory> base = TwoGroups(rng);
  StepMetrics base_metrics;
  std::vector<torch::Tensor> reference = StepAndGrads(base, &base_metrics);
  std::vector<v1::Trajectory> with_failed = base;
  v1::Trajectory failed = MakeTrajectory("a", 4, 5, 50.0, 4, 9, rng);  // tokens and all
  failed.set_failed(true);
  failed.set_error("env server unavailable");
  with_failed.push_back(failed);
  StepMetrics metrics;
  std::vector<torch::Tensor> grads = StepAndGrads(with_failed, &metrics);
  EXPECT_LT(MaxGradDiff(reference, grads), 1e-7);
  EXPECT_EQ(metrics.batch.failed, 1);
  EXPECT_EQ(metrics.batch.trajectories, 9);
  EXPECT_DOUBLE_EQ(metrics.loss_tokens, base_metrics.loss_tokens);
}

TEST(Trainer, MicroBatchingDoesNotChangeTheGradient) {
  std::mt19937 rng(9);
  std::vector<v1::Trajectory> base = TwoGroups(rng);
  TrainerOptions whole = TestOptions();
  whole.micro_batch_tokens = 1 << 20;
  TrainerOptions small = TestOptions();
  small.micro_batch_tokens = 20;  // one or two rows per micro-batch
  StepMetrics m_whole, m_small;
  std::vector<torch::Tensor> a = StepAndGrads(base, &m_whole, whole);
  std::vector<torch::Tensor> b = StepAndGrads(base, &m_small, small);
  EXPECT_EQ(m_whole.micro_batches, 1);
  EXPECT_GE(m_small.micro_batches, 4);
  EXPECT_LT(MaxGradDiff(a, b), 1e-6);
  EXPECT_NEAR(m_whole.loss, m_small.loss, 1e-6);
}

TEST(Trainer, KlTermNeedsAndUsesTheReference) {
  std::mt19937 rng(10);
  TrainerOptions options = TestOptions();
  options.grpo.kl_coef = 0.1;
  EXPECT_FALSE(Trainer::Create(TinyPolicy(7), nullptr, options).ok());
  auto policy = TinyPolicy(7);
  auto reference = TinyPolicy(8);  // a different policy: KL > 0
  auto trainer = Trainer::Create(policy, reference, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(TwoGroups(rng), 1, options.grpo);
  ASSERT_TRUE(batch.ok());
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GT(m->kl, 0.0);
}

TEST(Trainer, GradientCheckpointingGivesTheSameGradient) {
  TrainerOptions ckpt = TestOptions();
  ckpt.gradient_checkpointing = true;
  std::mt19937 rng2(11);
  std::vector<v1::Trajectory> batch2 = TwoGroups(rng2);
  std::vector<torch::Tensor> g1 = StepAndGrads(batch2);
  std::vector<torch::Tensor> g2 = StepAndGrads(batch2, nullptr, ckpt);
  EXPECT_LT(MaxGradDiff(g1, g2), 1e-6);
}

TEST(Trainer, BadTokenIdIsAnErrorNotACrash) {
  std::mt19937 rng(12);
  std::vector<v1::Trajectory> base = TwoGroups(rng);
  base[0].set_token_ids(3, 1000);  // vocab is 64
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(base, 1);
  ASSERT_TRUE(batch.ok());
  auto trainer = Trainer::Create(TinyPolicy(7), nullptr, TestOptions());
  ASSERT_TRUE(trainer.ok());
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
  EXPECT_FALSE(m.ok());
}

TEST(Trainer, EmptyShardStillSteps) {
  auto trainer = Trainer::Create(TinyPolicy(7), nullptr, TestOptions());
  ASSERT_TRUE(trainer.ok());
  absl::StatusOr<StepMetrics> m = (*trainer)->Step(TrainBatch{});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->grad_norm, 0.0);
  EXPECT_DOUBLE_EQ(m->loss_tokens, 0.0);
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// The NLL objective (SFT through the trainer) takes the step of the plain recipe: mean
// negative log-likelihood over the loss tokens, backward, clip, AdamW.
TEST(Trainer, NllObjectiveTakesThePlainSupervisedStep) {
  std::mt19937 rng(9);
  TrainBatch batch;
  batch.version = 1;
  std::vector<std::vector<int64_t>> seqs;
  std::vector<std::vector<uint8_t>> masks;
  for (int i = 0; i < 3; ++i) {
    v1::Trajectory t = MakeTrajectory("sft", i, 3, 0, 5, 4 + i, rng, 64, /*version=*/0);
    seqs.emplace_back(t.token_ids().begin(), t.token_ids().end());
    masks.emplace_back(t.loss_mask().begin(), t.loss_mask().end());
    batch.loss_tokens += 4 + i;
    batch.items.push_back({t, 0.0});
  }
  TrainerOptions o;
  o.objective = Objective::kNll;
  o.lr = 1e-2;
  o.max_grad_norm = 0.5;
  o.share_prefix = false;
  auto policy = TinyPolicy(12);
  auto trainer = Trainer::Create(policy, nullptr, o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();

  auto plain = TinyPolicy(12);
  plain->train();
  for (auto& p : plain->parameters()) p.set_requires_grad(true);
  torch::optim::AdamW adam(plain->parameters(),
                           torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  ScoreOptions score;
  score.share_prefix = false;
  auto scored = ScoreSequences(*plain, seqs, masks, score);
  ASSERT_TRUE(scored.ok());
  torch::Tensor loss = MeanNll(*scored);
  loss.backward();
  const double norm = torch::nn::utils::clip_grad_norm_(plain->parameters(), o.max_grad_norm);
  adam.step();
  EXPECT_NEAR(m->loss, loss.item<double>(), 1e-6);
  EXPECT_NEAR(m->grad_norm, norm, 1e-5 * norm);
  EXPECT_EQ(m->loss_tokens, batch.loss_tokens);
  auto a = policy->parameters();
  auto b = plain->parameters();
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, MaxAbsDiff(a[i], b[i]));
  EXPECT_LE(diff, 1e-6);
}

}  // namespace
}  // namespace envtune
