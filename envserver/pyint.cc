// PyBigInt on GMP (see pyint.h).
#include "envserver/pyint.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace envtune {
namespace {

constexpr int kMantDig = 53;    // DBL_MANT_DIG
constexpr int kMinExp = -1021;  // DBL_MIN_EXP
constexpr int kMaxExp = 1024;   // DBL_MAX_EXP

// |a| / |b| correctly rounded to a double, as CPython's long_true_divide (Objects/longobject.c)
// after its fast path. nullopt on overflow. REQUIRES: b != 0, a != 0.
std::optional<double> DivideMagnitudes(mpz_srcptr a, mpz_srcptr b) {
  const int64_t la = static_cast<int64_t>(mpz_sizeinbase(a, 2));
  const int64_t lb = static_cast<int64_t>(mpz_sizeinbase(b, 2));
  const int64_t diff = la - lb;
  if (diff > kMaxExp) return std::nullopt;
  if (diff < kMinExp - kMantDig - 1) return 0.0;
  const int64_t shift = std::max<int64_t>(diff, kMinExp) - kMantDig - 2;
  mpz_t x, babs, rem;
  mpz_inits(x, babs, rem, nullptr);
  mpz_abs(x, a);
  mpz_abs(babs, b);
  bool inexact = false;
  if (shift <= 0) {
    mpz_mul_2exp(x, x, static_cast<mp_bitcnt_t>(-shift));
  } else {
    inexact = mpz_scan1(x, 0) < static_cast<mp_bitcnt_t>(shift);
    mpz_fdiv_q_2exp(x, x, static_cast<mp_bitcnt_t>(shift));
  }
  mpz_fdiv_qr(x, rem, x, babs);
  inexact = inexact || mpz_sgn(rem) != 0;
  const int64_t x_size = static_cast<int64_t>(mpz_sizeinbase(x, 2));
  const int64_t extra_bits = std::max<int64_t>(x_size, kMinExp - shift) - kMantDig;
  // x has at most kMantDig + 3 bits here, so it fits a uint64_t.
  uint64_t low = mpz_get_ui(x);
  mpz_clears(x, babs, rem, nullptr);
  const uint64_t mask = uint64_t{1} << (extra_bits - 1);
  low |= inexact ? 1u : 0u;
  if ((low & mask) && (low & (3 * mask - 1))) low += mask;
  low &= ~(2 * mask - 1);
  const double dx = static_cast<double>(low);  // exact: at most kMantDig significant bits
  if (shift + x_size >= kMaxExp &&
      (shift + x_size > kMaxExp || dx == std::ldexp(1.0, static_cast<int>(x_size)))) {
    return std::nullopt;
  }
  return std::ldexp(dx, static_cast<int>(shift));
}

}  // namespace

PyBigInt::PyBigInt() { mpz_init(z_); }
static_assert(sizeof(long) == sizeof(int64_t), "GMP's si/ui functions must take 64-bit values (LP64)");

PyBigInt::PyBigInt(int64_t v) { mpz_init_set_si(z_, static_cast<long>(v)); }
PyBigInt::PyBigInt(const PyBigInt& other) { mpz_init_set(z_, other.z_); }
PyBigInt::PyBigInt(PyBigInt&& other) noexcept {
  mpz_init(z_);
  mpz_swap(z_, other.z_);
}
PyBigInt& PyBigInt::operator=(const PyBigInt& other) {
  if (this != &other) mpz_set(z_, other.z_);
  return *this;
}
PyBigInt& PyBigInt::operator=(PyBigInt&& other) noexcept {
  if (this != &other) mpz_swap(z_, other.z_);
  return *this;
}
PyBigInt::~PyBigInt() { mpz_clear(z_); }

std::optional<PyBigInt> PyBigInt::FromString(std::string_view text, int base) {
  size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) neg = text[i++] == '-';
  if (i == text.size()) return std::nullopt;
  std::string digits(text.substr(i));
  for (char c : digits) {
    const int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'a' && c <= 'z') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'Z') ? c - 'A' + 10
                                           : 99;
    if (d >= base) return std::nullopt;
  }
  PyBigInt r;
  if (mpz_set_str(r.z_, digits.c_str(), base) != 0) return std::nullopt;
  if (neg) mpz_neg(r.z_, r.z_);
  return r;
}

PyBigInt PyBigInt::FromDouble(double d) {
  PyBigInt r;
  mpz_set_d(r.z_, d);  // exact for an integral double
  return r;
}

bool PyBigInt::FitsInt64() const { return mpz_fits_slong_p(z_) != 0; }
int64_t PyBigInt::ToInt64() const { return mpz_get_si(z_); }

