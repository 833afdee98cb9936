// TradingBot (BFCL trading_bot.py) and the shared Python-semantics helpers. See trading_bot.h and
// ../shared/bfcl/spec/trading_bot.md; section numbers below refer to that spec.
#include "envserver/apis/trading_bot.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "envserver/pyparse.h"
#include "absl/strings/str_replace.h"
#include "envserver/apis/apis.h"

namespace envtune {
namespace pysem {
namespace {

absl::Status PyError(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

bool IsIntLike(const PyValue& v) { return v.is_bool() || v.is_int(); }

// Numeric comparison with Python's exact int/float semantics.
int CompareNumbers(const PyValue& a, const PyValue& b, bool* unordered) {
  std::optional<int> c = PyNumberCompare(a, b);
  *unordered = !c.has_value();
  return c.value_or(0);
}

bool ApplyOrder(int cmp, std::string_view op) {
  if (op == "<") return cmp < 0;
  if (op == "<=") return cmp <= 0;
  if (op == ">") return cmp > 0;
  return cmp >= 0;  // ">="
}

// Python float() of a string: strips whitespace, accepts [sign] digits with single underscores
// between digits, optional fraction and exponent, or inf/infinity/nan (any case).
std::optional<double> ParseFloatString(std::string_view s) {
  auto is_space = [](unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  std::string clean;
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    negative = s[i] == '-';
    ++i;
  }
  std::string rest = absl::AsciiStrToLower(std::string(s.substr(i)));
  if (rest == "inf" || rest == "infinity") {
    return negative ? -HUGE_VAL : HUGE_VAL;
  }
  if (rest == "nan") return negative ? -std::nan("") : std::nan("");
  // digitpart: digit (["_"] digit)*; returns digits consumed (0 if none).
  auto digitpart = [&](size_t* pos) -> bool {
    size_t p = *pos;
    if (p >= s.size() || !absl::ascii_isdigit(s[p])) return false;
    clean.push_back(s[p++]);
    while (p < s.size()) {
      if (absl::ascii_isdigit(s[p])) {
        clean.push_back(s[p++]);
      } else if (s[p] == '_' && p + 1 < s.size() && absl::ascii_isdigit(s[p + 1])) {
        ++p;
      } else {
        break;
      }
    }
    *pos = p;
    return true;
  };
  if (negative) clean.push_back('-');
  bool int_digits = digitpart(&i);
  bool frac_digits = false;
  if (i < s.size() && s[i] == '.') {
    clean.push_back('.');
    ++i;
    frac_digits = digitpart(&i);
  }
  if (!int_digits && !frac_digits) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean.push_back('e');
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean.push_back(s[i++]);
    if (!digitpart(&i)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return std::strtod(clean.c_str(), nullptr);
}

constexpr size_t kMaxRepeat = size_t{1} << 24;

absl::StatusOr<PyValue> Repeat(const PyValue& seq, int64_t n) {
  if (n < 0) n = 0;
  size_t len = seq.is_str() ? seq.as_str().size() : seq.items().size();
  if (len != 0 && static_cast<uint64_t>(n) > kMaxRepeat / len) return PyError("");  // MemoryError
  if (seq.is_str()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_str();
    return PyValue::Str(std::move(out));
  }
  PyList out;
  for (int64_t i = 0; i < n; ++i) {
    for (const PyValue& v : seq.items()) out.push_back(v);
  }
  return seq.is_tuple() ? PyValue::Tuple(std::move(out)) : PyValue::List(std::move(out));
}

}  // namespace

PyValue MakeDict(std::initializer_list<std::pair<std::string_view, PyValue>> entries) {
  PyDict d;
  for (const auto& [k, v] : entries) d.Set(k, v);
  return PyValue::Dict(std::move(d));
}

absl::StatusOr<bool> Compare(const PyValue& a, std::string_view op, const PyValue& b) {
  if (a.is_number() && b.is_number()) {
    bool unordered = false;
    int cmp = CompareNumbers(a, b, &unordered);
    if (unordered) return false;
    return ApplyOrder(cmp, op);
  }
  if (a.is_str() && b.is_str()) {
    int cmp = a.as_str().compare(b.as_str());  // UTF-8 byte order == code point order
    return ApplyOrder(cmp < 0 ? -1 : (cmp > 0 ? 1 : 0), op);
  }
  if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
    const PyList& x = a.items();
    const PyList& y = b.items();
    size_t n = std::min(x.size(), y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!(x[i] == y[i])) return Compare(x[i], op, y[i]);
    }
    int cmp = x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    return ApplyOrder(cmp, op);
  }
  return PyError(absl::StrCat("'", std::string(op), "' not supported between instances of '",
                              TypeName(a), "' and '", TypeName(b), "'"));
}

absl::StatusOr<PyValue> Arith(const PyValue& a, char op, const PyValue& b, bool augmented) {
  std::string opstr = augmented ? absl::StrCat(std::string(1, op), "=") : std::string(1, op);
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float() && !a.is_big_int() && !b.is_big_int()) {
      int64_t x = a.as_int(), y = b.as_int(), r = 0;
      bool overflow = op == '+'   ? __builtin_add_overflow(x, y, &r)
                      : op == '-' ? __builtin_sub_overflow(x, y, &r)
                                  : __builtin_mul_overflow(x, y, &r);
      if (!overflow) return PyValue::Int(r);
    }
    if (a.is_big_int() || b.is_big_int() || (!a.is_float() && !b.is_float())) {
      return PyBinaryOp(std::string(1, op), a, b);  // exact ints, OverflowError for big floats
    }
    double x = a.as_float(), y = b.as_float();
    return PyValue::Float(op == '+' ? x + y : op == '-' ? x - y : x * y);
  }
  if (op == '+') {
    if (a.is_str()) {
      if (b.is_str()) return PyValue::Str(a.as_str() + b.as_str());
      return PyError(absl::StrCat("can only concatenate str (not \"", TypeName(b), "\") to str"));
    }
    if (a.is_list()) {
      if (b.is_list() || (augmented && (b.is_tuple() || b.is_set() || b.is_dict() || b.is_str()))) {
        absl::StatusOr<PyList> extra = Iterate(b);
        if (!extra.ok()) return extra.status();
        PyList out = a.items();
        out.insert(out.end(), extra->begin(), extra->end());
        return PyValue::List(std::move(out));
      }
      if (augmented) return PyError(absl::StrCat("'", TypeName(b), "' object is not iterable"));
      return PyError(absl::StrCat("can only concatenate list (not \"", TypeName(b), "\") to list"));
    }
    if (a.is_tuple()) {
      if (b.is_tuple()) {
        PyList out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return PyValue::Tuple(std::move(out));
      }
      return PyError(
          absl::StrCat("can only concatenate tuple (not \"", TypeName(b), "\") to tuple"));
    }
  }
  if (op == '*') {
    auto is_seq = [](const PyValue& v) { return v.is_str() || v.is_list() || v.is_tuple(); };
    if ((is_seq(a) && b.is_big_int()) || (a.is_big_int() && is_seq(b))) {
      return PyError(kCannotFitIndex);  // OverflowError
    }
    if (is_seq(a) && IsIntLike(b)) return Repeat(a, b.as_int());
    if (IsIntLike(a) && is_seq(b)) return Repeat(b, a.as_int());
    if (is_seq(a) && (b.is_float() || is_seq(b))) {
      return PyError(
          absl::StrCat("can't multiply sequence by non-int of type '", TypeName(b), "'"));
    }
    if (is_seq(b) && a.is_float()) {
      return PyError(
          absl::StrCat("can't multiply sequence by non-int of type '", TypeName(a), "'"));
    }
  }
  return PyError(absl::StrCat("unsupported operand type(s) for ", opstr, ": '", TypeName(a),
                              "' and '", TypeName(b), "'"));
}

