// Weight publishing from a CUDA policy: the device-to-host copies are queued and the version
// becomes visible off the training thread, yet it holds the weights of the step it was published
// at even when the next step changes them at once; an actor's receiver with pinned buffers loads
// them into a CUDA policy. Skips without a visible GPU (scripts/gpu-check runs it).
#include <gtest/gtest.h>

#include <torch/cuda.h>

#include "learner/weight_publisher.h"
#include "model/qwen2.h"
#include "model/weights_io.h"
#include "tests/actor/tiny_policy.h"

namespace envtune {
namespace {

std::string Bytes(const WeightSnapshot& s) {
  std::string out;
  for (std::string_view t : s.tensors) out.append(t);
  return out;
}

TEST(WeightPublisherGpu, AsyncCopyHoldsThePublishedStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  ModelConfig c = testing_actor::TinyConfig(32000, false);
  c.hidden_size = 512;
  c.intermediate_size = 1024;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(c).device(c10::Device(c10::kCUDA, 0)));
  policy->InitRandom(1);
  std::string expected;
  for (auto& [name, p] : policy->StateDict()) {
    at::Tensor cpu = p.detach().cpu().contiguous();
    expected.append(static_cast<const char*>(cpu.data_ptr()), cpu.nbytes());
  }
  WeightStore store;
  WeightPublisher publisher(&store, "");
  for (uint64_t version = 1; version <= 4; ++version) {
    ASSERT_TRUE(publisher.Publish(*policy, version, version).ok());
    {
      at::NoGradGuard no_grad;  // the next step, queued right behind the copies
      for (auto& p : policy->parameters()) p.mul_(2.0);
    }
    ASSERT_TRUE(publisher.Flush().ok());
    ASSERT_EQ(store.version(), version);
    EXPECT_EQ(Bytes(*store.Latest()), expected) << "version " << version;
    expected.clear();
    for (auto& [name, p] : policy->StateDict()) {
      at::Tensor cpu = p.detach().cpu().contiguous();
      expected.append(static_cast<const char*>(cpu.data_ptr()), cpu.nbytes());
    }
  }
  EXPECT_GT(publisher.recycled(), 0);

  std::shared_ptr<const WeightSnapshot> latest = store.Latest();
  auto receiver = WeightsReceiver::Create(latest->header, WeightsLoadOptions{.device = "cuda"});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  EXPECT_TRUE((*receiver)->pinned());
  for (std::string_view t : latest->tensors) ASSERT_TRUE((*receiver)->Append(t).ok());
  auto built = (*receiver)->Build();
  ASSERT_TRUE(built.ok()) << built.status();
  std::string loaded;
  for (auto& [name, p] : (*built)->StateDict()) {
    EXPECT_TRUE(p.is_cuda()) << name;
    at::Tensor cpu = p.detach().cpu().contiguous();
    loaded.append(static_cast<const char*>(cpu.data_ptr()), cpu.nbytes());
  }
  EXPECT_EQ(loaded, Bytes(*latest));
}

}  // namespace
}  // namespace envtune
