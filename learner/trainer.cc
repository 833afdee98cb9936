#include "learner/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <numeric>
#include <utility>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "learner/distributed.h"
#include "learner/optimizer.h"
#include "learner/trajectory_queue.h"
#include "model/qwen2.h"
#include "model/score.h"

namespace envtune {
namespace {

constexpr double kPi = 3.14159265358979323846;

int64_t LossTokens(const v1::Trajectory& t) {
  const std::string& mask = t.loss_mask();
  int64_t n = 0;
  for (size_t i = 1; i < mask.size(); ++i) n += mask[i] != 0;  // token 0 is never predicted
  return n;
}

// --- a tiny little-endian byte codec for TrainBatch -------------------------------------------
class Writer {
 public:
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void F64(double v) { Raw(&v, sizeof v); }
  void Str(std::string_view s) {
    U64(s.size());
    out_.append(s.data(), s.size());
  }
  std::string Take() { return std::move(out_); }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U64(uint64_t* v) { return Raw(v, sizeof *v); }
  bool F64(double* v) { return Raw(v, sizeof *v); }
  bool Str(std::string* s) {
    uint64_t n = 0;
    if (!U64(&n) || n > in_.size() - pos_) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (in_.size() - pos_ < n) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

constexpr uint64_t kBatchMagic = 0x31425445;  // "ETB1"

}  // namespace

absl::Status ValidateTrainerOptions(const TrainerOptions& o) {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError("learner: " + what); };
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) return bad(absl::StrCat("lr must be >= 0, got ", o.lr));
  if (!(o.weight_decay >= 0)) return bad("weight_decay must be >= 0");
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) {
    return bad("betas must be in [0, 1)");
  }
  if (!(o.adam_eps > 0)) return bad("adam_eps must be > 0");
  if (o.lr_schedule != "constant" && o.lr_schedule != "linear" && o.lr_schedule != "cosine") {
    return bad(absl::StrCat("lr_schedule must be constant, linear or cosine, got '",
                            o.lr_schedule, "'"));
  }
  if (o.warmup_steps < 0) return bad("warmup_steps must be >= 0");
  if (o.lr_schedule == "cosine" && o.total_steps <= o.warmup_steps) {
    return bad("lr_schedule cosine needs total_steps > warmup_steps");
  }
  if (!(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1)) return bad("min_lr_ratio must be in [0, 1]");
  if (o.micro_batch_tokens <= 0) return bad("micro_batch_tokens must be > 0");
  if (o.score_chunk_size < 0) return bad("score_chunk_size must be >= 0");
  if (o.grpo.clip_low < 0 || o.grpo.clip_low >= 1) return bad("clip_low must be in [0, 1)");
  if (o.grpo.clip_high < 0) return bad("clip_high must be >= 0");
  if (o.grpo.kl_coef < 0) return bad("kl_coef must be >= 0");
  if (o.zero_stage != 0 && o.zero_stage != 2) {
    return bad(absl::StrCat("zero_stage must be 0 (replicated) or 2 (sharded), got ",
                            o.zero_stage));
  }
  if (o.bucket_elements < 1) return bad("bucket_elements must be >= 1");
  return absl::OkStatus();
}

double ScheduledLearningRate(const TrainerOptions& o, int64_t step) {
  if (o.lr_schedule == "constant" || step < 0) return o.lr;
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.lr_schedule == "linear") return o.lr;
  // cosine from the end of warm-up to total_steps, then held at the floor.
  double span = static_cast<double>(std::max<int64_t>(o.total_steps - o.warmup_steps, 1));
  double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  double floor = o.min_lr_ratio * o.lr;
  return floor + (o.lr - floor) * 0.5 * (1.0 + std::cos(kPi * progress));
}

