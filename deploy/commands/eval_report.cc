#include "deploy/commands/eval_report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "episodes/task_selection.h"

namespace envtune {

using Json = nlohmann::ordered_json;

EvalReport BuildEvalReport(const std::vector<TaskEvaluation>& results) {
  EvalReport rep;
  std::map<std::string, double> progress_sum;
  double all_progress = 0;
  for (const TaskEvaluation& r : results) {
    EvalReport::Row& row = rep.categories[r.category];
    ++row.tasks;
    if (r.verdict.valid) ++row.correct;
    progress_sum[r.category] += r.progress;
    ++rep.overall_tasks.tasks;
    if (r.verdict.valid) ++rep.overall_tasks.correct;
    all_progress += r.progress;
    if (!r.verdict.valid) ++rep.failure_types[r.verdict.error_type.empty() ? "unknown" : r.verdict.error_type];
    ++rep.finish_reasons[r.finish_reason];
  }
  double acc_sum = 0;
  for (auto& [cat, row] : rep.categories) {
    row.accuracy = row.tasks > 0 ? static_cast<double>(row.correct) / row.tasks : 0.0;
    row.mean_progress = row.tasks > 0 ? progress_sum[cat] / row.tasks : 0.0;
    acc_sum += row.accuracy;
  }
  rep.overall_accuracy = rep.categories.empty() ? 0.0 : acc_sum / rep.categories.size();
  if (rep.overall_tasks.tasks > 0) {
    rep.overall_tasks.accuracy = static_cast<double>(rep.overall_tasks.correct) / rep.overall_tasks.tasks;
    rep.overall_tasks.mean_progress = all_progress / rep.overall_tasks.tasks;
  }
  return rep;
}

namespace {
// Categories in BFCL's order, then any other names.
std::vector<std::string> OrderedCategories(const EvalReport& report) {
  std::vector<std::string> order;
  for (const std::string& c : TaskCatalog::Categories()) {
    std::string s = ShortCategory(c);
    if (report.categories.count(s)) order.push_back(s);
  }
  for (const auto& [c, row] : report.categories) {
    if (std::find(order.begin(), order.end(), c) == order.end()) order.push_back(c);
  }
  return order;
}
Json RowJson(const EvalReport::Row& r) {
  return Json{{"tasks", r.tasks}, {"correct", r.correct}, {"accuracy", r.accuracy},
              {"mean_progress", r.mean_progress}};
}
}  // namespace

Json EvalReportJson(const EvalReport& report, const Json& meta) {
  Json j;
  j["meta"] = meta;
  Json cats = Json::object();
  for (const std::string& c : OrderedCategories(report)) cats[c] = RowJson(report.categories.at(c));
  j["categories"] = std::move(cats);
  Json overall = RowJson(report.overall_tasks);
  overall["accuracy_unweighted"] = report.overall_accuracy;
  j["overall"] = std::move(overall);
  j["failure_types"] = report.failure_types;
  j["finish_reasons"] = report.finish_reasons;
  return j;
}

std::string EvalReportMarkdown(const EvalReport& report, const Json& meta) {
  std::string md = "# envtune evaluation\n\n";
  for (const auto& [k, v] : meta.items()) {
    absl::StrAppend(&md, "- ", k, ": ", v.is_string() ? v.get<std::string>() : v.dump(), "\n");
  }
  absl::StrAppend(&md, "\n| Category | Tasks | Correct | Accuracy | Mean progress |\n",
                  "|---|---:|---:|---:|---:|\n");
  for (const std::string& c : OrderedCategories(report)) {
    const EvalReport::Row& r = report.categories.at(c);
    absl::StrAppend(&md, absl::StrFormat("| %s | %d | %d | %.2f%% | %.4f |\n", c, r.tasks, r.correct,
                                         100.0 * r.accuracy, r.mean_progress));
  }
  const EvalReport::Row& o = report.overall_tasks;
  absl::StrAppend(&md, absl::StrFormat("| **overall** (mean of categories) | %d | %d | %.2f%% | %.4f |\n",
                                       o.tasks, o.correct, 100.0 * report.overall_accuracy,
                                       o.mean_progress));
  absl::StrAppend(&md, absl::StrFormat("| overall (per task) | %d | %d | %.2f%% | %.4f |\n", o.tasks,
                                       o.correct, 100.0 * o.accuracy, o.mean_progress));
  if (!report.failure_types.empty()) {
    absl::StrAppend(&md, "\n| Failure type | Tasks |\n|---|---:|\n");
    for (const auto& [t, c] : report.failure_types) absl::StrAppend(&md, "| ", t, " | ", c, " |\n");
  }
  absl::StrAppend(&md, "\n| Finish reason | Tasks |\n|---|---:|\n");
  for (const auto& [t, c] : report.finish_reasons) absl::StrAppend(&md, "| ", t, " | ", c, " |\n");
  return md;
}

}  // namespace envtune
