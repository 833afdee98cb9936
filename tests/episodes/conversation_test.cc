// Conversation (episodes/conversation.h), the one tokenization of a conversation: whatever the
// replies (sampled and stopped, sampled and cut, given as text), the tokens decode to the chat
// template's rendering of the whole conversation, only reply tokens are trained, sampled
// log-probs are carried, and the opening equals EncodeChat.
#include "episodes/conversation.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/text/chat_template.h"
#include "model/text/text_tools.h"

namespace envtune {
namespace {

using Json = nlohmann::ordered_json;

class ConversationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
    if (!tok.ok()) GTEST_SKIP() << "shipped tokenizer not found: " << tok.status();
    tokenizer_ = std::move(*tok);
    im_end_ = *tokenizer_->TokenToId(kImEnd);
  }
  std::vector<TokenId> Encode(const std::string& text) { return *tokenizer_->Encode(text); }
  std::string Decode(const std::vector<TokenId>& ids) { return *tokenizer_->Decode(ids); }
  // The text of the tokens whose mask is `m`.
  std::string MaskedText(const Conversation& c, char m) {
    std::vector<TokenId> ids;
    for (size_t i = 0; i < c.ids().size(); ++i) {
      if (c.mask()[i] == m) ids.push_back(c.ids()[i]);
    }
    return Decode(ids);
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  TokenId im_end_ = 0;
};

Json Opening() {
  return Json::array({Json{{"role", "system"}, {"content", "You use tools."}},
                      Json{{"role", "user"}, {"content", "List the files."}}});
}

TEST_F(ConversationTest, SampledRepliesStoppedOrCutDecodeToTheWholeRendering) {
  absl::StatusOr<Conversation> c = Conversation::Open(tokenizer_.get(), Opening(), Json());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ids(), *EncodeChat(*tokenizer_, Opening(), Json()));
  EXPECT_EQ(c->prompt_tokens(), c->ids().size());
  EXPECT_EQ(c->mask(), std::string(c->ids().size(), '\0'));

  // A reply that stopped by itself: its ids end with <|im_end|>.
  std::vector<TokenId> stopped = Encode("[ls()]");
  stopped.push_back(im_end_);
  std::vector<float> lp(stopped.size(), -0.5f);
  c->AppendSampledReply(stopped, lp, /*stopped=*/true, "[ls()]");
  Json tool = Json::array({Json{{"role", "user"}, {"content", "a.txt b.txt"}}});
  absl::StatusOr<std::vector<TokenId>> next = c->NextMessagesTokens(tool);
  ASSERT_TRUE(next.ok()) << next.status();
  c->AppendMessages(tool, *next);

  // A reply cut by the token cap: no <|im_end|> of its own; the context supplies it.
  std::vector<TokenId> cut = Encode("There are two");
  c->AppendSampledReply(cut, std::vector<float>(cut.size(), -1.0f), /*stopped=*/false,
                        "There are two");
  Json user = Json::array({Json{{"role", "user"}, {"content", "Thanks."}}});
  next = c->NextMessagesTokens(user);
  ASSERT_TRUE(next.ok()) << next.status();
  c->AppendMessages(user, *next);

  Json all = Opening();
  all.push_back(Json{{"role", "assistant"}, {"content", "[ls()]"}});
  all.push_back(tool[0]);
  all.push_back(Json{{"role", "assistant"}, {"content", "There are two"}});
  all.push_back(user[0]);
  EXPECT_EQ(c->messages(), all);
  EXPECT_EQ(Decode(c->ids()), *RenderQwen25Chat(all, Json(), true));
  EXPECT_EQ(MaskedText(*c, '\1'), "[ls()]<|im_end|>There are two");
  ASSERT_EQ(c->logprobs().size(), c->ids().size());
  int sampled = 0;
  for (size_t i = 0; i < c->ids().size(); ++i) {
    if (c->mask()[i] == '\1') {
      EXPECT_LT(c->logprobs()[i], 0.0f);
      ++sampled;
    } else {
      EXPECT_EQ(c->logprobs()[i], 0.0f);
    }
  }
  EXPECT_EQ(sampled, static_cast<int>(stopped.size() + cut.size()));
}

TEST_F(ConversationTest, RepliesGivenAsTextAreClosedAndTrainedWithTheirStopToken) {
  absl::StatusOr<Conversation> c = Conversation::Open(tokenizer_.get(), Opening(), Json());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->AppendReplyText("[ls()]").ok());
  Json tool = Json::array({Json{{"role", "user"}, {"content", "a.txt"}}});
  absl::StatusOr<std::vector<TokenId>> next = c->NextMessagesTokens(tool);
  ASSERT_TRUE(next.ok());
  c->AppendMessages(tool, *next);
  ASSERT_TRUE(c->AppendReplyText("Done.").ok());
  Json all = Opening();
  all.push_back(Json{{"role", "assistant"}, {"content", "[ls()]"}});
  all.push_back(tool[0]);
  all.push_back(Json{{"role", "assistant"}, {"content", "Done."}});
  // The template closes every message with "<|im_end|>\n": so do replies given as text.
  EXPECT_EQ(Decode(c->ids()), *RenderQwen25Chat(all, Json(), false));
  EXPECT_EQ(MaskedText(*c, '\1'), "[ls()]<|im_end|>Done.<|im_end|>");
}

TEST_F(ConversationTest, MessagesMustFollowAReply) {
  absl::StatusOr<Conversation> c = Conversation::Open(tokenizer_.get(), Opening(), Json());
  ASSERT_TRUE(c.ok());
  absl::StatusOr<std::vector<TokenId>> next =
      c->NextMessagesTokens(Json::array({Json{{"role", "user"}, {"content", "x"}}}));
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace envtune
