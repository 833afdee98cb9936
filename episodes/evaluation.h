// Held-out evaluation as BFCL runs it: every task is played as an episode under BFCL's evaluation
// semantics (envserver/episode.h `bfcl_eval_semantics`: per-turn limit 20 executed steps, the 21st
// force-quits, a reply without an executable call ends the turn, no augmentation), then judged by
// BFCL's multi-turn checker (envserver/checker.h) on the raw replies of each turn.
//
// Pieces:
// * EvalEnv: where episodes run. InProcessEvalEnv wraps an EpisodeEngine (default), RemoteEvalEnv an
//   EnvClient (env servers over gRPC). The verdict is always computed locally from the catalog.
// * EvalPolicy: who writes the replies, one batch of episodes at a time. ModelEvalPolicy renders
//   the conversation with the Qwen2.5 chat template (tools section in the Hermes format), encodes
//   it, generates (greedy by default) and decodes up to <|im_end|>. GroundTruthEvalPolicy replays
//   each turn's ground-truth calls in the episode's format, then answers; NoCallsEvalPolicy answers
//   every turn without a call.
// * EvaluateTasks: lockstep batches. Up to `batch_size` episodes are active; each round, every
//   active episode gets one reply from ONE policy batch (episodes in task order), then all env
//   steps run in parallel and are applied in task order; finished episodes are replaced by the
//   next tasks. The batch composition depends only on the task list, so greedy runs are
//   deterministic. EvaluateTask is the single-task form (what an actor's evaluation lease calls).
// * TaskEvaluationJson: one results.jsonl line per task. The report (accuracy per category, JSON
//   and Markdown) and `envtune eval` live in deploy/commands/eval_report.h and eval_command.h;
//   task selection (splits, categories) in episodes/task_selection.h; the ground-truth reply
//   texts next to the task catalog (envserver/ground_truth_reply.h).
//
// Budgets outside BFCL (documented deviations, both rare): a conversation longer than
// max_context_tokens or more than max_replies replies ends the episode ("context_budget" /
// "reply_budget"); the recorded turns are then fewer than the task's, which BFCL's checker
// judges multi_turn:force_terminated. A policy error fails that task as
// multi_turn:inference_error.
// Thread safety: one EvaluateTasks at a time per policy; envs are thread-safe.
#ifndef ENVTUNE_EPISODES_EVALUATION_H_
#define ENVTUNE_EPISODES_EVALUATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "episodes/env_client.h"
#include "envserver/checker.h"
#include "envserver/episode.h"
#include "envserver/task_catalog.h"
#include "envtune/v1/coordinator.pb.h"
#include "envtune/v1/env.pb.h"
#include "model/generate.h"
#include "model/text/tokenizer.h"
#include "nlohmann/json.hpp"

