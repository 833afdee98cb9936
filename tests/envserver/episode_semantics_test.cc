// Episode engine semantics (METHOD.md §2.2-2.6, §4, §5.3-5.4; checker.md A.4, A.6, C): every
// branch of the per-step flow, reward formulas with hand-computed values, miss_func reveal,
// cannot-serve turns, step limits, augmentation decisions, prompts and blob handling.
#include "envserver/episode.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "envserver/prompts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "openssl/sha.h"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using testing_util::Answer;
using testing_util::HaveData;
using testing_util::ToolCall;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Sha256Hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

class EpisodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveData()) return;
    absl::StatusOr<TaskCatalog> c = TaskCatalog::Load(testing_util::DataDir() + "/bfcl");
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = new TaskCatalog(*std::move(c));
    engine_ = new EpisodeEngine(catalog_, EpisodeEngineOptions{});
  }
  void SetUp() override {
    if (catalog_ == nullptr) GTEST_SKIP() << "BFCL data not found under " << testing_util::DataDir();
  }

  static v1::EpisodeOptions Opts(v1::OutputFormat f = v1::OUTPUT_FORMAT_ENVTUNING) {
    v1::EpisodeOptions o;
    o.set_output_format(f);
    return o;
  }
  static v1::StartEpisodeResponse StartOk(const std::string& id, const v1::EpisodeOptions& o) {
    absl::StatusOr<v1::StartEpisodeResponse> r = engine_->Start(id, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::StartEpisodeResponse{};
  }
  // Steps and keeps the blob.
  v1::StepResponse StepOk(const std::string& reply) {
    absl::StatusOr<v1::StepResponse> r = engine_->Step(blob_, reply);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    blob_ = r->episode_state();
    return *r;
  }
  void Begin(const std::string& id, const v1::EpisodeOptions& o = Opts()) { blob_ = StartOk(id, o).episode_state(); }

  static TaskCatalog* catalog_;
  static EpisodeEngine* engine_;
  std::string blob_;
};
TaskCatalog* EpisodeTest::catalog_ = nullptr;
EpisodeEngine* EpisodeTest::engine_ = nullptr;

// multi_turn_base_42: GorillaFileSystem + MathAPI, 3 turns: touch / echo / wc.
const char kTouch[] = R"([{"name": "touch", "arguments": {"file_name": "Notes2023.txt"}}])";
const char kEcho[] =
    R"([{"name": "echo", "arguments": {"content": "Study diligently, practice programming, master algorithms.", "file_name": "Notes2023.txt"}}])";
const char kWc[] = R"([{"name": "wc", "arguments": {"file_name": "Notes2023.txt", "mode": "c"}}])";
const char kLs[] = R"([{"name": "ls", "arguments": {}}])";

TEST_F(EpisodeTest, BfclPromptingSystemPromptIsByteExact) {
  v1::StartEpisodeResponse r = StartOk("multi_turn_base_42", Opts(v1::OUTPUT_FORMAT_BFCL_PROMPTING));
  ASSERT_EQ(r.messages_size(), 2);
  EXPECT_EQ(r.messages(0).role(), "system");
  // Reference: CPython 3.11, BFCL's template + json.dumps(docs, indent=4) with the suffix.
  EXPECT_EQ(r.messages(0).content().size(), 39878u);
  EXPECT_EQ(Sha256Hex(r.messages(0).content()), "08701d27ddd3ee56158d50a0a6b035069003cf98ad325ba37d33f157e1d499e7");
  EXPECT_EQ(r.messages(1).role(), "user");
  EXPECT_EQ(r.messages(1).content(),
            "In my existing folder called 'Lectures', I'd like to set up a new file called 'Notes2023.txt'.");
  EXPECT_EQ(r.num_turns(), 3u);
  EXPECT_FALSE(r.augmented());
}

TEST_F(EpisodeTest, EnvTuningPromptDescribesFormatAndListsDocs) {
  v1::StartEpisodeResponse r = StartOk("multi_turn_base_42", Opts());
  ASSERT_EQ(r.messages_size(), 2);
  const std::string& sys = r.messages(0).content();
  for (const char* needle : {"<think></think>", "<tool_call></tool_call>", "<answer></answer>", "JSON list",
                             "Here is a list of functions in JSON format that you can invoke.\n[\n    {"}) {
    EXPECT_THAT(sys, HasSubstr(needle));
  }
  const size_t n_docs = catalog_->FunctionDocs("GorillaFileSystem").items().size() +
                        catalog_->FunctionDocs("MathAPI").items().size();
  EXPECT_EQ(static_cast<size_t>(r.tools_json_size()), n_docs);
  size_t suffixes = 0;
  for (size_t p = sys.find(kPython3Suffix); p != std::string::npos; p = sys.find(kPython3Suffix, p + 1)) ++suffixes;
  EXPECT_EQ(suffixes, n_docs);
}

