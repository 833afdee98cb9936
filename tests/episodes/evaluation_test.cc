// The lockstep evaluation runner: ground-truth replay scores 100%, answering without calls scores
// what BFCL's checker gives it, task selection, determinism, remote env servers, and the
// real-model path with a tiny random Qwen2. (Reports and the CLI: tests/deploy/commands/.)
#include "episodes/evaluation.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

#include "envserver/env_service.h"
#include "envserver/prompts.h"
#include "episodes/task_selection.h"
#include "gtest/gtest.h"
#include "model/model_tools.h"
#include "model/qwen2.h"
#include "model/text/text_tools.h"
#include "tests/episodes/evaluation_fixture.h"
#include "tests/model/tiny_test_model.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

using testing_eval::DataDir;
using testing_eval::EvaluationTest;

// Tasks and correct verdicts per short category.
struct CategoryCount {
  int tasks = 0;
  int correct = 0;
  double progress = 0;
};
std::map<std::string, CategoryCount> CountByCategory(const std::vector<TaskEvaluation>& results) {
  std::map<std::string, CategoryCount> out;
  for (const TaskEvaluation& r : results) {
    CategoryCount& c = out[r.category];
    ++c.tasks;
    c.correct += r.verdict.valid ? 1 : 0;
    c.progress += r.progress;
  }
  return out;
}

void ExpectAllValid(const std::vector<TaskEvaluation>& results) {
  for (const TaskEvaluation& r : results) {
    EXPECT_TRUE(r.verdict.valid) << r.task_id << ": " << r.verdict.error_type << " "
                                 << r.verdict.error_message << " " << r.error;
    EXPECT_EQ(r.finish_reason, "done") << r.task_id;
    EXPECT_DOUBLE_EQ(r.progress, 1.0) << r.task_id;
  }
}

TEST_F(EvaluationTest, GroundTruthPolicyScoresFullMarksInEveryFormat) {
  std::unique_ptr<EvalPolicy> gt = GroundTruthEvalPolicy(catalog_);
  for (v1::OutputFormat format : {v1::OUTPUT_FORMAT_BFCL_PROMPTING, v1::OUTPUT_FORMAT_ENVTUNING,
                                  v1::OUTPUT_FORMAT_HERMES}) {
    SCOPED_TRACE(v1::OutputFormat_Name(format));
    EvalOptions o;
    o.format = format;
    o.batch_size = 8;
    absl::StatusOr<std::vector<TaskEvaluation>> r = EvaluateTasks(*gt, *env_, *catalog_, Sample(12), o);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->size(), 48u);
    ExpectAllValid(*r);
    std::map<std::string, CategoryCount> counts = CountByCategory(*r);
    ASSERT_EQ(counts.size(), 4u);
    for (const auto& [cat, c] : counts) {
      EXPECT_EQ(c.tasks, 12) << cat;
      EXPECT_EQ(c.correct, 12) << cat;
    }
  }
}

// Acceptance: every one of the 800 tasks, every format, 100% per category.
TEST_F(EvaluationTest, GroundTruthPolicyScoresFullMarksOnAllTasks) {
  std::unique_ptr<EvalPolicy> gt = GroundTruthEvalPolicy(catalog_);
  TaskSelection sel;
  sel.subset = "all";
  absl::StatusOr<std::vector<std::string>> ids = SelectEvalTasks(*catalog_, DataDir(), sel);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 800u);
  for (v1::OutputFormat format : {v1::OUTPUT_FORMAT_BFCL_PROMPTING, v1::OUTPUT_FORMAT_ENVTUNING,
                                  v1::OUTPUT_FORMAT_HERMES}) {
    SCOPED_TRACE(v1::OutputFormat_Name(format));
    EvalOptions o;
    o.format = format;
    o.batch_size = 64;
    absl::StatusOr<std::vector<TaskEvaluation>> r = EvaluateTasks(*gt, *env_, *catalog_, *ids, o);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectAllValid(*r);
    std::map<std::string, CategoryCount> counts = CountByCategory(*r);
    ASSERT_EQ(counts.size(), 4u);
    for (const auto& [cat, c] : counts) {
      EXPECT_EQ(c.tasks, 200) << cat;
      EXPECT_EQ(c.correct, 200) << cat;
      EXPECT_DOUBLE_EQ(c.progress, 200.0) << cat;
    }
  }
}

