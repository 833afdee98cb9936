// `envtune train` on one machine: starts the coordinator, env servers, learner and actors as
// separate processes of this binary, supervises them, reports progress, and stops everything
// cleanly on completion, failure or a stop request.
//
// Config keys read here (`launch:` section; the roles read their own sections):
//   launch:
//     env_servers: 2          # env-server processes at the start (stateless; restarted if they
//                             #   die; change it while the run goes on with `envtune scale`)
//     actors: 2               # actor processes (restarted if they die; leases are re-issued)
//     run_dir: runs/latest    # logs/<role>.log, metrics.jsonl, metrics.svg, status.json
//     startup_timeout_s: 120  # per process, until it reports "listening on HOST:PORT"
//     max_restarts: 3         # restarts per role process (each env server, actor, the
//                             #   learner, the coordinator) before the run fails; see
//                             #   "Supervision" below
//     restart_backoff_ms: 500 # delay before a role's first restart, doubled for each further
//     max_restart_backoff_ms: 30000   # restart of that role, up to this
//     poll_interval_ms: 1000  # coordinator status polling
//     max_wall_s: 0           # stop the run after this long (0 = until the curriculum ends)
//     warm_start: none        # none | sft: first run `envtune sft` with this config's `sft:`
//                             #   section into <run_dir>/sft and start the learner from it
//                             #   (model.path); its log is logs/sft.log. A checkpoint there
//                             #   made from the same `sft:` section (after overrides) and
//                             #   data_dir is reused instead (<run_dir>/sft/warm_start_key.yaml).
//                             #   Skipped, with a note, when model.path is set: a given model
//                             #   is never silently replaced by the warm start
//     held_out_eval:          # greedy `envtune eval` (BFCL's evaluation semantics) of the
//       subset: ""            #   policy before RL (the warm start or model.path) and after
//       categories: []        #   (<checkpoint_dir>/final): the tasks of split file `subset`
//       limit: 0              #   (e.g. val), `categories` (empty = all), the first `limit`
//       max_new_tokens: 64    #   (0 = all); the format is actor.output_format's. Prints one
//                             #   line each ("held-out eval before RL: ..."), writes
//                             #   <run_dir>/eval-before, eval-after (report.json, results.jsonl)
//                             #   and report.html's table. subset "" = off
//     tls: true               # TLS between the roles with a fresh loopback PKI (below)
//     resume: false           # continue the run in run_dir (`envtune train --resume RUN_DIR`
//                             #   sets this, run_dir and the run's saved config): the learner
//                             #   restarts from the newest complete checkpoint in
//                             #   learner.checkpoint_dir (learner.resume=<it>), the coordinator
//                             #   from its state of that learner step (coordinator.resume_step
//                             #   from <run_dir>/coordinator), actors and env servers afresh;
//                             #   metrics.jsonl is appended to. No checkpoint yet: a fresh start
//
// Supervision: the launcher checks its children every poll. A role process that exits while
// the run goes on is reported on the progress stream ("actor-0 exited with signal 9 (Killed);
// restarting in 0.5s (restart 1/3)") and started again after its backoff:
//   * an env server on the same port (actors retry their calls across the gap: actor.
//     retry_deadline_s); an actor afresh (its leases are re-issued once the coordinator expires
//     it, coordinator.worker_expiry_ms);
//   * the coordinator or the learner: the two restart together from the newest checkpoint they
//     agree on (LatestResumableCheckpoint: the learner's full checkpoint of step N and the
//     coordinator's state of step N), as `--resume` does, on their ports. Actors and env servers
//     are restarted with them: nothing that holds a lease, a worker id or an episode of the lost
//     steps survives (leases not consumed at step N are issued again unchanged): actors and env
//     servers are killed (SIGKILL), the learner is stopped with SIGTERM, so its `final`
//     checkpoint keeps the steps it took when the coordinator recorded them; otherwise up to
//     learner.checkpoint_every steps are trained again (metrics.jsonl then repeats their step
//     numbers). Checkpoints and coordinator states of steps after N are discarded (also by
//     `--resume`), so no later restart pairs them with the new steps. Without checkpoints
//     (learner.checkpoint_dir "") both start over from step 0.
// Exit code 2 (a usage or configuration error) is never restarted; a role past max_restarts, or
// a restart that fails, stops the run with an error naming the role and quoting its log.
//
// While the warm start runs, a progress line every ~10 s (step/steps, loss, elapsed, time left;
// `envtune sft`'s sft.progress_file, <run_dir>/logs/sft_progress.jsonl).
// At the end: metrics.jsonl (one line per learner step; "batch_stage"/"batch_stage_name" = the
// stage the step's batch was rolled out in), metrics.svg (the batch reward per step, one line
// per stage) and report.html (deploy/run_report.h: the plot inline, a per-stage table of
// rewards with slope and t, the held-out evaluation before and after).
// Checkpoints go to learner.checkpoint_dir, or <run_dir>/checkpoints when the config does not
// set it (learner.checkpoint_dir="" turns them off).
// Every run writes <run_dir>/config.yaml (the config after overrides) and persists the
// coordinator's state in <run_dir>/coordinator (coordinator.state_dir unless the config sets
// one). status.json, metrics.svg and the control files are replaced atomically (temp + rename).
//
// Every run is sealed: the launcher writes to <run_dir>/secrets/ (mode 0700, files 0600) a random
// episode HMAC key (env servers' --hmac_key_file), a cluster token and an admin token (unless the
// config's security: section names its own token files), and with launch.tls (unless
// security.tls is set) a CA and one certificate for localhost/127.0.0.1 (pki/; the CA's key is
// not kept). Roles get the files' paths (security.* overrides; the coordinator alone gets the
// admin token), never the secrets, on their command lines. <run_dir>/secrets/security.yaml is
// the client side for tools: `envtune status --config <run_dir>/secrets/security.yaml
// --coordinator HOST:PORT`.
//
// Scaling env servers while the run goes on: `envtune scale --run_dir DIR env-servers N`
// (RequestEnvServerScale) writes N to <run_dir>/control/env_servers. The launcher reads it every
// poll: it starts env servers (named env-server-K; they join the coordinator's fleet and actors
// send them work within about a second), or drains the newest ones (SIGTERM: each reports
// DRAINING, finishes its in-flight steps and exits 0; it is not restarted). Once the fleet has N
// env servers and none is still draining, it writes N to <run_dir>/control/env_servers.applied.
// An unreadable or out-of-range request is reported on the progress stream and ignored.
#ifndef ENVTUNE_DEPLOY_LOCAL_LAUNCHER_H_
#define ENVTUNE_DEPLOY_LOCAL_LAUNCHER_H_