absl::StatusOr<TrainBatch> BuildTrainBatch(const std::vector<v1::Trajectory>& trajectories,
                                           uint64_t current_version, const GrpoOptions& options) {
  TrainBatch batch;
  batch.version = current_version;
  BatchStats& stats = batch.stats;
  std::vector<std::string> order;
  std::map<std::string, std::vector<const v1::Trajectory*>> groups;
  for (const v1::Trajectory& t : trajectories) {
    if (absl::Status s = ValidateTrajectory(t); !s.ok()) return s;
    auto [it, inserted] = groups.try_emplace(t.group_id());
    if (inserted) order.push_back(t.group_id());
    it->second.push_back(&t);
  }
  stats.trajectories = static_cast<int64_t>(trajectories.size());
  stats.groups = static_cast<int64_t>(groups.size());
  std::map<std::string, std::pair<double, int64_t>> reward_sums;
  auto add_reward = [&](const std::string& name, double value) {
    auto& [sum, count] = reward_sums[name];
    sum += value;
    ++count;
  };
  double staleness_sum = 0, advantage_abs_sum = 0;
  int64_t ok_count = 0;
  for (const std::string& id : order) {
    std::vector<const v1::Trajectory*> members;
    std::vector<double> rewards;
    for (const v1::Trajectory* t : groups[id]) {
      if (t->failed()) {
        ++stats.failed;
        continue;
      }
      members.push_back(t);
      rewards.push_back(t->reward());
    }
    std::vector<double> advantages = GroupAdvantages(rewards, options.advantage_eps);
    for (size_t i = 0; i < members.size(); ++i) {
      const v1::Trajectory& t = *members[i];
      ++ok_count;
      double staleness = t.policy_version() < current_version
                             ? static_cast<double>(current_version - t.policy_version())
                             : 0.0;
      staleness_sum += staleness;
      stats.staleness_max = std::max(stats.staleness_max, staleness);
      advantage_abs_sum += std::abs(advantages[i]);
      const std::string prefix = absl::StrCat("reward/stage", t.stage(), "/");
      add_reward(prefix + "reward", t.reward());
      add_reward(prefix + "progress", t.progress());
      add_reward(prefix + "format", t.format_score());
      add_reward(prefix + "tool_call", t.tool_call_score());
      add_reward("reward/mean", t.reward());
      int64_t loss_tokens = LossTokens(t);
      if (loss_tokens == 0) {
        ++stats.no_loss_tokens;
        continue;
      }
      batch.loss_tokens += static_cast<double>(loss_tokens);
      batch.items.push_back(TrainItem{t, advantages[i]});
    }
  }
  if (ok_count > 0) {
    stats.staleness_mean = staleness_sum / static_cast<double>(ok_count);
    stats.advantage_abs_mean = advantage_abs_sum / static_cast<double>(ok_count);
  }
  for (const auto& [name, sc] : reward_sums) {
    stats.rewards[name] = sc.first / static_cast<double>(sc.second);
  }
  return batch;
}

std::vector<TrainBatch> ShardTrainBatch(const TrainBatch& batch, int world) {
  world = std::max(world, 1);
  std::vector<TrainBatch> shards(static_cast<size_t>(world));
  for (TrainBatch& shard : shards) {
    shard.loss_tokens = batch.loss_tokens;
    shard.version = batch.version;
    shard.stats = batch.stats;
  }
  std::vector<size_t> index(batch.items.size());
  std::iota(index.begin(), index.end(), 0);
  std::stable_sort(index.begin(), index.end(), [&](size_t a, size_t b) {
    return batch.items[a].trajectory.token_ids_size() > batch.items[b].trajectory.token_ids_size();
  });
  std::vector<int64_t> load(shards.size(), 0);
  for (size_t i : index) {
    size_t target = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[target] += batch.items[i].trajectory.token_ids_size();
    shards[target].items.push_back(batch.items[i]);
  }
  return shards;
}

