// A sealed local run end to end: `envtune train` (launch.tls on, the default) writes the run's
// secrets to <run_dir>/secrets (0700 / 0600), every role talks TLS with the cluster token, the run
// finishes its curriculum, `envtune status` is refused without credentials and served with
// <run_dir>/secrets/security.yaml, and no secret appears in any role's command line or log.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "deploy/process.h"
#include "gtest/gtest.h"
#include "tests/integration/integration_util.h"

namespace envtune {
namespace {

using integration::Binary;
using integration::SourceDir;
using integration::TinyLearnerYaml;

std::string SealedConfig(const std::string& dir) {
  return absl::StrCat(R"(
launch:
  env_servers: 1
  actors: 1
  run_dir: )", dir, R"(/run
  startup_timeout_s: 300
  max_wall_s: 600
  poll_interval_ms: 250
coordinator:
  worker_expiry_ms: 30000
curriculum:
  stages:
    - {name: syntax, split: train, categories: [base], limit: 1, reward: format,
       group_size: 2, max_new_tokens: 8, max_episode_tokens: 32768, advance: {after_steps: 30}}
)", TinyLearnerYaml(""), R"(actor:
  concurrency: 2
  max_model_turns: 2
  max_episode_seconds: 300
  tokenizer: )", SourceDir(), R"(/third_party/qwen-tokenizer
)");
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// Runs `envtune status` with `args`; returns its exit status and (in `log`) its output.
int Status(const std::string& dir, const std::string& name, std::vector<std::string> args,
           std::string* log) {
  std::vector<std::string> argv{Binary(), "status"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::Spawn(name, argv, dir + "/" + name + ".log");
  if (!child.ok()) return -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!child->PollExit().has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  *log = child->LogTail(1 << 16);
  return child->PollExit().value_or(-2);
}

TEST(SecureRunTest, TrainIsSealedWithTlsAndTokens) {
  if (!std::filesystem::exists(Binary())) GTEST_SKIP() << "envtune binary not built at " << Binary();
  const std::string dir = integration::RunDir("envtune_secure_run_test");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string config = dir + "/sealed.yaml";
  std::ofstream(config) << SealedConfig(dir);

  auto train = ChildProcess::Spawn("envtune-train", {Binary(), "train", "--config=" + config},
                                   dir + "/train.log");
  ASSERT_TRUE(train.ok()) << train.status();
  // The coordinator's address, from the launcher's progress.
  std::string coordinator;
  const std::regex line("coordinator (127\\.0\\.0\\.1:[0-9]+)");
  absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (coordinator.empty() && !train->PollExit().has_value() && absl::Now() < deadline) {
    std::smatch m;
    std::string log = train->LogTail(1 << 16);
    if (std::regex_search(log, m, line)) coordinator = m[1];
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_FALSE(coordinator.empty()) << train->LogTail(6000);

  // While the run goes on: no credentials, the right token without the CA, and the run's
  // client file.
  const std::string secrets = dir + "/run/secrets";
  std::string log;
  EXPECT_EQ(Status(dir, "status-plain", {"--coordinator=" + coordinator}, &log), 1) << log;
  EXPECT_EQ(Status(dir, "status-token-no-tls",
                   {"--coordinator=" + coordinator, "security.token_file=" + secrets + "/token"},
                   &log),
            1)
      << log;
  EXPECT_EQ(Status(dir, "status-tls-no-token",
                   {"--coordinator=" + coordinator, "security.tls.cert=" + secrets + "/pki/cert.pem",
                    "security.tls.key=" + secrets + "/pki/key.pem",
                    "security.tls.ca=" + secrets + "/pki/ca.pem", "security.tls.server_name=localhost"},
                   &log),
            1)
      << log;
  EXPECT_NE(log.find("authorization: Bearer <token>"), std::string::npos) << log;
  EXPECT_EQ(Status(dir, "status-sealed",
                   {"--coordinator=" + coordinator, "--config=" + secrets + "/security.yaml",
                    "--json"},
                   &log),
            0)
      << log;
  EXPECT_NE(log.find("policy_version"), std::string::npos) << log;

  deadline = absl::Now() + absl::Minutes(12);
  while (!train->PollExit().has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(500));
  }
  ASSERT_TRUE(train->PollExit().has_value()) << "envtune train did not finish:\n"
                                             << train->LogTail(6000);
  ASSERT_EQ(*train->PollExit(), 0) << train->LogTail(6000);
  const std::string train_log = train->LogTail(1 << 20);
  EXPECT_NE(train_log.find("curriculum finished"), std::string::npos) << train_log;

  // The secrets: private files, and none of their values in a log (command lines are logged by
  // the launcher when a role fails; the roles' own logs are checked too).
  EXPECT_EQ(Mode(secrets), 0700);
  for (const char* file : {"token", "admin-token", "hmac-key", "security.yaml", "pki/ca.pem",
                           "pki/cert.pem", "pki/key.pem"}) {
    EXPECT_EQ(Mode(secrets + "/" + file), 0600) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(secrets + "/pki/ca.key"));
  std::vector<std::string> values;
  for (const char* file : {"token", "admin-token", "hmac-key"}) {
    std::string value = ReadAll(secrets + "/" + file);
    while (!value.empty() && value.back() == '\n') value.pop_back();
    ASSERT_EQ(value.size(), 64u) << file;
    values.push_back(value);
  }
  std::vector<std::string> logs = {dir + "/train.log"};
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/run/logs")) {
    logs.push_back(entry.path().string());
  }
  for (const std::string& path : logs) {
    const std::string text = ReadAll(path);
    for (const std::string& value : values) {
      EXPECT_EQ(text.find(value), std::string::npos) << "a secret in " << path;
    }
  }
  // The roles were told where the secrets are, and the env server got the HMAC key.
  const std::string env_log = ReadAll(dir + "/run/logs/env-server-0.log");
  EXPECT_NE(env_log.find("env-server security: TLS, cluster token"), std::string::npos) << env_log;
  EXPECT_NE(env_log.find("episode blobs: HMAC-SHA256"), std::string::npos) << env_log;
  const std::string coordinator_log = ReadAll(dir + "/run/logs/coordinator.log");
  EXPECT_NE(coordinator_log.find("coordinator security: TLS, cluster token, admin token"),
            std::string::npos)
      << coordinator_log;
  EXPECT_NE(ReadAll(dir + "/run/logs/actor-0.log").find("actor security: TLS, cluster token"),
            std::string::npos);
}

}  // namespace
}  // namespace envtune
