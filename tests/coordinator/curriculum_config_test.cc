#include "coordinator/curriculum_config.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string DataDir() {
  const char* source = std::getenv("ENVTUNE_SOURCE_DIR");
  return std::string(source != nullptr ? source : ".") + "/data";
}

TEST(CurriculumConfigTest, SplitsHaveThePaperSizes) {
  auto train = LoadSplitTaskIds(DataDir(), "train", {}, 0);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->size(), 400u);
  auto val_base = LoadSplitTaskIds(DataDir(), "val", {"base"}, 0);
  ASSERT_TRUE(val_base.ok());
  EXPECT_EQ(val_base->size(), 25u);
  EXPECT_EQ(val_base->front(), "multi_turn_base_4");
  auto limited = LoadSplitTaskIds(DataDir(), "test", {"miss_func", "long_context"}, 3);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 6u);
  EXPECT_EQ(LoadSplitTaskIds(DataDir(), "nope", {}, 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadSplitTaskIds(DataDir(), "train", {"bogus"}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CurriculumConfigTest, ReadsStagesAndRejectsUnknownKeys) {
  auto config = Config::FromString(R"(
coordinator: {worker_expiry_ms: 5000}
curriculum:
  stages:
    - {name: syntax, categories: [base], limit: 4, reward: format, group_size: 2,
       advance: {after_steps: 3}}
    - {name: independent, augment: {start: 1.0, end: 0.0, anneal_steps: 10}, typo_key: 1}
)");
  ASSERT_TRUE(config.ok());
  ConfigReader reader(*config);
  auto options = ReadCoordinatorOptions(reader, DataDir());
  ASSERT_TRUE(options.ok()) << options.status();
  ASSERT_EQ(options->stages.size(), 2u);
  EXPECT_EQ(options->stages[0].task_ids.size(), 4u);
  EXPECT_EQ(options->stages[0].reward_kind, v1::REWARD_KIND_FORMAT);
  EXPECT_EQ(options->stages[0].advance.after_learner_steps, 3);
  EXPECT_EQ(options->stages[1].task_ids.size(), 400u);
  EXPECT_DOUBLE_EQ(options->stages[1].augment_end, 0.0);
  EXPECT_EQ(options->worker_expiry, absl::Seconds(5));
  absl::Status finish = reader.Finish();
  EXPECT_NE(std::string(finish.message()).find("curriculum.stages[1].typo_key"),
            std::string::npos)
      << finish;
}

TEST(CurriculumConfigTest, AnUnknownRewardNamesTheKnownOnes) {
  EXPECT_EQ(*ParseRewardKind("format"), v1::REWARD_KIND_FORMAT);
  EXPECT_EQ(*ParseRewardKind("progress"), v1::REWARD_KIND_PROGRESS);
  auto config = Config::FromString(R"(
curriculum:
  stages:
    - {name: syntax, categories: [base], limit: 1, reward: Format}
)");
  ASSERT_TRUE(config.ok());
  ConfigReader reader(*config);
  ASSERT_TRUE(ReadCoordinatorOptions(reader, DataDir()).ok());
  absl::Status finish = reader.Finish();
  EXPECT_EQ(finish.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(finish.message())
                .find("curriculum.stages[0].reward: unknown reward "
                      "'Format' (one of: format, progress, binary)"),
            std::string::npos)
      << finish;
}

TEST(CurriculumConfigTest, AnInlineAdminTokenPointsToTheTokenFile) {
  auto config = Config::FromString("coordinator: {admin_token: s3cret-s3cret-s3cret}\n");
  ASSERT_TRUE(config.ok());
  ConfigReader reader(*config);
  ASSERT_TRUE(ReadCoordinatorOptions(reader, DataDir()).ok());
  absl::Status finish = reader.Finish();
  EXPECT_EQ(finish.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(finish.message()).find("security.admin_token_file"), std::string::npos)
      << finish;
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

TEST(CurriculumConfigTest, QuotaKeysAndSaneBounds) {
  auto config = Config::FromString(R"(
coordinator: {max_leases_per_worker: 8, lease_fair_share: false, max_workers: 100}
curriculum: {stages: [{categories: [base], limit: 2}]}
)");
  ASSERT_TRUE(config.ok());
  ConfigReader reader(*config);
  auto options = ReadCoordinatorOptions(reader, DataDir());
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(reader.Finish().ok()) << reader.Finish();
  EXPECT_EQ(options->max_leases_per_worker, 8u);
  EXPECT_FALSE(options->lease_fair_share);
  EXPECT_EQ(options->max_workers, 100u);

  auto absurd = Config::FromString(R"(
coordinator: {max_workers: 100000000, heartbeat_interval_ms: -5, lease_timeout_ms: 1000000000000000000}
curriculum:
  stages:
    - {categories: [base], limit: 2, group_size: 4000000000, max_steps_per_turn: 101}
    - {categories: [base], limit: 2, augment: {start: 2}, max_episode_tokens: 100000000}
)");
  ASSERT_TRUE(absurd.ok());
  ConfigReader bad(*absurd);
  ASSERT_TRUE(ReadCoordinatorOptions(bad, DataDir()).ok());
  absl::Status finish = bad.Finish();
  ASSERT_EQ(finish.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(finish.message());
  for (const char* expected : {"coordinator.max_workers: 100000000 is outside [1, 2048]",
                               "coordinator.heartbeat_interval_ms: -5 is outside [10, 600000]",
                               "coordinator.lease_timeout_ms: 1000000000000000000 is outside [100, 604800000]",
                               "curriculum.stages[0].group_size: 4000000000 is outside [1, 1024]",
                               "curriculum.stages[0].max_steps_per_turn: 101 is outside [1, 100]",
                               "curriculum.stages[1].augment.start: 2 is outside [0, 1]",
                               "curriculum.stages[1].max_episode_tokens: 100000000 is outside"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << " in " << message;
  }
}

}  // namespace
}  // namespace envtune
