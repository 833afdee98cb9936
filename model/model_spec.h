// The tiny random Qwen2 model, defined once: its spec (the `tiny:` keys of `model:` for the
// learner and `envtune model init`, of `sft:` for the SFT warm start), the one reader of those
// keys, and the ModelConfig they describe (Qwen2, rope_theta 1e6 unless set, qkv bias, Qwen's
// special tokens).
//
// YAML (`<section>.tiny:`; every key optional, any other key is an error):
//   vocab_size: 0                0 = the tokenizer's vocabulary where one is at hand (`model
//                                init`, sft), else Qwen2.5's 151936 (the learner)
//   hidden_size: 64
//   intermediate_size: 128
//   num_hidden_layers: 2
//   num_attention_heads: 4
//   num_key_value_heads: 2
//   tie_word_embeddings: true
//   max_position_embeddings: 32768
//   rope_theta: 1000000.0
// The random initialisation's seed is each command's own key (learner.seed, sft.seed,
// model.seed).
#ifndef ENVTUNE_MODEL_MODEL_SPEC_H_
#define ENVTUNE_MODEL_MODEL_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "model/config.h"
#include "model/text/tokenizer.h"

namespace envtune {

// Qwen2.5's vocabulary (embedding rows) and special tokens: the tiny model's without a tokenizer.
inline constexpr int64_t kQwen25VocabSize = 151936;

struct TinyQwen2Spec {
  int64_t vocab_size = 0;  // 0: see above
  int64_t hidden_size = 64;
  int64_t intermediate_size = 128;
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 2;
  bool tie_word_embeddings = true;
  int64_t max_position_embeddings = 32768;
  double rope_theta = 1000000.0;
};

// The special tokens the config names: eos = <|im_end|>; bos, pad and the second generation
// stop = <|endoftext|>. The defaults are Qwen2.5's ids.
struct TinyTokenIds {
  int64_t im_end = 151645;
  int64_t endoftext = 151643;
};

// Reads `<section>.tiny.*` (section "model" or "sft") into `spec` (absent keys keep its
// values). Bad values, and keys the spec does not have, are recorded in `reader`.
void ReadTinyQwen2Spec(ConfigReader& reader, const std::string& section, TinyQwen2Spec* spec);

// The Qwen2 config of `spec` (vocab_size 0 = kQwen25VocabSize), fp32. Not validated.
ModelConfig TinyQwen2Config(const TinyQwen2Spec& spec, const TinyTokenIds& ids = {});

// <|im_end|> and <|endoftext|> of `tokenizer`; InvalidArgument when it lacks either.
absl::StatusOr<TinyTokenIds> TinyTokenIdsOf(const Tokenizer& tokenizer);

// The config of `spec` over `tokenizer`: vocab_size 0 = the tokenizer's, the special ids from
// it; InvalidArgument when the vocabulary is smaller than the tokenizer's or ValidateModelConfig
// refuses the config.
absl::StatusOr<ModelConfig> TinyQwen2ConfigFor(const TinyQwen2Spec& spec,
                                               const Tokenizer& tokenizer);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_MODEL_SPEC_H_
