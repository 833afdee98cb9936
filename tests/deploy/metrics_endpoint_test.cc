// `envtune coordinator|env-server --metrics_port 0`: the real binary serves /metrics, scraped
// over loopback after real RPCs (env steps; a worker registering with the coordinator).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>

#include "absl/time/clock.h"
#include "common/channels.h"
#include "deploy/process.h"
#include "envtune/v1/coordinator.grpc.pb.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

fs::path Binary() { return fs::path(EnvOr("ENVTUNE_BINARY_DIR", "build")) / "deploy" / "envtune"; }
fs::path SourceDir() { return fs::path(EnvOr("ENVTUNE_SOURCE_DIR", ".")); }

double SeriesValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return response;
}

// The port of the "metrics on http://HOST:PORT/metrics" line in a child's log, or 0.
int MetricsPort(const ChildProcess& child) {
  std::ifstream in(child.log_path());
  std::stringstream ss;
  ss << in.rdbuf();
  std::smatch m;
  std::string log = ss.str();
  if (!std::regex_search(log, m, std::regex("metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics"))) return 0;
  return std::stoi(m[1]);
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(Binary())) GTEST_SKIP() << "envtune binary not built at " << Binary();
    char templ[] = "/tmp/envtune-metrics-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(MetricsEndpointTest, EnvServerCountsStepsAndLatency) {
  const fs::path data = SourceDir() / "data";
  if (!fs::exists(data / "bfcl")) GTEST_SKIP() << "no BFCL data under " << data;
  absl::StatusOr<ChildProcess> child =
      ChildProcess::Spawn("env-server",
                          {Binary().string(), "env-server", "--host=127.0.0.1", "--port=0", "--metrics_port=0",
                           "--data_dir=" + data.string()},
                          (dir_ / "env.log").string());
  ASSERT_TRUE(child.ok()) << child.status();
  absl::StatusOr<std::string> address = child->WaitForListeningAddress(absl::Seconds(120));
  ASSERT_TRUE(address.ok()) << address.status();
  int metrics_port = MetricsPort(*child);
  ASSERT_GT(metrics_port, 0) << child->LogTail();

  auto stub = v1::EnvService::NewStub(MakeChannel(*address));
  grpc::ClientContext list_ctx;
  SetDeadline(list_ctx, std::chrono::seconds(30));
  v1::ListTasksRequest list_req;
  v1::ListTasksResponse tasks;
  ASSERT_TRUE(stub->ListTasks(&list_ctx, list_req, &tasks).ok());
  ASSERT_GT(tasks.tasks_size(), 0);
  grpc::ClientContext start_ctx;
  SetDeadline(start_ctx, std::chrono::seconds(30));
  v1::StartEpisodeRequest start_req;
  start_req.set_task_id(tasks.tasks(0).task_id());
  v1::StartEpisodeResponse start;
  grpc::Status s = stub->StartEpisode(&start_ctx, start_req, &start);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::string blob = start.episode_state();
  constexpr int kSteps = 3;
  for (int i = 0; i < kSteps; ++i) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, std::chrono::seconds(30));
    v1::StepRequest req;
    req.set_episode_state(blob);
    req.set_model_output("<think>t</think>\nI am not sure.");  // a format error: still a step
    v1::StepResponse resp;
    s = stub->Step(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    blob = resp.episode_state();
    if (resp.episode_ended()) break;
  }
  // A forged blob is rejected: counted under its status code.
  grpc::ClientContext bad_ctx;
  SetDeadline(bad_ctx, std::chrono::seconds(30));
  v1::StepRequest bad;
  bad.set_episode_state("not a blob");
  bad.set_model_output("x");
  v1::StepResponse bad_resp;
  grpc::Status bad_status = stub->Step(&bad_ctx, bad, &bad_resp);
  ASSERT_FALSE(bad_status.ok());

  std::string text = HttpGet(metrics_port, "/metrics");
  const std::string labels = "method=\"Step\",service=\"envtune.v1.EnvService\"";
  double ok_steps = SeriesValue(text, "envtune_rpc_requests_total{code=\"OK\"," + labels + "}");
  EXPECT_GE(ok_steps, 1) << text;
  EXPECT_LE(ok_steps, kSteps) << text;
  static const char* kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  std::string bad_code = kCodes[static_cast<int>(bad_status.error_code())];
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_requests_total{code=\"" + bad_code + "\"," + labels + "}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_duration_seconds_count{" + labels + "}"), ok_steps + 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_requests_total{code=\"OK\",method=\"StartEpisode\",service=\"envtune.v1.EnvService\"}"), 1)
      << text;
  EXPECT_EQ(SeriesValue(text, "envtune_role_info{role=\"env-server\"}"), 1) << text;
  // The env server's own names for its work.
  EXPECT_EQ(SeriesValue(text, "envtune_env_steps_total{code=\"OK\"}"), ok_steps) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_steps_total{code=\"" + bad_code + "\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_step_duration_seconds_count"), ok_steps + 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_episodes_started_total{code=\"OK\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_env_start_duration_seconds_count"), 1) << text;
  EXPECT_EQ(child->Terminate(absl::Seconds(10)), 0) << child->LogTail();
}

