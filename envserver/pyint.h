// PyBigInt: an arbitrary-precision integer with CPython 3.11's int semantics, on GMP (mpz).
//
// BFCL's sandboxes run on Python ints, which never overflow. PyValue keeps every int that fits
// int64 inline and holds a PyBigInt only beyond that range, so the common case pays nothing.
//
// Contract:
// * Arithmetic is exact. Floor division and modulo round towards negative infinity, bitwise
//   operators act on the infinite two's-complement form, as in Python.
// * Conversions to float are correctly rounded (half to even) as CPython's float(int) and int / int;
//   results beyond the double range are reported, with CPython's OverflowError text as the caller's
//   message (kIntTooLargeForFloat, kIntDivisionTooLargeForFloat).
// * Results wider than kMaxBits are refused by the operations that could build them (Pow, Shl,
//   Mul): CPython would build them (slowly), envtune returns a clear error instead.
// * Thread-compatible: a PyBigInt is a value; distinct values may be used from different threads.
#ifndef ENVTUNE_ENVSERVER_PYINT_H_
#define ENVTUNE_ENVSERVER_PYINT_H_

#include <gmp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace envtune {

// CPython's texts for the failures that involve big ints.
inline constexpr char kIntTooLargeForFloat[] = "int too large to convert to float";
inline constexpr char kIntDivisionTooLargeForFloat[] = "integer division result too large for a float";
inline constexpr char kCannotFitIndex[] = "cannot fit 'int' into an index-sized integer";
// sys.get_int_max_str_digits() default (CPython >= 3.11): str()/repr()/int(str) of an int with
// more decimal digits raise ValueError.
inline constexpr size_t kIntMaxStrDigits = 4300;
inline constexpr char kIntStrLimitError[] =
    "Exceeds the limit (4300 digits) for integer string conversion; use "
    "sys.set_int_max_str_digits() to increase the limit";

class PyBigInt {
 public:
  // Widest result (in bits) an operation may build: about 1.26 million decimal digits.
  static constexpr uint64_t kMaxBits = uint64_t{1} << 22;

  PyBigInt();
  explicit PyBigInt(int64_t v);
  PyBigInt(const PyBigInt& other);
  PyBigInt(PyBigInt&& other) noexcept;
  PyBigInt& operator=(const PyBigInt& other);
  PyBigInt& operator=(PyBigInt&& other) noexcept;
  ~PyBigInt();

  // Digits in `base` (2..36) with an optional leading '-' or '+'; no underscores, no prefix.
  // nullopt when `text` is not such a number.
  static std::optional<PyBigInt> FromString(std::string_view text, int base = 10);
  // The exact integer value of a finite, integral double. REQUIRES: std::isfinite(d).
  static PyBigInt FromDouble(double d);

  bool FitsInt64() const;
  int64_t ToInt64() const;  // REQUIRES: FitsInt64()
  std::string ToString() const;  // decimal, '-' for negatives (Python repr, without the limit)
  size_t DecimalDigits() const;  // digits of |x| in decimal (0 has 1)
  int Sign() const;              // -1, 0 or 1
  uint64_t BitLength() const;    // Python int.bit_length()

  // Python float(x): nullopt when |x| rounds beyond the largest double (OverflowError).
  std::optional<double> ToDouble() const;
  // Python a / b for ints (b != 0): nullopt when the quotient overflows a double.
  static std::optional<double> TrueDivide(const PyBigInt& a, const PyBigInt& b);

  // Exact comparisons. CompareDouble: REQUIRES !isnan(d); -1/0/1 for x <, ==, > d.
  int Compare(const PyBigInt& other) const;
  int CompareDouble(double d) const;
  // A hash equal for equal values (callers combine it with their own for small ints/floats).
  uint64_t Hash() const;

  PyBigInt operator-() const;
  PyBigInt Abs() const;
  PyBigInt Invert() const;  // ~x == -x - 1
  friend PyBigInt operator+(const PyBigInt& a, const PyBigInt& b);
  friend PyBigInt operator-(const PyBigInt& a, const PyBigInt& b);
  // nullopt when the result would exceed kMaxBits.
  static std::optional<PyBigInt> Mul(const PyBigInt& a, const PyBigInt& b);
  // Python // and % (REQUIRES: b != 0).
  static PyBigInt FloorDiv(const PyBigInt& a, const PyBigInt& b);
  static PyBigInt FloorMod(const PyBigInt& a, const PyBigInt& b);
  // a ** e for e >= 0, a << n for n >= 0: nullopt beyond kMaxBits.
  static std::optional<PyBigInt> Pow(const PyBigInt& a, uint64_t e);
  static std::optional<PyBigInt> Shl(const PyBigInt& a, uint64_t n);
  static PyBigInt Shr(const PyBigInt& a, uint64_t n);  // floor(a / 2**n)
  static PyBigInt And(const PyBigInt& a, const PyBigInt& b);
  static PyBigInt Or(const PyBigInt& a, const PyBigInt& b);
  static PyBigInt Xor(const PyBigInt& a, const PyBigInt& b);

  mpz_srcptr raw() const { return z_; }
  mpz_ptr mutable_raw() { return z_; }

 private:
  mpz_t z_;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_PYINT_H_
