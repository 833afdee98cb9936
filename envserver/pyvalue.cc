// PyValue / PyDict: CPython 3.11 semantics (see pyvalue.h).
#include "envserver/pyvalue.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <vector>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

#include "envserver/pyvalue_unicode_table.inc"

[[noreturn]] void Die(const char* what, const PyValue& v) {
  std::fprintf(stderr, "PyValue: %s on a value of type %s\n", what,
               std::string(v.TypeName()).c_str());
  std::abort();
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and code points.

// Decodes one code point of `s` at `i` and advances `i`. Bytes that are not valid UTF-8 decode
// one at a time to U+DC80..U+DCFF (Python's surrogateescape), so nothing is ever lost or fatal.
char32_t DecodeUtf8(std::string_view s, size_t& i) {
  char32_t cp;
  if (const size_t n = DecodeUtf8At(s, i, &cp); n > 0) {
    i += n;
    return cp;
  }
  return 0xDC00 + static_cast<unsigned char>(s[i++]);
}

bool IsPrintable(char32_t cp) {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
  auto it = std::upper_bound(
      std::begin(kNonPrintableRanges), std::end(kNonPrintableRanges), cp,
      [](char32_t c, const std::pair<char32_t, char32_t>& r) { return c < r.first; });
  if (it == std::begin(kNonPrintableRanges)) return true;
  --it;
  return !(cp >= it->first && cp <= it->second);
}

constexpr char kHex[] = "0123456789abcdef";

void AppendHex(std::string& out, uint32_t v, int digits) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xF]);
}

// ---------------------------------------------------------------------------------------------
// Hashing consistent with Python equality (1 == 1.0 == True hash alike).

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t HashBytes(std::string_view s) { return Mix(std::hash<std::string_view>()(s) ^ 0x5354); }

// True when `d` is an integral value representable as int64 (then stores it).
bool FloatAsInt64(double d, int64_t* out) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return false;
  if (std::trunc(d) != d) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

uint64_t HashKey(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kNone:
      return 0x4E6F6E65;
    case PyValue::Type::kBool:
    case PyValue::Type::kInt: {
      if (!v.is_big_int()) return Mix(static_cast<uint64_t>(v.as_int()));
      // A big int equal to a float must hash as that float does.
      const PyBigInt big = v.as_big_int();
      if (std::optional<double> d = big.ToDouble(); d && big.CompareDouble(*d) == 0) {
        uint64_t bits;
        std::memcpy(&bits, &*d, sizeof bits);
        return Mix(bits ^ 0xF10A7);
      }
      return Mix(big.Hash());
    }
    case PyValue::Type::kFloat: {
      int64_t i;
      double d = v.as_float();
      if (FloatAsInt64(d, &i)) return Mix(static_cast<uint64_t>(i));
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      return Mix(bits ^ 0xF10A7);
    }
    case PyValue::Type::kStr:
      return HashBytes(v.as_str());
    case PyValue::Type::kList:
    case PyValue::Type::kTuple: {
      uint64_t h = static_cast<uint64_t>(v.type()) * 0x100000001B3ull;
      for (const PyValue& item : v.items()) h = Mix(h ^ HashKey(item));
      return h;
    }
    case PyValue::Type::kSet:  // order-insensitive equality: hash the size only
      return Mix(0x5E7 + v.items().size());
    case PyValue::Type::kDict:
      return Mix(0xD1C7 + v.dict().size());
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PyDict

struct PyDict::Index {
  absl::flat_hash_map<uint64_t, absl::InlinedVector<uint32_t, 1>> buckets;
};

namespace {
constexpr size_t kIndexThreshold = 24;  // below this a linear scan is as fast
}  // namespace

PyDict::PyDict(std::initializer_list<Entry> entries) {
  for (const Entry& e : entries) Set(e.first, e.second);
}

PyDict::PyDict(const PyDict& other) : entries_(other.entries_) {}

PyDict::PyDict(PyDict&& other) noexcept
    : entries_(std::move(other.entries_)), index_(other.index_.exchange(nullptr)) {
  other.entries_.clear();
}

PyDict& PyDict::operator=(const PyDict& other) {
  if (this != &other) {
    entries_ = other.entries_;
    DropIndex();
  }
  return *this;
}

PyDict& PyDict::operator=(PyDict&& other) noexcept {
  if (this != &other) {
    entries_ = std::move(other.entries_);
    other.entries_.clear();
    DropIndex();
    index_.store(other.index_.exchange(nullptr), std::memory_order_release);
  }
  return *this;
}

PyDict::~PyDict() { delete index_.load(std::memory_order_acquire); }

void PyDict::DropIndex() { delete index_.exchange(nullptr, std::memory_order_acq_rel); }

const PyDict::Index* PyDict::GetIndex() const {
  Index* index = index_.load(std::memory_order_acquire);
  if (index != nullptr || entries_.size() < kIndexThreshold) return index;
  auto* built = new Index;
  built->buckets.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    built->buckets[HashKey(entries_[i].first)].push_back(static_cast<uint32_t>(i));
  }
  Index* expected = nullptr;
  if (index_.compare_exchange_strong(expected, built, std::memory_order_acq_rel)) return built;
  delete built;  // another reader published first
  return expected;
}

