#include "coordinator/coordinator.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file.h"
#include "common/grpc_status.h"

namespace envtune {
namespace {

// Bounds on what one worker puts into the cluster status (proto: RegisterRequest, Heartbeat).
constexpr size_t kMaxWorkerFieldBytes = 256;  // name, address, each metric name
constexpr size_t kMaxWorkerMetrics = 256;     // metrics per heartbeat
constexpr size_t kMaxWorkerMetricBytes = 16 << 10;  // their names together

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

bool IsRolloutRole(v1::Role role) {
  return role == v1::ROLE_ACTOR || role == v1::ROLE_EVALUATOR;
}

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options,
                                                                  Clock* clock) {
  if (options.stages.empty()) {
    return absl::InvalidArgumentError("curriculum has no stages");
  }
  for (size_t i = 0; i < options.stages.size(); ++i) {
    const StageConfig& stage = options.stages[i];
    std::string where = absl::StrCat("curriculum.stages[", i, "]");
    if (stage.stage != static_cast<int>(i) + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".stage: expected ", i + 1, ", got ", stage.stage));
    }
    if (stage.task_ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".tasks: empty task set"));
    }
    if (stage.reward_kind == v1::REWARD_KIND_UNSPECIFIED ||
        !v1::RewardKind_IsValid(stage.reward_kind)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".reward: unknown reward kind ", stage.reward_kind));
    }
    if (stage.group_size == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".group_size: must be > 0"));
    }
    for (double p : {stage.augment_start, stage.augment_end}) {
      if (!(p >= 0.0 && p <= 1.0)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".augment: probability ", p, " outside [0, 1]"));
      }
    }
    if (stage.advance.consecutive_checks < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".advance.consecutive_checks: must be >= 1"));
    }
  }
  if (options.eval_every_steps > 0 && options.eval_task_ids.empty()) {
    return absl::InvalidArgumentError("evaluation.every_steps > 0 but no evaluation tasks");
  }
  auto coordinator = std::unique_ptr<Coordinator>(new Coordinator(std::move(options), clock));
  const CoordinatorOptions& o = coordinator->options_;
  {
    absl::MutexLock lock(&coordinator->mu_);
    if (!o.ledger_path.empty()) {
      coordinator->ledger_ = std::make_unique<std::ofstream>(o.ledger_path, std::ios::app);
      if (!*coordinator->ledger_) {
        return absl::InvalidArgumentError(
            absl::StrCat("coordinator.ledger_path: cannot open '", o.ledger_path, "'"));
      }
    }
    coordinator->EnterStageLocked(0, v1::STAGE_CHANGE_REASON_INITIAL);
  }
  if (!o.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.state_dir, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("coordinator.state_dir: cannot create '",
                                                     o.state_dir, "': ", ec.message()));
    }
    absl::StatusOr<uint64_t> incarnation = NextIncarnation(o.state_dir);
    if (!incarnation.ok()) return incarnation.status();
    absl::MutexLock lock(&coordinator->mu_);
    coordinator->incarnation_ = *incarnation;
  }
  const int64_t resume_step = o.resume_latest ? NewestStateStep(o.state_dir) : o.resume_step;
  if (resume_step >= 0) {
    absl::StatusOr<v1::CoordinatorState> state = ReadStateFile(o.state_dir, resume_step);
    if (!state.ok()) return state.status();
    if (absl::Status s = coordinator->RestoreState(*state); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("coordinator.resume_step ", resume_step, ": ", s.message()));
    }
  } else if (!o.state_dir.empty()) {
    absl::MutexLock lock(&coordinator->mu_);
    coordinator->PersistLocked();
  }
  return coordinator;
}

