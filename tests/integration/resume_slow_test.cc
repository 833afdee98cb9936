// Kill and resume a whole local run (`envtune train`, every role a process on loopback port 0).
// A seeded, strictly on-policy (max_staleness 0) run of 4 learner steps over two curriculum
// stages (the change after step 2) runs uninterrupted; then the same config runs three times
// with its learner SIGKILLed once checkpoint step-<k> exists, k = 1, 2, 3 (launch.max_restarts
// 0: the launcher then stops everything and fails), and `envtune train --resume RUN_DIR`
// continues each to the end of the curriculum: the learner starts from the step-<k> checkpoint
// (not step 0), the coordinator from its state of step k (the stage is right), the run finishes
// with a full final checkpoint of step 4, and every step's weights are bitwise those of the
// uninterrupted run. Every step trains on generated tokens (loss tokens and gradient norm
// above 0), with actor.lockstep. A second test: two seeded runs whose 8 episodes a step share
// generation batches end every step with bitwise-equal weights.
#include <signal.h>
#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint_dir.h"
#include "common/file.h"
#include "deploy/process.h"
#include "gtest/gtest.h"
#include "tests/integration/integration_util.h"

namespace envtune {
namespace {

using integration::Binary;
using integration::ChildRole;
using integration::SourceDir;
using integration::TinyLearnerYaml;

constexpr int kFinalStep = 4;

// No learner.checkpoint_dir: the launcher puts checkpoints in <run_dir>/checkpoints.
// `group_size` and `concurrency` set the actor's batches (the kill-and-resume runs use groups of
// 2); actor.lockstep makes them a function of the episodes alone. max_episode_tokens leaves
// room for replies after the opening prompt (below its length, every episode would end before
// the policy replies and no step would train on anything).
std::string Config(const std::string& run_dir, int group_size = 2, int concurrency = 4) {
  return absl::StrCat(R"(
launch:
  env_servers: 1
  actors: 1
  warm_start: none
  poll_interval_ms: 250
  max_restarts: 0        # the learner's death ends the run; --resume continues it
  run_dir: )", run_dir, R"(
coordinator:
  heartbeat_interval_ms: 500
  worker_expiry_ms: 30000
  lease_timeout_ms: 600000
  max_policy_staleness: 0
  seed: 3
curriculum:
  stages:
    - {name: syntax, split: train, categories: [base], limit: 2, reward: format,
       group_size: )", group_size, R"(, max_new_tokens: 12, max_episode_tokens: 32768,
       advance: {after_steps: 2}}
    - {name: hints, split: train, categories: [base], limit: 2, reward: progress,
       group_size: )", group_size, R"(, max_new_tokens: 12, max_episode_tokens: 32768,
       advance: {after_steps: 2}}
)", TinyLearnerYaml("  checkpoint_every: 1\n  seed: 5\n"),
                      R"(actor:
  concurrency: )", concurrency, R"(
  lockstep: true
  max_model_turns: 2
  max_episode_seconds: 300
  seed: 9
  tokenizer: )", SourceDir(), R"(/third_party/qwen-tokenizer
)");
}

// Every learner step of the run in `dir` trained on generated tokens, `episodes` a step.
void ExpectEveryStepTrained(const std::string& dir, double episodes) {
  const auto lines = integration::ReadJsonLines(dir + "/metrics.jsonl");
  int trained = 0;
  for (const auto& line : lines) {
    if (!line.contains("metrics") || line.value("step", 0) < 1) continue;
    const auto& m = line["metrics"];
    EXPECT_EQ(m.value("episodes/total", 0.0), episodes) << line.dump();
    EXPECT_GT(m.value("loss_tokens", 0.0), 0.0) << line.dump();
    EXPECT_GT(m.value("grad_norm", 0.0), 0.0) << line.dump();
    ++trained;
  }
  EXPECT_GE(trained, kFinalStep) << dir;
}

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(Binary())) {
      GTEST_SKIP() << "envtune binary not built at " << Binary();
    }
  }

  static absl::StatusOr<ChildProcess> Train(const std::string& run_dir,
                                            std::vector<std::string> args) {
    std::filesystem::create_directories(run_dir);
    std::vector<std::string> argv{Binary(), "train",
                                  absl::StrCat("--data_dir=", SourceDir(), "/data")};
    for (std::string& a : args) argv.push_back(std::move(a));
    return ChildProcess::Spawn("train", argv, run_dir + "/train.out");
  }

  static std::optional<int> WaitExit(ChildProcess& p, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (std::optional<int> rc = p.PollExit(); rc.has_value()) return rc;
      absl::SleepFor(absl::Milliseconds(200));
    }
    return std::nullopt;
  }
};

