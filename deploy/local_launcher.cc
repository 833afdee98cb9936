#include "deploy/local_launcher.h"

#include <string.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/checkpoint_dir.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "common/file.h"
#include "common/secrets.h"
#include "common/security.h"
#include "deploy/plot.h"
#include "deploy/process.h"
#include "deploy/run_report.h"
#include "deploy/status_command.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

// One supervised role instance: how to (re)start it and the running process.
enum class Role { kCoordinator, kEnvServer, kLearner, kActor };

struct Slot {
  std::string name;                 // "env-server-0"
  std::vector<std::string> argv;
  Role role = Role::kActor;
  int restarts = 0;
  std::optional<ChildProcess> process;
  std::string address;              // reported listening address, if any
  int stop_rank = 0;                // stopped in increasing rank: actors, learner, env, coordinator
  bool env_server = false;
  std::optional<absl::Time> retiring_since;  // scaled down: draining, not restarted
  std::optional<absl::Time> restart_at;      // exited: started again at this time
};

// The coordinator and the learner restart together (their steps must agree); env servers and
// actors alone.
bool IsCore(const Slot& slot) {
  return slot.role == Role::kCoordinator || slot.role == Role::kLearner;
}

// Exit status 2: a usage or configuration error, which a restart would only repeat.
constexpr int kConfigErrorStatus = 2;

// "exit code 3", "signal 9 (Killed)".
std::string DescribeExit(int status) {
  if (status > 128 && status < 128 + 65) {
    const char* name = ::strsignal(status - 128);
    return absl::StrCat("signal ", status - 128, " (", name != nullptr ? name : "?", ")");
  }
  return absl::StrCat("exit code ", status);
}

// restart_backoff x 2^(restarts - 1), at most max_restart_backoff (restarts >= 1).
absl::Duration RestartDelay(const LaunchOptions& options, int restarts) {
  absl::Duration delay = options.restart_backoff;
  for (int i = 1; i < restarts && delay < options.max_restart_backoff; ++i) delay *= 2;
  return std::min(delay, options.max_restart_backoff);
}

// Sets `key`=`value` among the overrides at the end of argv (removing earlier ones; the last
// override of a key wins over the config file and the user's); nullopt only removes.
void SetOverride(std::vector<std::string>& argv, const std::string& key,
                 const std::optional<std::string>& value) {
  const std::string prefix = key + "=";
  std::erase_if(argv, [&](const std::string& arg) { return absl::StartsWith(arg, prefix); });
  if (value.has_value()) argv.push_back(prefix + *value);
}

// A restarted process listens where the others already dial it: --port=0 becomes the port it
// reported first.
void PinPort(Slot& slot) {
  if (slot.address.empty()) return;
  for (std::string& arg : slot.argv) {
    if (arg == "--port=0") arg = "--port=" + slot.address.substr(slot.address.rfind(':') + 1);
  }
}

constexpr char kScaleRequest[] = "/control/env_servers";
constexpr char kScaleApplied[] = "/control/env_servers.applied";

// Readers never see half a file (common/file.h); not fsynced: rewritten often, for readers.
absl::Status WriteFileAtomically(const std::string& path, const std::string& text) {
  return WriteFileAtomic(path, text, /*durable=*/false);
}

// The env-server count in a control file; nullopt when absent.
absl::StatusOr<std::optional<int>> ReadCount(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<int>();
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  int count = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &count)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": '", *text, "' is not a count"));
  }
  return std::optional<int>(count);
}

absl::Status StartSlot(Slot& slot, const std::string& log_dir, bool wait_for_address,
                       absl::Duration timeout) {
  absl::StatusOr<ChildProcess> child =
      ChildProcess::Spawn(slot.name, slot.argv, absl::StrCat(log_dir, "/", slot.name, ".log"));
  if (!child.ok()) return child.status();
  slot.process.emplace(*std::move(child));
  if (!wait_for_address) return absl::OkStatus();
  absl::StatusOr<std::string> address = slot.process->WaitForListeningAddress(timeout);
  if (!address.ok()) return address.status();
  slot.address = *address;
  return absl::OkStatus();
}

std::vector<std::string> RoleArgv(const LaunchOptions& options, const std::string& role,
                                  std::vector<std::string> flags,
                                  const std::vector<std::string>& role_overrides = {}) {
  std::vector<std::string> argv{options.envtune_binary, role};
  if (!options.config_path.empty()) argv.push_back("--config=" + options.config_path);
  argv.push_back("--data_dir=" + options.data_dir);
  for (std::string& flag : flags) argv.push_back(std::move(flag));
  for (const std::string& o : options.overrides) argv.push_back(o);
  for (const std::string& o : role_overrides) argv.push_back(o);
  return argv;
}

// What SealRun made: the files roles read and the overrides that name them.
struct RunSecrets {
  std::string hmac_key_file;
  std::vector<std::string> coordinator_overrides;  // the admin token (coordinator only)
};

