#include "model/text/tokenizer.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/text/unicode.h"
#include "nlohmann/json.hpp"
#include "tests/text/test_paths.h"

namespace envtune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class QwenTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = testing::SharedDir() + "/golden/qwen-tokenizer/tokenizer.json";
    if (!testing::Exists(path)) return;
    auto t = Tokenizer::FromFile(path);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_SKIP() << "golden/qwen-tokenizer not found under " << testing::SharedDir();
  }
  static const Tokenizer& tok() { return *tokenizer_; }
  static Tokenizer* tokenizer_;
};
Tokenizer* QwenTokenizerTest::tokenizer_ = nullptr;

TEST_F(QwenTokenizerTest, SpotCheck) {
  auto ids = tok().Encode("Hello, world!");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(9707, 11, 1879, 0));
  EXPECT_EQ(tok().vocab_size(), 151669);
  EXPECT_EQ(tok().TokenToId("<|im_end|>"), 151645);
  EXPECT_TRUE(tok().IsSpecial(151645));
  EXPECT_FALSE(tok().IsSpecial(151657));  // <tool_call> is added but not special
  EXPECT_TRUE(tok().IsAddedToken(151657));
}

TEST_F(QwenTokenizerTest, GoldenEncodings) {
  const std::string path = testing::SharedDir() + "/golden/qwen-tokenizer/encodings.jsonl";
  const auto lines = testing::ReadLines(path);
  ASSERT_GT(lines.size(), 600u);
  int failures = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i]);
    const std::string text = j["text"];
    const std::vector<TokenId> expected = j["ids"].get<std::vector<TokenId>>();
    auto ids = tok().Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    if (*ids != expected) {
      ++failures;
      ADD_FAILURE() << "line " << i + 1 << " encodes differently: " << nlohmann::json(text).dump()
                    << "\n got " << nlohmann::json(*ids).dump() << "\nwant "
                    << nlohmann::json(expected).dump();
    }
    auto decoded = tok().Decode(expected);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, j["decoded"].get<std::string>()) << "line " << i + 1;
    if (failures > 10) break;
  }
}

// Extra fixtures from transformers.js (see tests/text/data/README.md).
TEST_F(QwenTokenizerTest, TransformersJsRandomEncodingsAndDecodings) {
  const std::string dir = testing::SourceDir() + "/tests/text/data";
  const auto enc = testing::ReadLines(dir + "/transformersjs_random_encodings.jsonl");
  const auto dec = testing::ReadLines(dir + "/transformersjs_random_decodings.jsonl");
  if (enc.empty() || dec.empty()) GTEST_SKIP() << "tests/text/data not found under " << dir;
  int failures = 0;
  for (size_t i = 0; i < enc.size() && failures < 10; ++i) {
    const auto j = nlohmann::json::parse(enc[i]);
    const auto expected = j["ids"].get<std::vector<TokenId>>();
    auto ids = tok().Encode(j["text"].get<std::string>());
    ASSERT_TRUE(ids.ok()) << ids.status();
    if (*ids != expected) {
      ++failures;
      ADD_FAILURE() << "encodings line " << i + 1 << ": " << j["text"].dump();
    }
    EXPECT_EQ(*tok().Decode(expected), j["decoded"].get<std::string>()) << "line " << i + 1;
  }
  for (size_t i = 0; i < dec.size(); ++i) {
    const auto j = nlohmann::json::parse(dec[i]);
    const auto ids = j["ids"].get<std::vector<TokenId>>();
    EXPECT_EQ(*tok().Decode(ids), j["decoded"].get<std::string>()) << "decodings line " << i + 1;
    EXPECT_EQ(*tok().Decode(ids, {.skip_special_tokens = true}), j["skipped"].get<std::string>())
        << "decodings line " << i + 1;
  }
}

TEST_F(QwenTokenizerTest, SpecialTokensAndSkip) {
  auto ids = tok().Encode("<|im_start|>user\nhi<|im_end|>\n");
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 4u);
  EXPECT_EQ(ids->front(), 151644);
  auto with = tok().Decode(*ids);
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(*with, "<|im_start|>user\nhi<|im_end|>\n");
  auto without = tok().Decode(*ids, {.skip_special_tokens = true});
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(*without, "user\nhi\n");
  // Non-special added tokens survive skip_special_tokens.
  auto tc = tok().Encode("<tool_call>x</tool_call>");
  ASSERT_TRUE(tc.ok());
  EXPECT_EQ(tc->front(), 151657);
  EXPECT_EQ(*tok().Decode(*tc, {.skip_special_tokens = true}), "<tool_call>x</tool_call>");
}