std::optional<std::string> UnhashableError(const PyValue& v) {
  if (v.is_list() || v.is_dict() || v.is_set()) {
    return absl::StrCat("unhashable type: '", TypeName(v), "'");
  }
  if (v.is_tuple()) {
    for (const PyValue& item : v.items()) {
      if (auto err = UnhashableError(item)) return err;
    }
  }
  return std::nullopt;
}

absl::StatusOr<bool> Contains(const PyValue& container, const PyValue& needle) {
  if (container.is_dict() || container.is_set()) {
    if (auto err = UnhashableError(needle)) return PyError(*err);
    if (container.is_dict()) return container.dict().Contains(needle);
  }
  if (container.is_list() || container.is_tuple() || container.is_set()) {
    for (const PyValue& item : container.items()) {
      if (item == needle) return true;
    }
    return false;
  }
  if (container.is_str()) {
    if (!needle.is_str()) {
      return PyError(
          absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(needle)));
    }
    return container.as_str().find(needle.as_str()) != std::string::npos;
  }
  return PyError(absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
}

namespace {

// Shared by GetItem/GetMutableItem: the error for container[key], or nullopt with *index set
// (-1 for dict lookups) when it resolves.
std::optional<std::string> SubscriptError(const PyValue& container, const PyValue& key,
                                          int64_t* index) {
  *index = -1;
  if (container.is_dict()) {
    if (auto err = UnhashableError(key)) return err;
    if (container.dict().Find(key) == nullptr) return key.Repr();  // KeyError: str(e) = repr(key)
    return std::nullopt;
  }
  if (container.is_list() || container.is_tuple()) {
    std::string kind = container.is_list() ? "list" : "tuple";
    if (!IsIntLike(key)) {
      return absl::StrCat(kind, " indices must be integers or slices, not ", TypeName(key));
    }
    if (key.is_big_int()) return std::string(kCannotFitIndex);  // IndexError
    int64_t i = key.as_int();
    int64_t n = static_cast<int64_t>(container.items().size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return absl::StrCat(kind, " index out of range");
    *index = i;
    return std::nullopt;
  }
  if (container.is_str()) {
    // Only string keys reach here in the sandboxes; indexing a str by int is not needed.
    return absl::StrCat("string indices must be integers, not '", TypeName(key), "'");
  }
  return absl::StrCat("'", TypeName(container), "' object is not subscriptable");
}

}  // namespace

absl::StatusOr<const PyValue*> GetItem(const PyValue& container, const PyValue& key) {
  int64_t index = -1;
  if (auto err = SubscriptError(container, key, &index)) return PyError(*err);
  if (container.is_dict()) return container.dict().Find(key);
  return &container.items()[static_cast<size_t>(index)];
}

absl::StatusOr<PyValue*> GetMutableItem(PyValue& container, const PyValue& key) {
  int64_t index = -1;
  if (auto err = SubscriptError(container, key, &index)) return PyError(*err);
  if (container.is_dict()) return container.dict().Find(key);
  return &container.items()[static_cast<size_t>(index)];
}

absl::StatusOr<double> ToFloat(const PyValue& v) {
  if (v.is_number()) return v.as_float();
  if (v.is_str()) {
    std::optional<double> d = ParseFloatString(v.as_str());
    if (!d) return PyError("could not convert string to float: " + v.Repr());
    return *d;
  }
  return PyError(
      absl::StrCat("float() argument must be a string or a real number, not '", TypeName(v), "'"));
}

absl::StatusOr<PyList> Iterate(const PyValue& v) {
  if (v.is_list() || v.is_tuple() || v.is_set()) return v.items();
  if (v.is_dict()) {
    PyList keys;
    for (const auto& [k, unused] : v.dict()) keys.push_back(k);
    return keys;
  }
  if (v.is_str()) {
    PyList chars;
    const std::string& s = v.as_str();
    for (size_t i = 0; i < s.size();) {
      size_t j = i + 1;
      while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
      chars.push_back(PyValue::Str(s.substr(i, j - i)));
      i = j;
    }
    return chars;
  }
  return PyError(absl::StrCat("'", TypeName(v), "' object is not iterable"));
}

std::string TypeName(const PyValue& v) { return std::string(v.TypeName()); }

bool IsAsciiDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

namespace {

// One directive's regex from CPython 3.11 _strptime, as alternatives tried in order; each
// alternative is a sequence of character sets ("D" = any digit).
using Alternative = std::vector<std::string_view>;
const std::vector<Alternative>& DirectiveAlternatives(char code) {
  static const auto* y = new std::vector<Alternative>{{"D", "D", "D", "D"}};
  static const auto* m =
      new std::vector<Alternative>{{"1", "012"}, {"0", "123456789"}, {"123456789"}};
  static const auto* d = new std::vector<Alternative>{
      {"3", "01"}, {"12", "D"}, {"0", "123456789"}, {"123456789"}, {" ", "123456789"}};
  static const auto* h = new std::vector<Alternative>{{"2", "0123"}, {"01", "D"}, {"D"}};
  static const auto* mi = new std::vector<Alternative>{{"012345", "D"}, {"D"}};
  static const auto* s = new std::vector<Alternative>{{"6", "01"}, {"012345", "D"}, {"D"}};
  switch (code) {
    case 'Y':
      return *y;
    case 'm':
      return *m;
    case 'd':
      return *d;
    case 'H':
      return *h;
    case 'M':
      return *mi;
    default:
      return *s;
  }
}

// Pattern tokens: a directive letter (Y m d H M S), '-' / ':' literals, or ' ' for \s+.
struct StrptimeMatcher {
  std::string_view text;
  std::string_view pattern;  // e.g. "Y-m-d H:M:S"
  std::vector<std::string_view> captures;

