// The command-line flags of the `envtune` subcommands that take --name=value / --name value
// flags (eval, sft, plan, model): one small parser, so every command reads flags alike.
#ifndef ENVTUNE_COMMON_CLI_FLAGS_H_
#define ENVTUNE_COMMON_CLI_FLAGS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace envtune {

// --name=value / --name value flags and positionals. Bool flags (listed in `bool_flags`) take no
// value (or =true/=false). Unknown flags are InvalidArgument naming them.
struct CliFlags {
  std::map<std::string, std::string> values;
  std::vector<std::string> positionals;
  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  absl::StatusOr<bool> GetBool(const std::string& name, bool fallback) const;
};
absl::StatusOr<CliFlags> ParseCliFlags(const std::vector<std::string>& args,
                                       const std::set<std::string>& known,
                                       const std::set<std::string>& bool_flags = {});

}  // namespace envtune

#endif  // ENVTUNE_COMMON_CLI_FLAGS_H_
