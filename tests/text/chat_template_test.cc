#include "model/text/chat_template.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/text/tokenizer.h"
#include "tests/text/test_paths.h"

namespace envtune {
namespace {

using OJson = nlohmann::ordered_json;
using ::testing::HasSubstr;

std::vector<OJson> LoadRenderings() {
  std::vector<OJson> cases;
  for (const std::string& line :
       testing::ReadLines(testing::SharedDir() + "/golden/chat/renderings.jsonl")) {
    cases.push_back(OJson::parse(line));
  }
  return cases;
}

TEST(ChatTemplateTest, GoldenRenderings) {
  const auto cases = LoadRenderings();
  if (cases.empty()) GTEST_SKIP() << "golden/chat/renderings.jsonl not found";
  ASSERT_EQ(cases.size(), 31u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const OJson& c = cases[i];
    const OJson tools = c.contains("tools") ? c["tools"] : OJson();
    auto text = RenderQwen25Chat(c["messages"], tools, c["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(text.ok()) << "case " << i << ": " << text.status();
    EXPECT_EQ(*text, c["text"].get<std::string>()) << "case " << i;
  }
}

// Splitting every golden conversation at each turn boundary and rendering the deltas
// reproduces the full text.
TEST(ChatTemplateTest, DeltasConcatenateToFullRendering) {
  const auto cases = LoadRenderings();
  if (cases.empty()) GTEST_SKIP() << "golden/chat/renderings.jsonl not found";
  int splits_checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const OJson& msgs = cases[i]["messages"];
    const OJson tools = cases[i].contains("tools") ? cases[i]["tools"] : OJson();
    const bool agp = cases[i]["add_generation_prompt"].get<bool>();
    for (size_t k = 1; k < msgs.size(); ++k) {
      OJson prior = OJson::array(), added = OJson::array();
      for (size_t m = 0; m < msgs.size(); ++m) (m < k ? prior : added).push_back(msgs[m]);
      auto delta = RenderQwen25ChatDelta(prior, added, tools, agp);
      if (prior.back()["role"] == "tool" && added.front()["role"] == "tool") {
        EXPECT_EQ(delta.status().code(), absl::StatusCode::kFailedPrecondition);
        continue;
      }
      ASSERT_TRUE(delta.ok()) << "case " << i << " split " << k << ": " << delta.status();
      auto base = RenderQwen25Chat(prior, tools, false);
      ASSERT_TRUE(base.ok());
      EXPECT_EQ(*base + *delta, cases[i]["text"].get<std::string>()) << "case " << i;
      EXPECT_TRUE(delta->rfind(kImStart, 0) == 0) << "case " << i << " split " << k;
      ++splits_checked;
    }
  }
  EXPECT_GT(splits_checked, 30);
}

TEST(ChatTemplateTest, DeltaTokensConcatenate) {
  const std::string path = testing::SharedDir() + "/golden/qwen-tokenizer/tokenizer.json";
  if (!testing::Exists(path)) GTEST_SKIP() << "tokenizer fixture not found";
  auto tok = Tokenizer::FromFile(path);
  ASSERT_TRUE(tok.ok());
  const OJson prior = OJson::parse(R"([{"role":"user","content":"ls please"},
      {"role":"assistant","content":"<tool_call>\n{\"name\": \"ls\", \"arguments\": {}}\n</tool_call>"}])");
  const OJson added = OJson::parse(R"([{"role":"tool","content":"{\"current_directory_content\": [\"a.txt\"]}"}])");
  auto base = RenderQwen25Chat(prior, OJson(), false);
  auto delta = RenderQwen25ChatDelta(prior, added, OJson(), true);
  ASSERT_TRUE(base.ok() && delta.ok());
  std::vector<TokenId> ids = *(*tok)->Encode(*base);
  const std::vector<TokenId> more = *(*tok)->Encode(*delta);
  ids.insert(ids.end(), more.begin(), more.end());
  EXPECT_EQ(ids, *(*tok)->Encode(*base + *delta));
  EXPECT_EQ(*delta,
            "<|im_start|>user\n<tool_response>\n{\"current_directory_content\": [\"a.txt\"]}\n"
            "</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, JinjaEdgeCases) {
  // Non-string tool content is printed with Python str().
  const OJson msgs = OJson::parse(
      R"([{"role":"user","content":"q"},{"role":"tool","content":{"a":[1,2.0,null,true,"it's"]}},
          {"role":"observation","content":"skipped by the template"}])");
  auto text = RenderQwen25Chat(msgs, OJson(), false);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("<tool_response>\n{'a': [1, 2.0, None, True, \"it's\"]}\n"));
  EXPECT_THAT(*text, ::testing::Not(HasSubstr("observation")));
  // Concatenating a None content raises in Jinja.
  auto bad = RenderQwen25Chat(OJson::parse(R"([{"role":"user","content":null}])"), OJson(), true);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderQwen25Chat(OJson::array(), OJson(), true).status().code(),
            absl::StatusCode::kInvalidArgument);
  // tools: [] falls back to the plain system prompt.
  auto plain = RenderQwen25Chat(OJson::parse(R"([{"role":"user","content":"x"}])"),
                                OJson::array(), false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, std::string("<|im_start|>system\n") + kQwenDefaultSystemPrompt +
                        "<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
}

