// Weight snapshots: serialise -> build / refresh round trips (F32 exact, BF16 as converted),
// header validation, and PolicyClient fetching through a real in-process LearnerService
// (chunk reassembly, not-modified, version waits with deadlines).
#include "model/weights_io.h"

#include <gtest/gtest.h>

#include "actor/policy_client.h"
#include "learner/learner_service.h"
#include "model/qwen2.h"
#include "tests/actor/tiny_policy.h"
#include "tests/services/test_server.h"

namespace envtune {
namespace {

using testing_actor::TinyConfig;

std::shared_ptr<PolicyImpl> Random(uint64_t seed, bool tie = false, int64_t vocab = 97) {
  auto p = std::make_shared<PolicyImpl>(PolicyOptions(TinyConfig(vocab, tie)));
  p->InitRandom(seed);
  p->eval();
  return p;
}

void ExpectSameParams(PolicyImpl& a, PolicyImpl& b, c10::ScalarType as = c10::kFloat) {
  auto pa = a.StateDict();
  auto pb = b.StateDict();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].first, pb[i].first);
    at::Tensor expected = pa[i].second.to(as).to(c10::kFloat);
    EXPECT_TRUE(at::equal(expected, pb[i].second.to(c10::kFloat))) << pa[i].first;
  }
}

TEST(WeightsIo, F32RoundTripIsExact) {
  for (bool tie : {false, true}) {
    auto policy = Random(1, tie);
    auto weights = SerializePolicyWeights(*policy, "F32");
    ASSERT_TRUE(weights.ok()) << weights.status();
    EXPECT_EQ(weights->header.total_bytes(), weights->data.size());
    EXPECT_EQ(static_cast<size_t>(weights->header.tensors_size()), policy->StateDict().size());
    EXPECT_EQ(weights->header.tensors(0).name(), "model.embed_tokens.weight");
    bool has_lm_head = false;
    for (const auto& t : weights->header.tensors()) has_lm_head |= t.name() == "lm_head.weight";
    EXPECT_EQ(has_lm_head, !tie);
    auto built = BuildPolicyFromWeights(weights->header, weights->data);
    ASSERT_TRUE(built.ok()) << built.status();
    EXPECT_EQ((*built)->dtype(), c10::kFloat);
    ExpectSameParams(*policy, **built);
    at::Tensor ids = at::tensor(std::vector<int64_t>{3, 5, 7, 11}, at::kLong).unsqueeze(0);
    EXPECT_TRUE(at::equal(policy->forward(ids), (*built)->forward(ids)));
  }
}

TEST(WeightsIo, Bf16SnapshotHoldsConvertedValues) {
  auto policy = Random(2);
  auto weights = SerializePolicyWeights(*policy, "BF16");
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->header.tensors(0).dtype(), "BF16");
  EXPECT_NE(weights->header.config_json().find("bfloat16"), std::string::npos);
  auto built = BuildPolicyFromWeights(weights->header, weights->data);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ((*built)->dtype(), c10::kBFloat16);
  ExpectSameParams(*policy, **built, c10::kBFloat16);
  WeightsLoadOptions fp32;
  fp32.dtype = "float32";
  auto widened = BuildPolicyFromWeights(weights->header, weights->data, fp32);
  ASSERT_TRUE(widened.ok()) << widened.status();
  EXPECT_EQ((*widened)->dtype(), c10::kFloat);
  ExpectSameParams(*policy, **widened, c10::kBFloat16);
}

