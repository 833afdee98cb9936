// Acceptance: the ground-truth policy scores 100% on every category over all 800 BFCL V3
// multi-turn tasks in BFCL's prompting format (BFCL's runner semantics and checker).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "actor/evaluation.h"
#include "gtest/gtest.h"
#include "model/cli.h"
#include "model/text/text_tools.h"

namespace envtune {
namespace {

TEST(EvaluationSlowTest, GroundTruthScoresFullMarksOnAllTasks) {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  const std::string data = std::string(s != nullptr ? s : ".") + "/data";
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(data + "/bfcl");
  if (!catalog.ok()) GTEST_SKIP() << "BFCL data not found: " << catalog.status();
  EpisodeEngine engine(&*catalog, EpisodeEngineOptions{});
  std::unique_ptr<EvalEnv> env = InProcessEvalEnv(&engine);
  std::unique_ptr<EvalPolicy> gt = GroundTruthEvalPolicy(&*catalog);
  TaskSelection sel;
  sel.subset = "all";
  absl::StatusOr<std::vector<std::string>> ids = SelectEvalTasks(*catalog, data, sel);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 800u);
  EvalOptions o;
  o.batch_size = 64;
  absl::StatusOr<std::vector<TaskEvaluation>> r = EvaluateTasks(*gt, *env, *catalog, *ids, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const TaskEvaluation& t : *r) {
    EXPECT_TRUE(t.verdict.valid) << t.task_id << ": " << t.verdict.error_type << " "
                                 << t.verdict.error_message;
  }
  EvalReport rep = BuildEvalReport(*r);
  ASSERT_EQ(rep.categories.size(), 4u);
  for (const auto& [cat, row] : rep.categories) {
    EXPECT_EQ(row.tasks, 200) << cat;
    EXPECT_DOUBLE_EQ(row.accuracy, 1.0) << cat;
    EXPECT_DOUBLE_EQ(row.mean_progress, 1.0) << cat;
  }
}

// `envtune eval --model DIR` end to end with a tiny random Qwen2 on the full BFCL prompts: two
// greedy runs write byte-identical reports and results.
TEST(EvaluationSlowTest, EvalCommandWithTinyModelIsDeterministic) {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  const std::string data = std::string(s != nullptr ? s : ".") + "/data";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
  if (!tok.ok() || !std::filesystem::exists(data + "/bfcl")) GTEST_SKIP() << "data or tokenizer missing";
  namespace fs = std::filesystem;
  const std::string base = (fs::temp_directory_path() / ("envtune_eval_slow_" + std::to_string(::getpid()))).string();
  TinyQwen2Spec spec;
  spec.hidden_size = 16;
  spec.intermediate_size = 32;
  spec.num_hidden_layers = 1;
  spec.num_attention_heads = 2;
  spec.num_key_value_heads = 1;
  ASSERT_TRUE(InitTinyQwen2(spec, **tok, base + "/model").ok());
  std::string reports[2], results[2];
  for (int run = 0; run < 2; ++run) {
    const std::string out_dir = base + "/out" + std::to_string(run);
    std::ostringstream out, err;
    ASSERT_EQ(RunEvalCommand({"--model", base + "/model", "--split", "base,long_context", "--subset",
                              "val", "--limit", "2", "--max_new_tokens", "4", "--out", out_dir,
                              "--quiet"},
                             data, out, err),
              0)
        << err.str();
    std::ifstream a(out_dir + "/report.json"), b(out_dir + "/results.jsonl");
    std::stringstream sa, sb;
    sa << a.rdbuf();
    sb << b.rdbuf();
    reports[run] = sa.str();
    results[run] = sb.str();
  }
  EXPECT_FALSE(reports[0].empty());
  EXPECT_EQ(reports[0], reports[1]);
  EXPECT_EQ(results[0], results[1]);
  fs::remove_all(base);
}

}  // namespace
}  // namespace envtune
