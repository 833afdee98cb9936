// `envtune env play` driven by a scripted terminal, and the env command's usage errors.
#include "deploy/env_commands.h"

#include <cstdlib>
#include <sstream>
#include <string>
#include <sys/stat.h>

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

TEST(EnvPlay, ScriptedEpisodeReachesFullReward) {
  if (!HaveData()) GTEST_SKIP() << "BFCL data not found under " << DataDir();
  // multi_turn_base_42: touch, echo, wc; one reply as a multi-line block ending with ".".
  std::istringstream in(
      ":call [{\"name\": \"touch\", \"arguments\": {\"file_name\": \"Notes2023.txt\"}}]\n"
      ":answer created\n"
      "<think>write it</think>\n"
      "<tool_call>[{\"name\": \"echo\", \"arguments\": {\"content\": \"Study diligently, practice programming, "
      "master algorithms.\", \"file_name\": \"Notes2023.txt\"}}]</tool_call>\n"
      ".\n"
      ":answer written\n"
      "this is not the format\n"
      ".\n"
      ":call [{\"name\": \"wc\", \"arguments\": {\"file_name\": \"Notes2023.txt\", \"mode\": \"c\"}}]\n"
      ":answer counted\n");
  std::ostringstream out;
  EXPECT_EQ(RunEnvCommand({"play", "multi_turn_base_42"}, DataDir(), in, out), 0);
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("task multi_turn_base_42: 3 turns"));
  EXPECT_THAT(text, HasSubstr("call touch(file_name='Notes2023.txt')"));
  EXPECT_THAT(text, HasSubstr("format error: "));
  EXPECT_THAT(text, HasSubstr("== turn 2 ended (answer): score 1"));
  EXPECT_THAT(text, HasSubstr("episode ended: reward 1"));
}

TEST(EnvPlay, QuitStopsEarly) {
  if (!HaveData()) GTEST_SKIP() << "BFCL data not found under " << DataDir();
  std::istringstream in(":quit\n");
  std::ostringstream out;
  EXPECT_EQ(RunEnvCommand({"play", "multi_turn_base_0"}, DataDir(), in, out), 0);
  EXPECT_THAT(out.str(), HasSubstr("stopped before the episode ended"));
}

TEST(EnvCommands, UsageErrors) {
  std::istringstream in;
  struct Case {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{}, "usage: envtune env"},
      {{"fly"}, "usage: envtune env"},
      {{"play"}, "usage: envtune env play TASK_ID"},
  };
  for (const Case& c : cases) {
    std::ostringstream out;
    EXPECT_EQ(RunEnvCommand(c.args, DataDir(), in, out), 2);
    EXPECT_THAT(out.str(), HasSubstr(c.message));
  }
  if (HaveData()) {
    std::ostringstream out;
    EXPECT_EQ(RunEnvCommand({"play", "multi_turn_base_12345"}, DataDir(), in, out), 2);
    EXPECT_THAT(out.str(), HasSubstr("unknown task id"));
  }
}

TEST(EnvServerCommand, MissingKeyFileIsAUsageError) {
  EnvServerCommandArgs args;
  args.data_dir = DataDir();
  args.hmac_key_file = "/nonexistent/envtune/key";
  EXPECT_EQ(RunEnvServerCommand(args), 2);
}

TEST(EnvServerCommand, BadPortAndDrainGraceAreUsageErrors) {
  EnvServerCommandArgs args;
  args.data_dir = DataDir();
  args.port = 70000;  // was silently wrapped to 4464
  EXPECT_EQ(RunEnvServerCommand(args), 2);
  args.port = -1;
  EXPECT_EQ(RunEnvServerCommand(args), 2);
  args.port = 0;
  args.drain_grace_ms = -5;
  EXPECT_EQ(RunEnvServerCommand(args), 2);
}

}  // namespace
}  // namespace envtune
