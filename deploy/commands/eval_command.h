// `envtune eval ...`: BFCL V3 multi-turn evaluation of a checkpoint (or the ground-truth /
// no-calls policy) through the lockstep runner (episodes/evaluation.h), in-process or against
// remote env servers; writes results.jsonl, report.json and report.md (deploy/commands/
// eval_report.h). Flags are documented in the usage text EvalCommandUsage().
#ifndef ENVTUNE_DEPLOY_COMMANDS_EVAL_COMMAND_H_
#define ENVTUNE_DEPLOY_COMMANDS_EVAL_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

namespace envtune {

// Exit code: 0 ok, 1 runtime failure, 2 usage error. Progress goes to `err`, the summary table to
// `out`. `default_data_dir` is used when --data_dir is not given.
int RunEvalCommand(const std::vector<std::string>& args, const std::string& default_data_dir,
                   std::ostream& out, std::ostream& err);
const char* EvalCommandUsage();

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_COMMANDS_EVAL_COMMAND_H_
