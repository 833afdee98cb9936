#include "actor/actor.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/channels.h"
#include "common/enum_label.h"
#include "common/grpc_status.h"
#include "common/worker_session.h"
#include "envserver/reply_format.h"
#include "grpcpp/client_context.h"
#include "model/text/tokenizer.h"

namespace envtune {
namespace {

void Log(const std::string& name, const std::string& message) {
  std::cerr << "actor " << name << ": " << message << std::endl;
}

// Sane ranges of the actor's numeric keys (ConfigReader::AddBounds; errors name key, value
// and range): far beyond real runs, tight enough that a typo is an error instead of a hang or
// an allocation that aborts.
constexpr double kDayMs = 86400e3;
constexpr ConfigBound kActorBounds[] = {
    {"actor.concurrency", 1, 1 << 16},
    {"actor.env_threads", 0, 4096},
    {"actor.max_new_tokens", 1, 1 << 20},
    {"actor.temperature", 0, 100},
    {"actor.top_p", 0, 1},
    {"actor.top_k", 0, 1 << 21},  // <= the largest vocabulary model/config.cc accepts
    {"actor.max_model_turns", 1, 10000},
    {"actor.max_episode_tokens", 1, 1 << 24},  // the coordinator's token-count bound
    {"actor.max_episode_seconds", 0, 7 * 86400},
    {"actor.batch_gather_ms", 0, 600e3},
    {"actor.weights_chunk_bytes", 0, 64 << 20},
    {"actor.weights_timeout_s", 0, 7 * 86400},
    {"actor.rpc_timeout_ms", 1, kDayMs},
    {"actor.env_timeout_ms", 1, kDayMs},
    {"actor.env_max_attempts", 1, 1000},
    {"actor.env_fleet_refresh_ms", 1, kDayMs},
    {"actor.push_timeout_s", 0, 7 * 86400},
    {"actor.max_leases", 0, 1 << 16},
};

}  // namespace

void ReadActorOptions(ConfigReader& reader, ActorOptions* o) {
  reader.AddBounds(kActorBounds);
  RolloutOptions& r = o->rollout;
  auto positive = [&](const char* key, int64_t value) {
    if (value < 1) reader.AddError(absl::StrCat("actor.", key, ": must be >= 1"));
  };
  r.concurrency = reader.Get<int>("actor.concurrency", r.concurrency);
  positive("concurrency", r.concurrency);
  r.env_threads = reader.Get<int>("actor.env_threads", r.env_threads);
  r.max_new_tokens = reader.Get<int64_t>("actor.max_new_tokens", r.max_new_tokens);
  positive("max_new_tokens", r.max_new_tokens);
  r.temperature = reader.Get<double>("actor.temperature", r.temperature);
  if (!(r.temperature > 0)) reader.AddError("actor.temperature: must be > 0");
  r.top_p = reader.Get<double>("actor.top_p", r.top_p);
  if (!(r.top_p > 0 && r.top_p <= 1)) reader.AddError("actor.top_p: must be in (0, 1]");
  r.top_k = reader.Get<int64_t>("actor.top_k", r.top_k);
  r.max_model_turns = reader.Get<uint32_t>("actor.max_model_turns", r.max_model_turns);
  positive("max_model_turns", r.max_model_turns);
  r.max_episode_tokens = reader.Get<int64_t>("actor.max_episode_tokens", r.max_episode_tokens);
  positive("max_episode_tokens", r.max_episode_tokens);
  r.max_episode_time = absl::Seconds(reader.Get<double>(
      "actor.max_episode_seconds", absl::ToDoubleSeconds(r.max_episode_time)));
  r.batch_gather = absl::Milliseconds(
      reader.Get<int64_t>("actor.batch_gather_ms", absl::ToInt64Milliseconds(r.batch_gather)));
  r.lockstep = reader.Get<bool>("actor.lockstep", r.lockstep);
  r.seed = reader.Get<uint64_t>("actor.seed", r.seed);
  r.reuse_kv_cache = reader.Get<bool>("actor.reuse_kv_cache", r.reuse_kv_cache);
  std::string kv_budget;  // the current value, as the key would spell it
  if (r.kv_budget.bytes > 0) kv_budget = absl::StrCat(r.kv_budget.bytes, "B");
  if (r.kv_budget.fraction > 0) kv_budget = absl::StrCat(r.kv_budget.fraction);
  kv_budget = reader.Get<std::string>("actor.kv_budget", kv_budget);
  if (absl::StatusOr<KvBudget> parsed = ParseKvBudget(kv_budget); parsed.ok()) {
    r.kv_budget = *parsed;
  } else {
    reader.AddError(absl::StrCat("actor.kv_budget: ", parsed.status().message()));
  }
  o->tokenizer = reader.Get<std::string>("actor.tokenizer", o->tokenizer);
  absl::StatusOr<v1::OutputFormat> format = ParseOutputFormat(reader.Get<std::string>(
      "actor.output_format", std::string(OutputFormatName(o->output_format))));
  if (format.ok()) {
    o->output_format = *format;
  } else {
    reader.AddError(absl::StrCat("actor.output_format: ", format.status().message()));
  }
  o->eval_bfcl_semantics = reader.Get<bool>("actor.eval_bfcl_semantics", o->eval_bfcl_semantics);
  o->policy.load.device = reader.Get<std::string>("actor.device", o->policy.load.device);
  o->policy.load.dtype = reader.Get<std::string>("actor.dtype", o->policy.load.dtype);
  o->policy.chunk_bytes = reader.Get<uint32_t>("actor.weights_chunk_bytes", o->policy.chunk_bytes);
  o->weights_timeout = absl::Seconds(
      reader.Get<double>("actor.weights_timeout_s", absl::ToDoubleSeconds(o->weights_timeout)));
  o->rpc_timeout = absl::Milliseconds(
      reader.Get<int64_t>("actor.rpc_timeout_ms", absl::ToInt64Milliseconds(o->rpc_timeout)));
  const absl::Duration env_timeout = absl::Milliseconds(reader.Get<int64_t>(
      "actor.env_timeout_ms", absl::ToInt64Milliseconds(o->env_client.step_timeout)));
  o->env_client.step_timeout = env_timeout;
  o->env_client.start_timeout = env_timeout;
  o->env_client.max_attempts = reader.Get<int>("actor.env_max_attempts", o->env_client.max_attempts);
  if (o->env_client.max_attempts < 0) reader.AddError("actor.env_max_attempts: must be >= 0");
  o->retry_deadline = absl::Seconds(reader.Get<double>(
      "actor.retry_deadline_s", absl::ToDoubleSeconds(o->retry_deadline)));
  if (o->retry_deadline <= absl::ZeroDuration()) {
    reader.AddError("actor.retry_deadline_s: must be > 0");
  }
  o->env_client.retry_deadline = o->retry_deadline;
  o->push.retry_deadline = o->retry_deadline;
  const std::string discovery = reader.Get<std::string>(
      "actor.env_discovery", o->env_discovery == EnvDiscovery::kCoordinator ? "coordinator" : "static");
  if (discovery == "coordinator") {
    o->env_discovery = EnvDiscovery::kCoordinator;
  } else if (discovery == "static") {
    o->env_discovery = EnvDiscovery::kStatic;
  } else {
    reader.AddError(absl::StrCat("actor.env_discovery: '", discovery,
                                 "' is not one of coordinator, static"));
  }
  const int64_t refresh_ms = reader.Get<int64_t>(
      "actor.env_fleet_refresh_ms", absl::ToInt64Milliseconds(o->env_client.fleet_refresh));
  positive("env_fleet_refresh_ms", refresh_ms);
  o->env_client.fleet_refresh = absl::Milliseconds(std::max<int64_t>(1, refresh_ms));
  o->push.write_timeout = absl::Seconds(
      reader.Get<double>("actor.push_timeout_s", absl::ToDoubleSeconds(o->push.write_timeout)));
  o->max_leases = reader.Get<int>("actor.max_leases", o->max_leases);
  o->name = reader.Get<std::string>("actor.name", o->name);
}

v1::EpisodeOptions EpisodeOptionsForLease(const v1::Lease& lease, uint32_t index,
                                          const ActorOptions& options) {
  v1::EpisodeOptions out;
  out.set_output_format(options.output_format);
  out.set_reward_kind(lease.stage().reward_kind());
  out.set_augment_probability(lease.stage().augment_probability());
  out.set_max_steps_per_turn(lease.stage().max_steps_per_turn());
  out.set_bfcl_eval_semantics(lease.evaluation() && options.eval_bfcl_semantics);
  out.set_seed(lease.seed() + index);
  return out;
}

struct Actor::Impl {
  ActorOptions options;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<EnvClient> env;
  std::unique_ptr<PolicyClient> policy;
  std::unique_ptr<TrajectoryPusher> pusher;
  std::unique_ptr<Rollout> rollout;
  std::unique_ptr<v1::CoordinatorService::Stub> coordinator;
  std::unique_ptr<v1::LearnerService::Stub> learner;  // liveness probe while leases wait

