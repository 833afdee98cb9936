#include "learner/learner_role.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include <torch/torch.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "common/worker_session.h"
#include "envtune/v1/coordinator.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "learner/checkpoint.h"
#include "learner/distributed.h"
#include "learner/learner_service.h"
#include "learner/reference.h"
#include "learner/trainer.h"
#include "learner/trajectory_queue.h"
#include "learner/weight_publisher.h"
#include "learner/weight_store.h"
#include "model/config.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "model/weights_io.h"

namespace envtune {
namespace {

void Log(const std::string& name, const std::string& message) {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&now));
  std::cerr << stamp << " [" << name << "] " << message << std::endl;
}

// Rank-0 -> rank broadcast commands (first byte of the message).
enum class Command : char { kNoop = 'n', kStep = 's', kStop = 'q', kCheckpoint = 'c' };

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

int EnvIntOr(const char* name, int fallback) {
  int value = 0;
  const char* v = std::getenv(name);
  return v != nullptr && absl::SimpleAtoi(v, &value) ? value : fallback;
}


// One GRPO group being assembled.
struct PendingGroup {
  std::string id;
  uint32_t size = 0;
  absl::Time first_seen;
  std::set<std::string> episodes;
  std::vector<v1::Trajectory> trajectories;
  size_t bytes = 0;  // the trajectories' serialized size
  bool complete() const { return trajectories.size() >= size; }
};

// Sane ranges of the learner's numeric keys (ConfigReader::AddBounds; errors name key, value
// and range). model.tiny.* are bounded by their reader (model/model_spec.h).
constexpr ConfigBound kLearnerBounds[] = {
    {"learner.train_batch_groups", 1, 1 << 16},
    {"learner.stage_batch_groups", 1, 1 << 16},
    {"learner.group_timeout_s", 1e-3, 7 * 86400},
    {"learner.max_incomplete_group_bytes", 1 << 10, 1e12},
    {"learner.partial_batch_after_s", 0, 7 * 86400},
    {"learner.max_steps", 0, 1e12},
    {"learner.queue_capacity", 1, 1 << 20},
    {"learner.max_staleness", 0, 1000},
    {"learner.lr", 0, 1},
    {"learner.weight_decay", 0, 10},
    {"learner.betas", 0, 1},
    {"learner.adam_eps", 0, 1},
    {"learner.warmup_steps", 0, 1e12},
    {"learner.total_steps", 0, 1e12},
    {"learner.min_lr_ratio", 0, 1},
    {"learner.max_grad_norm", 0, 1e9},
    {"learner.clip_low", 0, 10},
    {"learner.clip_high", 0, 10},
    {"learner.dual_clip", 0, 1e6},
    {"learner.kl_coef", 0, 1e6},
    {"learner.entropy_coef", -1e6, 1e6},
    {"learner.tis_cap", 0, 1e9},
    {"learner.micro_batch_tokens", 1, 1 << 24},
    {"learner.score_chunk_size", 1, 1 << 24},
    {"learner.zero_stage", 0, 2},
    {"learner.bucket_elements", 1, 1e12},
    {"learner.checkpoint_every", 1, 1e12},
    {"learner.keep_checkpoints", 0, 1e6},
    {"learner.rpc_timeout_ms", 1, 86400e3},
    {"learner.distributed.world_size", 1, 1 << 16},
    {"learner.distributed.rank", 0, (1 << 16) - 1},
    {"learner.distributed.master_port", 0, 65535},
    {"learner.distributed.timeout_s", 1e-3, 7 * 86400},
    {"learner.distributed.keepalive_s", 1e-3, 7 * 86400},
};

}  // namespace

