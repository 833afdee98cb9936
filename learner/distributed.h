// Data parallelism for the learner over torch.distributed's c10d, from C++.
//
// Rendezvous: a c10d TCPStore served by rank 0 at master_addr:master_port; every rank connects
// to it. Two c10d backends (LibTorch 2.x `c10d::Backend`s), each under its own store prefix:
//   data:    tensors (gradients, parameters). Gloo with CPU tensors, or NCCL with tensors on the
//            rank's GPU (`device`; CMake defines ENVTUNE_WITH_NCCL when LibTorch has CUDA and
//            NCCL, and a build without it never references NCCL).
//   control: host bytes (batches, barriers). Always Gloo on CPU; with backend gloo it is the
//            data backend itself.
// world_size 1 needs no process group: every collective is a no-op.
//
// Protocol of the learner (learner/learner_role.h): rank 0 owns the LearnerService and forms
// each batch; it broadcasts the serialised shards (BroadcastBytes) and every rank trains on its
// own; Trainer::Step sums gradients (AllReduceSum) so every rank takes the same optimiser step.
// Initial parameters are broadcast from rank 0 (BroadcastParameters).
//
// Errors: every collective has the configured timeout, NCCL's too (TORCH_NCCL_BLOCKING_WAIT=1
// unless the environment sets it: the host waits for the collective and gets NCCL's error or
// timeout instead of hanging); failures (a peer died, timeout, NCCL error) come back as
// UNAVAILABLE / DEADLINE_EXCEEDED naming the rank, the peer address and the phase. backend nccl
// without a visible GPU, or in a build without NCCL, fails in Create, naming the device.
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
  // nccl: the rank's GPU ("cuda:N"; "cuda" or "" = cuda:$LOCAL_RANK, else cuda:0). The policy
  // must live on the same device (ResolveDevice in model/device.h gives both the same answer).
  std::string device;
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
  // Where the data backend's tensors live (CPU for gloo, the rank's GPU for nccl).
  c10::Device device() const;
  bool is_root() const { return rank() == 0; }

  // In-place elementwise sum over ranks of every tensor (same shapes and dtypes on every rank).
  // The tensors are flattened into one fp32 buffer per call.
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors, const std::string& phase);
  // Like AllReduceSum with the elementwise maximum.
  absl::Status AllReduceMax(std::vector<at::Tensor>& tensors, const std::string& phase);
  // Sharded data parallelism (ZeRO): `input` holds world_size equal slices; `output` (one
  // slice) gets the elementwise sum over ranks of this rank's slice. Same dtype, contiguous, on
  // device(). world_size 1: output = input.
  absl::Status ReduceScatterSum(at::Tensor& output, const at::Tensor& input,
                                const std::string& phase);
  // Every rank's `input` concatenated in rank order into `output` (world_size x input.numel()).
  absl::Status AllGather(at::Tensor& output, const at::Tensor& input, const std::string& phase);
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
