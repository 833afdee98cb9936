// Decoding of model replies into executable call strings, for four output formats (which one an
// episode or a CLI mode uses: envserver/reply_format.h):
//
// * kBfclPrompting — BFCL's prompting mode (checker.md B.1-B.3): `[f(a=1), g(b='x')]`. Strip
//   "`\n " from both ends, add missing brackets, parse (pyparse), every element must be a call;
//   positional arguments dropped, unary-op quirk (`+5` -> -5), bare names -> strings, nested
//   calls, binary ops on literals folded safely (never eval), normal-form rendering of B.3
//   (dict-of-dicts = nested call, `{}` fails, dict keys written as '<str(key)>'). Deviations:
//   bytes and complex values are decode errors (BFCL would render their repr). Integers of any
//   size keep their exact value (as BFCL).
// * kBfclFunctionCalling — BFCL FC mode (B.4): the text is the JSON of the reply's tool calls,
//   a list of `{name: arguments}` (arguments a JSON string or object) or a single such object;
//   each becomes `name(k1=repr(v1),k2=repr(v2))` (no space after commas). Empty text -> no call;
//   other non-JSON text -> error (a plain-text reply ends the turn).
// * kEnvTuning — METHOD.md §2.3: after trimming, exactly one <think>...</think> block first, then
//   exactly one <tool_call>JSON</tool_call> (a list of {"name", "arguments"} or one object) or one
//   <answer>...</answer>; nothing else outside tags. Violations -> kFormatError with a precise
//   message. Valid JSON that is unusable (not a list/object, no valid name, arguments not an
//   object, non-identifier keys) or an empty list -> kNoCall (turn ends, nothing executed).
//   Calls render as `name(k1=repr(v1), k2=repr(v2))`: Python literal values like BFCL's FC
//   rendering but with ", " between keywords, i.e. the B.3 normal form for non-dict values
//   (dict arguments are plain Python dict reprs, never nested-call renderings).
// * Hermes/Qwen native tool calls (DecodeHermes; not a DecodeMode: the checker CLI has no Hermes
//   mode): every <tool_call>...</tool_call> block holds one JSON object {"name", "arguments"}
//   (arguments an object or a JSON string). No block -> kAnswer (the text is a final reply). A
//   block with invalid JSON / no valid name / non-object arguments -> kFormatError naming the
//   problem. Calls render like the envtuning decoder's.
// Never evaluates model text; never throws.
#ifndef ENVTUNE_ENVSERVER_DECODE_H_
#define ENVTUNE_ENVSERVER_DECODE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/pyvalue.h"

namespace envtune {

enum class DecodeMode { kBfclPrompting, kBfclFunctionCalling, kEnvTuning };

// One decoded call as name + keyword values, for executing without re-parsing its call string
// (Sandbox::ExecuteDecoded). Only produced where executing the call string is known to give the
// same result: see DecodeResult::structured.
struct DecodedCall {
  std::string name;
  std::vector<std::pair<std::string, PyValue>> keywords;
};

struct DecodeResult {
  enum class Kind {
    kCalls,        // `calls` holds one or more call strings to execute
    kNoCall,       // nothing to execute; the turn ends (message: why, may be empty)
    kAnswer,       // envtuning <answer>: `message` is the answer text
    kFormatError,  // envtuning format violation: `message` is the observation text
    kError,        // BFCL decode failure (ends the turn like kNoCall): `message` is the error
  };
  Kind kind = Kind::kNoCall;
  std::vector<std::string> calls;
  std::string message;
  std::string think;  // envtuning: the <think> block's content
  // envtuning kCalls: the same calls, structured (parallel to `calls`), when every call string is
  // a plain `name(k=literal, ...)` whose execution cannot depend on the text: no string anywhere
  // in the arguments holds '(' (BFCL's call rewriting would edit it), no float is nan/inf (their
  // repr is not a literal), and no name is a Python keyword. Empty otherwise: execute `calls`.
  std::vector<DecodedCall> structured;
};

DecodeResult DecodeModelOutput(DecodeMode mode, std::string_view text);

// The individual decoders. An empty vector means "no call".
absl::StatusOr<std::vector<std::string>> DecodeBfclPrompting(std::string_view text);
absl::StatusOr<std::vector<std::string>> DecodeBfclFunctionCalling(std::string_view text);
DecodeResult DecodeEnvTuning(std::string_view text);
DecodeResult DecodeHermes(std::string_view text);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_DECODE_H_