void ReadLearnerOptions(ConfigReader& r, LearnerRoleOptions* o) {
  r.AddBounds(kLearnerBounds);
  o->model_path = r.Get<std::string>("model.path", o->model_path);
  ReadTinyQwen2Spec(r, "model", &o->tiny);
  // model.seed seeds `envtune model init` only; any other key under `model:` is unknown.
  r.MarkRead("model.seed");

  const std::string p = "learner.";
  o->train_batch_groups = r.Get<int>(p + "train_batch_groups", o->train_batch_groups);
  o->stage_batch_groups = r.Get<std::vector<int>>(p + "stage_batch_groups", o->stage_batch_groups);
  for (int n : o->stage_batch_groups) {
    if (n < 1) r.AddError(p + "stage_batch_groups: every entry must be >= 1");
  }
  if (o->stage_batch_groups.size() > 4) r.AddError(p + "stage_batch_groups: at most 4 stages");
  o->group_timeout = absl::Seconds(
      r.Get<double>(p + "group_timeout_s", absl::ToDoubleSeconds(o->group_timeout)));
  o->max_incomplete_group_bytes =
      r.Get<int64_t>(p + "max_incomplete_group_bytes", o->max_incomplete_group_bytes);
  o->partial_batch_after = absl::Seconds(r.Get<double>(
      p + "partial_batch_after_s", absl::ToDoubleSeconds(o->partial_batch_after)));
  o->max_steps = r.Get<int64_t>(p + "max_steps", o->max_steps);
  o->queue_capacity = r.Get<size_t>(p + "queue_capacity", o->queue_capacity);
  o->max_staleness = r.Get<uint64_t>(p + "max_staleness", o->max_staleness);
  o->lr = r.Get<double>(p + "lr", o->lr);
  o->weight_decay = r.Get<double>(p + "weight_decay", o->weight_decay);
  std::vector<double> betas =
      r.Get<std::vector<double>>(p + "betas", std::vector<double>{o->beta1, o->beta2});
  if (betas.size() != 2) {
    r.AddError(absl::StrCat(p, "betas: expected [beta1, beta2], got ", betas.size(), " values"));
  } else {
    o->beta1 = betas[0];
    o->beta2 = betas[1];
  }
  o->adam_eps = r.Get<double>(p + "adam_eps", o->adam_eps);
  o->lr_schedule = r.Get<std::string>(p + "lr_schedule", o->lr_schedule);
  o->warmup_steps = r.Get<int64_t>(p + "warmup_steps", o->warmup_steps);
  o->total_steps = r.Get<int64_t>(p + "total_steps", o->total_steps);
  o->min_lr_ratio = r.Get<double>(p + "min_lr_ratio", o->min_lr_ratio);
  o->max_grad_norm = r.Get<double>(p + "max_grad_norm", o->max_grad_norm);
  o->clip_low = r.Get<double>(p + "clip_low", o->clip_low);
  o->clip_high = r.Get<double>(p + "clip_high", o->clip_high);
  o->dual_clip = r.Get<double>(p + "dual_clip", o->dual_clip);
  o->kl_coef = r.Get<double>(p + "kl_coef", o->kl_coef);
  o->entropy_coef = r.Get<double>(p + "entropy_coef", o->entropy_coef);
  o->tis_cap = r.Get<double>(p + "tis_cap", o->tis_cap);
  o->micro_batch_tokens = r.Get<int64_t>(p + "micro_batch_tokens", o->micro_batch_tokens);
  o->score_chunk_size = r.Get<int64_t>(p + "score_chunk_size", o->score_chunk_size);
  o->gradient_checkpointing = r.Get<bool>(p + "gradient_checkpointing", o->gradient_checkpointing);
  o->zero_stage = r.Get<int>(p + "zero_stage", o->zero_stage);
  o->reference_offload = r.Get<bool>(p + "reference_offload", o->reference_offload);
  o->bucket_elements = r.Get<int64_t>(p + "bucket_elements", o->bucket_elements);
  o->dtype = r.Get<std::string>(p + "dtype", o->dtype);
  o->device = r.Get<std::string>(p + "device", o->device);
  o->publish_dtype = r.Get<std::string>(p + "publish_dtype", o->publish_dtype);
  o->checkpoint_dir = r.Get<std::string>(p + "checkpoint_dir", o->checkpoint_dir);
  o->checkpoint_every = r.Get<int64_t>(p + "checkpoint_every", o->checkpoint_every);
  o->keep_checkpoints = r.Get<int>(p + "keep_checkpoints", o->keep_checkpoints);
  o->resume = r.Get<std::string>(p + "resume", o->resume);
  o->ledger_path = r.Get<std::string>(p + "ledger_path", o->ledger_path);
  o->seed = r.Get<uint64_t>(p + "seed", o->seed);
  o->name = r.Get<std::string>(p + "name", o->name);
  o->advertise_address = r.Get<std::string>(p + "advertise_address", o->advertise_address);
  o->rpc_timeout = absl::Milliseconds(
      r.Get<int64_t>(p + "rpc_timeout_ms", absl::ToInt64Milliseconds(o->rpc_timeout)));
  const std::string d = p + "distributed.";
  o->world_size = r.Get<int>(d + "world_size", EnvIntOr("WORLD_SIZE", o->world_size));
  o->rank = r.Get<int>(d + "rank", EnvIntOr("RANK", o->rank));
  o->master_addr = r.Get<std::string>(d + "master_addr", EnvOr("MASTER_ADDR", o->master_addr));
  o->master_port = r.Get<int>(d + "master_port", EnvIntOr("MASTER_PORT", o->master_port));
  o->backend = r.Get<std::string>(d + "backend", o->backend);
  o->dist_timeout = absl::Seconds(
      r.Get<double>(d + "timeout_s", absl::ToDoubleSeconds(o->dist_timeout)));
  o->keepalive =
      absl::Seconds(r.Get<double>(d + "keepalive_s", absl::ToDoubleSeconds(o->keepalive)));

  if (o->train_batch_groups < 1) r.AddError(p + "train_batch_groups: must be >= 1");
  if (o->group_timeout <= absl::ZeroDuration()) r.AddError(p + "group_timeout_s: must be > 0");
  if (o->partial_batch_after < absl::ZeroDuration()) {
    r.AddError(p + "partial_batch_after_s: must be >= 0");
  }
  if (o->max_steps < 0) r.AddError(p + "max_steps: must be >= 0");
  if (o->queue_capacity < 1) r.AddError(p + "queue_capacity: must be >= 1");
  if (o->checkpoint_every < 1) r.AddError(p + "checkpoint_every: must be >= 1");
  if (o->keep_checkpoints < 0) r.AddError(p + "keep_checkpoints: must be >= 0");
  if (o->resume == "latest" && o->checkpoint_dir.empty()) {
    r.AddError(p + "resume: latest needs learner.checkpoint_dir");
  }
  if (o->keepalive <= absl::ZeroDuration() || o->keepalive >= o->dist_timeout) {
    r.AddError(d + "keepalive_s: must be > 0 and below timeout_s");
  }
  if (o->publish_dtype != "" && o->publish_dtype != "F32" && o->publish_dtype != "BF16") {
    r.AddError(p + "publish_dtype: must be \"\", F32 or BF16");
  }
}

