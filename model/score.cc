#include "model/score.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "absl/strings/str_cat.h"
#include "model/qwen2.h"

namespace envtune {
namespace {

// logits = (hidden @ weight^T).float() * inv_temperature, per chunk of rows; returns
// {logprob of target, entropy} [N] each. Backward recomputes each chunk's logits.
struct ChunkedTokenScore : public torch::autograd::Function<ChunkedTokenScore> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::Tensor hidden, at::Tensor weight,
                                                at::Tensor targets, double inv_temperature,
                                                int64_t chunk) {
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["inv_t"] = inv_temperature;
    ctx->saved_data["chunk"] = chunk;
    const int64_t n = hidden.size(0);
    at::Tensor lp = at::empty({n}, hidden.options().dtype(at::kFloat));
    at::Tensor ent = at::empty({n}, hidden.options().dtype(at::kFloat));
    for (int64_t s = 0; s < n; s += chunk) {
      const int64_t len = std::min(chunk, n - s);
      at::Tensor z = at::linear(hidden.narrow(0, s, len), weight).to(at::kFloat) * inv_temperature;
      at::Tensor logp = z.log_softmax(-1);
      lp.narrow(0, s, len).copy_(logp.gather(1, targets.narrow(0, s, len).unsqueeze(1)).squeeze(1));
      ent.narrow(0, s, len).copy_(-(logp.exp() * logp).sum(-1));
    }
    return {lp, ent};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& targets = saved[2];
    const double inv_t = ctx->saved_data["inv_t"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor& g_lp = grads[0];
    const at::Tensor& g_ent = grads[1];
    const int64_t n = hidden.size(0);
    at::Tensor grad_hidden = at::empty_like(hidden);
    at::Tensor grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    for (int64_t s = 0; s < n; s += chunk) {
      const int64_t len = std::min(chunk, n - s);
      at::Tensor h = hidden.narrow(0, s, len);
      at::Tensor z = at::linear(h, weight).to(at::kFloat) * inv_t;
      at::Tensor logp = z.log_softmax(-1);
      at::Tensor p = logp.exp();
      at::Tensor gz = at::zeros_like(z);
      if (g_lp.defined()) {
        at::Tensor g = g_lp.narrow(0, s, len).unsqueeze(1);
        gz = gz - p * g;
        gz.scatter_add_(1, targets.narrow(0, s, len).unsqueeze(1), g);
      }
      if (g_ent.defined()) {
        // H = -sum p log p;  dH/dz_k = -p_k (log p_k + H).
        at::Tensor H = -(p * logp).sum(-1, /*keepdim=*/true);
        gz = gz - g_ent.narrow(0, s, len).unsqueeze(1) * p * (logp + H);
      }
      at::Tensor g_raw = (gz * inv_t).to(hidden.scalar_type());
      grad_hidden.narrow(0, s, len).copy_(at::matmul(g_raw, weight));
      grad_weight.add_(at::matmul(g_raw.t(), h));
    }
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

absl::StatusOr<ScoreOutput> ScoreTokens(PolicyImpl& policy, const at::Tensor& input_ids,
                                        const at::Tensor& attention_mask,
                                        const at::Tensor& loss_mask, const ScoreOptions& options) {
  if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.size(1) < 1) {
    return absl::InvalidArgumentError("input_ids must be [batch, len] with len >= 1");
  }
  if (!loss_mask.defined() || loss_mask.sizes() != input_ids.sizes()) {
    return absl::InvalidArgumentError("loss_mask must have the shape of input_ids");
  }
  if (attention_mask.defined() && attention_mask.sizes() != input_ids.sizes()) {
    return absl::InvalidArgumentError("attention_mask must have the shape of input_ids");
  }
  if (!(options.temperature > 0)) return absl::InvalidArgumentError("temperature must be > 0");
  if (options.chunk_size < 0) return absl::InvalidArgumentError("chunk_size must be >= 0");
  try {
    const c10::Device device = policy.device();
    at::Tensor ids = input_ids.to(device, at::kLong);
    if (ids.numel() > 0 &&
        (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= policy.config().vocab_size)) {
      return absl::InvalidArgumentError("input_ids has token ids outside the vocabulary");
    }
    const int64_t B = ids.size(0), L = ids.size(1);
    at::Tensor attn = attention_mask.defined() ? attention_mask.to(device, at::kLong)
                                               : at::ones({B, L}, ids.options());
    at::Tensor positions = (attn.cumsum(-1) - 1).clamp_min(0);
    at::Tensor mask = loss_mask.to(device).ne(0).to(at::kFloat);
    mask.select(1, 0).zero_();

    at::Tensor hidden = policy.Hidden(ids, positions, attn);  // [B, L, H]
    // Token t is predicted from hidden[t - 1].
    at::Tensor sel = mask.narrow(1, 1, L - 1).nonzero();  // [N, 2] (b, t - 1)
    at::Tensor b_idx = sel.select(1, 0);
    at::Tensor t_idx = sel.select(1, 1);
    at::Tensor h = hidden.index({b_idx, t_idx});                // [N, H]
    at::Tensor targets = ids.index({b_idx, t_idx + 1});         // [N]
    const at::Tensor& weight = policy.lm_head ? policy.lm_head->weight : policy.model->embed_weight;
    const double inv_t = 1.0 / options.temperature;
    at::Tensor lp, ent;
    if (options.chunk_size == 0) {
      at::Tensor logp = (at::linear(h, weight).to(at::kFloat) * inv_t).log_softmax(-1);
      lp = logp.gather(1, targets.unsqueeze(1)).squeeze(1);
      if (options.compute_entropy) ent = -(logp.exp() * logp).sum(-1);
    } else {
      auto outs = ChunkedTokenScore::apply(h, weight, targets, inv_t, options.chunk_size);
      lp = outs[0];
      ent = outs[1];
    }
    ScoreOutput out;
    auto fopts = at::TensorOptions().dtype(at::kFloat).device(device);
    out.logprobs = at::zeros({B, L}, fopts).index_put({b_idx, t_idx + 1}, lp);
    if (options.compute_entropy) out.entropy = at::zeros({B, L}, fopts).index_put({b_idx, t_idx + 1}, ent);
    out.mask = mask;
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("score: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<ScoreOutput> ScoreSequences(PolicyImpl& policy,
                                           const std::vector<std::vector<int64_t>>& sequences,
                                           const std::vector<std::vector<uint8_t>>& loss_masks,
                                           const ScoreOptions& options) {
  if (sequences.empty()) return absl::InvalidArgumentError("no sequences");
  if (loss_masks.size() != sequences.size()) {
    return absl::InvalidArgumentError("one loss mask per sequence is required");
  }
  int64_t L = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    if (sequences[i].empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " is empty"));
    if (loss_masks[i].size() != sequences[i].size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss mask ", i, " has ", loss_masks[i].size(), " entries for ",
                       sequences[i].size(), " tokens"));
    }
    L = std::max<int64_t>(L, static_cast<int64_t>(sequences[i].size()));
  }
  const int64_t B = static_cast<int64_t>(sequences.size());
  at::Tensor ids = at::zeros({B, L}, at::kLong);
  at::Tensor attn = at::zeros({B, L}, at::kLong);
  at::Tensor loss = at::zeros({B, L}, at::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto attn_a = attn.accessor<int64_t, 2>();
  auto loss_a = loss.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (size_t t = 0; t < sequences[b].size(); ++t) {
      ids_a[b][t] = sequences[b][t];
      attn_a[b][t] = 1;
      loss_a[b][t] = loss_masks[b][t] != 0;
    }
  }
  return ScoreTokens(policy, ids, attn, loss, options);
}

at::Tensor MeanNll(const ScoreOutput& out) {
  return -(out.logprobs * out.mask).sum() / out.mask.sum().clamp_min(1.0);
}

}  // namespace envtune
