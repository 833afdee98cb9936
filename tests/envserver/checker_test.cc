// BFCL multi-turn checker (envserver/checker.h): every error type on perturbed ground truth and
// hand-built trajectories, Python == state semantics, D.1 input preparation, rewards.
#include "envserver/checker.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/envserver/test_env.h"

namespace envtune {
namespace {

using namespace test_env;  // NOLINT(build/namespaces)

using Turns = std::vector<std::vector<CallList>>;

class CheckerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<TaskCatalog> c = TaskCatalog::Load(BfclDataDir());
    if (c.ok()) {
      catalog_ = new TaskCatalog(*std::move(c));
      context_ = new SandboxContext();
      context_->long_context_constants = &catalog_->long_context_constants();
    }
  }
  void SetUp() override {
    if (catalog_ == nullptr) GTEST_SKIP() << "BFCL data not found at " << BfclDataDir();
  }

  const BfclTask& Task(const std::string& id) {
    const BfclTask* t = catalog_->Find(id);
    EXPECT_NE(t, nullptr) << id;
    return *t;
  }
  // The ground truth as one step per turn.
  static Turns AsModel(const BfclTask& task) {
    Turns out;
    for (const CallList& calls : task.ground_truth) out.push_back({calls});
    return out;
  }
  // A task with `task`'s initial config and the given ground truth.
  BfclTask WithTruth(const std::string& id, std::vector<CallList> truth) {
    BfclTask t = Task(id);
    t.ground_truth = std::move(truth);
    t.questions.assign(t.ground_truth.size(), {BfclMessage{"user", "q"}});
    return t;
  }
  CheckerVerdict Check(const BfclTask& task, const Turns& model) {
    absl::StatusOr<CheckerVerdict> v = CheckMultiTurn(task, model, context_);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : CheckerVerdict{};
  }

  static TaskCatalog* catalog_;
  static SandboxContext* context_;
};
TaskCatalog* CheckerTest::catalog_ = nullptr;
SandboxContext* CheckerTest::context_ = nullptr;

TEST_F(CheckerTest, GroundTruthIsValidWithRewardOne) {
  const BfclTask& task = Task("multi_turn_base_0");
  CheckerVerdict v = Check(task, AsModel(task));
  EXPECT_TRUE(v.valid);
  EXPECT_EQ(v.error_type, "");
  EXPECT_EQ(v.error_message, "");
  ASSERT_EQ(v.per_turn.size(), task.ground_truth.size());
  for (const CheckerTurn& t : v.per_turn) {
    EXPECT_TRUE(t.checked);
    EXPECT_TRUE(t.state_ok);
    EXPECT_TRUE(t.response_ok);
    EXPECT_EQ(t.score, 1);
  }
  EXPECT_DOUBLE_EQ(v.reward, 1.0);
}

TEST_F(CheckerTest, AllGroundTruthsAreValidWithRewardOne) {
  int checked = 0;
  for (const BfclTask& task : catalog_->tasks()) {
    CheckerVerdict v = Check(task, AsModel(task));
    EXPECT_TRUE(v.valid) << task.id << ": " << v.error_type << " " << v.error_message;
    EXPECT_DOUBLE_EQ(v.reward, 1.0) << task.id;
    ++checked;
  }
  EXPECT_EQ(checked, 800);
}

