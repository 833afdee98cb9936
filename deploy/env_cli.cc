// `envtune env replay|check|decode` (see env_cli.h).
#include "deploy/env_cli.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "envserver/checker.h"
#include "envserver/decode.h"
#include "envserver/replay.h"
#include "envserver/reply_format.h"
#include "envserver/task_catalog.h"

namespace envtune {
namespace {

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

// The BFCL data directory under `data_dir` (DIR/bfcl, or DIR itself).
std::string BfclDataDir(const std::string& data_dir) {
  const std::string nested = data_dir + "/bfcl";
  if (FileExists(nested + "/long_context_constants.json")) return nested;
  return data_dir;
}

// A line's own "mode" (a decoder-mode name), or `fallback` when it has none.
absl::StatusOr<DecodeMode> LineMode(const PyValue& input, DecodeMode fallback) {
  const PyValue* m = input.dict().Find("mode");
  if (m == nullptr) return fallback;
  if (!m->is_str()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"mode\" must be a string, one of: ", DecodeModeNames()));
  }
  absl::StatusOr<DecodeMode> mode = ParseDecodeMode(m->as_str());
  if (!mode.ok())
    return absl::InvalidArgumentError(absl::StrCat("\"mode\": ", mode.status().message()));
  return mode;
}

// Everything a command shares: the catalog (loaded on demand) and the sandbox context.
struct CliEnv {
  TaskCatalog catalog;
  SandboxContext context;
};

absl::StatusOr<std::unique_ptr<CliEnv>> LoadEnv(const EnvCliOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(BfclDataDir(options.data_dir));
  if (!catalog.ok()) return catalog.status();
  auto env = std::make_unique<CliEnv>();
  env->catalog = *std::move(catalog);
  env->context.long_context_constants = &env->catalog.long_context_constants();
  return env;
}

// A handler returns the output line (without newline).
using LineHandler = std::function<absl::StatusOr<std::string>(const PyValue& input)>;

