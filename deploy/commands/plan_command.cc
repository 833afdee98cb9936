#include "deploy/commands/plan_command.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actor/actor.h"
#include "common/cli_flags.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "common/file.h"
#include "learner/learner_role.h"
#include "learner/plan.h"
#include "model/model_spec.h"

namespace envtune {
namespace {

int DtypeBytes(const std::string& dtype) {
  const std::string d = absl::AsciiStrToLower(dtype);
  return d == "bfloat16" || d == "float16" || d == "bf16" || d == "f16" ? 2 : 4;
}

bool IsCuda(const std::string& device) { return absl::StartsWith(device, "cuda"); }

int64_t MachineMemory() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<int64_t>(pages) * size : 0;
}

}  // namespace

int RunPlanCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  constexpr const char* kUsage =
      "usage: envtune plan --config FILE [--gpus N] [--gpu_memory GIB] [--model_config FILE] "
      "[--json] [key.sub=value ...]";
  absl::StatusOr<CliFlags> f =
      ParseCliFlags(args, {"config", "gpus", "gpu_memory", "model_config", "json"}, {"json"});
  if (!f.ok()) {
    err << "envtune plan: " << f.status().message() << "\n" << kUsage << "\n";
    return 2;
  }
  for (const std::string& p : f->positionals) {
    if (p.find('=') == std::string::npos) {
      err << "envtune plan: unexpected argument '" << p << "' (overrides are key.sub=value)\n"
          << kUsage << "\n";
      return 2;
    }
  }
  if (!f->Has("config")) {
    err << "envtune plan: --config is required\n" << kUsage << "\n";
    return 2;
  }
  absl::StatusOr<int64_t> gpus = f->GetInt("gpus", 0);
  absl::StatusOr<double> gpu_gib = f->GetDouble("gpu_memory", 80);
  absl::StatusOr<bool> json = f->GetBool("json", false);
  for (const absl::Status& s : {gpus.status(), gpu_gib.status(), json.status()}) {
    if (!s.ok()) {
      err << "envtune plan: " << s.message() << "\n";
      return 2;
    }
  }
  if (*gpus < 0 || *gpus > 65536 || !(*gpu_gib > 0) || *gpu_gib > 1e6) {
    err << "envtune plan: --gpus must be in [1, 65536] and --gpu_memory > 0 (GiB)\n";
    return 2;
  }
  absl::StatusOr<Config> config = Config::Load(f->Get("config"), f->positionals);
  if (!config.ok()) {
    err << "envtune plan: " << config.status().message() << "\n";
    return 2;
  }
  ConfigReader reader(*config);
  LearnerRoleOptions learner;
  ReadLearnerOptions(reader, &learner);
  ActorOptions actor;
  ReadActorOptions(reader, &actor);
  DeclareOtherSections(reader, *config, {"learner", "model", "actor"});
  if (absl::Status s = reader.Finish(); !s.ok()) {
    err << "envtune plan: " << s.message() << "\n";
    return 2;
  }
  // The architecture.
  ModelConfig model;
  std::string source;
  if (f->Has("model_config")) {
    absl::StatusOr<std::string> text = ReadFileToString(f->Get("model_config"));
    absl::StatusOr<ModelConfig> c = text.ok() ? ParseModelConfig(*text) : text.status();
    if (!c.ok()) {
      err << "envtune plan: --model_config: " << c.status().message() << "\n";
      return 2;
    }
    model = *c;
    source = f->Get("model_config");
  } else if (learner.model_path.empty()) {
    model = TinyQwen2Config(learner.tiny);
    source = "model.tiny";
  } else if (std::filesystem::exists(learner.model_path + "/config.json")) {
    absl::StatusOr<ModelConfig> c = LoadModelConfig(learner.model_path);
    if (!c.ok()) {
      err << "envtune plan: model.path: " << c.status().message() << "\n";
      return 2;
    }
    model = *c;
    source = learner.model_path + "/config.json";
  } else if (std::optional<ModelConfig> known = KnownModelConfig(learner.model_path)) {
    model = *known;
    source = absl::StrCat("known architecture of ",
                          std::filesystem::path(learner.model_path).filename().string(),
                          " (", learner.model_path, " is not on this machine)");
  } else {
    err << "envtune plan: model.path " << learner.model_path
        << " has no config.json here and is not a known checkpoint name; pass --model_config "
           "FILE (its config.json)\n";
    return 2;
  }
  if (absl::Status s = ValidateModelConfig(model); !s.ok()) {
    err << "envtune plan: " << source << ": " << s.message() << "\n";
    return 2;
  }
  const int64_t gpu_bytes = static_cast<int64_t>(*gpu_gib * 1024.0 * 1024.0 * 1024.0);
  const int64_t ram = MachineMemory();

  LearnerPlanInputs l;
  l.model = model;
  const std::string learner_dtype =
      !learner.dtype.empty() ? learner.dtype
                             : (learner.model_path.empty() ? "float32" : model.torch_dtype);
  l.dtype_bytes = DtypeBytes(learner_dtype);
  l.world_size = *gpus > 0 ? static_cast<int>(*gpus) : learner.world_size;
  l.zero_stage = learner.zero_stage;
  l.bucket_elements = learner.bucket_elements;
  l.reference = learner.kl_coef != 0;
  l.reference_offload = learner.reference_offload;
  l.micro_batch_tokens = learner.micro_batch_tokens;
  l.score_chunk_size = learner.score_chunk_size;
  l.gradient_checkpointing = learner.gradient_checkpointing;
  l.cuda = IsCuda(learner.device) || (learner.device.empty() && learner.backend == "nccl");
  l.device_memory = l.cuda ? gpu_bytes : ram;

  ActorPlanInputs a;
  a.model = model;
  std::string actor_dtype = actor.policy.load.dtype;
  if (actor_dtype.empty()) {  // as published
    actor_dtype = learner.publish_dtype == "F32"    ? "float32"
                  : learner.publish_dtype == "BF16" ? "bfloat16"
                  : l.dtype_bytes == 4              ? "float32"
                                                    : "bfloat16";
  }
  a.dtype_bytes = DtypeBytes(actor_dtype);
  a.concurrency = actor.rollout.concurrency;
  a.max_episode_tokens = actor.rollout.max_episode_tokens;
  a.kv_budget_bytes = actor.rollout.kv_budget.bytes;
  a.kv_budget_fraction = actor.rollout.kv_budget.fraction;
  a.cuda = IsCuda(actor.policy.load.device);
  a.device_memory = a.cuda ? gpu_bytes : ram;

  const std::vector<RolePlan> plans = {PlanLearner(l), PlanActor(a)};
  bool fits = true;
  for (const RolePlan& p : plans) fits = fits && p.fits;
  if (*json) {
    out << PlansToJson(plans) << "\n";
  } else {
    out << absl::StrFormat("model: %s, %.2fB parameters (%s)\n", source,
                           static_cast<double>(ParameterCount(model)) / 1e9, learner_dtype);
    out << FormatPlans(plans);
  }
  return fits ? 0 : 1;
}

}  // namespace envtune
