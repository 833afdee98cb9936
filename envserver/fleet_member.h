// EnvFleetMember: an env server's membership in the coordinator's fleet (coordinator.proto,
// "The env-server fleet"). A background thread registers the server (role ROLE_ENV_SERVER, the
// address clients dial), heartbeats its serving state and load (EnvServer::Load) every
// heartbeat interval the coordinator asks for, and registers again when the coordinator has
// forgotten it (NOT_FOUND: expired, or restarted). A coordinator that is down is retried with
// backoff; the server keeps serving meanwhile (membership is advisory for clients).
//
//   Start -> Register -> Heartbeat every interval ... -> [ReportDraining] -> Leave (STOPPED)
//
// When a HeartbeatResponse says drain (the admin DrainEnvServer), drain_requested() notifies;
// the owner then drains the server as on SIGTERM (deploy/env_commands.cc).
// Thread-safe. The EnvServer is not owned and must outlive this object.
#ifndef ENVTUNE_ENVSERVER_FLEET_MEMBER_H_
#define ENVTUNE_ENVSERVER_FLEET_MEMBER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
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
  void Loop();
  absl::Status RegisterOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One heartbeat with the server's current state and load (registers first if needed).
  absl::Status HeartbeatOnce(v1::ServingState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EnvServer* const server_;
  const EnvFleetMemberOptions options_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;
  absl::Notification drain_requested_;
  absl::Notification stop_;
  std::thread thread_;

  absl::Mutex mu_;  // serialises RPCs (the loop and ReportDraining/Leave) and guards the below
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
  bool left_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_FLEET_MEMBER_H_
