// `envtune config check|keys` and the whole-config check `envtune train` runs first, through the
// shipped binary: every shipped training config passes, each kind of mistake is a usage error
// (exit 2) naming it, and docs/config-reference.md is what `config keys --markdown` prints.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

using ::testing::HasSubstr;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

struct Outcome {
  int code = -1;
  std::string output;
};

// Runs the binary from the source directory (configs/ paths as the README writes them).
Outcome RunBinary(const std::string& args, bool with_stderr = true) {
  const std::string command = "cd '" + EnvOr("ENVTUNE_SOURCE_DIR", ".") + "' && timeout 120 '" +
                              EnvOr("ENVTUNE_BINARY_DIR", "build") + "/deploy/envtune' " + args +
                              (with_stderr ? " 2>&1" : " 2>/dev/null");
  Outcome r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) r.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST(ConfigCommandTest, ShippedTrainingConfigsPass) {
  for (const char* config :
       {"configs/tiny-cpu.yaml", "configs/tiny-learn.yaml", "configs/paper-qwen2.5-7b.yaml"}) {
    Outcome r = RunBinary(std::string("config check --config ") + config);
    EXPECT_EQ(r.code, 0) << config << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("ok: " + std::string(config)));
  }
}

TEST(ConfigCommandTest, EachKindOfMistakeIsAUsageErrorNamingIt) {
  struct Case {
    const char* overrides;
    const char* expect;
  };
  const Case cases[] = {
      // A typo in any program's section, found without starting that program.
      {"actor.concurency=3", "unknown key 'actor.concurency'"},
      {"learner.lrr=1", "unknown key 'learner.lrr'"},
      {"coordinator.sed=1", "unknown key 'coordinator.sed'"},
      {"launch.actor=1", "unknown key 'launch.actor'"},
      {"security.tokenfile=x", "unknown key 'security.tokenfile'"},
      // A section nobody reads (these two were silently ignored by every role).
      {"envserver.port=1", "unknown section 'envserver'"},
      {"data.dir=x", "unknown section 'data'"},
      // Values: type and range.
      {"learner.lr=fast", "learner.lr: cannot read 'fast' as a number"},
      {"launch.actors=100000", "launch.actors: 100000 is outside [1, 256]"},
      {"curriculum.stages[0].reward=dense", "dense"},
  };
  for (const Case& c : cases) {
    Outcome r =
        RunBinary(std::string("config check --config configs/tiny-cpu.yaml ") + c.overrides);
    EXPECT_EQ(r.code, 2) << c.overrides << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.expect)) << c.overrides;
  }
  Outcome usage = RunBinary("config frobnicate");
  EXPECT_EQ(usage.code, 2);
  EXPECT_THAT(usage.output, HasSubstr("unknown subcommand 'frobnicate'"));
  Outcome missing = RunBinary("config check --config /nonexistent/x.yaml");
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.output, HasSubstr("/nonexistent/x.yaml"));
}

// `envtune train` checks every section before it starts a process: the mistake is reported at
// once with exit 2, and no run directory is created.
TEST(ConfigCommandTest, TrainRefusesABadConfigBeforeStartingAnything) {
  const std::filesystem::path run_dir =
      std::filesystem::temp_directory_path() / ("envtune_config_check_" + std::to_string(getpid()));
  std::filesystem::remove_all(run_dir);
  Outcome r = RunBinary("train --config configs/tiny-cpu.yaml launch.run_dir=" + run_dir.string() +
                        " actor.concurency=3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown key 'actor.concurency'"));
  EXPECT_FALSE(std::filesystem::exists(run_dir));
}

TEST(ConfigCommandTest, ReferenceDocIsTheGeneratedOne) {
  Outcome r = RunBinary(
      "config keys --markdown --config configs/tiny-cpu.yaml --config "
      "configs/paper-qwen2.5-7b.yaml",
      /*with_stderr=*/false);
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(EnvOr("ENVTUNE_SOURCE_DIR", ".") + "/docs/config-reference.md");
  std::stringstream doc;
  doc << in.rdbuf();
  EXPECT_EQ(doc.str(), r.output)
      << "docs/config-reference.md is stale: regenerate it with `build/deploy/envtune config keys "
         "--markdown --config configs/tiny-cpu.yaml --config configs/paper-qwen2.5-7b.yaml > "
         "docs/config-reference.md`";
  // Every section has its table, and keys of each program are listed with type and default.
  for (const char* line : {"## actor", "## learner", "## curriculum", "| `learner.lr` | a number |",
                           "| `launch.actors` | an integer | `2` | [1, 256] |"}) {
    EXPECT_THAT(r.output, HasSubstr(line));
  }
}

}  // namespace
}  // namespace envtune
