// `envtune eval` with a tiny random Qwen2 on the full BFCL prompts (long prefills: slow). The
// ground-truth acceptance over all 800 tasks is in tests/episodes/evaluation_test.cc.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "deploy/commands/eval_command.h"
#include "gtest/gtest.h"
#include "model/model_tools.h"
#include "model/text/text_tools.h"
#include "model/text/tokenizer.h"
#include "tests/model/tiny_test_model.h"

namespace envtune {
namespace {

// `envtune eval --model DIR` end to end with a tiny random Qwen2 on the full BFCL prompts: two
// greedy runs write byte-identical reports and results.
TEST(EvaluationSlowTest, EvalCommandWithTinyModelIsDeterministic) {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  const std::string data = std::string(s != nullptr ? s : ".") + "/data";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer("");
  if (!tok.ok() || !std::filesystem::exists(data + "/bfcl")) GTEST_SKIP() << "data or tokenizer missing";
  namespace fs = std::filesystem;
  const std::string base = (fs::temp_directory_path() / ("envtune_eval_slow_" + std::to_string(::getpid()))).string();
  const TinyQwen2Spec spec = TestTinySpec();
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
