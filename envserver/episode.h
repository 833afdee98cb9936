// The Environment Tuning episode engine: StartEpisode / Step as pure functions of
// (task catalog, episode-state blob, model text). No gRPC; no per-episode memory that results
// depend on (the episode cache below only saves rebuilding what the blob already determines).
//
// Step is a pipeline: open the blob (or take the cached episode) -> decode the reply in its
// format (envserver/reply_format.h: ReplyFormatFor) -> apply it under the episode's semantics
// (envserver/episode_semantics.h: TrainingSemantics by default, BfclEvalSemantics under
// bfcl_eval_semantics; execution, step limits, cannot-serve turns, observations) -> score the turn
// if it ended and open the next one -> seal the new blob.
//
// Semantics (METHOD.md §2.2-2.6, §4, §5.3-5.4; checker.md A.4, A.6, D):
// * Training vs BFCL evaluation: see episode_semantics.h.
// * Turn score (§4.1): cannot-serve turns by the semantics (CannotServeScore); else 0 without an
// executed step in the turn;
//   else 1 iff the model-side public state equals the ground truth's after this turn for every
//   involved class AND this turn's ground-truth results are a multiset subset of all the model's
//   results so far.
// * Rewards: progress = turns scored 1 / total turns of the task (documented choice: the task's
//   turn count, not the turns reached); stage-1 format reward = has_call * ((N-F)/N + C/(C+E)).
// * miss_func: held-out functions are absent from the prompt/tools until their reveal turn, whose
//   (empty) question becomes the reveal message.
// * Augmentation (training semantics only): decided once per episode: SHA-256(seed, task id) mapped
// to [0,1) < p. It sets
//   SandboxContext::augment for both the model side and the ground-truth side. p = 0 gives BFCL's
//   bytes exactly.
// * Hostile output: model_output over max_model_output_bytes is INVALID_ARGUMENT; invalid UTF-8 is
//   replaced by U+FFFD (Python errors="replace"); more than max_calls_per_step calls in one reply
//   is a format error; results and observations as shown are capped (scoring uses full texts).
// * The blob carries only what changed (see proto/envtune/v1/episode_state.proto) and is sealed
//   with HMAC-SHA256 (key set) or a SHA-256 checksum (no key); anything that does not verify, or a
//   different version, is INVALID_ARGUMENT.
// * Episode cache (a speed-up only; the protocol stays stateless): after a Step the rebuilt
//   model side (sandbox + every result so far) is kept under the new blob's seal tag (its
//   HMAC/SHA-256 digest). A Step whose blob's tag is in the cache takes that entry instead of
//   rebuilding the model side from the initial sandbox and every executed call of the blob; a
//   miss (another replica served the previous step, eviction, restart, a blob used twice) rebuilds
//   from the blob, with the same result byte for byte. An entry is taken (removed) by its first
//   hit, so nothing is copied and two Steps never share one. A blob byte-identical to the one an
//   entry was stored for is not verified or parsed again (this engine sealed those very bytes).
// Thread-safe: one engine serves concurrent calls; its caches (initial sandboxes per task and
// augmentation, ground-truth replays per task and augmentation, rebuilt episode states per blob)
// are bounded LRU maps.
#ifndef ENVTUNE_ENVSERVER_EPISODE_H_
#define ENVTUNE_ENVSERVER_EPISODE_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "envserver/episode_semantics.h"
#include "envserver/executor.h"
#include "envserver/replay.h"
#include "envserver/task_catalog.h"
#include "envtune/v1/env.pb.h"
#include "envtune/v1/episode_state.pb.h"

namespace envtune {

struct EpisodeEngineOptions {
  // HMAC-SHA256 key for the episode-state blob; empty -> SHA-256 checksum only (integrity, no
  // authenticity). Every replica of a cluster must use the same key.
  std::string hmac_key;
  // (task, augmentation) entries kept (LRU). 2048 holds all 800 tasks in both variants, about
  // ~0.1 MB each on average (measured: 97 MB RSS with 800 entries of base + long-context tasks).
  size_t cache_capacity = 2048;
  // Rebuilt episode states kept (LRU), keyed by the digest of the blob they belong to; 0 turns
  // the episode cache off (every Step rebuilds from the blob). An entry is one model-side sandbox
  // plus its result strings and the blob: a few kB for base tasks, up to ~0.5 MB for long-context
  // ones.
  size_t episode_cache_capacity = 1024;
  // Parsed call strings kept for rebuilding episodes from blobs (ParsedCallCache; it starts over
  // when full; ~1 kB each); 0 turns the memo off.
  size_t parse_cache_capacity = 16384;
  size_t max_model_output_bytes = 256 * 1024;  // larger model_output -> INVALID_ARGUMENT
  size_t max_calls_per_step = 64;              // more calls in one reply -> format error (BFCL GT max: 34)
  size_t max_result_bytes = 1 << 20;           // one result as shown (scoring uses the full text)
  size_t max_observation_bytes = 4 << 20;      // one observation message as shown
  uint32_t max_steps_limit = 100;              // largest max_steps_per_turn accepted
  // "Today" for date-dependent tools (see SandboxContext).
  int today_year = 2024, today_month = 9, today_day = 1;
};

class EpisodeEngine {
 public:
  static constexpr uint32_t kStateVersion = 1;