// Randomly perturbed ground truths of every task (dropped, duplicated, swapped, moved, garbled
// calls; dropped/extra turns): the checker never crashes, verdicts are consistent with the
// per-turn scores, and the error type is one of D.4's.
TEST_F(CheckerTest, PerturbedTrajectoriesGiveConsistentVerdicts) {
  std::mt19937 rng(20240901);
  const std::vector<std::string> garbage = {"", "ls(", "cd(folder=1)", "foo(x=1)", "exit()", "cd(folder='..')",
                                            "mkdir(dir_name='zz')", "post_tweet(content='sort (by date)')"};
  const std::set<std::string> types = {"", "multi_turn:force_terminated", "multi_turn:empty_turn_model_response",
                                       "multi_turn:instance_state_mismatch", "multi_turn:execution_response_mismatch"};
  int invalid = 0, total = 0;
  for (const BfclTask& task : catalog_->tasks()) {
    Turns model = AsModel(task);
    for (int k = 0; k < 3; ++k) {
      size_t t = rng() % model.size();
      CallList& calls = model[t][0];
      switch (rng() % 6) {
        case 0: if (!calls.empty()) calls.erase(calls.begin() + rng() % calls.size()); break;
        case 1: if (!calls.empty()) calls.push_back(calls[rng() % calls.size()]); break;
        case 2: if (calls.size() > 1) std::swap(calls[0], calls[calls.size() - 1]); break;
        case 3: calls.insert(calls.begin() + rng() % (calls.size() + 1), garbage[rng() % garbage.size()]); break;
        case 4: if (t + 1 < model.size()) { model[t + 1][0].insert(model[t + 1][0].begin(), calls.begin(), calls.end()); calls.clear(); } break;
        case 5: model[t].push_back(calls); break;
      }
    }
    if (rng() % 20 == 0) model.pop_back();
    CheckerVerdict v = Check(task, model);
    ++total;
    EXPECT_TRUE(types.count(v.error_type)) << task.id << " " << v.error_type;
    EXPECT_EQ(v.valid, v.error_type.empty()) << task.id;
    if (v.valid) {
      EXPECT_EQ(v.error_message, "");
      for (const CheckerTurn& t : v.per_turn) EXPECT_EQ(t.score, 1) << task.id;
    } else {
      ++invalid;
      EXPECT_FALSE(v.error_message.empty());
      if (v.error_type != "multi_turn:force_terminated") {
        ASSERT_GE(v.error_turn, 0);
        ASSERT_LT(v.error_turn, static_cast<int>(v.per_turn.size()));
        EXPECT_EQ(v.per_turn[v.error_turn].score, 0) << task.id;
        for (int i = 0; i < v.error_turn; ++i) EXPECT_EQ(v.per_turn[i].score, 1) << task.id << " turn " << i;
      }
    }
    EXPECT_GE(v.reward, 0.0);
    EXPECT_LE(v.reward, 1.0);
  }
  EXPECT_EQ(total, 800);
  EXPECT_GT(invalid, 100);  // the perturbations do break most tasks
}

TEST_F(CheckerTest, DroppedCallIsStateMismatch) {
  const BfclTask& task = Task("multi_turn_base_0");
  Turns model = AsModel(task);
  ASSERT_EQ(model[0][0][1], "mkdir(dir_name='temp')");
  model[0][0].erase(model[0][0].begin() + 1);
  CheckerVerdict v = Check(task, model);
  EXPECT_FALSE(v.valid);
  EXPECT_EQ(v.error_type, "multi_turn:instance_state_mismatch");
  EXPECT_EQ(v.error_message,
            "Model instance for GorillaFileSystem does not match the state with ground truth instance.");
  EXPECT_EQ(v.error_turn, 0);
  EXPECT_EQ(v.mismatch_class, "GorillaFileSystem");
  EXPECT_EQ(v.per_turn[0].score, 0);
  EXPECT_FALSE(v.per_turn[0].state_ok);
  EXPECT_LT(v.reward, 1.0);
}

TEST_F(CheckerTest, ChangedArgumentWithSameStateIsResponseMismatch) {
  const BfclTask& task = Task("multi_turn_base_0");
  Turns model = AsModel(task);
  ASSERT_EQ(model[1][0][1], "grep(file_name='final_report.pdf',pattern='budget analysis')");
  model[1][0][1] = "grep(file_name='final_report.pdf',pattern='no such text')";
  CheckerVerdict v = Check(task, model);
  EXPECT_FALSE(v.valid);
  EXPECT_EQ(v.error_type, "multi_turn:execution_response_mismatch");
  EXPECT_EQ(v.error_message,
            "Model response execution results so far does not contain all the ground truth response execution "
            "results for turn 1.");
  EXPECT_EQ(v.error_turn, 1);
  ASSERT_EQ(v.missing_items.size(), 1u);
  EXPECT_NE(v.missing_items[0].find("matching_lines"), std::string::npos);
  EXPECT_TRUE(v.per_turn[1].state_ok);
  EXPECT_FALSE(v.per_turn[1].response_ok);
  // Scoring continues after the first failure (reward): turns 0, 2, 3 still score 1.
  EXPECT_DOUBLE_EQ(v.reward, 0.75);
}

