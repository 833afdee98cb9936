// Coordinator persistence (CoordinatorOptions::state_dir / resume_step, SnapshotState,
// RestoreState): a coordinator restored from its state of learner step k issues exactly the
// leases (ids, tasks, seeds, stages) the uninterrupted coordinator issued after step k, for k
// before, at and after a stage change; leases the learner had not consumed are issued again
// unchanged; states of another curriculum or corrupt files are clear errors.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "tests/coordinator/fake_clock.h"
#include "tests/coordinator/lease_util.h"

namespace envtune {
namespace {

constexpr uint32_t kBatchGroups = 2;
constexpr int kSteps = 6;

CoordinatorOptions Options(const std::string& state_dir) {
  CoordinatorOptions options;
  StageConfig s1;
  s1.stage = 1;
  s1.name = "syntax";
  s1.task_ids = {"a", "b", "c"};
  s1.reward_kind = v1::REWARD_KIND_FORMAT;
  s1.group_size = 2;
  s1.advance.after_learner_steps = 2;
  StageConfig s2;
  s2.stage = 2;
  s2.name = "hints";
  s2.task_ids = {"d", "e", "f", "g", "h"};
  s2.group_size = 3;
  s2.augment_start = 1.0;
  s2.augment_end = 0.0;
  s2.anneal_steps = 4;
  options.stages = {s1, s2};
  options.max_policy_staleness = 0;
  options.seed = 7;
  options.state_dir = state_dir;
  return options;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/coordstate-", name, "-", getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

std::string Register(Coordinator& c, v1::Role role) {
  v1::RegisterRequest request;
  request.set_role(role);
  request.set_address(role == v1::ROLE_LEARNER ? "127.0.0.1:1" : "");
  auto response = c.Register(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? response->worker_id() : "";
}

// What identifies the work a lease asks for.
std::string Describe(const v1::Lease& l) {
  return absl::StrCat(l.lease_id(), " ", l.task_id(), " seed ", l.seed(), " stage ",
                      l.stage().stage(), " n ", l.group_size(), " augment ",
                      l.stage().augment_probability(), " min_version ", l.min_policy_version());
}

// Drives a coordinator like a strictly on-policy run: per learner step, the actor takes every
// lease flow control allows, completes them, and the learner reports the step consuming them.
// Returns the leases issued for steps from_step + 1 .. kSteps, one line each.
std::vector<std::string> Drive(Coordinator& c, int64_t from_step) {
  const std::string learner = Register(c, v1::ROLE_LEARNER);
  const std::string actor = Register(c, v1::ROLE_ACTOR);
  {
    v1::HeartbeatRequest hb;  // the learner's first heartbeat sizes flow control
    hb.set_worker_id(learner);
    hb.set_batch_groups(kBatchGroups);
    EXPECT_TRUE(c.Heartbeat(hb).ok());
  }
  std::vector<std::string> issued;
  for (int64_t step = from_step + 1; step <= kSteps; ++step) {
    std::vector<v1::Lease> leases;
    while (true) {
      v1::AcquireLeaseRequest request;
      request.set_worker_id(actor);
      auto lease = Acquire(c, request);
      if (!lease.ok()) break;
      leases.push_back(*lease);
      issued.push_back(absl::StrCat("step ", step, ": ", Describe(*lease)));
    }
    EXPECT_EQ(leases.size(), kBatchGroups) << "step " << step;
    v1::ReportLearnerStepRequest report;
    report.set_worker_id(learner);
    report.set_step(static_cast<uint64_t>(step));
    report.set_policy_version(static_cast<uint64_t>(step) + 1);
    report.set_batch_groups(kBatchGroups);
    for (const v1::Lease& lease : leases) {
      v1::CompleteLeaseRequest done;
      done.set_worker_id(actor);
      done.set_lease_id(lease.lease_id());
      for (uint32_t i = 0; i < lease.group_size(); ++i) done.add_episodes()->set_reward(0.5);
      EXPECT_TRUE(c.CompleteLease(done).ok());
      report.add_consumed_leases(lease.lease_id());
    }
    v1::Metric* metric = report.add_metrics();
    metric->set_name("reward/mean");
    metric->set_value(0.1 * static_cast<double>(step));
    EXPECT_TRUE(c.ReportLearnerStep(report).ok());
  }
  return issued;
}

TEST(CoordinatorState, ResumedFromStepKIssuesTheSameLeases) {
  const std::string dir = FreshDir("same");
  FakeClock clock;
  auto whole = Coordinator::Create(Options(dir), &clock);
  ASSERT_TRUE(whole.ok()) << whole.status();
  const std::vector<std::string> all = Drive(**whole, 0);
  ASSERT_EQ(all.size(), kSteps * kBatchGroups);
  for (int step = 0; step <= kSteps; ++step) {
    EXPECT_TRUE(std::filesystem::exists(absl::StrCat(dir, "/step-", step, ".binpb"))) << step;
  }
  // Stage 2 starts after learner step 2: resume just before, at and after the change.
  for (int64_t k : {1, 2, 3, 5}) {
    SCOPED_TRACE(absl::StrCat("resumed from step ", k));
    CoordinatorOptions options = Options(dir + "-copy");
    std::filesystem::remove_all(options.state_dir);
    std::filesystem::copy(dir, options.state_dir);
    options.resume_step = k;
    FakeClock later;
    later.Advance(absl::Hours(5));
    auto resumed = Coordinator::Create(options, &later);
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    v1::ClusterStatus status = (*resumed)->Status();
    EXPECT_EQ(status.learner_step(), static_cast<uint64_t>(k));
    EXPECT_EQ(status.stage(), k >= 2 ? 2u : 1u);
    EXPECT_EQ(status.episodes_completed(), k <= 2 ? 4u * k : 8u + 6u * (k - 2));
    const std::vector<std::string> rest = Drive(**resumed, k);
    const std::vector<std::string> expected(all.begin() + k * kBatchGroups, all.end());
    EXPECT_EQ(rest, expected);
    // The metrics history came along.
    bool found = false;
    const v1::ClusterStatus after = (*resumed)->Status();
    for (const v1::Metric& m : after.metrics()) found |= m.name() == "reward/mean";
    EXPECT_TRUE(found);
  }
}

TEST(CoordinatorState, LeasesTheLearnerHadNotConsumedAreIssuedAgainUnchanged) {
  FakeClock clock;
  CoordinatorOptions options = Options("");
  auto a = Coordinator::Create(options, &clock);
  ASSERT_TRUE(a.ok());
  const std::string learner = Register(**a, v1::ROLE_LEARNER);
  const std::string actor = Register(**a, v1::ROLE_ACTOR);
  v1::HeartbeatRequest hb;
  hb.set_worker_id(learner);
  hb.set_batch_groups(kBatchGroups);
  ASSERT_TRUE((*a)->Heartbeat(hb).ok());
  v1::AcquireLeaseRequest request;
  request.set_worker_id(actor);
  auto first = Acquire(**a, request);
  auto second = Acquire(**a, request);
  ASSERT_TRUE(first.ok() && second.ok());
  v1::CompleteLeaseRequest done;  // the first is complete, the second still out
  done.set_worker_id(actor);
  done.set_lease_id(first->lease_id());
  for (uint32_t i = 0; i < first->group_size(); ++i) done.add_episodes();
  ASSERT_TRUE((*a)->CompleteLease(done).ok());
  const v1::CoordinatorState state = (*a)->SnapshotState();
  EXPECT_EQ(state.replay_size(), 2);

  auto b = Coordinator::Create(options, &clock);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->RestoreState(state).ok());
  const std::string learner_b = Register(**b, v1::ROLE_LEARNER);
  const std::string actor_b = Register(**b, v1::ROLE_ACTOR);
  hb.set_worker_id(learner_b);
  ASSERT_TRUE((*b)->Heartbeat(hb).ok());
  request.set_worker_id(actor_b);
  for (const v1::Lease& original : {*first, *second}) {
    auto again = Acquire(**b, request);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->lease_id(), original.lease_id());
    EXPECT_EQ(again->task_id(), original.task_id());
    EXPECT_EQ(again->seed(), original.seed());
    EXPECT_EQ(again->group_size(), original.group_size());
  }
  // Flow control counts them: no third lease before the learner consumes.
  EXPECT_EQ(NoLeaseReasonFor(**b, request), v1::NO_LEASE_REASON_LEARNER_BUSY);
}

TEST(CoordinatorState, StatesOfAnotherRunOrCorruptFilesAreClearErrors) {
  const std::string dir = FreshDir("errors");
  FakeClock clock;
  {
    auto c = Coordinator::Create(Options(dir), &clock);
    ASSERT_TRUE(c.ok());
    Drive(**c, 0);
  }
  CoordinatorOptions options = Options(dir);
  options.resume_step = 99;
  auto missing = Coordinator::Create(options, &clock);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("step-99.binpb"), std::string::npos)
      << missing.status();