Coordinator::Coordinator(CoordinatorOptions options, Clock* clock)
    : options_(std::move(options)), clock_(clock) {}

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& request) {
  if (request.role() == v1::ROLE_UNSPECIFIED || !v1::Role_IsValid(request.role())) {
    return absl::InvalidArgumentError("Register: role must be set (actor, learner, env_server, "
                                      "evaluator)");
  }
  if ((request.role() == v1::ROLE_ENV_SERVER || request.role() == v1::ROLE_LEARNER) &&
      request.address().empty()) {
    return absl::InvalidArgumentError("Register: address is required for servers");
  }
  // Every worker's fields go into each GetStatus reply: bounded, so a few hostile registrations
  // cannot push the reply past gRPC's message limit (two 40 MB names once ended a run).
  if (request.name().size() > kMaxWorkerFieldBytes ||
      request.address().size() > kMaxWorkerFieldBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Register: name and address are limited to ", kMaxWorkerFieldBytes, " bytes (got ",
        request.name().size(), " and ", request.address().size(), ")"));
  }
  std::vector<v1::StageEvent> events;
  v1::RegisterResponse response;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    if (workers_.size() >= options_.max_workers) {
      return absl::ResourceExhaustedError(
          absl::StrCat("Register: cluster full (", workers_.size(),
                       " workers registered, coordinator.max_workers = ", options_.max_workers,
                       "); a worker that stops heartbeating frees its slot after ",
                       absl::FormatDuration(options_.worker_expiry)));
    }
    if (request.role() == v1::ROLE_ENV_SERVER) {
      // A server restarted on the same address replaces its earlier registration.
      for (auto it = workers_.begin(); it != workers_.end();) {
        const bool same = it->second.status.role() == v1::ROLE_ENV_SERVER &&
                          it->second.status.address() == request.address();
        it = same ? workers_.erase(it) : std::next(it);
      }
      ++fleet_generation_;
    }
    if (request.role() == v1::ROLE_LEARNER) {
      // A learner (re)starting has none of the groups completed so far in its queue: stop
      // waiting for them. Groups still being rolled out will reach it.
      std::erase_if(groups_in_flight_, [](const auto& entry) { return entry.second.completed; });
    }
    // Unique across restarts sharing a state_dir: w<n>-i<incarnation> (w<n> without one).
    std::string id = incarnation_ > 0 ? absl::StrCat("w", next_worker_++, "-i", incarnation_)
                                      : absl::StrCat("w", next_worker_++);
    Worker& worker = workers_[id];
    worker.status.set_worker_id(id);
    worker.status.set_role(request.role());
    worker.status.set_name(request.name().empty() ? id : request.name());
    worker.status.set_address(request.address());
    if (request.role() == v1::ROLE_ENV_SERVER) {
      worker.status.set_serving_state(v1::SERVING_STATE_SERVING);
    }
    worker.sequence = next_worker_;
    worker.last_heartbeat = clock_->Now();
    worker.status.set_last_heartbeat_unix_ms(absl::ToUnixMillis(worker.last_heartbeat));
    response.set_worker_id(id);
    response.set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
    response.set_expiry_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.worker_expiry)));
  }
  Broadcast(events);
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(
    const v1::HeartbeatRequest& request) {
  if (request.worker_id().empty()) {
    return absl::InvalidArgumentError("Heartbeat: worker_id is empty");
  }
  if (!v1::ServingState_IsValid(request.serving_state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Heartbeat: serving_state ", request.serving_state(), " is not a ServingState"));
  }
  if (request.metrics_size() > static_cast<int>(kMaxWorkerMetrics)) {
    return absl::InvalidArgumentError(absl::StrCat("Heartbeat: at most ", kMaxWorkerMetrics,
                                                   " metrics, got ", request.metrics_size()));
  }
  size_t metric_bytes = 0;
  for (const v1::Metric& metric : request.metrics()) {
    if (metric.name().size() > kMaxWorkerFieldBytes) {
      return absl::InvalidArgumentError(absl::StrCat("Heartbeat: metric names are limited to ",
                                                     kMaxWorkerFieldBytes, " bytes"));
    }
    metric_bytes += metric.name().size();
  }
  // With max_workers workers at these bounds a GetStatus reply stays far below gRPC's 64 MiB.
  if (metric_bytes > kMaxWorkerMetricBytes) {
    return absl::InvalidArgumentError(absl::StrCat("Heartbeat: metric names total ", metric_bytes,
                                                   " bytes (at most ", kMaxWorkerMetricBytes, ")"));
  }
  std::vector<v1::StageEvent> events;
  v1::HeartbeatResponse response;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    auto it = workers_.find(request.worker_id());
    if (it == workers_.end()) {
      return absl::NotFoundError(absl::StrCat("Heartbeat: unknown worker '", request.worker_id(),
                                              "' (expired? register again)"));
    }
    Worker& worker = it->second;
    worker.last_heartbeat = clock_->Now();
    worker.status.set_last_heartbeat_unix_ms(absl::ToUnixMillis(worker.last_heartbeat));
    worker.status.set_episodes_per_s(request.episodes_per_s());
    worker.status.set_tokens_per_s(request.tokens_per_s());
    worker.status.set_policy_version(request.policy_version());
    *worker.status.mutable_metrics() = request.metrics();
    if (worker.status.role() == v1::ROLE_LEARNER) {
      UpdateLearnerConsumptionLocked(request.consumed_leases(), request.batch_groups());
    }
    if (worker.status.role() == v1::ROLE_ENV_SERVER) {
      *worker.status.mutable_env_load() = request.env_load();
      response.set_drain(worker.drain_requested);
      if (request.serving_state() == v1::SERVING_STATE_STOPPED) {
        EraseWorkerLocked(it);
      } else if (request.serving_state() == v1::SERVING_STATE_DRAINING &&
                 worker.status.serving_state() != v1::SERVING_STATE_DRAINING) {
        worker.status.set_serving_state(v1::SERVING_STATE_DRAINING);
        ++fleet_generation_;
      }
    }
    response.set_stage(options_.stages[stage_index_].stage);
    response.set_paused(paused_);
    response.set_policy_version(policy_version_);
  }
  Broadcast(events);
  return response;
}

uint64_t Coordinator::GroupsInFlightLocked() const { return groups_in_flight_.size(); }

uint64_t Coordinator::MaxGroupsInFlightLocked() const {
  if (options_.max_inflight_groups > 0) return options_.max_inflight_groups;
  return (options_.max_policy_staleness + 1) * learner_batch_groups_;
}

void Coordinator::UpdateLearnerConsumptionLocked(
    const google::protobuf::RepeatedPtrField<std::string>& consumed_leases,
    uint32_t batch_groups) {
  if (batch_groups > 0) learner_batch_groups_ = batch_groups;
  for (const std::string& lease_id : consumed_leases) groups_in_flight_.erase(lease_id);
}

double Coordinator::AugmentProbabilityLocked() const {
  const StageConfig& stage = options_.stages[stage_index_];
  if (stage.anneal_steps <= 0) return stage.augment_start;
  double progress = static_cast<double>(learner_step_ - stage_start_step_) /
                    static_cast<double>(stage.anneal_steps);
  progress = std::clamp(progress, 0.0, 1.0);
  return stage.augment_start + (stage.augment_end - stage.augment_start) * progress;
}

