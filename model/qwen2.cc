#include "model/qwen2.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "absl/strings/str_cat.h"

namespace envtune {
namespace {

// Query rows per attention chunk: one chunk's fp32 scores stay under ~16 MiB (such blocks come
// from the heap's free lists again and again instead of fresh mmap()s that page-fault on every
// use), between 16 and 512 rows.
int64_t QueryChunk(int64_t batch, int64_t heads, int64_t keys) {
  constexpr int64_t kScoreElements = int64_t{4} << 20;
  return std::clamp<int64_t>(kScoreElements / std::max<int64_t>(1, batch * heads * keys), 16, 512);
}

double Lowest(c10::ScalarType dtype) {
  return dtype == at::kBFloat16 ? -3.3895313892515355e38
         : dtype == at::kHalf   ? -65504.0
         : dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                                : std::numeric_limits<float>::lowest();
}

// Sets the disallowed entries of the scores [B, H, c, keys] of query rows [c0, c0 + c) to the
// dtype's lowest value (finite, like HF, so a fully masked row stays uniform): keys after the
// row's position (causal; query row i sits at past + i) and padding keys (key_allowed
// [B or 1, 1, 1, S] bool). Only a [c, keys] block is built per chunk.
// Keys query rows [c0, c0 + c) (at positions past + c0 + i) may not attend among the first
// `keys`: later ones (causal) and padding (key_allowed [B or 1, 1, 1, S] bool; undefined = none).
// [B or 1, 1, c, keys] bool.
at::Tensor DisallowedKeys(const at::Tensor& key_allowed, int64_t past, int64_t c0, int64_t c,
                          int64_t keys, c10::Device device) {
  auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor disallowed = (at::arange(keys, long_opts).view({1, keys}) >
                           at::arange(past + c0, past + c0 + c, long_opts).view({c, 1}))
                              .view({1, 1, c, keys});
  if (!key_allowed.defined()) return disallowed;
  return disallowed.logical_or(key_allowed.narrow(3, 0, keys).logical_not());
}

void MaskScores(at::Tensor& scores, const at::Tensor& key_allowed, int64_t past, int64_t c0) {
  scores.masked_fill_(
      DisallowedKeys(key_allowed, past, c0, scores.size(2), scores.size(3), scores.device()),
      Lowest(scores.scalar_type()));
}

// The additive form of MaskScores for scaled_dot_product_attention: [B or 1, 1, c, keys] in
// `dtype`, 0 where query row past + c0 + i may attend key j, dtype-lowest (finite, as in HF: a
// fully masked row stays uniform instead of NaN) where the key is later or padding.
// key_allowed may be undefined (no padding).
at::Tensor AdditiveMask(const at::Tensor& key_allowed, int64_t past, int64_t c0, int64_t c,
                        int64_t keys, c10::ScalarType dtype, c10::Device device) {
  at::Tensor disallowed = DisallowedKeys(key_allowed, past, c0, c, keys, device);
  return at::zeros(disallowed.sizes(), at::TensorOptions().dtype(dtype).device(device))
      .masked_fill_(disallowed, Lowest(dtype));
}

// Causal grouped-query attention for training that keeps no [T, S] probabilities for backward:
// forward saves q, k, v, the output and each query row's softmax statistics; backward recomputes
// each query chunk's probabilities (one more q.k^T product) — the flash-attention recurrence on
// LibTorch ops. Memory O(T) instead of O(T * S) per layer.
//   q [B, H, T, D], k/v [B, KV, S, D] (S = past + T), key_allowed as in MaskScores.
//   Query head h uses kv head h / rep: the rep heads of a group stack along the query axis.
struct MemoryEfficientAttention : public torch::autograd::Function<MemoryEfficientAttention> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::Tensor q, at::Tensor k, at::Tensor v,
                                                at::Tensor mask, double scale) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    const int64_t KV = k.size(1), S = k.size(2), past = S - T, rep = H / KV;
    at::Tensor out = at::empty_like(q);
    at::Tensor stats = at::empty({2, B, H, T}, q.options().dtype(at::kFloat));
    // One sequence at a time: a chunk's [H, c, keys] scores then hold many query rows, so the
    // products below have a long inner dimension (c) instead of being memory-bound slivers.
    const int64_t chunk = QueryChunk(1, H, S);
    for (int64_t b = 0; b < B; ++b) {
      const at::Tensor qb = q.narrow(0, b, 1), kb = k.narrow(0, b, 1), vb = v.narrow(0, b, 1);
      const at::Tensor mb = mask.size(0) == 1 ? mask : mask.narrow(0, b, 1);
      at::Tensor stats_b = stats.narrow(1, b, 1);
      for (int64_t c0 = 0; c0 < T; c0 += chunk) {
        const int64_t c = std::min(chunk, T - c0), keys = past + c0 + c;
        at::Tensor p = Probabilities(qb, kb, mb, scale, c0, c, keys, rep, &stats_b);
        out.narrow(0, b, 1).narrow(2, c0, c).copy_(
            at::matmul(p.view({1, KV, rep * c, keys}).to(q.scalar_type()), vb.narrow(2, 0, keys))
                .view({1, H, c, D}));
      }
    }
    ctx->save_for_backward({q, k, v, mask, out, stats});
    ctx->saved_data["scale"] = scale;
    return {out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &mask = saved[3];
    const at::Tensor &out = saved[4], &stats = saved[5];
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor dout = grads[0].contiguous();
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    const int64_t KV = k.size(1), S = k.size(2), past = S - T, rep = H / KV;
    const int64_t chunk = QueryChunk(1, H, S);
    // delta_i = sum_d dout_id out_id = sum_j p_ij dp_ij.
    at::Tensor delta = (dout.to(at::kFloat) * out.to(at::kFloat)).sum(-1, /*keepdim=*/true);
    at::Tensor dq = at::empty_like(q);
    at::Tensor dk = at::zeros(k.sizes(), k.options().dtype(at::kFloat));
    at::Tensor dv = at::zeros(v.sizes(), v.options().dtype(at::kFloat));
    for (int64_t b = 0; b < B; ++b) {
      const at::Tensor qb = q.narrow(0, b, 1), kb = k.narrow(0, b, 1), vb = v.narrow(0, b, 1);
      const at::Tensor mb = mask.size(0) == 1 ? mask : mask.narrow(0, b, 1);
      const at::Tensor stats_b = stats.narrow(1, b, 1);
      const at::Tensor dout_b = dout.narrow(0, b, 1), delta_b = delta.narrow(0, b, 1);
      at::Tensor dq_b = dq.narrow(0, b, 1), dk_b = dk.narrow(0, b, 1), dv_b = dv.narrow(0, b, 1);
      for (int64_t c0 = 0; c0 < T; c0 += chunk) {
        const int64_t c = std::min(chunk, T - c0), keys = past + c0 + c;
        at::Tensor p = Probabilities(qb, kb, mb, scale, c0, c, keys, rep, nullptr, &stats_b);
        at::Tensor kc = kb.narrow(2, 0, keys), vc = vb.narrow(2, 0, keys);
        at::Tensor dout_g = dout_b.narrow(2, c0, c).reshape({1, KV, rep * c, D});
        at::Tensor pg = p.view({1, KV, rep * c, keys}).to(q.scalar_type());
        dv_b.narrow(2, 0, keys).add_(at::matmul(pg.transpose(2, 3), dout_g));
        // ds = p * (dp - delta) / scale, with dp = dout . v^T.
        at::Tensor ds = at::matmul(dout_g, vc.transpose(2, 3)).view({1, H, c, keys}).to(at::kFloat);
        ds.sub_(delta_b.narrow(2, c0, c)).mul_(p).div_(scale);
        at::Tensor dsg = ds.view({1, KV, rep * c, keys}).to(q.scalar_type());
        dq_b.narrow(2, c0, c).copy_(at::matmul(dsg, kc).view({1, H, c, D}));
        at::Tensor qg = qb.narrow(2, c0, c).reshape({1, KV, rep * c, D});
        dk_b.narrow(2, 0, keys).add_(at::matmul(dsg.transpose(2, 3), qg));
      }
    }
    return {dq, dk.to(k.scalar_type()), dv.to(v.scalar_type()), at::Tensor(), at::Tensor()};
  }

