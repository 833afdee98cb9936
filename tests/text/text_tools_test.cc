#include "model/text/text_tools.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/text/test_paths.h"

namespace envtune {
namespace {

using ::testing::ElementsAre;

TEST(TextToolsTest, ShippedTokenizerMatchesFixture) {
  const std::string shipped = testing::SourceDir() + "/third_party/qwen-tokenizer";
  auto path = FindTokenizerJson(shipped);
  if (!path.ok()) GTEST_SKIP() << path.status();
  auto tok = LoadTokenizer(shipped);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto json = EncodeToJson(**tok, "Hello, world!");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(*json, "[9707, 11, 1879, 0]");
  auto text = DecodeFromText(**tok, *json);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "Hello, world!");
  EXPECT_EQ(*DecodeFromText(**tok, "151644 872,198", {.skip_special_tokens = true}), "user\n");
}

TEST(TextToolsTest, ParseIds) {
  EXPECT_THAT(*ParseIds(" [1, 2,3] "), ElementsAre(1, 2, 3));
  EXPECT_THAT(*ParseIds("4 5\n6"), ElementsAre(4, 5, 6));
  EXPECT_TRUE(ParseIds("")->empty());
  EXPECT_FALSE(ParseIds("[1, x]").ok());
  EXPECT_FALSE(ParseIds("[1, 2").ok());
  EXPECT_FALSE(ParseIds("99999999999").ok());
}

TEST(TextToolsTest, RenderRequest) {
  auto text = RenderFromJson(
      R"({"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true})");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  auto chatml = RenderFromJson(
      R"({"format": "chatml", "messages": [{"role": "env", "content": "obs"}]})");
  ASSERT_TRUE(chatml.ok());
  EXPECT_EQ(*chatml, "<|im_start|>env\nobs<|im_end|>\n");
  EXPECT_FALSE(RenderFromJson("not json").ok());
  EXPECT_FALSE(RenderFromJson(R"({"format": "llama", "messages": []})").ok());
  EXPECT_FALSE(RenderFromJson(R"({"messages": [], "add_generation_prompt": "yes"})").ok());
}

TEST(TextToolsTest, MissingTokenizerIsNotFound) {
  EXPECT_EQ(FindTokenizerJson("/nonexistent/dir").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace envtune
