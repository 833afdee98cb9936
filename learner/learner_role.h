// The learner role (`envtune learner`): serves LearnerService, assembles GRPO groups from the
// trajectories actors push, trains with the GRPO Trainer (learner/trainer.h), publishes each new
// policy version to the WeightStore and reports every step to the coordinator.
//
//   rank 0: load the initial policy (model.path: a HF directory) or build a tiny random Qwen2
//           (model.tiny) -> publish version 1 -> serve LearnerService on --port -> Register as
//           ROLE_LEARNER [+ heartbeat thread] -> loop:
//             pop trajectories (bounded wait) into groups; a group is complete when group_size
//             trajectories with its group_id arrived (duplicate episode ids, and late episodes
//             of a group already trained on or dropped, are dropped and counted); a group
//             still incomplete group_timeout_s after its first trajectory is dropped and counted;
//             once train_batch_groups groups are complete (oldest first): BuildTrainBatch ->
//             broadcast to the other ranks -> Trainer::Step on this rank's shard -> publish
//             version + 1 -> ReportLearnerStep (metrics) -> checkpoint every checkpoint_every
//             steps (HF safetensors via SavePolicy) and at the end.
//   rank > 0: receive each batch from rank 0, train on its shard (gradients are summed over
//           ranks, so every rank holds the same weights); stop when rank 0 says so.
// Every wait has a deadline; errors name the peer and the phase. A failing coordinator RPC is
// logged and retried on the next step (training goes on); a failing collective ends the run.
//
// YAML (`learner:` section; every key optional, unknown keys are errors):
//   train_batch_groups: 32       GRPO groups (prompts) per optimiser step (METHOD.md §3.1)
//   stage_batch_groups: []       per curriculum stage 1..4 (e.g. [16, 32, 32, 32]); the stage
//                                is the one ReportLearnerStep returns; missing = the above
//   group_timeout_s: 900         drop a group still incomplete this long after its first episode
//   partial_batch_after_s: 0     >0: step with the complete groups in hand after waiting this
//                                long for a full batch (0 = always wait for a full batch)
//   max_steps: 0                 stop after this many steps (0 = until stopped)
//   queue_capacity: 4096         trajectories buffered before PushTrajectories holds reads
//   max_staleness: 1             drop trajectories older than (version - max_staleness)
//   lr: 1.0e-6                   AdamW (METHOD.md §3.2)
//   weight_decay: 0.01
//   betas: [0.9, 0.999]
//   adam_eps: 1.0e-8
//   lr_schedule: constant        constant | linear (warm-up) | cosine
//   warmup_steps: 0
//   total_steps: 0               cosine: the decay horizon
//   min_lr_ratio: 0.0            cosine floor as a fraction of lr
//   max_grad_norm: 1.0
//   clip_low: 0.2                PPO clip (clip-higher)
//   clip_high: 0.28
//   dual_clip: 10.0
//   kl_coef: 0.1                 k3 KL to the frozen initial policy (0 = no reference kept)
//   entropy_coef: 0.001
//   tis_cap: 2.0                 truncated importance weight for stale trajectories
//   micro_batch_tokens: 65536    padded tokens per forward/backward
//   score_chunk_size: 1024       lm_head rows at a time
//   gradient_checkpointing: true
//   dtype: ""                    parameters: "" (the checkpoint's torch_dtype), float32, bfloat16
//   device: cpu                  LibTorch device ("cuda", "cuda:1")
//   publish_dtype: ""            weights sent to actors: "" (F32 for fp32 else BF16), F32, BF16
//   checkpoint_dir: ""           "" = no checkpoints; else <dir>/step-<N> and <dir>/final
//   checkpoint_every: 5          steps between checkpoints
//   ledger_path: ""              JSON lines of accepted trajectories (audit; "" = off)
//   seed: 1                      torch seed (tiny random init)
//   name: learner                shown in `envtune status`
//   advertise_address: ""        host:port registered with the coordinator ("" = --host:port)
//   rpc_timeout_ms: 10000        coordinator RPCs
//   distributed:                 data parallel (c10d); defaults from RANK, WORLD_SIZE,
//     world_size: 1              MASTER_ADDR, MASTER_PORT when set
//     rank: 0
//     master_addr: 127.0.0.1
//     master_port: 29500
//     backend: gloo              gloo | nccl (CUDA builds with NCCL)
//     timeout_s: 600             rendezvous and each collective
//     keepalive_s: 60            rank 0 pings idle ranks this often while waiting for data
// `model:` keys read here: path (HF checkpoint directory), or tiny: {vocab_size: 151936,
// hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
// num_key_value_heads: 2, tie_word_embeddings: true} when path is empty.
#ifndef ENVTUNE_LEARNER_LEARNER_ROLE_H_
#define ENVTUNE_LEARNER_LEARNER_ROLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config.h"

