// WeightPublisher on a CPU policy: per-tensor snapshots published version by version, each a
// copy that later steps do not change, with errors from the store and from bad dtypes.
#include "learner/weight_publisher.h"

#include <gtest/gtest.h>

#include <cstring>

#include "model/qwen2.h"
#include "tests/actor/tiny_policy.h"

namespace envtune {
namespace {

std::string Bytes(const WeightSnapshot& s) {
  std::string out;
  for (std::string_view t : s.tensors) out.append(t);
  return out;
}

TEST(WeightPublisher, PublishesPerTensorCopiesVersionByVersion) {
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(testing_actor::TinyConfig(97, false)));
  policy->InitRandom(1);
  WeightStore store;
  WeightPublisher publisher(&store, "");
  ASSERT_TRUE(publisher.Publish(*policy, 1, 0).ok());
  ASSERT_TRUE(publisher.Flush().ok());
  std::shared_ptr<const WeightSnapshot> v1 = store.Latest();
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(v1->version, 1u);
  ASSERT_EQ(v1->tensors.size(), static_cast<size_t>(v1->header.tensors_size()));
  // Tensor 0 is the first parameter's fp32 bytes.
  auto params = policy->StateDict();
  EXPECT_EQ(v1->header.tensors(0).name(), params[0].first);
  at::Tensor first = params[0].second.detach().contiguous();
  ASSERT_EQ(v1->tensors[0].size(), first.nbytes());
  EXPECT_EQ(std::memcmp(v1->tensors[0].data(), first.data_ptr(), first.nbytes()), 0);
  const std::string v1_bytes = Bytes(*v1);

  {
    at::NoGradGuard no_grad;
    for (auto& p : policy->parameters()) p.mul_(2.0);  // an optimizer step
  }
  ASSERT_TRUE(publisher.Publish(*policy, 2, 1).ok());
  ASSERT_TRUE(publisher.Flush().ok());
  EXPECT_EQ(store.version(), 2u);
  EXPECT_EQ(store.Latest()->learner_step, 1u);
  EXPECT_NE(Bytes(*store.Latest()), v1_bytes);
  EXPECT_EQ(Bytes(*v1), v1_bytes);  // a stream still serving version 1 sees version 1

  // Version 1's buffers are recycled once nobody holds them: not while `v1` is held.
  ASSERT_TRUE(publisher.Publish(*policy, 3, 2).ok());
  EXPECT_EQ(publisher.recycled(), 0);
  EXPECT_EQ(Bytes(*v1), v1_bytes);
  const std::string v3_bytes = Bytes(*store.Latest());
  v1.reset();
  {
    at::NoGradGuard no_grad;
    for (auto& p : policy->parameters()) p.add_(1.0);
  }
  ASSERT_TRUE(publisher.Publish(*policy, 4, 3).ok());  // into version 2's buffers (released)
  EXPECT_EQ(publisher.recycled(), 1);
  std::shared_ptr<const WeightSnapshot> v4 = store.Latest();
  EXPECT_EQ(v4->version, 4u);
  EXPECT_NE(Bytes(*v4), v3_bytes);
  at::Tensor first4 = policy->StateDict()[0].second.detach().contiguous();
  EXPECT_EQ(std::memcmp(v4->tensors[0].data(), first4.data_ptr(), first4.nbytes()), 0);

  // BF16 halves the bytes; an old version number and an unknown dtype are errors.
  WeightStore bf16_store;
  WeightPublisher bf16(&bf16_store, "BF16");
  ASSERT_TRUE(bf16.Publish(*policy, 1, 0).ok());
  EXPECT_EQ(bf16_store.Latest()->header.total_bytes() * 2, store.Latest()->header.total_bytes());
  EXPECT_EQ(publisher.Publish(*policy, 2, 2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.version(), 4u);
  WeightPublisher bad(&store, "F16");
  EXPECT_EQ(bad.Publish(*policy, 3, 2).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace envtune
