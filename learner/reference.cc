#include "learner/reference.h"

#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "model/qwen2.h"

namespace envtune {
namespace {

class OffloadedLayers : public PolicyImpl::LayerStreamer {
 public:
  explicit OffloadedLayers(PolicyImpl& policy) : device_(policy.device()) {
    torch::NoGradGuard no_grad;
    const bool pin = device_.is_cuda();
    for (size_t i = 0; i < policy.model->layers->size(); ++i) {
      Layer layer;
      for (torch::Tensor& p : policy.model->layers->ptr(i)->parameters()) {
        torch::Tensor host = p.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
        layer.host.push_back(pin ? host.pin_memory() : host);
        layer.params.push_back(p);
        p.set_(torch::empty({0}, p.options()));  // frees the device copy
      }
      layers_.push_back(std::move(layer));
    }
  }

  void Before(size_t i) override {
    torch::NoGradGuard no_grad;
    Layer& layer = layers_.at(i);
    for (size_t j = 0; j < layer.params.size(); ++j) {
      // On a GPU an asynchronous copy from pinned memory, ordered before the layer's kernels
      // on the current stream; on the CPU the host tensor itself (no copy).
      layer.params[j].set_(layer.host[j].to(device_, /*non_blocking=*/true));
    }
  }

  void After(size_t i) override {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : layers_.at(i).params) p.set_(torch::empty({0}, p.options()));
  }

 private:
  struct Layer {
    std::vector<torch::Tensor> params;  // the module's parameters (emptied between uses)
    std::vector<torch::Tensor> host;
  };
  c10::Device device_;
  std::vector<Layer> layers_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<PolicyImpl>> MakeReference(PolicyImpl& initial, bool offload) {
  try {
    auto reference = std::make_shared<PolicyImpl>(initial.options);
    {
      torch::NoGradGuard no_grad;
      auto src = initial.named_parameters();
      for (auto& item : reference->named_parameters()) item.value().copy_(src[item.key()]);
    }
    reference->eval();
    for (torch::Tensor& p : reference->parameters()) p.set_requires_grad(false);
    if (offload) reference->layer_streamer = std::make_shared<OffloadedLayers>(*reference);
    return reference;
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("learner: building the KL reference: ", e.what_without_backtrace()));
  }
}

}  // namespace envtune
