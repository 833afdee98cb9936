// Helpers for the trainer tests: tiny random Qwen2 policies and synthetic trajectories.
#ifndef ENVTUNE_TESTS_LEARNER_TRAINER_TEST_UTIL_H_
#define ENVTUNE_TESTS_LEARNER_TRAINER_TEST_UTIL_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "envtune/v1/learner.pb.h"
#include "learner/distributed.h"
#include "model/config.h"
#include "model/qwen2.h"
#include "tests/model/tiny_test_model.h"

namespace envtune {
namespace trainer_testing {

// The last token ends replies.
inline ModelConfig TinyConfig(int64_t vocab = 64, bool tie = false) {
  return TestTinyConfig(vocab, tie, /*max_positions=*/4096,
                        {.im_end = vocab - 1, .endoftext = vocab - 1});
}

inline std::shared_ptr<PolicyImpl> TinyPolicy(uint64_t seed, int64_t vocab = 64, bool tie = false,
                                              double std = 0.02) {
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(TinyConfig(vocab, tie)));
  policy->InitRandom(seed, std);
  return policy;
}

// A trajectory of `prompt` prompt tokens then `generated` loss tokens drawn from `rng`, with
// behaviour log-probs set to `logprob` on the loss tokens.
inline v1::Trajectory MakeTrajectory(const std::string& group, int index, int group_size,
                                     double reward, int prompt, int generated, std::mt19937& rng,
                                     int64_t vocab = 64, uint64_t version = 1,
                                     float logprob = -4.0f) {
  v1::Trajectory t;
  t.set_episode_id(absl::StrCat(group, "/", index));
  t.set_lease_id(group);
  t.set_group_id(group);
  t.set_group_size(static_cast<uint32_t>(group_size));
  t.set_task_id("multi_turn_base_0");
  t.set_stage(2);
  t.set_policy_version(version);
  std::uniform_int_distribution<int> token(0, static_cast<int>(vocab) - 2);
  std::string mask;
  for (int i = 0; i < prompt + generated; ++i) {
    t.add_token_ids(token(rng));
    bool loss = i >= prompt;
    mask.push_back(loss ? 1 : 0);
    t.add_behaviour_logprobs(loss ? logprob : 0.0f);
  }
  t.set_loss_mask(mask);
  t.set_prompt_tokens(static_cast<uint32_t>(prompt));
  t.set_reward(reward);
  t.set_progress(reward);
  t.set_finish_reason("done");
  return t;
}

// TinyPolicy(seed) with its parameters in `dtype` (rounded once from the fp32 draw).
inline std::shared_ptr<PolicyImpl> TinyPolicyIn(uint64_t seed, torch::ScalarType dtype) {
  auto init = TinyPolicy(seed);
  if (dtype == torch::kFloat32) return init;
  auto p = std::make_shared<PolicyImpl>(PolicyOptions(TinyConfig()).dtype(dtype));
  torch::NoGradGuard no_grad;
  auto src = init->parameters();
  auto dst = p->parameters();
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
  return p;
}

// Detached copies of the policy's parameters.
inline std::vector<torch::Tensor> CloneParams(PolicyImpl& p) {
  std::vector<torch::Tensor> out;
  for (const auto& t : p.parameters()) out.push_back(t.detach().clone());
  return out;
}

// A loopback TCP port nobody listens on right now (`fallback` if none could be bound).
inline int FreeLoopbackPort(int fallback = 29517) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return fallback;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// Runs body(rank, group) for ranks 0..ranks-1 on as many threads. With `with_group`, each rank
// first joins a Gloo group of `ranks` ranks on a free loopback port (a group of one has no
// process group); otherwise group is null. Returns each rank's status.
inline std::vector<absl::Status> RunRanks(
    int ranks, bool with_group, const std::function<absl::Status(int, Distributed*)>& body) {
  std::vector<absl::Status> status(static_cast<size_t>(ranks));
  const int port = FreeLoopbackPort();
  auto run = [&](int rank) -> absl::Status {
    std::unique_ptr<Distributed> group;
    if (with_group) {
      DistributedOptions o;
      o.world_size = ranks;
      o.rank = rank;
      o.master_port = port;
      o.timeout = absl::Seconds(60);
      auto d = Distributed::Create(o);
      if (!d.ok()) return d.status();
      group = std::move(*d);
    }
    return body(rank, group.get());
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] { status[static_cast<size_t>(r)] = run(r); });
  }
  for (auto& t : threads) t.join();
  return status;
}

inline double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace trainer_testing
}  // namespace envtune

#endif  // ENVTUNE_TESTS_LEARNER_TRAINER_TEST_UTIL_H_