  static bool InSet(std::string_view set, char c) {
    if (set == "D") return absl::ascii_isdigit(c);
    return set.find(c) != std::string_view::npos;
  }
  static bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

  // Returns the end position of the first match (re.match order), or nullopt.
  std::optional<size_t> Match(size_t ti, size_t pos) {
    if (ti == pattern.size()) return pos;
    char t = pattern[ti];
    if (t == '-' || t == ':') {
      if (pos < text.size() && text[pos] == t) return Match(ti + 1, pos + 1);
      return std::nullopt;
    }
    if (t == ' ') {
      size_t end = pos;
      while (end < text.size() && IsSpace(text[end])) ++end;
      for (size_t e = end; e > pos; --e) {
        if (auto r = Match(ti + 1, e)) return r;
      }
      return std::nullopt;
    }
    for (const Alternative& alt : DirectiveAlternatives(t)) {
      if (pos + alt.size() > text.size()) continue;
      bool ok = true;
      for (size_t k = 0; k < alt.size() && ok; ++k) ok = InSet(alt[k], text[pos + k]);
      if (!ok) continue;
      captures.push_back(text.substr(pos, alt.size()));
      if (auto r = Match(ti + 1, pos + alt.size())) return r;
      captures.pop_back();
    }
    return std::nullopt;
  }
};

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

}  // namespace

absl::StatusOr<DateTime> Strptime(const PyValue& data, bool with_time) {
  if (!data.is_str()) {
    return PyError(absl::StrCat("strptime() argument 1 must be str, not ", TypeName(data)));
  }
  const std::string format = with_time ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d";
  StrptimeMatcher matcher{data.as_str(), with_time ? "Y-m-d H:M:S" : "Y-m-d", {}};
  std::optional<size_t> end = matcher.Match(0, 0);
  if (!end) {
    return PyError(
        absl::StrCat("time data ", data.Repr(), " does not match format ", PyStrRepr(format)));
  }
  if (*end != data.as_str().size()) {
    return PyError(absl::StrCat("unconverted data remains: ", data.as_str().substr(*end)));
  }
  auto num = [](std::string_view s) {
    int v = 0;
    for (char c : s) {
      if (absl::ascii_isdigit(c)) v = v * 10 + (c - '0');
    }
    return v;
  };
  DateTime dt;
  dt.year = num(matcher.captures[0]);
  dt.month = num(matcher.captures[1]);
  dt.day = num(matcher.captures[2]);
  if (with_time) {
    dt.hour = num(matcher.captures[3]);
    dt.minute = num(matcher.captures[4]);
    dt.second = num(matcher.captures[5]);
  }
  if (dt.year < 1) return PyError(absl::StrCat("year ", dt.year, " is out of range"));
  if (dt.day > DaysInMonth(dt.year, dt.month)) return PyError("day is out of range for month");
  if (dt.second > 59) return PyError("second must be in 0..59");
  return dt;
}

}  // namespace pysem

namespace {

using pysem::MakeDict;

PyValue ErrorDict(std::string message) {
  return MakeDict({{"error", PyValue::Str(std::move(message))}});
}

// {"error": "User not authenticated. Please log in to <action>."}: what the account methods
// return (alone or in a list) when no user is logged in.
PyValue NotAuthenticated(const char* action) {
  return ErrorDict(absl::StrCat("User not authenticated. Please log in to ", action, "."));
}

CallOutcome RaiseStatus(const absl::Status& status) {
  return CallOutcome::Raise(std::string(status.message()));
}

// Python f"{x:.2f}" for a number.
std::string Fixed2(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.2f", x);
}

PyValue StrList(std::initializer_list<const char*> items) {
  PyList out;
  for (const char* s : items) out.push_back(PyValue::Str(s));
  return PyValue::List(std::move(out));
}

PyValue Stock(double price, double pct, double volume, double ma5, double ma20) {
  return MakeDict({{"price", PyValue::Float(price)},
                   {"percent_change", PyValue::Float(pct)},
                   {"volume", PyValue::Float(volume)},
                   {"MA(5)", PyValue::Float(ma5)},
                   {"MA(20)", PyValue::Float(ma20)}});
}

PyValue DefaultOrders() {
  PyDict orders;
  orders.Set(PyValue::Int(12345), MakeDict({{"id", PyValue::Int(12345)},
                                            {"order_type", PyValue::Str("Buy")},
                                            {"symbol", PyValue::Str("AAPL")},
                                            {"price", PyValue::Float(210.65)},
                                            {"amount", PyValue::Int(10)},
                                            {"status", PyValue::Str("Completed")}}));
  orders.Set(PyValue::Int(12446), MakeDict({{"id", PyValue::Int(12446)},
                                            {"order_type", PyValue::Str("Sell")},
                                            {"symbol", PyValue::Str("GOOG")},
                                            {"price", PyValue::Float(2840.56)},
                                            {"amount", PyValue::Int(5)},
                                            {"status", PyValue::Str("Pending")}}));
  return PyValue::Dict(std::move(orders));
}

PyValue DefaultStocks() {
  return MakeDict({
      {"AAPL", Stock(227.16, 0.17, 2.552, 227.11, 227.09)},
      {"GOOG", Stock(2840.34, 0.24, 1.123, 2835.67, 2842.15)},
      {"TSLA", Stock(667.92, -0.12, 1.654, 671.15, 668.2)},
      {"MSFT", Stock(310.23, 0.09, 3.234, 309.88, 310.11)},
      {"NVDA", Stock(220.34, 0.34, 1.234, 220.45, 220.67)},
      {"ALPH", Stock(1320.45, -0.08, 1.567, 1321.12, 1325.78)},
      {"OMEG", Stock(457.23, 0.12, 2.345, 456.78, 458.12)},
      {"QUAS", Stock(725.89, -0.03, 1.789, 726.45, 728.0)},
      {"NEPT", Stock(88.34, 0.19, 0.654, 88.21, 88.67)},
      {"SYNX", Stock(345.67, 0.11, 2.112, 345.34, 346.12)},
      {"ZETA", Stock(22.09, -0.05, 0.789, 22.12, 22.34)},
  });
}

// §4.2, in table order.
constexpr std::pair<const char*, const char*> kSymbolByName[] = {
    {"Apple", "AAPL"},           {"Google", "GOOG"},           {"Tesla", "TSLA"},
    {"Microsoft", "MSFT"},       {"Nvidia", "NVDA"},           {"Zeta Corp", "ZETA"},
    {"Alpha Tech", "ALPH"},      {"Omega Industries", "OMEG"}, {"Quasar Ltd.", "QUAS"},
    {"Neptune Systems", "NEPT"}, {"Synex Solutions", "SYNX"},  {"Amazon", "AMZN"},
    {"Gorilla", "GORI"},
};

// §3: ORDER_DETAIL_EXTENSION's original key order.
constexpr const char* kOrderDetailKeys[] = {
    "company_overview",
    "market_analysis",
    "technical_analysis",
    "financial_highlights",
    "risks",
    "future_outlook",
    "historical_performance",
    "sustainability_initiatives",
};

constexpr uint64_t kRandomSeed = 1053520;

ParamSpec Req(const char* name) { return ParamSpec{name, std::nullopt}; }
ParamSpec OptNone(const char* name) { return ParamSpec{name, PyValue::None()}; }

bool IsEllipsisMarker(const PyValue& v) {
  if (!v.is_dict() || v.dict().size() != 1) return false;
  const PyValue* marker = v.dict().Find("__python__");
  return marker != nullptr && marker->is_str() && marker->as_str() == "Ellipsis";
}

// `key` from `scenario` if present, else `fallback`.
PyValue FromScenario(const PyValue& scenario, std::string_view key, PyValue fallback) {
  if (scenario.is_dict()) {
    if (const PyValue* v = scenario.dict().Find(key)) return *v;
  }
  return fallback;
}

}  // namespace

