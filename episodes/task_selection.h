// Which BFCL tasks a run plays: categories, split files (data_dir/splits/<name>.txt), an explicit
// task file and a limit. Used by `envtune eval` (deploy/commands/eval_command.h) and the SFT
// warm start (learner/sft.h).
#ifndef ENVTUNE_EPISODES_TASK_SELECTION_H_
#define ENVTUNE_EPISODES_TASK_SELECTION_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/task_catalog.h"

namespace envtune {

// Short category name ("base") of a category or task id ("multi_turn_base", "multi_turn_base_3").
std::string ShortCategory(std::string_view category_or_id);

struct TaskSelection {
  std::vector<std::string> categories;  // short or long names; empty = all four
  std::string subset = "val,test";      // comma list of train|val|test, or "all"
  std::string tasks_file;               // optional: one id per line (# comments, blanks ok)
  int limit = 0;                        // 0 = all; else the first `limit` selected ids
};
// Task ids in catalog order matching the selection. `data_dir` holds splits/*.txt.
// InvalidArgument for an unknown category, subset name or task id; NotFound for a missing file.
absl::StatusOr<std::vector<std::string>> SelectEvalTasks(const TaskCatalog& catalog,
                                                         const std::string& data_dir,
                                                         const TaskSelection& selection);

}  // namespace envtune

#endif  // ENVTUNE_EPISODES_TASK_SELECTION_H_
