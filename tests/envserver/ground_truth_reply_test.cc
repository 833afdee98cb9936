// Ground-truth reply texts (envserver/ground_truth_reply.h): each format's shape, and every format
// decodes back to the task's ground-truth calls.
#include "envserver/ground_truth_reply.h"

#include <cstdlib>

#include "envserver/decode.h"
#include "envserver/prompts.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string DataDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return std::string(s != nullptr ? s : ".") + "/data";
}

TEST(GroundTruthReplyTest, RepliesLookLikeEachFormat) {
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(DataDir() + "/bfcl");
  if (!catalog.ok()) GTEST_SKIP() << "BFCL data not found under " << DataDir();
  const BfclTask* task = catalog->Find("multi_turn_base_0");
  ASSERT_NE(task, nullptr);
  const std::vector<std::string>& gt = task->ground_truth[0];
  ASSERT_FALSE(gt.empty());
  absl::StatusOr<std::string> p =
      GroundTruthCallsReply(*catalog, *task, v1::OUTPUT_FORMAT_BFCL_PROMPTING, gt);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->front(), '[');
  EXPECT_EQ(p->back(), ']');
  absl::StatusOr<std::string> e = GroundTruthCallsReply(*catalog, *task, v1::OUTPUT_FORMAT_ENVTUNING, gt);
  ASSERT_TRUE(e.ok());
  EXPECT_NE(e->find("<tool_call>[{\"name\": "), std::string::npos) << *e;
  absl::StatusOr<std::string> h = GroundTruthCallsReply(*catalog, *task, v1::OUTPUT_FORMAT_HERMES, gt);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->rfind("<tool_call>\n{\"name\": ", 0), 0u) << *h;
  // Every format decodes back to the same number of calls.
  EXPECT_EQ(DecodeModelOutput(DecodeMode::kBfclPrompting, *p).calls.size(), gt.size());
  EXPECT_EQ(DecodeModelOutput(DecodeMode::kEnvTuning, *e).calls.size(), gt.size());
  EXPECT_EQ(DecodeHermes(*h).calls.size(), gt.size());
  EXPECT_NE(GroundTruthAnswerReply(v1::OUTPUT_FORMAT_ENVTUNING, false).find("<answer>"), std::string::npos);
}

TEST(GroundTruthReplyTest, CallsThatAreNotPlainCallsAreRefused) {
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(DataDir() + "/bfcl");
  if (!catalog.ok()) GTEST_SKIP() << "BFCL data not found under " << DataDir();
  const BfclTask* task = catalog->Find("multi_turn_base_0");
  ASSERT_NE(task, nullptr);
  EXPECT_FALSE(
      GroundTruthCallsReply(*catalog, *task, v1::OUTPUT_FORMAT_ENVTUNING, {"x.y(1)"}).ok());
  EXPECT_FALSE(
      GroundTruthCallsReply(*catalog, *task, v1::OUTPUT_FORMAT_ENVTUNING, {"ls(**kw)"}).ok());
}

}  // namespace
}  // namespace envtune
