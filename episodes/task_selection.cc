#include "episodes/task_selection.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace envtune {

namespace {
std::string StripMultiTurn(const std::string& s) {
  static const std::string kPrefix = "multi_turn_";
  return s.compare(0, kPrefix.size(), kPrefix) == 0 ? s.substr(kPrefix.size()) : s;
}
}  // namespace

std::string ShortCategory(std::string_view name) {
  std::string s(name);
  for (const std::string& c : TaskCatalog::Categories()) {
    if (s == c || absl::StartsWith(s, c + "_")) {
      // "multi_turn_base_3" -> "base"; guard against "multi_turn_miss_func" matching "..._miss"
      std::string rest = s.substr(c.size());
      if (rest.empty() || std::all_of(rest.begin() + 1, rest.end(), ::isdigit)) {
        return StripMultiTurn(c);
      }
    }
  }
  return StripMultiTurn(s);
}

absl::StatusOr<std::vector<std::string>> SelectEvalTasks(const TaskCatalog& catalog,
                                                         const std::string& data_dir,
                                                         const TaskSelection& sel) {
  std::set<std::string> cats;
  std::set<std::string> known;
  for (const std::string& c : TaskCatalog::Categories()) known.insert(ShortCategory(c));
  for (const std::string& c : sel.categories) {
    std::string s = ShortCategory(c);
    if (!known.count(s)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown category '", c, "' (expected base, miss_func, miss_param, long_context)"));
    }
    cats.insert(s);
  }
  std::optional<std::set<std::string>> subset_ids;
  if (sel.subset != "all" && !sel.subset.empty()) {
    subset_ids.emplace();
    for (absl::string_view part : absl::StrSplit(sel.subset, absl::ByAnyChar(",+"), absl::SkipEmpty())) {
      std::string name(absl::StripAsciiWhitespace(part));
      if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") !=
                              std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "bad subset '", name, "' (a split file name under splits/: train, val, test, ...)"));
      }
      std::string path = absl::StrCat(data_dir, "/splits/", name, ".txt");
      std::ifstream f(path);
      if (!f) return absl::NotFoundError(absl::StrCat("cannot read split file ", path));
      std::string line;
      while (std::getline(f, line)) {
        std::string id(absl::StripAsciiWhitespace(line));
        if (!id.empty()) subset_ids->insert(id);
      }
    }
  }
  std::optional<std::set<std::string>> file_ids;
  if (!sel.tasks_file.empty()) {
    std::ifstream f(sel.tasks_file);
    if (!f) return absl::NotFoundError(absl::StrCat("cannot read --tasks file ", sel.tasks_file));
    file_ids.emplace();
    std::string line;
    int line_no = 0;
    while (std::getline(f, line)) {
      ++line_no;
      std::string id(absl::StripAsciiWhitespace(line));
      if (id.empty() || id[0] == '#') continue;
      if (catalog.Find(id) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(sel.tasks_file, ":", line_no, ": unknown task id '", id, "'"));
      }
      file_ids->insert(id);
    }
  }
  std::vector<std::string> out;
  for (const BfclTask& t : catalog.tasks()) {
    if (!cats.empty() && !cats.count(ShortCategory(t.category))) continue;
    if (subset_ids && !subset_ids->count(t.id)) continue;
    if (file_ids && !file_ids->count(t.id)) continue;
    out.push_back(t.id);
    if (sel.limit > 0 && static_cast<int>(out.size()) >= sel.limit) break;
  }
  return out;
}

}  // namespace envtune
