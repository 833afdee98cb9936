#include "coordinator/curriculum_config.h"

#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace envtune {
namespace {

// "multi_turn_miss_func_12" -> "miss_func".
std::string CategoryOf(const std::string& task_id) {
  std::string rest = task_id;
  if (absl::StartsWith(rest, "multi_turn_")) rest = rest.substr(11);
  size_t underscore = rest.rfind('_');
  return underscore == std::string::npos ? rest : rest.substr(0, underscore);
}

// The config's names of the reward kinds (`reward:` of a stage).
struct RewardName {
  const char* name;
  v1::RewardKind kind;
};
constexpr RewardName kRewardNames[] = {{"format", v1::REWARD_KIND_FORMAT},
                                       {"progress", v1::REWARD_KIND_PROGRESS},
                                       {"binary", v1::REWARD_KIND_BINARY}};

// Sane ranges of the keys read below (ConfigReader::AddBounds): far beyond any real run, tight
// enough that a typo or a hostile config is an error instead of a hang, an allocation that
// aborts or a status reply over gRPC's limit.
constexpr double kDay = 86400e3;  // ms
constexpr ConfigBound kCoordinatorBounds[] = {
    {"coordinator.heartbeat_interval_ms", 10, 600e3},
    {"coordinator.worker_expiry_ms", 100, kDay},
    {"coordinator.lease_timeout_ms", 100, 7 * kDay},
    {"coordinator.max_policy_staleness", 0, 1000},
    {"coordinator.max_inflight_groups", 0, 1 << 20},
    {"coordinator.max_learner_steps", 0, 1e12},
    {"coordinator.max_leases_per_worker", 1, 1 << 16},
    // Every worker's entry (<= ~18 KB at the Register/Heartbeat bounds) is in each GetStatus
    // reply: 2048 of them stay below half of gRPC's 64 MiB.
    {"coordinator.max_workers", 1, 2048},
    {"coordinator.max_watch_streams", 1, 1 << 16},
    {"coordinator.max_watch_streams_per_worker", 1, 1024},
    {"coordinator.resume_step", -1, 1e15},
    {"coordinator.state_keep_steps", 1, 1e9},
    {"evaluation.every_steps", 0, 1e12},
    {"evaluation.limit", 0, 1e9},
    {"curriculum.stages[*].limit", 0, 1e9},
    {"curriculum.stages[*].augment.start", 0, 1},
    {"curriculum.stages[*].augment.end", 0, 1},
    {"curriculum.stages[*].augment.anneal_steps", 0, 1e12},
    {"curriculum.stages[*].group_size", 1, 1024},
    {"curriculum.stages[*].max_steps_per_turn", 1, 100},  // the env server's max_steps_limit
    {"curriculum.stages[*].max_new_tokens", 1, 1 << 20},
    {"curriculum.stages[*].max_episode_tokens", 1, 1 << 24},  // CompleteLease's token bound
    {"curriculum.stages[*].advance.after_steps", 0, 1e12},
    {"curriculum.stages[*].advance.threshold", -1e9, 1e9},
    {"curriculum.stages[*].advance.checks", 1, 1e6},
};

}  // namespace

absl::StatusOr<v1::RewardKind> ParseRewardKind(absl::string_view name) {
  std::string known;
  for (const RewardName& row : kRewardNames) {
    if (name == row.name) return row.kind;
    absl::StrAppend(&known, known.empty() ? "" : ", ", row.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reward '", name, "' (one of: ", known, ")"));
}

absl::StatusOr<std::vector<std::string>> LoadSplitTaskIds(const std::string& data_dir,
                                                          const std::string& split,
                                                          const std::vector<std::string>& categories,
                                                          size_t limit) {
  std::string path = absl::StrCat(data_dir, "/splits/", split, ".txt");
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("split '", split, "': cannot read ", path));
  }
  std::vector<std::string> ids;
  std::map<std::string, size_t> taken;
  std::string line;
  while (std::getline(in, line)) {
    std::string id(absl::StripAsciiWhitespace(line));
    if (id.empty() || id[0] == '#') continue;
    std::string category = CategoryOf(id);
    if (!categories.empty() &&
        std::find(categories.begin(), categories.end(), category) == categories.end()) {
      continue;
    }
    if (limit > 0 && taken[category] >= limit) continue;
    ++taken[category];
    ids.push_back(id);
  }
  if (ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("split '", split, "' has no tasks in the requested categories"));
  }
  return ids;
}

