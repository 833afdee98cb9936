// Loopback tests: CoordinatorService and LearnerService served in-process on port 0, every RPC
// called through a real channel, malformed requests included.
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordinator/service.h"
#include "learner/learner_service.h"
#include "tests/common/security_test_util.h"
#include "tests/services/test_server.h"

namespace envtune {
namespace {

class CoordinatorLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Admin RPCs need the admin token (common/security.h); worker RPCs stay open here.
    const std::string admin_token_file = ::testing::TempDir() + "/coordinator_loopback-admin-token";
    ASSERT_TRUE(WritePrivateFile(admin_token_file, "s3cret-admin-token-0123456789").ok());
    SecurityOptions security;
    security.admin_token_file = admin_token_file;
    security_ = std::make_unique<testing_util::ScopedProcessSecurity>(
        testing_util::LoadOrDie(security));
    coordinator_ = *Coordinator::Create(SmallCurriculum());
    service_ = std::make_unique<CoordinatorServiceImpl>(coordinator_.get());
    server_ = std::make_unique<TestServer>(std::vector<grpc::Service*>{service_.get()});
    stub_ = v1::CoordinatorService::NewStub(server_->Channel());
  }
  void TearDown() override {
    service_->Shutdown();
    server_.reset();
  }

  std::unique_ptr<testing_util::ScopedProcessSecurity> security_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServiceImpl> service_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;
};

