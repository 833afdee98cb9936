// `envtune eval` and its report: the command writes byte-identical reports for equal runs,
// refuses bad flags as usage errors, and the report aggregates per category in BFCL's way
// (unweighted mean over categories, failure types, finish reasons).
#include "deploy/commands/eval_command.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "deploy/commands/eval_report.h"
#include "envserver/checker.h"
#include "episodes/evaluation.h"
#include "gtest/gtest.h"
#include "tests/episodes/evaluation_fixture.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

using testing_eval::DataDir;
using testing_eval::EvaluationTest;

TEST_F(EvaluationTest, ReportOfGroundTruthIsFullMarksPerCategory) {
  std::unique_ptr<EvalPolicy> gt = GroundTruthEvalPolicy(catalog_);
  EvalOptions o;
  o.batch_size = 8;
  absl::StatusOr<std::vector<TaskEvaluation>> r = EvaluateTasks(*gt, *env_, *catalog_, Sample(3), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EvalReport rep = BuildEvalReport(*r);
  ASSERT_EQ(rep.categories.size(), 4u);
  for (const auto& [cat, row] : rep.categories) {
    EXPECT_EQ(row.tasks, 3) << cat;
    EXPECT_DOUBLE_EQ(row.accuracy, 1.0) << cat;
    EXPECT_DOUBLE_EQ(row.mean_progress, 1.0) << cat;
  }
  EXPECT_DOUBLE_EQ(rep.overall_accuracy, 1.0);
  EXPECT_TRUE(rep.failure_types.empty());
  EXPECT_EQ(rep.finish_reasons.at("done"), 12);
  // BFCL's category order in both renderings.
  const std::string md = EvalReportMarkdown(rep, Json{{"policy", "ground_truth"}});
  EXPECT_LT(md.find("| base |"), md.find("| miss_func |"));
  EXPECT_LT(md.find("| miss_param |"), md.find("| long_context |"));
  const Json j = EvalReportJson(rep, Json::object());
  EXPECT_EQ(j["categories"].begin().key(), "base");
}

TEST_F(EvaluationTest, ReportOfNoCallsCountsBfclFailureTypes) {
  std::unique_ptr<EvalPolicy> none = NoCallsEvalPolicy();
  absl::StatusOr<std::vector<TaskEvaluation>> r =
      EvaluateTasks(*none, *env_, *catalog_, Sample(6), EvalOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EvalReport rep = BuildEvalReport(*r);
  EXPECT_DOUBLE_EQ(rep.overall_accuracy, 0.0);
  EXPECT_EQ(rep.failure_types.at(kErrEmptyTurn), 24);
}

TEST_F(EvaluationTest, CommandWritesDeterministicReports) {
  const std::string out1 = (fs::temp_directory_path() / ("envtune_eval_a_" + std::to_string(::getpid()))).string();
  const std::string out2 = out1 + "_b";
  std::string first_report, first_results;
  for (const std::string& out_dir : {out1, out2}) {
    std::ostringstream out, err;
    int rc = RunEvalCommand({"--policy", "ground_truth", "--split", "base,miss_func", "--limit", "6",
                             "--out", out_dir, "--batch_size", "4"},
                            DataDir(), out, err);
    ASSERT_EQ(rc, 0) << err.str();
    EXPECT_NE(out.str().find("| base |"), std::string::npos) << out.str();
    EXPECT_NE(err.str().find("6/6"), std::string::npos);  // progress bar
    std::ifstream rj(out_dir + "/report.json"), rl(out_dir + "/results.jsonl");
    std::stringstream a, b;
    a << rj.rdbuf();
    b << rl.rdbuf();
    Json report = Json::parse(a.str());
    EXPECT_EQ(report["overall"]["tasks"], 6);
    EXPECT_DOUBLE_EQ(report["overall"]["accuracy"].get<double>(), 1.0);
    if (first_report.empty()) {
      first_report = a.str();
      first_results = b.str();
    } else {
      EXPECT_EQ(a.str(), first_report);
      EXPECT_EQ(b.str(), first_results);
    }
    EXPECT_TRUE(fs::exists(out_dir + "/report.md"));
    fs::remove_all(out_dir);
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunEvalCommand({"--policy", "model"}, DataDir(), out, err), 2);
  EXPECT_EQ(RunEvalCommand({"--policy", "oracle"}, DataDir(), out, err), 2);
  EXPECT_EQ(RunEvalCommand({"--policy", "no_calls", "--split", "nope"}, DataDir(), out, err), 2);
  EXPECT_EQ(RunEvalCommand({"--bogus"}, DataDir(), out, err), 2);
}

}  // namespace
}  // namespace envtune
