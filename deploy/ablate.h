// `envtune ablate`: one switch of the method flipped, everything else (config, seeds, warm
// start) equal, both arms trained with `envtune train` one after the other and compared.
//
//   envtune ablate --config FILE --switch augment|reward|curriculum [--run_dir DIR]
//                  [key.sub=value ...]
//
// Arms (A = the config as given after overrides; B = A with one change):
//   augment     B: every stage's augment {start: 0, end: 0} (BFCL's plain error messages)
//   reward      B: every progress-reward stage scored with the binary end-of-episode reward
//               (1 only when every turn is right; METHOD.md §1.4)
//   curriculum  B: one stage instead of the curriculum: the last stage's tasks and settings
//               (augmentation annealed as there), progress reward, for as many learner steps as
//               all of A's stages together (advance.after_steps summed)
// A runs first with the config's warm start into DIR/A/sft; B starts from that checkpoint
// (model.path), so both arms start from the same weights. Each arm is a full run directory
// (DIR/A, DIR/B: config.yaml, metrics.jsonl, report.html, ...).
//
// The comparison is the batch's mean per-turn progress per learner step (the learner's
// reward/stageN/progress of the step's batch stage), which both arms report whatever their
// reward; the steps compared are those of A's non-format stages and B's matching steps (for
// `curriculum`: the same step numbers). Written to DIR: comparison.svg (progress per step,
// both arms) and comparison.md (per arm: steps, progress of the first and last 3 steps, mean,
// least-squares slope and its t, the held-out evaluation after RL when launch.held_out_eval is
// on). The table is also printed.
// Exit code: 0 ok, 1 a run failed, 2 usage/config error.
#ifndef ENVTUNE_DEPLOY_ABLATE_H_
#define ENVTUNE_DEPLOY_ABLATE_H_

#include <atomic>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "deploy/run_report.h"
#include "yaml-cpp/yaml.h"

namespace envtune {

// The switches, in the order `envtune ablate` documents them.
inline constexpr const char* kAblationSwitches[] = {"augment", "reward", "curriculum"};

// Arm B's config (the whole YAML tree) from A's. InvalidArgument for an unknown switch or a
// config without curriculum.stages.
absl::StatusOr<YAML::Node> AblatedConfig(const YAML::Node& config, const std::string& which);

// One arm's comparison figures.
struct ArmSummary {
  std::string name;  // "A: augmentation on"
  std::vector<int64_t> steps;
  std::vector<double> progress;  // per compared step
  double first_mean = 0, last_mean = 0, mean = 0;
  Trend trend;
  std::string held_out;  // "accuracy 0.000, mean progress 0.125" or "-"
};
// From an arm's metrics.jsonl lines: the steps whose batch stage is in `stages` (empty = any)
// and whose step number is in `steps` (empty = any).
ArmSummary SummarizeArm(const std::string& name, const std::vector<nlohmann::json>& lines,
                        const std::set<int>& stages, const std::set<int64_t>& steps = {});
// The Markdown table of both arms.
std::string ComparisonMarkdown(const std::string& title, const std::vector<ArmSummary>& arms);

// `envtune ablate ...` (args after "ablate"); runs stop when `stop` becomes true.
int RunAblateCommand(const std::vector<std::string>& args, const std::string& envtune_binary,
                     const std::string& data_dir, const std::atomic<bool>& stop,
                     std::ostream& out, std::ostream& err);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_ABLATE_H_
