// LibTorch from the PyTorch wheel and Debian's gRPC/protobuf in one process. The wheel's
// libtorch_cpu carries its own protobuf (3.13, for ONNX) and exports some of its symbols; its
// include/ ships protobuf 3.13 headers (CMake hides them: cmake/torch.cmake). A clash shows up as
// a crash or a version abort in protobuf's reflection, serialisation or gRPC, so this test does
// all three next to torch work (autograd, a c10d store) in one process.
#include <dlfcn.h>

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include "envtune/v1/learner.grpc.pb.h"

namespace envtune {
namespace {

// The shared object a function's code lives in.
std::string LibraryOf(const void* address) {
  Dl_info info{};
  if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

class VersionService final : public v1::LearnerService::CallbackService {
  grpc::ServerUnaryReactor* GetPolicyVersion(grpc::CallbackServerContext* context,
                                             const v1::GetPolicyVersionRequest*,
                                             v1::GetPolicyVersionResponse* response) override {
    // Torch work on the server's thread, answered through protobuf.
    torch::Tensor x = torch::arange(1, 5, torch::kFloat).requires_grad_(true);
    (x * x).sum().backward();
    response->set_version(static_cast<uint64_t>(x.grad().sum().item<double>()));  // 2*(1+2+3+4)
    response->set_learner_step(7);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

TEST(TorchGrpcCoexist, ProtobufComesFromDebiansLibraryAndMatchesItsHeaders) {
  GOOGLE_PROTOBUF_VERIFY_VERSION;  // aborts on a header/library mismatch
  EXPECT_EQ(GOOGLE_PROTOBUF_VERSION / 1000000, 3);
  const std::string lib = LibraryOf(reinterpret_cast<const void*>(
      &google::protobuf::internal::VerifyVersion));
  EXPECT_THAT(lib, testing::HasSubstr("libprotobuf")) << lib;
  EXPECT_THAT(lib, testing::Not(testing::HasSubstr("torch")));
  // And torch really is the wheel's, with its CUDA library linked in when built with CUDA.
  const std::string torch_lib = LibraryOf(reinterpret_cast<const void*>(&at::_ops::empty_memory_format::call));
  EXPECT_THAT(torch_lib, testing::HasSubstr("libtorch_cpu")) << torch_lib;
  EXPECT_EQ(TORCH_VERSION_MAJOR, 2);
#if ENVTUNE_WITH_CUDA
  // A CUDA build links libtorch_cuda (and through it NCCL) into every torch binary, so the
  // CUDA code paths are linked even where no GPU exists.
  EXPECT_NE(dlopen("libtorch_cuda.so", RTLD_NOLOAD | RTLD_LAZY), nullptr)
      << "a CUDA build should have libtorch_cuda loaded";
  EXPECT_NE(dlopen("libnccl.so.2", RTLD_NOLOAD | RTLD_LAZY), nullptr)
      << "a CUDA build should have NCCL loaded";
#endif
}

TEST(TorchGrpcCoexist, ReflectionSerialisationAndJsonBesideTorch) {
  v1::Trajectory t;
  t.set_episode_id("lease-1/0");
  t.set_task_id("multi_turn_base_0");
  for (int i = 0; i < 1000; ++i) t.add_token_ids(i * 7);
  t.set_loss_mask(std::string(1000, '\1'));
  std::string wire;
  ASSERT_TRUE(t.SerializeToString(&wire));
  v1::Trajectory back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.token_ids_size(), 1000);
  EXPECT_EQ(back.token_ids(999), 6993);
  // Reflection and JSON go through the descriptor pool, where the bundled copy would collide.
  const google::protobuf::Descriptor* d = back.GetDescriptor();
  ASSERT_NE(d->FindFieldByName("task_id"), nullptr);
  EXPECT_EQ(back.GetReflection()->GetString(back, d->FindFieldByName("task_id")),
            "multi_turn_base_0");
  std::string json;
  v1::GetPolicyVersionResponse small;
  small.set_version(3);
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(small, &json).ok());
  EXPECT_EQ(json, "{\"version\":\"3\"}");
  // Torch's own store (c10d) beside it.
  auto store = c10::make_intrusive<c10d::HashStore>();
  store->set("k", std::vector<uint8_t>{1, 2, 3});
  EXPECT_EQ(store->get("k"), (std::vector<uint8_t>{1, 2, 3}));
}

TEST(TorchGrpcCoexist, GrpcCallWhoseHandlerRunsAutograd) {
  VersionService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  auto stub = v1::LearnerService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetPolicyVersionResponse response;
    grpc::Status status = stub->GetPolicyVersion(&context, {}, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.version(), 20u);
    EXPECT_EQ(response.learner_step(), 7u);
  }
  server->Shutdown();
}

}  // namespace
}  // namespace envtune
