// Regressions of inputs fuzz/config_fuzz found (a file of its own: common/config_test.cc is the
// config reader's behaviour). Crash 2: a YAML map key that is not a scalar ({[1]: 2},
// `? {a: 1}`) threw YAML::TypedBadConversion out of ConfigReader::Finish and aborted the role;
// it is an unknown key named '<non-scalar key>', at any depth, through overrides and typed
// reads too.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/config.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

TEST(ConfigFuzzRegressionTest, NonScalarMapKeysAreUnknownKeysNotExceptions) {
  struct Case {
    const char* yaml;
    const char* leaf;  // the unknown key Finish names
  };
  const Case cases[] = {
      {"{[1]: 2}\n", "<non-scalar key>"},
      {"learner: {[1, 2]: 3, lr: 0.1}\n", "learner.<non-scalar key>"},
      {"learner:\n  ? {a: 1}\n  : 2\n  lr: 0.1\n", "learner.<non-scalar key>"},
      {"curriculum: {stages: [{[x]: 1, group_size: 2}]}\n",
       "curriculum.stages[0].<non-scalar key>"},
      {"? [learner]\n: {lr: 1}\n", "<non-scalar key>.lr"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    absl::StatusOr<Config> config = Config::FromString(c.yaml, {"launch.actors=2"});
    ASSERT_TRUE(config.ok()) << config.status();
    ConfigReader reader(*config);
    // Reads around the odd key work and neither throw nor see it.
    EXPECT_EQ(reader.Get<int>("launch.actors", 1), 2);
    (void)reader.Get<double>("learner.lr", 0.5);
    (void)reader.Get<int>("curriculum.stages[0].group_size", 0);
    (void)reader.Get<std::string>("learner.name", "");
    absl::Status finished = reader.Finish();
    ASSERT_FALSE(finished.ok());
    EXPECT_EQ(finished.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(finished.message(), std::string("unknown key '") + c.leaf + "'"))
        << finished.message();
  }
}

// Overrides into a section holding a non-scalar key add or replace the named key only.
TEST(ConfigFuzzRegressionTest, OverridesBesideANonScalarKey) {
  absl::StatusOr<Config> config =
      Config::FromString("learner: {[1]: 2, lr: 0.1}\n", {"learner.lr=0.25"});
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  EXPECT_DOUBLE_EQ(reader.Get<double>("learner.lr", 0.0), 0.25);
  absl::Status finished = reader.Finish();
  EXPECT_TRUE(absl::StrContains(finished.message(), "unknown key 'learner.<non-scalar key>'"))
      << finished;
}

}  // namespace
}  // namespace envtune
