// GRPO loss against values computed by hand (see the comments for each number).
#include "learner/grpo.h"

#include <cmath>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace envtune {
namespace {

TEST(GroupAdvantagesTest, NormalisesWithUnbiasedStd) {
  // mean 0.5, unbiased variance (4 * 0.25) / 3 = 1/3, std 0.577350...
  std::vector<double> a = GroupAdvantages({1, 0, 0, 1});
  ASSERT_EQ(a.size(), 4u);
  EXPECT_NEAR(a[0], 0.5 / (std::sqrt(1.0 / 3.0) + 1e-6), 1e-12);
  EXPECT_NEAR(a[1], -0.5 / (std::sqrt(1.0 / 3.0) + 1e-6), 1e-12);
  // Equal rewards carry no signal.
  for (double x : GroupAdvantages({0.5, 0.5, 0.5})) EXPECT_EQ(x, 0.0);
  // A group of one: mean 0, std 1 (verl's convention).
  EXPECT_EQ(GroupAdvantages({0.7})[0], 0.7);
  EXPECT_TRUE(GroupAdvantages({}).empty());
}

// Row 0: A = +1, ratios (1.5, 0.5, 1.0), mask (1, 1, 0).
// Row 1: A = -2, ratios (1.0, 30, 0.5), mask (1, 1, 1).
GrpoLossInputs HandCase() {
  GrpoLossInputs in;
  in.old_logprobs = torch::zeros({2, 3});
  in.logprobs = torch::log(torch::tensor({{1.5, 0.5, 1.0}, {1.0, 30.0, 0.5}}, torch::kFloat32))
                    .set_requires_grad(true);
  in.behaviour_logprobs = torch::zeros({2, 3});
  in.advantages = torch::tensor({1.0, -2.0}, torch::kFloat32);
  in.mask = torch::tensor({{1, 1, 0}, {1, 1, 1}}, torch::kFloat32);
  return in;
}

GrpoOptions NoExtras() {
  GrpoOptions options;
  options.kl_coef = 0;
  options.entropy_coef = 0;
  options.tis_cap = 0;
  return options;
}

TEST(GrpoLossTest, ClipLowHighDualClipAndTokenMean) {
  GrpoLossInputs in = HandCase();
  GrpoLossOutput out = ComputeGrpoLoss(in, NoExtras());
  // Per token:
  //  r0t0: max(-1.5, -1.28) = -1.28 (clipped high)      r0t1: max(-0.5, -0.8) = -0.5
  //  r1t0: max(2, 2) = 2                                 r1t1: max(60, 2.56) = 60 -> dual 20
  //  r1t2: max(1.0, 1.6) = 1.6 (clipped low)
  // Sum 21.82 over 5 tokens.
  EXPECT_NEAR(out.loss.item<double>(), 21.82 / 5, 1e-5);
  EXPECT_NEAR(out.pg_loss, 21.82 / 5, 1e-5);
  EXPECT_NEAR(out.clip_fraction, 3.0 / 5, 1e-6);
  EXPECT_EQ(out.tokens, 5);
  // Gradients wrt logp: only unclipped tokens move: d(-A r)/dlogp = -A r, over 5 tokens.
  out.loss.backward();
  torch::Tensor grad = in.logprobs.grad();
  EXPECT_NEAR(grad[0][0].item<double>(), 0.0, 1e-7);
  EXPECT_NEAR(grad[0][1].item<double>(), -0.5 / 5, 1e-6);
  EXPECT_NEAR(grad[0][2].item<double>(), 0.0, 1e-7);  // masked
  EXPECT_NEAR(grad[1][0].item<double>(), 2.0 / 5, 1e-6);
  EXPECT_NEAR(grad[1][1].item<double>(), 0.0, 1e-7);  // dual-clipped to a constant
  EXPECT_NEAR(grad[1][2].item<double>(), 0.0, 1e-7);
}

TEST(GrpoLossTest, DisablingDualClipKeepsTheLargeLoss) {
  GrpoLossInputs in = HandCase();
  GrpoOptions options = NoExtras();
  options.dual_clip = 0;
  // r1t1 contributes 60 instead of 20.
  EXPECT_NEAR(ComputeGrpoLoss(in, options).loss.item<double>(), 61.82 / 5, 1e-4);
}

TEST(GrpoLossTest, MicroBatchesWithTheBatchNormalizerSumToTheTokenMean) {
  GrpoLossInputs full = HandCase();
  double whole = ComputeGrpoLoss(full, NoExtras()).loss.item<double>();
  double parts = 0;
  for (int row = 0; row < 2; ++row) {
    GrpoLossInputs part;
    part.logprobs = full.logprobs.detach().slice(0, row, row + 1);
    part.old_logprobs = full.old_logprobs.slice(0, row, row + 1);
    part.behaviour_logprobs = full.behaviour_logprobs.slice(0, row, row + 1);
    part.advantages = full.advantages.slice(0, row, row + 1);
    part.mask = full.mask.slice(0, row, row + 1);
    part.normalizer = 5;
    parts += ComputeGrpoLoss(part, NoExtras()).loss.item<double>();
  }
  EXPECT_NEAR(parts, whole, 1e-5);
}

TEST(GrpoLossTest, TruncatedImportanceWeightScalesStaleTokens) {
  GrpoLossInputs in = HandCase();
  // The behaviour policy gave every token 4x less probability than the old policy: weight
  // exp(log 4) = 4, truncated to the cap 2.
  in.behaviour_logprobs = torch::full({2, 3}, -std::log(4.0f));
  GrpoOptions options = NoExtras();
  options.tis_cap = 2.0;
  GrpoLossOutput out = ComputeGrpoLoss(in, options);
  EXPECT_NEAR(out.loss.item<double>(), 2 * 21.82 / 5, 1e-4);
  EXPECT_NEAR(out.tis_weight_mean, 2.0, 1e-6);
  EXPECT_NEAR(out.behaviour_mismatch_max, std::log(4.0), 1e-6);
  EXPECT_NEAR(out.behaviour_mismatch_mean, std::log(4.0), 1e-6);
}

TEST(GrpoLossTest, KlK3AndEntropyBonus) {
  GrpoLossInputs in = HandCase();
  in.ref_logprobs = in.logprobs.detach() + 0.5;  // delta = 0.5: kl = e^0.5 - 0.5 - 1
  in.entropy = torch::full({2, 3}, 2.0f);
  GrpoOptions options = NoExtras();
  options.kl_coef = 0.1;
  options.entropy_coef = 0.001;
  GrpoLossOutput out = ComputeGrpoLoss(in, options);
  double kl = std::exp(0.5) - 1.5;
  EXPECT_NEAR(out.kl, kl, 1e-6);
  EXPECT_NEAR(out.entropy, 2.0, 1e-6);
  EXPECT_NEAR(out.loss.item<double>(), 21.82 / 5 + 0.1 * kl - 0.001 * 2.0, 1e-5);
}

}  // namespace
}  // namespace envtune
