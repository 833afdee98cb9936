// Python ints beyond 64 bits keep their exact value through decoding, execution, rendering and the
// checker's state comparison, as in BFCL (issue 18).
//
// Expected strings were produced once with CPython 3.11.7 and BFCL's own code (bfcl-eval
// 2026.3.23 in .venv-bfcl, see bench/bfcl/setup_venv.sh): `eval(expr)` / `repr(...)` for the
// literal arithmetic, `multi_turn_utils.execute_multi_turn_func_call(calls, {}, ["MathAPI"], ...)`
// for the MathAPI results, `default_decode_execute_prompting` / `convert_to_function_call` for the
// decoders and `multi_turn_checker` on multi_turn_base_4's initial config for the verdicts. The
// test itself needs no Python.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "envserver/checker.h"
#include "envserver/decode.h"
#include "envserver/executor.h"
#include "envserver/pyint.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"
#include "envserver/task_catalog.h"
#include "gtest/gtest.h"
#include "tests/envserver/test_env.h"

namespace envtune {
namespace {

PyBigInt Big(const char* decimal) { return *PyBigInt::FromString(decimal); }

TEST(PyBigIntTest, ConversionsToFloatAreCorrectlyRounded) {
  // float(2**53 + 1) rounds half to even; float(2**53 + 3) rounds up.
  EXPECT_EQ(*Big("9007199254740993").ToDouble(), 9007199254740992.0);
  EXPECT_EQ(*Big("9007199254740995").ToDouble(), 9007199254740996.0);
  EXPECT_EQ(*Big("-18446744073709551617").ToDouble(), -18446744073709551616.0);
  // The largest double and the first int that rounds past it (2**1024 - 2**970).
  PyBigInt max_double = PyBigInt::FromDouble(std::numeric_limits<double>::max());
  EXPECT_EQ(*max_double.ToDouble(), std::numeric_limits<double>::max());
  PyBigInt too_big = max_double + *PyBigInt::Pow(PyBigInt(2), 970);
  EXPECT_FALSE(too_big.ToDouble().has_value());
  EXPECT_FALSE(PyBigInt::Pow(PyBigInt(10), 400)->ToDouble().has_value());
  // True division: 10**30 / 7, 1 / 10**400 (underflows to 0.0), 0 / -5 (-0.0), overflow.
  EXPECT_EQ(*PyBigInt::TrueDivide(*PyBigInt::Pow(PyBigInt(10), 30), PyBigInt(7)),
            1.4285714285714285e+29);
  EXPECT_EQ(*PyBigInt::TrueDivide(PyBigInt(1), *PyBigInt::Pow(PyBigInt(10), 400)), 0.0);
  EXPECT_TRUE(std::signbit(*PyBigInt::TrueDivide(PyBigInt(0), PyBigInt(-5))));
  EXPECT_FALSE(PyBigInt::TrueDivide(*PyBigInt::Pow(PyBigInt(10), 400), PyBigInt(3)).has_value());
  // A subnormal quotient: 1 / 2**1074 is the smallest double, 1 / 2**1075 ties to even (0).
  EXPECT_EQ(*PyBigInt::TrueDivide(PyBigInt(1), *PyBigInt::Pow(PyBigInt(2), 1074)),
            std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(*PyBigInt::TrueDivide(PyBigInt(1), *PyBigInt::Pow(PyBigInt(2), 1075)), 0.0);
  EXPECT_EQ(*PyBigInt::TrueDivide(PyBigInt(3), *PyBigInt::Pow(PyBigInt(2), 1076)),
            std::numeric_limits<double>::denorm_min());
}

TEST(PyBigIntTest, ResultsBeyondTheBoundAreRefusedNotBuilt) {
  EXPECT_FALSE(PyBigInt::Pow(PyBigInt(10), 10000000).has_value());
  EXPECT_FALSE(PyBigInt::Shl(PyBigInt(1), uint64_t{1} << 40).has_value());
  EXPECT_TRUE(PyBigInt::Pow(PyBigInt(-1), uint64_t{1} << 62).has_value());
}

TEST(PyValueBigIntTest, JsonAndReprKeepEveryDigit) {
  absl::StatusOr<PyValue> v =
      PyValue::FromJson(R"({"a": 123456789012345678901234567890, "b": -18446744073709551617,)"
                        R"( "c": 18446744073709551615, "d": 1.5})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->dict().Find("a")->is_big_int());
  EXPECT_TRUE(v->dict().Find("c")->is_big_int());  // beyond int64, within uint64
  EXPECT_EQ(v->JsonDumps(),
            R"({"a": 123456789012345678901234567890, "b": -18446744073709551617, )"
            R"("c": 18446744073709551615, "d": 1.5})");
  EXPECT_EQ(v->Repr(),
            "{'a': 123456789012345678901234567890, 'b': -18446744073709551617, "
            "'c': 18446744073709551615, 'd': 1.5}");
  // Beyond the double range (309+ digits) and up to CPython's 4300-digit limit, still exact.
  const std::string digits4300 = "-" + std::string(4300, '9');
  absl::StatusOr<PyValue> long_int = PyValue::FromJson("[" + digits4300 + ", 1e400, 0.1]");
  ASSERT_TRUE(long_int.ok()) << long_int.status();
  EXPECT_EQ(long_int->JsonDumps(), "[" + digits4300 + ", Infinity, 0.1]");  // json.loads: inf
  // json.loads refuses more than 4300 digits (CPython's ValueError text), however many.
  for (size_t n : {4301, 6000}) {
    absl::StatusOr<PyValue> huge = PyValue::FromJson(std::string(n, '7'));
    ASSERT_FALSE(huge.ok());
    EXPECT_EQ(huge.status().message(),
              absl::StrCat("Exceeds the limit (4300 digits) for integer string conversion: "
                           "value has ", n, " digits; use sys.set_int_max_str_digits() to "
                           "increase the limit"));
  }
}

TEST(PyValueBigIntTest, PythonEqualityHashAndOrder) {
  const PyValue two64 = PyValue::Int(Big("18446744073709551616"));
  EXPECT_EQ(two64, PyValue::Float(18446744073709551616.0));  // 2**64 == 2.0**64
  EXPECT_NE(PyValue::Int(Big("18446744073709551617")), PyValue::Float(18446744073709551616.0));
  EXPECT_NE(PyValue::Int(*PyBigInt::Pow(PyBigInt(10), 400)), PyValue::Float(1e300));
  EXPECT_TRUE(PyValue::Less(PyValue::Float(1e300), PyValue::Int(*PyBigInt::Pow(PyBigInt(10), 400))));
  EXPECT_TRUE(PyValue::Less(PyValue::Int(INT64_MAX), two64));
  EXPECT_TRUE(PyValue::Less(PyValue::Int(Big("-18446744073709551616")), PyValue::Int(INT64_MIN)));
  // Equal keys collide in a dict, indexed (large) or not.
  for (int extra : {0, 40}) {
    PyDict d;
    for (int i = 0; i < extra; ++i) d.Set(PyValue::Int(i), PyValue::None());
    d.Set(two64, PyValue::Str("int"));
    d.Set(PyValue::Float(18446744073709551616.0), PyValue::Str("float"));
    EXPECT_EQ(d.size(), static_cast<size_t>(extra + 1));
    EXPECT_EQ(*d.Find(two64), PyValue::Str("float"));
  }
  // A value outside int64 is always stored as a big int, inside never.
  EXPECT_FALSE(PyValue::Int(Big("-9223372036854775808")).is_big_int());
  EXPECT_TRUE(PyValue::Int(Big("9223372036854775808")).is_big_int());
}

TEST(PyLiteralBigIntTest, ArithmeticMatchesCPython) {
  struct Case {
    const char* expr;
    const char* repr;  // repr(eval(expr)), or the exception's str()
    bool ok;
  };
  const Case cases[] = {
      {"2**64", "18446744073709551616", true},
      {"-(2**63)", "-9223372036854775808", true},
      {"9223372036854775807 + 1", "9223372036854775808", true},
      {"-9223372036854775808 - 1", "-9223372036854775809", true},
      {"3037000500 * 3037000500", "9223372037000250000", true},
      {"-9223372036854775808 // -1", "9223372036854775808", true},
      {"10**30 // -7", "-142857142857142857142857142858", true},
      {"-(10**30) % 7", "6", true},
      {"~(10**30)", "-1000000000000000000000000000001", true},
      {"(2**70) >> 3", "147573952589676412928", true},
      {"-(2**70) >> 200", "-1", true},
      {"(-(2**70)) & 0xFFFF", "0", true},
      {"2**70 | 1", "1180591620717411303425", true},
      {"2**70 ^ 2**70", "0", true},
      {"1 << 64", "18446744073709551616", true},
      {"0xFFFFFFFFFFFFFFFFFFFF", "1208925819614629174706175", true},
      {"0o7777777777777777777777777", "37778931862957161709567", true},
      {"1/10**400", "0.0", true},
      {"10**30 * 1.5", "1.5000000000000002e+30", true},
      {"(2**53 + 1) / 1", "9007199254740992.0", true},
      {"10**30 / 7", "1.4285714285714285e+29", true},
      {"(10**30) ** 2", "1000000000000000000000000000000000000000000000000000000000000", true},
      {"(-2) ** 65", "-36893488147419103232", true},
      {"(10**30) ** -1", "9.999999999999999e-31", true},
      {"[2**64, -(2**64)]", "[18446744073709551616, -18446744073709551616]", true},
      {"{2**64: 'a'}", "{18446744073709551616: 'a'}", true},
      {"-123456789012345678901234567890", "-123456789012345678901234567890", true},
      {"(2**64) - (2**64)", "0", true},
      {"1.0 + 10**400", "int too large to convert to float", false},
      {"10**400 / 3", "integer division result too large for a float", false},
      {"'ab' * 10**30", "cannot fit 'int' into an index-sized integer", false},
      {"[1] * -(10**30)", "cannot fit 'int' into an index-sized integer", false},
      {"(10**400) ** -1", "int too large to convert to float", false},
      {"1 << -(2**70)", "negative shift count", false},
      {"2**70 // 0", "integer division or modulo by zero", false},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PyNodePtr> tree = ParsePyExpression(c.expr);
    ASSERT_TRUE(tree.ok()) << c.expr << ": " << tree.status();
    absl::StatusOr<PyValue> v = EvalPyLiteral(**tree);
    if (c.ok) {
      ASSERT_TRUE(v.ok()) << c.expr << ": " << v.status();
      EXPECT_EQ(v->Repr(), c.repr) << c.expr;
    } else {
      ASSERT_FALSE(v.ok()) << c.expr << " gave " << v->Repr();
      EXPECT_EQ(v.status().message(), c.repr) << c.expr;
    }
  }
  // CPython's SyntaxError for a decimal literal over 4300 digits; hex has no limit.
  absl::StatusOr<PyNodePtr> long_decimal = ParsePyExpression(std::string(4301, '1'));
  ASSERT_FALSE(long_decimal.ok());
  EXPECT_EQ(long_decimal.status().message(),
            "Exceeds the limit (4300 digits) for integer string conversion: value has 4301 "
            "digits; use sys.set_int_max_str_digits() to increase the limit - Consider "
            "hexadecimal for huge integer literals to avoid decimal conversion limits. "
            "(<string>, line 1)");
  EXPECT_TRUE(ParsePyExpression("0x" + std::string(4000, 'f')).ok());
}

TEST(DecodeBigIntTest, BothBfclDecodersKeepExactValues) {
  absl::StatusOr<std::vector<std::string>> prompting = DecodeBfclPrompting(
      "[multiply(a=123456789012345678901234567890, b=-98765432109876543210), "
      "add(a=0x1FFFFFFFFFFFFFFFFFF, b=2**70)]");
  ASSERT_TRUE(prompting.ok()) << prompting.status();
  EXPECT_EQ(*prompting, (std::vector<std::string>{
                            "multiply(a=123456789012345678901234567890, b=-98765432109876543210)",
                            "add(a=9444732965739290427391, b=1180591620717411303424)"}));
  // Literal arithmetic past 4300 digits: BFCL's repr() of the value raises ValueError.
  absl::StatusOr<std::vector<std::string>> too_long = DecodeBfclPrompting("[f(a=10**4300)]");
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().message(), kIntStrLimitError);
  EXPECT_TRUE(DecodeBfclPrompting("[f(a=10**4299)]").ok());
  absl::StatusOr<std::vector<std::string>> fc = DecodeBfclFunctionCalling(
      R"([{"multiply": "{\"a\": 123456789012345678901234567890, \"b\": -98765432109876543210}"},)"
      R"( {"sum_values": {"numbers": [18446744073709551616, 1]}}])");
  ASSERT_TRUE(fc.ok()) << fc.status();
  EXPECT_EQ(*fc, (std::vector<std::string>{
                     "multiply(a=123456789012345678901234567890,b=-98765432109876543210)",
                     "sum_values(numbers=[18446744073709551616, 1])"}));
  // envtuning: the structured call carries the exact value as well.
  DecodeResult r = DecodeModelOutput(
      DecodeMode::kEnvTuning,
      "<think>t</think><tool_call>{\"name\": \"add\", \"arguments\": "
      "{\"a\": 99999999999999999999, \"b\": 1}}</tool_call>");
  ASSERT_EQ(r.kind, DecodeResult::Kind::kCalls) << r.message;
  EXPECT_EQ(r.calls, std::vector<std::string>{"add(a=99999999999999999999, b=1)"});
  ASSERT_EQ(r.structured.size(), 1u);
  EXPECT_EQ(r.structured[0].keywords[0].second, PyValue::Int(Big("99999999999999999999")));
}

TEST(ExecuteBigIntTest, MathApiResultsMatchBfcl) {
  absl::StatusOr<Sandbox> sb = Sandbox::Create("big_int", {"MathAPI"}, PyValue::Dict(), false, nullptr);
  ASSERT_TRUE(sb.ok()) << sb.status();
  struct Case {
    const char* call;
    const char* result;
  };
  const std::string ten400 = "1" + std::string(400, '0');
  const Case cases[] = {
      {"multiply(a=123456789012345678901234567890, b=987654321098765432109876543210)",
       R"({"result": 121932631137021795226185032733622923332237463801111263526900})"},
      {"add(a=99999999999999999999, b=1)", R"({"result": 100000000000000000000})"},
      {"subtract(a=-18446744073709551616, b=1)", R"({"result": -18446744073709551617})"},
      {"add(a=10**400, b=1.0)", "Error during execution: int too large to convert to float"},
      {"divide(a=10**30, b=7)", R"({"result": 1.4285714285714285e+29})"},
      {"divide(a=10**400, b=3)",
       "Error during execution: integer division result too large for a float"},
      {"divide(a=-(10**30), b=2**70)", R"({"result": -847032947.2543004})"},
      {"power(base=3, exponent=100)",
       R"({"result": 515377520732011331036461129765621272702107522001})"},
      {"power(base=2**70, exponent=2)",
       R"({"result": 1393796574908163946345982392040522594123776})"},
      {"power(base=10**30, exponent=-1)", R"({"result": 9.999999999999999e-31})"},
      {"power(base=10**400, exponent=-1)",
       "Error during execution: int too large to convert to float"},
      {"power(base=10, exponent=5000)",
       "Error during execution: Exceeds the limit (4300 digits) for integer string conversion; "
       "use sys.set_int_max_str_digits() to increase the limit"},
      {"absolute_value(number=-123456789012345678901234567890)",
       R"({"result": 123456789012345678901234567890})"},
      {"round_number(number=123456789012345678901234567895, decimal_places=-1)",
       R"({"result": 123456789012345678901234567900})"},
      {"round_number(number=123456789012345678901234567885, decimal_places=-1)",
       R"({"result": 123456789012345678901234567880})"},
      {"round_number(number=123456789012345678901234567890, decimal_places=-40)",
       R"({"result": 0})"},
      {"sum_values(numbers=[2**64, 2**64, 1])", R"({"result": 36893488147419103233})"},
      {"sum_values(numbers=[2**64, 0.5])", R"({"result": 1.8446744073709552e+19})"},
      {"sum_values(numbers=[10**400, 0.5])",
       "Error during execution: int too large to convert to float"},
      {"mean(numbers=[2**64, 2**65, 3])", R"({"result": 1.8446744073709552e+19})"},
      {"mean(numbers=[10**400, 10**400])",
       "Error during execution: integer division result too large for a float"},
      {"standard_deviation(numbers=[2**64, 2**65])", R"({"result": 9.223372036854776e+18})"},
      {"max_value(numbers=[2**64, 18446744073709551616.0, 2**64+1])",
       R"({"result": 18446744073709551617})"},
      {"min_value(numbers=[-(2**70), -1e30])", R"({"result": -1e+30})"},
      {"si_unit_conversion(value=10**30, unit_in='km', unit_out='m')", R"({"result": 1e+33})"},
      {"si_unit_conversion(value=10**400, unit_in='km', unit_out='m')",
       R"({"error": "Conversion resulted in a value too large to represent"})"},
      {"imperial_si_conversion(value=10**30, unit_in='fahrenheit', unit_out='celsius')",
       R"({"result": 5.555555555555556e+29})"},
      {"imperial_si_conversion(value=10**400, unit_in='kg', unit_out='lb')",
       R"({"error": "Conversion resulted in a value too large to represent"})"},
      {"percentage(part=10**30, whole=3*10**30)", R"({"result": 33.33333333333333})"},
      {"square_root(number=10**40, precision=5)", "{'result': Decimal('1.0000E+20')}"},
      {"square_root(number=2*10**40+1, precision=30)",
       "{'result': Decimal('141421356237309504880.168872421')}"},
      {"logarithm(value=10**30, base=10, precision=10)", "{'result': mpf('30.00000000023')}"},
      {"logarithm(value=2**100+1, base=2, precision=40)",
       "{'result': mpf('100.0000000000000000000000000000011380857169')}"},
      {"multiply(a=10**2200, b=10**2200)",
       "Error during execution: Exceeds the limit (4300 digits) for integer string conversion; "
       "use sys.set_int_max_str_digits() to increase the limit"},
      {"multiply(a=2**64, b=0.5)", R"({"result": 9.223372036854776e+18})"},
  };
  for (const Case& c : cases) EXPECT_EQ(sb->ExecuteCall(c.call).result, c.result) << c.call;
  EXPECT_EQ(sb->ExecuteCall("imperial_si_conversion(value=10**400, unit_in='kg', unit_out='kg')")
                .result,
            R"({"result": )" + ten400 + "}");
}

class CheckerBigIntTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<TaskCatalog> c = TaskCatalog::Load(test_env::BfclDataDir());
    if (c.ok()) catalog_ = new TaskCatalog(*std::move(c));
  }
  void SetUp() override {
    if (catalog_ == nullptr) GTEST_SKIP() << "BFCL data not found at " << test_env::BfclDataDir();
  }
  static TaskCatalog* catalog_;
};
TaskCatalog* CheckerBigIntTest::catalog_ = nullptr;