std::string SerializeTrainBatch(const TrainBatch& batch) {
  Writer w;
  w.U64(kBatchMagic);
  w.U64(batch.version);
  w.F64(batch.loss_tokens);
  const BatchStats& s = batch.stats;
  for (int64_t v : {s.trajectories, s.failed, s.groups, s.no_loss_tokens}) {
    w.U64(static_cast<uint64_t>(v));
  }
  w.F64(s.staleness_mean);
  w.F64(s.staleness_max);
  w.F64(s.advantage_abs_mean);
  w.U64(s.rewards.size());
  for (const auto& [name, value] : s.rewards) {
    w.Str(name);
    w.F64(value);
  }
  w.U64(batch.items.size());
  for (const TrainItem& item : batch.items) {
    w.F64(item.advantage);
    w.Str(item.trajectory.SerializeAsString());
  }
  return w.Take();
}

absl::StatusOr<TrainBatch> ParseTrainBatch(std::string_view bytes) {
  Reader r(bytes);
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError("train batch: " + what);
  };
  uint64_t magic = 0, n = 0;
  TrainBatch batch;
  BatchStats& s = batch.stats;
  if (!r.U64(&magic) || magic != kBatchMagic) return bad("bad magic");
  if (!r.U64(&batch.version) || !r.F64(&batch.loss_tokens)) return bad("truncated header");
  for (int64_t* v : {&s.trajectories, &s.failed, &s.groups, &s.no_loss_tokens}) {
    uint64_t u = 0;
    if (!r.U64(&u)) return bad("truncated stats");
    *v = static_cast<int64_t>(u);
  }
  if (!r.F64(&s.staleness_mean) || !r.F64(&s.staleness_max) || !r.F64(&s.advantage_abs_mean) ||
      !r.U64(&n)) {
    return bad("truncated stats");
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string name;
    double value = 0;
    if (!r.Str(&name) || !r.F64(&value)) return bad("truncated reward stats");
    s.rewards[name] = value;
  }
  if (!r.U64(&n) || n > bytes.size()) return bad("bad item count");
  batch.items.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string proto;
    if (!r.F64(&batch.items[i].advantage) || !r.Str(&proto)) return bad("truncated item");
    if (!batch.items[i].trajectory.ParseFromString(proto)) {
      return bad(absl::StrCat("item ", i, " is not a Trajectory"));
    }
  }
  if (!r.done()) return bad("trailing bytes");
  return batch;
}

std::vector<std::pair<std::string, double>> StepMetrics::Named() const {
  std::vector<std::pair<std::string, double>> out = {
      {"loss/total", loss},
      {"loss/pg", pg_loss},
      {"loss/kl", kl},
      {"entropy", entropy},
      {"clip_fraction", clip_fraction},
      {"tis_weight_mean", tis_weight_mean},
      {"grad_norm", grad_norm},
      {"lr", lr},
      {"loss_tokens", loss_tokens},
      {"tokens", tokens},
      {"step_seconds", seconds},
      {"learner_tokens_per_s", tokens_per_s},
      {"logprob_mismatch/max", logprob_mismatch_max},
      {"logprob_mismatch/mean", logprob_mismatch_mean},
      {"episodes/total", static_cast<double>(batch.trajectories)},
      {"episodes/failed", static_cast<double>(batch.failed)},
      {"episodes/no_loss_tokens", static_cast<double>(batch.no_loss_tokens)},
      {"groups", static_cast<double>(batch.groups)},
      {"staleness/mean", batch.staleness_mean},
      {"staleness/max", batch.staleness_max},
      {"advantage/abs_mean", batch.advantage_abs_mean},
  };
  for (const auto& [name, value] : batch.rewards) out.emplace_back(name, value);
  return out;
}

// ------------------------------------------------------------------------------------------------

struct Trainer::Impl {
  std::shared_ptr<PolicyImpl> policy;
  std::shared_ptr<PolicyImpl> reference;
  TrainerOptions options;
  Distributed* distributed = nullptr;
  std::unique_ptr<PolicyOptimizer> optimizer;  // fp32 masters when the policy is 16-bit
  int64_t steps = 0;