  options.resume_step = 3;
  options.seed = 8;
  auto other_seed = Coordinator::Create(options, &clock);
  EXPECT_EQ(other_seed.status().code(), absl::StatusCode::kFailedPrecondition);

  options = Options(dir);
  options.resume_step = 3;
  options.stages[1].task_ids = {"x", "y"};  // the curriculum changed under the saved pass
  auto changed = Coordinator::Create(options, &clock);
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kFailedPrecondition) << changed.status();

  options = Options(dir);
  options.resume_step = 4;
  std::ofstream(dir + "/step-4.binpb", std::ios::trunc) << "\xff\xff garbage";
  EXPECT_EQ(Coordinator::Create(options, &clock).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Inconsistent fields are refused, and nothing changes.
  auto c = Coordinator::Create(Options(""), &clock);
  ASSERT_TRUE(c.ok());
  v1::CoordinatorState bad = (*c)->SnapshotState();
  bad.set_stage_index(9);
  EXPECT_EQ((*c)->RestoreState(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = (*c)->SnapshotState();
  bad.add_epoch_order("a");
  bad.set_epoch_cursor(5);
  EXPECT_EQ((*c)->RestoreState(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = (*c)->SnapshotState();
  bad.set_format(2);
  EXPECT_EQ((*c)->RestoreState(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*c)->Status().stage(), 1u);
}

TEST(CoordinatorState, OldStateFilesArePruned) {
  const std::string dir = FreshDir("prune");
  FakeClock clock;
  CoordinatorOptions options = Options(dir);
  options.state_keep_steps = 2;
  auto c = Coordinator::Create(options, &clock);
  ASSERT_TRUE(c.ok());
  Drive(**c, 0);
  for (int step = 0; step <= kSteps; ++step) {
    EXPECT_EQ(std::filesystem::exists(absl::StrCat(dir, "/step-", step, ".binpb")),
              step > kSteps - 2)
        << step;
  }
}

// Kubernetes restarts the coordinator alone (coordinator.resume_latest on its state volume)
// while actors, env servers and the learner keep the ids they were given: a restarted
// coordinator, resumed from its newest state, from an older one, or started fresh on the same
// directory, never issues an id an earlier incarnation issued.
TEST(CoordinatorState, WorkerIdsNeverRepeatAcrossRestarts) {
  const std::string dir = FreshDir("ids");
  FakeClock clock;
  std::set<std::string> issued;
  auto register_some = [&](Coordinator& c, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string id = Register(c, i % 2 == 0 ? v1::ROLE_ACTOR : v1::ROLE_LEARNER);
      EXPECT_TRUE(issued.insert(id).second) << id << " issued twice";
    }
  };
  int64_t newest = -1;
  for (int start = 1; start <= 4; ++start) {
    CoordinatorOptions options = Options(dir);
    if (start == 3) {
      options.resume_step = 0;  // rolled back to an older state
    } else {
      options.resume_latest = true;
    }
    auto c = Coordinator::Create(options, &clock);
    ASSERT_TRUE(c.ok()) << c.status();
    // The first start had no state to resume: a fresh run at learner step 0, persisted.
    EXPECT_EQ(Coordinator::NewestStateStep(dir), start == 1 ? 0 : newest) << start;
    if (start == 2) EXPECT_EQ((*c)->Status().learner_step(), 6u);  // resumed the newest state
    if (start == 1) Drive(**c, 0);  // learner steps 1..6: states step-0 .. step-6
    register_some(**c, 3);
    newest = Coordinator::NewestStateStep(dir);
    EXPECT_EQ(ReadFileToString(dir + "/incarnation").value_or(""), absl::StrCat(start, "\n"));
  }
  EXPECT_EQ(issued.size(), 4u * 3u);
  for (const std::string& id : issued) EXPECT_TRUE(absl::StrContains(id, "-i")) << id;

  // A damaged incarnation file is a clear error, not a silent restart from 1.
  std::ofstream(dir + "/incarnation") << "not a number";
  auto broken = Coordinator::Create(Options(dir), &clock);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(broken.status().message(), "incarnation")) << broken.status();
}

// Without a state_dir, ids stay w<n> (nothing persists, so nothing to be unique across).
TEST(CoordinatorState, WorkerIdsWithoutAStateDirArePlain) {
  FakeClock clock;
  auto c = Coordinator::Create(Options(""), &clock);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(Register(**c, v1::ROLE_ACTOR), "w1");
  EXPECT_EQ(Register(**c, v1::ROLE_ACTOR), "w2");
}

}  // namespace
}  // namespace envtune
