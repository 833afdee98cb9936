// The replies a perfect agent gives on a BFCL task, in each output format: the texts the
// ground-truth evaluation policy (episodes/evaluation.h) and the SFT warm start (learner/sft.h)
// train on. They depend only on the task catalog (positional arguments are named from the
// function docs) and the format.
#ifndef ENVTUNE_ENVSERVER_GROUND_TRUTH_REPLY_H_
#define ENVTUNE_ENVSERVER_GROUND_TRUTH_REPLY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/task_catalog.h"
#include "envtune/v1/env.pb.h"

namespace envtune {

// `calls` are BFCL ground-truth call strings.
// Prompting: "[f(a=1), g(b='x')]" with keyword arguments only (positionals named from the doc).
// EnvTuning: "<think>...</think>\n<tool_call>[{"name":..,"arguments":{..}}]</tool_call>".
// Hermes: one "<tool_call>\n{...}\n</tool_call>" block per call.
// InvalidArgument when a call is not a plain call with literal arguments.
absl::StatusOr<std::string> GroundTruthCallsReply(const TaskCatalog& catalog, const BfclTask& task,
                                                  v1::OutputFormat format,
                                                  const std::vector<std::string>& calls);
// The final answer of a turn: `cannot_serve` for turns whose ground truth is empty.
std::string GroundTruthAnswerReply(v1::OutputFormat format, bool cannot_serve);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_GROUND_TRUTH_REPLY_H_