v1::StageOptions Coordinator::StageOptionsLocked() const {
  const StageConfig& stage = options_.stages[stage_index_];
  v1::StageOptions out;
  out.set_stage(stage.stage);
  out.set_name(stage.name);
  out.set_reward_kind(stage.reward_kind);
  out.set_augment_probability(AugmentProbabilityLocked());
  out.set_max_steps_per_turn(stage.max_steps_per_turn);
  out.set_max_new_tokens(stage.max_new_tokens);
  out.set_max_episode_tokens(stage.max_episode_tokens);
  return out;
}

v1::StageEvent Coordinator::StageEventLocked(v1::StageChangeReason reason) const {
  v1::StageEvent event;
  *event.mutable_stage() = StageOptionsLocked();
  event.set_paused(paused_);
  event.set_finished(finished_);
  event.set_learner_step(learner_step_);
  event.set_reason(reason);
  return event;
}

v1::StageEvent Coordinator::EnterStageLocked(size_t index, v1::StageChangeReason reason) {
  stage_index_ = index;
  stage_start_step_ = learner_step_;
  metric_streak_ = 0;
  epoch_order_.clear();
  epoch_cursor_ = 0;
  RecordMetricLocked("stage", static_cast<double>(options_.stages[index].stage), learner_step_);
  return StageEventLocked(reason);
}

std::optional<Coordinator::PendingTask> Coordinator::NextTaskLocked() {
  if (!eval_queue_.empty()) {
    PendingTask task = eval_queue_.front();
    eval_queue_.pop_front();
    return task;
  }
  if (!reissue_.empty()) {
    PendingTask task = reissue_.front();
    reissue_.pop_front();
    return task;
  }
  if (epoch_cursor_ >= epoch_order_.size()) {
    // A new pass over the stage's tasks, in a seeded order.
    epoch_order_ = options_.stages[stage_index_].task_ids;
    std::mt19937_64 rng(options_.seed * 1000003ULL + stage_index_ * 7919ULL + epoch_);
    std::shuffle(epoch_order_.begin(), epoch_order_.end(), rng);
    ++epoch_;
    epoch_cursor_ = 0;
  }
  return PendingTask{epoch_order_[epoch_cursor_++], false, 0};
}

namespace {

v1::AcquireLeaseResponse NoLease(v1::NoLeaseReason reason, std::string detail) {
  v1::AcquireLeaseResponse response;
  response.set_no_lease(reason);
  response.set_detail(std::move(detail));
  return response;
}

}  // namespace

std::optional<std::string> Coordinator::LeaseQuotaLocked(const std::string& worker_id,
                                                          bool eval_only) const {
  size_t held = 0, held_training = 0;
  for (const auto& [id, outstanding] : leases_) {
    if (outstanding.worker_id != worker_id) continue;
    ++held;
    held_training += !outstanding.lease.evaluation();
  }
  if (held >= options_.max_leases_per_worker) {
    return absl::StrCat("worker '", worker_id, "' holds ", held,
                        " leases (coordinator.max_leases_per_worker = ",
                        options_.max_leases_per_worker, ")");
  }
  // Fair share of the flow-control window: with the window bounded, an actor holding
  // ceil(window / live actors) uncompleted training leases waits for the others, so one actor
  // cannot take every slot and starve the rest until lease_timeout. Completed leases do not
  // count, so a fast actor still takes as much work as it finishes.
  const uint64_t window = MaxGroupsInFlightLocked();
  if (!options_.lease_fair_share || window == 0 || eval_only || !eval_queue_.empty()) {
    return std::nullopt;
  }
  uint64_t actors = 0;
  for (const auto& [id, worker] : workers_) actors += worker.status.role() == v1::ROLE_ACTOR;
  actors = std::max<uint64_t>(actors, 1);
  const uint64_t share = (window + actors - 1) / actors;
  if (held_training >= share) {
    return absl::StrCat("worker '", worker_id, "' holds ", held_training,
                        " uncompleted training leases, its fair share of ", window,
                        " groups in flight over ", actors, " actors (coordinator.lease_fair_share)");
  }
  return std::nullopt;
}

absl::StatusOr<v1::AcquireLeaseResponse> Coordinator::AcquireLease(
    const v1::AcquireLeaseRequest& request) {
  if (request.worker_id().empty()) {
    return absl::InvalidArgumentError("AcquireLease: worker_id is empty");
  }
  std::vector<v1::StageEvent> events;
  absl::StatusOr<v1::AcquireLeaseResponse> response;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    response = AcquireLeaseLocked(request);
  }
  Broadcast(events);  // the sweep's stage changes, whatever the answer
  return response;
}

