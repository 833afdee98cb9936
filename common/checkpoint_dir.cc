#include "common/checkpoint_dir.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

namespace fs = std::filesystem;

constexpr char kFormat[] = "envtune-learner-checkpoint/1";
constexpr char kStateFile[] = "trainer_state.json";

// N for "step-N", nullopt otherwise.
std::optional<int64_t> StepOfLabel(const std::string& label) {
  int64_t n = 0;
  if (!absl::StartsWith(label, "step-") || !absl::SimpleAtoi(label.substr(5), &n) || n < 0) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

std::string OptimizerFileName(bool sharded, int rank, int world_size) {
  if (!sharded) return "optimizer.safetensors";
  return absl::StrCat("optimizer-rank", rank, "-of-", world_size, ".safetensors");
}

absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& dir) {
  const std::string path = dir + "/" + kStateFile;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(
        dir, " is not a complete learner checkpoint (no ", kStateFile, ")"));
  }
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  };
  if (!j.is_object()) return bad("not a JSON object");
  if (!j.contains("format") || j["format"] != kFormat) {
    return bad(absl::StrCat("format is not \"", kFormat, "\""));
  }
  for (const char* key : {"step", "policy_version", "world_size"}) {
    if (!j.contains(key) || !j[key].is_number_integer()) {
      return bad(absl::StrCat("'", key, "' must be an integer"));
    }
  }
  if (!j.contains("sharded") || !j["sharded"].is_boolean()) return bad("'sharded' must be a bool");
  if (j.contains("torch_rng") && !j["torch_rng"].is_string()) {
    return bad("'torch_rng' must be a string");
  }
  CheckpointInfo info;
  info.dir = dir;
  info.step = j["step"].get<int64_t>();
  const int64_t version = j["policy_version"].get<int64_t>();
  const int64_t world = j["world_size"].get<int64_t>();
  if (info.step < 0) return bad("'step' must be >= 0");
  if (version < 1) return bad("'policy_version' must be >= 1");
  if (world < 1 || world > (1 << 16)) return bad("'world_size' must be in 1..65536");
  info.policy_version = static_cast<uint64_t>(version);
  info.world_size = static_cast<int>(world);
  info.sharded = j["sharded"].get<bool>();
  info.torch_rng = j.value("torch_rng", std::string());
  return info;
}

absl::StatusOr<std::optional<CheckpointInfo>> LatestCheckpoint(const std::string& checkpoint_dir) {
  std::error_code ec;
  if (!fs::is_directory(checkpoint_dir, ec)) return std::optional<CheckpointInfo>();
  std::optional<CheckpointInfo> best;
  bool best_is_final = false;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoint_dir, ec)) {
    const std::string label = entry.path().filename().string();
    if (!entry.is_directory() || (label != "final" && !StepOfLabel(label).has_value())) continue;
    absl::StatusOr<CheckpointInfo> info = ReadCheckpointInfo(entry.path().string());
    if (absl::IsNotFound(info.status())) continue;  // weights only
    if (!info.ok()) return info.status();
    const bool is_final = label == "final";
    if (!best.has_value() || info->step > best->step ||
        (info->step == best->step && is_final && !best_is_final)) {
      best = *info;
      best_is_final = is_final;
    }
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", checkpoint_dir, ": ",
                                                     ec.message()));
  return best;
}

absl::StatusOr<std::string> BeginCheckpoint(const std::string& checkpoint_dir,
                                            const std::string& label) {
  std::error_code ec;
  fs::create_directories(checkpoint_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", checkpoint_dir, ": ", ec.message()));
  }
  // Leftovers of crashed or failed saves.
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoint_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".tmp-") || absl::StartsWith(name, ".old-")) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
  const std::string tmp = absl::StrCat(checkpoint_dir, "/.tmp-", label);
  fs::create_directories(tmp, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", tmp, ": ", ec.message()));
  }
  return tmp;
}

absl::Status CommitCheckpoint(const std::string& checkpoint_dir, const std::string& label,
                              const std::string& tmp_dir, const CheckpointInfo* info, int keep) {
  if (info != nullptr) {
    nlohmann::json j;
    j["format"] = kFormat;
    j["step"] = info->step;
    j["policy_version"] = info->policy_version;
    j["world_size"] = info->world_size;
    j["sharded"] = info->sharded;
    j["torch_rng"] = info->torch_rng;
    if (absl::Status s = WriteFileAtomic(tmp_dir + "/" + kStateFile, j.dump(1) + "\n"); !s.ok()) {
      return s;
    }
  }
  const std::string target = absl::StrCat(checkpoint_dir, "/", label);
  const std::string old = absl::StrCat(checkpoint_dir, "/.old-", label);
  std::error_code ec;
  if (fs::exists(target, ec)) {
    fs::remove_all(old, ec);
    fs::rename(target, old, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot move ", target, " aside: ",
                                                            ec.message()));
  }
  fs::rename(tmp_dir, target, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename ", tmp_dir, " to ", target, ": ", ec.message()));
  }
  if (absl::Status s = SyncDirectory(checkpoint_dir); !s.ok()) return s;
  fs::remove_all(old, ec);
  if (keep <= 0) return absl::OkStatus();
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoint_dir, ec)) {
    const std::optional<int64_t> n = StepOfLabel(entry.path().filename().string());
    if (!n.has_value() || !entry.is_directory()) continue;
    if (!fs::exists(entry.path() / kStateFile)) continue;  // weights only: kept
    steps.emplace_back(*n, entry.path());
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i) {
    fs::remove_all(steps[i].second, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot remove ", steps[i].second.string(), ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace envtune
