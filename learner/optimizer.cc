#include "learner/optimizer.h"

#include <limits>
#include <utility>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "model/qwen2.h"

namespace envtune {

struct PolicyOptimizer::Impl {
  std::vector<torch::Tensor> params;  // the policy's (compute dtype)
  std::vector<torch::Tensor> master;  // fp32 copies when mixed; empty otherwise
  std::unique_ptr<torch::optim::AdamW> adam;

  std::vector<torch::Tensor>& Optimized() { return master.empty() ? params : master; }
};

PolicyOptimizer::PolicyOptimizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PolicyOptimizer::~PolicyOptimizer() = default;

absl::StatusOr<std::unique_ptr<PolicyOptimizer>> PolicyOptimizer::Create(
    PolicyImpl& policy, const AdamWSettings& settings) {
  try {
    auto impl = std::make_unique<Impl>();
    bool mixed = false;
    for (torch::Tensor& p : policy.parameters()) {
      p.set_requires_grad(true);
      impl->params.push_back(p);
      mixed = mixed || p.scalar_type() != torch::kFloat32;
    }
    if (impl->params.empty()) return absl::InvalidArgumentError("optimizer: no parameters");
    if (mixed) {
      torch::NoGradGuard no_grad;
      for (const torch::Tensor& p : impl->params) {
        impl->master.push_back(p.detach().to(torch::kFloat32).clone().set_requires_grad(true));
      }
    }
    torch::optim::AdamWOptions adam(settings.lr);
    adam.betas({settings.beta1, settings.beta2}).eps(settings.eps).weight_decay(
        settings.weight_decay);
    impl->adam = std::make_unique<torch::optim::AdamW>(impl->Optimized(), adam);
    return std::unique_ptr<PolicyOptimizer>(new PolicyOptimizer(std::move(impl)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("optimizer: ", e.what_without_backtrace()));
  }
}

bool PolicyOptimizer::mixed_precision() const { return !impl_->master.empty(); }

void PolicyOptimizer::ZeroGrad() {
  auto clear = [](std::vector<torch::Tensor>& tensors) {
    for (torch::Tensor& t : tensors) {
      if (t.grad().defined()) {
        t.mutable_grad().zero_();
      } else {
        t.mutable_grad() = torch::zeros_like(t);
      }
    }
  };
  clear(impl_->params);
  clear(impl_->master);
}

void PolicyOptimizer::AccumulateGradients() {
  if (impl_->master.empty()) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < impl_->params.size(); ++i) {
    torch::Tensor& g = impl_->params[i].mutable_grad();
    if (!g.defined()) continue;
    impl_->master[i].mutable_grad().add_(g.to(torch::kFloat32));
    g.zero_();
  }
}

std::vector<at::Tensor> PolicyOptimizer::Gradients() {
  std::vector<at::Tensor> out;
  for (torch::Tensor& t : impl_->Optimized()) out.push_back(t.mutable_grad());
  return out;
}

std::vector<at::Tensor> PolicyOptimizer::MasterWeights() { return impl_->Optimized(); }

double PolicyOptimizer::ClipGradNorm(double max_norm) {
  const double limit = max_norm > 0 ? max_norm : std::numeric_limits<double>::infinity();
  return torch::nn::utils::clip_grad_norm_(impl_->Optimized(), limit);
}

void PolicyOptimizer::Step(double lr) {
  for (auto& group : impl_->adam->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  impl_->adam->step();
  if (impl_->master.empty()) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < impl_->params.size(); ++i) impl_->params[i].copy_(impl_->master[i]);
}

int64_t PolicyOptimizer::StateBytes() const {
  int64_t bytes = 0;
  for (const torch::Tensor& m : impl_->master) bytes += m.numel() * m.element_size();
  for (const auto& [key, state] : impl_->adam->state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    bytes += s.exp_avg().numel() * s.exp_avg().element_size();
    bytes += s.exp_avg_sq().numel() * s.exp_avg_sq().element_size();
  }
  return bytes;
}

}  // namespace envtune
