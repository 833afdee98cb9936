// Learner throughput: GRPO optimiser steps on synthetic trajectories with tiny random Qwen2
// policies (CPU unless --cuda). Prints tokens/s (all tokens forward+backward) per config.
//
//   bench_learner [--steps N] [--threads N] [--cuda]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "learner/trainer.h"
#include "model/config.h"
#include "model/qwen2.h"

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

ModelConfig MakeConfig(const BenchConfig& b) {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.model_type = "qwen2";
  c.vocab_size = b.vocab;
  c.hidden_size = b.hidden;
  c.intermediate_size = b.intermediate;
  c.num_hidden_layers = b.layers;
  c.num_attention_heads = b.heads;
  c.num_key_value_heads = b.kv_heads;
  c.head_dim = b.hidden / b.heads;
  c.max_position_embeddings = 32768;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  return c;
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

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  int steps = 3;
  bool cuda = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      torch::set_num_threads(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--cuda") == 0) {
      cuda = true;
    } else {
      std::fprintf(stderr, "usage: bench_learner [--steps N] [--threads N] [--cuda]\n");
      return 2;
    }
  }
  std::printf("learner GRPO step throughput (%s, torch threads %d, %d steps each)\n",
              cuda ? "cuda" : "cpu", torch::get_num_threads(), steps);
  return envtune::Run(std::max(steps, 1), cuda);
}
