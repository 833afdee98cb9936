// Decoders: BFCL prompting mode against the upstream decoder run under CPython 3.11
// (testdata/decode_cases.jsonl from gen_pyparse_cases.py), FC mode, and the envtuning format.
#include "envserver/decode.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "envserver/pyvalue.h"
#include "envserver/reply_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/envserver/test_env.h"

namespace envtune {
namespace {

using namespace test_env;  // NOLINT(build/namespaces)

using Kind = DecodeResult::Kind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DecodeBfclPrompting, MatchesUpstreamDecoder) {
  std::ifstream in(TestData("decode_cases.jsonl"));
  if (!in) GTEST_SKIP() << "no " << TestData("decode_cases.jsonl");
  // Inputs where this implementation deliberately differs (documented in decode.h): bytes and
  // complex values are decode errors instead of being rendered. (Big ints match upstream.)
  const std::vector<std::string> deviations = {"[f(a=b'x')]", "[f(a=1j)]"};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    absl::StatusOr<PyValue> c = PyValue::FromJson(line);
    ASSERT_TRUE(c.ok()) << line;
    const std::string& input = c->dict().Find("input")->as_str();
    ++n;
    absl::StatusOr<std::vector<std::string>> got = DecodeBfclPrompting(input);
    if (std::find(deviations.begin(), deviations.end(), input) != deviations.end()) {
      EXPECT_FALSE(got.ok()) << input;
      continue;
    }
    if (c->dict().Find("error") != nullptr) {
      EXPECT_FALSE(got.ok()) << "input: " << input << " decoded to " << (got.ok() ? testing::PrintToString(*got) : "");
      if (!got.ok() && c->dict().Find("syntax")->as_bool()) {
        EXPECT_EQ(got.status().message(), c->dict().Find("message")->as_str()) << "input: " << input;
      }
      continue;
    }
    ASSERT_TRUE(got.ok()) << "input: " << input << ": " << got.status();
    std::vector<std::string> expected;
    for (const PyValue& v : c->dict().Find("calls")->items()) expected.push_back(v.as_str());
    EXPECT_EQ(*got, expected) << "input: " << input;
  }
  EXPECT_GT(n, 100);
}

TEST(DecodeBfclPrompting, SpecExamples) {
  struct Case {
    const char* in;
    std::vector<std::string> out;
  };
  const Case cases[] = {
      {"[f(a=1)]", {"f(a=1)"}},
      {"f(a=1), g(b=\"x\")", {"f(a=1)", "g(b='x')"}},
      {"[f(a=+5)]", {"f(a=-5)"}},
      {"[f(a=foo)]", {"f(a='foo')"}},
      {"[f(a=g(1,2))]", {"f(a='g(1, 2)')"}},
      {"[f(a=1+2)]", {"f(a=3)"}},
      {"[__import__(\"os\").system(\"ls\")]", {"system()"}},
      {"[f(**kw)]", {"f(None='kw')"}},
      {"[f(a={'k': {}})]", {"f(a=k())"}},
      {"[f(a={1: 2})]", {"f(a={'1': 2})"}},
      {"[f(a=1e400)]", {"f(a=inf)"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<std::string>> got = DecodeBfclPrompting(c.in);
    ASSERT_TRUE(got.ok()) << c.in << ": " << got.status();
    EXPECT_EQ(*got, c.out) << c.in;
  }
  EXPECT_FALSE(DecodeBfclPrompting("[f(a={})]").ok());
  absl::StatusOr<std::vector<std::string>> set = DecodeBfclPrompting("[f(a={1, 2})]");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().message(), "Unsupported AST type: <class 'ast.Set'>");
  DecodeResult none = DecodeModelOutput(DecodeMode::kBfclPrompting, "");
  EXPECT_EQ(none.kind, Kind::kNoCall);
  DecodeResult prose = DecodeModelOutput(DecodeMode::kBfclPrompting, "I cannot do that.");
  EXPECT_EQ(prose.kind, Kind::kError);
}

TEST(DecodeBfclPrompting, NeverEvaluatesCode) {
  // BFCL would eval these; we refuse instead of running anything.
  for (const char* s : {"[f(a=__import__('os').system('id') + 1)]", "[f(a=open('x').read() * 2)]",
                        "[f(a=(lambda: 1)() + 1)]", "[f(a=9**9**9)]", "[f(a='x' * 10**12)]"}) {
    EXPECT_FALSE(DecodeBfclPrompting(s).ok()) << s;
  }
}

TEST(DecodeBfclFunctionCalling, RendersReprWithoutSpaces) {
  absl::StatusOr<std::vector<std::string>> got = DecodeBfclFunctionCalling(
      R"([{"cd": "{\"folder\": \"doc\"}"}, {"f": {"a": 1, "b": [true, null], "c": 1.0, "d": {"k": "v"}}}])");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre("cd(folder='doc')", "f(a=1,b=[True, None],c=1.0,d={'k': 'v'})"));
  absl::StatusOr<std::vector<std::string>> single = DecodeBfclFunctionCalling(R"({"ls": "{}"})");
  ASSERT_TRUE(single.ok());
  EXPECT_THAT(*single, ElementsAre("ls()"));
  EXPECT_EQ(DecodeModelOutput(DecodeMode::kBfclFunctionCalling, "").kind, Kind::kNoCall);
  EXPECT_EQ(DecodeModelOutput(DecodeMode::kBfclFunctionCalling, "Sure, done.").kind, Kind::kError);
  EXPECT_EQ(DecodeModelOutput(DecodeMode::kBfclFunctionCalling, R"([{"f": "[1]"}])").kind, Kind::kError);
}