  // Main loop only: since when AcquireLease has had no work for this actor, and when that wait
  // was last reported.
  std::optional<absl::Time> no_lease_since;
  absl::Time lease_wait_reported = absl::InfinitePast();

  std::atomic<bool> stop{false};
  absl::Notification stop_note;
  std::atomic<bool> finished{false};
  std::atomic<uint32_t> stage{0};
  // Wall time of the lease loop: waiting for / fetching weights, and rolling out.
  std::atomic<int64_t> weight_sync_micros{0};
  std::atomic<int64_t> rollout_micros{0};
  std::atomic<int64_t> round_start_micros{0};  // unix micros of the round in progress, 0 = none
  // Finished rounds plus the one in progress (so it is comparable with the generation time,
  // which grows during a round).
  double RolloutSeconds() const {
    const int64_t start = round_start_micros.load();
    const int64_t running = start > 0 ? absl::ToUnixMicros(absl::Now()) - start : 0;
    return (rollout_micros.load() + std::max<int64_t>(0, running)) * 1e-6;
  }

  // Registration and heartbeats (common/worker_session.h).
  std::unique_ptr<WorkerSession> session;
  absl::Mutex mu;
  grpc::ClientContext* watch_context ABSL_GUARDED_BY(mu) = nullptr;

  std::string WorkerId() const { return session->worker_id(); }
  std::string Peer() const { return absl::StrCat("coordinator ", options.coordinator); }
  bool Sleep(absl::Duration d) { return !stop_note.WaitForNotificationWithTimeout(d); }