// Qwen2.5's embedding has 151936 rows for 151665 tokens: a sampled padding id has no text.
TEST_F(QwenTokenizerTest, UnknownIdsAreAnErrorUnlessSkipped) {
  auto ids = tok().Encode("hi");
  ASSERT_TRUE(ids.ok());
  std::vector<TokenId> with_padding = *ids;
  with_padding.push_back(151909);
  with_padding.insert(with_padding.begin(), 151700);
  EXPECT_EQ(tok().Decode(with_padding).status().code(), absl::StatusCode::kInvalidArgument);
  auto skipped = tok().Decode(with_padding, {.skip_unknown_ids = true});
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_EQ(*skipped, "hi");
  EXPECT_FALSE(tok().Decode({-1}, {.skip_unknown_ids = true}).ok());
}

TEST_F(QwenTokenizerTest, SplitSpecialTokensEncodesThemAsText) {
  auto ids = tok().Encode("<|im_end|><tool_call>", {.split_special_tokens = true});
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ::testing::Not(::testing::Contains(151645)));
  EXPECT_EQ(ids->back(), 151657);
  EXPECT_EQ(*tok().Decode(*ids), "<|im_end|><tool_call>");
}

TEST_F(QwenTokenizerTest, RoundTripsAndLongInputs) {
  const std::vector<std::string> texts = {
      "", " ", "\n\n\n", "   leading and trailing   ", std::string(5000, 'a'),
      std::string(3000, ' ') + "x", "日本語のテキストと emoji 👩‍👩‍👧 and  tabs\t\t.",
      "{\"name\": \"cd\", \"arguments\": {\"folder\": \"document\"}}", "1234567890.5e-7",
      "I'M 'S 's 'll 'LL won't", "\r\n\r\n  \r \u00a0\u3000x"};
  for (const std::string& text : texts) {
    auto ids = tok().Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    auto back = tok().Decode(*ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
  }
  EXPECT_TRUE(tok().Encode("")->empty());
}

TEST_F(QwenTokenizerTest, PreTokenizerFollowsQwenRegexWithJsSemantics) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*tok().PreTokenize("Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(*tok().PreTokenize("I'M 2024  x\n\n"), (V{"I", "'M", " ", "2", "0", "2", "4", " ", " x", "\n\n"}));
  EXPECT_EQ(*tok().PreTokenize("a  \tb"), (V{"a", "  ", "\tb"}));
  // U+FEFF is whitespace for the reference (JS \s), so it joins the following space.
  EXPECT_EQ(*tok().PreTokenize("\xef\xbb\xbf  x"), (V{"\xef\xbb\xbf ", " x"}));
  // U+0085 is not JS whitespace: it is punctuation-like and does not join the space.
  EXPECT_EQ(*tok().PreTokenize("a\xc2\x85  b"), (V{"a", "\xc2\x85", " ", " b"}));
  // Case-insensitive contractions are ASCII-only ("'\u017f" is not "'s").
  EXPECT_EQ(*tok().PreTokenize("it'S"), (V{"it", "'S"}));
  EXPECT_EQ(*tok().PreTokenize("it'\xc5\xbfx"), (V{"it", "'\xc5\xbfx"}));
}

TEST_F(QwenTokenizerTest, NfcNormalization) {
  // "e" + COMBINING ACUTE ACCENT is normalized to U+00E9 before BPE.
  auto decomposed = tok().Encode("caf\x65\xcc\x81");
  auto composed = tok().Encode("caf\xc3\xa9");
  ASSERT_TRUE(decomposed.ok() && composed.ok());
  EXPECT_EQ(*decomposed, *composed);
}

TEST_F(QwenTokenizerTest, InvalidUtf8BytesDecodeToReplacementChar) {
  // Token for the single byte 0xE6 (first byte of a 3-byte sequence) alone is incomplete.
  auto ids = tok().Encode("\xe6\x97\xa5");  // 日
  ASSERT_TRUE(ids.ok());
  auto bytes = tok().DecodeBytes(*ids);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, "\xe6\x97\xa5");
  const auto byte_e6 = tok().TokenToId("\xc3\xa6");  // byte-level char for 0xE6
  const auto byte_41 = tok().TokenToId("A");
  ASSERT_TRUE(byte_e6.has_value() && byte_41.has_value());
  auto text = tok().Decode({*byte_e6, *byte_41, *byte_e6});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "\xef\xbf\xbd" "A" "\xef\xbf\xbd");
}

