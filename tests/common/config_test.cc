#include "common/config.h"

#include "gtest/gtest.h"

namespace envtune {
namespace {

constexpr char kYaml[] = R"(
learner:
  lr: 1.0e-6
  clip: {low: 0.2, high: 0.28}
curriculum:
  stages:
    - {stage: 1, reward: format}
    - {stage: 2, reward: progress}
)";

TEST(ConfigTest, ReadsTypedValuesAndSequences) {
  auto config = Config::FromString(kYaml);
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  EXPECT_DOUBLE_EQ(reader.Get<double>("learner.lr", 0), 1e-6);
  EXPECT_DOUBLE_EQ(reader.Get<double>("learner.clip.high", 0), 0.28);
  EXPECT_DOUBLE_EQ(reader.Get<double>("learner.clip.low", 0), 0.2);
  EXPECT_EQ(reader.Get<int>("learner.missing", 7), 7);
  ASSERT_EQ(reader.SequenceSize("curriculum.stages"), 2u);
  EXPECT_EQ(reader.Get<std::string>("curriculum.stages[1].reward", ""), "progress");
  EXPECT_EQ(reader.Get<int>("curriculum.stages[0].stage", 0), 1);
  reader.MarkRead("curriculum.stages[0].reward");
  reader.MarkRead("curriculum.stages[1].stage");
  EXPECT_TRUE(reader.Finish().ok()) << reader.Finish();
}

TEST(ConfigTest, OverridesReplaceAndAdd) {
  auto config = Config::FromString(kYaml, {"learner.lr=3e-5", "learner.clip.high=0.3",
                                           "curriculum.stages[0].reward=progress",
                                           "actor.count=4"});
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  EXPECT_DOUBLE_EQ(reader.Get<double>("learner.lr", 0), 3e-5);
  EXPECT_DOUBLE_EQ(reader.Get<double>("learner.clip.high", 0), 0.3);
  EXPECT_EQ(reader.Get<std::string>("curriculum.stages[0].reward", ""), "progress");
  EXPECT_EQ(reader.Get<int>("actor.count", 0), 4);
}

TEST(ConfigTest, UnknownKeysAndBadValuesNameTheKey) {
  auto config = Config::FromString(kYaml, {"learner.lrr=1"});
  ASSERT_TRUE(config.ok());
  ConfigReader reader(*config);
  reader.Get<double>("learner.lr", 0);
  reader.Get<std::string>("learner.clip.low", "");
  reader.Get<int>("learner.clip.high", 0);  // 0.28 is not an integer
  reader.MarkRead("curriculum");
  absl::Status status = reader.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::string message(status.message());
  EXPECT_NE(message.find("unknown key 'learner.lrr'"), std::string::npos) << message;
  EXPECT_NE(message.find("learner.clip.high: cannot read '0.28' as an integer"),
            std::string::npos)
      << message;
}

TEST(ConfigTest, MalformedInputIsAnError) {
  EXPECT_EQ(Config::FromString("a: [1, 2").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Config::FromString("- 1\n- 2").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Config::FromString("a: 1", {"novalue"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Config::Load("/nonexistent/x.yaml").status().code(), absl::StatusCode::kNotFound);
  Config small = *Config::FromString("a: 1");
  ConfigReader reader(small);  // holds a reference: the config must outlive it
  reader.Require<int>("b");
  reader.Get<int>("a", 0);
  EXPECT_NE(std::string(reader.Finish().message()).find("b: required"), std::string::npos);
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// Bounds tables: a value outside its key's range (or NaN) is an error naming key, value and
// bound, and Get returns the fallback; "[*]" matches any sequence index; list elements are
// checked one by one; unbounded keys are untouched.
TEST(ConfigBoundsTest, OutOfRangeValuesNameKeyValueAndBound) {
  auto config = Config::FromString(R"(
model: {tiny: {num_hidden_layers: 100000000}}
learner: {lr: .nan, stage_batch_groups: [1, 2, 1000000], ok: 5, free: 1e300}
curriculum: {stages: [{group_size: 8}, {group_size: 4000000000}]}
launch: {actors: -3}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  static constexpr ConfigBound kBounds[] = {
      {"model.tiny.num_hidden_layers", 1, 1024},
      {"learner.lr", 0, 1},
      {"learner.stage_batch_groups", 1, 65536},
      {"learner.ok", 1, 10},
      {"curriculum.stages[*].group_size", 1, 1024},
      {"launch.actors", 1, 256},
  };
  reader.AddBounds(kBounds);
  EXPECT_EQ(reader.Get<int64_t>("model.tiny.num_hidden_layers", 2), 2);
  EXPECT_EQ(reader.Get<double>("learner.lr", 1e-6), 1e-6);
  EXPECT_EQ(reader.Get<std::vector<int>>("learner.stage_batch_groups", {7}), std::vector<int>{7});
  EXPECT_EQ(reader.Get<int>("learner.ok", 0), 5);
  EXPECT_EQ(reader.Get<double>("learner.free", 0), 1e300);
  EXPECT_EQ(reader.Get<uint32_t>("curriculum.stages[0].group_size", 1), 8u);
  EXPECT_EQ(reader.Get<uint64_t>("curriculum.stages[1].group_size", 1), 1u);
  EXPECT_EQ(reader.Get<int>("launch.actors", 1), 1);
  reader.MarkRead("curriculum");
  absl::Status status = reader.Finish();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  for (const char* expected :
       {"model.tiny.num_hidden_layers: 100000000 is outside [1, 1024]",
        "learner.lr: .nan is outside [0, 1]",
        "learner.stage_batch_groups[2]: 1000000 is outside [1, 65536]",
        "curriculum.stages[1].group_size: 4000000000 is outside [1, 1024]",
        "launch.actors: -3 is outside [1, 256]"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << " in " << message;
  }
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// An override with a malformed index ("stages[x]") threw std::invalid_argument out of
// Config::Override and aborted every role (found by fuzz/config_fuzz); it is now an error
// naming the part.
TEST(ConfigTest, MalformedIndicesAreErrorsNotAborts) {
  for (const char* bad : {"curriculum.stages[x].group_size=1", "curriculum.stages[-1].group_size=1",
                          "curriculum.stages[99999999999999999999999].group_size=1",
                          ".\377{.\333c\377{;[\010]-=U\350-["}) {
    absl::StatusOr<Config> config =
        Config::FromString("curriculum: {stages: [{group_size: 2}]}\n", {bad});
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  absl::StatusOr<Config> x = Config::FromString("", {"curriculum.stages[x].group_size=1"});
  EXPECT_NE(x.status().message().find("'[x]' is not an index"), std::string::npos) << x.status();
  absl::StatusOr<Config> ok = Config::FromString("a: [1, 2]\n", {"a[1]=5"});
  ASSERT_TRUE(ok.ok());
  ConfigReader reader(*ok);
  EXPECT_EQ(reader.Get<int>("a[1]", 0), 5);
}

}  // namespace
}  // namespace envtune
