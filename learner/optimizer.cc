#include "learner/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "learner/distributed.h"
#include "model/qwen2.h"

namespace envtune {
namespace {

// One bucket of the flattened parameter space [start, end), padded to world * shard elements;
// rank r owns [start + r * shard, start + (r + 1) * shard) ∩ [start, end).
struct Bucket {
  struct Segment {
    size_t param;
    int64_t param_offset;   // in the flattened parameter
    int64_t bucket_offset;  // in the flattened bucket
    int64_t length;
  };
  int64_t start = 0, end = 0;
  int64_t shard = 0;  // elements per rank
  std::vector<Segment> segments;
};

template <typename F>
absl::Status Guard(const char* what, F&& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("optimizer ", what, ": ", e.what_without_backtrace()));
  }
}

}  // namespace

struct PolicyOptimizer::Impl {
  std::vector<torch::Tensor> params;  // the policy's (compute dtype)
  Distributed* distributed = nullptr;
  int world = 1, rank = 0;
  bool sharded = false;
  std::unique_ptr<torch::optim::AdamW> adam;
  // Replicated: fp32 copies when mixed (empty otherwise).
  std::vector<torch::Tensor> master;
  // Sharded: the owned slice of every bucket (fp32, with .grad the accumulator), one tensor per
  // bucket so that AdamW's temporaries stay bucket-sized.
  std::vector<Bucket> buckets;
  std::vector<torch::Tensor> shards;
  torch::ScalarType gather_dtype = torch::kFloat32;

  std::vector<torch::Tensor>& Optimized() { return master.empty() ? params : master; }
  // What AdamW optimises: the shards (sharded), masters (mixed) or the parameters.
  const std::vector<torch::Tensor>& Stepped() const {
    return sharded ? shards : master.empty() ? params : master;
  }
  // [sharded, world, rank, parameters, elements, buckets, first bucket's elements].
  std::vector<int64_t> Layout() const {
    int64_t elements = 0;
    for (const torch::Tensor& p : params) elements += p.numel();
    return {sharded ? 1 : 0,
            sharded ? world : 1,
            sharded ? rank : 0,
            static_cast<int64_t>(params.size()),
            elements,
            static_cast<int64_t>(buckets.size()),
            buckets.empty() ? 0 : buckets.front().end - buckets.front().start};
  }

  // The bucket's values (parameters or their gradients) flattened into fp32, padded.
  torch::Tensor Flatten(const Bucket& b, bool grads) {
    std::vector<torch::Tensor> parts;
    parts.reserve(b.segments.size() + 1);
    for (const Bucket::Segment& s : b.segments) {
      torch::Tensor& p = params[s.param];
      if (grads && !p.grad().defined()) {
        parts.push_back(torch::zeros({s.length}, p.options().dtype(torch::kFloat32)));
        continue;
      }
      const torch::Tensor& src = grads ? p.grad() : p;
      parts.push_back(src.detach().reshape({-1}).narrow(0, s.param_offset, s.length).to(
          torch::kFloat32));
    }
    const int64_t pad = b.shard * world - (b.end - b.start);
    if (pad > 0) parts.push_back(torch::zeros({pad}, params.front().options().dtype(torch::kFloat32)));
    return torch::cat(parts);
  }

  void BuildBuckets(int64_t bucket_elements) {
    std::vector<int64_t> starts;
    int64_t total = 0;
    for (const torch::Tensor& p : params) {
      starts.push_back(total);
      total += p.numel();
    }
    size_t first = 0;
    for (int64_t start = 0; start < total; start += bucket_elements) {
      Bucket b;
      b.start = start;
      b.end = std::min(total, start + bucket_elements);
      b.shard = (b.end - b.start + world - 1) / world;
      while (first < params.size() && starts[first] + params[first].numel() <= b.start) ++first;
      for (size_t i = first; i < params.size() && starts[i] < b.end; ++i) {
        const int64_t from = std::max(b.start, starts[i]);
        const int64_t to = std::min(b.end, starts[i] + params[i].numel());
        if (to > from) b.segments.push_back({i, from - starts[i], from - b.start, to - from});
      }
      buckets.push_back(std::move(b));
    }
  }
};

PolicyOptimizer::PolicyOptimizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PolicyOptimizer::~PolicyOptimizer() = default;

