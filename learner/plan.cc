#include "learner/plan.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "learner/learner_role.h"
#include "model/model_spec.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

// Qwen2.5's published config.json architectures (bf16 checkpoints): the tiny model's
// architecture (TinyQwen2Config: Qwen2, rope_theta 1e6, qkv bias, Qwen's special tokens) at
// their sizes.
struct KnownModel {
  const char* name;  // lower case, without "-instruct"
  TinyQwen2Spec sizes;
};
const KnownModel kKnownModels[] = {
    {"qwen2.5-0.5b", {151936, 896, 4864, 24, 14, 2, true}},
    {"qwen2.5-1.5b", {151936, 1536, 8960, 28, 12, 2, true}},
    {"qwen2.5-3b", {151936, 2048, 11008, 36, 16, 2, true}},
    {"qwen2.5-7b", {152064, 3584, 18944, 28, 28, 4, false}},
    {"qwen2.5-14b", {152064, 5120, 13824, 48, 40, 8, false}},
};


constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// model/score.cc: rows per vocabulary chunk keep one [rows, vocab] fp32 buffer near 64 MiB.
constexpr int64_t kScoreBufferElements = int64_t{16} << 20;
// CUDA: the context (cuBLAS/cuDNN workspaces, kernels) and the caching allocator's slack.
constexpr int64_t kCudaContextBytes = int64_t{3} << 29;  // 1.5 GiB
constexpr double kCudaAllocatorSlack = 0.05;

int64_t Ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Shapes {
  int64_t h, I, L, nh, nkv, d, V;
};

Shapes ShapesOf(const ModelConfig& m) {
  const int64_t d = m.head_dim > 0 ? m.head_dim
                                   : m.hidden_size / std::max<int64_t>(1, m.num_attention_heads);
  return {m.hidden_size, m.intermediate_size, m.num_hidden_layers, m.num_attention_heads,
          m.num_key_value_heads, d, m.vocab_size};
}

// Elements autograd keeps for one decoder layer per token: the two RMSNorms' inputs and
// outputs, q/k/v and their rotated copies, the attention output, o_proj's output and the
// residual sums, gate/up, silu(gate), their product.
int64_t LayerActivationElements(const Shapes& s) {
  return 6 * s.h + 3 * s.nh * s.d + 4 * s.nkv * s.d + 4 * s.I;
}

// Gradients alive at once while one layer runs backward (the MLP's widest, the residual's).
int64_t LayerGradientElements(const Shapes& s) { return 2 * s.I + 2 * s.h; }

void Add(RolePlan& plan, std::string name, int64_t bytes, std::string detail) {
  plan.items.push_back({std::move(name), bytes, std::move(detail)});
}

void Finish(RolePlan& plan, int64_t capacity) {
  int64_t total = 0;
  for (const MemoryItem& item : plan.items) total += item.bytes;
  if (plan.device == "cuda") {
    const auto slack = static_cast<int64_t>(kCudaAllocatorSlack * static_cast<double>(total));
    plan.items.push_back({"CUDA context + allocator", kCudaContextBytes + slack,
                          "1.5 GiB context, 5% caching-allocator slack"});
    total += kCudaContextBytes + slack;
  }
  plan.total = total;
  plan.capacity = capacity;
  plan.fits = capacity <= 0 || total <= capacity;
}

std::string GiB(int64_t bytes) { return absl::StrFormat("%.2f", static_cast<double>(bytes) / kGiB); }

}  // namespace

int64_t ParameterCount(const ModelConfig& m) {
  const Shapes s = ShapesOf(m);
  int64_t layer = s.h * s.nh * s.d + 2 * s.h * s.nkv * s.d + s.nh * s.d * s.h  // q, k, v, o
                  + 3 * s.h * s.I                                               // gate, up, down
                  + 2 * s.h;                                                    // two norms
  if (m.qkv_bias) layer += s.nh * s.d + 2 * s.nkv * s.d;
  if (m.o_bias) layer += s.h;
  if (m.mlp_bias) layer += 2 * s.I + s.h;
  int64_t total = s.L * layer + s.V * s.h + s.h;  // + embeddings, final norm
  if (!m.tie_word_embeddings) total += s.V * s.h;
  return total;
}

int64_t KvBytesPerToken(const ModelConfig& m, int dtype_bytes) {
  const Shapes s = ShapesOf(m);
  return 2 * s.L * s.nkv * s.d * dtype_bytes;
}