TEST(WeightsIo, RefreshInPlaceAndArchitectureCheck) {
  auto source = Random(3);
  auto target = Random(4);
  auto weights = SerializePolicyWeights(*source);
  ASSERT_TRUE(weights.ok());
  ASSERT_TRUE(SameArchitecture(*target, weights->header));
  ASSERT_TRUE(RefreshPolicyFromWeights(*target, weights->header, weights->data).ok());
  ExpectSameParams(*source, *target);
  auto other = Random(5, false, 131);  // another vocabulary
  EXPECT_FALSE(SameArchitecture(*other, weights->header));
  EXPECT_EQ(RefreshPolicyFromWeights(*other, weights->header, weights->data).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(WeightsIo, BadHeadersAreRejected) {
  auto policy = Random(6);
  auto weights = SerializePolicyWeights(*policy);
  ASSERT_TRUE(weights.ok());
  EXPECT_TRUE(ValidateWeightsHeader(weights->header, weights->data.size()).ok());
  EXPECT_FALSE(ValidateWeightsHeader(weights->header, weights->data.size() - 1).ok());
  EXPECT_FALSE(BuildPolicyFromWeights(weights->header,
                                      std::string_view(weights->data).substr(1)).ok());
  v1::WeightsHeader bad = weights->header;
  bad.mutable_tensors(0)->set_dtype("F16");
  EXPECT_NE(ValidateWeightsHeader(bad, weights->data.size()).message().find("dtype"),
            std::string::npos);
  bad = weights->header;
  bad.mutable_tensors(1)->set_byte_size(bad.tensors(1).byte_size() + 4);
  bad.set_total_bytes(bad.total_bytes() + 4);
  EXPECT_NE(ValidateWeightsHeader(bad, bad.total_bytes()).message().find(bad.tensors(1).name()),
            std::string::npos);
  bad = weights->header;
  bad.mutable_tensors(1)->set_name(bad.tensors(0).name());
  EXPECT_FALSE(ValidateWeightsHeader(bad, weights->data.size()).ok());
  bad = weights->header;
  bad.set_config_json("{not json");
  EXPECT_FALSE(BuildPolicyFromWeights(bad, weights->data).ok());
  bad = weights->header;
  bad.mutable_tensors()->RemoveLast();
  bad.set_total_bytes(weights->data.size() - weights->header.tensors().rbegin()->byte_size());
  auto missing = BuildPolicyFromWeights(
      bad, std::string_view(weights->data).substr(0, bad.total_bytes()));
  EXPECT_FALSE(missing.ok());
}

std::shared_ptr<const WeightSnapshot> Snapshot(PolicyImpl& policy, uint64_t version) {
  auto weights = SnapshotPolicyWeights(policy);
  EXPECT_TRUE(weights.ok());
  auto snapshot = std::make_shared<WeightSnapshot>();
  snapshot->version = version;
  snapshot->learner_step = version;
  snapshot->header = weights->header;
  snapshot->tensors = weights->tensors;
  snapshot->storage = weights->storage;
  return snapshot;
}

// The learner's per-tensor snapshot is a copy (later training does not change it), and the
// actor's receiver puts a stream cut into chunks of any size into the right tensors.
TEST(WeightsReceiver, ChunksOfAnySizeLandInTheirTensors) {
  auto policy = Random(3), same = Random(3);
  auto buffers = SnapshotPolicyWeights(*policy, "F32");
  ASSERT_TRUE(buffers.ok()) << buffers.status();
  ASSERT_EQ(buffers->tensors.size(), static_cast<size_t>(buffers->header.tensors_size()));
  std::string stream;
  for (int i = 0; i < buffers->header.tensors_size(); ++i) {
    EXPECT_EQ(buffers->tensors[i].size(), buffers->header.tensors(i).byte_size());
    stream.append(buffers->tensors[i]);
  }
  EXPECT_EQ(stream.size(), buffers->header.total_bytes());
  {
    at::NoGradGuard no_grad;
    for (auto& p : policy->parameters()) p.add_(1.0);  // "the next training step"
  }
  std::string after;
  for (std::string_view t : buffers->tensors) after.append(t);
  EXPECT_EQ(after, stream);

  std::unique_ptr<WeightsReceiver> reused;
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{333}, stream.size()}) {
    SCOPED_TRACE(chunk);
    auto receiver = WeightsReceiver::Create(buffers->header);
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    for (size_t offset = 0; offset < stream.size(); offset += chunk) {
      ASSERT_TRUE((*receiver)->Append(std::string_view(stream).substr(offset, chunk)).ok());
    }
    EXPECT_EQ((*receiver)->received(), (*receiver)->total());
    EXPECT_FALSE((*receiver)->pinned());  // a cpu policy
    auto built = (*receiver)->Build();
    ASSERT_TRUE(built.ok()) << built.status();
    ExpectSameParams(*same, **built);
    reused = std::move(*receiver);
  }
  // A later version of the same layout reuses the buffers and refreshes in place.
  auto next = Random(4);
  auto next_buffers = SnapshotPolicyWeights(*next, "F32");
  ASSERT_TRUE(reused->Reset(next_buffers->header).ok());
  EXPECT_EQ(reused->received(), 0u);
  // Refresh before every byte arrived is refused; more bytes than the header lists too.
  EXPECT_EQ(reused->Refresh(*same).code(), absl::StatusCode::kFailedPrecondition);
  for (std::string_view t : next_buffers->tensors) ASSERT_TRUE(reused->Append(t).ok());
  EXPECT_EQ(reused->Append("x").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(reused->Refresh(*same).ok());
  ExpectSameParams(*next, *same);

  v1::WeightsHeader bad = buffers->header;
  bad.mutable_tensors(0)->set_byte_size(bad.tensors(0).byte_size() + 4);
  EXPECT_EQ(WeightsReceiver::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  WeightsLoadOptions nowhere;
  nowhere.device = "tpu";
  EXPECT_FALSE(WeightsReceiver::Create(buffers->header, nowhere).ok());
}

TEST(PolicyClient, FetchesChunkedWeightsAndWaitsForVersions) {
  TrajectoryQueue queue(4);
  WeightStore store;
  LearnerServiceImpl service(&queue, &store);
  TestServer server({&service});
  PolicyClientOptions options;
  options.chunk_bytes = 1000;  // many chunks
  options.poll_interval = absl::Milliseconds(20);
  PolicyClient client(server.Channel(), server.address(), options);

  // Nothing published: a version wait fails in time, naming the learner and the phase.
  absl::Time start = absl::Now();
  absl::Status early = client.EnsureVersion(1, absl::Milliseconds(200));
  EXPECT_EQ(early.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(early.message().find("learner " + server.address()), std::string::npos) << early;
  EXPECT_NE(early.message().find("GetWeights"), std::string::npos);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  auto v1_policy = Random(7);
  ASSERT_TRUE(store.Publish(Snapshot(*v1_policy, 1)).ok());
  ASSERT_TRUE(client.EnsureVersion(1, absl::Seconds(10)).ok());
  EXPECT_EQ(client.version(), 1u);
  std::shared_ptr<PolicyImpl> held = client.policy();
  ExpectSameParams(*v1_policy, *held);
  // Not modified.
  auto again = client.Fetch();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 1u);

  // Version 2 arrives while the client waits for it; same architecture -> refreshed in place.
  auto v2_policy = Random(8);
  std::thread publisher([&] {
    absl::SleepFor(absl::Milliseconds(150));
    EXPECT_TRUE(store.Publish(Snapshot(*v2_policy, 2)).ok());
  });
  ASSERT_TRUE(client.EnsureVersion(2, absl::Seconds(10)).ok());
  publisher.join();
  EXPECT_EQ(client.version(), 2u);
  EXPECT_EQ(client.policy().get(), held.get());
  ExpectSameParams(*v2_policy, *held);

  absl::Status later = client.EnsureVersion(3, absl::Milliseconds(100));
  EXPECT_EQ(later.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(later.message().find("version 3"), std::string::npos) << later;
}

TEST(PolicyClient, UnreachableLearnerFailsWithPeerAndPhase) {
  PolicyClientOptions options;
  options.rpc_timeout = absl::Milliseconds(200);
  options.poll_interval = absl::Milliseconds(50);
  PolicyClient client("127.0.0.1:1", options);
  absl::Status st = client.EnsureVersion(0, absl::Milliseconds(300));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("learner 127.0.0.1:1"), std::string::npos) << st;
}

}  // namespace
}  // namespace envtune