TEST_F(CheckerTest, ExtraHarmlessCallAndSplitStepsStayValid) {
  const BfclTask& task = Task("multi_turn_base_0");
  Turns model = AsModel(task);
  model[0][0].push_back("ls()");
  model[0][0].push_back("pwd()");
  // Split turn 3 into one step per call.
  std::vector<CallList> split;
  for (const std::string& c : task.ground_truth[3]) split.push_back({c});
  model[3] = split;
  CheckerVerdict v = Check(task, model);
  EXPECT_TRUE(v.valid) << v.error_message;
  EXPECT_DOUBLE_EQ(v.reward, 1.0);
}

TEST_F(CheckerTest, ReorderWithinTurnChangingEffectsFails) {
  const BfclTask& task = Task("multi_turn_base_0");
  Turns model = AsModel(task);
  std::swap(model[0][0][0], model[0][0][1]);  // mkdir before cd: temp lands elsewhere
  CheckerVerdict v = Check(task, model);
  EXPECT_EQ(v.error_type, "multi_turn:instance_state_mismatch");
  EXPECT_EQ(v.error_turn, 0);
}

TEST_F(CheckerTest, ReorderOfIndependentCallsIsValid) {
  // Results are compared as a multiset; dict order of state is irrelevant (Python ==).
  BfclTask task = WithTruth("multi_turn_base_0", {{"touch(file_name='a')", "touch(file_name='b')", "pwd()"}});
  CheckerVerdict v = Check(task, {{{"pwd()", "touch(file_name='b')"}, {"touch(file_name='a')"}}});
  EXPECT_TRUE(v.valid) << v.error_message;
}

TEST_F(CheckerTest, TurnCountMismatchIsForceTerminated) {
  const BfclTask& task = Task("multi_turn_base_0");
  Turns model = AsModel(task);
  model.pop_back();
  CheckerVerdict v = Check(task, model);
  EXPECT_FALSE(v.valid);
  EXPECT_EQ(v.error_type, "multi_turn:force_terminated");
  EXPECT_EQ(v.error_message,
            "Model was force-terminated during inference phase. The length of the model result turns (3) does not "
            "match the length of the ground truth turns (4).");
  EXPECT_EQ(v.per_turn.size(), 3u);       // reached turns are still scored for the reward
  EXPECT_DOUBLE_EQ(v.reward, 0.75);       // denominator: all 4 turns

  // Decided before any replay: even a first turn that would fail does not change the type.
  Turns bad(5);
  CheckerVerdict v2 = Check(task, bad);
  EXPECT_EQ(v2.error_type, "multi_turn:force_terminated");
  EXPECT_NE(v2.error_message.find("turns (5) does not match the length of the ground truth turns (4)."),
            std::string::npos);
  EXPECT_DOUBLE_EQ(v2.reward, 0.0);
}

TEST_F(CheckerTest, EmptyTurn) {
  const BfclTask& task = Task("multi_turn_base_0");
  for (const std::vector<CallList>& empty : {std::vector<CallList>{}, std::vector<CallList>{{}}}) {
    Turns model = AsModel(task);
    model[2] = empty;
    CheckerVerdict v = Check(task, model);
    EXPECT_EQ(v.error_type, "multi_turn:empty_turn_model_response");
    EXPECT_EQ(v.error_message, "Model response list is empty for turn 2");
    EXPECT_EQ(v.error_turn, 2);
    EXPECT_EQ(v.per_turn[2].score, 0);
    EXPECT_TRUE(v.per_turn[2].empty_response);
  }
  // Two empty steps are not "empty" to BFCL: the checks run (sort's result is then missing).
  Turns model = AsModel(task);
  model[2] = {{}, {}};
  CheckerVerdict v = Check(task, model);
  EXPECT_EQ(v.error_type, "multi_turn:execution_response_mismatch");
  EXPECT_EQ(v.error_turn, 2);
}

TEST_F(CheckerTest, EmptyTurnBeatsStateMismatchAndStateBeatsResponse) {
  const BfclTask& task = Task("multi_turn_base_0");
  // Turn 0 empty: its state would also mismatch, but the empty check comes first.
  Turns model = AsModel(task);
  model[0] = {};
  EXPECT_EQ(Check(task, model).error_type, "multi_turn:empty_turn_model_response");
  // State and response both wrong in turn 0: state is reported.
  model = AsModel(task);
  model[0] = {{"mkdir(dir_name='zzz')"}};
  CheckerVerdict v = Check(task, model);
  EXPECT_EQ(v.error_type, "multi_turn:instance_state_mismatch");
  EXPECT_FALSE(v.per_turn[0].state_ok);
  EXPECT_FALSE(v.per_turn[0].response_ok);
}

