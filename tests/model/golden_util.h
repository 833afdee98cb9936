// Helpers shared by the model tests: locating ../shared/golden/qwen2 and turning fixture JSON
// into tensors. Header-only; include from tests only.
#ifndef ENVTUNE_TESTS_MODEL_GOLDEN_UTIL_H_
#define ENVTUNE_TESTS_MODEL_GOLDEN_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "nlohmann/json.hpp"

namespace envtune::testing {

// <shared>/golden/qwen2, or "" if it cannot be found.
inline std::string GoldenQwen2Dir() {
  std::string shared;
  if (const char* s = std::getenv("ENVTUNE_SHARED_DIR")) {
    shared = s;
  } else if (const char* src = std::getenv("ENVTUNE_SOURCE_DIR")) {
    shared = std::string(src) + "/../shared";
  } else {
    shared = "../shared";
  }
  std::string dir = shared + "/golden/qwen2";
  return std::filesystem::exists(dir + "/qwen2-tiny/config.json") ? dir : "";
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str(), nullptr, false);
}

// Nested JSON number arrays -> tensor of `dtype` (shape inferred from the first elements).
inline at::Tensor JsonTensor(const nlohmann::json& j, at::ScalarType dtype) {
  std::vector<int64_t> shape;
  const nlohmann::json* cur = &j;
  while (cur->is_array()) {
    shape.push_back(static_cast<int64_t>(cur->size()));
    if (cur->empty()) break;
    cur = &(*cur)[0];
  }
  std::vector<double> flat;
  // Depth-first, in order.
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& v) {
    if (v.is_array()) {
      for (const auto& e : v) walk(e);
    } else {
      flat.push_back(v.get<double>());
    }
  };
  walk(j);
  return at::tensor(flat, at::kDouble).view(shape).to(dtype);
}

// The model folders and the fixture folder whose *.json they are checked against.
struct GoldenModel {
  const char* name;       // folder holding config.json + weights
  const char* fixtures;   // folder holding logits/greedy/grads.json
};
inline const std::vector<GoldenModel>& GoldenModels() {
  static const std::vector<GoldenModel> kModels = {
      {"qwen2-tiny", "qwen2-tiny"},
      {"qwen2-tiny-ropescale", "qwen2-tiny-ropescale"},
      {"qwen2-tiny-rope-llama3", "qwen2-tiny-rope-llama3"},
      {"llama-tiny", "llama-tiny"},
      {"llama-tiny/sharded", "llama-tiny"},
  };
  return kModels;
}

}  // namespace envtune::testing

#endif  // ENVTUNE_TESTS_MODEL_GOLDEN_UTIL_H_