  // The actor's heartbeat fields: rates since the last heartbeat, time split and counters.
  int64_t last_episodes = 0, last_tokens = 0;
  absl::Time last_heartbeat = absl::Now();
  void FillHeartbeat(v1::HeartbeatRequest& request) {
    const absl::Time now = absl::Now();
    const double seconds = std::max(1e-3, absl::ToDoubleSeconds(now - last_heartbeat));
    const int64_t episodes = rollout->episodes_finished();
    const int64_t tokens = rollout->tokens_generated();
    request.set_episodes_per_s(static_cast<double>(episodes - last_episodes) / seconds);
    request.set_tokens_per_s(static_cast<double>(tokens - last_tokens) / seconds);
    request.set_policy_version(policy->version());
    for (const auto& [name, value] : std::initializer_list<std::pair<const char*, double>>{
             {"time/generation_s", rollout->generation_seconds()},
             {"time/env_wait_s", rollout->env_wait_seconds()},
             {"time/weight_sync_s", weight_sync_micros.load() * 1e-6},
             {"time/rollout_s", RolloutSeconds()},
             {"episodes", static_cast<double>(episodes)},
             {"env/replicas", static_cast<double>(env->ServingReplicas().size())},
             {"env/retries", static_cast<double>(env->retries())},
             {"tokens_generated", static_cast<double>(tokens)}}) {
      v1::Metric* metric = request.add_metrics();
      metric->set_name(name);
      metric->set_value(value);
    }
    last_heartbeat = now;
    last_episodes = episodes;
    last_tokens = tokens;
  }