RolePlan PlanLearner(const LearnerPlanInputs& in) {
  RolePlan plan;
  plan.role = "learner";
  plan.devices = in.world_size;
  plan.device = in.cuda ? "cuda" : "cpu";
  const Shapes s = ShapesOf(in.model);
  const int64_t P = ParameterCount(in.model);
  const int64_t b = in.dtype_bytes;
  const int64_t N = std::max(1, in.world_size);
  const bool mixed = b != 4;
  const bool sharded = in.zero_stage == 2 && N > 1;
  const int64_t T = in.micro_batch_tokens;
  const int64_t largest = std::max(s.V * s.h, s.h * s.I);  // embeddings or an MLP matrix
  const std::string per = sharded ? absl::StrCat(" / ", N, " ranks (ZeRO-2)") : "";

  Add(plan, "parameters", P * b, absl::StrCat(P, " x ", b, " B"));
  Add(plan, "gradients", P * b, absl::StrCat(P, " x ", b, " B (.grad, whole)"));
  const int64_t owned = sharded ? P / N + Ceil(P, in.bucket_elements) : P;
  if (sharded || mixed) Add(plan, "fp32 master weights", owned * 4, absl::StrCat("4 B", per));
  Add(plan, "AdamW moments", owned * 8, absl::StrCat("2 x 4 B", per));
  if (sharded || mixed) {
    Add(plan, "fp32 gradient accumulators", owned * 4, absl::StrCat("4 B", per));
  }
  if (in.reference && !in.reference_offload) {
    Add(plan, "KL reference", P * b, "frozen copy of the initial weights");
  } else if (in.reference) {
    // Embeddings, final norm and lm_head resident; one decoder layer streamed in at a time.
    const int64_t layer = (P - (in.model.tie_word_embeddings ? 1 : 2) * s.V * s.h - s.h) / s.L;
    const int64_t resident = P - s.L * layer;
    Add(plan, "KL reference (offloaded)", (resident + layer) * b,
        absl::StrCat("embeddings, norm, lm_head + one layer; ", s.L * layer * b / (1 << 20),
                     " MiB of layers in host memory"));
  }
  // Transients of the optimizer: the largest tensor's fp32 conversions and AdamW's temporaries.
  int64_t staging = 0;
  std::string staging_detail;
  if (sharded) {
    // Per bucket: its fp32 parts and their concatenation, the gathered parameters.
    const int64_t bucket = std::min(in.bucket_elements, P);
    staging = bucket * (8 + b) + Ceil(bucket, N) * (4 + 4 + b);
    staging_detail = "one bucket: fp32 flat and parts, reduced slice, all-gather; AdamW";
  } else {
    // AdamW's denominator (and the fp32 copy of a 16-bit gradient) of the largest tensor; with
    // several ranks the all-reduce's fp32 parts and their concatenation.
    staging = (mixed ? 8 : 4) * largest + (N > 1 ? 2 * 4 * P : 0);
    staging_detail = N > 1 ? "fp32 all-reduce buffer and its parts; AdamW temporaries"
                           : "AdamW temporaries of the largest tensor";
  }
  Add(plan, "optimizer staging", staging, staging_detail);
  // Activations of one micro-batch.
  const int64_t layer_acts = T * LayerActivationElements(s) * b;
  const int64_t layer_grads = T * LayerGradientElements(s) * b;
  if (in.gradient_checkpointing) {
    Add(plan, "activations: layer inputs", s.L * T * s.h * b,
        absl::StrCat(s.L, " layers x ", T, " tokens x ", s.h, " x ", b, " B (checkpoints)"));
    Add(plan, "activations: one layer", layer_acts + layer_grads,
        "recomputed in backward, with its gradients");
  } else {
    Add(plan, "activations: all layers", s.L * layer_acts + layer_grads,
        absl::StrCat(s.L, " layers x ", T, " tokens"));
  }
  const int64_t rows = std::max<int64_t>(
      1, std::min({in.score_chunk_size > 0 ? in.score_chunk_size : T,
                   kScoreBufferElements / std::max<int64_t>(1, s.V), T}));
  const int64_t score = 2 * rows * s.V * 4          // logits and softmax chunk buffers (fp32)
                        + 3 * T * s.h * b           // final norm out, gathered rows, their grad
                        + s.V * s.h * b             // lm_head's gradient before accumulation
                        + 12 * T * 4;               // log-probs, entropies, loss terms (fp32)
  Add(plan, "scoring (lm_head, loss)", score,
      absl::StrCat(rows, "-row vocabulary chunks; lm_head gradient"));
  Finish(plan, in.device_memory);
  return plan;
}