  // fp32 probabilities [B, H, c, keys] of query rows [c0, c0 + c) over keys [0, keys). Forward:
  // the softmax of the masked scores, storing each row's max and log-sum-exp relative to it in
  // stats_out [2, B, H, T] (kept apart so a fully masked row, all scores dtype-lowest, stays
  // uniform as in at::softmax); backward: exp(scores - max - lse) from the saved stats.
  static at::Tensor Probabilities(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask,
                                  double scale, int64_t c0, int64_t c, int64_t keys, int64_t rep,
                                  at::Tensor* stats_out, const at::Tensor* stats_in = nullptr) {
    const int64_t B = q.size(0), H = q.size(1), D = q.size(3), KV = k.size(1);
    at::Tensor qg = q.narrow(2, c0, c).reshape({B, KV, rep * c, D});
    at::Tensor s = at::matmul(qg, k.narrow(2, 0, keys).transpose(2, 3))
                       .view({B, H, c, keys})
                       .to(at::kFloat);
    s.div_(scale);
    MaskScores(s, mask, k.size(2) - q.size(2), c0);
    if (stats_in != nullptr) {
      return s.sub_(stats_in->select(0, 0).narrow(2, c0, c).unsqueeze(-1))
          .sub_(stats_in->select(0, 1).narrow(2, c0, c).unsqueeze(-1))
          .exp_();
    }
    at::Tensor max = s.amax(-1, /*keepdim=*/true);
    s.sub_(max).exp_();
    at::Tensor sum = s.sum(-1, /*keepdim=*/true);
    stats_out->select(0, 0).narrow(2, c0, c).copy_(max.squeeze(-1));
    stats_out->select(0, 1).narrow(2, c0, c).copy_(sum.log().squeeze(-1));
    return s.div_(sum);
  }
};

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Recomputes a decoder layer in backward (like torch.utils.checkpoint, non-reentrant grads via
// autograd::grad over the layer input and its trainable parameters). Autograd functions take no
// undefined tensors, so "no mask" (causal only) crosses apply() as an empty tensor.
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static at::Tensor Wrap(const at::Tensor& mask, const at::Tensor& like) {
    return mask.defined() ? mask : at::empty({0}, like.options().dtype(at::kBool));
  }
  static at::Tensor Unwrap(const at::Tensor& mask) {
    return mask.numel() == 0 ? at::Tensor() : mask;
  }
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor x, at::Tensor cos,
                            at::Tensor sin, at::Tensor mask, at::TensorList params,
                            int64_t layer_address) {
    ctx->saved_data["layer"] = layer_address;
    ctx->save_for_backward({x, cos, sin, mask});
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_address);
    return layer->forward(x, cos, sin, Unwrap(mask), nullptr, 0);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    std::vector<at::Tensor> inputs = {saved[0].detach().requires_grad_(true)};
    for (const auto& p : layer->parameters()) {
      if (p.requires_grad()) inputs.push_back(p);
    }
    at::Tensor out;
    {
      torch::AutoGradMode enable(true);
      out = layer->forward(inputs[0], saved[1], saved[2], Unwrap(saved[3]), nullptr, 0);
    }
    auto grads = torch::autograd::grad({out}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    torch::autograd::variable_list result = {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
    for (size_t i = 1; i < grads.size(); ++i) result.push_back(grads[i]);
    result.push_back(at::Tensor());  // layer_address
    return result;
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
KVCache KVCache::Allocate(const ModelConfig& c, int64_t batch, int64_t capacity,
                          c10::ScalarType dtype, c10::Device device) {
  KVCache cache;
  auto options = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    cache.keys.push_back(at::empty({batch, c.num_key_value_heads, capacity, c.head_dim}, options));
    cache.values.push_back(
        at::empty({batch, c.num_key_value_heads, capacity, c.head_dim}, options));
  }
  return cache;
}

KVCache KVCache::Appending(const ModelConfig& c) {
  KVCache cache;
  cache.append = true;
  cache.keys.resize(c.num_hidden_layers);
  cache.values.resize(c.num_hidden_layers);
  return cache;
}

void KVCache::SelectRows(const at::Tensor& rows) {
  for (auto& k : keys) k = k.index_select(0, rows);
  for (auto& v : values) v = v.index_select(0, rows);
}

ProjImpl::ProjImpl(int64_t in, int64_t out, bool with_bias, const at::TensorOptions& options) {
  weight = register_parameter("weight", at::zeros({out, in}, options));
  if (with_bias) bias = register_parameter("bias", at::zeros({out}, options));
}

at::Tensor ProjImpl::forward(const at::Tensor& x) { return at::linear(x, weight, bias); }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_in, const at::TensorOptions& options)
    : eps(eps_in) {
  weight = register_parameter("weight", at::ones({dim}, options));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  // HF: hidden.to(float32); variance = pow(2).mean(-1); hidden * rsqrt(var + eps);
  // weight * hidden.to(input_dtype).
  at::Tensor h = x.to(at::kFloat);
  at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

AttentionImpl::AttentionImpl(const ModelConfig& c, const at::TensorOptions& options)
    : num_heads(c.num_attention_heads), num_kv_heads(c.num_key_value_heads), head_dim(c.head_dim) {
  q_proj = register_module("q_proj", Proj(c.hidden_size, num_heads * head_dim, c.qkv_bias, options));
  k_proj = register_module("k_proj",
                           Proj(c.hidden_size, num_kv_heads * head_dim, c.qkv_bias, options));
  v_proj = register_module("v_proj",
                           Proj(c.hidden_size, num_kv_heads * head_dim, c.qkv_bias, options));
  o_proj = register_module("o_proj", Proj(num_heads * head_dim, c.hidden_size, c.o_bias, options));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                  const at::Tensor& sin, const at::Tensor& mask, KVCache* cache,
                                  int64_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = q_proj(x).view({B, T, num_heads, head_dim}).transpose(1, 2);
  at::Tensor k = k_proj(x).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);
  at::Tensor v = v_proj(x).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);
  q = q * cos + RotateHalf(q) * sin;
  k = k * cos + RotateHalf(k) * sin;
  if (cache != nullptr && cache->append) {
    at::Tensor& pk = cache->keys[layer];
    at::Tensor& pv = cache->values[layer];
    if (pk.defined()) {
      k = at::cat({pk.expand({B, -1, -1, -1}), k}, 2);
      v = at::cat({pv.expand({B, -1, -1, -1}), v}, 2);
    }
    pk = k;
    pv = v;
  } else if (cache != nullptr) {
    const int64_t past = cache->length;
    cache->keys[layer].narrow(2, past, T).copy_(k);
    cache->values[layer].narrow(2, past, T).copy_(v);
    k = cache->keys[layer].narrow(2, 0, past + T);
    v = cache->values[layer].narrow(2, 0, past + T);
  }
  const int64_t S = k.size(2);
  const int64_t past = S - T;
  const int64_t rep = num_heads / num_kv_heads;
  const double scale = std::sqrt(static_cast<double>(head_dim));
  // mask undefined = causal attention with every earlier key allowed (Hidden drops masks that
  // only pad on the right). With no past keys that is SDPA's is_causal: the flash kernel on
  // CUDA and CPU, O(T) memory, in training and prefill alike. Grouped-query attention through
  // enable_gqa (no repeated k/v).
  if (!mask.defined() && past == 0) {
    at::Tensor out = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/std::nullopt,
                                                      /*dropout_p=*/0.0, /*is_causal=*/true,
                                                      1.0 / scale, /*enable_gqa=*/rep > 1);
    return o_proj(out.transpose(1, 2).reshape({B, T, num_heads * head_dim}));
  }
  if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) {
    // Padding inside the sequence or past keys (a shared prefix) while training: the
    // recompute-in-backward attention above, which needs no [T, S] mask.
    at::Tensor key_allowed = mask.defined() ? mask
                                            : at::ones({1, 1, 1, S}, q.options().dtype(at::kBool));
    at::Tensor out = MemoryEfficientAttention::apply(q, k, v, key_allowed, scale)[0];
    return o_proj(out.transpose(1, 2).reshape({B, T, num_heads * head_dim}));
  }
  // Inference with past keys or padding (decode steps, left-padded prefill): SDPA with an
  // additive mask, queries in chunks (QueryChunk) that see only keys up to their last position,
  // so neither the mask nor a non-fused kernel's [heads, chunk, keys] scores grow with T * S.
  const int64_t kQueryChunk = QueryChunk(B, num_heads, S);
  std::vector<at::Tensor> outs;
  for (int64_t c0 = 0; c0 < T; c0 += kQueryChunk) {
    const int64_t c = std::min(kQueryChunk, T - c0);
    const int64_t keys = past + c0 + c;
    at::Tensor bias = AdditiveMask(mask, past, c0, c, keys, q.scalar_type(), q.device());
    outs.push_back(at::scaled_dot_product_attention(
        T > kQueryChunk ? q.narrow(2, c0, c) : q, k.narrow(2, 0, keys), v.narrow(2, 0, keys), bias,
        /*dropout_p=*/0.0, /*is_causal=*/false, 1.0 / scale, /*enable_gqa=*/rep > 1));
  }
  at::Tensor out = outs.size() == 1 ? outs[0] : at::cat(outs, 2);
  out = out.transpose(1, 2).reshape({B, T, num_heads * head_dim});
  return o_proj(out);
}