  void WatchLoop() {
    while (!stop) {
      grpc::ClientContext context;
      {
        absl::MutexLock lock(&mu);
        if (stop) return;
        watch_context = &context;
      }
      v1::WatchStageRequest request;
      request.set_worker_id(WorkerId());
      std::unique_ptr<grpc::ClientReader<v1::StageEvent>> reader =
          coordinator->WatchStage(&context, request);
      v1::StageEvent event;
      while (reader->Read(&event)) {
        if (event.stage().stage() != stage.load()) {
          Log(options.name,
              absl::StrCat(
                  "stage ", event.stage().stage(), " (", event.stage().name(), "), reason ",
                  EnumLabel(v1::StageChangeReason_Name(event.reason()), "STAGE_CHANGE_REASON_"),
                  "; takes effect with the next leases"));
        }
        stage = event.stage().stage();
        if (event.finished()) finished = true;
      }
      grpc::Status status = reader->Finish();
      {
        absl::MutexLock lock(&mu);
        watch_context = nullptr;
      }
      if (stop) return;
      if (!status.ok()) {
        Log(options.name, std::string(FromGrpcStatus(status, Peer(), "WatchStage").message()));
      }
      Sleep(absl::Seconds(1));
    }
  }

  // The coordinator has had no lease for this actor for a while (flow control waiting for the
  // learner to consume groups, or no tasks left to lease). Not an error, but not silent either:
  // logged every min(weights_timeout, 1 min) of waiting, and when the coordinator is waiting for
  // the learner, with whether the learner answers at all (a dead learner stalls the run).
  void ReportLeaseWait(const v1::AcquireLeaseResponse& why) {
    const absl::Time now = absl::Now();
    if (!no_lease_since.has_value()) no_lease_since = now;
    const absl::Duration period = std::min(options.weights_timeout, absl::Minutes(1));
    if (now - *no_lease_since < period || now - lease_wait_reported < period) return;
    lease_wait_reported = now;
    const absl::Duration waited = absl::Trunc(now - *no_lease_since, absl::Seconds(1));
    std::string message =
        absl::StrCat("no lease for ", absl::FormatDuration(waited), ": ", why.detail());
    if (why.no_lease() == v1::NO_LEASE_REASON_LEARNER_BUSY) {
      grpc::ClientContext context;
      SetDeadline(context, absl::ToChronoMilliseconds(options.rpc_timeout));
      v1::GetPolicyVersionResponse response;
      grpc::Status status =
          learner->GetPolicyVersion(&context, v1::GetPolicyVersionRequest(), &response);
      const std::string peer = absl::StrCat("learner ", options.learner);
      if (status.ok()) {
        absl::StrAppend(&message, "; ", peer, " answers at policy version ", response.version());
      } else {
        absl::StrAppend(&message, "; ",
                        FromGrpcStatus(status, peer, "GetPolicyVersion").message());
      }
    }
    Log(options.name, message);
  }

