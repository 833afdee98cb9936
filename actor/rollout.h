// Rollout: runs many episodes at once against the env servers with one policy.
//
// Scheduling: up to `concurrency` episodes are in flight. Every episode waiting for the model
// is generated in ONE Generate batch (a greedy batch and a sampled batch when both kinds wait);
// env calls (StartEpisode/Step) run on a thread pool, so an episode waiting for an env server
// never blocks the others. After each batch the engine waits at most `batch_gather` for env
// replies still in flight before the next batch, trading a little latency for larger batches
// (`lockstep`: for all of them, for reproducible batches).
//
// Token in, token out (episodes/conversation.h): a trajectory's token_ids are the rendered and
// tokenized opening messages (loss mask 0), then for each model reply exactly the sampled ids (mask
// 1, behaviour log-probs = GenerationResult::logprobs, i.e. the temperature-1 policy), then the ids
// of "\n" + the chat template delta of the observation messages (mask 0; "<|im_end|>\n" + delta
// when the reply was cut by max_new_tokens). Model output is decoded only to send text to the env;
// it is never re-encoded. The model's stop token is <|im_end|>.
//
// Budgets per episode: model replies (max_model_turns -> "turn_budget"), tokens of the whole
// conversation (max_episode_tokens -> "token_budget"; each generation is capped at the remaining
// room), wall time (max_episode_time or the spec's deadline -> "time_budget"). An episode over
// budget is delivered with its reward so far. An episode whose env calls fail (after EnvClient's
// retries) or whose text cannot be rendered is delivered with failed=true, no tokens and the error,
// so its GRPO group is still accounted for.
//
// KV budget (RolloutOptions::kv_budget): each episode reserves max_episode_tokens x
// KvBytesPerToken (model/generate.h: 2 x layers x kv heads x head_dim x dtype bytes) of
// key/value memory from its start to its end; that covers the cache it keeps between replies
// and its row of a generation batch. An episode starts only when its reservation fits next to
// those in flight (and `concurrency` allows), so long episodes queue instead of running out of
// memory. A generation batch may hold at most its rows' reservations (GenerationOptions::
// max_kv_bytes); a batch whose padding would need more is split and generated in parts (each
// row samples from its own stream, so the tokens are the same up to rounding).
// Run fails with RESOURCE_EXHAUSTED, before starting any episode, when one episode's
// reservation exceeds the budget (the message names both numbers), and when generation runs out
// of memory anyway (the message names the cache's rows, tokens and bytes): a round is never
// delivered as a batch of failed episodes.
//
// Thread safety: one Run at a time per Rollout (the tokenizer and env client may be shared).
#ifndef ENVTUNE_ACTOR_ROLLOUT_H_
#define ENVTUNE_ACTOR_ROLLOUT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "episodes/env_client.h"
#include "envtune/v1/coordinator.pb.h"
#include "envtune/v1/env.pb.h"
#include "envtune/v1/learner.pb.h"
#include "model/text/tokenizer.h"

namespace envtune {

class PolicyImpl;

// The key/value memory the actor's episodes may reserve: at most one of the two is set; both 0
// means no budget (episodes are bounded by `concurrency` only).
struct KvBudget {
  int64_t bytes = 0;    // absolute
  double fraction = 0;  // of the policy device's memory (GPU memory, or RAM for cpu), minus
                        // the policy's parameters; in (0, 1]
  bool unlimited() const { return bytes == 0 && fraction == 0; }
};

// "" or "0" (no budget); a size with a unit, "4GiB", "512MiB", "1.5GB", "1000000B" (B, KB, MB,
// GB, TB powers of 1000, KiB, MiB, GiB, TiB powers of 1024); a fraction of device memory "0.9"
// or "90%". InvalidArgument naming the text otherwise (e.g. a bare number above 1).
absl::StatusOr<KvBudget> ParseKvBudget(std::string_view text);
std::string KvBudgetString(const KvBudget& budget);

struct RolloutOptions {
  int concurrency = 64;               // episodes in flight at once (>= 1)
  int env_threads = 0;                // parallel env calls; 0 = concurrency
  int64_t max_new_tokens = 1024;      // per generation, unless the episode sets its own
  double temperature = 1.0;           // sampling temperature (> 0)
  double top_p = 1.0;
  int64_t top_k = 0;                  // 0 = off
  uint32_t max_model_turns = 64;      // model replies per episode
  int64_t max_episode_tokens = 32768; // whole conversation, prompt included
  absl::Duration max_episode_time = absl::Minutes(30);
  absl::Duration batch_gather = absl::Milliseconds(20);
  // Lockstep: before each generation batch wait for every env call in flight (not at most
  // batch_gather), so each batch holds every episode that is not done, in episode order. The
  // batches, and with them every sampled token and log-prob, are then a function of the
  // episodes alone, so a seeded run is bitwise reproducible at any concurrency; costs the
  // overlap of env calls with generation.
  bool lockstep = false;
  uint64_t seed = 0;                  // mixed into every batch's sampling seed
  // Keep each episode's keys/values between its replies, so a reply prefills only the tokens
  // added since the last one (the observation) instead of the whole conversation. Costs the
  // episodes' KV memory while they wait for env servers.
  bool reuse_kv_cache = true;
  KvBudget kv_budget;                 // key/value memory of the episodes in flight (see above)
};

// One episode to roll out.
struct EpisodeSpec {
  std::string episode_id;  // "<lease_id>/<i>"
  std::string lease_id;
  std::string group_id;
  uint32_t group_size = 1;
  std::string task_id;
  uint32_t stage = 0;
  v1::EpisodeOptions options;    // format, reward kind, augmentation, seed
  bool greedy = false;           // evaluation: argmax decoding
  int64_t max_new_tokens = 0;    // 0 = RolloutOptions::max_new_tokens
  int64_t max_episode_tokens = 0;  // 0 = RolloutOptions::max_episode_tokens
  // The episode ends with "time_budget" once this passes (e.g. its lease's deadline).
  absl::Time deadline = absl::InfiniteFuture();
};

struct EpisodeResult {
  v1::Trajectory trajectory;
  v1::EpisodeStats stats;
};

// Called on Run's thread as each episode finishes (in completion order).
using EpisodeDoneFn = std::function<void(const EpisodeSpec& spec, EpisodeResult& result)>;

class Rollout {
 public:
  // `tokenizer` and `env` are not owned and must outlive the Rollout. InvalidArgument (from
  // Run) if the tokenizer has no <|im_end|>.
  Rollout(const Tokenizer* tokenizer, EnvClient* env, RolloutOptions options);