#include <atomic>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/checkpoint_dir.h"
#include "common/config.h"
#include "common/security.h"

namespace envtune {

struct LaunchOptions {
  std::string envtune_binary;          // this executable
  std::string config_path;
  std::vector<std::string> overrides;  // key.sub=value, passed to every role
  std::string data_dir;
  int env_servers = 2;
  int actors = 2;
  std::string run_dir = "runs/latest";
  absl::Duration startup_timeout = absl::Seconds(120);
  int max_restarts = 3;
  absl::Duration restart_backoff = absl::Milliseconds(500);
  absl::Duration max_restart_backoff = absl::Seconds(30);
  absl::Duration poll_interval = absl::Seconds(1);
  absl::Duration max_wall = absl::ZeroDuration();
  std::string warm_start = "none";
  // launch.held_out_eval (empty subset = off); eval_format is actor.output_format's `envtune
  // eval --format` name, eval_tokenizer actor.tokenizer ("" = eval's default).
  std::string eval_subset;
  std::vector<std::string> eval_categories;
  int eval_limit = 0;
  int eval_max_new_tokens = 64;
  std::string eval_format = "envtuning";
  std::string eval_tokenizer;
  bool tls = true;            // launch.tls
  SecurityOptions security;   // the config's security: section, after overrides
  bool resume = false;
  std::string model_path;       // model.path of the config (after overrides)
  // learner.checkpoint_dir of the config (after overrides); <run_dir>/checkpoints when the config
  // does not set it (default_checkpoint_dir; passed to the learner). "" = no checkpoints.
  std::string checkpoint_dir;
  bool default_checkpoint_dir = false;
  std::string effective_config; // the config after overrides, as YAML
  // The `sft:` section after overrides, plus data_dir, as YAML (ReadLaunchOptions): equal keys
  // mean equal warm-start checkpoints.
  std::string warm_start_key;
};

// Reads the `launch:` section of `config_path` (+ overrides) into `options`.
absl::Status ReadLaunchOptions(LaunchOptions& options);
// The same from an open config: `launch:` and `security:` keys (and the few other keys the
// launcher needs: actor.output_format, model.path, learner.checkpoint_dir, sft), errors recorded
// in `reader`.
void ReadLaunchKeys(ConfigReader& reader, const Config& config, LaunchOptions& options);

// `envtune train --resume RUN_DIR [key=value ...]`: the options of the run in RUN_DIR (its
// saved config.yaml, then `extra_overrides`) with launch.resume set. NotFound when RUN_DIR holds
// no run (no config.yaml).
absl::Status ReadResumeOptions(const std::string& run_dir,
                               const std::vector<std::string>& extra_overrides,
                               LaunchOptions& options);

// The newest complete learner checkpoint under `checkpoint_dir` (step-<N> or final) for whose
// step the coordinator's state <state_dir>/step-<N>.binpb exists: the point a coordinator and
// learner restarted together continue from. nullopt when there is none.
absl::StatusOr<std::optional<CheckpointInfo>> LatestResumableCheckpoint(
    const std::string& checkpoint_dir, const std::string& state_dir);

// Whether <run_dir>/sft holds a finished warm-start checkpoint (config.json) made with
// options.warm_start_key.
bool CanReuseWarmStart(const LaunchOptions& options);

// Largest env-server count `envtune scale` accepts on one machine.
inline constexpr int kMaxLocalEnvServers = 64;

// Asks the launcher of `run_dir` for `env_servers` env servers (see the top of this file).
// InvalidArgument outside 1..kMaxLocalEnvServers; NotFound when run_dir has no run (no logs/).
absl::Status RequestEnvServerScale(const std::string& run_dir, int env_servers);
// Waits until the launcher has applied `env_servers` (DeadlineExceeded after `timeout`).
absl::Status WaitForEnvServerScale(const std::string& run_dir, int env_servers,
                                   absl::Duration timeout);

// Runs the cluster until the curriculum finishes (OK), `stop` becomes true (OK, stopped
// cleanly), or a process fails beyond repair (the error names the role and quotes its log).
// Progress lines go to `progress`.
absl::Status RunLocalTraining(const LaunchOptions& options, const std::atomic<bool>& stop,
                              std::ostream& progress);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_LOCAL_LAUNCHER_H_
