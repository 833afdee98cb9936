// `envtune train`'s `launch:` section: keys, defaults, and errors that name the key.
#include "deploy/local_launcher.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(LaunchOptionsTest, ReadsTheLaunchSectionAndLeavesOtherSectionsToTheRoles) {
  LaunchOptions options;
  options.config_path = WriteConfig("launch_ok.yaml", R"(
launch: {env_servers: 3, actors: 1, run_dir: /tmp/x, warm_start: sft, max_wall_s: 60}
learner: {anything: 1}
)");
  options.overrides = {"launch.actors=4"};
  ASSERT_TRUE(ReadLaunchOptions(options).ok());
  EXPECT_EQ(options.env_servers, 3);
  EXPECT_EQ(options.actors, 4);
  EXPECT_EQ(options.run_dir, "/tmp/x");
  EXPECT_EQ(options.warm_start, "sft");
  EXPECT_EQ(options.max_wall, absl::Seconds(60));
  // Sealed by default: TLS on, no tokens of the config's own (the launcher makes them).
  EXPECT_TRUE(options.tls);
  EXPECT_TRUE(options.security.token_file.empty());
}

TEST(LaunchOptionsTest, ReadsTheSecuritySectionTheRunUses) {
  LaunchOptions options;
  options.config_path = WriteConfig("launch_security.yaml", R"(
launch: {tls: false}
security: {token_file: /etc/envtune/token}
)");
  ASSERT_TRUE(ReadLaunchOptions(options).ok());
  EXPECT_FALSE(options.tls);
  EXPECT_EQ(options.security.token_file, "/etc/envtune/token");
  EXPECT_FALSE(options.security.tls.enabled());
}

TEST(LaunchOptionsTest, BadValuesAndUnknownKeysNameTheKey) {
  struct Case {
    const char* yaml;
    const char* key;
  };
  for (const Case& c : {Case{"launch: {warm_start: rl}", "launch.warm_start"},
                        Case{"launch: {actors: 0}", "launch.actors"},
                        Case{"launch: {env_servers: 0}", "launch.env_servers"},
                        Case{"launch: {actorz: 2}", "launch.actorz"},
                        Case{"launch: {tls: maybe}", "launch.tls"},
                        Case{"launch: {max_restarts: -1}", "launch.max_restarts"},
                        Case{"launch: {restart_backoff_ms: 5000, max_restart_backoff_ms: 100}",
                             "launch.restart_backoff_ms"},
                        Case{"launch: {held_out_eval: {limit: -1}}", "launch.held_out_eval.limit"},
                        Case{"launch: {held_out_eval: {max_new_tokens: 0}}",
                             "launch.held_out_eval.max_new_tokens"},
                        Case{"launch: {held_out_eval: {subsets: val}}", "launch.held_out_eval.subsets"},
                        Case{"security: {tls: {cert: c.pem}}", "security.tls"},
                        Case{"security: {token: abc}", "security.token"}}) {
    LaunchOptions options;
    options.config_path = WriteConfig("launch_bad.yaml", c.yaml);
    absl::Status s = ReadLaunchOptions(options);
    EXPECT_FALSE(s.ok()) << c.yaml;
    EXPECT_NE(s.message().find(c.key), std::string::npos) << s.message();
  }
}

// launch.held_out_eval: the tasks `envtune eval` gets, in the actor's format under eval's name.
TEST(LaunchOptionsTest, ReadsTheHeldOutEvaluation) {
  LaunchOptions options;
  options.config_path = WriteConfig("launch_eval.yaml", R"(
launch: {held_out_eval: {subset: val_trading, categories: [base], limit: 3, max_new_tokens: 32}}
actor: {output_format: bfcl_prompting, tokenizer: /tok}
)");
  ASSERT_TRUE(ReadLaunchOptions(options).ok());
  EXPECT_EQ(options.eval_subset, "val_trading");
  EXPECT_EQ(options.eval_categories, std::vector<std::string>{"base"});
  EXPECT_EQ(options.eval_limit, 3);
  EXPECT_EQ(options.eval_max_new_tokens, 32);
  EXPECT_EQ(options.eval_format, "bfcl_prompting");
  EXPECT_EQ(options.eval_tokenizer, "/tok");
  LaunchOptions off;
  off.config_path = WriteConfig("launch_eval_off.yaml", "launch: {actors: 1}\n");
  ASSERT_TRUE(ReadLaunchOptions(off).ok());
  EXPECT_TRUE(off.eval_subset.empty());
  EXPECT_EQ(off.eval_format, "envtuning");
}