  // Rolls every spec out to completion with `policy` (which nobody may modify meanwhile) and
  // returns the results in spec order. Errors: InvalidArgument for unusable arguments,
  // ResourceExhausted for the KV budget or memory (see above; episodes not delivered by then
  // never are), Internal when generation fails; per-episode failures (env errors) are results
  // with failed=true. If `cancel` becomes true, episodes not finished yet
  // end as failed ("cancelled") and Run returns promptly.
  absl::StatusOr<std::vector<EpisodeResult>> Run(PolicyImpl& policy, uint64_t policy_version,
                                                 const std::vector<EpisodeSpec>& specs,
                                                 const EpisodeDoneFn& on_done = nullptr,
                                                 const std::atomic<bool>* cancel = nullptr);

  // How many episodes of `episode_tokens` tokens the KV budget holds next to each other with
  // `policy`, capped at `concurrency` (concurrency without a budget; at least 1, so that a too
  // small budget fails in Run with its numbers). Errors: those of reading device memory.
  absl::StatusOr<int64_t> EpisodesWithinBudget(const PolicyImpl& policy,
                                               int64_t episode_tokens) const;

  // Totals since construction (for heartbeats and benchmarks).
  int64_t episodes_finished() const { return episodes_finished_.load(); }
  int64_t tokens_generated() const { return tokens_generated_.load(); }
  int64_t generate_batches() const { return generate_batches_.load(); }
  int64_t max_batch_rows() const { return max_batch_rows_.load(); }
  // Most episodes in flight at once, and most KV bytes they had reserved (0 without a budget).
  int64_t max_episodes_in_flight() const { return max_in_flight_.load(); }
  int64_t max_kv_reserved_bytes() const { return max_kv_reserved_.load(); }
  // Generation batches split because their padded cache would exceed their rows' reservations.
  int64_t kv_batch_splits() const { return kv_batch_splits_.load(); }
  // Wall time of Run's thread: in Generate, and blocked on env replies with nothing to generate
  // (the rest of Run is the actor's own work: rendering, tokenizing, decoding).
  double generation_seconds() const { return generation_micros_.load() * 1e-6; }
  double env_wait_seconds() const { return env_wait_micros_.load() * 1e-6; }

 private:
  // The KV budget in bytes for `policy` (0 = none) and how it was derived (for messages).
  absl::StatusOr<std::pair<int64_t, std::string>> KvBudgetBytes(const PolicyImpl& policy) const;

  const Tokenizer* const tokenizer_;
  EnvClient* const env_;
  const RolloutOptions options_;
  std::atomic<int64_t> episodes_finished_{0};
  std::atomic<int64_t> tokens_generated_{0};
  std::atomic<int64_t> generate_batches_{0};
  std::atomic<int64_t> max_batch_rows_{0};
  std::atomic<int64_t> max_in_flight_{0};
  std::atomic<int64_t> max_kv_reserved_{0};
  std::atomic<int64_t> kv_batch_splits_{0};
  std::atomic<int64_t> generation_micros_{0};
  std::atomic<int64_t> env_wait_micros_{0};
};

}  // namespace envtune

#endif  // ENVTUNE_ACTOR_ROLLOUT_H_
