// deploy/run_report.h: following a JSON-lines file, the warm-start line, the trend fit, the
// per-stage summary of metrics.jsonl, the held-out eval report and the HTML page.
#include "deploy/run_report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace envtune {
namespace {

TEST(JsonLinesTailTest, ReturnsEachCompleteLineOnceAndWaitsForAPartialOne) {
  const std::string path = ::testing::TempDir() + "/tail.jsonl";
  std::filesystem::remove(path);
  JsonLinesTail tail(path);
  EXPECT_TRUE(tail.ReadNew().empty());  // no file yet
  {
    std::ofstream out(path);
    out << "{\"step\": 1}\n{\"step\": 2}\nnot json\n{\"step\": ";
  }
  std::vector<nlohmann::json> lines = tail.ReadNew();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_EQ(lines[1]["step"], 2);
  EXPECT_TRUE(tail.ReadNew().empty());
  std::ofstream(path, std::ios::app) << "3}\n";
  lines = tail.ReadNew();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["step"], 3);
}

TEST(WarmStartProgressLineTest, ShowsStepsLossElapsedAndTimeLeft) {
  EXPECT_EQ(WarmStartProgressLine(nlohmann::json::parse(
                R"({"step": 20, "steps": 80, "epoch": 10, "loss": 2.3456, "elapsed_s": 35})")),
            "warm start: step 20/80 | loss 2.346 | 35s | about 1m 45s left");
  // A non-finite loss is written as null.
  EXPECT_EQ(WarmStartProgressLine(nlohmann::json::parse(
                R"({"step": 80, "steps": 80, "loss": null, "elapsed_s": 140})")),
            "warm start: step 80/80 | loss - | 2m 20s | about 0s left");
}

TEST(FitTrendTest, SlopeAndTOfKnownSeries) {
  // y = 1, 3, 2, 4: slope 0.8, residuals -0.3 0.9 -0.9 0.3, rss 1.8, sxx 5,
  // se = sqrt(1.8 / 2 / 5), t = 0.8 / se.
  const Trend trend = FitTrend({1, 3, 2, 4});
  EXPECT_NEAR(trend.slope, 0.8, 1e-12);
  EXPECT_NEAR(trend.t, 0.8 / std::sqrt(1.8 / 2 / 5), 1e-9);
  EXPECT_TRUE(std::isinf(FitTrend({1, 2, 3}).t));  // an exact line
  EXPECT_EQ(FitTrend({5}).slope, 0);
  EXPECT_EQ(FitTrend({1, 2}).t, 0);  // too few points for a t statistic
}

nlohmann::json Line(int step, int batch_stage, const char* name, double reward) {
  nlohmann::json j;
  j["step"] = step;
  j["batch_stage"] = batch_stage;
  j["batch_stage_name"] = name;
  j["metrics"]["reward/mean"] = reward;
  return j;
}

TEST(SummarizeStagesTest, GroupsStepsByTheStageTheirBatchCameFrom) {
  std::vector<nlohmann::json> lines = {nlohmann::json::parse(R"({"step": 0, "metrics": {}})"),
                                       Line(1, 1, "syntax", 1.0), Line(2, 1, "syntax", 1.5),
                                       Line(3, 2, "hints", 0.1),  Line(4, 2, "hints", 0.2),
                                       Line(5, 2, "hints", 0.3),  Line(6, 2, "hints", 0.5)};
  const std::vector<StageSummary> stages = SummarizeStages(lines);
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].stage, 1);
  EXPECT_EQ(stages[0].name, "syntax");
  EXPECT_EQ(stages[0].steps, (std::vector<int64_t>{1, 2}));
  EXPECT_DOUBLE_EQ(stages[0].first_mean, 1.25);  // fewer than 3 steps: all of them
  EXPECT_EQ(stages[1].steps, (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_NEAR(stages[1].first_mean, 0.2, 1e-12);
  EXPECT_NEAR(stages[1].last_mean, (0.2 + 0.3 + 0.5) / 3, 1e-12);
  EXPECT_NEAR(stages[1].mean, 0.275, 1e-12);
  EXPECT_GT(stages[1].trend.slope, 0);
  const std::map<std::string, Series> series = StageRewardSeries(stages);
  ASSERT_EQ(series.count("stage 2 hints"), 1u);
  EXPECT_EQ(series.at("stage 2 hints").front(), (std::pair<double, double>{3, 0.1}));
}

TEST(HeldOutEvalTest, ReadsTheOverallFiguresOfAnEvalReport) {
  const std::string dir = ::testing::TempDir() + "/eval_report";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/report.json")
      << R"({"meta": {"model": "runs/x/sft"}, "overall": {"tasks": 6, "correct": 0,
             "accuracy": 0.0, "mean_progress": 0.125}})";
  absl::StatusOr<HeldOutEval> eval = ReadHeldOutEval(dir, "before RL");
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->model, "runs/x/sft");
  EXPECT_EQ(HeldOutEvalLine(*eval),
            "held-out eval before RL: 6 tasks, accuracy 0.000, mean progress 0.125");
  std::ofstream(dir + "/report.json") << "{}";
  EXPECT_FALSE(ReadHeldOutEval(dir, "x").ok());
  EXPECT_FALSE(ReadHeldOutEval(dir + "/missing", "x").ok());
}

TEST(RenderRunReportHtmlTest, InlinesThePlotAndTabulatesStagesAndEvals) {
  RunReport report;
  report.title = "envtune <run>";
  report.run_dir = "runs/latest";
  report.warm_start = "warm start: 40 steps";
  report.stages = SummarizeStages({Line(1, 1, "syntax", 1.0), Line(2, 1, "syntax", 1.5),
                                   Line(3, 1, "syntax", 1.7)});
  report.evals.push_back(HeldOutEval{"after RL", "ckpt", 3, 0.0, 0.25});
  report.svg = "<svg id=\"plot\"></svg>";
  const std::string html = RenderRunReportHtml(report);
  EXPECT_NE(html.find("<title>envtune &lt;run&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("<svg id=\"plot\"></svg>"), std::string::npos);
  EXPECT_NE(html.find("<td>syntax</td><td>1-3</td><td>1.400</td><td>1.400</td>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("1.000 1.500 1.700"), std::string::npos);
  EXPECT_NE(html.find("<td>after RL</td><td>ckpt</td><td>3</td><td>0.000</td><td>0.250</td>"),
            std::string::npos);
  EXPECT_NE(html.find("warm start: 40 steps"), std::string::npos);
}

}  // namespace
}  // namespace envtune
