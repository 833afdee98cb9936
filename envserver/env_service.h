// EnvService (proto/envtune/v1/env.proto): the stateless environment server.
//
// EnvCore holds what every replica rebuilds from its data directory (task catalog, split ids,
// the episode engine with its caches) and answers the three RPCs as plain functions returning
// absl::Status codes as documented in env.proto. EnvServiceImpl is the thin gRPC callback
// adapter; EnvServer owns a running grpc::Server with the standard health service
// (serving name "envtune.v1.EnvService"): SERVING while up, NOT_SERVING once BeginDrain() or
// Drain() is called. BeginDrain() keeps serving (clients are still learning that the replica is
// going); after Drain() every RPC answers UNAVAILABLE so clients retry elsewhere with the same
// blob. DrainAndShutdown() is the whole sequence a stopping replica runs.
//
// Load (LoadTracker): StartEpisode/Step RPCs in flight, and Step rate and latency percentiles,
// for the coordinator's fleet view (envserver/fleet_member.h).
#ifndef ENVTUNE_ENVSERVER_ENV_SERVICE_H_
#define ENVTUNE_ENVSERVER_ENV_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "envserver/episode.h"
#include "envserver/load_tracker.h"
#include "envserver/task_catalog.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/server.h"

namespace envtune {

struct EnvServiceOptions {
  // envtune's data directory: <data_dir>/bfcl (TaskCatalog layout) and <data_dir>/splits/*.txt.
  std::string data_dir;
  // Episode-engine settings; its hmac_key authenticates episode-state blobs.
  EpisodeEngineOptions engine;
  // Servers close each client connection after this long (GOAWAY; RPCs in flight finish), so
  // clients that balance over DNS ("dns:///...") re-resolve and find new replicas. 0 = never.
  absl::Duration max_connection_age = absl::Seconds(30);
  // Window of the Step rate and latency percentiles in Load().
  absl::Duration load_window = absl::Seconds(10);
};

// Process settings for a process that serves EnvService (the env-server command and the env-server
// benchmarks call it first, before any thread starts):
// * glibc keeps freed heap memory instead of returning it above 128 kB (M_TRIM_THRESHOLD) and
//   serves allocations up to 32 MB from the heap (M_MMAP_THRESHOLD): episodes allocate and free
//   megabytes (sandbox copies of long-context tasks), and returning that memory made the kernel
//   zero fresh pages on every episode (18% of an in-process step's time under perf). RSS stays at
//   its peak, which the caches bound.
// * absl's Mutex deadlock detector (on in Debian's absl build) records every lock order in a
//   global graph: ~4% of a loopback step's CPU in gRPC's and the engine's mutexes. The env
//   server's own locks are leaf locks.
void ConfigureEnvServerProcess();

// Reads an HMAC key file: its bytes with trailing whitespace removed; an empty key is an error.
absl::StatusOr<std::string> ReadHmacKeyFile(const std::string& path);

class EnvCore {
 public:
  static absl::StatusOr<std::unique_ptr<EnvCore>> Create(const EnvServiceOptions& options);

  absl::StatusOr<v1::ListTasksResponse> ListTasks(const v1::ListTasksRequest& request) const;
  absl::StatusOr<v1::StartEpisodeResponse> StartEpisode(const v1::StartEpisodeRequest& request) const;
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& request) const;

  const TaskCatalog& catalog() const { return catalog_; }
  const EpisodeEngine& engine() const { return *engine_; }
  // "train", "val", "test" or "" for a task id.
  std::string SplitOf(const std::string& task_id) const;

 private:
  EnvCore() = default;
  TaskCatalog catalog_;
  absl::flat_hash_map<std::string, std::string> split_of_;
  std::unique_ptr<EpisodeEngine> engine_;
};

class EnvServiceImpl final : public v1::EnvService::CallbackService {
 public:
  // `core` and `load` are not owned and must outlive the service; `load` may be null.
  explicit EnvServiceImpl(const EnvCore* core, LoadTracker* load = nullptr)
      : core_(core), load_(load) {}
  // From now on every RPC answers UNAVAILABLE.
  void SetDraining() { draining_ = true; }
  bool draining() const { return draining_; }

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context, const v1::ListTasksRequest* request,
                                      v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* StartEpisode(grpc::CallbackServerContext* context,
                                         const v1::StartEpisodeRequest* request,
                                         v1::StartEpisodeResponse* response) override;
  grpc::ServerUnaryReactor* Step(grpc::CallbackServerContext* context, const v1::StepRequest* request,
                                 v1::StepResponse* response) override;

 private:
  const EnvCore* core_;
  LoadTracker* const load_;
  std::atomic<bool> draining_{false};
};

class EnvServer {
 public:
  static constexpr char kHealthServiceName[] = "envtune.v1.EnvService";
  // Loads the data and listens on `address` ("host:port"; port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<EnvServer>> Start(const EnvServiceOptions& options,
                                                           const std::string& address);
  ~EnvServer();

  int port() const { return port_; }
  const EnvCore& core() const { return *core_; }
  // Health NOT_SERVING; RPCs are still served (clients are being told to go elsewhere).
  void BeginDrain();
  // Health NOT_SERVING and UNAVAILABLE for new RPCs; in-flight ones finish.
  void Drain();
  // BeginDrain() or Drain() was called.
  bool draining() const { return health_draining_.load(); }
  // StartEpisode/Step RPCs being served now.
  uint32_t inflight() const { return load_.inflight(); }
  // The load now (LoadTracker::Snapshot).
  v1::EnvServerLoad Load() { return load_.Snapshot(absl::Now()); }
  // A stopping replica: BeginDrain(), keep serving for `grace` (clients stop sending), Drain(),
  // wait up to `inflight_timeout` for in-flight RPCs, then Shutdown.
  void DrainAndShutdown(absl::Duration grace, absl::Duration inflight_timeout);
  // Drain, then stop (waiting up to `grace` for in-flight RPCs).
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  explicit EnvServer(absl::Duration load_window) : load_(load_window) {}
  void SetHealth(bool serving);
  LoadTracker load_;
  std::atomic<bool> health_draining_{false};
  std::unique_ptr<EnvCore> core_;
  std::unique_ptr<EnvServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_ENV_SERVICE_H_
