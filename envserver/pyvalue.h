// Python-semantics values for the BFCL tool sandboxes.
//
// BFCL's backends are Python classes; their results and states are compared byte for byte, so
// the sandboxes compute on values that behave like CPython 3.11's: None, bool, int, float, str,
// list, tuple, dict (insertion ordered) and set, with Python equality (1 == 1.0 == True), repr()/
// str() and json.dumps renderings.
//
// A PyValue is a regular value type: copying deep-copies. Not thread-safe for concurrent
// mutation; distinct values may be used from different threads.
#ifndef ENVTUNE_ENVSERVER_PYVALUE_H_
#define ENVTUNE_ENVSERVER_PYVALUE_H_

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/pyint.h"

namespace envtune {

class PyValue;
using PyList = std::vector<PyValue>;

// An insertion-ordered dict with Python key semantics (keys equal under Python == are the same
// key: 1, 1.0 and True collide). Lookup is linear for small dicts and indexed for large ones is
// an implementation detail; iteration order is insertion order, as in Python 3.7+.
// Concurrent const access (Find from several threads) is safe: the lookup index of a large dict
// is built lazily and published atomically. Mutation needs exclusive access.
class PyDict {
 public:
  using Entry = std::pair<PyValue, PyValue>;

  PyDict() = default;
  PyDict(std::initializer_list<Entry> entries);
  PyDict(const PyDict& other);
  PyDict(PyDict&& other) noexcept;
  PyDict& operator=(const PyDict& other);
  PyDict& operator=(PyDict&& other) noexcept;
  ~PyDict();

  // Returns nullptr when `key` is absent.
  const PyValue* Find(const PyValue& key) const;
  PyValue* Find(const PyValue& key);
  const PyValue* Find(std::string_view str_key) const;
  PyValue* Find(std::string_view str_key);
  bool Contains(const PyValue& key) const { return Find(key) != nullptr; }
  bool Contains(std::string_view str_key) const { return Find(str_key) != nullptr; }

  // Python d[key] = value: replaces in place (keeping the original key object and position)
  // or appends.
  void Set(PyValue key, PyValue value);
  void Set(std::string_view str_key, PyValue value);
  // Python d.setdefault(key, None)-like access for building values.
  PyValue& operator[](std::string_view str_key);
  // Python del d[key] / d.pop(key): returns false when absent. Order of the rest is kept.
  bool Erase(const PyValue& key);
  bool Erase(std::string_view str_key);

  size_t size() const;
  bool empty() const;
  const std::vector<Entry>& entries() const;
  // REQUIRES: callers keep keys unique, and do not keep the reference across other calls on
  // this dict (the lookup index is dropped when this is called and rebuilt on the next Find).
  std::vector<Entry>& mutable_entries();
  auto begin() const { return entries().begin(); }
  auto end() const { return entries().end(); }

 private:
  struct Index;
  const Index* GetIndex() const;  // nullptr for small dicts
  void DropIndex();
  void AppendEntry(PyValue key, PyValue value);

  std::vector<Entry> entries_;
  mutable std::atomic<Index*> index_{nullptr};  // owned; lazily built cache over entries_
};

struct JsonDumpsOptions {
  bool sort_keys = false;    // json.dumps(sort_keys=True)
  bool ensure_ascii = true;  // json.dumps default: non-ASCII as \uXXXX (surrogate pairs)
  int indent = -1;           // -1: None (one line, ", " and ": "); >= 0: newline + spaces, "," and ": "
};

class PyValue {
 public:
  enum class Type { kNone, kBool, kInt, kFloat, kStr, kList, kTuple, kDict, kSet };

  PyValue() = default;  // None
  static PyValue None() { return PyValue(); }
  static PyValue Bool(bool b);
  static PyValue Int(int64_t i);
  // An int of any size (stored inline when it fits int64).
  static PyValue Int(const PyBigInt& i);
  static PyValue Float(double d);
  static PyValue Str(std::string s);
  static PyValue List(PyList items = {});
  static PyValue Tuple(PyList items = {});
  static PyValue Dict(PyDict dict = {});
  // A Python set; stored in insertion order, compared as a set, rendered to JSON as a sorted list.
  static PyValue Set(PyList items = {});

