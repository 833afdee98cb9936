// A small, deterministic, stateless EnvService for actor tests and benchmarks. Everything an
// episode needs travels in its state blob "fake|<task>|<seed>|<turn>|<step>", so any replica
// serves any step. Task ids "fake_<turns>_<steps>" run <turns> user turns of <steps> model
// replies each (the last reply of a turn ends it and scores it 1 on even turns, 0 on odd ones);
// "invalid_<turns>_<steps>" answers Step with INVALID_ARGUMENT; other ids are NOT_FOUND.
// Every served Step is logged per episode seed (reply text and observation) in a log shared by
// replicas, so tests can rebuild the exact conversation.
#ifndef ENVTUNE_TESTS_ACTOR_FAKE_ENV_H_
#define ENVTUNE_TESTS_ACTOR_FAKE_ENV_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/channels.h"
#include "envtune/v1/env.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace envtune {
namespace testing_env {

struct StepLog {
  std::string model_output;
  std::vector<v1::ChatMessage> observation;
  bool episode_ended = false;
};

struct SharedLog {
  std::mutex mu;
  std::map<uint64_t, std::vector<StepLog>> steps;  // by episode seed
  std::map<uint64_t, std::vector<v1::ChatMessage>> openings;
};

struct FakeTask {
  bool invalid = false;
  uint32_t turns = 0, steps = 0;
};

inline bool ParseTask(const std::string& id, FakeTask* task) {
  std::vector<std::string> parts = absl::StrSplit(id, '_');
  if (parts.size() != 3 || (parts[0] != "fake" && parts[0] != "invalid")) return false;
  task->invalid = parts[0] == "invalid";
  return absl::SimpleAtoi(parts[1], &task->turns) && absl::SimpleAtoi(parts[2], &task->steps) &&
         task->turns > 0 && task->steps > 0;
}

inline v1::ChatMessage Message(const std::string& role, const std::string& content) {
  v1::ChatMessage m;
  m.set_role(role);
  m.set_content(content);
  return m;
}

class FakeEnvService final : public v1::EnvService::Service {
 public:
  explicit FakeEnvService(std::shared_ptr<SharedLog> log, std::chrono::milliseconds step_delay = {})
      : log_(std::move(log)), delay_(step_delay) {}

  std::atomic<int> steps_served{0};
  std::atomic<bool> unavailable{false};  // answer everything with UNAVAILABLE (draining)
  // Each Step also sleeps a random 0..max_jitter_us microseconds, drawn from the clock, so the
  // order replies arrive in differs from run to run (as on a real, loaded fleet).
  std::atomic<int> max_jitter_us{0};

  grpc::Status StartEpisode(grpc::ServerContext*, const v1::StartEpisodeRequest* request,
                            v1::StartEpisodeResponse* response) override {
    if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    FakeTask task;
    if (!ParseTask(request->task_id(), &task)) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown task " + request->task_id());
    }
    const uint64_t seed = request->options().seed();
    response->set_episode_state(absl::StrCat("fake|", request->task_id(), "|", seed, "|0|0"));
    *response->add_messages() = Message("system", "You are a fake tool user. Tools: none.");
    *response->add_messages() = Message("user", absl::StrCat("Question 0 of episode ", seed, "?"));
    response->set_num_turns(task.turns);
    response->set_augmented(seed % 2 == 1);
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->openings[seed] = {response->messages().begin(), response->messages().end()};
    log_->steps[seed].clear();
    return grpc::Status::OK;
  }

  grpc::Status Step(grpc::ServerContext*, const v1::StepRequest* request,
                    v1::StepResponse* response) override {
    if (unavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (const int jitter = max_jitter_us.load(); jitter > 0) {
      thread_local std::mt19937 jitter_rng(
          static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count() ^
                                std::hash<std::thread::id>()(std::this_thread::get_id())));
      std::this_thread::sleep_for(
          std::chrono::microseconds(std::uniform_int_distribution<int>(0, jitter)(jitter_rng)));
    }
    std::vector<std::string> parts = absl::StrSplit(request->episode_state(), '|');
    FakeTask task;
    uint64_t seed = 0;
    uint32_t turn = 0, step = 0;
    if (parts.size() != 5 || parts[0] != "fake" || !ParseTask(parts[1], &task) ||
        !absl::SimpleAtoi(parts[2], &seed) || !absl::SimpleAtoi(parts[3], &turn) ||
        !absl::SimpleAtoi(parts[4], &step)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad episode_state");
    }
    if (task.invalid) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "tampered blob");
    if (turn >= task.turns) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "ended");
    ++steps_served;
    response->set_turn_index(turn);
    response->set_step_index(step);
    ++step;
    const bool turn_ended = step >= task.steps;
    uint32_t finished = turn + (turn_ended ? 1 : 0);
    if (turn_ended) {
      response->set_turn_ended(true);
      response->mutable_turn_score()->set_turn_index(turn);
      response->mutable_turn_score()->set_score(turn % 2 == 0 ? 1 : 0);
      response->mutable_turn_score()->set_state_ok(turn % 2 == 0);
      response->mutable_turn_score()->set_response_ok(true);
      ++turn;
      step = 0;
    }
    const bool ended = turn >= task.turns;
    response->set_episode_ended(ended);
    uint32_t scored_one = (finished + 1) / 2;  // turns 0, 2, 4, ... score 1
    double progress = static_cast<double>(scored_one) / task.turns;
    response->mutable_components()->set_progress(progress);
    response->mutable_components()->set_turns_finished(finished);
    response->mutable_components()->set_format_score(0.5);
    response->mutable_components()->set_tool_call_score(0.25);
    response->set_episode_reward(progress);
    if (!ended) {
      if (turn_ended) {
        *response->add_observation() =
            Message("user", absl::StrCat("Question ", turn, " of episode ", seed, "?"));
      } else {
        *response->add_observation() = Message(
            "user", absl::StrCat("Execution results: [\"step ", step, " of turn ", turn,
                                 "\", \"é ✓ <tool_response>\"]"));
      }
    }
    response->set_episode_state(absl::StrCat("fake|", parts[1], "|", seed, "|", turn, "|", step));
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->steps[seed].push_back(StepLog{request->model_output(),
                                        {response->observation().begin(),
                                         response->observation().end()},
                                        ended});
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<SharedLog> log_;
  std::chrono::milliseconds delay_;
};

// One fake replica on a loopback port.
class FakeEnvServer {
 public:
  explicit FakeEnvServer(std::shared_ptr<SharedLog> log,
                         std::chrono::milliseconds step_delay = {})
      : service_(std::move(log), step_delay) {
    grpc::ServerBuilder builder;
    ConfigureServerBuilder(builder);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeEnvServer() { Kill(); }
  void Kill() {
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      server_->Wait();
      server_.reset();
    }
  }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeEnvService& service() { return service_; }

 private:
  FakeEnvService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace testing_env
}  // namespace envtune

#endif  // ENVTUNE_TESTS_ACTOR_FAKE_ENV_H_
