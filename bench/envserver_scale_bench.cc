// EnvService over gRPC on loopback, scaled out: 1, 2 and 4 env-server processes behind one
// actor-side channel (common/channels.h: a static list "ipv4:a,b,..." with round_robin), driven
// by the callback client API with a fixed number of episodes in flight. Every episode replays a
// ground-truth trajectory (each turn: one step with the turn's ground-truth calls, one answer).
// Per size: Step RPCs per second, p50/p99/p99.9 latency of Step, the share of steps each replica
// served (from each call's peer address, so an idle replica shows), and /proc/loadavg read after
// the run, so a reader knows how busy the machine was.
//
// Layouts (--layout): "free" leaves every process to the scheduler; "pinned" gives the client
// (this process, all its threads) the last CPU of its affinity set and server i the CPU i mod
// (CPUs - 1) of the rest, so each replica has its own core where there are enough.
// Scheduling (--sched): "other" is the default policy; "fifo" runs the client and the servers as
// SCHED_FIFO (needs CAP_SYS_NICE), which takes the other processes of a shared machine out of the
// measured tail: it shows what the same cores give when nothing else competes for them.
//
// The servers are `envtune env-server` processes (--envtune PATH), or, without --envtune, this
// binary re-executed with --serve, which runs the same EnvServer (env_service.h) without the
// envtune binary's metrics. All servers share one HMAC key, as a cluster does, so a blob sealed by
// one replica steps on any other (round_robin sends consecutive steps of an episode to different
// replicas: the episode cache then mostly misses and the figures include rebuilding).
//
// Usage: bench_envserver_scale_bench [--envtune PATH] [--data_dir DIR] [--replicas 1,2,4]
//          [--inflight N,... (episodes in flight; default 8)] [--seconds S (default 4)] [--tasks N per category (default 50)]
//          [--layout free,pinned] [--sched other,fifo] [--pin (= --layout pinned)]
//        bench_envserver_scale_bench --serve --data_dir DIR --hmac_key_file F   (one server)
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/channels.h"
#include "envserver/env_service.h"
#include "envserver/task_catalog.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string envtune;  // "" -> this binary with --serve
  std::string data_dir;
  std::string hmac_key_file;
  std::vector<int> replicas = {1, 2, 4};
  std::vector<int> inflight = {8};
  double seconds = 4;
  int tasks = 50;
  bool serve = false;
  std::vector<std::string> layouts = {"free"};  // "free" | "pinned"
  std::vector<std::string> scheds = {"other"};  // "other" | "fifo"
};

struct Trajectory {
  std::string task_id;
  std::vector<std::string> replies;
};

// A started server process; killed (SIGTERM, then waited for) on destruction.
class ServerProcess {
 public:
  // cpu >= 0: the process runs on that CPU only.
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& argv,
                                              const cpu_set_t* cpus) {
    int out[2];
    if (pipe(out) != 0) return nullptr;
    pid_t pid = fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      if (cpus != nullptr) sched_setaffinity(0, sizeof(*cpus), cpus);
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
    p->pid_ = pid;
    // "env server listening on HOST:PORT"
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1) {
      if (c != '\n') {
        line.push_back(c);
        continue;
      }
      size_t colon = line.rfind(':');
      if (line.find("listening on") != std::string::npos && colon != std::string::npos) {
        p->address_ = "127.0.0.1:" + line.substr(colon + 1);
        break;
      }
      line.clear();
    }
    p->stdout_fd_ = out[0];  // kept open so the server never writes into a closed pipe
    if (p->address_.empty()) return nullptr;
    return p;
  }
  ~ServerProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    close(stdout_fd_);
  }
  const std::string& address() const { return address_; }

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
};

struct Result {
  double seconds = 0;
  std::vector<double> step_us;
  std::map<std::string, long> per_peer;
  long errors = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

// Drives `inflight` episodes over `stub` until `stop_at`; each episode walks the trajectories
// from its own offset. Returns once every in-flight call has finished.
class LoadDriver {
 public:
  LoadDriver(v1::EnvService::Stub* stub, const std::vector<Trajectory>* ts, bool record)
      : stub_(stub), ts_(ts), record_(record) {}

  Result Run(int inflight, Clock::time_point stop_at) {
    stop_at_ = stop_at;
    begin_ = Clock::now();
    {
      std::lock_guard<std::mutex> l(mu_);
      active_ = inflight;
    }
    runners_.clear();
    for (int i = 0; i < inflight; ++i) {
      runners_.push_back(std::make_unique<Runner>(this, (i * ts_->size()) / std::max(1, inflight)));
    }
    for (auto& r : runners_) r->StartEpisode();
    std::unique_lock<std::mutex> l(mu_);
    done_.wait(l, [&] { return active_ == 0; });
    result_.seconds = std::chrono::duration<double>(last_end_ - begin_).count();
    return std::move(result_);
  }