TEST(LaunchOptionsTest, TheShippedDefaultIsValid) {
  const char* src = std::getenv("ENVTUNE_SOURCE_DIR");
  LaunchOptions options;
  options.config_path = std::string(src != nullptr ? src : ".") + "/configs/tiny-cpu.yaml";
  absl::Status s = ReadLaunchOptions(options);
  ASSERT_TRUE(s.ok()) << s;
  // From a random init the tiny policy never emits a call (every reward 0), so the default
  // warm-starts by SFT in the format its actor samples.
  EXPECT_EQ(options.warm_start, "sft");
  EXPECT_NE(options.warm_start_key.find("format: bfcl"), std::string::npos)
      << options.warm_start_key;
}

// The warm start's checkpoint is reused only when it finished (config.json) and was made from
// the same `sft:` section after overrides and the same data_dir.
TEST(LaunchOptionsTest, AWarmStartIsReusedOnlyForTheSameSftSection) {
  const std::string run_dir = ::testing::TempDir() + "/launch_reuse";
  std::filesystem::remove_all(run_dir);
  const std::string config = WriteConfig("launch_reuse.yaml", absl::StrCat(R"(
launch: {warm_start: sft, run_dir: )", run_dir, R"(}
sft: {lr: 1.0e-3, epochs: 2}
)"));
  auto read = [&](std::vector<std::string> overrides) {
    LaunchOptions options;
    options.config_path = config;
    options.data_dir = "data";
    options.overrides = std::move(overrides);
    EXPECT_TRUE(ReadLaunchOptions(options).ok());
    return options;
  };
  LaunchOptions options = read({});
  EXPECT_NE(options.warm_start_key.find("epochs: 2"), std::string::npos) << options.warm_start_key;
  EXPECT_FALSE(CanReuseWarmStart(options));  // nothing there
  std::filesystem::create_directories(run_dir + "/sft");
  std::ofstream(run_dir + "/sft/warm_start_key.yaml") << options.warm_start_key;
  EXPECT_FALSE(CanReuseWarmStart(options));  // no checkpoint beside the key
  std::ofstream(run_dir + "/sft/config.json") << "{}";
  EXPECT_TRUE(CanReuseWarmStart(options));
  EXPECT_TRUE(CanReuseWarmStart(read({"learner.lr=1e-4"})));  // not the sft: section
  EXPECT_FALSE(CanReuseWarmStart(read({"sft.epochs=3"})));
  LaunchOptions other_data = read({});
  other_data.data_dir = "elsewhere";
  ASSERT_TRUE(ReadLaunchOptions(other_data).ok());
  EXPECT_FALSE(CanReuseWarmStart(other_data));
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// `envtune train --resume RUN_DIR`: the run's saved config, then extra overrides; resume needs
// a checkpoint directory; model.path and learner.checkpoint_dir are read for the launcher.
TEST(LaunchOptionsTest, ResumeReadsTheRunsSavedConfig) {
  const std::string run_dir = ::testing::TempDir() + "/launch_resume_" + std::to_string(getpid());
  std::filesystem::remove_all(run_dir);
  std::filesystem::create_directories(run_dir);
  LaunchOptions missing;
  absl::Status s = ReadResumeOptions(run_dir, {}, missing);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(s.message().find("config.yaml"), std::string::npos) << s;

  std::ofstream(run_dir + "/config.yaml") << R"(
launch: {actors: 3, run_dir: elsewhere}
model: {path: /models/qwen}
learner: {checkpoint_dir: /ckpt, lr: 1.0e-6}
)";
  LaunchOptions options;
  ASSERT_TRUE(ReadResumeOptions(run_dir, {"launch.actors=2"}, options).ok());
  EXPECT_TRUE(options.resume);
  EXPECT_EQ(options.run_dir, run_dir);
  EXPECT_EQ(options.actors, 2);
  EXPECT_EQ(options.model_path, "/models/qwen");
  EXPECT_EQ(options.checkpoint_dir, "/ckpt");
  EXPECT_EQ(options.config_path, run_dir + "/config.yaml");
  EXPECT_NE(options.effective_config.find("/models/qwen"), std::string::npos);

  // Unset: the run's own <run_dir>/checkpoints; set to "": no checkpoints, nothing to resume.
  std::ofstream(run_dir + "/config.yaml", std::ios::trunc) << "launch: {actors: 1}\n";
  LaunchOptions defaulted;
  ASSERT_TRUE(ReadResumeOptions(run_dir, {}, defaulted).ok());
  EXPECT_EQ(defaulted.checkpoint_dir, run_dir + "/checkpoints");
  EXPECT_TRUE(defaulted.default_checkpoint_dir);
  LaunchOptions no_checkpoints;
  s = ReadResumeOptions(run_dir, {"learner.checkpoint_dir="}, no_checkpoints);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("learner.checkpoint_dir"), std::string::npos) << s;
  std::filesystem::remove_all(run_dir);
}

