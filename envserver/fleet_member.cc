#include "envserver/fleet_member.h"

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"

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
  member->thread_ = std::thread([m = member.get()] { m->Loop(); });
  return member;
}

EnvFleetMember::EnvFleetMember(EnvServer* server, EnvFleetMemberOptions options)
    : server_(server),
      options_(std::move(options)),
      stub_(v1::CoordinatorService::NewStub(
          MakeChannel(options_.coordinator, ChannelOptions{.round_robin = false}))),
      interval_(options_.heartbeat_interval) {}

EnvFleetMember::~EnvFleetMember() { Leave(); }

std::string EnvFleetMember::worker_id() {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

absl::Status EnvFleetMember::RegisterOnce() {
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(options_.rpc_timeout));
  v1::RegisterRequest request;
  request.set_role(v1::ROLE_ENV_SERVER);
  request.set_address(options_.address);
  request.set_name(options_.name);
  v1::RegisterResponse response;
  grpc::Status status = stub_->Register(&context, request, &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, absl::StrCat("coordinator ", options_.coordinator), "Register");
  }
  worker_id_ = response.worker_id();
  if (response.heartbeat_interval_ms() > 0) {
    interval_ = absl::Milliseconds(std::max<uint32_t>(100, response.heartbeat_interval_ms()));
  }
  return absl::OkStatus();
}

absl::Status EnvFleetMember::HeartbeatOnce(v1::ServingState state) {
  if (worker_id_.empty()) {
    if (absl::Status st = RegisterOnce(); !st.ok()) return st;
    std::cerr << "env server " << options_.address << ": registered with coordinator "
              << options_.coordinator << " as " << worker_id_ << std::endl;
  }
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(options_.rpc_timeout));
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id_);
  request.set_serving_state(state);
  *request.mutable_env_load() = server_->Load();
  v1::HeartbeatResponse response;
  grpc::Status status = stub_->Heartbeat(&context, request, &response);
  if (!status.ok()) {
    absl::Status st =
        FromGrpcStatus(status, absl::StrCat("coordinator ", options_.coordinator), "Heartbeat");
    if (absl::IsNotFound(st)) worker_id_.clear();  // forgotten: register again next time
    return st;
  }
  if (response.drain() && !drain_requested_.HasBeenNotified()) drain_requested_.Notify();
  return absl::OkStatus();
}

void EnvFleetMember::Loop() {
  absl::Duration backoff = absl::Milliseconds(200);
  absl::Duration wait = absl::ZeroDuration();  // the first heartbeat registers at once
  while (!stop_.WaitForNotificationWithTimeout(wait)) {
    absl::Status st;
    {
      absl::MutexLock lock(&mu_);
      if (left_) return;
      st = HeartbeatOnce(server_->draining() ? v1::SERVING_STATE_DRAINING
                                             : v1::SERVING_STATE_SERVING);
      wait = interval_;
    }
    if (st.ok()) {
      backoff = absl::Milliseconds(200);
    } else if (absl::IsNotFound(st)) {
      wait = absl::ZeroDuration();  // register again now
    } else {
      std::cerr << "env server " << options_.address << ": " << st.message() << std::endl;
      wait = std::min(backoff, wait);
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  }
}

void EnvFleetMember::ReportDraining() {
  absl::MutexLock lock(&mu_);
  if (left_ || worker_id_.empty()) return;
  if (absl::Status st = HeartbeatOnce(v1::SERVING_STATE_DRAINING); !st.ok()) {
    std::cerr << "env server " << options_.address << ": " << st.message() << std::endl;
  }
}

void EnvFleetMember::Leave() {
  {
    absl::MutexLock lock(&mu_);
    if (!left_) {
      left_ = true;
      if (!worker_id_.empty()) (void)HeartbeatOnce(v1::SERVING_STATE_STOPPED);
    }
  }
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace envtune
