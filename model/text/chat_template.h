// Chat rendering for Qwen models, implemented directly in C++ (no Jinja engine).
//
// RenderQwen25Chat reproduces, byte for byte, Hugging Face's
//   tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=..., tokenize=False)
// with Qwen2.5-Instruct's tool-calling ChatML template (default system prompt, "# Tools" header
// with one `tool | tojson` line per tool, <tool_call> blocks for assistant tool_calls — wrapped in
// {"function": ...} or not, arguments as an object or a JSON string —, consecutive "tool"
// messages merged into one user turn of <tool_response> blocks, add_generation_prompt). Jinja
// semantics are mirrored where inputs are unusual: a missing/None content prints "" / "None" where
// the template prints it and is an error where the template concatenates it; messages with other
// roles are skipped (as the template does; use RenderChatML for those).
//
// JSON values use nlohmann::ordered_json so that object key order (Python dict order) is kept;
// `tojson` is Python's json.dumps(ensure_ascii=False) with ", " / ": " separators and Python float
// repr (1.0, -3e-07, 1e+20). Known limit: integers beyond 64 bits arrive as doubles from
// nlohmann::json and print as floats (Python keeps them exact). Non-list `tools` are rejected
// (Jinja would iterate a dict's keys). All functions are pure and thread-safe.
#ifndef ENVTUNE_MODEL_TEXT_CHAT_TEMPLATE_H_
#define ENVTUNE_MODEL_TEXT_CHAT_TEMPLATE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace envtune {

inline constexpr char kQwenDefaultSystemPrompt[] =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
inline constexpr char kImStart[] = "<|im_start|>";
inline constexpr char kImEnd[] = "<|im_end|>";
// The generation prompt appended when add_generation_prompt is true.
inline constexpr char kQwenGenerationPrompt[] = "<|im_start|>assistant\n";

// messages: array of {"role", "content", ["tool_calls"]}; tools: null or an array of tool
// schemas (an empty array behaves like null). InvalidArgument where HF's template would raise
// (e.g. empty `messages`, a user message whose content is not a string).
absl::StatusOr<std::string> RenderQwen25Chat(const nlohmann::ordered_json& messages,
                                             const nlohmann::ordered_json& tools,
                                             bool add_generation_prompt);

// Incremental rendering ("token in, token out"): the text `delta` such that
//   RenderQwen25Chat(prior, tools, false) + delta == RenderQwen25Chat(prior + added, tools, agp).
// `prior` may be empty (then delta is the full rendering). Every rendered turn ends with
// "<|im_end|>\n"; an actor whose generated ids stop at <|im_end|> appends the ids of "\n" + delta.
// Because the delta starts at a special-token boundary ("<|im_start|>"), Encode(prefix) +
// Encode(delta) == Encode(prefix + delta). FailedPrecondition if the split point is not a turn
// boundary (prior ends with a "tool" message and `added` starts with one: they share a turn).
absl::StatusOr<std::string> RenderQwen25ChatDelta(const nlohmann::ordered_json& prior,
                                                  const nlohmann::ordered_json& added,
                                                  const nlohmann::ordered_json& tools,
                                                  bool add_generation_prompt);

// Plain ChatML for any roles: "<|im_start|>{role}\n{content}<|im_end|>\n" per message (no
// default system prompt, no tool handling); content must be a string (null renders as "").
absl::StatusOr<std::string> RenderChatML(const nlohmann::ordered_json& messages,
                                         bool add_generation_prompt);
// One ChatML turn.
std::string ChatMLTurn(std::string_view role, std::string_view content);

// Python json.dumps(value, ensure_ascii=False) (Jinja `tojson` in HF's environment). Strings must
// be valid UTF-8 (InvalidArgument otherwise).
absl::StatusOr<std::string> PythonJsonDumps(const nlohmann::ordered_json& value);
// Python str(value) of the JSON value as Python would hold it (None, True, 1.0, {'a': [1]}).
std::string PythonStr(const nlohmann::ordered_json& value);
// Python repr(float): shortest round-trip digits, "1.0", "-3e-07", "1e+20", "inf", "nan".
std::string PythonFloatRepr(double value);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_TEXT_CHAT_TEMPLATE_H_