MLPImpl::MLPImpl(const ModelConfig& c, const at::TensorOptions& options) {
  gate_proj = register_module(
      "gate_proj", Proj(c.hidden_size, c.intermediate_size, c.mlp_bias, options));
  up_proj =
      register_module("up_proj", Proj(c.hidden_size, c.intermediate_size, c.mlp_bias, options));
  down_proj = register_module(
      "down_proj", Proj(c.intermediate_size, c.hidden_size, c.mlp_bias, options));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) {
  return down_proj(at::silu(gate_proj(x)) * up_proj(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, const at::TensorOptions& options) {
  self_attn = register_module("self_attn", Attention(c, options));
  mlp = register_module("mlp", MLP(c, options));
  input_layernorm =
      register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, options));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, options));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, const at::Tensor& mask,
                                     KVCache* cache, int64_t layer) {
  at::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask, cache, layer);
  return h + mlp(post_attention_layernorm(h));
}

DecoderImpl::DecoderImpl(const ModelConfig& c, const at::TensorOptions& options) {
  embed_tokens = register_module("embed_tokens", std::make_shared<torch::nn::Module>());
  embed_weight =
      embed_tokens->register_parameter("weight", at::zeros({c.vocab_size, c.hidden_size}, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, options));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, options));
}

// ---------------------------------------------------------------------------------------------
PolicyImpl::PolicyImpl(PolicyOptions opts) : options(std::move(opts)) {
  const auto tensor_options =
      at::TensorOptions().dtype(options.dtype()).device(options.device());
  const ModelConfig& c = options.config();
  model = register_module("model", Decoder(c, tensor_options));
  if (!c.tie_word_embeddings) {
    lm_head = register_module("lm_head", Proj(c.hidden_size, c.vocab_size, false, tensor_options));
  }
  if (c.rope_scaling.type != RopeScaling::Type::kDynamic) {
    std::vector<float> inv = RopeInvFreq(c, 0);
    inv_freq_ = at::tensor(inv, at::kFloat).to(options.device());
  }
}