std::string PyBigInt::ToString() const {
  std::string buf(mpz_sizeinbase(z_, 10) + 2, '\0');
  mpz_get_str(buf.data(), 10, z_);
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

size_t PyBigInt::DecimalDigits() const {
  return ToString().size() - (Sign() < 0 ? 1 : 0);
}

int PyBigInt::Sign() const { return mpz_sgn(z_); }

uint64_t PyBigInt::BitLength() const {
  return Sign() == 0 ? 0 : static_cast<uint64_t>(mpz_sizeinbase(z_, 2));
}

std::optional<double> PyBigInt::ToDouble() const {
  if (Sign() == 0) return 0.0;
  if (BitLength() <= kMantDig) return mpz_get_d(z_);  // exact
  mpz_t one;
  mpz_init_set_ui(one, 1);
  std::optional<double> r = DivideMagnitudes(z_, one);
  mpz_clear(one);
  if (r && Sign() < 0) *r = -*r;
  return r;
}

std::optional<double> PyBigInt::TrueDivide(const PyBigInt& a, const PyBigInt& b) {
  const bool negate = (a.Sign() < 0) != (b.Sign() < 0);
  if (a.Sign() == 0) return negate ? -0.0 : 0.0;
  std::optional<double> r;
  if (a.BitLength() <= kMantDig && b.BitLength() <= kMantDig) {
    r = std::fabs(mpz_get_d(a.z_)) / std::fabs(mpz_get_d(b.z_));  // both exact: one rounding
  } else {
    r = DivideMagnitudes(a.z_, b.z_);
  }
  if (r && negate) *r = -*r;
  return r;
}

int PyBigInt::Compare(const PyBigInt& other) const {
  const int c = mpz_cmp(z_, other.z_);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

int PyBigInt::CompareDouble(double d) const {
  const int c = mpz_cmp_d(z_, d);  // exact, infinities allowed
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

uint64_t PyBigInt::Hash() const {
  uint64_t h = 0xCBF29CE484222325ull ^ static_cast<uint64_t>(Sign() + 1);
  const size_t n = mpz_size(z_);
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<uint64_t>(mpz_getlimbn(z_, i));
    h *= 0x100000001B3ull;
  }
  return h;
}

PyBigInt PyBigInt::operator-() const {
  PyBigInt r;
  mpz_neg(r.z_, z_);
  return r;
}
PyBigInt PyBigInt::Abs() const {
  PyBigInt r;
  mpz_abs(r.z_, z_);
  return r;
}
PyBigInt PyBigInt::Invert() const {
  PyBigInt r;
  mpz_com(r.z_, z_);
  return r;
}
PyBigInt operator+(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_add(r.z_, a.z_, b.z_);
  return r;
}
PyBigInt operator-(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_sub(r.z_, a.z_, b.z_);
  return r;
}
std::optional<PyBigInt> PyBigInt::Mul(const PyBigInt& a, const PyBigInt& b) {
  if (a.BitLength() + b.BitLength() > kMaxBits) return std::nullopt;
  PyBigInt r;
  mpz_mul(r.z_, a.z_, b.z_);
  return r;
}
PyBigInt PyBigInt::FloorDiv(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_fdiv_q(r.z_, a.z_, b.z_);
  return r;
}
PyBigInt PyBigInt::FloorMod(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_fdiv_r(r.z_, a.z_, b.z_);
  return r;
}
std::optional<PyBigInt> PyBigInt::Pow(const PyBigInt& a, uint64_t e) {
  PyBigInt r;
  if (e == 0) {
    mpz_set_ui(r.z_, 1);
    return r;
  }
  const uint64_t bits = a.BitLength();
  // |a| <= 1 never grows; otherwise the result has more than (bits - 1) * e bits.
  if (mpz_cmpabs_ui(a.z_, 1) > 0 && (e > kMaxBits || (bits - 1) * e > kMaxBits)) return std::nullopt;
  mpz_pow_ui(r.z_, a.z_, static_cast<unsigned long>(e));
  if (r.BitLength() > kMaxBits) return std::nullopt;
  return r;
}
std::optional<PyBigInt> PyBigInt::Shl(const PyBigInt& a, uint64_t n) {
  PyBigInt r;
  if (a.Sign() == 0) return r;
  if (n > kMaxBits || a.BitLength() + n > kMaxBits) return std::nullopt;
  mpz_mul_2exp(r.z_, a.z_, static_cast<mp_bitcnt_t>(n));
  return r;
}
PyBigInt PyBigInt::Shr(const PyBigInt& a, uint64_t n) {
  PyBigInt r;
  if (n >= a.BitLength()) {
    mpz_set_si(r.z_, a.Sign() < 0 ? -1 : 0);
    return r;
  }
  mpz_fdiv_q_2exp(r.z_, a.z_, static_cast<mp_bitcnt_t>(n));
  return r;
}
PyBigInt PyBigInt::And(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_and(r.z_, a.z_, b.z_);
  return r;
}
PyBigInt PyBigInt::Or(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_ior(r.z_, a.z_, b.z_);
  return r;
}
PyBigInt PyBigInt::Xor(const PyBigInt& a, const PyBigInt& b) {
  PyBigInt r;
  mpz_xor(r.z_, a.z_, b.z_);
  return r;
}

}  // namespace envtune