TEST_F(QwenTokenizerTest, RejectsBadInput) {
  auto bad = tok().Encode("abc\xff");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("UTF-8"));
  EXPECT_EQ(tok().Decode({-1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tok().Decode({tok().vocab_size()}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(QwenTokenizerTest, ConcurrentEncodeIsConsistent) {
  const std::string text =
      "The quick brown fox jumps over the lazy dog 12345 times; <|im_end|> ünïcödé 文字";
  const std::vector<TokenId> expected = *tok().Encode(text);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto ids = tok().Encode(text + std::to_string(i % 7 + t));
        auto back = tok().Decode(*ids);
        if (!back.ok() || *back != text + std::to_string(i % 7 + t)) ++mismatches;
        auto again = tok().Encode(text);
        if (*again != expected) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// A small hand-written tokenizer.json exercises the loader without the fixtures.
std::string TinyTokenizerJson(const std::string& merges_json) {
  nlohmann::json vocab = nlohmann::json::object();
  // Byte-level alphabet for printable ASCII is the identity.
  int id = 0;
  for (char c = '!'; c <= '~'; ++c) vocab[std::string(1, c)] = id++;
  vocab["\xc4\xa0"] = id++;  // "Ġ" (space)
  vocab["ab"] = id++;
  vocab["abc"] = id++;
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", id}, {"content", "<eos>"}, {"special", true}},
        {{"id", id + 1}, {"content", "<eos>x"}, {"special", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", "\\s+|\\S+"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::parse(merges_json)}}}};
  return j.dump();
}

TEST(TokenizerLoadTest, BothMergeFormsAndLongestAddedMatch) {
  for (const char* merges : {R"(["a b", "ab c"])", R"([["a","b"],["ab","c"]])"}) {
    auto t = Tokenizer::FromJson(TinyTokenizerJson(merges));
    ASSERT_TRUE(t.ok()) << t.status();
    const TokenId abc = *(*t)->TokenToId("abc");
    const TokenId ab = *(*t)->TokenToId("ab");
    EXPECT_THAT(*(*t)->Encode("abc"), ElementsAre(abc));
    EXPECT_THAT(*(*t)->Encode("abab"), ElementsAre(ab, ab));
    // "<eos>x" is the longest match at that position.
    const TokenId eos = *(*t)->TokenToId("<eos>");
    const TokenId eosx = *(*t)->TokenToId("<eos>x");
    EXPECT_THAT(*(*t)->Encode("<eos>x<eos>"), ElementsAre(eosx, eos));
    EXPECT_EQ(*(*t)->Decode(*(*t)->Encode("ab c  abc")), "ab c  abc");
  }
}

TEST(TokenizerLoadTest, MalformedFilesGiveClearErrors) {
  struct Case {
    std::string json;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{not json", "not valid JSON"},
      {"[]", "expected a JSON object"},
      {"{}", "model: missing"},
      {R"({"model": {"type": "WordPiece", "vocab": {}}})", "model.type"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}})", "model.merges"},
      {R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})", "model.vocab"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
       "missing from the vocab"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["abc"]}})", "is not \"a b\""},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})", "neither"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "NFKC"}})",
       "unsupported normalizer"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
           "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})",
       "does not compile"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1}]})",
       "added_tokens"},
  };
  for (const Case& c : cases) {
    auto t = Tokenizer::FromJson(c.json);
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(t.status().message(), HasSubstr(c.message)) << c.json;
  }
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(UnicodeTest, LossyDecodingMatchesWhatwg) {
  // Maximal subparts: E0 80 is two errors (80 cannot follow E0), F0 9F 98 truncated is one.
  EXPECT_EQ(Utf8Lossy("a\xe0\x80z"), "a\xef\xbf\xbd\xef\xbf\xbdz");
  EXPECT_EQ(Utf8Lossy("a\xf0\x9f\x98z"), "a\xef\xbf\xbdz");
  EXPECT_EQ(Utf8Lossy("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  EXPECT_EQ(Utf8Lossy("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(Utf8Lossy("ok \xf0\x9f\x98\x80"), "ok \xf0\x9f\x98\x80");
}

TEST(UnicodeTest, Nfc) {
  EXPECT_EQ(NormalizeNfc("e\xcc\x81"), "\xc3\xa9");                       // é
  EXPECT_EQ(NormalizeNfc("\xe1\x84\x80\xe1\x85\xa1"), "\xea\xb0\x80");    // Hangul L+V -> 가
  EXPECT_EQ(NormalizeNfc("\xea\xb0\x80\xe1\x86\xa8"), "\xea\xb0\x81");    // LV+T -> 각
  EXPECT_EQ(NormalizeNfc("\xe2\x84\xab"), "\xc3\x85");                    // Angstrom -> Å
  // Reordering: a + dot below (220) after acute (230) -> ạ́ composes a+dot below first.
  EXPECT_EQ(NormalizeNfc("a\xcc\x81\xcc\xa3"), "\xe1\xba\xa1\xcc\x81");
  EXPECT_EQ(NormalizeNfc("plain ascii"), "plain ascii");
}

}  // namespace
}  // namespace envtune