// Two seeded runs, each step training on 2 groups of 4 whose 8 episodes the actor generates in
// shared batches (concurrency 8) under actor.lockstep, end every step with bitwise-equal
// weights. (Without lockstep a row's log-probs depend on which rows share its batch, and batches
// form by env timing: docs/operations.md "Reproducibility".)
TEST_F(ResumeTest, SeededRunsWithSharedGenerationBatchesAreBitwiseEqual) {
  const std::string root = integration::RunDir("envtune_reproducible");
  std::filesystem::remove_all(root);
  std::vector<std::string> dirs;
  for (const char* name : {"a", "b"}) {
    const std::string dir = absl::StrCat(root, "/", name);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/config.in.yaml")
        << Config(dir, /*group_size=*/4, /*concurrency=*/8);
    absl::StatusOr<ChildProcess> run =
        Train(dir, {"--config=" + dir + "/config.in.yaml", "learner.train_batch_groups=2"});
    ASSERT_TRUE(run.ok()) << run.status();
    std::optional<int> rc = WaitExit(*run, absl::Minutes(8));
    ASSERT_TRUE(rc.has_value()) << "run " << name << " did not finish:\n" << run->LogTail(4000);
    ASSERT_EQ(*rc, 0) << run->LogTail(4000);
    dirs.push_back(dir);
  }
  for (int step = 1; step <= kFinalStep; ++step) {
    absl::StatusOr<std::string> x =
        ReadFileToString(absl::StrCat(dirs[0], "/checkpoints/step-", step, "/model.safetensors"));
    absl::StatusOr<std::string> y =
        ReadFileToString(absl::StrCat(dirs[1], "/checkpoints/step-", step, "/model.safetensors"));
    ASSERT_TRUE(x.ok() && y.ok()) << step;
    EXPECT_TRUE(*x == *y) << "step-" << step << " weights differ between two seeded runs";
  }
  ExpectEveryStepTrained(dirs[0], 8);
}

