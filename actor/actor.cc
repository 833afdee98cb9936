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
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "model/text/tokenizer.h"

namespace envtune {
namespace {

struct FormatRow {
  const char* name;
  v1::OutputFormat format;
};
constexpr FormatRow kFormats[] = {{"envtuning", v1::OUTPUT_FORMAT_ENVTUNING},
                                  {"bfcl_prompting", v1::OUTPUT_FORMAT_BFCL_PROMPTING},
                                  {"hermes", v1::OUTPUT_FORMAT_HERMES}};

struct RewardRow {
  const char* name;
  v1::RewardKind kind;
};
constexpr RewardRow kRewards[] = {{"progress", v1::REWARD_KIND_PROGRESS},
                                  {"format", v1::REWARD_KIND_FORMAT},
                                  {"binary", v1::REWARD_KIND_BINARY}};

void Log(const std::string& name, const std::string& message) {
  std::cerr << "actor " << name << ": " << message << std::endl;
}

}  // namespace

void ReadActorOptions(ConfigReader& reader, ActorOptions* o) {
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
  const std::string format = reader.Get<std::string>("actor.output_format", "envtuning");
  bool known = false;
  for (const FormatRow& row : kFormats) {
    if (format == row.name) {
      o->output_format = row.format;
      known = true;
    }
  }
  if (!known) {
    reader.AddError(absl::StrCat("actor.output_format: '", format,
                                 "' is not one of envtuning, bfcl_prompting, hermes"));
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
  positive("env_max_attempts", o->env_client.max_attempts);
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
  out.set_reward_kind(v1::REWARD_KIND_UNSPECIFIED);
  for (const RewardRow& row : kRewards) {
    if (lease.stage().reward_kind() == row.name) out.set_reward_kind(row.kind);
  }
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

  absl::Mutex mu;
  std::string worker_id ABSL_GUARDED_BY(mu);
  uint32_t heartbeat_ms ABSL_GUARDED_BY(mu) = 1000;
  grpc::ClientContext* watch_context ABSL_GUARDED_BY(mu) = nullptr;

  std::string WorkerId() {
    absl::MutexLock lock(&mu);
    return worker_id;
  }
  std::string Peer() const { return absl::StrCat("coordinator ", options.coordinator); }
  bool Sleep(absl::Duration d) { return !stop_note.WaitForNotificationWithTimeout(d); }

  absl::Status RegisterOnce() {
    grpc::ClientContext context;
    SetDeadline(context, absl::ToChronoMilliseconds(options.rpc_timeout));
    v1::RegisterRequest request;
    request.set_role(v1::ROLE_ACTOR);
    request.set_name(options.name);
    v1::RegisterResponse response;
    grpc::Status status = coordinator->Register(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status, Peer(), "Register");
    absl::MutexLock lock(&mu);
    worker_id = response.worker_id();
    heartbeat_ms = std::max<uint32_t>(100, response.heartbeat_interval_ms());
    return absl::OkStatus();
  }

  // Registers, retrying transient failures for up to a minute.
  absl::Status Register() {
    const absl::Time deadline = absl::Now() + std::max(absl::Minutes(1), options.rpc_timeout);
    absl::Duration backoff = absl::Milliseconds(200);
    while (true) {
      absl::Status st = RegisterOnce();
      if (st.ok() || stop || absl::Now() + backoff > deadline ||
          (!absl::IsUnavailable(st) && !absl::IsDeadlineExceeded(st))) {
        return st;
      }
      Sleep(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  }

  void HeartbeatLoop() {
    int64_t last_episodes = rollout->episodes_finished();
    int64_t last_tokens = rollout->tokens_generated();
    absl::Time last = absl::Now();
    while (true) {
      uint32_t interval;
      {
        absl::MutexLock lock(&mu);
        interval = heartbeat_ms;
      }
      if (!Sleep(absl::Milliseconds(interval))) return;
      const absl::Time now = absl::Now();
      const double seconds = std::max(1e-3, absl::ToDoubleSeconds(now - last));
      const int64_t episodes = rollout->episodes_finished();
      const int64_t tokens = rollout->tokens_generated();
      v1::HeartbeatRequest request;
      request.set_worker_id(WorkerId());
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
      last = now;
      last_episodes = episodes;
      last_tokens = tokens;
      grpc::ClientContext context;
      SetDeadline(context, absl::ToChronoMilliseconds(options.rpc_timeout));
      v1::HeartbeatResponse response;
      grpc::Status status = coordinator->Heartbeat(&context, request, &response);
      if (status.ok()) continue;
      absl::Status st = FromGrpcStatus(status, Peer(), "Heartbeat");
      Log(options.name, std::string(st.message()));
      if (absl::IsNotFound(st)) {  // expired: register again under a new id
        if (absl::Status re = RegisterOnce(); !re.ok()) Log(options.name, std::string(re.message()));
      }
    }
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
          Log(options.name, absl::StrCat("stage ", event.stage().stage(), " (",
                                         event.stage().name(), "), reason ", event.reason(),
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
  void ReportLeaseWait(const absl::Status& why) {
    const absl::Time now = absl::Now();
    if (!no_lease_since.has_value()) no_lease_since = now;
    const absl::Duration period = std::min(options.weights_timeout, absl::Minutes(1));
    if (now - *no_lease_since < period || now - lease_wait_reported < period) return;
    lease_wait_reported = now;
    const absl::Duration waited = absl::Trunc(now - *no_lease_since, absl::Seconds(1));
    std::string message =
        absl::StrCat("no lease for ", absl::FormatDuration(waited), ": ", why.message());
    if (absl::StrContains(why.message(), "waiting for the learner")) {
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
        no_lease_since.reset();
        episodes += std::max<uint32_t>(1, response.lease().group_size());
        leases.push_back(response.lease());
        continue;
      }
      absl::Status st = FromGrpcStatus(status, Peer(), "AcquireLease");
      if (absl::IsNotFound(st)) {
        Log(options.name, absl::StrCat(st.message(), "; registering again"));
        if (absl::Status re = RegisterOnce(); !re.ok()) Log(options.name, std::string(re.message()));
      } else if (absl::IsFailedPrecondition(st)) {
        if (absl::StrContains(st.message(), "finished")) {
          finished = true;
        } else if (leases.empty()) {
          ReportLeaseWait(st);
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
    grpc::ClientContext context;
    SetDeadline(context, absl::ToChronoMilliseconds(options.rpc_timeout));
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
  return std::unique_ptr<Actor>(new Actor(std::move(impl)));
}

absl::Status Actor::Run() {
  Impl& a = *impl_;
  if (absl::Status st = a.Register(); !st.ok()) return st;
  Log(a.options.name, absl::StrCat("registered as ", a.WorkerId()));
  std::thread heartbeat([&a] { a.HeartbeatLoop(); });
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
  heartbeat.join();
  watch.join();
  absl::StatusOr<v1::PushTrajectoriesResponse> closed = a.pusher->Close(absl::Seconds(10));
  if (!closed.ok()) Log(a.options.name, std::string(closed.status().message()));
  return result;
}

void Actor::Stop() {
  Impl& a = *impl_;
  a.stop = true;
  absl::MutexLock lock(&a.mu);
  if (!a.stop_note.HasBeenNotified()) a.stop_note.Notify();
  if (a.watch_context != nullptr) a.watch_context->TryCancel();
}

int64_t Actor::episodes_pushed() const { return static_cast<int64_t>(impl_->pusher->pushed()); }

}  // namespace envtune
