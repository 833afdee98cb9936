// End-to-end throughput and time split of `envtune train` (every role a separate process, as a
// user runs it), by default on the built-in tiny default. Runs the launcher for `steps` learner
// steps (coordinator.max_learner_steps), then reads the run's final cluster status and metrics:
//
//   episodes/s, generated tokens/s      actors' cumulative counters over the run's wall time
//   learner tokens/s                    mean of the per-step learner_tokens_per_s
//   actor time split                    generation | waiting on env servers | weight sync |
//                                       other actor work (render, tokenize, decode, push)
//   learner time split                  optimiser steps | publishing weights | waiting for groups
//
//   bench_deploy_train_bench [config=configs/tiny-cpu.yaml] [steps=8] [key.sub=value ...]
// Run from the repository root; the envtune binary is found beside this benchmark
// (<build>/deploy/envtune) or at $ENVTUNE_BINARY_DIR/deploy/envtune.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "deploy/process.h"
#include "nlohmann/json.hpp"

namespace {

std::string FindBinary(const char* argv0) {
  if (const char* dir = std::getenv("ENVTUNE_BINARY_DIR")) {
    return std::string(dir) + "/deploy/envtune";
  }
  std::filesystem::path self = std::filesystem::absolute(argv0);
  return (self.parent_path().parent_path() / "deploy" / "envtune").string();
}

// Sums `name` over the workers of `role` in a status.json.
double WorkerSum(const nlohmann::json& status, const std::string& role, const std::string& name) {
  double sum = 0;
  for (const nlohmann::json& w : status.value("workers", nlohmann::json::array())) {
    if (w.value("role", "") != role) continue;
    for (const nlohmann::json& m : w.value("metrics", nlohmann::json::array())) {
      if (m.value("name", "") == name) sum += m.value("value", 0.0);
    }
  }
  return sum;
}

double Pct(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

}  // namespace

int main(int argc, char** argv) {
  using namespace envtune;
  std::string config = "configs/tiny-cpu.yaml";
  int steps = 8;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("config=", 0) == 0) {
      config = a.substr(7);
    } else if (a.rfind("steps=", 0) == 0) {
      steps = std::atoi(a.c_str() + 6);
    } else if (a.rfind("launch.run_dir=", 0) == 0 || a.rfind("learner.checkpoint_dir=", 0) == 0) {
      // The benchmark reads its own temporary run directory and writes no checkpoints.
      std::fprintf(stderr, "%s: the benchmark sets this key itself\n", a.c_str());
      return 2;
    } else {
      overrides.push_back(a);
    }
  }
  const std::string binary = FindBinary(argv[0]);
  if (!std::filesystem::exists(binary)) {
    std::fprintf(stderr, "envtune binary not found at %s\n", binary.c_str());
    return 1;
  }
  const std::string run_dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("envtune-train-bench-", getpid()))
          .string();
  std::vector<std::string> args{binary,
                                "train",
                                "--config=" + config,
                                "launch.run_dir=" + run_dir,
                                absl::StrCat("coordinator.max_learner_steps=", steps),
                                "learner.checkpoint_dir="};
  for (const std::string& o : overrides) args.push_back(o);
  std::printf("config %s, %d learner steps, run dir %s\n", config.c_str(), steps, run_dir.c_str());
  const absl::Time start = absl::Now();
  absl::StatusOr<ChildProcess> train = ChildProcess::Spawn("train", args, run_dir + ".log");
  if (!train.ok()) {
    std::fprintf(stderr, "%s\n", std::string(train.status().message()).c_str());
    return 1;
  }
  while (!train->PollExit().has_value()) absl::SleepFor(absl::Milliseconds(500));
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  if (*train->PollExit() != 0) {
    std::fprintf(stderr, "envtune train failed (%d):\n%s\n", *train->PollExit(),
                 train->LogTail(4000).c_str());
    return 1;
  }
  std::ifstream status_file(run_dir + "/status.json");
  nlohmann::json status = nlohmann::json::parse(status_file, nullptr, false);
  if (!status.is_object()) {
    std::fprintf(stderr, "no status.json in %s\n", run_dir.c_str());
    return 1;
  }
  double learner_tps = 0;
  int learner_steps = 0;
  std::ifstream metrics(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("metrics")) continue;
    if (j["metrics"].contains("learner_tokens_per_s")) {
      learner_tps += j["metrics"]["learner_tokens_per_s"].get<double>();
      ++learner_steps;
    }
  }
  const std::string actor = "ROLE_ACTOR", learner = "ROLE_LEARNER";
  const double episodes = WorkerSum(status, actor, "episodes");
  const double tokens = WorkerSum(status, actor, "tokens_generated");
  const double gen = WorkerSum(status, actor, "time/generation_s");
  const double env = WorkerSum(status, actor, "time/env_wait_s");
  const double sync = WorkerSum(status, actor, "time/weight_sync_s");
  const double rollout = WorkerSum(status, actor, "time/rollout_s");
  const double actor_total = rollout + sync;
  const double train_s = WorkerSum(status, learner, "time/train_s");
  const double publish = WorkerSum(status, learner, "time/publish_s");
  const double wait = WorkerSum(status, learner, "time/wait_s");
  const double learner_total = train_s + publish + wait;
  std::printf("wall %.1f s (whole run: start-up, %s learner steps, shutdown)\n", wall,
              status.value("learner_step", std::string("?")).c_str());
  std::printf("episodes/s %.3f   generated tokens/s %.1f   learner tokens/s %.1f (mean of %d steps)\n",
              episodes / wall, tokens / wall, learner_steps ? learner_tps / learner_steps : 0.0,
              learner_steps);
  std::printf("actor time %.1f s: generation %.1f%% | env wait %.1f%% | weight sync %.1f%% | other %.1f%%\n",
              actor_total, Pct(gen, actor_total), Pct(env, actor_total), Pct(sync, actor_total),
              Pct(rollout - gen - env, actor_total));
  std::printf("learner time %.1f s: learning %.1f%% | weight publish %.1f%% | waiting for groups %.1f%%\n",
              learner_total, Pct(train_s, learner_total), Pct(publish, learner_total),
              Pct(wait, learner_total));
  std::error_code ec;
  std::filesystem::remove_all(run_dir, ec);
  return 0;
}