// Seals the run (see local_launcher.h): writes <run_dir>/secrets, adds the security.* overrides
// every role gets to options.overrides, and makes the result this process's security (the
// launcher polls the coordinator too).
absl::StatusOr<RunSecrets> SealRun(LaunchOptions& options) {
  std::error_code ec;
  const std::string dir =
      std::filesystem::absolute(options.run_dir + "/secrets", ec).lexically_normal().string();
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir, " (mode 0700)"));
  }
  auto write_random = [&](const std::string& name) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> secret = RandomHex(32);
    if (!secret.ok()) return secret.status();
    const std::string path = dir + "/" + name;
    if (absl::Status s = WritePrivateFile(path, *secret + "\n"); !s.ok()) return s;
    return path;
  };
  RunSecrets secrets;
  absl::StatusOr<std::string> hmac = write_random("hmac-key");
  if (!hmac.ok()) return hmac.status();
  secrets.hmac_key_file = *hmac;
  SecurityOptions& security = options.security;
  if (security.token_file.empty()) {
    absl::StatusOr<std::string> token = write_random("token");
    if (!token.ok()) return token.status();
    security.token_file = *token;
    options.overrides.push_back("security.token_file=" + *token);
  }
  if (security.admin_token_file.empty()) {
    absl::StatusOr<std::string> admin = write_random("admin-token");
    if (!admin.ok()) return admin.status();
    security.admin_token_file = *admin;
    secrets.coordinator_overrides.push_back("security.admin_token_file=" + *admin);
  }
  if (options.tls && !security.tls.enabled()) {
    const std::string pki = dir + "/pki";
    if (absl::Status s = WriteLoopbackPki(pki); !s.ok()) return s;
    security.tls.cert = pki + "/" + kPkiCertFile;
    security.tls.key = pki + "/" + kPkiKeyFile;
    security.tls.ca = pki + "/" + kPkiCaFile;
    security.tls.server_name = kPkiServerName;
    for (const auto& [key, value] : std::vector<std::pair<const char*, std::string>>{
             {"cert", security.tls.cert},
             {"key", security.tls.key},
             {"ca", security.tls.ca},
             {"server_name", security.tls.server_name}}) {
      options.overrides.push_back(absl::StrCat("security.tls.", key, "=", value));
    }
  }
  // The client side for tools (`envtune status --config ...`): paths only.
  YAML::Node yaml;
  if (security.tls.enabled()) {
    yaml["security"]["tls"]["cert"] = security.tls.cert;
    yaml["security"]["tls"]["key"] = security.tls.key;
    yaml["security"]["tls"]["ca"] = security.tls.ca;
    if (!security.tls.server_name.empty()) {
      yaml["security"]["tls"]["server_name"] = security.tls.server_name;
    }
  }
  yaml["security"]["token_file"] = security.token_file;
  YAML::Emitter out;
  out << yaml;
  if (absl::Status s = WritePrivateFile(dir + "/security.yaml", std::string(out.c_str()) + "\n");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::shared_ptr<const Security>> loaded = Security::Load(security);
  if (!loaded.ok()) return loaded.status();
  SetProcessSecurity(*std::move(loaded));
  return secrets;
}

double MetricValue(const v1::ClusterStatus& status, const std::string& name, double fallback) {
  for (const v1::Metric& m : status.metrics()) {
    if (m.name() == name) return m.value();
  }
  return fallback;
}

// "%.3f", or "-" for a metric not reported yet (NaN).
std::string Figure(double value) {
  return std::isnan(value) ? std::string("-") : absl::StrFormat("%.3f", value);
}

// After a rollback to learner step `step`: removes the learner checkpoints (step-<M>, final)
// and the coordinator's state files of steps M > step. They belong to steps the run gives up
// and takes again; left in place, a later restart could pair a checkpoint of the old steps with
// the coordinator's state of the new ones. Returns what it removed.
std::vector<std::string> DiscardAfter(const std::string& checkpoint_dir,
                                      const std::string& state_dir, int64_t step) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!checkpoint_dir.empty()) {
    for (const auto& entry : std::filesystem::directory_iterator(checkpoint_dir, ec)) {
      const std::string label = entry.path().filename().string();
      if (label != "final" && !absl::StartsWith(label, "step-")) continue;
      absl::StatusOr<CheckpointInfo> info = ReadCheckpointInfo(entry.path().string());
      if (!info.ok() || info->step <= step) continue;
      std::error_code rm;
      if (std::filesystem::remove_all(entry.path(), rm) > 0 && !rm) {
        removed.push_back(entry.path().string());
      }
    }
  }
  for (const auto& entry : std::filesystem::directory_iterator(state_dir, ec)) {
    const std::string file = entry.path().filename().string();
    absl::string_view name = file;
    int64_t n = 0;
    if (!absl::ConsumePrefix(&name, "step-") || !absl::ConsumeSuffix(&name, ".binpb") ||
        !absl::SimpleAtoi(name, &n) || n <= step) {
      continue;
    }
    std::error_code rm;
    if (std::filesystem::remove(entry.path(), rm) && !rm) removed.push_back(entry.path().string());
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

}  // namespace

// Sane ranges of the launch keys (ConfigReader::AddBounds): launch.actors=100000 would start a
// hundred thousand processes.
constexpr ConfigBound kLaunchBounds[] = {
    {"launch.env_servers", 1, 256},   {"launch.actors", 1, 256},
    {"launch.startup_timeout_s", 1, 86400}, {"launch.max_restarts", 0, 1000},
    {"launch.poll_interval_ms", 10, 60000}, {"launch.max_wall_s", 0, 365 * 86400},
};

absl::Status ReadLaunchOptions(LaunchOptions& options) {
  absl::StatusOr<Config> config = Config::Load(options.config_path, options.overrides);
  if (!config.ok()) return config.status();
  ConfigReader reader(*config);
  ReadLaunchKeys(reader, *config, options);
  // Every other section belongs to a role, which checks its own keys.
  DeclareOtherSections(reader, *config, {"launch", "security"});
  return reader.Finish();
}

