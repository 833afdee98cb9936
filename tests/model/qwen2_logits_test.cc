// Logits of every fixture model against HF transformers 4.45's own outputs
// (../shared/golden/qwen2/*/logits.json, bf16_logits.json).
#include <gtest/gtest.h>

#include "model/qwen2.h"
#include "tests/model/golden_util.h"

namespace envtune {
namespace {

using testing::GoldenModels;
using testing::GoldenQwen2Dir;
using testing::JsonTensor;
using testing::ReadJson;

// Max |ours - theirs| over query positions whose attention_mask is 1.
double MaxDiff(const at::Tensor& ours, const at::Tensor& theirs, const at::Tensor& query_mask) {
  at::Tensor diff = (ours.to(at::kDouble) - theirs.to(at::kDouble)).abs().amax(-1);  // [B, L]
  return diff.masked_fill(query_mask.eq(0), 0).max().item<double>();
}

class LogitsTest : public ::testing::TestWithParam<testing::GoldenModel> {};

TEST_P(LogitsTest, MatchesHfForEveryBatch) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found (set ENVTUNE_SHARED_DIR)";
  auto policy = LoadPolicy(root + "/" + GetParam().name);
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto fixture = ReadJson(root + "/" + GetParam().fixtures + "/logits.json");
  ASSERT_TRUE(fixture.contains("batches"));
  at::NoGradGuard no_grad;
  int checked = 0;
  for (const auto& batch : fixture["batches"]) {
    SCOPED_TRACE(batch["name"].get<std::string>());
    at::Tensor ids = JsonTensor(batch["input_ids"], at::kLong);
    at::Tensor mask = batch["attention_mask"].is_null() ? at::Tensor()
                                                         : JsonTensor(batch["attention_mask"], at::kLong);
    at::Tensor pos = batch["position_ids"].is_null() ? at::Tensor()
                                                      : JsonTensor(batch["position_ids"], at::kLong);
    at::Tensor expected = JsonTensor(batch["logits"], at::kFloat);
    at::Tensor logits = (*policy)->forward(ids, pos, mask);
    ASSERT_EQ(logits.sizes(), expected.sizes());
    EXPECT_EQ(logits.scalar_type(), at::kFloat);
    at::Tensor query_mask = mask.defined() ? mask : at::ones_like(ids);
    EXPECT_LE(MaxDiff(logits, expected, query_mask), 1e-4);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

INSTANTIATE_TEST_SUITE_P(AllModels, LogitsTest, ::testing::ValuesIn(GoldenModels()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST(LogitsBf16Test, MatchesHfBf16) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  auto policy = LoadPolicy(root + "/qwen2-tiny/bf16");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ((*policy)->dtype(), at::kBFloat16);
  auto fixture = ReadJson(root + "/qwen2-tiny/bf16_logits.json");
  at::NoGradGuard no_grad;
  at::Tensor ids = JsonTensor(fixture["input_ids"], at::kLong);
  at::Tensor expected = JsonTensor(fixture["logits"], at::kFloat);
  at::Tensor logits = (*policy)->forward(ids);
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_LE(MaxDiff(logits, expected, at::ones_like(ids)), 2e-2);
}

// The fp32 policy loaded with dtype override bf16 from the fp32 checkpoint rounds the same
// weights, so it must land within the bf16 tolerance too.
TEST(LogitsBf16Test, Fp32CheckpointAsBf16) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  LoadPolicyOptions options;
  options.dtype = at::kBFloat16;
  auto policy = LoadPolicy(root + "/qwen2-tiny", options);
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto fixture = ReadJson(root + "/qwen2-tiny/bf16_logits.json");
  at::NoGradGuard no_grad;
  at::Tensor ids = JsonTensor(fixture["input_ids"], at::kLong);
  at::Tensor logits = (*policy)->forward(ids);
  EXPECT_LE(MaxDiff(logits, JsonTensor(fixture["logits"], at::kFloat), at::ones_like(ids)), 2e-2);
}

// Feeding a sequence token by token through the KV cache gives the full-sequence logits.
TEST(LogitsCacheTest, IncrementalEqualsFull) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  for (const char* name : {"qwen2-tiny", "llama-tiny"}) {
    auto policy = LoadPolicy(root + "/" + name);
    ASSERT_TRUE(policy.ok()) << policy.status();
    at::NoGradGuard no_grad;
    at::Tensor ids = at::randint(0, (*policy)->config().vocab_size, {2, 10}, at::kLong);
    at::Tensor full = (*policy)->forward(ids);
    KVCache cache = KVCache::Allocate((*policy)->config(), 2, 10, at::kFloat, at::kCPU);
    at::Tensor first = (*policy)->forward(ids.narrow(1, 0, 4), {}, {}, &cache);
    EXPECT_EQ(cache.length, 4);
    std::vector<at::Tensor> parts = {first};
    for (int64_t t = 4; t < 10; ++t) parts.push_back((*policy)->forward(ids.narrow(1, t, 1), {}, {}, &cache));
    EXPECT_LE((at::cat(parts, 1) - full).abs().max().item<double>(), 1e-5) << name;
  }
}

// Sequences longer than the attention's query chunk (512) take the chunked path: the result
// equals feeding the same tokens through the KV cache in blocks short enough to be unchunked,
// with left padding in the batch; its gradients are finite and do not depend on batching.
TEST(LogitsCacheTest, ChunkedAttentionOfLongSequencesEqualsShortBlocks) {
  const std::string root = GoldenQwen2Dir();
  if (root.empty()) GTEST_SKIP() << "golden fixtures not found";
  auto policy = LoadPolicy(root + "/qwen2-tiny");
  ASSERT_TRUE(policy.ok()) << policy.status();
  const int64_t T = 1300;  // 3 chunks: 512, 512, 276
  at::manual_seed(7);
  at::Tensor ids = at::randint(0, (*policy)->config().vocab_size, {2, T}, at::kLong);
  at::Tensor attention = at::ones({2, T}, at::kLong);
  attention[1].narrow(0, 0, 37).zero_();  // row 1 is left-padded
  at::Tensor positions = (attention.cumsum(1) - 1).clamp_min(0);
  at::Tensor blocks;
  {
    at::NoGradGuard no_grad;
    KVCache cache = KVCache::Allocate((*policy)->config(), 2, T, at::kFloat, at::kCPU);
    std::vector<at::Tensor> parts;
    for (int64_t t = 0; t < T; t += 400) {
      const int64_t n = std::min<int64_t>(400, T - t);
      parts.push_back((*policy)->forward(ids.narrow(1, t, n), positions.narrow(1, t, n),
                                         attention.narrow(1, 0, t + n), &cache));
    }
    blocks = at::cat(parts, 1);
  }
  at::Tensor full = (*policy)->forward(ids, positions, attention);
  at::Tensor valid = attention.to(at::kFloat).unsqueeze(-1);
  EXPECT_LE(((full.detach() - blocks).abs() * valid).max().item<double>(), 1e-4);
  // Gradients through the chunked path: finite, and the same whether the rows are batched.
  (full * valid).sum().backward();
  std::vector<at::Tensor> chunked;
  for (const at::Tensor& p : (*policy)->parameters()) chunked.push_back(p.grad().clone());
  (*policy)->zero_grad();
  at::Tensor a = (*policy)->forward(ids.narrow(0, 0, 1), positions.narrow(0, 0, 1),
                                    attention.narrow(0, 0, 1));
  at::Tensor b = (*policy)->forward(ids.narrow(0, 1, 1), positions.narrow(0, 1, 1),
                                    attention.narrow(0, 1, 1));
  ((a * valid.narrow(0, 0, 1)).sum() + (b * valid.narrow(0, 1, 1)).sum()).backward();
  size_t i = 0;
  for (const at::Tensor& p : (*policy)->parameters()) {
    const at::Tensor& g = chunked[i++];
    ASSERT_TRUE(at::isfinite(g).all().item<bool>());
    const double scale = std::max(1.0, g.abs().max().item<double>());
    EXPECT_LE((p.grad() - g).abs().max().item<double>() / scale, 1e-4);
  }
}

}  // namespace
}  // namespace envtune
