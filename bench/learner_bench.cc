// Learner throughput: GRPO optimiser steps on synthetic trajectories with tiny random Qwen2
// policies (CPU unless --cuda). Prints tokens/s (all tokens forward+backward) per config.
// --ranks: data parallelism over c10d Gloo on loopback, ranks as threads of this process (one
// torch thread each), the same global batch split over 1, 2 and 4 ranks, ZeRO-2 and
// replicated; tokens/s of the whole batch per step (the slowest rank's time).
//
//   bench_learner [--steps N] [--threads N] [--cuda] [--ranks]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "learner/distributed.h"
#include "learner/optimizer.h"
#include "learner/trainer.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

struct BenchConfig {
  const char* name;
  int64_t vocab, hidden, intermediate, layers, heads, kv_heads;
  int groups, group_size, prompt_tokens, generated_tokens;
  bool checkpointing;
  bool share_prefix = true;
  int64_t micro_batch_tokens = 8192;
};

// The tiny model's architecture (model/model_spec.h) at the bench's sizes.
ModelConfig MakeConfig(const BenchConfig& b) {
  return TinyQwen2Config({.vocab_size = b.vocab,
                          .hidden_size = b.hidden,
                          .intermediate_size = b.intermediate,
                          .num_hidden_layers = b.layers,
                          .num_attention_heads = b.heads,
                          .num_key_value_heads = b.kv_heads});
}

std::vector<v1::Trajectory> MakeBatch(const BenchConfig& b, std::mt19937& rng) {
  std::vector<v1::Trajectory> out;
  std::uniform_int_distribution<int> token(0, static_cast<int>(b.vocab) - 1);
  std::uniform_real_distribution<double> reward(0, 1);
  for (int g = 0; g < b.groups; ++g) {
    // A GRPO group's rollouts share their prompt (the scorer runs it once per micro-batch).
    std::vector<int> prompt;
    for (int k = 0; k < b.prompt_tokens; ++k) prompt.push_back(token(rng));
    for (int i = 0; i < b.group_size; ++i) {
      v1::Trajectory t;
      t.set_episode_id(absl::StrCat(g, "/", i));
      t.set_group_id(absl::StrCat(g));
      t.set_group_size(static_cast<uint32_t>(b.group_size));
      t.set_stage(2);
      t.set_policy_version(1);
      std::string mask;
      for (int k = 0; k < b.prompt_tokens + b.generated_tokens; ++k) {
        t.add_token_ids(k < b.prompt_tokens ? prompt[k] : token(rng));
        bool loss = k >= b.prompt_tokens;
        mask.push_back(loss ? 1 : 0);
        t.add_behaviour_logprobs(loss ? -3.0f : 0.0f);
      }
      t.set_loss_mask(mask);
      t.set_reward(reward(rng));
      out.push_back(std::move(t));
    }
  }
  return out;
}

int Run(int steps, bool cuda) {
  const BenchConfig configs[] = {
      {"tiny-h64-v2k", 2048, 64, 128, 2, 4, 2, 8, 4, 256, 256, false},
      {"tiny-h64-qwenvocab", 151936, 64, 128, 2, 4, 2, 2, 4, 256, 256, false},
      // The tiny default's real shape: BFCL prompts of ~6k tokens, ~300 assistant tokens, the
      // group's prompt scored once (shared) or per rollout.
      {"tiny-6k-prompt-shared", 151936, 64, 128, 2, 4, 2, 2, 4, 6000, 300, false, true, 16384},
      {"tiny-6k-prompt-unshared", 151936, 64, 128, 2, 4, 2, 2, 4, 6000, 300, false, false, 16384},
      {"small-h256-l4-v32k", 32768, 256, 768, 4, 4, 2, 2, 4, 512, 512, false},
      {"small-h256-l4-v32k-ckpt", 32768, 256, 768, 4, 4, 2, 2, 4, 512, 512, true},
  };
  std::printf("%-26s %8s %10s %12s %12s\n", "config", "params", "tokens", "s/step", "tokens/s");
  for (const BenchConfig& b : configs) {
    auto policy = std::make_shared<PolicyImpl>(
        PolicyOptions(MakeConfig(b)).device(cuda ? c10::Device(c10::kCUDA) : c10::kCPU));
    policy->InitRandom(1);
    int64_t params = 0;
    for (const auto& p : policy->parameters()) params += p.numel();
    TrainerOptions options;
    options.grpo.kl_coef = 0;
    options.micro_batch_tokens = b.micro_batch_tokens;
    options.share_prefix = b.share_prefix;
    options.gradient_checkpointing = b.checkpointing;
    auto trainer = Trainer::Create(policy, nullptr, options);
    if (!trainer.ok()) {
      std::fprintf(stderr, "%s: %s\n", b.name, std::string(trainer.status().message()).c_str());
      return 1;
    }
    std::mt19937 rng(7);
    absl::StatusOr<TrainBatch> batch = BuildTrainBatch(MakeBatch(b, rng), 1);
    if (!batch.ok()) return 1;
    (void)(*trainer)->Step(*batch);  // warm-up
    double seconds = 0, tokens = 0;
    for (int s = 0; s < steps; ++s) {
      absl::StatusOr<StepMetrics> m = (*trainer)->Step(*batch);
      if (!m.ok()) {
        std::fprintf(stderr, "%s: %s\n", b.name, std::string(m.status().message()).c_str());
        return 1;
      }
      seconds += m->seconds;
      tokens += m->tokens;
    }
    std::printf("%-26s %7.2fM %10.0f %12.3f %12.0f\n", b.name, params / 1e6, tokens / steps,
                seconds / steps, tokens / seconds);
  }
  return 0;
}