TEST_F(CheckerTest, EmptyGroundTruthTurnsAreNotCheckedButSideEffectsCount) {
  BfclTask task = WithTruth("multi_turn_base_0", {{}, {"ls()"}});
  // Calling in a cannot-serve turn is not penalised.
  CheckerVerdict ok = Check(task, {{{"pwd()"}}, {{"ls()"}}});
  EXPECT_TRUE(ok.valid) << ok.error_message;
  EXPECT_FALSE(ok.per_turn[0].checked);
  EXPECT_EQ(ok.per_turn[0].score, 1);
  EXPECT_DOUBLE_EQ(ok.reward, 1.0);
  // Nothing in either turn: turn 1 is empty.
  CheckerVerdict empty = Check(task, {{}, {}});
  EXPECT_EQ(empty.error_type, "multi_turn:empty_turn_model_response");
  EXPECT_EQ(empty.error_turn, 1);
  EXPECT_DOUBLE_EQ(empty.reward, 0.5);
  // A mutation in the cannot-serve turn shows up at the next checked turn.
  CheckerVerdict later = Check(task, {{{"mkdir(dir_name='x')"}}, {{"ls()"}}});
  EXPECT_FALSE(later.per_turn[0].state_ok);  // reported, not checked
  EXPECT_EQ(later.per_turn[0].score, 1);
  EXPECT_EQ(later.error_type, "multi_turn:instance_state_mismatch");
  EXPECT_EQ(later.error_turn, 1);
}

TEST_F(CheckerTest, ResponsesOfEarlierTurnsCountAsMultiset) {
  BfclTask task = WithTruth("multi_turn_base_0", {{"ls()"}, {"ls()"}});
  // Both ls results produced in turn 0; turn 1 only does something else.
  CheckerVerdict v = Check(task, {{{"ls()", "ls()"}}, {{"pwd()"}}});
  EXPECT_TRUE(v.valid) << v.error_message;
  // Duplicates need as many copies.
  BfclTask dup = WithTruth("multi_turn_base_0", {{"ls()", "ls()"}});
  CheckerVerdict d = Check(dup, {{{"ls()"}}});
  EXPECT_EQ(d.error_type, "multi_turn:execution_response_mismatch");
  EXPECT_EQ(d.missing_items.size(), 1u);
}

TEST_F(CheckerTest, ErrorStringGroundTruthResultsMustMatchExactly) {
  BfclTask task = WithTruth("multi_turn_base_0", {{"cd()"}, {"cd(folder='nowhere')"}});
  CheckerVerdict same = Check(task, {{{"cd()"}}, {{"cd(folder='nowhere')"}}});
  EXPECT_TRUE(same.valid) << same.error_message;
  // Another error text is not good enough.
  CheckerVerdict other = Check(task, {{{"cd(bogus=1)"}}, {{"cd(folder='nowhere')"}}});
  EXPECT_EQ(other.error_type, "multi_turn:execution_response_mismatch");
  EXPECT_EQ(other.error_turn, 0);
  ASSERT_EQ(other.missing_items.size(), 1u);
  EXPECT_EQ(other.missing_items[0],
            "Error during execution: GorillaFileSystem.cd() missing 1 required positional argument: 'folder'");
  CheckerVerdict dict_error = Check(task, {{{"cd()"}}, {{"cd(folder='elsewhere')"}}});
  EXPECT_EQ(dict_error.error_type, "multi_turn:execution_response_mismatch");
  EXPECT_EQ(dict_error.error_turn, 1);
}