  // `catalog` must outlive the engine.
  EpisodeEngine(const TaskCatalog* catalog, EpisodeEngineOptions options);

  // NOT_FOUND unknown task; INVALID_ARGUMENT bad options.
  absl::StatusOr<v1::StartEpisodeResponse> Start(std::string_view task_id,
                                                 const v1::EpisodeOptions& options) const;
  // INVALID_ARGUMENT bad blob / oversize output; FAILED_PRECONDITION episode already ended.
  absl::StatusOr<v1::StepResponse> Step(std::string_view episode_state,
                                        std::string_view model_output) const;

  // Blob sealing (exposed for tests and tools).
  std::string Seal(const v1::EpisodeState& state) const;
  absl::StatusOr<v1::EpisodeState> Open(std::string_view blob) const;

  // The augmentation decision of METHOD §3.1/§5.4 for (seed, task id, p).
  static bool DecideAugment(uint64_t seed, std::string_view task_id, double probability);

  const TaskCatalog& catalog() const { return *catalog_; }
  const EpisodeEngineOptions& options() const { return options_; }

 private:
  // The texts a task shows in one output format; they depend on nothing else, so they are
  // rendered once (JSON of the function docs is most of Start's work otherwise).
  struct TaskPrompts {
    std::optional<std::string> system;               // none for Hermes (tools travel as schemas)
    std::map<int, std::vector<std::string>> tools;   // turn 0 and every reveal turn -> tools_json
    std::map<int, std::string> opening;              // empty-question turn -> its user message
  };
  struct TaskCache {
    TaskCache(Sandbox initial_sandbox, ReplayResult replay)
        : initial(std::move(initial_sandbox)), truth(std::move(replay)) {}
    Sandbox initial;     // model side, fresh from the initial config
    ReplayResult truth;  // ground-truth side, per turn
    // [turn][class index of `initial`]: the class's initial public state equals the truth's
    // after that turn (decides the state check of a class the model never touched).
    std::vector<std::vector<char>> truth_is_initial;
    // Per output format (index = v1::OutputFormat), rendered on first use.
    mutable absl::Mutex prompts_mu;
    mutable std::shared_ptr<const TaskPrompts> prompts[4] ABSL_GUARDED_BY(prompts_mu);
  };
  std::shared_ptr<const TaskPrompts> Prompts(const TaskCache& cache, const BfclTask& task,
                                             v1::OutputFormat format) const;
  // The model side of an episode after the steps its blob lists.
  struct EpisodeEntry {
    Sandbox model;
    std::vector<std::string> all_results;  // every result string so far, in order
    std::string blob;                      // the sealed blob this entry belongs to
    v1::EpisodeState state;                // its opened state
  };
  absl::StatusOr<std::shared_ptr<const TaskCache>> GetTaskCache(const BfclTask& task, bool augment) const;
  // Removes and returns the entry of `blob` (looked up by its seal tag, then compared byte for
  // byte with the blob it was stored for: a blob identical to one this engine sealed needs no
  // verification or parsing), or nullptr.
  std::unique_ptr<EpisodeEntry> TakeEpisode(std::string_view blob) const;
  // Stores `entry` under its blob's seal tag. REQUIRES: entry->blob was sealed by Seal().
  void PutEpisode(std::unique_ptr<EpisodeEntry> entry) const;
  // Step's first stage: the episode of `blob` (cached, or opened and rebuilt), its task and
  // task cache; FAILED_PRECONDITION if it has ended, INVALID_ARGUMENT / NOT_FOUND if it does not
  // open or names an unknown task or turn.
  struct StepInput {
    std::unique_ptr<EpisodeEntry> episode;  // episode->state is the opened state
    const BfclTask* task = nullptr;
    std::shared_ptr<const TaskCache> cache;
  };
  absl::StatusOr<StepInput> OpenForStep(std::string_view blob) const;
  // Scores the turn that `end` ended, records it in `s` and `resp`, and opens the next turn (its
  // messages and newly revealed tools) or ends the episode.
  void EndTurn(const TurnEnd& end, const EpisodeSemantics& semantics, StepInput& in,
               v1::StepResponse* resp) const;
  const SandboxContext* Context(bool augment) const { return augment ? &augmented_ : &plain_; }

  struct SealContext;
  static std::shared_ptr<const SealContext> MakeSealContext(const std::string& key);

  const TaskCatalog* catalog_;
  EpisodeEngineOptions options_;
  std::shared_ptr<const SealContext> seal_;
  std::unique_ptr<ParsedCallCache> parse_cache_;  // nullptr when off; used by model-side sandboxes
  SandboxContext plain_;
  SandboxContext augmented_;

  mutable absl::Mutex mu_;
  mutable std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  struct CacheSlot {
    std::shared_ptr<const TaskCache> value;
    std::list<std::string>::iterator pos;
  };
  mutable absl::flat_hash_map<std::string, CacheSlot> cache_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex episode_mu_;
  mutable std::list<std::string> episode_lru_ ABSL_GUARDED_BY(episode_mu_);  // front = most recent
  struct EpisodeSlot {
    std::unique_ptr<EpisodeEntry> entry;
    std::list<std::string>::iterator pos;
  };
  mutable absl::flat_hash_map<std::string, EpisodeSlot> episodes_ ABSL_GUARDED_BY(episode_mu_);
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_EPISODE_H_