void PolicyImpl::InitRandom(uint64_t seed, double std) {
  at::NoGradGuard no_grad;
  auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU)).clone();
  gen.set_current_seed(seed);
  for (auto& item : named_parameters()) {
    at::Tensor& p = item.value();
    const std::string& name = item.key();
    if (name.find("norm") != std::string::npos) {
      p.fill_(1.0);
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      p.zero_();
    } else {
      at::Tensor r = at::empty(p.sizes(), at::kFloat);
      r.normal_(0.0, std, gen);
      p.copy_(r);
    }
  }
}

std::pair<at::Tensor, at::Tensor> PolicyImpl::Rotary(const at::Tensor& position_ids) {
  at::Tensor inv = inv_freq_;
  if (!inv.defined()) {  // dynamic NTK: frequencies depend on the longest position.
    const int64_t seq_len = position_ids.max().item<int64_t>() + 1;
    inv = at::tensor(RopeInvFreq(config(), seq_len), at::kFloat).to(position_ids.device());
  }
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv.view({1, 1, -1});
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype()).unsqueeze(1), emb.sin().to(dtype()).unsqueeze(1)};
}

at::Tensor PolicyImpl::Hidden(const at::Tensor& input_ids, const at::Tensor& position_ids_in,
                              const at::Tensor& attention_mask, KVCache* cache) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [batch, seq]");
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t past = cache != nullptr ? cache->length : 0;
  const int64_t S = past + T;
  if (cache != nullptr) {
    TORCH_CHECK(static_cast<int64_t>(cache->keys.size()) == config().num_hidden_layers,
                "KV cache has the wrong number of layers");
    if (cache->append) {
      TORCH_CHECK(past == 0 || (cache->keys[0].defined() && cache->capacity() == past &&
                                (cache->batch_size() == B || cache->batch_size() == 1)),
                  "append-mode KV cache must hold its ", past, " positions for batch 1 or ", B);
    } else {
      TORCH_CHECK(cache->batch_size() == B, "KV cache batch ", cache->batch_size(),
                  " != input batch ", B);
      TORCH_CHECK(S <= cache->capacity(), "KV cache capacity ", cache->capacity(),
                  " exceeded (need ", S, ")");
    }
  }
  const auto dev = device();
  at::Tensor ids = input_ids.to(dev, at::kLong);
  at::Tensor positions = position_ids_in.defined()
                             ? position_ids_in.to(dev, at::kLong)
                             : at::arange(past, S, at::TensorOptions().dtype(at::kLong).device(dev))
                                   .unsqueeze(0)
                                   .expand({B, T});
  TORCH_CHECK(positions.sizes() == ids.sizes(), "position_ids must match input_ids");

  // Allowed (non-padding) keys [B, 1, 1, S], or undefined when causality alone decides: with no
  // past keys, when each row's allowed keys are a prefix (no padding, or padding only after the
  // row's last real token: no real query attends to a later position, so right padding changes
  // only the padded rows' outputs, which nothing scores). Attention adds causality. Checked only
  // without past keys (one host sync per prefill or training forward, none per decode step).
  at::Tensor mask;
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B &&
                    attention_mask.size(1) == S,
                "attention_mask must be [batch, past + seq] = [", B, ", ", S, "]");
    mask = attention_mask.to(dev).ne(0).view({B, 1, 1, S});
    const bool prefix_only =
        past == 0 && !mask.narrow(3, 1, S - 1)
                          .logical_and(mask.narrow(3, 0, S - 1).logical_not())
                          .any()
                          .item<bool>();
    if (prefix_only) mask = at::Tensor();
  }

  auto [cos, sin] = Rotary(positions);
  at::Tensor x = at::embedding(model->embed_weight, ids);
  const bool checkpoint = options.gradient_checkpointing() && is_training() &&
                          at::GradMode::is_enabled() && cache == nullptr;
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers->ptr<DecoderLayerImpl>(i);
    if (checkpoint) {
      std::vector<at::Tensor> params;
      for (const auto& p : layer->parameters()) {
        if (p.requires_grad()) params.push_back(p);
      }
      x = CheckpointedLayer::apply(x, cos, sin, CheckpointedLayer::Wrap(mask, x),
                                   at::TensorList(params),
                                   reinterpret_cast<int64_t>(layer.get()));
    } else if (layer_streamer != nullptr) {
      TORCH_CHECK(!at::GradMode::is_enabled(),
                  "a streamed (offloaded) policy runs without gradients");
      layer_streamer->Before(i);
      x = layer->forward(x, cos, sin, mask, cache, static_cast<int64_t>(i));
      layer_streamer->After(i);
    } else {
      x = layer->forward(x, cos, sin, mask, cache, static_cast<int64_t>(i));
    }
  }
  if (cache != nullptr) cache->length = S;
  return model->norm(x);
}

