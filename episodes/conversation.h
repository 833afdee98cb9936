// Conversation: the one way a conversation becomes the tokens a policy sees and is trained on
// (actor rollouts, evaluation prompts, SFT examples). Messages are rendered with the Qwen2.5
// chat template (model/text/chat_template.h, byte-exact with Hugging Face) and tokenized one
// segment at a time, so earlier tokens never change:
//   opening      the template over the opening messages (+ tools), with the generation prompt
//                                                                           loss mask 0
//   a reply      sampled: its ids exactly as generated, with their log-probs (token in, token
//                out; the text is only decoded for the env)                 mask 1
//                given as text (SFT): its tokens and <|im_end|>, then "\n"   mask 1, then 0
//   next         "<|im_end|>" when a sampled reply did not stop by itself, "\n" unless the
//   messages     reply already closed with it, then the template's delta of the new messages
//                up to the next generation prompt                           mask 0
// Tokenizing the "\n" with the delta or apart gives the same ids: special tokens split the text.
#ifndef ENVTUNE_EPISODES_CONVERSATION_H_
#define ENVTUNE_EPISODES_CONVERSATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/text/tokenizer.h"
#include "nlohmann/json.hpp"

namespace envtune {

// The token ids of `messages` rendered whole (with the generation prompt), as a stateless
// policy sees a conversation afresh (evaluation).
absl::StatusOr<std::vector<TokenId>> EncodeChat(const Tokenizer& tokenizer,
                                                const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools);

class Conversation {
 public:
  // Renders and tokenizes the opening messages. `tools`: null, or the chat template's tool
  // schemas (the Hermes format). `tokenizer` must outlive the conversation.
  static absl::StatusOr<Conversation> Open(const Tokenizer* tokenizer,
                                           nlohmann::ordered_json messages,
                                           nlohmann::ordered_json tools);

  const std::vector<TokenId>& ids() const { return ids_; }
  const std::string& mask() const { return mask_; }  // one byte per token: '\1' trained
  const std::vector<float>& logprobs() const { return logprobs_; }  // 0 where not sampled
  const nlohmann::ordered_json& messages() const { return messages_; }
  const nlohmann::ordered_json& tools() const { return tools_; }
  size_t prompt_tokens() const { return prompt_tokens_; }

  // A sampled reply: `ids` and their `logprobs` as generated; `stopped` when it ends with
  // <|im_end|>; `text` its decoding without the stop token (the assistant message).
  void AppendSampledReply(absl::Span<const TokenId> ids, absl::Span<const float> logprobs,
                          bool stopped, std::string text);
  // A reply given as text (the ground truth in SFT): its tokens and <|im_end|> (trained), then
  // "\n" (context).
  absl::Status AppendReplyText(const std::string& text);

  // The context tokens that `added` messages append after the last reply (see above), not yet
  // appended, so a caller can check a budget first. FailedPrecondition before any reply.
  absl::StatusOr<std::vector<TokenId>> NextMessagesTokens(
      const nlohmann::ordered_json& added) const;
  // Appends `added` with the tokens NextMessagesTokens(added) gave.
  void AppendMessages(nlohmann::ordered_json added, const std::vector<TokenId>& tokens);

 private:
  explicit Conversation(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  void AppendContext(const std::vector<TokenId>& tokens);

  // How the last reply ended: what the next messages' tokens start with.
  enum class ReplyEnd { kOpen, kStopped, kCut, kClosed };

  const Tokenizer* tokenizer_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools_;
  std::vector<TokenId> ids_;
  std::string mask_;
  std::vector<float> logprobs_;
  size_t prompt_tokens_ = 0;
  ReplyEnd reply_end_ = ReplyEnd::kOpen;
};

}  // namespace envtune

#endif  // ENVTUNE_EPISODES_CONVERSATION_H_
