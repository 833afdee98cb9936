// The tiny model's one definition (model/model_spec.h): its reader under both sections, every
// key honoured (rope_theta included), unknown keys and bounds, and the config it builds with and
// without a tokenizer.
#include "model/model_spec.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "model/text/text_tools.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

absl::Status ReadInto(const std::string& yaml, const std::string& section, TinyQwen2Spec* spec) {
  absl::StatusOr<Config> config = Config::FromString(yaml);
  if (!config.ok()) return config.status();
  ConfigReader reader(*config);
  ReadTinyQwen2Spec(reader, section, spec);
  return reader.Finish();
}

TEST(TinyQwen2Spec, EveryKeyIsReadUnderEitherSection) {
  for (const std::string section : {"model", "sft"}) {
    TinyQwen2Spec spec;
    absl::Status read = ReadInto(section + R"(:
  tiny: {vocab_size: 300, hidden_size: 32, intermediate_size: 96, num_hidden_layers: 3,
         num_attention_heads: 4, num_key_value_heads: 1, tie_word_embeddings: false,
         max_position_embeddings: 2048, rope_theta: 5.0e5}
)",
                                 section, &spec);
    ASSERT_TRUE(read.ok()) << section << ": " << read;
    const ModelConfig c = TinyQwen2Config(spec);
    // Every key reaches config.json (the keys are HF's names).
    const nlohmann::json written = nlohmann::json::parse(SerializeModelConfig(c));
    const nlohmann::json expected = {{"vocab_size", 300},
                                     {"hidden_size", 32},
                                     {"intermediate_size", 96},
                                     {"num_hidden_layers", 3},
                                     {"num_attention_heads", 4},
                                     {"num_key_value_heads", 1},
                                     {"tie_word_embeddings", false},
                                     {"max_position_embeddings", 2048},
                                     {"rope_theta", 5.0e5}};
    for (const auto& [key, value] : expected.items()) {
      EXPECT_EQ(written.value(key, nlohmann::json()), value) << section << ": " << key;
    }
    EXPECT_EQ(c.rope_theta, 5.0e5);  // the key the learner used to ignore
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_TRUE(ValidateModelConfig(c).ok()) << ValidateModelConfig(c);
  }
}

TEST(TinyQwen2Spec, UnknownKeysAndBadValuesAreErrors) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"model: {tiny: {rope_thta: 10000}}",
       "unknown key 'model.tiny.rope_thta' (the tiny model has vocab_size"},
      {"model: {tiny: {num_hidden_layers: 100000000}}",
       "model.tiny.num_hidden_layers: 100000000 is outside [1, 1024]"},
      {"sft: {tiny: {rope_theta: -1}}", "sft.tiny.rope_theta: -1 is outside"},
      {"sft: {tiny: {tie_word_embeddings: maybe}}", "sft.tiny.tie_word_embeddings: cannot read"},
      {"model: {tiny: 64}", "model.tiny: expected a map of vocab_size"},
  };
  for (const Case& c : cases) {
    TinyQwen2Spec spec;
    const std::string section = std::string(c.yaml).substr(0, std::string(c.yaml).find(':'));
    absl::Status read = ReadInto(c.yaml, section, &spec);
    EXPECT_TRUE(absl::IsInvalidArgument(read)) << c.yaml << ": " << read;
    EXPECT_NE(read.message().find(c.error), std::string::npos) << c.yaml << ": " << read;
    EXPECT_EQ(TinyQwen2Config(spec).num_hidden_layers, 2) << "a bad value keeps the default";
  }
}

TEST(TinyQwen2Spec, WithoutATokenizerTheConfigIsQwen25s) {
  const ModelConfig c = TinyQwen2Config(TinyQwen2Spec{});
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.vocab_size, kQwen25VocabSize);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.pad_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645}));
  EXPECT_EQ(c.generation_eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_TRUE(ValidateModelConfig(c).ok()) << ValidateModelConfig(c);
}

TEST(TinyQwen2Spec, OverATokenizerItsVocabularyAndSpecialTokens) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
  if (!tok.ok()) GTEST_SKIP() << "shipped tokenizer not found";
  absl::StatusOr<TinyTokenIds> ids = TinyTokenIdsOf(**tok);
  ASSERT_TRUE(ids.ok()) << ids.status();
  // The shipped Qwen tokenizer's ids are the defaults the learner builds with.
  EXPECT_EQ(ids->im_end, TinyTokenIds{}.im_end);
  EXPECT_EQ(ids->endoftext, TinyTokenIds{}.endoftext);
  absl::StatusOr<ModelConfig> c = TinyQwen2ConfigFor(TinyQwen2Spec{}, **tok);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vocab_size, (*tok)->vocab_size());
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{ids->im_end}));

  TinyQwen2Spec small;
  small.vocab_size = 1000;
  absl::StatusOr<ModelConfig> refused = TinyQwen2ConfigFor(small, **tok);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("smaller than the tokenizer's"), std::string::npos);
}

}  // namespace
}  // namespace envtune
