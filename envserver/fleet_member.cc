#include "envserver/fleet_member.h"

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/channels.h"

namespace envtune {

absl::StatusOr<std::unique_ptr<EnvFleetMember>> EnvFleetMember::Start(
    EnvServer* server, EnvFleetMemberOptions options) {
  if (options.coordinator.empty()) {
    return absl::InvalidArgumentError("env server fleet membership: no coordinator address");
  }
  if (options.address.empty()) {
    return absl::InvalidArgumentError("env server fleet membership: no address to advertise");
  }
  if (options.name.empty()) options.name = options.address;
  std::unique_ptr<EnvFleetMember> member(new EnvFleetMember(server, std::move(options)));
  member->session_->StartHeartbeats();
  return member;
}

EnvFleetMember::EnvFleetMember(EnvServer* server, EnvFleetMemberOptions options)
    : server_(server),
      options_(std::move(options)),
      stub_(v1::CoordinatorService::NewStub(
          MakeChannel(options_.coordinator, ChannelOptions{.round_robin = false}))) {
  WorkerSessionHooks hooks;
  hooks.fill = [this](v1::HeartbeatRequest& request) {
    request.set_serving_state(State());
    *request.mutable_env_load() = server_->Load();
  };
  hooks.on_response = [this](const v1::HeartbeatRequest&, const v1::HeartbeatResponse& response) {
    if (response.drain() && !drain_requested_.HasBeenNotified()) drain_requested_.Notify();
  };
  hooks.log = [this](const std::string& line) { Log(line); };
  session_ = std::make_unique<WorkerSession>(
      stub_.get(),
      WorkerSessionOptions{.coordinator = options_.coordinator,
                           .role = v1::ROLE_ENV_SERVER,
                           .name = options_.name,
                           .address = options_.address,
                           .rpc_timeout = options_.rpc_timeout,
                           .retry_deadline = absl::InfiniteDuration(),
                           .heartbeat_interval = options_.heartbeat_interval,
                           .first_heartbeat_at_once = true,  // registers at once
                           .register_in_background = true},
      std::move(hooks));
}

EnvFleetMember::~EnvFleetMember() { Leave(); }

std::string EnvFleetMember::worker_id() { return session_->worker_id(); }

v1::ServingState EnvFleetMember::State() const {
  if (left_) return v1::SERVING_STATE_STOPPED;
  return server_->draining() || draining_ ? v1::SERVING_STATE_DRAINING : v1::SERVING_STATE_SERVING;
}

void EnvFleetMember::Log(const std::string& line) const {
  std::cerr << "env server " << options_.address << ": " << line << std::endl;
}

void EnvFleetMember::ReportDraining() {
  draining_ = true;
  if (left_ || session_->worker_id().empty()) return;
  if (absl::Status st = session_->HeartbeatNow(); !st.ok()) Log(std::string(st.message()));
}

void EnvFleetMember::Leave() {
  absl::MutexLock lock(&leave_mu_);
  if (session_->stopped()) return;
  left_ = true;
  if (!session_->worker_id().empty()) (void)session_->HeartbeatNow();  // STOPPED, best effort
  session_->Stop();
}

}  // namespace envtune
