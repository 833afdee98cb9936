#include "learner/weight_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace envtune {

std::shared_ptr<WeightSnapshot> WeightSnapshot::FromContiguous(uint64_t version,
                                                               uint64_t learner_step,
                                                               v1::WeightsHeader header,
                                                               std::string data) {
  auto snapshot = std::make_shared<WeightSnapshot>();
  snapshot->version = version;
  snapshot->learner_step = learner_step;
  auto owned = std::make_shared<const std::string>(std::move(data));
  uint64_t offset = 0;
  for (const v1::TensorHeader& t : header.tensors()) {
    // Views past the end are clipped; Publish then reports the size mismatch.
    const uint64_t begin = std::min<uint64_t>(offset, owned->size());
    const uint64_t size = std::min<uint64_t>(t.byte_size(), owned->size() - begin);
    snapshot->tensors.emplace_back(owned->data() + begin, size);
    offset += t.byte_size();
  }
  snapshot->header = std::move(header);
  snapshot->storage = std::move(owned);
  return snapshot;
}

uint64_t WeightSnapshot::total_bytes() const {
  uint64_t total = 0;
  for (std::string_view t : tensors) total += t.size();
  return total;
}

absl::Status WeightStore::Publish(std::shared_ptr<const WeightSnapshot> snapshot) {
  if (snapshot == nullptr) return absl::InvalidArgumentError("Publish: null snapshot");
  if (static_cast<size_t>(snapshot->header.tensors_size()) != snapshot->tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat("Publish: header lists ",
                                                   snapshot->header.tensors_size(),
                                                   " tensors, the snapshot has ",
                                                   snapshot->tensors.size(), " buffers"));
  }
  uint64_t total = 0;
  for (int i = 0; i < snapshot->header.tensors_size(); ++i) {
    const v1::TensorHeader& tensor = snapshot->header.tensors(i);
    if (tensor.byte_size() != snapshot->tensors[i].size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Publish: tensor '", tensor.name(), "' has byte_size ", tensor.byte_size(),
          " but its buffer holds ", snapshot->tensors[i].size()));
    }
    total += tensor.byte_size();
  }
  if (snapshot->header.total_bytes() != total) {
    return absl::InvalidArgumentError(absl::StrCat("Publish: header lists ", total,
                                                   " bytes but total_bytes is ",
                                                   snapshot->header.total_bytes()));
  }
  absl::MutexLock lock(&mu_);
  if (latest_ != nullptr && snapshot->version <= latest_->version) {
    return absl::InvalidArgumentError(absl::StrCat("Publish: version ", snapshot->version,
                                                   " is not newer than ", latest_->version));
  }
  latest_ = std::move(snapshot);
  return absl::OkStatus();
}

std::shared_ptr<const WeightSnapshot> WeightStore::Latest() {
  absl::MutexLock lock(&mu_);
  return latest_;
}

uint64_t WeightStore::version() {
  absl::MutexLock lock(&mu_);
  return latest_ == nullptr ? 0 : latest_->version;
}

}  // namespace envtune
