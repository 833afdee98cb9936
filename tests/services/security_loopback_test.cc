// TLS and authentication of the services, in-process on loopback port 0 (common/security.h):
// plaintext clients are refused by TLS servers, missing or foreign client certificates by
// mutual-TLS servers, missing or wrong tokens get UNAUTHENTICATED on every RPC that changes
// state or reveals weights (nothing changes), the cluster token cannot call admin RPCs
// (PERMISSION_DENIED), and the right credentials work.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/channels.h"
#include "common/file.h"
#include "coordinator/service.h"
#include "envserver/env_service.h"
#include "learner/learner_service.h"
#include "tests/common/security_test_util.h"
#include "tests/envserver/episode_test_util.h"
#include "tests/services/test_server.h"

namespace envtune {
namespace {

using testing_util::LoadOrDie;
using testing_util::MakeTestSecrets;
using testing_util::ScopedProcessSecurity;
using testing_util::TestSecrets;

std::shared_ptr<const WeightSnapshot> Snapshot(uint64_t version, size_t bytes) {
  v1::WeightsHeader header;
  v1::TensorHeader* tensor = header.add_tensors();
  tensor->set_name("model.embed_tokens.weight");
  tensor->set_dtype("F32");
  tensor->add_shape(static_cast<int64_t>(bytes / 4));
  tensor->set_byte_size(bytes);
  header.set_total_bytes(bytes);
  return WeightSnapshot::FromContiguous(version, version, std::move(header),
                                        std::string(bytes, 'w'));
}

v1::Trajectory OneTrajectory() {
  v1::Trajectory t;
  t.set_episode_id("e1");
  t.set_lease_id("L1");
  t.set_group_id("L1");
  t.set_group_size(1);
  t.set_task_id("multi_turn_base_0");
  t.set_stage(1);
  t.set_policy_version(1);
  for (int i = 0; i < 4; ++i) {
    t.add_token_ids(10 + i);
    t.add_behaviour_logprobs(i >= 2 ? -0.5f : 0.0f);
  }
  t.set_loss_mask(std::string("\0\0\1\1", 4));
  t.set_prompt_tokens(2);
  t.set_reward(1.0);
  return t;
}

// Every RPC the probe abused without credentials, with `security` on the client side. Returns
// each RPC's status code by name.
std::map<std::string, grpc::StatusCode> CallEverything(const std::string& address,
                                                       std::shared_ptr<const Security> security) {
  std::shared_ptr<grpc::Channel> channel =
      MakeChannel(address, ChannelOptions{.round_robin = false, .security = security});
  auto coordinator = v1::CoordinatorService::NewStub(channel);
  auto learner = v1::LearnerService::NewStub(channel);
  std::map<std::string, grpc::StatusCode> codes;

  v1::RegisterRequest fake_learner;
  fake_learner.set_role(v1::ROLE_LEARNER);
  fake_learner.set_name("evil");
  fake_learner.set_address("evil:1");
  v1::RegisterResponse registered;
  codes["Register"] =
      coordinator->Register(ContextWithDeadline(5).get(), fake_learner, &registered).error_code();
  v1::ReportLearnerStepRequest step;
  step.set_worker_id(registered.worker_id());
  step.set_step(10);
  step.set_policy_version(1'000'000'000);
  v1::ReportLearnerStepResponse stepped;
  codes["ReportLearnerStep"] =
      coordinator->ReportLearnerStep(ContextWithDeadline(5).get(), step, &stepped).error_code();
  v1::AcquireLeaseRequest acquire;
  acquire.set_worker_id(registered.worker_id());
  v1::AcquireLeaseResponse lease;
  codes["AcquireLease"] =
      coordinator->AcquireLease(ContextWithDeadline(5).get(), acquire, &lease).error_code();
  v1::ClusterStatus status;
  codes["GetStatus"] =
      coordinator->GetStatus(ContextWithDeadline(5).get(), v1::GetStatusRequest(), &status)
          .error_code();
  {
    auto context = ContextWithDeadline(5);
    auto reader = coordinator->WatchStage(context.get(), v1::WatchStageRequest());
    v1::StageEvent event;
    if (reader->Read(&event)) {
      context->TryCancel();
      while (reader->Read(&event)) {
      }
      codes["WatchStage"] = grpc::StatusCode::OK;
      reader->Finish();
    } else {
      codes["WatchStage"] = reader->Finish().error_code();
    }
  }
  {
    auto context = ContextWithDeadline(5);
    v1::PushTrajectoriesResponse pushed;
    auto writer = learner->PushTrajectories(context.get(), &pushed);
    writer->Write(OneTrajectory());
    writer->WritesDone();
    codes["PushTrajectories"] = writer->Finish().error_code();
  }
  {
    auto context = ContextWithDeadline(5);
    auto reader = learner->GetWeights(context.get(), v1::GetWeightsRequest());
    v1::WeightsChunk chunk;
    while (reader->Read(&chunk)) {
    }
    codes["GetWeights"] = reader->Finish().error_code();
  }
  v1::GetPolicyVersionResponse version;
  codes["GetPolicyVersion"] =
      learner->GetPolicyVersion(ContextWithDeadline(5).get(), {}, &version).error_code();
  return codes;
}

class SecureServicesTest : public ::testing::Test {
 protected:
  // Serves coordinator and learner with TLS (mutual or not) and the cluster and admin tokens.
  void Start(bool mutual, bool tokens = true) {
    secrets_ = MakeTestSecrets("security_loopback");
    SecurityOptions server;
    server.tls = secrets_.Tls(mutual);
    if (tokens) {
      server.token_file = secrets_.token_file;
      server.admin_token_file = secrets_.admin_token_file;
    }
    scope_ = std::make_unique<ScopedProcessSecurity>(LoadOrDie(server));
    coordinator_ = *Coordinator::Create(SmallCurriculum());
    coordinator_service_ = std::make_unique<CoordinatorServiceImpl>(coordinator_.get());
    ASSERT_TRUE(weights_.Publish(Snapshot(1, 4096)).ok());
    learner_service_ =
        std::make_unique<LearnerServiceImpl>(&queue_, &weights_, LearnerServiceOptions());
    server_ = std::make_unique<TestServer>(
        std::vector<grpc::Service*>{coordinator_service_.get(), learner_service_.get()});
  }
  void TearDown() override {
    if (coordinator_service_ != nullptr) coordinator_service_->Shutdown();
    server_.reset();
    scope_.reset();
  }

  // A client with the cluster's TLS (or `tls`) and the token in `token_file` ("" = none).
  std::shared_ptr<const Security> Client(const std::string& token_file,
                                         std::optional<TlsOptions> tls = std::nullopt) {
    SecurityOptions options;
    options.tls = tls.value_or(secrets_.Tls());
    options.tls.require_client_cert = false;
    options.token_file = token_file;
    return LoadOrDie(options);
  }

  // Nothing an unauthenticated caller did is visible.
  void ExpectUntouched() {
    v1::ClusterStatus status = coordinator_->Status();
    EXPECT_EQ(status.workers_size(), 0);
    EXPECT_EQ(status.policy_version(), 0u);
    EXPECT_EQ(status.stage(), 1u);
    EXPECT_EQ(queue_.size(), 0u);
  }

  TestSecrets secrets_;
  std::unique_ptr<ScopedProcessSecurity> scope_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServiceImpl> coordinator_service_;
  TrajectoryQueue queue_{16};
  WeightStore weights_;
  std::unique_ptr<LearnerServiceImpl> learner_service_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(SecureServicesTest, MissingOrWrongTokenIsUnauthenticatedEverywhere) {
  Start(/*mutual=*/false);
  for (const std::string& token_file : {std::string(), secrets_.wrong_token_file}) {
    SCOPED_TRACE(token_file.empty() ? "no token" : "wrong token");
    std::map<std::string, grpc::StatusCode> codes =
        CallEverything(server_->address(), Client(token_file));
    EXPECT_EQ(codes.size(), 8u);
    for (const auto& [rpc, code] : codes) {
      EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << rpc;
    }
  }
  ExpectUntouched();
  // The message says what is missing.
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(
      server_->address(), ChannelOptions{.round_robin = false, .security = Client("")}));
  v1::ClusterStatus status;
  grpc::Status refused = stub->GetStatus(ContextWithDeadline().get(), {}, &status);
  EXPECT_NE(refused.error_message().find("authorization: Bearer <token>"), std::string::npos)
      << refused.error_message();
}

TEST_F(SecureServicesTest, TheClusterTokenWorksEndToEnd) {
  Start(/*mutual=*/false);
  std::map<std::string, grpc::StatusCode> codes =
      CallEverything(server_->address(), Client(secrets_.token_file));
  EXPECT_EQ(codes["Register"], grpc::StatusCode::OK);
  EXPECT_EQ(codes["ReportLearnerStep"], grpc::StatusCode::OK);
  EXPECT_EQ(codes["GetStatus"], grpc::StatusCode::OK);
  EXPECT_EQ(codes["WatchStage"], grpc::StatusCode::OK);
  EXPECT_EQ(codes["PushTrajectories"], grpc::StatusCode::OK);
  EXPECT_EQ(codes["GetWeights"], grpc::StatusCode::OK);
  EXPECT_EQ(codes["GetPolicyVersion"], grpc::StatusCode::OK);
  // A learner may not lease work: the coordinator itself refuses, not the authentication.
  EXPECT_NE(codes["AcquireLease"], grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(coordinator_->Status().workers_size(), 1);
  EXPECT_EQ(queue_.size(), 1u);
}

TEST_F(SecureServicesTest, AdminRpcsNeedTheAdminToken) {
  Start(/*mutual=*/false);
  auto stub_with = [&](const std::string& token_file) {
    return v1::CoordinatorService::NewStub(MakeChannel(
        server_->address(), ChannelOptions{.round_robin = false, .security = Client(token_file)}));
  };
  v1::SetStageRequest set_stage;
  set_stage.set_stage(2);
  v1::DrainEnvServerRequest drain;
  drain.set_address("127.0.0.1:1");
  v1::StageEvent event;
  v1::WorkerStatus drained;
  auto worker = stub_with(secrets_.token_file);
  for (const auto& [name, code] : std::vector<std::pair<std::string, grpc::StatusCode>>{
           {"SetStage", worker->SetStage(ContextWithDeadline().get(), set_stage, &event).error_code()},
           {"Pause", worker->Pause(ContextWithDeadline().get(), {}, &event).error_code()},
           {"Resume", worker->Resume(ContextWithDeadline().get(), {}, &event).error_code()},
           {"DrainEnvServer",
            worker->DrainEnvServer(ContextWithDeadline().get(), drain, &drained).error_code()}}) {
    EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED) << name;
  }
  auto nobody = stub_with("");
  EXPECT_EQ(nobody->Pause(ContextWithDeadline().get(), {}, &event).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto wrong = stub_with(secrets_.wrong_token_file);
  EXPECT_EQ(wrong->Pause(ContextWithDeadline().get(), {}, &event).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(coordinator_->Status().stage(), 1u);
  EXPECT_FALSE(coordinator_->Status().paused());

  auto admin = stub_with(secrets_.admin_token_file);
  ASSERT_TRUE(admin->SetStage(ContextWithDeadline().get(), set_stage, &event).ok());
  EXPECT_EQ(event.stage().stage(), 2u);
  ASSERT_TRUE(admin->Pause(ContextWithDeadline().get(), {}, &event).ok());
  EXPECT_TRUE(coordinator_->Status().paused());
  // The admin token also passes worker RPCs (e.g. `envtune status` run by an operator).
  v1::ClusterStatus status;
  EXPECT_TRUE(admin->GetStatus(ContextWithDeadline().get(), {}, &status).ok());
}

TEST_F(SecureServicesTest, PlaintextClientIsRefusedByATlsServer) {
  Start(/*mutual=*/false);
  SecurityOptions plaintext;
  plaintext.token_file = secrets_.token_file;  // the right token does not help without TLS
  std::map<std::string, grpc::StatusCode> codes =
      CallEverything(server_->address(), LoadOrDie(plaintext));
  for (const auto& [rpc, code] : codes) EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE) << rpc;
  ExpectUntouched();
}

TEST_F(SecureServicesTest, MutualTlsRefusesMissingAndForeignClientCertificates) {
  Start(/*mutual=*/true);
  // TLS that trusts the cluster CA but presents no certificate.
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = *ReadFileToString(secrets_.Tls().ca);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(kPkiServerName);
  auto anonymous = v1::CoordinatorService::NewStub(
      grpc::CreateCustomChannel(server_->address(), grpc::SslCredentials(no_cert), args));
  auto context = ContextWithDeadline(5);
  context->AddMetadata("authorization", "Bearer " + secrets_.token);
  v1::ClusterStatus status;
  EXPECT_EQ(anonymous->GetStatus(context.get(), {}, &status).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A certificate from another CA, with the right token.
  std::map<std::string, grpc::StatusCode> rogue =
      CallEverything(server_->address(), Client(secrets_.token_file, secrets_.RogueTls()));
  for (const auto& [rpc, code] : rogue) EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE) << rpc;
  ExpectUntouched();
  // The cluster's certificate and token.
  std::map<std::string, grpc::StatusCode> good =
      CallEverything(server_->address(), Client(secrets_.token_file));
  EXPECT_EQ(good["Register"], grpc::StatusCode::OK);
  EXPECT_EQ(good["GetWeights"], grpc::StatusCode::OK);
}

// Mutual TLS without tokens: the client certificate is the identity.
TEST_F(SecureServicesTest, MutualTlsIdentityAloneAuthenticatesWorkers) {
  Start(/*mutual=*/true, /*tokens=*/false);
  std::map<std::string, grpc::StatusCode> good = CallEverything(server_->address(), Client(""));
  EXPECT_EQ(good["Register"], grpc::StatusCode::OK);
  EXPECT_EQ(good["PushTrajectories"], grpc::StatusCode::OK);
  EXPECT_EQ(good["GetWeights"], grpc::StatusCode::OK);
  std::map<std::string, grpc::StatusCode> rogue =
      CallEverything(server_->address(), Client("", secrets_.RogueTls()));
  EXPECT_EQ(rogue["Register"], grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(rogue["GetWeights"], grpc::StatusCode::UNAVAILABLE);
  // Admin RPCs stay disabled without an admin token.
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(
      server_->address(), ChannelOptions{.round_robin = false, .security = Client("")}));
  v1::StageEvent event;
  EXPECT_EQ(stub->Pause(ContextWithDeadline().get(), {}, &event).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// The env server (StartEpisode, Step, ListTasks) behind TLS and the cluster token.
TEST(SecureEnvServerTest, EpisodesNeedTheToken) {
  if (!testing_util::HaveData()) GTEST_SKIP() << "no BFCL data under " << testing_util::DataDir();
  TestSecrets secrets = MakeTestSecrets("security_env");
  SecurityOptions server;
  server.tls = secrets.Tls();
  server.token_file = secrets.token_file;
  ScopedProcessSecurity scope(LoadOrDie(server));
  EnvServiceOptions options;
  options.data_dir = testing_util::DataDir();
  absl::StatusOr<std::unique_ptr<EnvServer>> env = EnvServer::Start(options, "127.0.0.1:0");
  ASSERT_TRUE(env.ok()) << env.status();
  const std::string address = "127.0.0.1:" + std::to_string((*env)->port());
  auto stub_with = [&](const std::string& token_file) {
    SecurityOptions client;
    client.tls = secrets.Tls();
    client.token_file = token_file;
    return v1::EnvService::NewStub(
        MakeChannel(address, ChannelOptions{.round_robin = false, .security = LoadOrDie(client)}));
  };
  v1::StartEpisodeRequest start;
  start.set_task_id("multi_turn_base_0");
  v1::StartEpisodeResponse started;
  v1::ListTasksResponse tasks;
  v1::StepResponse stepped;
  for (const std::string& token_file : {std::string(), secrets.wrong_token_file}) {
    auto stub = stub_with(token_file);
    EXPECT_EQ(stub->StartEpisode(ContextWithDeadline().get(), start, &started).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(stub->ListTasks(ContextWithDeadline().get(), {}, &tasks).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(stub->Step(ContextWithDeadline().get(), {}, &stepped).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  auto stub = stub_with(secrets.token_file);
  grpc::Status ok = stub->StartEpisode(ContextWithDeadline().get(), start, &started);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  v1::StepRequest step;
  step.set_episode_state(started.episode_state());
  step.set_model_output(testing_util::Answer("done"));
  EXPECT_TRUE(stub->Step(ContextWithDeadline().get(), step, &stepped).ok());
  (*env)->Shutdown();
}

}  // namespace
}  // namespace envtune
