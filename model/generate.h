// Batched autoregressive generation with a KV cache. No torch types in this header (the policy
// is only forward-declared), so actor-side code can include it.
//
// Prompts of different lengths are left-padded to a common length; position ids are
// cumsum(mask) - 1 (pads 1) exactly like HF generate, so a padded prompt produces the same
// tokens as the prompt alone. Each step runs only the still-active rows (finished rows are
// dropped from the batch and the cache).
//
// Log-probs: GenerationResult::logprobs[i] is log softmax(raw fp32 logits)[token], i.e. the
// log-prob under the policy at temperature 1.0 with no top-k/top-p truncation. That is the
// behaviour-policy log-prob the learner needs for the PPO/GRPO ratio when it scores with the
// unscaled policy. sampling_logprobs[i] is the log-prob under the distribution actually sampled
// from (after temperature, top-k, top-p); for greedy decoding it equals logprobs.
//
// Memory: the batch's key/value cache grows with what is generated (layer by layer, in blocks of
// kKvBlockTokens, doubling the generated part) instead of being allocated for prompt +
// max_new_tokens up front, and finished rows are compacted out of it in place.
// GenerationOptions::max_kv_bytes caps what one call may hold. An allocation failure (CUDA or
// host out of memory) is RESOURCE_EXHAUSTED naming the cache's rows, tokens and bytes.
//
// Thread safety: Generate() does not mutate the policy; concurrent calls on one policy are
// safe as long as nobody trains/loads it meanwhile.
#ifndef ENVTUNE_MODEL_GENERATE_H_
#define ENVTUNE_MODEL_GENERATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace envtune {

class PolicyImpl;

struct GenerationOptions {
  int64_t max_new_tokens = 256;
  // false: greedy (argmax of the raw logits; temperature/top_k/top_p ignored).
  bool do_sample = true;
  double temperature = 1.0;  // > 0 when do_sample
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // in (0, 1]; 1 = off
  uint64_t seed = 0;         // sampling is reproducible for equal inputs, options and seed
  // Empty, or one per prompt: row i then draws its uniforms from its own stream (row_seeds[i],
  // token index) instead of the batch's `seed`, so its sample does not depend on which other
  // rows share the batch (up to rounding of its logits in a different batch shape).
  std::vector<uint64_t> row_seeds;
  // Generation of a row stops after it emits one of these (the token is kept in the output).
  std::vector<int64_t> stop_token_ids;
  // ...or once the detokenized generated text contains one of these (needs `detokenize`; the
  // token completing the match is kept, and matched_stop tells which string matched).
  std::vector<std::string> stop_strings;
  int64_t pad_token_id = 0;  // only fills masked positions; never affects results
  // The most key/value bytes this call may hold at once (its batch cache with padding and
  // growth room, plus copies of finished rows' caches, counted at the next growth); 0 = no
  // limit. A call that would need more fails with RESOURCE_EXHAUSTED that IsKvLimitError
  // recognises, before allocating (the caller may split the batch: one row never needs more
  // than (prompt + max_new_tokens) x KvBytesPerToken).
  int64_t max_kv_bytes = 0;
};

// The generated part of a batch cache starts at this many tokens (or max_new_tokens if fewer)
// and doubles when it fills.
inline constexpr int64_t kKvBlockTokens = 256;

// Bytes of keys and values one token occupies in `policy`'s caches:
// 2 x layers x key/value heads x head_dim x the policy dtype's size.
int64_t KvBytesPerToken(const PolicyImpl& policy);

// True for Generate's RESOURCE_EXHAUSTED from GenerationOptions::max_kv_bytes (as opposed to a
// real out-of-memory from the allocator).
bool IsKvLimitError(const absl::Status& status);

// Memory of the policy's device: total bytes (CUDA: the GPU's memory; CPU: physical RAM), and
// the bytes the policy's parameters take there. Errors: Internal when the device cannot say.
struct DeviceMemory {
  int64_t total_bytes = 0;
  int64_t parameter_bytes = 0;
};
absl::StatusOr<DeviceMemory> PolicyDeviceMemory(const PolicyImpl& policy);

enum class FinishReason { kStopToken, kStopString, kLength };
const char* FinishReasonName(FinishReason reason);

struct GenerationResult {
  std::vector<int64_t> token_ids;        // generated tokens (prompt excluded)
  std::vector<float> logprobs;           // per token, raw policy (temperature 1.0)
  std::vector<float> sampling_logprobs;  // per token, the processed sampling distribution
  FinishReason finish_reason = FinishReason::kLength;
  std::string matched_stop;              // the stop string, for kStopString
  int64_t reused_tokens = 0;             // prompt tokens taken from the cache, not prefilled
};

// Turns token ids into text (e.g. the Qwen tokenizer's Decode). Must be thread-compatible.
using DetokenizeFn = std::function<std::string(const std::vector<int64_t>&)>;

// The keys and values of one token sequence, kept between Generate calls so that a multi-turn
// conversation (whose next prompt extends the previous prompt and reply) prefills only its new
// tokens. Opaque; Generate makes them. Valid only for the weights that made it: the caller drops
// its caches when the policy changes.
class SequenceCache;
using SequenceCachePtr = std::shared_ptr<SequenceCache>;
// Number of tokens a cache covers (0 for null).
int64_t SequenceCacheTokens(const SequenceCachePtr& cache);

// Generates for every prompt (non-empty; ids in [0, vocab)). Errors: InvalidArgument for bad
// prompts/options (or stop_strings without detokenize), ResourceExhausted when memory runs out
// or max_kv_bytes would be exceeded (the message names rows, tokens, bytes per token and bytes),
// Internal for other LibTorch failures.
//
// caches (optional; one entry per prompt, null = none): entry i's keys/values are reused for the
// longest common prefix of its tokens and prompts[i] (at most all but the last prompt token), so
// only the rest is prefilled; the results equal a full prefill up to floating-point rounding.
// Entries are consumed: once copied into the batch cache, an entry nobody else references frees
// its memory layer by layer. On success entry i is replaced by the cache of prompts[i] + the
// generated tokens but the last (the prefix of the row's next prompt); on error every entry is
// reset to null (the caller prefills from scratch next time).
absl::StatusOr<std::vector<GenerationResult>> Generate(
    PolicyImpl& policy, const std::vector<std::vector<int64_t>>& prompts,
    const GenerationOptions& options, const DetokenizeFn& detokenize = nullptr,
    std::vector<SequenceCachePtr>* caches = nullptr);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_GENERATE_H_
