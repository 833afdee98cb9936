// EnvService: core, gRPC adapter and server (see env_service.h).
#include "envserver/env_service.h"

#include <malloc.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/security/server_credentials.h"

namespace envtune {
namespace {

constexpr const char* kSplits[] = {"train", "val", "test"};

// "multi_turn_base" -> "base".
std::string ShortCategory(const std::string& category) {
  constexpr std::string_view kPrefix = "multi_turn_";
  if (category.compare(0, kPrefix.size(), kPrefix) == 0) return category.substr(kPrefix.size());
  return category;
}

template <typename Response>
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, absl::StatusOr<Response> result,
                                 Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

absl::Status DrainingStatus() {
  return absl::UnavailableError("env server is draining; retry on another replica with the same episode_state");
}

}  // namespace

void ConfigureEnvServerProcess() {
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

absl::StatusOr<std::string> ReadHmacKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read HMAC key file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) {
    key.pop_back();
  }
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("HMAC key file ", path, " is empty"));
  return key;
}

absl::StatusOr<std::unique_ptr<EnvCore>> EnvCore::Create(const EnvServiceOptions& options) {
  std::unique_ptr<EnvCore> core(new EnvCore());
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(absl::StrCat(options.data_dir, "/bfcl"));
  if (!catalog.ok()) return catalog.status();
  core->catalog_ = *std::move(catalog);
  for (const char* split : kSplits) {
    std::string path = absl::StrCat(options.data_dir, "/splits/", split, ".txt");
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read split file ", path));
    std::string line;
    while (std::getline(in, line)) {
      std::string id(absl::StripAsciiWhitespace(line));
      if (!id.empty()) core->split_of_[id] = split;
    }
  }
  core->engine_ = std::make_unique<EpisodeEngine>(&core->catalog_, options.engine);
  return core;
}

std::string EnvCore::SplitOf(const std::string& task_id) const {
  auto it = split_of_.find(task_id);
  return it == split_of_.end() ? "" : it->second;
}

absl::StatusOr<v1::ListTasksResponse> EnvCore::ListTasks(const v1::ListTasksRequest& request) const {
  std::string category = request.category();
  if (!category.empty()) {
    bool known = false;
    for (const std::string& c : TaskCatalog::Categories()) {
      if (category == c || category == ShortCategory(c)) {
        category = ShortCategory(c);
        known = true;
      }
    }
    if (!known) {
      return absl::NotFoundError(absl::StrCat("unknown category '", Excerpt(request.category()),
                                              "' (one of base, miss_func, miss_param, long_context)"));
    }
  }
  const std::string& split = request.split();
  if (!split.empty() && split != "train" && split != "val" && split != "test") {
    return absl::NotFoundError(absl::StrCat("unknown split '", Excerpt(split), "' (one of train, val, test)"));
  }
  v1::ListTasksResponse resp;
  for (const BfclTask& task : catalog_.tasks()) {
    std::string cat = ShortCategory(task.category);
    std::string task_split = SplitOf(task.id);
    if (!category.empty() && cat != category) continue;
    if (!split.empty() && task_split != split) continue;
    v1::TaskInfo* info = resp.add_tasks();
    info->set_task_id(task.id);
    info->set_category(cat);
    info->set_split(task_split);
    info->set_num_turns(static_cast<uint32_t>(task.questions.size()));
    for (const std::string& c : task.involved_classes) info->add_involved_classes(c);
  }
  return resp;
}

absl::StatusOr<v1::StartEpisodeResponse> EnvCore::StartEpisode(const v1::StartEpisodeRequest& request) const {
  return engine_->Start(request.task_id(), request.options());
}

absl::StatusOr<v1::StepResponse> EnvCore::Step(const v1::StepRequest& request) const {
  return engine_->Step(request.episode_state(), request.model_output());
}

grpc::ServerUnaryReactor* EnvServiceImpl::ListTasks(grpc::CallbackServerContext* context,
                                                    const v1::ListTasksRequest* request,
                                                    v1::ListTasksResponse* response) {
  if (draining_) return Finish<v1::ListTasksResponse>(context, DrainingStatus(), response);
  return Finish(context, core_->ListTasks(*request), response);
}

grpc::ServerUnaryReactor* EnvServiceImpl::StartEpisode(grpc::CallbackServerContext* context,
                                                       const v1::StartEpisodeRequest* request,
                                                       v1::StartEpisodeResponse* response) {
  if (draining_) return Finish<v1::StartEpisodeResponse>(context, DrainingStatus(), response);
  if (load_ == nullptr) return Finish(context, core_->StartEpisode(*request), response);
  load_->RpcStarted();
  absl::StatusOr<v1::StartEpisodeResponse> result = core_->StartEpisode(*request);
  load_->EpisodeStarted();
  load_->RpcFinished();
  return Finish(context, std::move(result), response);
}

grpc::ServerUnaryReactor* EnvServiceImpl::Step(grpc::CallbackServerContext* context, const v1::StepRequest* request,
                                               v1::StepResponse* response) {
  if (draining_) return Finish<v1::StepResponse>(context, DrainingStatus(), response);
  if (load_ == nullptr) return Finish(context, core_->Step(*request), response);
  load_->RpcStarted();
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::StepResponse> result = core_->Step(*request);
  const absl::Time end = absl::Now();
  load_->StepFinished(end - start, end);
  load_->RpcFinished();
  return Finish(context, std::move(result), response);
}

absl::StatusOr<std::unique_ptr<EnvServer>> EnvServer::Start(const EnvServiceOptions& options,
                                                             const std::string& address) {
  std::unique_ptr<EnvServer> server(new EnvServer(options.load_window));
  absl::StatusOr<std::unique_ptr<EnvCore>> core = EnvCore::Create(options);
  if (!core.ok()) return core.status();
  server->core_ = *std::move(core);
  server->service_ = std::make_unique<EnvServiceImpl>(server->core_.get(), &server->load_);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_age)));
    // Calls still running on an aged connection get this long (longer than any Step).
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 5 * 60 * 1000);
  }
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  server->SetHealth(true);
  return server;
}

void EnvServer::SetHealth(bool serving) {
  if (server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(kHealthServiceName, serving);
    health->SetServingStatus("", serving);
  }
}

void EnvServer::BeginDrain() {
  if (health_draining_.exchange(true)) return;
  SetHealth(false);
}

void EnvServer::Drain() {
  BeginDrain();
  if (service_ == nullptr || service_->draining()) return;
  service_->SetDraining();
}

void EnvServer::DrainAndShutdown(absl::Duration grace, absl::Duration inflight_timeout) {
  BeginDrain();
  absl::SleepFor(grace);
  Drain();
  const absl::Time deadline = absl::Now() + inflight_timeout;
  while (inflight() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  Shutdown();
}

void EnvServer::Shutdown(std::chrono::milliseconds grace) {
  if (stopped_ || server_ == nullptr) return;
  Drain();
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  stopped_ = true;
}

EnvServer::~EnvServer() { Shutdown(std::chrono::milliseconds(0)); }

}  // namespace envtune
