// `envtune model tokenize | generate | convert | init`: the command layer (flags, the config's
// `model:` section, usage and exit codes) over model/model_tools.h.
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
#ifndef ENVTUNE_DEPLOY_COMMANDS_MODEL_COMMAND_H_
#define ENVTUNE_DEPLOY_COMMANDS_MODEL_COMMAND_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace envtune {

// `args` are the words after "model" (subcommand first).
int RunModelCommand(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                    std::ostream& err);
const char* ModelCommandUsage();

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_COMMANDS_MODEL_COMMAND_H_
