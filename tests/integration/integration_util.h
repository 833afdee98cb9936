// Paths and config pieces shared by the whole-system tests (test-only, inline).
#ifndef ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
#define ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_

#include <cstdlib>
#include <string>

namespace envtune::integration {

inline std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}
// The repository root and the envtune binary, as ctest sets them.
inline std::string SourceDir() { return EnvOr("ENVTUNE_SOURCE_DIR", "."); }
inline std::string Binary() { return EnvOr("ENVTUNE_BINARY_DIR", "build") + "/deploy/envtune"; }

}  // namespace envtune::integration

#endif  // ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
