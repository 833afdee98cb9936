// Ground-truth replay of a BFCL task (checker.md D.2, ground-truth side) and the golden line
// renderer (format of ../shared/bfcl/golden/gt_*.jsonl).
//
// Contract: ReplayGroundTruth executes every turn's ground-truth call list, in order, on one fresh
// ground-truth Sandbox and records per turn the calls, their result strings and the public state
// of every available class after the turn. RenderGoldenLine reproduces the golden files byte for
// byte: Python json.dumps(obj, sort_keys=True) of
// {"id", "turns": [{"calls", "results", "state": {Class: public attrs}, "turn"}]}.
#ifndef ENVTUNE_ENVSERVER_REPLAY_H_
#define ENVTUNE_ENVSERVER_REPLAY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/executor.h"
#include "envserver/task_catalog.h"

namespace envtune {

struct ReplayTurn {
  int turn = 0;
  std::vector<std::string> calls;
  std::vector<CallRecord> records;  // one per call
  PyValue state;                    // {Class: public state} after the turn
};

struct ReplayResult {
  std::string id;
  std::vector<ReplayTurn> turns;
  std::vector<std::string> unavailable_classes;  // involved classes not registered (skipped)
};

// BFCL's checker names the ground-truth side "<model>_ground_truth" and adds "_eval".
inline SandboxOptions GroundTruthSandboxOptions(const std::string& model = "envtune") {
  return SandboxOptions{model + "_ground_truth_eval"};
}

absl::StatusOr<ReplayResult> ReplayGroundTruth(const BfclTask& task, const SandboxContext* context,
                                               const SandboxOptions& options = GroundTruthSandboxOptions());

// The golden JSON line (without trailing newline).
std::string RenderGoldenLine(const ReplayResult& replay);
// The JSON object of one turn as the golden files hold it (keys calls, results, state, turn).
PyValue GoldenTurnValue(const ReplayTurn& turn);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_REPLAY_H_
