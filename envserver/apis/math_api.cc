// MathAPI: see math_api.h and shared/bfcl/spec/math_api.md.
#include "envserver/apis/math_api.h"

#include <gmp.h>
#include <mpfr.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "envserver/apis/apis.h"
#include "envserver/pyint.h"

namespace envtune {
namespace {

// ---------------------------------------------------------------------------------------------
// GMP / MPFR (linked: libgmp-dev, libmpfr-dev), behind one table of functions.
// ---------------------------------------------------------------------------------------------
using MpfrStruct = __mpfr_struct;
using MpfrPtr = mpfr_ptr;
using MpfrSrc = mpfr_srcptr;
constexpr mpfr_rnd_t kRndN = MPFR_RNDN;
constexpr mpfr_rnd_t kRndZ = MPFR_RNDZ;
constexpr mpfr_rnd_t kRndU = MPFR_RNDU;
constexpr mpfr_rnd_t kRndD = MPFR_RNDD;
constexpr mpfr_rnd_t kRndA = MPFR_RNDA;

struct MpLib {
  // GMP
  void (*z_init)(mpz_ptr) = [](mpz_ptr z) { mpz_init(z); };
  void (*z_clear)(mpz_ptr) = [](mpz_ptr z) { mpz_clear(z); };
  void (*z_set_si)(mpz_ptr, long) = [](mpz_ptr z, long v) { mpz_set_si(z, v); };
  void (*z_set_d)(mpz_ptr, double) = [](mpz_ptr z, double v) { mpz_set_d(z, v); };
  int (*z_set_str)(mpz_ptr, const char*, int) = [](mpz_ptr z, const char* s, int b) {
    return mpz_set_str(z, s, b);
  };
  char* (*z_get_str)(char*, int, mpz_srcptr) = [](char* s, int b, mpz_srcptr z) {
    return mpz_get_str(s, b, z);
  };
  void (*z_mul)(mpz_ptr, mpz_srcptr, mpz_srcptr) = [](mpz_ptr r, mpz_srcptr a, mpz_srcptr b) {
    mpz_mul(r, a, b);
  };
  void (*z_mul_2exp)(mpz_ptr, mpz_srcptr, mp_bitcnt_t) = [](mpz_ptr r, mpz_srcptr a, mp_bitcnt_t n) {
    mpz_mul_2exp(r, a, n);
  };
  void (*z_add)(mpz_ptr, mpz_srcptr, mpz_srcptr) = [](mpz_ptr r, mpz_srcptr a, mpz_srcptr b) {
    mpz_add(r, a, b);
  };
  void (*z_sub)(mpz_ptr, mpz_srcptr, mpz_srcptr) = [](mpz_ptr r, mpz_srcptr a, mpz_srcptr b) {
    mpz_sub(r, a, b);
  };
  void (*z_ui_pow_ui)(mpz_ptr, unsigned long, unsigned long) = [](mpz_ptr r, unsigned long b,
                                                                   unsigned long e) {
    mpz_ui_pow_ui(r, b, e);
  };
  void (*z_pow_ui)(mpz_ptr, mpz_srcptr, unsigned long) = [](mpz_ptr r, mpz_srcptr b, unsigned long e) {
    mpz_pow_ui(r, b, e);
  };
  void (*z_tdiv_qr)(mpz_ptr, mpz_ptr, mpz_srcptr, mpz_srcptr) = [](mpz_ptr q, mpz_ptr r,
                                                                  mpz_srcptr a, mpz_srcptr b) {
    mpz_tdiv_qr(q, r, a, b);
  };
  void (*z_sqrt)(mpz_ptr, mpz_srcptr) = [](mpz_ptr r, mpz_srcptr a) { mpz_sqrt(r, a); };
  int (*z_cmp)(mpz_srcptr, mpz_srcptr) = [](mpz_srcptr a, mpz_srcptr b) { return mpz_cmp(a, b); };
  size_t (*z_sizeinbase)(mpz_srcptr, int) = [](mpz_srcptr a, int b) { return mpz_sizeinbase(a, b); };
  // MPFR
  void (*f_init2)(MpfrPtr, long) = [](MpfrPtr x, long p) { mpfr_init2(x, p); };
  void (*f_clear)(MpfrPtr) = [](MpfrPtr x) { mpfr_clear(x); };
  int (*f_set_d)(MpfrPtr, double, mpfr_rnd_t) = [](MpfrPtr x, double d, mpfr_rnd_t r) {
    return mpfr_set_d(x, d, r);
  };
  int (*f_set_z)(MpfrPtr, mpz_srcptr, mpfr_rnd_t) = [](MpfrPtr x, mpz_srcptr z, mpfr_rnd_t r) {
    return mpfr_set_z(x, z, r);
  };
  int (*f_set_str)(MpfrPtr, const char*, int, mpfr_rnd_t) = [](MpfrPtr x, const char* s, int b,
                                                                mpfr_rnd_t r) {
    return mpfr_set_str(x, s, b, r);
  };
  int (*f_log)(MpfrPtr, MpfrSrc, mpfr_rnd_t) = [](MpfrPtr r, MpfrSrc a, mpfr_rnd_t m) {
    return mpfr_log(r, a, m);
  };
  int (*f_div)(MpfrPtr, MpfrSrc, MpfrSrc, mpfr_rnd_t) = [](MpfrPtr r, MpfrSrc a, MpfrSrc b,
                                                          mpfr_rnd_t m) { return mpfr_div(r, a, b, m); };
  int (*f_mul)(MpfrPtr, MpfrSrc, MpfrSrc, mpfr_rnd_t) = [](MpfrPtr r, MpfrSrc a, MpfrSrc b,
                                                          mpfr_rnd_t m) { return mpfr_mul(r, a, b, m); };
  int (*f_add)(MpfrPtr, MpfrSrc, MpfrSrc, mpfr_rnd_t) = [](MpfrPtr r, MpfrSrc a, MpfrSrc b,
                                                          mpfr_rnd_t m) { return mpfr_add(r, a, b, m); };
  int (*f_sub)(MpfrPtr, MpfrSrc, MpfrSrc, mpfr_rnd_t) = [](MpfrPtr r, MpfrSrc a, MpfrSrc b,
                                                          mpfr_rnd_t m) { return mpfr_sub(r, a, b, m); };
  int (*f_neg)(MpfrPtr, MpfrSrc, mpfr_rnd_t) = [](MpfrPtr r, MpfrSrc a, mpfr_rnd_t m) {
    return mpfr_neg(r, a, m);
  };
  int (*f_const_pi)(MpfrPtr, mpfr_rnd_t) = [](MpfrPtr r, mpfr_rnd_t m) { return mpfr_const_pi(r, m); };
  char* (*f_get_str)(char*, long*, int, size_t, MpfrSrc, mpfr_rnd_t) =
      [](char* s, long* e, int b, size_t n, MpfrSrc x, mpfr_rnd_t m) {
        return mpfr_get_str(s, e, b, n, x, m);
      };
  void (*f_free_str)(char*) = [](char* s) { mpfr_free_str(s); };
  int (*f_nan_p)(MpfrSrc) = [](MpfrSrc x) { return static_cast<int>(mpfr_nan_p(x)); };
  int (*f_inf_p)(MpfrSrc) = [](MpfrSrc x) { return static_cast<int>(mpfr_inf_p(x)); };
  int (*f_zero_p)(MpfrSrc) = [](MpfrSrc x) { return static_cast<int>(mpfr_zero_p(x)); };
  int (*f_sgn)(MpfrSrc) = [](MpfrSrc x) { return mpfr_sgn(x); };
};

const MpLib& Mp() {
  static const MpLib lib;
  return lib;
}

class Mpz {
 public:
  Mpz() { Mp().z_init(z); }
  explicit Mpz(long v) : Mpz() { Mp().z_set_si(z, v); }
  ~Mpz() { Mp().z_clear(z); }
  Mpz(const Mpz&) = delete;
  Mpz& operator=(const Mpz&) = delete;
  std::string Str() const {
    std::string buf(Mp().z_sizeinbase(z, 10) + 2, '\0');
    Mp().z_get_str(buf.data(), 10, z);
    buf.resize(std::strlen(buf.c_str()));
    return buf;
  }
  int Sign() const { return mpz_sgn(z); }
  mpz_t z;
};

class Mpfr {
 public:
  explicit Mpfr(long prec) { Mp().f_init2(&x, prec); }
  ~Mpfr() { Mp().f_clear(&x); }
  Mpfr(const Mpfr&) = delete;
  Mpfr& operator=(const Mpfr&) = delete;
  MpfrPtr p() { return &x; }
  MpfrSrc p() const { return &x; }
  bool nan() const { return Mp().f_nan_p(&x) != 0; }
  bool inf() const { return Mp().f_inf_p(&x) != 0; }
  bool zero() const { return Mp().f_zero_p(&x) != 0; }
  int sgn() const { return Mp().f_sgn(&x); }
  MpfrStruct x;
};

// ---------------------------------------------------------------------------------------------
// Result helpers.
// ---------------------------------------------------------------------------------------------
CallOutcome Result(PyValue v) {
  PyDict d;
  d.Set("result", std::move(v));
  return CallOutcome::Return(PyValue::Dict(std::move(d)));
}
CallOutcome Error(std::string message) {
  PyDict d;
  d.Set("error", PyValue::Str(std::move(message)));
  return CallOutcome::Return(PyValue::Dict(std::move(d)));
}
// A result whose value PyValue cannot hold: the executor's final text.
CallOutcome RawJsonResult(const std::string& value_text) {
  return CallOutcome::Return(PyValue::Str(absl::StrCat("{\"result\": ", value_text, "}")));
}
CallOutcome RawReprResult(const std::string& value_repr) {
  return CallOutcome::Return(PyValue::Str(absl::StrCat("{'result': ", value_repr, "}")));
}

// An int result: json.dumps of it, or CPython's int-to-str limit error (str() of the dict fails
// as json.dumps did, so the executor reports the exception).
CallOutcome IntResult(const PyBigInt& v) {
  if (!v.FitsInt64() && v.DecimalDigits() > kIntMaxStrDigits) {
    return CallOutcome::Raise(kIntStrLimitError);
  }
  return Result(PyValue::Int(v));
}
CallOutcome IntResult(int64_t v) { return Result(PyValue::Int(v)); }

std::string TypeName(const PyValue& v) { return std::string(v.TypeName()); }

// ---------------------------------------------------------------------------------------------
// Python numbers.
// ---------------------------------------------------------------------------------------------
// A Python int (any size) or float.
struct Num {
  bool is_float = false;
  PyBigInt i;
  double f = 0;
  static Num Int(PyBigInt v) { return Num{false, std::move(v), 0}; }
  static Num Float(double d) { return Num{true, PyBigInt(), d}; }
  // Python float(x): nullopt for an int beyond the double range (OverflowError).
  std::optional<double> ToDouble() const { return is_float ? f : i.ToDouble(); }
  bool IsZero() const { return is_float ? f == 0 : i.Sign() == 0; }
  bool IsNegative() const { return is_float ? f < 0 : i.Sign() < 0; }
};

std::optional<Num> AsNum(const PyValue& v) {
  if (v.is_bool() || v.is_int()) return Num::Int(v.as_big_int());
  if (v.is_float()) return Num::Float(v.as_float());
  return std::nullopt;
}

// float(a), float(b) for a mixed operation; the OverflowError outcome when one is too large.
std::optional<CallOutcome> BothDoubles(const Num& a, const Num& b, double* x, double* y) {
  std::optional<double> da = a.ToDouble(), db = b.ToDouble();
  if (!da || !db) return CallOutcome::Raise(kIntTooLargeForFloat);
  *x = *da;
  *y = *db;
  return std::nullopt;
}

CallOutcome NumResult(const Num& n) {
  return n.is_float ? Result(PyValue::Float(n.f)) : IntResult(n.i);
}

}  // namespace

double PyIntTrueDivide(int64_t a, int64_t b) {
  return PyBigInt::TrueDivide(PyBigInt(a), PyBigInt(b)).value_or(HUGE_VAL);
}

namespace {

// Python a / b for numbers (b != 0), or the OverflowError text.
struct Quotient {
  double value = 0;
  const char* overflow = nullptr;
};
Quotient TrueDiv(const Num& a, const Num& b) {
  if (!a.is_float && !b.is_float) {
    std::optional<double> q = PyBigInt::TrueDivide(a.i, b.i);
    if (!q) return {0, kIntDivisionTooLargeForFloat};
    return {*q, nullptr};
  }
  std::optional<double> x = a.ToDouble(), y = b.ToDouble();
  if (!x || !y) return {0, kIntTooLargeForFloat};
  return {*x / *y, nullptr};
}

// Exact Python comparison a < b for numbers.
bool NumLess(const Num& a, const Num& b) {
  if (!a.is_float && !b.is_float) return a.i.Compare(b.i) < 0;
  if (a.is_float && b.is_float) return a.f < b.f;
  const double f = a.is_float ? a.f : b.f;
  if (std::isnan(f)) return false;
  return a.is_float ? b.i.CompareDouble(f) > 0 : a.i.CompareDouble(f) < 0;
}

// Iterates `numbers` like Python's iter(): list/tuple/set items, dict keys, str characters.
// Returns false (with the TypeError text) for non-iterables.
bool PyIterate(const PyValue& v, std::vector<PyValue>* out, std::string* type_error) {
  if (v.is_list() || v.is_tuple() || v.is_set()) {
    *out = v.items();
    return true;
  }
  if (v.is_dict()) {
    for (const auto& [k, x] : v.dict()) out->push_back(k);
    return true;
  }
  if (v.is_str()) {
    const std::string& s = v.as_str();
    for (size_t i = 0; i < s.size();) {
      size_t len = 1;
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0xF0) len = 4;
      else if (c >= 0xE0) len = 3;
      else if (c >= 0xC0) len = 2;
      len = std::min(len, s.size() - i);
      out->push_back(PyValue::Str(s.substr(i, len)));
      i += len;
    }
    return true;
  }
  *type_error = absl::StrCat("'", TypeName(v), "' object is not iterable");
  return false;
}

// Python sum(items) with start 0 (all items numbers), per CPython 3.11 (or 3.12 with
// kNeumaierSum). Returns nullopt on a TypeError (a non-number item); *overflow is set (and the
// result is meaningless) when an int too large for a double meets a float (OverflowError).
std::optional<Num> PySum(const std::vector<PyValue>& items, bool* overflow) {
  *overflow = false;
  PyBigInt isum;
  size_t i = 0;
  for (; i < items.size(); ++i) {
    std::optional<Num> n = AsNum(items[i]);
    if (!n) return std::nullopt;
    if (n->is_float) break;
    isum = isum + n->i;
  }
  if (i == items.size()) return Num::Int(std::move(isum));
  std::optional<double> prefix = isum.ToDouble();
  if (!prefix) *overflow = true;
  double s = prefix.value_or(0) + items[i].as_float();
  double c = 0.0;
  for (++i; i < items.size(); ++i) {
    std::optional<Num> n = AsNum(items[i]);
    if (!n) return std::nullopt;
    if (!n->is_float) {
      std::optional<double> d = n->i.ToDouble();
      if (!d) *overflow = true;
      s += d.value_or(0);
      continue;
    }
    double x = n->f;
    if (MathApi::kNeumaierSum) {
      double t = s + x;
      if (std::fabs(s) >= std::fabs(x)) {
        c += (s - t) + x;
      } else {
        c += (x - t) + s;
      }
      s = t;
    } else {
      s += x;
    }
  }
  if (MathApi::kNeumaierSum && c != 0.0 && std::isfinite(c)) s += c;
  return Num::Float(s);
}

// The shared start of mean, standard_deviation and sum_values: the items of the list argument
// `numbers` and their Python sum(). Returns the error outcome to give back instead (`empty_error`
// for a falsy argument; "All elements in the list must be numbers" when it is not iterable or an
// item is not a number), or nullopt with *items and *sum set.
std::optional<CallOutcome> NumbersAndSum(const PyValue& numbers, const char* empty_error,
                                         std::vector<PyValue>* items, Num* sum) {
  if (!numbers.Truthy()) return Error(empty_error);
  std::string type_error;
  if (!PyIterate(numbers, items, &type_error)) {
    return Error("All elements in the list must be numbers");
  }
  bool overflow = false;
  std::optional<Num> s = PySum(*items, &overflow);
  if (!s) return Error("All elements in the list must be numbers");
  if (overflow) return CallOutcome::Raise(kIntTooLargeForFloat);
  *sum = *std::move(s);
  return std::nullopt;
}

// C pow with CPython float_pow's special cases. Returns nullopt + *exception or *complex_needed.
struct PowOutcome {
  double value = 0;
  std::optional<std::string> exception;
  bool complex_needed = false;
};

bool IsOddInteger(double w) { return std::fmod(std::fabs(w), 2.0) == 1.0; }

PowOutcome FloatPow(double iv, double iw) {
  PowOutcome out;
  if (iw == 0) {
    out.value = 1.0;
    return out;
  }
  if (std::isnan(iv)) {
    out.value = iv;
    return out;
  }
  if (std::isnan(iw)) {
    out.value = iv == 1.0 ? 1.0 : iw;
    return out;
  }
  if (std::isinf(iw)) {
    iv = std::fabs(iv);
    if (iv == 1.0) out.value = 1.0;
    else if ((iw > 0.0) == (iv > 1.0)) out.value = std::fabs(iw);
    else out.value = 0.0;
    return out;
  }
  if (std::isinf(iv)) {
    bool odd = IsOddInteger(iw);
    if (iw > 0.0) out.value = odd ? iv : std::fabs(iv);
    else out.value = odd ? std::copysign(0.0, iv) : 0.0;
    return out;
  }
  if (iv == 0.0) {
    bool odd = IsOddInteger(iw);
    if (iw < 0.0) {
      out.exception = "0.0 cannot be raised to a negative power";
      return out;
    }
    out.value = odd ? iv : 0.0;
    return out;
  }
  bool negate = false;
  if (iv < 0.0) {
    if (iw != std::floor(iw)) {
      out.complex_needed = true;
      return out;
    }
    iv = -iv;
    negate = IsOddInteger(iw);
  }
  if (iv == 1.0) {
    out.value = negate ? -1.0 : 1.0;
    return out;
  }
  errno = 0;
  volatile double base = iv, exponent = iw;
  double ix = std::pow(base, exponent);
  int err = errno;
  if (err == 0 && std::isinf(ix)) err = ERANGE;
  else if (err == ERANGE && ix == 0.0) err = 0;
  if (negate) ix = -ix;
  if (err != 0) {
    out.exception = err == ERANGE ? "(34, 'Numerical result out of range')"
                                  : "(33, 'Numerical argument out of domain')";
    return out;
  }
  out.value = ix;
  return out;
}

// CPython repr of a float without the forced ".0" (format code 'r', no flags).
std::string FloatReprNoDot(double d) {
  std::string s = PyFloatRepr(d);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

std::string ComplexRepr(double re, double im) {
  if (re == 0.0 && !std::signbit(re)) return FloatReprNoDot(im) + "j";
  std::string ims = FloatReprNoDot(im);
  if (ims[0] != '-') ims = "+" + ims;
  return absl::StrCat("(", FloatReprNoDot(re), ims, "j)");
}

// CPython complex ** (non-integral real exponent): c_pow plus complex_pow's error mapping.
CallOutcome ComplexPow(double a_re, double b_re) {
  double a_im = 0.0;
  double re, im;
  errno = 0;
  if (a_re == 0.0 && a_im == 0.0) {
    if (b_re < 0.0) return CallOutcome::Raise("0.0 to a negative or complex power");
    re = 0.0;
    im = 0.0;
  } else {
    double vabs = std::hypot(a_re, a_im);
    double len = std::pow(vabs, b_re);
    double at = std::atan2(a_im, a_re);
    double phase = at * b_re;
    re = len * std::cos(phase);
    im = len * std::sin(phase);
  }
  int err = errno;
  if (err == 0) {
    if (std::isinf(re) || std::isinf(im)) err = ERANGE;
  } else if (err == ERANGE && re == 0.0 && im == 0.0) {
    err = 0;
  }
  if (err == ERANGE) return CallOutcome::Raise("complex exponentiation");
  return RawReprResult(ComplexRepr(re, im));
}

// ---------------------------------------------------------------------------------------------
// mpmath helpers (logarithm).
// ---------------------------------------------------------------------------------------------

// Python int(x) for logarithm's precision; error text on failure.
std::optional<std::string> PyInt(const PyValue& v, int64_t* out) {
  if (v.is_big_int()) {  // saturated: far beyond kMaxPrecisionDigits either way
    *out = v.as_big_int().Sign() < 0 ? std::numeric_limits<int64_t>::min()
                                     : std::numeric_limits<int64_t>::max();
    return std::nullopt;
  }
  if (v.is_bool() || v.is_int()) {
    *out = v.as_int();
    return std::nullopt;
  }
  if (v.is_float()) {
    double d = v.as_float();
    if (std::isnan(d)) return "cannot convert float NaN to integer";
    if (std::isinf(d)) return "cannot convert float infinity to integer";
    double t = std::trunc(d);
    if (t > 9.2e18) t = 9.2e18;
    if (t < -9.2e18) t = -9.2e18;
    *out = static_cast<int64_t>(t);
    return std::nullopt;
  }
  if (v.is_str()) {
    const std::string& s = v.as_str();
    size_t b = 0, e = s.size();
    auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    while (b < e && space(s[b])) ++b;
    while (e > b && space(s[e - 1])) --e;
    size_t i = b;
    bool neg = false;
    if (i < e && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    bool ok = i < e && std::isdigit(static_cast<unsigned char>(s[i]));
    __int128 value = 0;
    bool prev_digit = false;
    for (; ok && i < e; ++i) {
      char c = s[i];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        if (value < (static_cast<__int128>(1) << 100)) value = value * 10 + (c - '0');
        prev_digit = true;
      } else if (c == '_' && prev_digit && i + 1 < e &&
                 std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        prev_digit = false;
      } else {
        ok = false;
      }
    }
    if (!ok) return absl::StrCat("invalid literal for int() with base 10: ", PyStrRepr(s));
    if (neg) value = -value;
    if (value > std::numeric_limits<int64_t>::max()) value = std::numeric_limits<int64_t>::max();
    if (value < std::numeric_limits<int64_t>::min()) value = std::numeric_limits<int64_t>::min();
    *out = static_cast<int64_t>(value);
    return std::nullopt;
  }
  return absl::StrCat(
      "int() argument must be a string, a bytes-like object or a real number, not '",
      TypeName(v), "'");
}

// mpmath dps -> working precision in bits.
long DpsToPrec(int64_t d) {
  double t = static_cast<double>(d + 1) * 3.3219280948873626;
  double r = std::nearbyint(t);
  return static_cast<long>(std::max(1.0, r));
}

// mpmath repr_dps(prec).
int ReprDigits(long prec) {
  double r = std::nearbyint(static_cast<double>(prec) / 3.3219280948873626);
  long dps = std::max(1L, static_cast<long>(r) - 1);
  return dps == 15 ? 17 : static_cast<int>(dps + 3);
}

// mpmath to_str(x, dps) for an MPFR value.
std::string MpfToStr(const Mpfr& x, int dps) {
  if (x.nan()) return "nan";
  if (x.inf()) return x.sgn() > 0 ? "+inf" : "-inf";
  if (x.zero()) return "0.0";
  long e10 = 0;
  char* raw = Mp().f_get_str(nullptr, &e10, 10, static_cast<size_t>(dps + 3), x.p(), kRndZ);
  std::string digits = raw;
  Mp().f_free_str(raw);
  std::string sign;
  if (!digits.empty() && digits[0] == '-') {
    sign = "-";
    digits.erase(0, 1);
  }
  long exponent = e10 - 1;
  if (static_cast<int>(digits.size()) > dps && digits[dps] >= '5') {
    digits.resize(dps);
    int i = dps - 1;
    while (i >= 0 && digits[i] == '9') --i;
    if (i >= 0) {
      digits = digits.substr(0, i) + static_cast<char>(digits[i] + 1) +
               std::string(dps - i - 1, '0');
    } else {
      digits = "1" + std::string(dps - 1, '0');
      ++exponent;
    }
  } else {
    digits.resize(std::min<size_t>(digits.size(), dps));
  }
  long min_fixed = std::min<long>(-(dps / 3), -5);
  long max_fixed = dps;
  size_t split = 1;
  if (min_fixed < exponent && exponent < max_fixed) {
    if (exponent < 0) {
      digits = std::string(-exponent, '0') + digits;
      split = 1;
    } else {
      split = exponent + 1;
      if (static_cast<long>(split) > dps) digits += std::string(split - dps, '0');
    }
    exponent = 0;
  }
  digits = digits.substr(0, split) + "." + digits.substr(split);
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  if (digits.back() == '.') digits += "0";
  if (exponent == 0) return sign + digits;
  if (exponent > 0) return absl::StrCat(sign, digits, "e+", exponent);
  return absl::StrCat(sign, digits, "e", exponent);
}

// A real or complex mpmath number.
struct MpNum {
  explicit MpNum(long prec) : re(prec), im(prec) {}
  Mpfr re;
  Mpfr im;
  bool is_complex = false;
};

// Validates a float literal as mpmath's from_str accepts it; returns the MPFR-ready text.
std::optional<std::string> ParseMpfString(const std::string& s) {
  size_t b = 0, e = s.size();
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  std::string t;
  // Python float() accepts single underscores between digits ("1_000").
  for (size_t k = b; k < e; ++k) {
    if (s[k] == '_') {
      bool ok = k > b && k + 1 < e && std::isdigit(static_cast<unsigned char>(s[k - 1])) &&
                std::isdigit(static_cast<unsigned char>(s[k + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    t.push_back(s[k]);
  }
  std::string lower;
  for (char c : t) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "inf" || lower == "+inf") return std::string("@inf@");
  if (lower == "-inf") return std::string("-@inf@");
  if (lower == "nan") return std::string("@nan@");
  size_t i = 0;
  std::string out;
  if (i < lower.size() && (lower[i] == '+' || lower[i] == '-')) {
    if (lower[i] == '-') out.push_back('-');
    ++i;
  }
  size_t int_digits = 0, frac_digits = 0;
  while (i < lower.size() && std::isdigit(static_cast<unsigned char>(lower[i]))) {
    out.push_back(lower[i++]);
    ++int_digits;
  }
  if (i < lower.size() && lower[i] == '.') {
    out.push_back('.');
    ++i;
    while (i < lower.size() && std::isdigit(static_cast<unsigned char>(lower[i]))) {
      out.push_back(lower[i++]);
      ++frac_digits;
    }
  }
  if (int_digits + frac_digits == 0) return std::nullopt;
  if (i < lower.size() && lower[i] == 'e') {
    out.push_back('e');
    ++i;
    if (i < lower.size() && (lower[i] == '+' || lower[i] == '-')) out.push_back(lower[i++]);
    size_t exp_digits = 0;
    while (i < lower.size() && std::isdigit(static_cast<unsigned char>(lower[i]))) {
      out.push_back(lower[i++]);
      ++exp_digits;
    }
    if (exp_digits == 0 || exp_digits > 9) return std::nullopt;
  }
  if (i != lower.size()) return std::nullopt;
  if (out == "-" || out.empty()) return std::nullopt;
  if (out[0] == '.' || (out[0] == '-' && out.size() > 1 && out[1] == '.')) {
    out.insert(out[0] == '-' ? 1 : 0, "0");
  }
  return out;
}

// mpmath.convert(v) then mpmath.log at precision `prec` (bits). Error text on failure.
std::optional<std::string> MpLog(const PyValue& v, long prec, MpNum* out) {
  const MpLib& mp = Mp();
  // mpmath converts ints exactly: enough bits for the whole value.
  const long int_bits =
      v.is_int() ? static_cast<long>(std::min<uint64_t>(v.as_big_int().BitLength(), 1L << 30)) : 0;
  Mpfr x(std::max<long>({prec, 64, int_bits}));
  if (v.is_bool() || v.is_int()) {
    const PyBigInt z = v.as_big_int();
    mp.f_set_z(x.p(), z.raw(), kRndN);
  } else if (v.is_float()) {
    mp.f_set_d(x.p(), v.as_float(), kRndN);
  } else if (v.is_str()) {
    std::optional<std::string> text = ParseMpfString(v.as_str());
    if (!text) return absl::StrCat("cannot create mpf from ", PyStrRepr(v.as_str()));
    Mpfr rounded(prec);
    mp.f_set_str(rounded.p(), text->c_str(), 10, kRndN);
    mp.f_set_d(x.p(), 0.0, kRndN);
    mp.f_add(x.p(), x.p(), rounded.p(), kRndN);
  } else {
    return absl::StrCat("cannot create mpf from ", v.Repr());
  }
  if (x.nan()) {
    mp.f_set_d(out->re.p(), std::nan(""), kRndN);
    return std::nullopt;
  }
  if (x.sgn() >= 0 || x.zero()) {
    if (x.zero()) {
      mp.f_set_d(out->re.p(), -INFINITY, kRndN);
    } else {
      mp.f_log(out->re.p(), x.p(), kRndN);
    }
    return std::nullopt;
  }
  // Negative: log|x| + i*pi.
  Mpfr ax(std::max<long>(prec, 64) + 1);
  mp.f_neg(ax.p(), x.p(), kRndN);
  mp.f_log(out->re.p(), ax.p(), kRndN);
  mp.f_const_pi(out->im.p(), kRndN);
  out->is_complex = true;
  return std::nullopt;
}

// mpmath mpf_div(s, t, prec, round_nearest) including its special-value table.
// Returns false on ZeroDivisionError.
bool MpfDiv(Mpfr* r, const Mpfr& s, const Mpfr& t) {
  const MpLib& mp = Mp();
  bool s_fin_nz = !s.nan() && !s.inf() && !s.zero();
  bool t_fin_nz = !t.nan() && !t.inf() && !t.zero();
  if (s_fin_nz && t_fin_nz) {
    mp.f_div(r->p(), s.p(), t.p(), kRndN);
    return true;
  }
  if (s.zero()) {
    if (t.zero()) return false;
    mp.f_set_d(r->p(), t.nan() ? std::nan("") : 0.0, kRndN);
    return true;
  }
  if (t.zero()) return false;
  bool s_special = s.nan() || s.inf();
  bool t_special = t.nan() || t.inf();
  if ((s_special && t_special) || s.nan() || t.nan()) {
    mp.f_set_d(r->p(), std::nan(""), kRndN);
    return true;
  }
  if (!t_special) {
    int sign = s.sgn() * t.sgn();
    mp.f_set_d(r->p(), sign > 0 ? INFINITY : -INFINITY, kRndN);
    return true;
  }
  mp.f_set_d(r->p(), 0.0, kRndN);
  return true;
}

// mpc_div(z, w) per mpmath libmpc (wp = prec + 10, intermediate sums rounded toward zero).
bool MpcDiv(MpNum* r, const MpNum& z, const MpNum& w, long prec) {
  const MpLib& mp = Mp();
  long wide = 2 * prec + 8;
  long wp = prec + 10;
  Mpfr cc(wide), dd(wide), ac(wide), bd(wide), bc(wide), ad(wide);
  mp.f_mul(cc.p(), w.re.p(), w.re.p(), kRndN);
  mp.f_mul(dd.p(), w.im.p(), w.im.p(), kRndN);
  mp.f_mul(ac.p(), z.re.p(), w.re.p(), kRndN);
  mp.f_mul(bd.p(), z.im.p(), w.im.p(), kRndN);
  mp.f_mul(bc.p(), z.im.p(), w.re.p(), kRndN);
  mp.f_mul(ad.p(), z.re.p(), w.im.p(), kRndN);
  Mpfr mag(wp), t(wp), u(wp);
  mp.f_add(mag.p(), cc.p(), dd.p(), kRndZ);
  mp.f_add(t.p(), ac.p(), bd.p(), kRndZ);
  mp.f_sub(u.p(), bc.p(), ad.p(), kRndZ);
  if (!MpfDiv(&r->re, t, mag)) return false;
  if (!MpfDiv(&r->im, u, mag)) return false;
  r->is_complex = true;
  return true;
}

// ---------------------------------------------------------------------------------------------
// decimal helpers (square_root).
// ---------------------------------------------------------------------------------------------
struct Dec {
  bool negative = false;
  std::string digits;  // coefficient, no leading zeros ("0" for zero)
  int64_t exp = 0;
};

std::string DecStr(const Dec& d) {
  std::string sign = d.negative ? "-" : "";
  const int64_t n = static_cast<int64_t>(d.digits.size());
  const int64_t leftdigits = d.exp + n;
  int64_t dotplace = (d.exp <= 0 && leftdigits > -6) ? leftdigits : 1;
  std::string intpart, fracpart;
  if (dotplace <= 0) {
    intpart = "0";
    fracpart = "." + std::string(-dotplace, '0') + d.digits;
  } else if (dotplace >= n) {
    intpart = d.digits + std::string(dotplace - n, '0');
  } else {
    intpart = d.digits.substr(0, dotplace);
    fracpart = "." + d.digits.substr(dotplace);
  }
  std::string exp;
  if (leftdigits != dotplace) {
    int64_t e = leftdigits - dotplace;
    exp = absl::StrCat("E", e >= 0 ? "+" : "", e);
  }
  return sign + intpart + fracpart + exp;
}

// Decimal._fix for ROUND_HALF_EVEN at `prec` digits (exponent limits are never reached here).
void DecRound(Dec* d, int64_t prec) {
  int64_t n = static_cast<int64_t>(d->digits.size());
  if (d->digits == "0" || n <= prec) return;
  int64_t drop = n - prec;
  std::string kept = d->digits.substr(0, prec);
  std::string rest = d->digits.substr(prec);
  bool round_up;
  if (rest[0] > '5') {
    round_up = true;
  } else if (rest[0] < '5') {
    round_up = false;
  } else {
    bool above = rest.find_first_not_of('0', 1) != std::string::npos;
    round_up = above || ((kept.back() - '0') % 2 == 1);
  }
  if (round_up) {
    int i = static_cast<int>(kept.size()) - 1;
    while (i >= 0 && kept[i] == '9') kept[i--] = '0';
    if (i >= 0) {
      ++kept[i];
    } else {
      kept = "1" + kept;
    }
  }
  d->exp += drop;
  if (static_cast<int64_t>(kept.size()) > prec) {
    kept.pop_back();
    d->exp += 1;
  }
  d->digits = kept;
}

// Decimal(number).sqrt() under context precision `prec` (number >= 0 or -0.0, finite).
Dec DecSqrt(const Dec& in, int64_t prec_in) {
  const MpLib& mp = Mp();
  if (in.digits == "0") {
    Dec z;
    z.negative = in.negative;
    z.digits = "0";
    z.exp = in.exp >= 0 ? in.exp / 2 : -((-in.exp + 1) / 2);
    return z;
  }
  int64_t prec = prec_in + 1;
  Mpz c;
  mp.z_set_str(c.z, in.digits.c_str(), 10);
  int64_t e = in.exp >> 1;
  int64_t l;
  if (in.exp & 1) {
    Mpz ten(10);
    mp.z_mul(c.z, c.z, ten.z);
    l = (static_cast<int64_t>(in.digits.size()) >> 1) + 1;
  } else {
    l = (static_cast<int64_t>(in.digits.size()) + 1) >> 1;
  }
  int64_t shift = prec - l;
  bool exact;
  if (shift >= 0) {
    Mpz p;
    mp.z_ui_pow_ui(p.z, 100, static_cast<unsigned long>(shift));
    mp.z_mul(c.z, c.z, p.z);
    exact = true;
  } else {
    Mpz p, q, r;
    mp.z_ui_pow_ui(p.z, 100, static_cast<unsigned long>(-shift));
    mp.z_tdiv_qr(q.z, r.z, c.z, p.z);
    exact = r.Sign() == 0;
    Mpz zero(0);
    mp.z_add(c.z, q.z, zero.z);
  }
  e -= shift;
  Mpz n;
  mp.z_sqrt(n.z, c.z);
  if (exact) {
    Mpz sq;
    mp.z_mul(sq.z, n.z, n.z);
    exact = mp.z_cmp(sq.z, c.z) == 0;
  }
  std::string nd;
  if (exact) {
    Mpz p, q, r;
    if (shift >= 0) {
      mp.z_ui_pow_ui(p.z, 10, static_cast<unsigned long>(shift));
      mp.z_tdiv_qr(q.z, r.z, n.z, p.z);
      nd = q.Str();
    } else {
      mp.z_ui_pow_ui(p.z, 10, static_cast<unsigned long>(-shift));
      mp.z_mul(q.z, n.z, p.z);
      nd = q.Str();
    }
    e += shift;
  } else {
    nd = n.Str();
    char last = nd.back();
    if (last == '0' || last == '5') nd.back() = static_cast<char>(last + 1);
  }
  Dec out;
  out.digits = nd;
  out.exp = e;
  DecRound(&out, prec_in);
  return out;
}

// Decimal(float) / Decimal(int), exact.
Dec DecFromNum(const Num& n) {
  const MpLib& mp = Mp();
  Dec d;
  if (!n.is_float) {
    d.negative = n.i.Sign() < 0;
    d.digits = n.i.Abs().ToString();
    return d;
  }
  d.negative = std::signbit(n.f);
  double a = std::fabs(n.f);
  if (a == 0) {
    d.digits = "0";
    return d;
  }
  int e2;
  double m = std::frexp(a, &e2);  // a = m * 2^e2, m in [0.5, 1)
  uint64_t mant = static_cast<uint64_t>(std::ldexp(m, 53));
  int64_t exp2 = e2 - 53;
  while ((mant & 1) == 0) {
    mant >>= 1;
    ++exp2;
  }
  Mpz z;
  mp.z_set_d(z.z, static_cast<double>(mant));
  if (exp2 >= 0) {
    mp.z_mul_2exp(z.z, z.z, static_cast<mp_bitcnt_t>(exp2));
    d.digits = z.Str();
    d.exp = 0;
  } else {
    Mpz p;
    mp.z_ui_pow_ui(p.z, 5, static_cast<unsigned long>(-exp2));
    mp.z_mul(z.z, z.z, p.z);
    d.digits = z.Str();
    d.exp = exp2;
  }
  return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Methods.
// ---------------------------------------------------------------------------------------------
const MathApi::MethodTable& MathApi::Methods() {
  static const auto* table = new MethodTable{
      {"logarithm", {{"value", std::nullopt}, {"base", std::nullopt}, {"precision", std::nullopt}},
       &MathApi::Logarithm},
      {"mean", {{"numbers", std::nullopt}}, &MathApi::Mean},
      {"standard_deviation", {{"numbers", std::nullopt}}, &MathApi::StandardDeviation},
      {"si_unit_conversion",
       {{"value", std::nullopt}, {"unit_in", std::nullopt}, {"unit_out", std::nullopt}},
       &MathApi::SiUnitConversion},
      {"imperial_si_conversion",
       {{"value", std::nullopt}, {"unit_in", std::nullopt}, {"unit_out", std::nullopt}},
       &MathApi::ImperialSiConversion},
      {"add", {{"a", std::nullopt}, {"b", std::nullopt}}, &MathApi::Add},
      {"subtract", {{"a", std::nullopt}, {"b", std::nullopt}}, &MathApi::Subtract},
      {"multiply", {{"a", std::nullopt}, {"b", std::nullopt}}, &MathApi::Multiply},
      {"divide", {{"a", std::nullopt}, {"b", std::nullopt}}, &MathApi::Divide},
      {"power", {{"base", std::nullopt}, {"exponent", std::nullopt}}, &MathApi::Power},
      {"square_root", {{"number", std::nullopt}, {"precision", std::nullopt}},
       &MathApi::SquareRoot},
      {"absolute_value", {{"number", std::nullopt}}, &MathApi::AbsoluteValue},
      {"round_number", {{"number", std::nullopt}, {"decimal_places", PyValue::Int(0)}},
       &MathApi::RoundNumber},
      {"percentage", {{"part", std::nullopt}, {"whole", std::nullopt}}, &MathApi::Percentage},
      {"min_value", {{"numbers", std::nullopt}}, &MathApi::MinValue},
      {"max_value", {{"numbers", std::nullopt}}, &MathApi::MaxValue},
      {"sum_values", {{"numbers", std::nullopt}}, &MathApi::SumValues},
  };
  return *table;
}

CallOutcome MathApi::Logarithm(const std::vector<PyValue>& a) {
  int64_t dps = 0;
  if (auto err = PyInt(a[2], &dps)) return Error(*err);
  if (dps > kMaxPrecisionDigits) {
    return Error(absl::StrCat("precision too large (at most ", kMaxPrecisionDigits, " digits)"));
  }
  const long prec = DpsToPrec(dps);
  MpNum l1(prec), l2(prec);
  if (auto err = MpLog(a[0], prec, &l1)) return Error(*err);
  if (auto err = MpLog(a[1], prec, &l2)) return Error(*err);
  MpNum q(prec);
  bool ok;
  if (!l1.is_complex && !l2.is_complex) {
    ok = MpfDiv(&q.re, l1.re, l2.re);
  } else if (l1.is_complex && !l2.is_complex) {
    ok = MpfDiv(&q.re, l1.re, l2.re) && MpfDiv(&q.im, l1.im, l2.re);
    q.is_complex = true;
  } else {
    // mpf / mpc and mpc / mpc both go through mpc_div (a real numerator has imag 0).
    if (!l1.is_complex) Mp().f_set_d(l1.im.p(), 0.0, kRndN);
    ok = MpcDiv(&q, l1, l2, prec);
  }
  if (!ok) return Error("");
  const int digits = ReprDigits(prec);
  if (!q.is_complex) return RawReprResult(absl::StrCat("mpf('", MpfToStr(q.re, digits), "')"));
  return RawReprResult(absl::StrCat("mpc(real='", MpfToStr(q.re, digits), "', imag='",
                                    MpfToStr(q.im, digits), "')"));
}

CallOutcome MathApi::Mean(const std::vector<PyValue>& a) {
  std::vector<PyValue> items;
  Num sum{};
  if (auto err = NumbersAndSum(a[0], "Cannot calculate mean of an empty list", &items, &sum)) {
    return *std::move(err);
  }
  const Quotient q = TrueDiv(sum, Num::Int(PyBigInt(static_cast<int64_t>(items.size()))));
  if (q.overflow != nullptr) return CallOutcome::Raise(q.overflow);
  return Result(PyValue::Float(q.value));
}

CallOutcome MathApi::StandardDeviation(const std::vector<PyValue>& a) {
  std::vector<PyValue> items;
  Num sum{};
  if (auto err = NumbersAndSum(a[0], "Cannot calculate standard deviation of an empty list",
                               &items, &sum)) {
    return *std::move(err);
  }
  const Quotient q = TrueDiv(sum, Num::Int(PyBigInt(static_cast<int64_t>(items.size()))));
  if (q.overflow != nullptr) return CallOutcome::Raise(q.overflow);
  const double mean = q.value;
  std::vector<PyValue> terms;
  terms.reserve(items.size());
  for (const PyValue& item : items) {
    std::optional<double> x = AsNum(item)->ToDouble();
    if (!x) return CallOutcome::Raise(kIntTooLargeForFloat);
    double d = *x - mean;
    PowOutcome p = FloatPow(d, 2.0);
    if (p.exception) return CallOutcome::Raise(*p.exception);
    terms.push_back(PyValue::Float(p.value));
  }
  bool overflow = false;
  std::optional<Num> var_sum = PySum(terms, &overflow);
  double variance = var_sum->f / static_cast<double>(items.size());
  if (variance < 0) return CallOutcome::Raise("math domain error");
  return Result(PyValue::Float(std::sqrt(variance)));
}

namespace {
struct UnitRow {
  const char* unit;
  bool is_int;
  int64_t int_factor;
  double float_factor;
};
constexpr UnitRow kToMeters[] = {
    {"km", true, 1000, 0}, {"m", true, 1, 0},     {"cm", false, 0, 0.01},
    {"mm", false, 0, 0.001}, {"um", false, 0, 1e-6}, {"nm", false, 0, 1e-9},
};

struct ImperialRow {
  const char* key;
  double factor;
};
const ImperialRow kImperial[] = {
    {"cm_to_in", 0.393701},       {"in_to_cm", 2.54},        {"m_to_ft", 3.28084},
    {"ft_to_m", 0.3048},          {"m_to_yd", 1.09361},      {"yd_to_m", 0.9144},
    {"km_to_miles", 0.621371},    {"miles_to_km", 1.60934},  {"kg_to_lb", 2.20462},
    {"lb_to_kg", 0.453592},       {"celsius_to_fahrenheit", 1.8},
    {"fahrenheit_to_celsius", 5.0 / 9.0},
};

bool IsNumberValue(const PyValue& v) { return v.is_bool() || v.is_int() || v.is_float(); }

bool UnhashableValue(const PyValue& v) { return v.is_list() || v.is_dict() || v.is_set(); }

std::string FStr(const PyValue& v) { return v.is_str() ? v.as_str() : v.Str(); }
}  // namespace

CallOutcome MathApi::SiUnitConversion(const std::vector<PyValue>& a) {
  const PyValue& value = a[0];
  const PyValue& unit_in = a[1];
  const PyValue& unit_out = a[2];
  if (!IsNumberValue(value)) return Error("Value must be a number");
  auto find = [](const PyValue& u) -> const UnitRow* {
    if (!u.is_str()) return nullptr;
    for (const UnitRow& row : kToMeters) {
      if (u.as_str() == row.unit) return &row;
    }
    return nullptr;
  };
  if (UnhashableValue(unit_in)) {
    return CallOutcome::Raise(absl::StrCat("unhashable type: '", TypeName(unit_in), "'"));
  }
  const UnitRow* in = find(unit_in);
  const UnitRow* out = nullptr;
  if (in != nullptr) {
    if (UnhashableValue(unit_out)) {
      return CallOutcome::Raise(absl::StrCat("unhashable type: '", TypeName(unit_out), "'"));
    }
    out = find(unit_out);
  }
  if (in == nullptr || out == nullptr) {
    return Error(absl::StrCat("Conversion from '", FStr(unit_in), "' to '", FStr(unit_out),
                              "' is not supported"));
  }
  static const char kTooLarge[] = "Conversion resulted in a value too large to represent";
  Num v = *AsNum(value);
  double meters;
  if (!v.is_float && in->is_int) {
    // Exact int, then float(int) at the second multiplication.
    std::optional<PyBigInt> m = PyBigInt::Mul(v.i, PyBigInt(in->int_factor));
    std::optional<double> d = m ? m->ToDouble() : std::nullopt;
    if (!d) return Error(kTooLarge);
    meters = *d;
  } else {
    double factor = in->is_int ? static_cast<double>(in->int_factor) : in->float_factor;
    std::optional<double> d = v.ToDouble();
    if (!d) return Error(kTooLarge);
    meters = *d * factor;
  }
  double inverse = out->is_int ? PyIntTrueDivide(1, out->int_factor) : 1.0 / out->float_factor;
  return Result(PyValue::Float(meters * inverse));
}

CallOutcome MathApi::ImperialSiConversion(const std::vector<PyValue>& a) {
  const PyValue& value = a[0];
  const PyValue& unit_in = a[1];
  const PyValue& unit_out = a[2];
  if (!IsNumberValue(value)) return Error("Value must be a number");
  if (unit_in == unit_out) return Result(value);
  std::string key = absl::StrCat(FStr(unit_in), "_to_", FStr(unit_out));
  const ImperialRow* row = nullptr;
  for (const ImperialRow& r : kImperial) {
    if (key == r.key) row = &r;
  }
  if (row == nullptr) {
    return Error(absl::StrCat("Conversion from '", FStr(unit_in), "' to '", FStr(unit_out),
                              "' is not supported"));
  }
  static const char kTooLarge[] = "Conversion resulted in a value too large to represent";
  Num v = *AsNum(value);
  const bool f_to_c = unit_in.is_str() && unit_out.is_str() &&
                      unit_in.as_str() == "fahrenheit" && unit_out.as_str() == "celsius";
  // float(value), or float(value - 32) computed exactly on ints for fahrenheit -> celsius.
  std::optional<double> x = f_to_c && !v.is_float ? (v.i - PyBigInt(32)).ToDouble() : v.ToDouble();
  if (!x) return Error(kTooLarge);
  double result;
  if (unit_in.is_str() && unit_out.is_str() && unit_in.as_str() == "celsius" &&
      unit_out.as_str() == "fahrenheit") {
    result = *x * row->factor + 32;
  } else if (f_to_c) {
    double shifted = v.is_float ? *x - 32 : *x;
    result = shifted * row->factor;
  } else {
    result = *x * row->factor;
  }
  return Result(PyValue::Float(result));
}

namespace {
// Python a + b / a - b for numbers and (for +) str/list/tuple concatenation.
CallOutcome AddSub(const PyValue& x, const PyValue& y, bool add) {
  std::optional<Num> a = AsNum(x), b = AsNum(y);
  if (a && b) {
    if (!a->is_float && !b->is_float) return IntResult(add ? a->i + b->i : a->i - b->i);
    double u, v;
    if (auto overflow = BothDoubles(*a, *b, &u, &v)) return *std::move(overflow);
    return Result(PyValue::Float(add ? u + v : u - v));
  }
  if (add && x.is_str() && y.is_str()) {
    if (x.as_str().size() + y.as_str().size() > MathApi::kMaxConcatBytes) {
      return Error(absl::StrCat("result too large (at most ", MathApi::kMaxConcatBytes,
                                " bytes)"));
    }
    return Result(PyValue::Str(x.as_str() + y.as_str()));
  }
  if (add && ((x.is_list() && y.is_list()) || (x.is_tuple() && y.is_tuple()))) {
    if (x.items().size() + y.items().size() > MathApi::kMaxConcatItems) {
      return Error(absl::StrCat("result too large (at most ", MathApi::kMaxConcatItems,
                                " items)"));
    }
    PyList items = x.items();
    items.insert(items.end(), y.items().begin(), y.items().end());
    PyValue v = x.is_list() ? PyValue::List(std::move(items)) : PyValue::Tuple(std::move(items));
    return Result(std::move(v));
  }
  return Error("Both inputs must be numbers");
}
}  // namespace

CallOutcome MathApi::Add(const std::vector<PyValue>& a) { return AddSub(a[0], a[1], true); }

CallOutcome MathApi::Subtract(const std::vector<PyValue>& a) { return AddSub(a[0], a[1], false); }

CallOutcome MathApi::Multiply(const std::vector<PyValue>& a) {
  std::optional<Num> x = AsNum(a[0]), y = AsNum(a[1]);
  if (!x || !y) return Error("Both inputs must be numbers");
  if (!x->is_float && !y->is_float) {
    std::optional<PyBigInt> product = PyBigInt::Mul(x->i, y->i);
    if (!product) return CallOutcome::Raise(kIntStrLimitError);  // far beyond 4300 digits
    return IntResult(*product);
  }
  double u, v;
  if (auto overflow = BothDoubles(*x, *y, &u, &v)) return *std::move(overflow);
  return Result(PyValue::Float(u * v));
}

CallOutcome MathApi::Divide(const std::vector<PyValue>& a) {
  std::optional<Num> x = AsNum(a[0]), y = AsNum(a[1]);
  if (y && y->IsZero()) return Error("Cannot divide by zero");
  if (!x || !y) return Error("Both inputs must be numbers");
  const Quotient q = TrueDiv(*x, *y);
  if (q.overflow != nullptr) return CallOutcome::Raise(q.overflow);
  return Result(PyValue::Float(q.value));
}

CallOutcome MathApi::Power(const std::vector<PyValue>& a) {
  std::optional<Num> x = AsNum(a[0]), y = AsNum(a[1]);
  if (!x || !y) return Error("Both inputs must be numbers");
  if (!x->is_float && !y->is_float) {
    if (y->i.Sign() < 0) {  // float(base) ** float(exponent)
      double u, v;
      if (auto overflow = BothDoubles(*x, *y, &u, &v)) return *std::move(overflow);
      PowOutcome p = FloatPow(u, v);
      if (p.exception) return CallOutcome::Raise(*p.exception);
      return Result(PyValue::Float(p.value));
    }
    const PyBigInt& base = x->i;
    const PyBigInt& exp = y->i;
    if (base.Sign() == 0) return IntResult(exp.Sign() == 0 ? 1 : 0);
    if (base.Compare(PyBigInt(1)) == 0) return IntResult(1);
    if (base.Compare(PyBigInt(-1)) == 0) {
      return IntResult(PyBigInt::FloorMod(exp, PyBigInt(2)).Sign() == 0 ? 1 : -1);
    }
    // Digits of |base|**exp ~ exp * log10|base|: beyond the 4300-digit str() limit, Python
    // builds the number and then fails to print it.
    const double log10_base = static_cast<double>(base.BitLength() - 1) * 0.30102999566398120;
    if (!exp.FitsInt64() ||
        static_cast<double>(exp.ToInt64()) * log10_base > kIntMaxStrDigits + 10) {
      return CallOutcome::Raise(kIntStrLimitError);
    }
    std::optional<PyBigInt> r = PyBigInt::Pow(base, static_cast<uint64_t>(exp.ToInt64()));
    if (!r) return CallOutcome::Raise(kIntStrLimitError);
    return IntResult(*r);
  }
  double u, v;
  if (auto overflow = BothDoubles(*x, *y, &u, &v)) return *std::move(overflow);
  PowOutcome p = FloatPow(u, v);
  if (p.exception) return CallOutcome::Raise(*p.exception);
  if (p.complex_needed) return ComplexPow(u, v);
  return Result(PyValue::Float(p.value));
}

CallOutcome MathApi::SquareRoot(const std::vector<PyValue>& a) {
  static const char kInvalid[] =
      "Input must be a number or computation resulted in an invalid operation";
  std::optional<Num> number = AsNum(a[0]);
  if (!number) return Error(kInvalid);  // `number < 0` raises TypeError
  if (number->IsNegative()) {
    return Error("Cannot calculate square root of a negative number");
  }
  const PyValue& precision = a[1];
  if (!precision.is_int() && !precision.is_bool()) return Error(kInvalid);
  if (precision.is_big_int()) return CallOutcome::Raise("valid range for prec is [1, MAX_PREC]");
  const int64_t prec = precision.as_int();
  if (prec < 1 || prec > 999999999999999999LL) {
    return CallOutcome::Raise("valid range for prec is [1, MAX_PREC]");
  }
  if (prec > kMaxPrecisionDigits) {
    return Error(absl::StrCat("precision too large (at most ", kMaxPrecisionDigits, " digits)"));
  }
  if (number->is_float && std::isnan(number->f)) return RawReprResult("Decimal('NaN')");
  if (number->is_float && std::isinf(number->f)) return RawReprResult("Decimal('Infinity')");
  Dec root = DecSqrt(DecFromNum(*number), prec);
  return RawReprResult(absl::StrCat("Decimal('", DecStr(root), "')"));
}

CallOutcome MathApi::AbsoluteValue(const std::vector<PyValue>& a) {
  std::optional<Num> x = AsNum(a[0]);
  if (!x) return Error("Input must be a number");
  if (x->is_float) return Result(PyValue::Float(std::fabs(x->f)));
  return IntResult(x->i.Abs());
}

CallOutcome MathApi::RoundNumber(const std::vector<PyValue>& a) {
  static const char kTypeError[] =
      "First input must be a number, second input must be an integer";
  std::optional<Num> x = AsNum(a[0]);
  const PyValue& places = a[1];
  if (!x) return Error(kTypeError);
  if (places.is_none()) {
    if (!x->is_float) return IntResult(x->i);
    double f = x->f;
    if (std::isnan(f)) return CallOutcome::Raise("cannot convert float NaN to integer");
    if (std::isinf(f)) return CallOutcome::Raise("cannot convert float infinity to integer");
    double r = std::nearbyint(f);  // round half to even
    return IntResult(PyBigInt::FromDouble(r));
  }
  if (!places.is_int() && !places.is_bool()) return Error(kTypeError);
  // float.__round__ clamps ndigits to a Py_ssize_t; int.__round__ needs only its sign and size.
  const int64_t nd = places.is_big_int() ? (places.as_big_int().Sign() < 0
                                                ? std::numeric_limits<int64_t>::min()
                                                : std::numeric_limits<int64_t>::max())
                                         : places.as_int();
  if (x->is_float) {
    double f = x->f;
    if (!std::isfinite(f) || nd > 323) return Result(PyValue::Float(f));
    if (nd < -308) return Result(PyValue::Float(0.0 * f));
    return Result(PyValue::Float(PyRound(f, static_cast<int>(nd))));
  }
  if (nd >= 0) return IntResult(x->i);
  // 10**-nd > 2 * |x| rounds to 0 (half to even at an exact half: q = 0 is even).
  if (static_cast<uint64_t>(-(nd + 1)) >= x->i.DecimalDigits()) return IntResult(0);
  const PyBigInt pow10 = *PyBigInt::Pow(PyBigInt(10), static_cast<uint64_t>(-nd));
  PyBigInt q = PyBigInt::FloorDiv(x->i, pow10);
  const PyBigInt r = PyBigInt::FloorMod(x->i, pow10);
  // Round half to even.
  const int c = (r + r).Compare(pow10);
  if (c > 0 || (c == 0 && PyBigInt::FloorMod(q, PyBigInt(2)).Sign() != 0)) q = q + PyBigInt(1);
  return IntResult(*PyBigInt::Mul(q, pow10));
}

CallOutcome MathApi::Percentage(const std::vector<PyValue>& a) {
  std::optional<Num> part = AsNum(a[0]), whole = AsNum(a[1]);
  if (whole && whole->IsZero()) {
    return Error("Whole value cannot be zero");
  }
  if (!part || !whole) return Error("Both inputs must be numbers");
  const Quotient q = TrueDiv(*part, *whole);
  if (q.overflow != nullptr) return CallOutcome::Raise(q.overflow);
  return Result(PyValue::Float(q.value * 100));
}

namespace {
// Python min()/max() over an iterable; nullopt result on TypeError.
CallOutcome MinMax(const PyValue& numbers, bool want_max, const char* empty_error) {
  if (!numbers.Truthy()) return Error(empty_error);
  std::vector<PyValue> items;
  std::string type_error;
  if (!PyIterate(numbers, &items, &type_error) || items.empty()) {
    return Error("All elements in the list must be numbers");
  }
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    const PyValue& item = items[i];
    const PyValue& cur = items[best];
    std::optional<Num> ni = AsNum(item), nc = AsNum(cur);
    bool better;
    if (ni && nc) {
      better = want_max ? NumLess(*nc, *ni) : NumLess(*ni, *nc);
    } else if ((item.is_str() && cur.is_str()) || (item.is_list() && cur.is_list()) ||
               (item.is_tuple() && cur.is_tuple())) {
      better = want_max ? PyValue::Less(cur, item) : PyValue::Less(item, cur);
    } else {
      return Error("All elements in the list must be numbers");
    }
    if (better) best = i;
  }
  return Result(items[best]);
}
}  // namespace

CallOutcome MathApi::MinValue(const std::vector<PyValue>& a) {
  return MinMax(a[0], false, "Cannot find minimum of an empty list");
}

CallOutcome MathApi::MaxValue(const std::vector<PyValue>& a) {
  return MinMax(a[0], true, "Cannot find maximum of an empty list");
}

CallOutcome MathApi::SumValues(const std::vector<PyValue>& a) {
  std::vector<PyValue> items;
  Num sum{};
  if (auto err = NumbersAndSum(a[0], "Cannot calculate sum of an empty list", &items, &sum)) {
    return *std::move(err);
  }
  return NumResult(sum);
}

std::unique_ptr<ToolApi> NewMathApi() { return std::make_unique<MathApi>(); }

}  // namespace envtune
