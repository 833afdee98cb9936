#include "episodes/env_client.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"

namespace envtune {

bool IsRetryableEnvCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

std::string EnvTarget(const std::string& spec) {
  if (spec.empty()) return spec;
  if (absl::StrContains(spec, ":///") || absl::StartsWith(spec, "ipv4:") ||
      absl::StartsWith(spec, "ipv6:") || absl::StartsWith(spec, "dns:") ||
      absl::StartsWith(spec, "unix:")) {
    return spec;
  }
  std::vector<std::string> parts = absl::StrSplit(spec, ',', absl::SkipWhitespace());
  for (std::string& p : parts) p = std::string(absl::StripAsciiWhitespace(p));
  return StaticListTarget(parts);
}

namespace {

std::shared_ptr<grpc::Channel> ChannelOrNull(const std::string& target) {
  return target.empty() ? nullptr : MakeChannel(target);
}

std::shared_ptr<grpc::Channel> CoordinatorChannel(const std::string& coordinator) {
  return coordinator.empty() ? nullptr
                             : MakeChannel(coordinator, ChannelOptions{.round_robin = false});
}

}  // namespace

EnvClient::EnvClient(const std::string& target, EnvClientOptions options)
    : EnvClient(CoordinatorChannel(options.coordinator), ChannelOrNull(EnvTarget(target)),
                EnvTarget(target).empty() ? absl::StrCat("fleet of ", options.coordinator)
                                          : EnvTarget(target),
                options) {}

EnvClient::EnvClient(std::shared_ptr<grpc::Channel> channel, std::string name,
                     EnvClientOptions options)
    : EnvClient(nullptr, std::move(channel), std::move(name), [&options] {
        options.coordinator.clear();
        return options;
      }()) {}

EnvClient::EnvClient(std::shared_ptr<grpc::Channel> coordinator,
                     std::shared_ptr<grpc::Channel> fallback, std::string name,
                     EnvClientOptions options)
    : name_(std::move(name)), options_(std::move(options)), channel_(std::move(fallback)) {
  if (channel_ != nullptr) stub_ = v1::EnvService::NewStub(channel_);
  if (coordinator != nullptr) {
    coordinator_ = v1::CoordinatorService::NewStub(coordinator);
    fleet_thread_ = std::thread([this] { FleetLoop(); });
  }
}

EnvClient::~EnvClient() {
  stop_.Notify();
  if (fleet_thread_.joinable()) fleet_thread_.join();
}

absl::Status EnvClient::RefreshFleet() {
  if (coordinator_ == nullptr) return absl::FailedPreconditionError("no coordinator to ask");
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(options_.fleet_rpc_timeout));
  v1::ListEnvServersResponse fleet;
  grpc::Status status =
      coordinator_->ListEnvServers(&context, v1::ListEnvServersRequest(), &fleet);
  if (!status.ok()) return FromGrpcStatus(status, "coordinator", "ListEnvServers");
  absl::MutexLock lock(&mu_);
  if (fleet.generation() == generation_) return absl::OkStatus();
  std::map<std::string, std::shared_ptr<Replica>> replicas;
  std::vector<std::shared_ptr<Replica>> serving;
  for (const v1::WorkerStatus& server : fleet.env_servers()) {
    if (server.address().empty() || replicas.count(server.address()) > 0) continue;
    std::shared_ptr<Replica>& replica = replicas[server.address()];
    auto known = replicas_.find(server.address());
    if (known != replicas_.end()) {
      replica = known->second;  // keep its connection
    } else {
      replica = std::make_shared<Replica>();
      replica->address = server.address();
      replica->stub = v1::EnvService::NewStub(
          MakeChannel(server.address(), ChannelOptions{.round_robin = false}));
    }
    if (server.serving_state() == v1::SERVING_STATE_SERVING ||
        server.serving_state() == v1::SERVING_STATE_UNSPECIFIED) {
      serving.push_back(replica);
    }
  }
  // Replicas that left stay alive while calls on them finish (shared_ptr).
  replicas_ = std::move(replicas);
  serving_ = std::move(serving);
  generation_ = fleet.generation();
  return absl::OkStatus();
}

void EnvClient::FleetLoop() {
  absl::Status last = absl::OkStatus();
  do {
    absl::Status st = RefreshFleet();
    // Log a failure once, not every second.
    if (!st.ok() && (last.ok() || last.code() != st.code())) {
      std::cerr << "env client: " << st.message() << " (keeping the last fleet)" << std::endl;
    }
    last = st;
  } while (!stop_.WaitForNotificationWithTimeout(options_.fleet_refresh));
}

std::vector<std::string> EnvClient::ServingReplicas() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& r : serving_) out.push_back(r->address);
  return out;
}

uint64_t EnvClient::fleet_generation() {
  absl::MutexLock lock(&mu_);
  return generation_;
}

