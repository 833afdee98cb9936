// Ground-truth replay and golden rendering (see replay.h).
#include "envserver/replay.h"

namespace envtune {

absl::StatusOr<ReplayResult> ReplayGroundTruth(const BfclTask& task, const SandboxContext* context,
                                               const SandboxOptions& options) {
  absl::StatusOr<Sandbox> sandbox = Sandbox::Create(task.id, task.involved_classes, task.initial_config,
                                                    task.long_context(), context, options);
  if (!sandbox.ok()) return sandbox.status();
  ReplayResult out;
  out.id = task.id;
  out.unavailable_classes = sandbox->unavailable_classes();
  for (size_t t = 0; t < task.ground_truth.size(); ++t) {
    ReplayTurn turn;
    turn.turn = static_cast<int>(t);
    turn.calls = task.ground_truth[t];
    turn.records = sandbox->ExecuteCalls(turn.calls);
    turn.state = sandbox->PublicStates();
    out.turns.push_back(std::move(turn));
  }
  return out;
}

PyValue GoldenTurnValue(const ReplayTurn& turn) {
  PyList calls, results;
  for (const std::string& c : turn.calls) calls.push_back(PyValue::Str(c));
  for (const CallRecord& r : turn.records) results.push_back(PyValue::Str(r.result));
  PyDict d;
  d.Set("calls", PyValue::List(std::move(calls)));
  d.Set("results", PyValue::List(std::move(results)));
  // The golden generator stringified dict keys before sorting (TwitterAPI mixes "0".."9" from the
  // scenario with int ids of new tweets; json.dumps(sort_keys=True) alone would raise on that), so
  // keys sort as strings: a JSON round trip does exactly that.
  absl::StatusOr<PyValue> state = PyValue::FromJson(turn.state.JsonDumps());
  d.Set("state", state.ok() ? *std::move(state) : turn.state);
  d.Set("turn", PyValue::Int(turn.turn));
  return PyValue::Dict(std::move(d));
}

std::string RenderGoldenLine(const ReplayResult& replay) {
  PyList turns;
  for (const ReplayTurn& t : replay.turns) turns.push_back(GoldenTurnValue(t));
  PyDict d;
  d.Set("id", PyValue::Str(replay.id));
  d.Set("turns", PyValue::List(std::move(turns)));
  JsonDumpsOptions opts;
  opts.sort_keys = true;
  return PyValue::Dict(std::move(d)).JsonDumps(opts);
}

}  // namespace envtune
