// The two episode semantics of EpisodeEngine::Step (METHOD.md §2.2-2.6, §5.3; checker.md A.4,
// A.6): what one decoded reply does to the episode state, and how a turn ends.
//
// EpisodeSemantics::Apply is the flow both share (the same for every reply format; the format
// only decodes and renders observations):
// * a format error (-3): counted as an entry and an attempt; AfterFormatError decides whether the
//   turn ends or the format-error observation is shown;
// * a well-formed reply on a cannot-serve turn: OnCannotServe may end the turn without executing;
// * calls: executed on the model side, shown capped, counted as a clean (-1) or raising (-2)
//   step, an entry, an attempt and an executed step of the turn; AfterExecutedStep decides whether
//   the turn ends or the results are shown;
// * anything else (an answer, no call, a BFCL decode error) ends the turn.
// The decisions differ:
// * TrainingSemantics (default; max_steps_per_turn default 5): `attempts` (executed steps and
//   format errors) over the limit ends the turn (FORMAT_LIMIT / STEP_LIMIT; a step that crosses
//   it is executed and scored but not shown). Cannot-serve turns: the first well-formed reply
//   ends the turn unexecuted: an answer scores 1, a tool-call attempt scores 0 and warns the next
//   question (CannotServeWarning). Augmentation allowed.
// * BfclEvalSemantics (EpisodeOptions.bfcl_eval_semantics; default 20): BFCL's runner. A format
//   error ends the turn; calls run on every turn, cannot-serve ones included; more executed steps
//   in a turn than the limit force-quit the task (the turn is scored, later turns are not);
//   cannot-serve turns score 1 (BFCL does not check them); never augmented.
// Both are stateless; SemanticsFor returns process-lifetime objects.
#ifndef ENVTUNE_ENVSERVER_EPISODE_SEMANTICS_H_
#define ENVTUNE_ENVSERVER_EPISODE_SEMANTICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "envserver/decode.h"
#include "envserver/executor.h"
#include "envserver/reply_format.h"
#include "envtune/v1/env.pb.h"
#include "envtune/v1/episode_state.pb.h"

namespace envtune {

// How a turn ends.
struct TurnEnd {
  v1::TurnEndReason reason = v1::TURN_END_REASON_UNSPECIFIED;
  bool warn_next = false;   // prefix the next question with CannotServeWarning()
  bool force_quit = false;  // the episode ends after this turn
};

// What Apply works on besides the state. Pointers are borrowed for the call.
struct StepContext {
  const ReplyFormat* format = nullptr;
  Sandbox* model = nullptr;                         // the model side after every earlier step
  std::vector<std::string>* all_results = nullptr;  // every result so far; this step's are added
  bool cannot_serve = false;                        // this turn's ground truth is empty
  size_t max_result_bytes = 0;                      // one result as shown
  size_t max_observation_bytes = 0;                 // one observation message as shown
};

class EpisodeSemantics {
 public:
  virtual ~EpisodeSemantics() = default;

  // max_steps_per_turn when the options leave it 0.
  virtual uint32_t default_max_steps() const = 0;
  // Whether augment_probability applies (EpisodeEngine::DecideAugment).
  virtual bool allows_augmentation() const = 0;

  // Applies one decoded reply to `s` (counters, executed steps) and `resp` (indices, step
  // signal, format error, call results, observation). Returns how the turn ends, or nullopt
  // when it goes on. Does not score the turn or advance to the next one.
  std::optional<TurnEnd> Apply(DecodeResult decoded, const StepContext& ctx, v1::EpisodeState* s,
                               v1::StepResponse* resp) const;

  // The decisions Apply asks for (public for tests). `s` already counts the reply.
  // After a format error: the end, or nullopt to show the format-error observation.
  virtual std::optional<TurnEnd> AfterFormatError(const v1::EpisodeState& s) const = 0;
  // A well-formed reply on a cannot-serve turn (`tool_attempt`: it tried to call a tool): the
  // end without executing anything, or nullopt to handle it like any turn.
  virtual std::optional<TurnEnd> OnCannotServe(bool tool_attempt) const = 0;
  // After an executed step: the end, or nullopt to show the results.
  virtual std::optional<TurnEnd> AfterExecutedStep(const v1::EpisodeState& s) const = 0;
  // The score of a cannot-serve turn that ended for `reason`.
  virtual double CannotServeScore(v1::TurnEndReason reason) const = 0;
};

class TrainingSemantics final : public EpisodeSemantics {
 public:
  static constexpr uint32_t kDefaultMaxSteps = 5;  // METHOD.md §2.6
  uint32_t default_max_steps() const override { return kDefaultMaxSteps; }
  bool allows_augmentation() const override { return true; }
  std::optional<TurnEnd> AfterFormatError(const v1::EpisodeState& s) const override;
  std::optional<TurnEnd> OnCannotServe(bool tool_attempt) const override;
  std::optional<TurnEnd> AfterExecutedStep(const v1::EpisodeState& s) const override;
  double CannotServeScore(v1::TurnEndReason reason) const override;
};

class BfclEvalSemantics final : public EpisodeSemantics {
 public:
  static constexpr uint32_t kDefaultMaxSteps = 20;  // BFCL's MAXIMUM_STEP_LIMIT
  uint32_t default_max_steps() const override { return kDefaultMaxSteps; }
  bool allows_augmentation() const override { return false; }
  std::optional<TurnEnd> AfterFormatError(const v1::EpisodeState& s) const override;
  std::optional<TurnEnd> OnCannotServe(bool tool_attempt) const override;
  std::optional<TurnEnd> AfterExecutedStep(const v1::EpisodeState& s) const override;
  double CannotServeScore(v1::TurnEndReason reason) const override;
};

// BfclEvalSemantics when options.bfcl_eval_semantics(), else TrainingSemantics.
const EpisodeSemantics& SemanticsFor(const v1::EpisodeOptions& options);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_EPISODE_SEMANTICS_H_
