// The episode semantics (see episode_semantics.h).
#include "envserver/episode_semantics.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "envserver/prompts.h"

namespace envtune {
namespace {

using Kind = DecodeResult::Kind;

void CountFormatError(const DecodeResult& decoded, v1::EpisodeState* s, v1::StepResponse* resp) {
  resp->set_step_signal(-3);
  resp->set_format_error(decoded.message);
  v1::RewardComponents* comp = s->mutable_components();
  comp->set_format_errors(comp->format_errors() + 1);
  comp->set_entries(comp->entries() + 1);
  s->set_attempts(s->attempts() + 1);
}

// Executes the decoded calls, records them in `s` and `resp`, and returns them as shown.
std::vector<ShownResult> ExecuteStep(DecodeResult decoded, const StepContext& ctx,
                                     v1::EpisodeState* s, v1::StepResponse* resp) {
  std::vector<CallRecord> records;
  records.reserve(decoded.calls.size());
  const bool structured = decoded.structured.size() == decoded.calls.size();
  for (size_t i = 0; i < decoded.calls.size(); ++i) {
    records.push_back(
        structured ? ctx.model->ExecuteDecoded(std::move(decoded.calls[i]), decoded.structured[i])
                   : ctx.model->ExecuteCall(decoded.calls[i]));
  }
  v1::ExecutedStep* step = s->add_steps();
  step->set_turn(s->turn_index());
  bool raised = false;
  std::vector<ShownResult> shown;
  shown.reserve(records.size());
  for (CallRecord& r : records) {
    step->add_calls(r.call);
    v1::CallResult* cr = resp->add_calls();
    cr->set_call(r.call);
    cr->set_result(r.result);
    cr->set_raised(r.raised);
    cr->set_api_class(r.served_by);
    raised = raised || r.raised;
    shown.push_back(ShownResult{r.call, CapText(r.result, ctx.max_result_bytes)});
    ctx.all_results->push_back(std::move(r.result));
  }
  resp->set_step_signal(raised ? -2 : -1);
  v1::RewardComponents* comp = s->mutable_components();
  if (raised) {
    comp->set_error_steps(comp->error_steps() + 1);
  } else {
    comp->set_clean_steps(comp->clean_steps() + 1);
  }
  comp->set_entries(comp->entries() + 1);
  s->set_attempts(s->attempts() + 1);
  s->set_executed_in_turn(s->executed_in_turn() + 1);
  return shown;
}

}  // namespace

std::optional<TurnEnd> EpisodeSemantics::Apply(DecodeResult decoded, const StepContext& ctx,
                                               v1::EpisodeState* s, v1::StepResponse* resp) const {
  resp->set_turn_index(s->turn_index());
  resp->set_step_index(s->replies_in_turn());
  s->set_replies_in_turn(s->replies_in_turn() + 1);

  if (decoded.kind == Kind::kFormatError) {
    CountFormatError(decoded, s, resp);
    std::optional<TurnEnd> end = AfterFormatError(*s);
    if (!end.has_value()) {
      AddChatMessage(
          resp->mutable_observation(), "user",
          CapText(ctx.format->FormatErrorObservation(decoded.message), ctx.max_observation_bytes));
    }
    return end;
  }
  if (ctx.cannot_serve) {
    const bool tool_attempt = decoded.kind == Kind::kCalls ||
                              (decoded.kind == Kind::kNoCall && ctx.format->NoCallIsToolAttempt());
    if (std::optional<TurnEnd> end = OnCannotServe(tool_attempt)) return end;
  }
  if (decoded.kind == Kind::kCalls) {
    std::vector<ShownResult> shown = ExecuteStep(std::move(decoded), ctx, s, resp);
    std::optional<TurnEnd> end = AfterExecutedStep(*s);
    if (!end.has_value()) {
      ctx.format->AddResultsObservation(std::move(shown), ctx.max_observation_bytes,
                                        resp->mutable_observation());
    }
    return end;
  }
  return TurnEnd{decoded.kind == Kind::kAnswer ? v1::TURN_END_REASON_ANSWER
                                               : v1::TURN_END_REASON_NO_CALL};
}

std::optional<TurnEnd> TrainingSemantics::AfterFormatError(const v1::EpisodeState& s) const {
  if (s.attempts() > s.options().max_steps_per_turn())
    return TurnEnd{v1::TURN_END_REASON_FORMAT_LIMIT};
  return std::nullopt;
}

std::optional<TurnEnd> TrainingSemantics::OnCannotServe(bool tool_attempt) const {
  if (tool_attempt) return TurnEnd{v1::TURN_END_REASON_CALLED_ON_CANNOT_SERVE, /*warn_next=*/true};
  return TurnEnd{v1::TURN_END_REASON_ANSWER};
}

std::optional<TurnEnd> TrainingSemantics::AfterExecutedStep(const v1::EpisodeState& s) const {
  if (s.attempts() > s.options().max_steps_per_turn())
    return TurnEnd{v1::TURN_END_REASON_STEP_LIMIT};
  return std::nullopt;
}

// Only a plain answer is right.
double TrainingSemantics::CannotServeScore(v1::TurnEndReason reason) const {
  return reason == v1::TURN_END_REASON_ANSWER ? 1.0 : 0.0;
}

std::optional<TurnEnd> BfclEvalSemantics::AfterFormatError(const v1::EpisodeState& /*s*/) const {
  return TurnEnd{v1::TURN_END_REASON_FORMAT_ERROR};
}

std::optional<TurnEnd> BfclEvalSemantics::OnCannotServe(bool /*tool_attempt*/) const {
  return std::nullopt;
}

std::optional<TurnEnd> BfclEvalSemantics::AfterExecutedStep(const v1::EpisodeState& s) const {
  if (s.executed_in_turn() > s.options().max_steps_per_turn()) {
    return TurnEnd{v1::TURN_END_REASON_FORCE_QUIT, /*warn_next=*/false, /*force_quit=*/true};
  }
  return std::nullopt;
}

// BFCL does not check cannot-serve turns.
double BfclEvalSemantics::CannotServeScore(v1::TurnEndReason /*reason*/) const { return 1.0; }

const EpisodeSemantics& SemanticsFor(const v1::EpisodeOptions& options) {
  static const TrainingSemantics kTraining;
  static const BfclEvalSemantics kBfclEval;
  if (options.bfcl_eval_semantics()) return kBfclEval;
  return kTraining;
}

}  // namespace envtune
