#include "learner/weight_publisher.h"

#include <thread>
#include <utility>

#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "absl/strings/str_cat.h"
#include "model/qwen2.h"
#include "model/weights_io.h"

namespace envtune {

// A version whose device-to-host copies may still be running: its thread waits for the event,
// then publishes.
struct WeightPublisher::Pending {
  std::thread thread;
  absl::Status status;  // written by `thread`, read after joining it
};

WeightPublisher::WeightPublisher(WeightStore* store, std::string dtype)
    : store_(store), snapshotter_(std::move(dtype), /*async_device_copy=*/true) {}

WeightPublisher::~WeightPublisher() { Flush().IgnoreError(); }

absl::Status WeightPublisher::Flush() {
  if (pending_ == nullptr) return absl::OkStatus();
  pending_->thread.join();
  absl::Status status = std::move(pending_->status);
  pending_.reset();
  return status;
}

absl::Status WeightPublisher::Publish(PolicyImpl& policy, uint64_t version,
                                      uint64_t learner_step) {
  if (absl::Status previous = Flush(); !previous.ok()) return previous;
  c10::Device device = c10::Device(c10::kCPU);
  try {
    for (const at::Tensor& p : policy.parameters()) {
      device = p.device();
      break;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("publishing weights: ", e.what_without_backtrace()));
  }
  const bool async = device.is_cuda();
  absl::StatusOr<WeightBuffers> buffers = snapshotter_.Snapshot(policy);  // async on CUDA
  if (!buffers.ok()) return buffers.status();
  auto snapshot = std::make_shared<WeightSnapshot>();
  snapshot->version = version;
  snapshot->learner_step = learner_step;
  snapshot->header = std::move(buffers->header);
  snapshot->tensors = std::move(buffers->tensors);
  snapshot->storage = std::move(buffers->storage);
  if (!async) return store_->Publish(std::move(snapshot));
  try {
    // The copies were queued on the device's current stream; the event completes after them.
    const c10::impl::DeviceGuardImplInterface* guard = c10::impl::getDeviceGuardImpl(device.type());
    auto event = std::make_shared<c10::Event>(device.type());
    event->record(guard->getStream(device));
    pending_ = std::make_unique<Pending>();
    Pending* pending = pending_.get();
    pending->thread = std::thread([this, pending, event, snapshot = std::move(snapshot)]() mutable {
      try {
        event->synchronize();
        pending->status = store_->Publish(std::move(snapshot));
      } catch (const c10::Error& e) {
        pending->status = absl::InternalError(absl::StrCat(
            "publishing weights: waiting for the device-to-host copy: ", e.what_without_backtrace()));
      }
    });
  } catch (const c10::Error& e) {
    pending_.reset();
    return absl::InternalError(
        absl::StrCat("publishing weights: recording the copy's event: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace envtune
