#include "deploy/ablate.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "common/file.h"
#include "deploy/local_launcher.h"
#include "deploy/plot.h"

namespace envtune {
namespace {

struct SwitchRow {
  const char* name;
  const char* arm_a;
  const char* arm_b;
};
constexpr SwitchRow kSwitches[] = {
    {"augment", "A: augmentation on", "B: augmentation off"},
    {"reward", "A: progress reward", "B: binary episode reward"},
    {"curriculum", "A: staged curriculum", "B: single stage"},
};

const SwitchRow* FindSwitch(const std::string& name) {
  for (const SwitchRow& row : kSwitches) {
    if (name == row.name) return &row;
  }
  return nullptr;
}

double MeanOf(const std::vector<double>& v, size_t from, size_t to) {
  double sum = 0;
  for (size_t i = from; i < to; ++i) sum += v[i];
  return to > from ? sum / static_cast<double>(to - from) : 0.0;
}

std::string Reward(const YAML::Node& stage) {
  return stage["reward"] && stage["reward"].IsScalar() ? stage["reward"].as<std::string>()
                                                       : std::string("progress");
}

}  // namespace

absl::StatusOr<YAML::Node> AblatedConfig(const YAML::Node& config, const std::string& which) {
  if (FindSwitch(which) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("ablate: unknown switch '", which,
                                                    "' (augment, reward, curriculum)"));
  }
  YAML::Node root = YAML::Clone(config);
  YAML::Node stages = root["curriculum"]["stages"];
  if (!stages.IsSequence() || stages.size() == 0) {
    return absl::InvalidArgumentError("ablate: the config has no curriculum.stages");
  }
  if (which == "augment") {
    for (YAML::Node stage : stages) {
      YAML::Node off;
      off["start"] = 0.0;
      off["end"] = 0.0;
      stage["augment"] = off;
    }
  } else if (which == "reward") {
    for (YAML::Node stage : stages) {
      if (Reward(stage) == "progress") stage["reward"] = "binary";
    }
  } else {  // curriculum
    int64_t steps = 0;
    for (size_t i = 0; i < stages.size(); ++i) {
      const YAML::Node after = stages[i]["advance"]["after_steps"];
      const int64_t n = after && after.IsScalar() ? after.as<int64_t>(0) : 0;
      if (n <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ablate curriculum: stage ", i + 1,
            " has no advance.after_steps (the single stage runs as many steps as all stages)"));
      }
      steps += n;
    }
    YAML::Node single = YAML::Clone(stages[stages.size() - 1]);
    single["name"] = "single";
    if (Reward(single) == "format") single["reward"] = "progress";
    YAML::Node advance;
    advance["after_steps"] = steps;
    single["advance"] = advance;
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(single);
    root["curriculum"]["stages"] = list;
  }
  return root;
}

ArmSummary SummarizeArm(const std::string& name, const std::vector<nlohmann::json>& lines,
                        const std::set<int>& stages, const std::set<int64_t>& steps) {
  ArmSummary arm;
  arm.name = name;
  arm.held_out = "-";
  for (const nlohmann::json& line : lines) {
    if (!line.contains("batch_stage") || !line["batch_stage"].is_number_integer()) continue;
    const int stage = line["batch_stage"].get<int>();
    const int64_t step = line.value("step", int64_t{0});
    if (!stages.empty() && stages.count(stage) == 0) continue;
    if (!steps.empty() && steps.count(step) == 0) continue;
    const std::string key = absl::StrCat("reward/stage", stage, "/progress");
    if (!line.contains("metrics") || !line["metrics"].contains(key) ||
        !line["metrics"][key].is_number()) {
      continue;
    }
    arm.steps.push_back(step);
    arm.progress.push_back(line["metrics"][key].get<double>());
  }
  const size_t n = arm.progress.size(), k = std::min<size_t>(3, n);
  arm.first_mean = MeanOf(arm.progress, 0, k);
  arm.last_mean = MeanOf(arm.progress, n - k, n);
  arm.mean = MeanOf(arm.progress, 0, n);
  arm.trend = FitTrend(arm.progress);
  return arm;
}

