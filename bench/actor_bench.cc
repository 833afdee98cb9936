// Actor rollout throughput: episodes/s and generated tokens/s of Rollout with a tiny random
// Qwen2 policy (hidden 16, the real 151k Qwen vocabulary) against in-process fake env replicas
// (tests/actor/fake_env.h). Measures the actor's own overhead: batching, tokenizer, chat
// rendering, env RPCs; the policy is deliberately tiny.
//
//   bench_actor_bench [episodes=64] [concurrency=32] [max_new_tokens=16] [turns=3]
//                     [steps_per_turn=2] [replicas=2] [step_delay_ms=0] [stop=1]
// Run from the repository root (or set ENVTUNE_SOURCE_DIR) so the tokenizer is found.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "actor/rollout.h"
#include "tests/actor/fake_env.h"
#include "tests/actor/tiny_policy.h"

int main(int argc, char** argv) {
  using namespace envtune;
  auto arg = [&](int i, int fallback) { return argc > i ? std::atoi(argv[i]) : fallback; };
  const int episodes = arg(1, 64), concurrency = arg(2, 32), max_new = arg(3, 16);
  const int turns = arg(4, 3), steps = arg(5, 2), replicas = arg(6, 2), delay_ms = arg(7, 0);
  const bool stop = arg(8, 1) != 0;
  std::unique_ptr<Tokenizer> tokenizer = testing_actor::LoadTokenizer();
  if (tokenizer == nullptr) {
    std::fprintf(stderr, "tokenizer not found at %s (run from the repo root)\n",
                 testing_actor::TokenizerPath().c_str());
    return 1;
  }
  auto log = std::make_shared<testing_env::SharedLog>();
  std::vector<std::unique_ptr<testing_env::FakeEnvServer>> servers;
  std::string target;
  for (int i = 0; i < replicas; ++i) {
    servers.push_back(std::make_unique<testing_env::FakeEnvServer>(
        log, std::chrono::milliseconds(delay_ms)));
    target += (i ? "," : "") + servers.back()->address();
  }
  EnvClient env(target);
  RolloutOptions options;
  options.concurrency = concurrency;
  options.max_new_tokens = max_new;
  options.seed = 1;
  Rollout rollout(tokenizer.get(), &env, options);
  const TokenId im_end = *tokenizer->TokenToId("<|im_end|>");
  auto policy = testing_actor::TinyPolicy(tokenizer->vocab_size(), 1, stop ? im_end : -1);
  const std::string task = "fake_" + std::to_string(turns) + "_" + std::to_string(steps);
  std::vector<EpisodeSpec> specs;
  for (int i = 0; i < episodes; ++i) {
    EpisodeSpec s;
    s.episode_id = "bench/" + std::to_string(i);
    s.lease_id = s.group_id = "bench";
    s.group_size = episodes;
    s.task_id = task;
    s.stage = 1;
    s.options.set_seed(i);
    specs.push_back(s);
  }
  const auto start = std::chrono::steady_clock::now();
  auto results = rollout.Run(*policy, 1, specs);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!results.ok()) {
    std::fprintf(stderr, "rollout failed: %s\n", std::string(results.status().message()).c_str());
    return 1;
  }
  int failed = 0;
  int64_t tokens = 0;
  for (const auto& r : *results) {
    failed += r.trajectory.failed();
    tokens += r.trajectory.token_ids_size();
  }
  std::printf(
      "episodes=%d concurrency=%d max_new_tokens=%d task=%s replicas=%d step_delay_ms=%d\n"
      "time %.2f s | %.2f episodes/s | %.1f generated tokens/s | %.1f total tokens/s\n"
      "generated %lld tokens, %lld generate batches (max %lld rows), %d failed\n",
      episodes, concurrency, max_new, task.c_str(), replicas, delay_ms, seconds,
      episodes / seconds, rollout.tokens_generated() / seconds, tokens / seconds,
      static_cast<long long>(rollout.tokens_generated()),
      static_cast<long long>(rollout.generate_batches()),
      static_cast<long long>(rollout.max_batch_rows()), failed);
  return failed == 0 ? 0 : 1;
}
