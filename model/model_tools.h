// Model tools behind `envtune model ...` (deploy/commands/model_command.h): a tiny random
// Qwen2 checkpoint, checkpoint conversion, and the JSON-lines tokenize / generate processors.
#ifndef ENVTUNE_MODEL_MODEL_TOOLS_H_
#define ENVTUNE_MODEL_MODEL_TOOLS_H_

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "model/text/tokenizer.h"

namespace envtune {

class PolicyImpl;

// Builds the random tiny policy of `spec` (model/model_spec.h) over `tokenizer` (fp32, CPU,
// initialised from `seed`) and saves it to `out_dir`.
absl::Status InitTinyQwen2(const TinyQwen2Spec& spec, const Tokenizer& tokenizer,
                           const std::string& out_dir, uint64_t seed = 1);

// "fp32"/"float32"/"f32" -> "float32", "bf16"/"bfloat16" -> "bfloat16", "fp16"/"float16"/"f16"
// -> "float16", "" -> ""; anything else is InvalidArgument.
absl::StatusOr<std::string> NormalizeDtype(const std::string& name);

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

}  // namespace envtune

#endif  // ENVTUNE_MODEL_MODEL_TOOLS_H_
