// EvalPyLiteral: safe evaluation of literal Python expressions (see pyparse.h). Nothing here
// runs user code: only constants, displays and arithmetic on them.
#include <cmath>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"

namespace envtune {
namespace {

constexpr size_t kMaxSequenceResult = 1 << 20;  // cap for 'a' * n and [x] * n

absl::Status PyErr(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

// Copies made by one top-level evaluation ('+' and '*' on sequences, * and ** unpacking) are
// charged against a budget of weight units (one per value, one per string byte): values nest,
// so a per-operation cap alone let "[[0]*1000000]*1000000" (10^12 values) abort with bad_alloc.
constexpr size_t kMaxCopiedWeight = size_t{1} << 22;
thread_local size_t* copy_budget = nullptr;  // remaining units; set by the outermost evaluation

// The weight of `v`, counted up to `cap` (returns > cap when over it).
size_t Weight(const PyValue& v, size_t cap) {
  size_t w = 1;
  if (v.is_str()) return w + v.as_str().size();
  if (v.is_list() || v.is_tuple() || v.is_set()) {
    for (const PyValue& x : v.items()) {
      if (w > cap) break;
      w += Weight(x, cap - w);
    }
  } else if (v.is_dict()) {
    for (const auto& [k, x] : v.dict().entries()) {
      if (w > cap) break;
      w += Weight(k, cap - w);
      if (w <= cap) w += Weight(x, cap - w);
    }
  }
  return w;
}

// Charges `copies` copies of `v` (0 = none); MemoryError once the budget is spent.
absl::Status ChargeCopies(const PyValue& v, uint64_t copies) {
  if (copy_budget == nullptr || copies == 0) return absl::OkStatus();
  const size_t w = Weight(v, *copy_budget);
  if (w > *copy_budget || copies > *copy_budget / w) return PyErr("MemoryError");
  *copy_budget -= w * copies;
  return absl::OkStatus();
}

std::string TypeName(const PyValue& v) { return std::string(v.TypeName()); }

absl::Status Unsupported(const std::string& op, const PyValue& a, const PyValue& b) {
  return PyErr(absl::StrCat("unsupported operand type(s) for ", op, ": '", TypeName(a), "' and '",
                            TypeName(b), "'"));
}

bool IsIntLike(const PyValue& v) { return v.is_int() || v.is_bool(); }

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t FloorMod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

absl::Status TooBig() {
  return PyErr(absl::StrCat("integer result too large (at most ", PyBigInt::kMaxBits, " bits)"));
}

// Python float(v) for a number, with OverflowError's text for an int beyond the double range.
absl::StatusOr<double> ToDouble(const PyValue& v) { return PyValueToDouble(v); }

// Python int <op> int for ints of any size (op is not "/"): exact, as CPython.
absl::StatusOr<PyValue> BigIntBinOp(const std::string& op, const PyValue& a, const PyValue& b) {
  const PyBigInt x = a.as_big_int(), y = b.as_big_int();
  if (op == "+") return PyValue::Int(x + y);
  if (op == "-") return PyValue::Int(x - y);
  if (op == "*") {
    std::optional<PyBigInt> r = PyBigInt::Mul(x, y);
    if (!r) return TooBig();
    return PyValue::Int(*r);
  }
  if (op == "//" || op == "%") {
    if (y.Sign() == 0) return PyErr("integer division or modulo by zero");
    return PyValue::Int(op == "//" ? PyBigInt::FloorDiv(x, y) : PyBigInt::FloorMod(x, y));
  }
  if (op == "**") {
    if (y.Sign() < 0) {  // int.__pow__ with a negative exponent: float(x) ** float(y)
      if (x.Sign() == 0) return PyErr("0.0 cannot be raised to a negative power");
      absl::StatusOr<double> fx = ToDouble(a), fy = ToDouble(b);
      if (!fx.ok()) return PyErr(std::string(fx.status().message()));
      if (!fy.ok()) return PyErr(std::string(fy.status().message()));
      return PyValue::Float(std::pow(*fx, *fy));
    }
    if (x.Sign() == 0 || x.Compare(PyBigInt(1)) == 0) return PyValue::Int(y.Sign() == 0 ? 1 : x.ToInt64());
    if (x.Compare(PyBigInt(-1)) == 0) {
      return PyValue::Int(PyBigInt::FloorMod(y, PyBigInt(2)).Sign() == 0 ? 1 : -1);
    }
    if (!y.FitsInt64()) return TooBig();
    std::optional<PyBigInt> r = PyBigInt::Pow(x, static_cast<uint64_t>(y.ToInt64()));
    if (!r) return TooBig();
    return PyValue::Int(*r);
  }
  if (op == "<<" || op == ">>") {
    if (y.Sign() < 0) return PyErr("negative shift count");
    if (op == ">>") {
      if (!y.FitsInt64()) return PyValue::Int(x.Sign() < 0 ? -1 : 0);
      return PyValue::Int(PyBigInt::Shr(x, static_cast<uint64_t>(y.ToInt64())));
    }
    if (x.Sign() == 0) return PyValue::Int(0);
    if (!y.FitsInt64()) return TooBig();
    std::optional<PyBigInt> r = PyBigInt::Shl(x, static_cast<uint64_t>(y.ToInt64()));
    if (!r) return TooBig();
    return PyValue::Int(*r);
  }
  if (op == "&") return PyValue::Int(PyBigInt::And(x, y));
  if (op == "|") return PyValue::Int(PyBigInt::Or(x, y));
  if (op == "^") return PyValue::Int(PyBigInt::Xor(x, y));
  return Unsupported(op, a, b);
}

// Small-int fast path of BigIntBinOp's "**"; nullopt when the result leaves int64.
std::optional<PyValue> IntPow(int64_t base, int64_t exp) {
  if (exp < 0) return std::nullopt;
  int64_t result = 1;
  int64_t b = base;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, b, &result)) return std::nullopt;
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(b, b, &b)) return std::nullopt;
  }
  return PyValue::Int(result);
}

