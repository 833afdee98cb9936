// Loading of the BFCL multi-turn data directory (see task_catalog.h).
#include "envserver/task_catalog.h"

#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file.h"

namespace envtune {
namespace {

struct ClassDoc {
  const char* class_name;
  const char* file;
};
constexpr ClassDoc kClassDocs[] = {
    {"GorillaFileSystem", "gorilla_file_system"}, {"MathAPI", "math_api"},
    {"MessageAPI", "message_api"},                {"TwitterAPI", "posting_api"},
    {"TicketAPI", "ticket_api"},                  {"TradingBot", "trading_bot"},
    {"TravelAPI", "travel_booking"},              {"VehicleControlAPI", "vehicle_control"},
};

absl::Status At(const std::string& path, int line, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", std::string(what)));
}

const PyValue* Field(const PyValue& obj, std::string_view key) {
  return obj.is_dict() ? obj.dict().Find(key) : nullptr;
}

absl::StatusOr<std::vector<std::string>> StringList(const PyValue* v, const std::string& path, int line,
                                                    std::string_view what) {
  if (v == nullptr || !v->is_list()) return At(path, line, absl::StrCat("'", std::string(what), "' must be a list"));
  std::vector<std::string> out;
  for (const PyValue& x : v->items()) {
    if (!x.is_str()) return At(path, line, absl::StrCat("'", std::string(what), "' must hold strings"));
    out.push_back(x.as_str());
  }
  return out;
}

absl::Status ParseTask(const PyValue& obj, const std::string& path, int line, BfclTask* task) {
  if (!obj.is_dict()) return At(path, line, "task is not a JSON object");
  const PyValue* id = Field(obj, "id");
  if (id == nullptr || !id->is_str()) return At(path, line, "missing string 'id'");
  task->id = id->as_str();
  size_t us = task->id.rfind('_');
  if (us == std::string::npos || !absl::SimpleAtoi(task->id.substr(us + 1), &task->index)) {
    return At(path, line, absl::StrCat("id '", task->id, "' does not end in _<n>"));
  }
  task->category = task->id.substr(0, us);

  const PyValue* q = Field(obj, "question");
  if (q == nullptr || !q->is_list()) return At(path, line, "'question' must be a list of turns");
  for (const PyValue& turn : q->items()) {
    if (!turn.is_list()) return At(path, line, "a turn of 'question' is not a list");
    std::vector<BfclMessage> msgs;
    for (const PyValue& m : turn.items()) {
      const PyValue* role = Field(m, "role");
      const PyValue* content = Field(m, "content");
      if (role == nullptr || !role->is_str() || content == nullptr || !content->is_str()) {
        return At(path, line, "a message lacks string 'role'/'content'");
      }
      msgs.push_back({role->as_str(), content->as_str()});
    }
    task->questions.push_back(std::move(msgs));
  }

  const PyValue* cfg = Field(obj, "initial_config");
  if (cfg != nullptr && !cfg->is_dict()) return At(path, line, "'initial_config' must be an object");
  task->initial_config = cfg != nullptr ? *cfg : PyValue::Dict();

  absl::StatusOr<std::vector<std::string>> classes =
      StringList(Field(obj, "involved_classes"), path, line, "involved_classes");
  if (!classes.ok()) return classes.status();
  task->involved_classes = *std::move(classes);
  for (const std::string& c : task->involved_classes) {
    if (TaskCatalog::DocFileForClass(c).empty()) return At(path, line, absl::StrCat("unknown class '", c, "'"));
  }

  if (const PyValue* missed = Field(obj, "missed_function"); missed != nullptr) {
    if (!missed->is_dict()) return At(path, line, "'missed_function' must be an object");
    for (const auto& [k, v] : missed->dict()) {
      int turn = 0;
      if (!k.is_str() || !absl::SimpleAtoi(k.as_str(), &turn) || turn < 0 ||
          turn >= static_cast<int>(task->questions.size())) {
        return At(path, line, "'missed_function' key is not a valid turn index");
      }
      absl::StatusOr<std::vector<std::string>> names = StringList(&v, path, line, "missed_function");
      if (!names.ok()) return names.status();
      task->missed_function[turn] = *std::move(names);
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool BfclTask::long_context() const {
  return category.find("long_context") != std::string::npos ||
         category.find("composite") != std::string::npos;
}

const std::vector<std::string>& TaskCatalog::Categories() {
  static const auto* cats = new std::vector<std::string>{
      "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"};
  return *cats;
}

std::string_view TaskCatalog::DocFileForClass(std::string_view class_name) {
  for (const ClassDoc& d : kClassDocs) {
    if (class_name == d.class_name) return d.file;
  }
  return "";
}

absl::StatusOr<std::vector<PyValue>> ReadJsonLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<PyValue> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    absl::StatusOr<PyValue> v = PyValue::FromJson(line);
    if (!v.ok()) return At(path, lineno, absl::StrCat("invalid JSON: ", std::string(v.status().message())));
    out.push_back(*std::move(v));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("read error on ", path));
  return out;
}

absl::StatusOr<TaskCatalog> TaskCatalog::Load(const std::string& data_dir) {
  TaskCatalog cat;
  for (const std::string& category : Categories()) {
    std::string file = absl::StrCat("BFCL_v4_", category, ".json");
    std::string task_path = absl::StrCat(data_dir, "/", file);
    std::string answer_path = absl::StrCat(data_dir, "/possible_answer/", file);
    absl::StatusOr<std::vector<PyValue>> tasks = ReadJsonLines(task_path);
    if (!tasks.ok()) return tasks.status();
    absl::StatusOr<std::vector<PyValue>> answers = ReadJsonLines(answer_path);
    if (!answers.ok()) return answers.status();
    if (answers->size() != tasks->size()) {
      return absl::InvalidArgumentError(absl::StrCat(answer_path, ": ", answers->size(), " answers for ",
                                                     tasks->size(), " tasks in ", task_path));
    }
    for (size_t i = 0; i < tasks->size(); ++i) {
      BfclTask task;
      int line = static_cast<int>(i) + 1;  // data files have no blank lines
      absl::Status st = ParseTask((*tasks)[i], task_path, line, &task);
      if (!st.ok()) return st;
      if (task.category != category) {
        return At(task_path, line, absl::StrCat("task '", task.id, "' is not of category ", category));
      }
      const PyValue& ans = (*answers)[i];
      const PyValue* aid = Field(ans, "id");
      if (aid == nullptr || !aid->is_str() || aid->as_str() != task.id) {
        return At(answer_path, line, absl::StrCat("expected ground truth of '", task.id, "'"));
      }
      const PyValue* gt = Field(ans, "ground_truth");
      if (gt == nullptr || !gt->is_list()) return At(answer_path, line, "'ground_truth' must be a list");
      for (const PyValue& turn : gt->items()) {
        absl::StatusOr<std::vector<std::string>> calls = StringList(&turn, answer_path, line, "ground_truth");
        if (!calls.ok()) return calls.status();
        task.ground_truth.push_back(*std::move(calls));
      }
      if (task.ground_truth.size() != task.questions.size()) {
        return At(answer_path, line,
                  absl::StrCat("ground truth has ", task.ground_truth.size(), " turns, task has ",
                               task.questions.size()));
      }
      if (cat.by_id_.contains(task.id)) return At(task_path, line, absl::StrCat("duplicate id '", task.id, "'"));
      cat.by_id_[task.id] = cat.tasks_.size();
      cat.tasks_.push_back(std::move(task));
    }
  }
  for (const ClassDoc& d : kClassDocs) {
    std::string path = absl::StrCat(data_dir, "/multi_turn_func_doc/", d.file, ".json");
    absl::StatusOr<std::vector<PyValue>> docs = ReadJsonLines(path);
    if (!docs.ok()) return docs.status();
    for (size_t i = 0; i < docs->size(); ++i) {
      const PyValue* name = Field((*docs)[i], "name");
      if (name == nullptr || !name->is_str()) return At(path, static_cast<int>(i) + 1, "doc lacks string 'name'");
    }
    cat.docs_[d.class_name] = PyValue::List(*std::move(docs));
  }
  std::string lc_path = absl::StrCat(data_dir, "/long_context_constants.json");
  absl::StatusOr<std::string> lc_text = ReadFileToString(lc_path);
  if (!lc_text.ok()) return lc_text.status();
  absl::StatusOr<PyValue> lc = PyValue::FromJson(*lc_text);
  if (!lc.ok()) return absl::InvalidArgumentError(absl::StrCat(lc_path, ": invalid JSON: ", std::string(lc.status().message())));
  if (!lc->is_dict()) return absl::InvalidArgumentError(absl::StrCat(lc_path, ": not a JSON object"));
  cat.long_context_constants_ = *std::move(lc);
  return cat;
}

const BfclTask* TaskCatalog::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : &tasks_[it->second];
}

std::vector<const BfclTask*> TaskCatalog::ByCategory(std::string_view category) const {
  std::vector<const BfclTask*> out;
  for (const BfclTask& t : tasks_) {
    if (t.category == category) out.push_back(&t);
  }
  return out;
}

const PyValue& TaskCatalog::FunctionDocs(std::string_view class_name) const {
  static const PyValue* empty = new PyValue(PyValue::List());
  auto it = docs_.find(std::string(class_name));
  return it == docs_.end() ? *empty : it->second;
}

std::string TaskCatalog::ClassOfFunction(const BfclTask& task, std::string_view function) const {
  std::string found;
  for (const std::string& cls : task.involved_classes) {
    for (const PyValue& doc : FunctionDocs(cls).items()) {
      const PyValue* name = Field(doc, "name");
      if (name != nullptr && name->is_str() && name->as_str() == function) found = cls;
    }
  }
  return found;
}

}  // namespace envtune
