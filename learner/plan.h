// Memory plans: what each role of a run holds, per device, before anyone rents GPUs.
//
// PlanLearner: one learner rank (data-parallel world_size ranks, one device each): parameters
// and their gradients in the compute dtype (whole on every rank), fp32 master weights, AdamW
// moments and fp32 gradient accumulators (1/world_size each under ZeRO-2; learner/optimizer.h),
// the frozen KL reference (kl_coef > 0), the collectives' staging buffers, and the activations
// of one micro-batch of micro_batch_tokens padded tokens (gradient checkpointing keeps each
// decoder layer's input and recomputes one layer at a time in backward; model/score.h scores
// the vocabulary in chunks). PlanActor: the policy's weights, the keys/values of the episodes
// in flight (actor.kv_budget, else concurrency x max_episode_tokens) and one prefill.
//
// The figures are estimates from tensor shapes. On CPU the learner's is checked against a
// measured peak (tests/learner/plan_test.cc, within 15%); on GPU add the CUDA context and the
// caching allocator's slack, which the plan reports as its own row. Pure arithmetic: no torch.
#ifndef ENVTUNE_LEARNER_PLAN_H_
#define ENVTUNE_LEARNER_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace envtune {

struct MemoryItem {
  std::string name;
  int64_t bytes = 0;
  std::string detail;  // how the figure was formed
};

struct RolePlan {
  std::string role;     // "learner", "actor"
  int64_t devices = 1;  // devices of this role
  std::string device;   // "cuda" or "cpu"
  std::vector<MemoryItem> items;
  int64_t total = 0;     // per device
  int64_t capacity = 0;  // per device (0 = unknown: fits is not judged)
  bool fits = true;
};

struct LearnerPlanInputs {
  ModelConfig model;
  int dtype_bytes = 4;          // compute dtype: 4 fp32, 2 bf16/fp16
  int world_size = 1;
  int zero_stage = 2;           // effective only with world_size > 1 (learner_role.h)
  int64_t bucket_elements = int64_t{1} << 25;
  bool reference = true;        // kl_coef > 0
  bool reference_offload = false;  // decoder layers in host memory, one on the device at a time
  int64_t micro_batch_tokens = 65536;
  int64_t score_chunk_size = 1024;
  bool gradient_checkpointing = true;
  bool cuda = false;
  int64_t device_memory = 0;    // bytes per device (0 = unknown)
};

struct ActorPlanInputs {
  ModelConfig model;
  int dtype_bytes = 4;
  int actors = 1;
  int64_t concurrency = 64;
  int64_t max_episode_tokens = 32768;
  int64_t kv_budget_bytes = 0;     // actor.kv_budget as bytes (0 = none)
  double kv_budget_fraction = 0;   // actor.kv_budget as a fraction of device memory (0 = none)
  bool cuda = false;
  int64_t device_memory = 0;
};

// Parameters of the model (embeddings, decoder layers, norms, lm_head unless tied).
int64_t ParameterCount(const ModelConfig& model);
// The config.json of a known checkpoint (Qwen2.5-{0.5B,1.5B,3B,7B,14B}[-Instruct], bf16) named
// like `name`'s last path component; nullopt for any other name.
std::optional<ModelConfig> KnownModelConfig(std::string_view name);
// Key/value bytes one token occupies in every layer's cache.
int64_t KvBytesPerToken(const ModelConfig& model, int dtype_bytes);

RolePlan PlanLearner(const LearnerPlanInputs& in);
RolePlan PlanActor(const ActorPlanInputs& in);

// A fixed-width table of the plans (GiB), one block per role, and a JSON rendering.
std::string FormatPlans(const std::vector<RolePlan>& plans);
std::string PlansToJson(const std::vector<RolePlan>& plans);

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_PLAN_H_