void PyDict::AppendEntry(PyValue key, PyValue value) {
  if (Index* index = index_.load(std::memory_order_acquire)) {
    index->buckets[HashKey(key)].push_back(static_cast<uint32_t>(entries_.size()));
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

const PyValue* PyDict::Find(const PyValue& key) const {
  if (const Index* index = GetIndex()) {
    auto it = index->buckets.find(HashKey(key));
    if (it == index->buckets.end()) return nullptr;
    for (uint32_t pos : it->second) {
      if (entries_[pos].first == key) return &entries_[pos].second;
    }
    return nullptr;
  }
  for (const Entry& e : entries_) {
    if (e.first == key) return &e.second;
  }
  return nullptr;
}

PyValue* PyDict::Find(const PyValue& key) {
  return const_cast<PyValue*>(static_cast<const PyDict*>(this)->Find(key));
}

const PyValue* PyDict::Find(std::string_view str_key) const {
  if (const Index* index = GetIndex()) {
    auto it = index->buckets.find(HashBytes(str_key));
    if (it == index->buckets.end()) return nullptr;
    for (uint32_t pos : it->second) {
      const PyValue& k = entries_[pos].first;
      if (k.is_str() && k.as_str() == str_key) return &entries_[pos].second;
    }
    return nullptr;
  }
  for (const Entry& e : entries_) {
    if (e.first.is_str() && e.first.as_str() == str_key) return &e.second;
  }
  return nullptr;
}

PyValue* PyDict::Find(std::string_view str_key) {
  return const_cast<PyValue*>(static_cast<const PyDict*>(this)->Find(str_key));
}

void PyDict::Set(PyValue key, PyValue value) {
  if (PyValue* existing = Find(key)) {
    *existing = std::move(value);
    return;
  }
  AppendEntry(std::move(key), std::move(value));
}

void PyDict::Set(std::string_view str_key, PyValue value) {
  if (PyValue* existing = Find(str_key)) {
    *existing = std::move(value);
    return;
  }
  AppendEntry(PyValue::Str(std::string(str_key)), std::move(value));
}

PyValue& PyDict::operator[](std::string_view str_key) {
  if (PyValue* existing = Find(str_key)) return *existing;
  AppendEntry(PyValue::Str(std::string(str_key)), PyValue());
  return entries_.back().second;
}

bool PyDict::Erase(const PyValue& key) {
  const PyValue* found = Find(key);
  if (found == nullptr) return false;
  // `found` points at entries_[i].second; recover i.
  size_t i = 0;
  while (&entries_[i].second != found) ++i;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
  DropIndex();
  return true;
}

bool PyDict::Erase(std::string_view str_key) {
  const PyValue* found = Find(str_key);
  if (found == nullptr) return false;
  size_t i = 0;
  while (&entries_[i].second != found) ++i;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
  DropIndex();
  return true;
}

size_t PyDict::size() const { return entries_.size(); }
bool PyDict::empty() const { return entries_.empty(); }
const std::vector<PyDict::Entry>& PyDict::entries() const { return entries_; }
std::vector<PyDict::Entry>& PyDict::mutable_entries() {
  DropIndex();
  return entries_;
}

// ---------------------------------------------------------------------------------------------
// PyValue construction and access

PyValue PyValue::Bool(bool b) {
  PyValue v;
  v.type_ = Type::kBool;
  v.data_ = b;
  return v;
}
PyValue PyValue::Int(int64_t i) {
  PyValue v;
  v.type_ = Type::kInt;
  v.data_ = i;
  return v;
}
PyValue PyValue::Int(const PyBigInt& i) {
  if (i.FitsInt64()) return Int(i.ToInt64());
  PyValue v;
  v.type_ = Type::kInt;
  v.data_ = std::make_shared<const PyBigInt>(i);
  return v;
}
PyValue PyValue::Float(double d) {
  PyValue v;
  v.type_ = Type::kFloat;
  v.data_ = d;
  return v;
}
PyValue PyValue::Str(std::string s) {
  PyValue v;
  v.type_ = Type::kStr;
  v.data_ = std::move(s);
  return v;
}
PyValue PyValue::List(PyList items) {
  PyValue v;
  v.type_ = Type::kList;
  v.data_ = std::move(items);
  return v;
}
PyValue PyValue::Tuple(PyList items) {
  PyValue v;
  v.type_ = Type::kTuple;
  v.data_ = std::move(items);
  return v;
}
PyValue PyValue::Dict(PyDict dict) {
  PyValue v;
  v.type_ = Type::kDict;
  v.data_ = std::move(dict);
  return v;
}
PyValue PyValue::Set(PyList items) {
  PyList unique;
  unique.reserve(items.size());
  for (PyValue& item : items) {
    bool seen = false;
    for (const PyValue& u : unique) {
      if (u == item) {
        seen = true;
        break;
      }
    }
    if (!seen) unique.push_back(std::move(item));
  }
  PyValue v;
  v.type_ = Type::kSet;
  v.data_ = std::move(unique);
  return v;
}

bool PyValue::as_bool() const {
  if (type_ != Type::kBool) Die("as_bool", *this);
  return std::get<bool>(data_);
}
int64_t PyValue::as_int() const {
  if (type_ == Type::kBool) return std::get<bool>(data_) ? 1 : 0;
  if (type_ != Type::kInt || is_big_int()) Die("as_int", *this);
  return std::get<int64_t>(data_);
}
PyBigInt PyValue::as_big_int() const {
  if (is_big_int()) return *std::get<kBigIndex>(data_);
  return PyBigInt(as_int());
}
double PyValue::as_float() const {
  if (type_ == Type::kFloat) return std::get<double>(data_);
  if (is_big_int()) {
    const PyBigInt& big = *std::get<kBigIndex>(data_);
    return big.ToDouble().value_or(big.Sign() < 0 ? -HUGE_VAL : HUGE_VAL);
  }
  if (type_ == Type::kInt) return static_cast<double>(std::get<int64_t>(data_));
  if (type_ == Type::kBool) return std::get<bool>(data_) ? 1.0 : 0.0;
  Die("as_float", *this);
}
const std::string& PyValue::as_str() const {
  if (type_ != Type::kStr) Die("as_str", *this);
  return std::get<std::string>(data_);
}
std::string& PyValue::as_str() {
  if (type_ != Type::kStr) Die("as_str", *this);
  return std::get<std::string>(data_);
}
const PyList& PyValue::items() const {
  if (type_ != Type::kList && type_ != Type::kTuple && type_ != Type::kSet) Die("items", *this);
  return std::get<PyList>(data_);
}
PyList& PyValue::items() {
  if (type_ != Type::kList && type_ != Type::kTuple && type_ != Type::kSet) Die("items", *this);
  return std::get<PyList>(data_);
}
const PyDict& PyValue::dict() const {
  if (type_ != Type::kDict) Die("dict", *this);
  return std::get<PyDict>(data_);
}
PyDict& PyValue::dict() {
  if (type_ != Type::kDict) Die("dict", *this);
  return std::get<PyDict>(data_);
}

bool PyValue::Truthy() const {
  switch (type_) {
    case Type::kNone:
      return false;
    case Type::kBool:
      return as_bool();
    case Type::kInt:
      return is_big_int() || as_int() != 0;
    case Type::kFloat:
      return as_float() != 0.0;  // NaN is truthy, as in Python
    case Type::kStr:
      return !as_str().empty();
    case Type::kList:
    case Type::kTuple:
    case Type::kSet:
      return !items().empty();
    case Type::kDict:
      return !dict().empty();
  }
  return false;
}

std::string_view PyValue::TypeName() const {
  switch (type_) {
    case Type::kNone:
      return "NoneType";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kFloat:
      return "float";
    case Type::kStr:
      return "str";
    case Type::kList:
      return "list";
    case Type::kTuple:
      return "tuple";
    case Type::kDict:
      return "dict";
    case Type::kSet:
      return "set";
  }
  return "object";
}

// ---------------------------------------------------------------------------------------------
// Equality and ordering

namespace {

// Exact comparison when an operand is a big int: -1/0/1, or 2 when unordered (NaN).
int BigCompare(const PyValue& a, const PyValue& b) {
  if (a.is_float() || b.is_float()) {
    const bool a_float = a.is_float();
    const double f = a_float ? a.as_float() : b.as_float();
    if (std::isnan(f)) return 2;
    const int c = (a_float ? b : a).as_big_int().CompareDouble(f);
    return a_float ? -c : c;
  }
  return a.as_big_int().Compare(b.as_big_int());
}

bool NumEq(const PyValue& a, const PyValue& b) {
  if (a.is_big_int() || b.is_big_int()) return BigCompare(a, b) == 0;
  if (!a.is_float() && !b.is_float()) return a.as_int() == b.as_int();
  if (a.is_float() && b.is_float()) return a.as_float() == b.as_float();
  const PyValue& f = a.is_float() ? a : b;
  const PyValue& i = a.is_float() ? b : a;
  int64_t as_int;
  return FloatAsInt64(f.as_float(), &as_int) && as_int == i.as_int();
}

// Exact numeric comparison (int vs float compared on their exact values, as CPython does).
bool NumLess(const PyValue& a, const PyValue& b) {
  if (a.is_big_int() || b.is_big_int()) return BigCompare(a, b) == -1;
  if (!a.is_float() && !b.is_float()) return a.as_int() < b.as_int();
  if (a.is_float() && b.is_float()) return a.as_float() < b.as_float();
  // long double holds every int64 and every double exactly on x86-64 and aarch64.
  auto exact = [](const PyValue& v) -> long double {
    return v.is_float() ? static_cast<long double>(v.as_float())
                        : static_cast<long double>(v.as_int());
  };
  return exact(a) < exact(b);
}

bool SetContains(const PyList& set, const PyValue& v) {
  for (const PyValue& x : set) {
    if (x == v) return true;
  }
  return false;
}

bool SubsetOf(const PyList& a, const PyList& b) {
  for (const PyValue& x : a) {
    if (!SetContains(b, x)) return false;
  }
  return true;
}

}  // namespace

bool operator==(const PyValue& a, const PyValue& b) {
  if (a.is_number() && b.is_number()) return NumEq(a, b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case PyValue::Type::kNone:
      return true;
    case PyValue::Type::kStr:
      return a.as_str() == b.as_str();
    case PyValue::Type::kList:
    case PyValue::Type::kTuple: {
      const PyList& x = a.items();
      const PyList& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!(x[i] == y[i])) return false;
      }
      return true;
    }
    case PyValue::Type::kSet:
      return SubsetOf(a.items(), b.items()) && SubsetOf(b.items(), a.items());
    case PyValue::Type::kDict: {
      const PyDict& x = a.dict();
      const PyDict& y = b.dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const PyValue* other = y.Find(k);
        if (other == nullptr || !(*other == v)) return false;
      }
      return true;
    }
    default:
      return false;  // numbers handled above
  }
}

