#include "learner/distributed.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <utility>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ENVTUNE_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "model/device.h"
#include "model/qwen2.h"

namespace envtune {

struct Distributed::Impl {
  DistributedOptions options;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> data;     // gradients, parameters: Gloo or NCCL
  c10::intrusive_ptr<c10d::Backend> control;  // host bytes, barriers: always Gloo
  torch::Device device = torch::kCPU;         // where the data backend's tensors live

  std::string Where(const std::string& phase) const {
    return absl::StrCat("distributed rank ", options.rank, "/", options.world_size, " (",
                        options.backend, ", master ", options.master_addr, ":",
                        options.master_port, ", ", phase, ")");
  }
  absl::Status Error(const std::string& phase, const std::string& what) const {
    absl::Status s = absl::UnavailableError(absl::StrCat(Where(phase), ": ", what));
    if (what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos) {
      s = absl::DeadlineExceededError(absl::StrCat(Where(phase), ": ", what));
    }
    return s;
  }
  std::chrono::milliseconds Timeout() const {
    return std::chrono::milliseconds(absl::ToInt64Milliseconds(options.timeout));
  }
  // Runs a collective and waits for it (host-blocking for NCCL too: see Create).
  absl::Status Run(const std::string& phase,
                   const std::function<c10::intrusive_ptr<c10d::Work>()>& start) const {
    try {
      c10::intrusive_ptr<c10d::Work> work = start();
      if (!work->wait(Timeout())) return Error(phase, "collective did not complete");
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return Error(phase, e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Error(phase, e.what());
    }
  }
  // A collective from `input` into `output` on the data backend: both staged on the backend's
  // device when they live elsewhere (or are not contiguous), `output` written back. Without a
  // group (world_size 1) the collective is the identity: output = input.
  absl::Status RunInto(
      at::Tensor& output, const at::Tensor& input, const std::string& phase,
      const std::function<c10::intrusive_ptr<c10d::Work>(at::Tensor&, at::Tensor&)>& start) const {
    try {
      torch::NoGradGuard no_grad;
      if (data == nullptr) {
        output.copy_(input.reshape(output.sizes()));
        return absl::OkStatus();
      }
      at::Tensor in = input.to(device).contiguous();
      at::Tensor out = output.device() == device && output.is_contiguous()
                           ? output
                           : torch::empty({output.numel()}, in.options());
      absl::Status s = Run(phase, [&] { return start(out, in); });
      if (!s.ok()) return s;
      if (!out.is_same(output)) output.copy_(out.view(output.sizes()));
      return absl::OkStatus();
    } catch (const c10::Error& e) {
      return Error(phase, e.what_without_backtrace());
    }
  }
  c10::intrusive_ptr<c10d::Backend> Gloo(const std::string& prefix) const {
    auto pg_options = c10d::ProcessGroupGloo::Options::create(Timeout());
    const std::string& addr = options.master_addr;
    const bool loopback = addr == "127.0.0.1" || addr == "localhost" || addr == "::1";
    pg_options->devices.push_back(loopback
                                      ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                      : c10d::ProcessGroupGloo::createDefaultDevice());
    return c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>(prefix, store), options.rank, options.world_size,
        pg_options);
  }
};

Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Distributed::~Distributed() = default;

int Distributed::rank() const { return impl_->options.rank; }
int Distributed::world_size() const { return impl_->options.world_size; }
c10::Device Distributed::device() const { return impl_->device; }

absl::StatusOr<std::unique_ptr<Distributed>> Distributed::Create(
    const DistributedOptions& options) {
  if (options.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("distributed: world_size must be >= 1, got ", options.world_size));
  }
  if (options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("distributed: rank ", options.rank,
                                                   " outside [0, ", options.world_size, ")"));
  }
  if (options.backend != "gloo" && options.backend != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("distributed: backend must be gloo or nccl, got '", options.backend, "'"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.backend == "nccl") {
    // The rank's GPU must exist before anything else happens, world_size 1 included: the
    // policy is built there.
    absl::StatusOr<c10::Device> device =
        ResolveDevice(options.device.empty() ? "cuda" : options.device);
    if (!device.ok()) {
      return absl::Status(device.status().code(),
                          absl::StrCat("distributed: backend nccl: ", device.status().message()));
    }
    if (!device->is_cuda()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "distributed: backend nccl needs a CUDA device, got '", device->str(), "'"));
    }
#ifndef ENVTUNE_WITH_NCCL
    return absl::FailedPreconditionError(absl::StrCat(
        "distributed: backend nccl on ", device->str(),
        ": this envtune was built without NCCL (CMake: ENVTUNE_NCCL, needs a CUDA LibTorch)"));
#else
    impl->device = *device;
#endif
  }
  if (options.world_size > 1 && (options.master_port <= 0 || options.master_port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("distributed: master_port ", options.master_port, " is not a valid port"));
  }
  if (options.world_size == 1) return std::unique_ptr<Distributed>(new Distributed(std::move(impl)));
  std::string phase = "rendezvous";
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.master_port);
    store_options.isServer = options.rank == 0;
    store_options.numWorkers = options.world_size;
    store_options.waitWorkers = true;
    store_options.timeout = impl->Timeout();
    impl->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
    phase = "process group";
    impl->control = impl->Gloo("control");
    if (options.backend == "gloo") {
      impl->data = impl->control;
    } else {
#ifdef ENVTUNE_WITH_NCCL
      // Host-blocking waits: Work::wait(timeout) then returns NCCL's error or timeout to this
      // thread instead of only queueing the stream behind the collective (a dead peer would
      // otherwise surface as a hang at the next host sync, or as the watchdog's abort).
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      c10::cuda::set_device(impl->device.index());
      auto pg_options = c10d::ProcessGroupNCCL::Options::create();
      pg_options->timeout = impl->Timeout();
      impl->data = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("data", impl->store), options.rank,
          options.world_size, pg_options);
