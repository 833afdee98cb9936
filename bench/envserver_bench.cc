// EnvService throughput: replays ground-truth trajectories (each turn: the ground-truth calls as
// one envtuning step, then an answer) in-process (EpisodeEngine) and over gRPC on loopback
// (EnvServer on 127.0.0.1:0), for base and long-context tasks. Prints steps/s, p50/p99 step
// latency and episode-state blob sizes. The first pass fills the caches (cold); the figures
// are from the second pass (warm).
// Usage: bench_envserver_bench [data dir (default $ENVTUNE_SOURCE_DIR/data or ./data)] [tasks per category]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/channels.h"
#include "envserver/env_service.h"
#include "envserver/episode.h"
#include "grpcpp/grpcpp.h"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using Clock = std::chrono::steady_clock;

struct Trajectory {
  std::string task_id;
  std::vector<std::string> replies;  // in order; answers end turns
};

struct Stats {
  std::vector<double> step_us;
  std::vector<size_t> blob_bytes;
  double seconds = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

void Print(const char* mode, const char* category, const Stats& s) {
  size_t max_blob = 0;
  double mean_blob = 0;
  for (size_t b : s.blob_bytes) {
    max_blob = std::max(max_blob, b);
    mean_blob += static_cast<double>(b);
  }
  if (!s.blob_bytes.empty()) mean_blob /= static_cast<double>(s.blob_bytes.size());
  std::printf("%-10s %-14s steps=%5zu  %8.1f steps/s  p50=%8.1f us  p99=%9.1f us  blob mean=%6.0f B max=%6zu B\n",
              mode, category, s.step_us.size(), s.step_us.size() / std::max(1e-9, s.seconds),
              Percentile(s.step_us, 0.5), Percentile(s.step_us, 0.99), mean_blob, max_blob);
}

// `start(task) -> blob`, `step(blob, reply) -> blob`; returns false on error.
using StartFn = std::function<bool(const std::string&, std::string*)>;
using StepFn = std::function<bool(const std::string&, const std::string&, std::string*)>;

Stats Replay(const std::vector<Trajectory>& trajectories, const StartFn& start, const StepFn& step) {
  Stats s;
  Clock::time_point begin = Clock::now();
  for (const Trajectory& t : trajectories) {
    std::string blob;
    if (!start(t.task_id, &blob)) std::exit(1);
    for (const std::string& reply : t.replies) {
      Clock::time_point a = Clock::now();
      std::string next;
      if (!step(blob, reply, &next)) std::exit(1);
      s.step_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
      blob = std::move(next);
      s.blob_bytes.push_back(blob.size());
    }
  }
  s.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  return s;
}

int Main(int argc, char** argv) {
  const char* src = std::getenv("ENVTUNE_SOURCE_DIR");
  std::string data_dir = argc > 1 ? argv[1] : (src != nullptr ? std::string(src) + "/data" : "data");
  const int per_category = argc > 2 ? std::max(1, std::atoi(argv[2])) : 25;
  EnvServiceOptions options;
  options.data_dir = data_dir;
  options.engine.hmac_key = "bench-key";
  absl::StatusOr<std::unique_ptr<EnvServer>> server = EnvServer::Start(options, "127.0.0.1:0");
  if (!server.ok()) {
    std::fprintf(stderr, "envserver_bench: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const EnvCore& core = (*server)->core();
  const TaskCatalog& catalog = core.catalog();
  std::vector<std::pair<std::string, std::vector<Trajectory>>> sets;
  for (const char* cat : {"multi_turn_base", "multi_turn_long_context"}) {
    std::vector<Trajectory> ts;
    for (const BfclTask* task : catalog.ByCategory(cat)) {
      if (static_cast<int>(ts.size()) >= per_category) break;
      Trajectory tr{task->id, {}};
      bool ok = true;
      for (const auto& calls : task->ground_truth) {
        if (!calls.empty()) {
          absl::StatusOr<std::string> r = testing_util::GroundTruthReply(catalog, *task, calls);
          if (!r.ok()) {
            ok = false;
            break;
          }
          tr.replies.push_back(*r);
        }
        tr.replies.push_back(testing_util::Answer());
      }
      if (ok) ts.push_back(std::move(tr));
    }
    sets.emplace_back(cat, std::move(ts));
  }

  // In-process, a fresh engine (cold caches) then the same engine again (warm).
  EpisodeEngine engine(&catalog, options.engine);
  StartFn start_local = [&](const std::string& id, std::string* blob) {
    absl::StatusOr<v1::StartEpisodeResponse> r = engine.Start(id, v1::EpisodeOptions());
    if (!r.ok()) std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
    if (r.ok()) *blob = r->episode_state();
    return r.ok();
  };
  StepFn step_local = [&](const std::string& blob, const std::string& reply, std::string* next) {
    absl::StatusOr<v1::StepResponse> r = engine.Step(blob, reply);
    if (!r.ok()) std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
    if (r.ok()) *next = r->episode_state();
    return r.ok();
  };
  auto stub = v1::EnvService::NewStub(MakeChannel("127.0.0.1:" + std::to_string((*server)->port())));
  StartFn start_grpc = [&](const std::string& id, std::string* blob) {
    grpc::ClientContext ctx;
    v1::StartEpisodeRequest req;
    req.set_task_id(id);
    v1::StartEpisodeResponse resp;
    grpc::Status st = stub->StartEpisode(&ctx, req, &resp);
    if (!st.ok()) std::fprintf(stderr, "%s\n", st.error_message().c_str());
    *blob = resp.episode_state();
    return st.ok();
  };
  StepFn step_grpc = [&](const std::string& blob, const std::string& reply, std::string* next) {
    grpc::ClientContext ctx;
    v1::StepRequest req;
    req.set_episode_state(blob);
    req.set_model_output(reply);
    v1::StepResponse resp;
    grpc::Status st = stub->Step(&ctx, req, &resp);
    if (!st.ok()) std::fprintf(stderr, "%s\n", st.error_message().c_str());
    *next = resp.episode_state();
    return st.ok();
  };
  std::printf("envserver_bench: %d tasks per category, ground-truth trajectories\n", per_category);
  for (const auto& [cat, ts] : sets) {
    Print("cold", cat.c_str(), Replay(ts, start_local, step_local));
    Print("in-proc", cat.c_str(), Replay(ts, start_local, step_local));
    Replay(ts, start_grpc, step_grpc);  // warms the server's caches
    Print("grpc", cat.c_str(), Replay(ts, start_grpc, step_grpc));
  }
  (*server)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) { return envtune::Main(argc, argv); }