bool PyValue::Less(const PyValue& a, const PyValue& b) {
  if (a.is_number() && b.is_number()) return NumLess(a, b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::kStr:
      return a.as_str() < b.as_str();  // UTF-8 byte order == code point order
    case Type::kList:
    case Type::kTuple: {
      const PyList& x = a.items();
      const PyList& y = b.items();
      size_t n = std::min(x.size(), y.size());
      for (size_t i = 0; i < n; ++i) {
        if (!(x[i] == y[i])) return Less(x[i], y[i]);
      }
      return x.size() < y.size();
    }
    case Type::kSet:  // proper subset
      return a.items().size() < b.items().size() && SubsetOf(a.items(), b.items());
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// repr / str

std::string PyFloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // e.g. "-1.25e-05"
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());  // value = d.ddd * 10^exp10
  if (exp10 < -4 || exp10 >= 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    out.push_back('e');
    out.push_back(exp10 < 0 ? '-' : '+');
    int mag = exp10 < 0 ? -exp10 : exp10;
    if (mag < 10) out.push_back('0');
    out += std::to_string(mag);
  } else if (exp10 >= 0) {
    size_t int_len = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= int_len) {
      out += digits;
      out.append(int_len - digits.size(), '0');
      out += ".0";
    } else {
      out.append(digits, 0, int_len);
      out.push_back('.');
      out.append(digits, int_len, std::string::npos);
    }
  } else {
    out += "0.";
    out.append(static_cast<size_t>(-exp10 - 1), '0');
    out += digits;
  }
  return out;
}