namespace envtune {

struct TinyModelOptions {
  int64_t vocab_size = 151936;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 128;
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 2;
  bool tie_word_embeddings = true;
};

struct LearnerRoleOptions {
  // Serving (rank 0).
  std::string host = "127.0.0.1";
  int port = 0;                  // 0 = pick a free port (LearnerRole::port() tells)
  std::string advertise_address; // registered with the coordinator ("" = host:port)
  std::string coordinator;       // "" = run without a coordinator (tests, benches)
  std::string name = "learner";
  // Model.
  std::string model_path;        // HF directory; "" = tiny random
  TinyModelOptions tiny;
  std::string dtype;             // "" | float32 | bfloat16 | float16
  std::string device = "cpu";
  std::string publish_dtype;
  uint64_t seed = 1;
  // Trainer (plain copies of TrainerOptions/GrpoOptions fields, kept torch-free here).
  double lr = 1e-6, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  std::string lr_schedule = "constant";
  int64_t warmup_steps = 0, total_steps = 0;
  double min_lr_ratio = 0.0, max_grad_norm = 1.0;
  double clip_low = 0.2, clip_high = 0.28, dual_clip = 10.0, kl_coef = 0.1,
         entropy_coef = 0.001, tis_cap = 2.0;
  int64_t micro_batch_tokens = 65536, score_chunk_size = 1024;
  bool gradient_checkpointing = true;
  // Batching.
  int train_batch_groups = 32;
  std::vector<int> stage_batch_groups;  // index stage - 1
  absl::Duration group_timeout = absl::Seconds(900);
  absl::Duration partial_batch_after = absl::ZeroDuration();
  int64_t max_steps = 0;
  size_t queue_capacity = 4096;
  uint64_t max_staleness = 1;
  // Checkpoints.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 5;
  std::string ledger_path;  // LearnerServiceOptions::ledger_path
  absl::Duration rpc_timeout = absl::Seconds(10);
  // Data parallel.
  int world_size = 1, rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string backend = "gloo";
  absl::Duration dist_timeout = absl::Minutes(10);
  absl::Duration keepalive = absl::Seconds(60);
};

// Reads the `learner:` section and the model keys into `options` (other fields untouched).
// Errors are recorded in `reader` (call reader.Finish()).
void ReadLearnerOptions(ConfigReader& reader, LearnerRoleOptions* options);

// Counters of a running learner (thread-safe snapshot).
struct LearnerProgress {
  int64_t steps = 0;
  uint64_t version = 0;
  int64_t groups_trained = 0;
  int64_t groups_dropped = 0;       // incomplete past group_timeout
  // Repeated episode ids, and late episodes of a group already trained on or dropped.
  int64_t duplicates_dropped = 0;
  int64_t trajectories_received = 0;
  double last_mean_reward = 0;
  double last_grad_norm = 0;
  double last_tokens_per_s = 0;
};

class LearnerRole {
 public:
  // Loads/builds the policy, joins the process group (blocks until every rank joined), and on
  // rank 0 starts serving LearnerService.
  static absl::StatusOr<std::unique_ptr<LearnerRole>> Create(const LearnerRoleOptions& options);
  ~LearnerRole();

  // Runs until Stop(), max_steps, or a fatal error; saves the final checkpoint.
  absl::Status Run();
  // Thread-safe; Run() returns at the next wait boundary.
  void Stop();

  int port() const;  // the LearnerService port (rank 0), 0 elsewhere
  LearnerProgress progress() const;

 private:
  struct Impl;
  explicit LearnerRole(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace envtune

#endif  // ENVTUNE_LEARNER_LEARNER_ROLE_H_