  // Up to `room` episodes' worth of leases. Empty when there is no work right now.
  std::vector<v1::Lease> AcquireLeases() {
    std::vector<v1::Lease> leases;
    int64_t episodes = 0;
    const int max_leases = options.max_leases > 0 ? options.max_leases : 1 << 20;
    // With a KV budget, only as many episodes as it holds (at the default max_episode_tokens):
    // leases taken beyond that would wait in the rollout while their deadlines run.
    int64_t room = options.rollout.concurrency;
    if (std::shared_ptr<PolicyImpl> current = policy->policy();
        current != nullptr && !options.rollout.kv_budget.unlimited()) {
      absl::StatusOr<int64_t> fits =
          rollout->EpisodesWithinBudget(*current, options.rollout.max_episode_tokens);
      if (fits.ok()) room = *fits;
    }
    while (!stop && episodes < room &&
           static_cast<int>(leases.size()) < max_leases) {
      grpc::ClientContext context;
      SetDeadline(context, absl::ToChronoMilliseconds(options.rpc_timeout));
      v1::AcquireLeaseRequest request;
      request.set_worker_id(WorkerId());
      v1::AcquireLeaseResponse response;
      grpc::Status status = coordinator->AcquireLease(&context, request, &response);
      if (status.ok()) {
        switch (response.no_lease()) {
          case v1::NO_LEASE_REASON_UNSPECIFIED:
            no_lease_since.reset();
            episodes += std::max<uint32_t>(1, response.lease().group_size());
            leases.push_back(response.lease());
            continue;
          case v1::NO_LEASE_REASON_FINISHED:
            finished = true;
            break;
          default:  // paused, learner busy, quota, no tasks: back off and ask again
            if (leases.empty()) ReportLeaseWait(response);
            break;
        }
        break;
      }
      absl::Status st = FromGrpcStatus(status, Peer(), "AcquireLease");
      if (absl::IsNotFound(st)) {
        Log(options.name, absl::StrCat(st.message(), "; registering again"));
        if (absl::Status re = session->Reregister(request.worker_id()); !re.ok()) {
          Log(options.name, std::string(re.message()));
        }
      } else {
        Log(options.name, std::string(st.message()));
      }
      break;
    }
    return leases;
  }

  void CompleteLease(const v1::Lease& lease, const std::vector<v1::EpisodeStats>& stats,
                     std::atomic<int64_t>* completed) {
    // Outlasts a coordinator that is briefly away (restarting, overloaded): a lease whose
    // completion is lost waits for lease_timeout before it is issued again.
    grpc::ClientContext context;
    SetWaitForReady(context, std::max(options.rpc_timeout, options.retry_deadline));
    v1::CompleteLeaseRequest request;
    request.set_worker_id(WorkerId());
    request.set_lease_id(lease.lease_id());
    for (const v1::EpisodeStats& s : stats) *request.add_episodes() = s;
    v1::CompleteLeaseResponse response;
    grpc::Status status = coordinator->CompleteLease(&context, request, &response);
    if (status.ok()) {
      completed->fetch_add(1);
      return;
    }
    absl::Status st =
        FromGrpcStatus(status, Peer(), absl::StrCat("CompleteLease ", lease.lease_id()));
    Log(options.name, absl::StrCat(st.message(),
                                   absl::IsAborted(st) ? " (episodes dropped)" : ""));
  }

