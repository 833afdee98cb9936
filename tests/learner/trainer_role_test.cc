// The learner role end to end on loopback (no coordinator): trajectories pushed over
// LearnerService are grouped, complete groups are trained on, incomplete ones are dropped after
// their deadline without stalling, each step publishes a new version, checkpoints are written
// (HF layout, loadable), and config keys are checked.
#include "learner/learner_role.h"

#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/channels.h"
#include "common/config.h"
#include "envtune/v1/learner.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "tests/learner/trainer_test_util.h"

namespace envtune {
namespace {

using trainer_testing::MakeTrajectory;

LearnerRoleOptions TinyOptions(const std::string& checkpoint_dir) {
  LearnerRoleOptions o;
  o.tiny.vocab_size = 64;
  o.tiny.hidden_size = 16;
  o.tiny.intermediate_size = 32;
  o.tiny.num_hidden_layers = 2;
  o.tiny.num_attention_heads = 2;
  o.tiny.num_key_value_heads = 1;
  o.train_batch_groups = 2;
  o.group_timeout = absl::Seconds(1);
  o.max_steps = 2;
  o.lr = 1e-3;
  o.checkpoint_dir = checkpoint_dir;
  o.checkpoint_every = 1;
  return o;
}

absl::Status Push(const std::string& address, const std::vector<v1::Trajectory>& trajectories) {
  auto stub = v1::LearnerService::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::seconds(30));
  v1::PushTrajectoriesResponse response;
  auto writer = stub->PushTrajectories(&context, &response);
  for (const auto& t : trajectories) {
    if (!writer->Write(t)) break;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return absl::OkStatus();
}

uint64_t PolicyVersion(const std::string& address) {
  auto stub = v1::LearnerService::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::seconds(5));
  v1::GetPolicyVersionResponse response;
  if (!stub->GetPolicyVersion(&context, {}, &response).ok()) return 0;
  return response.version();
}

TEST(LearnerRole, TrainsCompleteGroupsDropsIncompleteOnesAndCheckpoints) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("envtune_learner_role_" + std::to_string(::getpid())))
                        .string();
  std::filesystem::remove_all(dir);
  auto role = LearnerRole::Create(TinyOptions(dir));
  ASSERT_TRUE(role.ok()) << role.status();
  const std::string address = "127.0.0.1:" + std::to_string((*role)->port());
  EXPECT_EQ(PolicyVersion(address), 1u);
  absl::Status run_status;
  std::thread runner([&] { run_status = (*role)->Run(); });

  std::mt19937 rng(1);
  std::vector<v1::Trajectory> first;
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < 2; ++i) {
      first.push_back(MakeTrajectory("s1g" + std::to_string(g), i, 2, i, 4, 6, rng));
    }
  }
  // An incomplete group (1 of 2) and a duplicate episode.
  first.push_back(MakeTrajectory("lonely", 0, 2, 1.0, 4, 6, rng));
  first.push_back(first[0]);
  ASSERT_TRUE(Push(address, first).ok());
  for (int i = 0; i < 200 && PolicyVersion(address) < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(PolicyVersion(address), 2u);
  // Wait for the lonely group's deadline, then a second batch made by version 2.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  std::vector<v1::Trajectory> second;
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < 2; ++i) {
      v1::Trajectory t = MakeTrajectory("s2g" + std::to_string(g), i, 2, i, 3, 5, rng, 64, 2);
      if (g == 1 && i == 1) {  // a failed episode completes its group but is not trained on
        t.set_failed(true);
        t.clear_token_ids();
        t.clear_loss_mask();
        t.clear_behaviour_logprobs();
      }
      second.push_back(t);
    }
  }
  ASSERT_TRUE(Push(address, second).ok());
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  LearnerProgress p = (*role)->progress();
  EXPECT_EQ(p.steps, 2);
  EXPECT_EQ(p.version, 3u);
  EXPECT_EQ(p.groups_trained, 4);
  EXPECT_EQ(p.groups_dropped, 1);
  EXPECT_EQ(p.duplicates_dropped, 1);
  EXPECT_EQ(PolicyVersion(address), 3u);
  for (const char* name : {"step-0", "step-1", "step-2", "final"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + name + "/config.json")) << name;
  }
  absl::StatusOr<Policy> loaded = LoadPolicy(dir + "/final");
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  role->reset();
  std::filesystem::remove_all(dir);
}

