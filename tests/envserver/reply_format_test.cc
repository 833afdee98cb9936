// The reply-format registry (envserver/reply_format.h): every format and decoder mode has one
// name that round-trips, decodes a reply written in its own ground-truth style into the same
// calls, and renders the texts an episode shows in its own way.
#include "envserver/reply_format.h"

#include <string>
#include <vector>

#include "envserver/checker.h"
#include "envserver/prompts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = DecodeResult::Kind;

constexpr v1::OutputFormat kEpisodeFormats[] = {v1::OUTPUT_FORMAT_ENVTUNING, v1::OUTPUT_FORMAT_BFCL_PROMPTING,
                                                v1::OUTPUT_FORMAT_HERMES};
constexpr DecodeMode kModes[] = {DecodeMode::kBfclPrompting, DecodeMode::kBfclFunctionCalling,
                                 DecodeMode::kEnvTuning};

TEST(ReplyFormatRegistry, EveryFormatRoundTripsItsName) {
  for (v1::OutputFormat f : kEpisodeFormats) {
    const ReplyFormat& format = ReplyFormatFor(f);
    EXPECT_EQ(format.name(), OutputFormatName(f));
    absl::StatusOr<v1::OutputFormat> parsed = ParseOutputFormat(format.name());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, f);
  }
  for (DecodeMode m : kModes) {
    const ReplyDecoder& decoder = ReplyDecoderFor(m);
    EXPECT_EQ(decoder.name(), DecodeModeName(m));
    absl::StatusOr<DecodeMode> parsed = ParseDecodeMode(decoder.name());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, m);
  }
  // A format that is also a decoder mode is one object under both keys.
  EXPECT_EQ(&ReplyDecoderFor(DecodeMode::kEnvTuning), &ReplyFormatFor(v1::OUTPUT_FORMAT_ENVTUNING));
  EXPECT_EQ(&ReplyDecoderFor(DecodeMode::kBfclPrompting), &ReplyFormatFor(v1::OUTPUT_FORMAT_BFCL_PROMPTING));
  // UNSPECIFIED and values outside the enum read as the default.
  EXPECT_EQ(ReplyFormatFor(v1::OUTPUT_FORMAT_UNSPECIFIED).name(), "envtuning");
  EXPECT_EQ(ReplyFormatFor(static_cast<v1::OutputFormat>(99)).name(), "envtuning");
  // bfcl_fc decodes but is no episode format; hermes is an episode format but no decoder mode.
  EXPECT_FALSE(ParseOutputFormat("bfcl_fc").ok());
  EXPECT_FALSE(ParseDecodeMode("hermes").ok());
  EXPECT_EQ(OutputFormatNames(), "envtuning, bfcl_prompting, hermes");
  EXPECT_EQ(DecodeModeNames(), "bfcl_prompting, bfcl_fc, envtuning");
}

// One reply per format, written the way its ground-truth replies are, making the same two calls.
struct StyleCase {
  const ReplyDecoder* decoder;
  std::string reply;
  std::vector<std::string> calls;  // as the decoder renders them
};

std::vector<StyleCase> GroundTruthStyleReplies() {
  return {
      {&ReplyFormatFor(v1::OUTPUT_FORMAT_ENVTUNING),
       "<think>To do this I call cd and mean.</think>\n<tool_call>[{\"name\": \"cd\", \"arguments\": "
       "{\"folder\": \"doc\"}}, {\"name\": \"mean\", \"arguments\": {\"numbers\": [1, 2.5]}}]</tool_call>",
       {"cd(folder='doc')", "mean(numbers=[1, 2.5])"}},
      {&ReplyFormatFor(v1::OUTPUT_FORMAT_BFCL_PROMPTING),
       "[cd(folder='doc'), mean(numbers=[1, 2.5])]",
       {"cd(folder='doc')", "mean(numbers=[1, 2.5])"}},
      {&ReplyFormatFor(v1::OUTPUT_FORMAT_HERMES),
       "<tool_call>\n{\"name\": \"cd\", \"arguments\": {\"folder\": \"doc\"}}\n</tool_call>\n"
       "<tool_call>\n{\"name\": \"mean\", \"arguments\": {\"numbers\": [1, 2.5]}}\n</tool_call>",
       {"cd(folder='doc')", "mean(numbers=[1, 2.5])"}},
      {&ReplyDecoderFor(DecodeMode::kBfclFunctionCalling),
       R"([{"cd": "{\"folder\": \"doc\"}"}, {"mean": {"numbers": [1, 2.5]}}])",
       {"cd(folder='doc')", "mean(numbers=[1, 2.5])"}},
  };
}

TEST(ReplyFormatRegistry, EveryFormatDecodesItsOwnGroundTruthStyle) {
  for (const StyleCase& c : GroundTruthStyleReplies()) {
    DecodeResult r = c.decoder->Decode(c.reply);
    EXPECT_EQ(r.kind, Kind::kCalls) << c.decoder->name() << ": " << r.message;
    EXPECT_EQ(r.calls, c.calls) << c.decoder->name();
    // The checker's input preparation decodes through the same object.
    EXPECT_THAT(PrepareTurnSteps(*c.decoder, {c.reply, ""}), ElementsAre(c.calls)) << c.decoder->name();
  }
}

