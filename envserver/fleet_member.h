// EnvFleetMember: an env server's membership in the coordinator's fleet (coordinator.proto,
// "The env-server fleet"), over a WorkerSession (common/worker_session.h). A background thread
// registers the server (role ROLE_ENV_SERVER, the address clients dial), heartbeats its serving
// state and load (EnvServer::Load) every heartbeat interval the coordinator asks for, and
// registers again when the coordinator has forgotten it (NOT_FOUND: expired, or restarted). A
// coordinator that is down is retried with backoff; the server keeps serving meanwhile
// (membership is advisory for clients).
//
//   Start -> Register -> Heartbeat every interval ... -> [ReportDraining] -> Leave (STOPPED)
//
// When a HeartbeatResponse says drain (the admin DrainEnvServer), drain_requested() notifies;
// the owner then drains the server as on SIGTERM (deploy/env_commands.cc).
// Thread-safe. The EnvServer is not owned and must outlive this object.
#ifndef ENVTUNE_ENVSERVER_FLEET_MEMBER_H_
#define ENVTUNE_ENVSERVER_FLEET_MEMBER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/worker_session.h"
#include "envserver/env_service.h"
#include "envtune/v1/coordinator.grpc.pb.h"

namespace envtune {

struct EnvFleetMemberOptions {
  std::string coordinator;  // host:port (required)
  std::string address;      // host:port clients dial (required)
  std::string name;         // shown in `envtune status`; "" = the address
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Used until the coordinator's RegisterResponse gives its own.
  absl::Duration heartbeat_interval = absl::Seconds(2);
};

class EnvFleetMember {
 public:
  // Starts the membership thread (registration happens on it). InvalidArgument for a missing
  // coordinator or address.
  static absl::StatusOr<std::unique_ptr<EnvFleetMember>> Start(EnvServer* server,
                                                               EnvFleetMemberOptions options);
  ~EnvFleetMember();  // Leave()

  // Notified when the coordinator asked this server to drain.
  absl::Notification& drain_requested() { return drain_requested_; }
  // Tells the coordinator now (one heartbeat, not waiting for the next) that the server drains.
  void ReportDraining();
  // Sends a last heartbeat with SERVING_STATE_STOPPED (best effort) and stops the thread.
  void Leave();
  // The id the coordinator gave this server ("" before the first registration).
  std::string worker_id();

 private:
  EnvFleetMember(EnvServer* server, EnvFleetMemberOptions options);
  // What heartbeats report: the server's state, or STOPPED once it left.
  v1::ServingState State() const;
  void Log(const std::string& line) const;

  EnvServer* const server_;
  const EnvFleetMemberOptions options_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;
  absl::Notification drain_requested_;
  std::atomic<bool> draining_{false};  // ReportDraining() was called
  std::atomic<bool> left_{false};
  absl::Mutex leave_mu_;  // one Leave() at a time
  std::unique_ptr<WorkerSession> session_;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_FLEET_MEMBER_H_
