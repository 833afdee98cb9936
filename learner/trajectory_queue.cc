#include "learner/trajectory_queue.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace envtune {

absl::Status ValidateTrajectory(const v1::Trajectory& t, int64_t vocab_size) {
  // Ids are echoed in errors (as excerpts) and kept per group: bounded like the env server's
  // task ids, so a 20 MB id is a short INVALID_ARGUMENT.
  constexpr size_t kMaxIdBytes = 256;
  auto bad = [&t](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("trajectory '", Excerpt(t.episode_id()), "': ", what));
  };
  if (t.episode_id().empty()) return absl::InvalidArgumentError("trajectory: episode_id is empty");
  for (const auto& [name, id] : {std::pair<const char*, const std::string*>{"episode_id", &t.episode_id()},
                                 {"lease_id", &t.lease_id()},
                                 {"group_id", &t.group_id()},
                                 {"task_id", &t.task_id()}}) {
    if (id->size() > kMaxIdBytes) {
      return bad(absl::StrCat(name, " is longer than ", kMaxIdBytes, " bytes (", id->size(), ")"));
    }
  }
  if (t.group_id().empty()) return bad("group_id is empty");
  if (t.group_size() == 0) return bad("group_size is 0");
  // The coordinator's curriculum bounds group_size at 1024; a larger one would hold its
  // trajectories (and memory) until the group times out, never to complete.
  if (t.group_size() > 1024) return bad(absl::StrCat("group_size ", t.group_size(), " above 1024"));
  if (t.stage() < 1 || t.stage() > 4) return bad(absl::StrCat("stage ", t.stage(), " outside 1..4"));
  if (!std::isfinite(t.reward())) return bad("reward is not finite");
  if (t.failed()) return absl::OkStatus();  // an accounted-for failure carries no tokens
  const size_t n = static_cast<size_t>(t.token_ids_size());
  if (n == 0) return bad("token_ids is empty");
  if (t.loss_mask().size() != n) {
    return bad(absl::StrCat("loss_mask has ", t.loss_mask().size(), " entries for ", n, " tokens"));
  }
  if (static_cast<size_t>(t.behaviour_logprobs_size()) != n) {
    return bad(absl::StrCat("behaviour_logprobs has ", t.behaviour_logprobs_size(),
                            " entries for ", n, " tokens"));
  }
  if (t.prompt_tokens() > n) return bad("prompt_tokens exceeds token count");
  for (size_t i = 0; i < n; ++i) {
    const int64_t id = t.token_ids(static_cast<int>(i));
    if (id < 0 || (vocab_size > 0 && id >= vocab_size)) {
      return bad(absl::StrCat("token_ids[", i, "] = ", id, " outside the vocabulary [0, ",
                              vocab_size > 0 ? absl::StrCat(vocab_size) : std::string("..."), ")"));
    }
    unsigned char mask = static_cast<unsigned char>(t.loss_mask()[i]);
    if (mask > 1) return bad(absl::StrCat("loss_mask[", i, "] is not 0/1"));
    float logprob = t.behaviour_logprobs(static_cast<int>(i));
    if (!std::isfinite(logprob) || logprob > 1e-3f) {
      return bad(absl::StrCat("behaviour_logprobs[", i, "] = ", logprob, " is not a log-prob"));
    }
  }
  for (const v1::TurnSpan& span : t.turns()) {
    if (span.token_begin() > span.token_end() || span.token_end() > n) {
      return bad(absl::StrCat("turn ", span.turn_index(), " span [", span.token_begin(), ", ",
                              span.token_end(), ") outside ", n, " tokens"));
    }
  }
  return absl::OkStatus();
}

TrajectoryQueue::TrajectoryQueue(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

bool TrajectoryQueue::TryPush(v1::Trajectory& trajectory) {
  absl::MutexLock lock(&mu_);
  if (closed_ || items_.size() >= capacity_) return false;
  items_.push_back(std::move(trajectory));
  return true;
}

void TrajectoryQueue::NotifyWhenSpace(std::function<void()> callback) {
  {
    absl::MutexLock lock(&mu_);
    if (!closed_ && items_.size() >= capacity_) {
      space_callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void TrajectoryQueue::RunSpaceCallbacks() {
  std::vector<std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    callbacks.swap(space_callbacks_);
  }
  for (auto& callback : callbacks) callback();
}

std::vector<v1::Trajectory> TrajectoryQueue::PopBatch(size_t min_count, size_t max_count,
                                                      absl::Duration timeout) {
  std::vector<v1::Trajectory> batch;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this, min_count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || items_.size() >= min_count;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    while (!items_.empty() && batch.size() < max_count) {
      batch.push_back(std::move(items_.front()));
      items_.pop_front();
    }
  }
  if (!batch.empty()) RunSpaceCallbacks();
  return batch;
}

void TrajectoryQueue::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  RunSpaceCallbacks();
}

bool TrajectoryQueue::closed() {
  absl::MutexLock lock(&mu_);
  return closed_;
}

size_t TrajectoryQueue::size() {
  absl::MutexLock lock(&mu_);
  return items_.size();
}

}  // namespace envtune
