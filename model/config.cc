#include "model/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using json = nlohmann::json;

absl::Status KeyError(absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: key \"", key, "\" ", what));
}

// Reads an integer key; `required` keys must be present.
absl::Status GetInt(const json& j, const char* key, bool required, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? KeyError(key, "is missing") : absl::OkStatus();
  }
  if (it->is_number_integer() || it->is_number_unsigned()) {
    *out = it->get<int64_t>();
    return absl::OkStatus();
  }
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (std::floor(d) == d && std::fabs(d) < 9e15) {
      *out = static_cast<int64_t>(d);
      return absl::OkStatus();
    }
  }
  return KeyError(key, absl::StrCat("must be an integer, got ", it->dump()));
}

absl::Status GetDouble(const json& j, const char* key, bool required, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? KeyError(key, "is missing") : absl::OkStatus();
  }
  if (!it->is_number()) return KeyError(key, absl::StrCat("must be a number, got ", it->dump()));
  *out = it->get<double>();
  if (!std::isfinite(*out)) return KeyError(key, "must be finite");
  return absl::OkStatus();
}

absl::Status GetBool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return KeyError(key, absl::StrCat("must be a boolean, got ", it->dump()));
  *out = it->get<bool>();
  return absl::OkStatus();
}

// eos_token_id may be an int or a list of ints.
absl::Status GetIdList(const json& j, const char* key, std::vector<int64_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  out->clear();
  if (it->is_number_integer()) {
    out->push_back(it->get<int64_t>());
    return absl::OkStatus();
  }
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) return KeyError(key, "must be an int or a list of ints");
      out->push_back(v.get<int64_t>());
    }
    return absl::OkStatus();
  }
  return KeyError(key, "must be an int or a list of ints");
}

absl::Status ParseRopeScaling(const json& j, ModelConfig* c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return KeyError("rope_scaling", "must be an object or null");
  const json& rs = *it;
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    auto t = rs.find(k);
    if (t != rs.end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type.empty()) return KeyError("rope_scaling", "has no \"rope_type\"/\"type\"");
  RopeScaling& s = c->rope_scaling;
  if (type == "default") {
    s.type = RopeScaling::Type::kDefault;
    return absl::OkStatus();
  }
  if (type == "linear") {
    s.type = RopeScaling::Type::kLinear;
  } else if (type == "dynamic") {
    s.type = RopeScaling::Type::kDynamic;
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::kLlama3;
  } else {
    return absl::UnimplementedError(
        absl::StrCat("config.json: rope_scaling.rope_type \"", type, "\" is not supported"));
  }
  if (auto st = GetDouble(rs, "factor", true, &s.factor); !st.ok()) {
    return KeyError("rope_scaling.factor", "is missing or not a number");
  }
  if (s.factor <= 0) return KeyError("rope_scaling.factor", "must be > 0");
  if (s.type == RopeScaling::Type::kLinear && s.factor < 1.0) {
    return KeyError("rope_scaling.factor", "must be >= 1 for linear scaling");
  }
  if (s.type == RopeScaling::Type::kLlama3) {
    if (!GetDouble(rs, "low_freq_factor", true, &s.low_freq_factor).ok() ||
        !GetDouble(rs, "high_freq_factor", true, &s.high_freq_factor).ok() ||
        !GetInt(rs, "original_max_position_embeddings", true,
                &s.original_max_position_embeddings)
             .ok()) {
      return KeyError("rope_scaling",
                      "llama3 needs numeric low_freq_factor, high_freq_factor and "
                      "original_max_position_embeddings");
    }
    if (s.high_freq_factor <= s.low_freq_factor) {
      return KeyError("rope_scaling.high_freq_factor", "must exceed low_freq_factor");
    }
    if (s.original_max_position_embeddings <= 0 || s.low_freq_factor <= 0) {
      return KeyError("rope_scaling", "llama3 factors must be positive");
    }
  }
  return absl::OkStatus();
}

}  // namespace

