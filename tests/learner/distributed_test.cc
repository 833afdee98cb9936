// Data-parallel learner over c10d Gloo on loopback, two ranks as two threads: after one step on
// the sharded batch both ranks hold the same parameters as one rank that trained on the whole
// batch (1e-5), initial weights come from rank 0, and bytes broadcast from rank 0 arrive intact.
#include "learner/distributed.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/trainer.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::MakeTrajectory;
using trainer_testing::MaxAbsDiff;
using trainer_testing::TinyPolicy;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 29517;
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

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

std::vector<torch::Tensor> Params(PolicyImpl& p) {
  std::vector<torch::Tensor> out;
  for (const auto& t : p.parameters()) out.push_back(t.detach().clone());
  return out;
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
    single = Params(*policy);
  }
  const int port = FreePort();
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
    result[static_cast<size_t>(rank)] = Params(*policy);
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
  std::vector<torch::Tensor> init = Params(*TinyPolicy(5));
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

TEST(Distributed, MissingPeerTimesOutWithAClearError) {
  DistributedOptions o;
  o.world_size = 2;
  o.rank = 1;  // nobody serves the store
  o.master_port = FreePort();
  o.timeout = absl::Seconds(2);
  auto d = Distributed::Create(o);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("rank 1/2"), std::string_view::npos) << d.status();
}

}  // namespace
}  // namespace envtune
