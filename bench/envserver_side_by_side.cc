// envtune's half of the side-by-side benchmark against BFCL's own Python (bench/bfcl/side_by_side.py
// runs this binary, then BFCL's executor and checker on the same tasks, and prints the table).
//
// For every task of every category (up to N per category) whose ground truth converts to
// envtuning replies: Start, then per turn one step with the turn's ground-truth calls (if any)
// and one answering step, which scores the turn. All in process, one thread. Three engines:
//   rebuild: episode cache and parse memo off; every Step rebuilds the model side from the blob,
//            parsing every call again (the stateless baseline);
//   miss:    episode cache off, parse memo on: what a replica does when the step's previous step
//            was served elsewhere (round_robin over several replicas);
//   cached:  the engine as shipped (episode cache keyed by the blob's digest).
// Each engine replays everything once untimed (fills the per-task caches: initial sandboxes and
// ground-truth replays, which BFCL's side also computes before timing), then once timed.
//
// Output: one JSON object {"task_ids": [...], "modes": {"rebuild"|"miss"|"cached": {category:
// {"us", "turns", "steps", "scored"}, ..., "all": {...}}}}.
// Usage: bench_envserver_side_by_side DATA_DIR [tasks per category (default 200)] [modes (default
//        rebuild,miss,cached); e.g. "cached" alone for profiling] [timed passes (default 1; the
//        figures are the last pass's)] [category substring, e.g. long_context (default: all)]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "envserver/env_service.h"
#include "envserver/episode.h"
#include "envserver/task_catalog.h"
#include "nlohmann/json.hpp"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using Clock = std::chrono::steady_clock;

struct Trajectory {
  const BfclTask* task = nullptr;
  std::string category;  // "base", "miss_func", ...
  std::vector<std::string> replies;
};

struct Totals {
  double us = 0;
  long turns = 0, steps = 0, scored = 0;
};

// Replays every trajectory; per category totals. Exits on any engine error (a bench bug).
std::map<std::string, Totals> Replay(const EpisodeEngine& engine, const std::vector<Trajectory>& ts) {
  std::map<std::string, Totals> out;
  for (const Trajectory& t : ts) {
    Totals& c = out[t.category];
    Clock::time_point a = Clock::now();
    absl::StatusOr<v1::StartEpisodeResponse> start = engine.Start(t.task->id, v1::EpisodeOptions());
    if (!start.ok()) {
      std::fprintf(stderr, "side_by_side: %s: %s\n", t.task->id.c_str(), std::string(start.status().message()).c_str());
      std::exit(1);
    }
    std::string blob = start->episode_state();
    long scored = 0;
    for (const std::string& reply : t.replies) {
      absl::StatusOr<v1::StepResponse> r = engine.Step(blob, reply);
      if (!r.ok()) {
        std::fprintf(stderr, "side_by_side: %s: %s\n", t.task->id.c_str(), std::string(r.status().message()).c_str());
        std::exit(1);
      }
      if (r->turn_ended() && r->turn_score().score() > 0.5) ++scored;
      blob = r->episode_state();
    }
    c.us += std::chrono::duration<double, std::micro>(Clock::now() - a).count();
    c.turns += static_cast<long>(t.task->questions.size());
    c.steps += static_cast<long>(t.replies.size());
    c.scored += scored;
  }
  Totals all;
  for (const auto& [cat, c] : out) {
    all.us += c.us;
    all.turns += c.turns;
    all.steps += c.steps;
    all.scored += c.scored;
  }
  out["all"] = all;
  return out;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_envserver_side_by_side DATA_DIR [tasks per category]\n");
    return 2;
  }
  ConfigureEnvServerProcess();  // the engine runs under the env server's process settings
  const std::string data_dir = argv[1];
  const int per_category = argc > 2 ? std::max(1, std::atoi(argv[2])) : 200;
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(data_dir + "/bfcl");
  if (!catalog.ok()) {
    std::fprintf(stderr, "side_by_side: %s\n", std::string(catalog.status().message()).c_str());
    return 1;
  }
  std::vector<Trajectory> trajectories;
  const std::string only = argc > 5 ? argv[5] : "";
  for (const std::string& cat : TaskCatalog::Categories()) {
    if (cat.find(only) == std::string::npos) continue;
    int n = 0;
    for (const BfclTask* task : catalog->ByCategory(cat)) {
      if (n >= per_category) break;
      Trajectory tr{task, cat.substr(std::string("multi_turn_").size()), {}};
      bool ok = true;
      for (const auto& calls : task->ground_truth) {
        if (!calls.empty()) {
          absl::StatusOr<std::string> r = testing_util::GroundTruthReply(*catalog, *task, calls);
          if (!r.ok()) {
            ok = false;
            break;
          }
          tr.replies.push_back(*r);
        }
        tr.replies.push_back(testing_util::Answer());
      }
      if (!ok) continue;
      trajectories.push_back(std::move(tr));
      ++n;
    }
  }
  nlohmann::json out;
  out["task_ids"] = nlohmann::json::array();
  for (const Trajectory& t : trajectories) out["task_ids"].push_back(t.task->id);
  const std::string modes = argc > 3 ? argv[3] : "rebuild,miss,cached";
  const int passes = argc > 4 ? std::max(1, std::atoi(argv[4])) : 1;
  for (const std::string mode : {"rebuild", "miss", "cached"}) {
    if (modes.find(mode) == std::string::npos) continue;
    EpisodeEngineOptions options;
    options.hmac_key = "bench-key";
    if (mode != "cached") options.episode_cache_capacity = 0;
    if (mode == "rebuild") options.parse_cache_capacity = 0;
    EpisodeEngine engine(&*catalog, options);
    Replay(engine, trajectories);  // untimed: fills the per-task caches
    for (int i = 1; i < passes; ++i) Replay(engine, trajectories);
    for (const auto& [cat, c] : Replay(engine, trajectories)) {
      out["modes"][mode][cat] = {{"us", c.us}, {"turns", c.turns}, {"steps", c.steps}, {"scored", c.scored}};
    }
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) { return envtune::Main(argc, argv); }
