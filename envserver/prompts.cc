// Prompt texts and tool schemas (see prompts.h).
#include "envserver/prompts.h"

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace envtune {
namespace {

constexpr char kBfclPromptHead[] =
    "You are an expert in composing functions.You are given a question and a set of possible functions. "
    "Based on the question, you will need to make one or more function/tool calls to achieve the purpose. "
    "If none of the functions can be used, point it out. If the given question lacks the parameters required "
    "by the function, also point it out.\n\nYou should only return the function calls in your response.\n\n"
    "If you decide to invoke any of the function(s), you MUST put it in the format of "
    "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)].  "
    "You SHOULD NOT include any other text in the response.\n\n"
    "At each turn, you should try your best to complete the tasks requested by the user within the current "
    "turn. Continue to output functions to call until you have fulfilled the user's request to the best of "
    "your ability. Once you have no more functions to call, the system will consider the current turn "
    "complete and proceed to the next turn or task.\n\n"
    "Here is a list of functions in json format that you can invoke.\n";

// METHOD.md §2.4 items 1-5, in our own words.
constexpr char kEnvTuningPromptHead[] =
    "You are an expert at composing function calls. You receive a user request and a set of functions; "
    "use one or more function calls to accomplish what the user asks.\n\n"
    "Every reply starts with your step-by-step reasoning in one <think></think> block: lay out the plan and "
    "explain why the next action is the right one.\n\n"
    "After the <think> block, take exactly one of these two actions:\n"
    "1. If functions need to be called, write one <tool_call></tool_call> block that holds a JSON list of "
    "calls, each an object {\"name\": <function-name>, \"arguments\": <args-json-object>}. The calls of the "
    "list run in order. For example:\n"
    "<tool_call>\n"
    "[{\"name\": \"func_name1\", \"arguments\": {\"param1\": \"value1\"}}, {\"name\": \"func_name2\", "
    "\"arguments\": {}}]\n"
    "</tool_call>\n"
    "2. If no call is needed or none is possible (no available function fits, or the request lacks a "
    "parameter that a function requires), reply to the user in one <answer></answer> block: summarise the "
    "result, or say what is missing.\n"
    "Write nothing outside these tags.\n\n"
    "Within each turn, do your best to finish everything the user asked for in that turn: keep calling "
    "functions until the request is fulfilled. When you stop calling functions, the system treats the turn "
    "as complete and moves on to the next turn.\n\n"
    "Here is a list of functions in JSON format that you can invoke.\n";

constexpr char kResultsHead[] = "Here are the function's execution results. Execution results:";
constexpr char kResultsTail[] =
    "\n If you believe you have already fulfilled the user's request, please first outline your thought "
    "process in a <think></think>pair, and then give a brief summary of the result in an <answer></answer> "
    "pair. Otherwise, you should continue to call until fulfilling user's request.";

std::string DocName(const PyValue& doc) {
  if (!doc.is_dict()) return "";
  const PyValue* name = doc.dict().Find("name");
  return name != nullptr && name->is_str() ? name->as_str() : "";
}

// BFCL type names -> JSON schema type names, recursively on every string-valued "type" key.
PyValue ConvertTypes(const PyValue& v) {
  if (v.is_dict()) {
    PyDict out;
    for (const auto& [k, val] : v.dict()) {
      if (k.is_str() && k.as_str() == "type" && val.is_str()) {
        const std::string& t = val.as_str();
        std::string mapped = t == "dict" ? "object" : t == "float" ? "number" : t == "tuple" ? "array" : t;
        out.Set(k, PyValue::Str(mapped));
      } else {
        out.Set(k, ConvertTypes(val));
      }
    }
    return PyValue::Dict(std::move(out));
  }
  if (v.is_list()) {
    PyList items;
    for (const PyValue& x : v.items()) items.push_back(ConvertTypes(x));
    return PyValue::List(std::move(items));
  }
  return v;
}

}  // namespace

TaskDocs CollectTaskDocs(const TaskCatalog& catalog, const BfclTask& task) {
  TaskDocs out;
  for (const std::string& cls : task.involved_classes) {
    const PyValue& docs = catalog.FunctionDocs(cls);
    if (!docs.is_list()) continue;
    out.visible.insert(out.visible.end(), docs.items().begin(), docs.items().end());
  }
  for (const auto& [turn, names] : task.missed_function) {
    PyList& held = out.held_out[turn];
    for (const std::string& name : names) {
      for (size_t i = 0; i < out.visible.size(); ++i) {
        if (DocName(out.visible[i]) != name) continue;
        held.push_back(std::move(out.visible[i]));
        out.visible.erase(out.visible.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
  }
  return out;
}

PyList RevealedDocsAt(const TaskCatalog& catalog, const BfclTask& task, int turn) {
  TaskDocs docs = CollectTaskDocs(catalog, task);
  auto it = docs.held_out.find(turn);
  return it == docs.held_out.end() ? PyList{} : it->second;
}

PyList WithPython3Suffix(const PyList& docs) {
  PyList out = docs;
  for (PyValue& doc : out) {
    if (!doc.is_dict()) continue;
    PyValue* desc = doc.dict().Find("description");
    if (desc != nullptr && desc->is_str()) desc->as_str() += kPython3Suffix;
  }
  return out;
}

std::string DocsJsonIndent4(const PyList& docs) {
  JsonDumpsOptions opts;
  opts.indent = 4;
  return PyValue::List(docs).JsonDumps(opts);
}

std::string BfclSystemPrompt(std::string_view functions_text) {
  return absl::StrCat(kBfclPromptHead, std::string(functions_text), "\n");
}

std::string EnvTuningSystemPrompt(std::string_view functions_text) {
  return absl::StrCat(kEnvTuningPromptHead, std::string(functions_text), "\n");
}

std::string BfclRevealMessage(const PyList& held_out_docs) {
  return absl::StrCat(PyValue::List(held_out_docs).Str(), "\n", kRevealSentence);
}

std::string EnvTuningRevealMessage(const PyList& held_out_docs) {
  return absl::StrCat(DocsJsonIndent4(held_out_docs), "\n", kRevealSentence);
}

PyValue HermesToolSchema(const PyValue& doc) {
  PyDict fn;
  if (doc.is_dict()) {
    for (const char* key : {"name", "description"}) {
      if (const PyValue* v = doc.dict().Find(key); v != nullptr) fn.Set(key, *v);
    }
    if (const PyValue* p = doc.dict().Find("parameters"); p != nullptr) fn.Set("parameters", ConvertTypes(*p));
  }
  PyDict tool;
  tool.Set("type", PyValue::Str("function"));
  tool.Set("function", PyValue::Dict(std::move(fn)));
  return PyValue::Dict(std::move(tool));
}

std::string HermesToolJson(const PyValue& doc) {
  JsonDumpsOptions opts;
  opts.ensure_ascii = false;
  return HermesToolSchema(doc).JsonDumps(opts);
}

std::string ToolResultsObservation(const std::vector<std::string>& results) {
  // kResultsHead + json.dumps(results, ensure_ascii=False) + kResultsTail, encoded in place.
  size_t size = sizeof(kResultsHead) + sizeof(kResultsTail) + 2;
  for (const std::string& r : results) size += r.size() + 4;
  std::string out;
  out.reserve(size);
  out += kResultsHead;
  out.push_back('[');
  for (size_t i = 0; i < results.size(); ++i) {
    if (i > 0) out += ", ";
    AppendPyJsonString(results[i], /*ensure_ascii=*/false, &out);
  }
  out.push_back(']');
  out += kResultsTail;
  return out;
}

std::string CannotServeWarning() {
  return "[Environment notice] No function should have been called in the previous turn: a function "
         "description or a required parameter was missing, so the right move was to tell the user in an "
         "<answer> block. That turn has been ended and the calls you made were NOT executed.\n\n";
}

std::string FormatErrorObservation(std::string_view problem, bool envtuning_reminder) {
  if (!envtuning_reminder) return absl::StrCat("Format error: ", std::string(problem), "\nNothing was executed.");
  return absl::StrCat(
      "Format error: ", std::string(problem),
      "\nNothing was executed. Reply again with one <think>...</think> block followed by exactly one "
      "<tool_call>[{\"name\": ..., \"arguments\": {...}}]</tool_call> block or one <answer>...</answer> "
      "block, and no text outside these tags.");
}

std::string SanitizeUtf8(std::string_view text) { return Utf8Lossy(text); }

std::string CapText(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  size_t dropped = text.size() - cut;
  text.resize(cut);
  absl::StrAppend(&text, "...[truncated ", dropped, " bytes]");
  return text;
}

}  // namespace envtune