void ReadLaunchKeys(ConfigReader& reader, const Config& config, LaunchOptions& options) {
  reader.AddBounds(kLaunchBounds);
  options.env_servers = reader.Get<int>("launch.env_servers", options.env_servers);
  options.actors = reader.Get<int>("launch.actors", options.actors);
  options.run_dir = reader.Get<std::string>("launch.run_dir", options.run_dir);
  options.startup_timeout = absl::Seconds(reader.Get<int>("launch.startup_timeout_s", 120));
  options.max_restarts = reader.Get<int>("launch.max_restarts", options.max_restarts);
  options.restart_backoff = absl::Milliseconds(reader.Get<int>(
      "launch.restart_backoff_ms", absl::ToInt64Milliseconds(options.restart_backoff)));
  options.max_restart_backoff = absl::Milliseconds(reader.Get<int>(
      "launch.max_restart_backoff_ms", absl::ToInt64Milliseconds(options.max_restart_backoff)));
  options.poll_interval = absl::Milliseconds(reader.Get<int>("launch.poll_interval_ms", 1000));
  options.max_wall = absl::Seconds(reader.Get<int>("launch.max_wall_s", 0));
  options.warm_start = reader.Get<std::string>("launch.warm_start", options.warm_start);
  options.tls = reader.Get<bool>("launch.tls", options.tls);
  options.security = ReadSecurityOptions(reader);
  options.resume = reader.Get<bool>("launch.resume", options.resume);
  options.eval_subset = reader.Get<std::string>("launch.held_out_eval.subset", "");
  options.eval_categories =
      reader.Get<std::vector<std::string>>("launch.held_out_eval.categories", {});
  options.eval_limit = reader.Get<int>("launch.held_out_eval.limit", 0);
  options.eval_max_new_tokens = reader.Get<int>("launch.held_out_eval.max_new_tokens", 64);
  if (options.eval_limit < 0) reader.AddError("launch.held_out_eval.limit: must be >= 0");
  if (options.eval_max_new_tokens < 1) {
    reader.AddError("launch.held_out_eval.max_new_tokens: must be >= 1");
  }
  {
    // The actor's format: one name everywhere (envserver/reply_format.h; the actor checks it).
    options.eval_format = reader.Get<std::string>("actor.output_format", "envtuning");
    options.eval_tokenizer = reader.Get<std::string>("actor.tokenizer", "");
  }
  {
    const YAML::Node& root = config.root();
    if (root["model"] && root["model"]["path"] && root["model"]["path"].IsScalar()) {
      options.model_path = root["model"]["path"].as<std::string>();
    }
    if (root["learner"] && root["learner"]["checkpoint_dir"]) {
      // Given (`learner.checkpoint_dir=` reads as null: no checkpoints).
      const YAML::Node dir = root["learner"]["checkpoint_dir"];
      options.checkpoint_dir = dir.IsScalar() ? dir.as<std::string>() : "";
    } else {
      options.checkpoint_dir = options.run_dir + "/checkpoints";  // the run's own
      options.default_checkpoint_dir = true;
    }
    YAML::Emitter out;
    out << root;
    options.effective_config = std::string(out.c_str()) + "\n";
  }
  if (options.resume && options.checkpoint_dir.empty()) {
    reader.AddError("launch.resume: needs checkpoints (learner.checkpoint_dir is set to \"\")");
  }
  if (options.warm_start != "none" && options.warm_start != "sft") {
    reader.AddError(absl::StrCat("launch.warm_start: '", options.warm_start,
                                 "' is not one of none, sft"));
  }
  {
    YAML::Node key;
    key["data_dir"] = options.data_dir;
    if (config.root()["sft"]) key["sft"] = config.root()["sft"];
    YAML::Emitter out;
    out << key;
    options.warm_start_key = std::string(out.c_str()) + "\n";
  }
  if (options.env_servers < 1) reader.AddError("launch.env_servers: must be >= 1");
  if (options.max_restarts < 0) reader.AddError("launch.max_restarts: must be >= 0");
  if (options.restart_backoff < absl::ZeroDuration() ||
      options.max_restart_backoff < options.restart_backoff) {
    reader.AddError(
        "launch.restart_backoff_ms / max_restart_backoff_ms: need 0 <= restart_backoff_ms <= "
        "max_restart_backoff_ms");
  }
  if (options.actors < 1) reader.AddError("launch.actors: must be >= 1");
}

absl::Status ReadResumeOptions(const std::string& run_dir,
                               const std::vector<std::string>& extra_overrides,
                               LaunchOptions& options) {
  const std::string saved = run_dir + "/config.yaml";
  std::error_code ec;
  if (!std::filesystem::exists(saved, ec)) {
    return absl::NotFoundError(absl::StrCat("--resume ", run_dir, ": no run there (", saved,
                                            " is missing; it is written when a run starts)"));
  }
  options.config_path = saved;
  options.overrides = {"launch.resume=true", "launch.run_dir=" + run_dir};
  for (const std::string& o : extra_overrides) options.overrides.push_back(o);
  return ReadLaunchOptions(options);
}

namespace {

std::string WarmStartDir(const LaunchOptions& options) { return options.run_dir + "/sft"; }
std::string WarmStartKeyPath(const LaunchOptions& options) {
  return WarmStartDir(options) + "/warm_start_key.yaml";
}

// `envtune sft` as a child process (stoppable); returns the checkpoint directory. A complete
// checkpoint in <run_dir>/sft whose key file equals options.warm_start_key is reused. The key is
// removed before training and written only after `envtune sft` succeeded, so an interrupted run
// never leaves a checkpoint that looks reusable.
absl::StatusOr<std::string> RunWarmStart(const LaunchOptions& options, const std::string& log_dir,
                                         const std::atomic<bool>& stop, std::ostream& progress,
                                         std::string* summary) {
  const std::string out_dir = WarmStartDir(options);
  const std::string key_path = WarmStartKeyPath(options);
  if (CanReuseWarmStart(options)) {
    *summary = absl::StrCat("warm start: reusing ", out_dir,
                            " (same sft: section; delete it to retrain)");
    progress << *summary << "\n" << std::flush;
    return out_dir;
  }
  std::error_code ec;
  std::filesystem::remove(key_path, ec);
  std::vector<std::string> argv{options.envtune_binary, "sft", "--config=" + options.config_path,
                                "sft.data_dir=" + options.data_dir};
  for (const std::string& o : options.overrides) argv.push_back(o);
  argv.push_back("sft.output_dir=" + out_dir);
  const std::string progress_file = log_dir + "/sft_progress.jsonl";
  std::filesystem::remove(progress_file, ec);
  argv.push_back("sft.progress_file=" + progress_file);
  progress << "warm start: supervised fine-tuning (sft: section) into " << out_dir << "\n"
           << std::flush;
  const absl::Time start = absl::Now();
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn("sft", argv, log_dir + "/sft.log");
  if (!child.ok()) return child.status();
  // A line about every 10 s, and the last step's.
  JsonLinesTail progress_lines(progress_file);
  nlohmann::json latest;
  bool fresh = false;
  absl::Time last_line = absl::Now();
  auto report = [&](bool force) {
    for (nlohmann::json& line : progress_lines.ReadNew()) {
      latest = std::move(line);
      fresh = true;
    }
    if (!fresh || (!force && absl::Now() - last_line < absl::Seconds(10))) return;
    progress << WarmStartProgressLine(latest) << "\n" << std::flush;
    fresh = false;
    last_line = absl::Now();
  };
  while (!child->PollExit().has_value()) {
    if (stop.load()) {
      child->Terminate(absl::Seconds(10));
      return absl::CancelledError("stopped during the SFT warm start");
    }
    absl::SleepFor(absl::Milliseconds(200));
    report(false);
  }
  report(true);
  if (*child->PollExit() != 0) {
    return absl::InternalError(absl::StrCat("warm start: envtune sft exited with status ",
                                            *child->PollExit(), "; log tail:\n",
                                            child->LogTail()));
  }
  if (absl::Status s = WriteFileAtomic(key_path, options.warm_start_key); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("warm start: ", s.message()));
  }
  // The last line of `envtune sft` is its JSON summary.
  std::string tail = child->LogTail(4000);
  nlohmann::json j = nlohmann::json::parse(
      tail.substr(tail.rfind('{') == std::string::npos ? 0 : tail.rfind('{')), nullptr,
      /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("first_loss") && j.contains("last_loss")) {
    *summary = absl::StrFormat("warm start: %d steps, loss %.3f -> %.3f (%.0fs)",
                               j.value("steps", 0), j.value("first_loss", 0.0),
                               j.value("last_loss", 0.0),
                               absl::ToDoubleSeconds(absl::Now() - start));
    progress << *summary << "\n" << std::flush;
  }
  return out_dir;
}

}  // namespace

