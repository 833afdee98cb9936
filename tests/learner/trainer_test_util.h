// Helpers for the trainer tests: tiny random Qwen2 policies and synthetic trajectories.
#ifndef ENVTUNE_TESTS_LEARNER_TRAINER_TEST_UTIL_H_
#define ENVTUNE_TESTS_LEARNER_TRAINER_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "envtune/v1/learner.pb.h"
#include "model/config.h"
#include "model/qwen2.h"

namespace envtune {
namespace trainer_testing {

inline ModelConfig TinyConfig(int64_t vocab = 64, bool tie = false) {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.model_type = "qwen2";
  c.vocab_size = vocab;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 4096;
  c.tie_word_embeddings = tie;
  c.qkv_bias = true;
  c.eos_token_ids = {vocab - 1};
  return c;
}

inline std::shared_ptr<PolicyImpl> TinyPolicy(uint64_t seed, int64_t vocab = 64, bool tie = false,
                                              double std = 0.02) {
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(TinyConfig(vocab, tie)));
  policy->InitRandom(seed, std);
  return policy;
}

// A trajectory of `prompt` prompt tokens then `generated` loss tokens drawn from `rng`, with
// behaviour log-probs set to `logprob` on the loss tokens.
inline v1::Trajectory MakeTrajectory(const std::string& group, int index, int group_size,
                                     double reward, int prompt, int generated, std::mt19937& rng,
                                     int64_t vocab = 64, uint64_t version = 1,
                                     float logprob = -4.0f) {
  v1::Trajectory t;
  t.set_episode_id(absl::StrCat(group, "/", index));
  t.set_lease_id(group);
  t.set_group_id(group);
  t.set_group_size(static_cast<uint32_t>(group_size));
  t.set_task_id("multi_turn_base_0");
  t.set_stage(2);
  t.set_policy_version(version);
  std::uniform_int_distribution<int> token(0, static_cast<int>(vocab) - 2);
  std::string mask;
  for (int i = 0; i < prompt + generated; ++i) {
    t.add_token_ids(token(rng));
    bool loss = i >= prompt;
    mask.push_back(loss ? 1 : 0);
    t.add_behaviour_logprobs(loss ? logprob : 0.0f);
  }
  t.set_loss_mask(mask);
  t.set_prompt_tokens(static_cast<uint32_t>(prompt));
  t.set_reward(reward);
  t.set_progress(reward);
  t.set_finish_reason("done");
  return t;
}

inline double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace trainer_testing
}  // namespace envtune

#endif  // ENVTUNE_TESTS_LEARNER_TRAINER_TEST_UTIL_H_
