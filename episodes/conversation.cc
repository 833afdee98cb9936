#include "episodes/conversation.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/text/chat_template.h"

namespace envtune {

using Json = nlohmann::ordered_json;

absl::StatusOr<std::vector<TokenId>> EncodeChat(const Tokenizer& tokenizer, const Json& messages,
                                                const Json& tools) {
  absl::StatusOr<std::string> text = RenderQwen25Chat(messages, tools, true);
  if (!text.ok()) return text.status();
  return tokenizer.Encode(*text);
}

absl::StatusOr<Conversation> Conversation::Open(const Tokenizer* tokenizer, Json messages,
                                                Json tools) {
  Conversation c(tokenizer);
  absl::StatusOr<std::vector<TokenId>> ids = EncodeChat(*tokenizer, messages, tools);
  if (!ids.ok()) return ids.status();
  c.messages_ = std::move(messages);
  c.tools_ = std::move(tools);
  c.AppendContext(*ids);
  c.prompt_tokens_ = c.ids_.size();
  return c;
}

void Conversation::AppendContext(const std::vector<TokenId>& tokens) {
  ids_.insert(ids_.end(), tokens.begin(), tokens.end());
  mask_.append(tokens.size(), '\0');
  logprobs_.insert(logprobs_.end(), tokens.size(), 0.0f);
}

void Conversation::AppendSampledReply(absl::Span<const TokenId> ids,
                                      absl::Span<const float> logprobs, bool stopped,
                                      std::string text) {
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  logprobs_.insert(logprobs_.end(), logprobs.begin(), logprobs.end());
  mask_.append(ids.size(), '\1');
  messages_.push_back(Json{{"role", "assistant"}, {"content", std::move(text)}});
  reply_end_ = stopped ? ReplyEnd::kStopped : ReplyEnd::kCut;
}

absl::Status Conversation::AppendReplyText(const std::string& text) {
  std::optional<TokenId> im_end = tokenizer_->TokenToId(kImEnd);
  if (!im_end) return absl::InvalidArgumentError("the tokenizer has no <|im_end|>");
  std::vector<TokenId> reply;
  if (!text.empty()) {
    absl::StatusOr<std::vector<TokenId>> ids = tokenizer_->Encode(text);
    if (!ids.ok()) return ids.status();
    reply = std::move(*ids);
  }
  reply.push_back(*im_end);
  ids_.insert(ids_.end(), reply.begin(), reply.end());
  mask_.append(reply.size(), '\1');
  logprobs_.insert(logprobs_.end(), reply.size(), 0.0f);
  absl::StatusOr<std::vector<TokenId>> newline = tokenizer_->Encode("\n");
  if (!newline.ok()) return newline.status();
  AppendContext(*newline);
  messages_.push_back(Json{{"role", "assistant"}, {"content", text}});
  reply_end_ = ReplyEnd::kClosed;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenId>> Conversation::NextMessagesTokens(const Json& added) const {
  absl::StatusOr<std::string> delta = RenderQwen25ChatDelta(messages_, added, tools_, true);
  if (!delta.ok()) return delta.status();
  std::string text;
  switch (reply_end_) {
    case ReplyEnd::kCut:
      text = absl::StrCat(kImEnd, "\n", *delta);
      break;
    case ReplyEnd::kStopped:
      text = absl::StrCat("\n", *delta);
      break;
    case ReplyEnd::kClosed:
      text = std::move(*delta);
      break;
    case ReplyEnd::kOpen:
      return absl::FailedPreconditionError(
          "conversation: new messages must follow a reply (the prompt already asks for one)");
  }
  return tokenizer_->Encode(text);
}

void Conversation::AppendMessages(Json added, const std::vector<TokenId>& tokens) {
  for (Json& m : added) messages_.push_back(std::move(m));
  AppendContext(tokens);
  reply_end_ = ReplyEnd::kOpen;
}

}  // namespace envtune
