// BindPythonArgs against CPython 3.11 TypeError texts (expected strings printed by python3.11 for
// the same signatures; see ../shared/bfcl/spec/ticket_api.md §0.2-0.3), CallOutcome::ResultString
// and the ToolApiBase dispatch.
#include "envserver/tool_api.h"

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace envtune {
namespace {

PyValue I(int64_t i) { return PyValue::Int(i); }

// class Q:
//   def none(self): ...
//   def one(self, a): ...
//   def two(self, a, b): ...
//   def three(self, a, b, c): ...
//   def four(self, a, b, c, d, e=5): ...
//   def opt(self, a, b=1, c=2): ...
//   def allopt(self, a=1): ...
const std::vector<ParamSpec>& Signature(const std::string& name) {
  static const auto* sigs = new std::vector<std::pair<std::string, std::vector<ParamSpec>>>{
      {"none", {}},
      {"one", {{"a"}}},
      {"two", {{"a"}, {"b"}}},
      {"three", {{"a"}, {"b"}, {"c"}}},
      {"four", {{"a"}, {"b"}, {"c"}, {"d"}, {"e", I(5)}}},
      {"opt", {{"a"}, {"b", I(1)}, {"c", I(2)}}},
      {"allopt", {{"a", I(1)}}},
  };
  for (const auto& [n, params] : *sigs) {
    if (n == name) return params;
  }
  ADD_FAILURE() << "no signature " << name;
  return sigs->front().second;
}

PyArgs Args(int positional, std::vector<std::string> keywords) {
  PyArgs args;
  for (int i = 0; i < positional; ++i) args.positional.push_back(I(i + 1));
  for (std::string& k : keywords) args.keywords.emplace_back(std::move(k), I(0));
  return args;
}

TEST(BindPythonArgsTest, ErrorTextsMatchCPython) {
  struct Case {
    const char* method;
    int positional;
    std::vector<std::string> keywords;
    const char* error;
  };
  const std::vector<Case> kCases = {
      {"none", 1, {}, "Q.none() takes 1 positional argument but 2 were given"},
      {"none", 0, {"x"}, "Q.none() got an unexpected keyword argument 'x'"},
      {"one", 0, {}, "Q.one() missing 1 required positional argument: 'a'"},
      {"one", 2, {}, "Q.one() takes 2 positional arguments but 3 were given"},
      {"one", 3, {}, "Q.one() takes 2 positional arguments but 4 were given"},
      {"two", 0, {}, "Q.two() missing 2 required positional arguments: 'a' and 'b'"},
      {"three", 0, {}, "Q.three() missing 3 required positional arguments: 'a', 'b', and 'c'"},
      {"four", 0, {}, "Q.four() missing 4 required positional arguments: 'a', 'b', 'c', and 'd'"},
      {"three", 0, {"b"}, "Q.three() missing 2 required positional arguments: 'a' and 'c'"},
      {"four", 1, {"d"}, "Q.four() missing 2 required positional arguments: 'b' and 'c'"},
      {"opt", 4, {}, "Q.opt() takes from 2 to 4 positional arguments but 5 were given"},
      {"opt", 5, {}, "Q.opt() takes from 2 to 4 positional arguments but 6 were given"},
      {"opt", 0, {}, "Q.opt() missing 1 required positional argument: 'a'"},
      {"allopt", 2, {}, "Q.allopt() takes from 1 to 2 positional arguments but 3 were given"},
      {"one", 1, {"a"}, "Q.one() got multiple values for argument 'a'"},
      {"one", 1, {"self"}, "Q.one() got multiple values for argument 'self'"},
      // Keyword problems come first, in source order; then too many positionals.
      {"two", 3, {"zz"}, "Q.two() got an unexpected keyword argument 'zz'"},
      {"two", 3, {"a"}, "Q.two() got multiple values for argument 'a'"},
      {"two", 0, {"q", "a"}, "Q.two() got an unexpected keyword argument 'q'"},
      {"two", 1, {"a", "q"}, "Q.two() got multiple values for argument 'a'"},
  };
  for (const Case& c : kCases) {
    absl::StatusOr<std::vector<PyValue>> bound =
        BindPythonArgs(std::string("Q.") + c.method, Signature(c.method), Args(c.positional, c.keywords));
    ASSERT_FALSE(bound.ok()) << c.error;
    EXPECT_EQ(bound.status().message(), c.error);
  }
}

TEST(BindPythonArgsTest, SuccessfulBindingFillsDefaults) {
  struct Case {
    const char* method;
    PyArgs args;
    const char* bound_repr;  // repr of the bound values as a list
  };
  const std::vector<Case> kCases = {
      {"none", {}, "[]"},
      {"opt", {{I(7)}, {}}, "[7, 1, 2]"},
      {"opt", {{I(7)}, {{"c", I(9)}}}, "[7, 1, 9]"},
      {"opt", {{}, {{"c", I(9)}, {"a", I(8)}}}, "[8, 1, 9]"},
      {"opt", {{I(7), I(8), I(9)}, {}}, "[7, 8, 9]"},
      {"three", {{I(1)}, {{"c", I(3)}, {"b", I(2)}}}, "[1, 2, 3]"},
      {"allopt", {}, "[1]"},
      {"four", {{I(1), I(2), I(3), I(4)}, {}}, "[1, 2, 3, 4, 5]"},
  };
  for (const Case& c : kCases) {
    absl::StatusOr<std::vector<PyValue>> bound =
        BindPythonArgs(std::string("Q.") + c.method, Signature(c.method), c.args);
    ASSERT_TRUE(bound.ok()) << bound.status();
    EXPECT_EQ(PyValue::List(*bound).Repr(), c.bound_repr) << c.method;
  }
}

TEST(CallOutcomeTest, ResultStringFollowsBfclExecutor) {
  struct Case {
    CallOutcome outcome;
    const char* result;
  };
  const std::vector<Case> kCases = {
      {CallOutcome::Return(PyValue::Str("plain 'text'\n")), "plain 'text'\n"},
      {CallOutcome::Return(PyValue::Dict({{PyValue::Str("error"), PyValue::Str("No such file")}})),
       "{\"error\": \"No such file\"}"},
      {CallOutcome::Return(PyValue::Dict({{PyValue::Int(12345), PyValue::Float(5000.0)},
                                          {PyValue::Str("\xc3\xa9"), PyValue::Bool(true)}})),
       "{\"12345\": 5000.0, \"\\u00e9\": true}"},
      // json.dumps fails on a set: str(dict) instead.
      {CallOutcome::Return(PyValue::Dict({{PyValue::Str("s"), PyValue::Set({I(1)})}})),
       "{'s': {1}}"},
      {CallOutcome::Return(PyValue::List({PyValue::Str("RMS"), PyValue::Str("SBK")})),
       "['RMS', 'SBK']"},
      {CallOutcome::Return(PyValue()), "None"},
      {CallOutcome::Return(PyValue::Bool(false)), "False"},
      {CallOutcome::Return(PyValue::Float(1e16)), "1e+16"},
      {CallOutcome::Return(PyValue::Tuple({I(1)})), "(1,)"},
      {CallOutcome::Raise("GorillaFileSystem.cd() missing 1 required positional argument: 'folder'"),
       "Error during execution: GorillaFileSystem.cd() missing 1 required positional argument: "
       "'folder'"},
      {CallOutcome::Raise(""), "Error during execution: "},
  };
  for (const Case& c : kCases) EXPECT_EQ(c.outcome.ResultString(), c.result);
}

// A two-method sandbox exercising ToolApiBase dispatch.
class FakeApi : public ToolApiBase<FakeApi> {
 public:
  static const MethodTable& Methods() {
    static const auto* table = new MethodTable{
        {"add", {{"a"}, {"b", I(10)}}, &FakeApi::Add},
        {"count", {}, &FakeApi::Count},
    };
    return *table;
  }
  std::string_view ClassName() const override { return "FakeApi"; }
  void LoadScenario(const PyValue&, bool) override {}
  PyValue PublicState() const override {
    return PyValue::Dict({{PyValue::Str("calls"), I(calls_)}});
  }
  CallOutcome Add(const std::vector<PyValue>& a) {
    ++calls_;
    return CallOutcome::Return(I(a[0].as_int() + a[1].as_int()));
  }
  CallOutcome Count(const std::vector<PyValue>&) { return CallOutcome::Return(I(calls_)); }

 private:
  int calls_ = 0;
};

TEST(ToolApiBaseTest, DispatchBindingAndUnknownNames) {
  FakeApi api;
  EXPECT_EQ(api.MethodNames(), (std::vector<std::string>{"add", "count"}));
  EXPECT_EQ(api.Invoke("add", {{I(1)}, {}}).ResultString(), "11");
  EXPECT_EQ(api.Invoke("add", {{I(1)}, {{"b", I(2)}}}).ResultString(), "3");
  EXPECT_EQ(api.Invoke("add", {}).ResultString(),
            "Error during execution: FakeApi.add() missing 1 required positional argument: 'a'");
  EXPECT_EQ(api.Invoke("count", {{I(1)}, {}}).ResultString(),
            "Error during execution: FakeApi.count() takes 1 positional argument but 2 were given");
  EXPECT_EQ(api.Invoke("nope", {}).ResultString(),
            "Error during execution: 'FakeApi' object has no attribute 'nope'");

  std::unique_ptr<ToolApi> clone = api.Clone();
  api.Invoke("add", {{I(1)}, {}});
  EXPECT_EQ(api.Invoke("count", {}).ResultString(), "3");
  EXPECT_EQ(clone->Invoke("count", {}).ResultString(), "2");
}

TEST(ToolApiTest, ContextDefaultsWhenUnset) {
  FakeApi api;
  EXPECT_EQ(api.context().long_context_constants, nullptr);
  EXPECT_FALSE(api.context().augment);
  EXPECT_FALSE(api.augment());
  SandboxContext ctx;
  ctx.augment = true;
  api.set_context(&ctx);
  EXPECT_TRUE(api.augment());
  EXPECT_EQ(&api.context(), &ctx);
  api.set_context(nullptr);
  EXPECT_FALSE(api.context().augment);
}

}  // namespace
}  // namespace envtune
