// `envtune sft --config FILE [sft.key=value ...]`: the SFT warm start (learner/sft.h) from a
// config's `sft:` section (other top-level sections are ignored).
#ifndef ENVTUNE_DEPLOY_COMMANDS_SFT_COMMAND_H_
#define ENVTUNE_DEPLOY_COMMANDS_SFT_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

namespace envtune {

// 0 ok, 1 failure, 2 usage/config error. `default_data_dir` replaces data_dir's default when the
// config does not set it. Progress lines go to `err`, the JSON summary to `out`.
int RunSftCommand(const std::vector<std::string>& args, const std::string& default_data_dir,
                  std::ostream& out, std::ostream& err);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_COMMANDS_SFT_COMMAND_H_