RolePlan PlanActor(const ActorPlanInputs& in) {
  RolePlan plan;
  plan.role = "actor";
  plan.devices = in.actors;
  plan.device = in.cuda ? "cuda" : "cpu";
  const Shapes s = ShapesOf(in.model);
  const int64_t P = ParameterCount(in.model);
  const int64_t b = in.dtype_bytes;
  Add(plan, "parameters", P * b, absl::StrCat(P, " x ", b, " B"));
  const int64_t per_episode = KvBytesPerToken(in.model, b) * in.max_episode_tokens;
  const int64_t worst = per_episode * in.concurrency;
  int64_t kv = worst;
  std::string detail = absl::StrCat(in.concurrency, " episodes x ", in.max_episode_tokens,
                                    " tokens x ", KvBytesPerToken(in.model, b), " B (no budget)");
  if (in.kv_budget_bytes > 0) {
    kv = std::min(worst, in.kv_budget_bytes);
    detail = absl::StrCat("actor.kv_budget; ", kv / std::max<int64_t>(1, per_episode),
                          " episodes of ", in.max_episode_tokens, " tokens at once");
  } else if (in.kv_budget_fraction > 0 && in.device_memory > 0) {
    kv = std::min(worst, static_cast<int64_t>(in.kv_budget_fraction *
                                              static_cast<double>(in.device_memory)) -
                             P * b);
    detail = absl::StrCat("actor.kv_budget ", in.kv_budget_fraction, " of the device less the "
                          "weights; ", kv / std::max<int64_t>(1, per_episode), " episodes at once");
  }
  Add(plan, "KV cache", std::max<int64_t>(kv, 0), detail);
  // One prefill of a whole episode (no autograd): one layer's widest tensors, and the logits
  // of the rows being sampled.
  const int64_t prefill = in.max_episode_tokens * (2 * s.h + s.nh * s.d + 3 * s.I) * b +
                          in.concurrency * s.V * 4 * 2;
  Add(plan, "prefill and sampling", prefill, "one episode's prefill; logits of the batch");
  Finish(plan, in.device_memory);
  return plan;
}

std::string FormatPlans(const std::vector<RolePlan>& plans) {
  std::string out;
  for (const RolePlan& p : plans) {
    absl::StrAppend(&out, absl::StrFormat("%s: %d x %s, per device\n", p.role, p.devices,
                                          p.device));
    for (const MemoryItem& item : p.items) {
      absl::StrAppend(&out, absl::StrFormat("  %-28s %9s GiB  %s\n", item.name, GiB(item.bytes),
                                            item.detail));
    }
    absl::StrAppend(&out, absl::StrFormat("  %-28s %9s GiB", "total", GiB(p.total)));
    if (p.capacity > 0) {
      absl::StrAppend(&out, absl::StrFormat("  of %s GiB: %s", GiB(p.capacity),
                                            p.fits ? "fits" : "DOES NOT FIT"));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

std::string PlansToJson(const std::vector<RolePlan>& plans) {
  nlohmann::json roles = nlohmann::json::array();
  for (const RolePlan& p : plans) {
    nlohmann::json items = nlohmann::json::array();
    for (const MemoryItem& item : p.items) {
      items.push_back({{"name", item.name}, {"bytes", item.bytes}, {"detail", item.detail}});
    }
    roles.push_back({{"role", p.role},
                     {"devices", p.devices},
                     {"device", p.device},
                     {"items", items},
                     {"total_bytes", p.total},
                     {"capacity_bytes", p.capacity},
                     {"fits", p.fits}});
  }
  return nlohmann::json({{"roles", roles}}).dump(2);
}

std::optional<ModelConfig> KnownModelConfig(std::string_view name) {
  std::string base = absl::AsciiStrToLower(std::filesystem::path(name).filename().string());
  if (base.empty()) {
    base = absl::AsciiStrToLower(std::filesystem::path(name).parent_path().filename().string());
  }
  if (absl::EndsWith(base, "-instruct")) base.resize(base.size() - 9);
  for (const KnownModel& k : kKnownModels) {
    if (base != k.name) continue;
    ModelConfig c = TinyQwen2Config(k.sizes);
    c.torch_dtype = "bfloat16";
    return c;
  }
  return std::nullopt;
}

}  // namespace envtune
