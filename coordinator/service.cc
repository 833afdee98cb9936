#include "coordinator/service.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/security.h"

namespace envtune {
namespace {

// Finishes a unary call with `result`'s status, copying the value into `response` on success.
template <typename T, typename Response>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      absl::StatusOr<T> result, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* FinishStatus(grpc::CallbackServerContext* context,
                                       const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

// One WatchStage stream: the current event first, then every change, written one at a time
// (StartWrite -> OnWriteDone chain). Events wait in a queue; nothing blocks inside reactions.
class CoordinatorServiceImpl::WatchReactor final : public grpc::ServerWriteReactor<v1::StageEvent> {
 public:
  WatchReactor(CoordinatorServiceImpl* service, Coordinator* coordinator, std::string worker_id)
      : service_(service), coordinator_(coordinator), worker_id_(std::move(worker_id)) {
    Enqueue(coordinator_->CurrentStageEvent());
    listener_id_ = coordinator_->Subscribe([this](const v1::StageEvent& e) { Enqueue(e); });
  }

  void Enqueue(const v1::StageEvent& event) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      queue_.push_back(event);
    }
    Pump();
  }

  // Ends the stream with OK once queued events are written (server shutdown, client cancel).
  void End() {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      queue_.pop_front();
      if (!ok) {
        finishing_ = true;
        queue_.clear();
        status_ = grpc::Status(grpc::StatusCode::CANCELLED, "watch stream broken");
      }
    }
    Pump();
  }

  void OnCancel() override { End(); }

  const std::string& worker_id() const { return worker_id_; }

  void OnDone() override {
    coordinator_->Unsubscribe(listener_id_);
    service_->RemoveWatcher(this);
    delete this;
  }

 private:
  // Starts the next write, or finishes once asked to and drained. gRPC calls are made outside
  // the lock, since a reaction may run inline.
  void Pump() {
    const v1::StageEvent* next = nullptr;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!queue_.empty() && !(finishing_ && !status_.ok())) {
        writing_ = true;
        next = &queue_.front();
      } else if (finishing_) {
        finished_ = true;
        finish = true;
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(status_);
  }

  CoordinatorServiceImpl* const service_;
  Coordinator* const coordinator_;
  const std::string worker_id_;
  int listener_id_ = 0;
  absl::Mutex mu_;
  std::deque<v1::StageEvent> queue_ ABSL_GUARDED_BY(mu_);  // front is being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ = grpc::Status::OK;
};

CoordinatorServiceImpl::CoordinatorServiceImpl(Coordinator* coordinator)
    : coordinator_(coordinator) {}

CoordinatorServiceImpl::~CoordinatorServiceImpl() { Shutdown(); }

void CoordinatorServiceImpl::Shutdown() {
  std::vector<WatchReactor*> watchers;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    watchers = watchers_;
  }
  for (WatchReactor* watcher : watchers) watcher->End();
}

void CoordinatorServiceImpl::RemoveWatcher(WatchReactor* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), watcher), watchers_.end());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Register(grpc::CallbackServerContext* context,
                                                           const v1::RegisterRequest* request,
                                                           v1::RegisterResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  return FinishUnary(context, coordinator_->Register(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Heartbeat(grpc::CallbackServerContext* context,
                                                            const v1::HeartbeatRequest* request,
                                                            v1::HeartbeatResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  return FinishUnary(context, coordinator_->Heartbeat(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::AcquireLease(
    grpc::CallbackServerContext* context, const v1::AcquireLeaseRequest* request,
    v1::AcquireLeaseResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  return FinishUnary(context, coordinator_->AcquireLease(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::CompleteLease(
    grpc::CallbackServerContext* context, const v1::CompleteLeaseRequest* request,
    v1::CompleteLeaseResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  return FinishStatus(context, coordinator_->CompleteLease(*request));
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ReportLearnerStep(
    grpc::CallbackServerContext* context, const v1::ReportLearnerStepRequest* request,
    v1::ReportLearnerStepResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  return FinishUnary(context, coordinator_->ReportLearnerStep(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                            const v1::GetStatusRequest* request,
                                                            v1::ClusterStatus* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  *response = coordinator_->Status();
  return FinishStatus(context, absl::OkStatus());
}

grpc::ServerWriteReactor<v1::StageEvent>* CoordinatorServiceImpl::WatchStage(
    grpc::CallbackServerContext* context, const v1::WatchStageRequest* request) {
  if (auto* refused = RejectWriteUnlessAuthorized<v1::StageEvent>(context, RpcAccess::kWorker)) {
    return refused;
  }
  const size_t max_total = coordinator_->options().max_watch_streams;
  const size_t max_per_worker = coordinator_->options().max_watch_streams_per_worker;
  WatchReactor* reactor = nullptr;
  bool end_now = false;
  {
    absl::MutexLock lock(&mu_);
    const size_t same_worker = static_cast<size_t>(std::count_if(
        watchers_.begin(), watchers_.end(),
        [&](const WatchReactor* w) { return w->worker_id() == request->worker_id(); }));
    std::string refusal;
    if (watchers_.size() >= max_total) {
      refusal = absl::StrCat("WatchStage: ", watchers_.size(),
                             " streams open (coordinator.max_watch_streams = ", max_total, ")");
    } else if (same_worker >= max_per_worker) {
      refusal = absl::StrCat(
          "WatchStage: worker '", request->worker_id().substr(0, 64), "' has ", same_worker,
          " streams open (coordinator.max_watch_streams_per_worker = ", max_per_worker, ")");
    }
    if (!refusal.empty()) {
      return new RejectedWriteReactor<v1::StageEvent>(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, refusal));
    }
    // Built under the lock, so the count and the list agree; its reactions run only after this
    // method returns, and the coordinator calls subscribers under none of its locks.
    reactor = new WatchReactor(this, coordinator_, request->worker_id());
    watchers_.push_back(reactor);
    end_now = shutting_down_;
  }
  if (end_now) reactor->End();
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::SetStage(grpc::CallbackServerContext* context,
                                                           const v1::SetStageRequest* request,
                                                           v1::StageEvent* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kAdmin)) return refused;
  return FinishUnary(context, coordinator_->SetStage(request->stage()), response);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Pause(grpc::CallbackServerContext* context,
                                                        const v1::PauseRequest* request,
                                                        v1::StageEvent* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kAdmin)) return refused;
  *response = coordinator_->Pause();
  return FinishStatus(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Resume(grpc::CallbackServerContext* context,
                                                         const v1::ResumeRequest* request,
                                                         v1::StageEvent* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kAdmin)) return refused;
  *response = coordinator_->Resume();
  return FinishStatus(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ListEnvServers(
    grpc::CallbackServerContext* context, const v1::ListEnvServersRequest* request,
    v1::ListEnvServersResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  *response = coordinator_->ListEnvServers();
  return FinishStatus(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::DrainEnvServer(
    grpc::CallbackServerContext* context, const v1::DrainEnvServerRequest* request,
    v1::WorkerStatus* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kAdmin)) return refused;
  return FinishUnary(context, coordinator_->DrainEnvServer(*request), response);
}

}  // namespace envtune
