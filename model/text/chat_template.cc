#include "model/text/chat_template.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/text/unicode.h"

namespace envtune {
namespace {

using OJson = nlohmann::ordered_json;

// A Jinja value: a JSON value or Undefined (nullptr).
using Value = const OJson*;

// Jinja attribute / item lookup on a dict; anything else (or a missing key) is Undefined.
Value Attr(Value v, const char* key) {
  if (v == nullptr || !v->is_object()) return nullptr;
  auto it = v->find(key);
  return it == v->end() ? nullptr : &*it;
}

// Jinja/Python truthiness.
bool Truthy(Value v) {
  if (v == nullptr || v->is_null()) return false;
  if (v->is_boolean()) return v->get<bool>();
  if (v->is_number_integer()) return v->get<int64_t>() != 0;
  if (v->is_number_unsigned()) return v->get<uint64_t>() != 0;
  if (v->is_number_float()) return v->get<double>() != 0.0;
  if (v->is_string()) return !v->get_ref<const std::string&>().empty();
  return !v->empty();  // array / object
}

bool IsString(Value v, std::string_view s) {
  return v != nullptr && v->is_string() && v->get_ref<const std::string&>() == s;
}

// `'literal' + value`: Jinja concatenation only works for strings.
absl::StatusOr<std::string> ConcatOperand(Value v, std::string_view what) {
  if (v != nullptr && v->is_string()) return v->get<std::string>();
  return absl::InvalidArgumentError(absl::StrCat(
      "chat template: ", absl::string_view(what.data(), what.size()),
      v == nullptr ? " is undefined" : " is not a string", " (cannot concatenate)"));
}

// `{{ value }}`: Undefined prints "", everything else Python str().
std::string Print(Value v) { return v == nullptr ? std::string() : PythonStr(*v); }

void AppendHex(uint32_t value, int digits, std::string* out) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%0*x", digits, value);
  out->append(buf);
}

// Approximation of Python's str.isprintable() for non-ASCII code points: the separators (Z*)
// other than ' ', controls (Cc), format characters (Cf) commonly met, surrogates and private use.
bool PythonPrintable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || c == 0x180E ||
      c == 0x061C || (c >= 0xFFF9 && c <= 0xFFFB)) {
    return false;
  }
  if ((c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000) return false;  // private use
  if ((c & 0xFFFE) == 0xFFFE) return false;                          // noncharacters
  return true;
}

std::string PythonStrRepr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  const std::string valid = IsValidUtf8(s) ? s : Utf8Lossy(s);
  for (char32_t c : DecodeUtf8(valid)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (PythonPrintable(c)) {
      AppendUtf8(c, &out);
    } else if (c < 0x100) {
      out += "\\x";
      AppendHex(c, 2, &out);
    } else if (c < 0x10000) {
      out += "\\u";
      AppendHex(c, 4, &out);
    } else {
      out += "\\U";
      AppendHex(c, 8, &out);
    }
  }
  out.push_back(quote);
  return out;
}

void PythonRepr(const OJson& v, std::string* out) {
  switch (v.type()) {
    case OJson::value_t::null:
      *out += "None";
      return;
    case OJson::value_t::boolean:
      *out += v.get<bool>() ? "True" : "False";
      return;
    case OJson::value_t::number_integer:
      *out += std::to_string(v.get<int64_t>());
      return;
    case OJson::value_t::number_unsigned:
      *out += std::to_string(v.get<uint64_t>());
      return;
    case OJson::value_t::number_float:
      *out += PythonFloatRepr(v.get<double>());
      return;
    case OJson::value_t::string:
      *out += PythonStrRepr(v.get_ref<const std::string&>());
      return;
    case OJson::value_t::array: {
      *out += '[';
      bool first = true;
      for (const OJson& e : v) {
        if (!first) *out += ", ";
        first = false;
        PythonRepr(e, out);
      }
      *out += ']';
      return;
    }
    case OJson::value_t::object: {
      *out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) *out += ", ";
        first = false;
        *out += PythonStrRepr(it.key());
        *out += ": ";
        PythonRepr(it.value(), out);
      }
      *out += '}';
      return;
    }
    default:  // binary / discarded: not produced by JSON parsing
      *out += "None";
  }
}

absl::Status JsonDumpString(const std::string& s, std::string* out) {
  if (!IsValidUtf8(s)) {
    return absl::InvalidArgumentError("tojson: string is not valid UTF-8");
  }
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          *out += "\\u";
          AppendHex(c, 4, out);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
  return absl::OkStatus();
}

