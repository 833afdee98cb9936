// Absurd config values through the shipped binary, one role each (the reliability probe's
// "config values checked against sane bounds"): every one is a usage error (exit 2) naming the
// key, the value and its range, printed before the role does anything (no allocation that
// aborts, no process storm, no hang).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

struct Outcome {
  int code = -1;
  std::string output;
};

Outcome RunBinary(const std::string& args) {
  const std::string source = EnvOr("ENVTUNE_SOURCE_DIR", ".");
  const std::string command = "cd '" + source + "' && timeout 60 '" +
                              EnvOr("ENVTUNE_BINARY_DIR", "build") + "/deploy/envtune' " + args +
                              " 2>&1";
  Outcome r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) r.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST(ConfigBoundsTest, AbsurdValuesAreUsageErrorsNamingKeyValueAndRange) {
  struct Case {
    const char* args;
    const char* expect;
  };
  const std::string config = "--config configs/tiny-cpu.yaml ";
  const Case cases[] = {
      {"coordinator --port 0 --data_dir data 'curriculum.stages[0].group_size=4000000000'",
       "curriculum.stages[0].group_size: 4000000000 is outside [1, 1024]"},
      {"coordinator --port 0 --data_dir data coordinator.max_workers=100000000",
       "coordinator.max_workers: 100000000 is outside [1, 2048]"},
      {"learner --port 0 model.tiny.num_hidden_layers=100000000",
       "model.tiny.num_hidden_layers: 100000000 is outside [1, 1024]"},
      {"learner --port 0 learner.lr=.nan", "learner.lr: .nan is outside [0, 1]"},
      {"learner --port 0 learner.queue_capacity=1000000000000",
       "learner.queue_capacity: 1000000000000 is outside [1, 1048576]"},
      {"actor --coordinator 127.0.0.1:1 --learner 127.0.0.1:1 --env 127.0.0.1:1 "
       "actor.concurrency=100000000",
       "actor.concurrency: 100000000 is outside [1, 65536]"},
      {"train launch.actors=100000", "launch.actors: 100000 is outside [1, 256]"},
  };
  for (const Case& c : cases) {
    const std::string args = std::string(c.args).insert(std::string(c.args).find(' ') + 1, config);
    Outcome r = RunBinary(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace envtune
