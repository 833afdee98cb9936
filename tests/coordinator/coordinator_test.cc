#include "coordinator/coordinator.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/fake_clock.h"
#include "tests/coordinator/lease_util.h"

namespace envtune {
namespace {

CoordinatorOptions TwoStageOptions() {
  CoordinatorOptions options;
  StageConfig s1;
  s1.stage = 1;
  s1.name = "syntax";
  s1.task_ids = {"a", "b", "c"};
  s1.reward_kind = v1::REWARD_KIND_FORMAT;
  s1.group_size = 4;
  s1.advance.after_learner_steps = 2;
  StageConfig s2;
  s2.stage = 2;
  s2.name = "hints";
  s2.task_ids = {"d", "e"};
  s2.group_size = 2;
  s2.augment_start = 1.0;
  s2.augment_end = 0.0;
  s2.anneal_steps = 10;
  s2.advance.metric = "eval/accuracy";
  s2.advance.threshold = 0.5;
  s2.advance.consecutive_checks = 2;
  options.stages = {s1, s2};
  options.worker_expiry = absl::Seconds(10);
  options.lease_timeout = absl::Seconds(60);
  return options;
}

std::string RegisterWorker(Coordinator& c, v1::Role role, const std::string& address = "") {
  v1::RegisterRequest request;
  request.set_role(role);
  request.set_address(address);
  auto response = c.Register(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response->worker_id();
}

v1::CompleteLeaseRequest Completion(const std::string& worker, const v1::Lease& lease,
                                    double reward) {
  v1::CompleteLeaseRequest request;
  request.set_worker_id(worker);
  request.set_lease_id(lease.lease_id());
  for (uint32_t i = 0; i < lease.group_size(); ++i) {
    v1::EpisodeStats* stats = request.add_episodes();
    stats->set_reward(reward);
    stats->set_valid(reward > 0.5);
  }
  return request;
}

TEST(CoordinatorTest, RejectsBadCurriculum) {
  CoordinatorOptions options = TwoStageOptions();
  options.stages[1].stage = 3;
  EXPECT_EQ(Coordinator::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = TwoStageOptions();
  options.stages[0].task_ids.clear();
  auto created = Coordinator::Create(options);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(created.status().message()).find("stages[0].tasks"), std::string::npos);
  options = TwoStageOptions();
  options.stages[0].reward_kind = v1::REWARD_KIND_BINARY;  // the binary end-of-episode reward
  EXPECT_TRUE(Coordinator::Create(options).ok());
  options.stages[0].reward_kind = v1::REWARD_KIND_UNSPECIFIED;
  EXPECT_EQ(Coordinator::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Coordinator::Create(CoordinatorOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CoordinatorTest, RegisterValidatesRequests) {
  FakeClock clock;
  auto c = *Coordinator::Create(TwoStageOptions(), &clock);
  v1::RegisterRequest request;
  EXPECT_EQ(c->Register(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_role(v1::ROLE_ENV_SERVER);
  EXPECT_EQ(c->Register(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_address("127.0.0.1:1");
  EXPECT_TRUE(c->Register(request).ok());
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id("nope");
  EXPECT_EQ(c->Heartbeat(heartbeat).status().code(), absl::StatusCode::kNotFound);
}

// What one worker puts into every GetStatus reply is bounded: two registrations with 40 MB
// names once pushed GetStatus past gRPC's 64 MiB limit and ended a run.
TEST(CoordinatorTest, WorkerFieldsAndMetricsAreBounded) {
  FakeClock clock;
  auto c = *Coordinator::Create(TwoStageOptions(), &clock);
  v1::RegisterRequest request;
  request.set_role(v1::ROLE_ACTOR);
  request.set_name(std::string(40 << 20, 'x'));
  absl::StatusOr<v1::RegisterResponse> big = c->Register(request);
  ASSERT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("limited to 256 bytes"), std::string::npos);
  request.set_name(std::string(256, 'x'));
  absl::StatusOr<v1::RegisterResponse> ok = c->Register(request);
  ASSERT_TRUE(ok.ok()) << ok.status();
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(ok->worker_id());
  for (int i = 0; i < 257; ++i) heartbeat.add_metrics()->set_name(absl::StrCat("m", i));
  EXPECT_EQ(c->Heartbeat(heartbeat).status().code(), absl::StatusCode::kInvalidArgument);
  heartbeat.clear_metrics();
  heartbeat.add_metrics()->set_name(std::string(257, 'm'));
  EXPECT_EQ(c->Heartbeat(heartbeat).status().code(), absl::StatusCode::kInvalidArgument);
  heartbeat.clear_metrics();
  heartbeat.add_metrics()->set_name("reward/mean");
  EXPECT_TRUE(c->Heartbeat(heartbeat).ok());
  EXPECT_EQ(c->Status().workers(0).name(), std::string(256, 'x'));
}

TEST(CoordinatorTest, LeasesCoverTheStageTasksEachEpoch) {
  FakeClock clock;
  auto c = *Coordinator::Create(TwoStageOptions(), &clock);
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  std::multiset<std::string> tasks;
  for (int i = 0; i < 6; ++i) {
    v1::AcquireLeaseRequest request;
    request.set_worker_id(actor);
    auto lease = Acquire(*c, request);
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(lease->group_size(), 4u);
    EXPECT_EQ(lease->stage().stage(), 1u);
    EXPECT_EQ(lease->stage().reward_kind(), v1::REWARD_KIND_FORMAT);
    tasks.insert(lease->task_id());
    ASSERT_TRUE(c->CompleteLease(Completion(actor, *lease, 1.0)).ok());
  }
  // Two full passes over {a, b, c}.
  EXPECT_EQ(tasks.count("a"), 2u);
  EXPECT_EQ(tasks.count("b"), 2u);
  EXPECT_EQ(tasks.count("c"), 2u);
  EXPECT_EQ(c->Status().episodes_completed(), 24u);
}

TEST(CoordinatorTest, DeadActorsLeaseIsReissuedExactlyOnce) {
  FakeClock clock;
  auto c = *Coordinator::Create(TwoStageOptions(), &clock);
  std::string dying = RegisterWorker(*c, v1::ROLE_ACTOR);
  std::string healthy = RegisterWorker(*c, v1::ROLE_ACTOR);
  v1::AcquireLeaseRequest request;
  request.set_worker_id(dying);
  v1::Lease lost = *Acquire(*c, request);

  // Only the healthy actor keeps heartbeating past the expiry.
  clock.Advance(absl::Seconds(6));
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(healthy);
  ASSERT_TRUE(c->Heartbeat(heartbeat).ok());
  clock.Advance(absl::Seconds(6));
  ASSERT_TRUE(c->Heartbeat(heartbeat).ok());

  request.set_worker_id(healthy);
  v1::Lease redo = *Acquire(*c, request);
  EXPECT_EQ(redo.task_id(), lost.task_id());
  EXPECT_NE(redo.lease_id(), lost.lease_id());
  EXPECT_EQ(c->Status().leases_reissued(), 1u);
  // The dead actor's late completion is refused; the redo completes once.
  EXPECT_EQ(c->CompleteLease(Completion(dying, lost, 1.0)).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(c->CompleteLease(Completion(healthy, redo, 1.0)).ok());
  EXPECT_EQ(c->CompleteLease(Completion(healthy, redo, 1.0)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(c->Status().episodes_completed(), 4u);
}

TEST(CoordinatorTest, FlowControlBoundsGroupsInFlightByTheLearnersConsumption) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.max_policy_staleness = 1;
  auto c = *Coordinator::Create(options, &clock);
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  std::string learner = RegisterWorker(*c, v1::ROLE_LEARNER, "127.0.0.1:1");
  v1::AcquireLeaseRequest acquire;
  acquire.set_worker_id(actor);

  // Before the learner reports its batch size there is no bound.
  EXPECT_EQ(c->Status().max_groups_in_flight(), 0u);
  // The learner trains 2 groups per step: (1 + 1) x 2 = 4 groups may be in flight.
  v1::HeartbeatRequest beat;
  beat.set_worker_id(learner);
  beat.set_batch_groups(2);
  ASSERT_TRUE(c->Heartbeat(beat).ok());
  std::vector<v1::Lease> leases;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<v1::Lease> lease = Acquire(*c, acquire);
    ASSERT_TRUE(lease.ok()) << i << ": " << lease.status();
    leases.push_back(*lease);
  }
  absl::StatusOr<v1::AcquireLeaseResponse> refused = c->AcquireLease(acquire);
  ASSERT_TRUE(refused.ok()) << refused.status();  // no work is an answer, not an error
  EXPECT_FALSE(refused->has_lease());
  EXPECT_EQ(refused->no_lease(), v1::NO_LEASE_REASON_LEARNER_BUSY);
  EXPECT_EQ(refused->detail(), "4 groups in flight (max 4), waiting for the learner");
  EXPECT_EQ(c->Status().groups_in_flight(), 4u);
  EXPECT_EQ(c->Status().max_groups_in_flight(), 4u);

  // Completing a lease does not free a slot; the learner consuming its group does (reports may
  // repeat, and unknown ids are ignored).
  ASSERT_TRUE(c->CompleteLease(Completion(actor, leases[0], 0.0)).ok());
  ASSERT_TRUE(c->CompleteLease(Completion(actor, leases[1], 0.0)).ok());
  EXPECT_EQ(NoLeaseReasonFor(*c, acquire), v1::NO_LEASE_REASON_LEARNER_BUSY);
  v1::ReportLearnerStepRequest step;
  step.set_worker_id(learner);
  step.set_step(1);
  step.set_policy_version(2);
  step.add_consumed_leases(leases[0].lease_id());
  step.add_consumed_leases("L999");
  step.set_batch_groups(2);
  ASSERT_TRUE(c->ReportLearnerStep(step).ok());
  ASSERT_TRUE(c->ReportLearnerStep(step).ok());
  EXPECT_EQ(c->Status().groups_in_flight(), 3u);
  absl::StatusOr<v1::Lease> next = Acquire(*c, acquire);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(NoLeaseReasonFor(*c, acquire), v1::NO_LEASE_REASON_LEARNER_BUSY);

  // A re-issued lease leaves the count (the redo takes its slot).
  v1::HeartbeatRequest actor_beat;
  actor_beat.set_worker_id(actor);
  for (int i = 0; i < 7; ++i) {  // past lease_timeout: leases 2, 3 and `next` are re-issued
    clock.Advance(absl::Seconds(9));
    ASSERT_TRUE(c->Heartbeat(beat).ok());
    ASSERT_TRUE(c->Heartbeat(actor_beat).ok());
  }
  EXPECT_EQ(c->Status().groups_in_flight(), 1u);  // lease 1: completed, not consumed yet

  // A learner registering afresh never receives the completed groups: they leave the count.
  RegisterWorker(*c, v1::ROLE_LEARNER, "127.0.0.1:2");
  EXPECT_EQ(c->Status().groups_in_flight(), 0u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Acquire(*c, acquire).ok()) << i;
  EXPECT_EQ(NoLeaseReasonFor(*c, acquire), v1::NO_LEASE_REASON_LEARNER_BUSY);
}

TEST(CoordinatorTest, FlowControlNeverHoldsBackEvaluationLeases) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.max_inflight_groups = 1;
  options.eval_every_steps = 1;
  options.eval_task_ids = {"x", "y"};
  auto c = *Coordinator::Create(options, &clock);
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  std::string learner = RegisterWorker(*c, v1::ROLE_LEARNER, "127.0.0.1:1");
  v1::AcquireLeaseRequest acquire;
  acquire.set_worker_id(actor);
  ASSERT_TRUE(Acquire(*c, acquire).ok());
  EXPECT_EQ(NoLeaseReasonFor(*c, acquire), v1::NO_LEASE_REASON_LEARNER_BUSY);  // fixed bound 1
  v1::ReportLearnerStepRequest step;
  step.set_worker_id(learner);
  step.set_step(1);
  step.set_policy_version(2);
  ASSERT_TRUE(c->ReportLearnerStep(step).ok());  // schedules an evaluation round
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Lease> lease = Acquire(*c, acquire);
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_TRUE(lease->evaluation());
  }
  EXPECT_EQ(NoLeaseReasonFor(*c, acquire), v1::NO_LEASE_REASON_LEARNER_BUSY);
}

TEST(CoordinatorTest, LedgerRecordsIssuedCompletedAndReissuedLeases) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.ledger_path = ::testing::TempDir() + "/coordinator_ledger.jsonl";
  std::remove(options.ledger_path.c_str());
  auto c = *Coordinator::Create(options, &clock);
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  v1::AcquireLeaseRequest request;
  request.set_worker_id(actor);
  v1::Lease first = *Acquire(*c, request);
  ASSERT_TRUE(c->CompleteLease(Completion(actor, first, 1.0)).ok());
  v1::Lease second = *Acquire(*c, request);
  clock.Advance(absl::Seconds(11));  // the actor expires: its lease is re-issued
  c->Sweep();
  std::ifstream in(options.ledger_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("\"event\":\"issued\",\"lease\":\"" + first.lease_id()),
            std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"stage\":1,\"group_size\":4"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"event\":\"completed\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\"episodes\":4"), std::string::npos) << lines[1];
  EXPECT_NE(lines[3].find("\"event\":\"reissued\",\"lease\":\"" + second.lease_id()),
            std::string::npos) << lines[3];
  options.ledger_path = "/nonexistent-dir/ledger.jsonl";
  EXPECT_EQ(Coordinator::Create(options, &clock).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CoordinatorTest, CompleteLeaseChecksGroupSizeAndOwner) {
  FakeClock clock;
  auto c = *Coordinator::Create(TwoStageOptions(), &clock);
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  std::string other = RegisterWorker(*c, v1::ROLE_ACTOR);
  v1::AcquireLeaseRequest request;
  request.set_worker_id(actor);
  v1::Lease lease = *Acquire(*c, request);
  v1::CompleteLeaseRequest short_group = Completion(actor, lease, 1.0);
  short_group.mutable_episodes()->RemoveLast();
  EXPECT_EQ(c->CompleteLease(short_group).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->CompleteLease(Completion(other, lease, 1.0)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(c->CompleteLease(Completion(actor, lease, 1.0)).ok());
}

// reliability-probe.md §3: CompleteLease with reward 1e300, progress -5 and 4e9 tokens was
// accepted and averaged into the stage's metrics.
TEST(CoordinatorTest, CompleteLeaseRefusesStatisticsOutsideTheirRanges) {
  auto c = Coordinator::Create(TwoStageOptions());
  ASSERT_TRUE(c.ok());
  const std::string actor = RegisterWorker(**c, v1::ROLE_ACTOR);
  v1::AcquireLeaseRequest acquire;
  acquire.set_worker_id(actor);
  auto lease = Acquire(**c, acquire);
  ASSERT_TRUE(lease.ok()) << lease.status();
  struct Case {
    const char* what;
    std::function<void(v1::EpisodeStats*)> set;
  } cases[] = {
      {"reward", [](v1::EpisodeStats* e) { e->set_reward(1e300); }},
      {"reward", [](v1::EpisodeStats* e) { e->set_reward(std::nan("")); }},
      {"progress", [](v1::EpisodeStats* e) { e->set_progress(-5); }},
      {"format_score", [](v1::EpisodeStats* e) { e->set_format_score(3); }},
      {"tool_call_score", [](v1::EpisodeStats* e) { e->set_tool_call_score(-0.1); }},
      {"token counts", [](v1::EpisodeStats* e) { e->set_tokens(4000000000u); }},
  };
  for (const Case& k : cases) {
    v1::CompleteLeaseRequest bad = Completion(actor, *lease, 1.0);
    k.set(bad.mutable_episodes(0));
    absl::Status s = (*c)->CompleteLease(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.what << ": " << s;
    EXPECT_THAT(std::string(s.message()), testing::HasSubstr(k.what));
  }
  // The lease is still outstanding: the honest completion goes through.
  EXPECT_TRUE((*c)->CompleteLease(Completion(actor, *lease, 1.0)).ok());
}

TEST(CoordinatorTest, StagesAdvanceByStepsThenByMetricAndNotifyListeners) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  auto c = *Coordinator::Create(options, &clock);
  std::vector<v1::StageEvent> events;
  c->Subscribe([&events](const v1::StageEvent& e) { events.push_back(e); });
  std::string learner = RegisterWorker(*c, v1::ROLE_LEARNER, "127.0.0.1:2");

  v1::ReportLearnerStepRequest step;
  step.set_worker_id(learner);
  step.set_step(1);
  step.set_policy_version(1);
  EXPECT_EQ(c->ReportLearnerStep(step)->stage(), 1u);
  step.set_step(2);
  step.set_policy_version(2);
  EXPECT_EQ(c->ReportLearnerStep(step)->stage(), 2u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].stage().stage(), 2u);
  EXPECT_EQ(events[0].reason(), v1::STAGE_CHANGE_REASON_STEPS);
  // Stage 2 anneals augmentation from 1 to 0 over 10 steps.
  EXPECT_DOUBLE_EQ(c->CurrentStageEvent().stage().augment_probability(), 1.0);
  step.set_step(7);
  v1::Metric* accuracy = step.add_metrics();
  accuracy->set_name("eval/accuracy");
  accuracy->set_value(0.6);
  EXPECT_EQ(c->ReportLearnerStep(step)->stage(), 2u);  // one check of two
  EXPECT_DOUBLE_EQ(c->CurrentStageEvent().stage().augment_probability(), 0.5);
  EXPECT_FALSE(c->Status().finished());
  step.set_step(8);
  c->ReportLearnerStep(step).IgnoreError();
  EXPECT_TRUE(c->Status().finished());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[1].finished());
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  v1::AcquireLeaseRequest request;
  request.set_worker_id(actor);
  EXPECT_EQ(NoLeaseReasonFor(*c, request), v1::NO_LEASE_REASON_FINISHED);
  // Old steps are rejected.
  step.set_step(3);
  EXPECT_EQ(c->ReportLearnerStep(step).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CoordinatorTest, PauseStopsTrainingLeasesAndEvaluationRoundsReportAccuracy) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.stages[0].advance = AdvanceRule{};
  options.eval_every_steps = 1;
  options.eval_task_ids = {"v1", "v2"};
  auto c = *Coordinator::Create(options, &clock);
  std::string actor = RegisterWorker(*c, v1::ROLE_ACTOR);
  std::string learner = RegisterWorker(*c, v1::ROLE_LEARNER, "127.0.0.1:2");
  c->Pause();
  v1::AcquireLeaseRequest request;
  request.set_worker_id(actor);
  EXPECT_EQ(NoLeaseReasonFor(*c, request), v1::NO_LEASE_REASON_PAUSED);
  c->Resume();
  v1::ReportLearnerStepRequest step;
  step.set_worker_id(learner);
  step.set_step(1);
  ASSERT_TRUE(c->ReportLearnerStep(step).ok());
  v1::Lease e1 = *Acquire(*c, request);
  v1::Lease e2 = *Acquire(*c, request);
  EXPECT_TRUE(e1.evaluation());
  EXPECT_EQ(e1.group_size(), 1u);
  EXPECT_EQ(e1.stage().augment_probability(), 0.0);
  ASSERT_TRUE(c->CompleteLease(Completion(actor, e1, 1.0)).ok());
  ASSERT_TRUE(c->CompleteLease(Completion(actor, e2, 0.0)).ok());
  bool found = false;
  v1::ClusterStatus status = c->Status();
  for (const v1::Metric& m : status.metrics()) {
    if (m.name() == "eval/accuracy") {
      found = true;
      EXPECT_DOUBLE_EQ(m.value(), 0.5);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_FALSE(Acquire(*c, request)->evaluation());
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// Per-worker lease quotas (reliability probe §3: two AcquireLease calls by a rogue actor filled
// the flow-control window and starved the real actors for lease_timeout).
TEST(CoordinatorQuotaTest, OneActorCannotHoardTheWindow) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.max_inflight_groups = 4;
  auto c = *Coordinator::Create(options, &clock);
  const std::string rogue = RegisterWorker(*c, v1::ROLE_ACTOR);
  const std::string honest = RegisterWorker(*c, v1::ROLE_ACTOR);
  RegisterWorker(*c, v1::ROLE_EVALUATOR);  // not an actor: no share of training leases
  v1::AcquireLeaseRequest take_rogue, take_honest;
  take_rogue.set_worker_id(rogue);
  take_honest.set_worker_id(honest);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(Acquire(*c, take_rogue).ok()) << i;
  absl::StatusOr<v1::AcquireLeaseResponse> refused = c->AcquireLease(take_rogue);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->no_lease(), v1::NO_LEASE_REASON_WORKER_QUOTA);
  EXPECT_THAT(refused->detail(),
              testing::HasSubstr("fair share of 4 groups in flight over 2 actors"));
  // The other actor still gets its share.
  std::vector<v1::Lease> honest_leases;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Lease> lease = Acquire(*c, take_honest);
    ASSERT_TRUE(lease.ok()) << i << ": " << lease.status();
    honest_leases.push_back(*lease);
  }
  // The window is full now: the answer is the flow control's, not the quota's.
  EXPECT_EQ(NoLeaseReasonFor(*c, take_honest), v1::NO_LEASE_REASON_LEARNER_BUSY);
  // Completed (not yet consumed) leases do not count against a share, only against the window.
  ASSERT_TRUE(c->CompleteLease(Completion(honest, honest_leases[0], 1.0)).ok());
  EXPECT_EQ(NoLeaseReasonFor(*c, take_honest), v1::NO_LEASE_REASON_LEARNER_BUSY);
  // When the rogue expires its leases go back, and the honest actor (alone now) may take the
  // whole window.
  for (int i = 0; i < 6; ++i) {
    clock.Advance(absl::Seconds(2));
    v1::HeartbeatRequest beat;
    beat.set_worker_id(honest);
    ASSERT_TRUE(c->Heartbeat(beat).ok());
  }
  c->Sweep();
  EXPECT_EQ(c->Status().groups_in_flight(), 2u);  // the honest actor's two
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Lease> lease = Acquire(*c, take_honest);
    ASSERT_TRUE(lease.ok()) << i << ": " << lease.status();
  }
}

TEST(CoordinatorQuotaTest, FairShareCanBeTurnedOffAndHardCapHolds) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.max_inflight_groups = 4;
  options.lease_fair_share = false;
  options.max_leases_per_worker = 3;
  auto c = *Coordinator::Create(options, &clock);
  const std::string a = RegisterWorker(*c, v1::ROLE_ACTOR);
  RegisterWorker(*c, v1::ROLE_ACTOR);
  v1::AcquireLeaseRequest take;
  take.set_worker_id(a);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Acquire(*c, take).ok()) << i;
  absl::StatusOr<v1::AcquireLeaseResponse> refused = c->AcquireLease(take);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->no_lease(), v1::NO_LEASE_REASON_WORKER_QUOTA);
  EXPECT_THAT(refused->detail(),
              testing::HasSubstr("holds 3 leases (coordinator.max_leases_per_worker = 3)"));
  // Without flow control (no learner has reported a batch size) there is no window to share.
  options.max_inflight_groups = 0;
  options.lease_fair_share = true;
  options.max_leases_per_worker = 64;
  auto d = *Coordinator::Create(options, &clock);
  const std::string x = RegisterWorker(*d, v1::ROLE_ACTOR);
  RegisterWorker(*d, v1::ROLE_ACTOR);
  take.set_worker_id(x);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Acquire(*d, take).ok()) << i;
}

// Registrations are bounded (a flood of 1021 Register calls filled the table); expired workers
// free their slots. And at the bounds every worker may fill, a GetStatus reply stays far below
// gRPC's 64 MiB message limit.
TEST(CoordinatorQuotaTest, RegistrationsAreBoundedAndStatusStaysSmall) {
  FakeClock clock;
  CoordinatorOptions options = TwoStageOptions();
  options.max_workers = 3;
  auto c = *Coordinator::Create(options, &clock);
  for (int i = 0; i < 3; ++i) RegisterWorker(*c, v1::ROLE_ACTOR);
  v1::RegisterRequest request;
  request.set_role(v1::ROLE_ACTOR);
  absl::StatusOr<v1::RegisterResponse> full = c->Register(request);
  ASSERT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.status().message()),
              testing::HasSubstr("coordinator.max_workers = 3"));
  clock.Advance(absl::Seconds(11));
  EXPECT_TRUE(c->Register(request).ok());

  options.max_workers = 1024;
  auto big = *Coordinator::Create(options, &clock);
  for (size_t i = 0; i < options.max_workers; ++i) {
    request.set_name(std::string(256, 'n'));
    request.set_address(std::string(256, 'a'));
    absl::StatusOr<v1::RegisterResponse> r = big->Register(request);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    v1::HeartbeatRequest beat;
    beat.set_worker_id(r->worker_id());
    for (int m = 0; m < 64; ++m) {
      v1::Metric* metric = beat.add_metrics();
      metric->set_name(absl::StrCat(m, std::string(250, 'm')));
      metric->set_value(1e300);
    }
    ASSERT_TRUE(big->Heartbeat(beat).ok());
  }
  EXPECT_LT(big->Status().ByteSizeLong(), size_t{32} << 20);
  // The metric names of one heartbeat are bounded together, too.
  v1::HeartbeatRequest beat;
  beat.set_worker_id(big->Status().workers(0).worker_id());
  for (int m = 0; m < 65; ++m) beat.add_metrics()->set_name(std::string(256, 'm'));
  absl::StatusOr<v1::HeartbeatResponse> refused = big->Heartbeat(beat);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), testing::HasSubstr("at most 16384"));
}

}  // namespace
}  // namespace envtune