TEST_F(EvaluationTest, NoCallsPolicyGetsBfclsVerdict) {
  std::unique_ptr<EvalPolicy> none = NoCallsEvalPolicy();
  EvalOptions o;
  absl::StatusOr<std::vector<TaskEvaluation>> r = EvaluateTasks(*none, *env_, *catalog_, Sample(6), o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const TaskEvaluation& t : *r) {
    // BFCL: every turn has an empty response; the first turn with ground truth fails.
    const BfclTask* task = catalog_->Find(t.task_id);
    int first_checked = -1;
    for (size_t i = 0; i < task->ground_truth.size(); ++i) {
      if (!task->ground_truth[i].empty()) {
        first_checked = static_cast<int>(i);
        break;
      }
    }
    ASSERT_GE(first_checked, 0);
    EXPECT_FALSE(t.verdict.valid) << t.task_id;
    EXPECT_EQ(t.verdict.error_type, kErrEmptyTurn) << t.task_id;
    EXPECT_EQ(t.verdict.error_turn, first_checked) << t.task_id;
    EXPECT_EQ(t.finish_reason, "done");
    EXPECT_EQ(t.turn_replies.size(), task->questions.size()) << t.task_id;
    for (const auto& turn : t.turn_replies) EXPECT_EQ(turn.size(), 1u);
  }
  int empty_turn = 0;
  for (const TaskEvaluation& t : *r) empty_turn += t.verdict.error_type == kErrEmptyTurn;
  EXPECT_EQ(empty_turn, 24);
}

TEST_F(EvaluationTest, StepLimitForceQuitsLikeBfcl) {
  // A policy that calls forever: BFCL force-quits after the 21st executed step of the first turn,
  // so the recorded turns are fewer than the task's and the verdict is force_terminated.
  class Looper : public EvalPolicy {
   public:
    std::string name() const override { return "looper"; }
    absl::StatusOr<std::vector<EvalReply>> Reply(const std::vector<EvalEpisodeView>& b) override {
      std::vector<EvalReply> out(b.size());
      for (EvalReply& r : out) r.text = "[ls()]";
      return out;
    }
  } looper;
  EvalOptions o;
  absl::StatusOr<TaskEvaluation> r = EvaluateTask(looper, *env_, *catalog_, "multi_turn_base_0", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, "force_quit");
  ASSERT_EQ(r->turn_replies.size(), 1u);
  EXPECT_EQ(r->turn_replies[0].size(), 21u);
  EXPECT_FALSE(r->verdict.valid);
  EXPECT_EQ(r->verdict.error_type, kErrForceTerminated);
  v1::EpisodeStats st = EvalEpisodeStats(*r, "lease/0", 3);
  EXPECT_FALSE(st.valid());
  EXPECT_EQ(st.policy_version(), 3u);
}

TEST_F(EvaluationTest, PolicyErrorsAreInferenceErrors) {
  class Broken : public EvalPolicy {
   public:
    std::string name() const override { return "broken"; }
    absl::StatusOr<std::vector<EvalReply>> Reply(const std::vector<EvalEpisodeView>&) override {
      return absl::InternalError("boom");
    }
  } broken;
  absl::StatusOr<std::vector<TaskEvaluation>> r =
      EvaluateTasks(broken, *env_, *catalog_, {"multi_turn_base_0", "multi_turn_base_1"}, EvalOptions{});
  ASSERT_TRUE(r.ok());
  for (const TaskEvaluation& t : *r) {
    EXPECT_EQ(t.finish_reason, "policy_error");
    EXPECT_EQ(t.verdict.error_type, kErrInferenceError);
    EXPECT_EQ(t.error, "boom");
  }
  EXPECT_FALSE(EvaluateTasks(broken, *env_, *catalog_, {"nope_1"}, EvalOptions{}).ok());
  EvalOptions bad;
  bad.batch_size = 0;
  EXPECT_FALSE(EvaluateTasks(broken, *env_, *catalog_, {"multi_turn_base_0"}, bad).ok());
}

