// Starts gRPC services in-process on a loopback port picked by the kernel (port 0), with the
// process's security (ListeningCredentials(): plaintext unless a test set TLS), and stops them
// when destroyed.
#ifndef ENVTUNE_TESTS_SERVICES_TEST_SERVER_H_
#define ENVTUNE_TESTS_SERVICES_TEST_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "common/channels.h"
#include "coordinator/coordinator.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace envtune {

class TestServer {
 public:
  explicit TestServer(const std::vector<grpc::Service*>& services) {
    grpc::ServerBuilder builder;
    ConfigureServerBuilder(builder);
    builder.AddListeningPort("127.0.0.1:0", ListeningCredentials(), &port_);
    for (grpc::Service* service : services) builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port_, 0);
  }
  ~TestServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::shared_ptr<grpc::Channel> Channel() const { return MakeChannel(address()); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

inline std::unique_ptr<grpc::ClientContext> ContextWithDeadline(int seconds = 10) {
  auto context = std::make_unique<grpc::ClientContext>();
  SetDeadline(*context, std::chrono::seconds(seconds));
  return context;
}

// Two stages over multi_turn_base_0 (format reward, then progress), groups of 2.
inline CoordinatorOptions SmallCurriculum() {
  CoordinatorOptions options;
  StageConfig stage;
  stage.stage = 1;
  stage.name = "syntax";
  stage.task_ids = {"multi_turn_base_0"};
  stage.group_size = 2;
  stage.reward_kind = v1::REWARD_KIND_FORMAT;
  StageConfig stage2 = stage;
  stage2.stage = 2;
  stage2.name = "hints";
  stage2.reward_kind = v1::REWARD_KIND_PROGRESS;
  options.stages = {stage, stage2};
  return options;
}

}  // namespace envtune

#endif  // ENVTUNE_TESTS_SERVICES_TEST_SERVER_H_
