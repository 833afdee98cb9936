// Shared helpers of the episode / env-service tests: locating the data, building model replies,
// and turning BFCL ground-truth call strings into envtuning-format JSON calls.
#ifndef ENVTUNE_TESTS_ENVSERVER_EPISODE_TEST_UTIL_H_
#define ENVTUNE_TESTS_ENVSERVER_EPISODE_TEST_UTIL_H_

#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"
#include "envserver/task_catalog.h"

namespace envtune::testing_util {

inline std::string SourceDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return s != nullptr ? s : ".";
}
inline std::string DataDir() { return SourceDir() + "/data"; }
inline bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
inline bool HaveData() { return FileExists(DataDir() + "/bfcl/long_context_constants.json"); }

inline std::string Think(const std::string& t = "plan") { return absl::StrCat("<think>", t, "</think>"); }
inline std::string ToolCall(const std::string& json_list) {
  return absl::StrCat(Think(), "\n<tool_call>", json_list, "</tool_call>");
}
inline std::string Answer(const std::string& text = "done") {
  return absl::StrCat(Think(), "\n<answer>", text, "</answer>");
}

// One BFCL ground-truth call string as a {"name", "arguments"} JSON object. Positional
// arguments are named after the function doc's parameters, in order.
inline absl::StatusOr<PyValue> GroundTruthCallObject(const TaskCatalog& catalog, const BfclTask& task,
                                                     const std::string& call) {
  absl::StatusOr<PyNodePtr> node = ParsePyExpression(call);
  if (!node.ok()) return node.status();
  const PyNode& n = **node;
  if (n.kind != PyNodeKind::kCall || n.a == nullptr || n.a->kind != PyNodeKind::kName) {
    return absl::InvalidArgumentError(absl::StrCat("not a plain call: ", call));
  }
  const std::string name = n.a->text;
  PyDict args;
  if (!n.elts.empty()) {
    std::string cls = catalog.ClassOfFunction(task, name);
    const PyValue& docs = catalog.FunctionDocs(cls);
    std::vector<std::string> params;
    for (const PyValue& d : docs.items()) {
      if (d.dict().Find("name")->as_str() != name) continue;
      for (const auto& [k, v] : d.dict().Find("parameters")->dict().Find("properties")->dict()) {
        params.push_back(k.as_str());
      }
    }
    if (params.size() < n.elts.size()) return absl::InvalidArgumentError(absl::StrCat("cannot name positionals: ", call));
    for (size_t i = 0; i < n.elts.size(); ++i) {
      absl::StatusOr<PyValue> v = EvalPyLiteral(*n.elts[i]);
      if (!v.ok()) return v.status();
      args.Set(params[i], *std::move(v));
    }
  }
  for (const PyKeyword& kw : n.keywords) {
    if (!kw.arg.has_value()) return absl::InvalidArgumentError(absl::StrCat("** in ", call));
    absl::StatusOr<PyValue> v = EvalPyLiteral(*kw.value);
    if (!v.ok()) return v.status();
    args.Set(*kw.arg, *std::move(v));
  }
  PyDict obj;
  obj.Set("name", PyValue::Str(name));
  obj.Set("arguments", PyValue::Dict(std::move(args)));
  return PyValue::Dict(std::move(obj));
}

// The envtuning reply that makes all of `calls` in one step.
inline absl::StatusOr<std::string> GroundTruthReply(const TaskCatalog& catalog, const BfclTask& task,
                                                    const std::vector<std::string>& calls) {
  PyList list;
  for (const std::string& c : calls) {
    absl::StatusOr<PyValue> obj = GroundTruthCallObject(catalog, task, c);
    if (!obj.ok()) return obj.status();
    list.push_back(*std::move(obj));
  }
  JsonDumpsOptions opts;
  opts.ensure_ascii = false;
  return ToolCall(PyValue::List(std::move(list)).JsonDumps(opts));
}

}  // namespace envtune::testing_util

#endif  // ENVTUNE_TESTS_ENVSERVER_EPISODE_TEST_UTIL_H_