TEST_F(EpisodeTest, GroundTruthRepliesScoreEveryTurnAndRewardsAreHandComputed) {
  Begin("multi_turn_base_42");
  const char* calls[] = {kTouch, kEcho, kWc};
  for (int t = 0; t < 3; ++t) {
    v1::StepResponse s = StepOk(ToolCall(calls[t]));
    EXPECT_EQ(s.step_signal(), -1);
    EXPECT_FALSE(s.turn_ended());
    ASSERT_EQ(s.calls_size(), 1);
    ASSERT_EQ(s.observation_size(), 1);
    EXPECT_EQ(s.observation(0).role(), "user");
    EXPECT_EQ(s.observation(0).content(), ToolResultsObservation({s.calls(0).result()}));
    v1::StepResponse a = StepOk(Answer());
    EXPECT_TRUE(a.turn_ended());
    EXPECT_EQ(a.turn_score().end_reason(), v1::TURN_END_REASON_ANSWER);
    EXPECT_TRUE(a.turn_score().state_ok());
    EXPECT_TRUE(a.turn_score().response_ok());
    EXPECT_EQ(a.turn_score().score(), 1.0);
    EXPECT_EQ(a.episode_ended(), t == 2);
    if (t < 2) {
      ASSERT_EQ(a.observation_size(), 1);
      EXPECT_EQ(a.observation(0).content(), catalog_->Find("multi_turn_base_42")->questions[t + 1][0].content);
    } else {
      const v1::RewardComponents& c = a.components();
      EXPECT_EQ(c.clean_steps(), 3u);
      EXPECT_EQ(c.error_steps(), 0u);
      EXPECT_EQ(c.format_errors(), 0u);
      EXPECT_EQ(c.entries(), 6u);  // 3 steps + 3 finished turns
      EXPECT_EQ(c.progress(), 1.0);
      EXPECT_EQ(c.stage1_reward(), 2.0);
      EXPECT_EQ(a.episode_reward(), 1.0);
    }
  }
  absl::StatusOr<v1::StepResponse> after = engine_->Step(blob_, Answer());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(after.status().message(), HasSubstr("already ended"));
}

TEST_F(EpisodeTest, ToolResultWrapperIsExact) {
  EXPECT_EQ(ToolResultsObservation({"a\xc3\xa9", "{\"x\": 1}"}),
            "Here are the function's execution results. Execution results:[\"a\xc3\xa9\", \"{\\\"x\\\": 1}\"]\n If you "
            "believe you have already fulfilled the user's request, please first outline your thought process in a "
            "<think></think>pair, and then give a brief summary of the result in an <answer></answer> pair. "
            "Otherwise, you should continue to call until fulfilling user's request.");
}

struct EndCase {
  const char* name;
  std::vector<std::string> replies;  // the last one ends turn 0
  v1::TurnEndReason end_reason;
  double score;
  bool executed;
  uint32_t format_errors, clean, errors;
};

TEST_F(EpisodeTest, TurnEndingBranchesOnANormalTurn) {
  const std::string bad = "no tags at all";
  const EndCase cases[] = {
      {"answer without calls", {Answer()}, v1::TURN_END_REASON_ANSWER, 0.0, false, 0, 0, 0},
      {"empty call list", {ToolCall("[]")}, v1::TURN_END_REASON_NO_CALL, 0.0, false, 0, 0, 0},
      {"unusable call (no name)",
       {ToolCall(R"([{"arguments": {}}])")},
       v1::TURN_END_REASON_NO_CALL,
       0.0,
       false,
       0,
       0,
       0},
      {"call then answer",
       {ToolCall(kTouch), Answer()},
       v1::TURN_END_REASON_ANSWER,
       1.0,
       true,
       0,
       1,
       0},
      {"wrong call then answer",
       {ToolCall(kLs), Answer()},
       v1::TURN_END_REASON_ANSWER,
       0.0,
       true,
       0,
       1,
       0},
      {"raising call then right call",
       {ToolCall(R"([{"name": "nope", "arguments": {}}])"), ToolCall(kTouch), Answer()},
       v1::TURN_END_REASON_ANSWER,
       1.0,
       true,
       0,
       1,
       1},
      {"six format errors",
       {bad, bad, bad, bad, bad, bad},
       v1::TURN_END_REASON_FORMAT_LIMIT,
       0.0,
       false,
       6,
       0,
       0},
      {"format error then call",
       {bad, ToolCall(kTouch), Answer()},
       v1::TURN_END_REASON_ANSWER,
       1.0,
       true,
       1,
       1,
       0},
      // Five steps with feedback, the sixth executed (and scored) but its results not shown.
      {"sixth step ends the turn",
       {ToolCall(kLs), ToolCall(kLs), ToolCall(kLs), ToolCall(kLs), ToolCall(kLs),
        ToolCall(kTouch)},
       v1::TURN_END_REASON_STEP_LIMIT,
       1.0,
       true,
       0,
       6,
       0},
      {"format errors count toward the limit",
       {bad, bad, bad, ToolCall(kLs), ToolCall(kLs), ToolCall(kTouch)},
       v1::TURN_END_REASON_STEP_LIMIT,
       1.0,
       true,
       3,
       3,
       0},
  };
  for (const EndCase& c : cases) {
    SCOPED_TRACE(c.name);
    Begin("multi_turn_base_42");
    v1::StepResponse last;
    for (size_t i = 0; i < c.replies.size(); ++i) {
      last = StepOk(c.replies[i]);
      EXPECT_EQ(last.step_index(), i);
      if (i + 1 < c.replies.size()) {
        ASSERT_FALSE(last.turn_ended()) << "reply " << i;
        ASSERT_EQ(last.observation_size(), 1);
        if (!last.format_error().empty()) {
          EXPECT_EQ(last.step_signal(), -3);
          EXPECT_EQ(last.observation(0).content(), FormatErrorObservation(last.format_error()));
        } else {
          EXPECT_THAT(last.observation(0).content(), StartsWith("Here are the function's execution results."));
        }
      }
    }
    ASSERT_TRUE(last.turn_ended());
    EXPECT_EQ(last.turn_score().end_reason(), c.end_reason);
    EXPECT_EQ(last.turn_score().score(), c.score);
    EXPECT_EQ(last.turn_score().executed_calls(), c.executed);
    EXPECT_EQ(last.components().format_errors(), c.format_errors);
    EXPECT_EQ(last.components().clean_steps(), c.clean);
    EXPECT_EQ(last.components().error_steps(), c.errors);
    // The next turn's question is the only observation (no results of a forced last step).
    ASSERT_EQ(last.observation_size(), 1);
    EXPECT_EQ(last.observation(0).content(), catalog_->Find("multi_turn_base_42")->questions[1][0].content);
    // Progress uses the task's 3 turns as denominator.
    EXPECT_DOUBLE_EQ(last.components().progress(), c.score / 3.0);
  }
}

