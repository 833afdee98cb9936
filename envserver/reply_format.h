// The reply formats and decoder modes by name: one name per format everywhere (CLI flags,
// config keys, reports), typed values (v1::OutputFormat, DecodeMode) everywhere else.
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
#ifndef ENVTUNE_ENVSERVER_REPLY_FORMAT_H_
#define ENVTUNE_ENVSERVER_REPLY_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "envserver/decode.h"
#include "envtune/v1/env.pb.h"

namespace envtune {

// INVALID_ARGUMENT naming the known names for anything else (no aliases).
absl::StatusOr<v1::OutputFormat> ParseOutputFormat(absl::string_view name);
absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name);

// The name of a format or mode; UNSPECIFIED reads as its default, envtuning.
absl::string_view OutputFormatName(v1::OutputFormat format);
absl::string_view DecodeModeName(DecodeMode mode);

// "envtuning, bfcl_prompting, hermes": for flag help and messages.
std::string OutputFormatNames();
std::string DecodeModeNames();

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_REPLY_FORMAT_H_
