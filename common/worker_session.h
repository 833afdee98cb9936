// WorkerSession: a worker's membership with the coordinator (coordinator.proto, Register and
// Heartbeat), shared by the actor, the learner and the env servers' fleet membership.
//
//   Register (retried) -> heartbeat thread: every interval, fill -> Heartbeat -> on_response
//                         NOT_FOUND (the coordinator restarted, or expired this worker):
//                         register again under a new id, and heartbeat at once
//   Stop: wakes and joins the thread (prompt: no wait for the interval)
//
// Register() retries UNAVAILABLE and DEADLINE_EXCEEDED (the coordinator is restarting) with
// jittered exponential backoff (200 ms doubling to 5 s, x 0.5..1.5) until retry_deadline from
// the call (at least rpc_timeout; InfiniteDuration = until Stop()). Other errors end it at once.
// The heartbeat interval is the one RegisterResponse asks for (at least 100 ms), else
// heartbeat_interval. A heartbeat that fails otherwise is logged and retried after
// min(jittered backoff, interval). With register_in_background, StartHeartbeats() may be
// called before any registration: the thread registers first, retrying until Stop().
//
// Hooks, all optional, run on the thread that sends the RPC (the heartbeat thread, or the
// caller of HeartbeatNow), never two at once: `fill` adds the role's fields to a heartbeat
// (worker_id is set by the session), `on_response` sees a successful heartbeat's request and
// response (drain requests, stage), `log` takes one line of news (registrations, failed RPCs;
// default: stderr, prefixed with the name).
// Time and waits come from a WorkerSessionClock so tests can run retries without real time.
// Thread-safe.
#ifndef ENVTUNE_COMMON_WORKER_SESSION_H_
#define ENVTUNE_COMMON_WORKER_SESSION_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "envtune/v1/coordinator.grpc.pb.h"

namespace envtune {

// Time and interruptible waits of a WorkerSession.
class WorkerSessionClock {
 public:
  virtual ~WorkerSessionClock() = default;
  virtual absl::Time Now() = 0;
  // Waits up to `d` or until `stop` is notified; true when it was.
  virtual bool WaitForStop(absl::Notification& stop, absl::Duration d) = 0;
  // Wall-clock time and real waits.
  static WorkerSessionClock* Real();
};

struct WorkerSessionOptions {
  std::string coordinator;  // host:port (named in errors)
  v1::Role role = v1::ROLE_UNSPECIFIED;
  std::string name;     // shown in `envtune status`
  std::string address;  // host:port peers dial ("" = none, actors)
  absl::Duration rpc_timeout = absl::Seconds(10);
  absl::Duration retry_deadline = absl::Minutes(2);  // of Register()
  // Until a RegisterResponse asks for another.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // The first heartbeat goes out at once instead of after one interval.
  bool first_heartbeat_at_once = false;
  // The heartbeat thread registers first when there is no id yet, retrying until Stop().
  bool register_in_background = false;
};

struct WorkerSessionHooks {
  std::function<void(v1::HeartbeatRequest&)> fill;
  std::function<void(const v1::HeartbeatRequest&, const v1::HeartbeatResponse&)> on_response;
  std::function<void(const std::string& line)> log;
};

class WorkerSession {
 public:
  // `stub` must outlive the session; `clock` too (nullptr = real time).
  WorkerSession(v1::CoordinatorService::StubInterface* stub, WorkerSessionOptions options,
                WorkerSessionHooks hooks, WorkerSessionClock* clock = nullptr);
  ~WorkerSession();  // Stop()

  // Registers, retrying transient failures (above). The error names the coordinator.
  absl::Status Register();
  // One registration attempt if the current id is still `stale_id` (the coordinator answered
  // NOT_FOUND for it); OK at once when another thread registered again meanwhile.
  absl::Status Reregister(const std::string& stale_id);
  // Starts the heartbeat thread (once).
  void StartHeartbeats();
  // One heartbeat now, serialised with the thread's (a NOT_FOUND is returned, and the thread
  // registers again at its next beat); FailedPrecondition before any registration or after
  // Stop().
  absl::Status HeartbeatNow();
  // Ends the heartbeat thread and any Register() retry; no RPC is sent after it returns.
  void Stop();

  std::string worker_id() const;  // "" before the first registration
  absl::Duration heartbeat_interval() const;
  bool stopped() const { return stop_.HasBeenNotified(); }

 private:
  absl::Status RegisterOnceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(rpc_mu_);
  absl::Status HeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(rpc_mu_);
  void Loop();
  void Log(const std::string& line) const;

  v1::CoordinatorService::StubInterface* const stub_;
  const WorkerSessionOptions options_;
  const WorkerSessionHooks hooks_;
  WorkerSessionClock* const clock_;
  absl::Notification stop_;
  std::once_flag stop_once_;
  std::thread thread_;
  absl::Mutex thread_mu_;  // guards starting and joining thread_
  bool started_ ABSL_GUARDED_BY(thread_mu_) = false;

  absl::Mutex rpc_mu_;  // serialises the session's RPCs and its hooks
  mutable absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
};

}  // namespace envtune

#endif  // ENVTUNE_COMMON_WORKER_SESSION_H_