// Bytes held for incomplete groups are bounded (learner.max_incomplete_group_bytes): past the
// bound the oldest incomplete group is dropped and counted (groups/dropped_memory), its late
// episode is a duplicate, and the groups that fit complete and are trained on.
TEST(LearnerRole, IncompleteGroupsOverTheByteBoundDropTheOldest) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("envtune_learner_role_bytes_" + std::to_string(::getpid())))
                        .string();
  std::filesystem::remove_all(dir);
  std::mt19937 rng(3);
  std::vector<v1::Trajectory> firsts, seconds;
  for (const char* group : {"old", "mid", "new"}) {
    firsts.push_back(MakeTrajectory(group, 0, 2, 0.0, 4, 6, rng));
    seconds.push_back(MakeTrajectory(group, 1, 2, 1.0, 4, 6, rng));
  }
  size_t largest = 0;
  for (const v1::Trajectory& t : firsts) largest = std::max(largest, t.ByteSizeLong());
  LearnerRoleOptions options = TinyOptions(dir);
  options.group_timeout = absl::Seconds(600);  // only the byte bound drops here
  options.max_steps = 1;
  options.max_incomplete_group_bytes = static_cast<int64_t>(largest * 5 / 2);  // 2 of 3 fit
  auto role = LearnerRole::Create(options);
  ASSERT_TRUE(role.ok()) << role.status();
  const std::string address = "127.0.0.1:" + std::to_string((*role)->port());
  absl::Status run_status;
  std::thread runner([&] { run_status = (*role)->Run(); });

  ASSERT_TRUE(Push(address, firsts).ok());
  for (int i = 0; i < 200 && (*role)->progress().groups_dropped_memory == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ((*role)->progress().groups_dropped_memory, 1);
  // "mid" and "new" complete (a batch of 2: one step); "old" was dropped, its episode is late.
  ASSERT_TRUE(Push(address, {seconds[1], seconds[2], seconds[0]}).ok());
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  LearnerProgress p = (*role)->progress();
  EXPECT_EQ(p.steps, 1);
  EXPECT_EQ(p.groups_trained, 2);
  EXPECT_EQ(p.groups_dropped_memory, 1);
  EXPECT_EQ(p.groups_dropped, 0);
  role->reset();
  std::filesystem::remove_all(dir);
}

// A batch whose episodes all failed (an env server down for the whole rollout) is not trained
// on: no step, no new version, counted; the next batch with data is step 1.
TEST(LearnerRole, ABatchOfOnlyFailedEpisodesIsSkippedNotTrainedOn) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("envtune_learner_role_failed_" + std::to_string(::getpid())))
                        .string();
  std::filesystem::remove_all(dir);
  LearnerRoleOptions options = TinyOptions(dir);
  options.max_steps = 1;
  auto role = LearnerRole::Create(options);
  ASSERT_TRUE(role.ok()) << role.status();
  const std::string address = "127.0.0.1:" + std::to_string((*role)->port());
  absl::Status run_status;
  std::thread runner([&] { run_status = (*role)->Run(); });
  std::mt19937 rng(3);
  std::vector<v1::Trajectory> failed;
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < 2; ++i) {
      v1::Trajectory t = MakeTrajectory("failed" + std::to_string(g), i, 2, 0, 4, 6, rng);
      t.set_failed(true);
      t.clear_token_ids();
      t.clear_loss_mask();
      t.clear_behaviour_logprobs();
      failed.push_back(t);
    }
  }
  ASSERT_TRUE(Push(address, failed).ok());
  for (int i = 0; i < 200 && (*role)->progress().groups_skipped_failed < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ((*role)->progress().groups_skipped_failed, 2);
  EXPECT_EQ((*role)->progress().steps, 0);
  EXPECT_EQ(PolicyVersion(address), 1u);
  std::vector<v1::Trajectory> good;
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < 2; ++i) {
      good.push_back(MakeTrajectory("good" + std::to_string(g), i, 2, i, 4, 6, rng));
    }
  }
  ASSERT_TRUE(Push(address, good).ok());
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  LearnerProgress p = (*role)->progress();
  EXPECT_EQ(p.steps, 1);
  EXPECT_EQ(p.version, 2u);
  EXPECT_EQ(p.groups_trained, 2);
  EXPECT_EQ(p.groups_skipped_failed, 2);
  role->reset();
  std::filesystem::remove_all(dir);
}

