// The reply formats: one class each, one registry row each, one name each everywhere (CLI flags,
// config keys, reports); typed values (v1::OutputFormat, DecodeMode) everywhere else.
//
// Reply formats (how the policy writes replies in an episode; EpisodeOptions.output_format):
//   envtuning       <think>…</think> then <tool_call>[…]</tool_call> or <answer>…</answer>
//                   (METHOD.md §2.3); tools described in the system prompt.
//   bfcl_prompting  BFCL's prompting mode: a Python call list `[f(a=1), g()]`, BFCL's prompt.
//   hermes          Qwen/Hermes native <tool_call>{"name", "arguments"}</tool_call> blocks,
//                   tools in the chat template's tools section.
// Decoder modes (`envtune env check|decode --mode`; envserver/decode.h): bfcl_prompting and
// envtuning as above, and bfcl_fc: BFCL's function-calling output (the reply's tool calls as
// a list of {name: arguments}), which BFCL's checker decodes but no envtune episode produces.
//
// A ReplyDecoder turns a reply into calls (every format and mode has one); a ReplyFormat is a
// decoder that an episode can be played in: it also renders what the model is shown (system
// prompt, tool listing, reveal message, observations). The episode engine, the checker and the
// CLIs branch on no format themselves: they ask the registry. Adding a format is one class and
// one row in reply_format.cc's table (plus its enum value in env.proto or DecodeMode).
// Every object here is stateless and lives for the whole process; all methods are pure.
#ifndef ENVTUNE_ENVSERVER_REPLY_FORMAT_H_
#define ENVTUNE_ENVSERVER_REPLY_FORMAT_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "envserver/decode.h"
#include "envserver/pyvalue.h"
#include "envtune/v1/env.pb.h"

namespace envtune {

class ReplyDecoder {
 public:
  virtual ~ReplyDecoder() = default;
  // The one name of the format (what ParseOutputFormat / ParseDecodeMode accept).
  virtual absl::string_view name() const = 0;
  // The reply's calls, or why there are none (DecodeResult::Kind). Never throws.
  virtual DecodeResult Decode(std::string_view reply) const = 0;
};

// One result of an executed step as the model is shown it.
struct ShownResult {
  std::string call;    // the executed call string
  std::string result;  // its result text, already capped (EpisodeEngineOptions::max_result_bytes)
};

class ReplyFormat : public ReplyDecoder {
 public:
  // The system prompt around the function docs in force at the start (`visible_docs`, BFCL's
  // order, no suffix); nullopt: no system message (tools travel as chat-template schemas).
  virtual std::optional<std::string> SystemPrompt(const PyList& visible_docs) const = 0;
  // One doc of the tool listing (StartEpisodeResponse.tools_json).
  virtual std::string ToolJson(const PyValue& doc) const = 0;
  // The user message of a miss_func reveal turn; `revealed` is not empty.
  virtual std::string RevealMessage(const PyList& revealed) const = 0;
  // Whether a reply that decoded to kNoCall still attempted a tool call (envtuning: a
  // <tool_call> block whose list is unusable), which matters on cannot-serve turns.
  virtual bool NoCallIsToolAttempt() const { return false; }
  // The observation of a reply that decoded to kFormatError with `problem`.
  virtual std::string FormatErrorObservation(std::string_view problem) const = 0;
  // The observation messages of an executed step, appended to `out`; one message is capped at
  // `max_observation_bytes`.
  virtual void AddResultsObservation(
      std::vector<ShownResult> shown, size_t max_observation_bytes,
      google::protobuf::RepeatedPtrField<v1::ChatMessage>* out) const = 0;
};

// Appends one chat message (`name` set only when not empty).
void AddChatMessage(google::protobuf::RepeatedPtrField<v1::ChatMessage>* out, std::string role,
                    std::string content, std::string name = "");

// The registry. UNSPECIFIED reads as its default, envtuning; an out-of-range value (rejected by
// EpisodeEngine::Start) reads as envtuning too.
const ReplyFormat& ReplyFormatFor(v1::OutputFormat format);
const ReplyDecoder& ReplyDecoderFor(DecodeMode mode);

// INVALID_ARGUMENT naming the known names for anything else (no aliases).
absl::StatusOr<v1::OutputFormat> ParseOutputFormat(absl::string_view name);
absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name);

// The name of a format or mode; UNSPECIFIED reads as its default, envtuning.
absl::string_view OutputFormatName(v1::OutputFormat format);
absl::string_view DecodeModeName(DecodeMode mode);

// "envtuning, bfcl_prompting, hermes" (in enum order): for flag help and messages.
std::string OutputFormatNames();
std::string DecodeModeNames();

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_REPLY_FORMAT_H_