TEST(DecodeEnvTuning, ToolCallsAndAnswers) {
  DecodeResult r = DecodeEnvTuning(
      "<think>plan</think>\n<tool_call>[{\"name\": \"cd\", \"arguments\": {\"folder\": \"doc\"}}, "
      "{\"name\": \"ls\", \"arguments\": {\"a\": true}}]</tool_call>");
  ASSERT_EQ(r.kind, Kind::kCalls) << r.message;
  EXPECT_THAT(r.calls, ElementsAre("cd(folder='doc')", "ls(a=True)"));
  EXPECT_EQ(r.think, "plan");

  r = DecodeEnvTuning("<think>x</think><tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1.5, \"b\": \"it's\", \"c\": [1, {\"k\": null}]}}</tool_call>");
  ASSERT_EQ(r.kind, Kind::kCalls);
  EXPECT_THAT(r.calls, ElementsAre("f(a=1.5, b=\"it's\", c=[1, {'k': None}])"));

  r = DecodeEnvTuning("  <think>done</think>\n\n<answer> All set. </answer>\n");
  ASSERT_EQ(r.kind, Kind::kAnswer);
  EXPECT_EQ(r.message, "All set.");
}

TEST(DecodeEnvTuning, FormatErrors) {
  struct Case {
    const char* in;
    const char* needle;
  };
  const Case cases[] = {
      {"<answer>hi</answer>", "missing <think>"},
      {"<think>a</think><think>b</think><answer>x</answer>", "2 <think> blocks"},
      {"<think>a</think><tool_call>[]</tool_call><tool_call>[]</tool_call>", "2 <tool_call> blocks"},
      {"<think>a</think><answer>x</answer><answer>y</answer>", "2 <answer> blocks"},
      {"<think>a</think><tool_call>[]</tool_call><answer>x</answer>", "both a <tool_call> block and an <answer>"},
      {"<think>a</think>", "neither was found"},
      {"<think>a</think>hello<answer>x</answer>", "text outside"},
      {"<think>a</think><answer>x</answer> bye", "text outside"},
      {"<answer>x</answer><think>a</think>", "must come first"},
      {"<think>a</think><tool_call>[{\"name\": \"f\",}]</tool_call>", "does not hold valid JSON"},
      {"<think>a", "not closed"},
      {"", "missing <think>"},
  };
  for (const Case& c : cases) {
    DecodeResult r = DecodeEnvTuning(c.in);
    EXPECT_EQ(r.kind, Kind::kFormatError) << c.in;
    EXPECT_THAT(r.message, HasSubstr(c.needle)) << c.in;
    EXPECT_THAT(r.message, HasSubstr("Format error")) << c.in;
  }
}

TEST(DecodeEnvTuning, UnusableCallsEndTheTurn) {
  for (const char* body : {"[]", "42", "\"f\"", "[{\"arguments\": {}}]", "[{\"name\": \"a b\"}]",
                           "[{\"name\": \"f\", \"arguments\": [1]}]", "[1]",
                           "[{\"name\": \"f\", \"arguments\": {\"a-b\": 1}}]"}) {
    DecodeResult r = DecodeEnvTuning(std::string("<think>t</think><tool_call>") + body + "</tool_call>");
    EXPECT_EQ(r.kind, Kind::kNoCall) << body;
  }
  DecodeResult no_args = DecodeEnvTuning("<think>t</think><tool_call>[{\"name\": \"pwd\"}]</tool_call>");
  ASSERT_EQ(no_args.kind, Kind::kCalls);
  EXPECT_THAT(no_args.calls, ElementsAre("pwd()"));
}

// One name per reply format and decoder mode; names round-trip, anything else (the former
// aliases "bfcl", "prompting" and "fc" included) is refused with the known names.
TEST(ReplyFormatTest, OneNamePerFormatAndMode) {
  for (v1::OutputFormat f :
       {v1::OUTPUT_FORMAT_ENVTUNING, v1::OUTPUT_FORMAT_BFCL_PROMPTING, v1::OUTPUT_FORMAT_HERMES}) {
    absl::StatusOr<v1::OutputFormat> parsed = ParseOutputFormat(OutputFormatName(f));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, f);
  }
  EXPECT_EQ(OutputFormatName(v1::OUTPUT_FORMAT_UNSPECIFIED), "envtuning");
  for (DecodeMode m :
       {DecodeMode::kBfclPrompting, DecodeMode::kBfclFunctionCalling, DecodeMode::kEnvTuning}) {
    absl::StatusOr<DecodeMode> parsed = ParseDecodeMode(DecodeModeName(m));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(DecodeModeName(DecodeMode::kBfclFunctionCalling), "bfcl_fc");
  for (const char* old : {"bfcl", "prompting", "fc", "Hermes", ""}) {
    absl::StatusOr<v1::OutputFormat> format = ParseOutputFormat(old);
    EXPECT_EQ(format.status().code(), absl::StatusCode::kInvalidArgument) << old;
    EXPECT_EQ(format.status().message(),
              absl::StrCat("unknown reply format '", old,
                           "' (one of: envtuning, bfcl_prompting, hermes)"));
    absl::StatusOr<DecodeMode> mode = ParseDecodeMode(old);
    EXPECT_EQ(mode.status().message(),
              absl::StrCat("unknown decoder mode '", old,
                           "' (one of: bfcl_prompting, bfcl_fc, envtuning)"));
  }
}

}  // namespace
}  // namespace envtune
