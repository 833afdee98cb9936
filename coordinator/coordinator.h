// The coordinator's state machine: membership, work leases and the curriculum. No gRPC here;
// coordinator/service.h puts it behind CoordinatorService.
//
// Thread-safe: every public method may be called concurrently (one internal mutex).
// Time comes from an injected Clock so tests can expire workers and leases deterministically.
#ifndef ENVTUNE_COORDINATOR_COORDINATOR_H_
#define ENVTUNE_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "envtune/v1/coordinator.pb.h"
#include "envtune/v1/coordinator_state.pb.h"

namespace envtune {

// Injectable time source (LevelDB's Env idea, reduced to what the coordinator needs).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The process-wide real clock. Never deleted.
  static Clock* Real();
};

// When a stage hands over to the next one. A rule with no condition set never advances by
// itself (only the admin RPC moves on).
struct AdvanceRule {
  int64_t after_learner_steps = 0;  // > 0: advance once the stage has run this many steps
  std::string metric;               // non-empty: advance when `metric` >= threshold ...
  double threshold = 0;
  int consecutive_checks = 1;       // ... for this many consecutive reports of it
};

struct StageConfig {
  int stage = 1;                            // 1..4
  std::string name;
  std::vector<std::string> task_ids;        // the stage's task set (order irrelevant)
  v1::RewardKind reward_kind = v1::REWARD_KIND_PROGRESS;  // config: reward: format|progress|binary
  // Augmentation probability, linear from start to end over the stage's first
  // anneal_steps learner steps (stage 4 anneals to 0).
  double augment_start = 1.0;
  double augment_end = 1.0;
  int64_t anneal_steps = 0;
  uint32_t group_size = 16;
  uint32_t max_steps_per_turn = 5;
  uint32_t max_new_tokens = 512;
  uint32_t max_episode_tokens = 8192;
  AdvanceRule advance;
};

struct CoordinatorOptions {
  std::vector<StageConfig> stages;          // the curriculum, in order
  absl::Duration heartbeat_interval = absl::Seconds(2);
  absl::Duration worker_expiry = absl::Seconds(10);
  absl::Duration lease_timeout = absl::Minutes(10);
  // Max leases (training and evaluation) a worker may hold at once; further AcquireLease calls
  // get no lease (NO_LEASE_REASON_WORKER_QUOTA).
  uint32_t max_leases_per_worker = 64;
  // With the flow-control window bounded (below), an actor holding ceil(window / live actors)
  // uncompleted training leases gets no lease (WORKER_QUOTA) until it completes one: one actor cannot
  // hoard the window and starve the others until lease_timeout.
  bool lease_fair_share = true;
  // Leases ask for at least (latest policy version - max_policy_staleness).
  uint64_t max_policy_staleness = 1;
  // Flow control: training leases are issued only while fewer GRPO groups than this are leased
  // but not yet consumed by the learner. 0 = (max_policy_staleness + 1) x the batch_groups the
  // learner reports (unbounded until a learner reports).
  uint64_t max_inflight_groups = 0;
  // Stop issuing training leases after this many learner steps in total (0 = never).
  int64_t max_learner_steps = 0;
  // Held-out evaluation: every N learner steps, one lease per evaluation task (0 = off).
  int64_t eval_every_steps = 0;
  std::vector<std::string> eval_task_ids;
  uint64_t seed = 1;
  // Registered workers at most; a Register beyond gets RESOURCE_EXHAUSTED (expired workers
  // free their slots). Bounds the worker table and every GetStatus reply.
  size_t max_workers = 1024;
  // Open WatchStage streams at most, in all and per worker id (an actor holds one, reopened
  // after a break); a stream beyond gets RESOURCE_EXHAUSTED. Each open stream holds a
  // subscription and a queue, so unbounded streams were a way to exhaust the coordinator.
  size_t max_watch_streams = 4096;
  size_t max_watch_streams_per_worker = 4;
  size_t metric_history = 256;              // recent metric values kept for status
  // Optional audit trail: one JSON line per lease event
  //   {"event":"issued","lease":..,"task":..,"stage":..,"group_size":..,"min_version":..,"eval":..}
  //   {"event":"completed","lease":..,"episodes":..}   {"event":"reissued","lease":..}
  // "" = off. Used by the integration test to check exactly-once delivery.
  std::string ledger_path;
  // Persistence: with a state_dir, the state (v1::CoordinatorState: stage and its progress,
  // learner step and version, the task order and cursor, lease and episode accounting, leases
  // the learner has not consumed, metrics history) is written atomically to
  // <state_dir>/step-<N>.binpb when learner step N is reported (step-0 at the start), after the
  // step's consumed leases and stage change are applied; files older than state_keep_steps
  // steps are removed. With resume_step >= 0 the coordinator starts from
  // <state_dir>/step-<resume_step>.binpb: the learner's checkpoint of that step and this state
  // continue the run as it went on after that step (the learner's pending groups are lost, so
  // their leases are issued again unchanged; workers register afresh).
  // Every start with a state_dir counts itself in <state_dir>/incarnation (written before it
  // serves) and issues worker ids w<n>-i<incarnation>, so a coordinator restarted on the same
  // directory, from any state, never reissues an id a surviving worker may still hold.
  // resume_latest: start from the newest step-<N>.binpb there (a fresh start when none), for a
  // supervisor that restarts the coordinator alone (Kubernetes).
  std::string state_dir;
  int64_t resume_step = -1;
  bool resume_latest = false;
  int64_t state_keep_steps = 256;
};

