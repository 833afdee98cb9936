#include "learner/grpo.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

namespace envtune {

std::vector<double> GroupAdvantages(const std::vector<double>& rewards, double eps) {
  const size_t n = rewards.size();
  std::vector<double> advantages(n, 0.0);
  if (n == 0) return advantages;
  if (n == 1) {  // verl: mean 0, std 1 for a group of one
    advantages[0] = rewards[0];
    return advantages;
  }
  double mean = 0;
  for (double r : rewards) mean += r;
  mean /= static_cast<double>(n);
  double var = 0;
  for (double r : rewards) var += (r - mean) * (r - mean);
  double std = std::sqrt(var / static_cast<double>(n - 1));
  for (size_t i = 0; i < n; ++i) advantages[i] = (rewards[i] - mean) / (std + eps);
  return advantages;
}

GrpoLossOutput ComputeGrpoLoss(const GrpoLossInputs& in, const GrpoOptions& options) {
  namespace F = torch::nn::functional;
  GrpoLossOutput out;
  torch::Tensor mask = in.mask.to(torch::kFloat32);
  torch::Tensor logp = in.logprobs.to(torch::kFloat32);
  torch::Tensor old = in.old_logprobs.to(torch::kFloat32).detach();
  torch::Tensor adv = in.advantages.to(torch::kFloat32).detach().unsqueeze(1);  // [B, 1]
  double tokens = mask.sum().item<double>();
  double normalizer = in.normalizer > 0 ? in.normalizer : std::max(tokens, 1.0);
  out.tokens = tokens;
  auto token_mean = [&](const torch::Tensor& x) {
    return tokens > 0 ? (x.detach() * mask).sum().item<double>() / tokens : 0.0;
  };

  torch::Tensor ratio = torch::exp(logp - old);
  torch::Tensor loss1 = -adv * ratio;
  torch::Tensor loss2 = -adv * torch::clamp(ratio, 1.0 - options.clip_low, 1.0 + options.clip_high);
  torch::Tensor pg = torch::max(loss1, loss2);
  torch::Tensor clipped = (loss2 > loss1);
  if (options.dual_clip > 1.0) {
    torch::Tensor capped = torch::min(pg, -adv * options.dual_clip);
    torch::Tensor negative = (adv < 0).expand_as(pg);
    clipped = clipped | (negative & (pg > -adv * options.dual_clip));
    pg = torch::where(negative, capped, pg);
  }
  torch::Tensor behaviour = in.behaviour_logprobs.to(torch::kFloat32).detach();
  if (options.tis_cap > 0) {
    torch::Tensor weight = torch::clamp_max(torch::exp(old - behaviour), options.tis_cap);
    out.tis_weight_mean = token_mean(weight);
    pg = pg * weight;
  } else {
    out.tis_weight_mean = 1.0;
  }
  torch::Tensor per_token = pg;
  out.pg_loss = token_mean(pg);
  out.ratio_mean = token_mean(ratio);
  out.clip_fraction = token_mean(clipped.to(torch::kFloat32));
  if (tokens > 0) {
    torch::Tensor diff = (old - behaviour).abs() * mask;
    out.behaviour_mismatch_max = diff.max().item<double>();
    out.behaviour_mismatch_mean = diff.sum().item<double>() / tokens;
  }
  if (options.kl_coef != 0 && in.ref_logprobs.defined()) {
    torch::Tensor delta = in.ref_logprobs.to(torch::kFloat32).detach() - logp;
    torch::Tensor kl = torch::clamp(torch::exp(delta) - delta - 1.0, -10.0, 10.0);
    out.kl = token_mean(kl);
    per_token = per_token + options.kl_coef * kl;
  }
  if (options.entropy_coef != 0 && in.entropy.defined()) {
    torch::Tensor entropy = in.entropy.to(torch::kFloat32);
    out.entropy = token_mean(entropy);
    per_token = per_token - options.entropy_coef * entropy;
  } else if (in.entropy.defined()) {
    out.entropy = token_mean(in.entropy);
  }
  out.loss = (per_token * mask).sum() / normalizer;
  return out;
}

}  // namespace envtune
