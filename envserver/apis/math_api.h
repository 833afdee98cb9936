// BFCL's MathAPI (spec: shared/bfcl/spec/math_api.md), byte-exact with BFCL's Python backend
// (CPython 3.11 numerics, mpmath 1.3.0 for logarithm, the decimal module for square_root).
//
// Stateless: no scenario, no public state (PublicState() is {}), no augmentation.
//
// Values Python would hold but PyValue cannot (ints beyond int64, mpf, mpc, Decimal, complex)
// are returned as a PyValue str holding the executor's final result string (json.dumps text for
// ints, str(dict) text for the others), which CallOutcome::ResultString() passes through as is.
//
// Arbitrary precision: logarithm uses MPFR (correct rounding at mpmath's working precision is
// what mpmath 1.3.0 produces), square_root and ints of any size (PyBigInt) use GMP. Both are
// linked (libmpfr6, libgmp10), so the runtime image carries them.
//
// Python sum() semantics: CPython 3.11 (plain left-to-right double addition once the running sum
// is a float); kNeumaierSum switches to the CPython >= 3.12 compensated summation.
//
// Hostile-input limits (error dict {"error": "..."}):
//   * logarithm precision (mpmath dps) and square_root precision (decimal prec) at most
//     kMaxPrecisionDigits;
//   * add of two str/list values: result at most kMaxConcatBytes bytes / kMaxConcatItems items;
//   * int results beyond 4300 digits raise CPython 3.11's int-to-str limit error (as BFCL would).
#ifndef ENVTUNE_ENVSERVER_APIS_MATH_API_H_
#define ENVTUNE_ENVSERVER_APIS_MATH_API_H_

#include <cstddef>
#include <string_view>
#include <vector>

#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

class MathApi : public ToolApiBase<MathApi> {
 public:
  static constexpr bool kNeumaierSum = false;
  static constexpr int64_t kMaxPrecisionDigits = 10000;
  static constexpr size_t kMaxConcatBytes = size_t{16} << 20;
  static constexpr size_t kMaxConcatItems = 1000000;

  static const MethodTable& Methods();

  std::string_view ClassName() const override { return "MathAPI"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override {}
  PyValue PublicState() const override { return PyValue::Dict(); }

  CallOutcome Logarithm(const std::vector<PyValue>& a);
  CallOutcome Mean(const std::vector<PyValue>& a);
  CallOutcome StandardDeviation(const std::vector<PyValue>& a);
  CallOutcome SiUnitConversion(const std::vector<PyValue>& a);
  CallOutcome ImperialSiConversion(const std::vector<PyValue>& a);
  CallOutcome Add(const std::vector<PyValue>& a);
  CallOutcome Subtract(const std::vector<PyValue>& a);
  CallOutcome Multiply(const std::vector<PyValue>& a);
  CallOutcome Divide(const std::vector<PyValue>& a);
  CallOutcome Power(const std::vector<PyValue>& a);
  CallOutcome SquareRoot(const std::vector<PyValue>& a);
  CallOutcome AbsoluteValue(const std::vector<PyValue>& a);
  CallOutcome RoundNumber(const std::vector<PyValue>& a);
  CallOutcome Percentage(const std::vector<PyValue>& a);
  CallOutcome MinValue(const std::vector<PyValue>& a);
  CallOutcome MaxValue(const std::vector<PyValue>& a);
  CallOutcome SumValues(const std::vector<PyValue>& a);
};

// Exposed for tests: Python's int / int true division (correctly rounded, half-even).
double PyIntTrueDivide(int64_t a, int64_t b);

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_MATH_API_H_