struct LearnerRole::Impl {
  LearnerRoleOptions options;
  std::shared_ptr<PolicyImpl> policy;
  std::unique_ptr<Distributed> distributed;
  std::unique_ptr<Trainer> trainer;
  // Rank 0 only.
  std::unique_ptr<TrajectoryQueue> queue;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<WeightPublisher> publisher;
  std::unique_ptr<LearnerServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::unique_ptr<v1::CoordinatorService::Stub> coordinator;
  // The version and step training starts from (1 and 0, or a resumed checkpoint's).
  uint64_t start_version = 1;
  bool resumed = false;

  // Time split of the training loop (rank 0): optimisation steps, publishing weights, and the
  // rest since `started` (waiting for complete groups).
  const absl::Time started = absl::Now();
  std::atomic<int64_t> train_micros{0};
  std::atomic<int64_t> publish_micros{0};

  absl::Notification stop_note;
  std::once_flag stop_once;
  std::atomic<bool> stop{false};
  void NotifyStop() {
    stop = true;
    std::call_once(stop_once, [this] { stop_note.Notify(); });
    if (session != nullptr) session->Stop();
  }
  mutable absl::Mutex mu;
  LearnerProgress progress ABSL_GUARDED_BY(mu);
  // Leases whose group was trained on in a published version, or dropped, not yet reported to
  // the coordinator's flow control (sent with every heartbeat and step report until one
  // succeeds). A trained group counts only once its version is published, so new leases start
  // from that version. Bounded: if the coordinator stays unreachable the oldest are forgotten.
  std::set<std::string> unreported_consumed ABSL_GUARDED_BY(mu);
  static constexpr size_t kMaxUnreported = 1 << 16;
  void Consumed(const std::vector<std::string>& lease_ids) {
    absl::MutexLock lock(&mu);
    for (const std::string& id : lease_ids) {
      if (unreported_consumed.size() < kMaxUnreported) unreported_consumed.insert(id);
    }
  }
  template <typename Request>
  void AddConsumedLocked(Request& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const std::string& id : unreported_consumed) request.add_consumed_leases(id);
  }
  template <typename Request>
  void ReportedConsumed(const Request& request) {
    absl::MutexLock lock(&mu);
    for (const std::string& id : request.consumed_leases()) unreported_consumed.erase(id);
  }
  // Rank 0 with a coordinator: set by Create, stopped by NotifyStop.
  std::unique_ptr<WorkerSession> session;

  // Group assembly (training thread only).
  std::map<std::string, PendingGroup> pending;
  std::deque<std::string> arrival;  // group ids in order of first arrival
  // Groups already trained on or dropped (bounded memory): late episodes of them are dropped.
  std::set<std::string> closed_groups;
  std::deque<std::string> closed_order;
  static constexpr size_t kClosedGroupsKept = 1 << 16;

  void CloseGroup(const std::string& id) {
    if (!closed_groups.insert(id).second) return;
    closed_order.push_back(id);
    if (closed_order.size() > kClosedGroupsKept) {
      closed_groups.erase(closed_order.front());
      closed_order.pop_front();
    }
  }

  std::string Peer() const { return absl::StrCat("coordinator ", options.coordinator); }
  std::string Name() const {
    return options.world_size > 1 ? absl::StrCat(options.name, "/", options.rank) : options.name;
  }

  // Per-tensor host snapshot; on CUDA the copy completes and the version becomes visible off
  // this thread (learner/weight_publisher.h).
  absl::Status Publish(uint64_t version, int64_t step) {
    return publisher->Publish(*policy, version, static_cast<uint64_t>(step));
  }

  // The learner's heartbeat fields: version, throughput, unreported consumed leases, the batch
  // size the coordinator's flow control is sized by, and the time split.
  void FillHeartbeat(v1::HeartbeatRequest& request) {
    int64_t skipped_failed;
    {
      absl::MutexLock lock(&mu);
      request.set_policy_version(progress.version);
      request.set_tokens_per_s(progress.last_tokens_per_s);
      AddConsumedLocked(request);
      skipped_failed = progress.groups_skipped_failed;
    }
    request.set_batch_groups(static_cast<uint32_t>(BatchGroups()));
    const double wall = absl::ToDoubleSeconds(absl::Now() - started);
    const double train = train_micros.load() * 1e-6, publish = publish_micros.load() * 1e-6;
    for (const auto& [name, value] : std::initializer_list<std::pair<const char*, double>>{
             {"time/train_s", train},
             {"time/publish_s", publish},
             {"time/wait_s", std::max(0.0, wall - train - publish)},
             {"time/wall_s", wall},
             {"groups/skipped_failed", static_cast<double>(skipped_failed)}}) {
      v1::Metric* metric = request.add_metrics();
      metric->set_name(name);
      metric->set_value(value);
    }
  }

  // Registration and heartbeats (common/worker_session.h); the first heartbeat goes out at
  // once: it tells the coordinator the batch size its flow control is sized by before any
  // actor asks for work.
  void StartSession() {
    session = std::make_unique<WorkerSession>(
        coordinator.get(),
        WorkerSessionOptions{.coordinator = options.coordinator,
                             .role = v1::ROLE_LEARNER,
                             .name = options.name,
                             .address = options.advertise_address.empty()
                                            ? absl::StrCat(options.host, ":", port)
                                            : options.advertise_address,
                             .rpc_timeout = options.rpc_timeout,
                             .retry_deadline = absl::Minutes(1),
                             .heartbeat_interval = absl::Seconds(2),
                             .first_heartbeat_at_once = true},
        WorkerSessionHooks{
            .fill = [this](v1::HeartbeatRequest& request) { FillHeartbeat(request); },
            .on_response =
                [this](const v1::HeartbeatRequest& request, const v1::HeartbeatResponse& response) {
                  stage = response.stage();
                  ReportedConsumed(request);
                },
            .log = [this](const std::string& line) { Log(Name(), line); }});
  }

  // The curriculum stage the coordinator last reported (heartbeats, steps; 0 = unknown).
  std::atomic<uint32_t> stage{0};

  int BatchGroups() const {
    const uint32_t s = stage.load();
    if (s >= 1 && s <= options.stage_batch_groups.size()) {
      return options.stage_batch_groups[s - 1];
    }
    return options.train_batch_groups;
  }

  // `trained_leases`: the leases of the batch of this step. They travel with the report first
  // (the coordinator frees their flow-control slots and applies the step's stage change in one
  // update, so the next leases are issued in a deterministic stage); only if the report fails
  // are they left to the heartbeats.
  void ReportStep(const StepMetrics& m, uint64_t version,
                  const std::vector<std::string>& trained_leases) {
    if (coordinator == nullptr) {
      Consumed(trained_leases);
      return;
    }
    v1::ReportLearnerStepRequest request;
    {
      absl::MutexLock lock(&mu);
      AddConsumedLocked(request);
      for (const std::string& id : trained_leases) {
        if (unreported_consumed.count(id) == 0) request.add_consumed_leases(id);
      }
    }
    request.set_worker_id(session->worker_id());
    request.set_batch_groups(static_cast<uint32_t>(BatchGroups()));
    request.set_step(static_cast<uint64_t>(m.step));
    request.set_policy_version(version);
    std::vector<std::pair<std::string, double>> named = m.Named();
    {
      absl::MutexLock lock(&mu);
      named.emplace_back("groups/dropped_timeout", static_cast<double>(progress.groups_dropped));
      named.emplace_back("groups/dropped_stale", static_cast<double>(progress.groups_stale));
      named.emplace_back("groups/dropped_memory",
                         static_cast<double>(progress.groups_dropped_memory));
      named.emplace_back("groups/skipped_failed",
                         static_cast<double>(progress.groups_skipped_failed));
      named.emplace_back("trajectories/duplicates",
                         static_cast<double>(progress.duplicates_dropped));
    }
    for (const auto& [name, value] : named) {
      v1::Metric* metric = request.add_metrics();
      metric->set_name(name);
      metric->set_value(value);
      metric->set_step(m.step);
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      grpc::ClientContext context;
      SetDeadline(context, absl::ToChronoMilliseconds(options.rpc_timeout));
      v1::ReportLearnerStepResponse response;
      grpc::Status status = coordinator->ReportLearnerStep(&context, request, &response);
      if (status.ok()) {
        stage = response.stage();
        ReportedConsumed(request);
        return;
      }
      absl::Status s = FromGrpcStatus(status, Peer(), "ReportLearnerStep");
      Log(Name(), std::string(s.message()));
      if (!absl::IsNotFound(s) || !session->Reregister(request.worker_id()).ok()) break;
      request.set_worker_id(session->worker_id());
    }
    Consumed(trained_leases);
  }

  // Moves queued trajectories into groups; drops groups past their deadline.
  void Collect(absl::Duration wait) {
    std::vector<v1::Trajectory> got = queue->PopBatch(1, queue->capacity(), wait);
    const absl::Time now = absl::Now();
    int64_t duplicates = 0;
    for (v1::Trajectory& t : got) {
      if (closed_groups.count(t.group_id()) > 0) {
        ++duplicates;
        continue;
      }
      auto [it, inserted] = pending.try_emplace(t.group_id());
      PendingGroup& g = it->second;
      if (inserted) {
        g.id = t.group_id();
        g.size = t.group_size();
        g.first_seen = now;
        arrival.push_back(g.id);
      }
      if (!g.episodes.insert(t.episode_id()).second || g.complete()) {
        ++duplicates;
        continue;
      }
      g.bytes += t.ByteSizeLong();
      g.trajectories.push_back(std::move(t));
    }
    const std::vector<std::string> dropped_leases =
        DropGroups([&](const PendingGroup& g) -> std::optional<std::string> {
          if (g.complete() || now - g.first_seen <= options.group_timeout) return std::nullopt;
          return absl::StrCat(g.trajectories.size(), " of ", g.size, " episodes after ",
                              absl::FormatDuration(options.group_timeout));
        });
    const int64_t dropped = static_cast<int64_t>(dropped_leases.size());  // never empty groups
    Consumed(dropped_leases);
    // Memory held for incomplete groups is bounded: past learner.max_incomplete_group_bytes the
    // oldest incomplete groups are dropped (logged, counted, their leases reported consumed so
    // the coordinator issues them again) until the rest fit. Complete groups are trained soon.
    int64_t incomplete_bytes = 0;
    for (const auto& [id, g] : pending) {
      if (!g.complete()) incomplete_bytes += static_cast<int64_t>(g.bytes);
    }
    std::vector<std::string> over_leases;
    if (incomplete_bytes > options.max_incomplete_group_bytes) {
      over_leases = DropGroups([&](const PendingGroup& g) -> std::optional<std::string> {
        if (g.complete() || incomplete_bytes <= options.max_incomplete_group_bytes) {
          return std::nullopt;
        }
        std::string reason = absl::StrCat(g.trajectories.size(), " of ", g.size, " episodes (",
                                          g.bytes, " bytes) while ", incomplete_bytes,
                                          " bytes are held for incomplete groups (learner."
                                          "max_incomplete_group_bytes = ",
                                          options.max_incomplete_group_bytes, ")");
        incomplete_bytes -= static_cast<int64_t>(g.bytes);
        return reason;
      });
      Consumed(over_leases);
    }
    absl::MutexLock lock(&mu);
    progress.trajectories_received += static_cast<int64_t>(got.size());
    progress.duplicates_dropped += duplicates;
    progress.groups_dropped += dropped;
    progress.groups_dropped_memory += static_cast<int64_t>(over_leases.size());
  }

  int CompleteGroups() const {
    int n = 0;
    for (const auto& [id, g] : pending) n += g.complete();
    return n;
  }

  static std::vector<std::string> LeaseIds(const std::vector<v1::Trajectory>& trajectories) {
    std::set<std::string> ids;
    for (const v1::Trajectory& t : trajectories) ids.insert(t.lease_id());
    return {ids.begin(), ids.end()};
  }

  // Oldest policy version among a group's episodes.
  static uint64_t GroupVersion(const PendingGroup& g) {
    uint64_t v = UINT64_MAX;
    for (const v1::Trajectory& t : g.trajectories) v = std::min<uint64_t>(v, t.policy_version());
    return v;
  }

  // Removes every pending group for which `why` gives a reason (logged) and closes it, so its
  // late episodes are dropped too. Returns the removed groups' leases.
  std::vector<std::string> DropGroups(
      const std::function<std::optional<std::string>(const PendingGroup&)>& why) {
    std::vector<std::string> leases;
    for (auto it = arrival.begin(); it != arrival.end();) {
      auto g = pending.find(*it);
      std::optional<std::string> reason =
          g == pending.end() ? std::nullopt : why(g->second);
      if (!reason.has_value()) {
        ++it;
        continue;
      }
      Log(Name(), absl::StrCat("dropping group ", g->first, ": ", *reason));
      if (!g->second.trajectories.empty()) {
        leases.push_back(g->second.trajectories.front().lease_id());
      }
      CloseGroup(g->first);
      pending.erase(g);
      it = arrival.erase(it);
    }
    return leases;
  }

  // Drops complete groups generated more than max_staleness versions before `version`.
  void DropStaleGroups(uint64_t version) {
    const std::vector<std::string> stale_leases =
        DropGroups([&](const PendingGroup& g) -> std::optional<std::string> {
          if (!g.complete() || GroupVersion(g) + options.max_staleness >= version) {
            return std::nullopt;
          }
          return absl::StrCat("generated by version ", GroupVersion(g), ", the learner is at ",
                              version, " (max_staleness ", options.max_staleness, ")");
        });
    Consumed(stale_leases);
    absl::MutexLock lock(&mu);
    progress.groups_stale += static_cast<int64_t>(stale_leases.size());
  }

  // "L9" before "L10": ids compared by length first, then bytes.
  static bool IdLess(const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  }

  // Takes up to `count` complete groups, oldest first, and returns their trajectories ordered
  // by group id, then episode id: the batch (and so every reduction over it) does not depend
  // on the order in which actors happened to deliver the episodes.
  std::vector<v1::Trajectory> TakeGroups(int count) {
    std::vector<PendingGroup> taken;
    for (auto it = arrival.begin();
         it != arrival.end() && static_cast<int>(taken.size()) < count;) {
      auto g = pending.find(*it);
      if (g != pending.end() && g->second.complete()) {
        taken.push_back(std::move(g->second));
        CloseGroup(g->first);
        pending.erase(g);
        it = arrival.erase(it);
      } else {
        ++it;
      }
    }
    std::sort(taken.begin(), taken.end(),
              [](const PendingGroup& a, const PendingGroup& b) { return IdLess(a.id, b.id); });
    std::vector<v1::Trajectory> out;
    for (PendingGroup& g : taken) {
      std::sort(g.trajectories.begin(), g.trajectories.end(),
                [](const v1::Trajectory& a, const v1::Trajectory& b) {
                  return IdLess(a.episode_id(), b.episode_id());
                });
      for (v1::Trajectory& t : g.trajectories) out.push_back(std::move(t));
    }
    absl::MutexLock lock(&mu);
    progress.groups_trained += static_cast<int64_t>(taken.size());
    return out;
  }

  absl::Status Broadcast(Command command, const std::string& payload) {
    if (distributed->world_size() == 1) return absl::OkStatus();
    std::string message(1, static_cast<char>(command));
    message += payload;
    return distributed->BroadcastBytes(message, "batch broadcast").status();
  }

  // Rank 0: a full checkpoint of every rank (the others are told through the batch broadcast
  // and take part in SaveLearnerCheckpoint's collectives).
  absl::Status SaveCheckpoint(const std::string& label, uint64_t version) {
    if (options.checkpoint_dir.empty() || options.rank != 0) return absl::OkStatus();
    if (absl::Status s = Broadcast(Command::kCheckpoint, label); !s.ok()) return s;
    const absl::Time start = absl::Now();
    absl::Status s = SaveLearnerCheckpoint(*trainer, distributed.get(), options.checkpoint_dir,
                                           label, version, options.keep_checkpoints);
    if (s.ok()) {
      Log(Name(), absl::StrFormat("checkpoint %s/%s (step %d, version %d) in %.2fs",
                                  options.checkpoint_dir, label, trainer->steps(), version,
                                  absl::ToDoubleSeconds(absl::Now() - start)));
    }
    return s;
  }

  // Weights only (the random initial policy, or a final save after a failed collective).
  absl::Status SaveWeights(const std::string& label) {
    if (options.checkpoint_dir.empty() || options.rank != 0) return absl::OkStatus();
    absl::StatusOr<std::string> tmp = BeginCheckpoint(options.checkpoint_dir, label);
    if (!tmp.ok()) return tmp.status();
    if (absl::Status s = SavePolicy(*policy, *tmp); !s.ok()) return s;
    absl::Status s = CommitCheckpoint(options.checkpoint_dir, label, *tmp, nullptr, 0);
    if (s.ok()) Log(Name(), absl::StrCat("checkpoint (weights only) ", options.checkpoint_dir,
                                         "/", label));
    return s;
  }

  absl::StatusOr<StepMetrics> TrainOn(const TrainBatch& batch) {
    TrainBatch shard = distributed->world_size() > 1
                           ? ShardTrainBatch(batch, distributed->world_size())[options.rank]
                           : batch;
    return trainer->Step(shard);
  }

  absl::Status RunRoot();
  absl::Status RunWorker();
};

