// The component layering of docs/architecture.md ("Components and their dependencies") holds in
// the code: the table is layered (each component depends only on rows below it), every
// `#include` from one component's sources into another's is a listed edge and every listed edge
// is used, and every envtune_* library a component's CMake libraries link belongs to the
// component itself or to one it lists.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;

struct Layer {
  std::string component;
  std::set<std::string> deps;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LayeringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* source = std::getenv("ENVTUNE_SOURCE_DIR");
    if (source == nullptr) GTEST_SKIP() << "ENVTUNE_SOURCE_DIR not set (run through ctest)";
    root_ = source;
    ASSERT_TRUE(fs::exists(root_ / "docs/architecture.md")) << root_;
  }

  // The table's rows, top to bottom: the fenced block whose first line is "component  depends on".
  std::vector<Layer> Table() {
    const std::string doc = ReadFile(root_ / "docs/architecture.md");
    std::vector<Layer> rows;
    bool in_table = false;
    for (absl::string_view line : absl::StrSplit(doc, '\n')) {
      if (!in_table) {
        in_table = absl::StartsWith(line, "component ") && absl::StrContains(line, "depends on");
        continue;
      }
      if (absl::StartsWith(line, "```")) break;
      std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (words.empty()) continue;
      Layer layer{words[0], {}};
      for (size_t i = 1; i < words.size(); ++i) {
        if (words[i] != "-") layer.deps.insert(words[i]);
      }
      rows.push_back(std::move(layer));
    }
    return rows;
  }

  // The component a quoted include names ("envtune/v1/..." is proto), or "" for none.
  static std::string IncludedComponent(const std::string& path,
                                       const std::set<std::string>& known) {
    if (absl::StartsWith(path, "envtune/v1/")) return "proto";
    const std::string first(path.substr(0, path.find('/')));
    return path.find('/') != std::string::npos && known.count(first) ? first : "";
  }

  fs::path root_;
};

TEST_F(LayeringTest, TableIsLayered) {
  const std::vector<Layer> rows = Table();
  ASSERT_GE(rows.size(), 8u) << "the table in docs/architecture.md was not found";
  std::set<std::string> below;
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    for (const std::string& dep : it->deps) {
      EXPECT_TRUE(below.count(dep))
          << it->component << " depends on " << dep << ", which is not below it in the table";
    }
    EXPECT_TRUE(below.insert(it->component).second) << it->component << " is listed twice";
  }
}

TEST_F(LayeringTest, IncludesBetweenComponentsAreTheListedEdges) {
  const std::vector<Layer> rows = Table();
  ASSERT_FALSE(rows.empty());
  std::set<std::string> known;
  for (const Layer& l : rows) known.insert(l.component);
  const std::regex include_re(R"re(^\s*#\s*include\s+"([^"]+)")re");
  for (const Layer& layer : rows) {
    if (layer.component == "proto") continue;  // generated code
    const fs::path dir = root_ / layer.component;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    std::map<std::string, std::string> used;  // component -> first file including it
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".cc" && ext != ".h")) continue;
      std::ifstream in(e.path());
      std::string line;
      while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_search(line, m, include_re)) continue;
        const std::string c = IncludedComponent(m[1].str(), known);
        if (c.empty() || c == layer.component) continue;
        used.emplace(c, fs::relative(e.path(), root_).string() + " includes " + m[1].str());
        EXPECT_TRUE(layer.deps.count(c))
            << fs::relative(e.path(), root_).string() << " includes " << m[1].str() << ": "
            << layer.component << " -> " << c << " is not in docs/architecture.md's table";
      }
    }
    for (const std::string& dep : layer.deps) {
      EXPECT_TRUE(used.count(dep))
          << layer.component << " lists " << dep
          << " in docs/architecture.md, but no source of it includes " << dep << "'s headers";
    }
  }
}

TEST_F(LayeringTest, CMakeLibrariesLinkOnlyListedComponents) {
  const std::vector<Layer> rows = Table();
  ASSERT_FALSE(rows.empty());
  // envtune_library(NAME SRCS ... DEPS ...) calls, per component (its folder and subfolders).
  const std::regex call_re(R"re(envtune_library\(\s*(\w+)([^)]*)\))re");
  const std::regex lib_re(R"re(\b(envtune_\w+))re");
  std::map<std::string, std::string> owner;             // library -> component
  std::map<std::string, std::set<std::string>> linked;  // component -> libraries its libraries link
  for (const Layer& layer : rows) {
    const fs::path dir = root_ / layer.component;
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir)) {
      if (e.path().filename() != "CMakeLists.txt") continue;
      const std::string text = ReadFile(e.path());
      for (auto it = std::sregex_iterator(text.begin(), text.end(), call_re);
           it != std::sregex_iterator(); ++it) {
        owner[(*it)[1].str()] = layer.component;
        const std::string args = (*it)[2].str();
        for (auto l = std::sregex_iterator(args.begin(), args.end(), lib_re);
             l != std::sregex_iterator(); ++l) {
          linked[layer.component].insert((*l)[1].str());
        }
      }
    }
  }
  // proto's library is a protobuf_generate target, not an envtune_library call.
  owner["envtune_proto"] = "proto";
  ASSERT_GE(owner.size(), rows.size());
  for (const Layer& layer : rows) {
    for (const std::string& lib : linked[layer.component]) {
      auto it = owner.find(lib);
      ASSERT_NE(it, owner.end()) << layer.component << " links " << lib
                                 << ", defined by no component";
      if (it->second == layer.component) continue;
      EXPECT_TRUE(layer.deps.count(it->second))
          << layer.component << " links " << lib << " (" << it->second
          << "), not listed in docs/architecture.md's table";
    }
  }
}

}  // namespace
}  // namespace envtune