absl::Status JsonDump(const OJson& v, std::string* out) {
  switch (v.type()) {
    case OJson::value_t::null:
      *out += "null";
      return absl::OkStatus();
    case OJson::value_t::boolean:
      *out += v.get<bool>() ? "true" : "false";
      return absl::OkStatus();
    case OJson::value_t::number_integer:
      *out += std::to_string(v.get<int64_t>());
      return absl::OkStatus();
    case OJson::value_t::number_unsigned:
      *out += std::to_string(v.get<uint64_t>());
      return absl::OkStatus();
    case OJson::value_t::number_float: {
      const double d = v.get<double>();
      if (std::isnan(d)) {
        *out += "NaN";
      } else if (std::isinf(d)) {
        *out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        *out += PythonFloatRepr(d);
      }
      return absl::OkStatus();
    }
    case OJson::value_t::string:
      return JsonDumpString(v.get_ref<const std::string&>(), out);
    case OJson::value_t::array: {
      *out += '[';
      bool first = true;
      for (const OJson& e : v) {
        if (!first) *out += ", ";
        first = false;
        if (absl::Status s = JsonDump(e, out); !s.ok()) return s;
      }
      *out += ']';
      return absl::OkStatus();
    }
    case OJson::value_t::object: {
      *out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) *out += ", ";
        first = false;
        if (absl::Status s = JsonDumpString(it.key(), out); !s.ok()) return s;
        *out += ": ";
        if (absl::Status s = JsonDump(it.value(), out); !s.ok()) return s;
      }
      *out += '}';
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError("tojson: value is not JSON serializable");
  }
}

absl::StatusOr<std::string> ToJson(Value v) {
  if (v == nullptr) {
    return absl::InvalidArgumentError(
        "chat template: tojson of an undefined value (Object of type Undefined is not JSON "
        "serializable)");
  }
  std::string out;
  if (absl::Status s = JsonDump(*v, &out); !s.ok()) return s;
  return out;
}

