#include "learner/distributed.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <utility>

#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ENVTUNE_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "model/qwen2.h"

namespace envtune {

struct Distributed::Impl {
  DistributedOptions options;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  torch::Device device = torch::kCPU;  // where collective buffers live

  std::string Where(const std::string& phase) const {
    return absl::StrCat("distributed rank ", options.rank, "/", options.world_size, " (master ",
                        options.master_addr, ":", options.master_port, ", ", phase, ")");
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
  // Runs a collective and waits for it.
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
};

Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Distributed::~Distributed() = default;

int Distributed::rank() const { return impl_->options.rank; }
int Distributed::world_size() const { return impl_->options.world_size; }

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
#ifndef ENVTUNE_WITH_NCCL
  if (options.backend == "nccl") {
    return absl::UnimplementedError(
        "distributed: backend nccl needs envtune built against a CUDA LibTorch with NCCL");
  }
#endif
  if (options.world_size > 1 && (options.master_port <= 0 || options.master_port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("distributed: master_port ", options.master_port, " is not a valid port"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
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
    if (options.backend == "gloo") {
      auto pg_options = c10d::ProcessGroupGloo::Options::create(impl->Timeout());
      const std::string& addr = options.master_addr;
      const bool loopback = addr == "127.0.0.1" || addr == "localhost" || addr == "::1";
      pg_options->devices.push_back(
          loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                   : c10d::ProcessGroupGloo::createDefaultDevice());
      impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, options.rank,
                                                                options.world_size, pg_options);
    } else {
#ifdef ENVTUNE_WITH_NCCL
      auto pg_options = c10d::ProcessGroupNCCL::Options::create();
      pg_options->timeout = impl->Timeout();
      impl->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, options.rank,
                                                                options.world_size, pg_options);
      impl->device = torch::Device(torch::kCUDA, c10::cuda::current_device());
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
  if (impl_->group == nullptr || tensors.empty()) return absl::OkStatus();
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
        impl_->Run(phase, [&] { return impl_->group->allreduce(buffer, reduce); });
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

absl::StatusOr<std::string> Distributed::BroadcastBytes(const std::string& bytes,
                                                        const std::string& phase) {
  if (impl_->group == nullptr) return bytes;
  try {
    std::vector<at::Tensor> size{torch::zeros({1}, torch::kInt64)};
    if (is_root()) size[0].fill_(static_cast<int64_t>(bytes.size()));
    absl::Status s = impl_->Run(phase + " size", [&] { return impl_->group->broadcast(size); });
    if (!s.ok()) return s;
    int64_t n = size[0].item<int64_t>();
    if (n < 0) return absl::InternalError(absl::StrCat(impl_->Where(phase), ": negative size"));
    std::vector<at::Tensor> data{torch::empty({std::max<int64_t>(n, 1)}, torch::kUInt8)};
    if (is_root() && n > 0) std::memcpy(data[0].data_ptr(), bytes.data(), bytes.size());
    if (n > 0) {
      s = impl_->Run(phase, [&] { return impl_->group->broadcast(data); });
      if (!s.ok()) return s;
    }
    if (is_root()) return bytes;
    return std::string(static_cast<const char*>(data[0].data_ptr()), static_cast<size_t>(n));
  } catch (const c10::Error& e) {
    return impl_->Error(phase, e.what_without_backtrace());
  }
}

absl::Status Distributed::BroadcastParameters(PolicyImpl& policy) {
  if (impl_->group == nullptr) return absl::OkStatus();
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
                                  [&] { return impl_->group->broadcast(one); });
      if (!s.ok()) return s;
      if (!one[0].is_same(tensors[i])) tensors[i].copy_(one[0]);
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return impl_->Error("broadcast parameters", e.what_without_backtrace());
  }
}

absl::Status Distributed::Barrier(const std::string& phase) {
  if (impl_->group == nullptr) return absl::OkStatus();
  // A one-element all-reduce: works on every backend and honours the timeout.
  std::vector<at::Tensor> one{torch::zeros({1})};
  return AllReduceSum(one, phase);
}

}  // namespace envtune
