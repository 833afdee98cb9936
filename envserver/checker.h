// BFCL V3's multi-turn checker (spec checker.md D.1-D.4), reproduced exactly, plus the
// Environment Tuning episode reward of METHOD.md §4.2 computed from the same replay.
//
// Contract:
// * Input preparation (D.1): PrepareTurnSteps decodes each step's raw reply again with the chosen
//   decoder (a DecodeMode, or any reply format: envserver/reply_format.h); a step whose decoding fails, yields no call (kNoCall/kAnswer/kFormatError/kError),
//   or is "empty" in BFCL's is_empty_execute_response sense ([] or [""]) is dropped.
//   DropEmptySteps applies the same filter to already-decoded call lists.
// * CheckMultiTurn(task, model_turns): model_turns[t] = the model's steps in turn t, each a list
//   of call strings (already prepared). Verdict, in BFCL's order:
//     - turn count != ground-truth turn count -> multi_turn:force_terminated, before any replay;
//     - else every turn t: execute every model step on the model-side Sandbox (name
//       "<model>_eval"), then the ground-truth list on the ground-truth Sandbox
//       ("<model>_ground_truth_eval"), both fresh from the initial config, both every turn;
//       empty GT -> not checked; else empty model turn (no step, or exactly one empty step) ->
//       multi_turn:empty_turn_model_response; else public state of every involved class, in
//       involved order, Python == -> multi_turn:instance_state_mismatch naming the first
//       mismatching class; else multiset containment of this turn's GT results in ALL model
//       results of turns 0..t -> multi_turn:execution_response_mismatch. The first failure
//       decides valid/error_type/error_message (exact BFCL texts).
//   InferenceErrorVerdict() is the runner-level multi_turn:inference_error (result not a list).
// * Per-turn scores (for the reward; BFCL itself stops at the first failure, we keep scoring):
//     - GT non-empty: checked=true; state_ok/response_ok are the two checks' outcomes (computed
//       even when the model turn is empty); score = 1 iff the model turn is non-empty and both
//       checks pass.
//     - GT empty (cannot-serve turn): checked=false, BFCL does not check it, score = 1;
//       state_ok reports the (unchecked) state comparison, response_ok = true (nothing to find).
//   reward = (turns scored 1) / (number of ground-truth turns) (METHOD §4.2, denominator = total
//   turns). force_terminated: the first min(model, GT) turns are still replayed and scored for
//   the reward only (the verdict is decided before any replay); inference_error: no turns, 0.
// Never throws; returns an error Status only when the task itself cannot be instantiated.
#ifndef ENVTUNE_ENVSERVER_CHECKER_H_
#define ENVTUNE_ENVSERVER_CHECKER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/decode.h"
#include "envserver/executor.h"
#include "envserver/pyvalue.h"
#include "envserver/reply_format.h"
#include "envserver/task_catalog.h"

namespace envtune {

using CallList = std::vector<std::string>;

// Error types (checker.md D.4).
inline constexpr char kErrInferenceError[] = "multi_turn:inference_error";
inline constexpr char kErrForceTerminated[] = "multi_turn:force_terminated";
inline constexpr char kErrEmptyTurn[] = "multi_turn:empty_turn_model_response";
inline constexpr char kErrStateMismatch[] = "multi_turn:instance_state_mismatch";
inline constexpr char kErrResponseMismatch[] = "multi_turn:execution_response_mismatch";

struct CheckerTurn {
  int turn = 0;
  bool checked = false;         // false for empty-ground-truth turns (BFCL skips them)
  bool empty_response = false;  // the model made no (non-empty) step in this turn
  bool state_ok = false;
  bool response_ok = false;
  int score = 0;
  std::vector<std::string> model_results;  // all steps of this turn, concatenated
  std::vector<std::string> truth_results;
};

struct CheckerVerdict {
  bool valid = false;
  std::string error_type;     // "" when valid
  std::string error_message;  // BFCL's exact message; "" when valid
  int error_turn = -1;        // turn of the first failure (-1: none or runner level)
  // Details of the first failure.
  std::string mismatch_class;                  // instance_state_mismatch
  std::vector<std::string> mismatch_attributes;  // its differing public attributes
  std::vector<std::string> missing_items;      // execution_response_mismatch
  std::vector<CheckerTurn> per_turn;
  double reward = 0.0;
};

struct CheckerOptions {
  std::string model_name = "envtune";  // BFCL's model-name argument (instance-name prefix)
};

// BFCL's is_empty_execute_response: [] or [""].
bool IsEmptyExecuteResponse(const CallList& calls);
// D.1 for one turn: decode each raw reply; keep only non-empty call lists.
std::vector<CallList> PrepareTurnSteps(const ReplyDecoder& decoder, const std::vector<std::string>& raw_replies);
// The same with ReplyDecoderFor(mode).
std::vector<CallList> PrepareTurnSteps(DecodeMode mode, const std::vector<std::string>& raw_replies);
// D.1 filter for already-decoded steps.
std::vector<CallList> DropEmptySteps(const std::vector<CallList>& steps);

CheckerVerdict InferenceErrorVerdict();

absl::StatusOr<CheckerVerdict> CheckMultiTurn(const BfclTask& task,
                                              const std::vector<std::vector<CallList>>& model_turns,
                                              const SandboxContext* context,
                                              const CheckerOptions& options = {});

// Python == of two public-state dicts ({attr: value}) as BFCL's _compare_instances: every
// attribute of `truth` must be present and equal in `model`. Differing names go to `diff`.
bool PublicStatesEqual(const PyValue& model, const PyValue& truth, std::vector<std::string>* diff = nullptr);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_CHECKER_H_
