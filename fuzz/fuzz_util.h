// Shared by the libFuzzer targets: where the repository's data lives when a target needs it.
#ifndef ENVTUNE_FUZZ_FUZZ_UTIL_H_
#define ENVTUNE_FUZZ_FUZZ_UTIL_H_

#include <cstdlib>
#include <string>

namespace envtune::fuzz {

// $ENVTUNE_DATA_DIR, else the checkout's data/ (the source dir is compiled in).
inline std::string DataDir() {
  if (const char* dir = std::getenv("ENVTUNE_DATA_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::string(ENVTUNE_SOURCE_DIR) + "/data";
}

}  // namespace envtune::fuzz

#endif  // ENVTUNE_FUZZ_FUZZ_UTIL_H_
