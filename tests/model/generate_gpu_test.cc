// Actor memory on CUDA: the growing KV cache gives the CPU's greedy tokens through two growths,
// and a KV cache the GPU cannot hold is RESOURCE_EXHAUSTED naming the rows, positions and bytes
// (never an Internal error, never a crash). Skips without a visible GPU (scripts/gpu-check runs
// it on a GPU machine).
#include <gtest/gtest.h>

#include <torch/cuda.h>

#include "model/generate.h"
#include "model/qwen2.h"
#include "tests/actor/tiny_policy.h"

namespace envtune {
namespace {

TEST(GenerateGpu, GrowingCacheGivesTheCpuTokens) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  auto cpu = testing_actor::TinyPolicy(512, 3, /*stop_id=*/511, /*stop_weight=*/0);
  auto gpu = std::make_shared<PolicyImpl>(
      PolicyOptions(cpu->config()).device(c10::Device(c10::kCUDA, 0)));
  {
    at::NoGradGuard no_grad;
    auto src = cpu->named_parameters();
    for (auto& item : gpu->named_parameters()) item.value().copy_(src[item.key()]);
  }
  gpu->eval();
  const std::vector<std::vector<int64_t>> prompts = {{5, 17, 300, 42, 9}, {7}, {100, 200, 300}};
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 2 * kKvBlockTokens + 50;
  auto on_cpu = Generate(*cpu, prompts, options);
  auto on_gpu = Generate(*gpu, prompts, options);
  ASSERT_TRUE(on_cpu.ok() && on_gpu.ok()) << on_gpu.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ((*on_gpu)[i].token_ids, (*on_cpu)[i].token_ids) << i;
  }
}

TEST(GenerateGpu, AKvCacheTheGpuCannotHoldIsResourceExhaustedWithTheNumbers) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  // 2 layers x 64 key/value heads x head_dim 1024 x (k, v) x 4 bytes = 1 MiB per token: 1024
  // rows of 12 prompt + 256 generated positions need 268 GiB, more than any GPU has.
  ModelConfig c = testing_actor::TinyConfig(512, true);
  c.num_attention_heads = 64;
  c.num_key_value_heads = 64;
  c.head_dim = 1024;
  auto gpu = std::make_shared<PolicyImpl>(PolicyOptions(c).device(c10::Device(c10::kCUDA, 0)));
  gpu->InitRandom(1);
  gpu->eval();
  ASSERT_EQ(KvBytesPerToken(*gpu), int64_t{1} << 20);
  std::vector<std::vector<int64_t>> prompts(1024, std::vector<int64_t>(12, 7));
  GenerationOptions options;
  options.do_sample = false;
  options.max_new_tokens = 300;
  auto out = Generate(*gpu, prompts, options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_FALSE(IsKvLimitError(out.status()));
  EXPECT_NE(out.status().message().find("out of memory on cuda"), std::string::npos)
      << out.status();
  EXPECT_NE(out.status().message().find("1048576 bytes per token"), std::string::npos)
      << out.status();
  // The GPU is usable afterwards.
  auto small = Generate(*gpu, {prompts[0]}, GenerationOptions{.max_new_tokens = 4});
  EXPECT_TRUE(small.ok()) << small.status();
}

}  // namespace
}  // namespace envtune