TEST_F(EpisodeTest, Stage1FormatRewardHandComputed) {
  v1::EpisodeOptions o = Opts();
  o.set_reward_kind(v1::REWARD_KIND_FORMAT);
  Begin("multi_turn_base_42", o);
  StepOk("garbage");                                                  // F=1
  StepOk(ToolCall(R"([{"name": "nope", "arguments": {}}])"));        // E=1
  StepOk(ToolCall(kTouch));                                           // C=1
  v1::StepResponse s = StepOk(Answer());                              // turn finished (score 1)
  const v1::RewardComponents& c = s.components();
  EXPECT_EQ(c.entries(), 4u);
  EXPECT_DOUBLE_EQ(c.format_score(), 0.75);     // (4 - 1) / 4
  EXPECT_DOUBLE_EQ(c.tool_call_score(), 0.5);   // 1 / (1 + 1)
  EXPECT_DOUBLE_EQ(c.stage1_reward(), 1.25);    // 1 * (0.75 + 0.5)
  EXPECT_DOUBLE_EQ(s.episode_reward(), 1.25);
  EXPECT_DOUBLE_EQ(c.progress(), 1.0 / 3.0);

  // An episode that never executes a tool gets 0 whatever its format.
  Begin("multi_turn_base_42", o);
  v1::StepResponse a = StepOk(Answer());
  EXPECT_DOUBLE_EQ(a.components().format_score(), 1.0);
  EXPECT_DOUBLE_EQ(a.episode_reward(), 0.0);
}

