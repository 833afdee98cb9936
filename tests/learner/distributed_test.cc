// Data-parallel learner over c10d Gloo on loopback, two ranks as two threads: after one step on
// the sharded batch both ranks hold the same parameters as one rank that trained on the whole
// batch (1e-5), initial weights come from rank 0, and bytes broadcast from rank 0 arrive intact.
#include "learner/distributed.h"

#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/optimizer.h"
#include "learner/trainer.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::CloneParams;
using trainer_testing::FreeLoopbackPort;
using trainer_testing::MakeTrajectory;
using trainer_testing::MaxAbsDiff;
using trainer_testing::RunRanks;
using trainer_testing::TinyPolicy;
using trainer_testing::TinyPolicyIn;

std::vector<v1::Trajectory> Batch() {
  std::mt19937 rng(31);
  std::vector<v1::Trajectory> out;
  const double rewards[] = {1.0, 0.0, 0.25, 0.5, 0.0, 1.0};
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 4; ++i) {
      out.push_back(MakeTrajectory(absl::StrCat("g", g), i, 4, rewards[(g + i) % 6], 3 + g,
                                   4 + 3 * i + g, rng));
    }
  }
  return out;
}

TrainerOptions Options() {
  TrainerOptions o;
  o.lr = 1e-2;
  o.adam_eps = 1e-3;  // keeps the update smooth in the gradient: differences stay visible
  o.grpo.kl_coef = 0.1;
  o.micro_batch_tokens = 48;
  return o;
}

TEST(Distributed, SingleRankNeedsNoProcessGroup) {
  DistributedOptions o;
  auto d = Distributed::Create(o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->world_size(), 1);
  absl::StatusOr<std::string> b = (*d)->BroadcastBytes("abc", "test");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "abc");
  o.rank = 2;
  EXPECT_FALSE(Distributed::Create(o).ok());
  o.rank = 0;
  o.backend = "mpi";
  EXPECT_FALSE(Distributed::Create(o).ok());
}

// The NCCL branch is compiled into CI's build (a CUDA LibTorch with NCCL): asking for it on a
// machine without a GPU fails at once, naming the device, instead of "unimplemented".
TEST(Distributed, NcclWithoutAGpuNamesTheMissingDevice) {
  if (VisibleCudaDevices() > 0) GTEST_SKIP() << "a GPU is visible here; see qwen2_gpu_test";
  for (const char* device : {"", "cuda", "cuda:1"}) {
    DistributedOptions o;
    o.backend = "nccl";
    o.device = device;
    o.world_size = 2;
    o.rank = 1;
    o.timeout = absl::Seconds(1);
    absl::StatusOr<std::unique_ptr<Distributed>> d = Distributed::Create(o);
    ASSERT_FALSE(d.ok()) << device;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition) << d.status();
    const std::string want = std::string(device) == "cuda:1" ? "'cuda:1'" : "'cuda:0'";
    EXPECT_THAT(d.status().message(), testing::HasSubstr(want)) << d.status();
    EXPECT_THAT(d.status().message(), testing::Not(testing::HasSubstr("nimplemented")));
#ifdef ENVTUNE_WITH_NCCL
    EXPECT_THAT(d.status().message(), testing::HasSubstr("no CUDA device is visible"));
#endif
  }
  DistributedOptions cpu;
  cpu.backend = "nccl";
  cpu.device = "cpu";
  absl::StatusOr<std::unique_ptr<Distributed>> d = Distributed::Create(cpu);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), testing::HasSubstr("needs a CUDA device, got 'cpu'"));
}

