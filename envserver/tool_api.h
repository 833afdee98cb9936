// The contract every BFCL sandbox class (GorillaFileSystem, MathAPI, MessageAPI, TwitterAPI,
// TicketAPI, TradingBot, TravelAPI, VehicleControlAPI) implements, and the table-driven method
// dispatch with CPython-exact argument binding they share.
//
// A tool call that fails inside the simulated API is an observation, not an infrastructure
// error: it is a CallOutcome with `exception` set (rendered "Error during execution: <msg>"),
// or a returned {"error": ...} dict, exactly as the Python backend does.
//
// Instances are not thread-safe; each episode side owns its own (Clone() copies all state).
// SandboxContext::today_* (added for TravelAPI) makes the "current date" injectable.
#ifndef ENVTUNE_ENVSERVER_TOOL_API_H_
#define ENVTUNE_ENVSERVER_TOOL_API_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "envserver/pyvalue.h"

namespace envtune {

// Arguments of one call as written: positional values, then keyword arguments in source order.
struct PyArgs {
  std::vector<PyValue> positional;
  std::vector<std::pair<std::string, PyValue>> keywords;
};

// What a method call produced: a return value, or a raised Python exception whose str() is
// `exception_message` (may be empty).
struct CallOutcome {
  PyValue value;
  std::optional<std::string> exception_message;

  static CallOutcome Return(PyValue v) { return CallOutcome{std::move(v), std::nullopt}; }
  static CallOutcome Raise(std::string message) {
    return CallOutcome{PyValue(), std::move(message)};
  }
  bool raised() const { return exception_message.has_value(); }
  // BFCL's executor string: str as is, dict as json.dumps (str() if that fails), else str(),
  // exception as "Error during execution: " + message.
  std::string ResultString() const;
};

// Run-time facts a sandbox may need that are not in the task: shared, read-only, owned by the
// caller and outliving every instance created with it.
struct SandboxContext {
  // data/long_context_constants.json as loaded (nullptr: long-context padding unavailable).
  const PyValue* long_context_constants = nullptr;
  // Environment augmentation (METHOD.md §5): hint texts instead of BFCL's error texts. Never
  // changes state. Off reproduces BFCL byte for byte.
  bool augment = false;
  // "Today" for date-dependent checks (TravelAPI.verify_traveler_information's age test). BFCL
  // reads the wall clock there; we use this fixed, documented date (2024-09-01, the date of
  // TradingBot's CURRENT_TIME) unless the product injects another one. Proleptic Gregorian.
  int today_year = 2024;
  int today_month = 9;
  int today_day = 1;
};

// One parameter of a Python method signature (after `self`).
struct ParamSpec {
  std::string name;
  std::optional<PyValue> default_value;  // nullopt: required
};

// Binds `args` to `params` exactly as CPython 3.11 binds a call to `def f(self, <params>)`.
// On a binding error returns the TypeError text, qualified as "<qualname>() ...", e.g.
// "GorillaFileSystem.cd() missing 1 required positional argument: 'folder'". On success the
// result has one value per parameter (defaults filled in).
// Check order (see spec ticket_api.md §0.3): keyword problems in source order, then too many
// positionals, then missing arguments.
absl::StatusOr<std::vector<PyValue>> BindPythonArgs(std::string_view qualname,
                                                    absl::Span<const ParamSpec> params,
                                                    const PyArgs& args);

class ToolApi {
 public:
  virtual ~ToolApi() = default;

  // The Python class name, e.g. "GorillaFileSystem".
  virtual std::string_view ClassName() const = 0;
  // A deep copy, including private state such as RNGs and current directories.
  virtual std::unique_ptr<ToolApi> Clone() const = 0;
  // `_load_scenario(deepcopy(initial_config[Class]) or {}, long_context)`.
  virtual void LoadScenario(const PyValue& scenario, bool long_context) = 0;
  // Public method names (the names the executor can dispatch to), in definition order.
  virtual std::vector<std::string> MethodNames() const = 0;
  // Calls `method` with `args`. An unknown method is a Python AttributeError-style exception.
  virtual CallOutcome Invoke(std::string_view method, const PyArgs& args) = 0;
  // Public (non-underscore) attributes as a dict {name: value}, in the form the golden
  // state files use (file-system trees as {"type","name","contents"/"content"}, sets as PySet).
  virtual PyValue PublicState() const = 0;
  // Python `PublicState() == other`; classes with large states override it to compare without
  // building the state.
  virtual bool PublicStateEquals(const PyValue& other) const { return PublicState() == other; }

  void set_context(const SandboxContext* context) { context_ = context; }
  const SandboxContext& context() const;
  bool augment() const { return context_ != nullptr && context_->augment; }

 private:
  const SandboxContext* context_ = nullptr;  // not owned; nullptr means defaults
};

// Table-driven dispatch: a class lists its methods once as rows {name, params, handler}; binding,
// unknown names and error texts are handled here.
//
//   class MathApi : public ToolApiBase<MathApi> {
//    public:
//     static const MethodTable& Methods();   // rows below
//     CallOutcome Add(const std::vector<PyValue>& a);
//   };
//   {"add", {{"a"}, {"b"}}, &MathApi::Add}
template <typename Derived>
class ToolApiBase : public ToolApi {
 public:
  using Handler = CallOutcome (Derived::*)(const std::vector<PyValue>& bound);
  struct MethodRow {
    std::string name;
    std::vector<ParamSpec> params;
    Handler handler;
  };
  using MethodTable = std::vector<MethodRow>;

  std::unique_ptr<ToolApi> Clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }

  std::vector<std::string> MethodNames() const override {
    std::vector<std::string> names;
    for (const MethodRow& row : Derived::Methods()) names.push_back(row.name);
    return names;
  }

  CallOutcome Invoke(std::string_view method, const PyArgs& args) override {
    for (const MethodRow& row : Derived::Methods()) {
      if (row.name != method) continue;
      std::string qualname = std::string(ClassName()) + "." + row.name;
      absl::StatusOr<std::vector<PyValue>> bound = BindPythonArgs(qualname, row.params, args);
      if (!bound.ok()) return CallOutcome::Raise(std::string(bound.status().message()));
      return (static_cast<Derived*>(this)->*row.handler)(*bound);
    }
    return CallOutcome::Raise("'" + std::string(ClassName()) + "' object has no attribute '" +
                              std::string(method) + "'");
  }
};

// Creates a fresh, unloaded instance of a BFCL class by name ("GorillaFileSystem", ...).
// NOT_FOUND for an unknown class name.
absl::StatusOr<std::unique_ptr<ToolApi>> CreateToolApi(std::string_view class_name);
// The eight class names in BFCL's canonical order.
const std::vector<std::string>& AllToolApiClassNames();

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_TOOL_API_H_