absl::StatusOr<CoordinatorOptions> ReadCoordinatorOptions(ConfigReader& reader,
                                                          const std::string& data_dir) {
  CoordinatorOptions options;
  reader.AddBounds(kCoordinatorBounds);
  options.heartbeat_interval =
      absl::Milliseconds(reader.Get<int64_t>("coordinator.heartbeat_interval_ms", 2000));
  options.worker_expiry =
      absl::Milliseconds(reader.Get<int64_t>("coordinator.worker_expiry_ms", 10000));
  options.lease_timeout =
      absl::Milliseconds(reader.Get<int64_t>("coordinator.lease_timeout_ms", 600000));
  options.max_policy_staleness = reader.Get<uint64_t>("coordinator.max_policy_staleness", 1);
  options.max_inflight_groups = reader.Get<uint64_t>("coordinator.max_inflight_groups", 0);
  options.max_learner_steps = reader.Get<int64_t>("coordinator.max_learner_steps", 0);
  options.max_leases_per_worker = reader.Get<uint32_t>("coordinator.max_leases_per_worker",
                                                       options.max_leases_per_worker);
  options.lease_fair_share =
      reader.Get<bool>("coordinator.lease_fair_share", options.lease_fair_share);
  options.max_workers = reader.Get<size_t>("coordinator.max_workers", options.max_workers);
  options.max_watch_streams =
      reader.Get<size_t>("coordinator.max_watch_streams", options.max_watch_streams);
  options.max_watch_streams_per_worker = reader.Get<size_t>(
      "coordinator.max_watch_streams_per_worker", options.max_watch_streams_per_worker);
  options.seed = reader.Get<uint64_t>("coordinator.seed", 1);
  options.ledger_path = reader.Get<std::string>("coordinator.ledger_path", "");
  if (reader.Has("coordinator.admin_token")) {
    reader.MarkRead("coordinator.admin_token");
    reader.AddError(
        "coordinator.admin_token: replaced by security.admin_token_file (a file holding the "
        "token, so it never appears on a command line; common/security.h)");
  }
  options.state_dir = reader.Get<std::string>("coordinator.state_dir", "");
  options.resume_step = reader.Get<int64_t>("coordinator.resume_step", -1);
  options.resume_latest = reader.Get<bool>("coordinator.resume_latest", false);
  if (options.resume_latest && (options.state_dir.empty() || options.resume_step >= 0)) {
    reader.AddError("coordinator.resume_latest: needs coordinator.state_dir and no resume_step");
  }
  options.state_keep_steps = reader.Get<int64_t>("coordinator.state_keep_steps", 256);
  if (options.resume_step >= 0 && options.state_dir.empty()) {
    reader.AddError("coordinator.resume_step: needs coordinator.state_dir");
  }
  if (options.state_keep_steps < 1) reader.AddError("coordinator.state_keep_steps: must be >= 1");

  options.eval_every_steps = reader.Get<int64_t>("evaluation.every_steps", 0);
  // Read (and so checked) whether or not evaluation is on; the split is loaded only when on.
  const std::string eval_split = reader.Get<std::string>("evaluation.split", "val");
  const std::vector<std::string> eval_categories =
      reader.Get<std::vector<std::string>>("evaluation.categories", {});
  const size_t eval_limit = reader.Get<size_t>("evaluation.limit", 0);
  if (options.eval_every_steps > 0) {
    auto ids = LoadSplitTaskIds(data_dir, eval_split, eval_categories, eval_limit);
    if (!ids.ok()) return ids.status();
    options.eval_task_ids = *std::move(ids);
  }

  size_t n = reader.SequenceSize("curriculum.stages");
  if (n == 0) reader.AddError("curriculum.stages: at least one stage is required");
  for (size_t i = 0; i < n; ++i) {
    std::string key = absl::StrCat("curriculum.stages[", i, "].");
    StageConfig stage;
    stage.stage = static_cast<int>(i) + 1;
    stage.name = reader.Get<std::string>(key + "name", absl::StrCat("stage", i + 1));
    auto ids = LoadSplitTaskIds(data_dir, reader.Get<std::string>(key + "split", "train"),
                                reader.Get<std::vector<std::string>>(key + "categories", {}),
                                reader.Get<size_t>(key + "limit", 0));
    if (!ids.ok()) {
      return absl::Status(ids.status().code(), absl::StrCat(key, "split: ", ids.status().message()));
    }
    stage.task_ids = *std::move(ids);
    absl::StatusOr<v1::RewardKind> reward =
        ParseRewardKind(reader.Get<std::string>(key + "reward", "progress"));
    if (reward.ok()) {
      stage.reward_kind = *reward;
    } else {
      reader.AddError(absl::StrCat(key, "reward: ", reward.status().message()));
    }
    stage.augment_start = reader.Get<double>(key + "augment.start", 1.0);
    stage.augment_end = reader.Get<double>(key + "augment.end", stage.augment_start);
    stage.anneal_steps = reader.Get<int64_t>(key + "augment.anneal_steps", 0);
    stage.group_size = reader.Get<uint32_t>(key + "group_size", 16);
    stage.max_steps_per_turn = reader.Get<uint32_t>(key + "max_steps_per_turn", 5);
    stage.max_new_tokens = reader.Get<uint32_t>(key + "max_new_tokens", 512);
    stage.max_episode_tokens = reader.Get<uint32_t>(key + "max_episode_tokens", 8192);
    stage.advance.after_learner_steps = reader.Get<int64_t>(key + "advance.after_steps", 0);
    stage.advance.metric = reader.Get<std::string>(key + "advance.metric", "");
    stage.advance.threshold = reader.Get<double>(key + "advance.threshold", 0.0);
    stage.advance.consecutive_checks = reader.Get<int>(key + "advance.checks", 1);
    options.stages.push_back(std::move(stage));
  }
  return options;
}

}  // namespace envtune
