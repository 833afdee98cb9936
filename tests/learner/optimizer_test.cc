// Mixed precision: a bf16 policy trained at the paper's lr (1e-6) through PolicyOptimizer (fp32
// masters, fp32 moments, fp32 gradient accumulation) follows the fp32 run: its weight updates
// and its loss decrease match within a few percent. Plain AdamW on the bf16 parameters (what
// envtune did before) fails the same checks: its updates round away.
#include "learner/optimizer.h"

#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/qwen2.h"
#include "model/score.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::TinyPolicy;

constexpr double kLr = 1e-6;
constexpr int kSteps = 80;

struct Data {
  std::vector<std::vector<int64_t>> seqs;
  std::vector<std::vector<uint8_t>> masks;
};

Data MakeData() {
  std::mt19937 rng(5);
  Data d;
  for (int i = 0; i < 4; ++i) {
    std::vector<int64_t> s;
    for (int t = 0; t < 24; ++t) s.push_back(static_cast<int64_t>(rng() % 64));
    d.seqs.push_back(s);
    std::vector<uint8_t> m(s.size(), 1);
    m[0] = 0;
    d.masks.push_back(m);
  }
  return d;
}

// The loss in fp32 of `weights` (fp32 tensors in parameter order) on `data`.
double Fp32Loss(const std::vector<torch::Tensor>& weights, const Data& data) {
  auto probe = TinyPolicy(1);
  torch::NoGradGuard no_grad;
  auto params = probe->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(weights[i]);
  auto scored = ScoreSequences(*probe, data.seqs, data.masks);
  EXPECT_TRUE(scored.ok());
  return MeanNll(*scored).item<double>();
}

std::vector<torch::Tensor> Fp32Copy(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().to(torch::kFloat32).clone());
  return out;
}

// How far update a - c is from update b - c: ||a - b|| / ||b - c|| over all tensors.
double RelativeError(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b,
                     const std::vector<torch::Tensor>& c) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]).pow(2).sum().item<double>();
    den += (b[i] - c[i]).pow(2).sum().item<double>();
  }
  return std::sqrt(num / den);
}

class MixedPrecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One initialisation, rounded to bf16 once, so every run starts from the same weights.
    auto init = TinyPolicy(17, 64, false, 0.02);
    torch::NoGradGuard no_grad;
    for (const auto& p : init->parameters()) {
      initial_.push_back(p.detach().to(torch::kBFloat16).to(torch::kFloat32));
    }
  }
  std::shared_ptr<PolicyImpl> Policy(c10::ScalarType dtype) {
    auto p = std::make_shared<PolicyImpl>(
        PolicyOptions(trainer_testing::TinyConfig(64, false)).dtype(dtype));
    torch::NoGradGuard no_grad;
    auto params = p->parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(initial_[i]);
    p->train();
    return p;
  }
  // Trains with PolicyOptimizer; returns the optimised fp32 weights (masters when mixed).
  std::vector<torch::Tensor> Train(PolicyImpl& policy, PolicyOptimizer& opt, const Data& data) {
    for (int step = 0; step < kSteps; ++step) {
      opt.ZeroGrad();
      // Two micro-batches per step: accumulation goes through the fp32 accumulators.
      for (int half = 0; half < 2; ++half) {
        Data part;
        for (int i = 2 * half; i < 2 * half + 2; ++i) {
          part.seqs.push_back(data.seqs[i]);
          part.masks.push_back(data.masks[i]);
        }
        auto scored = ScoreSequences(policy, part.seqs, part.masks);
        EXPECT_TRUE(scored.ok());
        (MeanNll(*scored) * 0.5).backward();
        EXPECT_TRUE(opt.AccumulateGradients().ok());
      }
      EXPECT_TRUE(opt.ClipGradNorm(0).ok());
      EXPECT_TRUE(opt.Step(kLr).ok());
    }
    return Fp32Copy(opt.MasterWeights());
  }
  std::vector<torch::Tensor> initial_;
};

TEST_F(MixedPrecisionTest, Bf16WithFp32MastersFollowsFp32AndPlainBf16DoesNot) {
  const Data data = MakeData();
  // fp32 reference.
  auto fp32 = Policy(torch::kFloat32);
  AdamWSettings settings;
  settings.lr = kLr;
  settings.weight_decay = 0.01;
  auto opt32 = PolicyOptimizer::Create(*fp32, settings);
  ASSERT_TRUE(opt32.ok());
  EXPECT_FALSE((*opt32)->mixed_precision());
  std::vector<torch::Tensor> w32 = Train(*fp32, **opt32, data);

  // bf16 compute with fp32 masters.
  auto bf16 = Policy(torch::kBFloat16);
  auto opt16 = PolicyOptimizer::Create(*bf16, settings);
  ASSERT_TRUE(opt16.ok());
  EXPECT_TRUE((*opt16)->mixed_precision());
  Train(*bf16, **opt16, data);

  const std::vector<torch::Tensor> masters = Fp32Copy((*opt16)->MasterWeights());
  // The policy computes with the masters rounded to bf16.
  for (size_t i = 0; i < masters.size(); ++i) {
    EXPECT_TRUE(bf16->parameters()[i].equal(masters[i].to(torch::kBFloat16))) << i;
  }

  // Plain AdamW on the bf16 parameters (no masters): the old behaviour.
  auto plain = Policy(torch::kBFloat16);
  {
    std::vector<torch::Tensor> params = plain->parameters();
    torch::optim::AdamW adam(params, torch::optim::AdamWOptions(kLr).weight_decay(0.01));
    for (int step = 0; step < kSteps; ++step) {
      adam.zero_grad();
      auto scored = ScoreSequences(*plain, data.seqs, data.masks);
      ASSERT_TRUE(scored.ok());
      MeanNll(*scored).backward();
      adam.step();
    }
  }
  const std::vector<torch::Tensor> wplain = Fp32Copy(plain->parameters());

  // Updates: the mixed run's weight change matches the fp32 run's within 15% (its gradients
  // come from bf16 arithmetic); plain bf16 loses most of it.
  const double mixed_error = RelativeError(masters, w32, initial_);
  const double plain_error = RelativeError(wplain, w32, initial_);
  EXPECT_LT(mixed_error, 0.15);
  EXPECT_GT(plain_error, 0.5);
  // Loss (evaluated in fp32): the mixed run decreases it like the fp32 run (within 15%).
  const double l0 = Fp32Loss(initial_, data);
  const double l32 = Fp32Loss(w32, data);
  const double lmixed = Fp32Loss(masters, data);
  const double lplain = Fp32Loss(wplain, data);
  ASSERT_LT(l32, l0 - 5e-4) << "the fp32 run should learn at all";
  EXPECT_NEAR((l0 - lmixed) / (l0 - l32), 1.0, 0.15) << l0 << " " << l32 << " " << lmixed;
  EXPECT_LT((l0 - lplain) / (l0 - l32), 0.5) << "plain bf16 " << lplain;
  // State: fp32 masters + two fp32 moments = 12 bytes per parameter.
  int64_t n = 0;
  for (const auto& p : bf16->parameters()) n += p.numel();
  EXPECT_EQ((*opt16)->StateBytes(), 12 * n);
  std::printf("mixed error %.4f, plain bf16 error %.4f; loss %.5f -> fp32 %.5f, mixed %.5f, "
              "plain %.5f\n", mixed_error, plain_error, l0, l32, lmixed, lplain);
}

}  // namespace
}  // namespace envtune
