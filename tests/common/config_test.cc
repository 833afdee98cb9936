#include "common/config.h"

#include <string_view>

#include "common/config_sections.h"
#include "gmock/gmock.h"
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

// Keys are declared by being read: each once, by its "[*]" pattern, with type, default and range.
TEST(ConfigDeclaredTest, ReadsDeclareKeysWithTypeDefaultAndRange) {
  auto config = Config::FromString(kYaml);
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  static constexpr ConfigBound kBounds[] = {{"learner.lr", 0, 1},
                                            {"curriculum.stages[*].stage", 1, 4}};
  reader.AddBounds(kBounds);
  reader.Get<double>("learner.lr", 1e-6);
  reader.Get<std::vector<int>>("learner.sizes", {1, 2});
  for (size_t i = 0; i < reader.SequenceSize("curriculum.stages"); ++i) {
    reader.Get<int>("curriculum.stages[" + std::to_string(i) + "].stage", 0);
  }
  reader.Require<std::string>("learner.name");
  reader.Get<std::string>("learner.name", "again");  // first read wins; stays required
  const std::vector<DeclaredKey> keys = reader.declared();
  ASSERT_EQ(keys.size(), 4u);
  EXPECT_EQ(keys[0].key, "learner.lr");
  EXPECT_EQ(keys[0].type, "a number");
  EXPECT_EQ(keys[0].fallback, "1e-06");
  EXPECT_TRUE(keys[0].bounded);
  EXPECT_EQ(keys[0].max, 1);
  EXPECT_EQ(keys[1].key, "learner.sizes");
  EXPECT_EQ(keys[1].type, "a list of integers");
  EXPECT_EQ(keys[1].fallback, "[1, 2]");
  EXPECT_FALSE(keys[1].bounded);
  EXPECT_EQ(keys[2].key, "curriculum.stages[*].stage");  // both stages: one entry
  EXPECT_TRUE(keys[2].bounded);
  EXPECT_EQ(keys[2].min, 1);
  EXPECT_EQ(keys[3].key, "learner.name");
  EXPECT_TRUE(keys[3].required);
  EXPECT_EQ(keys[3].fallback, "");
}

// A program owns some sections; the known others are its peers' business; a section nobody
// owns ("envserver:", "data:") is an error naming the known ones, also for a non-scalar key.
TEST(ConfigSectionsTest, OtherSectionsAreSkippedAndUnknownOnesRefused) {
  auto config = Config::FromString(
      "learner: {lr: 1}\nactor: {concurrency: 2}\nenvserver: {port: 1}\n? [1, 2]\n: 3\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  reader.Get<double>("learner.lr", 0);
  DeclareOtherSections(reader, *config, {"learner", "model"});
  absl::Status s = reader.Finish();
  ASSERT_FALSE(s.ok());
  const std::string message(s.message());
  EXPECT_THAT(message, ::testing::HasSubstr("unknown section 'envserver' (known: launch, "));
  EXPECT_THAT(message, ::testing::HasSubstr("unknown section '<non-scalar key>'"));
  EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr("actor.concurrency")));
  EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr("unknown key 'envserver.port'")));

  // Its own section is still checked key by key; the others are not.
  auto typo = Config::FromString("learner: {lrr: 1}\nactor: {concurency: 2}\n");
  ASSERT_TRUE(typo.ok());
  ConfigReader typo_reader(*typo);
  typo_reader.Get<double>("learner.lr", 0);
  DeclareOtherSections(typo_reader, *typo, {"learner"});
  EXPECT_THAT(std::string(typo_reader.Finish().message()),
              ::testing::AllOf(::testing::HasSubstr("unknown key 'learner.lrr'"),
                               ::testing::Not(::testing::HasSubstr("concurency"))));

  // Every section of the table is known.
  for (const ConfigSection& section : ConfigSections()) {
    auto one = Config::FromString(std::string(section.name) + ": {}\n");
    ASSERT_TRUE(one.ok());
    ConfigReader r(*one);
    DeclareOtherSections(r, *one, {});
    EXPECT_TRUE(r.Finish().ok()) << section.name;
  }
}

}  // namespace
}  // namespace envtune