absl::StatusOr<std::unique_ptr<PolicyOptimizer>> PolicyOptimizer::Create(
    PolicyImpl& policy, const AdamWSettings& settings, const OptimizerSharding& sharding) {
  if (sharding.bucket_elements < 1) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer: bucket_elements must be >= 1, got ",
                                                   sharding.bucket_elements));
  }
  try {
    auto impl = std::make_unique<Impl>();
    impl->distributed = sharding.distributed;
    if (impl->distributed != nullptr) {
      impl->world = impl->distributed->world_size();
      impl->rank = impl->distributed->rank();
    }
    impl->sharded = sharding.shard && impl->distributed != nullptr;
    bool mixed = false;
    torch::ScalarType dtype = torch::kFloat32;
    bool one_dtype = true;
    for (torch::Tensor& p : policy.parameters()) {
      p.set_requires_grad(true);
      if (!impl->params.empty() && p.scalar_type() != dtype) one_dtype = false;
      dtype = p.scalar_type();
      impl->params.push_back(p);
      mixed = mixed || p.scalar_type() != torch::kFloat32;
    }
    if (impl->params.empty()) return absl::InvalidArgumentError("optimizer: no parameters");
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> optimized;
    if (impl->sharded) {
      impl->gather_dtype = one_dtype ? dtype : torch::kFloat32;
      impl->BuildBuckets(sharding.bucket_elements);
      for (const Bucket& b : impl->buckets) {
        torch::Tensor mine =
            impl->Flatten(b, /*grads=*/false).narrow(0, impl->rank * b.shard, b.shard).clone();
        mine.set_requires_grad(true);
        mine.mutable_grad() = torch::zeros_like(mine);
        impl->shards.push_back(mine);
      }
      optimized = impl->shards;
    } else {
      if (mixed) {
        for (const torch::Tensor& p : impl->params) {
          impl->master.push_back(p.detach().to(torch::kFloat32).clone().set_requires_grad(true));
        }
      }
      optimized = impl->Optimized();
    }
    torch::optim::AdamWOptions adam(settings.lr);
    adam.betas({settings.beta1, settings.beta2}).eps(settings.eps).weight_decay(
        settings.weight_decay);
    impl->adam = std::make_unique<torch::optim::AdamW>(optimized, adam);
    return std::unique_ptr<PolicyOptimizer>(new PolicyOptimizer(std::move(impl)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("optimizer: ", e.what_without_backtrace()));
  }
}

bool PolicyOptimizer::mixed_precision() const {
  if (impl_->sharded) return impl_->params.front().scalar_type() != torch::kFloat32;
  return !impl_->master.empty();
}

bool PolicyOptimizer::sharded() const { return impl_->sharded; }

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
  clear(impl_->shards);
}

absl::Status PolicyOptimizer::AccumulateGradients() {
  return Guard("accumulate", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    Impl& m = *impl_;
    if (m.sharded) {
      for (size_t i = 0; i < m.buckets.size(); ++i) {
        const Bucket& b = m.buckets[i];
        torch::Tensor flat = m.Flatten(b, /*grads=*/true);
        torch::Tensor& mine = m.shards[i].mutable_grad();
        if (m.world == 1) {
          mine.add_(flat);
          continue;
        }
        torch::Tensor reduced = torch::empty({b.shard}, flat.options());
        if (absl::Status s = m.distributed->ReduceScatterSum(reduced, flat, "gradient reduce-scatter");
            !s.ok()) {
          return s;
        }
        mine.add_(reduced);
      }
      for (torch::Tensor& p : m.params) {
        if (p.grad().defined()) p.mutable_grad().zero_();
      }
      return absl::OkStatus();
    }
    if (m.master.empty()) return absl::OkStatus();  // fp32 .grad accumulates in fp32 already
    for (size_t i = 0; i < m.params.size(); ++i) {
      torch::Tensor& g = m.params[i].mutable_grad();
      if (!g.defined()) continue;
      m.master[i].mutable_grad().add_(g.to(torch::kFloat32));
      g.zero_();
    }
    return absl::OkStatus();
  });
}

absl::Status PolicyOptimizer::ReduceGradients() {
  Impl& m = *impl_;
  if (m.sharded || m.distributed == nullptr || m.world == 1) return absl::OkStatus();
  std::vector<torch::Tensor> grads;
  for (torch::Tensor& t : m.Optimized()) grads.push_back(t.mutable_grad());
  return m.distributed->AllReduceSum(grads, "gradient all-reduce");
}