namespace envtune {

class PolicyImpl;

// ---- environments ----
class EvalEnv {
 public:
  virtual ~EvalEnv() = default;
  virtual absl::StatusOr<v1::StartEpisodeResponse> Start(const std::string& task_id,
                                                         const v1::EpisodeOptions& options) = 0;
  virtual absl::StatusOr<v1::StepResponse> Step(const std::string& episode_state,
                                                const std::string& model_output) = 0;
};
// `engine` / `client` are not owned and must outlive the env.
std::unique_ptr<EvalEnv> InProcessEvalEnv(const EpisodeEngine* engine);
std::unique_ptr<EvalEnv> RemoteEvalEnv(EnvClient* client);

// ---- policies ----
// What a policy sees of one episode when asked for its next reply.
struct EvalEpisodeView {
  const BfclTask* task = nullptr;
  v1::OutputFormat format = v1::OUTPUT_FORMAT_BFCL_PROMPTING;
  int turn = 0;          // current user turn
  int step_in_turn = 0;  // replies already given in this turn
  const nlohmann::ordered_json* messages = nullptr;  // conversation so far (role/content/name)
  const nlohmann::ordered_json* tools = nullptr;     // Hermes tool schemas, or null
};

struct EvalReply {
  std::string text;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  bool context_exceeded = false;  // the conversation did not fit; no reply was generated
};

class EvalPolicy {
 public:
  virtual ~EvalPolicy() = default;
  // One reply per view, in order. An error fails every episode of the batch (inference_error).
  virtual absl::StatusOr<std::vector<EvalReply>> Reply(
      const std::vector<EvalEpisodeView>& batch) = 0;
  virtual std::string name() const = 0;
};

struct ModelPolicyOptions {
  // do_sample=false (greedy) by default; stop at <|im_end|>. When sampling, batch k of this
  // policy object uses seed + k * golden-ratio constant (reproducible for equal runs).
  GenerationOptions generation;
  int64_t max_context_tokens = 32768;  // prompt + reply
};
ModelPolicyOptions DefaultModelPolicyOptions();
// `policy` and `tokenizer` are not owned. InvalidArgument when the tokenizer has no <|im_end|>.
absl::StatusOr<std::unique_ptr<EvalPolicy>> ModelEvalPolicy(PolicyImpl* policy,
                                                            const Tokenizer* tokenizer,
                                                            ModelPolicyOptions options);
// `catalog` is not owned (needed to name positional ground-truth arguments).
std::unique_ptr<EvalPolicy> GroundTruthEvalPolicy(const TaskCatalog* catalog);
std::unique_ptr<EvalPolicy> NoCallsEvalPolicy();

// ---- running ----
struct EvalOptions {
  v1::OutputFormat format = v1::OUTPUT_FORMAT_BFCL_PROMPTING;
  uint32_t max_steps_per_turn = 20;  // BFCL's MAXIMUM_STEP_LIMIT
  int batch_size = 16;               // episodes in flight (>= 1)
  int env_threads = 8;               // parallel env calls
  int max_replies = 512;             // per episode, a guard beyond BFCL's own limit
  uint64_t seed = 0;                 // episode seed (no effect without augmentation)
  std::string checker_model_name = "envtune";
};

struct TaskEvaluation {
  std::string task_id;
  std::string category;  // short form: base, miss_func, miss_param, long_context
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // whole conversation
  nlohmann::ordered_json tools;                    // final Hermes tool list, or null
  std::vector<std::vector<std::string>> turn_replies;  // raw replies per turn reached
  std::vector<v1::TurnScore> turn_scores;          // env scores of the finished turns
  CheckerVerdict verdict;
  double progress = 0.0;  // env progress reward (turns scored 1 / turns of the task)
  std::string finish_reason;  // done | force_quit | context_budget | reply_budget | env_error | policy_error
  std::string error;
  int64_t generated_tokens = 0;
  int replies = 0;
};

using EvalProgressFn = std::function<void(const TaskEvaluation& done, size_t finished, size_t total)>;

// Evaluates `task_ids` (results in the same order). Errors only for unusable arguments (unknown
// task id, bad options); per-task failures are results.
absl::StatusOr<std::vector<TaskEvaluation>> EvaluateTasks(EvalPolicy& policy, EvalEnv& env,
                                                          const TaskCatalog& catalog,
                                                          const std::vector<std::string>& task_ids,
                                                          const EvalOptions& options,
                                                          const EvalProgressFn& progress = nullptr);
absl::StatusOr<TaskEvaluation> EvaluateTask(EvalPolicy& policy, EvalEnv& env,
                                            const TaskCatalog& catalog, const std::string& task_id,
                                            const EvalOptions& options);

// The EpisodeStats an evaluation lease reports (valid = BFCL verdict, progress, tokens).
v1::EpisodeStats EvalEpisodeStats(const TaskEvaluation& result, const std::string& episode_id,
                                  uint64_t policy_version);

// One line of results.jsonl: id, category, valid, error type/message/turn, progress, finish
// reason, turn replies, turn scores, the conversation.
nlohmann::ordered_json TaskEvaluationJson(const TaskEvaluation& result);

}  // namespace envtune

#endif  // ENVTUNE_EPISODES_EVALUATION_H_
