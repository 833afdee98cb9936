// `envtune plan --config FILE [--gpus N] [--gpu_memory GIB] [--model_config FILE] [--json]
//  [key.sub=value ...]`: the memory each role of the run needs per device (learner/plan.h) and
// whether it fits, before any GPU is rented. Reads the learner's and the actor's config sections
// (learner/learner_role.h, actor/actor.h), hence its place above both.
//
// The model comes from model.path/config.json; when that directory is not on this machine (the
// weights are not downloaded yet) a Qwen2.5 checkpoint is recognised by its directory name
// (Qwen2.5-{0.5B,1.5B,3B,7B,14B}[-Instruct]), or --model_config names a config.json. An empty
// model.path is the tiny default. --gpus sets the learner's ranks (learner.distributed.
// world_size); --gpu_memory the memory of one GPU (GiB, default 80); CPU roles are judged
// against this machine's RAM. Exit codes: 0 every role fits, 1 one does not, 2 usage or config.
#ifndef ENVTUNE_DEPLOY_COMMANDS_PLAN_COMMAND_H_
#define ENVTUNE_DEPLOY_COMMANDS_PLAN_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

namespace envtune {

int RunPlanCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_COMMANDS_PLAN_COMMAND_H_