std::string PyStrRepr(std::string_view utf8) {
  bool has_single = utf8.find('\'') != std::string_view::npos;
  bool has_double = utf8.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out;
  out.reserve(utf8.size() + 2);
  out.push_back(quote);
  size_t i = 0;
  while (i < utf8.size()) {
    size_t start = i;
    char32_t cp = DecodeUtf8(utf8, i);
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp < 0x20 || cp == 0x7F) {
      out += "\\x";
      AppendHex(out, cp, 2);
    } else if (cp < 0x7F) {
      out.push_back(static_cast<char>(cp));
    } else if (IsPrintable(cp)) {
      out.append(utf8.substr(start, i - start));
    } else if (cp <= 0xFF) {
      out += "\\x";
      AppendHex(out, cp, 2);
    } else if (cp <= 0xFFFF) {
      out += "\\u";
      AppendHex(out, cp, 4);
    } else {
      out += "\\U";
      AppendHex(out, cp, 8);
    }
  }
  out.push_back(quote);
  return out;
}

namespace {

// Scalars out of line: their temporaries stay off the recursive frames of AppendRepr.
[[gnu::noinline]] void AppendScalarRepr(const PyValue& v, std::string& out) {
  switch (v.type()) {
    case PyValue::Type::kNone:
      out += "None";
      return;
    case PyValue::Type::kBool:
      out += v.as_bool() ? "True" : "False";
      return;
    case PyValue::Type::kInt:
      out += v.is_big_int() ? v.as_big_int().ToString() : std::to_string(v.as_int());
      return;
    case PyValue::Type::kFloat:
      out += PyFloatRepr(v.as_float());
      return;
    case PyValue::Type::kStr:
      out += PyStrRepr(v.as_str());
      return;
    default:
      return;
  }
}

void AppendRepr(const PyValue& v, std::string& out) {
  switch (v.type()) {
    default:
      AppendScalarRepr(v, out);
      return;
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kSet: {
      const PyList& items = v.items();
      if (v.is_set() && items.empty()) {
        out += "set()";
        return;
      }
      out.push_back(v.is_list() ? '[' : v.is_tuple() ? '(' : '{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ", ";
        AppendRepr(items[i], out);
      }
      if (v.is_tuple() && items.size() == 1) out.push_back(',');
      out.push_back(v.is_list() ? ']' : v.is_tuple() ? ')' : '}');
      return;
    }
    case PyValue::Type::kDict: {
      out.push_back('{');
      bool first = true;
      for (const auto& [k, val] : v.dict()) {
        if (!first) out += ", ";
        first = false;
        AppendRepr(k, out);
        out += ": ";
        AppendRepr(val, out);
      }
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

std::string PyValue::Repr() const {
  std::string out;
  AppendRepr(*this, out);
  return out;
}

std::string PyValue::Str() const {
  if (is_str()) return as_str();
  return Repr();
}

// ---------------------------------------------------------------------------------------------
// json.dumps

namespace {

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string& out) {
  out.push_back('"');
  size_t i = 0;
  // Bytes written as they are: printable ASCII except '"' and '\\' (any byte >= 0x7F too when
  // !ensure_ascii). Runs of them are appended at once.
  auto plain = [ensure_ascii](unsigned char b) {
    return b >= 0x20 && b != '"' && b != '\\' && (b < 0x7F || !ensure_ascii);
  };
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && plain(static_cast<unsigned char>(s[run]))) ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
    }
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80 || !ensure_ascii) {
      ++i;
      switch (b) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (b < 0x20 || (b == 0x7F && ensure_ascii)) {
            out += "\\u00";
            AppendHex(out, b, 2);
          } else {
            out.push_back(static_cast<char>(b));
          }
      }
      continue;
    }
    char32_t cp = DecodeUtf8(s, i);
    if (cp >= 0x10000) {
      char32_t v = cp - 0x10000;
      out += "\\u";
      AppendHex(out, 0xD800 | (v >> 10), 4);
      out += "\\u";
      AppendHex(out, 0xDC00 | (v & 0x3FF), 4);
    } else {
      out += "\\u";
      AppendHex(out, cp, 4);
    }
  }
  out.push_back('"');
}

