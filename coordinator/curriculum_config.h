// Reads the coordinator's options (curriculum, leases, evaluation) from a config:
//
//   coordinator:
//     heartbeat_interval_ms: 2000      # how often workers heartbeat
//     worker_expiry_ms: 10000          # a silent worker is dropped and its leases re-issued
//     lease_timeout_ms: 600000         # a lease not completed by then is re-issued
//     max_policy_staleness: 1          # leases ask for >= latest version - this
//     max_inflight_groups: 0           # training groups leased but not yet consumed by the
//                                      #   learner (0 = (staleness + 1) x learner batch groups)
//     max_learner_steps: 0             # stop after this many learner steps (0 = by curriculum)
//     max_leases_per_worker: 64        # leases one worker may hold (RESOURCE_EXHAUSTED beyond)
//     lease_fair_share: true           # an actor holds at most its share of the in-flight
//                                      #   window in uncompleted training leases
//     max_workers: 1024                # registered workers at most (RESOURCE_EXHAUSTED beyond)
//     max_watch_streams: 4096          # open WatchStage streams at most (RESOURCE_EXHAUSTED
//     max_watch_streams_per_worker: 4  #   beyond), in all and per worker id
//     seed: 1
//     ledger_path: ""                  # JSON lines of lease events (audit; "" = off)
//     state_dir: ""                    # persist the state after every learner step into
//                                      #   <dir>/step-<N>.binpb ("" = off; Coordinator)
//     resume_step: -1                  # >= 0: start from <state_dir>/step-<N>.binpb
//     resume_latest: false             # start from the newest <state_dir>/step-<N>.binpb
//                                      #   (none: fresh); worker ids carry the start count
//                                      #   of <state_dir>/incarnation (w<n>-i<count>)
//     state_keep_steps: 256            # state files of the last N learner steps are kept
//   evaluation:
//     every_steps: 0                   # held-out evaluation every N learner steps (0 = off)
//     split: val                       # ids from <data.dir>/splits/<split>.txt
//     categories: [base, miss_func, miss_param, long_context]
//     limit: 0                         # first N tasks of each category (0 = all)
//   curriculum:
//     stages:
//       - name: syntax
//         split: train                 # task set: ids from <data.dir>/splits/<split>.txt
//         categories: [base]           # ... restricted to these categories
//         limit: 0                     # ... first N per category (0 = all)
//         reward: format               # format | progress | binary (1 if every turn right)
//         augment: {start: 1.0, end: 1.0, anneal_steps: 0}
//         group_size: 16               # GRPO n
//         max_steps_per_turn: 5
//         max_new_tokens: 512
//         max_episode_tokens: 8192
//         advance: {after_steps: 20, metric: "", threshold: 0, checks: 1}
#ifndef ENVTUNE_COORDINATOR_CURRICULUM_CONFIG_H_
#define ENVTUNE_COORDINATOR_CURRICULUM_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "coordinator/coordinator.h"

namespace envtune {

// Task ids of `split` in `data_dir`/splits, restricted to `categories` (empty = all), the first
// `limit` of each category (0 = all), in file order.
absl::StatusOr<std::vector<std::string>> LoadSplitTaskIds(const std::string& data_dir,
                                                          const std::string& split,
                                                          const std::vector<std::string>& categories,
                                                          size_t limit);

// A stage's `reward:` name ("format" or "progress") as the typed kind; INVALID_ARGUMENT naming
// the known names otherwise.
absl::StatusOr<v1::RewardKind> ParseRewardKind(absl::string_view name);

// Numeric keys have sane ranges (kCoordinatorBounds in the .cc; an error names key, value and
// range). Reads the keys above; errors are recorded in `reader` (Finish() reports them) and missing
// split files are returned as errors. The admin token is security.admin_token_file
// (common/security.h); the former coordinator.admin_token is an error saying so.
absl::StatusOr<CoordinatorOptions> ReadCoordinatorOptions(ConfigReader& reader,
                                                          const std::string& data_dir);

}  // namespace envtune

#endif  // ENVTUNE_COORDINATOR_CURRICULUM_CONFIG_H_
