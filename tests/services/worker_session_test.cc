// WorkerSession (common/worker_session.h) against a real in-process coordinator on loopback:
// registration, the role's heartbeat fields, re-registration after a coordinator restart, a
// prompt Stop, and Register's retries under a manual clock.
#include "common/worker_session.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/service.h"
#include "gtest/gtest.h"
#include "tests/services/test_server.h"

namespace envtune {
namespace {

// A coordinator process in-process: the state, its service and a server on `address`
// ("127.0.0.1:0" = a free port).
struct CoordinatorProcess {
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<CoordinatorServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  explicit CoordinatorProcess(absl::Duration heartbeat_interval,
                              const std::string& address = "127.0.0.1:0") {
    CoordinatorOptions options = SmallCurriculum();
    options.heartbeat_interval = heartbeat_interval;
    coordinator = *Coordinator::Create(options);
    service = std::make_unique<CoordinatorServiceImpl>(coordinator.get());
    grpc::ServerBuilder builder;
    ConfigureServerBuilder(builder);
    builder.AddListeningPort(address, ListeningCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
  }
  ~CoordinatorProcess() {
    service->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  const v1::WorkerStatus* Worker(const v1::ClusterStatus& status, const std::string& id) {
    for (const v1::WorkerStatus& w : status.workers()) {
      if (w.worker_id() == id) return &w;
    }
    return nullptr;
  }
};

// Polls `done` every 20 ms for up to `limit`.
bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

WorkerSessionOptions ActorOptions(const std::string& coordinator) {
  WorkerSessionOptions options;
  options.coordinator = coordinator;
  options.role = v1::ROLE_ACTOR;
  options.name = "actor-under-test";
  options.rpc_timeout = absl::Seconds(2);
  options.retry_deadline = absl::Seconds(5);
  return options;
}

// Hooks that only log (into `lines` when given).
WorkerSessionHooks LogOnly(std::vector<std::string>* lines = nullptr, absl::Mutex* mu = nullptr) {
  WorkerSessionHooks hooks;
  hooks.log = [lines, mu](const std::string& line) {
    if (lines == nullptr) return;
    absl::MutexLock lock(mu);
    lines->push_back(line);
  };
  return hooks;
}

TEST(WorkerSessionTest, RegistersAndHeartbeatsCarryTheRolesFields) {
  CoordinatorProcess process(absl::Milliseconds(100));
  ASSERT_GT(process.port, 0);
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(process.address()));
  std::atomic<int> responses{0};
  WorkerSessionHooks hooks = LogOnly();
  hooks.fill = [](v1::HeartbeatRequest& request) {
    request.set_tokens_per_s(42.5);
    request.set_policy_version(7);
    v1::Metric* metric = request.add_metrics();
    metric->set_name("role/field");
    metric->set_value(3);
  };
  hooks.on_response = [&](const v1::HeartbeatRequest& request,
                          const v1::HeartbeatResponse& response) {
    EXPECT_EQ(request.tokens_per_s(), 42.5);
    EXPECT_EQ(response.stage(), 1u);
    ++responses;
  };
  WorkerSession session(stub.get(), ActorOptions(process.address()), std::move(hooks));
  EXPECT_EQ(session.worker_id(), "");
  EXPECT_TRUE(absl::IsFailedPrecondition(session.HeartbeatNow()));
  ASSERT_TRUE(session.Register().ok());
  const std::string id = session.worker_id();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(session.heartbeat_interval(), absl::Milliseconds(100));  // the coordinator's

  session.StartHeartbeats();
  ASSERT_TRUE(Eventually([&] { return responses.load() >= 3; }));
  const v1::ClusterStatus status = process.coordinator->Status();
  const v1::WorkerStatus* worker = process.Worker(status, id);
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(worker->role(), v1::ROLE_ACTOR);
  EXPECT_EQ(worker->name(), "actor-under-test");
  EXPECT_EQ(worker->tokens_per_s(), 42.5);
  EXPECT_EQ(worker->policy_version(), 7u);
  ASSERT_EQ(worker->metrics_size(), 1);
  EXPECT_EQ(worker->metrics(0).name(), "role/field");
  EXPECT_EQ(worker->metrics(0).value(), 3);
  session.Stop();
  EXPECT_EQ(session.worker_id(), id);  // registrations only change it
}

TEST(WorkerSessionTest, ACoordinatorRestartMeansRegisteringAgainUnderANewId) {
  auto first = std::make_unique<CoordinatorProcess>(absl::Milliseconds(100));
  ASSERT_GT(first->port, 0);
  const std::string address = first->address();
  // Another worker registers first, so the session's id ("w2") is one the restarted
  // coordinator, which numbers workers afresh, will not hand out again first.
  v1::RegisterRequest other;
  other.set_role(v1::ROLE_ACTOR);
  other.set_name("other");
  ASSERT_TRUE(first->coordinator->Register(other).ok());
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(address));
  absl::Mutex mu;
  std::vector<std::string> log;
  WorkerSession session(stub.get(), ActorOptions(address), LogOnly(&log, &mu));
  ASSERT_TRUE(session.Register().ok());
  const std::string old_id = session.worker_id();
  session.StartHeartbeats();