// Runs `handler` over the JSON lines of args[1] (or `in` for "-"); see env_cli.h for the
// exit-code and error-record contract.
int ForEachLine(const std::vector<std::string>& args, const char* usage, std::istream& in, std::ostream& out,
                std::ostream& err, const std::function<absl::Status()>& setup, const LineHandler& handler) {
  if (args.size() != 2) {
    err << "usage: " << usage << "\n";
    return 2;
  }
  std::ifstream file;
  std::istream* input = &in;
  if (args[1] != "-") {
    // A directory opens as an ifstream on Linux and reads as empty: refuse it by name.
    std::error_code ec;
    if (std::filesystem::is_directory(args[1], ec)) {
      err << "envtune: " << args[1] << " is a directory, not a JSON-lines file\n";
      return 2;
    }
    file.open(args[1]);
    if (!file.good()) {
      err << "envtune: cannot open " << args[1] << "\n";
      return 2;
    }
    input = &file;
  }
  if (absl::Status s = setup(); !s.ok()) {
    err << "envtune: " << s.message() << "\n";
    return 2;
  }
  int line_no = 0, bad = 0;
  std::string line;
  while (std::getline(*input, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    absl::StatusOr<PyValue> value = PyValue::FromJson(line);
    absl::StatusOr<std::string> result =
        !value.ok() ? absl::StatusOr<std::string>(
                          absl::InvalidArgumentError(absl::StrCat("bad JSON: ", value.status().message())))
        : !value->is_dict() ? absl::StatusOr<std::string>(absl::InvalidArgumentError("a line must hold a JSON object"))
                            : handler(*value);
    if (!result.ok()) {
      ++bad;
      err << "envtune: line " << line_no << ": " << result.status().message() << "\n";
      PyDict rec;
      rec.Set("line", PyValue::Int(line_no));
      rec.Set("error", PyValue::Str(std::string(result.status().message())));
      out << PyValue::Dict(std::move(rec)).JsonDumps() << "\n";
      continue;
    }
    out << *result << "\n";
  }
  out.flush();
  if (bad > 0) {
    err << "envtune: " << bad << " of " << line_no << " lines failed\n";
    return 1;
  }
  return 0;
}

absl::StatusOr<const BfclTask*> FindTask(const CliEnv& env, const PyValue& input) {
  const PyValue* id = input.dict().Find("id");
  if (id == nullptr || !id->is_str()) return absl::InvalidArgumentError("missing string field \"id\"");
  const BfclTask* task = env.catalog.Find(id->as_str());
  if (task == nullptr) return absl::NotFoundError(absl::StrCat("unknown task id '", id->as_str(), "'"));
  return task;
}

absl::StatusOr<CallList> ToCallList(const PyValue& v, const std::string& what) {
  if (!v.is_list()) return absl::InvalidArgumentError(absl::StrCat(what, " must be a list of call strings"));
  CallList calls;
  for (const PyValue& c : v.items()) {
    if (!c.is_str()) return absl::InvalidArgumentError(absl::StrCat(what, " must be a list of call strings"));
    calls.push_back(c.as_str());
  }
  return calls;
}

PyValue StrList(const std::vector<std::string>& items) {
  PyList out;
  for (const std::string& s : items) out.push_back(PyValue::Str(s));
  return PyValue::List(std::move(out));
}

PyValue OptStr(const std::string& s) { return s.empty() ? PyValue::None() : PyValue::Str(s); }

// ---- replay -------------------------------------------------------------------------------------

absl::StatusOr<std::string> ReplayLine(const CliEnv& env, const EnvCliOptions& options, const PyValue& input) {
  absl::StatusOr<const BfclTask*> task = FindTask(env, input);
  if (!task.ok()) return task.status();
  const PyValue* turns = input.dict().Find("turns");
  if (turns == nullptr || !turns->is_list()) return absl::InvalidArgumentError("missing list field \"turns\"");
  std::vector<CallList> calls;
  for (size_t t = 0; t < turns->items().size(); ++t) {
    const PyValue& turn = turns->items()[t];
    const PyValue* c = turn.is_dict() ? turn.dict().Find("calls") : nullptr;
    if (c == nullptr) return absl::InvalidArgumentError(absl::StrCat("turns[", t, "] has no \"calls\" list"));
    absl::StatusOr<CallList> list = ToCallList(*c, absl::StrCat("turns[", t, "].calls"));
    if (!list.ok()) return list.status();
    calls.push_back(*std::move(list));
  }
  const BfclTask& tk = **task;
  absl::StatusOr<Sandbox> sandbox = Sandbox::Create(tk.id, tk.involved_classes, tk.initial_config, tk.long_context(),
                                                    &env.context, GroundTruthSandboxOptions(options.model_name));
  if (!sandbox.ok()) return sandbox.status();
  ReplayResult replay;
  replay.id = tk.id;
  replay.unavailable_classes = sandbox->unavailable_classes();
  for (size_t t = 0; t < calls.size(); ++t) {
    ReplayTurn turn;
    turn.turn = static_cast<int>(t);
    turn.calls = std::move(calls[t]);
    turn.records = sandbox->ExecuteCalls(turn.calls);
    turn.state = sandbox->PublicStates();
    replay.turns.push_back(std::move(turn));
  }
  return RenderGoldenLine(replay);
}

// ---- check --------------------------------------------------------------------------------------

// One step of BFCL's result-file form, decoded (D.1); nullopt when dropped.
std::optional<CallList> DecodeStep(DecodeMode mode, const PyValue& step) {
  std::string text;
  if (step.is_str()) {
    text = step.as_str();
  } else if (mode == DecodeMode::kBfclFunctionCalling && (step.is_list() || step.is_dict())) {
    text = step.JsonDumps();  // native tool-call list [{name: arguments}]
  } else {
    return std::nullopt;  // BFCL's decoder raises on it: dropped
  }
  std::vector<CallList> steps = PrepareTurnSteps(mode, {text});
  if (steps.empty()) return std::nullopt;
  return std::move(steps[0]);
}

// The model's prepared steps per turn, or nullopt for an inference error (not a list).
absl::StatusOr<std::optional<std::vector<std::vector<CallList>>>> ModelTurns(const PyValue& input, DecodeMode mode) {
  using Out = std::optional<std::vector<std::vector<CallList>>>;
  std::vector<std::vector<CallList>> turns_out;
  if (const PyValue* result = input.dict().Find("result"); result != nullptr && input.dict().Find("turns") == nullptr) {
    if (!result->is_list()) return Out(std::nullopt);
    for (const PyValue& turn : result->items()) {
      std::vector<CallList> steps;
      if (turn.is_list()) {
        for (const PyValue& step : turn.items()) {
          if (std::optional<CallList> calls = DecodeStep(mode, step)) steps.push_back(*std::move(calls));
        }
      }
      turns_out.push_back(std::move(steps));
    }
    return Out(std::move(turns_out));
  }
  const PyValue* turns = input.dict().Find("turns");
  if (turns == nullptr) return absl::InvalidArgumentError("missing field \"turns\" (or \"result\")");
  if (!turns->is_list()) return Out(std::nullopt);
  for (size_t t = 0; t < turns->items().size(); ++t) {
    const PyValue& turn = turns->items()[t];
    const std::string where = absl::StrCat("turns[", t, "]");
    if (!turn.is_dict()) return absl::InvalidArgumentError(absl::StrCat(where, " must be an object"));
    std::vector<CallList> steps;
    if (const PyValue* calls = turn.dict().Find("calls"); calls != nullptr) {
      absl::StatusOr<CallList> list = ToCallList(*calls, where + ".calls");
      if (!list.ok()) return list.status();
      steps = DropEmptySteps({*std::move(list)});
    } else if (const PyValue* s = turn.dict().Find("steps"); s != nullptr) {
      if (!s->is_list()) return absl::InvalidArgumentError(absl::StrCat(where, ".steps must be a list of call lists"));
      std::vector<CallList> raw;
      for (size_t i = 0; i < s->items().size(); ++i) {
        absl::StatusOr<CallList> list = ToCallList(s->items()[i], absl::StrCat(where, ".steps[", i, "]"));
        if (!list.ok()) return list.status();
        raw.push_back(*std::move(list));
      }
      steps = DropEmptySteps(raw);
    } else if (const PyValue* r = turn.dict().Find("responses"); r != nullptr) {
      if (!r->is_list()) return absl::InvalidArgumentError(absl::StrCat(where, ".responses must be a list"));
      for (const PyValue& step : r->items()) {
        if (std::optional<CallList> calls = DecodeStep(mode, step)) steps.push_back(*std::move(calls));
      }
    } else if (!turn.dict().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " needs \"calls\", \"steps\" or \"responses\""));
    }
    turns_out.push_back(std::move(steps));
  }
  return Out(std::move(turns_out));
}

