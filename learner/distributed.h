// Data parallelism for the learner over torch.distributed's c10d, from C++.
//
// Rendezvous: a c10d TCPStore served by rank 0 at master_addr:master_port; every rank connects
// to it. Collectives: ProcessGroupGloo on CPU tensors; ProcessGroupNCCL for CUDA tensors only
// when envtune was built against a CUDA LibTorch with NCCL (ENVTUNE_WITH_NCCL; a CPU build
// never references it). world_size 1 needs no process group: every collective is a no-op.
//
// Protocol of the learner (learner/learner_role.h): rank 0 owns the LearnerService and forms
// each batch; it broadcasts the serialised shards (BroadcastBytes) and every rank trains on its
// own; Trainer::Step sums gradients (AllReduceSum) so every rank takes the same optimiser step.
// Initial parameters are broadcast from rank 0 (BroadcastParameters).
//
// Errors: every collective has the configured timeout; failures (a peer died, timeout) come
// back as UNAVAILABLE / DEADLINE_EXCEEDED naming the rank, the peer address and the phase.
// Thread safety: one thread per Distributed at a time (collectives are ordered).
#ifndef ENVTUNE_LEARNER_DISTRIBUTED_H_
#define ENVTUNE_LEARNER_DISTRIBUTED_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace envtune {

class PolicyImpl;

struct DistributedOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int world_size = 1;
  int rank = 0;
  // "gloo" (CPU tensors) or "nccl" (CUDA tensors; only in NCCL builds).
  std::string backend = "gloo";
  // Rendezvous and every collective.
  absl::Duration timeout = absl::Minutes(10);
};

class Distributed {
 public:
  // Connects every rank (blocks until all world_size ranks joined or the timeout passes).
  static absl::StatusOr<std::unique_ptr<Distributed>> Create(const DistributedOptions& options);
  ~Distributed();

  int rank() const;
  int world_size() const;
  bool is_root() const { return rank() == 0; }

  // In-place elementwise sum over ranks of every tensor (same shapes and dtypes on every rank).
  // The tensors are flattened into one fp32 buffer per call.
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors, const std::string& phase);
  // Like AllReduceSum with the elementwise maximum.
  absl::Status AllReduceMax(std::vector<at::Tensor>& tensors, const std::string& phase);
  // Rank 0's `bytes` on every rank (other ranks' input is ignored).
  absl::StatusOr<std::string> BroadcastBytes(const std::string& bytes, const std::string& phase);
  // Copies rank 0's parameters (and buffers) into every rank's policy.
  absl::Status BroadcastParameters(PolicyImpl& policy);
  // Blocks until every rank arrives.
  absl::Status Barrier(const std::string& phase);

 private:
  struct Impl;
  absl::Status AllReduce(std::vector<at::Tensor>& tensors, const std::string& phase, bool max);
  explicit Distributed(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_DISTRIBUTED_H_