TEST_F(ResumeTest, KilledLearnerResumesFromItsCheckpointToTheEnd) {
  const std::string root = integration::RunDir("envtune_resume");
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);

  // The uninterrupted run.
  const std::string whole_dir = root + "/whole";
  std::filesystem::create_directories(whole_dir);
  std::ofstream(whole_dir + "/config.in.yaml") << Config(whole_dir);
  const absl::Time whole_start = absl::Now();
  absl::StatusOr<ChildProcess> whole =
      Train(whole_dir, {"--config=" + whole_dir + "/config.in.yaml"});
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::optional<int> rc = WaitExit(*whole, absl::Minutes(8));
  ASSERT_TRUE(rc.has_value()) << "uninterrupted run did not finish:\n" << whole->LogTail(4000);
  ASSERT_EQ(*rc, 0) << whole->LogTail(4000);
  std::cout << "[measure] uninterrupted run: "
            << absl::ToDoubleSeconds(absl::Now() - whole_start) << " s" << std::endl;
  absl::StatusOr<CheckpointInfo> whole_final =
      ReadCheckpointInfo(whole_dir + "/checkpoints/final");
  ASSERT_TRUE(whole_final.ok()) << whole_final.status();
  EXPECT_EQ(whole_final->step, kFinalStep);
  ExpectEveryStepTrained(whole_dir, 2);

  absl::StatusOr<std::string> whole_weights =
      ReadFileToString(whole_dir + "/checkpoints/final/model.safetensors");
  ASSERT_TRUE(whole_weights.ok());

  // The same run, its learner killed once checkpoint step-<k> exists (before, at and after the
  // stage change at step 2), then resumed from its run directory.
  for (int kill_after : {1, 2, 3}) {
    SCOPED_TRACE(absl::StrCat("killed after step-", kill_after));
    const std::string dir = absl::StrCat(root, "/killed-", kill_after);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/config.in.yaml") << Config(dir);
    absl::StatusOr<ChildProcess> killed = Train(dir, {"--config=" + dir + "/config.in.yaml"});
    ASSERT_TRUE(killed.ok()) << killed.status();
    const std::string marker =
        absl::StrCat(dir, "/checkpoints/step-", kill_after, "/trainer_state.json");
    const absl::Time deadline = absl::Now() + absl::Minutes(6);
    while (!std::filesystem::exists(marker) && absl::Now() < deadline &&
           !killed->PollExit().has_value()) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_TRUE(std::filesystem::exists(marker)) << killed->LogTail(4000);
    std::optional<pid_t> learner = ChildRole(killed->pid(), "learner");
    ASSERT_TRUE(learner.has_value());
    ASSERT_EQ(::kill(*learner, SIGKILL), 0);
    const absl::Time kill_time = absl::Now();
    std::optional<int> rc = WaitExit(*killed, absl::Minutes(2));
    ASSERT_TRUE(rc.has_value());
    EXPECT_NE(*rc, 0) << "a run whose learner died must fail";
    absl::StatusOr<std::optional<CheckpointInfo>> at_kill =
        LatestCheckpoint(dir + "/checkpoints");
    ASSERT_TRUE(at_kill.ok() && at_kill->has_value());
    const int64_t k = (*at_kill)->step;
    EXPECT_GE(k, kill_after);
    EXPECT_LT(k, kFinalStep);
    std::cout << "[measure] learner killed after checkpoint step-" << k << std::endl;

    const absl::Time resume_start = absl::Now();
    absl::StatusOr<ChildProcess> resumed = Train(dir, {"--resume=" + dir});
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    rc = WaitExit(*resumed, absl::Minutes(6));
    ASSERT_TRUE(rc.has_value()) << "resumed run did not finish:\n" << resumed->LogTail(4000);
    ASSERT_EQ(*rc, 0) << resumed->LogTail(4000);
    std::cout << "[measure] resumed from step " << k << ": finished "
              << absl::ToDoubleSeconds(absl::Now() - resume_start) << " s after the resume, "
              << absl::ToDoubleSeconds(absl::Now() - kill_time) << " s after the kill"
              << std::endl;
    const std::string out = resumed->LogTail(1 << 20);
    EXPECT_NE(out.find(absl::StrCat("resume: learner from ", dir, "/checkpoints/step-", k)),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("curriculum finished at learner step 4"), std::string::npos) << out;
    absl::StatusOr<std::string> learner_log = ReadFileToString(dir + "/logs/learner.log");
    ASSERT_TRUE(learner_log.ok());
    EXPECT_NE(learner_log->find(absl::StrCat("at step ", k, ", policy version ", k + 1)),
              std::string::npos);
    // The resumed coordinator starts in the stage of step k (stage 2 from step 2 on).
    if (k >= 2) EXPECT_EQ(out.find("[stage 1 syntax] step 3"), std::string::npos) << out;
    absl::StatusOr<CheckpointInfo> final_info = ReadCheckpointInfo(dir + "/checkpoints/final");
    ASSERT_TRUE(final_info.ok()) << final_info.status();
    EXPECT_EQ(final_info->step, kFinalStep);
    EXPECT_EQ(final_info->policy_version, static_cast<uint64_t>(kFinalStep + 1));
    // metrics.jsonl goes on with the killed run's lines.
    const auto lines = integration::ReadJsonLines(dir + "/metrics.jsonl");
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back()["step"], kFinalStep);

    // Bitwise: the resumed run ends with the uninterrupted run's weights, and every step's
    // checkpoint equals the uninterrupted run's.
    absl::StatusOr<std::string> weights =
        ReadFileToString(dir + "/checkpoints/final/model.safetensors");
    ASSERT_TRUE(weights.ok());
    EXPECT_TRUE(*weights == *whole_weights)
        << "the resumed run's final weights differ from the uninterrupted run's";
    for (int step = 1; step <= kFinalStep; ++step) {
      absl::StatusOr<std::string> x = ReadFileToString(
          absl::StrCat(whole_dir, "/checkpoints/step-", step, "/model.safetensors"));
      absl::StatusOr<std::string> y =
          ReadFileToString(absl::StrCat(dir, "/checkpoints/step-", step, "/model.safetensors"));
      ASSERT_TRUE(x.ok() && y.ok()) << step;
      EXPECT_TRUE(*x == *y) << "step-" << step << " weights differ";
    }
  }
}

}  // namespace
}  // namespace envtune
