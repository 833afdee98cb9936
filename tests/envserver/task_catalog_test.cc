// TaskCatalog: loads the shipped BFCL data (data/bfcl), lookups, and precise errors on broken input.
#include "envserver/task_catalog.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string DataDir() {
  const char* src = std::getenv("ENVTUNE_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/data/bfcl";
}

TEST(TaskCatalog, LoadsAllTasks) {
  if (!fs::exists(DataDir())) GTEST_SKIP() << "no data at " << DataDir();
  absl::StatusOr<TaskCatalog> cat = TaskCatalog::Load(DataDir());
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_EQ(cat->tasks().size(), 800u);
  for (const std::string& c : TaskCatalog::Categories()) EXPECT_EQ(cat->ByCategory(c).size(), 200u) << c;

  const BfclTask* base0 = cat->Find("multi_turn_base_0");
  ASSERT_NE(base0, nullptr);
  EXPECT_EQ(base0->category, "multi_turn_base");
  EXPECT_EQ(base0->index, 0);
  EXPECT_FALSE(base0->long_context());
  EXPECT_EQ(base0->questions.size(), base0->ground_truth.size());
  EXPECT_EQ(base0->ground_truth[0][0], "cd(folder='document')");
  EXPECT_EQ(base0->questions[0][0].role, "user");
  EXPECT_TRUE(base0->initial_config.dict().Contains("GorillaFileSystem"));

  const BfclTask* mf = cat->Find("multi_turn_miss_func_0");
  ASSERT_NE(mf, nullptr);
  ASSERT_FALSE(mf->missed_function.empty());
  for (const auto& [turn, names] : mf->missed_function) {
    EXPECT_TRUE(mf->questions[turn].empty()) << turn;
    EXPECT_FALSE(names.empty());
    EXPECT_FALSE(cat->ClassOfFunction(*mf, names[0]).empty()) << names[0];
  }
  EXPECT_TRUE(cat->Find("multi_turn_long_context_3")->long_context());
  EXPECT_EQ(cat->Find("nope"), nullptr);

  EXPECT_EQ(cat->FunctionDocs("MathAPI").items().size(), 17u);
  EXPECT_EQ(cat->ClassOfFunction(*base0, "cd"), "GorillaFileSystem");
  EXPECT_EQ(cat->ClassOfFunction(*base0, "nonexistent"), "");
  // The Ellipsis marker is kept verbatim for TradingBot.
  const PyValue* wl = cat->long_context_constants().dict().Find("WATCH_LIST_EXTENSION");
  ASSERT_NE(wl, nullptr);
  ASSERT_TRUE(wl->items().back().is_dict());
  EXPECT_EQ(wl->items().back().dict().Find("__python__")->as_str(), "Ellipsis");
}

TEST(TaskCatalog, ErrorsNameFileAndLine) {
  if (!fs::exists(DataDir())) GTEST_SKIP() << "no data at " << DataDir();
  fs::path tmp = fs::temp_directory_path() / ("envtune_catalog_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::copy(DataDir(), tmp, fs::copy_options::recursive);
  for (auto& p : fs::recursive_directory_iterator(tmp)) {
    fs::permissions(p.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  // Missing file.
  fs::remove(tmp / "long_context_constants.json");
  absl::StatusOr<TaskCatalog> cat = TaskCatalog::Load(tmp.string());
  ASSERT_FALSE(cat.ok());
  EXPECT_THAT(std::string(cat.status().message()), HasSubstr("long_context_constants.json"));
  fs::copy(DataDir() + "/long_context_constants.json", tmp / "long_context_constants.json");

  // Malformed JSON on line 3 of a task file.
  fs::path f = tmp / "BFCL_v4_multi_turn_base.json";
  std::ifstream in(f);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  in.close();
  lines[2] = lines[2].substr(0, lines[2].size() / 2);
  std::ofstream out(f, std::ios::trunc);
  for (const std::string& l : lines) out << l << "\n";
  out.close();
  cat = TaskCatalog::Load(tmp.string());
  ASSERT_FALSE(cat.ok());
  EXPECT_THAT(std::string(cat.status().message()), HasSubstr("BFCL_v4_multi_turn_base.json:3: invalid JSON"));
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace envtune
