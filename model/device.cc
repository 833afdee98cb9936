#include "model/device.h"

#include <cstdlib>
#include <string>

#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace envtune {

bool BuiltWithCuda() { return ENVTUNE_WITH_CUDA != 0; }

int VisibleCudaDevices() {
  if (!BuiltWithCuda()) return 0;
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (const c10::Error&) {
    return 0;  // no driver
  }
}

absl::StatusOr<c10::Device> ResolveDevice(std::string_view spec) {
  const std::string text(spec.empty() ? "cpu" : spec);
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(text);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", text, "': ", e.what_without_backtrace()));
  }
  if (device.is_cpu()) return c10::Device(c10::kCPU);
  if (!device.is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", text, "': envtune runs on cpu or cuda[:N]"));
  }
  if (!device.has_index()) {
    int index = 0;
    if (const char* local_rank = std::getenv("LOCAL_RANK"); local_rank != nullptr) {
      if (!absl::SimpleAtoi(local_rank, &index) || index < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "device '", text, "': LOCAL_RANK='", local_rank, "' is not a GPU index"));
      }
    }
    device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  const std::string name = device.str();
  if (!BuiltWithCuda()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", name, "' requested, but this envtune was built against a LibTorch without "
        "CUDA"));
  }
  const int visible = VisibleCudaDevices();
  if (visible == 0) {
    const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", name, "' requested, but no CUDA device is visible to this process",
        cvd != nullptr ? absl::StrCat(" (CUDA_VISIBLE_DEVICES='", cvd, "')") : std::string()));
  }
  if (device.index() >= visible) {
    return absl::FailedPreconditionError(absl::StrCat("device '", name, "' requested, but only ",
                                                      visible, " CUDA device(s) are visible"));
  }
  return device;
}

bool SameDevice(const c10::Device& a, const c10::Device& b) {
  if (a.type() != b.type()) return false;
  return !a.has_index() || !b.has_index() || a.index() == b.index();
}

}  // namespace envtune
