#include "deploy/run_report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file.h"

namespace envtune {
namespace {

// "1m 40s", "35s".
std::string Duration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  return s >= 60 ? absl::StrFormat("%dm %02ds", s / 60, s % 60) : absl::StrFormat("%ds", s);
}

double MeanOf(const std::vector<double>& v, size_t from, size_t to) {
  double sum = 0;
  for (size_t i = from; i < to; ++i) sum += v[i];
  return to > from ? sum / static_cast<double>(to - from) : 0.0;
}

std::string Number(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.3f", v);
}

}  // namespace

std::vector<nlohmann::json> JsonLinesTail::ReadNew() {
  std::vector<nlohmann::json> out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return out;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<uint64_t>(size) < offset_) {  // replaced by a shorter file
    offset_ = 0;
    partial_.clear();
  }
  if (static_cast<uint64_t>(size) == offset_) return out;
  in.seekg(static_cast<std::streamoff>(offset_));
  std::string chunk(static_cast<size_t>(static_cast<uint64_t>(size) - offset_), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<size_t>(in.gcount()));
  offset_ += chunk.size();
  partial_ += chunk;
  size_t start = 0;
  for (size_t nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n', start)) {
    nlohmann::json j = nlohmann::json::parse(partial_.substr(start, nl - start), nullptr,
                                             /*allow_exceptions=*/false);
    if (j.is_object()) out.push_back(std::move(j));
    start = nl + 1;
  }
  partial_.erase(0, start);
  return out;
}

std::string WarmStartProgressLine(const nlohmann::json& line) {
  const int64_t step = line.value("step", int64_t{0});
  const int64_t steps = line.value("steps", int64_t{0});
  const double elapsed = line.value("elapsed_s", 0.0);
  const nlohmann::json& loss = line.contains("loss") ? line["loss"] : nlohmann::json();
  std::string out = absl::StrFormat("warm start: step %d/%d | loss %s | %s", step, steps,
                                    loss.is_number() ? Number(loss.get<double>()) : "-",
                                    Duration(elapsed));
  if (step > 0 && steps >= step) {
    absl::StrAppend(&out, " | about ",
                    Duration(elapsed / static_cast<double>(step) * static_cast<double>(steps - step)),
                    " left");
  }
  return out;
}

Trend FitTrend(const std::vector<double>& y) {
  Trend trend;
  const size_t count = y.size();
  if (count < 2) return trend;
  const double n = static_cast<double>(count);
  const double mx = (n + 1) / 2;
  const double my = MeanOf(y, 0, count);
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < count; ++i) {
    const double dx = static_cast<double>(i + 1) - mx;
    sxx += dx * dx;
    sxy += dx * (y[i] - my);
  }
  trend.slope = sxy / sxx;
  if (count < 3) return trend;
  double rss = 0;
  for (size_t i = 0; i < count; ++i) {
    const double r = y[i] - (my + trend.slope * (static_cast<double>(i + 1) - mx));
    rss += r * r;
  }
  const double se = std::sqrt(rss / (n - 2) / sxx);
  if (se > 0) {
    trend.t = trend.slope / se;
  } else if (trend.slope != 0) {
    trend.t = trend.slope > 0 ? std::numeric_limits<double>::infinity()
                              : -std::numeric_limits<double>::infinity();
  }
  return trend;
}

std::vector<StageSummary> SummarizeStages(const std::vector<nlohmann::json>& lines) {
  std::map<int, StageSummary> by_stage;
  for (const nlohmann::json& line : lines) {
    if (!line.contains("batch_stage") || !line["batch_stage"].is_number_integer()) continue;
    if (!line.contains("metrics") || !line["metrics"].is_object()) continue;
    const nlohmann::json& m = line["metrics"];
    if (!m.contains("reward/mean") || !m["reward/mean"].is_number()) continue;
    StageSummary& s = by_stage[line["batch_stage"].get<int>()];
    s.stage = line["batch_stage"].get<int>();
    s.name = line.value("batch_stage_name", s.name);
    s.steps.push_back(line.value("step", int64_t{0}));
    s.rewards.push_back(m["reward/mean"].get<double>());
  }
  std::vector<StageSummary> out;
  for (auto& [stage, s] : by_stage) {
    const size_t n = s.rewards.size(), k = std::min<size_t>(3, n);
    s.first_mean = MeanOf(s.rewards, 0, k);
    s.last_mean = MeanOf(s.rewards, n - k, n);
    s.mean = MeanOf(s.rewards, 0, n);
    s.trend = FitTrend(s.rewards);
    out.push_back(std::move(s));
  }
  return out;
}

