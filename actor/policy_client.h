// PolicyClient: the actor's current policy and the versioned weights it fetches from the
// learner (LearnerService.GetWeights). A fetch writes the chunk stream (header, data*, last)
// straight into per-tensor host buffers allocated from the header (model/weights_io.h
// WeightsReceiver; pinned and kept between versions for a CUDA policy), with size checks; no
// whole-model buffer is assembled. "not modified" keeps the policy; a newer version is loaded in
// place when the architecture is unchanged, else a new policy is built.
//
// EnsureVersion(min) is what a lease needs: it never returns OK with a policy older than `min`.
// It polls the learner (GetPolicyVersion, then GetWeights) until the version is available or
// the deadline passes, then fails with DEADLINE_EXCEEDED naming the learner, the phase and the
// versions ("learner 10.0.0.3:5002 (GetWeights): version 7 not available within 60s; it has 6").
//
// Thread safety: thread-safe. policy() hands out a shared_ptr; the policy is refreshed in place
// only by EnsureVersion/Fetch, which callers must not run while that policy is generating
// (the actor runs both on its lease thread).
#ifndef ENVTUNE_ACTOR_POLICY_CLIENT_H_
#define ENVTUNE_ACTOR_POLICY_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "envtune/v1/learner.grpc.pb.h"
#include "grpcpp/channel.h"
#include "model/weights_io.h"

namespace envtune {

class PolicyImpl;

struct PolicyClientOptions {
  absl::Duration rpc_timeout = absl::Seconds(300);  // one GetWeights stream / version poll
  absl::Duration poll_interval = absl::Milliseconds(500);
  uint32_t chunk_bytes = 0;  // 0 = server default
  WeightsLoadOptions load;   // dtype/device of the built policy
};

class PolicyClient {
 public:
  // `learner` is a host:port (dialled here); `channel` may be given instead (tests).
  PolicyClient(const std::string& learner, PolicyClientOptions options = {});
  PolicyClient(std::shared_ptr<grpc::Channel> channel, std::string learner_name,
               PolicyClientOptions options = {});

  // Ensures the policy's version is >= min_version, fetching until `timeout` passes.
  // With min_version == 0 and no policy yet, fetches whatever the learner has.
  absl::Status EnsureVersion(uint64_t min_version, absl::Duration timeout);
  // One GetWeights call with known_version = version(): updates the policy if the learner has
  // another version. Returns the version held afterwards.
  absl::StatusOr<uint64_t> Fetch();

  // Installs a policy directly (local runs, tests).
  void SetPolicy(std::shared_ptr<PolicyImpl> policy, uint64_t version);
  std::shared_ptr<PolicyImpl> policy() const;
  uint64_t version() const;
  bool has_policy() const;
  const std::string& learner_name() const { return learner_name_; }

 private:
  absl::StatusOr<uint64_t> LearnerVersion();

  const std::string learner_name_;
  const PolicyClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LearnerService::Stub> stub_;
  absl::Mutex fetch_mu_;  // one fetch at a time
  std::unique_ptr<WeightsReceiver> receiver_ ABSL_GUARDED_BY(fetch_mu_);
  mutable absl::Mutex mu_;
  std::shared_ptr<PolicyImpl> policy_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace envtune

#endif  // ENVTUNE_ACTOR_POLICY_CLIENT_H_