PyValue VerdictValue(const std::string& id, const CheckerVerdict& v) {
  PyDict d;
  d.Set("id", PyValue::Str(id));
  d.Set("valid", PyValue::Bool(v.valid));
  d.Set("error_type", OptStr(v.error_type));
  d.Set("error_message", OptStr(v.error_message));
  if (!v.mismatch_class.empty()) {
    d.Set("mismatch_class", PyValue::Str(v.mismatch_class));
    d.Set("mismatch_attributes", StrList(v.mismatch_attributes));
  }
  if (!v.missing_items.empty()) d.Set("missing_items", StrList(v.missing_items));
  PyList per_turn;
  for (const CheckerTurn& t : v.per_turn) {
    PyDict td;
    td.Set("turn", PyValue::Int(t.turn));
    td.Set("checked", PyValue::Bool(t.checked));
    td.Set("state_ok", PyValue::Bool(t.state_ok));
    td.Set("response_ok", PyValue::Bool(t.response_ok));
    td.Set("score", PyValue::Int(t.score));
    per_turn.push_back(PyValue::Dict(std::move(td)));
  }
  d.Set("per_turn", PyValue::List(std::move(per_turn)));
  d.Set("reward", PyValue::Float(v.reward));
  return PyValue::Dict(std::move(d));
}

absl::StatusOr<std::string> CheckLine(const CliEnv& env, const EnvCliOptions& options, DecodeMode mode,
                                  const PyValue& input) {
  absl::StatusOr<const BfclTask*> task = FindTask(env, input);
  if (!task.ok()) return task.status();
  absl::StatusOr<DecodeMode> line_mode = LineMode(input, mode);
  if (!line_mode.ok()) return line_mode.status();
  mode = *line_mode;
  absl::StatusOr<std::optional<std::vector<std::vector<CallList>>>> turns = ModelTurns(input, mode);
  if (!turns.ok()) return turns.status();
  if (!turns->has_value()) return VerdictValue((*task)->id, InferenceErrorVerdict()).JsonDumps();
  CheckerOptions copts;
  copts.model_name = options.model_name;
  absl::StatusOr<CheckerVerdict> verdict = CheckMultiTurn(**task, **turns, &env.context, copts);
  if (!verdict.ok()) return verdict.status();
  return VerdictValue((*task)->id, *verdict).JsonDumps();
}

// ---- decode -------------------------------------------------------------------------------------

