// The policy on CUDA: HF logits/greedy fixtures and CPU-equal gradients, SDPA's CUDA kernels in
// training and generation, KV reuse with an unindexed device. Skips without a visible GPU (CI
// builds these against the CUDA wheel; scripts/gpu-check runs them on a GPU machine).
#include <gtest/gtest.h>

#include <torch/cuda.h>

#include "model/device.h"
#include "model/generate.h"
#include "model/qwen2.h"
#include "model/score.h"
#include "tests/model/golden_util.h"

namespace envtune {
namespace {

using testing::GoldenQwen2Dir;
using testing::JsonTensor;
using testing::ReadJson;

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
    root_ = GoldenQwen2Dir();
    if (root_.empty()) GTEST_SKIP() << "golden fixtures not found";
  }
  std::string root_;
};

TEST_F(GpuTest, LogitsGreedyAndGradsMatch) {
  for (const char* name : {"qwen2-tiny", "llama-tiny"}) {
    SCOPED_TRACE(name);
    LoadPolicyOptions o;
    o.device = c10::Device(c10::kCUDA, 0);
    auto gpu = LoadPolicy(root_ + "/" + name, o);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    auto logits_fixture = ReadJson(root_ + "/" + name + "/logits.json");
    {
      at::NoGradGuard no_grad;
      for (const auto& batch : logits_fixture["batches"]) {
        at::Tensor ids = JsonTensor(batch["input_ids"], at::kLong);
        at::Tensor mask = batch["attention_mask"].is_null()
                              ? at::ones_like(ids)
                              : JsonTensor(batch["attention_mask"], at::kLong);
        at::Tensor pos = batch["position_ids"].is_null()
                             ? at::Tensor()
                             : JsonTensor(batch["position_ids"], at::kLong);
        at::Tensor logits = (*gpu)->forward(ids, pos, mask).cpu();
        at::Tensor diff = (logits - JsonTensor(batch["logits"], at::kFloat)).abs().amax(-1);
        EXPECT_LE(diff.masked_fill(mask.eq(0), 0).max().item<double>(), 1e-4);
      }
    }
    auto greedy = ReadJson(root_ + "/" + name + "/greedy.json");
    GenerationOptions g;
    g.do_sample = false;
    g.max_new_tokens = 20;
    auto out = Generate(**gpu, greedy["prompts"].get<std::vector<std::vector<int64_t>>>(), g);
    ASSERT_TRUE(out.ok()) << out.status();
    auto want = greedy["generated_ids"].get<std::vector<std::vector<int64_t>>>();
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ((*out)[i].token_ids, want[i]);
    // Seeded sampling on the device is reproducible.
    GenerationOptions s;
    s.max_new_tokens = 8;
    s.seed = 3;
    auto a = Generate(**gpu, {{1, 2, 3}, {4}}, s);
    auto b = Generate(**gpu, {{1, 2, 3}, {4}}, s);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*a)[0].token_ids, (*b)[0].token_ids);

    auto grads = ReadJson(root_ + "/" + name + "/grads.json");
    auto score = ScoreTokens(**gpu, JsonTensor(grads["input_ids"], at::kLong),
                             JsonTensor(grads["attention_mask"], at::kLong),
                             JsonTensor(grads["loss_mask"], at::kLong));
    ASSERT_TRUE(score.ok()) << score.status();
    at::Tensor loss = MeanNll(*score);
    EXPECT_NEAR(loss.item<double>(), grads["loss"].get<double>(), 1e-5);
    loss.backward();
    auto params = (*gpu)->named_parameters();
    for (const auto& g : grads["grads"]) {
      const double norm = params.find(g["name"])->grad().norm().item<double>();
      EXPECT_LE(std::abs(norm - g["norm"].get<double>()), 1e-3 * g["norm"].get<double>());
    }
  }
}

// Device("cuda") has no index while its tensors report cuda:0: KV reuse between turns must
// still happen (it compared devices with == and was silently off on CUDA).
TEST_F(GpuTest, KvReuseWithAnUnindexedCudaDevice) {
  absl::StatusOr<c10::Device> device = ResolveDevice("cuda");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_TRUE(device->has_index());
  LoadPolicyOptions o;
  o.device = c10::Device("cuda");
  auto gpu = LoadPolicy(root_ + "/qwen2-tiny", o);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  GenerationOptions g;
  g.do_sample = false;
  g.max_new_tokens = 6;
  std::vector<SequenceCachePtr> caches(1);
  std::vector<std::vector<int64_t>> prompt = {{5, 17, 300, 42, 9}};
  auto first = Generate(**gpu, prompt, g, nullptr, &caches);
  ASSERT_TRUE(first.ok()) << first.status();
  const int64_t cached = SequenceCacheTokens(caches[0]);
  prompt[0].insert(prompt[0].end(), (*first)[0].token_ids.begin(), (*first)[0].token_ids.end());
  prompt[0].push_back(31);
  auto second = Generate(**gpu, prompt, g, nullptr, &caches);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)[0].reused_tokens, cached);
  auto full = Generate(**gpu, prompt, g);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ((*second)[0].token_ids, (*full)[0].token_ids);
}

TEST_F(GpuTest, Bf16OnDevice) {
  LoadPolicyOptions o;
  o.device = c10::Device(c10::kCUDA, 0);
  auto gpu = LoadPolicy(root_ + "/qwen2-tiny/bf16", o);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto fixture = ReadJson(root_ + "/qwen2-tiny/bf16_logits.json");
  at::NoGradGuard no_grad;
  at::Tensor ids = JsonTensor(fixture["input_ids"], at::kLong);
  at::Tensor logits = (*gpu)->forward(ids).cpu();
  // CUDA bf16 kernels accumulate differently from HF's CPU run; allow the documented slack.
  EXPECT_LE((logits - JsonTensor(fixture["logits"], at::kFloat)).abs().max().item<double>(), 3e-2);
}

}  // namespace
}  // namespace envtune
