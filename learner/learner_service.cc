#include "learner/learner_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/security.h"

namespace envtune {

// One PushTrajectories stream. At most one read is outstanding; a trajectory that finds the
// queue full is held here and no further read is started until the queue calls back. Once the
// queue is closed (the learner stopped training), trajectories are still read, so actors can
// drain their streams, but discarded and counted.
class LearnerServiceImpl::PushReactor final : public grpc::ServerReadReactor<v1::Trajectory> {
 public:
  PushReactor(LearnerServiceImpl* service, v1::PushTrajectoriesResponse* response)
      : service_(service), response_(response) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the actor half-closed (or the call broke): report what was taken
      Finish(grpc::Status::OK);
      return;
    }
    if (absl::Status valid = ValidateTrajectory(incoming_, service_->options_.vocab_size);
        !valid.ok()) {
      Finish(ToGrpcStatus(valid));
      return;
    }
    uint64_t latest = service_->weights_->version();
    if (incoming_.policy_version() > latest) {
      Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("trajectory '", incoming_.episode_id(),
                                       "' has policy_version ", incoming_.policy_version(),
                                       " but the learner is at ", latest)));
      return;
    }
    TryPushThenRead();
  }

  void OnDone() override { delete this; }

 private:
  void TryPushThenRead() {
    v1::Trajectory summary;  // the ledger's fields (the queue takes the trajectory itself)
    if (service_->ledger_ != nullptr) summary = LedgerSummary(incoming_);
    if (service_->queue_->TryPush(incoming_)) {
      service_->Ledger(summary, "queued");
      service_->accepted_.fetch_add(1);
      response_->set_accepted(response_->accepted() + 1);
    } else if (service_->queue_->closed()) {
      service_->Ledger(summary, "discarded");
      service_->discarded_.fetch_add(1);
      response_->set_discarded(response_->discarded() + 1);
    } else {
      // Full: wait for space without reading; HTTP/2 flow control holds the actor.
      service_->queue_->NotifyWhenSpace([this] { TryPushThenRead(); });
      return;
    }
    incoming_.Clear();
    StartRead(&incoming_);
  }

  static v1::Trajectory LedgerSummary(const v1::Trajectory& t) {
    v1::Trajectory out;
    out.set_episode_id(t.episode_id());
    out.set_lease_id(t.lease_id());
    out.set_group_id(t.group_id());
    out.set_task_id(t.task_id());
    out.set_stage(t.stage());
    out.set_policy_version(t.policy_version());
    out.set_failed(t.failed());
    return out;
  }

  LearnerServiceImpl* const service_;
  v1::PushTrajectoriesResponse* const response_;
  v1::Trajectory incoming_;
};

// One GetWeights stream: not_modified, or header, data chunks, last. Each data chunk is filled
// straight from the snapshot's per-tensor buffers (the tensors one after the other, a chunk may
// span several), so no whole-model buffer exists; one write is in flight at a time and the
// snapshot stays alive until the stream ends.
class LearnerServiceImpl::WeightsReactor final : public grpc::ServerWriteReactor<v1::WeightsChunk> {
 public:
  WeightsReactor(std::shared_ptr<const WeightSnapshot> snapshot, const v1::GetWeightsRequest& request,
                 uint32_t chunk_bytes)
      : snapshot_(std::move(snapshot)), chunk_bytes_(std::max<uint32_t>(1, chunk_bytes)) {
    if (snapshot_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no policy weights published yet"));
      return;
    }
    total_ = snapshot_->total_bytes();
    chunk_.set_version(snapshot_->version);
    if (request.known_version() == snapshot_->version) {
      chunk_.set_not_modified(true);
      chunk_.set_last(true);
    } else {
      *chunk_.mutable_header() = snapshot_->header;
      chunk_.set_last(total_ == 0);
    }
    StartWrite(&chunk_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "weights stream broken"));
      return;
    }
    if (chunk_.last()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_bytes_, total_ - sent_));
    chunk_.Clear();
    chunk_.set_version(snapshot_->version);
    std::string* data = chunk_.mutable_data();
    data->reserve(n);
    while (data->size() < n) {
      const std::string_view tensor = snapshot_->tensors[tensor_];
      const size_t take = std::min(n - data->size(), tensor.size() - offset_);
      data->append(tensor.data() + offset_, take);
      offset_ += take;
      if (offset_ == tensor.size()) {
        ++tensor_;
        offset_ = 0;
      }
    }
    sent_ += n;
    chunk_.set_last(sent_ == total_);
    StartWrite(&chunk_);
  }

  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<const WeightSnapshot> snapshot_;
  const uint32_t chunk_bytes_;
  uint64_t total_ = 0;
  uint64_t sent_ = 0;
  size_t tensor_ = 0;  // the tensor the next byte comes from, and the offset in it
  size_t offset_ = 0;
  v1::WeightsChunk chunk_;
};

LearnerServiceImpl::LearnerServiceImpl(TrajectoryQueue* queue, WeightStore* weights,
                                       LearnerServiceOptions options)
    : queue_(queue), weights_(weights), options_(options) {
  if (!options_.ledger_path.empty()) {
    ledger_ = std::make_unique<std::ofstream>(options_.ledger_path, std::ios::app);
  }
}

void LearnerServiceImpl::Ledger(const v1::Trajectory& t, const char* disposition) {
  if (ledger_ == nullptr) return;
  absl::MutexLock lock(&ledger_mu_);
  *ledger_ << absl::StrCat("{\"episode\":\"", t.episode_id(), "\",\"lease\":\"", t.lease_id(),
                           "\",\"group\":\"", t.group_id(), "\",\"task\":\"", t.task_id(),
                           "\",\"stage\":", t.stage(), ",\"version\":", t.policy_version(),
                           ",\"failed\":", t.failed() ? "true" : "false",
                           ",\"disposition\":\"", disposition, "\"}\n");
  ledger_->flush();
}

grpc::ServerReadReactor<v1::Trajectory>* LearnerServiceImpl::PushTrajectories(
    grpc::CallbackServerContext* context, v1::PushTrajectoriesResponse* response) {
  if (auto* refused = RejectReadUnlessAuthorized<v1::Trajectory>(context, RpcAccess::kWorker)) {
    return refused;
  }
  return new PushReactor(this, response);
}

grpc::ServerWriteReactor<v1::WeightsChunk>* LearnerServiceImpl::GetWeights(
    grpc::CallbackServerContext* context, const v1::GetWeightsRequest* request) {
  if (auto* refused = RejectWriteUnlessAuthorized<v1::WeightsChunk>(context, RpcAccess::kWorker)) {
    return refused;
  }
  uint32_t chunk = request->chunk_bytes() == 0 ? options_.default_chunk_bytes
                                               : std::min(request->chunk_bytes(),
                                                          options_.max_chunk_bytes);
  return new WeightsReactor(weights_->Latest(), *request, chunk);
}

grpc::ServerUnaryReactor* LearnerServiceImpl::GetPolicyVersion(
    grpc::CallbackServerContext* context, const v1::GetPolicyVersionRequest* request,
    v1::GetPolicyVersionResponse* response) {
  if (auto* refused = RejectUnlessAuthorized(context, RpcAccess::kWorker)) return refused;
  std::shared_ptr<const WeightSnapshot> latest = weights_->Latest();
  if (latest != nullptr) {
    response->set_version(latest->version);
    response->set_learner_step(latest->learner_step);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace envtune