std::map<std::string, int64_t> EnvClient::CallsByReplica() {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::shared_ptr<EnvClient::Replica> EnvClient::Pick(const Replica* avoid) {
  absl::MutexLock lock(&mu_);
  if (serving_.empty()) return nullptr;
  const absl::Time now = absl::Now();
  const size_t n = serving_.size();
  const size_t offset = next_++;
  std::shared_ptr<Replica> best;
  // First pass: healthy replicas other than `avoid`; second: any other than `avoid`.
  for (int pass = 0; pass < 2 && best == nullptr; ++pass) {
    for (size_t i = 0; i < n; ++i) {
      const std::shared_ptr<Replica>& r = serving_[(offset + i) % n];
      if (r.get() == avoid) continue;
      if (pass == 0 && r->avoid_until > now) continue;
      if (best == nullptr || r->inflight.load() < best->inflight.load()) best = r;
    }
  }
  if (best == nullptr && channel_ == nullptr) best = serving_[offset % n];  // only `avoid` left
  return best;
}

template <typename Request, typename Response, typename Call>
absl::StatusOr<Response> EnvClient::WithRetries(const char* phase, absl::Duration timeout,
                                                const Request& request, Call call) {
  const absl::Time begin = absl::Now();
  const absl::Time deadline = begin + options_.retry_deadline;
  const int attempts = std::max(0, options_.max_attempts);  // 0: until the deadline
  absl::Duration backoff = options_.initial_backoff;
  absl::Status last;
  std::shared_ptr<Replica> failed;
  for (int attempt = 1;; ++attempt) {
    std::shared_ptr<Replica> replica = Pick(failed.get());
    v1::EnvService::Stub* stub = replica != nullptr ? replica->stub.get() : stub_.get();
    const std::string where =
        attempts > 0 ? absl::StrCat(phase, ", attempt ", attempt, "/", attempts)
                     : absl::StrCat(phase, ", attempt ", attempt, " in ",
                                    absl::FormatDuration(absl::Trunc(absl::Now() - begin,
                                                                     absl::Milliseconds(100))));
    if (stub == nullptr) {
      last = absl::UnavailableError(absl::StrCat(
          "env servers (", where, "): no env server is serving (fleet of coordinator ",
          options_.coordinator, " is empty and there is no fallback --env)"));
    } else {
      grpc::ClientContext context;
      // A retry gets what is left of the deadline (at least a second), the first try all of
      // `timeout`.
      const absl::Duration left = std::max(deadline - absl::Now(), absl::Seconds(1));
      SetDeadline(context, absl::ToChronoMilliseconds(attempt == 1 ? timeout
                                                                   : std::min(timeout, left)));
      Response response;
      if (replica != nullptr) replica->inflight.fetch_add(1);
      grpc::Status status = call(stub, &context, request, &response);
      if (replica != nullptr) replica->inflight.fetch_sub(1);
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        ++calls_[replica != nullptr ? replica->address : std::string()];
        return response;
      }
      std::string peer = context.peer();
      if (peer.empty()) peer = replica != nullptr ? replica->address : name_;
      last = FromGrpcStatus(status, absl::StrCat("env server ", peer), where);
      if (replica != nullptr && IsRetryableEnvCode(last.code())) {
        absl::MutexLock lock(&mu_);
        replica->avoid_until = absl::Now() + options_.failed_replica_backoff;
      }
      failed = replica;
    }
    if (!IsRetryableEnvCode(last.code()) || (attempts > 0 && attempt >= attempts)) break;
    // Full backoff x 0.5..1.5, so the actors' retries after a restart do not arrive together.
    const absl::Duration sleep = Jittered(backoff);
    if (absl::Now() + sleep >= deadline) break;
    retries_.fetch_add(1);
    absl::SleepFor(sleep);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return last;
}

absl::StatusOr<v1::StartEpisodeResponse> EnvClient::StartEpisode(
    const v1::StartEpisodeRequest& request) {
  return WithRetries<v1::StartEpisodeRequest, v1::StartEpisodeResponse>(
      "StartEpisode", options_.start_timeout, request,
      [](v1::EnvService::Stub* stub, grpc::ClientContext* c, const v1::StartEpisodeRequest& r,
         v1::StartEpisodeResponse* out) { return stub->StartEpisode(c, r, out); });
}

absl::StatusOr<v1::StepResponse> EnvClient::Step(const v1::StepRequest& request) {
  return WithRetries<v1::StepRequest, v1::StepResponse>(
      "Step", options_.step_timeout, request,
      [](v1::EnvService::Stub* stub, grpc::ClientContext* c, const v1::StepRequest& r,
         v1::StepResponse* out) { return stub->Step(c, r, out); });
}

}  // namespace envtune