at::Tensor PolicyImpl::Logits(const at::Tensor& hidden) {
  const at::Tensor& w = lm_head ? lm_head->weight : model->embed_weight;
  return at::linear(hidden, w).to(at::kFloat);
}

at::Tensor PolicyImpl::forward(const at::Tensor& input_ids, const at::Tensor& position_ids,
                               const at::Tensor& attention_mask, KVCache* cache) {
  return Logits(Hidden(input_ids, position_ids, attention_mask, cache));
}

std::vector<std::pair<std::string, at::Tensor>> PolicyImpl::StateDict() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& item : named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

absl::Status PolicyImpl::LoadStateDict(const TensorMap& tensors) {
  try {
    at::NoGradGuard no_grad;
    size_t used = 0;
    for (auto& item : named_parameters()) {
      auto it = tensors.find(item.key());
      if (it == tensors.end()) {
        return absl::NotFoundError(absl::StrCat("checkpoint has no tensor ", item.key()));
      }
      at::Tensor& p = item.value();
      if (it->second.sizes() != p.sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint tensor ", item.key(), " has shape ",
                         c10::str(it->second.sizes()), ", the model expects ",
                         c10::str(p.sizes())));
      }
      if (!it->second.is_floating_point()) {
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint tensor ", item.key(), " is not floating point"));
      }
      p.copy_(it->second);
      ++used;
    }
    for (const auto& [name, t] : tensors) {
      if (named_parameters().find(name) != nullptr) continue;
      const bool ignorable = (name == "lm_head.weight" && config().tie_word_embeddings) ||
                             name.find("rotary_emb.inv_freq") != std::string::npos;
      if (!ignorable) {
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint tensor ", name, " is not a parameter of ",
                         config().architecture));
      }
    }
    (void)used;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("loading weights: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::StatusOr<c10::ScalarType> DtypeFromName(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", name, "\""));
}