LearnerRole::LearnerRole(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LearnerRole::~LearnerRole() {
  Stop();
  if (impl_->server != nullptr) {
    impl_->queue->Close();
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
}

void LearnerRole::Stop() {
  impl_->NotifyStop();
}

int LearnerRole::port() const { return impl_->port; }

LearnerProgress LearnerRole::progress() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->progress;
}

absl::StatusOr<std::unique_ptr<LearnerRole>> LearnerRole::Create(const LearnerRoleOptions& o) {
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  TrainerOptions t;
  t.lr = o.lr;
  t.weight_decay = o.weight_decay;
  t.beta1 = o.beta1;
  t.beta2 = o.beta2;
  t.adam_eps = o.adam_eps;
  t.lr_schedule = o.lr_schedule;
  t.warmup_steps = o.warmup_steps;
  t.total_steps = o.total_steps;
  t.min_lr_ratio = o.min_lr_ratio;
  t.max_grad_norm = o.max_grad_norm;
  t.micro_batch_tokens = o.micro_batch_tokens;
  t.score_chunk_size = o.score_chunk_size;
  t.gradient_checkpointing = o.gradient_checkpointing;
  // One rank holds everything whatever the stage: the replicated path, no fp32 shard copy.
  t.zero_stage = o.world_size > 1 ? o.zero_stage : 0;
  t.bucket_elements = o.bucket_elements;
  t.grpo.clip_low = o.clip_low;
  t.grpo.clip_high = o.clip_high;
  t.grpo.dual_clip = o.dual_clip;
  t.grpo.kl_coef = o.kl_coef;
  t.grpo.entropy_coef = o.entropy_coef;
  t.grpo.tis_cap = o.tis_cap;
  if (absl::Status s = ValidateTrainerOptions(t); !s.ok()) return s;

  // The policy (and the frozen reference: the initial weights).
  std::shared_ptr<PolicyImpl> reference;
  // The process group first: it checks the rank's device (NCCL: the GPU exists) before any
  // weights are loaded, and the policy lives where its collectives run.
  DistributedOptions d;
  d.master_addr = o.master_addr;
  d.master_port = o.master_port;
  d.world_size = o.world_size;
  d.rank = o.rank;
  d.backend = o.backend;
  d.device = o.device;
  d.timeout = o.dist_timeout;
  absl::StatusOr<std::unique_ptr<Distributed>> dist = Distributed::Create(d);
  if (!dist.ok()) return dist.status();
  impl->distributed = std::move(*dist);
  absl::StatusOr<c10::Device> resolved = o.backend == "nccl"
                                             ? impl->distributed->device()
                                             : ResolveDevice(o.device);
  if (!resolved.ok()) {
    return absl::Status(resolved.status().code(),
                        absl::StrCat("learner.device: ", resolved.status().message()));
  }
  try {
    torch::manual_seed(o.seed);
    const c10::Device device = *resolved;
    std::optional<c10::ScalarType> dtype;
    if (!o.dtype.empty()) {
      absl::StatusOr<c10::ScalarType> d = DtypeFromName(o.dtype);
      if (!d.ok()) return d.status();
      dtype = *d;
    }
    auto build = [&]() -> absl::StatusOr<std::shared_ptr<PolicyImpl>> {
      if (!o.model_path.empty()) {
        LoadPolicyOptions load;
        load.dtype = dtype;
        load.device = device;
        absl::StatusOr<Policy> p = LoadPolicy(o.model_path, load);
        if (!p.ok()) return p.status();
        return p->ptr();
      }
      ModelConfig config = TinyQwen2Config(o.tiny);
      if (absl::Status s = ValidateModelConfig(config); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("model.tiny: ", s.message()));
      }
      auto p = std::make_shared<PolicyImpl>(
          PolicyOptions(config).dtype(dtype.value_or(c10::kFloat)).device(device));
      p->InitRandom(o.seed);
      return p;
    };
    absl::StatusOr<std::shared_ptr<PolicyImpl>> policy = build();
    if (!policy.ok()) return policy.status();
    impl->policy = *policy;
    if (absl::Status s = impl->distributed->BroadcastParameters(*impl->policy); !s.ok()) return s;
    if (o.kl_coef != 0) {
      // The reference is a frozen copy of the (broadcast) initial weights.
      absl::StatusOr<std::shared_ptr<PolicyImpl>> ref =
          MakeReference(*impl->policy, o.reference_offload);
      if (!ref.ok()) return ref.status();
      reference = *std::move(ref);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("learner: building the policy: ",
                                            e.what_without_backtrace()));
  }
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(impl->policy, reference, t, impl->distributed.get());
  if (!trainer.ok()) return trainer.status();
  impl->trainer = std::move(*trainer);
  if (!o.resume.empty()) {
    std::string dir = o.resume;
    if (o.resume == "latest") {
      absl::StatusOr<std::optional<CheckpointInfo>> latest = LatestCheckpoint(o.checkpoint_dir);
      if (!latest.ok()) return latest.status();
      dir = latest->has_value() ? (*latest)->dir : "";
      if (dir.empty()) {
        Log(impl->Name(), absl::StrCat("resume: no complete checkpoint in ", o.checkpoint_dir,
                                       "; starting at step 0"));
      }
    }
    if (!dir.empty()) {
      absl::StatusOr<CheckpointInfo> info =
          RestoreLearnerCheckpoint(*impl->trainer, impl->distributed.get(), dir);
      if (!info.ok()) {
        return absl::Status(info.status().code(),
                            absl::StrCat("learner.resume: ", info.status().message()));
      }
      impl->start_version = info->policy_version;
      impl->resumed = true;
      Log(impl->Name(), absl::StrCat("resumed from ", dir, " at step ", info->step,
                                     ", policy version ", info->policy_version));
    }
  } else if (o.rank == 0 && !o.checkpoint_dir.empty()) {
    absl::StatusOr<std::optional<CheckpointInfo>> earlier = LatestCheckpoint(o.checkpoint_dir);
    if (earlier.ok() && earlier->has_value()) {
      Log(impl->Name(), absl::StrCat("note: ", o.checkpoint_dir, " holds checkpoints of an "
                                     "earlier run up to step ", (*earlier)->step,
                                     "; this run starts at step 0 (learner.resume=latest "
                                     "continues instead) and replaces them as it goes"));
    }
  }
  {
    absl::MutexLock lock(&impl->mu);
    impl->progress.version = impl->start_version;
    impl->progress.steps = impl->trainer->steps();
  }
  if (o.rank != 0) return std::unique_ptr<LearnerRole>(new LearnerRole(std::move(impl)));

  impl->queue = std::make_unique<TrajectoryQueue>(o.queue_capacity);
  impl->weights = std::make_unique<WeightStore>();
  impl->publisher = std::make_unique<WeightPublisher>(impl->weights.get(), o.publish_dtype);
  if (absl::Status s = impl->Publish(impl->start_version, impl->trainer->steps()); !s.ok()) {
    return s;
  }
  if (absl::Status s = impl->publisher->Flush(); !s.ok()) return s;
  LearnerServiceOptions service_options;
  service_options.ledger_path = o.ledger_path;
  service_options.vocab_size = impl->policy->config().vocab_size;
  impl->service = std::make_unique<LearnerServiceImpl>(impl->queue.get(), impl->weights.get(),
                                                       service_options);
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  builder.AddListeningPort(absl::StrCat(o.host, ":", o.port), ListeningCredentials(),
                           &impl->port);
  builder.RegisterService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("learner: cannot listen on ", o.host, ":", o.port));
  }
  if (!o.coordinator.empty()) {
    impl->coordinator = v1::CoordinatorService::NewStub(MakeChannel(o.coordinator));
    impl->StartSession();
  }
  return std::unique_ptr<LearnerRole>(new LearnerRole(std::move(impl)));
}