// Two batches of two groups each; `scrambled` delivers groups and episodes out of order.
std::vector<std::vector<v1::Trajectory>> TwoBatches(bool scrambled) {
  std::mt19937 rng(7);
  std::vector<std::vector<v1::Trajectory>> batches(2);
  for (int b = 0; b < 2; ++b) {
    for (int g = 0; g < 2; ++g) {
      for (int i = 0; i < 2; ++i) {
        batches[b].push_back(MakeTrajectory(absl::StrCat("L", 2 * b + g + 1), i, 2,
                                            (g + i + b) % 2, 4 + g, 6 + i, rng, 64,
                                            static_cast<uint64_t>(b + 1)));
      }
    }
    if (scrambled) std::reverse(batches[b].begin(), batches[b].end());
  }
  return batches;
}

// Runs a learner role over `batches` (each pushed once the previous step is published) and
// returns the bytes of its final weights.
std::string TrainRole(const LearnerRoleOptions& options,
                      const std::vector<std::vector<v1::Trajectory>>& batches,
                      LearnerProgress* progress_out = nullptr) {
  auto role = LearnerRole::Create(options);
  EXPECT_TRUE(role.ok()) << role.status();
  if (!role.ok()) return "";
  const std::string address = "127.0.0.1:" + std::to_string((*role)->port());
  const uint64_t start = PolicyVersion(address);
  absl::Status run_status;
  std::thread runner([&] { run_status = (*role)->Run(); });
  for (size_t b = 0; b < batches.size(); ++b) {
    EXPECT_TRUE(Push(address, batches[b]).ok());
    for (int i = 0; i < 400 && PolicyVersion(address) < start + b + 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  if (progress_out != nullptr) *progress_out = (*role)->progress();
  role->reset();
  std::ifstream in(options.checkpoint_dir + "/final/model.safetensors", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string RoleDir(const std::string& name) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("envtune_learner_role_" + name + "_" + std::to_string(::getpid())))
                              .string();
  std::filesystem::remove_all(dir);
  return dir;
}

// Arrival order does not change the weights (batches are trained in group and episode id
// order); a learner killed after step 1 and resumed with resume=latest ends bitwise where the
// uninterrupted learner did, at the same step and version.
TEST(LearnerRole, ArrivalOrderDoesNotMatterAndResumeEndsBitwiseEqual) {
  LearnerRoleOptions options = TinyOptions(RoleDir("ordered"));
  const std::string ordered = TrainRole(options, TwoBatches(false));
  ASSERT_FALSE(ordered.empty());
  const std::string ordered_dir = options.checkpoint_dir;

  options.checkpoint_dir = RoleDir("scrambled");
  EXPECT_EQ(TrainRole(options, TwoBatches(true)), ordered);

  // "Killed" after step 1: only its checkpoints are left.
  options.checkpoint_dir = RoleDir("resumed");
  std::filesystem::create_directories(options.checkpoint_dir);
  for (const char* name : {"step-0", "step-1"}) {
    std::filesystem::copy(ordered_dir + "/" + name, options.checkpoint_dir + "/" + name,
                          std::filesystem::copy_options::recursive);
  }
  options.resume = "latest";
  LearnerProgress progress;
  const std::string resumed = TrainRole(options, {TwoBatches(false)[1]}, &progress);
  EXPECT_EQ(progress.steps, 2);
  EXPECT_EQ(progress.version, 3u);
  EXPECT_EQ(resumed, ordered) << "the resumed learner's final weights differ";

  // A checkpoint written by a ZeRO-2 learner cannot be resumed by a replicated one.
  options.checkpoint_dir = RoleDir("mismatch");
  std::filesystem::create_directories(options.checkpoint_dir);
  std::filesystem::copy(ordered_dir + "/step-1", options.checkpoint_dir + "/step-1",
                        std::filesystem::copy_options::recursive);
  std::ofstream(options.checkpoint_dir + "/step-1/trainer_state.json", std::ios::trunc)
      << R"({"format":"envtune-learner-checkpoint/1","step":1,"policy_version":2,)"
      << R"("world_size":2,"sharded":true,"torch_rng":""})";
  auto mismatch = LearnerRole::Create(options);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kFailedPrecondition) << mismatch.status();
  EXPECT_NE(mismatch.status().message().find("learner.resume"), std::string::npos);
  for (const std::string& d : {ordered_dir, RoleDir("scrambled"), RoleDir("resumed"),
                               RoleDir("mismatch")}) {
    std::filesystem::remove_all(d);
  }
}

TEST(LearnerRole, ReadsConfigAndRejectsUnknownKeys) {
  absl::StatusOr<Config> config = Config::FromString(R"(
model:
  tiny: {vocab_size: 128, hidden_size: 32, rope_theta: 5.0e5}
learner:
  train_batch_groups: 4
  lr: 2.0e-6
  betas: [0.8, 0.95]
  lr_schedule: cosine
  total_steps: 10
  distributed: {world_size: 1, keepalive_s: 5}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  ConfigReader reader(*config);
  LearnerRoleOptions o;
  ReadLearnerOptions(reader, &o);
  ASSERT_TRUE(reader.Finish().ok()) << reader.Finish();
  EXPECT_EQ(o.train_batch_groups, 4);
  EXPECT_DOUBLE_EQ(o.lr, 2e-6);
  EXPECT_DOUBLE_EQ(o.beta1, 0.8);
  EXPECT_DOUBLE_EQ(o.beta2, 0.95);
  EXPECT_EQ(o.tiny.vocab_size, 128);
  EXPECT_EQ(o.tiny.rope_theta, 5.0e5);  // honoured, not ignored (model/model_spec.h)
  EXPECT_EQ(o.lr_schedule, "cosine");
  EXPECT_EQ(o.keepalive, absl::Seconds(5));

  absl::StatusOr<Config> bad =
      Config::FromString("model: {tiny: {rope_thta: 1}}\nlearner: {lrr: 1, train_batch_groups: 0}");
  ASSERT_TRUE(bad.ok());
  ConfigReader bad_reader(*bad);
  ReadLearnerOptions(bad_reader, &o);
  absl::Status s = bad_reader.Finish();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("lrr"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("train_batch_groups"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("model.tiny.rope_thta"), std::string_view::npos) << s;
}

TEST(LearnerRole, ShippedConfigsHaveValidLearnerSections) {
  const char* source = std::getenv("ENVTUNE_SOURCE_DIR");
  if (source == nullptr) GTEST_SKIP() << "ENVTUNE_SOURCE_DIR not set";
  for (const char* name : {"tiny-cpu.yaml", "paper-qwen2.5-7b.yaml"}) {
    std::string path = std::string(source) + "/configs/" + name;
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
    absl::StatusOr<Config> config = Config::Load(path);
    ASSERT_TRUE(config.ok()) << config.status();
    ConfigReader reader(*config);
    LearnerRoleOptions o;
    ReadLearnerOptions(reader, &o);
    for (const char* other : {"coordinator", "evaluation", "curriculum", "actor", "envserver",
                              "launch", "data", "sft"}) {
      reader.MarkRead(other);
    }
    EXPECT_TRUE(reader.Finish().ok()) << name << ": " << reader.Finish();
    if (std::string(name) == "paper-qwen2.5-7b.yaml") {
      EXPECT_EQ(o.stage_batch_groups, (std::vector<int>{16, 32, 32, 32}));
      EXPECT_DOUBLE_EQ(o.lr, 1e-6);
      EXPECT_DOUBLE_EQ(o.kl_coef, 0.1);
      EXPECT_DOUBLE_EQ(o.clip_high, 0.28);
    }
  }
}

TEST(LearnerRole, BadOptionsAreErrors) {
  LearnerRoleOptions o = TinyOptions("");
  o.lr_schedule = "sawtooth";
  EXPECT_FALSE(LearnerRole::Create(o).ok());
  o = TinyOptions("");
  o.model_path = "/nonexistent/model";
  EXPECT_FALSE(LearnerRole::Create(o).ok());
}

// `learner.distributed.backend: nccl` (device left at its default, this rank's GPU) on a
// machine without a GPU: the learner stops at once and says which device is missing.
TEST(LearnerRole, NcclWithoutAGpuFailsNamingTheDevice) {
  if (VisibleCudaDevices() > 0) GTEST_SKIP() << "a GPU is visible here";
  LearnerRoleOptions o = TinyOptions("");
  o.backend = "nccl";
  absl::StatusOr<std::unique_ptr<LearnerRole>> role = LearnerRole::Create(o);
  ASSERT_FALSE(role.ok());
  EXPECT_EQ(role.status().code(), absl::StatusCode::kFailedPrecondition) << role.status();
  EXPECT_THAT(role.status().message(), testing::HasSubstr("'cuda:0'")) << role.status();
  o.backend = "gloo";
  o.device = "cuda";
  role = LearnerRole::Create(o);
  ASSERT_FALSE(role.ok());
  EXPECT_THAT(role.status().message(), testing::HasSubstr("learner.device: device 'cuda:0'"))
      << role.status();
}

}  // namespace
}  // namespace envtune