std::string DtypeName(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    default:
      return "float32";
  }
}

absl::StatusOr<Policy> LoadPolicy(const std::string& dir, const LoadPolicyOptions& options) {
  auto config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  c10::ScalarType dtype = at::kFloat;
  if (options.dtype) {
    dtype = *options.dtype;
  } else {
    auto d = DtypeFromName(config->torch_dtype);
    if (!d.ok()) return d.status();
    dtype = *d;
  }
  try {
    auto tensors = ReadSafetensorsDir(dir);
    if (!tensors.ok()) return tensors.status();
    Policy policy(PolicyOptions(*config)
                      .dtype(dtype)
                      .device(options.device)
                      .gradient_checkpointing(options.gradient_checkpointing));
    if (auto st = policy->LoadStateDict(*tensors); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat(dir, ": ", st.message()));
    }
    policy->eval();
    return policy;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("loading ", dir, ": ", e.what_without_backtrace()));
  }
}

absl::Status SavePolicy(PolicyImpl& policy, const std::string& dir, int64_t max_shard_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  ModelConfig config = policy.config();
  config.torch_dtype = DtypeName(policy.dtype());
  struct File {
    const char* name;
    std::string text;
  };
  for (const File& f : {File{"config.json", SerializeModelConfig(config)},
                        File{"generation_config.json", SerializeGenerationConfig(config)}}) {
    std::ofstream out(dir + "/" + f.name, std::ios::trunc);
    out << f.text;
    if (!out) return absl::DataLossError(absl::StrCat("cannot write ", dir, "/", f.name));
  }
  try {
    return WriteSafetensorsDir(dir, policy.StateDict(), max_shard_bytes);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("saving ", dir, ": ", e.what_without_backtrace()));
  }
}

}  // namespace envtune
