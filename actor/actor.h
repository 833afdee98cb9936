// The actor role: takes leases from the coordinator, rolls their episodes out with the current
// policy against the env servers and streams the trajectories to the learner.
//
//   Register -> [heartbeat thread] [WatchStage thread]
//   loop: AcquireLease (several, until `concurrency` episodes are in hand)
//         -> PolicyClient::EnsureVersion(max lease.min_policy_version)
//         -> Rollout::Run (n episodes per lease, seeds lease.seed + i; training leases sample
//            at `temperature`, evaluation leases decode greedily)
//         -> each finished training episode is pushed on the long-lived PushTrajectories
//            stream (failed ones too, with failed=true, so the group is accounted for);
//            evaluation episodes are not pushed
//         -> CompleteLease with one EpisodeStats per episode (valid = BFCL verdict).
// Stage changes take effect at episode boundaries: every episode runs under its lease's stage
// options. Episodes end with "time_budget" rpc_timeout before their lease's
// deadline, so the lease is completed before the coordinator re-issues it. If the learner cannot
// provide a lease's min_policy_version within weights_timeout, the lease's episodes are completed
// as failed and the error names the learner and phase. Every RPC has a deadline; errors name the
// peer and the phase. Rollout errors (KV budget, out of memory, generation failures) end Run with
// that error instead of failing episodes. Stop() ends the loop at the next boundary; in-flight
// episodes end as cancelled and their leases are left to expire (the coordinator re-issues them).
//
// YAML (`actor:` section; every key optional, unknown keys are errors):
//   concurrency: 64            episodes in flight at once
//   env_threads: 0             parallel env calls (0 = concurrency)
//   max_new_tokens: 1024       per generation when the lease's stage does not set one
//   temperature: 1.0           sampling temperature of training leases (METHOD.md §3.2)
//   top_p: 1.0                 nucleus sampling (1 = off)
//   top_k: 0                   top-k sampling (0 = off)
//   max_model_turns: 64        model replies per episode ("turn_budget")
//   max_episode_tokens: 32768  whole conversation when the lease does not set one ("token_budget")
//   max_episode_seconds: 1800  wall time per episode ("time_budget")
//   batch_gather_ms: 20        wait for in-flight env replies before a generation batch
//   lockstep: false            wait for all of them instead: batches, samples and log-probs
//                              depend on the episodes alone (bitwise-reproducible seeded runs)
//   reuse_kv_cache: true       keep each episode's keys/values between replies (prefill only
//                              the observation, not the whole conversation)
//   kv_budget: ""              key/value memory of the episodes in flight: "" = unlimited (only
//                              `concurrency` bounds them); a size "24GiB", "512MiB", "30GB"; or
//                              a fraction of the device's memory (GPU memory, RAM for cpu)
//                              "0.9" / "90%", minus the policy's parameters. Each episode
//                              reserves max_episode_tokens x 2 x layers x kv_heads x head_dim x
//                              dtype bytes while in flight; episodes that do not fit wait
//                              (actor/rollout.h). An episode larger than the whole budget, or an
//                              out-of-memory in generation, stops the actor with an error naming
//                              the bytes (its leases are re-issued elsewhere).
//   tokenizer: third_party/qwen-tokenizer   tokenizer.json or its directory (relative to the
//                                           working directory)
//   output_format: envtuning   envtuning | bfcl_prompting | hermes
//   eval_bfcl_semantics: true  evaluation leases run with BFCL's evaluation semantics
//   device: cpu                LibTorch device of the policy ("cuda", "cuda:1")
//   dtype: ""                  policy dtype: "" (as published), float32, bfloat16, float16
//   weights_chunk_bytes: 0     GetWeights chunk size (0 = learner default)
//   weights_timeout_s: 600     wait for a lease's min_policy_version
//   rpc_timeout_ms: 10000      coordinator RPCs, version polls
//   env_timeout_ms: 60000      one StartEpisode/Step attempt
//   retry_deadline_s: 120      how long a call that fails transiently (UNAVAILABLE: the peer is
//                              restarting) is retried, with exponential backoff and jitter:
//                              env calls (on another replica when there is one), Register and
//                              CompleteLease (gRPC wait_for_ready), trajectory pushes. Longer than
//                              a role's restart (deploy/local_launcher.h, "Supervision")
//   env_max_attempts: 0        also stop retrying an env call after this many attempts (0 = the
//                              deadline alone)
//   env_discovery: coordinator coordinator: follow the coordinator's env-server fleet
//                              (ListEnvServers; new replicas get work within a refresh, draining
//                              ones get none), with --env as the fallback while it is empty;
//                              static: --env only (a list, or dns:/// re-resolved as servers
//                              close aged connections)
//   env_fleet_refresh_ms: 1000 how often the fleet is read from the coordinator
//   push_timeout_s: 600        one trajectory write while the learner holds reads
//   max_leases: 0              leases rolled out together (0 = enough for `concurrency`)
//   seed: 0                    mixed into sampling seeds
//   name: actor                name shown in `envtune status`
#ifndef ENVTUNE_ACTOR_ACTOR_H_
#define ENVTUNE_ACTOR_ACTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "episodes/env_client.h"
#include "actor/policy_client.h"
#include "actor/rollout.h"
#include "actor/trajectory_pusher.h"
#include "common/config.h"
#include "envtune/v1/coordinator.grpc.pb.h"

namespace envtune {

enum class EnvDiscovery { kCoordinator, kStatic };

struct ActorOptions {
  std::string coordinator;  // host:port
  std::string learner;      // host:port
  std::string env;          // "a:1,b:2", "ipv4:...", or "dns:///name:port" ("" = fleet only)
  EnvDiscovery env_discovery = EnvDiscovery::kCoordinator;
  std::string name = "actor";
  std::string tokenizer = "third_party/qwen-tokenizer";
  RolloutOptions rollout;
  EnvClientOptions env_client;
  PolicyClientOptions policy;
  TrajectoryPusherOptions push;
  v1::OutputFormat output_format = v1::OUTPUT_FORMAT_ENVTUNING;
  bool eval_bfcl_semantics = true;
  int max_leases = 0;
  absl::Duration rpc_timeout = absl::Seconds(10);
  absl::Duration retry_deadline = absl::Minutes(2);  // actor.retry_deadline_s
  absl::Duration weights_timeout = absl::Minutes(10);
  absl::Duration idle_backoff = absl::Milliseconds(500);
};

// Reads the `actor:` section into `options` (other fields untouched). Errors are recorded in
// `reader` (call reader.Finish()).
void ReadActorOptions(ConfigReader& reader, ActorOptions* options);

// v1::EpisodeOptions for episode `index` of `lease`.
v1::EpisodeOptions EpisodeOptionsForLease(const v1::Lease& lease, uint32_t index,
                                          const ActorOptions& options);

class Actor {
 public:
  // Loads the tokenizer and dials the services (connections are made lazily).
  static absl::StatusOr<std::unique_ptr<Actor>> Create(ActorOptions options);
  ~Actor();

  // Registers and runs the lease loop until Stop() or the curriculum finishes (OK), or a fatal
  // error (the coordinator is unreachable at registration; a rollout error such as an episode
  // larger than actor.kv_budget, RESOURCE_EXHAUSTED).
  absl::Status Run();
  // Thread-safe; Run() returns soon after.
  void Stop();

  int64_t leases_completed() const { return leases_completed_.load(); }
  int64_t episodes_pushed() const;

 private:
  struct Impl;
  explicit Actor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<int64_t> leases_completed_{0};
};

}  // namespace envtune

#endif  // ENVTUNE_ACTOR_ACTOR_H_
