// EnvService over gRPC on loopback: every RPC, malformed requests with their status codes and
// messages, identical bytes from two independent server instances, draining (health
// NOT_SERVING, UNAVAILABLE).
#include "envserver/env_service.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/channels.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/envserver/episode_test_util.h"

namespace envtune {
namespace {

using testing_util::Answer;
using testing_util::ToolCall;
using ::testing::HasSubstr;

class EnvServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing_util::HaveData()) return;
    EnvServiceOptions o;
    o.data_dir = testing_util::DataDir();
    o.engine.hmac_key = "cluster-key";
    for (auto** slot : {&a_, &b_}) {
      absl::StatusOr<std::unique_ptr<EnvServer>> s = EnvServer::Start(o, "127.0.0.1:0");
      ASSERT_TRUE(s.ok()) << s.status();
      *slot = s->release();
    }
  }
  static void TearDownTestSuite() {
    delete a_;
    delete b_;
    a_ = b_ = nullptr;
  }
  void SetUp() override {
    if (a_ == nullptr) GTEST_SKIP() << "BFCL data not found under " << testing_util::DataDir();
  }
  static std::unique_ptr<v1::EnvService::Stub> Stub(EnvServer* s) {
    return v1::EnvService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(s->port())));
  }
  static EnvServer* a_;
  static EnvServer* b_;
};
EnvServer* EnvServiceTest::a_ = nullptr;
EnvServer* EnvServiceTest::b_ = nullptr;

