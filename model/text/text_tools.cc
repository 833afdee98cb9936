#include "model/text/text_tools.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/text/chat_template.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

namespace fs = std::filesystem;

// `path` itself if it is a file, path/tokenizer.json if that is; empty otherwise.
std::string Resolve(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  const std::string inside = (fs::path(path) / "tokenizer.json").string();
  if (fs::is_regular_file(inside, ec)) return inside;
  return "";
}

}  // namespace

absl::StatusOr<std::string> FindTokenizerJson(std::string_view hint) {
  std::vector<std::string> candidates;
  if (!hint.empty()) {
    candidates.emplace_back(hint);
  } else {
    if (const char* env = std::getenv("ENVTUNE_TOKENIZER"); env != nullptr && *env != '\0') {
      candidates.emplace_back(env);
    }
    if (const char* src = std::getenv("ENVTUNE_SOURCE_DIR"); src != nullptr && *src != '\0') {
      candidates.push_back(std::string(src) + "/third_party/qwen-tokenizer");
    }
    candidates.push_back("third_party/qwen-tokenizer");
    candidates.push_back("../third_party/qwen-tokenizer");
    candidates.push_back("/usr/share/envtune/qwen-tokenizer");
  }
  for (const std::string& c : candidates) {
    if (std::string found = Resolve(c); !found.empty()) return found;
  }
  return absl::NotFoundError(
      absl::StrCat("tokenizer.json not found; tried: ", absl::StrJoin(candidates, ", ")));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(std::string_view hint) {
  absl::StatusOr<std::string> path = FindTokenizerJson(hint);
  if (!path.ok()) return path.status();
  return Tokenizer::FromFile(*path);
}

absl::StatusOr<std::string> EncodeToJson(const Tokenizer& tokenizer, std::string_view text,
                                         const EncodeOptions& options) {
  absl::StatusOr<std::vector<TokenId>> ids = tokenizer.Encode(text, options);
  if (!ids.ok()) return ids.status();
  return absl::StrCat("[", absl::StrJoin(*ids, ", "), "]");
}

absl::StatusOr<std::vector<TokenId>> ParseIds(std::string_view text) {
  std::vector<TokenId> ids;
  std::string token;
  auto flush = [&]() -> absl::Status {
    if (token.empty()) return absl::OkStatus();
    int32_t id = 0;
    if (!absl::SimpleAtoi(token, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("not a token id: \"", token, "\""));
    }
    ids.push_back(id);
    token.clear();
    return absl::OkStatus();
  };
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  if (begin < end && text[begin] == '[') {
    if (text[end - 1] != ']') return absl::InvalidArgumentError("ids: unterminated JSON array");
    ++begin;
    --end;
  }
  for (size_t i = begin; i < end; ++i) {
    const char c = text[i];
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (absl::Status s = flush(); !s.ok()) return s;
    } else {
      token.push_back(c);
    }
  }
  if (absl::Status s = flush(); !s.ok()) return s;
  return ids;
}

absl::StatusOr<std::string> DecodeFromText(const Tokenizer& tokenizer, std::string_view ids_text,
                                           const DecodeOptions& options) {
  absl::StatusOr<std::vector<TokenId>> ids = ParseIds(ids_text);
  if (!ids.ok()) return ids.status();
  return tokenizer.Decode(*ids, options);
}

absl::StatusOr<std::string> RenderFromJson(std::string_view request_json) {
  const auto request = nlohmann::ordered_json::parse(request_json, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    return absl::InvalidArgumentError("render request: expected a JSON object");
  }
  const auto messages = request.value("messages", nlohmann::ordered_json());
  const auto tools = request.value("tools", nlohmann::ordered_json());
  const auto agp = request.value("add_generation_prompt", nlohmann::ordered_json(false));
  const auto format = request.value("format", nlohmann::ordered_json("qwen2.5"));
  if (!agp.is_boolean()) {
    return absl::InvalidArgumentError("render request: add_generation_prompt must be a bool");
  }
  if (format == "qwen2.5") return RenderQwen25Chat(messages, tools, agp.get<bool>());
  if (format == "chatml") return RenderChatML(messages, agp.get<bool>());
  return absl::InvalidArgumentError(
      absl::StrCat("render request: unknown format ", format.dump(), " (qwen2.5 or chatml)"));
}

}  // namespace envtune
