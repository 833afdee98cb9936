// The report of `envtune eval`: accuracy per category and overall (BFCL's multi-turn overall =
// unweighted mean over the categories evaluated; the task-weighted mean is reported too), mean
// progress reward, failure types (BFCL error types) and finish reasons; JSON and a Markdown
// table. No timings in the report, so equal runs give byte-identical reports.
#ifndef ENVTUNE_DEPLOY_COMMANDS_EVAL_REPORT_H_
#define ENVTUNE_DEPLOY_COMMANDS_EVAL_REPORT_H_

#include <map>
#include <string>
#include <vector>

#include "episodes/evaluation.h"
#include "nlohmann/json.hpp"

namespace envtune {

struct EvalReport {
  struct Row {
    int tasks = 0;
    int correct = 0;
    double accuracy = 0.0;
    double mean_progress = 0.0;
  };
  std::map<std::string, Row> categories;  // keyed by category, printed in BFCL's order
  Row overall_tasks;                      // task-weighted
  double overall_accuracy = 0.0;          // unweighted mean over categories (BFCL)
  std::map<std::string, int> failure_types;
  std::map<std::string, int> finish_reasons;
};
EvalReport BuildEvalReport(const std::vector<TaskEvaluation>& results);
nlohmann::ordered_json EvalReportJson(const EvalReport& report, const nlohmann::ordered_json& meta);
std::string EvalReportMarkdown(const EvalReport& report, const nlohmann::ordered_json& meta);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_COMMANDS_EVAL_REPORT_H_