TEST_F(CheckerTest, FirstMismatchingClassInInvolvedOrder) {
  BfclTask task = WithTruth("multi_turn_base_4", {{"ls()"}});
  ASSERT_EQ(task.involved_classes, (std::vector<std::string>{"TwitterAPI", "GorillaFileSystem"}));
  CheckerVerdict fs_only = Check(task, {{{"ls()", "mkdir(dir_name='x')"}}});
  EXPECT_EQ(fs_only.mismatch_class, "GorillaFileSystem");
  CheckerVerdict both = Check(task, {{{"ls()", "mkdir(dir_name='x')", "post_tweet(content='hi')"}}});
  EXPECT_EQ(both.error_type, "multi_turn:instance_state_mismatch");
  EXPECT_EQ(both.mismatch_class, "TwitterAPI");
  EXPECT_EQ(both.error_message, "Model instance for TwitterAPI does not match the state with ground truth instance.");
}

TEST_F(CheckerTest, InferenceError) {
  CheckerVerdict v = InferenceErrorVerdict();
  EXPECT_FALSE(v.valid);
  EXPECT_EQ(v.error_type, "multi_turn:inference_error");
  EXPECT_EQ(v.error_message, "Error during inference phase. Model did not output a list of model responses.");
  EXPECT_DOUBLE_EQ(v.reward, 0.0);
}

TEST(CheckerStandalone, PublicStatesEqualHasPythonSemantics) {
  auto dict = [](std::initializer_list<PyDict::Entry> e) { return PyValue::Dict(PyDict(e)); };
  PyValue truth = dict({{PyValue::Str("a"), PyValue::Int(1)},
                        {PyValue::Str("b"), dict({{PyValue::Str("x"), PyValue::Float(2.0)},
                                                  {PyValue::Str("y"), PyValue::Bool(true)}})},
                        {PyValue::Str("s"), PyValue::Set({PyValue::Str("p"), PyValue::Str("q")})},
                        {PyValue::Str("_private"), PyValue::Int(5)}});
  PyValue model = dict({{PyValue::Str("s"), PyValue::Set({PyValue::Str("q"), PyValue::Str("p")})},
                        {PyValue::Str("b"), dict({{PyValue::Str("y"), PyValue::Int(1)},
                                                  {PyValue::Str("x"), PyValue::Int(2)}})},
                        {PyValue::Str("a"), PyValue::Float(1.0)},
                        {PyValue::Str("_private"), PyValue::Int(6)},
                        {PyValue::Str("extra"), PyValue::Int(0)}});
  EXPECT_TRUE(PublicStatesEqual(model, truth));
  std::vector<std::string> diff;
  PyValue list_model = dict({{PyValue::Str("a"), PyValue::List({PyValue::Int(1)})}});
  PyValue tuple_truth = dict({{PyValue::Str("a"), PyValue::Tuple({PyValue::Int(1)})},
                              {PyValue::Str("b"), PyValue::None()}});
  EXPECT_FALSE(PublicStatesEqual(list_model, tuple_truth, &diff));
  EXPECT_EQ(diff, (std::vector<std::string>{"a", "b"}));  // list != tuple; b missing
}

TEST(CheckerStandalone, PrepareTurnStepsDropsUndecodableAndEmptySteps) {
  std::vector<CallList> steps = PrepareTurnSteps(
      DecodeMode::kBfclPrompting, {"[ls(a=True)]", "I cannot do that.", "[]", "", "cd(folder='x'), pwd()"});
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0], (CallList{"ls(a=True)"}));
  EXPECT_EQ(steps[1], (CallList{"cd(folder='x')", "pwd()"}));
  std::vector<CallList> fc = PrepareTurnSteps(DecodeMode::kBfclFunctionCalling,
                                              {R"([{"cd": "{\"folder\": \"x\"}"}])", "plain text", ""});
  ASSERT_EQ(fc.size(), 1u);
  EXPECT_EQ(fc[0], (CallList{"cd(folder='x')"}));
  std::vector<CallList> et = PrepareTurnSteps(
      DecodeMode::kEnvTuning,
      {"<think>a</think><tool_call>[{\"name\": \"ls\", \"arguments\": {}}]</tool_call>", "<think>b</think><answer>done</answer>"});
  ASSERT_EQ(et.size(), 1u);
  EXPECT_EQ(et[0], (CallList{"ls()"}));
  EXPECT_TRUE(IsEmptyExecuteResponse({}));
  EXPECT_TRUE(IsEmptyExecuteResponse({""}));
  EXPECT_FALSE(IsEmptyExecuteResponse({"", ""}));
  EXPECT_EQ(DropEmptySteps({{}, {""}, {"ls()"}}).size(), 1u);
}

}  // namespace
}  // namespace envtune