double ApproxParameterCount(const ModelConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = static_cast<double>(c.num_attention_heads) * static_cast<double>(c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads) * static_cast<double>(c.head_dim);
  const double layer = h * q + 2 * h * kv + q * h + 3 * h * static_cast<double>(c.intermediate_size);
  const double embeddings =
      static_cast<double>(c.vocab_size) * h * (c.tie_word_embeddings ? 1.0 : 2.0);
  return static_cast<double>(c.num_hidden_layers) * layer + embeddings;
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  // Upper bounds far above any released model (Llama 3.1 405B: hidden 16384, 126 layers,
  // intermediate 53248; vocabularies up to 256k), so a corrupt or hostile config.json is an
  // error instead of an allocation that aborts the process.
  struct Bounded {
    const char* key;
    int64_t value;
    int64_t max;
  };
  for (const Bounded& p : {Bounded{"vocab_size", c.vocab_size, int64_t{1} << 21},
                           Bounded{"hidden_size", c.hidden_size, int64_t{1} << 16},
                           Bounded{"intermediate_size", c.intermediate_size, int64_t{1} << 18},
                           Bounded{"num_hidden_layers", c.num_hidden_layers, 1024},
                           Bounded{"num_attention_heads", c.num_attention_heads, 1024},
                           Bounded{"num_key_value_heads", c.num_key_value_heads, 1024},
                           Bounded{"head_dim", c.head_dim, 1024},
                           Bounded{"max_position_embeddings", c.max_position_embeddings,
                                   int64_t{1} << 24}}) {
    if (p.value <= 0) return KeyError(p.key, absl::StrCat("must be > 0, got ", p.value));
    if (p.value > p.max) {
      return KeyError(p.key, absl::StrCat("must be <= ", p.max, ", got ", p.value));
    }
  }
  // Each size within its bound can still multiply out to more weights than any machine holds
  // (hidden 65536 x 1024 layers: 7e13 parameters, a failed 500 GB allocation); bound the total.
  const double params = ApproxParameterCount(c);
  if (params > kMaxModelParameters) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: the sizes give about ", absl::StrFormat("%.3g", params),
        " parameters, more than ", absl::StrFormat("%.3g", kMaxModelParameters),
        " (vocab_size, hidden_size, intermediate_size, num_hidden_layers, heads)"));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return KeyError("num_key_value_heads", "must divide num_attention_heads");
  }
  if (c.head_dim % 2 != 0) return KeyError("head_dim", "must be even for rotary embeddings");
  if (!(c.rope_theta > 0)) return KeyError("rope_theta", "must be > 0");
  if (!(c.rms_norm_eps > 0)) return KeyError("rms_norm_eps", "must be > 0");
  if (c.torch_dtype != "float32" && c.torch_dtype != "bfloat16" && c.torch_dtype != "float16") {
    return KeyError("torch_dtype", absl::StrCat("unsupported value \"", c.torch_dtype, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object");
  }
  ModelConfig c;
  c.source_json = std::string(json_text);
  auto arch = j.find("architectures");
  if (arch == j.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
    return KeyError("architectures", "must be a non-empty list of strings");
  }
  c.architecture = (*arch)[0].get<std::string>();
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool llama = c.architecture == "LlamaForCausalLM";
  if (!qwen2 && !llama) {
    return absl::UnimplementedError(absl::StrCat("config.json: key \"architectures\": \"",
                                                 c.architecture,
                                                 "\" is not supported (Qwen2ForCausalLM, "
                                                 "LlamaForCausalLM)"));
  }
  c.model_type = qwen2 ? "qwen2" : "llama";
  if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) c.model_type = *mt;

  // HF class defaults for keys that may be absent.
  if (qwen2) {
    c.vocab_size = 151936, c.hidden_size = 4096, c.intermediate_size = 22016;
    c.num_hidden_layers = 32, c.num_attention_heads = 32, c.max_position_embeddings = 32768;
  } else {
    c.vocab_size = 32000, c.hidden_size = 4096, c.intermediate_size = 11008;
    c.num_hidden_layers = 32, c.num_attention_heads = 32, c.max_position_embeddings = 2048;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
  }
  absl::Status st;
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"vocab_size", &c.vocab_size},
                          {"hidden_size", &c.hidden_size},
                          {"intermediate_size", &c.intermediate_size},
                          {"num_hidden_layers", &c.num_hidden_layers},
                          {"num_attention_heads", &c.num_attention_heads},
                          {"max_position_embeddings", &c.max_position_embeddings}}) {
    if (st = GetInt(j, key, false, out); !st.ok()) return st;
  }
  c.num_key_value_heads = c.num_attention_heads;
  if (st = GetInt(j, "num_key_value_heads", false, &c.num_key_value_heads); !st.ok()) return st;
  if (c.num_attention_heads <= 0) return KeyError("num_attention_heads", "must be > 0");
  c.head_dim = c.hidden_size / c.num_attention_heads;
  if (llama) {
    if (st = GetInt(j, "head_dim", false, &c.head_dim); !st.ok()) return st;
  } else if (c.hidden_size % c.num_attention_heads != 0) {
    return KeyError("hidden_size", "must be divisible by num_attention_heads");
  }
  c.rope_theta = qwen2 ? 10000.0 : 10000.0;
  if (st = GetDouble(j, "rope_theta", false, &c.rope_theta); !st.ok()) return st;
  if (st = GetDouble(j, "rms_norm_eps", false, &c.rms_norm_eps); !st.ok()) return st;
  if (st = GetBool(j, "tie_word_embeddings", &c.tie_word_embeddings); !st.ok()) return st;
  if (qwen2) {
    c.qkv_bias = true;
    c.o_bias = false;
    bool sliding = false;
    if (st = GetBool(j, "use_sliding_window", &sliding); !st.ok()) return st;
    if (sliding) {
      return absl::UnimplementedError(
          "config.json: key \"use_sliding_window\": sliding-window attention is not supported");
    }
  } else {
    bool attention_bias = false;
    if (st = GetBool(j, "attention_bias", &attention_bias); !st.ok()) return st;
    c.qkv_bias = c.o_bias = attention_bias;
    if (st = GetBool(j, "mlp_bias", &c.mlp_bias); !st.ok()) return st;
    int64_t tp = 1;
    if (st = GetInt(j, "pretraining_tp", false, &tp); !st.ok()) return st;
  }
  if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      return KeyError("hidden_act", absl::StrCat("must be \"silu\", got ", act->dump()));
    }
  }
  if (auto dt = j.find("torch_dtype"); dt != j.end() && !dt->is_null()) {
    if (!dt->is_string()) return KeyError("torch_dtype", "must be a string");
    c.torch_dtype = dt->get<std::string>();
  }
  if (auto bos = j.find("bos_token_id"); bos != j.end()) {
    if (bos->is_null()) {
      c.bos_token_id.reset();
    } else {
      int64_t v = 0;
      if (st = GetInt(j, "bos_token_id", true, &v); !st.ok()) return st;
      c.bos_token_id = v;
    }
  }
  if (auto eos = j.find("eos_token_id"); eos != j.end() && eos->is_null()) c.eos_token_ids.clear();
  if (st = GetIdList(j, "eos_token_id", &c.eos_token_ids); !st.ok()) return st;
  if (auto pad = j.find("pad_token_id"); pad != j.end() && !pad->is_null()) {
    int64_t v = 0;
    if (st = GetInt(j, "pad_token_id", true, &v); !st.ok()) return st;
    c.pad_token_id = v;
  }
  if (st = ParseRopeScaling(j, &c); !st.ok()) return st;
  if (st = ValidateModelConfig(c); !st.ok()) return st;
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  auto text = ReadFileToString(dir + "/config.json");
  if (!text.ok()) return text.status();
  auto config = ParseModelConfig(*text);
  if (!config.ok()) return config.status();
  auto gen = ReadFileToString(dir + "/generation_config.json");
  if (gen.ok()) {
    json g = json::parse(*gen, nullptr, false);
    if (g.is_discarded() || !g.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/generation_config.json: not a JSON object"));
    }
    if (auto st = GetIdList(g, "eos_token_id", &config->generation_eos_token_ids); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("generation_config.json: ", st.message()));
    }
    if (auto pad = g.find("pad_token_id"); pad != g.end() && pad->is_number_integer()) {
      config->pad_token_id = pad->get<int64_t>();
    }
  }
  if (config->generation_eos_token_ids.empty()) {
    config->generation_eos_token_ids = config->eos_token_ids;
  }
  return config;
}