absl::Status LearnerRole::Run() {
  return impl_->options.rank == 0 ? impl_->RunRoot() : impl_->RunWorker();
}

absl::Status LearnerRole::Impl::RunWorker() {
  while (!stop) {
    absl::StatusOr<std::string> message = distributed->BroadcastBytes("", "batch broadcast");
    if (!message.ok()) return message.status();
    if (message->empty()) return absl::InternalError("learner: empty broadcast from rank 0");
    Command command = static_cast<Command>((*message)[0]);
    if (command == Command::kStop) return absl::OkStatus();
    if (command == Command::kNoop) continue;
    if (command == Command::kCheckpoint) {
      uint64_t version;
      {
        absl::MutexLock lock(&mu);
        version = progress.version;
      }
      absl::Status s = SaveLearnerCheckpoint(*trainer, distributed.get(), options.checkpoint_dir,
                                             message->substr(1), version,
                                             options.keep_checkpoints);
      if (!s.ok()) Log(Name(), absl::StrCat("checkpoint failed: ", s.message()));
      continue;
    }
    if (command != Command::kStep) {
      return absl::InternalError(absl::StrCat("learner: unknown command from rank 0: ",
                                              static_cast<int>((*message)[0])));
    }
    absl::StatusOr<TrainBatch> batch = ParseTrainBatch(std::string_view(*message).substr(1));
    if (!batch.ok()) return batch.status();
    absl::StatusOr<StepMetrics> m = TrainOn(*batch);
    if (!m.ok()) return m.status();
    absl::MutexLock lock(&mu);
    progress.steps = m->step;
    progress.version = batch->version + 1;
  }
  return absl::OkStatus();
}

