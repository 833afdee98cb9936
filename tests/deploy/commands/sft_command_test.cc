// `envtune sft`: config errors (unknown keys, hermes, stray arguments, unknown flags) are usage
// errors (exit code 2) with a message naming the problem.
#include "deploy/commands/sft_command.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;

std::string SourceDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return s != nullptr ? s : ".";
}
std::string Temp(const std::string& name) {
  return (fs::temp_directory_path() /
          ("envtune_sft_command_test_" + name + "_" + std::to_string(::getpid())))
      .string();
}

TEST(SftCommandTest, ConfigErrorsAreUsageErrors) {
  const std::string cfg = Temp("cfg") + ".yaml";
  { std::ofstream(cfg) << "sft:\n  epochs: 1\n  lrr: 0.1\nlearner: {anything: 1}\n"; }
  std::ostringstream out, err;
  EXPECT_EQ(RunSftCommand({"--config", cfg}, SourceDir() + "/data", out, err), 2);
  EXPECT_NE(err.str().find("lrr"), std::string::npos) << err.str();
  { std::ofstream(cfg) << "sft:\n  format: hermes\n"; }
  EXPECT_EQ(RunSftCommand({"--config", cfg}, SourceDir() + "/data", out, err), 2);
  EXPECT_EQ(RunSftCommand({"--config", cfg, "stray"}, SourceDir() + "/data", out, err), 2);
  EXPECT_EQ(RunSftCommand({"--bogus"}, SourceDir() + "/data", out, err), 2);
  fs::remove(cfg);
}

}  // namespace
}  // namespace envtune