TradingBot::TradingBot() : random_(kRandomSeed) { LoadScenario(PyValue::Dict(), false); }

const TradingBot::MethodTable& TradingBot::Methods() {
  static const auto* table = new MethodTable{
      {"get_current_time", {}, &TradingBot::GetCurrentTime},
      {"get_symbol_by_name", {Req("name")}, &TradingBot::GetSymbolByName},
      {"get_stock_info", {Req("symbol")}, &TradingBot::GetStockInfo},
      {"get_order_details", {Req("order_id")}, &TradingBot::GetOrderDetails},
      {"cancel_order", {Req("order_id")}, &TradingBot::CancelOrder},
      {"place_order",
       {Req("order_type"), Req("symbol"), Req("price"), Req("amount")},
       &TradingBot::PlaceOrder},
      {"withdraw_funds", {Req("amount")}, &TradingBot::WithdrawFunds},
      {"get_account_info", {}, &TradingBot::GetAccountInfo},
      {"trading_login", {Req("username"), Req("password")}, &TradingBot::TradingLogin},
      {"trading_get_login_status", {}, &TradingBot::TradingGetLoginStatus},
      {"trading_logout", {}, &TradingBot::TradingLogout},
      {"fund_account", {Req("amount")}, &TradingBot::FundAccount},
      {"remove_stock_from_watchlist", {Req("symbol")}, &TradingBot::RemoveStockFromWatchlist},
      {"get_watchlist", {}, &TradingBot::GetWatchlist},
      {"get_order_history", {}, &TradingBot::GetOrderHistory},
      {"get_transaction_history",
       {OptNone("start_date"), OptNone("end_date")},
       &TradingBot::GetTransactionHistory},
      {"get_available_stocks", {Req("sector")}, &TradingBot::GetAvailableStocks},
      {"filter_stocks_by_price",
       {Req("stocks"), Req("min_price"), Req("max_price")},
       &TradingBot::FilterStocksByPrice},
      {"add_to_watchlist", {Req("stock")}, &TradingBot::AddToWatchlist},
      {"notify_price_change", {Req("stocks"), Req("threshold")}, &TradingBot::NotifyPriceChange},
  };
  return *table;
}

void TradingBot::LoadScenario(const PyValue& scenario, bool long_context) {
  orders_ = FromScenario(scenario, "orders", DefaultOrders());
  if (orders_.is_dict()) {
    // Keys made only of digits become ints (Python: int(k) if k.isdigit()); a later key equal to
    // an earlier one updates the value in the earlier position, as a dict comprehension does.
    PyDict converted;
    for (const auto& [key, value] : orders_.dict()) {
      int64_t as_int = 0;
      if (key.is_str() && pysem::IsAsciiDigits(key.as_str()) &&
          absl::SimpleAtoi(key.as_str(), &as_int)) {
        converted.Set(PyValue::Int(as_int), value);
      } else {
        converted.Set(key, value);
      }
    }
    orders_ = PyValue::Dict(std::move(converted));
  }
  account_info_ = FromScenario(scenario, "account_info",
                               MakeDict({{"account_id", PyValue::Int(12345)},
                                         {"balance", PyValue::Float(10000.0)},
                                         {"binding_card", PyValue::Int(1974202140965533)}}));
  authenticated_ = FromScenario(scenario, "authenticated", PyValue::Bool(false));
  market_status_ = FromScenario(scenario, "market_status", PyValue::Str("Closed"));
  order_counter_ = FromScenario(scenario, "order_counter", PyValue::Int(12446));
  stocks_ = FromScenario(scenario, "stocks", DefaultStocks());
  watch_list_ = FromScenario(scenario, "watch_list", StrList({"NVDA"}));
  transaction_history_ = FromScenario(scenario, "transaction_history", PyValue::List());
  long_context_ = long_context;
  PyBigInt seed(static_cast<int64_t>(kRandomSeed));
  PyValue seed_value = FromScenario(scenario, "random_seed", PyValue::Int(seed));
  if (seed_value.is_int() || seed_value.is_bool()) seed = seed_value.as_big_int();
  random_ = PyRandom(seed);
}