absl::StatusOr<double> PolicyOptimizer::ClipGradNorm(double max_norm) {
  double norm = 0;
  const double limit = max_norm > 0 ? max_norm : std::numeric_limits<double>::infinity();
  absl::Status s = Guard("clip", [&]() -> absl::Status {
    Impl& m = *impl_;
    if (!m.sharded) {
      norm = torch::nn::utils::clip_grad_norm_(m.Optimized(), limit);
      return absl::OkStatus();
    }
    torch::NoGradGuard no_grad;
    double local = 0;  // this rank's squared norm, bucket by bucket (no shard-sized temporary)
    for (torch::Tensor& shard : m.shards) {
      const double n = at::linalg_vector_norm(shard.grad(), 2).item<double>();
      local += n * n;
    }
    std::vector<torch::Tensor> squared{torch::tensor({local}, torch::kFloat64)};
    if (m.world > 1) {
      if (absl::Status s = m.distributed->AllReduceSum(squared, "gradient norm"); !s.ok()) {
        return s;
      }
    }
    norm = std::sqrt(squared[0].item<double>());
    // As torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
    const double coef = limit / (norm + 1e-6);
    if (std::isfinite(norm) && coef < 1) {
      for (torch::Tensor& shard : m.shards) shard.mutable_grad().mul_(coef);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return norm;
}

absl::Status PolicyOptimizer::Step(double lr) {
  return Guard("step", [&]() -> absl::Status {
    Impl& m = *impl_;
    for (auto& group : m.adam->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    m.adam->step();
    torch::NoGradGuard no_grad;
    if (!m.sharded) {
      for (size_t i = 0; i < m.master.size(); ++i) m.params[i].copy_(m.master[i]);
      return absl::OkStatus();
    }
    for (size_t i = 0; i < m.buckets.size(); ++i) {
      const Bucket& b = m.buckets[i];
      torch::Tensor mine = m.shards[i].detach().to(m.gather_dtype);
      torch::Tensor whole = mine;
      if (m.world > 1) {
        whole = torch::empty({b.shard * m.world}, mine.options());
        if (absl::Status s = m.distributed->AllGather(whole, mine, "parameter all-gather");
            !s.ok()) {
          return s;
        }
      }
      for (const Bucket::Segment& s : b.segments) {
        m.params[s.param].view({-1}).narrow(0, s.param_offset, s.length).copy_(
            whole.narrow(0, s.bucket_offset, s.length));
      }
    }
    return absl::OkStatus();
  });
}

std::vector<at::Tensor> PolicyOptimizer::MasterWeights() {
  if (impl_->sharded) return impl_->shards;
  return impl_->Optimized();
}

int64_t PolicyOptimizer::StateBytes() const {
  int64_t bytes = 0;
  for (const torch::Tensor& m : impl_->master) bytes += m.numel() * m.element_size();
  for (const torch::Tensor& m : impl_->shards) bytes += m.numel() * m.element_size();
  for (const auto& [key, state] : impl_->adam->state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    bytes += s.exp_avg().numel() * s.exp_avg().element_size();
    bytes += s.exp_avg_sq().numel() * s.exp_avg_sq().element_size();
  }
  return bytes;
}

int64_t PolicyOptimizer::GradientBytes() const {
  int64_t bytes = 0;
  for (const auto* tensors : {&impl_->master, &impl_->shards}) {
    for (const torch::Tensor& m : *tensors) {
      if (m.grad().defined()) bytes += m.grad().numel() * m.grad().element_size();
    }
  }
  return bytes;
}

namespace {

std::string DescribeLayout(const std::vector<int64_t>& l) {
  std::string where = l[0] != 0 ? absl::StrCat("ZeRO-2 rank ", l[2], " of ", l[1], ", ", l[5],
                                               " buckets of ", l[6], " elements")
                                : std::string("replicated");
  return absl::StrCat(where, ", ", l[3], " parameters, ", l[4], " elements");
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> PolicyOptimizer::StateTensors()
    const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  absl::Status s = Guard("saving state", [&]() -> absl::Status {
    const Impl& m = *impl_;
    torch::NoGradGuard no_grad;
    out.emplace_back("layout", torch::tensor(m.Layout(), torch::kInt64));
    const std::vector<torch::Tensor>& stepped = m.Stepped();
    const bool own_weights = m.sharded || !m.master.empty();
    auto host = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU).contiguous(); };
    for (size_t i = 0; i < stepped.size(); ++i) {
      if (own_weights) out.emplace_back(absl::StrCat("weight.", i), host(stepped[i]));
      auto it = m.adam->state().find(stepped[i].unsafeGetTensorImpl());
      if (it == m.adam->state().end()) continue;
      const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      out.emplace_back(absl::StrCat("exp_avg.", i), host(st.exp_avg()));
      out.emplace_back(absl::StrCat("exp_avg_sq.", i), host(st.exp_avg_sq()));
      out.emplace_back(absl::StrCat("step.", i), torch::tensor({st.step()}, torch::kInt64));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status PolicyOptimizer::LoadStateTensors(const std::map<std::string, at::Tensor>& tensors) {
  return Guard("loading state", [&]() -> absl::Status {
    Impl& m = *impl_;
    auto layout_it = tensors.find("layout");
    if (layout_it == tensors.end() || layout_it->second.scalar_type() != torch::kInt64 ||
        layout_it->second.dim() != 1 || layout_it->second.numel() != 7) {
      return absl::InvalidArgumentError(
          "optimizer state: no valid 'layout' tensor (int64 [7]); not an optimizer checkpoint");
    }
    const torch::Tensor layout_tensor = layout_it->second.contiguous();
    const std::vector<int64_t> theirs(layout_tensor.data_ptr<int64_t>(),
                                      layout_tensor.data_ptr<int64_t>() + 7);
    const std::vector<int64_t> ours = m.Layout();
    if (theirs != ours) {
      return absl::FailedPreconditionError(absl::StrCat(
          "optimizer state: the checkpoint was written by ", DescribeLayout(theirs),
          "; this learner is ", DescribeLayout(ours),
          " (resume with the same world size, learner.zero_stage, bucket_elements and model)"));
    }
    const std::vector<torch::Tensor>& stepped = m.Stepped();
    const bool own_weights = m.sharded || !m.master.empty();
    auto find = [&](const std::string& name, const torch::Tensor& like,
                    torch::Tensor* out) -> absl::Status {
      auto it = tensors.find(name);
      if (it == tensors.end()) {
        return absl::InvalidArgumentError(absl::StrCat("optimizer state: missing tensor ", name));
      }
      if (it->second.scalar_type() != like.scalar_type() || it->second.sizes() != like.sizes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer state: tensor ", name, " is ", c10::toString(it->second.scalar_type()),
            " ", c10::str(it->second.sizes()), ", expected ", c10::toString(like.scalar_type()),
            " ", c10::str(like.sizes())));
      }
      *out = it->second;
      return absl::OkStatus();
    };
    struct Loaded {
      torch::Tensor weight, exp_avg, exp_avg_sq;
      int64_t step = 0;
      bool has_state = false;
    };
    std::vector<Loaded> loaded(stepped.size());
    for (size_t i = 0; i < stepped.size(); ++i) {
      Loaded& l = loaded[i];
      if (own_weights) {
        if (absl::Status s = find(absl::StrCat("weight.", i), stepped[i], &l.weight); !s.ok()) {
          return s;
        }
      }
      const std::string step_name = absl::StrCat("step.", i);
      auto step_it = tensors.find(step_name);
      l.has_state = step_it != tensors.end();
      if (!l.has_state) continue;
      if (step_it->second.scalar_type() != torch::kInt64 || step_it->second.numel() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer state: tensor ", step_name, " is not int64 [1]"));
      }
      l.step = step_it->second.reshape({-1})[0].item<int64_t>();
      if (l.step < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer state: ", step_name, " = ", l.step, " (must be >= 1)"));
      }
      for (auto [name, out] : {std::pair{"exp_avg.", &l.exp_avg},
                               std::pair{"exp_avg_sq.", &l.exp_avg_sq}}) {
        if (absl::Status s = find(absl::StrCat(name, i), stepped[i], out); !s.ok()) return s;
      }
    }
    // Everything checked: apply.
    torch::NoGradGuard no_grad;
    auto& state = m.adam->state();
    for (size_t i = 0; i < stepped.size(); ++i) {
      const torch::Tensor& p = stepped[i];
      Loaded& l = loaded[i];
      if (own_weights) torch::Tensor(p).copy_(l.weight);
      state.erase(p.unsafeGetTensorImpl());
      if (!l.has_state) continue;
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(l.step);
      st->exp_avg(l.exp_avg.to(p.device()).clone(at::MemoryFormat::Contiguous));
      st->exp_avg_sq(l.exp_avg_sq.to(p.device()).clone(at::MemoryFormat::Contiguous));
      state[p.unsafeGetTensorImpl()] = std::move(st);
    }
    if (!m.sharded) {
      for (size_t i = 0; i < m.master.size(); ++i) m.params[i].copy_(m.master[i]);
    }
    return absl::OkStatus();
  });
}

}  // namespace envtune