absl::StatusOr<v1::AcquireLeaseResponse> Coordinator::AcquireLeaseLocked(
    const v1::AcquireLeaseRequest& request) {
  v1::AcquireLeaseResponse response;
  v1::Lease& lease = *response.mutable_lease();
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("AcquireLease: unknown worker '", request.worker_id(),
                                            "' (expired? register again)"));
  }
  if (!IsRolloutRole(it->second.status.role())) {
    return absl::InvalidArgumentError(
        absl::StrCat("AcquireLease: worker '", request.worker_id(), "' is not an actor"));
  }
  if (finished_) return NoLease(v1::NO_LEASE_REASON_FINISHED, "the curriculum finished");
  bool eval_only = paused_;
  if (paused_ && eval_queue_.empty()) {
    return NoLease(v1::NO_LEASE_REASON_PAUSED, "leases are paused");
  }
  const uint64_t max_in_flight = MaxGroupsInFlightLocked();
  const bool learner_busy =
      eval_queue_.empty() && max_in_flight > 0 && GroupsInFlightLocked() >= max_in_flight;
  if (learner_busy) {
    return NoLease(v1::NO_LEASE_REASON_LEARNER_BUSY,
                   absl::StrCat(GroupsInFlightLocked(), " groups in flight (max ", max_in_flight,
                                "), waiting for the learner"));
  }
  if (std::optional<std::string> quota = LeaseQuotaLocked(request.worker_id(), eval_only)) {
    return NoLease(v1::NO_LEASE_REASON_WORKER_QUOTA, *std::move(quota));
  }
  bool replayed = false;
  if (!replay_.empty() && !eval_only && eval_queue_.empty()) {
    // A restored run: the leases the learner had not consumed go out again unchanged.
    lease = replay_.front();
    replay_.pop_front();
    replayed = true;
    lease.set_min_policy_version(policy_version_ > options_.max_policy_staleness
                                     ? policy_version_ - options_.max_policy_staleness
                                     : 0);
  } else {
    std::optional<PendingTask> task = NextTaskLocked();
    if (!task.has_value() || (eval_only && !task->evaluation)) {
      return NoLease(v1::NO_LEASE_REASON_NO_TASKS, "no task to lease");
    }
    const StageConfig& stage = options_.stages[stage_index_];
    lease.set_lease_id(absl::StrCat("L", next_lease_++));
    lease.set_task_id(task->task_id);
    lease.set_evaluation(task->evaluation);
    *lease.mutable_stage() = StageOptionsLocked();
    if (task->evaluation) {
      // Evaluation: one greedy sample against the standard (BFCL) environment.
      lease.set_group_size(1);
      lease.mutable_stage()->set_augment_probability(0.0);
      lease.set_min_policy_version(policy_version_);
    } else {
      lease.set_group_size(stage.group_size);
      lease.set_min_policy_version(policy_version_ > options_.max_policy_staleness
                                       ? policy_version_ - options_.max_policy_staleness
                                       : 0);
    }
    lease.set_seed(options_.seed * 0x9E3779B97F4A7C15ULL + next_lease_);
  }
  absl::Time now = clock_->Now();
  lease.set_deadline_unix_ms(absl::ToUnixMillis(now + options_.lease_timeout));
  leases_[lease.lease_id()] = OutstandingLease{lease, request.worker_id()};
  if (!lease.evaluation()) groups_in_flight_[lease.lease_id()] = InFlightGroup{false, lease};
  LedgerLocked(absl::StrCat(
      "{\"event\":\"issued\",\"lease\":\"", lease.lease_id(), "\",\"task\":\"", lease.task_id(),
      "\",\"stage\":", lease.stage().stage(), ",\"group_size\":", lease.group_size(),
      ",\"min_version\":", lease.min_policy_version(),
      ",\"eval\":", lease.evaluation() ? "true" : "false", replayed ? ",\"replayed\":true" : "",
      ",\"worker\":\"", request.worker_id(), "\"}"));
  return response;
}

absl::Status Coordinator::CompleteLease(const v1::CompleteLeaseRequest& request) {
  if (request.lease_id().empty()) {
    return absl::InvalidArgumentError("CompleteLease: lease_id is empty");
  }
  // The env server's rewards lie in [0, 2] (stage 1: format + tool-call scores, each in [0, 1];
  // progress rewards in [0, 1]); statistics outside sane ranges are refused, never averaged in.
  for (int i = 0; i < request.episodes_size(); ++i) {
    const v1::EpisodeStats& e = request.episodes(i);
    auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
    const char* bad = !in(e.reward(), -2, 2)             ? "reward outside [-2, 2]"
                      : !in(e.progress(), 0, 1)          ? "progress outside [0, 1]"
                      : !in(e.format_score(), 0, 1)      ? "format_score outside [0, 1]"
                      : !in(e.tool_call_score(), 0, 1)   ? "tool_call_score outside [0, 1]"
                      : e.tokens() > (1u << 24) || e.generated_tokens() > (1u << 24)
                          ? "token counts above 2^24"
                          : nullptr;
    if (bad != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("CompleteLease: episode ", i, " of lease ", Excerpt(request.lease_id()),
                       ": ", bad));
    }
  }
  std::vector<v1::StageEvent> events;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    auto it = leases_.find(request.lease_id());
    if (it == leases_.end()) {
      if (aborted_leases_.count(request.lease_id()) > 0) {
        return absl::AbortedError(absl::StrCat("CompleteLease: lease ", request.lease_id(),
                                               " was re-issued; drop its episodes"));
      }
      return absl::NotFoundError(
          absl::StrCat("CompleteLease: unknown lease '", Excerpt(request.lease_id()), "'"));
    }
    const OutstandingLease& outstanding = it->second;
    if (outstanding.worker_id != request.worker_id()) {
      return absl::InvalidArgumentError(absl::StrCat("CompleteLease: lease ", request.lease_id(),
                                                     " belongs to another worker"));
    }
    if (static_cast<uint32_t>(request.episodes_size()) != outstanding.lease.group_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CompleteLease: lease ", request.lease_id(), " has group size ",
          outstanding.lease.group_size(), " but ", request.episodes_size(), " episodes reported"));
    }
    const v1::Lease lease = outstanding.lease;
    if (auto g = groups_in_flight_.find(request.lease_id()); g != groups_in_flight_.end()) {
      g->second.completed = true;
    }
    leases_.erase(it);
    LedgerLocked(absl::StrCat("{\"event\":\"completed\",\"lease\":\"", lease.lease_id(),
                              "\",\"episodes\":", request.episodes_size(), "}"));
    episodes_completed_ += request.episodes_size();
    int64_t step = learner_step_;
    if (lease.evaluation()) {
      for (const v1::EpisodeStats& episode : request.episodes()) eval_valid_ += episode.valid();
      if (eval_pending_ > 0 && --eval_pending_ == 0 && eval_total_ > 0) {
        double accuracy = static_cast<double>(eval_valid_) / static_cast<double>(eval_total_);
        RecordMetricLocked("eval/accuracy", accuracy, step);
        CheckMetricRuleLocked("eval/accuracy", accuracy, &events);
      }
    } else {
      double reward = 0, progress = 0, format = 0, tool = 0;
      int counted = 0;
      for (const v1::EpisodeStats& episode : request.episodes()) {
        if (episode.failed()) continue;
        reward += episode.reward();
        progress += episode.progress();
        format += episode.format_score();
        tool += episode.tool_call_score();
        ++counted;
      }
      if (counted > 0) {
        std::string prefix = absl::StrCat("stage", lease.stage().stage(), "/");
        RecordMetricLocked(prefix + "reward", reward / counted, step);
        RecordMetricLocked(prefix + "progress", progress / counted, step);
        RecordMetricLocked(prefix + "format_score", format / counted, step);
        RecordMetricLocked(prefix + "tool_call_score", tool / counted, step);
      }
    }
  }
  Broadcast(events);
  return absl::OkStatus();
}

