// BindPythonArgs (CPython 3.11 ceval.c initialize_locals / too_many_positional /
// missing_arguments texts), CallOutcome::ResultString and ToolApi::context().
#include "envserver/tool_api.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace envtune {
namespace {

// format_missing(): 'a' / 'a' and 'b' / 'a', 'b', and 'c'.
std::string JoinMissingNames(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  quoted.reserve(names.size());
  for (const std::string& n : names) quoted.push_back(PyStrRepr(n));
  if (quoted.size() == 1) return quoted[0];
  if (quoted.size() == 2) return absl::StrCat(quoted[0], " and ", quoted[1]);
  std::string out;
  for (size_t i = 0; i + 2 < quoted.size(); ++i) {
    if (i > 0) out += ", ";
    out += quoted[i];
  }
  absl::StrAppend(&out, ", ", quoted[quoted.size() - 2], ", and ", quoted.back());
  return out;
}

}  // namespace

absl::StatusOr<std::vector<PyValue>> BindPythonArgs(std::string_view qualname,
                                                    absl::Span<const ParamSpec> params,
                                                    const PyArgs& args) {
  const std::string q(qualname);
  // Slot 0 is `self` (always bound); slot i + 1 is params[i]. Counts below include self, as
  // CPython's messages do.
  const size_t co_argcount = params.size() + 1;
  const size_t argcount = args.positional.size() + 1;
  std::vector<std::optional<PyValue>> slots(co_argcount);
  slots[0] = PyValue();  // self
  for (size_t j = 1; j < std::min(argcount, co_argcount); ++j) slots[j] = args.positional[j - 1];

  // Keyword arguments, in source order.
  for (const auto& [name, value] : args.keywords) {
    size_t j = 0;
    if (name != "self") {
      for (j = 1; j < co_argcount; ++j) {
        if (params[j - 1].name == name) break;
      }
      if (j == co_argcount) {
        return absl::InvalidArgumentError(
            absl::StrCat(q, "() got an unexpected keyword argument '", name, "'"));
      }
    }
    if (slots[j].has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(q, "() got multiple values for argument '", name, "'"));
    }
    slots[j] = value;
  }

  // Defaults are the trailing run of parameters that have one (Python requires them last).
  size_t defcount = 0;
  while (defcount < params.size() && params[params.size() - 1 - defcount].default_value) {
    ++defcount;
  }

  if (argcount > co_argcount) {
    std::string sig;
    bool plural;
    if (defcount > 0) {
      plural = true;
      sig = absl::StrCat("from ", co_argcount - defcount, " to ", co_argcount);
    } else {
      plural = co_argcount != 1;
      sig = absl::StrCat(co_argcount);
    }
    return absl::InvalidArgumentError(absl::StrCat(q, "() takes ", sig, " positional argument",
                                                   plural ? "s" : "", " but ", argcount,
                                                   argcount == 1 ? " was" : " were", " given"));
  }

  std::vector<std::string> missing;
  for (size_t j = argcount; j < co_argcount - defcount; ++j) {
    if (!slots[j].has_value()) missing.push_back(params[j - 1].name);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(q, "() missing ", missing.size(),
                                                   " required positional argument",
                                                   missing.size() == 1 ? "" : "s", ": ",
                                                   JoinMissingNames(missing)));
  }

  std::vector<PyValue> bound;
  bound.reserve(params.size());
  for (size_t j = 1; j < co_argcount; ++j) {
    if (slots[j].has_value()) {
      bound.push_back(std::move(*slots[j]));
    } else if (params[j - 1].default_value) {
      bound.push_back(*params[j - 1].default_value);
    } else {
      // A required parameter before a defaulted one left unbound: only reachable with a
      // signature Python would reject; report it like a missing argument.
      return absl::InvalidArgumentError(absl::StrCat(
          q, "() missing 1 required positional argument: ", PyStrRepr(params[j - 1].name)));
    }
  }
  return bound;
}

std::string CallOutcome::ResultString() const {
  if (exception_message.has_value()) return "Error during execution: " + *exception_message;
  if (value.is_str()) return value.as_str();
  if (value.is_dict()) {
    absl::StatusOr<std::string> json = PyJsonDumps(value);
    if (json.ok()) return *std::move(json);
    // BFCL falls back to str(result), which raises the same ValueError for an over-long int.
    if (json.status().code() == absl::StatusCode::kOutOfRange) {
      return "Error during execution: " + std::string(json.status().message());
    }
  }
  return value.Str();
}

const SandboxContext& ToolApi::context() const {
  static const SandboxContext kDefault;
  return context_ != nullptr ? *context_ : kDefault;
}

}  // namespace envtune
