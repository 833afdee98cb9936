// Per-token log-probs (and optionally entropies) of given tokens under the policy, WITH
// gradients, for the learner's GRPO/PPO loss.
//
// Alignment: out.logprobs[b][t] = log p(input_ids[b][t] | input_ids[b][<t]) at the positions
// where loss_mask[b][t] != 0 (t >= 1), and 0 elsewhere; out.entropy[b][t] is the entropy of
// the same predictive distribution. The loss of HF's `labels=` (mean NLL over the mask) is
// -(logprobs * mask).sum() / mask.sum().
//
// Only masked positions go through the lm_head, in chunks whose [chunk, vocab] fp32 logits are
// recomputed in backward instead of stored (chunk_size rows at a time), so memory is
// O(tokens * hidden) rather than O(tokens * vocab).
// Thread safety: like PolicyImpl::forward; backward() must not race with other training.
#ifndef ENVTUNE_MODEL_SCORE_H_
#define ENVTUNE_MODEL_SCORE_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace envtune {

class PolicyImpl;

struct ScoreOptions {
  bool compute_entropy = false;
  // Logits are divided by this before the softmax (1.0 = the raw policy, which is what the
  // log-probs returned by Generate() use).
  double temperature = 1.0;
  // Rows of the [tokens, vocab] logits computed at once; 0 = plain autograd over all logits.
  int64_t chunk_size = 1024;
  // ScoreSequences: when every sequence starts with the same >= 32 tokens (a GRPO group's
  // prompt), run that prefix once and let each row attend to its keys/values. Same values and
  // gradients up to rounding; off under gradient checkpointing (the prefix's activations would
  // be kept for all layers).
  bool share_prefix = true;
};

struct ScoreOutput {
  at::Tensor logprobs;  // float32 [B, L], differentiable
  at::Tensor entropy;   // float32 [B, L], differentiable; undefined unless compute_entropy
  at::Tensor mask;      // float32 [B, L], loss_mask with column 0 cleared
};

// input_ids int [B, L]; attention_mask [B, L] (1 = real token; left or right padding, or
// undefined = all real); loss_mask [B, L] (non-zero = score this token). Position ids are
// cumsum(attention_mask) - 1, so real tokens get 0, 1, ... whatever the padding side.
absl::StatusOr<ScoreOutput> ScoreTokens(PolicyImpl& policy, const at::Tensor& input_ids,
                                        const at::Tensor& attention_mask,
                                        const at::Tensor& loss_mask,
                                        const ScoreOptions& options = {});

// log_softmax over the last dimension, in fp32, whose normaliser is max + log(sum(exp(x - max)))
// with at::sum's pairwise summation. LibTorch 1.13's CPU log_softmax sums exp() sequentially in
// fp32, which over a 152k vocabulary is off by ~4e-4 (checked against fp64); Generate's behaviour
// log-probs and the learner's scores both use this, so they agree to rounding.
at::Tensor AccurateLogSoftmax(const at::Tensor& logits);

// Variable-length sequences, right-padded into one batch; loss_masks[i] has one entry per token
// of sequences[i]. Output tensors are [n, max_len].
absl::StatusOr<ScoreOutput> ScoreSequences(PolicyImpl& policy,
                                           const std::vector<std::vector<int64_t>>& sequences,
                                           const std::vector<std::vector<uint8_t>>& loss_masks,
                                           const ScoreOptions& options = {});

// Greedy micro-batches over `order`: consecutive sequences share a batch while its padded cost,
// common prefix + rows x (longest - common prefix), stays within `budget` tokens (the prefix
// counts once when `share_prefix`, as ScoreSequences runs it once; otherwise it is 0). A
// sequence longer than the budget goes alone. tokens(i) returns sequence i (size(), [k]).
template <typename TokensFn>
std::vector<std::vector<size_t>> PackSequences(const std::vector<size_t>& order,
                                               const TokensFn& tokens, int64_t budget,
                                               bool share_prefix) {
  std::vector<std::vector<size_t>> batches;
  int64_t prefix = 0, longest = 0, shortest = 0;
  for (size_t i : order) {
    const auto& seq = tokens(i);
    const int64_t len = static_cast<int64_t>(seq.size());
    if (!batches.empty()) {
      const auto& first = tokens(batches.back().front());
      const int64_t new_longest = std::max(longest, len);
      const int64_t new_shortest = std::min(shortest, len);
      int64_t new_prefix = 0;
      if (share_prefix) {
        const int64_t limit = std::min(prefix, new_shortest - 1);
        new_prefix = std::mismatch(first.begin(), first.begin() + limit, seq.begin()).first -
                     first.begin();
      }
      const int64_t rows = static_cast<int64_t>(batches.back().size()) + 1;
      if (new_prefix + rows * (new_longest - new_prefix) <= budget) {
        batches.back().push_back(i);
        prefix = new_prefix;
        longest = new_longest;
        shortest = new_shortest;
        continue;
      }
    }
    batches.push_back({i});
    prefix = longest = shortest = len;
  }
  return batches;
}

// -(logprobs * mask).sum() / max(mask.sum(), 1): the mean NLL over scored tokens.
at::Tensor MeanNll(const ScoreOutput& out);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_SCORE_H_