absl::StatusOr<PyValue> Repeat(const PyValue& seq, const PyValue& count) {
  if (count.is_big_int()) return PyErr(kCannotFitIndex);  // OverflowError, either sign
  const int64_t n = count.as_int();
  if (n <= 0) {
    if (seq.is_str()) return PyValue::Str("");
    return seq.is_list() ? PyValue::List() : PyValue::Tuple();
  }
  size_t unit = seq.is_str() ? seq.as_str().size() : seq.items().size();
  if (unit != 0 && static_cast<uint64_t>(n) > kMaxSequenceResult / unit) return PyErr("MemoryError");
  if (seq.is_str()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_str();
    return PyValue::Str(std::move(out));
  }
  PyList items;
  for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq.items().begin(), seq.items().end());
  return seq.is_list() ? PyValue::List(std::move(items)) : PyValue::Tuple(std::move(items));
}

absl::StatusOr<PyValue> BinOp(const std::string& op, const PyValue& a, const PyValue& b) {
  if (a.is_number() && b.is_number()) {
    if (IsIntLike(a) && IsIntLike(b) && op != "/") {
      if (a.is_big_int() || b.is_big_int()) return BigIntBinOp(op, a, b);
      int64_t x = a.as_int(), y = b.as_int(), r = 0;
      // Fast paths on int64; anything that leaves int64 is redone exactly.
      if (op == "+") {
        if (__builtin_add_overflow(x, y, &r)) return BigIntBinOp(op, a, b);
        return PyValue::Int(r);
      }
      if (op == "-") {
        if (__builtin_sub_overflow(x, y, &r)) return BigIntBinOp(op, a, b);
        return PyValue::Int(r);
      }
      if (op == "*") {
        if (__builtin_mul_overflow(x, y, &r)) return BigIntBinOp(op, a, b);
        return PyValue::Int(r);
      }
      if (op == "//" || op == "%") {
        if (y == 0) return PyErr("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) return BigIntBinOp(op, a, b);
        return PyValue::Int(op == "//" ? FloorDiv(x, y) : FloorMod(x, y));
      }
      if (op == "**") {
        if (std::optional<PyValue> p = IntPow(x, y)) return *std::move(p);
        return BigIntBinOp(op, a, b);
      }
      if (op == "<<" || op == ">>") {
        if (y < 0) return PyErr("negative shift count");
        if (op == ">>") return PyValue::Int(y >= 63 ? (x < 0 ? -1 : 0) : (x >> y));
        if (y >= 63 || (x != 0 && (x > (INT64_MAX >> y) || x < (INT64_MIN >> y))))
          return BigIntBinOp(op, a, b);
        return PyValue::Int(x << y);
      }
      if (op == "&") return a.is_bool() && b.is_bool() ? PyValue::Bool(x & y) : PyValue::Int(x & y);
      if (op == "|") return a.is_bool() && b.is_bool() ? PyValue::Bool(x | y) : PyValue::Int(x | y);
      if (op == "^") return a.is_bool() && b.is_bool() ? PyValue::Bool(x ^ y) : PyValue::Int(x ^ y);
      return Unsupported(op, a, b);
    }
    if (op == "/" && IsIntLike(a) && IsIntLike(b)) {  // int / int: correctly rounded, any size
      const PyBigInt x = a.as_big_int(), y = b.as_big_int();
      if (y.Sign() == 0) return PyErr("division by zero");
      std::optional<double> q = PyBigInt::TrueDivide(x, y);
      if (!q) return PyErr(kIntDivisionTooLargeForFloat);
      return PyValue::Float(*q);
    }
    absl::StatusOr<double> fa = ToDouble(a), fb = ToDouble(b);  // OverflowError for big ints
    if (!fa.ok()) return PyErr(std::string(fa.status().message()));
    if (!fb.ok()) return PyErr(std::string(fb.status().message()));
    double x = *fa, y = *fb;
    if (op == "+") return PyValue::Float(x + y);
    if (op == "-") return PyValue::Float(x - y);
    if (op == "*") return PyValue::Float(x * y);
    if (op == "/") {
      if (y == 0) return PyErr("float division by zero");
      return PyValue::Float(x / y);
    }
    if (op == "//") {
      if (y == 0) return PyErr("float floor division by zero");
      return PyValue::Float(std::floor(x / y));
    }
    if (op == "%") {
      if (y == 0) return PyErr("float modulo");
      double r = std::fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      if (r == 0) r = std::copysign(0.0, y);
      return PyValue::Float(r);
    }
    if (op == "**") {
      if (x == 0 && y < 0) return PyErr("0.0 cannot be raised to a negative power");
      if (x < 0 && y != std::floor(y)) return PyErr("complex results are not supported");
      double r = std::pow(x, y);
      if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) return PyErr("(34, 'Numerical result out of range')");
      return PyValue::Float(r);
    }
    return Unsupported(op, a, b);
  }
  if (op == "+") {
    if (a.is_str() && b.is_str()) return PyValue::Str(a.as_str() + b.as_str());
    if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
      PyList items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return a.is_list() ? PyValue::List(std::move(items)) : PyValue::Tuple(std::move(items));
    }
    if (a.is_str() && !b.is_str()) {
      return PyErr(absl::StrCat("can only concatenate str (not \"", TypeName(b), "\") to str"));
    }
    if (a.is_list() && !b.is_list()) {
      return PyErr(absl::StrCat("can only concatenate list (not \"", TypeName(b), "\") to list"));
    }
    if (a.is_tuple() && !b.is_tuple()) {
      return PyErr(absl::StrCat("can only concatenate tuple (not \"", TypeName(b), "\") to tuple"));
    }
  }
  if (op == "*") {
    bool a_seq = a.is_str() || a.is_list() || a.is_tuple();
    bool b_seq = b.is_str() || b.is_list() || b.is_tuple();
    if (a_seq && IsIntLike(b)) return Repeat(a, b);
    if (b_seq && IsIntLike(a)) return Repeat(b, a);
    if (a_seq && b.is_number()) {
      return PyErr(absl::StrCat("can't multiply sequence by non-int of type '", TypeName(b), "'"));
    }
    if (b_seq && a.is_number()) {
      return PyErr(absl::StrCat("can't multiply sequence by non-int of type '", TypeName(a), "'"));
    }
  }
  if (op == "%" && a.is_str()) return PyErr("printf-style string formatting is not supported");
  if (op == "**") {
    return PyErr(absl::StrCat("unsupported operand type(s) for ** or pow(): '", TypeName(a), "' and '",
                              TypeName(b), "'"));
  }
  return Unsupported(op, a, b);
}

}  // namespace