class Coordinator {
 public:
  // REQUIRES: options.stages is non-empty with stages numbered 1..n in order, each with tasks.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options,
                                                             Clock* clock = Clock::Real());

  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  // A lease, or OK with no lease and a typed reason (finished, paused, learner busy, quota, no
  // tasks); errors only for bad requests (INVALID_ARGUMENT) and unknown workers (NOT_FOUND).
  absl::StatusOr<v1::AcquireLeaseResponse> AcquireLease(const v1::AcquireLeaseRequest& request);
  absl::Status CompleteLease(const v1::CompleteLeaseRequest& request);
  absl::StatusOr<v1::ReportLearnerStepResponse> ReportLearnerStep(
      const v1::ReportLearnerStepRequest& request);
  v1::ClusterStatus Status();
  absl::StatusOr<v1::StageEvent> SetStage(uint32_t stage);
  v1::StageEvent Pause();
  v1::StageEvent Resume();
  v1::StageEvent CurrentStageEvent();
  // The env-server fleet (coordinator.proto: ListEnvServers, DrainEnvServer).
  v1::ListEnvServersResponse ListEnvServers();
  absl::StatusOr<v1::WorkerStatus> DrainEnvServer(const v1::DrainEnvServerRequest& request);

  // The persisted state now, and restoring it (before workers register). RestoreState checks
  // the state against the options (seed, stage count, the stage's task set): a state of another
  // curriculum is FailedPrecondition, a malformed one InvalidArgument; on error nothing changes.
  v1::CoordinatorState SnapshotState();
  absl::Status RestoreState(const v1::CoordinatorState& state);
  // Reads <state_dir>/step-<step>.binpb (NotFound naming it when absent).
  static absl::StatusOr<v1::CoordinatorState> ReadStateFile(const std::string& state_dir,
                                                            int64_t step);
  // The newest N of <state_dir>/step-<N>.binpb, or -1.
  static int64_t NewestStateStep(const std::string& state_dir);
  const CoordinatorOptions& options() const { return options_; }

  // Expires workers whose heartbeat is older than worker_expiry and re-queues their leases and
  // any lease past its deadline. Called by every RPC and periodically by the service.
  void Sweep();

  // Stage-change subscribers (the WatchStage streams). The callback runs under no lock, on the
  // thread that caused the change; it must not block. Returns an id for Unsubscribe.
  using StageListener = std::function<void(const v1::StageEvent&)>;
  int Subscribe(StageListener listener);
  void Unsubscribe(int id);

 private:
  // Reads <state_dir>/incarnation (0 when absent), writes one more and returns it.
  static absl::StatusOr<uint64_t> NextIncarnation(const std::string& state_dir);
  struct Worker {
    v1::WorkerStatus status;
    absl::Time last_heartbeat;
    uint64_t sequence = 0;         // registration order
    bool drain_requested = false;  // env servers: DrainEnvServer was called
  };
  struct OutstandingLease {
    v1::Lease lease;
    std::string worker_id;
  };
  struct PendingTask {
    std::string task_id;
    bool evaluation = false;
    uint32_t stage = 0;  // 0: current stage
  };

  Coordinator(CoordinatorOptions options, Clock* clock);

  void SweepLocked(std::vector<v1::StageEvent>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::AcquireLeaseResponse> AcquireLeaseLocked(
      const v1::AcquireLeaseRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::StageOptions StageOptionsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::StageEvent StageEventLocked(v1::StageChangeReason reason) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves to stage index `index` (0-based); returns the event to broadcast.
  v1::StageEvent EnterStageLocked(size_t index, v1::StageChangeReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The per-worker limits of AcquireLease (max_leases_per_worker, lease_fair_share):
  // why `worker_id` may not take one more lease (naming the limit), or nullopt when it may.
  std::optional<std::string> LeaseQuotaLocked(const std::string& worker_id, bool eval_only) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<PendingTask> NextTaskLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordMetricLocked(const std::string& name, double value, int64_t step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies the current stage's metric rule to a new value of `name`; may advance.
  void CheckMetricRuleLocked(const std::string& name, double value,
                             std::vector<v1::StageEvent>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double AugmentProbabilityLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Training groups leased but not consumed by the learner, and the bound (0 = none).
  uint64_t GroupsInFlightLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t MaxGroupsInFlightLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateLearnerConsumptionLocked(
      const google::protobuf::RepeatedPtrField<std::string>& consumed_leases,
      uint32_t batch_groups) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Broadcast(const std::vector<v1::StageEvent>& events);
  v1::CoordinatorState SnapshotStateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes step-<learner_step_>.binpb into state_dir (logged on failure, never fatal).
  void PersistLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LedgerLocked(const std::string& json_line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a worker; bumps the fleet generation when it was an env server.
  void EraseWorkerLocked(std::map<std::string, Worker>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const CoordinatorOptions options_;
  Clock* const clock_;

  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, OutstandingLease> leases_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingTask> reissue_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingTask> eval_queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> aborted_leases_ ABSL_GUARDED_BY(mu_);  // re-issued lease ids
  // Current held-out evaluation round: leases still out and valid verdicts so far.
  size_t eval_pending_ ABSL_GUARDED_BY(mu_) = 0;
  size_t eval_total_ ABSL_GUARDED_BY(mu_) = 0;
  size_t eval_valid_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> epoch_order_ ABSL_GUARDED_BY(mu_);
  size_t epoch_cursor_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  size_t stage_index_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stage_start_step_ ABSL_GUARDED_BY(mu_) = 0;
  int metric_streak_ ABSL_GUARDED_BY(mu_) = 0;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int64_t learner_step_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t policy_version_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_eval_step_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_worker_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t incarnation_ ABSL_GUARDED_BY(mu_) = 0;  // 0: no state_dir
  uint64_t fleet_generation_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_lease_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t episodes_completed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t leases_reissued_ ABSL_GUARDED_BY(mu_) = 0;
  // Flow control: training leases whose group the learner has not consumed yet (and whether
  // the lease was completed), and the learner's batch size as last reported.
  struct InFlightGroup {
    bool completed = false;
    v1::Lease lease;  // as issued (replayed by a resumed run)
  };
  std::map<std::string, InFlightGroup> groups_in_flight_ ABSL_GUARDED_BY(mu_);
  // Restored leases to issue again, unchanged but for deadline and minimum version.
  std::deque<v1::Lease> replay_ ABSL_GUARDED_BY(mu_);
  uint32_t learner_batch_groups_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::Metric> metrics_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Metric> latest_metrics_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<std::ofstream> ledger_ ABSL_GUARDED_BY(mu_);

  absl::Mutex listeners_mu_;
  std::map<int, StageListener> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 1;
};

}  // namespace envtune

#endif  // ENVTUNE_COORDINATOR_COORDINATOR_H_
