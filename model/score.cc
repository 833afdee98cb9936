#include "model/score.h"

#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "absl/strings/str_cat.h"
#include "model/qwen2.h"

namespace envtune {
namespace {

// Shorter common prefixes are not worth a second forward pass.
constexpr int64_t kMinSharedPrefix = 32;

// Rows per chunk: at most `chunk`, and few enough that one [rows, vocab] fp32 buffer stays near
// 64 MiB. Each chunk reuses two such buffers in place: fresh vocab-wide temporaries per op are
// fresh mmap()s whose page faults cost more than the arithmetic.
int64_t ChunkRows(int64_t chunk, int64_t vocab) {
  constexpr int64_t kBufferElements = int64_t{16} << 20;
  return std::max<int64_t>(1, std::min(chunk, kBufferElements / std::max<int64_t>(1, vocab)));
}

// z = (h @ weight^T) * inv_t in fp32, written into `z`.
void ChunkLogits(const at::Tensor& h, const at::Tensor& weight, double inv_t, at::Tensor& z) {
  if (h.scalar_type() == at::kFloat) {
    at::mm_out(z, h, weight.t());
  } else {
    z.copy_(at::linear(h, weight));
  }
  if (inv_t != 1.0) z.mul_(inv_t);
}

// With z [n, V]: p <- softmax(z) in place of `p`; returns lse [n, 1].
at::Tensor SoftmaxInto(const at::Tensor& z, at::Tensor& p) {
  at::Tensor max = std::get<0>(z.max(1, /*keepdim=*/true));
  p.copy_(z).sub_(max).exp_();
  at::Tensor sum = p.sum(1, /*keepdim=*/true);
  p.div_(sum);
  return sum.log_().add_(max);
}

// Row-wise sum(p * z) [n, 1] without a [n, V] temporary.
at::Tensor RowDot(const at::Tensor& p, const at::Tensor& z) {
  return at::bmm(p.unsqueeze(1), z.unsqueeze(2)).view({p.size(0), 1});
}

// logits = (hidden @ weight^T).float() * inv_temperature, per chunk of rows; returns
// {logprob of target, entropy} [N] each. Backward recomputes each chunk's logits.
//   logp_t = z_t - lse;  H = lse - sum p z
//   d/dz: g_lp (onehot_t - p) + g_H (-p (z - lse + H)) = p (a + c z) + g_lp onehot_t
//   with a = -g_lp + g_H (lse - H), c = -g_H.
struct ChunkedTokenScore : public torch::autograd::Function<ChunkedTokenScore> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::Tensor hidden, at::Tensor weight,
                                                at::Tensor targets, double inv_temperature,
                                                int64_t chunk) {
    const int64_t n = hidden.size(0), vocab = weight.size(0);
    const int64_t rows = ChunkRows(chunk, vocab);
    auto fopts = hidden.options().dtype(at::kFloat);
    at::Tensor lp = at::empty({n}, fopts);
    at::Tensor ent = at::empty({n}, fopts);
    at::Tensor lse_all = at::empty({n}, fopts);
    at::Tensor z_buf = at::empty({std::min(rows, n), vocab}, fopts);
    at::Tensor p_buf = at::empty_like(z_buf);
    for (int64_t s = 0; s < n; s += rows) {
      const int64_t len = std::min(rows, n - s);
      at::Tensor z = z_buf.narrow(0, 0, len);
      at::Tensor p = p_buf.narrow(0, 0, len);
      ChunkLogits(hidden.narrow(0, s, len), weight, inv_temperature, z);
      at::Tensor lse = SoftmaxInto(z, p);
      at::Tensor zt = z.gather(1, targets.narrow(0, s, len).unsqueeze(1));
      lp.narrow(0, s, len).copy_((zt - lse).squeeze(1));
      ent.narrow(0, s, len).copy_((lse - RowDot(p, z)).squeeze(1));
      lse_all.narrow(0, s, len).copy_(lse.squeeze(1));
    }
    ctx->save_for_backward({hidden, weight, targets, lse_all, ent});
    ctx->saved_data["inv_t"] = inv_temperature;
    ctx->saved_data["chunk"] = chunk;
    return {lp, ent};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& targets = saved[2];
    const at::Tensor& lse_all = saved[3];
    const at::Tensor& ent_all = saved[4];
    const double inv_t = ctx->saved_data["inv_t"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const int64_t n = hidden.size(0), vocab = weight.size(0);
    const int64_t rows = ChunkRows(chunk, vocab);
    auto fopts = hidden.options().dtype(at::kFloat);
    at::Tensor g_lp = grads[0].defined() ? grads[0] : at::zeros({n}, fopts);
    at::Tensor g_ent = grads[1].defined() ? grads[1] : at::zeros({n}, fopts);
    at::Tensor grad_hidden = at::empty_like(hidden);
    at::Tensor grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    at::Tensor z_buf = at::empty({std::min(rows, n), vocab}, fopts);
    at::Tensor p_buf = at::empty_like(z_buf);
    for (int64_t s = 0; s < n; s += rows) {
      const int64_t len = std::min(rows, n - s);
      at::Tensor h = hidden.narrow(0, s, len);
      at::Tensor z = z_buf.narrow(0, 0, len);
      at::Tensor p = p_buf.narrow(0, 0, len);
      ChunkLogits(h, weight, inv_t, z);
      at::Tensor lse = lse_all.narrow(0, s, len).unsqueeze(1);
      p.copy_(z).sub_(lse).exp_();  // softmax from the forward's log-sum-exp
      at::Tensor glp = g_lp.narrow(0, s, len).unsqueeze(1);
      at::Tensor gh = g_ent.narrow(0, s, len).unsqueeze(1);
      at::Tensor H = ent_all.narrow(0, s, len).unsqueeze(1);
      // gz (in z's buffer) = (p (a + c z) + g_lp onehot) * inv_t, the gradient w.r.t. raw logits.
      at::Tensor a = (-glp + gh * (lse - H)) * inv_t;
      at::Tensor c = -gh * inv_t;
      z.mul_(c).add_(a).mul_(p);
      z.scatter_add_(1, targets.narrow(0, s, len).unsqueeze(1), glp * inv_t);
      at::Tensor g_raw = hidden.scalar_type() == at::kFloat ? z : z.to(hidden.scalar_type());
      grad_hidden.narrow(0, s, len).copy_(at::mm(g_raw, weight));
      grad_weight.addmm_(g_raw.t(), h);
    }
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Scores the tokens (b_idx, t_idx + 1) of `ids` from their predicting hidden states h [N, H]
// and assembles the [B, L] outputs.
ScoreOutput ScoreRows(PolicyImpl& policy, const at::Tensor& h, const at::Tensor& ids,
                      const at::Tensor& b_idx, const at::Tensor& t_idx, const at::Tensor& mask,
                      const ScoreOptions& options) {
  const int64_t B = ids.size(0), L = ids.size(1);
  at::Tensor targets = ids.index({b_idx, t_idx + 1});  // [N]
  const at::Tensor& weight = policy.lm_head ? policy.lm_head->weight : policy.model->embed_weight;
  const double inv_t = 1.0 / options.temperature;
  at::Tensor lp, ent;
  if (options.chunk_size == 0) {
    at::Tensor logp = AccurateLogSoftmax(at::linear(h, weight).to(at::kFloat) * inv_t);
    lp = logp.gather(1, targets.unsqueeze(1)).squeeze(1);
    if (options.compute_entropy) ent = -(logp.exp() * logp).sum(-1);
  } else {
    auto outs = ChunkedTokenScore::apply(h, weight, targets, inv_t, options.chunk_size);
    lp = outs[0];
    ent = outs[1];
  }
  ScoreOutput out;
  auto fopts = at::TensorOptions().dtype(at::kFloat).device(ids.device());
  out.logprobs = at::zeros({B, L}, fopts).index_put({b_idx, t_idx + 1}, lp);
  if (options.compute_entropy) {
    out.entropy = at::zeros({B, L}, fopts).index_put({b_idx, t_idx + 1}, ent);
  }
  out.mask = mask;
  return out;
}

// ScoreTokens. With prefix > 0 the rows are right-padded and their first `prefix` tokens are the
// same (prefix <= every row's length - 1): the prefix runs once as a batch of one, the rest of
// every row attends to its keys/values (append-mode cache), and gradients reach the prefix
// through them.
absl::StatusOr<ScoreOutput> ScoreTokensImpl(PolicyImpl& policy, const at::Tensor& input_ids,
                                            const at::Tensor& attention_mask,
                                            const at::Tensor& loss_mask,
                                            const ScoreOptions& options, int64_t prefix) {
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
    // Token t is predicted from hidden[t - 1].
    at::Tensor sel = mask.narrow(1, 1, L - 1).nonzero();  // [N, 2] (b, t - 1)
    at::Tensor b_idx = sel.select(1, 0);
    at::Tensor t_idx = sel.select(1, 1);

    if (prefix == 0) {
      at::Tensor hidden = policy.Hidden(ids, positions, attn);  // [B, L, H]
      return ScoreRows(policy, hidden.index({b_idx, t_idx}), ids, b_idx, t_idx, mask, options);
    }
    const int64_t C = L - prefix;
    KVCache shared = KVCache::Appending(policy.config());
    at::Tensor hidden_prefix =
        policy.Hidden(ids.narrow(0, 0, 1).narrow(1, 0, prefix),
                      positions.narrow(0, 0, 1).narrow(1, 0, prefix), {}, &shared);  // [1, P, H]
    at::Tensor hidden_rest = policy.Hidden(ids.narrow(1, prefix, C),
                                           positions.narrow(1, prefix, C), attn, &shared);
    // Rows of [prefix positions; row-major rest positions] predicting each scored token.
    const int64_t H = hidden_rest.size(2);
    at::Tensor table = at::cat({hidden_prefix[0], hidden_rest.reshape({B * C, H})}, 0);
    at::Tensor row = at::where(t_idx < prefix, t_idx, prefix + b_idx * C + (t_idx - prefix));
    return ScoreRows(policy, table.index_select(0, row), ids, b_idx, t_idx, mask, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("score: ", e.what_without_backtrace()));
  }
}

}  // namespace

at::Tensor AccurateLogSoftmax(const at::Tensor& logits) {
  at::Tensor x = logits.to(at::kFloat);
  return x - x.logsumexp(-1, /*keepdim=*/true);
}

absl::StatusOr<ScoreOutput> ScoreTokens(PolicyImpl& policy, const at::Tensor& input_ids,
                                        const at::Tensor& attention_mask,
                                        const at::Tensor& loss_mask, const ScoreOptions& options) {
  return ScoreTokensImpl(policy, input_ids, attention_mask, loss_mask, options, /*prefix=*/0);
}

absl::StatusOr<ScoreOutput> ScoreSequences(PolicyImpl& policy,
                                           const std::vector<std::vector<int64_t>>& sequences,
                                           const std::vector<std::vector<uint8_t>>& loss_masks,
                                           const ScoreOptions& options) {
  if (sequences.empty()) return absl::InvalidArgumentError("no sequences");
  if (loss_masks.size() != sequences.size()) {
    return absl::InvalidArgumentError("one loss mask per sequence is required");
  }
  int64_t L = 0, min_len = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < sequences.size(); ++i) {
    if (sequences[i].empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " is empty"));
    if (loss_masks[i].size() != sequences[i].size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss mask ", i, " has ", loss_masks[i].size(), " entries for ",
                       sequences[i].size(), " tokens"));
    }
    L = std::max<int64_t>(L, static_cast<int64_t>(sequences[i].size()));
    min_len = std::min<int64_t>(min_len, static_cast<int64_t>(sequences[i].size()));
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
  // The longest prefix every row shares, leaving each row at least one token of its own.
  int64_t prefix = min_len - 1;
  for (int64_t b = 1; b < B && prefix > 0; ++b) {
    const auto& first = sequences[0];
    prefix = std::mismatch(first.begin(), first.begin() + prefix, sequences[b].begin()).first -
             first.begin();
  }
  const bool share = options.share_prefix && B >= 2 && prefix >= kMinSharedPrefix &&
                     !policy.options.gradient_checkpointing();
  return ScoreTokensImpl(policy, ids, attn, loss, options, share ? prefix : 0);
}

at::Tensor MeanNll(const ScoreOutput& out) {
  return -(out.logprobs * out.mask).sum() / out.mask.sum().clamp_min(1.0);
}

}  // namespace envtune
