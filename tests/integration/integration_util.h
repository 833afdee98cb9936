// Paths and config pieces shared by the whole-system tests (test-only, inline).
#ifndef ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
#define ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "common/file.h"
#include "common/security.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace envtune::integration {

inline std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}
// The repository root and the envtune binary, as ctest sets them.
inline std::string SourceDir() { return EnvOr("ENVTUNE_SOURCE_DIR", "."); }
inline std::string Binary() { return EnvOr("ENVTUNE_BINARY_DIR", "build") + "/deploy/envtune"; }

// A scratch directory for one test run: TempDir()/<name>-<pid>, so two checkouts running their
// suites at once never share a run directory. Directories of earlier runs whose process is gone
// are removed (the last one stays for a look until the next run).
inline std::string RunDir(const std::string& name) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(::testing::TempDir(), ec)) {
    const std::string base = entry.path().filename().string();
    if (base.rfind(name + "-", 0) != 0) continue;
    const std::string pid = base.substr(name.size() + 1);
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH) std::filesystem::remove_all(entry, ec);
  }
  return ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
}

// The pid of a child of `parent` whose command line has `role` as its second argument.
inline std::optional<pid_t> ChildRole(pid_t parent, const std::string& role) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    absl::StatusOr<std::string> stat = ReadFileToString(entry.path().string() + "/stat");
    absl::StatusOr<std::string> cmdline = ReadFileToString(entry.path().string() + "/cmdline");
    if (!stat.ok() || !cmdline.ok()) continue;
    // stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
    std::istringstream fields(stat->substr(stat->rfind(')') + 2));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid != parent) continue;
    std::vector<std::string> args;
    std::string arg;
    for (char c : *cmdline) {
      if (c == '\0') {
        args.push_back(arg);
        arg.clear();
      } else {
        arg.push_back(c);
      }
    }
    if (args.size() > 1 && args[1] == role) return pid;
  }
  return std::nullopt;
}

// The non-empty lines of a JSON-lines file (ledgers, metrics.jsonl), parsed.
inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

// The learner and model sections the whole-system tests share: a one-layer tiny policy trained
// one group per step. `extra` is more of the learner section (lines indented by two spaces).
inline std::string TinyLearnerYaml(const std::string& extra) {
  return R"(learner:
  train_batch_groups: 1
  group_timeout_s: 600
  max_staleness: 1
  lr: 1.0e-4
  kl_coef: 0.0
  micro_batch_tokens: 8192
  gradient_checkpointing: false
)" + extra + R"(model:
  tiny: {hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
         num_key_value_heads: 1}
)";
}

// Makes this test process a client of the sealed `envtune train` run in `run_dir` (its TLS and
// cluster token, from <run_dir>/secrets/security.yaml), e.g. for FetchStatus.
inline absl::Status UseRunSecurity(const std::string& run_dir) {
  absl::StatusOr<SecurityOptions> options =
      LoadSecurityOptions(run_dir + "/secrets/security.yaml", {});
  if (!options.ok()) return options.status();
  absl::StatusOr<std::shared_ptr<const Security>> security = Security::Load(*options);
  if (!security.ok()) return security.status();
  SetProcessSecurity(*security);
  return absl::OkStatus();
}

}  // namespace envtune::integration

#endif  // ENVTUNE_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
