// `envtune env replay|check|decode` reached through the env subcommand table (flag defaults:
// --mode bfcl_prompting, --model_name envtune); the logic itself is tested in tests/envserver.
#include <cstdlib>
#include <sstream>
#include <string>
#include <sys/stat.h>

#include "deploy/env_commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

using ::testing::HasSubstr;

std::string DataDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return std::string(s != nullptr ? s : ".") + "/data";
}

bool HaveData() {
  struct stat st;
  return ::stat((DataDir() + "/bfcl/long_context_constants.json").c_str(), &st) == 0;
}

TEST(EnvCliCommands, ReplayCheckDecodeAreWired) {
  if (!HaveData()) GTEST_SKIP() << "BFCL data not found under " << DataDir();
  {
    std::istringstream in(R"J({"id": "multi_turn_base_1", "turns": [{"calls": ["ls(a=True)"]}]})J" "\n");
    std::ostringstream out;
    EXPECT_EQ(RunEnvCommand({"replay", "-"}, DataDir(), in, out), 0);
    EXPECT_THAT(out.str(), HasSubstr(R"J("results": ["{\"current_directory_content\": [\"workspace\"]}"])J"));
  }
  {
    std::istringstream in(
        R"J({"id": "multi_turn_base_1", "result": [["[ls(a=True)]"], [], [], []]})J" "\n");
    std::ostringstream out;
    EXPECT_EQ(RunEnvCommand({"check", "-"}, DataDir(), in, out), 0);
    EXPECT_THAT(out.str(), HasSubstr(R"J("error_message": "Model response list is empty for turn 1")J"));
    EXPECT_THAT(out.str(), HasSubstr(R"J("reward": 0.25)J"));
  }
  {
    std::istringstream in(R"J({"mode": "bfcl_prompting", "input": "[f(a=+5)]"})J"
                          "\nnot json\n");
    std::ostringstream out;
    EXPECT_EQ(RunEnvCommand({"decode", "-"}, DataDir(), in, out), 1);
    EXPECT_THAT(out.str(), HasSubstr(R"J({"ok": true, "calls": ["f(a=-5)"], "no_call": false, "error": null})J"));
    EXPECT_THAT(out.str(), HasSubstr(R"J({"line": 2, "error": "bad JSON)J"));
  }
  std::istringstream empty;
  std::ostringstream out;
  EXPECT_EQ(RunEnvCommand({"check"}, DataDir(), empty, out), 2);
  EXPECT_EQ(RunEnvCommand({"nosuch"}, DataDir(), empty, out), 2);
  EXPECT_THAT(out.str(), HasSubstr("env check"));
}

}  // namespace
}  // namespace envtune
