// common/metrics: registry semantics, the /metrics HTTP exposer scraped over loopback, and the
// per-method gRPC interceptor installed by ConfigureServerBuilder.
#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <memory>
#include <sstream>
#include <string>

#include "common/channels.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

// The value of the sample line `series` ("name{labels}" exactly as exposed), or NaN.
double SeriesValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// GET http://127.0.0.1:port/path over a plain socket; returns the whole response.
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  return response;
}

TEST(MetricsTest, CountersGaugesHistogramsRender) {
  Metrics m;
  absl::StatusOr<CounterHandle> c = m.Counter("envtune_test_events_total", "events", {{"kind", "a"}});
  ASSERT_TRUE(c.ok()) << c.status();
  c->Increment();
  c->Increment(2.5);
  c->Increment(-7);  // ignored: counters are monotonic
  EXPECT_DOUBLE_EQ(c->Value(), 3.5);
  // The same name and labels return the same series.
  absl::StatusOr<CounterHandle> again = m.Counter("envtune_test_events_total", "events", {{"kind", "a"}});
  ASSERT_TRUE(again.ok());
  again->Increment();
  EXPECT_DOUBLE_EQ(c->Value(), 4.5);

  absl::StatusOr<GaugeHandle> g = m.Gauge("envtune_test_level", "level");
  ASSERT_TRUE(g.ok());
  g->Set(7);
  g->Increment(-2);
  EXPECT_DOUBLE_EQ(g->Value(), 5);

  absl::StatusOr<HistogramHandle> h = m.Histogram("envtune_test_seconds", "latency", {0.1, 1.0});
  ASSERT_TRUE(h.ok());
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(3);

  std::string text = m.Render();
  EXPECT_EQ(SeriesValue(text, "envtune_test_events_total{kind=\"a\"}"), 4.5) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_level"), 5) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_seconds_bucket{le=\"0.1\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_seconds_bucket{le=\"1\"}"), 2) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_seconds_bucket{le=\"+Inf\"}"), 3) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_seconds_count"), 3) << text;
  EXPECT_DOUBLE_EQ(SeriesValue(text, "envtune_test_seconds_sum"), 3.55) << text;
  EXPECT_NE(text.find("# TYPE envtune_test_events_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE envtune_test_seconds histogram"), std::string::npos) << text;
}