int RunRanks(int steps) {
  torch::set_num_threads(1);
  // 8 groups x 4 rollouts of 512 + 512 tokens: 32k tokens per step, two micro-batches per rank
  // at 4 ranks.
  const BenchConfig b = {"small-h256-l4-v32k", 32768, 256, 768, 4, 4, 2, 8, 4, 512, 512, false,
                         true, 4096};
  std::mt19937 rng(7);
  absl::StatusOr<TrainBatch> batch = BuildTrainBatch(MakeBatch(b, rng), 1);
  if (!batch.ok()) return 1;
  std::printf("%-7s %-10s %10s %12s %12s %16s\n", "ranks", "layout", "tokens", "s/step",
              "tokens/s", "optimizer MiB/rank");
  for (int world : {1, 2, 4}) {
    for (int zero : {2, 0}) {
      if (world == 1 && zero == 2) continue;  // one rank: the replicated path, nothing to shard
      const int port = trainer_testing::FreeLoopbackPort();
      std::vector<double> seconds(world, 0);
      std::vector<int64_t> state(world, 0);
      std::vector<std::string> errors(world);
      double tokens = 0;
      auto rank_main = [&](int rank) {
        DistributedOptions o;
        o.world_size = world;
        o.rank = rank;
        o.master_port = port;
        auto dist = Distributed::Create(o);
        if (!dist.ok()) {
          errors[rank] = std::string(dist.status().message());
          return;
        }
        auto policy = std::make_shared<PolicyImpl>(PolicyOptions(MakeConfig(b)));
        policy->InitRandom(1);
        TrainerOptions options;
        options.grpo.kl_coef = 0;
        options.micro_batch_tokens = b.micro_batch_tokens;
        options.zero_stage = zero;
        auto trainer = Trainer::Create(policy, nullptr, options, dist->get());
        if (!trainer.ok()) {
          errors[rank] = std::string(trainer.status().message());
          return;
        }
        const TrainBatch shard = ShardTrainBatch(*batch, world)[rank];
        for (int s = 0; s <= steps; ++s) {  // the first is a warm-up
          absl::StatusOr<StepMetrics> m = (*trainer)->Step(shard);
          if (!m.ok()) {
            errors[rank] = std::string(m.status().message());
            return;
          }
          if (s > 0) seconds[rank] += m->seconds;
          if (rank == 0 && s > 0) tokens += m->tokens;
        }
        state[rank] = (*trainer)->optimizer().StateBytes() +
                      (*trainer)->optimizer().GradientBytes();
      };
      std::vector<std::thread> threads;
      for (int r = 0; r < world; ++r) threads.emplace_back(rank_main, r);
      for (auto& t : threads) t.join();
      for (int r = 0; r < world; ++r) {
        if (!errors[r].empty()) {
          std::fprintf(stderr, "%d ranks, rank %d: %s\n", world, r, errors[r].c_str());
          return 1;
        }
      }
      const double slowest = *std::max_element(seconds.begin(), seconds.end()) / steps;
      std::printf("%-7d %-10s %10.0f %12.3f %12.0f %16.1f\n", world,
                  world == 1 ? "one" : (zero == 2 ? "zero-2" : "replicated"), tokens / steps,
                  slowest, tokens / steps / slowest, state[0] / 1048576.0);
    }
  }
  return 0;
}

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  int steps = 3;
  bool cuda = false;
  bool ranks = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      torch::set_num_threads(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--cuda") == 0) {
      cuda = true;
    } else if (std::strcmp(argv[i], "--ranks") == 0) {
      ranks = true;
    } else {
      std::fprintf(stderr, "usage: bench_learner [--steps N] [--threads N] [--cuda] [--ranks]\n");
      return 2;
    }
  }
  if (ranks) {
    std::printf("learner data parallelism, Gloo on loopback, ranks as threads (%d steps)\n",
                std::max(steps, 1));
    return envtune::RunRanks(std::max(steps, 1));
  }
  std::printf("learner GRPO step throughput (%s, torch threads %d, %d steps each)\n",
              cuda ? "cuda" : "cpu", torch::get_num_threads(), steps);
  return envtune::Run(std::max(steps, 1), cuda);
}
