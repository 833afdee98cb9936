// What `envtune train` (and `envtune ablate`) report about a run besides the per-step progress
// lines:
// * JsonLinesTail follows a JSON-lines file that another process appends to (the warm start's
//   sft.progress_file) and returns each complete new line once; a partial last line waits for
//   its newline, a line that is not a JSON object is skipped.
// * WarmStartProgressLine: the terminal line for one warm-start step ("warm start: step 20/80 |
//   loss 2.345 | 35s | about 1m 40s left").
// * FitTrend: least-squares slope of y over x = 1..n and its t statistic (n - 2 degrees of
//   freedom; t = 0 when n < 3, +/-inf for an exact line).
// * SummarizeStages: per stage, the learner's batch reward (metrics "reward/mean") of the steps
//   whose batch was rolled out in that stage (metrics.jsonl's "batch_stage"), with the means of
//   the first and last 3 steps and the trend.
// * HeldOutEval / ReadHeldOutEval: the overall figures of an `envtune eval` report.json.
// * RenderRunReportHtml: <run_dir>/report.html, one self-contained page (the plot's SVG inline,
//   the per-stage table, the held-out evaluation before and after, the warm start's summary)
//   that any browser opens.
#ifndef ENVTUNE_DEPLOY_RUN_REPORT_H_
#define ENVTUNE_DEPLOY_RUN_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "deploy/plot.h"
#include "nlohmann/json.hpp"

namespace envtune {

class JsonLinesTail {
 public:
  explicit JsonLinesTail(std::string path) : path_(std::move(path)) {}
  // The complete lines appended since the last call (none while the file does not exist).
  std::vector<nlohmann::json> ReadNew();

 private:
  std::string path_;
  uint64_t offset_ = 0;
  std::string partial_;
};

// One line of sft.progress_file: {"step", "steps", "epoch", "loss", "elapsed_s"}.
std::string WarmStartProgressLine(const nlohmann::json& line);

struct Trend {
  double slope = 0, t = 0;
};
Trend FitTrend(const std::vector<double>& y);

struct StageSummary {
  int stage = 0;
  std::string name;
  std::vector<int64_t> steps;
  std::vector<double> rewards;  // reward/mean of each step, in step order
  double first_mean = 0, last_mean = 0, mean = 0;  // first / last min(3, n) steps, all
  Trend trend;
};
// `lines`: metrics.jsonl objects; lines without "batch_stage" or "reward/mean" are skipped.
std::vector<StageSummary> SummarizeStages(const std::vector<nlohmann::json>& lines);
// The reward per step of each stage, as plot series named "stage N NAME".
std::map<std::string, Series> StageRewardSeries(const std::vector<StageSummary>& stages);

struct HeldOutEval {
  std::string when;  // "before RL (warm start)", "after RL"
  std::string model;
  int tasks = 0;
  double accuracy = 0, mean_progress = 0;
};
// Reads <out_dir>/report.json of `envtune eval`.
absl::StatusOr<HeldOutEval> ReadHeldOutEval(const std::string& out_dir, const std::string& when);
// "held-out eval before RL (warm start): 6 tasks, accuracy 0.000, mean progress 0.125"
std::string HeldOutEvalLine(const HeldOutEval& eval);

struct RunReport {
  std::string title;
  std::string run_dir;
  std::string warm_start;  // one line about the warm start ("" = none)
  std::vector<StageSummary> stages;
  std::vector<HeldOutEval> evals;
  std::string svg;  // the plot (RenderLineChartSvg), inlined
};
std::string RenderRunReportHtml(const RunReport& report);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_RUN_REPORT_H_