TEST_F(EpisodeTest, BinaryRewardIsOneOnlyWhenEveryTurnScoredOne) {
  // multi_turn_base_42's ground truth, one call per turn (as in the test above); the last turn
  // either right or answered without its call.
  const char* calls[] = {kTouch, kEcho, kWc};
  for (const bool last_right : {true, false}) {
    SCOPED_TRACE(last_right ? "every turn right" : "last turn wrong");
    v1::EpisodeOptions o = Opts();
    o.set_reward_kind(v1::REWARD_KIND_BINARY);
    Begin("multi_turn_base_42", o);
    v1::StepResponse a;
    for (int t = 0; t < 3; ++t) {
      if (t < 2 || last_right) StepOk(ToolCall(calls[t]));
      a = StepOk(Answer());
      ASSERT_TRUE(a.turn_ended());
      EXPECT_EQ(a.turn_score().score(), t < 2 || last_right ? 1.0 : 0.0);
      if (t < 2) {
        EXPECT_DOUBLE_EQ(a.episode_reward(), 0.0);  // the progress reward would be (t + 1) / 3
      }
    }
    ASSERT_TRUE(a.episode_ended());
    EXPECT_DOUBLE_EQ(a.components().progress(), last_right ? 1.0 : 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(a.episode_reward(), last_right ? 1.0 : 0.0);
  }
}

TEST_F(EpisodeTest, DictErrorsAreCleanStepsAndExceptionsAreErrorSteps) {
  Begin("multi_turn_base_42");
  v1::StepResponse s = StepOk(ToolCall(R"([{"name": "cd", "arguments": {"folder": "nowhere"}}])"));
  ASSERT_EQ(s.calls_size(), 1);
  EXPECT_FALSE(s.calls(0).raised());
  EXPECT_EQ(s.step_signal(), -1);
  s = StepOk(ToolCall(R"([{"name": "cd", "arguments": {"bogus": 1}}])"));
  EXPECT_TRUE(s.calls(0).raised());
  EXPECT_THAT(s.calls(0).result(), StartsWith("Error during execution: "));
  EXPECT_EQ(s.step_signal(), -2);
}

TEST_F(EpisodeTest, CannotServeTurns) {
  // multi_turn_miss_param_42: turn 0 has an empty ground truth.
  ASSERT_TRUE(catalog_->Find("multi_turn_miss_param_42")->ground_truth[0].empty());
  const std::string next_q = catalog_->Find("multi_turn_miss_param_42")->questions[1][0].content;
  {
    Begin("multi_turn_miss_param_42");
    v1::StepResponse s = StepOk(Answer("Which file name?"));
    EXPECT_TRUE(s.turn_ended());
    EXPECT_TRUE(s.turn_score().cannot_serve());
    EXPECT_EQ(s.turn_score().score(), 1.0);
    ASSERT_EQ(s.observation_size(), 1);
    EXPECT_EQ(s.observation(0).content(), next_q);
  }
  {
    Begin("multi_turn_miss_param_42");
    v1::StepResponse s = StepOk(ToolCall(kTouch));
    EXPECT_TRUE(s.turn_ended());
    EXPECT_EQ(s.calls_size(), 0);  // not executed
    EXPECT_EQ(s.turn_score().end_reason(), v1::TURN_END_REASON_CALLED_ON_CANNOT_SERVE);
    EXPECT_EQ(s.turn_score().score(), 0.0);
    EXPECT_EQ(s.components().clean_steps(), 0u);
    ASSERT_EQ(s.observation_size(), 1);
    EXPECT_EQ(s.observation(0).content(), CannotServeWarning() + next_q);
    // The touch was not executed: doing it now in turn 1 is the right thing and scores 1.
    StepOk(ToolCall(kTouch));
    v1::StepResponse a = StepOk(Answer());
    EXPECT_EQ(a.turn_score().score(), 1.0);
  }
  {
    // Format errors are handled as usual, then the first well-formed reply decides.
    Begin("multi_turn_miss_param_42");
    v1::StepResponse f = StepOk("<think>x</think> stray text <answer>a</answer>");
    EXPECT_FALSE(f.turn_ended());
    EXPECT_EQ(f.step_signal(), -3);
    v1::StepResponse s = StepOk(Answer());
    EXPECT_EQ(s.turn_score().score(), 1.0);
    EXPECT_EQ(s.components().format_errors(), 1u);
  }
  {
    // An empty <tool_call> list is still a call attempt.
    Begin("multi_turn_miss_param_42");
    v1::StepResponse s = StepOk(ToolCall("[]"));
    EXPECT_EQ(s.turn_score().end_reason(), v1::TURN_END_REASON_CALLED_ON_CANNOT_SERVE);
    EXPECT_EQ(s.turn_score().score(), 0.0);
  }
}

TEST_F(EpisodeTest, MissFuncRevealsHeldOutDocsAtTheirTurn) {
  const BfclTask* task = catalog_->Find("multi_turn_miss_func_42");
  ASSERT_NE(task, nullptr);
  ASSERT_TRUE(task->questions[1].empty());
  for (v1::OutputFormat f : {v1::OUTPUT_FORMAT_ENVTUNING, v1::OUTPUT_FORMAT_BFCL_PROMPTING, v1::OUTPUT_FORMAT_HERMES}) {
    SCOPED_TRACE(v1::OutputFormat_Name(f));
    v1::StartEpisodeResponse r = StartOk(task->id, Opts(f));
    for (const v1::ChatMessage& m : r.messages()) {
      EXPECT_THAT(m.content(), ::testing::Not(HasSubstr("\"name\": \"touch\"")));
    }
    for (const std::string& tool : r.tools_json()) {
      EXPECT_THAT(tool, ::testing::Not(HasSubstr("\"name\": \"touch\"")));
      EXPECT_THAT(tool, ::testing::Not(HasSubstr("\"name\": \"echo\"")));
    }
    const int n_tools = r.tools_json_size();
    blob_ = r.episode_state();
    v1::StepResponse s = StepOk(f == v1::OUTPUT_FORMAT_BFCL_PROMPTING ? "I cannot do that." : Answer());
    EXPECT_EQ(s.turn_score().score(), 1.0);
    ASSERT_EQ(s.observation_size(), 1);
    const std::string& reveal = s.observation(0).content();
    if (f == v1::OUTPUT_FORMAT_BFCL_PROMPTING) {
      // CPython: str(held-out docs in missed_function order) + "\n" + sentence (no suffix).
      EXPECT_EQ(reveal.size(), 1541u);
      EXPECT_EQ(Sha256Hex(reveal), "e476b229ffdb1e3f9685eeb8560a244acfd1aaf8e159e328e43737007cb7af16");
      EXPECT_THAT(reveal, StartsWith("[{'name': 'touch'"));
    } else if (f == v1::OUTPUT_FORMAT_HERMES) {
      EXPECT_EQ(reveal, kRevealSentence);
    } else {
      EXPECT_THAT(reveal, StartsWith("[\n    {\n        \"name\": \"touch\""));
      EXPECT_THAT(reveal, HasSubstr("\n" + std::string(kRevealSentence)));
      EXPECT_THAT(reveal, ::testing::Not(HasSubstr(kPython3Suffix)));
    }
    ASSERT_EQ(s.tools_json_size(), n_tools + 2);
    EXPECT_THAT(s.tools_json(n_tools), HasSubstr("touch"));
    EXPECT_THAT(s.tools_json(n_tools + 1), HasSubstr("echo"));
  }
}

TEST_F(EpisodeTest, HermesFormat) {
  v1::StartEpisodeResponse r = StartOk("multi_turn_base_42", Opts(v1::OUTPUT_FORMAT_HERMES));
  ASSERT_EQ(r.messages_size(), 1);  // no system prompt: the chat template renders the tools
  EXPECT_EQ(r.messages(0).role(), "user");
  ASSERT_GT(r.tools_json_size(), 0);
  EXPECT_THAT(r.tools_json(0), StartsWith("{\"type\": \"function\", \"function\": {\"name\": \"cat\""));
  for (const std::string& tool : r.tools_json()) {
    EXPECT_THAT(tool, ::testing::Not(HasSubstr("\"dict\"")));
    EXPECT_THAT(tool, ::testing::Not(HasSubstr("\"float\"")));
    EXPECT_THAT(tool, ::testing::Not(HasSubstr("\"response\"")));
  }
  blob_ = r.episode_state();
  v1::StepResponse s = StepOk(
      "<tool_call>\n{\"name\": \"touch\", \"arguments\": {\"file_name\": \"Notes2023.txt\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"ls\", \"arguments\": {}}\n</tool_call>");
  ASSERT_EQ(s.calls_size(), 2);
  ASSERT_EQ(s.observation_size(), 2);
  EXPECT_EQ(s.observation(0).role(), "tool");
  EXPECT_EQ(s.observation(0).name(), "touch(file_name='Notes2023.txt')");
  EXPECT_EQ(s.observation(0).content(), s.calls(0).result());
  v1::StepResponse bad = StepOk("<tool_call>{not json}</tool_call>");
  EXPECT_EQ(bad.step_signal(), -3);
  v1::StepResponse a = StepOk("The file is created.");
  EXPECT_TRUE(a.turn_ended());
  EXPECT_EQ(a.turn_score().score(), 1.0);
}

// The chat fixtures (../shared/golden/chat) carry BFCL docs converted by HF-side Python: ours
// must be the same objects, key order included.
TEST_F(EpisodeTest, HermesToolSchemasMatchChatFixtures) {
  const char* shared = std::getenv("ENVTUNE_SHARED_DIR");
  std::string path = std::string(shared != nullptr ? shared : testing_util::SourceDir() + "/../shared") +
                     "/golden/chat/renderings.jsonl";
  if (!testing_util::FileExists(path)) GTEST_SKIP() << "chat fixtures not found at " << path;
  absl::StatusOr<std::vector<PyValue>> lines = ReadJsonLines(path);
  ASSERT_TRUE(lines.ok()) << lines.status();
  int compared = 0;
  for (const PyValue& line : *lines) {
    const PyValue* tools = line.dict().Find("tools");
    if (tools == nullptr || !tools->is_list()) continue;
    for (const PyValue& tool : tools->items()) {
      const std::string& name = tool.dict().Find("function")->dict().Find("name")->as_str();
      for (const std::string& cls : AllToolApiClassNames()) {
        for (const PyValue& doc : catalog_->FunctionDocs(cls).items()) {
          if (doc.dict().Find("name")->as_str() != name) continue;
          PyValue ours = HermesToolSchema(doc);
          EXPECT_EQ(ours.JsonDumps(), tool.JsonDumps()) << name;
          ++compared;
        }
      }
    }
  }
  EXPECT_GT(compared, 50);
}

TEST_F(EpisodeTest, BfclPromptingFormat) {
  Begin("multi_turn_base_42", Opts(v1::OUTPUT_FORMAT_BFCL_PROMPTING));
  v1::StepResponse s = StepOk("[touch(file_name='Notes2023.txt'), ls()]");
  ASSERT_EQ(s.observation_size(), 2);
  EXPECT_EQ(s.observation(0).role(), "tool");
  EXPECT_EQ(s.observation(0).name(), "touch(file_name='Notes2023.txt')");
  EXPECT_EQ(s.observation(1).name(), "ls()");
  std::string many = "[";
  for (int i = 0; i < 65; ++i) many += std::string(i ? ", " : "") + "ls()";
  v1::StepResponse too_many = StepOk(many + "]");
  EXPECT_EQ(too_many.step_signal(), -3);
  ASSERT_EQ(too_many.observation_size(), 1);
  EXPECT_EQ(too_many.observation(0).content(), FormatErrorObservation(too_many.format_error(), false));
  EXPECT_THAT(too_many.observation(0).content(), ::testing::Not(HasSubstr("<think>")));
  v1::StepResponse end = StepOk("All done, the file exists now.");  // decode error ends the turn
  EXPECT_TRUE(end.turn_ended());
  EXPECT_EQ(end.turn_score().score(), 1.0);
}

TEST_F(EpisodeTest, BfclEvalSemantics) {
  v1::EpisodeOptions o = Opts();
  o.set_bfcl_eval_semantics(true);
  o.set_augment_probability(1.0);  // ignored: evaluation never augments
  {
    v1::StartEpisodeResponse r = StartOk("multi_turn_miss_param_42", o);
    EXPECT_FALSE(r.augmented());
    blob_ = r.episode_state();
    // Calls on a cannot-serve turn are executed; the turn is not checked (scores 1).
    v1::StepResponse s = StepOk(ToolCall(kTouch));
    EXPECT_FALSE(s.turn_ended());
    EXPECT_EQ(s.calls_size(), 1);
    v1::StepResponse f = StepOk("not the format");  // a format error ends the turn
    EXPECT_TRUE(f.turn_ended());
    EXPECT_EQ(f.turn_score().end_reason(), v1::TURN_END_REASON_FORMAT_ERROR);
    EXPECT_EQ(f.turn_score().score(), 1.0);
    EXPECT_EQ(f.observation(0).content(), catalog_->Find("multi_turn_miss_param_42")->questions[1][0].content);
  }
  {
    // 20 steps with feedback; the 21st executed step force-quits the task.
    Begin("multi_turn_base_42", o);
    for (int i = 0; i < 20; ++i) {
      v1::StepResponse s = StepOk(ToolCall(kLs));
      ASSERT_FALSE(s.turn_ended()) << i;
    }
    v1::StepResponse q = StepOk(ToolCall(kTouch));
    EXPECT_TRUE(q.turn_ended());
    EXPECT_TRUE(q.episode_ended());
    EXPECT_EQ(q.turn_score().end_reason(), v1::TURN_END_REASON_FORCE_QUIT);
    EXPECT_EQ(q.turn_score().score(), 1.0);  // the turn itself is scored normally
    EXPECT_EQ(q.observation_size(), 0);
    EXPECT_DOUBLE_EQ(q.episode_reward(), 1.0 / 3.0);
  }
}

TEST_F(EpisodeTest, CustomStepLimit) {
  v1::EpisodeOptions o = Opts();
  o.set_max_steps_per_turn(1);
  Begin("multi_turn_base_42", o);
  EXPECT_FALSE(StepOk(ToolCall(kLs)).turn_ended());
  v1::StepResponse s = StepOk(ToolCall(kTouch));
  EXPECT_TRUE(s.turn_ended());
  EXPECT_EQ(s.turn_score().end_reason(), v1::TURN_END_REASON_STEP_LIMIT);
}

TEST_F(EpisodeTest, AugmentationDecisionIsSeededAndSwitchesBothSides) {
  EXPECT_FALSE(EpisodeEngine::DecideAugment(7, "multi_turn_base_42", 0.0));
  EXPECT_TRUE(EpisodeEngine::DecideAugment(7, "multi_turn_base_42", 1.0));
  int on = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    bool a = EpisodeEngine::DecideAugment(seed, "multi_turn_base_42", 0.3);
    EXPECT_EQ(a, EpisodeEngine::DecideAugment(seed, "multi_turn_base_42", 0.3));
    // Monotone in p for a fixed seed.
    if (a) EXPECT_TRUE(EpisodeEngine::DecideAugment(seed, "multi_turn_base_42", 0.6));
    on += a;
  }
  EXPECT_GT(on, 80);
  EXPECT_LT(on, 160);

  // Same reply, p = 0 vs p = 1: a failed multi-level cd gets BFCL's text vs a hint; state and
  // scores are unaffected.
  const std::string cd = ToolCall(R"([{"name": "cd", "arguments": {"folder": "a/b"}}, {"name": "touch", "arguments": {"file_name": "Notes2023.txt"}}])");
  std::string results[2];
  for (int aug = 0; aug < 2; ++aug) {
    v1::EpisodeOptions o = Opts();
    o.set_augment_probability(aug);
    v1::StartEpisodeResponse r = StartOk("multi_turn_base_42", o);
    EXPECT_EQ(r.augmented(), aug == 1);
    blob_ = r.episode_state();
    v1::StepResponse s = StepOk(cd);
    results[aug] = s.calls(0).result();
    v1::StepResponse a = StepOk(Answer());
    EXPECT_EQ(a.turn_score().score(), 1.0);
  }
  EXPECT_NE(results[0], results[1]);
}

