// The KL reference (learner/reference.h): offloaded decoder layers give the resident copy's
// log-probs bit for bit, hold no weights between forwards, and a GRPO step with either takes
// the same step.
#include "learner/reference.h"

#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/trainer.h"
#include "model/qwen2.h"
#include "model/score.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::MakeTrajectory;
using trainer_testing::MaxAbsDiff;
using trainer_testing::TinyPolicy;

int64_t LayerElements(PolicyImpl& p) {
  int64_t n = 0;
  for (size_t i = 0; i < p.model->layers->size(); ++i) {
    for (const auto& t : p.model->layers->ptr(i)->parameters()) n += t.numel();
  }
  return n;
}

TEST(Reference, OffloadedLayersScoreLikeTheResidentCopy) {
  auto initial = TinyPolicy(4);
  auto resident = MakeReference(*initial, /*offload=*/false);
  auto offloaded = MakeReference(*initial, /*offload=*/true);
  ASSERT_TRUE(resident.ok()) << resident.status();
  ASSERT_TRUE(offloaded.ok()) << offloaded.status();
  EXPECT_GT(LayerElements(**resident), 0);
  EXPECT_EQ(LayerElements(**offloaded), 0);  // nothing on the device between forwards
  std::mt19937 rng(3);
  std::vector<std::vector<int64_t>> seqs(3);
  std::vector<std::vector<uint8_t>> masks(3);
  for (size_t b = 0; b < seqs.size(); ++b) {
    for (int t = 0; t < 20 + 5 * static_cast<int>(b); ++t) {
      seqs[b].push_back(static_cast<int64_t>(rng() % 63));
      masks[b].push_back(t > 4 ? 1 : 0);
    }
  }
  torch::NoGradGuard no_grad;
  auto a = ScoreSequences(**resident, seqs, masks);
  auto b = ScoreSequences(**offloaded, seqs, masks);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(torch::equal(a->logprobs, b->logprobs));
  EXPECT_EQ(LayerElements(**offloaded), 0);
  // The initial policy is untouched by either copy.
  EXPECT_GT(LayerElements(*initial), 0);
}

TEST(Reference, OffloadedReferenceRefusesAForwardWithGradients) {
  auto initial = TinyPolicy(4);
  auto offloaded = MakeReference(*initial, /*offload=*/true);
  ASSERT_TRUE(offloaded.ok());
  torch::AutoGradMode grad(true);
  auto scored = ScoreSequences(**offloaded, {{1, 2, 3, 4}}, {{0, 1, 1, 1}});
  ASSERT_FALSE(scored.ok());
  EXPECT_THAT(scored.status().message(), testing::HasSubstr("without gradients"));
}

TEST(Reference, GrpoStepWithTheOffloadedReferenceEqualsTheResidentOne) {
  std::vector<std::vector<torch::Tensor>> params(2);
  std::vector<double> kl(2);
  for (int offload = 0; offload < 2; ++offload) {
    auto policy = TinyPolicy(5);
    auto reference = MakeReference(*TinyPolicy(6), offload == 1);
    ASSERT_TRUE(reference.ok());
    TrainerOptions o;
    o.lr = 1e-2;
    o.grpo.kl_coef = 0.1;
    std::mt19937 rng(31);
    std::vector<v1::Trajectory> batch;
    for (int i = 0; i < 4; ++i) batch.push_back(MakeTrajectory("g", i, 4, i * 0.25, 4, 6, rng));
    auto built = BuildTrainBatch(batch, 1, o.grpo);
    ASSERT_TRUE(built.ok());
    auto trainer = Trainer::Create(policy, *reference, o);
    ASSERT_TRUE(trainer.ok());
    auto m = (*trainer)->Step(*built);
    ASSERT_TRUE(m.ok()) << m.status();
    kl[offload] = m->kl;
    for (const auto& p : policy->parameters()) params[offload].push_back(p.detach().clone());
  }
  EXPECT_GT(kl[0], 0);
  EXPECT_EQ(kl[0], kl[1]);
  for (size_t i = 0; i < params[0].size(); ++i) EXPECT_EQ(MaxAbsDiff(params[0][i], params[1][i]), 0);
}

}  // namespace
}  // namespace envtune
