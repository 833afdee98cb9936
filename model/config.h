// ModelConfig: the architecture hyper-parameters of a Hugging Face Qwen2ForCausalLM or
// LlamaForCausalLM checkpoint, parsed from its config.json with HF 4.45 semantics.
// Plain types only (no torch) so every component may include this header.
// Thread safety: plain value types; the functions are pure.
#ifndef ENVTUNE_MODEL_CONFIG_H_
#define ENVTUNE_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace envtune {

// rope_scaling as HF 4.45's ROPE_INIT_FUNCTIONS understands it ("type" is the legacy spelling of
// "rope_type"; both are accepted). Only the types that change inv_freq without an attention
// factor are supported; yarn/longrope are rejected with a clear error.
struct RopeScaling {
  enum class Type { kDefault, kLinear, kDynamic, kLlama3 };
  Type type = Type::kDefault;
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  std::string architecture;  // "Qwen2ForCausalLM" or "LlamaForCausalLM"
  std::string model_type;    // "qwen2" or "llama"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // Llama: "head_dim" if present; otherwise hidden_size / heads
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;   // Qwen2: always true; Llama: attention_bias
  bool o_bias = false;     // Qwen2: false; Llama: attention_bias
  bool mlp_bias = false;   // Llama: mlp_bias
  RopeScaling rope_scaling;
  std::string torch_dtype = "float32";  // "float32" | "bfloat16" | "float16"
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json eos_token_id (int or list)
  // From generation_config.json when LoadModelConfig found one (HF generate's defaults).
  std::vector<int64_t> generation_eos_token_ids;
  std::optional<int64_t> pad_token_id;
  // The config.json text this was parsed from (empty if built in code); SerializeModelConfig
  // keeps its unknown keys so a saved directory round-trips in HF.
  std::string source_json;
};

// Parses config.json text. Errors (InvalidArgument/Unimplemented) name the offending key.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);

// Reads <dir>/config.json and, if present, <dir>/generation_config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

// Checks internal consistency (positive sizes, heads divide, ...) and sane bounds: each size
// below a bound far above released models, and the weights together at most
// kMaxModelParameters (a hostile or corrupt config.json is an error, never an allocation that
// aborts).
absl::Status ValidateModelConfig(const ModelConfig& config);

// About how many weights `config` describes (embeddings, attention, MLP; norms and biases left
// out), as a double so absurd sizes cannot overflow.
double ApproxParameterCount(const ModelConfig& config);
inline constexpr double kMaxModelParameters = 1e12;

// config.json text (2-space indented, sorted keys, like HF's to_json_string) for `config`.
std::string SerializeModelConfig(const ModelConfig& config);
// generation_config.json text as HF's save_pretrained writes it.
std::string SerializeGenerationConfig(const ModelConfig& config);

// The rotary inverse frequencies for sequence length `seq_len` (only dynamic scaling uses it),
// computed in float32 exactly like HF 4.45's _compute_*_rope_parameters. head_dim/2 values.
std::vector<float> RopeInvFreq(const ModelConfig& config, int64_t seq_len);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_CONFIG_H_
