#include "common/worker_session.h"

#include <algorithm>
#include <iostream>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"

namespace envtune {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(200);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
constexpr absl::Duration kMinInterval = absl::Milliseconds(100);

class RealClock : public WorkerSessionClock {
 public:
  absl::Time Now() override { return absl::Now(); }
  bool WaitForStop(absl::Notification& stop, absl::Duration d) override {
    return stop.WaitForNotificationWithTimeout(d);
  }
};

bool Transient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

}  // namespace

WorkerSessionClock* WorkerSessionClock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

WorkerSession::WorkerSession(v1::CoordinatorService::StubInterface* stub,
                             WorkerSessionOptions options, WorkerSessionHooks hooks,
                             WorkerSessionClock* clock)
    : stub_(stub),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      clock_(clock != nullptr ? clock : WorkerSessionClock::Real()),
      interval_(std::max(kMinInterval, options_.heartbeat_interval)) {}

WorkerSession::~WorkerSession() { Stop(); }

std::string WorkerSession::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

absl::Duration WorkerSession::heartbeat_interval() const {
  absl::MutexLock lock(&mu_);
  return interval_;
}

void WorkerSession::Log(const std::string& line) const {
  if (hooks_.log) {
    hooks_.log(line);
  } else {
    std::cerr << options_.name << ": " << line << std::endl;
  }
}

absl::Status WorkerSession::RegisterOnceLocked() {
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(options_.rpc_timeout));
  v1::RegisterRequest request;
  request.set_role(options_.role);
  request.set_name(options_.name);
  if (!options_.address.empty()) request.set_address(options_.address);
  v1::RegisterResponse response;
  grpc::Status status = stub_->Register(&context, request, &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, absl::StrCat("coordinator ", options_.coordinator), "Register");
  }
  {
    absl::MutexLock lock(&mu_);
    worker_id_ = response.worker_id();
    if (response.heartbeat_interval_ms() > 0) {
      interval_ = std::max(kMinInterval, absl::Milliseconds(response.heartbeat_interval_ms()));
    }
  }
  Log(absl::StrCat("registered with coordinator ", options_.coordinator, " as ",
                   response.worker_id()));
  return absl::OkStatus();
}

absl::Status WorkerSession::Register() {
  const absl::Time deadline =
      clock_->Now() + std::max(options_.retry_deadline, options_.rpc_timeout);
  absl::Duration backoff = kFirstBackoff;
  while (true) {
    absl::Status status;
    {
      absl::MutexLock lock(&rpc_mu_);
      if (stopped()) return absl::CancelledError("Register: the worker is stopping");
      status = RegisterOnceLocked();
    }
    if (status.ok() || !Transient(status)) return status;
    const absl::Duration sleep = Jittered(backoff);
    if (clock_->Now() + sleep > deadline || clock_->WaitForStop(stop_, sleep)) return status;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

absl::Status WorkerSession::Reregister(const std::string& stale_id) {
  absl::MutexLock lock(&rpc_mu_);
  if (stopped()) return absl::CancelledError("Register: the worker is stopping");
  if (worker_id() != stale_id) return absl::OkStatus();
  return RegisterOnceLocked();
}

absl::Status WorkerSession::HeartbeatLocked() {
  v1::HeartbeatRequest request;
  if (hooks_.fill) hooks_.fill(request);
  request.set_worker_id(worker_id());
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(options_.rpc_timeout));
  v1::HeartbeatResponse response;
  grpc::Status status = stub_->Heartbeat(&context, request, &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, absl::StrCat("coordinator ", options_.coordinator), "Heartbeat");
  }
  if (hooks_.on_response) hooks_.on_response(request, response);
  return absl::OkStatus();
}

absl::Status WorkerSession::HeartbeatNow() {
  absl::MutexLock lock(&rpc_mu_);
  if (stopped()) return absl::FailedPreconditionError("Heartbeat: the worker is stopping");
  if (worker_id().empty()) return absl::FailedPreconditionError("Heartbeat: not registered");
  return HeartbeatLocked();
}

void WorkerSession::StartHeartbeats() {
  absl::MutexLock lock(&thread_mu_);
  if (started_ || stopped()) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void WorkerSession::Loop() {
  absl::Duration backoff = kFirstBackoff;
  absl::Duration wait =
      options_.first_heartbeat_at_once ? absl::ZeroDuration() : heartbeat_interval();
  bool registered_last_beat = false;
  while (!clock_->WaitForStop(stop_, wait)) {
    absl::Status status;
    bool registered = false;
    {
      absl::MutexLock lock(&rpc_mu_);
      if (stopped()) return;
      if (worker_id().empty()) {
        status = options_.register_in_background
                     ? RegisterOnceLocked()
                     : absl::FailedPreconditionError("Heartbeat: not registered");
      }
      if (status.ok()) status = HeartbeatLocked();
      if (absl::IsNotFound(status)) {  // forgotten (expired, or a restarted coordinator)
        Log(absl::StrCat(status.message(), "; registering again"));
        status = RegisterOnceLocked();
        registered = status.ok();
      }
    }
    if (registered && !registered_last_beat) {
      wait = absl::ZeroDuration();  // the role's fields under the new id at once
    } else if (status.ok()) {
      backoff = kFirstBackoff;
      wait = heartbeat_interval();
    } else {
      Log(std::string(status.message()));
      wait = std::min(Jittered(backoff), heartbeat_interval());
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    registered_last_beat = registered;
  }
}

void WorkerSession::Stop() {
  std::call_once(stop_once_, [this] { stop_.Notify(); });
  {
    absl::MutexLock lock(&thread_mu_);
    if (thread_.joinable()) thread_.join();
  }
  absl::MutexLock lock(&rpc_mu_);  // an RPC in flight on another thread ends first
}

}  // namespace envtune