TEST_F(EpisodeTest, LimitsAgainstHostileOutput) {
  Begin("multi_turn_base_42");
  std::string huge(256 * 1024 + 1, 'x');
  absl::StatusOr<v1::StepResponse> r = engine_->Step(blob_, huge);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model_output"));
  std::string many = "[";
  for (int i = 0; i < 65; ++i) many += std::string(i ? ", " : "") + R"({"name": "ls", "arguments": {}})";
  many += "]";
  v1::StepResponse s = StepOk(ToolCall(many));
  EXPECT_EQ(s.step_signal(), -3);
  EXPECT_EQ(s.calls_size(), 0);
  EXPECT_THAT(s.format_error(), HasSubstr("65 calls"));
  EXPECT_EQ(CapText("abcdef", 3), "abc...[truncated 3 bytes]");
  EXPECT_EQ(CapText("a\xc3\xa9", 2), "a...[truncated 2 bytes]");  // never splits a UTF-8 character
}

TEST(SanitizeUtf8Test, MatchesPythonDecodeReplace) {
  // Expected values: CPython 3.11 bytes.decode("utf-8", "replace").encode("utf-8").
  const std::string R = "\xEF\xBF\xBD";
  const std::pair<std::string, std::string> cases[] = {
      {"abc", "abc"},           {"\xff", R},
      {"a\xc3", "a" + R},       {"\xc3\xa9", "\xc3\xa9"},
      {"\xe2\x82", R},          {"\xe2\x82\xac", "\xe2\x82\xac"},
      {"\xed\xa0\x80", R + R + R}, {"\xf0\x9f\x98", R},
      {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"}, {"\xc0\xaf", R + R},
      {"\xf4\x90\x80\x80", R + R + R + R}, {"\xe0\x80\x80", R + R + R},
      {"\x80\x80x", R + R + "x"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(SanitizeUtf8(in), want) << in;
}

TEST(DecodeHermesTest, Table) {
  using Kind = DecodeResult::Kind;
  struct Case {
    const char* text;
    Kind kind;
    std::vector<std::string> calls;
  } cases[] = {
      {"Plain reply.", Kind::kAnswer, {}},
      {"", Kind::kAnswer, {}},
      {"<tool_call>\n{\"name\": \"cd\", \"arguments\": {\"folder\": \"a\"}}\n</tool_call>", Kind::kCalls,
       {"cd(folder='a')"}},
      {"Let me look.\n<tool_call>{\"name\": \"ls\", \"arguments\": {}}</tool_call>"
       "<tool_call>{\"name\": \"mean\", \"arguments\": \"{\\\"numbers\\\": [1, 2.5]}\"}</tool_call>",
       Kind::kCalls, {"ls()", "mean(numbers=[1, 2.5])"}},
      {"<tool_call>{\"name\": \"ls\"}</tool_call>", Kind::kCalls, {"ls()"}},
      {"<tool_call>{\"name\": \"ls\"", Kind::kFormatError, {}},
      {"<tool_call>[{\"name\": \"ls\"}]</tool_call>", Kind::kFormatError, {}},
      {"<tool_call>{\"arguments\": {}}</tool_call>", Kind::kFormatError, {}},
      {"<tool_call>{\"name\": \"ls\", \"arguments\": [1]}</tool_call>", Kind::kFormatError, {}},
      {"<tool_call>not json</tool_call>", Kind::kFormatError, {}},
  };
  for (const Case& c : cases) {
    DecodeResult r = DecodeHermes(c.text);
    EXPECT_EQ(r.kind, c.kind) << c.text << " -> " << r.message;
    EXPECT_EQ(r.calls, c.calls) << c.text;
    if (c.kind == Kind::kFormatError) EXPECT_FALSE(r.message.empty()) << c.text;
  }
}

TEST_F(EpisodeTest, InvalidUtf8InModelOutputKeepsTheBlobValid) {
  Begin("multi_turn_base_42");
  v1::StepResponse s = StepOk(ToolCall("[{\"name\": \"echo\", \"arguments\": {\"content\": \"bad \xff\xfe bytes\"}}]"));
  ASSERT_EQ(s.calls_size(), 1);
  EXPECT_THAT(s.calls(0).call(), HasSubstr("\xEF\xBF\xBD"));
  EXPECT_TRUE(engine_->Open(blob_).ok());
  EXPECT_TRUE(engine_->Step(blob_, Answer()).ok());
}

// Many threads run episodes on one engine whose caches hold a single entry (constant eviction);
// every response equals the one a fresh single-threaded engine gives.
TEST_F(EpisodeTest, ConcurrentEpisodesWithTinyCachesMatchSequential) {
  EpisodeEngineOptions tiny;
  tiny.cache_capacity = 1;
  EpisodeEngine shared(catalog_, tiny);
  const std::vector<std::string> ids = {"multi_turn_base_42", "multi_turn_miss_func_42", "multi_turn_long_context_42",
                                        "multi_turn_miss_param_42"};
  const std::vector<std::string> replies = {ToolCall(kTouch), ToolCall(kLs), Answer(), ToolCall(kEcho), Answer(),
                                            Answer(), Answer(), Answer()};
  auto run = [&](const EpisodeEngine& e, const std::string& id, uint64_t seed) {
    std::string trace;
    v1::EpisodeOptions o;
    o.set_augment_probability(0.5);
    o.set_seed(seed);
    absl::StatusOr<v1::StartEpisodeResponse> r = e.Start(id, o);
    if (!r.ok()) return std::string(r.status().message());
    std::string blob = r->episode_state();
    for (const std::string& reply : replies) {
      absl::StatusOr<v1::StepResponse> s = e.Step(blob, reply);
      if (!s.ok()) break;  // FAILED_PRECONDITION once ended
      trace += s->SerializeAsString();
      blob = s->episode_state();
    }
    return trace;
  };
  std::vector<std::string> expected;
  for (int i = 0; i < 16; ++i) {
    EpisodeEngine fresh(catalog_, EpisodeEngineOptions{});
    expected.push_back(run(fresh, ids[i % ids.size()], i));
  }
  std::vector<std::string> got(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] { got[i] = run(shared, ids[i % ids.size()], i); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(got[i], expected[i]) << i;
}

TEST_F(EpisodeTest, BlobIsAuthenticated) {
  Begin("multi_turn_base_42");
  ASSERT_TRUE(engine_->Open(blob_).ok());
  // Every single-byte change is rejected.
  for (size_t i = 0; i < blob_.size(); i += std::max<size_t>(1, blob_.size() / 50)) {
    std::string t = blob_;
    t[i] ^= 0x01;
    absl::StatusOr<v1::StepResponse> r = engine_->Step(t, Answer());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << "byte " << i;
  }
  for (const std::string& bad : {std::string(), blob_.substr(0, 10), blob_.substr(0, blob_.size() - 1),
                                 std::string("hello world, this is not a blob at all......")}) {
    absl::StatusOr<v1::StepResponse> r = engine_->Step(bad, Answer());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("episode_state"));
  }
  // Keyed engines reject unkeyed blobs and blobs of another key.
  EpisodeEngineOptions k1, k2;
  k1.hmac_key = "key-one";
  k2.hmac_key = "key-two";
  EpisodeEngine e1(catalog_, k1), e2(catalog_, k2);
  absl::StatusOr<v1::StartEpisodeResponse> s1 = e1.Start("multi_turn_base_42", Opts());
  ASSERT_TRUE(s1.ok());
  EXPECT_TRUE(e1.Step(s1->episode_state(), Answer()).ok());
  EXPECT_EQ(e2.Step(s1->episode_state(), Answer()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Step(s1->episode_state(), Answer()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e1.Step(blob_, Answer()).status().code(), absl::StatusCode::kInvalidArgument);
  // Another version is refused even when correctly sealed.
  absl::StatusOr<v1::EpisodeState> st = engine_->Open(blob_);
  ASSERT_TRUE(st.ok());
  st->set_version(EpisodeEngine::kStateVersion + 1);
  absl::StatusOr<v1::StepResponse> v = engine_->Step(engine_->Seal(*st), Answer());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("version"));
}

TEST_F(EpisodeTest, BadStartRequests) {
  EXPECT_EQ(engine_->Start("", Opts()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Start("multi_turn_base_9999", Opts()).status().code(), absl::StatusCode::kNotFound);
  v1::EpisodeOptions o = Opts();
  o.set_augment_probability(1.5);
  EXPECT_EQ(engine_->Start("multi_turn_base_42", o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Opts();
  o.set_output_format(static_cast<v1::OutputFormat>(42));
  EXPECT_EQ(engine_->Start("multi_turn_base_42", o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Opts();
  o.set_max_steps_per_turn(1000);
  EXPECT_EQ(engine_->Start("multi_turn_base_42", o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EpisodeTest, DeterministicBytesAcrossEngines) {
  EpisodeEngine other(catalog_, EpisodeEngineOptions{});
  v1::EpisodeOptions o = Opts();
  o.set_augment_probability(0.5);
  o.set_seed(99);
  absl::StatusOr<v1::StartEpisodeResponse> a = engine_->Start("multi_turn_long_context_42", o);
  absl::StatusOr<v1::StartEpisodeResponse> b = other.Start("multi_turn_long_context_42", o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString());
  absl::StatusOr<v1::StepResponse> sa = engine_->Step(a->episode_state(), ToolCall(kLs));
  absl::StatusOr<v1::StepResponse> sb = other.Step(b->episode_state(), ToolCall(kLs));
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_EQ(sa->SerializeAsString(), sb->SerializeAsString());
}

}  // namespace
}  // namespace envtune