 private:
  struct Runner {
    Runner(LoadDriver* d, size_t next) : driver(d), next_task(next) {}
    void StartEpisode() {
      if (Clock::now() >= driver->stop_at_) return driver->Finished();
      traj = &(*driver->ts_)[next_task++ % driver->ts_->size()];
      reply = 0;
      old_ctx = std::move(ctx);  // may be the context whose callback is running: kept one call longer
      ctx = std::make_unique<grpc::ClientContext>();
      SetDeadline(*ctx, std::chrono::milliseconds(10000));
      start_req.set_task_id(traj->task_id);
      driver->stub_->async()->StartEpisode(ctx.get(), &start_req, &start_resp, [this](grpc::Status s) {
        if (!s.ok()) {
          driver->Error(s);
          return StartEpisode();
        }
        blob = start_resp.episode_state();
        Step();
      });
    }
    void Step() {
      if (reply >= traj->replies.size() || Clock::now() >= driver->stop_at_) return StartEpisode();
      old_ctx = std::move(ctx);
      ctx = std::make_unique<grpc::ClientContext>();
      SetDeadline(*ctx, std::chrono::milliseconds(10000));
      step_req.set_episode_state(std::move(blob));
      step_req.set_model_output(traj->replies[reply]);
      sent = Clock::now();
      driver->stub_->async()->Step(ctx.get(), &step_req, &step_resp, [this](grpc::Status s) {
        const Clock::time_point now = Clock::now();
        if (!s.ok()) {
          driver->Error(s);
          return StartEpisode();
        }
        driver->Record(std::chrono::duration<double, std::micro>(now - sent).count(), ctx->peer(), now);
        blob = std::move(*step_resp.mutable_episode_state());
        ++reply;
        if (step_resp.episode_ended()) reply = traj->replies.size();
        Step();
      });
    }
    LoadDriver* driver;
    size_t next_task;
    const Trajectory* traj = nullptr;
    size_t reply = 0;
    std::string blob;
    std::unique_ptr<grpc::ClientContext> ctx, old_ctx;
    v1::StartEpisodeRequest start_req;
    v1::StartEpisodeResponse start_resp;
    v1::StepRequest step_req;
    v1::StepResponse step_resp;
    Clock::time_point sent;
  };

  void Record(double us, const std::string& peer, Clock::time_point now) {
    if (!record_) return;
    std::lock_guard<std::mutex> l(mu_);
    result_.step_us.push_back(us);
    ++result_.per_peer[peer];
    last_end_ = std::max(last_end_, now);
  }
  void Error(const grpc::Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    if (result_.errors++ == 0) std::fprintf(stderr, "scale_bench: RPC failed: %s\n", s.error_message().c_str());
  }
  void Finished() {
    std::lock_guard<std::mutex> l(mu_);
    if (--active_ == 0) done_.notify_all();
  }

  v1::EnvService::Stub* stub_;
  const std::vector<Trajectory>* ts_;
  const bool record_;
  Clock::time_point stop_at_, begin_;
  std::vector<std::unique_ptr<Runner>> runners_;
  std::mutex mu_;
  std::condition_variable done_;
  int active_ = 0;
  Result result_;
  Clock::time_point last_end_;
};

// The first three fields of /proc/loadavg ("1/5/15 min").
std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + "/" + b + "/" + c;
}

// Every thread of this process (the client library starts its own): SCHED_FIFO priority 10 or
// back to SCHED_OTHER. Forked servers inherit the calling thread's policy and CPU set.
template <typename F>
bool ForEachThread(F f) {
  bool ok = true;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    int tid = 0;
    if (absl::SimpleAtoi(e.path().filename().string(), &tid)) ok = f(tid) && ok;
  }
  return ok && !ec;
}
bool SetProcessScheduling(bool fifo) {
  sched_param param{};
  param.sched_priority = fifo ? 10 : 0;
  return ForEachThread([&](int tid) { return sched_setscheduler(tid, fifo ? SCHED_FIFO : SCHED_OTHER, &param) == 0; });
}
void SetProcessAffinity(const cpu_set_t& set) {
  ForEachThread([&](int tid) { return sched_setaffinity(tid, sizeof(set), &set) == 0; });
}