#define ENVTUNE_ASSIGN_OR_RETURN_TEXT(lhs, expr) \
  auto lhs##_or = (expr);                        \
  if (!lhs##_or.ok()) return lhs##_or.status();  \
  const std::string& lhs = *lhs##_or

// Renders the loop body for message `i` (the template's `for message in messages` loop).
absl::Status RenderMessage(const OJson& messages, size_t i, std::string* out) {
  const OJson& message = messages[i];
  Value role = Attr(&message, "role");
  Value content = Attr(&message, "content");
  Value tool_calls = Attr(&message, "tool_calls");
  const bool first = i == 0, last = i + 1 == messages.size();
  if (IsString(role, "user") || (IsString(role, "system") && !first) ||
      (IsString(role, "assistant") && !Truthy(tool_calls))) {
    ENVTUNE_ASSIGN_OR_RETURN_TEXT(r, ConcatOperand(role, "message.role"));
    ENVTUNE_ASSIGN_OR_RETURN_TEXT(c, ConcatOperand(content, "message.content"));
    absl::StrAppend(out, kImStart, r, "\n", c, kImEnd, "\n");
  } else if (IsString(role, "assistant")) {
    absl::StrAppend(out, kImStart, "assistant");
    if (Truthy(content)) {
      ENVTUNE_ASSIGN_OR_RETURN_TEXT(c, ConcatOperand(content, "message.content"));
      absl::StrAppend(out, "\n", c);
    }
    if (!tool_calls->is_array()) {
      return absl::InvalidArgumentError("chat template: message.tool_calls must be a list");
    }
    for (const OJson& call : *tool_calls) {
      Value tool_call = &call;
      if (call.is_object() && call.contains("function")) tool_call = &call["function"];
      ENVTUNE_ASSIGN_OR_RETURN_TEXT(arguments, ToJson(Attr(tool_call, "arguments")));
      absl::StrAppend(out, "\n<tool_call>\n{\"name\": \"", Print(Attr(tool_call, "name")),
                      "\", \"arguments\": ", arguments, "}\n</tool_call>");
    }
    absl::StrAppend(out, kImEnd, "\n");
  } else if (IsString(role, "tool")) {
    if (first || !IsString(Attr(&messages[i - 1], "role"), "tool")) {
      absl::StrAppend(out, kImStart, "user");
    }
    absl::StrAppend(out, "\n<tool_response>\n", Print(content), "\n</tool_response>");
    if (last || !IsString(Attr(&messages[i + 1], "role"), "tool")) {
      absl::StrAppend(out, kImEnd, "\n");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string PythonFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  if (ec != std::errc()) return "nan";  // unreachable: the buffer is large enough
  std::string sci(buf, end);          // e.g. "-3e-07", "2.5e+00", "1.2345e+20"
  std::string sign;
  size_t p = 0;
  if (sci[0] == '-') {
    sign = "-";
    p = 1;
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t k = p; k < e_pos; ++k) {
    if (sci[k] != '.') digits.push_back(sci[k]);
  }
  const int exponent = std::stoi(sci.substr(e_pos + 1));
  const int decpt = exponent + 1;  // value = 0.DIGITS * 10^decpt
  const int ndigits = static_cast<int>(digits.size());
  std::string out = sign;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(-decpt, '0') + digits;
    } else if (decpt >= ndigits) {
      out += digits + std::string(decpt - ndigits, '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
  } else {
    out += digits.substr(0, 1);
    if (ndigits > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+',
                  exponent < 0 ? -exponent : exponent);
    out += exp_buf;
  }
  return out;
}

std::string PythonStr(const OJson& value) {
  if (value.is_string()) return value.get<std::string>();
  std::string out;
  PythonRepr(value, &out);
  return out;
}

absl::StatusOr<std::string> PythonJsonDumps(const OJson& value) {
  std::string out;
  if (absl::Status s = JsonDump(value, &out); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> RenderQwen25Chat(const OJson& messages, const OJson& tools,
                                             bool add_generation_prompt) {
  if (!messages.is_array()) {
    return absl::InvalidArgumentError("chat template: messages must be a list");
  }
  if (messages.empty()) {
    return absl::InvalidArgumentError(
        "chat template: messages is empty ('messages[0]' is undefined)");
  }
  std::string out;
  Value first_role = Attr(&messages[0], "role");
  const bool first_is_system = IsString(first_role, "system");
  if (Truthy(&tools)) {
    if (!tools.is_array()) {
      return absl::InvalidArgumentError("chat template: tools must be a list (or null)");
    }
    absl::StrAppend(&out, kImStart, "system\n");
    if (first_is_system) {
      out += Print(Attr(&messages[0], "content"));
    } else {
      out += kQwenDefaultSystemPrompt;
    }
    out +=
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const OJson& tool : tools) {
      std::string line;
      if (absl::Status s = JsonDump(tool, &line); !s.ok()) return s;
      absl::StrAppend(&out, "\n", line);
    }
    out +=
        "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
  } else if (first_is_system) {
    ENVTUNE_ASSIGN_OR_RETURN_TEXT(c, ConcatOperand(Attr(&messages[0], "content"),
                                                   "messages[0]['content']"));
    absl::StrAppend(&out, kImStart, "system\n", c, kImEnd, "\n");
  } else {
    absl::StrAppend(&out, kImStart, "system\n", kQwenDefaultSystemPrompt, kImEnd, "\n");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    if (absl::Status s = RenderMessage(messages, i, &out); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), " (message ", i, ")"));
    }
  }
  if (add_generation_prompt) out += kQwenGenerationPrompt;
  return out;
}

absl::StatusOr<std::string> RenderQwen25ChatDelta(const OJson& prior, const OJson& added,
                                                  const OJson& tools,
                                                  bool add_generation_prompt) {
  if (!prior.is_array() || !added.is_array()) {
    return absl::InvalidArgumentError("chat template: messages must be lists");
  }
  OJson all = prior;
  for (const OJson& m : added) all.push_back(m);
  ENVTUNE_ASSIGN_OR_RETURN_TEXT(full, RenderQwen25Chat(all, tools, add_generation_prompt));
  if (prior.empty()) return full;
  if (!added.empty() && IsString(Attr(&prior.back(), "role"), "tool") &&
      IsString(Attr(&added.front(), "role"), "tool")) {
    return absl::FailedPreconditionError(
        "chat template: cannot split between two consecutive tool messages (they share one "
        "user turn)");
  }
  ENVTUNE_ASSIGN_OR_RETURN_TEXT(base, RenderQwen25Chat(prior, tools, false));
  if (full.compare(0, base.size(), base) != 0) {
    return absl::FailedPreconditionError(
        "chat template: the rendering of the prior messages is not a prefix of the full "
        "rendering");
  }
  return full.substr(base.size());
}

std::string ChatMLTurn(std::string_view role, std::string_view content) {
  std::string out;
  out.reserve(role.size() + content.size() + 24);
  out += kImStart;
  out += role;
  out += '\n';
  out += content;
  out += kImEnd;
  out += '\n';
  return out;
}

absl::StatusOr<std::string> RenderChatML(const OJson& messages, bool add_generation_prompt) {
  if (!messages.is_array()) return absl::InvalidArgumentError("ChatML: messages must be a list");
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    Value role = Attr(&messages[i], "role");
    Value content = Attr(&messages[i], "content");
    if (role == nullptr || !role->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("ChatML: message ", i, " has no string role"));
    }
    if (content != nullptr && !content->is_null() && !content->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ChatML: message ", i, " content is not a string"));
    }
    out += ChatMLTurn(role->get_ref<const std::string&>(),
                      content == nullptr || content->is_null()
                          ? std::string_view()
                          : std::string_view(content->get_ref<const std::string&>()));
  }
  if (add_generation_prompt) out += kQwenGenerationPrompt;
  return out;
}

}  // namespace envtune