// Edge cases rendered by jinja2 itself (see tests/text/data/README.md).
TEST(ChatTemplateTest, Jinja2EdgeRenderings) {
  const auto lines =
      testing::ReadLines(testing::SourceDir() + "/tests/text/data/jinja2_edge_renderings.jsonl");
  if (lines.empty()) GTEST_SKIP() << "tests/text/data not found";
  for (size_t i = 0; i < lines.size(); ++i) {
    const OJson c = OJson::parse(lines[i]);
    auto text = RenderQwen25Chat(c["messages"], c.value("tools", OJson()),
                                 c["add_generation_prompt"].get<bool>());
    if (c.contains("error")) {
      EXPECT_FALSE(text.ok()) << "line " << i + 1 << " should fail like Jinja: " << c["error"];
    } else {
      ASSERT_TRUE(text.ok()) << "line " << i + 1 << ": " << text.status();
      EXPECT_EQ(*text, c["text"].get<std::string>()) << "line " << i + 1;
    }
  }
}

TEST(ChatTemplateTest, PythonFormatting) {
  const std::vector<std::pair<double, std::string>> floats = {
      {1.0, "1.0"},       {-3e-07, "-3e-07"},        {1e+20, "1e+20"},  {220.34, "220.34"},
      {0.0001, "0.0001"}, {0.00001, "1e-05"},        {1e16, "1e+16"},   {1e15, "1000000000000000.0"},
      {-0.0, "-0.0"},     {0.1 + 0.2, "0.30000000000000004"}, {1.5e-7, "1.5e-07"},
      {123456789.125, "123456789.125"}, {1e100, "1e+100"}};
  for (const auto& [value, repr] : floats) EXPECT_EQ(PythonFloatRepr(value), repr) << repr;
  auto dumped = PythonJsonDumps(OJson::parse(
      R"({"b": "é \"q\" \\ \n\t\u0001 <&>", "a": [1, 2.5, true, null, {}, []]})"));
  ASSERT_TRUE(dumped.ok());
  EXPECT_EQ(*dumped,
            "{\"b\": \"é \\\"q\\\" \\\\ \\n\\t\\u0001 <&>\", \"a\": [1, 2.5, true, null, {}, []]}");
  EXPECT_EQ(PythonStr(OJson::parse(R"({"k": "a'b\"c", "n": "x\ny"})")),
            "{'k': 'a\\'b\"c', 'n': 'x\\ny'}");
  EXPECT_EQ(PythonStr(OJson("plain")), "plain");
  EXPECT_EQ(PythonStr(OJson()), "None");
}

TEST(ChatTemplateTest, PlainChatML) {
  auto text = RenderChatML(
      OJson::parse(R"([{"role":"observation","content":"ok"},{"role":"user","content":null}])"),
      true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>observation\nok<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(RenderChatML(OJson::parse(R"([{"content":"x"}])"), false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChatMLTurn("user", "hi"), "<|im_start|>user\nhi<|im_end|>\n");
}

}  // namespace
}  // namespace envtune