std::string IntText(const PyValue& v) {
  return v.is_big_int() ? v.as_big_int().ToString() : std::to_string(v.as_int());
}
// int.__repr__ raises beyond sys.get_int_max_str_digits() decimal digits.
bool IntWithinStrLimit(const PyValue& v) {
  return !v.is_big_int() || v.as_big_int().DecimalDigits() <= kIntMaxStrDigits;
}

std::string JsonFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return PyFloatRepr(d);
}

// Rank used by the lenient encoder to order values Python cannot compare.
int LenientRank(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kBool:
    case PyValue::Type::kInt:
    case PyValue::Type::kFloat:
      return 0;
    case PyValue::Type::kStr:
      return 1;
    case PyValue::Type::kTuple:
      return 2;
    case PyValue::Type::kList:
      return 3;
    case PyValue::Type::kNone:
      return 4;
    case PyValue::Type::kDict:
      return 5;
    case PyValue::Type::kSet:
      return 6;
  }
  return 7;
}

bool LenientLess(const PyValue& a, const PyValue& b) {
  int ra = LenientRank(a), rb = LenientRank(b);
  if (ra != rb) return ra < rb;
  return PyValue::Less(a, b);
}

bool Comparable(const PyValue& a, const PyValue& b) {
  if (a.is_number() && b.is_number()) return true;
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case PyValue::Type::kStr:
    case PyValue::Type::kSet:
      return true;
    case PyValue::Type::kList:
    case PyValue::Type::kTuple: {
      const PyList& x = a.items();
      const PyList& y = b.items();
      size_t n = std::min(x.size(), y.size());
      for (size_t i = 0; i < n; ++i) {
        if (!(x[i] == y[i])) return Comparable(x[i], y[i]);
      }
      return true;
    }
    default:
      return false;
  }
}

// Recursive encoder. Frames are kept small (bool results, the error and output as members) so
// that the deep trees some sandboxes produce (thousands of levels) encode without exhausting
// the stack, sanitizer builds included.
class JsonEncoder {
 public:
  JsonEncoder(const JsonDumpsOptions& options, bool strict) : options_(options), strict_(strict) {}

  bool Encode(const PyValue& v, int level) {
    switch (v.type()) {
      default:
        if (strict_ && v.is_big_int() && !IntWithinStrLimit(v)) return FailValue(kIntStrLimitError);
        EncodeScalar(v);
        return true;
      case PyValue::Type::kList:
      case PyValue::Type::kTuple:
        return EncodeList(v.items(), level);
      case PyValue::Type::kSet:
        return EncodeSet(v.items(), level);
      case PyValue::Type::kDict:
        return options_.sort_keys ? EncodeSortedDict(v.dict(), level) : EncodeDict(v.dict(), level);
    }
  }

  [[gnu::noinline]] void EncodeScalar(const PyValue& v) {
    switch (v.type()) {
      case PyValue::Type::kNone:
        out_ += "null";
        return;
      case PyValue::Type::kBool:
        out_ += v.as_bool() ? "true" : "false";
        return;
      case PyValue::Type::kInt:
        out_ += IntText(v);
        return;
      case PyValue::Type::kFloat:
        out_ += JsonFloat(v.as_float());
        return;
      case PyValue::Type::kStr:
        AppendJsonString(v.as_str(), options_.ensure_ascii, out_);
        return;
      default:
        return;
    }
  }

  std::string& out() { return out_; }
  const std::string& error() const { return error_; }
  bool value_error() const { return value_error_; }

 private:
  bool Fail(std::string message) {
    error_ = std::move(message);
    return false;
  }
  // A ValueError (not a TypeError): str() of the value fails the same way.
  bool FailValue(std::string message) {
    value_error_ = true;
    return Fail(std::move(message));
  }
  void Newline(int level) {
    out_.push_back('\n');
    out_.append(static_cast<size_t>(options_.indent) * static_cast<size_t>(level), ' ');
  }
  bool indented() const { return options_.indent >= 0; }
  void ItemPrefix(bool first, int level) {
    if (!first) out_ += indented() ? "," : ", ";
    if (indented()) Newline(level + 1);
  }

