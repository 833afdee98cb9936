// Model-output decoders (see decode.h).
#include "envserver/decode.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"

namespace envtune {
namespace {

absl::Status DecodeErr(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

std::string Unsupported(const PyNode& n) {
  return absl::StrCat("Unsupported AST type: <class 'ast.", std::string(PyAstClassName(n)), "'>");
}

absl::StatusOr<PyValue> ResolveCall(const PyNode& call, std::string* name_out);

// resolve_ast_by_type.
absl::StatusOr<PyValue> Resolve(const PyNode& n) {
  switch (n.kind) {
    case PyNodeKind::kConstant:
      switch (n.const_kind) {
        case PyConstKind::kEllipsis: return PyValue::Str("...");
        case PyConstKind::kBytes: return DecodeErr("bytes values are not supported");
        case PyConstKind::kComplex: return DecodeErr("complex values are not supported");
        default: return EvalPyLiteral(n);  // None/bool/int (any size)/float/str
      }
    case PyNodeKind::kUnaryOp: {
      // BFCL: -operand.value, whatever the operator.
      const PyNode& op = *n.a;
      if (op.kind != PyNodeKind::kConstant) {
        bool has_value_attr = op.kind == PyNodeKind::kAttribute || op.kind == PyNodeKind::kSubscript ||
                              op.kind == PyNodeKind::kStarred || op.kind == PyNodeKind::kNamedExpr;
        if (has_value_attr) {
          return DecodeErr(absl::StrCat("bad operand type for unary -: '",
                                        std::string(PyAstClassName(*op.a)), "'"));
        }
        return DecodeErr(absl::StrCat("'", std::string(PyAstClassName(op)), "' object has no attribute 'value'"));
      }
      if (op.const_kind == PyConstKind::kInt || op.const_kind == PyConstKind::kFloat ||
          op.const_kind == PyConstKind::kBool) {
        PyNode neg;
        neg.kind = PyNodeKind::kUnaryOp;
        neg.text = "-";
        PyNodePtr copy = std::make_unique<PyNode>();
        copy->kind = PyNodeKind::kConstant;
        copy->const_kind = op.const_kind;
        copy->bool_value = op.bool_value;
        copy->int_value = op.int_value;
        copy->big_int = op.big_int;
        copy->text = op.text;  // a big int's digits
        copy->float_value = op.float_value;
        neg.a = std::move(copy);
        return EvalPyLiteral(neg);
      }
      if (op.const_kind == PyConstKind::kComplex) return DecodeErr("complex values are not supported");
      const char* type = op.const_kind == PyConstKind::kStr     ? "str"
                         : op.const_kind == PyConstKind::kBytes ? "bytes"
                         : op.const_kind == PyConstKind::kNone  ? "NoneType"
                                                                : "ellipsis";
      return DecodeErr(absl::StrCat("bad operand type for unary -: '", type, "'"));
    }
    case PyNodeKind::kList:
    case PyNodeKind::kTuple: {
      PyList items;
      for (const PyNodePtr& e : n.elts) {
        absl::StatusOr<PyValue> v = Resolve(*e);
        if (!v.ok()) return v.status();
        items.push_back(*std::move(v));
      }
      return n.kind == PyNodeKind::kList ? PyValue::List(std::move(items)) : PyValue::Tuple(std::move(items));
    }
    case PyNodeKind::kDict: {
      PyDict dict;
      for (size_t i = 0; i < n.elts.size(); ++i) {
        if (n.elts[i] == nullptr) return DecodeErr("Unsupported AST type: <class 'NoneType'>");
        absl::StatusOr<PyValue> k = Resolve(*n.elts[i]);
        if (!k.ok()) return k.status();
        absl::StatusOr<PyValue> v = Resolve(*n.values[i]);
        if (!v.ok()) return v.status();
        if (!PyHashable(*k)) return DecodeErr(absl::StrCat("unhashable type: '", std::string(k->TypeName()), "'"));
        dict.Set(*std::move(k), *std::move(v));
      }
      return PyValue::Dict(std::move(dict));
    }
    case PyNodeKind::kBinOp:
      // BFCL evals the unparsed expression; we fold literal arithmetic only.
      return EvalPyLiteral(n);
    case PyNodeKind::kName:
      return PyValue::Str(n.text);
    case PyNodeKind::kCall: {
      if (n.keywords.empty()) return PyValue::Str(UnparsePy(n));
      std::string ignored;
      return ResolveCall(n, &ignored);
    }
    case PyNodeKind::kLambda:
      return DecodeErr("'Lambda' object is not subscriptable");
    case PyNodeKind::kSubscript:
      return PyValue::Str(absl::StrCat(UnparsePy(*n.a), "[", UnparsePy(*n.b), "]"));
    default:
      return DecodeErr(Unsupported(n));
  }
}

// resolve_ast_call: {func_name: {kw: value}}; positional arguments dropped.
absl::StatusOr<PyValue> ResolveCall(const PyNode& call, std::string* name_out) {
  std::vector<std::string> parts;
  const PyNode* f = call.a.get();
  while (f->kind == PyNodeKind::kAttribute) {
    parts.push_back(f->text);
    f = f->a.get();
  }
  if (f->kind == PyNodeKind::kName) parts.push_back(f->text);
  std::reverse(parts.begin(), parts.end());
  *name_out = absl::StrJoin(parts, ".");
  PyDict args;
  for (const PyKeyword& kw : call.keywords) {
    absl::StatusOr<PyValue> v = Resolve(*kw.value);
    if (!v.ok()) return v.status();
    // **mapping has arg None, rendered "None".
    args.Set(kw.arg.has_value() ? *kw.arg : std::string("None"), *std::move(v));
  }
  PyDict wrapper;
  wrapper.Set(*name_out, PyValue::Dict(std::move(args)));
  return PyValue::Dict(std::move(wrapper));
}

absl::StatusOr<std::string> RenderNested(const PyValue& v);

absl::StatusOr<std::string> RenderArgs(const PyDict& args) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : args) {
    absl::StatusOr<std::string> r = RenderNested(v);
    if (!r.ok()) return r.status();
    parts.push_back(absl::StrCat(k.Str(), "=", *r));
  }
  return absl::StrJoin(parts, ", ");
}

// Whether repr(v) works: no int in `v` has more than 4300 decimal digits (CPython's
// int-to-str limit; literal arithmetic can build such an int from short text).
bool ReprWithinIntLimit(const PyValue& v) {
  if (v.is_big_int()) return v.as_big_int().DecimalDigits() <= kIntMaxStrDigits;
  if (v.is_list() || v.is_tuple() || v.is_set()) {
    return std::all_of(v.items().begin(), v.items().end(), ReprWithinIntLimit);
  }
  if (v.is_dict()) {
    return std::all_of(v.dict().begin(), v.dict().end(), [](const PyDict::Entry& e) {
      return ReprWithinIntLimit(e.first) && ReprWithinIntLimit(e.second);
    });
  }
  return true;
}

// parse_nested_value.
absl::StatusOr<std::string> RenderNested(const PyValue& v) {
  if (!v.is_dict()) {
    if (!ReprWithinIntLimit(v)) return DecodeErr(kIntStrLimitError);  // repr() raises ValueError
    return v.Repr();
  }
  const PyDict& d = v.dict();
  bool all_dicts = std::all_of(d.begin(), d.end(), [](const PyDict::Entry& e) { return e.second.is_dict(); });
  if (all_dicts) {
    if (d.empty()) return DecodeErr("list index out of range");
    const auto& [key, inner] = *d.begin();
    absl::StatusOr<std::string> args = RenderArgs(inner.dict());
    if (!args.ok()) return args.status();
    return absl::StrCat(key.Str(), "(", *args, ")");
  }
  std::vector<std::string> parts;
  for (const auto& [k, x] : d) {
    absl::StatusOr<std::string> r = RenderNested(x);
    if (!r.ok()) return r.status();
    parts.push_back(absl::StrCat("'", k.Str(), "': ", *r));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

bool IsIdentifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// ---- envtuning

bool IsPythonKeyword(std::string_view s) {
  static constexpr std::string_view kKeywords[] = {
      "False", "None",   "True",    "and",      "as",       "assert", "async",  "await",
      "break", "class",  "continue", "def",     "del",      "elif",   "else",   "except",
      "finally", "for",  "from",    "global",   "if",       "import", "in",     "is",
      "lambda", "nonlocal", "not",  "or",       "pass",     "raise",  "return", "try",
      "while", "with",   "yield"};
  for (std::string_view k : kKeywords) {
    if (s == k) return true;
  }
  return false;
}

// Whether repr(v), parsed and evaluated as a literal inside a call string that BFCL's rewriting
// leaves alone, gives back v: no '(' in any string, no non-finite float.
bool ReprRoundTrips(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kStr: return v.as_str().find('(') == std::string::npos;
    case PyValue::Type::kFloat: return std::isfinite(v.as_float());
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kSet:
      for (const PyValue& x : v.items()) {
        if (!ReprRoundTrips(x)) return false;
      }
      return true;
    case PyValue::Type::kDict:
      for (const auto& [k, x] : v.dict()) {
        if (!ReprRoundTrips(k) || !ReprRoundTrips(x)) return false;
      }
      return true;
    default: return true;
  }
}

struct Block {
  std::string tag;  // "think", "tool_call", "answer"
  std::string body;
};

constexpr const char* kTags[] = {"think", "tool_call", "answer"};

bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsWs(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWs(s.back())) s.remove_suffix(1);
  return s;
}

DecodeResult FormatError(std::string msg) {
  DecodeResult r;
  r.kind = DecodeResult::Kind::kFormatError;
  r.message = absl::StrCat("Format error: ", msg);
  return r;
}

DecodeResult NoCall(std::string why) {
  DecodeResult r;
  r.kind = DecodeResult::Kind::kNoCall;
  r.message = std::move(why);
  return r;
}

std::string Excerpt(std::string_view s) {
  s = Trim(s);
  if (s.size() > 60) return absl::StrCat(std::string(s.substr(0, 60)), "...");
  return std::string(s);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> DecodeBfclPrompting(std::string_view text) {
  // 1. strip backticks, newlines, spaces.
  while (!text.empty() && (text.front() == '`' || text.front() == '\n' || text.front() == ' ')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == '`' || text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  // 2. brackets. (3. strip()/strip("'") are then no-ops: the text starts with '[' and ends with ']'.)
  std::string s(text);
  if (s.empty() || s.front() != '[') s.insert(s.begin(), '[');
  if (s.back() != ']') s.push_back(']');
  absl::StatusOr<PyNodePtr> tree = ParsePyExpression(s, /*strip_leading_ws=*/false, "<unknown>");
  if (!tree.ok()) return tree.status();
  const PyNode& body = **tree;
  std::vector<const PyNode*> calls;
  if (body.kind == PyNodeKind::kCall) {
    calls.push_back(&body);
  } else if (body.kind == PyNodeKind::kList || body.kind == PyNodeKind::kTuple || body.kind == PyNodeKind::kSet) {
    for (const PyNodePtr& e : body.elts) {
      if (e->kind != PyNodeKind::kCall) {
        return DecodeErr(absl::StrCat("AssertionError: element is not a function call (",
                                      std::string(PyAstClassName(*e)), ")"));
      }
      calls.push_back(e.get());
    }
  } else {
    return DecodeErr(absl::StrCat("'", std::string(PyAstClassName(body)), "' object has no attribute 'elts'"));
  }
  std::vector<std::string> out;
  for (const PyNode* c : calls) {
    std::string name;
    absl::StatusOr<PyValue> resolved = ResolveCall(*c, &name);
    if (!resolved.ok()) return resolved.status();
    absl::StatusOr<std::string> args = RenderArgs(resolved->dict().begin()->second.dict());
    if (!args.ok()) return args.status();
    out.push_back(absl::StrCat(name, "(", *args, ")"));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeBfclFunctionCalling(std::string_view text) {
  if (text.empty()) return std::vector<std::string>{};
  absl::StatusOr<PyValue> parsed = PyValue::FromJson(text);
  if (!parsed.ok() || !(parsed->is_list() || parsed->is_dict())) {
    return DecodeErr("the reply holds no tool calls (plain text)");
  }
  PyList list = parsed->is_dict() ? PyList{*parsed} : parsed->items();
  std::vector<std::string> out;
  for (const PyValue& item : list) {
    if (!item.is_dict()) {
      return DecodeErr(absl::StrCat("'", std::string(item.TypeName()), "' object has no attribute 'items'"));
    }
    for (const auto& [name, raw] : item.dict()) {
      PyValue args = raw;
      if (raw.is_str()) {
        absl::StatusOr<PyValue> a = PyValue::FromJson(raw.as_str());
        if (!a.ok()) return DecodeErr(std::string(a.status().message()));
        args = *std::move(a);
      }
      if (!args.is_dict()) {
        return DecodeErr(absl::StrCat("'", std::string(args.TypeName()), "' object has no attribute 'items'"));
      }
      std::vector<std::string> parts;
      for (const auto& [k, v] : args.dict()) parts.push_back(absl::StrCat(k.Str(), "=", v.Repr()));
      out.push_back(absl::StrCat(name.Str(), "(", absl::StrJoin(parts, ","), ")"));
    }
  }
  return out;
}

DecodeResult DecodeEnvTuning(std::string_view text) {
  std::string_view s = Trim(text);
  std::vector<Block> blocks;
  std::vector<std::string> outside;
  size_t p = 0;
  while (p < s.size()) {
    if (IsWs(s[p])) {
      ++p;
      continue;
    }
    const char* matched = nullptr;
    for (const char* tag : kTags) {
      std::string open = absl::StrCat("<", tag, ">");
      if (s.substr(p, open.size()) == open) matched = tag;
    }
    if (matched != nullptr) {
      std::string open = absl::StrCat("<", matched, ">");
      std::string close = absl::StrCat("</", matched, ">");
      size_t end = s.find(close, p + open.size());
      if (end == std::string_view::npos) {
        return FormatError(absl::StrCat("the ", open, " block is not closed (missing ", close, ")."));
      }
      blocks.push_back({matched, std::string(s.substr(p + open.size(), end - p - open.size()))});
      p = end + close.size();
      continue;
    }
    // Text outside tags, up to the next opening tag.
    size_t next = std::string_view::npos;
    for (const char* tag : kTags) {
      next = std::min(next, s.find(absl::StrCat("<", tag, ">"), p + 1));
    }
    size_t stop = next == std::string_view::npos ? s.size() : next;
    outside.push_back(std::string(s.substr(p, stop - p)));
    p = stop;
  }
  auto count = [&](std::string_view tag) {
    return std::count_if(blocks.begin(), blocks.end(), [&](const Block& b) { return b.tag == tag; });
  };
  long n_think = count("think"), n_call = count("tool_call"), n_answer = count("answer");
  if (n_think == 0) return FormatError("missing <think>...</think> block; every reply must start with one.");
  if (n_think > 1) return FormatError(absl::StrCat("found ", n_think, " <think> blocks; exactly one is allowed."));
  if (n_call > 1) {
    return FormatError(absl::StrCat("found ", n_call,
                                    " <tool_call> blocks; exactly one is allowed (put several calls in one JSON list)."));
  }
  if (n_answer > 1) return FormatError(absl::StrCat("found ", n_answer, " <answer> blocks; exactly one is allowed."));
  if (n_call == 1 && n_answer == 1) {
    return FormatError("the reply contains both a <tool_call> block and an <answer> block; give exactly one of them.");
  }
  if (n_call == 0 && n_answer == 0) {
    return FormatError(
        "after the <think> block the reply must contain either one <tool_call>...</tool_call> block or one "
        "<answer>...</answer> block; neither was found.");
  }
  if (!outside.empty()) {
    return FormatError(absl::StrCat("text outside the <think>, <tool_call> and <answer> tags is not allowed (found \"",
                                    Excerpt(outside.front()), "\")."));
  }
  if (blocks.front().tag != "think") return FormatError("the <think> block must come first.");
  DecodeResult result;
  result.think = blocks.front().body;
  const Block& action = blocks[1];
  if (action.tag == "answer") {
    result.kind = DecodeResult::Kind::kAnswer;
    result.message = std::string(Trim(action.body));
    return result;
  }
  absl::StatusOr<PyValue> json = PyValue::FromJson(Trim(action.body));
  if (!json.ok()) {
    return FormatError(absl::StrCat("the <tool_call> block does not hold valid JSON: ",
                                    std::string(json.status().message())));
  }
  if (!json->is_list() && !json->is_dict()) {
    return NoCall("the <tool_call> JSON is neither a list nor an object");
  }
  PyList items = json->is_dict() ? PyList{*std::move(json)} : std::move(json->items());
  if (items.empty()) return NoCall("the <tool_call> list is empty");
  bool structured = true;
  for (PyValue& item : items) {
    if (!item.is_dict()) return NoCall("a tool call is not a JSON object");
    const PyValue* name = item.dict().Find("name");
    if (name == nullptr || !name->is_str() || !IsIdentifier(name->as_str())) {
      return NoCall("a tool call has no valid \"name\"");
    }
    PyValue args = PyValue::Dict();
    if (PyValue* a = item.dict().Find("arguments"); a != nullptr) {
      args = std::move(*a);
      if (args.is_str()) {
        absl::StatusOr<PyValue> parsed = PyValue::FromJson(args.as_str());
        if (!parsed.ok()) return NoCall("\"arguments\" is a string that is not JSON");
        args = *std::move(parsed);
      }
    }
    if (!args.is_dict()) return NoCall("\"arguments\" is not a JSON object");
    std::string call = absl::StrCat(name->as_str(), "(");
    DecodedCall decoded{name->as_str(), {}};
    structured = structured && !IsPythonKeyword(decoded.name);
    bool first = true;
    for (auto& [k, v] : args.dict().mutable_entries()) {
      if (!k.is_str() || !IsIdentifier(k.as_str())) return NoCall("an argument name is not an identifier");
      absl::StrAppend(&call, first ? "" : ", ", k.as_str(), "=", v.Repr());
      first = false;
      structured = structured && !IsPythonKeyword(k.as_str()) && ReprRoundTrips(v);
      if (structured) decoded.keywords.emplace_back(k.as_str(), std::move(v));
    }
    call.push_back(')');
    result.calls.push_back(std::move(call));
    if (structured) result.structured.push_back(std::move(decoded));
  }
  if (!structured) result.structured.clear();
  result.kind = DecodeResult::Kind::kCalls;
  return result;
}

DecodeResult DecodeHermes(std::string_view text) {
  static constexpr std::string_view kOpen = "<tool_call>";
  static constexpr std::string_view kClose = "</tool_call>";
  PyList objects;
  size_t p = 0;
  while (true) {
    size_t open = text.find(kOpen, p);
    if (open == std::string_view::npos) break;
    size_t close = text.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos)
      return FormatError("a <tool_call> block is not closed (missing </tool_call>).");
    std::string_view body = text.substr(open + kOpen.size(), close - open - kOpen.size());
    absl::StatusOr<PyValue> json = PyValue::FromJson(body);
    if (!json.ok()) {
      return FormatError(absl::StrCat("a <tool_call> block does not hold valid JSON: ",
                                      std::string(json.status().message())));
    }
    if (!json->is_dict())
      return FormatError(
          "a <tool_call> block must hold one JSON object {\"name\", \"arguments\"}.");
    objects.push_back(*std::move(json));
    p = close + kClose.size();
  }
  if (objects.empty()) {
    DecodeResult r;
    r.kind = DecodeResult::Kind::kAnswer;
    r.message = std::string(text);
    return r;
  }
  // Same validation and rendering as the envtuning format's call list.
  JsonDumpsOptions opts;
  opts.ensure_ascii = false;
  DecodeResult r = DecodeEnvTuning(absl::StrCat("<think></think><tool_call>",
                                                PyValue::List(std::move(objects)).JsonDumps(opts),
                                                "</tool_call>"));
  if (r.kind == DecodeResult::Kind::kNoCall) {
    return FormatError(absl::StrCat("unusable tool call: ", r.message, "."));
  }
  return r;
}

DecodeResult DecodeModelOutput(DecodeMode mode, std::string_view text) {
  if (mode == DecodeMode::kEnvTuning) return DecodeEnvTuning(text);
  absl::StatusOr<std::vector<std::string>> calls =
      mode == DecodeMode::kBfclPrompting ? DecodeBfclPrompting(text) : DecodeBfclFunctionCalling(text);
  DecodeResult r;
  if (!calls.ok()) {
    r.kind = DecodeResult::Kind::kError;
    r.message = std::string(calls.status().message());
    return r;
  }
  r.kind = calls->empty() ? DecodeResult::Kind::kNoCall : DecodeResult::Kind::kCalls;
  r.calls = *std::move(calls);
  return r;
}

}  // namespace envtune