absl::StatusOr<PyValue> PyBinaryOp(std::string_view op, const PyValue& a, const PyValue& b) {
  return BinOp(std::string(op), a, b);
}

bool PyHashable(const PyValue& v) {
  if (v.is_list() || v.is_dict() || v.is_set()) return false;
  if (v.is_tuple()) {
    for (const PyValue& x : v.items()) {
      if (!PyHashable(x)) return false;
    }
  }
  return true;
}


absl::StatusOr<PyValue> EvalPyLiteral(const PyNode& node, const PyCallHook& call_hook) {
  size_t budget = kMaxCopiedWeight;
  struct BudgetScope {  // the outermost evaluation on this thread owns the budget
    size_t* installed = nullptr;
    explicit BudgetScope(size_t* b) {
      if (copy_budget == nullptr) installed = copy_budget = b;
    }
    ~BudgetScope() {
      if (installed != nullptr) copy_budget = nullptr;
    }
  } scope(&budget);
  auto eval = [&](const PyNode& n) { return EvalPyLiteral(n, call_hook); };
  switch (node.kind) {
    case PyNodeKind::kConstant:
      switch (node.const_kind) {
        case PyConstKind::kNone: return PyValue::None();
        case PyConstKind::kBool: return PyValue::Bool(node.bool_value);
        case PyConstKind::kInt:
          if (node.big_int) return PyValue::Int(*PyBigInt::FromString(node.text));
          return PyValue::Int(node.int_value);
        case PyConstKind::kFloat: return PyValue::Float(node.float_value);
        case PyConstKind::kStr: return PyValue::Str(node.str);
        case PyConstKind::kBytes: return PyErr("bytes values are not supported");
        case PyConstKind::kComplex: return PyErr("complex values are not supported");
        case PyConstKind::kEllipsis: return PyErr("Ellipsis values are not supported");
      }
      break;
    case PyNodeKind::kName:
      return PyErr(absl::StrCat("name '", node.text, "' is not defined"));
    case PyNodeKind::kList:
    case PyNodeKind::kTuple:
    case PyNodeKind::kSet: {
      PyList items;
      for (const PyNodePtr& e : node.elts) {
        if (e->kind == PyNodeKind::kStarred) {
          absl::StatusOr<PyValue> v = eval(*e->a);
          if (!v.ok()) return v.status();
          if (!(v->is_list() || v->is_tuple() || v->is_set())) {
            return PyErr(absl::StrCat("Value after * must be an iterable, not ", TypeName(*v)));
          }
          if (absl::Status s = ChargeCopies(*v, 1); !s.ok()) return s;
          items.insert(items.end(), v->items().begin(), v->items().end());
          continue;
        }
        absl::StatusOr<PyValue> v = eval(*e);
        if (!v.ok()) return v.status();
        items.push_back(*std::move(v));
      }
      if (node.kind == PyNodeKind::kList) return PyValue::List(std::move(items));
      if (node.kind == PyNodeKind::kTuple) return PyValue::Tuple(std::move(items));
      PyList unique;
      for (PyValue& v : items) {
        if (!PyHashable(v)) return PyErr(absl::StrCat("unhashable type: '", TypeName(v), "'"));
        bool dup = false;
        for (const PyValue& u : unique) dup = dup || u == v;
        if (!dup) unique.push_back(std::move(v));
      }
      return PyValue::Set(std::move(unique));
    }
    case PyNodeKind::kDict: {
      PyDict dict;
      for (size_t i = 0; i < node.elts.size(); ++i) {
        absl::StatusOr<PyValue> v = eval(*node.values[i]);
        if (!v.ok()) return v.status();
        if (node.elts[i] == nullptr) {
          if (!v->is_dict()) return PyErr(absl::StrCat("'", TypeName(*v), "' object is not a mapping"));
          if (absl::Status s = ChargeCopies(*v, 1); !s.ok()) return s;
          for (const auto& [k, x] : v->dict()) dict.Set(k, x);
          continue;
        }
        absl::StatusOr<PyValue> k = eval(*node.elts[i]);
        if (!k.ok()) return k.status();
        if (!PyHashable(*k)) return PyErr(absl::StrCat("unhashable type: '", TypeName(*k), "'"));
        dict.Set(*std::move(k), *std::move(v));
      }
      return PyValue::Dict(std::move(dict));
    }
    case PyNodeKind::kUnaryOp: {
      absl::StatusOr<PyValue> v = eval(*node.a);
      if (!v.ok()) return v.status();
      if (node.text == "not") return PyValue::Bool(!v->Truthy());
      if (node.text == "~") {
        if (!IsIntLike(*v)) return PyErr(absl::StrCat("bad operand type for unary ~: '", TypeName(*v), "'"));
        if (v->is_big_int()) return PyValue::Int(v->as_big_int().Invert());
        return PyValue::Int(~v->as_int());
      }
      if (!v->is_number()) {
        return PyErr(absl::StrCat("bad operand type for unary ", node.text, ": '", TypeName(*v), "'"));
      }
      if (node.text == "+") return v->is_float() || v->is_big_int() ? *v : PyValue::Int(v->as_int());
      if (v->is_float()) return PyValue::Float(-v->as_float());
      if (v->is_big_int() || v->as_int() == std::numeric_limits<int64_t>::min()) {
        return PyValue::Int(-v->as_big_int());
      }
      return PyValue::Int(-v->as_int());
    }
    case PyNodeKind::kBinOp: {
      absl::StatusOr<PyValue> a = eval(*node.a);
      if (!a.ok()) return a.status();
      absl::StatusOr<PyValue> b = eval(*node.b);
      if (!b.ok()) return b.status();
      auto is_seq = [](const PyValue& v) { return v.is_str() || v.is_list() || v.is_tuple(); };
      if (node.text == "+" && is_seq(*a) && is_seq(*b)) {
        for (const PyValue* v : {&*a, &*b}) {
          if (absl::Status s = ChargeCopies(*v, 1); !s.ok()) return s;
        }
      } else if (node.text == "*" && (is_seq(*a) || is_seq(*b))) {
        const PyValue& seq = is_seq(*a) ? *a : *b;
        const PyValue& n = is_seq(*a) ? *b : *a;
        if (IsIntLike(n) && !n.is_big_int() && n.as_int() > 0) {  // big: BinOp refuses
          if (absl::Status s = ChargeCopies(seq, static_cast<uint64_t>(n.as_int())); !s.ok()) {
            return s;
          }
        }
      }
      return BinOp(node.text, *a, *b);
    }
    case PyNodeKind::kCall:
      if (call_hook) return call_hook(node);
      return PyErr("function calls are not evaluated");
    default:
      break;
  }
  return PyErr(absl::StrCat("unsupported expression: ", std::string(PyAstClassName(node))));
}

}  // namespace envtune