TEST(Distributed, TwoRanksEqualOneRankOnTheWholeBatch) {
  // One process on the whole batch.
  std::vector<torch::Tensor> single;
  StepMetrics single_metrics;
  {
    auto policy = TinyPolicy(5);
    auto reference = TinyPolicy(6);
    absl::StatusOr<TrainBatch> batch = BuildTrainBatch(Batch(), 1, Options().grpo);
    ASSERT_TRUE(batch.ok());
    auto trainer = Trainer::Create(policy, reference, Options());
    ASSERT_TRUE(trainer.ok());
    auto m = (*trainer)->Step(*batch);
    ASSERT_TRUE(m.ok()) << m.status();
    single_metrics = *m;
    single = CloneParams(*policy);
  }
  const int port = FreeLoopbackPort();
  std::vector<std::vector<torch::Tensor>> result(2);
  std::vector<absl::Status> status(2);
  std::vector<StepMetrics> metrics(2);
  std::vector<size_t> shard_items(2);
  auto run = [&](int rank) {
    absl::Status& s = status[static_cast<size_t>(rank)];
    DistributedOptions o;
    o.world_size = 2;
    o.rank = rank;
    o.master_port = port;
    o.timeout = absl::Seconds(60);
    auto dist = Distributed::Create(o);
    if (!dist.ok()) {
      s = dist.status();
      return;
    }
    // Rank 1 starts from other weights: rank 0's are broadcast.
    auto policy = TinyPolicy(rank == 0 ? 5 : 99);
    auto reference = TinyPolicy(6);
    if (s = (*dist)->BroadcastParameters(*policy); !s.ok()) return;
    std::string bytes;
    if (rank == 0) {
      absl::StatusOr<TrainBatch> batch = BuildTrainBatch(Batch(), 1, Options().grpo);
      if (!batch.ok()) {
        s = batch.status();
        return;
      }
      bytes = SerializeTrainBatch(*batch);
    }
    absl::StatusOr<std::string> received = (*dist)->BroadcastBytes(bytes, "batch");
    if (!received.ok()) {
      s = received.status();
      return;
    }
    absl::StatusOr<TrainBatch> batch = ParseTrainBatch(*received);
    if (!batch.ok()) {
      s = batch.status();
      return;
    }
    TrainBatch shard = ShardTrainBatch(*batch, 2)[static_cast<size_t>(rank)];
    shard_items[static_cast<size_t>(rank)] = shard.items.size();
    auto trainer = Trainer::Create(policy, reference, Options(), dist->get());
    if (!trainer.ok()) {
      s = trainer.status();
      return;
    }
    auto m = (*trainer)->Step(shard);
    if (!m.ok()) {
      s = m.status();
      return;
    }
    metrics[static_cast<size_t>(rank)] = *m;
    result[static_cast<size_t>(rank)] = CloneParams(*policy);
  };
  std::thread r0(run, 0), r1(run, 1);
  r0.join();
  r1.join();
  ASSERT_TRUE(status[0].ok()) << status[0];
  ASSERT_TRUE(status[1].ok()) << status[1];
  EXPECT_GT(shard_items[0], 0u);
  EXPECT_GT(shard_items[1], 0u);
  EXPECT_EQ(shard_items[0] + shard_items[1], 12u);
  double moved = 0, diff = 0, rank_diff = 0;
  std::vector<torch::Tensor> init = CloneParams(*TinyPolicy(5));
  for (size_t i = 0; i < single.size(); ++i) {
    moved = std::max(moved, MaxAbsDiff(single[i], init[i]));
    diff = std::max(diff, MaxAbsDiff(single[i], result[0][i]));
    rank_diff = std::max(rank_diff, MaxAbsDiff(result[0][i], result[1][i]));
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_LE(diff, 1e-5);
  EXPECT_EQ(rank_diff, 0.0);  // identical optimiser steps on every rank
  for (int r = 0; r < 2; ++r) {
    EXPECT_NEAR(metrics[r].loss, single_metrics.loss, 1e-6);
    EXPECT_NEAR(metrics[r].grad_norm, single_metrics.grad_norm, 1e-5 * single_metrics.grad_norm);
    EXPECT_NEAR(metrics[r].kl, single_metrics.kl, 1e-7);
    EXPECT_DOUBLE_EQ(metrics[r].loss_tokens, single_metrics.loss_tokens);
    EXPECT_DOUBLE_EQ(metrics[r].tokens, single_metrics.tokens);
  }
}

// ZeRO-2 (learner/optimizer.h): 1, 2 and 4 Gloo ranks with sharded masters, moments and
// gradients end, after several steps, with the weights of one unsharded rank that trained on
// the whole batch (fp32 tolerance), every rank holds the same weights, and each rank's optimizer
// state is 1/N of the whole (measured bytes; padding of each bucket to N slices aside). Small
// buckets make parameters straddle buckets and ranks.
struct ShardingRun {
  std::vector<std::vector<torch::Tensor>> params;  // per rank
  std::vector<int64_t> state_bytes, gradient_bytes;
  std::vector<StepMetrics> metrics;
};

constexpr int kShardingSteps = 3;
constexpr int64_t kBucket = 1000;

TrainerOptions ShardingOptions(int zero_stage, torch::ScalarType dtype) {
  TrainerOptions o = Options();
  o.zero_stage = zero_stage;
  o.bucket_elements = kBucket;
  if (dtype != torch::kFloat32) o.lr = 1e-3;  // bf16 parameters: steps above their spacing
  return o;
}

// `world` ranks as threads; world 0 = one process without a group (the unsharded baseline).
ShardingRun RunSharded(int world, int zero_stage, torch::ScalarType dtype) {
  const int ranks = std::max(world, 1);
  ShardingRun run;
  run.params.resize(ranks);
  run.state_bytes.resize(ranks);
  run.gradient_bytes.resize(ranks);
  run.metrics.resize(ranks);
  auto body = [&](int rank, Distributed* dist) -> absl::Status {
    auto policy = TinyPolicyIn(5, dtype);
    auto reference = TinyPolicyIn(6, dtype);
    auto trainer = Trainer::Create(policy, reference, ShardingOptions(zero_stage, dtype), dist);
    if (!trainer.ok()) return trainer.status();
    absl::StatusOr<TrainBatch> batch = BuildTrainBatch(Batch(), 1, Options().grpo);
    if (!batch.ok()) return batch.status();
    TrainBatch shard = world > 1 ? ShardTrainBatch(*batch, world)[rank] : *batch;
    for (int step = 0; step < kShardingSteps; ++step) {
      auto m = (*trainer)->Step(shard);
      if (!m.ok()) return m.status();
      run.metrics[rank] = *m;
    }
    run.params[rank] = CloneParams(*policy);
    run.state_bytes[rank] = (*trainer)->optimizer().StateBytes();
    run.gradient_bytes[rank] = (*trainer)->optimizer().GradientBytes();
    return absl::OkStatus();
  };
  const std::vector<absl::Status> status = RunRanks(ranks, /*with_group=*/world > 0, body);
  for (int r = 0; r < ranks; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  return run;
}

int64_t PolicyElements() {
  int64_t n = 0;
  for (const auto& p : TinyPolicy(5)->parameters()) n += p.numel();
  return n;
}

TEST(Sharding, OneTwoAndFourRanksEqualOneUnshardedRank) {
  const ShardingRun single = RunSharded(/*world=*/0, /*zero_stage=*/0, torch::kFloat32);
  ASSERT_EQ(single.params[0].size(), CloneParams(*TinyPolicy(5)).size());
  const int64_t n = PolicyElements();
  const int64_t buckets = (n + kBucket - 1) / kBucket;
  EXPECT_EQ(single.state_bytes[0], 8 * n);  // fp32: moments only, the parameters are optimised
  double moved = 0;
  const std::vector<torch::Tensor> init = CloneParams(*TinyPolicy(5));
  for (size_t i = 0; i < init.size(); ++i) {
    moved = std::max(moved, MaxAbsDiff(single.params[0][i], init[i]));
  }
  EXPECT_GT(moved, 1e-3);
  for (int world : {1, 2, 4}) {
    SCOPED_TRACE(absl::StrCat(world, " sharded ranks"));
    const ShardingRun sharded = RunSharded(world, /*zero_stage=*/2, torch::kFloat32);
    for (int r = 0; r < world; ++r) {
      if (sharded.params[r].empty()) continue;
      double diff = 0, rank_diff = 0;
      for (size_t i = 0; i < init.size(); ++i) {
        diff = std::max(diff, MaxAbsDiff(single.params[0][i], sharded.params[r][i]));
        rank_diff = std::max(rank_diff, MaxAbsDiff(sharded.params[0][i], sharded.params[r][i]));
      }
      EXPECT_LE(diff, 1e-5) << "rank " << r;
      EXPECT_EQ(rank_diff, 0.0) << "rank " << r;
      // fp32 masters + two moments, and the fp32 gradient shard: 12 and 4 bytes per owned
      // element; a rank owns ceil(bucket / world) of every bucket.
      const int64_t owned_max = n / world + buckets;
      EXPECT_GE(sharded.state_bytes[r], 12 * (n / world)) << "rank " << r;
      EXPECT_LE(sharded.state_bytes[r], 12 * owned_max) << "rank " << r;
      EXPECT_GE(sharded.gradient_bytes[r], 4 * (n / world)) << "rank " << r;
      EXPECT_LE(sharded.gradient_bytes[r], 4 * owned_max) << "rank " << r;
      EXPECT_NEAR(sharded.metrics[r].grad_norm, single.metrics[0].grad_norm,
                  1e-5 * single.metrics[0].grad_norm);
      EXPECT_NEAR(sharded.metrics[r].loss, single.metrics[0].loss, 1e-5);
    }
  }
}

// bf16 parameters: the all-gather carries bf16, masters stay fp32 on their owners; two sharded
// ranks end where one rank with replicated fp32 masters does (to bf16's rounding of masters that
// agree to fp32 rounding), and hold the same weights.
TEST(Sharding, Bf16TwoRanksEqualOneRankWithFp32Masters) {
  const ShardingRun single = RunSharded(/*world=*/0, /*zero_stage=*/0, torch::kBFloat16);
  const ShardingRun sharded = RunSharded(/*world=*/2, /*zero_stage=*/2, torch::kBFloat16);
  ASSERT_FALSE(sharded.params[1].empty());
  const std::vector<torch::Tensor> init = CloneParams(*TinyPolicyIn(5, torch::kBFloat16));
  double moved = 0, diff = 0, rank_diff = 0;
  for (size_t i = 0; i < init.size(); ++i) {
    moved = std::max(moved, MaxAbsDiff(single.params[0][i], init[i]));
    // One bf16 spacing at most (|w| < 0.5 here: 2^-9), where masters round differently.
    diff = std::max(diff, MaxAbsDiff(single.params[0][i], sharded.params[0][i]));
    rank_diff = std::max(rank_diff, MaxAbsDiff(sharded.params[0][i], sharded.params[1][i]));
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_LE(diff, 1.0 / 512);
  EXPECT_EQ(rank_diff, 0.0);
  const int64_t n = PolicyElements();
  EXPECT_EQ(single.state_bytes[0], 12 * n);  // fp32 masters + moments, whole
  EXPECT_LE(sharded.state_bytes[0], 12 * (n / 2 + (n + kBucket - 1) / kBucket));
}

TEST(Distributed, MissingPeerTimesOutWithAClearError) {
  DistributedOptions o;
  o.world_size = 2;
  o.rank = 1;  // nobody serves the store
  o.master_port = FreeLoopbackPort();
  o.timeout = absl::Seconds(2);
  auto d = Distributed::Create(o);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("rank 1/2"), std::string_view::npos) << d.status();
}

}  // namespace
}  // namespace envtune
