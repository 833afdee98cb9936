// Shared setup of the per-API sandbox unit tests (tests/envserver/*_api_test.cc and the other
// envserver/apis/* tests): PyValue/PyArgs shorthands, JSON scenarios, the shared BFCL data
// directory, data/long_context_constants.json, and two fixtures that hold one API and call it.
// Test-only; every helper is header-inline. Use with `using namespace envtune::api_test;`.
#ifndef ENVTUNE_TESTS_ENVSERVER_API_TEST_UTIL_H_
#define ENVTUNE_TESTS_ENVSERVER_API_TEST_UTIL_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"
#include "gtest/gtest.h"
#include "tests/envserver/test_env.h"

namespace envtune::api_test {

inline PyValue S(std::string s) { return PyValue::Str(std::move(s)); }
inline PyValue I(int64_t i) { return PyValue::Int(i); }
inline PyValue F(double d) { return PyValue::Float(d); }
inline PyValue B(bool b) { return PyValue::Bool(b); }
inline PyValue L(PyList items) { return PyValue::List(std::move(items)); }

// Call arguments made only of positional / only of keyword arguments.
inline PyArgs Pos(std::vector<PyValue> positional) {
  PyArgs args;
  args.positional = std::move(positional);
  return args;
}
inline PyArgs Kw(std::vector<std::pair<std::string, PyValue>> keywords) {
  PyArgs args;
  args.keywords = std::move(keywords);
  return args;
}

// `text` parsed as JSON; a parse failure fails the current test and yields None.
inline PyValue Json(std::string_view text) {
  absl::StatusOr<PyValue> v = PyValue::FromJson(text);
  EXPECT_TRUE(v.ok()) << v.status() << " parsing " << text;
  return v.ok() ? *std::move(v) : PyValue();
}

using test_env::SharedDir;  // $ENVTUNE_SHARED_DIR, else <source>/../shared

// data/long_context_constants.json of the shared BFCL data (read once), or None when it cannot
// be read or parsed; callers GTEST_SKIP() on None where they need it.
inline const PyValue& LongContextConstants() {
  static const PyValue* constants = [] {
    std::ifstream in(SharedDir() + "/bfcl/data/long_context_constants.json");
    if (!in) return new PyValue();
    std::stringstream buf;
    buf << in.rdbuf();
    absl::StatusOr<PyValue> v = PyValue::FromJson(buf.str());
    return new PyValue(v.ok() ? *std::move(v) : PyValue());
  }();
  return *constants;
}

// Fixture holding one concrete API object `Api` (no sandbox context): Load() a JSON scenario
// (never long-context), Call() a method and get its result string.
template <typename Api>
class ConcreteApiTest : public ::testing::Test {
 protected:
  void Load(std::string_view scenario_json) { api_.LoadScenario(Json(scenario_json), false); }
  std::string Call(std::string_view method, const PyArgs& args = {}) {
    return api_.Invoke(method, args).ResultString();
  }
  Api api_;
};

// Fixture holding one API made by `Factory` and bound to `context_`: each Load() builds a fresh
// API from a JSON scenario; Call() returns a method's result string; State() is the public state
// as JSON and StateField(name) one of its attributes (which must exist).
template <std::unique_ptr<ToolApi> (*Factory)()>
class FactoryApiTest : public ::testing::Test {
 protected:
  void Load(std::string_view scenario_json, bool long_context = false) {
    api_ = Factory();
    api_->set_context(&context_);
    api_->LoadScenario(Json(scenario_json), long_context);
  }
  std::string Call(std::string_view method, PyArgs args = {}) {
    return api_->Invoke(method, args).ResultString();
  }
  std::string State() const { return api_->PublicState().JsonDumps(); }
  PyValue StateField(std::string_view name) const {
    return *api_->PublicState().dict().Find(name);
  }

  SandboxContext context_;
  std::unique_ptr<ToolApi> api_;
};

}  // namespace envtune::api_test

#endif  // ENVTUNE_TESTS_ENVSERVER_API_TEST_UTIL_H_
