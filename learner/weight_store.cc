#include "learner/weight_store.h"

#include "absl/strings/str_cat.h"

namespace envtune {

absl::Status WeightStore::Publish(std::shared_ptr<const WeightSnapshot> snapshot) {
  if (snapshot == nullptr) return absl::InvalidArgumentError("Publish: null snapshot");
  uint64_t total = 0;
  for (const v1::TensorHeader& tensor : snapshot->header.tensors()) total += tensor.byte_size();
  if (total != snapshot->data.size() || snapshot->header.total_bytes() != total) {
    return absl::InvalidArgumentError(absl::StrCat("Publish: header lists ", total,
                                                   " bytes (total_bytes ",
                                                   snapshot->header.total_bytes(), "), data has ",
                                                   snapshot->data.size()));
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