// A restarted coordinator and learner continue from a step both recorded: the learner's full
// checkpoint of step N and the coordinator's state file of step N.
TEST(ResumableCheckpointTest, TheNewestStepWithBothAFullCheckpointAndACoordinatorState) {
  const std::string root = absl::StrCat(::testing::TempDir(), "/resumable-", getpid());
  std::filesystem::remove_all(root);
  const std::string checkpoints = root + "/checkpoints", states = root + "/coordinator";
  std::filesystem::create_directories(checkpoints);
  std::filesystem::create_directories(states);
  auto save = [&](const std::string& label, int64_t step, bool full) {
    absl::StatusOr<std::string> tmp = BeginCheckpoint(checkpoints, label);
    ASSERT_TRUE(tmp.ok()) << tmp.status();
    std::ofstream(*tmp + "/model.safetensors") << label;
    CheckpointInfo info;
    info.step = step;
    info.policy_version = static_cast<uint64_t>(step) + 1;
    ASSERT_TRUE(CommitCheckpoint(checkpoints, label, *tmp, full ? &info : nullptr, 0).ok());
  };
  auto state = [&](int64_t step) {
    std::ofstream(absl::StrCat(states, "/step-", step, ".binpb")) << "state";
  };
  auto latest = [&]() { return LatestResumableCheckpoint(checkpoints, states); };

  ASSERT_TRUE(latest().ok());
  EXPECT_FALSE(latest()->has_value()) << "nothing saved yet";
  save("step-0", 0, /*full=*/false);  // the random initial weights: never resumed from
  state(0);
  EXPECT_FALSE(latest()->has_value());
  save("step-2", 2, true);
  EXPECT_FALSE(latest()->has_value()) << "the coordinator never recorded step 2";
  state(2);
  state(3);  // the coordinator is ahead of the learner's checkpoints
  ASSERT_TRUE(latest()->has_value());
  EXPECT_EQ((*latest())->step, 2);
  save("step-4", 4, true);  // the learner is ahead of the coordinator (its report was lost)
  EXPECT_EQ((*latest())->step, 2);
  state(4);
  EXPECT_EQ((*latest())->step, 4);
  save("final", 4, true);  // final wins a tie: it holds the same state
  EXPECT_EQ((*latest())->dir, checkpoints + "/final");
  EXPECT_TRUE(LatestResumableCheckpoint("", states)->has_value() == false);
  std::filesystem::remove_all(root);
}

TEST(EnvServerScaleTest, RequestIsCheckedWrittenAndAcknowledged) {
  const std::string run_dir = ::testing::TempDir() + "/envtune_scale_request_test";
  std::filesystem::remove_all(run_dir);
  // No run there yet.
  EXPECT_EQ(RequestEnvServerScale(run_dir, 3).code(), absl::StatusCode::kNotFound);
  std::filesystem::create_directories(run_dir + "/logs");
  EXPECT_EQ(RequestEnvServerScale(run_dir, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RequestEnvServerScale(run_dir, kMaxLocalEnvServers + 1).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(RequestEnvServerScale(run_dir, 3).ok());
  std::ifstream request(run_dir + "/control/env_servers");
  std::string text((std::istreambuf_iterator<char>(request)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "3\n");
  // Not applied yet: the wait times out with a clear error.
  absl::Status waited = WaitForEnvServerScale(run_dir, 3, absl::Milliseconds(200));
  EXPECT_EQ(waited.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(waited.message().find("has not reached 3 env servers"), std::string::npos);
  std::ofstream(run_dir + "/control/env_servers.applied") << "3\n";
  EXPECT_TRUE(WaitForEnvServerScale(run_dir, 3, absl::Seconds(1)).ok());
}

}  // namespace
}  // namespace envtune
