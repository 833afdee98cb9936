// Paths and config pieces shared by the whole-system tests (test-only, inline).
#ifndef ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
#define ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace envtune::integration {

inline std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}
// The repository root and the envtune binary, as ctest sets them.
inline std::string SourceDir() { return EnvOr("ENVTUNE_SOURCE_DIR", "."); }
inline std::string Binary() { return EnvOr("ENVTUNE_BINARY_DIR", "build") + "/deploy/envtune"; }

// The non-empty lines of a JSON-lines file (ledgers, metrics.jsonl), parsed.
inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

}  // namespace envtune::integration

#endif  // ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