absl::Status LearnerRole::Impl::RunRoot() {
  Log(Name(), absl::StrCat("serving LearnerService on ", options.host, ":", port, " (version ",
                           start_version, ", step ", trainer->steps(), "; world size ",
                           options.world_size, ")"));
  if (options.model_path.empty() && !resumed) {
    // A random initial policy exists nowhere else: keep it, to evaluate "before training".
    if (absl::Status s = SaveWeights("step-0"); !s.ok()) {
      Log(Name(), absl::StrCat("checkpoint failed: ", s.message()));
    }
  }
  if (session != nullptr) {
    if (absl::Status s = session->Register(); !s.ok()) {
      (void)Broadcast(Command::kStop, "");
      return s;
    }
    session->StartHeartbeats();
  }
  absl::Status result = absl::OkStatus();
  absl::Time last_broadcast = absl::Now();
  absl::Time waiting_since = absl::Now();
  uint64_t version = start_version;
  while (!stop) {
    if (options.max_steps > 0 && trainer->steps() >= options.max_steps) break;
    Collect(absl::Milliseconds(200));
    DropStaleGroups(version);
    const int complete = CompleteGroups();
    const int batch_groups = BatchGroups();
    const bool full = complete >= batch_groups;
    const bool partial = options.partial_batch_after > absl::ZeroDuration() && complete > 0 &&
                         absl::Now() - waiting_since > options.partial_batch_after;
    if (!full && !partial) {
      if (absl::Now() - last_broadcast > options.keepalive) {
        if (result = Broadcast(Command::kNoop, ""); !result.ok()) break;
        last_broadcast = absl::Now();
      }
      continue;
    }
    std::vector<v1::Trajectory> trajectories = TakeGroups(batch_groups);
    const std::vector<std::string> lease_ids = LeaseIds(trajectories);
    GrpoOptions grpo;  // only advantage_eps is read by BuildTrainBatch
    grpo.advantage_eps = trainer->options().grpo.advantage_eps;
    absl::StatusOr<TrainBatch> batch = BuildTrainBatch(trajectories, version, grpo);
    if (!batch.ok()) {
      // The service validated every trajectory already; a bad batch is skipped, not fatal.
      Log(Name(), absl::StrCat("skipping a batch: ", batch.status().message()));
      std::set<std::string> groups;
      for (const v1::Trajectory& t : trajectories) groups.insert(t.group_id());
      Consumed(LeaseIds(trajectories));
      absl::MutexLock lock(&mu);
      progress.groups_trained -= static_cast<int64_t>(groups.size());
      progress.groups_dropped += static_cast<int64_t>(groups.size());
      continue;
    }
    if (batch->stats.trajectories > 0 && batch->stats.failed == batch->stats.trajectories) {
      // Nothing to learn from: no step (the curriculum does not move on failed episodes). The
      // leases count as consumed, so the coordinator issues new ones; the count reaches the
      // console through the heartbeat's groups/skipped_failed.
      Log(Name(), absl::StrCat("skipping a batch: all ", batch->stats.trajectories,
                               " episodes of its ", batch->stats.groups,
                               " groups failed (see the actors' logs); new groups are leased "
                               "in their place"));
      Consumed(lease_ids);
      absl::MutexLock lock(&mu);
      progress.groups_trained -= batch->stats.groups;
      progress.groups_skipped_failed += batch->stats.groups;
      continue;
    }
    if (result = Broadcast(Command::kStep, SerializeTrainBatch(*batch)); !result.ok()) break;
    last_broadcast = absl::Now();
    const absl::Time train_start = absl::Now();
    absl::StatusOr<StepMetrics> m = TrainOn(*batch);
    train_micros.fetch_add(absl::ToInt64Microseconds(absl::Now() - train_start));
    if (!m.ok()) {
      result = m.status();
      break;
    }
    ++version;
    const absl::Time publish_start = absl::Now();
    if (result = Publish(version, m->step); !result.ok()) break;
    publish_micros.fetch_add(absl::ToInt64Microseconds(absl::Now() - publish_start));
    waiting_since = absl::Now();
    double mean_reward = 0;
    if (auto it = m->batch.rewards.find("reward/mean"); it != m->batch.rewards.end()) {
      mean_reward = it->second;
    }
    {
      absl::MutexLock lock(&mu);
      progress.steps = m->step;
      progress.version = version;
      progress.last_mean_reward = mean_reward;
      progress.last_grad_norm = m->grad_norm;
      progress.last_tokens_per_s = m->tokens_per_s;
    }
    Log(Name(),
        absl::StrFormat("step %d version %d: groups %d (failed episodes %d) reward %.4f loss %.5f "
                        "kl %.5f entropy %.4f grad_norm %.4f tokens/s %.0f staleness %.2f "
                        "mismatch %.2e",
                        m->step, version, m->batch.groups, m->batch.failed, mean_reward, m->loss,
                        m->kl, m->entropy, m->grad_norm, m->tokens_per_s,
                        m->batch.staleness_mean, m->logprob_mismatch_max));
    ReportStep(*m, version, lease_ids);
    if (m->step % options.checkpoint_every == 0) {
      if (absl::Status s = SaveCheckpoint(absl::StrCat("step-", m->step), version); !s.ok()) {
        Log(Name(), absl::StrCat("checkpoint failed: ", s.message()));
      }
    }
  }
  // The final checkpoint: full while the ranks can still take part (one rank always can);
  // weights only after a failed collective.
  absl::Status saved = result.ok() || options.world_size == 1
                           ? SaveCheckpoint("final", version)
                           : SaveWeights("final");
  if (!saved.ok()) Log(Name(), absl::StrCat("final checkpoint failed: ", saved.message()));
  if (result.ok()) result = saved;
  if (absl::Status s = Broadcast(Command::kStop, ""); !s.ok() && result.ok()) result = s;
  NotifyStop();
  return result;
}

}  // namespace envtune