void Coordinator::CheckMetricRuleLocked(const std::string& name, double value,
                                        std::vector<v1::StageEvent>* events) {
  if (finished_) return;
  const AdvanceRule& rule = options_.stages[stage_index_].advance;
  if (rule.metric.empty() || rule.metric != name) return;
  metric_streak_ = value >= rule.threshold ? metric_streak_ + 1 : 0;
  if (metric_streak_ < rule.consecutive_checks) return;
  if (stage_index_ + 1 < options_.stages.size()) {
    events->push_back(EnterStageLocked(stage_index_ + 1, v1::STAGE_CHANGE_REASON_METRIC));
  } else {
    finished_ = true;
    events->push_back(StageEventLocked(v1::STAGE_CHANGE_REASON_METRIC));
  }
}

absl::StatusOr<v1::ReportLearnerStepResponse> Coordinator::ReportLearnerStep(
    const v1::ReportLearnerStepRequest& request) {
  std::vector<v1::StageEvent> events;
  v1::ReportLearnerStepResponse response;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    auto it = workers_.find(request.worker_id());
    if (it == workers_.end()) {
      return absl::NotFoundError(absl::StrCat("ReportLearnerStep: unknown worker '",
                                              request.worker_id(), "' (register again)"));
    }
    if (it->second.status.role() != v1::ROLE_LEARNER) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ReportLearnerStep: worker '", request.worker_id(), "' is not the learner"));
    }
    if (static_cast<int64_t>(request.step()) < learner_step_) {
      return absl::InvalidArgumentError(absl::StrCat("ReportLearnerStep: step ", request.step(),
                                                     " is older than ", learner_step_));
    }
    it->second.last_heartbeat = clock_->Now();
    it->second.status.set_policy_version(request.policy_version());
    UpdateLearnerConsumptionLocked(request.consumed_leases(), request.batch_groups());
    learner_step_ = static_cast<int64_t>(request.step());
    policy_version_ = std::max<uint64_t>(policy_version_, request.policy_version());
    for (const v1::Metric& metric : request.metrics()) {
      RecordMetricLocked(metric.name(), metric.value(), learner_step_);
    }
    if (!finished_) {
      for (const v1::Metric& metric : request.metrics()) {
        CheckMetricRuleLocked(metric.name(), metric.value(), &events);
      }
      const AdvanceRule& rule = options_.stages[stage_index_].advance;
      if (!finished_ && rule.after_learner_steps > 0 &&
          learner_step_ - stage_start_step_ >= rule.after_learner_steps) {
        if (stage_index_ + 1 < options_.stages.size()) {
          events.push_back(EnterStageLocked(stage_index_ + 1, v1::STAGE_CHANGE_REASON_STEPS));
        } else {
          finished_ = true;
          events.push_back(StageEventLocked(v1::STAGE_CHANGE_REASON_STEPS));
        }
      }
      if (!finished_ && options_.max_learner_steps > 0 &&
          learner_step_ >= options_.max_learner_steps) {
        finished_ = true;
        events.push_back(StageEventLocked(v1::STAGE_CHANGE_REASON_STEPS));
      }
      if (options_.eval_every_steps > 0 && eval_pending_ == 0 &&
          learner_step_ - last_eval_step_ >= options_.eval_every_steps) {
        last_eval_step_ = learner_step_;
        eval_total_ = options_.eval_task_ids.size();
        eval_pending_ = eval_total_;
        eval_valid_ = 0;
        for (const std::string& task : options_.eval_task_ids) {
          eval_queue_.push_back(PendingTask{task, true, 0});
        }
      }
    }
    response.set_stage(options_.stages[stage_index_].stage);
    PersistLocked();
  }
  Broadcast(events);
  return response;
}

