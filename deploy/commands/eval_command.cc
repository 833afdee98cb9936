#include "deploy/commands/eval_command.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/cli_flags.h"
#include "deploy/commands/eval_report.h"
#include "envserver/reply_format.h"
#include "episodes/env_client.h"
#include "episodes/evaluation.h"
#include "episodes/task_selection.h"
#include "model/device.h"
#include "model/qwen2.h"
#include "model/text/text_tools.h"

namespace envtune {

using Json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// The command.

namespace {

constexpr char kEvalUsage[] =
    R"(envtune eval [--model DIR | --policy ground_truth|no_calls] [flags]
  BFCL V3 multi-turn evaluation (BFCL's runner semantics and checker).
  --model DIR            HF checkpoint directory (policy "model", the default)
  --policy P             model | ground_truth | no_calls
  --split LIST           categories: base,miss_func,miss_param,long_context (default all)
  --subset S             train | val | test | all, or a comma list (default val,test; with
                         --tasks and no --subset: all)
  --tasks FILE           one task id per line
  --limit N              first N selected tasks
  --format F             bfcl_prompting (default) | envtuning | hermes (native tool calls)
  --env LIST             remote env servers host:port[,host:port] or dns:///name:port
                         (default: in-process)
  --data_dir DIR         BFCL data and splits
  --out DIR              output directory (default eval_results): results.jsonl, report.json,
                         report.md
  --tokenizer DIR        default third_party/qwen-tokenizer
  --batch_size N         episodes in flight (default 16)
  --max_new_tokens N     per reply (default 1024)
  --max_context N        prompt + reply tokens (default 32768)
  --temperature T        0 = greedy (default); > 0 samples with --seed
  --top_k K --top_p P --seed S
  --dtype D --device D   policy dtype (float32 | bfloat16) and LibTorch device
  --env_threads N        parallel env calls (default 8)
  --quiet                no progress bar)";

int EvalUsage(std::ostream& err, const std::string& msg) {
  err << "envtune eval: " << msg << "\n\n" << kEvalUsage << "\n";
  return 2;
}

}  // namespace

const char* EvalCommandUsage() { return kEvalUsage; }

int RunEvalCommand(const std::vector<std::string>& args, const std::string& default_data_dir,
                   std::ostream& out, std::ostream& err) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "help" || args[0] == "-h")) {
    out << kEvalUsage << "\n";
    return 0;
  }
  absl::StatusOr<CliFlags> f = ParseCliFlags(
      args,
      {"model", "policy", "split", "subset", "tasks", "limit", "format", "env", "data_dir", "out",
       "tokenizer", "batch_size", "max_new_tokens", "max_context", "temperature", "top_k", "top_p",
       "seed", "dtype", "device", "env_threads"},
      {"quiet"});
  if (!f.ok()) return EvalUsage(err, std::string(f.status().message()));
  if (!f->positionals.empty()) return EvalUsage(err, absl::StrCat("unexpected argument '", f->positionals[0], "'"));
  const std::string policy_name = f->Get("policy", "model");
  if (policy_name != "model" && policy_name != "ground_truth" && policy_name != "no_calls") {
    return EvalUsage(err, absl::StrCat("unknown --policy '", policy_name, "'"));
  }
  if (policy_name == "model" && !f->Has("model")) return EvalUsage(err, "--model DIR is required");
  EvalOptions eo;
  absl::StatusOr<v1::OutputFormat> format = ParseOutputFormat(f->Get("format", "bfcl_prompting"));
  if (!format.ok()) return EvalUsage(err, absl::StrCat("--format: ", format.status().message()));
  eo.format = *format;
  absl::StatusOr<int64_t> limit = f->GetInt("limit", 0), batch = f->GetInt("batch_size", 16),
                          mnt = f->GetInt("max_new_tokens", 1024),
                          ctx = f->GetInt("max_context", 32768), top_k = f->GetInt("top_k", 0),
                          seed = f->GetInt("seed", 0), threads = f->GetInt("env_threads", 8);
  absl::StatusOr<double> temp = f->GetDouble("temperature", 0.0), top_p = f->GetDouble("top_p", 1.0);
  absl::StatusOr<bool> quiet = f->GetBool("quiet", false);
  for (const absl::Status& s : {limit.status(), batch.status(), mnt.status(), ctx.status(),
                                top_k.status(), seed.status(), threads.status(), temp.status(),
                                top_p.status(), quiet.status()}) {
    if (!s.ok()) return EvalUsage(err, std::string(s.message()));
  }
  if (*limit < 0 || *batch < 1 || *mnt < 1 || *ctx < 2 || *threads < 1 || *temp < 0) {
    return EvalUsage(err, "--limit >= 0, --batch_size/--max_new_tokens/--env_threads >= 1, "
                          "--max_context >= 2, --temperature >= 0");
  }
  eo.batch_size = static_cast<int>(*batch);
  eo.env_threads = static_cast<int>(*threads);
  eo.seed = static_cast<uint64_t>(*seed);

  const std::string data_dir = f->Get("data_dir", default_data_dir);
  absl::StatusOr<TaskCatalog> catalog = TaskCatalog::Load(absl::StrCat(data_dir, "/bfcl"));
  if (!catalog.ok()) return EvalUsage(err, std::string(catalog.status().message()));
  TaskSelection sel;
  if (f->Has("split")) {
    for (absl::string_view c : absl::StrSplit(f->Get("split"), ',', absl::SkipEmpty())) {
      sel.categories.emplace_back(absl::StripAsciiWhitespace(c));
    }
  }
  sel.tasks_file = f->Get("tasks");
  sel.subset = f->Get("subset", sel.tasks_file.empty() ? "val,test" : "all");
  sel.limit = static_cast<int>(*limit);
  absl::StatusOr<std::vector<std::string>> ids = SelectEvalTasks(*catalog, data_dir, sel);
  if (!ids.ok()) return EvalUsage(err, std::string(ids.status().message()));
  if (ids->empty()) return EvalUsage(err, "no task matches the selection");

  // Policy.
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<Policy> model;
  std::unique_ptr<EvalPolicy> policy;
  if (policy_name == "ground_truth") {
    policy = GroundTruthEvalPolicy(&*catalog);
  } else if (policy_name == "no_calls") {
    policy = NoCallsEvalPolicy();
  } else {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(f->Get("tokenizer"));
    if (!tok.ok()) return EvalUsage(err, std::string(tok.status().message()));
    tokenizer = std::move(*tok);
    LoadPolicyOptions load;
    if (f->Has("dtype")) {
      std::string d = f->Get("dtype");
      if (d == "fp32") d = "float32";
      if (d == "bf16") d = "bfloat16";
      absl::StatusOr<c10::ScalarType> t = DtypeFromName(d);
      if (!t.ok()) return EvalUsage(err, std::string(t.status().message()));
      load.dtype = *t;
    }
    absl::StatusOr<c10::Device> device = ResolveDevice(f->Get("device", "cpu"));
    if (!device.ok()) return EvalUsage(err, absl::StrCat("--device: ", device.status().message()));
    load.device = *device;
    absl::StatusOr<Policy> p = LoadPolicy(f->Get("model"), load);
    if (!p.ok()) {
      err << "envtune eval: " << p.status().message() << "\n";
      return 1;
    }
    model = std::move(*p);
    ModelPolicyOptions mo = DefaultModelPolicyOptions();
    mo.generation.max_new_tokens = *mnt;
    mo.max_context_tokens = *ctx;
    mo.generation.do_sample = *temp > 0;
    mo.generation.temperature = *temp > 0 ? *temp : 1.0;
    mo.generation.top_k = *top_k;
    mo.generation.top_p = *top_p;
    mo.generation.seed = static_cast<uint64_t>(*seed);
    for (int64_t id : (*model)->config().generation_eos_token_ids) mo.generation.stop_token_ids.push_back(id);
    absl::StatusOr<std::unique_ptr<EvalPolicy>> mp = ModelEvalPolicy(model->get(), tokenizer.get(), mo);
    if (!mp.ok()) return EvalUsage(err, std::string(mp.status().message()));
    policy = std::move(*mp);
  }

  // Environment.
  std::unique_ptr<EpisodeEngine> engine;
  std::unique_ptr<EnvClient> client;
  std::unique_ptr<EvalEnv> env;
  if (f->Has("env")) {
    client = std::make_unique<EnvClient>(EnvTarget(f->Get("env")));
    env = RemoteEvalEnv(client.get());
  } else {
    engine = std::make_unique<EpisodeEngine>(&*catalog, EpisodeEngineOptions{});
    env = InProcessEvalEnv(engine.get());
  }

  const std::string out_dir = f->Get("out", "eval_results");
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    err << "envtune eval: cannot create " << out_dir << ": " << ec.message() << "\n";
    return 1;
  }
  size_t correct = 0;
  const bool show = !*quiet;
  EvalProgressFn progress = [&](const TaskEvaluation& done, size_t finished, size_t total) {
    if (done.verdict.valid) ++correct;
    if (!show) return;
    const int width = 30;
    const int filled = static_cast<int>(width * finished / std::max<size_t>(1, total));
    err << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << finished
        << "/" << total << absl::StrFormat("  acc %.1f%%", 100.0 * correct / finished)
        << (finished == total ? "\n" : "") << std::flush;
  };
  absl::StatusOr<std::vector<TaskEvaluation>> results =
      EvaluateTasks(*policy, *env, *catalog, *ids, eo, progress);
  if (!results.ok()) {
    err << "envtune eval: " << results.status().message() << "\n";
    return 1;
  }
  std::ofstream lines(out_dir + "/results.jsonl");
  for (const TaskEvaluation& r : *results) {
    lines << TaskEvaluationJson(r).dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  EvalReport report = BuildEvalReport(*results);
  Json meta;
  meta["policy"] = policy_name;
  if (policy_name == "model") meta["model"] = f->Get("model");
  meta["format"] = std::string(OutputFormatName(eo.format));
  meta["subset"] = sel.subset;
  meta["split"] = f->Get("split", "base,miss_func,miss_param,long_context");
  if (!sel.tasks_file.empty()) meta["tasks_file"] = sel.tasks_file;
  meta["tasks"] = ids->size();
  meta["decoding"] = *temp > 0 ? absl::StrCat("sampled T=", *temp, " seed=", *seed) : "greedy";
  std::ofstream(out_dir + "/report.json") << EvalReportJson(report, meta).dump(2) << "\n";
  const std::string md = EvalReportMarkdown(report, meta);
  std::ofstream(out_dir + "/report.md") << md;
  if (!lines) {
    err << "envtune eval: writing " << out_dir << " failed\n";
    return 1;
  }
  out << md;
  return 0;
}

}  // namespace envtune
