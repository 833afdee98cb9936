// The texts the environment shows a model, per output format:
//
// * BFCL prompting mode (checker.md C.1/C.2, byte for byte): system prompt with the function docs
//   as json.dumps(docs, indent=4), each description suffixed with
//   " Note that the provided function is in Python 3 syntax." (not the held-out docs of miss_func,
//   which are revealed later as Python str() of their dicts, A.4).
// * Environment Tuning (METHOD.md §2.3-2.5, §5.3): our own system prompt (<think>, one
//   <tool_call> JSON list, <answer>), the exact §2.5 tool-result wrapper, our cannot-serve warning
//   and format-error texts.
// * Hermes/Qwen native tool calling: BFCL docs converted to chat-template tool schemas
//   ({"type":"function","function":{name, description, parameters}}, BFCL types dict->object,
//   float->number, tuple->array, `response` dropped, no suffix); its decoder, DecodeHermes, is
//   in decode.h.
// Pure functions of their inputs; never throw.
#ifndef ENVTUNE_ENVSERVER_PROMPTS_H_
#define ENVTUNE_ENVSERVER_PROMPTS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "envserver/decode.h"
#include "envserver/pyvalue.h"
#include "envserver/task_catalog.h"

namespace envtune {

inline constexpr char kPython3Suffix[] = " Note that the provided function is in Python 3 syntax.";
inline constexpr char kRevealSentence[] =
    "I have updated some more functions you can choose from. What about now?";

// The task's function docs in BFCL's order (involved classes, file order), split into those in
// force at the start and those held out (miss_func). As BFCL does: for each reveal turn, for each
// held-out name in its listed order, the first doc of that name is moved out of the list.
struct TaskDocs {
  PyList visible;                      // docs in the opening tool list (no suffix added)
  std::map<int, PyList> held_out;      // reveal turn -> held-out docs, in missed_function order
};
TaskDocs CollectTaskDocs(const TaskCatalog& catalog, const BfclTask& task);
// Held-out docs revealed at `turn` (missed_function order); empty when `turn` reveals nothing.
PyList RevealedDocsAt(const TaskCatalog& catalog, const BfclTask& task, int turn);

// Docs with the Python-3 suffix appended to each description (C.2).
PyList WithPython3Suffix(const PyList& docs);
// Python json.dumps(docs, indent=4) (ensure_ascii=True).
std::string DocsJsonIndent4(const PyList& docs);

// checker.md C.1: BFCL's default prompting-mode system prompt around `functions_text`.
std::string BfclSystemPrompt(std::string_view functions_text);
// METHOD.md §2.4: our Environment Tuning system prompt around `functions_text`.
std::string EnvTuningSystemPrompt(std::string_view functions_text);

// miss_func reveal message. Prompting: Python str() of the docs + "\n" + kRevealSentence.
// EnvTuning: json.dumps(docs, indent=4) + "\n" + kRevealSentence (METHOD.md §2.2 "JSON list").
// Hermes (FC mode): kRevealSentence only (the docs join the tool list).
std::string BfclRevealMessage(const PyList& held_out_docs);
std::string EnvTuningRevealMessage(const PyList& held_out_docs);

// One BFCL doc as a chat-template tool schema (JSON object text).
PyValue HermesToolSchema(const PyValue& doc);
std::string HermesToolJson(const PyValue& doc);

// METHOD.md §2.5, exact: the user message after an executed step; `results` are shown as
// json.dumps(results, ensure_ascii=False).
std::string ToolResultsObservation(const std::vector<std::string>& results);
// METHOD.md §5.3 (our wording): prefix of the next question after calls on a cannot-serve turn.
std::string CannotServeWarning();
// METHOD.md §5.3 (our wording): the observation for a malformed reply; `problem` says what.
// `envtuning_reminder` appends how a well-formed envtuning reply looks (off for other formats).
std::string FormatErrorObservation(std::string_view problem, bool envtuning_reminder = true);

// Python's bytes.decode("utf-8", errors="replace") re-encoded: every invalid or truncated UTF-8
// sequence (including surrogates and overlong forms) becomes U+FFFD. Valid text is unchanged.
std::string SanitizeUtf8(std::string_view text);

// Truncates `text` to at most `max_bytes` bytes on a UTF-8 boundary, appending a marker that says
// how much was cut. Unchanged when short enough.
std::string CapText(std::string text, size_t max_bytes);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_PROMPTS_H_