std::map<std::string, Series> StageRewardSeries(const std::vector<StageSummary>& stages) {
  std::map<std::string, Series> series;
  for (const StageSummary& s : stages) {
    Series& points = series[absl::StrCat("stage ", s.stage, " ", s.name)];
    for (size_t i = 0; i < s.steps.size(); ++i) {
      points.emplace_back(static_cast<double>(s.steps[i]), s.rewards[i]);
    }
  }
  return series;
}

absl::StatusOr<HeldOutEval> ReadHeldOutEval(const std::string& out_dir, const std::string& when) {
  absl::StatusOr<std::string> text = ReadFileToString(out_dir + "/report.json");
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("overall") || !j["overall"].is_object()) {
    return absl::DataLossError(absl::StrCat(out_dir, "/report.json: no \"overall\" object"));
  }
  const nlohmann::json& overall = j["overall"];
  HeldOutEval eval;
  eval.when = when;
  if (j.contains("meta") && j["meta"].is_object()) eval.model = j["meta"].value("model", "");
  eval.tasks = overall.value("tasks", 0);
  eval.accuracy = overall.value("accuracy", 0.0);
  eval.mean_progress = overall.value("mean_progress", 0.0);
  return eval;
}

std::string HeldOutEvalLine(const HeldOutEval& eval) {
  return absl::StrFormat("held-out eval %s: %d tasks, accuracy %.3f, mean progress %.3f",
                         eval.when, eval.tasks, eval.accuracy, eval.mean_progress);
}

std::string RenderRunReportHtml(const RunReport& report) {
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", EscapeXml(report.title),
      "</title>\n<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
      "td:first-child,td:nth-child(2){text-align:left}</style></head><body>\n<h1>",
      EscapeXml(report.title), "</h1>\n<p>run directory: <code>", EscapeXml(report.run_dir),
      "</code> (metrics.jsonl holds every value below)</p>\n");
  if (!report.warm_start.empty()) {
    absl::StrAppend(&html, "<p>", EscapeXml(report.warm_start), "</p>\n");
  }
  absl::StrAppend(&html, report.svg, "\n<h2>Reward per stage</h2>\n",
                  "<p>The learner's batch reward per step, by the stage the batch was rolled out "
                  "in (stage 1: format reward, max 2; later stages: the stage's reward kind, "
                  "progress in [0, 1]). First/last: means of the first and last 3 steps; slope "
                  "and t: least-squares fit over the stage's steps.</p>\n<table>\n<tr><th>stage"
                  "</th><th>name</th><th>steps</th><th>first</th><th>last</th><th>mean</th>"
                  "<th>slope/step</th><th>t</th><th>rewards</th></tr>\n");
  for (const StageSummary& s : report.stages) {
    std::vector<std::string> rewards;
    for (double r : s.rewards) rewards.push_back(absl::StrFormat("%.3f", r));
    absl::StrAppend(
        &html, "<tr><td>", s.stage, "</td><td>", EscapeXml(s.name), "</td><td>",
        s.steps.empty() ? std::string("-")
                        : absl::StrCat(s.steps.front(), "-", s.steps.back()),
        "</td><td>", Number(s.first_mean), "</td><td>", Number(s.last_mean), "</td><td>",
        Number(s.mean), "</td><td>", absl::StrFormat("%+.4f", s.trend.slope), "</td><td>",
        Number(s.trend.t), "</td><td>", absl::StrJoin(rewards, " "), "</td></tr>\n");
  }
  absl::StrAppend(&html, "</table>\n");
  if (!report.evals.empty()) {
    absl::StrAppend(&html,
                    "<h2>Held-out evaluation</h2>\n<p>Greedy, BFCL's evaluation semantics "
                    "(envtune eval).</p>\n<table>\n<tr><th>when</th><th>model</th><th>tasks</th>"
                    "<th>accuracy</th><th>mean progress</th></tr>\n");
    for (const HeldOutEval& e : report.evals) {
      absl::StrAppend(&html, "<tr><td>", EscapeXml(e.when), "</td><td>", EscapeXml(e.model),
                      "</td><td>", e.tasks, "</td><td>", Number(e.accuracy), "</td><td>",
                      Number(e.mean_progress), "</td></tr>\n");
    }
    absl::StrAppend(&html, "</table>\n");
  }
  absl::StrAppend(&html, "</body></html>\n");
  return html;
}

}  // namespace envtune
