// The whole system as separate processes on loopback ports: `envtune train` starts a
// coordinator, 2 env servers, a learner and 2 actors, runs a two-stage curriculum with a tiny
// policy, and stops. The coordinator's lease ledger and the learner's trajectory ledger then
// show that every leased episode arrived exactly once, under the right stage and a valid policy
// version, and the final status shows the learner's progress.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "deploy/process.h"
#include "gtest/gtest.h"
#include "tests/integration/integration_util.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using integration::Binary;
using integration::ReadJsonLines;
using integration::SourceDir;
using integration::TinyLearnerYaml;

std::string ClusterConfig(const std::string& dir) {
  return absl::StrCat(R"(
launch:
  env_servers: 2
  actors: 2
  run_dir: )", dir, R"(/run
  startup_timeout_s: 300
  max_wall_s: 900
  poll_interval_ms: 250
coordinator:
  worker_expiry_ms: 30000
  lease_timeout_ms: 600000
  max_policy_staleness: 1
  ledger_path: )", dir, R"(/leases.jsonl
curriculum:
  stages:
    - {name: syntax, split: train, categories: [base], limit: 2, reward: format,
       group_size: 2, max_new_tokens: 12, max_episode_tokens: 32768, advance: {after_steps: 2}}
    - {name: hints, split: train, categories: [base], limit: 2, reward: progress,
       group_size: 2, max_new_tokens: 12, max_episode_tokens: 32768, advance: {after_steps: 2}}
)", TinyLearnerYaml(absl::StrCat("  ledger_path: ", dir, "/trajectories.jsonl\n")), R"(actor:
  concurrency: 4
  max_model_turns: 3
  max_episode_seconds: 300
  tokenizer: )", SourceDir(), R"(/third_party/qwen-tokenizer
)");
}

TEST(ClusterTest, ShortCurriculumDeliversEveryEpisodeExactlyOnce) {
  if (!std::filesystem::exists(Binary())) GTEST_SKIP() << "envtune binary not built at " << Binary();
  const std::string dir = integration::RunDir("envtune_cluster_test");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string config = dir + "/cluster.yaml";
  std::ofstream(config) << ClusterConfig(dir);

  auto train = ChildProcess::Spawn(
      "envtune-train", {Binary(), "train", "--config=" + config}, dir + "/train.log");
  ASSERT_TRUE(train.ok()) << train.status();
  absl::Time deadline = absl::Now() + absl::Minutes(15);
  while (!train->PollExit().has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(500));
  }
  ASSERT_TRUE(train->PollExit().has_value()) << "envtune train did not finish:\n"
                                             << train->LogTail(6000);
  ASSERT_EQ(*train->PollExit(), 0) << train->LogTail(6000);
  std::string log = train->LogTail(1 << 20);
  EXPECT_NE(log.find("curriculum finished"), std::string::npos) << log;
  EXPECT_NE(log.find("[stage 2 hints]"), std::string::npos) << log;
  EXPECT_NE(log.find("stage 2 hints from learner step"), std::string::npos) << log;

  // Leases issued and completed (the coordinator's view).
  std::map<std::string, nlohmann::json> issued;
  std::set<std::string> completed;
  for (const nlohmann::json& e : ReadJsonLines(dir + "/leases.jsonl")) {
    if (e["event"] == "issued") issued[e["lease"].get<std::string>()] = e;
    if (e["event"] == "completed") completed.insert(e["lease"].get<std::string>());
  }
  ASSERT_FALSE(completed.empty());
  std::set<int> stages_seen;
  for (const std::string& lease : completed) stages_seen.insert(issued.at(lease)["stage"].get<int>());
  EXPECT_EQ(stages_seen, (std::set<int>{1, 2}));

  // Trajectories received (the learner's view): exactly once each, right stage and version.
  std::map<std::string, int> episodes;
  std::map<std::string, int> per_lease;
  for (const nlohmann::json& t : ReadJsonLines(dir + "/trajectories.jsonl")) {
    std::string lease = t["lease"].get<std::string>();
    ++episodes[t["episode"].get<std::string>()];
    ++per_lease[lease];
    ASSERT_TRUE(issued.count(lease)) << "trajectory of a lease never issued: " << t.dump();
    EXPECT_EQ(t["stage"].get<int>(), issued[lease]["stage"].get<int>()) << t.dump();
    EXPECT_GE(t["version"].get<uint64_t>(), issued[lease]["min_version"].get<uint64_t>())
        << t.dump();
  }
  for (const auto& [episode, count] : episodes) EXPECT_EQ(count, 1) << episode;
  // Nothing of a completed lease was discarded (it all reached the training queue).
  for (const nlohmann::json& t : ReadJsonLines(dir + "/trajectories.jsonl")) {
    if (completed.count(t["lease"].get<std::string>()) > 0) {
      EXPECT_EQ(t["disposition"], "queued") << t.dump();
    }
  }
  for (const std::string& lease : completed) {
    EXPECT_EQ(per_lease[lease], issued[lease]["group_size"].get<int>()) << lease;
  }

  // The learner advanced and the status shows the cluster.
  std::ifstream status_file(dir + "/run/status.json");
  nlohmann::json status = nlohmann::json::parse(status_file);
  EXPECT_GE(std::stoll(status["policy_version"].get<std::string>()), 4);
  EXPECT_GE(std::stoll(status["learner_step"].get<std::string>()), 4);
  EXPECT_TRUE(status["finished"].get<bool>());
  std::map<std::string, int> roles;
  for (const nlohmann::json& w : status["workers"]) ++roles[w["role"].get<std::string>()];
  EXPECT_EQ(roles["ROLE_ACTOR"], 2);
  EXPECT_EQ(roles["ROLE_LEARNER"], 1);
  std::set<std::string> metrics;
  std::map<std::string, double> values;
  for (const nlohmann::json& m : status["metrics"]) {
    metrics.insert(m["name"].get<std::string>());
    values[m["name"].get<std::string>()] = m["value"].get<double>();
  }
  // Flow control kept every trained group within the staleness bound. Left in flight at the
  // end: at most the window's surplus over the last step's batch (groups rolled out, with
  // max_policy_staleness 1, for a step the finished curriculum never takes).
  EXPECT_LE(values["staleness/max"], 1.0) << status.dump();
  EXPECT_EQ(values["groups/dropped_stale"], 0.0) << status.dump();
  EXPECT_LE(std::stoll(status["groups_in_flight"].get<std::string>()),
            std::stoll(status["max_groups_in_flight"].get<std::string>()) - 1)
      << status.dump();
  EXPECT_TRUE(metrics.count("stage1/reward")) << status.dump();
  EXPECT_TRUE(metrics.count("stage2/reward")) << status.dump();
  EXPECT_TRUE(std::filesystem::exists(dir + "/run/metrics.svg"));
  EXPECT_FALSE(ReadJsonLines(dir + "/run/metrics.jsonl").empty());
}

}  // namespace
}  // namespace envtune