#endif
    }
  } catch (const c10::Error& e) {
    return impl->Error(phase, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return impl->Error(phase, e.what());
  }
  return std::unique_ptr<Distributed>(new Distributed(std::move(impl)));
}

absl::Status Distributed::AllReduceSum(std::vector<at::Tensor>& tensors, const std::string& phase) {
  return AllReduce(tensors, phase, /*max=*/false);
}

absl::Status Distributed::AllReduceMax(std::vector<at::Tensor>& tensors, const std::string& phase) {
  return AllReduce(tensors, phase, /*max=*/true);
}

absl::Status Distributed::AllReduce(std::vector<at::Tensor>& tensors, const std::string& phase,
                                    bool max) {
  if (impl_->data == nullptr || tensors.empty()) return absl::OkStatus();
  try {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> flat_parts;
    flat_parts.reserve(tensors.size());
    for (const at::Tensor& t : tensors) {
      flat_parts.push_back(t.detach().reshape({-1}).to(impl_->device, torch::kFloat32));
    }
    std::vector<at::Tensor> buffer{torch::cat(flat_parts)};
    c10d::AllreduceOptions reduce;
    reduce.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    absl::Status s =
        impl_->Run(phase, [&] { return impl_->data->allreduce(buffer, reduce); });
    if (!s.ok()) return s;
    int64_t offset = 0;
    for (at::Tensor& t : tensors) {
      int64_t n = t.numel();
      t.copy_(buffer[0].narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return impl_->Error(phase, e.what_without_backtrace());
  }
}

absl::Status Distributed::ReduceScatterSum(at::Tensor& output, const at::Tensor& input,
                                          const std::string& phase) {
  if (input.numel() != output.numel() * world_size()) {
    return absl::InvalidArgumentError(absl::StrCat(impl_->Where(phase), ": input of ",
                                                   input.numel(), " elements is not ", world_size(),
                                                   " x ", output.numel()));
  }
  c10d::ReduceScatterOptions reduce;
  reduce.reduceOp = c10d::ReduceOp::SUM;
  return impl_->RunInto(output, input, phase, [&](at::Tensor& out, at::Tensor& in) {
    return impl_->data->_reduce_scatter_base(out, in, reduce);
  });
}

absl::Status Distributed::AllGather(at::Tensor& output, const at::Tensor& input,
                                   const std::string& phase) {
  if (output.numel() != input.numel() * world_size()) {
    return absl::InvalidArgumentError(absl::StrCat(impl_->Where(phase), ": output of ",
                                                   output.numel(), " elements is not ",
                                                   world_size(), " x ", input.numel()));
  }
  return impl_->RunInto(output, input, phase, [&](at::Tensor& out, at::Tensor& in) {
    return impl_->data->_allgather_base(out, in, c10d::AllgatherOptions());
  });
}

absl::StatusOr<std::string> Distributed::BroadcastBytes(const std::string& bytes,
                                                        const std::string& phase) {
  if (impl_->data == nullptr) return bytes;
  try {
    // Host bytes travel on the control backend (Gloo, CPU tensors) whatever the data backend.
    std::vector<at::Tensor> size{torch::zeros({1}, torch::kInt64)};
    if (is_root()) size[0].fill_(static_cast<int64_t>(bytes.size()));
    absl::Status s = impl_->Run(phase + " size", [&] { return impl_->control->broadcast(size); });
    if (!s.ok()) return s;
    int64_t n = size[0].item<int64_t>();
    if (n < 0) return absl::InternalError(absl::StrCat(impl_->Where(phase), ": negative size"));
    std::vector<at::Tensor> data{torch::empty({std::max<int64_t>(n, 1)}, torch::kUInt8)};
    if (is_root() && n > 0) std::memcpy(data[0].data_ptr(), bytes.data(), bytes.size());
    if (n > 0) {
      s = impl_->Run(phase, [&] { return impl_->control->broadcast(data); });
      if (!s.ok()) return s;
    }
    if (is_root()) return bytes;
    return std::string(static_cast<const char*>(data[0].data_ptr()), static_cast<size_t>(n));
  } catch (const c10::Error& e) {
    return impl_->Error(phase, e.what_without_backtrace());
  }
}

absl::Status Distributed::BroadcastParameters(PolicyImpl& policy) {
  if (impl_->data == nullptr) return absl::OkStatus();
  try {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> tensors;
    for (const auto& p : policy.parameters()) tensors.push_back(p);
    for (const auto& b : policy.buffers()) tensors.push_back(b);
    // Broadcast parameter by parameter in their own dtype (bit-exact copies).
    for (size_t i = 0; i < tensors.size(); ++i) {
      std::vector<at::Tensor> one{tensors[i].device() == impl_->device
                                      ? tensors[i].contiguous()
                                      : tensors[i].to(impl_->device).contiguous()};
      absl::Status s = impl_->Run(absl::StrCat("broadcast parameter ", i),
                                  [&] { return impl_->data->broadcast(one); });
      if (!s.ok()) return s;
      if (!one[0].is_same(tensors[i])) tensors[i].copy_(one[0]);
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return impl_->Error("broadcast parameters", e.what_without_backtrace());
  }
}

absl::Status Distributed::Barrier(const std::string& phase) {
  if (impl_->data == nullptr) return absl::OkStatus();
  // A one-element all-reduce on the control backend: honours the timeout.
  std::vector<at::Tensor> one{torch::zeros({1})};
  c10d::AllreduceOptions reduce;
  return impl_->Run(phase, [&] { return impl_->control->allreduce(one, reduce); });
}

}  // namespace envtune