TEST(MetricsTest, BadNamesAndConflictsAreErrorsNotExceptions) {
  Metrics m;
  EXPECT_EQ(m.Counter("bad name", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Gauge("1starts_with_digit", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Counter("envtune_ok_total", "x", {{"bad-label", "v"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.Counter("envtune_shared", "x").ok());
  EXPECT_EQ(m.Gauge("envtune_shared", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Histogram("envtune_h", "x", {1.0, 0.5}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Histogram("envtune_h2", "x", {1.0, 1.0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Serve("127.0.0.1", 70000).code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsTest, ServesMetricsOverLoopback) {
  Metrics m;
  ASSERT_TRUE(m.Serve("127.0.0.1", 0).ok());
  ASSERT_GT(m.port(), 0);
  EXPECT_EQ(m.Serve("127.0.0.1", 0).code(), absl::StatusCode::kFailedPrecondition);
  m.SetRole("coordinator");
  absl::StatusOr<GaugeHandle> step = m.Gauge("envtune_learner_step", "step");
  ASSERT_TRUE(step.ok());
  step->Set(42);
  absl::StatusOr<CounterHandle> episodes = m.Counter("envtune_episodes_completed_total", "episodes");
  ASSERT_TRUE(episodes.ok());
  episodes->Increment(17);

  std::string response = HttpGet(m.port(), "/metrics");
  ASSERT_NE(response.find("200 OK"), std::string::npos) << response;
  EXPECT_EQ(SeriesValue(response, "envtune_learner_step"), 42) << response;
  EXPECT_EQ(SeriesValue(response, "envtune_episodes_completed_total"), 17) << response;
  EXPECT_EQ(SeriesValue(response, "envtune_role_info{role=\"coordinator\"}"), 1) << response;
  // Values are read at scrape time.
  step->Set(43);
  EXPECT_EQ(SeriesValue(HttpGet(m.port(), "/metrics"), "envtune_learner_step"), 43);

  // A second exposer on the same port cannot listen.
  Metrics other;
  EXPECT_EQ(other.Serve("127.0.0.1", m.port()).code(), absl::StatusCode::kUnavailable);
}

TEST(MetricsTest, SplitRpcMethod) {
  EXPECT_EQ(SplitRpcMethod("/envtune.v1.EnvService/Step"),
            (std::pair<std::string, std::string>{"envtune.v1.EnvService", "Step"}));
  EXPECT_EQ(SplitRpcMethod("weird"), (std::pair<std::string, std::string>{"", "weird"}));
  EXPECT_EQ(SplitRpcMethod("/NoMethod/"), (std::pair<std::string, std::string>{"", "/NoMethod/"}));
}

// A fake EnvService: Step fails with INVALID_ARGUMENT on an empty model output.
class FakeEnv final : public v1::EnvService::CallbackService {
  grpc::ServerUnaryReactor* Step(grpc::CallbackServerContext* context, const v1::StepRequest* request,
                                 v1::StepResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(request->model_output().empty() ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty")
                                                    : grpc::Status::OK);
    return reactor;
  }
};

TEST(MetricsTest, GlobalRegistryAndRpcInterceptor) {
  Metrics& global = Metrics::Global();
  // Disabled by default: handles are no-ops and servers get no interceptor.
  ASSERT_FALSE(global.enabled());
  absl::StatusOr<CounterHandle> off = global.Counter("envtune_off_total", "x");
  ASSERT_TRUE(off.ok());
  off->Increment(5);
  EXPECT_EQ(off->Value(), 0);
  EXPECT_EQ(global.Render().find("envtune_off_total"), std::string::npos);

  ASSERT_TRUE(global.Serve("127.0.0.1", 0).ok());
  ASSERT_TRUE(global.enabled());
  AddRpcAlias("/envtune.v1.EnvService/Step", "envtune_test_steps_total", "envtune_test_step_seconds", "steps");
  AddRpcAlias("/envtune.v1.EnvService/ListTasks", "bad name", "bad name too", "never recorded");
  FakeEnv service;
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto stub = v1::EnvService::NewStub(MakeChannel("127.0.0.1:" + std::to_string(port)));
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext context;
    SetDeadline(context, std::chrono::seconds(10));
    v1::StepRequest request;
    request.set_model_output(i < 3 ? "<answer>x</answer>" : "");
    v1::StepResponse response;
    grpc::Status status = stub->Step(&context, request, &response);
    EXPECT_EQ(status.error_code(), i < 3 ? grpc::StatusCode::OK : grpc::StatusCode::INVALID_ARGUMENT);
  }
  server->Shutdown();

  std::string text = HttpGet(global.port(), "/metrics");
  const std::string labels = "method=\"Step\",service=\"envtune.v1.EnvService\"";
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_requests_total{code=\"OK\"," + labels + "}"), 3) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_requests_total{code=\"INVALID_ARGUMENT\"," + labels + "}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_duration_seconds_count{" + labels + "}"), 4) << text;
  double sum = SeriesValue(text, "envtune_rpc_duration_seconds_sum{" + labels + "}");
  EXPECT_GT(sum, 0) << text;
  EXPECT_LT(sum, 40) << text;
  // The alias names the same RPCs.
  EXPECT_EQ(SeriesValue(text, "envtune_test_steps_total{code=\"OK\"}"), 3) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_steps_total{code=\"INVALID_ARGUMENT\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_test_step_seconds_count"), 4) << text;
  EXPECT_DOUBLE_EQ(SeriesValue(text, "envtune_test_step_seconds_sum"), sum) << text;
}

}  // namespace
}  // namespace envtune
