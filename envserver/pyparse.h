// A safe tokenizer and recursive-descent parser for the Python expression subset that appears in
// BFCL call strings and model replies (CPython 3.11 grammar, `eval` mode), plus ast.unparse.
//
// Contract:
// * ParsePyExpression(source) never evaluates anything. It returns an AST (node kinds named after
//   Python's `ast` classes) or InvalidArgument whose message is CPython's SyntaxError text where
//   feasible, e.g. "'(' was never closed (<string>, line 1)", "invalid syntax (<string>, line 1)",
//   "too many nested parentheses (<string>, line 1)" (> 200 open brackets).
// * Constructs outside what BFCL needs but inside Python's grammar (lambda, comprehensions,
//   f-strings, comparisons, boolean ops, conditionals, starred, slices) are parsed into nodes so
//   consumers can report "Unsupported AST type: <class 'ast.X'>".
// * Complex literals parse as Constant kComplex; ints beyond int64 as kInt with `big_int` set
//   (value kept as decimal text). A decimal literal of more than 4300 digits is CPython's
//   SyntaxError ("Exceeds the limit (4300 digits) ..."); hex/octal/binary ones have no limit. Bytes literals keep their raw bytes in `str`.
// * Input must be valid UTF-8; depth is bounded, so hostile input cannot exhaust the stack.
#ifndef ENVTUNE_ENVSERVER_PYPARSE_H_
#define ENVTUNE_ENVSERVER_PYPARSE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/pyvalue.h"

namespace envtune {

enum class PyNodeKind {
  kConstant,
  kName,
  kList,
  kTuple,
  kSet,
  kDict,
  kCall,
  kAttribute,
  kSubscript,
  kSlice,
  kUnaryOp,
  kBinOp,
  kBoolOp,
  kCompare,
  kIfExp,
  kLambda,
  kStarred,
  kListComp,
  kSetComp,
  kDictComp,
  kGeneratorExp,
  kJoinedStr,
  kNamedExpr,
};

enum class PyConstKind { kNone, kBool, kInt, kFloat, kComplex, kStr, kBytes, kEllipsis };

struct PyNode;
using PyNodePtr = std::unique_ptr<PyNode>;

struct PyKeyword {
  std::optional<std::string> arg;  // nullopt for **mapping
  PyNodePtr value;
};

struct PyNode {
  PyNodeKind kind = PyNodeKind::kConstant;
  int line = 1;  // 1-based line of the node's first token
  // kConstant
  PyConstKind const_kind = PyConstKind::kNone;
  bool bool_value = false;
  int64_t int_value = 0;
  bool big_int = false;    // int literal beyond int64: value in `text` (decimal)
  double float_value = 0;  // kFloat; imaginary part for kComplex
  std::string str;         // kStr (UTF-8) / kBytes (raw bytes)
  // kName: id; kAttribute: attr; kUnaryOp/kBinOp/kBoolOp: operator ("-", "not", "+", "and", ...);
  // kConstant with big_int: decimal digits; kJoinedStr: source text of the literal(s).
  std::string text;
  // kList/kTuple/kSet: elements; kCall: positional args (kStarred for *x); kDict: keys (nullptr
  // for **m); kBoolOp: values; kCompare: comparators; kLambda: parameter names as kName nodes.
  std::vector<PyNodePtr> elts;
  std::vector<PyNodePtr> values;            // kDict: values
  std::vector<std::string> ops;             // kCompare: operators ("<", "not in", "is not", ...)
  std::vector<PyKeyword> keywords;          // kCall
  // kCall: func; kAttribute/kSubscript/kStarred: value; kUnaryOp: operand; kBinOp/kCompare:
  // left; kIfExp: test ... see below; kSlice: lower; kLambda/comprehensions: body/element.
  PyNodePtr a;
  // kBinOp: right; kSubscript: slice; kIfExp: body; kSlice: upper; kDictComp: value.
  PyNodePtr b;
  // kIfExp: orelse; kSlice: step.
  PyNodePtr c;
  // Comprehensions: one kTuple per `for` clause in `values`: (target, iter, if-conditions...).
  mutable int depth_memo = 0;  // internal: memoised tree depth (bounded by the parser)
};

// Parses `source` as a Python expression (ast.parse(source, mode="eval").body). Leading spaces and
// tabs are skipped when `strip_leading_ws` (builtin eval() does this; ast.parse does not and
// reports "unexpected indent").
// `filename` appears in SyntaxError texts: "<string>" as for eval()/compile(), "<unknown>" as
// for ast.parse().
absl::StatusOr<PyNodePtr> ParsePyExpression(std::string_view source, bool strip_leading_ws = true,
                                            std::string_view filename = "<string>");

// ast.unparse(node) (CPython 3.11 formatting: minimal parentheses, repr() of constants, ", "
// between items).
std::string UnparsePy(const PyNode& node);

// The Python ast class name of a node ("Constant", "Set", "ListComp", ...).
std::string_view PyAstClassName(const PyNode& node);

// Safe evaluation of literal expressions: constants (None/bool/int/float/str), list/tuple/set/dict
// displays, unary and binary arithmetic with Python semantics (ints of any size, exact; bytes and
// complex are errors, as are int results wider than PyBigInt::kMaxBits). Call nodes go to `call_hook` (nullptr: error); names other
// than True/False/None raise NameError text. On failure the status message is the Python
// exception's str() (e.g. "division by zero", "name 'x' is not defined").
class PyValue;
using PyCallHook = std::function<absl::StatusOr<PyValue>(const PyNode& call)>;
absl::StatusOr<PyValue> EvalPyLiteral(const PyNode& node, const PyCallHook& call_hook = nullptr);

// Python `a <op> b` for a binary operator ("+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&",
// "|", "^") on values EvalPyLiteral supports: exact ints of any size, CPython's float rules and
// error texts (the status message is the exception's str()).
absl::StatusOr<PyValue> PyBinaryOp(std::string_view op, const PyValue& a, const PyValue& b);

// Whether Python's hash(v) works: false for a list, dict or set, and for a tuple holding one.
bool PyHashable(const PyValue& v);

// Python repr() of a bytes value.
std::string PyBytesRepr(std::string_view bytes);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_PYPARSE_H_
