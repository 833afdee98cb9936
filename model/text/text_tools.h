// Small string-in/string-out helpers behind `envtune model tokenize` (and similar tools): locate
// the shipped tokenizer, encode/decode with JSON I/O, render a chat request. No main() here.
// Thread-safe (pure functions; the Tokenizer is only read).
#ifndef ENVTUNE_MODEL_TEXT_TEXT_TOOLS_H_
#define ENVTUNE_MODEL_TEXT_TEXT_TOOLS_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/text/tokenizer.h"

namespace envtune {

// Resolves a tokenizer.json path. `hint` may be a tokenizer.json file or a directory holding one;
// when empty the search order is $ENVTUNE_TOKENIZER (file or dir),
// $ENVTUNE_SOURCE_DIR/third_party/qwen-tokenizer, ./third_party/qwen-tokenizer,
// ../third_party/qwen-tokenizer and /usr/share/envtune/qwen-tokenizer. NotFound lists the places
// tried.
absl::StatusOr<std::string> FindTokenizerJson(std::string_view hint = "");

// FindTokenizerJson(hint) + Tokenizer::FromFile.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(std::string_view hint = "");

// Encodes `text`; returns a JSON array of ids, e.g. "[9707, 11, 1879, 0]".
absl::StatusOr<std::string> EncodeToJson(const Tokenizer& tokenizer, std::string_view text,
                                         const EncodeOptions& options = {});

// Parses ids written as a JSON array ("[1, 2]") or separated by spaces/commas ("1 2,3").
absl::StatusOr<std::vector<TokenId>> ParseIds(std::string_view text);

// ParseIds + Tokenizer::Decode.
absl::StatusOr<std::string> DecodeFromText(const Tokenizer& tokenizer, std::string_view ids_text,
                                           const DecodeOptions& options = {});

// Renders a request {"messages": [...], "tools": [...]|null, "add_generation_prompt": bool,
// "format": "qwen2.5" (default) | "chatml"}.
absl::StatusOr<std::string> RenderFromJson(std::string_view request_json);

}  // namespace envtune

#endif  // ENVTUNE_MODEL_TEXT_TEXT_TOOLS_H_
