// `envtune plan`: the paper configuration fits 8 GPUs of 80 GB as shipped (and not 40 GB ones),
// and bad input is a usage error.
#include "deploy/commands/plan_command.h"

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace envtune {
namespace {

std::string SourceDir() {
  const char* source = std::getenv("ENVTUNE_SOURCE_DIR");
  return source == nullptr ? "" : source;
}

TEST(PlanCommand, PaperConfigFitsEightGpusOf80GB) {
  if (SourceDir().empty()) GTEST_SKIP() << "ENVTUNE_SOURCE_DIR not set (ctest sets it)";
  std::ostringstream out, err;
  const int rc = RunPlanCommand(
      {"--config", SourceDir() + "/configs/paper-qwen2.5-7b.yaml", "--gpus", "8",
       "--gpu_memory", "80"},
      out, err);
  std::cout << out.str();
  EXPECT_EQ(rc, 0) << out.str() << err.str();
  EXPECT_THAT(out.str(), testing::HasSubstr("7.62B parameters"));
  EXPECT_THAT(out.str(), testing::Not(testing::HasSubstr("DOES NOT FIT")));
  // Half the GPUs: the replicated parameters, gradients and reference still fit, the plan says
  // what 40 GB cards would need.
  std::ostringstream small, small_err;
  EXPECT_EQ(RunPlanCommand({"--config", SourceDir() + "/configs/paper-qwen2.5-7b.yaml",
                            "--gpu_memory", "40", "--json"},
                           small, small_err),
            1);
  EXPECT_THAT(small.str(), testing::HasSubstr("\"fits\": false"));
}

TEST(PlanCommand, BadInputIsAUsageError) {
  std::ostringstream out, err;
  EXPECT_EQ(RunPlanCommand({}, out, err), 2);
  EXPECT_THAT(err.str(), testing::HasSubstr("--config is required"));
  EXPECT_EQ(RunPlanCommand({"--config", "/nonexistent.yaml"}, out, err), 2);
  EXPECT_EQ(RunPlanCommand({"--config", "x.yaml", "--gpus", "-3"}, out, err), 2);
}

}  // namespace
}  // namespace envtune
