// The Qwen2 / Llama causal LM as LibTorch modules, numerically following HF transformers 4.45
// (eager attention): RMSNorm variance in fp32, rotary embeddings (default/linear/dynamic/llama3
// inv_freq), grouped-query attention with the softmax in fp32, SwiGLU MLP, tied or untied
// lm_head, logits returned in fp32. Parameters are created in the requested dtype and device;
// register_module/register_parameter names are the HF checkpoint keys
// (model.layers.0.self_attn.q_proj.weight, ...), so named_parameters() is the state dict.
//
// Thread safety: a Policy may be used for inference from several threads only if nobody
// mutates it (training / loading) at the same time; a KVCache belongs to one caller.
#ifndef ENVTUNE_MODEL_QWEN2_H_
#define ENVTUNE_MODEL_QWEN2_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace envtune {

struct PolicyOptions {
  explicit PolicyOptions(ModelConfig config) : config_(std::move(config)) {}
  TORCH_ARG(ModelConfig, config);
  // Parameter and activation dtype (kFloat, kBFloat16, kHalf). Logits are always fp32.
  TORCH_ARG(c10::ScalarType, dtype) = c10::kFloat;
  TORCH_ARG(c10::Device, device) = c10::Device(c10::kCPU);
  // Recompute each decoder layer in backward instead of storing its activations (training
  // mode, grad enabled, no KV cache). Parameter grads still accumulate in .grad / autograd::grad.
  TORCH_ARG(bool, gradient_checkpointing) = false;
};

// Per-layer key/value tensors [batch, kv_heads, capacity, head_dim] (post-RoPE keys) and the
// number of filled positions, shared by all rows (rows are aligned: left padding).
//
// Append mode (differentiable, for training): keys/values hold exactly `length` positions (or
// are undefined when length is 0) and each forward replaces them by their concatenation with
// the new positions, so gradients flow into the earlier keys/values. A batch-1 append cache
// serves any batch (a prefix shared by every row, e.g. a GRPO group's prompt).
struct KVCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
  int64_t length = 0;
  bool append = false;

  static KVCache Allocate(const ModelConfig& config, int64_t batch, int64_t capacity,
                          c10::ScalarType dtype, c10::Device device);
  // An empty append-mode cache for `config`'s layers.
  static KVCache Appending(const ModelConfig& config);
  int64_t capacity() const { return keys.empty() ? 0 : keys[0].size(2); }
  int64_t batch_size() const { return keys.empty() ? 0 : keys[0].size(0); }
  // Keeps only the rows in `rows` (int64 indices), in that order.
  void SelectRows(const at::Tensor& rows);
};

// A bias-optional linear projection whose parameters are "weight" [out, in] and "bias" [out].
class ProjImpl : public torch::nn::Module {
 public:
  ProjImpl(int64_t in, int64_t out, bool bias, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;
};
TORCH_MODULE(Proj);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& c, const at::TensorOptions& options);
  // x [B,T,H]; cos/sin [B,1,T,D]; mask: allowed (non-padding) keys [B or 1,1,1,S] bool (the
  // attention is causal besides); cache (may be null) is written at
  // [cache->length, cache->length + T) of layer `layer`.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, KVCache* cache, int64_t layer);
  Proj q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;
};
TORCH_MODULE(Attention);

class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(const ModelConfig& c, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);
  Proj gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& c, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, KVCache* cache, int64_t layer);
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// HF's Qwen2Model / LlamaModel (registered as "model").
class DecoderImpl : public torch::nn::Module {
 public:
  DecoderImpl(const ModelConfig& c, const at::TensorOptions& options);
  at::Tensor embed_weight;  // "embed_tokens.weight" lives in the embed_tokens submodule
  std::shared_ptr<torch::nn::Module> embed_tokens;
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Decoder);

class PolicyImpl : public torch::nn::Module {
 public:
  explicit PolicyImpl(PolicyOptions options);

  // Final hidden states (after the last RMSNorm) [B, T, hidden] in the model dtype.
  //   input_ids: int64 [B, T].
  //   position_ids: int64 [B, T], or undefined for cache->length + 0..T-1 in every row.
  //   attention_mask: [B, past + T] with 1 = real token, 0 = padding (keys only; padded
  //     query rows produce meaningless values), or undefined for all ones.
  //   cache: optional; if given, must have room for T more positions; its length grows by T.
  // Attention is causal over the sequence index, whatever the position ids.
  at::Tensor Hidden(const at::Tensor& input_ids, const at::Tensor& position_ids = {},
                    const at::Tensor& attention_mask = {}, KVCache* cache = nullptr);
  // fp32 logits [..., vocab] for hidden states [..., hidden].
  at::Tensor Logits(const at::Tensor& hidden);
  // Logits(Hidden(...)).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& position_ids = {},
                     const at::Tensor& attention_mask = {}, KVCache* cache = nullptr);

  // Parameters start as zeros (norm weights 1) until InitRandom or LoadStateDict.
  // Draws weights like the fixtures: matrices/embeddings N(0, std), biases 0, norms 1.
  void InitRandom(uint64_t seed, double std = 0.02);
  // The checkpoint tensors in HF state-dict order (tied models have no lm_head.weight).
  std::vector<std::pair<std::string, at::Tensor>> StateDict();
  // Copies `tensors` into the parameters (converting dtype/device). Every parameter must be
  // present with the right shape; extra keys other than lm_head.weight of a tied model and
  // rotary inv_freq buffers are an error.
  absl::Status LoadStateDict(const TensorMap& tensors);

  const ModelConfig& config() const { return options.config(); }
  c10::ScalarType dtype() const { return options.dtype(); }
  c10::Device device() const { return options.device(); }

  PolicyOptions options;
  Decoder model{nullptr};
  Proj lm_head{nullptr};  // null when tie_word_embeddings

  // Optional, for frozen policies evaluated without gradients (the learner's offloaded KL
  // reference, learner/reference.h): Hidden calls Before(i) before decoder layer i runs and
  // After(i) once it has run, so its weights can be streamed in and released. Not used by a
  // forward that records gradients (backward would need the released weights).
  class LayerStreamer {
   public:
    virtual ~LayerStreamer() = default;
    virtual void Before(size_t layer) = 0;
    virtual void After(size_t layer) = 0;
  };
  std::shared_ptr<LayerStreamer> layer_streamer;

 private:
  std::pair<at::Tensor, at::Tensor> Rotary(const at::Tensor& position_ids);
  at::Tensor inv_freq_;  // fp32 [head_dim/2] on device (non-dynamic scaling)
};
TORCH_MODULE(Policy);

struct LoadPolicyOptions {
  std::optional<c10::ScalarType> dtype;  // default: config torch_dtype
  c10::Device device = c10::Device(c10::kCPU);
  bool gradient_checkpointing = false;
};

// Loads a HF checkpoint directory (config.json [+ generation_config.json] + safetensors,
// single or sharded). The returned policy is in eval mode.
absl::StatusOr<Policy> LoadPolicy(const std::string& dir, const LoadPolicyOptions& options = {});

// Writes config.json (torch_dtype = the policy dtype), generation_config.json and the weights
// (sharded above max_shard_bytes) so that HF from_pretrained loads the directory. Creates dir.
absl::Status SavePolicy(PolicyImpl& policy, const std::string& dir,
                        int64_t max_shard_bytes = int64_t{5} << 30);

// "float32"/"bfloat16"/"float16" <-> dtype.
absl::StatusOr<c10::ScalarType> DtypeFromName(const std::string& name);
std::string DtypeName(c10::ScalarType dtype);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_QWEN2_H_
