// CoordinatorService over gRPC's callback API: thin handlers around Coordinator. Every handler
// first authorises the call with the process's security (common/security.h): admin RPCs
// (SetStage, Pause, Resume, DrainEnvServer) need the admin token (disabled without one), all
// others the cluster token when one is configured.
#ifndef ENVTUNE_COORDINATOR_SERVICE_H_
#define ENVTUNE_COORDINATOR_SERVICE_H_

#include <memory>
#include <string>

#include "coordinator/coordinator.h"
#include "envtune/v1/coordinator.grpc.pb.h"

namespace envtune {

class CoordinatorServiceImpl final : public v1::CoordinatorService::CallbackService {
 public:
  // `coordinator` is not owned and must outlive the service.
  explicit CoordinatorServiceImpl(Coordinator* coordinator);
  // Ends every open WatchStage stream (OK). Call before shutting the server down.
  void Shutdown();
  ~CoordinatorServiceImpl() override;

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* AcquireLease(grpc::CallbackServerContext* context,
                                         const v1::AcquireLeaseRequest* request,
                                         v1::AcquireLeaseResponse* response) override;
  grpc::ServerUnaryReactor* CompleteLease(grpc::CallbackServerContext* context,
                                          const v1::CompleteLeaseRequest* request,
                                          v1::CompleteLeaseResponse* response) override;
  grpc::ServerUnaryReactor* ReportLearnerStep(grpc::CallbackServerContext* context,
                                              const v1::ReportLearnerStepRequest* request,
                                              v1::ReportLearnerStepResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::ClusterStatus* response) override;
  grpc::ServerWriteReactor<v1::StageEvent>* WatchStage(
      grpc::CallbackServerContext* context, const v1::WatchStageRequest* request) override;
  grpc::ServerUnaryReactor* SetStage(grpc::CallbackServerContext* context,
                                     const v1::SetStageRequest* request,
                                     v1::StageEvent* response) override;
  grpc::ServerUnaryReactor* Pause(grpc::CallbackServerContext* context,
                                  const v1::PauseRequest* request,
                                  v1::StageEvent* response) override;
  grpc::ServerUnaryReactor* Resume(grpc::CallbackServerContext* context,
                                   const v1::ResumeRequest* request,
                                   v1::StageEvent* response) override;

  grpc::ServerUnaryReactor* ListEnvServers(grpc::CallbackServerContext* context,
                                           const v1::ListEnvServersRequest* request,
                                           v1::ListEnvServersResponse* response) override;
  grpc::ServerUnaryReactor* DrainEnvServer(grpc::CallbackServerContext* context,
                                           const v1::DrainEnvServerRequest* request,
                                           v1::WorkerStatus* response) override;

 private:
  class WatchReactor;
  void RemoveWatcher(WatchReactor* watcher);

  Coordinator* const coordinator_;
  absl::Mutex mu_;
  std::vector<WatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace envtune

#endif  // ENVTUNE_COORDINATOR_SERVICE_H_