PyValue TradingBot::PublicState() const {
  return MakeDict({{"orders", orders_},
                   {"account_info", account_info_},
                   {"authenticated", authenticated_},
                   {"market_status", market_status_},
                   {"order_counter", order_counter_},
                   {"stocks", stocks_},
                   {"watch_list", watch_list_},
                   {"transaction_history", transaction_history_},
                   {"long_context", PyValue::Bool(long_context_)}});
}

const PyValue* TradingBot::Constant(std::string_view name) const {
  const PyValue* constants = context().long_context_constants;
  if (constants == nullptr || !constants->is_dict()) return nullptr;
  return constants->dict().Find(name);
}

std::string TradingBot::TransactionTimestamp() {
  // §2.1: randint(start, start + 86400) - start seconds after 2024-09-01 10:30:00.
  int64_t k = random_.RandInt(0, 86400);
  int64_t seconds = 10 * 3600 + 30 * 60 + k;
  int day = 1 + static_cast<int>(seconds / 86400);
  seconds %= 86400;
  return absl::StrFormat("2024-09-%02d %02d:%02d:%02d", day, seconds / 3600, (seconds / 60) % 60,
                         seconds % 60);
}

CallOutcome TradingBot::GetCurrentTime(const std::vector<PyValue>&) {
  return CallOutcome::Return(MakeDict({{"current_time", PyValue::Str("10:30 AM")}}));
}

CallOutcome TradingBot::GetSymbolByName(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  if (auto err = pysem::UnhashableError(name)) return CallOutcome::Raise(*err);
  std::string symbol = "Stock not found";
  if (name.is_str()) {
    for (const auto& [n, s] : kSymbolByName) {
      if (name.as_str() == n) symbol = s;
    }
  }
  return CallOutcome::Return(MakeDict({{"symbol", PyValue::Str(symbol)}}));
}

CallOutcome TradingBot::GetStockInfo(const std::vector<PyValue>& a) {
  const PyValue& symbol = a[0];
  absl::StatusOr<bool> found = pysem::Contains(stocks_, symbol);
  if (!found.ok()) return RaiseStatus(found.status());
  if (!*found) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Stock with symbol '", symbol.Str(), "' not found.")));
  }
  absl::StatusOr<const PyValue*> stock = pysem::GetItem(stocks_, symbol);
  if (!stock.ok()) return RaiseStatus(stock.status());
  const PyValue* ma5 = Constant("MA_5_EXTENSION");
  const PyValue* ma20 = Constant("MA_20_EXTENSION");
  if (!long_context_ || ma5 == nullptr || ma20 == nullptr) return CallOutcome::Return(**stock);
  const PyValue& s = **stock;
  if (s.is_dict()) {
    PyValue copy = s;
    copy.dict().Set("MA(5)", *ma5);
    copy.dict().Set("MA(20)", *ma20);
    return CallOutcome::Return(std::move(copy));
  }
  if (s.is_list()) return CallOutcome::Raise("list indices must be integers or slices, not str");
  if (s.is_set()) return CallOutcome::Raise("'set' object does not support item assignment");
  return CallOutcome::Raise(
      absl::StrCat("'", pysem::TypeName(s), "' object has no attribute 'copy'"));
}

CallOutcome TradingBot::GetOrderDetails(const std::vector<PyValue>& a) {
  const PyValue& order_id = a[0];
  absl::StatusOr<bool> found = pysem::Contains(orders_, order_id);
  if (!found.ok()) return RaiseStatus(found.status());
  if (!*found) {
    absl::StatusOr<PyList> keys = pysem::Iterate(orders_);
    if (!keys.ok()) return RaiseStatus(keys.status());
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Order with ID ", order_id.Str(), " not found.",
                               "Here is the list of orders_id: ", PyValue::List(*keys).Repr())));
  }
  absl::StatusOr<const PyValue*> order = pysem::GetItem(orders_, order_id);
  if (!order.ok()) return RaiseStatus(order.status());
  const PyValue* templates = Constant("ORDER_DETAIL_EXTENSION");
  if (!long_context_ || templates == nullptr || !templates->is_dict()) {
    return CallOutcome::Return(**order);
  }
  const PyValue& o = **order;
  if (o.is_list()) return CallOutcome::Raise("list indices must be integers or slices, not str");
  if (o.is_set()) return CallOutcome::Raise("'set' object is not subscriptable");
  if (!o.is_dict()) {
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(o), "' object has no attribute 'copy'"));
  }
  PyValue copy = o;
  absl::StatusOr<const PyValue*> symbol = pysem::GetItem(copy, PyValue::Str("symbol"));
  if (!symbol.ok()) return RaiseStatus(symbol.status());
  std::string symbol_text = (*symbol)->Str();
  PyDict metadata;
  for (const char* key : kOrderDetailKeys) {
    const PyValue* t = templates->dict().Find(key);
    if (t == nullptr || !t->is_str()) continue;
    metadata.Set(key, PyValue::Str(absl::StrReplaceAll(t->as_str(), {{"{symbol}", symbol_text}})));
  }
  copy.dict().Set("metadata", PyValue::Dict(std::move(metadata)));
  return CallOutcome::Return(std::move(copy));
}

CallOutcome TradingBot::CancelOrder(const std::vector<PyValue>& a) {
  const PyValue& order_id = a[0];
  absl::StatusOr<bool> found = pysem::Contains(orders_, order_id);
  if (!found.ok()) return RaiseStatus(found.status());
  if (!*found) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Order with ID ", order_id.Str(), " not found.")));
  }
  absl::StatusOr<PyValue*> order = pysem::GetMutableItem(orders_, order_id);
  if (!order.ok()) return RaiseStatus(order.status());
  absl::StatusOr<const PyValue*> status = pysem::GetItem(**order, PyValue::Str("status"));
  if (!status.ok()) return RaiseStatus(status.status());
  if (**status == PyValue::Str("Completed")) {
    return CallOutcome::Return(ErrorDict(
        absl::StrCat("Can't cancel order ", order_id.Str(), ". Order is already completed.")));
  }
  (*order)->dict().Set("status", PyValue::Str("Cancelled"));  // a dict: "status" was found
  return CallOutcome::Return(
      MakeDict({{"order_id", order_id}, {"status", PyValue::Str("Cancelled")}}));
}

