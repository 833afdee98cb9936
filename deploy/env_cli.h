// The logic of `envtune env replay|check|decode FILE|-` (JSON lines in, JSON lines out), kept out
// of main so tests can drive it with streams.
//
//   replay: {"id", "turns": [{"calls": [call strings]}, ...]} -> the golden line of
//           ../shared/bfcl/golden (RenderGoldenLine): the calls executed turn by turn on a fresh
//           ground-truth-side sandbox of task `id` (any number of turns). The golden files
//           themselves round-trip.
//   check:  model trajectories -> {"id", "valid", "error_type", "error_message", "per_turn":
//           [{"turn", "checked", "state_ok", "response_ok", "score"}], "reward"} (checker.h), plus
//           "mismatch_class"/"mismatch_attributes" (state mismatch) or "missing_items" (response
//           mismatch) describing the first failure.
//           Per task, the model side is one of:
//             "turns": [{"calls": [...]}]            each turn's calls are one step
//             "turns": [{"steps": [[...], ...]}]     already-decoded steps
//             "turns": [{"responses": ["raw", ...]}] raw replies, decoded with --mode
//             "result": [["raw", ...], ...]          BFCL's result-file form (raw replies; in fc
//                                                    mode a step may also be the tool-call list)
//           A line may carry its own "mode" (overrides --mode for that line).
//           Decoded steps that are empty ([] or [""]) are dropped like BFCL's runner (D.1).
//           "turns"/"result" present but not a list -> multi_turn:inference_error record.
//   decode: {"input": TEXT} -> {"ok", "calls", "no_call", "error"}, decoded with --mode
//           (bfcl_prompting|bfcl_fc|envtuning, default bfcl_prompting;
//           envserver/reply_format.h) or the line's own "mode" (overrides
//           --mode for that line): ok=false with the decoder's message on a decode/format error;
//           no_call=true when the reply decodes to nothing to execute (envtuning <answer>
//           included). In bfcl_fc mode "input" may also be BFCL's structured function-calling
//           output itself: a list of {name: arguments} objects (arguments a JSON string or an
//           object), or one such object.
//
// Every output object is one line: Python json.dumps (sorted keys for replay, the golden format;
// the key order shown above otherwise). A malformed input line (bad JSON, missing/ill-typed fields,
// unknown task id) yields {"line": N, "error": "..."} on the output (and a message on `err`),
// processing continues, and the command exits 1 at the end. Usage errors (bad arguments,
// unreadable file, unloadable data directory) print a message on `err` and exit 2. 0 otherwise.
// Never throws.
#ifndef ENVTUNE_DEPLOY_ENV_CLI_H_
#define ENVTUNE_DEPLOY_ENV_CLI_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace envtune {

struct EnvCliOptions {
  // envtune's data directory: either DIR/bfcl/... (like --data_dir of env-server) or a BFCL data
  // directory itself (holding long_context_constants.json).
  std::string data_dir;
  std::string mode = "bfcl_prompting";  // check, decode: a decoder mode (envserver/reply_format.h)
  std::string model_name = "envtune";  // BFCL's model-name argument (instance-name prefixes)
};

// `args` = {subcommand, FILE|-}; `in` is read when FILE is "-".
int RunEnvReplay(const std::vector<std::string>& args, const EnvCliOptions& options, std::istream& in,
                 std::ostream& out, std::ostream& err);
int RunEnvCheck(const std::vector<std::string>& args, const EnvCliOptions& options, std::istream& in,
                std::ostream& out, std::ostream& err);
int RunEnvDecode(const std::vector<std::string>& args, const EnvCliOptions& options, std::istream& in,
                 std::ostream& out, std::ostream& err);

// Usage lines for the binary's help text.
const char* EnvCliUsage();

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_ENV_CLI_H_
