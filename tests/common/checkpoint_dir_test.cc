// Checkpoint directories (common/checkpoint_dir.h) and atomic files (common/file.h): a crash in
// the middle of a save (a leftover .tmp-* directory, half written) leaves the previous checkpoint
// the latest one; keep-last-K; weights-only checkpoints are never resumed from; a malformed
// trainer_state.json is a clear error.
#include "common/checkpoint_dir.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/file.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/ckptdir-", name, "-", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A complete checkpoint of `step` with one payload file.
void Save(const std::string& root, const std::string& label, int64_t step, int keep = 0) {
  absl::StatusOr<std::string> tmp = BeginCheckpoint(root, label);
  ASSERT_TRUE(tmp.ok()) << tmp.status();
  std::ofstream(*tmp + "/model.safetensors") << "weights of " << label;
  CheckpointInfo info;
  info.step = step;
  info.policy_version = static_cast<uint64_t>(step) + 1;
  info.torch_rng = "00ff";
  ASSERT_TRUE(CommitCheckpoint(root, label, *tmp, &info, keep).ok());
}

TEST(CheckpointDir, LatestIsTheHighestCompleteStep) {
  const std::string root = FreshDir("latest");
  auto none = LatestCheckpoint(root);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(LatestCheckpoint(root + "/missing")->has_value());
  // Weights only (the initial step-0 of a random policy): not a resume point.
  fs::create_directories(root + "/step-0");
  std::ofstream(root + "/step-0/model.safetensors") << "w";
  EXPECT_FALSE(LatestCheckpoint(root)->has_value());
  Save(root, "step-5", 5);
  Save(root, "step-10", 10);
  Save(root, "step-7", 7);
  auto latest = LatestCheckpoint(root);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->step, 10);
  EXPECT_EQ((*latest)->policy_version, 11u);
  EXPECT_EQ((*latest)->dir, root + "/step-10");
  EXPECT_EQ((*latest)->torch_rng, "00ff");
  // "final" of the same step wins the tie; of an older step it does not.
  Save(root, "final", 10);
  EXPECT_EQ((*LatestCheckpoint(root))->dir, root + "/final");
  Save(root, "final", 3);
  EXPECT_EQ((*LatestCheckpoint(root))->dir, root + "/step-10");
}

TEST(CheckpointDir, ACrashMidSaveLeavesThePreviousCheckpoint) {
  const std::string root = FreshDir("crash");
  Save(root, "step-2", 2);
  // A save of step-4 that died before its commit: a temp directory with partial files and no
  // trainer_state.json, and one that died while an older "step-2" was being replaced.
  fs::create_directories(root + "/.tmp-step-4");
  std::ofstream(root + "/.tmp-step-4/model.safetensors") << "half";
  fs::create_directories(root + "/.old-final");
  auto latest = LatestCheckpoint(root);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->step, 2);
  absl::StatusOr<std::string> content = ReadFileToString(root + "/step-2/model.safetensors");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "weights of step-2");
  // The next save removes the leftovers and commits.
  Save(root, "step-4", 4);
  EXPECT_FALSE(fs::exists(root + "/.old-final"));
  EXPECT_EQ((*LatestCheckpoint(root))->step, 4);
  EXPECT_FALSE(fs::exists(root + "/.tmp-step-4"));
  EXPECT_EQ(*ReadFileToString(root + "/step-4/model.safetensors"), "weights of step-4");
  // Saving a label again replaces it whole.
  Save(root, "step-4", 4);
  EXPECT_EQ(*ReadFileToString(root + "/step-4/model.safetensors"), "weights of step-4");
}

TEST(CheckpointDir, KeepsTheLastK) {
  const std::string root = FreshDir("keep");
  fs::create_directories(root + "/step-0");  // weights only: never pruned
  for (int step = 1; step <= 6; ++step) Save(root, absl::StrCat("step-", step), step, /*keep=*/3);
  Save(root, "final", 6, /*keep=*/3);
  for (int step = 1; step <= 3; ++step) {
    EXPECT_FALSE(fs::exists(absl::StrCat(root, "/step-", step))) << step;
  }
  for (int step = 4; step <= 6; ++step) {
    EXPECT_TRUE(fs::exists(absl::StrCat(root, "/step-", step))) << step;
  }
  EXPECT_TRUE(fs::exists(root + "/step-0"));
  EXPECT_TRUE(fs::exists(root + "/final"));
}

TEST(CheckpointDir, MalformedStateIsAClearError) {
  const std::string root = FreshDir("malformed");
  Save(root, "step-1", 1);
  for (const char* text : {"", "[]", "{\"format\":\"other\"}",
                           "{\"format\":\"envtune-learner-checkpoint/1\",\"step\":1}",
                           "{\"format\":\"envtune-learner-checkpoint/1\",\"step\":1,"
                           "\"policy_version\":0,\"world_size\":1,\"sharded\":false}",
                           "{\"format\":\"envtune-learner-checkpoint/1\",\"step\":1,"
                           "\"policy_version\":2,\"world_size\":1e9,\"sharded\":false}"}) {
    std::ofstream(root + "/step-1/trainer_state.json", std::ios::trunc) << text;
    absl::StatusOr<CheckpointInfo> info = ReadCheckpointInfo(root + "/step-1");
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(info.status().message().find("trainer_state.json"), std::string::npos);
    EXPECT_FALSE(LatestCheckpoint(root).ok()) << text;
  }
  EXPECT_TRUE(absl::IsNotFound(ReadCheckpointInfo(root + "/nothing").status()));
  EXPECT_EQ(OptimizerFileName(false, 3, 4), "optimizer.safetensors");
  EXPECT_EQ(OptimizerFileName(true, 3, 4), "optimizer-rank3-of-4.safetensors");
}

TEST(WriteFileAtomic, ReplacesWholeAndLeavesNoTemp) {
  const std::string root = FreshDir("atomic");
  const std::string path = root + "/status.json";
  ASSERT_TRUE(WriteFileAtomic(path, "first").ok());
  EXPECT_EQ(*ReadFileToString(path), "first");
  const std::string big(1 << 20, 'x');
  ASSERT_TRUE(WriteFileAtomic(path, big).ok());
  EXPECT_EQ(*ReadFileToString(path), big);
  ASSERT_TRUE(WriteFileAtomic(path, "not fsynced", /*durable=*/false).ok());
  EXPECT_EQ(*ReadFileToString(path), "not fsynced");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root)) entries += e.exists();
  EXPECT_EQ(entries, 1);  // no temp file left behind
  absl::Status s = WriteFileAtomic(root + "/no/such/dir/file", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no/such/dir/file"), std::string::npos) << s;
}

}  // namespace
}  // namespace envtune
