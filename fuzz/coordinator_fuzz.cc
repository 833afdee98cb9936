// libFuzzer target for CoordinatorService below gRPC (the Coordinator the handlers call): a
// sequence of operations (Register, Heartbeat, AcquireLease, CompleteLease, ReportLearnerStep,
// SetStage, Pause/Resume, Status, DrainEnvServer, state snapshot/restore, clock moves), each
// either built from fuzzed fields aimed at live workers and leases, or a request parsed from
// raw fuzzed bytes. Afterwards the status must stay small. Never a crash, hang or leak.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"

namespace {

class FuzzClock : public envtune::Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

envtune::CoordinatorOptions Options(FuzzedDataProvider& in) {
  envtune::CoordinatorOptions o;
  const int stages = in.ConsumeIntegralInRange(1, 4);
  for (int i = 0; i < stages; ++i) {
    envtune::StageConfig s;
    s.stage = i + 1;
    s.name = "s" + std::to_string(i + 1);
    for (int t = in.ConsumeIntegralInRange(1, 4); t > 0; --t) s.task_ids.push_back("t" + std::to_string(t));
    s.reward_kind =
        in.ConsumeBool() ? envtune::v1::REWARD_KIND_FORMAT : envtune::v1::REWARD_KIND_PROGRESS;
    s.group_size = in.ConsumeIntegralInRange<uint32_t>(1, 8);
    s.anneal_steps = in.ConsumeIntegralInRange<int64_t>(0, 4);
    s.augment_end = in.ConsumeProbability<double>();
    s.advance.after_learner_steps = in.ConsumeIntegralInRange<int64_t>(0, 3);
    if (in.ConsumeBool()) s.advance.metric = "reward/mean";
    s.advance.threshold = in.ConsumeFloatingPointInRange<double>(-1, 1);
    s.advance.consecutive_checks = in.ConsumeIntegralInRange(1, 3);
    o.stages.push_back(s);
  }
  o.worker_expiry = absl::Seconds(10);
  o.lease_timeout = absl::Seconds(in.ConsumeIntegralInRange(1, 60));
  o.max_leases_per_worker = in.ConsumeIntegralInRange<uint32_t>(1, 8);
  o.lease_fair_share = in.ConsumeBool();
  o.max_inflight_groups = in.ConsumeIntegralInRange<uint64_t>(0, 6);
  o.max_policy_staleness = in.ConsumeIntegralInRange<uint64_t>(0, 2);
  o.max_learner_steps = in.ConsumeIntegralInRange<int64_t>(0, 10);
  o.max_workers = in.ConsumeIntegralInRange<size_t>(1, 16);
  if (in.ConsumeBool()) {
    o.eval_every_steps = in.ConsumeIntegralInRange<int64_t>(1, 3);
    o.eval_task_ids = {"e1", "e2"};
  }
  o.seed = in.ConsumeIntegral<uint64_t>();
  return o;
}

template <typename T>
const T& Pick(FuzzedDataProvider& in, const std::vector<T>& v) {
  return v[in.ConsumeIntegralInRange<size_t>(0, v.size() - 1)];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace v1 = envtune::v1;
  FuzzedDataProvider in(data, size);
  FuzzClock clock;
  absl::StatusOr<std::unique_ptr<envtune::Coordinator>> created =
      envtune::Coordinator::Create(Options(in), &clock);
  if (!created.ok()) return 0;
  envtune::Coordinator& c = **created;
  std::vector<std::string> workers = {"w1"};
  std::vector<v1::Lease> leases;
  for (int op = 0; op < 64 && in.remaining_bytes() > 0; ++op) {
    const bool raw = in.ConsumeIntegralInRange(0, 9) == 0;
    switch (in.ConsumeIntegralInRange(0, 12)) {
      case 0: {
        v1::RegisterRequest r;
        if (raw) {
          (void)r.ParseFromString(in.ConsumeRandomLengthString(512));
        } else {
          r.set_role(static_cast<v1::Role>(in.ConsumeIntegralInRange(0, 5)));
          r.set_name(in.ConsumeRandomLengthString(300));
          if (in.ConsumeBool()) r.set_address("127.0.0.1:" + std::to_string(in.ConsumeIntegral<uint16_t>()));
        }
        absl::StatusOr<v1::RegisterResponse> res = c.Register(r);
        if (res.ok()) workers.push_back(res->worker_id());
        break;
      }
      case 1: {
        v1::HeartbeatRequest r;
        if (raw) {
          (void)r.ParseFromString(in.ConsumeRandomLengthString(1024));
        } else {
          r.set_worker_id(Pick(in, workers));
          r.set_serving_state(static_cast<v1::ServingState>(in.ConsumeIntegralInRange(0, 4)));
          r.set_batch_groups(in.ConsumeIntegralInRange<uint32_t>(0, 4));
          for (int m = in.ConsumeIntegralInRange(0, 3); m > 0; --m) {
            v1::Metric* metric = r.add_metrics();
            metric->set_name(in.ConsumeBool() ? "reward/mean" : in.ConsumeRandomLengthString(40));
            metric->set_value(in.ConsumeFloatingPoint<double>());
          }
          for (int l = in.ConsumeIntegralInRange(0, 2); l > 0 && !leases.empty(); --l) {
            r.add_consumed_leases(Pick(in, leases).lease_id());
          }
        }
        (void)c.Heartbeat(r);
        break;
      }
      case 2:
      case 3: {
        v1::AcquireLeaseRequest r;
        if (raw) {
          (void)r.ParseFromString(in.ConsumeRandomLengthString(64));
        } else {
          r.set_worker_id(Pick(in, workers));
        }
        absl::StatusOr<v1::AcquireLeaseResponse> got = c.AcquireLease(r);
        if (got.ok() && got->has_lease()) leases.push_back(got->lease());
        break;
      }
      case 4: {
        v1::CompleteLeaseRequest r;
        if (raw || leases.empty()) {
          (void)r.ParseFromString(in.ConsumeRandomLengthString(1024));
        } else {
          const v1::Lease& lease = Pick(in, leases);
          r.set_worker_id(Pick(in, workers));
          r.set_lease_id(lease.lease_id());
          uint32_t n = in.ConsumeBool() ? lease.group_size() : in.ConsumeIntegralInRange<uint32_t>(0, 9);
          for (uint32_t i = 0; i < n; ++i) {
            v1::EpisodeStats* e = r.add_episodes();
            e->set_reward(in.ConsumeFloatingPointInRange<double>(-3, 3));
            e->set_progress(in.ConsumeProbability<double>());
            e->set_valid(in.ConsumeBool());
            e->set_tokens(in.ConsumeIntegral<uint32_t>());
          }
        }
        (void)c.CompleteLease(r);
        break;
      }
      case 5: {
        v1::ReportLearnerStepRequest r;
        if (raw) {
          (void)r.ParseFromString(in.ConsumeRandomLengthString(1024));
        } else {
          r.set_worker_id(Pick(in, workers));
          r.set_step(in.ConsumeIntegralInRange<uint64_t>(0, 12));
          r.set_policy_version(in.ConsumeIntegralInRange<uint64_t>(0, 14));
          for (int l = in.ConsumeIntegralInRange(0, 2); l > 0 && !leases.empty(); --l) {
            r.add_consumed_leases(Pick(in, leases).lease_id());
          }
          if (in.ConsumeBool()) {
            v1::Metric* metric = r.add_metrics();
            metric->set_name("reward/mean");
            metric->set_value(in.ConsumeFloatingPoint<double>());
          }
        }
        (void)c.ReportLearnerStep(r);
        break;
      }
      case 6:
        (void)c.SetStage(in.ConsumeIntegralInRange<uint32_t>(0, 6));
        break;
      case 7:
        (void)(in.ConsumeBool() ? c.Pause() : c.Resume());
        break;
      case 8:
        clock.Advance(absl::Milliseconds(in.ConsumeIntegralInRange(0, 30000)));
        c.Sweep();
        break;
      case 9: {
        v1::DrainEnvServerRequest r;
        if (raw) {
          (void)r.ParseFromString(in.ConsumeRandomLengthString(256));
        } else {
          r.set_worker_id(Pick(in, workers));
        }
        (void)c.DrainEnvServer(r);
        (void)c.ListEnvServers();
        break;
      }
      case 10: {
        // Restore a snapshot (possibly tampered with) into a fresh coordinator's place.
        v1::CoordinatorState state = c.SnapshotState();
        std::string bytes = state.SerializeAsString();
        if (raw && !bytes.empty()) {
          bytes[in.ConsumeIntegralInRange<size_t>(0, bytes.size() - 1)] ^= in.ConsumeIntegral<uint8_t>();
        }
        v1::CoordinatorState parsed;
        if (parsed.ParseFromString(bytes)) (void)c.RestoreState(parsed);
        break;
      }
      default:
        (void)c.Status();
        (void)c.CurrentStageEvent();
        break;
    }
  }
  // Invariant: the status stays well under gRPC's 64 MiB message limit.
  v1::ClusterStatus status = c.Status();
  if (status.ByteSizeLong() > (size_t{1} << 26)) std::abort();
  return 0;
}