CallOutcome TradingBot::PlaceOrder(const std::vector<PyValue>& a) {
  const PyValue& order_type = a[0];
  const PyValue& symbol = a[1];
  const PyValue& price = a[2];
  const PyValue& amount = a[3];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(NotAuthenticated("place an order"));
  }
  absl::StatusOr<bool> known = pysem::Contains(stocks_, symbol);
  if (!known.ok()) return RaiseStatus(known.status());
  if (!*known) {
    return CallOutcome::Return(ErrorDict(absl::StrCat("Invalid stock symbol: ", symbol.Str())));
  }
  absl::StatusOr<bool> bad = pysem::Compare(price, "<=", PyValue::Int(0));
  if (!bad.ok()) return RaiseStatus(bad.status());
  if (!*bad) {
    bad = pysem::Compare(amount, "<=", PyValue::Int(0));
    if (!bad.ok()) return RaiseStatus(bad.status());
  }
  if (*bad) return CallOutcome::Return(ErrorDict("Price and amount must be positive values."));
  if (!order_type.is_str()) {
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(order_type), "' object has no attribute 'lower'"));
  }
  // Price and amount are numbers here (anything else failed the comparisons above).
  if (absl::AsciiStrToLower(order_type.as_str()) == "buy") {
    double amount_int = 0;
    if (amount.is_float()) {
      double x = amount.as_float();
      if (std::isinf(x)) return CallOutcome::Raise("cannot convert float infinity to integer");
      if (std::isnan(x)) return CallOutcome::Raise("cannot convert float NaN to integer");
      amount_int = std::trunc(x);
    } else {
      absl::StatusOr<double> d = PyValueToDouble(amount);  // price * amount: float(amount)
      if (!d.ok()) return CallOutcome::Raise(std::string(d.status().message()));
      amount_int = *d;
    }
    double total_cost = price.as_float() * amount_int;
    if (!account_info_.is_dict()) {
      return CallOutcome::Raise(
          absl::StrCat("'", pysem::TypeName(account_info_), "' object has no attribute 'get'"));
    }
    const PyValue* found_balance = account_info_.dict().Find("balance");
    PyValue balance = found_balance != nullptr ? *found_balance : PyValue::Int(0);
    absl::StatusOr<bool> short_of = pysem::Compare(PyValue::Float(total_cost), ">", balance);
    if (!short_of.ok()) return RaiseStatus(short_of.status());
    if (*short_of) {
      return CallOutcome::Return(
          ErrorDict(absl::StrCat("Insufficient funds: required $", Fixed2(total_cost),
                                 " but only $", Fixed2(balance.as_float()), " available.")));
    }
  }
  PyValue price_float = PyValue::Float(price.as_float());
  PyValue order_id = order_counter_;
  if (!orders_.is_dict()) {
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(orders_), "' object does not support item assignment"));
  }
  if (auto err = pysem::UnhashableError(order_id)) return CallOutcome::Raise(*err);
  if (!orders_.dict().Contains(order_id) && orders_.dict().size() >= kMaxOrders) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Too many orders: at most ", kMaxOrders, " orders are allowed.")));
  }
  orders_.dict().Set(order_id, MakeDict({{"id", order_id},
                                         {"order_type", order_type},
                                         {"symbol", symbol},
                                         {"price", price_float},
                                         {"amount", amount},
                                         {"status", PyValue::Str("Open")}}));
  absl::StatusOr<PyValue> next = pysem::Arith(order_counter_, '+', PyValue::Int(1), true);
  if (!next.ok()) return RaiseStatus(next.status());
  order_counter_ = *std::move(next);
  return CallOutcome::Return(MakeDict({{"order_id", order_id},
                                       {"order_type", order_type},
                                       {"status", PyValue::Str("Pending")},
                                       {"price", price_float},
                                       {"amount", amount}}));
}

CallOutcome TradingBot::WithdrawFunds(const std::vector<PyValue>& a) {
  const PyValue& amount = a[0];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(NotAuthenticated("make a transaction"));
  }
  if (market_status_ != PyValue::Str("Open")) {
    return CallOutcome::Return(ErrorDict("Market is closed. Transactions are not allowed."));
  }
  absl::StatusOr<bool> bad = pysem::Compare(amount, "<=", PyValue::Int(0));
  if (!bad.ok()) return RaiseStatus(bad.status());
  if (*bad) return CallOutcome::Return(ErrorDict("Transaction amount must be positive."));
  const PyValue balance_key = PyValue::Str("balance");
  absl::StatusOr<const PyValue*> balance = pysem::GetItem(account_info_, balance_key);
  if (!balance.ok()) return RaiseStatus(balance.status());
  absl::StatusOr<bool> too_much = pysem::Compare(amount, ">", **balance);
  if (!too_much.ok()) return RaiseStatus(too_much.status());
  if (*too_much) return CallOutcome::Return(ErrorDict("Insufficient funds for withdrawal."));
  return RecordTransaction(**balance, '-', amount, "withdrawal", "Withdrawal successful");
}

CallOutcome TradingBot::GetAccountInfo(const std::vector<PyValue>&) {
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(NotAuthenticated("view account information"));
  }
  return CallOutcome::Return(account_info_);
}

CallOutcome TradingBot::TradingLogin(const std::vector<PyValue>&) {
  if (authenticated_.Truthy()) {
    return CallOutcome::Return(MakeDict({{"status", PyValue::Str("Already logged in")}}));
  }
  authenticated_ = PyValue::Bool(true);
  return CallOutcome::Return(MakeDict({{"status", PyValue::Str("Logged in successfully")}}));
}

CallOutcome TradingBot::TradingGetLoginStatus(const std::vector<PyValue>&) {
  return CallOutcome::Return(MakeDict({{"status", PyValue::Bool(authenticated_.Truthy())}}));
}

CallOutcome TradingBot::TradingLogout(const std::vector<PyValue>&) {
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(
        MakeDict({{"status", PyValue::Str("No user is currently logged in")}}));
  }
  authenticated_ = PyValue::Bool(false);
  return CallOutcome::Return(MakeDict({{"status", PyValue::Str("Logged out successfully")}}));
}

CallOutcome TradingBot::FundAccount(const std::vector<PyValue>& a) {
  const PyValue& amount = a[0];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(NotAuthenticated("fund the account"));
  }
  absl::StatusOr<bool> bad = pysem::Compare(amount, "<=", PyValue::Int(0));
  if (!bad.ok()) return RaiseStatus(bad.status());
  if (*bad) return CallOutcome::Return(ErrorDict("Funding amount must be positive."));
  absl::StatusOr<const PyValue*> balance = pysem::GetItem(account_info_, PyValue::Str("balance"));
  if (!balance.ok()) return RaiseStatus(balance.status());
  return RecordTransaction(**balance, '+', amount, "deposit", "Account funded successfully");
}