// `mode`: --mode, overridden by the line's own "mode". "input": the reply text, or in bfcl_fc mode
// BFCL's structured function-calling output itself (a list of {name: arguments} objects, or one
// such object), decoded as BFCL's decoder does.
absl::StatusOr<std::string> DecodeLine(DecodeMode mode, const PyValue& input) {
  const PyValue* text = input.dict().Find("input");
  absl::StatusOr<DecodeMode> line_mode = LineMode(input, mode);
  if (!line_mode.ok()) return line_mode.status();
  mode = *line_mode;
  if (text == nullptr) return absl::InvalidArgumentError("missing field \"input\"");
  std::string reply;
  if (text->is_str()) {
    reply = text->as_str();
  } else if (mode == DecodeMode::kBfclFunctionCalling && (text->is_list() || text->is_dict())) {
    reply = text->JsonDumps();  // the structured tool-call list, as BFCL's FC handlers return it
  } else {
    return absl::InvalidArgumentError(mode == DecodeMode::kBfclFunctionCalling
                                          ? "\"input\" must be a string, or a list of {name: arguments} objects"
                                          : "\"input\" must be a string");
  }
  DecodeResult r = DecodeModelOutput(mode, reply);
  const bool error = r.kind == DecodeResult::Kind::kError || r.kind == DecodeResult::Kind::kFormatError;
  const bool calls = r.kind == DecodeResult::Kind::kCalls && !r.calls.empty();
  PyDict d;
  d.Set("ok", PyValue::Bool(!error));
  d.Set("calls", StrList(calls ? r.calls : std::vector<std::string>{}));
  d.Set("no_call", PyValue::Bool(!error && !calls));
  d.Set("error", error ? PyValue::Str(r.message) : PyValue::None());
  return PyValue::Dict(std::move(d)).JsonDumps();
}

}  // namespace

const char* EnvCliUsage() {
  return "  env replay    execute call strings per turn, print golden-format lines: env replay FILE|-\n"
         "  env check     BFCL multi-turn checker verdicts and rewards: env check FILE|-\n"
         "                  [--mode prompting|fc|envtuning] (decoding of raw replies)\n"
         "  env decode    decode model replies to BFCL call strings: env decode FILE|-\n"
         "                  [--mode prompting|fc|envtuning] (a line's \"mode\" overrides it)";
}

int RunEnvReplay(const std::vector<std::string>& args, const EnvCliOptions& options, std::istream& in,
                 std::ostream& out, std::ostream& err) {
  std::unique_ptr<CliEnv> env;
  return ForEachLine(
      args, "envtune env replay FILE|- [--data_dir DIR]", in, out, err,
      [&]() -> absl::Status {
        absl::StatusOr<std::unique_ptr<CliEnv>> loaded = LoadEnv(options);
        if (!loaded.ok()) return loaded.status();
        env = *std::move(loaded);
        return absl::OkStatus();
      },
      [&](const PyValue& v) { return ReplayLine(*env, options, v); });
}

int RunEnvCheck(const std::vector<std::string>& args, const EnvCliOptions& options, std::istream& in,
                std::ostream& out, std::ostream& err) {
  std::unique_ptr<CliEnv> env;
  absl::StatusOr<DecodeMode> mode = ParseDecodeMode(options.mode);
  return ForEachLine(
      args, "envtune env check FILE|- [--mode bfcl_prompting|bfcl_fc|envtuning] [--data_dir DIR]",
      in, out, err,
      [&]() -> absl::Status {
        if (!mode.ok())
          return absl::InvalidArgumentError(absl::StrCat("--mode: ", mode.status().message()));
        absl::StatusOr<std::unique_ptr<CliEnv>> loaded = LoadEnv(options);
        if (!loaded.ok()) return loaded.status();
        env = *std::move(loaded);
        return absl::OkStatus();
      },
      [&](const PyValue& v) { return CheckLine(*env, options, *mode, v); });
}

int RunEnvDecode(const std::vector<std::string>& args, const EnvCliOptions& options, std::istream& in,
                 std::ostream& out, std::ostream& err) {
  absl::StatusOr<DecodeMode> mode = ParseDecodeMode(options.mode);
  return ForEachLine(
      args, "envtune env decode FILE|- [--mode bfcl_prompting|bfcl_fc|envtuning]", in, out, err,
      [&]() -> absl::Status {
        if (!mode.ok())
          return absl::InvalidArgumentError(absl::StrCat("--mode: ", mode.status().message()));
        return absl::OkStatus();
      },
      [&](const PyValue& v) { return DecodeLine(*mode, v); });
}

}  // namespace envtune
