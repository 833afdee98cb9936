// Where tensors live: turning a configured device string into a concrete LibTorch device, and
// comparing devices the way tensors report them.
//
// ResolveDevice("cpu") is the CPU. ResolveDevice("cuda") picks this process's GPU: cuda:N with
// N = $LOCAL_RANK when set (torchrun, Slurm and the Kubernetes manifests set it per rank), else
// cuda:0; "cuda:N" is taken as given. Errors: InvalidArgument for a string LibTorch cannot parse
// or a device type envtune does not run on; FailedPrecondition naming the device when it is not
// there (a build without CUDA, no visible GPU, an index past the visible count).
#ifndef ENVTUNE_MODEL_DEVICE_H_
#define ENVTUNE_MODEL_DEVICE_H_

#include <string_view>

#include <c10/core/Device.h>

#include "absl/status/statusor.h"

namespace envtune {

absl::StatusOr<c10::Device> ResolveDevice(std::string_view spec);

// True when tensors on `a` and `b` are on the same device. A device without an index ("cuda")
// is the type's current device, which is where tensors created on it live, so it matches any
// index of its type: Device("cuda") and a tensor's cuda:0 are the same place. (c10::Device's ==
// compares the index too, and Device("cuda") != cuda:0.)
bool SameDevice(const c10::Device& a, const c10::Device& b);

// Whether this build of LibTorch has CUDA, and how many GPUs this process sees.
bool BuiltWithCuda();
int VisibleCudaDevices();

}  // namespace envtune

#endif  // ENVTUNE_MODEL_DEVICE_H_
