// Test helpers: the shipped Qwen tokenizer and tiny random Qwen2 policies over its vocabulary.
#ifndef ENVTUNE_TESTS_ACTOR_TINY_POLICY_H_
#define ENVTUNE_TESTS_ACTOR_TINY_POLICY_H_

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "model/config.h"
#include "model/qwen2.h"
#include "model/text/tokenizer.h"
#include "tests/model/tiny_test_model.h"

namespace envtune {
namespace testing_actor {

inline std::string SourceDir() {
  const char* dir = std::getenv("ENVTUNE_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

inline std::string TokenizerPath() {
  return SourceDir() + "/third_party/qwen-tokenizer/tokenizer.json";
}

// nullptr when the tokenizer file is missing (tests skip).
inline std::unique_ptr<Tokenizer> LoadTokenizer() {
  std::error_code ec;
  if (!std::filesystem::exists(TokenizerPath(), ec)) return nullptr;
  auto tokenizer = Tokenizer::FromFile(TokenizerPath());
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

inline ModelConfig TinyConfig(int64_t vocab, bool tie) {
  return TestTinyConfig(vocab, tie, /*max_positions=*/32768);
}

// A random policy. With `stop_id` >= 0 the policy is biased to emit `stop_id` about half of the
// time (every embedding gets a constant first coordinate that dominates the final hidden state,
// and only stop_id's lm_head row reads it), so replies end by themselves after a few tokens.
inline std::shared_ptr<PolicyImpl> TinyPolicy(int64_t vocab, uint64_t seed, int64_t stop_id = -1,
                                              double stop_weight = 2.7) {
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(TinyConfig(vocab, stop_id < 0)));
  policy->InitRandom(seed);
  if (stop_id >= 0) {
    at::NoGradGuard no_grad;
    policy->model->embed_weight.select(1, 0).fill_(1.0);
    policy->lm_head->weight.select(1, 0).fill_(0.0);
    policy->lm_head->weight[stop_id][0] = stop_weight;
  }
  policy->eval();
  return policy;
}

}  // namespace testing_actor
}  // namespace envtune

#endif  // ENVTUNE_TESTS_ACTOR_TINY_POLICY_H_
