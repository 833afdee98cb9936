// The actor role end to end, in one process: a real CoordinatorService and LearnerService, fake
// env replicas, a tiny random policy published as version 1. The actor registers, takes leases,
// fetches weights, rolls out, pushes trajectories and completes the leases; a lease asking for
// a version the learner cannot provide is delivered as failed, naming the learner.
#include "actor/actor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "coordinator/service.h"
#include "learner/learner_service.h"
#include "model/weights_io.h"
#include "tests/actor/fake_env.h"
#include "tests/actor/tiny_policy.h"
#include "tests/services/test_server.h"

namespace envtune {
namespace {

CoordinatorOptions Curriculum() {
  CoordinatorOptions options;
  StageConfig stage;
  stage.stage = 1;
  stage.name = "syntax";
  stage.task_ids = {"fake_2_1", "fake_3_2"};
  stage.group_size = 2;
  stage.reward_kind = v1::REWARD_KIND_FORMAT;
  stage.max_new_tokens = 4;
  stage.max_episode_tokens = 4096;
  options.stages = {stage};
  options.heartbeat_interval = absl::Milliseconds(100);
  options.worker_expiry = absl::Seconds(5);
  options.max_leases_per_worker = 2;
  return options;
}

std::shared_ptr<const WeightSnapshot> Publishable(PolicyImpl& policy, uint64_t version) {
  auto weights = SnapshotPolicyWeights(policy);
  EXPECT_TRUE(weights.ok());
  auto snapshot = std::make_shared<WeightSnapshot>();
  snapshot->version = version;
  snapshot->header = weights->header;
  snapshot->tensors = weights->tensors;
  snapshot->storage = weights->storage;
  return snapshot;
}

class ActorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = testing_actor::LoadTokenizer();
    if (tokenizer_ == nullptr) GTEST_SKIP() << "tokenizer not found";
    coordinator_ = *Coordinator::Create(Curriculum());
    coordinator_service_ = std::make_unique<CoordinatorServiceImpl>(coordinator_.get());
    coordinator_server_ =
        std::make_unique<TestServer>(std::vector<grpc::Service*>{coordinator_service_.get()});
    learner_service_ = std::make_unique<LearnerServiceImpl>(&queue_, &store_);
    learner_server_ =
        std::make_unique<TestServer>(std::vector<grpc::Service*>{learner_service_.get()});
    env_ = std::make_unique<testing_env::FakeEnvServer>(std::make_shared<testing_env::SharedLog>());
    auto policy = testing_actor::TinyPolicy(tokenizer_->vocab_size(), 21,
                                            *tokenizer_->TokenToId("<|im_end|>"));
    ASSERT_TRUE(store_.Publish(Publishable(*policy, 1)).ok());
  }
  void TearDown() override {
    if (coordinator_service_) coordinator_service_->Shutdown();
  }