void Coordinator::SweepLocked(std::vector<v1::StageEvent>* events) {
  absl::Time now = clock_->Now();
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (now - it->second.last_heartbeat > options_.worker_expiry) {
      auto expired = it++;
      EraseWorkerLocked(expired);
    } else {
      ++it;
    }
  }
  for (auto it = leases_.begin(); it != leases_.end();) {
    const OutstandingLease& outstanding = it->second;
    bool owner_gone = workers_.count(outstanding.worker_id) == 0;
    bool expired = absl::FromUnixMillis(outstanding.lease.deadline_unix_ms()) < now;
    if (owner_gone || expired) {
      aborted_leases_[it->first] = true;
      ++leases_reissued_;
      groups_in_flight_.erase(it->first);
      LedgerLocked(absl::StrCat("{\"event\":\"reissued\",\"lease\":\"", it->first, "\"}"));
      // Re-issued leases go first, so a dead actor's work is redone before new work.
      reissue_.push_front(PendingTask{outstanding.lease.task_id(), outstanding.lease.evaluation(),
                                      outstanding.lease.stage().stage()});
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  (void)events;
}

void Coordinator::Sweep() {
  std::vector<v1::StageEvent> events;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
  }
  Broadcast(events);
}

void Coordinator::EraseWorkerLocked(std::map<std::string, Worker>::iterator it) {
  if (it->second.status.role() == v1::ROLE_ENV_SERVER) ++fleet_generation_;
  workers_.erase(it);
}

v1::ListEnvServersResponse Coordinator::ListEnvServers() {
  std::vector<v1::StageEvent> events;
  v1::ListEnvServersResponse response;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    std::vector<const Worker*> fleet;
    for (const auto& [id, worker] : workers_) {
      if (worker.status.role() == v1::ROLE_ENV_SERVER) fleet.push_back(&worker);
    }
    std::sort(fleet.begin(), fleet.end(),
              [](const Worker* a, const Worker* b) { return a->sequence < b->sequence; });
    for (const Worker* worker : fleet) *response.add_env_servers() = worker->status;
    response.set_generation(fleet_generation_);
  }
  Broadcast(events);
  return response;
}

absl::StatusOr<v1::WorkerStatus> Coordinator::DrainEnvServer(
    const v1::DrainEnvServerRequest& request) {
  if (request.worker_id().empty() == request.address().empty()) {
    return absl::InvalidArgumentError(
        "DrainEnvServer: give exactly one of worker_id and address");
  }
  std::vector<v1::StageEvent> events;
  v1::WorkerStatus status;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    auto it = workers_.end();
    if (!request.worker_id().empty()) {
      it = workers_.find(request.worker_id());
    } else {
      it = std::find_if(workers_.begin(), workers_.end(), [&](const auto& entry) {
        return entry.second.status.role() == v1::ROLE_ENV_SERVER &&
               entry.second.status.address() == request.address();
      });
    }
    const std::string which = request.worker_id().empty()
                                  ? absl::StrCat("address '", request.address(), "'")
                                  : absl::StrCat("worker '", request.worker_id(), "'");
    if (it == workers_.end()) {
      return absl::NotFoundError(absl::StrCat("DrainEnvServer: no live env server at ", which));
    }
    if (it->second.status.role() != v1::ROLE_ENV_SERVER) {
      return absl::InvalidArgumentError(
          absl::StrCat("DrainEnvServer: ", which, " is not an env server"));
    }
    Worker& worker = it->second;
    worker.drain_requested = true;
    if (worker.status.serving_state() != v1::SERVING_STATE_DRAINING) {
      worker.status.set_serving_state(v1::SERVING_STATE_DRAINING);
      ++fleet_generation_;
    }
    status = worker.status;
  }
  Broadcast(events);
  return status;
}

void Coordinator::LedgerLocked(const std::string& json_line) {
  if (ledger_ == nullptr) return;
  *ledger_ << json_line << "\n";
  ledger_->flush();
}

void Coordinator::RecordMetricLocked(const std::string& name, double value, int64_t step) {
  v1::Metric metric;
  metric.set_name(name);
  metric.set_value(value);
  metric.set_step(step);
  latest_metrics_[name] = metric;
  metrics_.push_back(std::move(metric));
  while (metrics_.size() > options_.metric_history) metrics_.pop_front();
}

v1::ClusterStatus Coordinator::Status() {
  std::vector<v1::StageEvent> events;
  v1::ClusterStatus status;
  {
    absl::MutexLock lock(&mu_);
    SweepLocked(&events);
    status.set_stage(options_.stages[stage_index_].stage);
    status.set_stage_name(options_.stages[stage_index_].name);
    status.set_paused(paused_);
    status.set_finished(finished_);
    status.set_learner_step(learner_step_);
    status.set_policy_version(policy_version_);
    for (const auto& [id, worker] : workers_) *status.add_workers() = worker.status;
    for (const auto& [name, metric] : latest_metrics_) *status.add_metrics() = metric;
    status.set_leases_outstanding(leases_.size());
    status.set_episodes_completed(episodes_completed_);
    status.set_leases_reissued(leases_reissued_);
    status.set_groups_in_flight(GroupsInFlightLocked());
    status.set_max_groups_in_flight(MaxGroupsInFlightLocked());
    status.set_env_fleet_generation(fleet_generation_);
  }
  Broadcast(events);
  return status;
}

absl::StatusOr<v1::StageEvent> Coordinator::SetStage(uint32_t stage) {
  v1::StageEvent event;
  {
    absl::MutexLock lock(&mu_);
    if (stage < 1 || stage > options_.stages.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SetStage: stage ", stage, " outside 1..", options_.stages.size()));
    }
    finished_ = false;
    event = EnterStageLocked(stage - 1, v1::STAGE_CHANGE_REASON_ADMIN);
  }
  Broadcast({event});
  return event;
}

