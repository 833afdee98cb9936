// libFuzzer target for LearnerService's PushTrajectories below gRPC: what the stream reactor
// does with each message (ValidateTrajectory against a vocabulary, then the TrajectoryQueue the
// trainer pops GRPO batches from). Trajectories are raw fuzzed bytes or built from fuzzed
// fields around a consistent skeleton (so the checks past the first are reached). A trajectory
// that passes must satisfy what the trainer relies on (lengths agree, spans and token ids in
// range, finite values); anything else is a crash here.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "learner/trajectory_queue.h"

namespace {

namespace v1 = envtune::v1;

v1::Trajectory Build(FuzzedDataProvider& in) {
  v1::Trajectory t;
  if (in.ConsumeIntegralInRange(0, 3) == 0) {
    (void)t.ParseFromString(in.ConsumeRandomLengthString(4096));
    return t;
  }
  t.set_episode_id(in.ConsumeBool() ? "L1/0" : in.ConsumeRandomLengthString(300));
  t.set_lease_id("L1");
  t.set_group_id(in.ConsumeBool() ? "L1" : in.ConsumeRandomLengthString(40));
  t.set_group_size(in.ConsumeIntegralInRange<uint32_t>(0, 70000));
  t.set_task_id("multi_turn_base_0");
  t.set_stage(in.ConsumeIntegralInRange<uint32_t>(0, 6));
  t.set_policy_version(in.ConsumeIntegralInRange<uint64_t>(0, 3));
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 300);
  const size_t mask_n = in.ConsumeBool() ? n : in.ConsumeIntegralInRange<size_t>(0, 300);
  const size_t lp_n = in.ConsumeBool() ? n : in.ConsumeIntegralInRange<size_t>(0, 300);
  for (size_t i = 0; i < n; ++i) {
    t.add_token_ids(in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(0, 99)
                                     : in.ConsumeIntegral<int32_t>());
  }
  std::string mask;
  for (size_t i = 0; i < mask_n; ++i) mask.push_back(static_cast<char>(in.ConsumeIntegralInRange(0, 2)));
  t.set_loss_mask(mask);
  for (size_t i = 0; i < lp_n; ++i) {
    t.add_behaviour_logprobs(in.ConsumeBool() ? -in.ConsumeProbability<float>() * 20
                                              : in.ConsumeFloatingPoint<float>());
  }
  for (int s = in.ConsumeIntegralInRange(0, 4); s > 0; --s) {
    v1::TurnSpan* span = t.add_turns();
    span->set_turn_index(in.ConsumeIntegralInRange<uint32_t>(0, 5));
    span->set_token_begin(in.ConsumeIntegralInRange<uint32_t>(0, 310));
    span->set_token_end(in.ConsumeIntegralInRange<uint32_t>(0, 310));
    span->set_score(in.ConsumeFloatingPoint<double>());
  }
  t.set_reward(in.ConsumeBool() ? in.ConsumeProbability<double>() : in.ConsumeFloatingPoint<double>());
  t.set_progress(in.ConsumeProbability<double>());
  t.set_prompt_tokens(in.ConsumeIntegralInRange<uint32_t>(0, 310));
  t.set_failed(in.ConsumeBool());
  return t;
}

// What the trainer indexes with; a violation after ValidateTrajectory said OK is a bug.
void CheckAccepted(const v1::Trajectory& t, int64_t vocab) {
  if (!std::isfinite(t.reward()) || t.stage() < 1 || t.stage() > 4) std::abort();
  if (t.failed()) return;  // carries no tokens the trainer reads
  const int n = t.token_ids_size();
  if (static_cast<int>(t.loss_mask().size()) != n || t.behaviour_logprobs_size() != n) std::abort();
  for (int32_t id : t.token_ids()) {
    if (id < 0 || id >= vocab) std::abort();
  }
  for (float lp : t.behaviour_logprobs()) {
    if (!std::isfinite(lp)) std::abort();
  }
  for (const v1::TurnSpan& span : t.turns()) {
    if (span.token_begin() > span.token_end() || span.token_end() > static_cast<uint32_t>(n)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int64_t vocab = 100;
  envtune::TrajectoryQueue queue(4);
  for (int i = 0; i < 6 && in.remaining_bytes() > 0; ++i) {
    v1::Trajectory t = Build(in);
    if (!envtune::ValidateTrajectory(t, vocab).ok()) continue;
    CheckAccepted(t, vocab);
    if (!queue.TryPush(t)) (void)queue.PopBatch(1, 2, absl::ZeroDuration());
  }
  queue.Close();
  (void)queue.PopBatch(1, 8, absl::ZeroDuration());
  return 0;
}
