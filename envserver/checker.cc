// BFCL's multi-turn checker (see checker.h).
#include "envserver/checker.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "envserver/replay.h"

namespace envtune {
namespace {

// BFCL's _is_subsequence_unordered(truth, haystack): each truth item removes one equal item.
std::vector<std::string> MissingItems(const std::vector<std::string>& truth, const std::vector<std::string>& haystack) {
  absl::flat_hash_map<std::string_view, int> counts;
  for (const std::string& h : haystack) ++counts[h];
  std::vector<std::string> missing;
  for (const std::string& t : truth) {
    auto it = counts.find(t);
    if (it == counts.end() || it->second == 0) {
      missing.push_back(t);
    } else {
      --it->second;
    }
  }
  return missing;
}

// The first involved class whose public state differs (BFCL's state_checker); "" if none.
std::string FirstMismatchingClass(const Sandbox& model, const Sandbox& truth, std::vector<std::string>* diff) {
  for (const std::string& cls : truth.classes()) {
    const ToolApi* t = truth.instance(cls);
    if (t == nullptr) continue;  // unavailable class: no instance on either side
    const ToolApi* m = model.instance(cls);
    std::vector<std::string> d;
    if (m == nullptr) return cls;
    if (!PublicStatesEqual(m->PublicState(), t->PublicState(), &d)) {
      if (diff != nullptr) *diff = std::move(d);
      return cls;
    }
  }
  return "";
}

}  // namespace

bool IsEmptyExecuteResponse(const CallList& calls) {
  return calls.empty() || (calls.size() == 1 && calls[0].empty());
}

std::vector<CallList> PrepareTurnSteps(const ReplyDecoder& decoder, const std::vector<std::string>& raw_replies) {
  std::vector<CallList> steps;
  for (const std::string& raw : raw_replies) {
    DecodeResult d = decoder.Decode(raw);
    if (d.kind != DecodeResult::Kind::kCalls || IsEmptyExecuteResponse(d.calls)) continue;
    steps.push_back(std::move(d.calls));
  }
  return steps;
}

std::vector<CallList> PrepareTurnSteps(DecodeMode mode, const std::vector<std::string>& raw_replies) {
  return PrepareTurnSteps(ReplyDecoderFor(mode), raw_replies);
}

std::vector<CallList> DropEmptySteps(const std::vector<CallList>& steps) {
  std::vector<CallList> out;
  for (const CallList& s : steps) {
    if (!IsEmptyExecuteResponse(s)) out.push_back(s);
  }
  return out;
}

bool PublicStatesEqual(const PyValue& model, const PyValue& truth, std::vector<std::string>* diff) {
  if (!truth.is_dict()) return model == truth;
  if (!model.is_dict()) {
    if (diff != nullptr) {
      for (const auto& [k, v] : truth.dict()) diff->push_back(k.is_str() ? k.as_str() : k.Repr());
    }
    return false;
  }
  bool equal = true;
  for (const auto& [name, value] : truth.dict()) {
    if (name.is_str() && !name.as_str().empty() && name.as_str()[0] == '_') continue;
    const PyValue* m = model.dict().Find(name);
    if (m == nullptr || !(*m == value)) {
      equal = false;
      if (diff != nullptr) diff->push_back(name.is_str() ? name.as_str() : name.Repr());
    }
  }
  return equal;
}

CheckerVerdict InferenceErrorVerdict() {
  CheckerVerdict v;
  v.valid = false;
  v.error_type = kErrInferenceError;
  v.error_message = "Error during inference phase. Model did not output a list of model responses.";
  return v;
}

absl::StatusOr<CheckerVerdict> CheckMultiTurn(const BfclTask& task,
                                              const std::vector<std::vector<CallList>>& model_turns,
                                              const SandboxContext* context, const CheckerOptions& options) {
  CheckerVerdict v;
  const size_t n_gt = task.ground_truth.size();
  const size_t n_model = model_turns.size();
  bool decided = false;
  auto fail = [&](const char* type, std::string message, int turn) {
    if (decided) return;
    decided = true;
    v.valid = false;
    v.error_type = type;
    v.error_message = std::move(message);
    v.error_turn = turn;
  };
  if (n_model != n_gt) {
    fail(kErrForceTerminated,
         absl::StrCat("Model was force-terminated during inference phase. The length of the model result turns (",
                      n_model, ") does not match the length of the ground truth turns (", n_gt, ")."),
         -1);
  }

  absl::StatusOr<Sandbox> model = Sandbox::Create(task.id, task.involved_classes, task.initial_config,
                                                  task.long_context(), context,
                                                  SandboxOptions{options.model_name + "_eval"});
  if (!model.ok()) return model.status();
  absl::StatusOr<Sandbox> truth = Sandbox::Create(task.id, task.involved_classes, task.initial_config,
                                                  task.long_context(), context,
                                                  GroundTruthSandboxOptions(options.model_name));
  if (!truth.ok()) return truth.status();

  std::vector<std::string> all_model_results;
  int scored_one = 0;
  const size_t n = std::min(n_model, n_gt);
  for (size_t t = 0; t < n; ++t) {
    CheckerTurn turn;
    turn.turn = static_cast<int>(t);
    const std::vector<CallList>& steps = model_turns[t];
    for (const CallList& step : steps) {
      for (std::string& r : model->ExecuteCallStrings(step)) turn.model_results.push_back(std::move(r));
    }
    turn.truth_results = truth->ExecuteCallStrings(task.ground_truth[t]);
    all_model_results.insert(all_model_results.end(), turn.model_results.begin(), turn.model_results.end());

    turn.empty_response = steps.empty() || (steps.size() == 1 && steps[0].empty());
    turn.checked = !task.ground_truth[t].empty();
    std::vector<std::string> diff;
    const std::string mismatch = FirstMismatchingClass(*model, *truth, &diff);
    turn.state_ok = mismatch.empty();
    std::vector<std::string> missing = MissingItems(turn.truth_results, all_model_results);
    turn.response_ok = missing.empty();
    if (!turn.checked) {
      turn.score = 1;
    } else if (turn.empty_response) {
      fail(kErrEmptyTurn, absl::StrCat("Model response list is empty for turn ", t), turn.turn);
    } else if (!turn.state_ok) {
      if (!decided) {
        v.mismatch_class = mismatch;
        v.mismatch_attributes = diff;
      }
      fail(kErrStateMismatch,
           absl::StrCat("Model instance for ", mismatch, " does not match the state with ground truth instance."),
           turn.turn);
    } else if (!turn.response_ok) {
      if (!decided) v.missing_items = missing;
      fail(kErrResponseMismatch,
           absl::StrCat("Model response execution results so far does not contain all the ground truth response "
                        "execution results for turn ",
                        t, "."),
           turn.turn);
    } else {
      turn.score = 1;
    }
    scored_one += turn.score;
    v.per_turn.push_back(std::move(turn));
  }
  if (!decided) v.valid = true;
  v.reward = n_gt > 0 ? static_cast<double>(scored_one) / static_cast<double>(n_gt) : 0.0;
  return v;
}

}  // namespace envtune