TEST_F(EvaluationTest, SelectsSplitsCategoriesTaskFilesAndLimits) {
  TaskSelection sel;  // default: val + test of every category
  absl::StatusOr<std::vector<std::string>> ids = SelectEvalTasks(*catalog_, DataDir(), sel);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->size(), 400u);
  sel.categories = {"base", "multi_turn_miss_param"};
  sel.subset = "val";
  ids = SelectEvalTasks(*catalog_, DataDir(), sel);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 50u);
  for (const std::string& id : *ids) {
    EXPECT_TRUE(ShortCategory(id) == "base" || ShortCategory(id) == "miss_param") << id;
  }
  sel.limit = 7;
  EXPECT_EQ(SelectEvalTasks(*catalog_, DataDir(), sel)->size(), 7u);
  sel = TaskSelection{};
  sel.subset = "all";
  EXPECT_EQ(SelectEvalTasks(*catalog_, DataDir(), sel)->size(), 800u);
  sel.subset = "train";
  EXPECT_EQ(SelectEvalTasks(*catalog_, DataDir(), sel)->size(), 400u);
  const std::string file = (fs::temp_directory_path() / ("envtune_eval_ids_" + std::to_string(::getpid()))).string();
  { std::ofstream(file) << "# comment\nmulti_turn_base_0\n\nmulti_turn_long_context_3\n"; }
  sel.subset = "all";
  sel.tasks_file = file;
  ids = SelectEvalTasks(*catalog_, DataDir(), sel);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<std::string>{"multi_turn_base_0", "multi_turn_long_context_3"}));
  { std::ofstream(file) << "multi_turn_base_0\nbogus_id\n"; }
  EXPECT_FALSE(SelectEvalTasks(*catalog_, DataDir(), sel).ok());
  fs::remove(file);
  sel = TaskSelection{};
  sel.categories = {"simple"};
  EXPECT_FALSE(SelectEvalTasks(*catalog_, DataDir(), sel).ok());
  sel = TaskSelection{};
  sel.subset = "holdout";
  EXPECT_FALSE(SelectEvalTasks(*catalog_, DataDir(), sel).ok());
  EXPECT_EQ(ShortCategory("multi_turn_miss_func_12"), "miss_func");
  EXPECT_EQ(ShortCategory("multi_turn_long_context"), "long_context");
}

// The real engine with every shown message cut to 300 bytes and at most 2 Hermes tools, so a tiny model's prefill stays
// short (the full prompts are exercised in tests/deploy/commands/eval_command_slow_test.cc).
class TrimmedEnv : public EvalEnv {
 public:
  explicit TrimmedEnv(EvalEnv* inner) : inner_(inner) {}
  absl::StatusOr<v1::StartEpisodeResponse> Start(const std::string& id,
                                                 const v1::EpisodeOptions& o) override {
    absl::StatusOr<v1::StartEpisodeResponse> r = inner_->Start(id, o);
    if (r.ok()) {
      for (v1::ChatMessage& m : *r->mutable_messages()) Trim(m);
      while (r->tools_json_size() > 2) r->mutable_tools_json()->RemoveLast();
    }
    return r;
  }
  absl::StatusOr<v1::StepResponse> Step(const std::string& state, const std::string& out) override {
    absl::StatusOr<v1::StepResponse> r = inner_->Step(state, out);
    if (r.ok()) {
      for (v1::ChatMessage& m : *r->mutable_observation()) Trim(m);
      while (r->tools_json_size() > 2) r->mutable_tools_json()->RemoveLast();
    }
    return r;
  }

 private:
  static void Trim(v1::ChatMessage& m) {
    if (m.content().size() > 300) m.set_content(m.content().substr(0, 300));
  }
  EvalEnv* inner_;
};

