// Test helper: the tiny model's architecture (model/model_spec.h) at the size unit tests use
// (hidden 16, intermediate 32, 2 layers, 2 heads, 1 key/value head, rope_theta 1e4).
#ifndef ENVTUNE_TESTS_MODEL_TINY_TEST_MODEL_H_
#define ENVTUNE_TESTS_MODEL_TINY_TEST_MODEL_H_

#include <cstdint>

#include "model/config.h"
#include "model/model_spec.h"

namespace envtune {

inline ModelConfig TestTinyConfig(int64_t vocab, bool tie, int64_t max_positions,
                                  const TinyTokenIds& ids = {}) {
  return TinyQwen2Config({.vocab_size = vocab,
                          .hidden_size = 16,
                          .intermediate_size = 32,
                          .num_hidden_layers = 2,
                          .num_attention_heads = 2,
                          .num_key_value_heads = 1,
                          .tie_word_embeddings = tie,
                          .max_position_embeddings = max_positions,
                          .rope_theta = 10000.0},
                         ids);
}

}  // namespace envtune

#endif  // ENVTUNE_TESTS_MODEL_TINY_TEST_MODEL_H_
