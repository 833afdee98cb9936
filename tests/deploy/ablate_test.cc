// deploy/ablate.h: arm B's config for each switch, the per-arm figures and the table. (The runs
// themselves are `envtune train` runs, covered by the launcher's tests.)
#include "deploy/ablate.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace envtune {
namespace {

constexpr char kConfig[] = R"(
launch: {warm_start: sft}
curriculum:
  stages:
    - {name: syntax, reward: format, augment: {start: 1.0}, limit: 2, advance: {after_steps: 10}}
    - {name: hints, reward: progress, augment: {start: 1.0}, limit: 2, advance: {after_steps: 8}}
    - {name: independent, augment: {start: 1.0, end: 0.0, anneal_steps: 2}, limit: 8,
       advance: {after_steps: 2}}
)";

TEST(AblatedConfigTest, AugmentOffEverywhere) {
  absl::StatusOr<YAML::Node> b = AblatedConfig(YAML::Load(kConfig), "augment");
  ASSERT_TRUE(b.ok()) << b.status();
  const YAML::Node stages = (*b)["curriculum"]["stages"];
  ASSERT_EQ(stages.size(), 3u);
  for (const YAML::Node& stage : stages) {
    EXPECT_EQ(stage["augment"]["start"].as<double>(), 0.0);
    EXPECT_EQ(stage["augment"]["end"].as<double>(), 0.0);
    EXPECT_FALSE(stage["augment"]["anneal_steps"]);
  }
  EXPECT_EQ(stages[0]["reward"].as<std::string>(), "format");  // nothing else changes
}

TEST(AblatedConfigTest, BinaryRewardWhereTheProgressRewardWas) {
  const YAML::Node a = YAML::Load(kConfig);
  absl::StatusOr<YAML::Node> b = AblatedConfig(a, "reward");
  ASSERT_TRUE(b.ok()) << b.status();
  const YAML::Node stages = (*b)["curriculum"]["stages"];
  EXPECT_EQ(stages[0]["reward"].as<std::string>(), "format");
  EXPECT_EQ(stages[1]["reward"].as<std::string>(), "binary");
  EXPECT_EQ(stages[2]["reward"].as<std::string>(), "binary");  // progress by default
  // A is left as it was.
  EXPECT_EQ(a["curriculum"]["stages"][1]["reward"].as<std::string>(), "progress");
}

TEST(AblatedConfigTest, OneStageOfTheLastStagesTasksForAllTheSteps) {
  absl::StatusOr<YAML::Node> b = AblatedConfig(YAML::Load(kConfig), "curriculum");
  ASSERT_TRUE(b.ok()) << b.status();
  const YAML::Node stages = (*b)["curriculum"]["stages"];
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0]["name"].as<std::string>(), "single");
  EXPECT_EQ(stages[0]["limit"].as<int>(), 8);
  EXPECT_EQ(stages[0]["advance"]["after_steps"].as<int>(), 20);
  EXPECT_EQ(stages[0]["augment"]["anneal_steps"].as<int>(), 2);
}

TEST(AblatedConfigTest, BadInputNamesTheProblem) {
  absl::StatusOr<YAML::Node> unknown = AblatedConfig(YAML::Load(kConfig), "lr");
  EXPECT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown switch 'lr'"), std::string::npos);
  EXPECT_FALSE(AblatedConfig(YAML::Load("launch: {}"), "augment").ok());
  absl::StatusOr<YAML::Node> no_steps = AblatedConfig(
      YAML::Load("curriculum: {stages: [{name: a, advance: {metric: x}}]}"), "curriculum");
  EXPECT_FALSE(no_steps.ok());
  EXPECT_NE(no_steps.status().message().find("after_steps"), std::string::npos);
}

nlohmann::json Line(int step, int stage, double progress) {
  nlohmann::json j;
  j["step"] = step;
  j["batch_stage"] = stage;
  j["metrics"]["reward/stage" + std::to_string(stage) + "/progress"] = progress;
  j["metrics"]["reward/stage1/progress"] = 0.9;  // an earlier stage's last value, not this batch's
  return j;
}

TEST(SummarizeArmTest, TheBatchStagesProgressOfTheComparedSteps) {
  const std::vector<nlohmann::json> lines = {Line(1, 1, 0.0), Line(2, 2, 0.1), Line(3, 2, 0.2),
                                             Line(4, 2, 0.4), Line(5, 3, 0.3)};
  ArmSummary a = SummarizeArm("A", lines, {2, 3});
  EXPECT_EQ(a.steps, (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(a.progress, (std::vector<double>{0.1, 0.2, 0.4, 0.3}));
  EXPECT_NEAR(a.first_mean, (0.1 + 0.2 + 0.4) / 3, 1e-12);
  EXPECT_NEAR(a.last_mean, (0.2 + 0.4 + 0.3) / 3, 1e-12);
  EXPECT_GT(a.trend.slope, 0);
  ArmSummary b = SummarizeArm("B", lines, {}, {1, 5});
  EXPECT_EQ(b.steps, (std::vector<int64_t>{1, 5}));
  const std::string md = ComparisonMarkdown("t", {a, b});
  EXPECT_NE(md.find("| A | 2-5 | 0.233 | 0.300 | 0.250 |"), std::string::npos) << md;
  EXPECT_NE(md.find("A: 0.100 0.200 0.400 0.300"), std::string::npos) << md;
}

}  // namespace
}  // namespace envtune