  first.reset();  // the coordinator goes away; its successor on the same port knows nobody
  CoordinatorProcess second(absl::Milliseconds(100), address);
  ASSERT_EQ(second.address(), address);

  ASSERT_TRUE(Eventually([&] {
    const std::string id = session.worker_id();
    return id != old_id && second.Worker(second.coordinator->Status(), id) != nullptr;
  })) << "still "
      << session.worker_id();
  const v1::ClusterStatus status = second.coordinator->Status();
  const v1::WorkerStatus* worker = second.Worker(status, session.worker_id());
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(worker->name(), "actor-under-test");
  absl::MutexLock lock(&mu);
  bool told = false;
  for (const std::string& line : log) told |= line.find("registering again") != std::string::npos;
  EXPECT_TRUE(told) << "the NOT_FOUND is logged";
}

TEST(WorkerSessionTest, ReregisterRegistersOnceForOneStaleId) {
  CoordinatorProcess process(absl::Seconds(1));
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(process.address()));
  WorkerSession session(stub.get(), ActorOptions(process.address()), LogOnly());
  ASSERT_TRUE(session.Register().ok());
  const std::string stale = session.worker_id();
  ASSERT_TRUE(session.Reregister(stale).ok());
  const std::string renewed = session.worker_id();
  EXPECT_NE(renewed, stale);
  // A second caller that saw the same NOT_FOUND finds the id renewed already.
  ASSERT_TRUE(session.Reregister(stale).ok());
  EXPECT_EQ(session.worker_id(), renewed);
  EXPECT_EQ(process.coordinator->Status().workers_size(), 2);
}

TEST(WorkerSessionTest, StopIsPromptWhileWaitingForTheNextBeatOrARetry) {
  CoordinatorProcess process(absl::Seconds(30));
  auto stub = v1::CoordinatorService::NewStub(MakeChannel(process.address()));
  WorkerSession session(stub.get(), ActorOptions(process.address()), LogOnly());
  ASSERT_TRUE(session.Register().ok());
  session.StartHeartbeats();
  absl::SleepFor(absl::Milliseconds(100));
  absl::Time start = absl::Now();
  session.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(session.HeartbeatNow()));

  // Register retrying a coordinator that is not there, for up to a minute: Stop ends it.
  int free_port;
  {
    CoordinatorProcess gone(absl::Seconds(1));
    free_port = gone.port;
  }
  const std::string nowhere = absl::StrCat("127.0.0.1:", free_port);
  auto dead = v1::CoordinatorService::NewStub(MakeChannel(nowhere));
  WorkerSessionOptions options = ActorOptions(nowhere);
  options.retry_deadline = absl::Minutes(1);
  WorkerSession retrying(dead.get(), options, LogOnly());
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(300));
    retrying.Stop();
  });
  start = absl::Now();
  absl::Status registered = retrying.Register();
  stopper.join();
  EXPECT_FALSE(registered.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// Time moves only by the session's own waits.
class ManualClock : public WorkerSessionClock {
 public:
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  bool WaitForStop(absl::Notification& stop, absl::Duration d) override {
    absl::MutexLock lock(&mu_);
    now_ += d;
    waits_.push_back(d);
    return stop.HasBeenNotified();
  }
  std::vector<absl::Duration> waits() {
    absl::MutexLock lock(&mu_);
    return waits_;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  std::vector<absl::Duration> waits_;
};

TEST(WorkerSessionTest, RegisterRetriesAnUnreachableCoordinatorWithBackoffUntilItsDeadline) {
  int free_port;
  {
    CoordinatorProcess gone(absl::Seconds(1));
    free_port = gone.port;
  }
  const std::string nowhere = absl::StrCat("127.0.0.1:", free_port);
  auto dead = v1::CoordinatorService::NewStub(MakeChannel(nowhere));
  ManualClock clock;
  WorkerSessionOptions options = ActorOptions(nowhere);
  options.retry_deadline = absl::Seconds(30);
  WorkerSession session(dead.get(), options, LogOnly(), &clock);
  const absl::Time start = clock.Now();
  absl::Status registered = session.Register();
  EXPECT_TRUE(absl::IsUnavailable(registered)) << registered;
  EXPECT_NE(registered.message().find(nowhere), std::string::npos) << registered;
  const std::vector<absl::Duration> waits = clock.waits();
  ASSERT_GE(waits.size(), 5u);
  EXPECT_LE(clock.Now() - start, absl::Seconds(30));
  EXPECT_GE(clock.Now() - start, absl::Seconds(30) - absl::Milliseconds(7500));
  EXPECT_GE(waits[0], absl::Milliseconds(100));  // 200 ms x [0.5, 1.5)
  EXPECT_LT(waits[0], absl::Milliseconds(300));
  for (absl::Duration w : waits) EXPECT_LT(w, absl::Milliseconds(7500));  // 5 s x 1.5
  EXPECT_GT(waits.back(), waits.front());                                 // it backs off
}

}  // namespace
}  // namespace envtune
