// The subcommands' flag parser (common/cli_flags.h).
#include "common/cli_flags.h"

#include "gtest/gtest.h"

namespace envtune {
namespace {

TEST(CliFlagsTest, ParsesValuesBoolsAndPositionals) {
  absl::StatusOr<CliFlags> f =
      ParseCliFlags({"--model", "m", "--limit=3", "pos", "--quiet", "--seed", "5"},
                    {"model", "limit", "seed"}, {"quiet"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Get("model"), "m");
  EXPECT_EQ(*f->GetInt("limit", 0), 3);
  EXPECT_EQ(*f->GetInt("seed", 0), 5);
  EXPECT_TRUE(*f->GetBool("quiet", false));
  EXPECT_EQ(*f->GetInt("missing", 9), 9);
  ASSERT_EQ(f->positionals.size(), 1u);
  EXPECT_EQ(f->positionals[0], "pos");
}

TEST(CliFlagsTest, RejectsUnknownAndMissingValuesAndBadNumbers) {
  EXPECT_FALSE(ParseCliFlags({"--bogus=1"}, {"model"}).ok());
  EXPECT_FALSE(ParseCliFlags({"--model"}, {"model"}).ok());
  absl::StatusOr<CliFlags> f = ParseCliFlags({"--limit=x"}, {"limit"});
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->GetInt("limit", 0).ok());
  EXPECT_FALSE(f->GetDouble("limit", 0).ok());
}

}  // namespace
}  // namespace envtune
