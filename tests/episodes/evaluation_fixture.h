// Test fixture shared by the evaluation runner's tests (tests/episodes/evaluation_test.cc) and
// `envtune eval`'s (tests/deploy/commands/eval_command_test.cc): the BFCL task catalog and an
// episode engine loaded once per suite, an in-process env per test, and task samples.
#ifndef ENVTUNE_TESTS_EPISODES_EVALUATION_FIXTURE_H_
#define ENVTUNE_TESTS_EPISODES_EVALUATION_FIXTURE_H_

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "envserver/episode.h"
#include "envserver/task_catalog.h"
#include "episodes/evaluation.h"
#include "gtest/gtest.h"

namespace envtune::testing_eval {

inline std::string SourceDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return s != nullptr ? s : ".";
}
inline std::string DataDir() { return SourceDir() + "/data"; }

class EvaluationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<TaskCatalog> c = TaskCatalog::Load(DataDir() + "/bfcl");
    if (!c.ok()) return;
    catalog_ = new TaskCatalog(*std::move(c));
    engine_ = new EpisodeEngine(catalog_, EpisodeEngineOptions{});
  }
  void SetUp() override {
    if (catalog_ == nullptr) GTEST_SKIP() << "BFCL data not found under " << DataDir();
    env_ = InProcessEvalEnv(engine_);
  }
  // The first `per_category` tasks of each category.
  std::vector<std::string> Sample(int per_category) {
    std::vector<std::string> ids;
    for (const std::string& c : TaskCatalog::Categories()) {
      std::vector<const BfclTask*> tasks = catalog_->ByCategory(c);
      for (int i = 0; i < per_category && i < static_cast<int>(tasks.size()); ++i) {
        ids.push_back(tasks[i]->id);
      }
    }
    return ids;
  }
  static inline TaskCatalog* catalog_ = nullptr;
  static inline EpisodeEngine* engine_ = nullptr;
  std::unique_ptr<EvalEnv> env_;
};

}  // namespace envtune::testing_eval

#endif  // ENVTUNE_TESTS_EPISODES_EVALUATION_FIXTURE_H_