v1::StageEvent Coordinator::Pause() {
  v1::StageEvent event;
  {
    absl::MutexLock lock(&mu_);
    paused_ = true;
    event = StageEventLocked(v1::STAGE_CHANGE_REASON_PAUSE);
  }
  Broadcast({event});
  return event;
}

v1::StageEvent Coordinator::Resume() {
  v1::StageEvent event;
  {
    absl::MutexLock lock(&mu_);
    paused_ = false;
    event = StageEventLocked(v1::STAGE_CHANGE_REASON_RESUME);
  }
  Broadcast({event});
  return event;
}

v1::StageEvent Coordinator::CurrentStageEvent() {
  absl::MutexLock lock(&mu_);
  return StageEventLocked(v1::STAGE_CHANGE_REASON_INITIAL);
}

int Coordinator::Subscribe(StageListener listener) {
  absl::MutexLock lock(&listeners_mu_);
  int id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void Coordinator::Unsubscribe(int id) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

void Coordinator::Broadcast(const std::vector<v1::StageEvent>& events) {
  if (events.empty()) return;
  absl::MutexLock lock(&listeners_mu_);
  for (const v1::StageEvent& event : events) {
    for (auto& [id, listener] : listeners_) listener(event);
  }
}

namespace {

std::string StateFileName(int64_t step) { return absl::StrCat("step-", step, ".binpb"); }

v1::PendingTaskState ToState(const std::string& task_id, bool evaluation, uint32_t stage) {
  v1::PendingTaskState out;
  out.set_task_id(task_id);
  out.set_evaluation(evaluation);
  out.set_stage(stage);
  return out;
}

}  // namespace

v1::CoordinatorState Coordinator::SnapshotState() {
  absl::MutexLock lock(&mu_);
  return SnapshotStateLocked();
}

v1::CoordinatorState Coordinator::SnapshotStateLocked() const {
  v1::CoordinatorState st;
  st.set_format(1);
  st.set_seed(options_.seed);
  st.set_stage_count(static_cast<uint32_t>(options_.stages.size()));
  st.set_stage_index(stage_index_);
  st.set_stage_start_step(stage_start_step_);
  st.set_metric_streak(metric_streak_);
  st.set_paused(paused_);
  st.set_finished(finished_);
  st.set_learner_step(learner_step_);
  st.set_policy_version(policy_version_);
  st.set_last_eval_step(last_eval_step_);
  for (const std::string& task : epoch_order_) st.add_epoch_order(task);
  st.set_epoch_cursor(epoch_cursor_);
  st.set_epoch(epoch_);
  st.set_next_lease(next_lease_);
  st.set_episodes_completed(episodes_completed_);
  st.set_leases_reissued(leases_reissued_);
  for (const PendingTask& t : reissue_) {
    *st.add_reissue() = ToState(t.task_id, t.evaluation, t.stage);
  }
  for (const PendingTask& t : eval_queue_) {
    *st.add_eval_queue() = ToState(t.task_id, t.evaluation, t.stage);
  }
  // Evaluation leases still out are evaluated again after a restore.
  for (const auto& [id, outstanding] : leases_) {
    if (outstanding.lease.evaluation()) {
      *st.add_eval_queue() = ToState(outstanding.lease.task_id(), true, 0);
    }
  }
  st.set_eval_pending(eval_pending_);
  st.set_eval_total(eval_total_);
  st.set_eval_valid(eval_valid_);
  // Lease ids are "L<n>": replayed in issue order.
  std::vector<const v1::Lease*> replay;
  for (const v1::Lease& lease : replay_) replay.push_back(&lease);
  for (const auto& [id, group] : groups_in_flight_) replay.push_back(&group.lease);
  std::stable_sort(replay.begin(), replay.end(), [](const v1::Lease* a, const v1::Lease* b) {
    return a->lease_id().size() != b->lease_id().size()
               ? a->lease_id().size() < b->lease_id().size()
               : a->lease_id() < b->lease_id();
  });
  for (const v1::Lease* lease : replay) *st.add_replay() = *lease;
  st.set_learner_batch_groups(learner_batch_groups_);
  for (const v1::Metric& m : metrics_) *st.add_metrics() = m;
  for (const auto& [name, m] : latest_metrics_) *st.add_latest_metrics() = m;
  return st;
}

absl::Status Coordinator::RestoreState(const v1::CoordinatorState& st) {
  if (st.format() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("coordinator state: format ", st.format(),
                                                   " is not 1"));
  }
  absl::MutexLock lock(&mu_);
  if (st.seed() != options_.seed || st.stage_count() != options_.stages.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator state: written with seed ", st.seed(), " and ", st.stage_count(),
        " stages; this coordinator has seed ", options_.seed, " and ", options_.stages.size(),
        " stages (resume with the run's curriculum)"));
  }
  if (st.stage_index() >= options_.stages.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator state: stage_index ", st.stage_index(), " out of range"));
  }
  if (st.epoch_cursor() > static_cast<uint64_t>(st.epoch_order_size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator state: epoch_cursor ", st.epoch_cursor(), " beyond the ",
        st.epoch_order_size(), " tasks of the pass"));
  }
  if (st.learner_step() < 0 || st.stage_start_step() < 0 ||
      st.stage_start_step() > st.learner_step() || st.next_lease() < 1 ||
      st.eval_pending() > st.eval_total() || st.eval_valid() > st.eval_total()) {
    return absl::InvalidArgumentError("coordinator state: inconsistent step or lease counters");
  }
  const StageConfig& stage = options_.stages[st.stage_index()];
  const std::set<std::string> tasks(stage.task_ids.begin(), stage.task_ids.end());
  for (const std::string& task : st.epoch_order()) {
    if (tasks.count(task) == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "coordinator state: task '", task.substr(0, 256), "' of the saved pass is not in stage ",
          stage.stage, "'s tasks (the curriculum changed since the state was written)"));
    }
  }
  for (const v1::Lease& lease : st.replay()) {
    if (lease.lease_id().empty() || lease.task_id().empty() || lease.group_size() == 0 ||
        lease.evaluation()) {
      return absl::InvalidArgumentError("coordinator state: a malformed lease to replay");
    }
  }
  for (const auto* queue : {&st.reissue(), &st.eval_queue()}) {
    for (const v1::PendingTaskState& t : *queue) {
      if (t.task_id().empty() || t.stage() > options_.stages.size()) {
        return absl::InvalidArgumentError("coordinator state: a malformed queued task");
      }
    }
  }
  if (st.eval_queue_size() > 0 && options_.eval_every_steps <= 0) {
    return absl::FailedPreconditionError(
        "coordinator state: evaluation tasks queued, but evaluation is off in this config");
  }
  // Checked: apply.
  stage_index_ = st.stage_index();
  stage_start_step_ = st.stage_start_step();
  metric_streak_ = st.metric_streak();
  paused_ = st.paused();
  finished_ = st.finished();
  learner_step_ = st.learner_step();
  policy_version_ = st.policy_version();
  last_eval_step_ = st.last_eval_step();
  epoch_order_.assign(st.epoch_order().begin(), st.epoch_order().end());
  epoch_cursor_ = st.epoch_cursor();
  epoch_ = st.epoch();
  next_lease_ = st.next_lease();
  episodes_completed_ = st.episodes_completed();
  leases_reissued_ = st.leases_reissued();
  reissue_.clear();
  for (const v1::PendingTaskState& t : st.reissue()) {
    reissue_.push_back(PendingTask{t.task_id(), t.evaluation(), t.stage()});
  }
  eval_queue_.clear();
  for (const v1::PendingTaskState& t : st.eval_queue()) {
    eval_queue_.push_back(PendingTask{t.task_id(), true, t.stage()});
  }
  eval_pending_ = st.eval_pending();
  eval_total_ = st.eval_total();
  eval_valid_ = st.eval_valid();
  replay_.assign(st.replay().begin(), st.replay().end());
  leases_.clear();
  groups_in_flight_.clear();
  aborted_leases_.clear();
  learner_batch_groups_ = st.learner_batch_groups();
  metrics_.clear();
  for (const v1::Metric& m : st.metrics()) {
    metrics_.push_back(m);
    while (metrics_.size() > options_.metric_history) metrics_.pop_front();
  }
  latest_metrics_.clear();
  for (const v1::Metric& m : st.latest_metrics()) latest_metrics_[m.name()] = m;
  return absl::OkStatus();
}