  ActorOptions Options() {
    ActorOptions o;
    o.coordinator = coordinator_server_->address();
    o.learner = learner_server_->address();
    o.env = env_->address();
    o.tokenizer = testing_actor::TokenizerPath();
    o.rollout.concurrency = 4;
    o.rpc_timeout = absl::Seconds(5);
    o.idle_backoff = absl::Milliseconds(50);
    return o;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  TrajectoryQueue queue_{64};
  WeightStore store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServiceImpl> coordinator_service_;
  std::unique_ptr<TestServer> coordinator_server_;
  std::unique_ptr<LearnerServiceImpl> learner_service_;
  std::unique_ptr<TestServer> learner_server_;
  std::unique_ptr<testing_env::FakeEnvServer> env_;
};

TEST_F(ActorTest, RollsOutLeasesAndPushesTrajectories) {
  auto actor = Actor::Create(Options());
  ASSERT_TRUE(actor.ok()) << actor.status();
  absl::Status run_status;
  std::thread run([&] { run_status = (*actor)->Run(); });
  std::vector<v1::Trajectory> got = queue_.PopBatch(8, 8, absl::Seconds(120));
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((*actor)->leases_completed() < 4 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  (*actor)->Stop();
  run.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  ASSERT_EQ(got.size(), 8u);
  EXPECT_GE((*actor)->leases_completed(), 4);
  std::map<std::string, int> groups;
  for (const v1::Trajectory& t : got) {
    EXPECT_FALSE(t.failed()) << t.error();
    EXPECT_EQ(t.policy_version(), 1u);
    EXPECT_EQ(t.stage(), 1u);
    EXPECT_EQ(t.group_size(), 2u);
    EXPECT_EQ(t.finish_reason(), "done");
    EXPECT_GT(t.prompt_tokens(), 0u);
    EXPECT_EQ(t.episode_id().rfind(t.lease_id() + "/", 0), 0u);
    ++groups[t.group_id()];
  }
  for (const auto& [group, count] : groups) EXPECT_EQ(count, 2) << group;
  v1::ClusterStatus status = coordinator_->Status();
  EXPECT_GE(status.episodes_completed(), 8u);
  bool saw_actor = false;
  for (const auto& w : status.workers()) {
    if (w.role() == v1::ROLE_ACTOR) {
      saw_actor = true;
      EXPECT_EQ(w.policy_version(), 1u);
    }
  }
  EXPECT_TRUE(saw_actor);
}

TEST_F(ActorTest, MissingPolicyVersionFailsTheLeaseNamingTheLearner) {
  // The learner reports version 5 to the coordinator, but only version 1 is published.
  v1::RegisterRequest learner;
  learner.set_role(v1::ROLE_LEARNER);
  learner.set_address("127.0.0.1:9");
  auto registered = coordinator_->Register(learner);
  ASSERT_TRUE(registered.ok());
  v1::ReportLearnerStepRequest step;
  step.set_worker_id(registered->worker_id());
  step.set_step(1);
  step.set_policy_version(5);
  ASSERT_TRUE(coordinator_->ReportLearnerStep(step).ok());

  ActorOptions o = Options();
  o.weights_timeout = absl::Milliseconds(300);
  o.policy.poll_interval = absl::Milliseconds(50);
  o.max_leases = 1;
  auto actor = Actor::Create(o);
  ASSERT_TRUE(actor.ok());
  std::thread run([&] { (void)(*actor)->Run(); });
  std::vector<v1::Trajectory> got = queue_.PopBatch(2, 2, absl::Seconds(60));
  (*actor)->Stop();
  run.join();
  ASSERT_EQ(got.size(), 2u);
  for (const v1::Trajectory& t : got) {
    EXPECT_TRUE(t.failed());
    EXPECT_EQ(t.finish_reason(), "policy_error");
    EXPECT_NE(t.error().find("learner " + learner_server_->address()), std::string::npos)
        << t.error();
    EXPECT_NE(t.error().find("GetWeights"), std::string::npos);
  }
}

// A KV budget smaller than one episode (max_episode_tokens 4096 from the stage x the tiny
// policy's bytes per token) stops the actor with an error naming both numbers; its leases are
// left to expire, never delivered as failed episodes.
TEST_F(ActorTest, KvBudgetSmallerThanOneEpisodeStopsTheActorWithTheNumbers) {
  ActorOptions o = Options();
  o.rollout.kv_budget.bytes = 100000;
  auto actor = Actor::Create(o);
  ASSERT_TRUE(actor.ok()) << actor.status();
  absl::Status run_status;
  std::atomic<bool> returned{false};
  std::thread run([&] {
    run_status = (*actor)->Run();
    returned = true;
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!returned && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(returned.load()) << "Run should return by itself";
  (*actor)->Stop();
  run.join();
  EXPECT_EQ(run_status.code(), absl::StatusCode::kResourceExhausted) << run_status;
  // tiny policy: 2 layers x 1 kv head x head_dim 8 x 2 (k, v) x 4 bytes = 128 bytes per token.
  EXPECT_NE(run_status.message().find("needs 524288 bytes"), std::string::npos) << run_status;
  EXPECT_NE(run_status.message().find("4096 tokens"), std::string::npos) << run_status;
  EXPECT_NE(run_status.message().find("KV budget is 100000 bytes"), std::string::npos)
      << run_status;
  EXPECT_EQ((*actor)->episodes_pushed(), 0);
  EXPECT_EQ((*actor)->leases_completed(), 0);
}

TEST(ActorOptionsTest, ConfigKeysAndErrors) {
  auto config = Config::FromString(
      "actor:\n  concurrency: 8\n  temperature: 0.7\n  output_format: hermes\n"
      "  max_episode_seconds: 12\n  device: cpu\n");
  ASSERT_TRUE(config.ok());
  ConfigReader reader(*config);
  ActorOptions o;
  ReadActorOptions(reader, &o);
  EXPECT_TRUE(reader.Finish().ok()) << reader.Finish();
  EXPECT_EQ(o.rollout.concurrency, 8);
  EXPECT_DOUBLE_EQ(o.rollout.temperature, 0.7);
  EXPECT_EQ(o.output_format, v1::OUTPUT_FORMAT_HERMES);
  EXPECT_EQ(o.rollout.max_episode_time, absl::Seconds(12));
  EXPECT_TRUE(o.rollout.kv_budget.unlimited());  // the default
  for (const auto& [text, bytes, fraction] :
       {std::tuple{"4GiB", int64_t{4} << 30, 0.0}, std::tuple{"0.9", int64_t{0}, 0.9},
        std::tuple{"90%", int64_t{0}, 0.9}}) {
    auto budget = Config::FromString(absl::StrCat("actor:\n  kv_budget: ", text, "\n"));
    ASSERT_TRUE(budget.ok());
    ConfigReader budget_reader(*budget);
    ActorOptions b;
    ReadActorOptions(budget_reader, &b);
    EXPECT_TRUE(budget_reader.Finish().ok()) << text;
    EXPECT_EQ(b.rollout.kv_budget.bytes, bytes) << text;
    EXPECT_DOUBLE_EQ(b.rollout.kv_budget.fraction, fraction) << text;
  }

  auto bad = Config::FromString(
      "actor:\n  concurency: 8\n  output_format: xml\n  top_p: 2\n  kv_budget: 12\n");
  ASSERT_TRUE(bad.ok());
  ConfigReader bad_reader(*bad);
  ReadActorOptions(bad_reader, &o);
  absl::Status st = bad_reader.Finish();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("concurency"), std::string::npos) << st;
  EXPECT_NE(st.message().find("output_format"), std::string::npos) << st;
  EXPECT_NE(st.message().find("top_p"), std::string::npos) << st;
  EXPECT_NE(st.message().find("actor.kv_budget: KV budget '12'"), std::string::npos) << st;
}

TEST(ActorOptionsTest, EpisodeOptionsFollowTheLease) {
  v1::Lease lease;
  lease.set_seed(1000);
  lease.mutable_stage()->set_reward_kind(v1::REWARD_KIND_FORMAT);
  lease.mutable_stage()->set_augment_probability(0.25);
  lease.mutable_stage()->set_max_steps_per_turn(3);
  ActorOptions o;
  v1::EpisodeOptions e = EpisodeOptionsForLease(lease, 7, o);
  EXPECT_EQ(e.seed(), 1007u);
  EXPECT_EQ(e.reward_kind(), v1::REWARD_KIND_FORMAT);
  EXPECT_DOUBLE_EQ(e.augment_probability(), 0.25);
  EXPECT_EQ(e.max_steps_per_turn(), 3u);
  EXPECT_FALSE(e.bfcl_eval_semantics());
  lease.set_evaluation(true);
  lease.mutable_stage()->set_reward_kind(v1::REWARD_KIND_PROGRESS);
  e = EpisodeOptionsForLease(lease, 0, o);
  EXPECT_TRUE(e.bfcl_eval_semantics());
  EXPECT_EQ(e.reward_kind(), v1::REWARD_KIND_PROGRESS);
}

}  // namespace
}  // namespace envtune
