// Supervised fine-tuning on ground-truth trajectories: the paper's SFT baseline and the tiny
// default's warm start (`envtune sft --config FILE [sft.key=value ...]`, deploy/commands/
// sft_command.h).
//
// Data: every selected task (default: the train split, all four categories) is played by the
// ground-truth policy (episodes/evaluation.h) against the in-process episode engine under BFCL's
// evaluation semantics, in the chosen output format, so the conversations carry exactly the
// system prompts, observations and reveal messages the policy sees in training/evaluation. Each
// conversation is rendered with the Qwen2.5 chat template and tokenized segment by segment (as
// the actor does: the assistant reply's ids follow "<|im_start|>assistant\n"); the loss covers
// the assistant replies and their <|im_end|> only. Sequences longer than max_length are cut at
// max_length.
// Training: AdamW, token-mean NLL over the assistant tokens of a batch (sequences packed up to
// batch_tokens padded tokens, one optimizer step per batch), gradient-norm clipping, epochs with
// a seeded shuffle. Writes the checkpoint (HF safetensors directory, SavePolicy) to output_dir.
//
// YAML `sft:` section (unknown keys are errors; other top-level sections are ignored):
//   model: ""                 HF checkpoint directory; empty = a tiny random Qwen2 (`tiny:`)
//   tiny: {...}               the tiny model's keys (model/model_spec.h; vocab_size 0 = the
//                             tokenizer's)
//   tokenizer: third_party/qwen-tokenizer
//   format: envtuning         envtuning | bfcl (BFCL prompting mode)
//   epochs: 1
//   lr: 1.0e-5
//   weight_decay: 0.0
//   max_grad_norm: 1.0        0 = no clipping
//   batch_tokens: 16384       padded tokens per optimizer step, a common prefix counted once
//                             (conversations with the same system prompt are batched together;
//                             a longer sequence goes alone)
//   max_length: 8192          tokens per sequence
//   max_replies: 0            train on the first N assistant replies of each conversation
//                             (0 = all); a cheap warm start: the rest of a long conversation
//                             costs context for every later token
//   output_dir: checkpoints/sft
//   seed: 1                   tiny init and shuffling
//   data_dir: data            BFCL data (bfcl/) and splits (splits/)
//   subset: train             train | val | test | all, or a comma list
//   categories: []            empty = all four
//   limit: 0                  first N selected tasks (0 = all)
//   device: cpu               LibTorch device
//   dtype: float32            float32 | bfloat16 parameters
//   max_steps: 0              stop after N optimizer steps (0 = run every epoch)
//   progress_file: ""         JSON lines, one per optimizer step, appended as they happen
//                             ({"step", "steps" (planned in all), "epoch", "loss",
//                             "elapsed_s"}); `envtune train` follows it to print the warm
//                             start's progress. "" = none
// Relative paths are taken from the working directory.
#ifndef ENVTUNE_LEARNER_SFT_H_
#define ENVTUNE_LEARNER_SFT_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "envserver/task_catalog.h"
#include "envtune/v1/env.pb.h"
#include "model/model_spec.h"
#include "model/text/tokenizer.h"
#include "nlohmann/json.hpp"

namespace envtune {

struct SftOptions {
  std::string model;  // "" = tiny
  TinyQwen2Spec tiny;
  std::string tokenizer = "third_party/qwen-tokenizer";
  v1::OutputFormat format = v1::OUTPUT_FORMAT_ENVTUNING;
  int epochs = 1;
  double lr = 1e-5;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  int64_t batch_tokens = 16384;
  int64_t max_length = 8192;
  int max_replies = 0;
  std::string output_dir = "checkpoints/sft";
  uint64_t seed = 1;
  std::string data_dir = "data";
  std::string subset = "train";
  std::vector<std::string> categories;
  int limit = 0;
  std::string device = "cpu";
  std::string dtype = "float32";
  int64_t max_steps = 0;
  std::string progress_file;
};

// Reads the `sft:` section (other top-level sections are marked read). Errors go to `reader`.
void ReadSftOptions(ConfigReader& reader, SftOptions* options);

struct SftExample {
  std::string task_id;
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;  // 1 = assistant token (trained)
};

// Renders one conversation (messages as in TaskEvaluation::messages) into ids and the
// assistant-only loss mask, ending after the max_replies-th assistant reply (0 = all) and cut at
// max_length.
absl::StatusOr<SftExample> RenderSftExample(const Tokenizer& tokenizer,
                                            const nlohmann::ordered_json& messages,
                                            int64_t max_length, int max_replies = 0);

// Plays the ground-truth policy on `task_ids` and renders each conversation. FailedPrecondition
// if a ground-truth episode is not judged valid (the data would teach wrong behaviour).
absl::StatusOr<std::vector<SftExample>> BuildSftExamples(const TaskCatalog& catalog,
                                                         const Tokenizer& tokenizer,
                                                         const std::vector<std::string>& task_ids,
                                                         v1::OutputFormat format,
                                                         int64_t max_length, int max_replies = 0);

struct SftResult {
  int examples = 0;
  int64_t trained_tokens = 0;  // assistant tokens per epoch
  int64_t steps = 0;
  std::vector<double> epoch_loss;  // mean batch loss per epoch
  double first_loss = 0, last_loss = 0;
};

// The whole run; progress lines go to `log` (may be null).
absl::StatusOr<SftResult> RunSft(const SftOptions& options, std::ostream* log);

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_SFT_H_
