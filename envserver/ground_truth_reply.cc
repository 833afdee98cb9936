#include "envserver/ground_truth_reply.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"

namespace envtune {
namespace {


// {"name", "arguments"} of a BFCL ground-truth call; positionals named after the doc's params.
absl::StatusOr<std::pair<std::string, PyDict>> GroundTruthCall(const TaskCatalog& catalog,
                                                               const BfclTask& task,
                                                               const std::string& call) {
  absl::StatusOr<PyNodePtr> node = ParsePyExpression(call);
  if (!node.ok()) return node.status();
  const PyNode& n = **node;
  if (n.kind != PyNodeKind::kCall || n.a == nullptr || n.a->kind != PyNodeKind::kName) {
    return absl::InvalidArgumentError(absl::StrCat("ground truth is not a plain call: ", call));
  }
  const std::string name = n.a->text;
  PyDict args;
  if (!n.elts.empty()) {
    std::vector<std::string> params;
    const PyValue& docs = catalog.FunctionDocs(catalog.ClassOfFunction(task, name));
    if (docs.type() == PyValue::Type::kList) {
      for (const PyValue& d : docs.items()) {
        if (d.type() != PyValue::Type::kDict) continue;
        const PyValue* dn = d.dict().Find("name");
        if (dn == nullptr || dn->type() != PyValue::Type::kStr || dn->as_str() != name) continue;
        const PyValue* ps = d.dict().Find("parameters");
        const PyValue* props =
            ps != nullptr && ps->type() == PyValue::Type::kDict ? ps->dict().Find("properties") : nullptr;
        if (props == nullptr || props->type() != PyValue::Type::kDict) break;
        for (const auto& [k, v] : props->dict()) params.push_back(k.as_str());
        break;
      }
    }
    if (params.size() < n.elts.size()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot name the positional arguments of ", call));
    }
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
  return std::make_pair(name, std::move(args));
}

std::string CallObjectJson(const std::string& name, const PyDict& args) {
  PyDict obj;
  obj.Set("name", PyValue::Str(name));
  obj.Set("arguments", PyValue::Dict(args));
  JsonDumpsOptions o;
  o.ensure_ascii = false;
  return PyValue::Dict(std::move(obj)).JsonDumps(o);
}

std::string CallNames(const std::vector<std::string>& names) { return absl::StrJoin(names, ", "); }

}  // namespace

absl::StatusOr<std::string> GroundTruthCallsReply(const TaskCatalog& catalog, const BfclTask& task,
                                                  v1::OutputFormat format,
                                                  const std::vector<std::string>& calls) {
  std::vector<std::pair<std::string, PyDict>> parsed;
  std::vector<std::string> names;
  for (const std::string& c : calls) {
    absl::StatusOr<std::pair<std::string, PyDict>> p = GroundTruthCall(catalog, task, c);
    if (!p.ok()) return p.status();
    names.push_back(p->first);
    parsed.push_back(*std::move(p));
  }
  switch (format) {
    case v1::OUTPUT_FORMAT_BFCL_PROMPTING: {
      std::vector<std::string> parts;
      for (const auto& [name, args] : parsed) {
        std::vector<std::string> kv;
        for (const auto& [k, v] : args) kv.push_back(absl::StrCat(k.as_str(), "=", v.Repr()));
        parts.push_back(absl::StrCat(name, "(", absl::StrJoin(kv, ", "), ")"));
      }
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    case v1::OUTPUT_FORMAT_HERMES: {
      std::vector<std::string> blocks;
      for (const auto& [name, args] : parsed) {
        blocks.push_back(absl::StrCat("<tool_call>\n", CallObjectJson(name, args), "\n</tool_call>"));
      }
      return absl::StrJoin(blocks, "\n");
    }
    default: {
      std::vector<std::string> objs;
      for (const auto& [name, args] : parsed) objs.push_back(CallObjectJson(name, args));
      return absl::StrCat("<think>To do this I call ", CallNames(names), ".</think>\n<tool_call>[",
                          absl::StrJoin(objs, ", "), "]</tool_call>");
    }
  }
}

std::string GroundTruthAnswerReply(v1::OutputFormat format, bool cannot_serve) {
  const char* text = cannot_serve
                         ? "I cannot complete this request with the functions available to me."
                         : "I have completed the requested operations.";
  if (format == v1::OUTPUT_FORMAT_ENVTUNING || format == v1::OUTPUT_FORMAT_UNSPECIFIED) {
    return absl::StrCat("<think>",
                        cannot_serve ? "No available function can do this." : "The task is done.",
                        "</think>\n<answer>", text, "</answer>");
  }
  return text;
}

}  // namespace envtune
