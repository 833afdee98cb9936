// `envtune config`: every section of a config checked by the programs that read it, and the
// reference of every key they read.
//
//   envtune config check --config FILE [--data_dir DIR] [key.sub=value ...]
//       Runs every program's readers (coordinator, curriculum, evaluation, actor, learner, model,
//       sft, launch, security) over the file: unknown sections and keys, unreadable values and
//       values outside their ranges are listed, exit 2; otherwise "ok", exit 0. `envtune train`
//       runs the same check before it starts anything.
//   envtune config keys [--config FILE ...] [--markdown]
//       Every key those readers read for the given configs (default: the shipped tiny default),
//       with its section, type, default and range: the generated docs/config-reference.md.
//
// Sections whose readers need LibTorch (actor, learner, model, sft) are checked only by a build
// with ENVTUNE_WITH_TORCH; without it they are reported as not checked.
#ifndef ENVTUNE_DEPLOY_CONFIG_COMMAND_H_
#define ENVTUNE_DEPLOY_CONFIG_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/config.h"

namespace envtune {

// Reads every section this build can read into `reader` (errors recorded there), marks the rest
// read and flags unknown sections. `unchecked` (may be null) gets the sections not read.
absl::Status ReadEverySection(ConfigReader& reader, const Config& config,
                              const std::string& data_dir, std::vector<std::string>* unchecked);

// The whole-file check: OK, or INVALID_ARGUMENT listing every problem.
absl::Status CheckConfig(const Config& config, const std::string& data_dir);

// `envtune config check|keys ...` (args after "config"). Exit code 0, 1 or 2.
int RunConfigCommand(const std::vector<std::string>& args, const std::string& default_config,
                     const std::string& default_data_dir, std::ostream& out, std::ostream& err);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_CONFIG_COMMAND_H_
