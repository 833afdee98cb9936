#include "model/model_spec.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "model/text/chat_template.h"

namespace envtune {
namespace {

// The integer keys: name, field, bounds (ConfigReader::AddBounds; ValidateModelConfig checks
// the whole config again).
struct IntKey {
  const char* name;
  int64_t TinyQwen2Spec::*field;
  double min, max;
};
constexpr IntKey kIntKeys[] = {
    {"vocab_size", &TinyQwen2Spec::vocab_size, 0, 1 << 21},
    {"hidden_size", &TinyQwen2Spec::hidden_size, 1, 1 << 16},
    {"intermediate_size", &TinyQwen2Spec::intermediate_size, 1, 1 << 18},
    {"num_hidden_layers", &TinyQwen2Spec::num_hidden_layers, 1, 1024},
    {"num_attention_heads", &TinyQwen2Spec::num_attention_heads, 1, 1024},
    {"num_key_value_heads", &TinyQwen2Spec::num_key_value_heads, 1, 1024},
    {"max_position_embeddings", &TinyQwen2Spec::max_position_embeddings, 1, 1 << 24},
};
constexpr const char* kBoolKey = "tie_word_embeddings";
constexpr const char* kRopeKey = "rope_theta";
constexpr double kRopeMin = 1e-6, kRopeMax = 1e12;

// The bounds of `<section>.tiny.*`, keyed by strings that live as long as the process
// (ConfigBound holds the key's pointer).
const std::vector<ConfigBound>& Bounds(const std::string& section) {
  static absl::Mutex mu;
  static auto* keys = new std::vector<std::unique_ptr<std::string>>();
  static auto* tables = new std::map<std::string, std::vector<ConfigBound>>();
  absl::MutexLock lock(&mu);
  auto [it, inserted] = tables->try_emplace(section);
  if (inserted) {
    auto add = [&](const char* name, double min, double max) {
      keys->push_back(std::make_unique<std::string>(absl::StrCat(section, ".tiny.", name)));
      it->second.push_back(ConfigBound{keys->back()->c_str(), min, max});
    };
    for (const IntKey& k : kIntKeys) add(k.name, k.min, k.max);
    add(kRopeKey, kRopeMin, kRopeMax);
  }
  return it->second;
}

}  // namespace

void ReadTinyQwen2Spec(ConfigReader& reader, const std::string& section, TinyQwen2Spec* spec) {
  reader.AddBounds(Bounds(section));
  const std::string prefix = absl::StrCat(section, ".tiny");
  std::vector<std::string> names;
  for (const IntKey& k : kIntKeys) {
    spec->*k.field = reader.Get<int64_t>(absl::StrCat(prefix, ".", k.name), spec->*k.field);
    names.push_back(k.name);
  }
  spec->tie_word_embeddings =
      reader.Get<bool>(absl::StrCat(prefix, ".", kBoolKey), spec->tie_word_embeddings);
  spec->rope_theta = reader.Get<double>(absl::StrCat(prefix, ".", kRopeKey), spec->rope_theta);
  names.push_back(kBoolKey);
  names.push_back(kRopeKey);
  // Whatever else stands under `tiny:` is an error here, whoever marks the section read.
  const YAML::Node node = reader.config().Find(prefix);
  if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
    reader.AddError(absl::StrCat(prefix, ": expected a map of ", absl::StrJoin(names, ", ")));
  } else if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string name = kv.first.as<std::string>();
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        reader.AddError(absl::StrCat("unknown key '", prefix, ".", name, "' (the tiny model has ",
                                     absl::StrJoin(names, ", "), ")"));
      }
    }
  }
  reader.MarkRead(prefix);
}

ModelConfig TinyQwen2Config(const TinyQwen2Spec& spec, const TinyTokenIds& ids) {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.model_type = "qwen2";
  c.vocab_size = spec.vocab_size > 0 ? spec.vocab_size : kQwen25VocabSize;
  c.hidden_size = spec.hidden_size;
  c.intermediate_size = spec.intermediate_size;
  c.num_hidden_layers = spec.num_hidden_layers;
  c.num_attention_heads = spec.num_attention_heads;
  c.num_key_value_heads = spec.num_key_value_heads;
  c.head_dim = spec.num_attention_heads > 0 ? spec.hidden_size / spec.num_attention_heads : 0;
  c.rope_theta = spec.rope_theta;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = spec.max_position_embeddings;
  c.tie_word_embeddings = spec.tie_word_embeddings;
  c.qkv_bias = true;
  c.torch_dtype = "float32";
  c.bos_token_id = ids.endoftext;
  c.eos_token_ids = {ids.im_end};
  c.generation_eos_token_ids = {ids.im_end};
  if (ids.endoftext != ids.im_end) c.generation_eos_token_ids.push_back(ids.endoftext);
  c.pad_token_id = ids.endoftext;
  return c;
}

absl::StatusOr<TinyTokenIds> TinyTokenIdsOf(const Tokenizer& tokenizer) {
  std::optional<TokenId> im_end = tokenizer.TokenToId(kImEnd);
  std::optional<TokenId> endoftext = tokenizer.TokenToId("<|endoftext|>");
  if (!im_end || !endoftext) {
    return absl::InvalidArgumentError("the tokenizer has no <|im_end|> / <|endoftext|> tokens");
  }
  return TinyTokenIds{.im_end = *im_end, .endoftext = *endoftext};
}

absl::StatusOr<ModelConfig> TinyQwen2ConfigFor(const TinyQwen2Spec& in_spec,
                                               const Tokenizer& tokenizer) {
  TinyQwen2Spec spec = in_spec;
  if (spec.vocab_size <= 0) spec.vocab_size = tokenizer.vocab_size();
  if (spec.vocab_size < tokenizer.vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat("tiny.vocab_size ", spec.vocab_size,
                                                   " is smaller than the tokenizer's ",
                                                   tokenizer.vocab_size()));
  }
  absl::StatusOr<TinyTokenIds> ids = TinyTokenIdsOf(tokenizer);
  if (!ids.ok()) return ids.status();
  ModelConfig config = TinyQwen2Config(spec, *ids);
  if (absl::Status s = ValidateModelConfig(config); !s.ok()) return s;
  return config;
}

}  // namespace envtune
