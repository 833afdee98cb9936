// All 800 BFCL multi-turn tasks: replying with each turn's ground-truth calls (one step, in the
// envtuning JSON format or as Hermes <tool_call> blocks) and then an answer -- or just an answer
// on cannot-serve turns -- scores 1 on every turn, with and without augmentation, under training
// and BFCL-evaluation semantics, and the episode reward is 1. Also records the
// largest episode-state blob per category (kept small: only call strings travel).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "envserver/episode.h"
#include "gtest/gtest.h"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using testing_util::Answer;

struct Mode {
  const char* name;
  v1::OutputFormat format;
  bool eval;
  bool alternate_augment;  // augmentation on for every other task
};

// The reply that makes all of `calls` in one step, in `format`.
absl::StatusOr<std::string> Reply(const TaskCatalog& catalog, const BfclTask& task,
                                  const std::vector<std::string>& calls, v1::OutputFormat format) {
  if (format == v1::OUTPUT_FORMAT_ENVTUNING) return testing_util::GroundTruthReply(catalog, task, calls);
  std::string out;
  for (const std::string& c : calls) {
    absl::StatusOr<PyValue> obj = testing_util::GroundTruthCallObject(catalog, task, c);
    if (!obj.ok()) return obj.status();
    JsonDumpsOptions opts;
    opts.ensure_ascii = false;
    out += "<tool_call>\n" + obj->JsonDumps(opts) + "\n</tool_call>\n";
  }
  return out;
}

TEST(EpisodeGroundTruth, EveryTaskScoresOneOnEveryTurn) {
  if (!testing_util::HaveData()) GTEST_SKIP() << "BFCL data not found under " << testing_util::DataDir();
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(testing_util::DataDir() + "/bfcl");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  EpisodeEngineOptions eo;
  eo.hmac_key = "test-key";
  EpisodeEngine engine(&*catalog, eo);
  const Mode modes[] = {{"envtuning/training", v1::OUTPUT_FORMAT_ENVTUNING, false, true},
                        {"hermes/training", v1::OUTPUT_FORMAT_HERMES, false, false},
                        {"envtuning/bfcl-eval", v1::OUTPUT_FORMAT_ENVTUNING, true, false}};
  for (const Mode& mode : modes) {
    SCOPED_TRACE(mode.name);
    std::map<std::string, size_t> max_blob;
    int failures = 0, tasks = 0;
    for (const BfclTask& task : catalog->tasks()) {
      v1::EpisodeOptions o;
      o.set_output_format(mode.format);
      o.set_bfcl_eval_semantics(mode.eval);
      o.set_augment_probability(mode.alternate_augment && tasks % 2 == 1 ? 1.0 : 0.0);
      ++tasks;
      absl::StatusOr<v1::StartEpisodeResponse> start = engine.Start(task.id, o);
      ASSERT_TRUE(start.ok()) << task.id << ": " << start.status();
      std::string blob = start->episode_state();
      double reward = -1;
      for (size_t t = 0; t < task.ground_truth.size() && failures < 20; ++t) {
        if (!task.ground_truth[t].empty()) {
          absl::StatusOr<std::string> reply = Reply(*catalog, task, task.ground_truth[t], mode.format);
          ASSERT_TRUE(reply.ok()) << task.id << " turn " << t << ": " << reply.status();
          absl::StatusOr<v1::StepResponse> s = engine.Step(blob, *reply);
          ASSERT_TRUE(s.ok()) << task.id << ": " << s.status();
          ASSERT_FALSE(s->turn_ended()) << task.id << " turn " << t << ": " << s->format_error();
          ASSERT_EQ(static_cast<size_t>(s->calls_size()), task.ground_truth[t].size()) << task.id;
          blob = s->episode_state();
        }
        absl::StatusOr<v1::StepResponse> a =
            engine.Step(blob, mode.format == v1::OUTPUT_FORMAT_HERMES ? "Done." : Answer());
        ASSERT_TRUE(a.ok()) << task.id << ": " << a.status();
        ASSERT_TRUE(a->turn_ended());
        if (a->turn_score().score() != 1.0) {
          ++failures;
          ADD_FAILURE() << task.id << " turn " << t << " scored 0 (state_ok=" << a->turn_score().state_ok()
                        << ", response_ok=" << a->turn_score().response_ok() << ")";
        }
        blob = a->episode_state();
        max_blob[task.category] = std::max(max_blob[task.category], blob.size());
        reward = a->episode_reward();
        EXPECT_EQ(a->episode_ended(), t + 1 == task.ground_truth.size());
      }
      if (failures >= 20) break;
      EXPECT_EQ(reward, 1.0) << task.id;
    }
    EXPECT_EQ(tasks, 800);
    for (const auto& [cat, size] : max_blob) {
      std::cout << mode.name << ": largest final blob, " << cat << ": " << size << " bytes\n";
      EXPECT_LT(size, 16u * 1024) << cat;
    }
  }
}

}  // namespace
}  // namespace envtune