  bool EncodeList(const PyList& items, int level) {
    if (items.empty()) {
      out_ += "[]";
      return true;
    }
    out_.push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      ItemPrefix(i == 0, level);
      if (!Encode(items[i], level + 1)) return false;
    }
    if (indented()) Newline(level);
    out_.push_back(']');
    return true;
  }

  [[gnu::noinline]] bool EncodeSet(const PyList& items, int level) {
    if (strict_) return Fail("Object of type set is not JSON serializable");
    PyList sorted = items;
    std::stable_sort(sorted.begin(), sorted.end(), LenientLess);
    return EncodeList(sorted, level);
  }

  [[gnu::noinline]] bool EncodeKey(const PyValue& k) {
    switch (k.type()) {
      case PyValue::Type::kStr:
        AppendJsonString(k.as_str(), options_.ensure_ascii, out_);
        return true;
      case PyValue::Type::kFloat:
        AppendJsonString(JsonFloat(k.as_float()), options_.ensure_ascii, out_);
        return true;
      case PyValue::Type::kBool:
        AppendJsonString(k.as_bool() ? "true" : "false", options_.ensure_ascii, out_);
        return true;
      case PyValue::Type::kNone:
        AppendJsonString("null", options_.ensure_ascii, out_);
        return true;
      case PyValue::Type::kInt:
        if (strict_ && !IntWithinStrLimit(k)) return FailValue(kIntStrLimitError);
        AppendJsonString(IntText(k), options_.ensure_ascii, out_);
        return true;
      default:
        if (strict_) {
          return Fail(absl::StrCat("keys must be str, int, float, bool or None, not ",
                                   std::string(k.TypeName())));
        }
        AppendJsonString(k.Repr(), options_.ensure_ascii, out_);
        return true;
    }
  }

  bool EncodeEntry(const PyDict::Entry& e, bool first, int level) {
    ItemPrefix(first, level);
    if (!EncodeKey(e.first)) return false;
    out_ += ": ";
    return Encode(e.second, level + 1);
  }

  bool EncodeDict(const PyDict& dict, int level) {
    if (dict.empty()) {
      out_ += "{}";
      return true;
    }
    out_.push_back('{');
    bool first = true;
    for (const PyDict::Entry& e : dict) {
      if (!EncodeEntry(e, first, level)) return false;
      first = false;
    }
    if (indented()) Newline(level);
    out_.push_back('}');
    return true;
  }

  [[gnu::noinline]] bool EncodeSortedDict(const PyDict& dict, int level) {
    if (dict.empty()) {
      out_ += "{}";
      return true;
    }
    std::vector<const PyDict::Entry*> entries;
    entries.reserve(dict.size());
    for (const PyDict::Entry& e : dict) entries.push_back(&e);
    if (!SortEntries(entries)) return false;
    out_.push_back('{');
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!EncodeEntry(*entries[i], i == 0, level)) return false;
    }
    if (indented()) Newline(level);
    out_.push_back('}');
    return true;
  }

  // Python sorts the (key, value) items; keys are unique, so this orders by key. Binary
  // insertion sort comparing (new < existing), as CPython's sort does for short lists, so a
  // TypeError names the operand types in the same order for the common two-key case.
  bool SortEntries(std::vector<const PyDict::Entry*>& entries) {
    if (!strict_) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const PyDict::Entry* a, const PyDict::Entry* b) {
                         return LenientLess(a->first, b->first);
                       });
      return true;
    }
    for (size_t i = 1; i < entries.size(); ++i) {
      const PyDict::Entry* pivot = entries[i];
      size_t lo = 0, hi = i;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const PyValue& other = entries[mid]->first;
        if (!Comparable(pivot->first, other)) {
          return Fail(absl::StrCat("'<' not supported between instances of '",
                                   std::string(pivot->first.TypeName()), "' and '",
                                   std::string(other.TypeName()), "'"));
        }
        if (PyValue::Less(pivot->first, other)) {
          hi = mid;
        } else {
          lo = mid + 1;
        }
      }
      entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
      entries.insert(entries.begin() + static_cast<std::ptrdiff_t>(lo), pivot);
    }
    return true;
  }

  const JsonDumpsOptions& options_;
  bool strict_;
  std::string out_;
  std::string error_;
  bool value_error_ = false;
};

}  // namespace

std::string PyValue::JsonDumps(const JsonDumpsOptions& options) const {
  JsonEncoder encoder(options, /*strict=*/false);
  (void)encoder.Encode(*this, 0);  // the lenient encoder never fails
  return std::move(encoder.out());
}

absl::StatusOr<std::string> PyJsonDumps(const PyValue& value, const JsonDumpsOptions& options) {
  JsonEncoder encoder(options, /*strict=*/true);
  if (!encoder.Encode(value, 0)) {
    if (encoder.value_error()) return absl::OutOfRangeError(encoder.error());
    return absl::InvalidArgumentError(encoder.error());
  }
  return std::move(encoder.out());
}

// ---------------------------------------------------------------------------------------------
// json.loads

