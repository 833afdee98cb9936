// Locates ../shared fixtures and the repository for tests/text (ENVTUNE_SHARED_DIR,
// ENVTUNE_SOURCE_DIR as set by ctest).
#ifndef ENVTUNE_TESTS_TEXT_TEST_PATHS_H_
#define ENVTUNE_TESTS_TEXT_TEST_PATHS_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace envtune::testing {

inline std::string SourceDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return s != nullptr ? s : ".";
}

inline std::string SharedDir() {
  const char* s = std::getenv("ENVTUNE_SHARED_DIR");
  return s != nullptr ? s : SourceDir() + "/../shared";
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

inline bool Exists(const std::string& path) { return std::filesystem::exists(path); }

}  // namespace envtune::testing

#endif  // ENVTUNE_TESTS_TEXT_TEST_PATHS_H_