TEST(ReplyFormatRegistry, ModeDecodersMatchDecodeModelOutput) {
  for (DecodeMode m : kModes) {
    for (const StyleCase& c : GroundTruthStyleReplies()) {
      for (const std::string& text : {c.reply, std::string(), std::string("I cannot do that.")}) {
        DecodeResult via_registry = ReplyDecoderFor(m).Decode(text);
        DecodeResult direct = DecodeModelOutput(m, text);
        EXPECT_EQ(via_registry.kind, direct.kind) << DecodeModeName(m) << " on " << text;
        EXPECT_EQ(via_registry.calls, direct.calls) << DecodeModeName(m) << " on " << text;
        EXPECT_EQ(via_registry.message, direct.message) << DecodeModeName(m) << " on " << text;
      }
    }
  }
}

// A reply in another format's style is not mistaken for calls by the envtuning and Hermes
// decoders (a prompting list is prose to both).
TEST(ReplyFormatRegistry, ProseAndForeignStylesAreNoCalls) {
  const std::string prompting = "[cd(folder='doc')]";
  EXPECT_EQ(ReplyFormatFor(v1::OUTPUT_FORMAT_HERMES).Decode(prompting).kind, Kind::kAnswer);
  EXPECT_EQ(ReplyFormatFor(v1::OUTPUT_FORMAT_ENVTUNING).Decode(prompting).kind, Kind::kFormatError);
  EXPECT_EQ(ReplyFormatFor(v1::OUTPUT_FORMAT_BFCL_PROMPTING).Decode("I cannot do that.").kind, Kind::kError);
}

PyValue Doc(const std::string& name) {
  PyDict params;
  params.Set("type", PyValue::Str("dict"));
  params.Set("properties", PyValue::Dict(PyDict()));
  PyDict doc;
  doc.Set("name", PyValue::Str(name));
  doc.Set("description", PyValue::Str("Does " + name + "."));
  doc.Set("parameters", PyValue::Dict(std::move(params)));
  return PyValue::Dict(std::move(doc));
}

TEST(ReplyFormatRegistry, EpisodeTextsPerFormat) {
  const PyList docs = {Doc("pwd")};
  const ReplyFormat& envtuning = ReplyFormatFor(v1::OUTPUT_FORMAT_ENVTUNING);
  const ReplyFormat& prompting = ReplyFormatFor(v1::OUTPUT_FORMAT_BFCL_PROMPTING);
  const ReplyFormat& hermes = ReplyFormatFor(v1::OUTPUT_FORMAT_HERMES);
  const std::string functions = DocsJsonIndent4(WithPython3Suffix(docs));

  EXPECT_EQ(envtuning.SystemPrompt(docs), EnvTuningSystemPrompt(functions));
  EXPECT_EQ(prompting.SystemPrompt(docs), BfclSystemPrompt(functions));
  EXPECT_EQ(hermes.SystemPrompt(docs), std::nullopt);

  JsonDumpsOptions opts;
  opts.ensure_ascii = false;
  EXPECT_EQ(envtuning.ToolJson(docs[0]), docs[0].JsonDumps(opts));
  EXPECT_EQ(prompting.ToolJson(docs[0]), docs[0].JsonDumps(opts));
  EXPECT_EQ(hermes.ToolJson(docs[0]), HermesToolJson(docs[0]));

  EXPECT_EQ(envtuning.RevealMessage(docs), EnvTuningRevealMessage(docs));
  EXPECT_EQ(prompting.RevealMessage(docs), BfclRevealMessage(docs));
  EXPECT_EQ(hermes.RevealMessage(docs), kRevealSentence);

  EXPECT_TRUE(envtuning.NoCallIsToolAttempt());
  EXPECT_FALSE(prompting.NoCallIsToolAttempt());
  EXPECT_FALSE(hermes.NoCallIsToolAttempt());

  EXPECT_EQ(envtuning.FormatErrorObservation("bad"), FormatErrorObservation("bad", true));
  EXPECT_EQ(hermes.FormatErrorObservation("bad"), FormatErrorObservation("bad", false));
  EXPECT_THAT(envtuning.FormatErrorObservation("bad"), HasSubstr("<think>"));
}

TEST(ReplyFormatRegistry, ResultsObservationPerFormat) {
  const std::vector<ShownResult> shown = {{"pwd()", "{\"current_working_directory\": \"/a\"}"},
                                          {"ls()", "{\"current_directory_content\": []}"}};
  google::protobuf::RepeatedPtrField<v1::ChatMessage> envtuning;
  ReplyFormatFor(v1::OUTPUT_FORMAT_ENVTUNING).AddResultsObservation(shown, 1 << 20, &envtuning);
  ASSERT_EQ(envtuning.size(), 1);  // METHOD.md §2.5: one user message holding every result
  EXPECT_EQ(envtuning[0].role(), "user");
  EXPECT_EQ(envtuning[0].content(), ToolResultsObservation({shown[0].result, shown[1].result}));
  // Capped at the observation limit.
  google::protobuf::RepeatedPtrField<v1::ChatMessage> capped;
  ReplyFormatFor(v1::OUTPUT_FORMAT_ENVTUNING).AddResultsObservation(shown, 20, &capped);
  ASSERT_EQ(capped.size(), 1);
  EXPECT_THAT(capped[0].content(), HasSubstr("...[truncated "));

  for (v1::OutputFormat f : {v1::OUTPUT_FORMAT_BFCL_PROMPTING, v1::OUTPUT_FORMAT_HERMES}) {
    google::protobuf::RepeatedPtrField<v1::ChatMessage> out;
    ReplyFormatFor(f).AddResultsObservation(shown, 1 << 20, &out);
    ASSERT_EQ(out.size(), 2) << OutputFormatName(f);  // one tool message per call, named by it
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(out[i].role(), "tool");
      EXPECT_EQ(out[i].name(), shown[i].call);
      EXPECT_EQ(out[i].content(), shown[i].result);
    }
  }
}

}  // namespace
}  // namespace envtune