TEST_F(CoordinatorLoopbackTest, EveryRpcAndItsErrors) {
  v1::RegisterRequest bad_register;
  v1::RegisterResponse registered;
  grpc::Status status = stub_->Register(ContextWithDeadline().get(), bad_register, &registered);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("role"), std::string::npos);

  v1::RegisterRequest actor;
  actor.set_role(v1::ROLE_ACTOR);
  actor.set_name("actor-0");
  ASSERT_TRUE(stub_->Register(ContextWithDeadline().get(), actor, &registered).ok());
  const std::string actor_id = registered.worker_id();
  v1::RegisterRequest learner;
  learner.set_role(v1::ROLE_LEARNER);
  learner.set_address("127.0.0.1:9");
  ASSERT_TRUE(stub_->Register(ContextWithDeadline().get(), learner, &registered).ok());
  const std::string learner_id = registered.worker_id();

  v1::HeartbeatRequest heartbeat;
  v1::HeartbeatResponse beat;
  heartbeat.set_worker_id("ghost");
  EXPECT_EQ(stub_->Heartbeat(ContextWithDeadline().get(), heartbeat, &beat).error_code(),
            grpc::StatusCode::NOT_FOUND);
  heartbeat.set_worker_id(actor_id);
  ASSERT_TRUE(stub_->Heartbeat(ContextWithDeadline().get(), heartbeat, &beat).ok());
  EXPECT_EQ(beat.stage(), 1u);

  v1::AcquireLeaseRequest acquire;
  v1::AcquireLeaseResponse leased;
  EXPECT_EQ(stub_->AcquireLease(ContextWithDeadline().get(), acquire, &leased).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  acquire.set_worker_id(actor_id);
  ASSERT_TRUE(stub_->AcquireLease(ContextWithDeadline().get(), acquire, &leased).ok());
  EXPECT_EQ(leased.lease().task_id(), "multi_turn_base_0");
  EXPECT_EQ(leased.lease().group_size(), 2u);

  v1::CompleteLeaseRequest complete;
  v1::CompleteLeaseResponse completed;
  complete.set_worker_id(actor_id);
  complete.set_lease_id("L999");
  EXPECT_EQ(stub_->CompleteLease(ContextWithDeadline().get(), complete, &completed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  complete.set_lease_id(leased.lease().lease_id());
  complete.add_episodes()->set_reward(1.0);
  EXPECT_EQ(stub_->CompleteLease(ContextWithDeadline().get(), complete, &completed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  complete.add_episodes()->set_reward(0.0);
  EXPECT_TRUE(stub_->CompleteLease(ContextWithDeadline().get(), complete, &completed).ok());

  v1::ReportLearnerStepRequest step;
  v1::ReportLearnerStepResponse stepped;
  step.set_worker_id(actor_id);
  EXPECT_EQ(stub_->ReportLearnerStep(ContextWithDeadline().get(), step, &stepped).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  step.set_worker_id(learner_id);
  step.set_step(1);
  step.set_policy_version(1);
  ASSERT_TRUE(stub_->ReportLearnerStep(ContextWithDeadline().get(), step, &stepped).ok());

  v1::ClusterStatus cluster;
  ASSERT_TRUE(
      stub_->GetStatus(ContextWithDeadline().get(), v1::GetStatusRequest(), &cluster).ok());
  EXPECT_EQ(cluster.workers_size(), 2);
  EXPECT_EQ(cluster.policy_version(), 1u);
  EXPECT_EQ(cluster.episodes_completed(), 2u);

  // Admin RPCs: no token, a wrong token, the right token.
  v1::SetStageRequest set_stage;
  set_stage.set_stage(2);
  v1::StageEvent event;
  EXPECT_EQ(stub_->SetStage(ContextWithDeadline().get(), set_stage, &event).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto wrong = ContextWithDeadline();
  wrong->AddMetadata("authorization", "Bearer nope");
  EXPECT_EQ(stub_->SetStage(wrong.get(), set_stage, &event).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto admin = [] {
    auto context = ContextWithDeadline();
    context->AddMetadata("authorization", "Bearer s3cret-admin-token-0123456789");
    return context;
  };
  set_stage.set_stage(7);
  EXPECT_EQ(stub_->SetStage(admin().get(), set_stage, &event).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // WatchStage: the current stage first, then the admin's changes in order.
  grpc::ClientContext watch_context;
  v1::WatchStageRequest watch;
  auto reader = stub_->WatchStage(&watch_context, watch);
  v1::StageEvent seen;
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.stage().stage(), 1u);
  EXPECT_EQ(seen.reason(), v1::STAGE_CHANGE_REASON_INITIAL);
  set_stage.set_stage(2);
  ASSERT_TRUE(stub_->SetStage(admin().get(), set_stage, &event).ok());
  EXPECT_EQ(event.stage().stage(), 2u);
  ASSERT_TRUE(stub_->Pause(admin().get(), v1::PauseRequest(), &event).ok());
  EXPECT_TRUE(event.paused());
  // No work is an OK answer with a typed reason, never an error to match by its text.
  leased.Clear();
  ASSERT_TRUE(stub_->AcquireLease(ContextWithDeadline().get(), acquire, &leased).ok());
  EXPECT_FALSE(leased.has_lease());
  EXPECT_EQ(leased.no_lease(), v1::NO_LEASE_REASON_PAUSED);
  ASSERT_TRUE(stub_->Resume(admin().get(), v1::ResumeRequest(), &event).ok());
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.stage().stage(), 2u);
  EXPECT_EQ(seen.reason(), v1::STAGE_CHANGE_REASON_ADMIN);
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_TRUE(seen.paused());
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_FALSE(seen.paused());
  EXPECT_EQ(seen.reason(), v1::STAGE_CHANGE_REASON_RESUME);
  // Server shutdown ends the watch stream cleanly.
  service_->Shutdown();
  while (reader->Read(&seen)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
}

v1::Trajectory MakeTrajectory(const std::string& id, uint64_t version, int tokens) {
  v1::Trajectory t;
  t.set_episode_id(id);
  t.set_lease_id("L1");
  t.set_group_id("L1");
  t.set_group_size(1);
  t.set_task_id("multi_turn_base_0");
  t.set_stage(2);
  t.set_policy_version(version);
  std::string mask;
  for (int i = 0; i < tokens; ++i) {
    t.add_token_ids(i + 10);
    mask.push_back(i >= tokens / 2 ? 1 : 0);
    t.add_behaviour_logprobs(i >= tokens / 2 ? -0.5f : 0.0f);
  }
  t.set_loss_mask(mask);
  t.set_prompt_tokens(tokens / 2);
  t.set_reward(0.5);
  return t;
}

std::shared_ptr<const WeightSnapshot> Snapshot(uint64_t version, size_t bytes) {
  v1::WeightsHeader header;
  v1::TensorHeader* tensor = header.add_tensors();
  tensor->set_name("model.embed_tokens.weight");
  tensor->set_dtype("F32");
  tensor->add_shape(static_cast<int64_t>(bytes / 4));
  tensor->set_byte_size(bytes);
  header.set_total_bytes(bytes);
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 7 + version);
  return WeightSnapshot::FromContiguous(version, version, std::move(header), std::move(data));
}

// One pushed trajectory with a token id past the policy's vocabulary used to pass validation and
// kill the learner when it trained on it (the reliability probe's 40-byte attack). The service
// now refuses it on the stream, naming the token; ids inside the vocabulary are accepted.
// Open WatchStage streams are bounded in all (coordinator.max_watch_streams) and per worker id
// (max_watch_streams_per_worker): one beyond is RESOURCE_EXHAUSTED naming the bound; a closed
// stream frees its slot.
TEST(CoordinatorWatchLimitsTest, StreamsBeyondTheBoundsAreResourceExhausted) {
  CoordinatorOptions options = SmallCurriculum();
  options.max_watch_streams = 3;
  options.max_watch_streams_per_worker = 2;
  std::unique_ptr<Coordinator> coordinator = *Coordinator::Create(options);
  CoordinatorServiceImpl service(coordinator.get());
  TestServer server({&service});
  auto stub = v1::CoordinatorService::NewStub(server.Channel());
  struct Stream {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReader<v1::StageEvent>> reader;
  };
  auto open = [&](const std::string& worker) {
    Stream stream;
    v1::WatchStageRequest request;
    request.set_worker_id(worker);
    stream.reader = stub->WatchStage(stream.context.get(), request);
    return stream;
  };
  auto refused = [](Stream& stream, const std::string& bound) {
    v1::StageEvent event;
    EXPECT_FALSE(stream.reader->Read(&event));
    const grpc::Status status = stream.reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find(bound), std::string::npos) << status.error_message();
  };
  std::vector<Stream> open_streams;
  v1::StageEvent event;
  for (const char* worker : {"w1", "w1"}) {
    open_streams.push_back(open(worker));
    ASSERT_TRUE(open_streams.back().reader->Read(&event));  // the current stage: it is open
  }
  Stream third_of_w1 = open("w1");
  refused(third_of_w1, "coordinator.max_watch_streams_per_worker = 2");
  open_streams.push_back(open("w2"));
  ASSERT_TRUE(open_streams.back().reader->Read(&event));
  Stream fourth = open("w3");
  refused(fourth, "coordinator.max_watch_streams = 3");

  // A cancelled stream frees its slot (once the server has let go of it).
  open_streams.front().context->TryCancel();
  while (open_streams.front().reader->Read(&event)) {
  }
  EXPECT_EQ(open_streams.front().reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  bool reopened = false;
  for (int attempt = 0; attempt < 50 && !reopened; ++attempt) {
    Stream again = open("w3");
    if (again.reader->Read(&event)) {
      reopened = true;
      open_streams.push_back(std::move(again));
    } else {
      EXPECT_EQ(again.reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(reopened);
  service.Shutdown();
  for (size_t i = 1; i < open_streams.size(); ++i) {
    while (open_streams[i].reader->Read(&event)) {
    }
    EXPECT_TRUE(open_streams[i].reader->Finish().ok());
  }
}

TEST(LearnerLoopbackTest, TokenIdsOutsideTheVocabularyAreRefusedOnTheStream) {
  TrajectoryQueue queue(4);
  WeightStore weights;
  ASSERT_TRUE(weights.Publish(Snapshot(3, 64)).ok());
  LearnerServiceOptions service_options;
  service_options.vocab_size = 16;
  LearnerServiceImpl service(&queue, &weights, service_options);
  TestServer server({&service});
  auto stub = v1::LearnerService::NewStub(server.Channel());
  {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    ASSERT_TRUE(writer->Write(MakeTrajectory("inside", 3, 6)));  // ids 10..15
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(response.accepted(), 1u);
  }
  for (int64_t id : {int64_t{16}, int64_t{2'000'000'000}}) {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    v1::Trajectory bad = MakeTrajectory("outside", 3, 6);
    bad.set_token_ids(2, static_cast<int32_t>(id));
    writer->Write(bad);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << id;
    EXPECT_NE(status.error_message().find(absl::StrCat("token_ids[2] = ", id,
                                                       " outside the vocabulary [0, 16)")),
              std::string::npos)
        << status.error_message();
  }
  EXPECT_EQ(queue.size(), 1u);
}

// Ids are bounded and echoed as excerpts: a 1 MB episode id is a short INVALID_ARGUMENT (an
// unbounded echo overflowed the reply's metadata on the env server), and the stream after it
// is served as before.
TEST(LearnerLoopbackTest, OversizedIdsGetShortClearErrors) {
  TrajectoryQueue queue(4);
  WeightStore weights;
  ASSERT_TRUE(weights.Publish(Snapshot(3, 64)).ok());
  LearnerServiceImpl service(&queue, &weights);
  TestServer server({&service});
  auto stub = v1::LearnerService::NewStub(server.Channel());
  for (const char* field : {"episode_id", "group_id", "lease_id", "task_id"}) {
    v1::Trajectory bad = MakeTrajectory("e", 3, 6);
    const std::string big(field == std::string("episode_id") ? size_t{1} << 20 : 257, 'x');
    if (field == std::string("episode_id")) bad.set_episode_id(big);
    if (field == std::string("group_id")) bad.set_group_id(big);
    if (field == std::string("lease_id")) bad.set_lease_id(big);
    if (field == std::string("task_id")) bad.set_task_id(big);
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    writer->Write(bad);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_NE(status.error_message().find(absl::StrCat(field, " is longer than 256 bytes (",
                                                       big.size(), ")")),
              std::string::npos)
        << status.error_message().substr(0, 300);
    EXPECT_LT(status.error_message().size(), 300u);
  }
  {
    // A group that can never complete would hold its trajectories until group_timeout.
    v1::Trajectory huge_group = MakeTrajectory("g", 3, 6);
    huge_group.set_group_size(4'000'000'000u);
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    writer->Write(huge_group);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("group_size 4000000000 above 1024"), std::string::npos)
        << status.error_message();
  }
  auto context = ContextWithDeadline();
  v1::PushTrajectoriesResponse response;
  auto writer = stub->PushTrajectories(context.get(), &response);
  ASSERT_TRUE(writer->Write(MakeTrajectory("fine", 3, 6)));
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(queue.size(), 1u);
}

// gRPC sets SO_REUSEPORT by default: two coordinators on one port both bound and served side
// by side (split brain with a stale process). A second server on a port in use fails to start.
TEST(ServerPortTest, ASecondServerCannotShareAPortInUse) {
  TrajectoryQueue queue(1);
  WeightStore weights;
  LearnerServiceImpl first_service(&queue, &weights), second_service(&queue, &weights);
  TestServer first({&first_service});
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  int port = 0;
  builder.AddListeningPort(first.address(), ListeningCredentials(), &port);
  builder.RegisterService(&second_service);
  std::unique_ptr<grpc::Server> second = builder.BuildAndStart();
  EXPECT_EQ(second, nullptr);
  EXPECT_EQ(port, 0);
}

TEST(LearnerLoopbackTest, TrajectoriesWeightsAndVersions) {
  TrajectoryQueue queue(2);
  WeightStore weights;
  LearnerServiceOptions service_options;
  service_options.ledger_path = ::testing::TempDir() + "/learner_ledger.jsonl";
  std::remove(service_options.ledger_path.c_str());
  LearnerServiceImpl service(&queue, &weights, service_options);
  TestServer server({&service});
  auto stub = v1::LearnerService::NewStub(server.Channel());

  // Before any weights: version 0 and UNAVAILABLE weights.
  v1::GetPolicyVersionResponse version;
  ASSERT_TRUE(stub->GetPolicyVersion(ContextWithDeadline().get(), {}, &version).ok());
  EXPECT_EQ(version.version(), 0u);
  {
    auto context = ContextWithDeadline();
    auto reader = stub->GetWeights(context.get(), v1::GetWeightsRequest());
    v1::WeightsChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  ASSERT_TRUE(weights.Publish(Snapshot(3, 10'000)).ok());
  EXPECT_FALSE(weights.Publish(Snapshot(2, 8)).ok());

  // Full weights in chunks of 4 KiB, then "not modified" for the same version.
  {
    auto context = ContextWithDeadline();
    v1::GetWeightsRequest request;
    request.set_chunk_bytes(4096);
    auto reader = stub->GetWeights(context.get(), request);
    v1::WeightsChunk chunk;
    std::string data;
    int chunks = 0;
    bool header = false, last = false;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.version(), 3u);
      header |= chunk.has_header();
      data += chunk.data();
      last = chunk.last();
      ++chunks;
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_TRUE(header);
    EXPECT_TRUE(last);
    EXPECT_EQ(chunks, 4);  // header + 4096 + 4096 + 1808
    EXPECT_EQ(data, std::string(weights.Latest()->tensors[0]));
  }
  {
    auto context = ContextWithDeadline();
    v1::GetWeightsRequest request;
    request.set_known_version(3);
    auto reader = stub->GetWeights(context.get(), request);
    v1::WeightsChunk chunk;
    ASSERT_TRUE(reader->Read(&chunk));
    EXPECT_TRUE(chunk.not_modified());
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_TRUE(reader->Finish().ok());
  }

  // Trajectories: valid ones are queued whatever their age (the learner drops stale groups
  // whole, when it forms a batch), a malformed one ends the stream with INVALID_ARGUMENT naming
  // the field.
  {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    ASSERT_TRUE(writer->Write(MakeTrajectory("e1", 3, 8)));
    ASSERT_TRUE(writer->Write(MakeTrajectory("old", 1, 8)));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(response.accepted(), 2u);
    EXPECT_EQ(response.discarded(), 0u);
  }
  {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    v1::Trajectory bad = MakeTrajectory("bad", 3, 8);
    bad.mutable_loss_mask()->pop_back();
    writer->Write(bad);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("loss_mask"), std::string::npos);
  }
  {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    writer->Write(MakeTrajectory("future", 9, 8));
    writer->WritesDone();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }

  // Backpressure: the queue (capacity 2) is full; a third trajectory waits until the consumer
  // pops, then the stream completes.
  {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    ASSERT_TRUE(writer->Write(MakeTrajectory("e3", 3, 8)));
    writer->WritesDone();
    std::thread consumer([&queue] {
      absl::SleepFor(absl::Milliseconds(200));
      auto batch = queue.PopBatch(2, 2, absl::Seconds(5));
      EXPECT_EQ(batch.size(), 2u);
    });
    ASSERT_TRUE(writer->Finish().ok());
    consumer.join();
    EXPECT_EQ(response.accepted(), 1u);
    auto rest = queue.PopBatch(1, 10, absl::Seconds(5));
    ASSERT_EQ(rest.size(), 1u);
    EXPECT_EQ(rest[0].episode_id(), "e3");
  }
  EXPECT_EQ(service.accepted(), 3u);

  // Once the learner stops training (queue closed), streams are still read to the end (so
  // actors can close theirs) and every trajectory is discarded and counted, never lost.
  queue.Close();
  {
    auto context = ContextWithDeadline();
    v1::PushTrajectoriesResponse response;
    auto writer = stub->PushTrajectories(context.get(), &response);
    ASSERT_TRUE(writer->Write(MakeTrajectory("late1", 3, 8)));
    ASSERT_TRUE(writer->Write(MakeTrajectory("late2", 3, 8)));
    ASSERT_TRUE(writer->Write(MakeTrajectory("late3", 3, 8)));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(response.accepted(), 0u);
    EXPECT_EQ(response.discarded(), 3u);
  }
  EXPECT_EQ(service.discarded(), 3u);

  // The ledger lists every trajectory read, in order, with what became of it.
  std::ifstream ledger(service_options.ledger_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(ledger, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_NE(lines[0].find("\"episode\":\"e1\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"stage\":2,\"version\":3"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"episode\":\"old\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\"disposition\":\"queued\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\"episode\":\"e3\""), std::string::npos) << lines[2];
  EXPECT_NE(lines[5].find("\"episode\":\"late3\""), std::string::npos) << lines[5];
  EXPECT_NE(lines[5].find("\"disposition\":\"discarded\""), std::string::npos) << lines[5];
}

}  // namespace
}  // namespace envtune
