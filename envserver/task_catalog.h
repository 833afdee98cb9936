// The BFCL V3 multi-turn task catalog, loaded from a data directory laid out like data/bfcl/:
//   BFCL_v4_multi_turn_{base,miss_func,miss_param,long_context}.json  (one task per line)
//   possible_answer/<same file names>                                  (ground truth per line)
//   multi_turn_func_doc/<class file>.json                              (one doc per line)
//   long_context_constants.json
//
// Contract: Load() reads everything or fails with an absl::Status naming the file and line.
// Values keep Python/JSON semantics (PyValue::FromJson: ints stay ints, key order kept). The
// long-context constants are kept verbatim, including the `{"__python__": "Ellipsis"}` marker that
// stands for Python's `...` (TradingBot renders it as the bare word `Ellipsis`, as BFCL prints
// it: see spec trading_bot.md §4.14). Immutable after Load; safe to share across threads.
#ifndef ENVTUNE_ENVSERVER_TASK_CATALOG_H_
#define ENVTUNE_ENVSERVER_TASK_CATALOG_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "envserver/pyvalue.h"

namespace envtune {

struct BfclMessage {
  std::string role;
  std::string content;
};

struct BfclTask {
  std::string id;        // "multi_turn_base_0"
  std::string category;  // "multi_turn_base" (id without the trailing _<n>)
  int index = 0;         // the <n>
  // Per turn, the messages of that turn (empty for the held-out-function turn of miss_func).
  std::vector<std::vector<BfclMessage>> questions;
  PyValue initial_config;  // {Class: scenario}
  std::vector<std::string> involved_classes;
  // miss_func: turn index -> held-out function names.
  std::map<int, std::vector<std::string>> missed_function;
  // Ground-truth call strings per turn (same number of turns as `questions`).
  std::vector<std::vector<std::string>> ground_truth;

  // checker.md A.3: the category contains "long_context" (or "composite").
  bool long_context() const;
};

class TaskCatalog {
 public:
  // The four categories, in BFCL's order.
  static const std::vector<std::string>& Categories();
  // The doc file stem of a class ("GorillaFileSystem" -> "gorilla_file_system"); "" if unknown.
  static std::string_view DocFileForClass(std::string_view class_name);

  static absl::StatusOr<TaskCatalog> Load(const std::string& data_dir);

  const std::vector<BfclTask>& tasks() const { return tasks_; }
  const BfclTask* Find(std::string_view id) const;
  std::vector<const BfclTask*> ByCategory(std::string_view category) const;
  // Function docs of a class (list of doc dicts, file order); an empty list if unknown.
  const PyValue& FunctionDocs(std::string_view class_name) const;
  // Which involved class documents a function name (later class wins, like the executor's map);
  // "" if none.
  std::string ClassOfFunction(const BfclTask& task, std::string_view function) const;
  const PyValue& long_context_constants() const { return long_context_constants_; }

 private:
  std::vector<BfclTask> tasks_;
  absl::flat_hash_map<std::string, size_t> by_id_;
  absl::flat_hash_map<std::string, PyValue> docs_;
  PyValue long_context_constants_;
};

// Reads a JSON-lines file into PyValues (blank lines skipped); errors name file and line.
absl::StatusOr<std::vector<PyValue>> ReadJsonLines(const std::string& path);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_TASK_CATALOG_H_