  // Rolls out one round of leases end to end. An error is the rollout's (the KV budget cannot
  // hold one episode, generation ran out of memory or failed): fatal for the actor.
  absl::Status RunLeases(const std::vector<v1::Lease>& leases, std::atomic<int64_t>* completed) {
    uint64_t min_version = 0;
    for (const v1::Lease& lease : leases) {
      min_version = std::max<uint64_t>(min_version, lease.min_policy_version());
    }
    struct LeaseState {
      const v1::Lease* lease;
      std::vector<v1::EpisodeStats> stats;
      size_t done = 0;
      bool abandoned = false;  // a push failed or the actor is stopping: let it expire
    };
    std::map<std::string, LeaseState> state;
    std::vector<EpisodeSpec> specs;
    for (const v1::Lease& lease : leases) {
      LeaseState& ls = state[lease.lease_id()];
      ls.lease = &lease;
      ls.stats.resize(std::max<uint32_t>(1, lease.group_size()));
      for (uint32_t i = 0; i < ls.stats.size(); ++i) {
        EpisodeSpec spec;
        spec.episode_id = absl::StrCat(lease.lease_id(), "/", i);
        spec.lease_id = lease.lease_id();
        spec.group_id = lease.lease_id();
        spec.group_size = static_cast<uint32_t>(ls.stats.size());
        spec.task_id = lease.task_id();
        spec.stage = lease.stage().stage();
        spec.options = EpisodeOptionsForLease(lease, i, options);
        spec.greedy = lease.evaluation();
        spec.max_new_tokens = lease.stage().max_new_tokens();
        spec.max_episode_tokens = lease.stage().max_episode_tokens();
        if (lease.deadline_unix_ms() > 0) {
          // Finish before the coordinator re-issues the lease (leave time to push/complete).
          spec.deadline = absl::FromUnixMillis(lease.deadline_unix_ms()) - options.rpc_timeout;
        }
        specs.push_back(std::move(spec));
      }
    }
    auto deliver = [&](const EpisodeSpec& spec, EpisodeResult& result) {
      LeaseState& ls = state[spec.lease_id];
      const std::string suffix = spec.episode_id.substr(spec.lease_id.size() + 1);
      const size_t i = static_cast<size_t>(std::stoul(suffix));
      if (result.trajectory.finish_reason() == "cancelled") {
        ls.abandoned = true;
      } else if (!ls.lease->evaluation() && !ls.abandoned) {
        if (absl::Status st = pusher->Push(result.trajectory); !st.ok()) {
          Log(options.name, absl::StrCat(st.message(), "; lease ", spec.lease_id,
                                         " left to expire (the coordinator re-issues it)"));
          ls.abandoned = true;
        }
      }
      if (result.trajectory.failed() && result.trajectory.finish_reason() != "cancelled") {
        Log(options.name, absl::StrCat("episode ", spec.episode_id, " failed: ",
                                       result.trajectory.error()));
      }
      ls.stats[i] = result.stats;
      if (++ls.done == ls.stats.size() && !ls.abandoned) {
        CompleteLease(*ls.lease, ls.stats, completed);
      }
    };

    const absl::Time sync_start = absl::Now();
    absl::Status ensured = policy->EnsureVersion(min_version, options.weights_timeout);
    if (!ensured.ok()) {
      // No policy of the required version: deliver the groups as failed.
      weight_sync_micros.fetch_add(absl::ToInt64Microseconds(absl::Now() - sync_start));
      Log(options.name, std::string(ensured.message()));
      for (const EpisodeSpec& spec : specs) {
        EpisodeResult result;
        v1::Trajectory& t = result.trajectory;
        t.set_episode_id(spec.episode_id);
        t.set_lease_id(spec.lease_id);
        t.set_group_id(spec.group_id);
        t.set_group_size(spec.group_size);
        t.set_task_id(spec.task_id);
        t.set_stage(spec.stage);
        t.set_policy_version(policy->version());
        t.set_finish_reason("policy_error");
        t.set_failed(true);
        t.set_error(std::string(ensured.message()));
        result.stats.set_episode_id(spec.episode_id);
        result.stats.set_failed(true);
        result.stats.set_policy_version(policy->version());
        deliver(spec, result);
      }
      return absl::OkStatus();
    }
    // Roll out with the newest policy the learner has (a cheap "not modified" when current):
    // the lease's minimum bounds staleness, the newest keeps it as small as it can be.
    if (absl::StatusOr<uint64_t> latest = policy->Fetch(); !latest.ok()) {
      Log(options.name, absl::StrCat(latest.status().message(), "; rolling out with version ",
                                     policy->version()));
    }
    weight_sync_micros.fetch_add(absl::ToInt64Microseconds(absl::Now() - sync_start));
    std::shared_ptr<PolicyImpl> current = policy->policy();
    const absl::Time rollout_start = absl::Now();
    round_start_micros = absl::ToUnixMicros(rollout_start);
    absl::StatusOr<std::vector<EpisodeResult>> results =
        rollout->Run(*current, policy->version(), specs, deliver, &stop);
    rollout_micros.fetch_add(absl::ToInt64Microseconds(absl::Now() - rollout_start));
    round_start_micros = 0;
    return results.status();
  }
};

Actor::Actor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Actor::~Actor() { Stop(); }

absl::StatusOr<std::unique_ptr<Actor>> Actor::Create(ActorOptions options) {
  for (const auto& [value, flag] : {std::pair{&options.coordinator, "coordinator"},
                                    std::pair{&options.learner, "learner"}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("actor: --", flag, " is required"));
    }
  }
  if (options.env.empty() && options.env_discovery == EnvDiscovery::kStatic) {
    return absl::InvalidArgumentError(
        "actor: --env is required with actor.env_discovery: static");
  }
  if (options.env_discovery == EnvDiscovery::kCoordinator) {
    options.env_client.coordinator = options.coordinator;
  }
  auto impl = std::make_unique<Impl>();
  std::string tokenizer_path = options.tokenizer;
  std::error_code ec;
  if (std::filesystem::is_directory(tokenizer_path, ec)) tokenizer_path += "/tokenizer.json";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(tokenizer_path);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat("actor: tokenizer ", tokenizer_path, ": ",
                                     tokenizer.status().message()));
  }
  impl->tokenizer = std::move(*tokenizer);
  impl->env = std::make_unique<EnvClient>(options.env, options.env_client);
  PolicyClientOptions policy_options = options.policy;
  policy_options.rpc_timeout = std::max(policy_options.rpc_timeout, options.rpc_timeout);
  impl->policy = std::make_unique<PolicyClient>(options.learner, policy_options);
  impl->pusher = std::make_unique<TrajectoryPusher>(
      MakeChannel(options.learner, ChannelOptions{.round_robin = false}), options.learner,
      options.push);
  impl->rollout = std::make_unique<Rollout>(impl->tokenizer.get(), impl->env.get(), options.rollout);
  impl->learner = v1::LearnerService::NewStub(
      MakeChannel(options.learner, ChannelOptions{.round_robin = false}));
  impl->coordinator = v1::CoordinatorService::NewStub(
      MakeChannel(options.coordinator, ChannelOptions{.round_robin = false}));
  impl->options = std::move(options);
  Impl* a = impl.get();
  WorkerSessionOptions session;
  session.coordinator = a->options.coordinator;
  session.role = v1::ROLE_ACTOR;
  session.name = a->options.name;
  session.rpc_timeout = a->options.rpc_timeout;
  session.retry_deadline = a->options.retry_deadline;
  WorkerSessionHooks hooks;
  hooks.fill = [a](v1::HeartbeatRequest& request) { a->FillHeartbeat(request); };
  hooks.log = [a](const std::string& line) { Log(a->options.name, line); };
  a->session =
      std::make_unique<WorkerSession>(a->coordinator.get(), std::move(session), std::move(hooks));
  return std::unique_ptr<Actor>(new Actor(std::move(impl)));
}