std::string ComparisonMarkdown(const std::string& title, const std::vector<ArmSummary>& arms) {
  std::string md = absl::StrCat(
      "# ", title,
      "\n\nPer-turn progress of the learner's batch per step (both arms report it whatever their "
      "reward); first/last: means of the first and last 3 compared steps; slope and t: "
      "least-squares fit over them.\n\n| arm | steps | first 3 | last 3 | mean | slope/step | t | "
      "held-out after RL |\n|---|---|---:|---:|---:|---:|---:|---|\n");
  for (const ArmSummary& a : arms) {
    absl::StrAppendFormat(
        &md, "| %s | %s | %.3f | %.3f | %.3f | %+.4f | %.2f | %s |\n", a.name,
        a.steps.empty() ? std::string("-") : absl::StrCat(a.steps.front(), "-", a.steps.back()),
        a.first_mean, a.last_mean, a.mean, a.trend.slope, a.trend.t, a.held_out);
  }
  for (const ArmSummary& a : arms) {
    std::vector<std::string> values;
    for (double v : a.progress) values.push_back(absl::StrFormat("%.3f", v));
    absl::StrAppend(&md, "\n", a.name, ": ", absl::StrJoin(values, " "));
  }
  return md + "\n";
}

int RunAblateCommand(const std::vector<std::string>& args, const std::string& envtune_binary,
                     const std::string& default_data_dir, const std::atomic<bool>& stop,
                     std::ostream& out, std::ostream& err) {
  constexpr char kUsage[] =
      "usage: envtune ablate --config FILE --switch augment|reward|curriculum "
      "[--run_dir DIR] [--data_dir DIR] [key.sub=value ...]\n";
  std::string config_path, which, run_dir = "runs/ablate", data_dir = default_data_dir;
  std::vector<std::string> overrides;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    bool matched = false;
    for (auto [flag, target] : {std::pair<const char*, std::string*>{"--config", &config_path},
                                {"--switch", &which},
                                {"--run_dir", &run_dir},
                                {"--data_dir", &data_dir}}) {
      if (arg == flag && i + 1 < args.size()) {
        *target = args[++i];
        matched = true;
      } else if (absl::StartsWith(arg, absl::StrCat(flag, "="))) {
        *target = arg.substr(std::string(flag).size() + 1);
        matched = true;
      }
      if (matched) break;
    }
    if (matched) continue;
    if (absl::StartsWith(arg, "-") || arg.find('=') == std::string::npos) {
      err << "envtune ablate: unexpected argument '" << arg << "'\n" << kUsage;
      return 2;
    }
    overrides.push_back(arg);
  }
  const SwitchRow* row = FindSwitch(which);
  if (config_path.empty() || row == nullptr) {
    err << "envtune ablate: " << (config_path.empty() ? "--config is required" : "")
        << (config_path.empty() || row != nullptr ? "" : absl::StrCat("unknown --switch '", which, "'"))
        << "\n" << kUsage;
    return 2;
  }
  absl::StatusOr<Config> config = Config::Load(config_path, overrides);
  if (!config.ok()) {
    err << "envtune ablate: " << config.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<YAML::Node> ablated = AblatedConfig(config->root(), which);
  if (!ablated.ok()) {
    err << "envtune ablate: " << ablated.status().message() << "\n";
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec) {
    err << "envtune ablate: cannot create " << run_dir << ": " << ec.message() << "\n";
    return 1;
  }
  // Arm A as given (its warm start into DIR/A/sft); arm B from A's starting weights.
  YAML::Node arm_a = YAML::Clone(config->root());
  YAML::Node arm_b = *ablated;
  arm_a["launch"]["run_dir"] = run_dir + "/A";
  arm_b["launch"]["run_dir"] = run_dir + "/B";
  const bool a_warm = arm_a["launch"]["warm_start"] && arm_a["launch"]["warm_start"].IsScalar() &&
                      arm_a["launch"]["warm_start"].as<std::string>() == "sft" &&
                      !(arm_a["model"] && arm_a["model"]["path"]);
  if (a_warm) {
    arm_b["launch"]["warm_start"] = "none";
    arm_b["model"]["path"] = run_dir + "/A/sft";
  }
  // Same step numbering: both arms' learners write checkpoints to their own run directory.
  for (YAML::Node* arm : {&arm_a, &arm_b}) {
    if ((*arm)["learner"] && (*arm)["learner"]["checkpoint_dir"]) {
      (*arm)["learner"].remove("checkpoint_dir");
    }
  }
  for (const auto& [tag, node] : {std::pair<std::string, YAML::Node>{"A", arm_a}, {"B", arm_b}}) {
    YAML::Emitter emitter;
    emitter << node;
    const std::string path = absl::StrCat(run_dir, "/", tag, ".yaml");
    if (absl::Status s = WriteFileAtomic(path, std::string(emitter.c_str()) + "\n"); !s.ok()) {
      err << "envtune ablate: " << s.message() << "\n";
      return 1;
    }
    LaunchOptions options;
    options.envtune_binary = envtune_binary;
    options.config_path = path;
    options.data_dir = data_dir;
    if (absl::Status s = ReadLaunchOptions(options); !s.ok()) {
      err << "envtune ablate: arm " << tag << ": " << s.message() << "\n";
      return 2;
    }
    out << "== arm " << (tag == "A" ? row->arm_a : row->arm_b) << " (" << path << ", "
        << options.run_dir << ")\n" << std::flush;
    if (absl::Status s = RunLocalTraining(options, stop, out); !s.ok()) {
      err << "envtune ablate: arm " << tag << ": " << s.message() << "\n";
      return 1;
    }
    if (stop.load()) {
      err << "envtune ablate: stopped\n";
      return 1;
    }
  }

  // The compared steps: A's stages whose reward is not the format reward.
  std::set<int> compared_stages;
  const YAML::Node stages = arm_a["curriculum"]["stages"];
  for (size_t i = 0; i < stages.size(); ++i) {
    if (Reward(stages[i]) != "format") compared_stages.insert(static_cast<int>(i) + 1);
  }
  const std::vector<nlohmann::json> lines_a = JsonLinesTail(run_dir + "/A/metrics.jsonl").ReadNew();
  const std::vector<nlohmann::json> lines_b = JsonLinesTail(run_dir + "/B/metrics.jsonl").ReadNew();
  ArmSummary a = SummarizeArm(row->arm_a, lines_a, compared_stages);
  ArmSummary b =
      which == "curriculum"
          ? SummarizeArm(row->arm_b, lines_b, {}, std::set<int64_t>(a.steps.begin(), a.steps.end()))
          : SummarizeArm(row->arm_b, lines_b, compared_stages);
  for (auto [arm, tag] : {std::pair<ArmSummary*, const char*>{&a, "A"}, {&b, "B"}}) {
    absl::StatusOr<HeldOutEval> eval =
        ReadHeldOutEval(absl::StrCat(run_dir, "/", tag, "/eval-after"), "after RL");
    if (eval.ok()) {
      arm->held_out = absl::StrFormat("accuracy %.3f, progress %.3f (%d tasks)", eval->accuracy,
                                      eval->mean_progress, eval->tasks);
    }
  }
  const std::string title = absl::StrCat("envtune ablate --switch ", which, ": ", row->arm_a,
                                         " vs ", row->arm_b);
  const std::string md = ComparisonMarkdown(title, {a, b});
  std::map<std::string, Series> series;
  for (const ArmSummary* arm : {&a, &b}) {
    Series& points = series[arm->name];
    for (size_t i = 0; i < arm->steps.size(); ++i) {
      points.emplace_back(static_cast<double>(arm->steps[i]), arm->progress[i]);
    }
  }
  const std::string svg =
      RenderLineChartSvg(absl::StrCat("progress per step: ", which, " ablation"), series);
  for (const auto& [file, text] : {std::pair<std::string, std::string>{"comparison.md", md},
                                   {"comparison.svg", svg}}) {
    if (absl::Status s = WriteFileAtomic(run_dir + "/" + file, text); !s.ok()) {
      err << "envtune ablate: " << s.message() << "\n";
      return 1;
    }
  }
  out << md << "comparison: " << run_dir << "/comparison.md, plot: " << run_dir
      << "/comparison.svg\n";
  return 0;
}

}  // namespace envtune