CallOutcome TradingBot::RecordTransaction(const PyValue& balance, char op, const PyValue& amount,
                                          const char* type, const char* status) {
  if (transaction_history_.is_list() && transaction_history_.items().size() >= kMaxTransactions) {
    return CallOutcome::Return(ErrorDict(absl::StrCat(
        "Too many transactions: at most ", kMaxTransactions, " transactions are allowed.")));
  }
  absl::StatusOr<PyValue> new_balance = pysem::Arith(balance, op, amount, true);
  if (!new_balance.ok()) return RaiseStatus(new_balance.status());
  account_info_.dict().Set("balance", *new_balance);  // a dict: "balance" was found
  PyValue entry = MakeDict({{"type", PyValue::Str(type)},
                            {"amount", amount},
                            {"timestamp", PyValue::Str(TransactionTimestamp())}});
  if (!transaction_history_.is_list()) {
    return CallOutcome::Raise(absl::StrCat("'", pysem::TypeName(transaction_history_),
                                           "' object has no attribute 'append'"));
  }
  transaction_history_.items().push_back(std::move(entry));
  return CallOutcome::Return(
      MakeDict({{"status", PyValue::Str(status)}, {"new_balance", *std::move(new_balance)}}));
}

CallOutcome TradingBot::RemoveStockFromWatchlist(const std::vector<PyValue>& a) {
  const PyValue& symbol = a[0];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(NotAuthenticated("modify the watchlist"));
  }
  absl::StatusOr<bool> present = pysem::Contains(watch_list_, symbol);
  if (!present.ok()) return RaiseStatus(present.status());
  if (!*present) {
    return CallOutcome::Return(
        ErrorDict(absl::StrCat("Stock ", symbol.Str(), " not found in watchlist.")));
  }
  if (!watch_list_.is_list() && !watch_list_.is_set()) {
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(watch_list_), "' object has no attribute 'remove'"));
  }
  PyList& items = watch_list_.items();
  for (auto it = items.begin(); it != items.end(); ++it) {
    if (*it == symbol) {
      items.erase(it);
      break;
    }
  }
  return CallOutcome::Return(
      MakeDict({{"status", PyValue::Str(absl::StrCat("Stock ", symbol.Str(),
                                                     " removed from watchlist successfully."))}}));
}

CallOutcome TradingBot::GetWatchlist(const std::vector<PyValue>&) {
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(
        StrList({"Error: User not authenticated. Please log in to view the watchlist."}));
  }
  const PyValue* extension = Constant("WATCH_LIST_EXTENSION");
  if (!long_context_ || extension == nullptr || !extension->is_list()) {
    return CallOutcome::Return(MakeDict({{"watchlist", watch_list_}}));
  }
  if (!watch_list_.is_list()) {
    if (watch_list_.is_dict() || watch_list_.is_set()) {
      return CallOutcome::Raise(
          absl::StrCat("'", pysem::TypeName(watch_list_), "' object has no attribute 'extend'"));
    }
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(watch_list_), "' object has no attribute 'copy'"));
  }
  PyList items = watch_list_.items();
  items.insert(items.end(), extension->items().begin(), extension->items().end());
  bool has_ellipsis = false;
  for (const PyValue& v : items) has_ellipsis = has_ellipsis || IsEllipsisMarker(v);
  if (!has_ellipsis) return CallOutcome::Return(PyValue::List(std::move(items)));
  // PyValue has no Ellipsis; the executor prints a list result with str(), so we return that
  // text itself (a str result is printed as is): byte-identical result string.
  std::string text = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += ", ";
    text += IsEllipsisMarker(items[i]) ? "Ellipsis" : items[i].Repr();
  }
  text += "]";
  return CallOutcome::Return(PyValue::Str(std::move(text)));
}

CallOutcome TradingBot::GetOrderHistory(const std::vector<PyValue>&) {
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(PyValue::List({NotAuthenticated("view order history")}));
  }
  if (!orders_.is_dict()) {
    return CallOutcome::Raise(
        absl::StrCat("'", pysem::TypeName(orders_), "' object has no attribute 'keys'"));
  }
  PyList keys;
  for (const auto& [k, unused] : orders_.dict()) keys.push_back(k);
  return CallOutcome::Return(MakeDict({{"history", PyValue::List(std::move(keys))}}));
}

CallOutcome TradingBot::GetTransactionHistory(const std::vector<PyValue>& a) {
  const PyValue& start_date = a[0];
  const PyValue& end_date = a[1];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(PyValue::List({NotAuthenticated("view transaction history")}));
  }
  std::optional<pysem::DateTime> start, end;
  if (start_date.Truthy()) {
    absl::StatusOr<pysem::DateTime> d = pysem::Strptime(start_date, false);
    if (!d.ok()) return RaiseStatus(d.status());
    start = *d;
  }
  if (end_date.Truthy()) {
    absl::StatusOr<pysem::DateTime> d = pysem::Strptime(end_date, false);
    if (!d.ok()) return RaiseStatus(d.status());
    end = *d;
  }
  absl::StatusOr<PyList> history = pysem::Iterate(transaction_history_);
  if (!history.ok()) return RaiseStatus(history.status());
  PyList filtered;
  for (const PyValue& t : *history) {
    absl::StatusOr<const PyValue*> stamp = pysem::GetItem(t, PyValue::Str("timestamp"));
    if (!stamp.ok()) return RaiseStatus(stamp.status());
    absl::StatusOr<pysem::DateTime> ts = pysem::Strptime(**stamp, true);
    if (!ts.ok()) return RaiseStatus(ts.status());
    if (start && ts->Tuple() < start->Tuple()) continue;
    if (end && ts->Tuple() > end->Tuple()) continue;
    filtered.push_back(t);
  }
  const PyValue* extension = Constant("TRANSACTION_HISTORY_EXTENSION");
  if (long_context_ && extension != nullptr && extension->is_list()) {
    for (const PyValue& entry : extension->items()) {
      if (!entry.is_dict()) {
        filtered.push_back(entry);
        continue;
      }
      // Original key order: type, amount, timestamp (the JSON file stores them sorted).
      PyDict ordered;
      for (const char* key : {"type", "amount", "timestamp"}) {
        if (const PyValue* v = entry.dict().Find(key)) ordered.Set(key, *v);
      }
      for (const auto& [k, v] : entry.dict()) {
        if (!ordered.Contains(k)) ordered.Set(k, v);
      }
      filtered.push_back(PyValue::Dict(std::move(ordered)));
    }
  }
  return CallOutcome::Return(
      MakeDict({{"transaction_history", PyValue::List(std::move(filtered))}}));
}