namespace {

json RopeScalingJson(const RopeScaling& s) {
  if (s.type == RopeScaling::Type::kDefault) return nullptr;
  json r;
  switch (s.type) {
    case RopeScaling::Type::kLinear:
      r["rope_type"] = "linear";
      break;
    case RopeScaling::Type::kDynamic:
      r["rope_type"] = "dynamic";
      break;
    case RopeScaling::Type::kLlama3:
      r["rope_type"] = "llama3";
      r["low_freq_factor"] = s.low_freq_factor;
      r["high_freq_factor"] = s.high_freq_factor;
      r["original_max_position_embeddings"] = s.original_max_position_embeddings;
      break;
    default:
      break;
  }
  r["factor"] = s.factor;
  return r;
}

json IdsJson(const std::vector<int64_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

}  // namespace

std::string SerializeModelConfig(const ModelConfig& c) {
  json j = json::object();
  if (!c.source_json.empty()) {
    json src = json::parse(c.source_json, nullptr, false);
    if (src.is_object()) j = src;
  }
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type.empty() ? (qwen2 ? "qwen2" : "llama") : c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (!qwen2) {
    j["head_dim"] = c.head_dim;
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  j["hidden_act"] = "silu";
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  j["rope_scaling"] = RopeScalingJson(c.rope_scaling);
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (!c.eos_token_ids.empty()) j["eos_token_id"] = IdsJson(c.eos_token_ids);
  if (!j.contains("transformers_version")) j["transformers_version"] = "4.45.0";
  return j.dump(2) + "\n";
}

std::string SerializeGenerationConfig(const ModelConfig& c) {
  json j = json::object();
  j["_from_model_config"] = true;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  const auto& eos = c.generation_eos_token_ids.empty() ? c.eos_token_ids
                                                       : c.generation_eos_token_ids;
  if (!eos.empty()) j["eos_token_id"] = IdsJson(eos);
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  j["transformers_version"] = "4.45.0";
  return j.dump(2) + "\n";
}

std::vector<float> RopeInvFreq(const ModelConfig& c, int64_t seq_len) {
  const int64_t dim = c.head_dim;
  const RopeScaling& s = c.rope_scaling;
  double base = c.rope_theta;
  if (s.type == RopeScaling::Type::kDynamic && seq_len > c.max_position_embeddings) {
    // HF _compute_dynamic_ntk_parameters (python float math).
    base = base * std::pow((s.factor * static_cast<double>(seq_len) /
                            static_cast<double>(c.max_position_embeddings)) -
                               (s.factor - 1.0),
                           static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  const float fbase = static_cast<float>(base);
  std::vector<float> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[i] = 1.0f / std::pow(fbase, exponent);
  }
  if (s.type == RopeScaling::Type::kLinear) {
    for (float& f : inv) f = f / static_cast<float>(s.factor);
  } else if (s.type == RopeScaling::Type::kLlama3) {
    const float factor = static_cast<float>(s.factor);
    const float low = static_cast<float>(s.low_freq_factor);
    const float high = static_cast<float>(s.high_freq_factor);
    const float old_ctx = static_cast<float>(s.original_max_position_embeddings);
    // Python floats compared with a float32 tensor are rounded to float32.
    const float low_wavelen = static_cast<float>(
        static_cast<double>(s.original_max_position_embeddings) / s.low_freq_factor);
    const float high_wavelen = static_cast<float>(
        static_cast<double>(s.original_max_position_embeddings) / s.high_freq_factor);
    const float two_pi = static_cast<float>(2.0 * M_PI);
    for (float& f : inv) {
      const float wavelen = two_pi / f;
      float scaled = wavelen > low_wavelen ? f / factor : f;
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      f = medium ? smoothed : scaled;
    }
  }
  return inv;
}

}  // namespace envtune
