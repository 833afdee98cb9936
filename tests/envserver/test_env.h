// Where the envserver tests find the repository, the shared BFCL data and their own test data,
// from the environment ctest sets (ENVTUNE_SOURCE_DIR, ENVTUNE_SHARED_DIR). Test-only, inline.
// Use with `using namespace envtune::test_env;`.
#ifndef ENVTUNE_TESTS_ENVSERVER_TEST_ENV_H_
#define ENVTUNE_TESTS_ENVSERVER_TEST_ENV_H_

#include <cstdlib>
#include <fstream>
#include <string>

namespace envtune::test_env {

// $name when set and non-empty, else `fallback`.
inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// The repository root ($ENVTUNE_SOURCE_DIR, else ".").
inline std::string SourceDir() { return EnvOr("ENVTUNE_SOURCE_DIR", "."); }

// The shared reference material ($ENVTUNE_SHARED_DIR, else <SourceDir>/../shared).
inline std::string SharedDir() { return EnvOr("ENVTUNE_SHARED_DIR", SourceDir() + "/../shared"); }

// Whether `path` can be opened for reading.
inline bool Exists(const std::string& path) { return std::ifstream(path).good(); }

// The BFCL data directory (long_context_constants.json, tasks): the repository's data/bfcl when
// it holds long_context_constants.json, else the shared bfcl/data.
inline std::string BfclDataDir() {
  std::string repo = SourceDir() + "/data/bfcl";
  if (Exists(repo + "/long_context_constants.json")) return repo;
  return SharedDir() + "/bfcl/data";
}

// tests/envserver/testdata/<name> in the repository.
inline std::string TestData(const std::string& name) {
  return SourceDir() + "/tests/envserver/testdata/" + name;
}

}  // namespace envtune::test_env

#endif  // ENVTUNE_TESTS_ENVSERVER_TEST_ENV_H_