TEST_F(MetricsEndpointTest, CoordinatorMirrorsItsStatus) {
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(
      "coordinator",
      {Binary().string(), "coordinator", "--config=" + (SourceDir() / "configs/tiny-cpu.yaml").string(),
       "--host=127.0.0.1", "--port=0", "--metrics_port=0", "--data_dir=" + (SourceDir() / "data").string()},
      (dir_ / "coordinator.log").string());
  ASSERT_TRUE(child.ok()) << child.status();
  absl::StatusOr<std::string> address = child->WaitForListeningAddress(absl::Seconds(60));
  if (!address.ok() && child->LogTail().find("split") != std::string::npos) {
    GTEST_SKIP() << "coordinator cannot load its data: " << child->LogTail();
  }
  ASSERT_TRUE(address.ok()) << address.status();
  int metrics_port = MetricsPort(*child);
  ASSERT_GT(metrics_port, 0) << child->LogTail();

  auto stub = v1::CoordinatorService::NewStub(MakeChannel(*address));
  for (const char* name : {"actor-a", "actor-b"}) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, std::chrono::seconds(10));
    v1::RegisterRequest req;
    req.set_role(v1::ROLE_ACTOR);
    req.set_name(name);
    v1::RegisterResponse resp;
    grpc::Status s = stub->Register(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // The coordinator mirrors its status every 500 ms (up to 30 s on a loaded machine).
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text = HttpGet(metrics_port, "/metrics");
    if (SeriesValue(text, "envtune_workers{role=\"actor\"}") == 2) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(SeriesValue(text, "envtune_workers{role=\"actor\"}"), 2) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_curriculum_stage"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_stage_info{name=\"syntax\",stage=\"1\"}"), 1) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_learner_step"), 0) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_episodes_completed_total"), 0) << text;
  EXPECT_EQ(SeriesValue(text, "envtune_rpc_requests_total{code=\"OK\",method=\"Register\",service=\"envtune.v1.CoordinatorService\"}"), 2)
      << text;
  EXPECT_EQ(SeriesValue(text, "envtune_role_info{role=\"coordinator\"}"), 1) << text;
  EXPECT_EQ(child->Terminate(absl::Seconds(10)), 0) << child->LogTail();
}

TEST_F(MetricsEndpointTest, MetricsPortInUseIsARuntimeError) {
  // Hold a port, then ask the env server to serve metrics on it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(
      "env-server", {Binary().string(), "env-server", "--host=127.0.0.1", "--port=0", "--metrics_port=" + std::to_string(port)},
      (dir_ / "busy.log").string());
  ASSERT_TRUE(child.ok());
  std::optional<int> exit;
  for (int i = 0; i < 100 && !exit; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    exit = child->PollExit();
  }
  close(fd);
  ASSERT_TRUE(exit.has_value()) << "still running: " << child->LogTail();
  EXPECT_EQ(*exit, 1);
  EXPECT_NE(child->LogTail().find("metrics: cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << child->LogTail();
}

}  // namespace
}  // namespace envtune