int Serve(const Args& args) {
  EnvServiceOptions options;
  options.data_dir = args.data_dir;
  absl::StatusOr<std::string> key = ReadHmacKeyFile(args.hmac_key_file);
  if (!key.ok()) {
    std::fprintf(stderr, "scale_bench --serve: %s\n", std::string(key.status().message()).c_str());
    return 2;
  }
  options.engine.hmac_key = *key;
  absl::StatusOr<std::unique_ptr<EnvServer>> server = EnvServer::Start(options, "127.0.0.1:0");
  if (!server.ok()) {
    std::fprintf(stderr, "scale_bench --serve: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::printf("env server listening on 127.0.0.1:%d\n", (*server)->port());
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  (*server)->Shutdown(std::chrono::milliseconds(0));
  return 0;
}

bool ParseArgs(int argc, char** argv, Args* a) {
  const char* src = std::getenv("ENVTUNE_SOURCE_DIR");
  a->data_dir = src != nullptr ? std::string(src) + "/data" : "data";
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (k == "--serve") {
      a->serve = true;
    } else if (k == "--pin") {
      a->layouts = {"pinned"};
    } else if (k == "--layout" && value(&v)) {
      a->layouts = absl::StrSplit(v, ',');
      for (const std::string& l : a->layouts) {
        if (l != "free" && l != "pinned") return false;
      }
    } else if (k == "--sched" && value(&v)) {
      a->scheds = absl::StrSplit(v, ',');
      for (const std::string& l : a->scheds) {
        if (l != "other" && l != "fifo") return false;
      }
    } else if (k == "--envtune" && value(&v)) {
      a->envtune = v;
    } else if (k == "--data_dir" && value(&v)) {
      a->data_dir = v;
    } else if (k == "--hmac_key_file" && value(&v)) {
      a->hmac_key_file = v;
    } else if (k == "--replicas" && value(&v)) {
      a->replicas.clear();
      for (absl::string_view p : absl::StrSplit(v, ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(p, &n) || n < 1 || n > 64) return false;
        a->replicas.push_back(n);
      }
    } else if (k == "--inflight" && value(&v)) {
      a->inflight.clear();
      for (absl::string_view p : absl::StrSplit(v, ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(p, &n) || n < 1 || n > 4096) return false;
        a->inflight.push_back(n);
      }
    } else if (k == "--seconds" && value(&v)) {
      if (!absl::SimpleAtod(v, &a->seconds) || a->seconds <= 0) return false;
    } else if (k == "--tasks" && value(&v)) {
      if (!absl::SimpleAtoi(v, &a->tasks) || a->tasks < 1) return false;
    } else {
      return false;
    }
  }
  return true;
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: bench_envserver_scale_bench [--envtune PATH] [--data_dir DIR] [--replicas 1,2,4] "
                 "[--inflight N] [--seconds S] [--tasks N] [--layout free,pinned] [--sched other,fifo]\n");
    return 2;
  }
  ConfigureEnvServerProcess();  // as `envtune env-server` does (env_service.h)
  if (args.serve) return Serve(args);

  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(args.data_dir + "/bfcl");
  if (!catalog.ok()) {
    std::fprintf(stderr, "scale_bench: %s\n", std::string(catalog.status().message()).c_str());
    return 1;
  }
  std::vector<Trajectory> trajectories;
  for (const std::string& cat : TaskCatalog::Categories()) {
    int n = 0;
    for (const BfclTask* task : catalog->ByCategory(cat)) {
      if (n >= args.tasks) break;
      Trajectory tr{task->id, {}};
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
      if (ok) {
        trajectories.push_back(std::move(tr));
        ++n;
      }
    }
  }
  char key_path[] = "/tmp/envtune-scale-bench-key-XXXXXX";
  int key_fd = mkstemp(key_path);
  if (key_fd < 0 || write(key_fd, "scale-bench-cluster-key\n", 24) != 24) {
    std::fprintf(stderr, "scale_bench: cannot write a key file under /tmp\n");
    return 1;
  }
  close(key_fd);
  std::string self = "/proc/self/exe";
  char buf[4096];
  ssize_t len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (len > 0) self.assign(buf, static_cast<size_t>(len));

  cpu_set_t all_cpus;
  CPU_ZERO(&all_cpus);
  sched_getaffinity(0, sizeof(all_cpus), &all_cpus);
  std::vector<int> cpu_ids;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &all_cpus)) cpu_ids.push_back(c);
  }
  std::printf("scale_bench: %zu trajectories (%d tasks per category), %.1f s per row, servers: %s; "
              "machine: %u hardware threads, %zu CPUs available to this process\n",
              trajectories.size(), args.tasks, args.seconds,
              args.envtune.empty() ? "this binary --serve (EnvServer)" : args.envtune.c_str(),
              std::thread::hardware_concurrency(), cpu_ids.size());
  std::printf("load before: %s\n", LoadAvg().c_str());
  std::printf("%-6s %-7s %8s %8s %9s %8s %8s %9s %6s  %-16s %s\n", "sched", "layout", "replicas",
              "inflight", "steps/s", "p50 us", "p99 us", "p99.9 us", "errors", "loadavg 1/5/15",
              "steps served per replica");
  int rc = 0;
  for (const std::string& sched : args.scheds) {
    if (!SetProcessScheduling(sched == "fifo")) {
      std::fprintf(stderr, "scale_bench: cannot set SCHED_FIFO (needs CAP_SYS_NICE); skipping --sched fifo\n");
      continue;
    }
    for (const std::string& layout : args.layouts) {
      const bool pinned = layout == "pinned" && cpu_ids.size() >= 2;
      // Pinned: the client on the last CPU, the servers round-robin over the others.
      cpu_set_t client_set = all_cpus;
      if (pinned) {
        CPU_ZERO(&client_set);
        CPU_SET(cpu_ids.back(), &client_set);
      }
      SetProcessAffinity(client_set);
      for (int n : args.replicas) {
        std::vector<std::unique_ptr<ServerProcess>> servers;
        std::vector<std::string> addresses;
        for (int i = 0; i < n; ++i) {
          std::vector<std::string> argv =
              args.envtune.empty()
                  ? std::vector<std::string>{self, "--serve", "--data_dir", args.data_dir, "--hmac_key_file", key_path}
                  : std::vector<std::string>{args.envtune, "env-server", "--host", "127.0.0.1", "--port", "0",
                                             "--data_dir", args.data_dir, "--hmac_key_file", key_path};
          cpu_set_t server_set = all_cpus;
          if (pinned) {
            CPU_ZERO(&server_set);
            CPU_SET(cpu_ids[static_cast<size_t>(i) % (cpu_ids.size() - 1)], &server_set);
          }
          std::unique_ptr<ServerProcess> p = ServerProcess::Start(argv, &server_set);
          if (p == nullptr) {
            std::fprintf(stderr, "scale_bench: server %d did not start (%s)\n", i, argv[0].c_str());
            unlink(key_path);
            return 1;
          }
          addresses.push_back(p->address());
          servers.push_back(std::move(p));
        }
        // Drivers outlive the channel: their contexts stay valid until every call is torn down.
        std::vector<std::unique_ptr<LoadDriver>> drivers;
        auto channel = MakeChannel(StaticListTarget(addresses));
        auto stub = v1::EnvService::NewStub(channel);
        auto after = [](double s) {
          return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
        };
        // Warm-up: every replica fills its per-task caches (initial sandboxes, ground truth, prompts).
        drivers.push_back(std::make_unique<LoadDriver>(stub.get(), &trajectories, false));
        drivers.back()->Run(args.inflight.back(), after(std::max(2.0, 1.5 * n)));
        // Threads the client library started since: same policy and CPUs as the rest.
        SetProcessScheduling(sched == "fifo");
        SetProcessAffinity(client_set);
        for (int inflight : args.inflight) {
          drivers.push_back(std::make_unique<LoadDriver>(stub.get(), &trajectories, true));
          Result r = drivers.back()->Run(inflight, after(args.seconds));
          std::string shares;
          for (const std::string& a : addresses) {
            long c = 0;
            for (const auto& [peer, count] : r.per_peer) {
              if (peer.size() >= a.size() && peer.compare(peer.size() - a.size(), a.size(), a) == 0) c += count;
            }
            shares += std::to_string(c) + " ";
            if (c == 0) rc = 1;  // a replica that served nothing: round_robin is not spreading
          }
          std::printf("%-6s %-7s %8d %8d %9.0f %8.1f %8.1f %9.1f %6ld  %-16s %s\n", sched.c_str(),
                      pinned ? "pinned" : "free", n, inflight,
                      r.step_us.size() / std::max(1e-9, r.seconds), Percentile(r.step_us, 0.5),
                      Percentile(r.step_us, 0.99), Percentile(r.step_us, 0.999), r.errors,
                      LoadAvg().c_str(), shares.c_str());
          std::fflush(stdout);
          if (r.errors > 0) rc = 1;
        }
      }
    }
  }
  SetProcessScheduling(false);
  unlink(key_path);
  return rc;
}

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) { return envtune::Main(argc, argv); }