CallOutcome TradingBot::GetAvailableStocks(const std::vector<PyValue>& a) {
  const PyValue& sector = a[0];
  if (auto err = pysem::UnhashableError(sector)) return CallOutcome::Raise(*err);
  PyValue list = PyValue::List();
  const PyValue* extension = nullptr;
  if (sector == PyValue::Str("Technology")) {
    list = StrList({"AAPL", "GOOG", "MSFT", "NVDA"});
    extension = Constant("TECHNOLOGY_EXTENSION");
  } else if (sector == PyValue::Str("Automobile")) {
    list = StrList({"TSLA", "F", "GM"});
    extension = Constant("AUTOMOBILE_EXTENSION");
  }
  if (long_context_ && extension != nullptr && extension->is_list()) {
    list.items().insert(list.items().end(), extension->items().begin(), extension->items().end());
  }
  return CallOutcome::Return(MakeDict({{"stock_list", std::move(list)}}));
}

CallOutcome TradingBot::FilterStocksByPrice(const std::vector<PyValue>& a) {
  const PyValue& min_price = a[1];
  const PyValue& max_price = a[2];
  absl::StatusOr<PyList> symbols = pysem::Iterate(a[0]);
  if (!symbols.ok()) return RaiseStatus(symbols.status());
  // self.stocks.get(symbol, {}).get("price", 0)
  auto price_of = [&](const PyValue& symbol) -> absl::StatusOr<PyValue> {
    if (!stocks_.is_dict()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", pysem::TypeName(stocks_), "' object has no attribute 'get'"));
    }
    if (auto err = pysem::UnhashableError(symbol)) return absl::InvalidArgumentError(*err);
    const PyValue* stock = stocks_.dict().Find(symbol);
    if (stock == nullptr) return PyValue::Int(0);
    if (!stock->is_dict()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", pysem::TypeName(*stock), "' object has no attribute 'get'"));
    }
    const PyValue* price = stock->dict().Find("price");
    return price != nullptr ? *price : PyValue::Int(0);
  };
  PyList kept;
  for (const PyValue& symbol : *symbols) {
    absl::StatusOr<PyValue> price = price_of(symbol);
    if (!price.ok()) return RaiseStatus(price.status());
    absl::StatusOr<bool> ok = pysem::Compare(*price, ">=", min_price);
    if (!ok.ok()) return RaiseStatus(ok.status());
    if (!*ok) continue;
    ok = pysem::Compare(*price, "<=", max_price);
    if (!ok.ok()) return RaiseStatus(ok.status());
    if (*ok) kept.push_back(symbol);
  }
  return CallOutcome::Return(MakeDict({{"filtered_stocks", PyValue::List(std::move(kept))}}));
}

CallOutcome TradingBot::AddToWatchlist(const std::vector<PyValue>& a) {
  const PyValue& stock = a[0];
  absl::StatusOr<bool> watched = pysem::Contains(watch_list_, stock);
  if (!watched.ok()) return RaiseStatus(watched.status());
  if (!*watched) {
    absl::StatusOr<bool> known = pysem::Contains(stocks_, stock);
    if (!known.ok()) return RaiseStatus(known.status());
    if (*known) {
      if (!watch_list_.is_list()) {
        return CallOutcome::Raise(
            absl::StrCat("'", pysem::TypeName(watch_list_), "' object has no attribute 'append'"));
      }
      // Bounded by the number of distinct stock symbols (no duplicates are added).
      watch_list_.items().push_back(stock);
    }
  }
  return CallOutcome::Return(MakeDict({{"watchlist", watch_list_}}));
}

CallOutcome TradingBot::NotifyPriceChange(const std::vector<PyValue>& a) {
  const PyValue& threshold = a[1];
  absl::StatusOr<PyList> symbols = pysem::Iterate(a[0]);
  if (!symbols.ok()) return RaiseStatus(symbols.status());
  std::vector<PyValue> changed;
  for (const PyValue& symbol : *symbols) {
    absl::StatusOr<bool> known = pysem::Contains(stocks_, symbol);
    if (!known.ok()) return RaiseStatus(known.status());
    if (!*known) continue;
    absl::StatusOr<const PyValue*> stock = pysem::GetItem(stocks_, symbol);
    if (!stock.ok()) return RaiseStatus(stock.status());
    absl::StatusOr<const PyValue*> pct = pysem::GetItem(**stock, PyValue::Str("percent_change"));
    if (!pct.ok()) return RaiseStatus(pct.status());
    const PyValue& p = **pct;
    PyValue magnitude;
    if (p.is_float()) {
      magnitude = PyValue::Float(std::fabs(p.as_float()));
    } else if (p.is_int() || p.is_bool()) {
      magnitude = PyValue::Int(p.as_big_int().Abs());
    } else {
      return CallOutcome::Raise(
          absl::StrCat("bad operand type for abs(): '", pysem::TypeName(p), "'"));
    }
    absl::StatusOr<bool> ok = pysem::Compare(magnitude, ">=", threshold);
    if (!ok.ok()) return RaiseStatus(ok.status());
    if (*ok) changed.push_back(symbol);
  }
  if (changed.empty()) {
    return CallOutcome::Return(MakeDict(
        {{"notification", PyValue::Str("No significant price changes in the selected stocks.")}}));
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < changed.size(); ++i) {
    if (!changed[i].is_str()) {
      return CallOutcome::Raise(absl::StrCat("sequence item ", i, ": expected str instance, ",
                                             pysem::TypeName(changed[i]), " found"));
    }
    names.push_back(changed[i].as_str());
  }
  return CallOutcome::Return(
      MakeDict({{"notification", PyValue::Str(absl::StrCat("Stocks ", absl::StrJoin(names, ", "),
                                                           " have significant price changes."))}}));
}

std::unique_ptr<ToolApi> NewTradingBot() { return std::make_unique<TradingBot>(); }

}  // namespace envtune
