// LearnerService over gRPC's callback API (no torch): trajectories go into a TrajectoryQueue
// with read-side backpressure, weights stream out of a WeightStore in chunks.
#ifndef ENVTUNE_LEARNER_LEARNER_SERVICE_H_
#define ENVTUNE_LEARNER_LEARNER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <fstream>
#include <memory>

#include "envtune/v1/learner.grpc.pb.h"
#include "learner/trajectory_queue.h"
#include "learner/weight_store.h"

namespace envtune {

// Trajectories of any age are accepted (the learner enforces staleness per GRPO group); only a
// policy_version newer than the published one is refused. After the queue is closed, streams
// are still read to the end and their trajectories discarded and counted.
struct LearnerServiceOptions {
  uint32_t default_chunk_bytes = 1 << 20;
  uint32_t max_chunk_bytes = 4 << 20;
  // Optional audit trail: one JSON line per trajectory read off a stream, with what became of it
  //   {"episode":..,"lease":..,"group":..,"task":..,"stage":..,"version":..,"failed":..,
  //    "disposition":"queued"|"discarded"}
  // "" = off. Used by the integration test to check exactly-once delivery.
  std::string ledger_path;
  // The policy's vocabulary: a pushed token id outside [0, vocab_size) is INVALID_ARGUMENT on
  // that stream, never a trainer failure. 0 = not checked (no policy, e.g. tests of the service).
  int64_t vocab_size = 0;
};

class LearnerServiceImpl final : public v1::LearnerService::CallbackService {
 public:
  // `queue` and `weights` are not owned and must outlive the service.
  LearnerServiceImpl(TrajectoryQueue* queue, WeightStore* weights,
                     LearnerServiceOptions options = {});

  grpc::ServerReadReactor<v1::Trajectory>* PushTrajectories(
      grpc::CallbackServerContext* context, v1::PushTrajectoriesResponse* response) override;
  grpc::ServerWriteReactor<v1::WeightsChunk>* GetWeights(
      grpc::CallbackServerContext* context, const v1::GetWeightsRequest* request) override;
  grpc::ServerUnaryReactor* GetPolicyVersion(grpc::CallbackServerContext* context,
                                             const v1::GetPolicyVersionRequest* request,
                                             v1::GetPolicyVersionResponse* response) override;

  uint64_t accepted() const { return accepted_.load(); }
  uint64_t discarded() const { return discarded_.load(); }

 private:
  class PushReactor;
  class WeightsReactor;

  TrajectoryQueue* const queue_;
  WeightStore* const weights_;
  const LearnerServiceOptions options_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> discarded_{0};
  absl::Mutex ledger_mu_;
  // Set in the constructor only (so reading the pointer needs no lock); writes hold ledger_mu_.
  std::unique_ptr<std::ofstream> ledger_;

  void Ledger(const v1::Trajectory& summary, const char* disposition);
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_LEARNER_SERVICE_H_
