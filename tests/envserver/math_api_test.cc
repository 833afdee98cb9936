// Unit tests of the MathAPI sandbox against ../shared/bfcl/spec/math_api.md: every function's
// success and error branches, int/float typing, float formatting, mpmath/decimal renderings and
// Python type-misuse behaviour. Expected strings are the spec's (CPython 3.11 + mpmath 1.3.0).
#include "envserver/apis/math_api.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "envserver/apis/apis.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/envserver/api_test_util.h"

namespace envtune {
namespace {

using namespace api_test;  // NOLINT(build/namespaces)
std::string Call(const std::string& method, std::vector<PyValue> positional) {
  MathApi api;
  PyArgs args;
  args.positional = std::move(positional);
  return api.Invoke(method, args).ResultString();
}

TEST(MathApiTest, FactoryAndState) {
  std::unique_ptr<ToolApi> api = NewMathApi();
  EXPECT_EQ(api->ClassName(), "MathAPI");
  api->LoadScenario(PyValue::Dict({{S("precision"), I(5)}}), true);
  EXPECT_EQ(api->PublicState(), PyValue::Dict());
  EXPECT_EQ(api->MethodNames().size(), 17u);
  EXPECT_EQ(api->MethodNames().front(), "logarithm");
}

TEST(MathApiTest, AbsoluteValue) {
  EXPECT_EQ(Call("absolute_value", {I(-5)}), "{\"result\": 5}");
  EXPECT_EQ(Call("absolute_value", {F(-0.0)}), "{\"result\": 0.0}");
  EXPECT_EQ(Call("absolute_value", {F(-2.5)}), "{\"result\": 2.5}");
  EXPECT_EQ(Call("absolute_value", {B(true)}), "{\"result\": 1}");
  EXPECT_EQ(Call("absolute_value", {S("x")}), "{\"error\": \"Input must be a number\"}");
  EXPECT_EQ(Call("absolute_value", {I(INT64_MIN)}), "{\"result\": 9223372036854775808}");
}

TEST(MathApiTest, AddSubtract) {
  EXPECT_EQ(Call("add", {I(2), I(3)}), "{\"result\": 5}");
  EXPECT_EQ(Call("add", {I(2), F(3)}), "{\"result\": 5.0}");
  EXPECT_EQ(Call("add", {F(0.1), F(0.2)}), "{\"result\": 0.30000000000000004}");
  EXPECT_EQ(Call("add", {S("a"), S("b")}), "{\"result\": \"ab\"}");
  EXPECT_EQ(Call("add", {L({I(1)}), L({I(2)})}), "{\"result\": [1, 2]}");
  EXPECT_EQ(Call("add", {S("a"), I(1)}), "{\"error\": \"Both inputs must be numbers\"}");
  EXPECT_EQ(Call("add", {I(INT64_MAX), I(1)}), "{\"result\": 9223372036854775808}");
  EXPECT_EQ(Call("subtract", {I(2), I(3)}), "{\"result\": -1}");
  EXPECT_EQ(Call("subtract", {F(1e16), I(1)}), "{\"result\": 1e+16}");
  EXPECT_EQ(Call("subtract", {S("a"), S("b")}), "{\"error\": \"Both inputs must be numbers\"}");
}

TEST(MathApiTest, MultiplyDivide) {
  EXPECT_EQ(Call("multiply", {I(6), I(7)}), "{\"result\": 42}");
  EXPECT_EQ(Call("multiply", {I(6), F(0.5)}), "{\"result\": 3.0}");
  EXPECT_EQ(Call("multiply", {S("a"), I(3)}), "{\"error\": \"Both inputs must be numbers\"}");
  EXPECT_EQ(Call("multiply", {F(1e308), F(10)}), "{\"result\": Infinity}");
  EXPECT_EQ(Call("multiply", {I(INT64_MAX), I(INT64_MAX)}),
            "{\"result\": 85070591730234615847396907784232501249}");
  EXPECT_EQ(Call("divide", {I(7), I(2)}), "{\"result\": 3.5}");
  EXPECT_EQ(Call("divide", {I(6), I(3)}), "{\"result\": 2.0}");
  EXPECT_EQ(Call("divide", {I(1), I(0)}), "{\"error\": \"Cannot divide by zero\"}");
  EXPECT_EQ(Call("divide", {I(1), F(-0.0)}), "{\"error\": \"Cannot divide by zero\"}");
  EXPECT_EQ(Call("divide", {S("a"), B(false)}), "{\"error\": \"Cannot divide by zero\"}");
  EXPECT_EQ(Call("divide", {S("a"), I(2)}), "{\"error\": \"Both inputs must be numbers\"}");
  EXPECT_EQ(Call("divide", {I(0), I(-5)}), "{\"result\": -0.0}");
  // Correctly rounded int / int beyond 2**53 (not double(a) / double(b)).
  EXPECT_EQ(PyIntTrueDivide(9007199254740993, 1), 9007199254740992.0);
  EXPECT_EQ(PyIntTrueDivide(9007199254740995, 1), 9007199254740996.0);
  EXPECT_EQ(Call("divide", {I(9007199254740993), I(3)}), "{\"result\": 3002399751580331.0}");
}

TEST(MathApiTest, ImperialSiConversion) {
  EXPECT_EQ(Call("imperial_si_conversion", {I(0), S("cm"), S("in")}), "{\"result\": 0.0}");
  EXPECT_EQ(Call("imperial_si_conversion", {I(100), S("celsius"), S("fahrenheit")}),
            "{\"result\": 212.0}");
  EXPECT_EQ(Call("imperial_si_conversion", {I(10), S("km"), S("miles")}),
            "{\"result\": 6.21371}");
  EXPECT_EQ(Call("imperial_si_conversion", {I(212), S("fahrenheit"), S("celsius")}),
            "{\"result\": 100.0}");
  EXPECT_EQ(Call("imperial_si_conversion", {I(5), S("foo"), S("foo")}), "{\"result\": 5}");
  EXPECT_EQ(Call("imperial_si_conversion", {I(5), S("m"), S("km")}),
            "{\"error\": \"Conversion from 'm' to 'km' is not supported\"}");
  EXPECT_EQ(Call("imperial_si_conversion", {S("5"), S("m"), S("ft")}),
            "{\"error\": \"Value must be a number\"}");
}

TEST(MathApiTest, SiUnitConversion) {
  EXPECT_EQ(Call("si_unit_conversion", {I(5), S("km"), S("m")}), "{\"result\": 5000.0}");
  EXPECT_EQ(Call("si_unit_conversion", {I(1), S("m"), S("nm")}),
            "{\"result\": 999999999.9999999}");
  EXPECT_EQ(Call("si_unit_conversion", {I(1), S("um"), S("m")}), "{\"result\": 1e-06}");
  EXPECT_EQ(Call("si_unit_conversion", {I(3), S("m"), S("m")}), "{\"result\": 3.0}");
  EXPECT_EQ(Call("si_unit_conversion", {I(3), S("m"), S("ft")}),
            "{\"error\": \"Conversion from 'm' to 'ft' is not supported\"}");
  EXPECT_EQ(Call("si_unit_conversion", {PyValue(), S("m"), S("m")}),
            "{\"error\": \"Value must be a number\"}");
  EXPECT_EQ(Call("si_unit_conversion", {I(3), L({}), S("m")}),
            "Error during execution: unhashable type: 'list'");
}

TEST(MathApiTest, Logarithm) {
  EXPECT_EQ(Call("logarithm", {F(36.0), F(6.0), I(4)}), "{'result': mpf('2.0')}");
  EXPECT_EQ(Call("logarithm", {I(20), I(10), I(2)}), "{'result': mpf('1.3027')}");
  EXPECT_EQ(Call("logarithm", {F(630.0), I(10), I(5)}), "{'result': mpf('2.7993393')}");
  EXPECT_EQ(Call("logarithm", {F(980.0), I(20), I(10)}), "{'result': mpf('2.299121531134')}");
  EXPECT_EQ(Call("logarithm", {I(1000), I(10), I(15)}),
            "{'result': mpf('2.9999999999999996')}");
  EXPECT_EQ(Call("logarithm", {I(8), I(2), I(3)}), "{'result': mpf('3.00049')}");
  EXPECT_EQ(Call("logarithm", {I(0), I(10), I(5)}), "{'result': mpf('-inf')}");
  EXPECT_EQ(Call("logarithm", {I(-1), I(10), I(5)}),
            "{'result': mpc(real='0.0', imag='1.3643761')}");
  EXPECT_EQ(Call("logarithm", {I(10), I(0), I(5)}), "{'result': mpf('0.0')}");
  EXPECT_EQ(Call("logarithm", {I(10), I(1), I(5)}), "{\"error\": \"\"}");
  EXPECT_EQ(Call("logarithm", {I(10), I(2), PyValue()}),
            "{\"error\": \"int() argument must be a string, a bytes-like object or a real "
            "number, not 'NoneType'\"}");
  EXPECT_EQ(Call("logarithm", {I(10), I(2), S("abc")}),
            "{\"error\": \"invalid literal for int() with base 10: 'abc'\"}");
  EXPECT_EQ(Call("logarithm", {PyValue(), I(2), I(5)}),
            "{\"error\": \"cannot create mpf from None\"}");
  EXPECT_EQ(Call("logarithm", {L({I(1)}), I(2), I(5)}),
            "{\"error\": \"cannot create mpf from [1]\"}");
  EXPECT_EQ(Call("logarithm", {S("abc"), I(2), I(5)}),
            "{\"error\": \"cannot create mpf from 'abc'\"}");
  EXPECT_EQ(Call("logarithm", {S("100"), I(10), S("5")}), "{'result': mpf('2.0')}");
  EXPECT_THAT(Call("logarithm", {I(10), I(2), I(1000000)}), ::testing::HasSubstr("error"));
}

TEST(MathApiTest, MeanStdSum) {
  EXPECT_EQ(Call("mean", {L({I(37)})}), "{\"result\": 37.0}");
  EXPECT_EQ(Call("mean", {L({I(3), I(16), I(60)})}), "{\"result\": 26.333333333333332}");
  EXPECT_EQ(Call("mean", {L({F(0.1), F(0.2), F(0.3)})}), "{\"result\": 0.20000000000000004}");
  EXPECT_EQ(Call("mean", {L({})}), "{\"error\": \"Cannot calculate mean of an empty list\"}");
  EXPECT_EQ(Call("mean", {L({I(1), S("a")})}),
            "{\"error\": \"All elements in the list must be numbers\"}");
  EXPECT_EQ(Call("mean", {I(5)}), "{\"error\": \"All elements in the list must be numbers\"}");
  EXPECT_EQ(Call("standard_deviation", {L({I(1)})}), "{\"result\": 0.0}");
  EXPECT_EQ(Call("standard_deviation", {L({I(2), I(4), I(4), I(4), I(5), I(5), I(7), I(9)})}),
            "{\"result\": 2.0}");
  EXPECT_EQ(Call("standard_deviation", {L({I(100), I(95), I(85), I(90), I(88), I(92)})}),
            "{\"result\": 4.85340659285368}");
  EXPECT_EQ(Call("standard_deviation", {PyValue()}),
            "{\"error\": \"Cannot calculate standard deviation of an empty list\"}");
  EXPECT_EQ(Call("standard_deviation", {L({F(1e200), F(-1e200)})}),
            "Error during execution: (34, 'Numerical result out of range')");
  EXPECT_EQ(Call("sum_values", {L({I(1), I(2), I(3)})}), "{\"result\": 6}");
  EXPECT_EQ(Call("sum_values", {L({F(0.1), F(0.2), F(0.3)})}),
            "{\"result\": 0.6000000000000001}");
  EXPECT_EQ(Call("sum_values", {L({})}), "{\"error\": \"Cannot calculate sum of an empty list\"}");
  EXPECT_EQ(Call("sum_values", {L({I(1), L({})})}),
            "{\"error\": \"All elements in the list must be numbers\"}");
}

TEST(MathApiTest, MinMax) {
  EXPECT_EQ(Call("max_value", {L({I(1), I(5), F(5.0)})}), "{\"result\": 5}");
  EXPECT_EQ(Call("min_value", {L({I(3), F(1.0), I(1)})}), "{\"result\": 1.0}");
  EXPECT_EQ(Call("max_value", {L({S("a"), S("b")})}), "{\"result\": \"b\"}");
  EXPECT_EQ(Call("max_value", {L({S("a"), I(1)})}),
            "{\"error\": \"All elements in the list must be numbers\"}");
  EXPECT_EQ(Call("max_value", {L({})}), "{\"error\": \"Cannot find maximum of an empty list\"}");
  EXPECT_EQ(Call("min_value", {S("")}), "{\"error\": \"Cannot find minimum of an empty list\"}");
  EXPECT_EQ(Call("max_value", {I(7)}), "{\"error\": \"All elements in the list must be numbers\"}");
  EXPECT_EQ(Call("max_value", {S("abc")}), "{\"result\": \"c\"}");
}

TEST(MathApiTest, Power) {
  EXPECT_EQ(Call("power", {I(2), I(10)}), "{\"result\": 1024}");
  EXPECT_EQ(Call("power", {I(2), I(100)}), "{\"result\": 1267650600228229401496703205376}");
  EXPECT_EQ(Call("power", {I(2), I(-1)}), "{\"result\": 0.5}");
  EXPECT_EQ(Call("power", {F(2), I(3)}), "{\"result\": 8.0}");
  EXPECT_EQ(Call("power", {I(-8), F(1.0 / 3)}),
            "{'result': (1.0000000000000002+1.7320508075688772j)}");
  EXPECT_EQ(Call("power", {I(0), I(-1)}),
            "Error during execution: 0.0 cannot be raised to a negative power");
  EXPECT_EQ(Call("power", {F(10), F(400)}),
            "Error during execution: (34, 'Numerical result out of range')");
  EXPECT_EQ(Call("power", {S("a"), I(2)}), "{\"error\": \"Both inputs must be numbers\"}");
  EXPECT_EQ(Call("power", {I(10), I(5000)}),
            "Error during execution: Exceeds the limit (4300 digits) for integer string "
            "conversion; use sys.set_int_max_str_digits() to increase the limit");
  EXPECT_EQ(Call("power", {I(10), I(1000000000000)}),
            "Error during execution: Exceeds the limit (4300 digits) for integer string "
            "conversion; use sys.set_int_max_str_digits() to increase the limit");
  EXPECT_EQ(Call("power", {I(-1), I(1000000000001)}), "{\"result\": -1}");
}

TEST(MathApiTest, RoundNumber) {
  EXPECT_EQ(Call("round_number", {F(2.5)}), "{\"result\": 2.0}");
  EXPECT_EQ(Call("round_number", {F(3.5)}), "{\"result\": 4.0}");
  EXPECT_EQ(Call("round_number", {F(2.675), I(2)}), "{\"result\": 2.67}");
  EXPECT_EQ(Call("round_number", {F(0.125), I(2)}), "{\"result\": 0.12}");
  EXPECT_EQ(Call("round_number", {F(1234.5), I(-2)}), "{\"result\": 1200.0}");
  EXPECT_EQ(Call("round_number", {I(5)}), "{\"result\": 5}");
  EXPECT_EQ(Call("round_number", {I(5), I(2)}), "{\"result\": 5}");
  EXPECT_EQ(Call("round_number", {I(1234), I(-2)}), "{\"result\": 1200}");
  EXPECT_EQ(Call("round_number", {I(1250), I(-2)}), "{\"result\": 1200}");
  EXPECT_EQ(Call("round_number", {I(1350), I(-2)}), "{\"result\": 1400}");
  EXPECT_EQ(Call("round_number", {F(1.23456), PyValue()}), "{\"result\": 1}");
  EXPECT_EQ(Call("round_number", {F(1.5), F(1.0)}),
            "{\"error\": \"First input must be a number, second input must be an integer\"}");
  EXPECT_EQ(Call("round_number", {S("1.5")}),
            "{\"error\": \"First input must be a number, second input must be an integer\"}");
}

TEST(MathApiTest, Percentage) {
  EXPECT_EQ(Call("percentage", {I(1), I(3)}), "{\"result\": 33.33333333333333}");
  EXPECT_EQ(Call("percentage", {I(50), I(200)}), "{\"result\": 25.0}");
  EXPECT_EQ(Call("percentage", {I(50), F(0.0)}), "{\"error\": \"Whole value cannot be zero\"}");
  EXPECT_EQ(Call("percentage", {S("a"), I(2)}), "{\"error\": \"Both inputs must be numbers\"}");
}

TEST(MathApiTest, SquareRoot) {
  EXPECT_EQ(Call("square_root", {I(25), I(5)}), "{'result': Decimal('5')}");
  EXPECT_EQ(Call("square_root", {I(2), I(5)}), "{'result': Decimal('1.4142')}");
  EXPECT_EQ(Call("square_root", {F(2.0), I(3)}), "{'result': Decimal('1.41')}");
  EXPECT_EQ(Call("square_root", {F(0.04), I(5)}), "{'result': Decimal('0.20000')}");
  EXPECT_EQ(Call("square_root", {I(100), I(2)}), "{'result': Decimal('10')}");
  EXPECT_EQ(Call("square_root", {I(100), I(1)}), "{'result': Decimal('1E+1')}");
  EXPECT_EQ(Call("square_root", {F(1e20), I(3)}), "{'result': Decimal('1.00E+10')}");
  EXPECT_EQ(Call("square_root", {I(0), I(5)}), "{'result': Decimal('0')}");
  EXPECT_EQ(Call("square_root", {F(0.0001), I(3)}), "{'result': Decimal('0.0100')}");
  EXPECT_EQ(Call("square_root", {F(-0.0), I(5)}), "{'result': Decimal('-0')}");
  EXPECT_EQ(Call("square_root", {I(-4), I(5)}),
            "{\"error\": \"Cannot calculate square root of a negative number\"}");
  EXPECT_EQ(Call("square_root", {I(4), I(0)}),
            "Error during execution: valid range for prec is [1, MAX_PREC]");
  EXPECT_EQ(Call("square_root", {S("4"), I(5)}),
            "{\"error\": \"Input must be a number or computation resulted in an invalid "
            "operation\"}");
  EXPECT_EQ(Call("square_root", {I(4), F(5.0)}),
            "{\"error\": \"Input must be a number or computation resulted in an invalid "
            "operation\"}");
}

TEST(MathApiTest, ArgumentBinding) {
  MathApi api;
  PyArgs args;
  args.positional = {I(1)};
  EXPECT_EQ(api.Invoke("add", args).ResultString(),
            "Error during execution: MathAPI.add() missing 1 required positional argument: 'b'");
  args.positional = {I(1), I(2), I(3), I(4)};
  EXPECT_EQ(api.Invoke("round_number", args).ResultString(),
            "Error during execution: MathAPI.round_number() takes from 2 to 3 positional "
            "arguments but 5 were given");
}

}  // namespace
}  // namespace envtune
