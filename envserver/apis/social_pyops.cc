#include "envserver/apis/social_pyops.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"

namespace envtune {
namespace social {
namespace {

struct LowerRun {
  uint32_t first;
  uint32_t last;
  uint32_t stride;
  int32_t delta;
};
struct CpRange {
  uint32_t first;
  uint32_t last;
};

// Tables generated with CPython 3.11.7:
//   lower runs:      every cp with len(chr(cp).lower()) == 1 and a different result;
//   case-ignorable:  ('A'+c+'Σ').lower() ends in 'ς' and ('AΣ'+c).lower()[1] == 'ς';
//   cased:           ('A'+c+'Σ').lower() ends in 'ς' otherwise (plus 'Σ' itself).
#include "envserver/apis/social_unicode_lower.inc"

bool InRanges(const CpRange* begin, const CpRange* end, uint32_t cp) {
  const CpRange* it =
      std::upper_bound(begin, end, cp, [](uint32_t c, const CpRange& r) { return c < r.first; });
  if (it == begin) return false;
  --it;
  return cp <= it->last;
}

bool IsCaseIgnorable(uint32_t cp) {
  return InRanges(std::begin(kCaseIgnorable), std::end(kCaseIgnorable), cp);
}
bool IsCased(uint32_t cp) { return InRanges(std::begin(kCased), std::end(kCased), cp); }

uint32_t LowerSimple(uint32_t cp) {
  const LowerRun* begin = std::begin(kLowerRuns);
  const LowerRun* end = std::end(kLowerRuns);
  const LowerRun* it =
      std::upper_bound(begin, end, cp, [](uint32_t c, const LowerRun& r) { return c < r.first; });
  if (it == begin) return cp;
  --it;
  if (cp > it->last || (cp - it->first) % it->stride != 0) return cp;
  return static_cast<uint32_t>(static_cast<int64_t>(cp) + it->delta);
}

// Decoded code points; an invalid UTF-8 byte b is kept as kRawByte | b and re-emitted as is.
constexpr uint32_t kRawByte = 0x80000000u;

std::vector<uint32_t> DecodeUtf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))) {
      ok = false;
    }
    if (!ok) {
      out.push_back(kRawByte | c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp & kRawByte) {
    out.push_back(static_cast<char>(cp & 0xFF));
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// CPython's handle_capital_sigma for the U+03A3 at index i.
uint32_t CapitalSigmaLower(const std::vector<uint32_t>& cps, size_t i) {
  int64_t j = static_cast<int64_t>(i) - 1;
  uint32_t c = 0;
  for (; j >= 0; --j) {
    c = cps[j];
    if (!IsCaseIgnorable(c)) break;
  }
  bool final_sigma = j >= 0 && IsCased(c);
  if (final_sigma && i + 1 < cps.size()) {
    size_t k = i + 1;
    for (; k < cps.size(); ++k) {
      c = cps[k];
      if (!IsCaseIgnorable(c)) break;
    }
    final_sigma = k == cps.size() || !IsCased(c);
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

// Python type(v).__name__ as used in exception texts.
std::string TypeNameOf(const PyValue& v) { return std::string(v.TypeName()); }

}  // namespace

std::string TooLargeText(std::string_view what) {
  return absl::StrCat(std::string(what), " is too large (limit ", kMaxStoredValueBytes, " bytes).");
}

std::string TooManyText(std::string_view what) {
  return absl::StrCat("Too many ", std::string(what), " (limit ", kMaxCollectionEntries, ").");
}

PyValue ErrorDict(std::string text) {
  PyDict d;
  d.Set("error", PyValue::Str(std::move(text)));
  return PyValue::Dict(std::move(d));
}

PyValue MakeDict(std::initializer_list<std::pair<std::string_view, PyValue>> entries) {
  PyDict d;
  for (const auto& [key, value] : entries) d.Set(key, value);
  return PyValue::Dict(std::move(d));
}

namespace {
void AddSize(const PyValue& v, size_t limit, int depth, size_t& total) {
  if (total > limit) return;
  if (depth > 64) {
    total = limit + 1;
    return;
  }
  switch (v.type()) {
    case PyValue::Type::kStr:
      total += v.as_str().size() + 2;
      return;
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kSet:
      total += 2;
      for (const PyValue& item : v.items()) {
        AddSize(item, limit, depth + 1, total);
        total += 2;
        if (total > limit) return;
      }
      return;
    case PyValue::Type::kDict:
      total += 2;
      for (const auto& [key, value] : v.dict()) {
        AddSize(key, limit, depth + 1, total);
        AddSize(value, limit, depth + 1, total);
        total += 4;
        if (total > limit) return;
      }
      return;
    default:
      total += 8;
      return;
  }
}
}  // namespace

size_t ApproxSize(const PyValue& v, size_t limit) {
  size_t total = 0;
  AddSize(v, limit, 0, total);
  return total;
}

std::string PyLower(std::string_view utf8) {
  // Fast path: ASCII only and no sigma possible.
  bool ascii = std::all_of(utf8.begin(), utf8.end(),
                           [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    std::string out(utf8);
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  }
  std::vector<uint32_t> cps = DecodeUtf8(utf8);
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    uint32_t cp = cps[i];
    if (cp & kRawByte) {
      AppendUtf8(out, cp);
    } else if (cp == 0x3A3) {
      AppendUtf8(out, CapitalSigmaLower(cps, i));
    } else if (cp == 0x130) {
      AppendUtf8(out, 'i');
      AppendUtf8(out, 0x307);
    } else {
      AppendUtf8(out, LowerSimple(cp));
    }
  }
  return out;
}

absl::Status PyError(std::string message) {
  // The status code is irrelevant to callers; the message is Python's str(exception).
  return absl::InvalidArgumentError(std::move(message));
}

absl::Status AttributeError(const PyValue& obj, std::string_view name) {
  return PyError(
      absl::StrCat("'", TypeNameOf(obj), "' object has no attribute '", std::string(name), "'"));
}

absl::Status CheckHashable(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kList:
    case PyValue::Type::kDict:
    case PyValue::Type::kSet:
      return PyError(absl::StrCat("unhashable type: '", TypeNameOf(v), "'"));
    case PyValue::Type::kTuple:
      for (const PyValue& item : v.items()) {
        absl::Status s = CheckHashable(item);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

absl::StatusOr<bool> PyContains(const PyValue& container, const PyValue& item) {
  switch (container.type()) {
    case PyValue::Type::kDict: {
      absl::Status s = CheckHashable(item);
      if (!s.ok()) return s;
      return container.dict().Contains(item);
    }
    case PyValue::Type::kSet: {
      absl::Status s = CheckHashable(item);
      if (!s.ok()) return s;
      [[fallthrough]];
    }
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
      for (const PyValue& x : container.items()) {
        if (x == item) return true;
      }
      return false;
    case PyValue::Type::kStr:
      if (!item.is_str()) {
        return PyError(
            absl::StrCat("'in <string>' requires string as left operand, not ", TypeNameOf(item)));
      }
      return container.as_str().find(item.as_str()) != std::string::npos;
    default:
      return PyError(
          absl::StrCat("argument of type '", TypeNameOf(container), "' is not iterable"));
  }
}

absl::StatusOr<PyValue*> PyGetItem(PyValue& obj, std::string_view key) {
  switch (obj.type()) {
    case PyValue::Type::kDict: {
      PyValue* found = obj.dict().Find(key);
      if (found == nullptr) return PyError(PyStrRepr(key));  // KeyError: str() is repr(key)
      return found;
    }
    case PyValue::Type::kList:
      return PyError("list indices must be integers or slices, not str");
    case PyValue::Type::kTuple:
      return PyError("tuple indices must be integers or slices, not str");
    case PyValue::Type::kStr:
      return PyError("string indices must be integers, not 'str'");
    default:
      return PyError(absl::StrCat("'", TypeNameOf(obj), "' object is not subscriptable"));
  }
}

namespace {
// Python's sequence index normalisation; nullopt when out of range.
std::optional<size_t> SeqIndex(int64_t index, size_t size) {
  if (index < 0) index += static_cast<int64_t>(size);
  if (index < 0 || static_cast<size_t>(index) >= size) return std::nullopt;
  return static_cast<size_t>(index);
}
}  // namespace

absl::StatusOr<PyValue*> PySubscript(PyValue& container, const PyValue& key, PyValue& scratch) {
  const std::string type(container.TypeName());
  switch (container.type()) {
    case PyValue::Type::kDict: {
      absl::Status hashable = CheckHashable(key);
      if (!hashable.ok()) return hashable;
      PyValue* found = container.dict().Find(key);
      if (found == nullptr) return PyError(key.Repr());  // KeyError: str() is repr(key)
      return found;
    }
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kStr: {
      if (!key.is_int() && !key.is_bool()) {
        if (container.is_str()) {
          return PyError(absl::StrCat("string indices must be integers, not '",
                                      std::string(key.TypeName()), "'"));
        }
        return PyError(absl::StrCat(type, " indices must be integers or slices, not ",
                                    std::string(key.TypeName())));
      }
      if (key.is_big_int()) return PyError(kCannotFitIndex);  // IndexError
      if (container.is_str()) {
        absl::StatusOr<PyList> chars = PyIterate(container);
        if (!chars.ok()) return chars.status();
        std::optional<size_t> i = SeqIndex(key.as_int(), chars->size());
        if (!i.has_value()) return PyError("string index out of range");
        scratch = (*chars)[*i];
        return &scratch;
      }
      std::optional<size_t> i = SeqIndex(key.as_int(), container.items().size());
      if (!i.has_value()) return PyError(absl::StrCat(type, " index out of range"));
      return &container.items()[*i];
    }
    default:
      return PyError(absl::StrCat("'", type, "' object is not subscriptable"));
  }
}

absl::Status PySetSubscript(PyValue& container, const PyValue& key, PyValue value) {
  if (container.is_dict()) {
    absl::Status hashable = CheckHashable(key);
    if (!hashable.ok()) return hashable;
    container.dict().Set(key, std::move(value));
    return absl::OkStatus();
  }
  if (container.is_list()) {
    if (!key.is_int() && !key.is_bool()) {
      return PyError(absl::StrCat("list indices must be integers or slices, not ",
                                  std::string(key.TypeName())));
    }
    if (key.is_big_int()) return PyError(kCannotFitIndex);  // IndexError
    std::optional<size_t> i = SeqIndex(key.as_int(), container.items().size());
    if (!i.has_value()) return PyError("list assignment index out of range");
    container.items()[*i] = std::move(value);
    return absl::OkStatus();
  }
  return PyError(absl::StrCat("'", std::string(container.TypeName()),
                              "' object does not support item assignment"));
}

absl::StatusOr<std::string> PyLowerOf(const PyValue& obj) {
  if (!obj.is_str()) return AttributeError(obj, "lower");
  return PyLower(obj.as_str());
}

absl::StatusOr<PyList> PyIterate(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kSet:
      return v.items();
    case PyValue::Type::kDict: {
      PyList keys;
      for (const auto& [key, value] : v.dict()) keys.push_back(key);
      return keys;
    }
    case PyValue::Type::kStr: {
      PyList chars;
      std::string one;
      for (uint32_t cp : DecodeUtf8(v.as_str())) {
        one.clear();
        AppendUtf8(one, cp);
        chars.push_back(PyValue::Str(one));
      }
      return chars;
    }
    default:
      return PyError(absl::StrCat("'", TypeNameOf(v), "' object is not iterable"));
  }
}

absl::StatusOr<int64_t> PyLen(const PyValue& v) {
  switch (v.type()) {
    case PyValue::Type::kList:
    case PyValue::Type::kTuple:
    case PyValue::Type::kSet:
      return static_cast<int64_t>(v.items().size());
    case PyValue::Type::kDict:
      return static_cast<int64_t>(v.dict().size());
    case PyValue::Type::kStr:
      return static_cast<int64_t>(DecodeUtf8(v.as_str()).size());
    default:
      return PyError(absl::StrCat("object of type '", TypeNameOf(v), "' has no len()"));
  }
}

absl::StatusOr<std::pair<PyValue, PyValue>> PyFirstItem(const PyValue& d) {
  if (!d.is_dict()) return AttributeError(d, "items");
  if (d.dict().empty()) return PyError("list index out of range");
  const auto& entry = d.dict().entries().front();
  return std::make_pair(entry.first, entry.second);
}

absl::Status PyAppend(PyValue& obj, PyValue item) {
  if (!obj.is_list()) return AttributeError(obj, "append");
  obj.items().push_back(std::move(item));
  return absl::OkStatus();
}

absl::Status PyIncrement(PyValue& obj) {
  switch (obj.type()) {
    case PyValue::Type::kBool:
    case PyValue::Type::kInt: {
      if (obj.is_big_int() || obj.as_int() == std::numeric_limits<int64_t>::max()) {
        obj = PyValue::Int(obj.as_big_int() + PyBigInt(1));
        return absl::OkStatus();
      }
      obj = PyValue::Int(obj.as_int() + 1);
      return absl::OkStatus();
    }
    case PyValue::Type::kFloat:
      obj = PyValue::Float(obj.as_float() + 1.0);
      return absl::OkStatus();
    case PyValue::Type::kStr:
      return PyError("can only concatenate str (not \"int\") to str");
    case PyValue::Type::kTuple:
      return PyError("can only concatenate tuple (not \"int\") to tuple");
    case PyValue::Type::kList:
      return PyError("'int' object is not iterable");
    default:
      return PyError(
          absl::StrCat("unsupported operand type(s) for +=: '", TypeNameOf(obj), "' and 'int'"));
  }
}

std::string PyZfill(std::string_view s, size_t width) {
  size_t len = DecodeUtf8(s).size();
  if (len >= width) return std::string(s);
  size_t fill = width - len;
  std::string out;
  size_t start = 0;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    out.push_back(s[0]);
    start = 1;
  }
  out.append(fill, '0');
  out.append(s.substr(start));
  return out;
}

CallOutcome RaiseFrom(const absl::Status& status) {
  return CallOutcome::Raise(std::string(status.message()));
}

}  // namespace social
}  // namespace envtune