TEST_F(EnvServiceTest, ListTasksFilters) {
  auto stub = Stub(a_);
  struct Case {
    const char* category;
    const char* split;
    int expected;
  } cases[] = {{"", "", 800}, {"base", "", 200}, {"multi_turn_miss_func", "", 200}, {"", "train", 400},
               {"", "val", 100}, {"", "test", 300}, {"long_context", "val", 25}};
  for (const Case& c : cases) {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    req.set_category(c.category);
    req.set_split(c.split);
    v1::ListTasksResponse resp;
    grpc::Status st = stub->ListTasks(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.tasks_size(), c.expected) << c.category << "/" << c.split;
    for (const v1::TaskInfo& t : resp.tasks()) {
      if (*c.split) EXPECT_EQ(t.split(), c.split);
      EXPECT_GT(t.num_turns(), 0u);
      EXPECT_FALSE(t.involved_classes().empty());
    }
  }
  for (auto [cat, split, what] : {std::tuple{"nope", "", "category"}, std::tuple{"", "dev", "split"}}) {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    req.set_category(cat);
    req.set_split(split);
    v1::ListTasksResponse resp;
    grpc::Status st = stub->ListTasks(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(st.error_message(), HasSubstr(what));
  }
}

TEST_F(EnvServiceTest, EpisodeOverGrpcAndIdenticalBytesOnTwoServers) {
  auto sa = Stub(a_), sb = Stub(b_);
  v1::StartEpisodeRequest req;
  req.set_task_id("multi_turn_base_42");
  req.mutable_options()->set_augment_probability(0.5);
  req.mutable_options()->set_seed(3);
  v1::StartEpisodeResponse ra, rb;
  {
    grpc::ClientContext c1, c2;
    ASSERT_TRUE(sa->StartEpisode(&c1, req, &ra).ok());
    ASSERT_TRUE(sb->StartEpisode(&c2, req, &rb).ok());
  }
  EXPECT_EQ(ra.SerializeAsString(), rb.SerializeAsString());
  EXPECT_EQ(ra.num_turns(), 3u);
  // Steps alternate between the servers (stateless): same bytes either way.
  std::string blob = ra.episode_state();
  const std::string replies[] = {ToolCall(R"([{"name": "touch", "arguments": {"file_name": "Notes2023.txt"}}])"),
                                 Answer()};
  for (int i = 0; i < 2; ++i) {
    v1::StepRequest step;
    step.set_episode_state(blob);
    step.set_model_output(replies[i]);
    v1::StepResponse x, y;
    grpc::ClientContext c1, c2;
    ASSERT_TRUE(sa->Step(&c1, step, &x).ok());
    ASSERT_TRUE(sb->Step(&c2, step, &y).ok());
    EXPECT_EQ(x.SerializeAsString(), y.SerializeAsString());
    blob = (i % 2 == 0 ? x : y).episode_state();
    if (i == 1) {
      EXPECT_TRUE(x.turn_ended());
      EXPECT_EQ(x.turn_score().score(), 1.0);
    }
  }
}

TEST_F(EnvServiceTest, MalformedRequests) {
  auto stub = Stub(a_);
  struct Case {
    const char* name;
    std::string task_id;
    double p;
    grpc::StatusCode code;
    const char* message;
  } starts[] = {
      {"empty id", "", 0, grpc::StatusCode::INVALID_ARGUMENT, "task_id"},
      {"unknown id", "multi_turn_base_1000", 0, grpc::StatusCode::NOT_FOUND, "unknown task id"},
      {"bad probability", "multi_turn_base_0", -0.5, grpc::StatusCode::INVALID_ARGUMENT, "augment_probability"},
  };
  for (const Case& c : starts) {
    grpc::ClientContext ctx;
    v1::StartEpisodeRequest req;
    req.set_task_id(c.task_id);
    req.mutable_options()->set_augment_probability(c.p);
    v1::StartEpisodeResponse resp;
    grpc::Status st = stub->StartEpisode(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), c.code) << c.name;
    EXPECT_THAT(st.error_message(), HasSubstr(c.message)) << c.name;
  }
  // Steps: garbage blob, oversize output, finished episode.
  {
    grpc::ClientContext ctx;
    v1::StepRequest req;
    req.set_episode_state("definitely not a blob, long enough to hold a tag............");
    v1::StepResponse resp;
    grpc::Status st = stub->Step(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("episode_state"));
  }
  v1::StartEpisodeResponse start;
  {
    grpc::ClientContext ctx;
    v1::StartEpisodeRequest req;
    req.set_task_id("multi_turn_miss_param_42");
    ASSERT_TRUE(stub->StartEpisode(&ctx, req, &start).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::StepRequest req;
    req.set_episode_state(start.episode_state());
    req.set_model_output(std::string(300 * 1024, 'a'));
    v1::StepResponse resp;
    grpc::Status st = stub->Step(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("limit"));
  }
  std::string blob = start.episode_state();
  for (uint32_t t = 0; t < start.num_turns(); ++t) {
    grpc::ClientContext ctx;
    v1::StepRequest req;
    req.set_episode_state(blob);
    req.set_model_output(Answer());
    v1::StepResponse resp;
    ASSERT_TRUE(stub->Step(&ctx, req, &resp).ok());
    blob = resp.episode_state();
  }
  {
    grpc::ClientContext ctx;
    v1::StepRequest req;
    req.set_episode_state(blob);
    req.set_model_output(Answer());
    v1::StepResponse resp;
    grpc::Status st = stub->Step(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(st.error_message(), HasSubstr("already ended"));
  }
}

// reliability-probe.md §3: a 20 MB task_id ran to the deadline and stalled other clients; 1 MB
// ids and categories came back as RESOURCE_EXHAUSTED (the echoed message overflowed the
// metadata); invalid UTF-8 in model_output failed as UNIMPLEMENTED with no message.
TEST_F(EnvServiceTest, HugeIdsAndInvalidUtf8GetShortClearAnswers) {
  auto stub = Stub(a_);
  for (size_t size : {size_t{16} << 10, size_t{1} << 20, size_t{20} << 20}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::StartEpisodeRequest req;
    req.set_task_id(std::string(size, 'x'));
    v1::StartEpisodeResponse resp;
    grpc::Status st = stub->StartEpisode(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << size << ": " << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("longer than 256 bytes"));
    EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("(", size, " bytes)")));
    EXPECT_LT(st.error_message().size(), 200u);
  }
  {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    req.set_category(std::string(size_t{1} << 20, 'c'));
    v1::ListTasksResponse resp;
    grpc::Status st = stub->ListTasks(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
    EXPECT_LT(st.error_message().size(), 300u);
  }
  // A healthy call right after is answered at once.
  v1::StartEpisodeResponse start;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::StartEpisodeRequest req;
    req.set_task_id("multi_turn_base_0");
    ASSERT_TRUE(stub->StartEpisode(&ctx, req, &start).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::StepRequest req;
    req.set_episode_state(start.episode_state());
    req.set_model_output("[ls(a='\xff\xfe')] \xc3");
    v1::StepResponse resp;
    grpc::Status st = stub->Step(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
    EXPECT_FALSE(resp.episode_state().empty());
  }
}

TEST_F(EnvServiceTest, DrainingServerIsNotServing) {
  EnvServiceOptions o;
  o.data_dir = testing_util::DataDir();
  absl::StatusOr<std::unique_ptr<EnvServer>> s = EnvServer::Start(o, "127.0.0.1:0");
  ASSERT_TRUE(s.ok()) << s.status();
  auto channel = MakeChannel("127.0.0.1:" + std::to_string((*s)->port()));
  auto stub = v1::EnvService::NewStub(channel);
  auto health_rpc = [&]() {
    grpc::ClientContext ctx;
    grpc::ByteBuffer request_buf, response_buf;
    // grpc.health.v1.HealthCheckRequest{service = "envtune.v1.EnvService"} (field 1, string).
    std::string name = EnvServer::kHealthServiceName;
    std::string req = std::string(1, 0x0a) + static_cast<char>(name.size()) + name;
    grpc::Slice slice(req);
    request_buf = grpc::ByteBuffer(&slice, 1);
    grpc::GenericStub generic(channel);
    grpc::Status st;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buf, &response_buf,
                      [&](grpc::Status s2) {
                        std::lock_guard<std::mutex> l(mu);
                        st = s2;
                        done = true;
                        cv.notify_one();
                      });
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
    std::vector<grpc::Slice> slices;
    if (st.ok()) response_buf.Dump(&slices);
    std::string bytes;
    for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    return bytes;  // HealthCheckResponse{status}: 08 01 = SERVING, 08 02 = NOT_SERVING
  };
  EXPECT_EQ(health_rpc(), std::string("\x08\x01", 2));
  (*s)->Drain();
  EXPECT_EQ(health_rpc(), std::string("\x08\x02", 2));
  grpc::ClientContext ctx;
  v1::ListTasksResponse resp;
  grpc::Status st = stub->ListTasks(&ctx, v1::ListTasksRequest(), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(), HasSubstr("draining"));
  (*s)->Shutdown();
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// The reliability probe's env-server crashes (§3): one Step whose reply nests 100k levels
// inside the 256 KiB limit killed the server with SIGSEGV in the envtuning and Hermes formats,
// and nested repetition in a prompting-format call aborted it with bad_alloc. Each is now an
// answer in band (a format error or an execution error) and the server keeps serving.
TEST_F(EnvServiceTest, HostileRepliesAreAnsweredInBandAndTheServerKeepsServing) {
  auto stub = Stub(a_);
  const size_t depth = 100000;
  const std::string call = "{\"name\": \"ls\", \"arguments\": {\"a\": " + std::string(depth, '[') +
                           std::string(depth, ']') + "}}";
  struct Case {
    v1::OutputFormat format;
    std::string reply;
    std::string expect;  // in format_error; "" = the reply does not decode, so (BFCL's rule
                         // for prompting replies) it is read as text and ends the turn
  };
  const Case cases[] = {
      {v1::OUTPUT_FORMAT_ENVTUNING, "<think>x</think>\n<tool_call>\n" + call + "\n</tool_call>",
       "nested deeper than 1000 levels"},
      {v1::OUTPUT_FORMAT_HERMES, "<tool_call>\n" + call + "\n</tool_call>",
       "nested deeper than 1000 levels"},
      {v1::OUTPUT_FORMAT_BFCL_PROMPTING,
       "[ls(a=" + std::string(depth, '[') + std::string(depth, ']') + ")]", ""},
      {v1::OUTPUT_FORMAT_BFCL_PROMPTING, "[cd(folder=[[0]*1000000]*1000000)]", ""},
  };
  for (const Case& c : cases) {
    ASSERT_LE(c.reply.size(), size_t{256} << 10);
    v1::StartEpisodeRequest start_req;
    start_req.set_task_id("multi_turn_base_0");
    start_req.mutable_options()->set_output_format(c.format);
    v1::StartEpisodeResponse start;
    {
      grpc::ClientContext ctx;
      ASSERT_TRUE(stub->StartEpisode(&ctx, start_req, &start).ok());
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::StepRequest req;
    req.set_episode_state(start.episode_state());
    req.set_model_output(c.reply);
    v1::StepResponse resp;
    grpc::Status st = stub->Step(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << c.format << ": " << st.error_code() << " " << st.error_message();
    EXPECT_FALSE(resp.episode_state().empty());
    EXPECT_EQ(resp.calls_size(), 0) << c.format;
    if (c.expect.empty()) {
      EXPECT_TRUE(resp.turn_ended());
    } else {
      EXPECT_EQ(resp.step_signal(), -3) << c.format << ": " << resp.format_error();
      EXPECT_THAT(resp.format_error(), HasSubstr(c.expect));
    }
  }
  grpc::ClientContext ctx;
  v1::ListTasksRequest list;
  v1::ListTasksResponse tasks;
  ASSERT_TRUE(stub->ListTasks(&ctx, list, &tasks).ok());
}

}  // namespace
}  // namespace envtune
