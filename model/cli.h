// `envtune model ...`: model inspection and conversion commands, plus the small flag parser the
// torch-side commands (model, eval, sft) share.
//
//   envtune model tokenize [--tokenizer DIR]
//       stdin: JSON lines {"text": ...}; stdout: {"text", "ids", "decoded"} per line.
//   envtune model generate --model DIR [--tokenizer DIR] [--max_new_tokens N] [--temperature T]
//       [--top_k K] [--top_p P] [--seed S] [--dtype D] [--device cpu|cuda]
//       stdin: JSON lines {"prompt": text} or {"prompt_ids": [...]}, each optionally overriding
//       max_new_tokens / temperature / top_k / top_p / seed / stop (list of strings).
//       Greedy unless a temperature > 0 is given (flag or line). Stops at <|im_end|> / the
//       model's eos ids. stdout: {"ids", "text", "logprobs", "finish_reason"} per line
//       (logprobs: the raw policy's per-token log-probs, temperature 1).
//   envtune model convert --model DIR --out DIR [--dtype fp32|bf16] [--shard_bytes N]
//       rewrites a checkpoint in another dtype and/or shard size (HF layout).
//   envtune model init --config FILE --out DIR [--tokenizer DIR]
//       a tiny random Qwen2 checkpoint from the config's `model:` section:
//         model:
//           tiny: {...}   the keys of model/model_spec.h (vocab_size 0 = the tokenizer's size)
//           seed: 1
//       Other top-level sections of the file are ignored; unknown keys under `model:` are errors.
// Exit codes: 0 ok, 1 runtime failure, 2 usage error. A bad input line is an error line
// {"error": ...} on stdout and processing continues (exit code 1 at the end).
#ifndef ENVTUNE_MODEL_CLI_H_
#define ENVTUNE_MODEL_CLI_H_

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "model/text/tokenizer.h"

namespace envtune {

class PolicyImpl;

// --name=value / --name value flags and positionals. Bool flags (listed in `bool_flags`) take no
// value (or =true/=false). Unknown flags are InvalidArgument naming them.
struct CliFlags {
  std::map<std::string, std::string> values;
  std::vector<std::string> positionals;
  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  absl::StatusOr<bool> GetBool(const std::string& name, bool fallback) const;
};
absl::StatusOr<CliFlags> ParseCliFlags(const std::vector<std::string>& args,
                                       const std::set<std::string>& known,
                                       const std::set<std::string>& bool_flags = {});

// Builds the random tiny policy of `spec` (model/model_spec.h) over `tokenizer` (fp32, CPU,
// initialised from `seed`) and saves it to `out_dir`.
absl::Status InitTinyQwen2(const TinyQwen2Spec& spec, const Tokenizer& tokenizer,
                           const std::string& out_dir, uint64_t seed = 1);

// Rewrites the checkpoint `in_dir` to `out_dir` in `dtype` ("fp32"/"float32"/"bf16"/"bfloat16";
// "" keeps it) with shards of at most `shard_bytes` (0 = 5 GiB, HF's default).
absl::Status ConvertCheckpoint(const std::string& in_dir, const std::string& out_dir,
                               const std::string& dtype, int64_t shard_bytes);

// JSON-lines processors behind tokenize / generate. Return the number of bad lines.
int TokenizeJsonLines(const Tokenizer& tokenizer, std::istream& in, std::ostream& out);
struct GenerateCliOptions {
  int64_t max_new_tokens = 256;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
};
int GenerateJsonLines(PolicyImpl& policy, const Tokenizer& tokenizer,
                      const GenerateCliOptions& options, std::istream& in, std::ostream& out);

// `args` are the words after "model" (subcommand first).
int RunModelCommand(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                    std::ostream& err);
const char* ModelCommandUsage();

}  // namespace envtune

#endif  // ENVTUNE_MODEL_CLI_H_