namespace {

// Builds a PyValue from nlohmann's SAX events, keeping object key order (Python dicts preserve
// it; a repeated key keeps its first position and takes the last value, as dict assignment does).
// Nesting deeper than kMaxJsonDepth is an error, as CPython's json.loads raises RecursionError
// near its recursion limit: every consumer of a PyValue (destruction included) recurses per
// level, and a 100k-deep value from a 200 KB model reply overflowed the stack.
constexpr size_t kMaxJsonDepth = 1000;

// nlohmann with long double numbers: an integer beyond 64 bits reaches number_float with its
// lexeme instead of failing as a double overflow, up to ~4900 digits (past CPython's 4300 limit).
using LongDoubleJson = nlohmann::basic_json<std::map, std::vector, std::string, bool, std::int64_t,
                                            std::uint64_t, long double>;

std::string IntDigitLimitText(size_t digits) {
  return absl::StrCat("Exceeds the limit (", kIntMaxStrDigits,
                      " digits) for integer string conversion: value has ", digits,
                      " digits; use sys.set_int_max_str_digits() to increase the limit");
}

bool IsIntegerLexeme(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// json.loads also reads the literals NaN, Infinity and -Infinity where a value may stand.
// nlohmann does not, so outside strings each such literal, standing alone as a token, is
// replaced by a number of the same length ("0" and spaces) and its ordinal among the text's
// number tokens is recorded with its value; the builder gives those numbers that value. A
// literal glued to other characters ("-NaN", "1NaN", "NaNa") is left as it is, an error as in
// Python. Returns the text to parse: `text` itself when it holds no such literal.
struct NonFiniteNumber {
  size_t ordinal;  // among the number tokens of the text, from 0
  double value;
};
std::string_view ReplaceNonFiniteLiterals(std::string_view text, std::string* storage,
                                          std::vector<NonFiniteNumber>* found) {
  static constexpr struct {
    std::string_view literal;
    double value;
  } kLiterals[] = {{"NaN", std::numeric_limits<double>::quiet_NaN()},
                   {"Infinity", std::numeric_limits<double>::infinity()},
                   {"-Infinity", -std::numeric_limits<double>::infinity()}};
  auto word_char = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '+' ||
           c == '-';
  };
  if (text.find("NaN") == std::string_view::npos &&
      text.find("Infinity") == std::string_view::npos) {
    return text;
  }
  size_t ordinal = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        i += 2;
        continue;
      }
      if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      ++i;
      continue;
    }
    bool replaced = false;
    for (const auto& l : kLiterals) {
      if (text.substr(i, l.literal.size()) != l.literal) continue;
      const size_t end = i + l.literal.size();
      if ((i > 0 && word_char(text[i - 1])) || (end < text.size() && word_char(text[end]))) break;
      if (storage->empty()) storage->assign(text);
      (*storage)[i] = '0';
      for (size_t k = i + 1; k < end; ++k) (*storage)[k] = ' ';
      found->push_back({ordinal++, l.value});
      i = end;
      replaced = true;
      break;
    }
    if (replaced) continue;
    if (absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && i + 1 < text.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(text[i + 1])))) {
      ++ordinal;  // one number token: skip the rest of it
      for (++i; i < text.size() &&
                (absl::ascii_isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.' ||
                 text[i] == 'e' || text[i] == 'E' || text[i] == '+' || text[i] == '-');
           ++i) {
      }
      continue;
    }
    // Any other run of word characters (true, false, null, garbage) is skipped whole, so a
    // literal inside it is not taken for one.
    if (word_char(c)) {
      while (i < text.size() && word_char(text[i])) ++i;
      continue;
    }
    ++i;
  }
  return storage->empty() ? text : std::string_view(*storage);
}

class PySaxBuilder : public nlohmann::json_sax<LongDoubleJson> {
 public:
  explicit PySaxBuilder(std::vector<NonFiniteNumber> non_finite = {})
      : non_finite_(std::move(non_finite)) {}

  bool null() override { return Add(PyValue()); }
  bool boolean(bool b) override { return Add(PyValue::Bool(b)); }
  bool number_integer(number_integer_t i) override {
    if (std::optional<double> v = NonFinite()) return Add(PyValue::Float(*v));
    return Add(PyValue::Int(i));
  }
  bool number_unsigned(number_unsigned_t u) override {
    if (std::optional<double> v = NonFinite()) return Add(PyValue::Float(*v));
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Add(PyValue::Int(static_cast<int64_t>(u)));
    }
    return Add(PyValue::Int(*PyBigInt::FromString(std::to_string(u))));
  }
  // nlohmann reports integers beyond 64 bits as floats with their lexeme: json.loads keeps them
  // exact (up to sys.get_int_max_str_digits() digits).
  // Floats are parsed again from their lexeme as doubles (strtod rounds correctly; 1e400 -> inf
  // as json.loads), never through the long double.
  bool number_float(number_float_t, const string_t& lexeme) override {
    if (std::optional<double> v = NonFinite()) return Add(PyValue::Float(*v));
    if (!IsIntegerLexeme(lexeme)) return Add(PyValue::Float(std::strtod(lexeme.c_str(), nullptr)));
    const size_t digits = lexeme.size() - (lexeme[0] == '-' ? 1 : 0);
    if (digits > kIntMaxStrDigits) {
      error_ = IntDigitLimitText(digits);
      return false;
    }
    return Add(PyValue::Int(*PyBigInt::FromString(lexeme)));
  }
  bool string(string_t& s) override { return Add(PyValue::Str(std::move(s))); }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    if (stack_.size() >= kMaxJsonDepth) return TooDeep();
    stack_.push_back(PyValue::Dict());
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    keys_.back() = std::move(k);
    return true;
  }
  bool end_object() override {
    PyValue v = std::move(stack_.back());
    stack_.pop_back();
    keys_.pop_back();
    return Add(std::move(v));
  }
  bool start_array(std::size_t) override {
    if (stack_.size() >= kMaxJsonDepth) return TooDeep();
    stack_.push_back(PyValue::List());
    keys_.emplace_back();
    return true;
  }
  bool end_array() override { return end_object(); }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    // 406: number overflow, here an integer too long even for a long double.
    if (ex.id == 406 && IsIntegerLexeme(last_token)) {
      error_ = IntDigitLimitText(last_token.size() - (last_token[0] == '-' ? 1 : 0));
      return false;
    }
    error_ = absl::StrCat("invalid JSON at byte ", position, ": ", ex.what());
    return false;
  }

  PyValue& result() { return result_; }
  const std::string& error() const { return error_; }

 private:
  // Counts one number token; its value when it stood for NaN/Infinity/-Infinity.
  std::optional<double> NonFinite() {
    const size_t ordinal = numbers_++;
    if (next_ < non_finite_.size() && non_finite_[next_].ordinal == ordinal) {
      return non_finite_[next_++].value;
    }
    return std::nullopt;
  }
  bool TooDeep() {
    error_ = absl::StrCat("invalid JSON: nested deeper than ", kMaxJsonDepth, " levels");
    return false;
  }
  bool Add(PyValue v) {
    if (stack_.empty()) {
      result_ = std::move(v);
    } else if (stack_.back().is_list()) {
      stack_.back().items().push_back(std::move(v));
    } else {
      stack_.back().dict().Set(PyValue::Str(std::move(keys_.back())), std::move(v));
    }
    return true;
  }

  std::vector<PyValue> stack_;
  std::vector<std::string> keys_;
  PyValue result_;
  std::string error_;
  std::vector<NonFiniteNumber> non_finite_;
  size_t next_ = 0;     // the next entry of non_finite_
  size_t numbers_ = 0;  // number tokens seen
};

}  // namespace

void AppendPyJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  AppendJsonString(s, ensure_ascii, *out);
}

absl::StatusOr<PyValue> PyValue::FromJson(std::string_view text) {
  std::string replaced;
  std::vector<NonFiniteNumber> non_finite;
  const std::string_view parsed = ReplaceNonFiniteLiterals(text, &replaced, &non_finite);
  PySaxBuilder builder(std::move(non_finite));
  bool ok = false;
  try {
    ok = LongDoubleJson::sax_parse(parsed, &builder);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
  if (!ok) {
    return absl::InvalidArgumentError(builder.error().empty() ? "invalid JSON" : builder.error());
  }
  return std::move(builder.result());
}

std::optional<int> PyNumberCompare(const PyValue& a, const PyValue& b) {
  if (a.is_big_int() || b.is_big_int()) {
    const int c = BigCompare(a, b);
    if (c == 2) return std::nullopt;
    return c;
  }
  if ((a.is_float() && std::isnan(a.as_float())) || (b.is_float() && std::isnan(b.as_float()))) {
    return std::nullopt;
  }
  return NumLess(a, b) ? -1 : NumLess(b, a) ? 1 : 0;
}

absl::StatusOr<double> PyValueToDouble(const PyValue& v) {
  if (v.is_big_int()) {
    std::optional<double> d = v.as_big_int().ToDouble();
    if (!d) return absl::OutOfRangeError(kIntTooLargeForFloat);
    return *d;
  }
  return v.as_float();
}

// ---------------------------------------------------------------------------------------------
// round()

double PyRound(double x, int ndigits) {
  // CPython float.__round__: NDIGITS_MAX = 323, NDIGITS_MIN = -308.
  if (!std::isfinite(x) || x == 0.0) return x;
  if (ndigits > 323) return x;
  if (ndigits < -308) return 0.0 * x;
  if (ndigits >= 0) {
    // glibc printf is exact and rounds ties to even on the exact binary value, like _Py_dg_dtoa
    // mode 3.
    std::string s = absl::StrFormat("%.*f", ndigits, x);
    return std::strtod(s.c_str(), nullptr);
  }
  // Negative ndigits: round the exact integer digits at 10^p, remembering a nonzero fraction.
  const size_t p = static_cast<size_t>(-ndigits);
  const double t = std::trunc(x);
  const bool sticky = t != x;
  std::string digits = absl::StrFormat("%.0f", std::fabs(t));  // exact
  if (digits.size() < p + 1) digits.insert(0, p + 1 - digits.size(), '0');
  std::string keep = digits.substr(0, digits.size() - p);
  std::string rest = digits.substr(digits.size() - p);
  std::string half = "5" + std::string(p - 1, '0');
  bool round_up;
  if (rest > half || (rest == half && sticky)) {
    round_up = true;
  } else if (rest == half) {
    round_up = (keep.back() - '0') % 2 == 1;
  } else {
    round_up = false;
  }
  if (round_up) {
    int k = static_cast<int>(keep.size()) - 1;
    while (k >= 0 && keep[static_cast<size_t>(k)] == '9') keep[static_cast<size_t>(k--)] = '0';
    if (k < 0) {
      keep.insert(0, "1");
    } else {
      ++keep[static_cast<size_t>(k)];
    }
  }
  std::string result = (x < 0 ? "-" : "") + keep + std::string(p, '0');
  return std::strtod(result.c_str(), nullptr);
}

}  // namespace envtune
