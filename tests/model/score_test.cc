// Scoring with gradients against HF's loss and parameter gradients (grads.json), plus the
// chunked-vs-plain, checkpointed-vs-plain and entropy consistency checks.
#include "model/score.h"

#include <gtest/gtest.h>

#include <map>

#include "model/qwen2.h"
#include "tests/model/golden_util.h"

namespace envtune {
namespace {

using testing::GoldenModels;
using testing::GoldenQwen2Dir;
using testing::JsonTensor;
using testing::ReadJson;

std::map<std::string, at::Tensor> Grads(PolicyImpl& policy) {
  std::map<std::string, at::Tensor> out;
  for (auto& item : policy.named_parameters()) {
    out[item.key()] = item.value().grad().defined() ? item.value().grad().clone()
                                                    : at::zeros_like(item.value());
  }
  return out;
}

struct Case {
  at::Tensor ids, attn, loss_mask;
};

Case LoadCase(const nlohmann::json& fixture) {
  return {JsonTensor(fixture["input_ids"], at::kLong), JsonTensor(fixture["attention_mask"], at::kLong),
          JsonTensor(fixture["loss_mask"], at::kLong)};
}

class GradsTest : public ::testing::TestWithParam<testing::GoldenModel> {};

TEST_P(GradsTest, LossAndGradientsMatchHf) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found (set ENVTUNE_SHARED_DIR)";
  auto policy = LoadPolicy(root + "/" + GetParam().name);
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto fixture = ReadJson(root + "/" + GetParam().fixtures + "/grads.json");
  Case c = LoadCase(fixture);
  for (int64_t chunk : {int64_t{0}, int64_t{5}}) {
    SCOPED_TRACE(chunk);
    (*policy)->zero_grad();
    ScoreOptions options;
    options.chunk_size = chunk;
    auto out = ScoreTokens(**policy, c.ids, c.attn, c.loss_mask, options);
    ASSERT_TRUE(out.ok()) << out.status();
    at::Tensor loss = MeanNll(*out);
    EXPECT_NEAR(loss.item<double>(), fixture["loss"].get<double>(), 1e-5);
    loss.backward();
    auto params = (*policy)->named_parameters();
    ASSERT_EQ(params.size(), fixture["grads"].size());
    for (const auto& g : fixture["grads"]) {
      const std::string name = g["name"];
      SCOPED_TRACE(name);
      auto* p = params.find(name);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(p->grad().defined());
      const double norm = p->grad().to(at::kDouble).norm().item<double>();
      const double want = g["norm"].get<double>();
      EXPECT_LE(std::abs(norm - want), 1e-3 * std::abs(want) + 1e-9);
      at::Tensor first8 = p->grad().flatten().narrow(0, 0, std::min<int64_t>(8, p->numel()));
      auto expected = g["first8"].get<std::vector<double>>();
      for (size_t i = 0; i < expected.size(); ++i) {
        const double got = first8[i].item<double>();
        EXPECT_LE(std::abs(got - expected[i]), std::max(1e-5, 1e-3 * std::abs(expected[i])))
            << "first8[" << i << "]";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, GradsTest, ::testing::ValuesIn(GoldenModels()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

double MaxGradDiff(const std::map<std::string, at::Tensor>& a,
                   const std::map<std::string, at::Tensor>& b) {
  double m = 0;
  for (const auto& [k, v] : a) m = std::max(m, (v - b.at(k)).abs().max().item<double>());
  return m;
}

// The largest gradient difference relative to the largest gradient entry (at least 1): fp32
// sums taken in another order differ by a few ulps of the magnitudes involved.
double MaxRelGradDiff(const std::map<std::string, at::Tensor>& a,
                      const std::map<std::string, at::Tensor>& b) {
  double scale = 1;
  for (const auto& [k, v] : a) scale = std::max(scale, v.abs().max().item<double>());
  return MaxGradDiff(a, b) / scale;
}

TEST(ScoreTest, CheckpointingGivesTheSameGradients) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  Case c = LoadCase(ReadJson(root + "/qwen2-tiny/grads.json"));
  std::map<std::string, at::Tensor> grads[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    LoadPolicyOptions o;
    o.gradient_checkpointing = ckpt == 1;
    auto policy = LoadPolicy(root + "/qwen2-tiny", o);
    ASSERT_TRUE(policy.ok());
    (*policy)->train();
    ScoreOptions so;
    so.compute_entropy = true;
    auto out = ScoreTokens(**policy, c.ids, c.attn, c.loss_mask, so);
    ASSERT_TRUE(out.ok()) << out.status();
    (MeanNll(*out) + 0.1 * (out->entropy * out->mask).sum()).backward();
    grads[ckpt] = Grads(**policy);
  }
  // The checkpointed forward runs the inference attention, its recomputation the training one.
  EXPECT_LE(MaxRelGradDiff(grads[0], grads[1]), 5e-6);
}

TEST(ScoreTest, ChunkedEntropyAndTemperatureMatchPlainAutograd) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  auto policy = LoadPolicy(root + "/llama-tiny");
  ASSERT_TRUE(policy.ok());
  Case c = LoadCase(ReadJson(root + "/llama-tiny/grads.json"));
  ScoreOutput outs[2];
  std::map<std::string, at::Tensor> grads[2];
  for (int i = 0; i < 2; ++i) {
    (*policy)->zero_grad();
    ScoreOptions so;
    so.compute_entropy = true;
    so.temperature = 0.8;
    so.chunk_size = i == 0 ? 0 : 3;
    auto out = ScoreTokens(**policy, c.ids, c.attn, c.loss_mask, so);
    ASSERT_TRUE(out.ok());
    (0.5 * (out->logprobs * out->mask).sum() - (out->entropy * out->mask).sum()).backward();
    outs[i] = *out;
    grads[i] = Grads(**policy);
  }
  EXPECT_LE((outs[0].logprobs - outs[1].logprobs).abs().max().item<double>(), 1e-6);
  EXPECT_LE((outs[0].entropy - outs[1].entropy).abs().max().item<double>(), 1e-5);  // ~5.7 nats, fp32
  EXPECT_GT(outs[0].entropy.max().item<double>(), 1.0);  // near-uniform tiny model
  EXPECT_LE(MaxRelGradDiff(grads[0], grads[1]), 1e-6);
  // Unscored positions are exactly zero.
  EXPECT_EQ((outs[1].logprobs * (1 - outs[1].mask)).abs().sum().item<double>(), 0.0);
}

TEST(ScoreTest, SequencesMatchPaddedBatchAndLeftPadding) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  auto policy = LoadPolicy(root + "/qwen2-tiny");
  ASSERT_TRUE(policy.ok());
  at::NoGradGuard no_grad;
  std::vector<std::vector<int64_t>> seqs = {{5, 6, 7, 8, 9, 10}, {11, 12, 13}};
  std::vector<std::vector<uint8_t>> masks = {{0, 0, 1, 1, 1, 1}, {0, 1, 1}};
  auto packed = ScoreSequences(**policy, seqs, masks);
  ASSERT_TRUE(packed.ok()) << packed.status();
  // Row 1 alone, and left-padded.
  auto alone = ScoreSequences(**policy, {seqs[1]}, {masks[1]});
  ASSERT_TRUE(alone.ok());
  at::Tensor ids = at::tensor({0, 0, 0, 11, 12, 13}, at::kLong).view({1, 6});
  at::Tensor attn = at::tensor({0, 0, 0, 1, 1, 1}, at::kLong).view({1, 6});
  at::Tensor lm = at::tensor({0, 0, 0, 0, 1, 1}, at::kLong).view({1, 6});
  auto left = ScoreTokens(**policy, ids, attn, lm);
  ASSERT_TRUE(left.ok());
  for (int t = 1; t < 3; ++t) {
    const double want = alone->logprobs[0][t].item<double>();
    EXPECT_NE(want, 0.0);
    EXPECT_NEAR(packed->logprobs[1][t].item<double>(), want, 1e-5);
    EXPECT_NEAR(left->logprobs[0][t + 3].item<double>(), want, 1e-5);
  }
  EXPECT_FALSE(ScoreSequences(**policy, {{1, 2}}, {{1}}).ok());
  EXPECT_FALSE(ScoreSequences(**policy, {{1, 99999}}, {{0, 1}}).ok());
  EXPECT_FALSE(ScoreSequences(**policy, {}, {}).ok());
}

// A GRPO group: rows share a 40-token prompt, then differ (different lengths, loss tokens also
// inside the prompt). Scoring the prompt once must give the per-row values and the parameter
// gradients of scoring every row in full (in float64, so only a real difference would show).
TEST(ScoreTest, SharedPrefixMatchesFullRows) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  LoadPolicyOptions f64;
  f64.dtype = at::kDouble;
  auto policy = LoadPolicy(root + "/qwen2-tiny", f64);
  ASSERT_TRUE(policy.ok());
  (*policy)->train();
  std::vector<int64_t> prompt;
  for (int64_t i = 0; i < 40; ++i) prompt.push_back((i * 37 + 11) % 500);
  std::vector<std::vector<int64_t>> seqs(3, prompt);
  std::vector<std::vector<uint8_t>> masks(3, std::vector<uint8_t>(prompt.size(), 0));
  masks[1][38] = masks[1][39] = 1;
  const std::vector<std::vector<int64_t>> tails = {{7, 8, 9, 10, 11}, {20, 21}, {30, 31, 32, 33}};
  for (size_t r = 0; r < 3; ++r) {
    for (size_t k = 0; k < tails[r].size(); ++k) {
      seqs[r].push_back(tails[r][k]);
      masks[r].push_back(k % 3 == 2 ? 0 : 1);
    }
  }
  ScoreOutput outs[2];
  std::map<std::string, at::Tensor> grads[2];
  for (int shared = 0; shared < 2; ++shared) {
    (*policy)->zero_grad();
    ScoreOptions so;
    so.compute_entropy = true;
    so.chunk_size = 4;
    so.share_prefix = shared == 1;
    auto out = ScoreSequences(**policy, seqs, masks, so);
    ASSERT_TRUE(out.ok()) << out.status();
    (MeanNll(*out) - 0.3 * (out->entropy * out->mask).sum()).backward();
    outs[shared] = *out;
    grads[shared] = Grads(**policy);
  }
  EXPECT_GT(outs[1].mask.sum().item<double>(), 10);
  // Logits and log-probs are fp32 by contract whatever the model dtype.
  EXPECT_LE((outs[0].logprobs - outs[1].logprobs).abs().max().item<double>(), 1e-5);
  EXPECT_LE((outs[0].entropy - outs[1].entropy).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(outs[0].mask.equal(outs[1].mask));
  EXPECT_LE(MaxRelGradDiff(grads[0], grads[1]), 1e-6);
}

// One likely token and a 152k-token tail ~17 nats below it: LibTorch's fp32 log_softmax drops
// most of the tail's mass (each term is under half an ulp of its running sum); the pairwise sum
// keeps it. Reference: fp64.
TEST(ScoreTest, AccurateLogSoftmaxKeepsTheTailOfALargeVocabulary) {
  at::manual_seed(0);
  at::Tensor logits = at::zeros({2, 151669}, at::kFloat);
  logits[0][7] = 17.0;
  logits[1].normal_(0.0, 1.0);
  logits[1][3] = 20.0;
  at::Tensor reference = logits.to(at::kDouble).log_softmax(-1);
  at::Tensor ours = AccurateLogSoftmax(logits);
  EXPECT_EQ(ours.scalar_type(), at::kFloat);
  // fp32 rounding of log-probs down to about -25 is ~2e-6; plain log_softmax is off by ~8e-4.
  EXPECT_LT((ours.to(at::kDouble) - reference).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace envtune