absl::Status Actor::Run() {
  Impl& a = *impl_;
  if (absl::Status st = a.session->Register(); !st.ok()) return st;
  a.last_episodes = a.rollout->episodes_finished();
  a.last_tokens = a.rollout->tokens_generated();
  a.last_heartbeat = absl::Now();
  a.session->StartHeartbeats();
  std::thread watch([&a] { a.WatchLoop(); });
  absl::Status result = absl::OkStatus();
  while (!a.stop && !a.finished) {
    std::vector<v1::Lease> leases = a.AcquireLeases();
    if (leases.empty()) {
      a.Sleep(a.options.idle_backoff);
      continue;
    }
    if (absl::Status st = a.RunLeases(leases, &leases_completed_); !st.ok()) {
      // The round's leases are left to expire (the coordinator re-issues them elsewhere).
      Log(a.options.name, absl::StrCat("stopping: ", st.message()));
      result = std::move(st);
      break;
    }
  }
  if (a.finished && !a.stop) Log(a.options.name, "the curriculum finished; stopping");
  Stop();
  watch.join();
  absl::StatusOr<v1::PushTrajectoriesResponse> closed = a.pusher->Close(absl::Seconds(10));
  if (!closed.ok()) Log(a.options.name, std::string(closed.status().message()));
  return result;
}

void Actor::Stop() {
  Impl& a = *impl_;
  a.stop = true;
  {
    absl::MutexLock lock(&a.mu);
    if (!a.stop_note.HasBeenNotified()) a.stop_note.Notify();
    if (a.watch_context != nullptr) a.watch_context->TryCancel();
  }
  a.session->Stop();
}

int64_t Actor::episodes_pushed() const { return static_cast<int64_t>(impl_->pusher->pushed()); }

}  // namespace envtune
