#include "common/config_sections.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace envtune {
namespace {

constexpr ConfigSection kConfigSections[] = {
    {"launch", "train",
     "the local launcher: process counts, restarts, warm start, held-out evaluation"},
    {"security", "every role", "TLS files, the cluster and admin tokens, the episode-blob key"},
    {"model", "learner, plan, model init", "the policy: an HF checkpoint or a tiny random Qwen2"},
    {"sft", "sft, train (warm start)", "supervised warm start on ground-truth replies"},
    {"actor", "actor, plan", "rollouts: sampling, concurrency, KV budget, output format, retries"},
    {"learner", "learner, plan",
     "GRPO: batches, optimiser, precision, data parallelism, checkpoints"},
    {"coordinator", "coordinator", "membership, leases, quotas, state and resume"},
    {"curriculum", "coordinator",
     "the stages: tasks, group size, reward, augmentation, advance rule"},
    {"evaluation", "coordinator", "periodic held-out evaluation leases"},
};

}  // namespace

std::span<const ConfigSection> ConfigSections() { return kConfigSections; }

void DeclareOtherSections(ConfigReader& reader, const Config& config,
                          const std::vector<std::string_view>& own) {
  auto is_own = [&](std::string_view name) {
    for (std::string_view o : own) {
      if (o == name) return true;
    }
    return false;
  };
  auto is_known = [](std::string_view name) {
    for (const ConfigSection& s : kConfigSections) {
      if (s.name == name) return true;
    }
    return false;
  };
  for (const ConfigSection& s : kConfigSections) {
    if (!is_own(s.name)) reader.MarkRead(std::string(s.name));
  }
  const YAML::Node& root = config.root();
  if (!root.IsDefined() || root.IsNull()) return;
  if (!root.IsMap()) return;  // Config::Load refuses such a file
  const std::string known = absl::StrJoin(
      kConfigSections, ", ", [](std::string* out, const ConfigSection& s) { out->append(s.name); });
  for (const YAML::const_iterator::value_type& entry : root) {
    std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "<non-scalar key>";
    if (is_known(name)) continue;
    // Marked read so Finish does not also list each of its keys as unknown.
    if (entry.first.IsScalar()) reader.MarkRead(name);
    reader.AddError(absl::StrCat("unknown section '", name, "' (known: ", known, ")"));
  }
}

}  // namespace envtune