  absl::StatusOr<StepMetrics> Step(const TrainBatch& shard);
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;
int64_t Trainer::steps() const { return impl_->steps; }
void Trainer::set_steps(int64_t steps) { impl_->steps = steps; }
PolicyImpl& Trainer::policy() { return *impl_->policy; }
PolicyOptimizer& Trainer::optimizer() { return *impl_->optimizer; }
const TrainerOptions& Trainer::options() const { return impl_->options; }

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(std::shared_ptr<PolicyImpl> policy,
                                                         std::shared_ptr<PolicyImpl> reference,
                                                         const TrainerOptions& options,
                                                         Distributed* distributed) {
  if (policy == nullptr) return absl::InvalidArgumentError("trainer: no policy");
  if (absl::Status s = ValidateTrainerOptions(options); !s.ok()) return s;
  if (options.objective == Objective::kGrpo && options.grpo.kl_coef != 0 &&
      reference == nullptr) {
    return absl::InvalidArgumentError("trainer: kl_coef != 0 needs a reference policy");
  }
  try {
    auto impl = std::make_unique<Impl>();
    impl->policy = std::move(policy);
    impl->reference = std::move(reference);
    impl->options = options;
    impl->distributed = distributed;
    impl->policy->options.gradient_checkpointing(options.gradient_checkpointing);
    impl->policy->train();
    if (impl->reference != nullptr) {
      impl->reference->eval();
      for (torch::Tensor& p : impl->reference->parameters()) p.set_requires_grad(false);
    }
    AdamWSettings adam;
    adam.lr = ScheduledLearningRate(options, 0);
    adam.weight_decay = options.weight_decay;
    adam.beta1 = options.beta1;
    adam.beta2 = options.beta2;
    adam.eps = options.adam_eps;
    OptimizerSharding sharding;
    sharding.distributed = distributed;
    sharding.shard = options.zero_stage == 2 && distributed != nullptr;
    sharding.bucket_elements = options.bucket_elements;
    absl::StatusOr<std::unique_ptr<PolicyOptimizer>> optimizer =
        PolicyOptimizer::Create(*impl->policy, adam, sharding);
    if (!optimizer.ok()) return optimizer.status();
    impl->optimizer = std::move(*optimizer);
    return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("trainer: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<StepMetrics> Trainer::Step(const TrainBatch& shard) {
  try {
    return impl_->Step(shard);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("trainer step ", impl_->steps + 1, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("trainer step ", impl_->steps + 1, ": ", e.what()));
  }
}

absl::StatusOr<StepMetrics> Trainer::Impl::Step(const TrainBatch& shard) {
  const auto start = std::chrono::steady_clock::now();
  StepMetrics m;
  m.batch = shard.stats;
  const double normalizer = std::max(shard.loss_tokens, 1.0);
  const torch::Device device = policy->device();
  optimizer->ZeroGrad();
  // Micro-batches: a group's trajectories together (they share the prompt, which the scorer
  // runs once per micro-batch), groups and rows longest first, packed by PackSequences.
  auto length = [&](size_t i) { return shard.items[i].trajectory.token_ids_size(); };
  std::vector<size_t> order(shard.items.size());
  std::iota(order.begin(), order.end(), 0);
  std::map<std::string, int> group_longest;
  for (size_t i : order) {
    int& longest = group_longest[shard.items[i].trajectory.group_id()];
    longest = std::max(longest, length(i));
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const std::string& ga = shard.items[a].trajectory.group_id();
    const std::string& gb = shard.items[b].trajectory.group_id();
    const int la = group_longest[ga], lb = group_longest[gb];
    if (la != lb) return la > lb;
    if (ga != gb) return ga < gb;
    return length(a) > length(b);
  });
  const std::vector<std::vector<size_t>> micro_batches = PackSequences(
      order, [&](size_t i) -> const auto& { return shard.items[i].trajectory.token_ids(); },
      options.micro_batch_tokens, options.share_prefix);
  // Sums over this rank's loss tokens (token-weighted), reduced over ranks below.
  double loss_sum = 0, pg_sum = 0, kl_sum = 0, entropy_sum = 0, clip_sum = 0, tis_sum = 0;
  double token_count = 0, loss_token_count = 0, mismatch_sum = 0, mismatch_count = 0;
  double mismatch_max = 0;
  const bool grpo = options.objective == Objective::kGrpo;
  const bool need_entropy = grpo && (options.compute_entropy || options.grpo.entropy_coef != 0);
  const bool need_ref = grpo && options.grpo.kl_coef != 0 && reference != nullptr;
  const bool data_parallel = distributed != nullptr && distributed->world_size() > 1;
  // Sharded gradients are reduce-scattered after every micro-batch: every rank runs as many
  // rounds as the rank with the most micro-batches (the extra ones contribute zeros).
  int64_t rounds = static_cast<int64_t>(micro_batches.size());
  if (data_parallel && optimizer->sharded()) {
    std::vector<torch::Tensor> most{torch::tensor({static_cast<double>(rounds)}, torch::kFloat64)};
    if (absl::Status s = distributed->AllReduceMax(most, "micro-batch count"); !s.ok()) return s;
    rounds = static_cast<int64_t>(most[0].item<double>());
  }
  for (const std::vector<size_t>& mb : micro_batches) {
    const int64_t B = static_cast<int64_t>(mb.size());
    std::vector<std::vector<int64_t>> sequences;
    std::vector<std::vector<uint8_t>> masks;
    int64_t L = 0;
    for (size_t i : mb) {
      const v1::Trajectory& t = shard.items[i].trajectory;
      sequences.emplace_back(t.token_ids().begin(), t.token_ids().end());
      masks.emplace_back(t.loss_mask().begin(), t.loss_mask().end());
      L = std::max<int64_t>(L, t.token_ids_size());
      token_count += static_cast<double>(t.token_ids_size());
    }
    torch::Tensor behaviour = torch::zeros({B, L}, torch::kFloat32);
    torch::Tensor advantages = torch::zeros({B}, torch::kFloat32);
    torch::Tensor current_version = torch::zeros({B}, torch::kBool);
    {
      auto b_a = behaviour.accessor<float, 2>();
      for (int64_t b = 0; b < B; ++b) {
        const TrainItem& item = shard.items[mb[static_cast<size_t>(b)]];
        const auto& lp = item.trajectory.behaviour_logprobs();
        for (int64_t t = 0; t < lp.size(); ++t) b_a[b][t] = lp[static_cast<int>(t)];
        advantages[b] = static_cast<float>(item.advantage);
        current_version[b] = item.trajectory.policy_version() == shard.version;
      }
    }
    ScoreOptions score_options;
    score_options.compute_entropy = need_entropy;
    score_options.chunk_size = options.score_chunk_size;
    score_options.share_prefix = options.share_prefix;
    absl::StatusOr<ScoreOutput> scored = ScoreSequences(*policy, sequences, masks, score_options);
    if (!scored.ok()) return scored.status();
    GrpoLossInputs in;
    in.logprobs = scored->logprobs;
    in.old_logprobs = scored->logprobs.detach();
    in.behaviour_logprobs = behaviour.to(device);
    in.entropy = scored->entropy;
    in.advantages = advantages.to(device);
    in.mask = scored->mask;
    in.normalizer = normalizer;
    if (need_ref) {
      torch::NoGradGuard no_grad;
      ScoreOptions ref_options;
      ref_options.chunk_size = options.score_chunk_size;
      ref_options.share_prefix = options.share_prefix;
      absl::StatusOr<ScoreOutput> ref = ScoreSequences(*reference, sequences, masks, ref_options);
      if (!ref.ok()) return ref.status();
      in.ref_logprobs = ref->logprobs.to(device);
    }
    GrpoLossOutput out;
    if (grpo) {
      out = ComputeGrpoLoss(in, options.grpo);
    } else {
      out.loss = -(in.logprobs * in.mask).sum() / normalizer;
      out.tokens = in.mask.sum().item<double>();
      out.pg_loss = out.tokens > 0 ? out.loss.item<double>() * normalizer / out.tokens : 0.0;
    }
    out.loss.backward();
    if (absl::Status s = optimizer->AccumulateGradients(); !s.ok()) return s;
    loss_sum += out.loss.item<double>();
    pg_sum += out.pg_loss * out.tokens;
    kl_sum += out.kl * out.tokens;
    entropy_sum += out.entropy * out.tokens;
    clip_sum += out.clip_fraction * out.tokens;
    tis_sum += out.tis_weight_mean * out.tokens;
    loss_token_count += out.tokens;
    {
      // The actor's log-probs against ours, for trajectories of the trained version only.
      torch::NoGradGuard no_grad;
      torch::Tensor rows = current_version.to(device).unsqueeze(1).to(torch::kFloat32);
      torch::Tensor mask = scored->mask * rows;
      torch::Tensor diff = (scored->logprobs.detach() - in.behaviour_logprobs).abs() * mask;
      double count = mask.sum().item<double>();
      if (count > 0) {
        mismatch_sum += diff.sum().item<double>();
        mismatch_count += count;
        mismatch_max = std::max(mismatch_max, diff.max().item<double>());
      }
    }
  }
  for (int64_t extra = static_cast<int64_t>(micro_batches.size()); extra < rounds; ++extra) {
    if (absl::Status s = optimizer->AccumulateGradients(); !s.ok()) return s;
  }
  m.micro_batches = static_cast<int64_t>(micro_batches.size());
  if (absl::Status s = optimizer->ReduceGradients(); !s.ok()) return s;
  if (data_parallel) {
    std::vector<torch::Tensor> sums{torch::tensor(
        {loss_sum, pg_sum, kl_sum, entropy_sum, clip_sum, tis_sum, token_count, loss_token_count,
         mismatch_sum, mismatch_count},
        torch::kFloat64)};
    if (absl::Status s = distributed->AllReduceSum(sums, "metric all-reduce"); !s.ok()) return s;
    auto a = sums[0].to(torch::kFloat64);
    auto acc = a.accessor<double, 1>();
    loss_sum = acc[0], pg_sum = acc[1], kl_sum = acc[2], entropy_sum = acc[3], clip_sum = acc[4];
    tis_sum = acc[5], token_count = acc[6], loss_token_count = acc[7], mismatch_sum = acc[8];
    mismatch_count = acc[9];
    std::vector<torch::Tensor> maxima{torch::tensor({mismatch_max}, torch::kFloat64)};
    if (absl::Status s = distributed->AllReduceMax(maxima, "metric all-reduce max"); !s.ok()) {
      return s;
    }
    mismatch_max = maxima[0].item<double>();
  }
  // Clip (the norm over all parameters, after the sum over ranks: identical on every rank).
  absl::StatusOr<double> norm = optimizer->ClipGradNorm(options.max_grad_norm);
  if (!norm.ok()) return norm.status();
  m.grad_norm = *norm;
  m.lr = ScheduledLearningRate(options, steps);
  if (std::isfinite(m.grad_norm)) {
    if (absl::Status s = optimizer->Step(m.lr); !s.ok()) return s;
  }
  // A non-finite gradient skips the update (the step still counts, the norm reports it).
  ++steps;
  m.step = steps;
  m.loss = loss_sum;
  if (loss_token_count > 0) {
    m.pg_loss = pg_sum / loss_token_count;
    m.kl = kl_sum / loss_token_count;
    m.entropy = entropy_sum / loss_token_count;
    m.clip_fraction = clip_sum / loss_token_count;
    m.tis_weight_mean = tis_sum / loss_token_count;
  }
  m.loss_tokens = loss_token_count;
  m.tokens = token_count;
  m.mismatch_tokens = mismatch_count;
  m.logprob_mismatch_max = mismatch_max;
  m.logprob_mismatch_mean = mismatch_count > 0 ? mismatch_sum / mismatch_count : 0.0;
  m.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.tokens_per_s = m.seconds > 0 ? token_count / m.seconds : 0.0;
  return m;
}

}  // namespace envtune