  Type type() const { return type_; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }  // false for bool (unlike isinstance)
  // An int outside int64's range (then as_int() must not be called; use as_big_int()).
  bool is_big_int() const { return type_ == Type::kInt && data_.index() == kBigIndex; }
  bool is_float() const { return type_ == Type::kFloat; }
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  bool is_str() const { return type_ == Type::kStr; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_tuple() const { return type_ == Type::kTuple; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_set() const { return type_ == Type::kSet; }

  // Accessors. REQUIRES: the matching type (as_int also accepts bool; as_float accepts
  // bool/int/float). Violations abort: check the type first.
  // as_int REQUIRES !is_big_int(). as_big_int accepts any bool/int.
  // as_float of a big int is float(x) correctly rounded, or +-inf where Python raises
  // OverflowError: callers that must raise check PyValueToDouble (below) instead.
  bool as_bool() const;
  int64_t as_int() const;
  PyBigInt as_big_int() const;
  double as_float() const;
  const std::string& as_str() const;
  std::string& as_str();
  // list(), for kList, kTuple and kSet.
  const PyList& items() const;
  PyList& items();
  const PyDict& dict() const;
  PyDict& dict();

  // Python truthiness (bool(x)).
  bool Truthy() const;
  // Python type(x).__name__: 'NoneType', 'bool', 'int', 'float', 'str', 'list', 'tuple',
  // 'dict', 'set'.
  std::string_view TypeName() const;

  // Python repr(x) and str(x), CPython 3.11 rules (float repr is shortest round-trip with
  // exponent form outside 1e-4 <= |x| < 1e16; str quoting picks ' unless the text has ' and no ").
  std::string Repr() const;
  std::string Str() const;

  // Python json.dumps(x, ...). Tuples render as arrays, sets as sorted arrays, non-string dict
  // keys as json.dumps does (int 1 -> "1", True -> "true", None -> "null", float repr).
  // NaN/inf render as NaN/Infinity like Python's default allow_nan=True.
  // Lenient where Python raises: sets render as sorted arrays, tuple/other keys as their repr,
  // unsortable keys (sort_keys with mixed types) in a fixed type order. See PyJsonDumps for the
  // strict Python behaviour.
  std::string JsonDumps(const JsonDumpsOptions& options = {}) const;

  // Python json.loads(text): objects -> dict, arrays -> list, integers -> int, numbers with a
  // fraction or exponent -> float. Errors name the position.
  static absl::StatusOr<PyValue> FromJson(std::string_view text);

  // Python ==: numeric across bool/int/float, dicts as mappings, sets as sets, list vs tuple
  // never equal.
  friend bool operator==(const PyValue& a, const PyValue& b);
  friend bool operator!=(const PyValue& a, const PyValue& b) { return !(a == b); }
  // Python < for sorting values of one kind (numbers, strings, lists/tuples lexicographically).
  // Returns false for incomparable types (Python would raise TypeError).
  static bool Less(const PyValue& a, const PyValue& b);

 private:
  Type type_ = Type::kNone;
  static constexpr size_t kBigIndex = 7;
  // Big ints are immutable, so copies share them.
  std::variant<std::monostate, bool, int64_t, double, std::string, PyList, PyDict,
               std::shared_ptr<const PyBigInt>>
      data_;
};

// Python json.dumps exactly, including its failures: OUT_OF_RANGE with the ValueError text for an
// int of more than 4300 decimal digits (kIntStrLimitError; str() fails alike), INVALID_ARGUMENT
// with Python's TypeError text ("Object of type set is not JSON serializable", "keys must be str, int, float, bool or
// None, not tuple", "'<' not supported between instances of 'str' and 'int'" for sort_keys).
absl::StatusOr<std::string> PyJsonDumps(const PyValue& value, const JsonDumpsOptions& options = {});

// Python's exact comparison of two numbers (bool/int of any size/float): -1, 0 or 1, nullopt when
// unordered (a NaN). REQUIRES: both is_number().
std::optional<int> PyNumberCompare(const PyValue& a, const PyValue& b);

// Python float(v) for a bool, int or float: the OverflowError text (kIntTooLargeForFloat) for an
// int beyond the double range.
absl::StatusOr<double> PyValueToDouble(const PyValue& v);

// Appends json.dumps(s) for a str `s` (quotes included) to `out`.
void AppendPyJsonString(std::string_view s, bool ensure_ascii, std::string* out);

// Python repr() of a float (CPython 3.11 float_repr): "1.0", "0.1", "1e+16", "1e-05", "inf",
// "nan", "-0.0".
std::string PyFloatRepr(double d);
// Python repr() of a str: quotes and escapes exactly as CPython (non-printable -> \x.., \u....).
std::string PyStrRepr(std::string_view utf8);
// Python round(x, ndigits) for floats (correctly rounded, half-even on the decimal value).
double PyRound(double x, int ndigits);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_PYVALUE_H_
