// Test helpers: the tiny model's architecture (model/model_spec.h) at the size unit tests use
// (hidden 16, intermediate 32, 2 heads, 1 key/value head; 1 layer for written checkpoints,
// 2 with rope_theta 1e4 for in-memory configs).
#ifndef ENVTUNE_TESTS_MODEL_TINY_TEST_MODEL_H_
#define ENVTUNE_TESTS_MODEL_TINY_TEST_MODEL_H_

#include <cstdint>

#include "model/config.h"
#include "model/model_spec.h"

namespace envtune {

// The one-layer tiny spec of the checkpoint tests that write a model directory (InitTinyQwen2:
// evaluation, `envtune eval`, `envtune model`); the vocabulary is the tokenizer's.
inline TinyQwen2Spec TestTinySpec() {
  return {.hidden_size = 16,
          .intermediate_size = 32,
          .num_hidden_layers = 1,
          .num_attention_heads = 2,
          .num_key_value_heads = 1};
}

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