absl::Status RequestEnvServerScale(const std::string& run_dir, int env_servers) {
  if (env_servers < 1 || env_servers > kMaxLocalEnvServers) {
    return absl::InvalidArgumentError(absl::StrCat("scale: env-servers ", env_servers,
                                                   " outside 1..", kMaxLocalEnvServers));
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(run_dir + "/logs", ec)) {
    return absl::NotFoundError(
        absl::StrCat("scale: ", run_dir, " holds no run (no logs/; is `envtune train` running "
                     "with launch.run_dir=", run_dir, "?)"));
  }
  std::filesystem::create_directories(run_dir + "/control", ec);
  if (ec) return absl::UnavailableError(absl::StrCat("scale: cannot create ", run_dir, "/control"));
  return WriteFileAtomically(run_dir + kScaleRequest, absl::StrCat(env_servers, "\n"));
}

absl::Status WaitForEnvServerScale(const std::string& run_dir, int env_servers,
                                   absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<std::optional<int>> applied = ReadCount(run_dir + kScaleApplied);
    if (applied.ok() && applied->has_value() && **applied == env_servers) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "scale: the launcher of ", run_dir, " has not reached ", env_servers,
          " env servers after ", absl::FormatDuration(timeout), " (see its progress output)"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

absl::StatusOr<std::optional<CheckpointInfo>> LatestResumableCheckpoint(
    const std::string& checkpoint_dir, const std::string& state_dir) {
  std::optional<CheckpointInfo> best;
  std::error_code ec;
  if (checkpoint_dir.empty() || !std::filesystem::is_directory(checkpoint_dir, ec)) return best;
  for (const auto& entry : std::filesystem::directory_iterator(checkpoint_dir, ec)) {
    const std::string label = entry.path().filename().string();
    if (label != "final" && !absl::StartsWith(label, "step-")) continue;  // .tmp-*, .old-*
    absl::StatusOr<CheckpointInfo> info = ReadCheckpointInfo(entry.path().string());
    if (absl::IsNotFound(info.status())) continue;  // weights only (step-0) or incomplete
    if (!info.ok()) return info.status();
    if (!std::filesystem::exists(absl::StrCat(state_dir, "/step-", info->step, ".binpb"), ec)) {
      continue;  // the coordinator never recorded this step
    }
    if (!best.has_value() || info->step > best->step ||
        (info->step == best->step && label == "final")) {
      best = *std::move(info);
    }
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot list ", checkpoint_dir, ": ", ec.message()));
  }
  return best;
}

bool CanReuseWarmStart(const LaunchOptions& options) {
  if (options.warm_start_key.empty()) return false;
  std::error_code ec;
  if (!std::filesystem::exists(WarmStartDir(options) + "/config.json", ec)) return false;
  absl::StatusOr<std::string> key = ReadFileToString(WarmStartKeyPath(options));
  return key.ok() && *key == options.warm_start_key;
}

namespace {

// `envtune eval` of `model` on launch.held_out_eval's tasks into <run_dir>/eval-<tag>
// (stoppable, like the warm start).
absl::StatusOr<HeldOutEval> RunHeldOutEval(const LaunchOptions& options, const std::string& model,
                                           const std::string& tag, const std::string& when,
                                           const std::atomic<bool>& stop) {
  const std::string out_dir = absl::StrCat(options.run_dir, "/eval-", tag);
  std::vector<std::string> argv{options.envtune_binary,
                                "eval",
                                "--model=" + model,
                                "--subset=" + options.eval_subset,
                                "--format=" + options.eval_format,
                                absl::StrCat("--max_new_tokens=", options.eval_max_new_tokens),
                                "--data_dir=" + options.data_dir,
                                "--out=" + out_dir,
                                "--quiet"};
  if (!options.eval_categories.empty()) {
    argv.push_back("--split=" + absl::StrJoin(options.eval_categories, ","));
  }
  if (options.eval_limit > 0) argv.push_back(absl::StrCat("--limit=", options.eval_limit));
  if (!options.eval_tokenizer.empty()) argv.push_back("--tokenizer=" + options.eval_tokenizer);
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(
      "eval-" + tag, argv, absl::StrCat(options.run_dir, "/logs/eval-", tag, ".log"));
  if (!child.ok()) return child.status();
  while (!child->PollExit().has_value()) {
    if (stop.load()) {
      child->Terminate(absl::Seconds(10));
      return absl::CancelledError("stopped during the held-out evaluation");
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (*child->PollExit() != 0) {
    return absl::InternalError(absl::StrCat("held-out eval (", when, "): envtune eval exited with ",
                                            "status ", *child->PollExit(), "; log tail:\n",
                                            child->LogTail()));
  }
  return ReadHeldOutEval(out_dir, when);
}

}  // namespace

absl::Status RunLocalTraining(const LaunchOptions& launch_options, const std::atomic<bool>& stop,
                              std::ostream& progress) {
  LaunchOptions options = launch_options;
  std::error_code ec;
  std::string log_dir = options.run_dir + "/logs";
  std::filesystem::create_directories(log_dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", log_dir, ": ", ec.message()));
  if (!options.resume) {
    // What `envtune train --resume RUN_DIR` starts from (the config after overrides).
    if (absl::Status s =
            WriteFileAtomic(options.run_dir + "/config.yaml", options.effective_config);
        !s.ok()) {
      return s;
    }
  }
  // Resume: the learner's newest complete checkpoint, and the coordinator's state of its step.
  const std::string state_dir = options.run_dir + "/coordinator";
  std::vector<std::string> coordinator_flags{"--port=0", "coordinator.state_dir=" + state_dir};
  std::vector<std::string> learner_flags;
  if (options.default_checkpoint_dir) {
    learner_flags.push_back("learner.checkpoint_dir=" + options.checkpoint_dir);
  }
  if (options.resume) {
    absl::StatusOr<std::optional<CheckpointInfo>> latest =
        LatestResumableCheckpoint(options.checkpoint_dir, state_dir);
    if (!latest.ok()) return latest.status();
    if (!latest->has_value()) {
      progress << "resume: no complete checkpoint in " << options.checkpoint_dir
               << " yet; starting from step 0\n" << std::flush;
      options.resume = false;
    } else {
      const CheckpointInfo& info = **latest;
      progress << "resume: learner from " << info.dir << " (step " << info.step << ", policy v"
               << info.policy_version << "), coordinator from its state of step " << info.step
               << "\n" << std::flush;
      if (std::vector<std::string> gone =
              DiscardAfter(options.checkpoint_dir, state_dir, info.step);
          !gone.empty()) {
        progress << "resume: discarded what came after step " << info.step
                 << " (no state of the coordinator goes with it): " << absl::StrJoin(gone, ", ")
                 << "\n" << std::flush;
      }
      coordinator_flags.push_back(absl::StrCat("coordinator.resume_step=", info.step));
      learner_flags.push_back("learner.resume=" + info.dir);
    }
  }
  std::string warm_start_line;
  if (options.warm_start == "sft" && !options.model_path.empty()) {
    progress << "warm start skipped: model.path=" << options.model_path
             << " is given (launch.warm_start=none silences this note)\n" << std::flush;
  } else if (options.warm_start == "sft") {
    absl::StatusOr<std::string> checkpoint =
        RunWarmStart(options, log_dir, stop, progress, &warm_start_line);
    if (absl::IsCancelled(checkpoint.status())) return absl::OkStatus();
    if (!checkpoint.ok()) return checkpoint.status();
    options.overrides.push_back("model.path=" + *checkpoint);
    options.model_path = *checkpoint;
  }
  std::vector<HeldOutEval> evals;
  if (!options.eval_subset.empty() && !options.resume && !options.model_path.empty()) {
    absl::StatusOr<HeldOutEval> before =
        RunHeldOutEval(options, options.model_path, "before", "before RL", stop);
    if (absl::IsCancelled(before.status())) return absl::OkStatus();
    if (!before.ok()) return before.status();
    progress << HeldOutEvalLine(*before) << "\n" << std::flush;
    evals.push_back(*before);
  }
  absl::StatusOr<RunSecrets> secrets = SealRun(options);
  if (!secrets.ok()) return secrets.status();

  // Start order: coordinator, env servers, learner, actors; stop order: actors, learner, env
  // servers (each rank at once), coordinator.
  std::vector<Slot> slots;
  auto stop_all = [&slots]() {
    std::vector<Slot*> order;
    for (Slot& slot : slots) order.push_back(&slot);
    std::stable_sort(order.begin(), order.end(),
                     [](const Slot* a, const Slot* b) { return a->stop_rank < b->stop_rank; });
    // All of a rank at once (env servers drain in parallel), then wait for each.
    for (size_t i = 0; i < order.size();) {
      size_t end = i;
      while (end < order.size() && order[end]->stop_rank == order[i]->stop_rank) ++end;
      for (size_t k = i; k < end; ++k) {
        if (order[k]->process.has_value()) order[k]->process->RequestStop();
      }
      for (size_t k = i; k < end; ++k) {
        if (order[k]->process.has_value()) order[k]->process->Terminate(absl::Seconds(10));
      }
      i = end;
    }
  };
  auto fail = [&](absl::Status status) {
    stop_all();
    return status;
  };

  slots.push_back(Slot{"coordinator", RoleArgv(options, "coordinator", coordinator_flags,
                                               secrets->coordinator_overrides)});
  slots.back().role = Role::kCoordinator;
  slots.back().stop_rank = 3;
  if (absl::Status s = StartSlot(slots.back(), log_dir, true, options.startup_timeout); !s.ok()) {
    return fail(s);
  }
  PinPort(slots.back());
  const std::string coordinator = slots.back().address;
  progress << "coordinator " << coordinator << "\n";
  progress << "sealed: " << (options.security.tls.enabled() ? "TLS and " : "") << "tokens; "
           << "envtune status --config " << options.run_dir << "/secrets/security.yaml "
           << "--coordinator " << coordinator << "\n";

  // Env servers join the coordinator's fleet; actors follow it (the list below is their
  // fallback). More can be added or drained while the run goes on (`envtune scale`).
  int next_env_index = 0;
  auto add_env_server = [&]() -> absl::Status {
    const std::string name = absl::StrCat("env-server-", next_env_index++);
    Slot slot{name, RoleArgv(options, "env-server",
                             {"--port=0", "--coordinator=" + coordinator, "--name=" + name,
                              "--hmac_key_file=" + secrets->hmac_key_file})};
    slot.role = Role::kEnvServer;
    slot.env_server = true;
    slot.stop_rank = 2;
    slots.push_back(std::move(slot));
    absl::Status started = StartSlot(slots.back(), log_dir, true, options.startup_timeout);
    PinPort(slots.back());
    return started;
  };
  std::vector<std::string> env_addresses;
  for (int i = 0; i < options.env_servers; ++i) {
    if (absl::Status s = add_env_server(); !s.ok()) return fail(s);
    env_addresses.push_back(slots.back().address);
  }
  progress << "env servers " << absl::StrJoin(env_addresses, ",") << "\n";
  // A scale request left over from an earlier run in this run_dir is not this run's.
  std::filesystem::remove(options.run_dir + kScaleRequest, ec);
  std::filesystem::remove(options.run_dir + kScaleApplied, ec);
  int env_target = options.env_servers;
  bool scale_pending = false;

  learner_flags.insert(learner_flags.begin(), {"--port=0", "--coordinator=" + coordinator});
  slots.push_back(Slot{"learner", RoleArgv(options, "learner", learner_flags)});
  slots.back().role = Role::kLearner;
  slots.back().stop_rank = 1;
  if (absl::Status s = StartSlot(slots.back(), log_dir, true, options.startup_timeout); !s.ok()) {
    return fail(s);
  }
  PinPort(slots.back());
  const std::string learner = slots.back().address;
  progress << "learner " << learner << "\n";

  for (int i = 0; i < options.actors; ++i) {
    Slot slot{absl::StrCat("actor-", i),
              RoleArgv(options, "actor",
                       {"--coordinator=" + coordinator, "--learner=" + learner,
                        "--env=" + absl::StrJoin(env_addresses, ",")})};
    slot.role = Role::kActor;
    slots.push_back(std::move(slot));
    if (absl::Status s = StartSlot(slots.back(), log_dir, false, options.startup_timeout); !s.ok()) {
      return fail(s);
    }
  }
  progress << options.actors << " actors started; logs in " << log_dir << "\n";

  // This run only; a resumed run goes on with the lines of the run it continues.
  std::ofstream metrics(options.run_dir + "/metrics.jsonl",
                        options.resume ? std::ios::app : std::ios::trunc);
  Series accuracy_series;  // eval/accuracy (evaluation.every_steps) per learner step
  std::vector<std::pair<double, int>> stage_starts;
  int64_t last_step = -1;
  absl::Time last_line_time = absl::Now();
  uint64_t last_episodes = 0;
  uint32_t last_stage = 0;  // the stage of the previous progress line (0 = none yet)
  std::string last_stage_name;
  absl::Time start = absl::Now();
  int consecutive_status_failures = 0;
  double last_skipped_failed = 0;  // the learner's groups/skipped_failed
  absl::Status result = absl::OkStatus();

  // The coordinator or the learner exited (local_launcher.h, "Supervision"): every role stops
  // (actors and env servers killed; the learner with SIGTERM, so it writes its `final`
  // checkpoint), then all start again on their ports, the
  // coordinator and the learner from the newest checkpoint they agree on. Returns the learner
  // step the run continues from; Cancelled when a stop is requested meanwhile.
  auto restart_core = [&](Slot& failed, int exited) -> absl::StatusOr<int64_t> {
    const absl::Time begin = absl::Now();
    const std::string failed_name = failed.name;
    const absl::Duration delay = RestartDelay(options, failed.restarts);
    progress << failed_name << " exited with " << DescribeExit(exited)
             << "; restarting the coordinator and the learner from their newest common "
                "checkpoint, env servers and actors afresh, in "
             << absl::FormatDuration(delay) << " (" << failed_name << " restart "
             << failed.restarts << "/" << options.max_restarts << ")\n"
             << std::flush;
    // Actors and env servers hold nothing worth keeping (their leases are issued again): they
    // are killed at once, actors first, so no episode of the lost steps reaches the new
    // learner, and none waits out a retry deadline on its way down.
    for (Role role : {Role::kActor, Role::kEnvServer}) {
      for (Slot& slot : slots) {
        if (slot.role == role && slot.process.has_value()) slot.process->Kill();
      }
      for (Slot& slot : slots) {
        if (slot.role == role && slot.process.has_value()) {
          slot.process->Terminate(absl::Seconds(5));
        }
      }
    }
    stop_all();
    const absl::Duration stopping = absl::Now() - begin;
    std::erase_if(slots, [](const Slot& slot) { return slot.retiring_since.has_value(); });
    for (Slot& slot : slots) slot.restart_at.reset();
    while (absl::Now() < begin + delay) {
      if (stop.load()) return absl::CancelledError("stop requested during a restart");
      absl::SleepFor(std::min(absl::Milliseconds(100), begin + delay - absl::Now()));
    }
    absl::StatusOr<std::optional<CheckpointInfo>> latest =
        LatestResumableCheckpoint(options.checkpoint_dir, state_dir);
    if (!latest.ok()) return latest.status();
    int64_t step = latest->has_value() ? (*latest)->step : 0;
    if (std::vector<std::string> gone = DiscardAfter(options.checkpoint_dir, state_dir, step);
        !gone.empty()) {
      progress << "restart: discarded what came after step " << step << ": "
               << absl::StrJoin(gone, ", ") << "\n" << std::flush;
    }
    for (Slot& slot : slots) {
      if (slot.role == Role::kCoordinator) {
        SetOverride(slot.argv, "coordinator.resume_step",
                    latest->has_value() ? std::optional(absl::StrCat((*latest)->step))
                                        : std::nullopt);
      } else if (slot.role == Role::kLearner) {
        SetOverride(slot.argv, "learner.resume",
                    latest->has_value() ? std::optional((*latest)->dir) : std::nullopt);
      }
    }
    if (latest->has_value()) {
      progress << "restart: learner from " << (*latest)->dir << " (step " << step
               << ", policy v" << (*latest)->policy_version
               << "), coordinator from its state of step " << step << "\n" << std::flush;
    } else {
      progress << "restart: no checkpoint both can resume from"
               << (options.checkpoint_dir.empty() ? " (learner.checkpoint_dir is \"\")" : "")
               << "; starting over from step 0\n" << std::flush;
    }
    for (Role role : {Role::kCoordinator, Role::kEnvServer, Role::kLearner, Role::kActor}) {
      for (Slot& slot : slots) {
        if (slot.role != role) continue;
        const std::string before = slot.address;
        if (absl::Status s =
                StartSlot(slot, log_dir, role != Role::kActor, options.startup_timeout);
            !s.ok()) {
          return absl::Status(s.code(), absl::StrCat("restarting ", slot.name, " after ",
                                                     failed_name, " exited: ", s.message()));
        }
        if (slot.address != before) {
          return absl::UnavailableError(absl::StrCat("restarting ", slot.name, ": it listens on ",
                                                     slot.address, ", not ", before));
        }
      }
    }
    auto tenths = [](absl::Duration d) {
      return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(100)));
    };
    progress << "restarted every role in " << tenths(absl::Now() - begin) << " (stopping "
             << tenths(stopping) << "); the run goes on from learner step " << step << "\n"
             << std::flush;
    return step;
  };

  while (!stop.load()) {
    // Scaling: a new request in <run_dir>/control/env_servers.
    if (absl::StatusOr<std::optional<int>> request = ReadCount(options.run_dir + kScaleRequest);
        !request.ok() || (request->has_value() && (**request < 1 || **request > kMaxLocalEnvServers))) {
      progress << "scale request ignored: "
               << (request.ok() ? absl::StrCat(**request, " outside 1..", kMaxLocalEnvServers)
                                : std::string(request.status().message()))
               << "\n" << std::flush;
      std::filesystem::remove(options.run_dir + kScaleRequest, ec);
    } else if (request->has_value() && **request != env_target) {
      progress << "env servers: scaling " << env_target << " -> " << **request << "\n"
               << std::flush;
      env_target = **request;
      scale_pending = true;
    }
    if (scale_pending) {
      int active = 0;
      for (const Slot& slot : slots) active += slot.env_server && !slot.retiring_since.has_value();
      for (; active < env_target; ++active) {
        if (absl::Status s = add_env_server(); !s.ok()) return fail(s);
        progress << slots.back().name << " listening on " << slots.back().address << "\n"
                 << std::flush;
      }
      // Drain the newest first.
      for (auto it = slots.rbegin(); it != slots.rend() && active > env_target; ++it) {
        if (!it->env_server || it->retiring_since.has_value()) continue;
        it->retiring_since = absl::Now();
        it->process->RequestStop();
        --active;
        progress << it->name << " (" << it->address << ") draining\n" << std::flush;
      }
      const bool retiring = std::any_of(slots.begin(), slots.end(), [](const Slot& slot) {
        return slot.retiring_since.has_value();
      });
      if (!retiring) {
        scale_pending = false;
        if (absl::Status s = WriteFileAtomically(options.run_dir + kScaleApplied,
                                                 absl::StrCat(env_target, "\n"));
            !s.ok()) {
          progress << s.message() << "\n";
        }
        progress << "env servers: " << env_target << " serving\n" << std::flush;
      }
    }
    // Drained env servers leave; one that does not stop in time is killed.
    for (Slot& slot : slots) {
      if (!slot.retiring_since.has_value()) continue;
      std::optional<int> exited = slot.process->PollExit();
      if (!exited.has_value() && absl::Now() - *slot.retiring_since > absl::Seconds(90)) {
        exited = slot.process->Terminate(absl::Seconds(1));
      }
      if (!exited.has_value()) continue;
      progress << slot.name << " stopped after draining (exit status " << *exited << ")\n"
               << std::flush;
      slot.process.reset();
    }
    std::erase_if(slots, [](const Slot& slot) {
      return slot.retiring_since.has_value() && !slot.process.has_value();
    });

    // Supervision (local_launcher.h): restart what exited, within its budget.
    Slot* core_failed = nullptr;
    int core_status = 0;
    for (Slot& slot : slots) {
      if (slot.retiring_since.has_value()) continue;
      if (slot.restart_at.has_value()) {
        if (absl::Now() < *slot.restart_at) continue;
        slot.restart_at.reset();
        if (absl::Status s =
                StartSlot(slot, log_dir, slot.role == Role::kEnvServer, options.startup_timeout);
            !s.ok()) {
          return fail(absl::Status(s.code(), absl::StrCat("restarting ", slot.name, ": ",
                                                          s.message())));
        }
        progress << slot.name << " restarted"
                 << (slot.address.empty() ? std::string() : " on " + slot.address) << "\n"
                 << std::flush;
        continue;
      }
      std::optional<int> exited = slot.process->PollExit();
      if (!exited.has_value()) continue;
      if (*exited == 0) {
        // Actors stop by themselves once the curriculum finishes; the status poll below then
        // ends the run, so a clean exit at that point is not restarted.
        absl::StatusOr<v1::ClusterStatus> now = FetchStatus(coordinator, 5000);
        if (now.ok() && now->finished()) continue;
      }
      if (*exited == kConfigErrorStatus || slot.restarts >= options.max_restarts) {
        return fail(absl::UnavailableError(absl::StrCat(
            slot.name, " exited with ", DescribeExit(*exited),
            *exited == kConfigErrorStatus
                ? " (a usage or configuration error: not restarted)"
                : absl::StrCat(" and is not restarted (launch.max_restarts ",
                               options.max_restarts, " used up)"),
            "; log tail:\n", slot.process->LogTail())));
      }
      ++slot.restarts;
      if (IsCore(slot)) {
        core_failed = &slot;
        core_status = *exited;
        break;
      }
      const absl::Duration delay = RestartDelay(options, slot.restarts);
      slot.restart_at = absl::Now() + delay;
      progress << slot.name << " exited with " << DescribeExit(*exited) << "; restarting in "
               << absl::FormatDuration(delay) << " (restart " << slot.restarts << "/"
               << options.max_restarts << ")\n"
               << std::flush;
    }
    if (core_failed != nullptr) {
      absl::StatusOr<int64_t> resumed = restart_core(*core_failed, core_status);
      if (absl::IsCancelled(resumed.status())) break;
      if (!resumed.ok()) return fail(resumed.status());
      last_step = *resumed;
      last_skipped_failed = 0;  // a new learner counts from 0
      consecutive_status_failures = 0;
      continue;
    }

    absl::StatusOr<v1::ClusterStatus> status = FetchStatus(coordinator, 5000);
    if (!status.ok()) {
      if (++consecutive_status_failures >= 10) return fail(status.status());
    } else {
      consecutive_status_failures = 0;
      if (absl::Status s = WriteFileAtomically(options.run_dir + "/status.json",
                                               RenderStatusJson(*status));
          !s.ok()) {
        progress << s.message() << "\n" << std::flush;
      }
      // Failures are never silent: batches the learner skipped because every episode failed.
      double skipped_failed = 0;
      for (const v1::WorkerStatus& w : status->workers()) {
        if (w.role() != v1::ROLE_LEARNER) continue;
        for (const v1::Metric& m : w.metrics()) {
          if (m.name() == "groups/skipped_failed") {
            skipped_failed = std::max(skipped_failed, m.value());
          }
        }
      }
      if (skipped_failed > last_skipped_failed) {
        progress << "learner: skipped " << skipped_failed - last_skipped_failed
                 << " groups whose episodes all failed (no step taken; new groups are leased; "
                    "see " << log_dir << "/actor-*.log)\n" << std::flush;
      }
      last_skipped_failed = skipped_failed;
      if (static_cast<int64_t>(status->learner_step()) != last_step) {
        last_step = static_cast<int64_t>(status->learner_step());
        // The batch this step trained on was rolled out in the stage of the previous line (the
        // coordinator advances after the step), so the line carries that stage and the batch's
        // mean episode reward; a stage change gets its own line below.
        double reward = MetricValue(*status, "reward/mean", NAN);
        double accuracy = MetricValue(*status, "eval/accuracy", NAN);
        double failed_episodes = MetricValue(*status, "episodes/failed", 0);
        // Completed episodes since the previous progress line (actors finish them in bursts, so
        // their instantaneous heartbeat rates are mostly 0 between bursts).
        const absl::Time now = absl::Now();
        const double since = absl::ToDoubleSeconds(now - last_line_time);
        const double episodes_per_s =
            since > 0 ? static_cast<double>(status->episodes_completed() - last_episodes) / since
                      : 0.0;
        last_line_time = now;
        last_episodes = status->episodes_completed();
        // The stage the next progress lines carry, from this status on.
        auto enter_stage = [&] {
          last_stage = status->stage();
          last_stage_name = status->stage_name();
          stage_starts.emplace_back(static_cast<double>(status->learner_step()), last_stage);
        };
        if (last_stage == 0) enter_stage();
        const uint32_t batch_stage = last_stage;
        const std::string batch_stage_name = last_stage_name;
        if (status->learner_step() > 0) {
          progress << absl::StrFormat(
                          "[stage %d %s] step %d | reward %s | accuracy %s | %.2f episodes/s | "
                          "policy v%d | %.0fs%s\n",
                          last_stage, last_stage_name, status->learner_step(), Figure(reward),
                          Figure(accuracy), episodes_per_s, status->policy_version(),
                          absl::ToDoubleSeconds(absl::Now() - start),
                          failed_episodes > 0
                              ? absl::StrFormat(" | %.0f failed episodes (see logs/actor-*.log)",
                                                failed_episodes)
                              : std::string())
                   << std::flush;
        }
        if (status->stage() != last_stage) {
          enter_stage();
          progress << absl::StrFormat("stage %d %s from learner step %d\n", last_stage,
                                      last_stage_name, status->learner_step())
                   << std::flush;
        }
        nlohmann::json line;
        line["step"] = status->learner_step();
        line["stage"] = status->stage();
        if (status->learner_step() > 0) {
          line["batch_stage"] = batch_stage;
          line["batch_stage_name"] = batch_stage_name;
        }
        line["policy_version"] = status->policy_version();
        line["elapsed_s"] = absl::ToDoubleSeconds(absl::Now() - start);
        line["episodes_completed"] = status->episodes_completed();
        {
          int env_servers = 0;
          uint64_t env_steps = 0;
          for (const v1::WorkerStatus& w : status->workers()) {
            if (w.role() != v1::ROLE_ENV_SERVER) continue;
            ++env_servers;
            env_steps += w.env_load().steps_total();
          }
          line["env_servers"] = env_servers;
          line["env_steps_total"] = env_steps;  // steps served by the replicas alive now
        }
        for (const v1::Metric& m : status->metrics()) line["metrics"][m.name()] = m.value();
        metrics << line.dump() << "\n" << std::flush;
        if (const double accuracy_now = MetricValue(*status, "eval/accuracy", NAN);
            !std::isnan(accuracy_now)) {
          accuracy_series.emplace_back(static_cast<double>(status->learner_step()), accuracy_now);
        }
      }
      if (status->finished()) {
        progress << "curriculum finished at learner step " << status->learner_step() << "\n"
                 << std::flush;
        break;
      }
    }
    if (options.max_wall > absl::ZeroDuration() && absl::Now() - start > options.max_wall) {
      progress << "wall-clock limit reached; stopping\n";
      break;
    }
    absl::SleepFor(options.poll_interval);
  }
  if (stop.load()) progress << "stop requested; shutting down\n" << std::flush;
  stop_all();
  metrics.close();
  // The held-out evaluation of the final policy (not after a stop: the run is to be resumed).
  if (!options.eval_subset.empty() && !stop.load() && result.ok()) {
    const std::string final_dir = options.checkpoint_dir + "/final";
    if (options.checkpoint_dir.empty() || !std::filesystem::exists(final_dir + "/config.json", ec)) {
      progress << "held-out eval after RL skipped: no final checkpoint (learner.checkpoint_dir)\n"
               << std::flush;
    } else {
      absl::StatusOr<HeldOutEval> after =
          RunHeldOutEval(options, final_dir, "after", "after RL", stop);
      if (after.ok()) {
        progress << HeldOutEvalLine(*after) << "\n" << std::flush;
        evals.push_back(*after);
      } else if (!absl::IsCancelled(after.status())) {
        result = after.status();
      }
    }
  }
  // The plot and the page, from everything in metrics.jsonl (a resumed run included).
  RunReport report;
  report.title = absl::StrCat("envtune train: ", options.run_dir);
  report.run_dir = options.run_dir;
  report.warm_start = warm_start_line;
  report.stages = SummarizeStages(JsonLinesTail(options.run_dir + "/metrics.jsonl").ReadNew());
  report.evals = evals;
  std::map<std::string, Series> series = StageRewardSeries(report.stages);
  if (!accuracy_series.empty()) series["held-out accuracy"] = accuracy_series;
  report.svg = RenderLineChartSvg("envtune: batch reward per learner step, by stage", series,
                                  stage_starts);
  for (const auto& [file, text] : {std::pair<std::string, std::string>{"metrics.svg", report.svg},
                                   {"report.html", RenderRunReportHtml(report)}}) {
    if (absl::Status s = WriteFileAtomically(options.run_dir + "/" + file, text); !s.ok()) {
      progress << s.message() << "\n" << std::flush;
    }
  }
  for (const StageSummary& stage : report.stages) {
    progress << absl::StrFormat(
                    "stage %d %s: reward %.3f -> %.3f (first/last 3 steps of %d), slope %+.4f/step, "
                    "t = %.1f\n",
                    stage.stage, stage.name, stage.first_mean, stage.last_mean,
                    static_cast<int>(stage.rewards.size()), stage.trend.slope, stage.trend.t)
             << std::flush;
  }
  progress << "metrics: " << options.run_dir << "/metrics.jsonl, plot: " << options.run_dir
           << "/metrics.svg, report: " << options.run_dir << "/report.html\n"
           << std::flush;
  return result;
}

}  // namespace envtune