TEST_F(CheckerBigIntTest, StateComparisonUsesExactPythonEquality) {
  const BfclTask* base = catalog_->Find("multi_turn_base_4");
  ASSERT_NE(base, nullptr);
  BfclTask task = *base;
  task.ground_truth = {{"post_tweet(content='n', tags=['#a'], mentions=[18446744073709551616])"}};
  task.questions.assign(1, {BfclMessage{"user", "q"}});
  SandboxContext context;
  context.long_context_constants = &catalog_->long_context_constants();
  struct Case {
    const char* model_call;
    const char* error_type;  // BFCL's multi_turn_checker verdict
  };
  const Case cases[] = {
      {"post_tweet(content='n', tags=['#a'], mentions=[2**64])", ""},
      {"post_tweet(content='n', tags=['#a'], mentions=[18446744073709551617])",
       "multi_turn:instance_state_mismatch"},
      // 2**64 == 2.0**64 in the state, but the rendered responses differ.
      {"post_tweet(content='n', tags=['#a'], mentions=[18446744073709551616.0])",
       "multi_turn:execution_response_mismatch"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CheckerVerdict> v = CheckMultiTurn(task, {{{c.model_call}}}, &context);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->error_type, c.error_type) << c.model_call;
    EXPECT_EQ(v->valid, std::string(c.error_type).empty()) << c.model_call;
  }
}

}  // namespace
}  // namespace envtune