absl::StatusOr<v1::CoordinatorState> Coordinator::ReadStateFile(const std::string& state_dir,
                                                                int64_t step) {
  const std::string path = absl::StrCat(state_dir, "/", StateFileName(step));
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) {
    return absl::NotFoundError(absl::StrCat("no coordinator state for learner step ", step,
                                            " (", path, " cannot be read)"));
  }
  v1::CoordinatorState state;
  if (!state.ParseFromString(*bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a coordinator state"));
  }
  if (state.learner_step() != step) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds learner step ",
                                                   state.learner_step(), ", not ", step));
  }
  return state;
}

absl::StatusOr<uint64_t> Coordinator::NextIncarnation(const std::string& state_dir) {
  const std::string path = absl::StrCat(state_dir, "/incarnation");
  uint64_t previous = 0;
  if (std::filesystem::exists(path)) {
    absl::StatusOr<std::string> text = ReadFileToString(path);
    if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &previous)) {
      return absl::FailedPreconditionError(absl::StrCat(
          path,
          ": not an incarnation number (the coordinator counts its starts there, so worker "
          "ids never repeat; restore or remove the file)"));
    }
  }
  const uint64_t next = previous + 1;
  if (absl::Status s = WriteFileAtomic(path, absl::StrCat(next, "\n")); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("coordinator.state_dir: cannot record the "
                                               "incarnation: ",
                                               s.message()));
  }
  return next;
}

int64_t Coordinator::NewestStateStep(const std::string& state_dir) {
  int64_t newest = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (absl::StartsWith(name, "step-") && absl::EndsWith(name, ".binpb") &&
        absl::SimpleAtoi(name.substr(5, name.size() - 5 - 6), &step)) {
      newest = std::max(newest, step);
    }
  }
  return newest;
}

void Coordinator::PersistLocked() {
  if (options_.state_dir.empty()) return;
  const std::string bytes = SnapshotStateLocked().SerializeAsString();
  const std::string path = absl::StrCat(options_.state_dir, "/", StateFileName(learner_step_));
  if (absl::Status s = WriteFileAtomic(path, bytes); !s.ok()) {
    std::cerr << "coordinator: cannot persist its state: " << s.message() << std::endl;
    return;
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.state_dir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (!absl::StartsWith(name, "step-") || !absl::EndsWith(name, ".binpb") ||
        !absl::SimpleAtoi(name.substr(5, name.size() - 5 - 6), &step)) {
      continue;
    }
    if (step + options_.state_keep_steps <= learner_step_) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

}  // namespace envtune