TEST_F(EvaluationTest, TinyRandomQwen2RunsTheModelPathDeterministically) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
  if (!tok.ok()) GTEST_SKIP() << "shipped tokenizer not found";
  const std::string dir = (fs::temp_directory_path() / ("envtune_eval_tiny_" + std::to_string(::getpid()))).string();
  const TinyQwen2Spec spec = TestTinySpec();
  ASSERT_TRUE(InitTinyQwen2(spec, **tok, dir).ok());
  absl::StatusOr<Policy> model = LoadPolicy(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  ModelPolicyOptions mo = DefaultModelPolicyOptions();
  mo.generation.max_new_tokens = 8;
  absl::StatusOr<std::unique_ptr<EvalPolicy>> policy = ModelEvalPolicy(model->get(), tok->get(), mo);
  ASSERT_TRUE(policy.ok()) << policy.status();
  TrimmedEnv trimmed(env_.get());
  const std::vector<std::string> ids = {"multi_turn_base_0", "multi_turn_miss_func_0",
                                        "multi_turn_miss_param_0"};
  for (v1::OutputFormat format : {v1::OUTPUT_FORMAT_BFCL_PROMPTING, v1::OUTPUT_FORMAT_HERMES}) {
    EvalOptions o;
    o.batch_size = 2;
    o.format = format;
    std::string first;
    for (int run = 0; run < 2; ++run) {
      absl::StatusOr<std::vector<TaskEvaluation>> r = EvaluateTasks(**policy, trimmed, *catalog_, ids, o);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->size(), 3u);
      std::string dump;
      for (const TaskEvaluation& t : *r) {
        EXPECT_TRUE(t.finish_reason == "done" || t.finish_reason == "force_quit")
            << t.finish_reason << t.error;
        EXPECT_GT(t.replies, 0);
        EXPECT_GT(t.generated_tokens, 0);
        EXPECT_LE(t.generated_tokens, 8 * t.replies);
        EXPECT_FALSE(t.verdict.error_type.empty() && !t.verdict.valid);
        // The conversation holds the model's replies as assistant messages.
        int assistant = 0;
        for (const Json& m : t.messages) assistant += m["role"] == "assistant";
        EXPECT_EQ(assistant, t.replies);
        dump += TaskEvaluationJson(t).dump();
      }
      if (run == 0) {
        first = dump;
      } else {
        EXPECT_EQ(dump, first);  // greedy evaluation is deterministic
      }
    }
  }
  // A context budget smaller than the prompt ends the episode without a reply.
  mo.max_context_tokens = 16;
  absl::StatusOr<std::unique_ptr<EvalPolicy>> small = ModelEvalPolicy(model->get(), tok->get(), mo);
  ASSERT_TRUE(small.ok());
  absl::StatusOr<TaskEvaluation> r = EvaluateTask(**small, trimmed, *catalog_, "multi_turn_base_0", EvalOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, "context_budget");
  EXPECT_EQ(r->replies, 0);
  EXPECT_EQ(r->verdict.error_type, kErrForceTerminated);
  fs::remove_all(dir);
}

TEST_F(EvaluationTest, RemoteEnvServersGiveTheSameResultsAsInProcess) {
  EnvServiceOptions so;
  so.data_dir = DataDir();
  absl::StatusOr<std::unique_ptr<EnvServer>> server = EnvServer::Start(so, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  EnvClient client(absl::StrCat("127.0.0.1:", (*server)->port()));
  std::unique_ptr<EvalEnv> remote = RemoteEvalEnv(&client);
  std::unique_ptr<EvalPolicy> gt = GroundTruthEvalPolicy(catalog_);
  EvalOptions o;
  o.format = v1::OUTPUT_FORMAT_HERMES;
  const std::vector<std::string> ids = Sample(2);
  absl::StatusOr<std::vector<TaskEvaluation>> a = EvaluateTasks(*gt, *remote, *catalog_, ids, o);
  absl::StatusOr<std::vector<TaskEvaluation>> b = EvaluateTasks(*gt, *env_, *catalog_, ids, o);
  ASSERT_TRUE(a.ok() && b.ok());
  ExpectAllValid(*a);
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ(TaskEvaluationJson((*a)[i]).dump(), TaskEvaluationJson((*b)[i]).dump());
  }
  (*server)->Shutdown();
  // A dead server fails the task as an env error, not the run.
  EnvClientOptions co;
  co.max_attempts = 1;
  co.start_timeout = absl::Milliseconds(300);
  EnvClient dead(absl::StrCat("127.0.0.1:", (*server)->port()), co);
  std::unique_ptr<EvalEnv> gone = RemoteEvalEnv(&dead);
  absl::StatusOr<TaskEvaluation> r = EvaluateTask(*gt, *gone, *catalog_, ids[0], o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, "env_error");
  EXPECT_FALSE(r->verdict.valid);
}

}  // namespace
}  // namespace envtune
