// env-server and `env` subcommands (see env_commands.h).
#include "deploy/env_commands.h"

#include <unistd.h>

#include <csignal>
#include <functional>
#include <iostream>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/enum_label.h"
#include "common/metrics.h"
#include "deploy/env_cli.h"
#include "deploy/role_metrics.h"
#include "envserver/env_service.h"
#include "envserver/episode.h"
#include "envserver/fleet_member.h"
#include "envserver/reply_format.h"

ABSL_FLAG(std::string, format, "envtuning",
          "env play: reply format (envtuning, bfcl_prompting, hermes)");
ABSL_FLAG(double, augment_probability, 1.0, "env play: probability of the augmented environment");
ABSL_FLAG(uint64_t, seed, 0, "env play: seed of the augmentation decision");
ABSL_FLAG(bool, bfcl_eval, false, "env play: BFCL evaluation semantics (20 steps, no hints)");
ABSL_FLAG(std::string, mode, "bfcl_prompting",
          "env check/decode: decoding of raw replies (bfcl_prompting, bfcl_fc, envtuning)");
ABSL_FLAG(std::string, model_name, "envtune",
          "env check/replay: BFCL model-name argument (sandbox instance-name prefix)");

namespace envtune {
namespace {

absl::Notification* g_env_stop = nullptr;
void OnEnvSignal(int) {
  if (g_env_stop != nullptr && !g_env_stop->HasBeenNotified()) g_env_stop->Notify();
}

int PrintError(std::ostream& out, const absl::Status& status, int code) {
  out << "envtune: " << status.message() << "\n";
  return code;
}

void PrintMessages(std::ostream& out, const google::protobuf::RepeatedPtrField<v1::ChatMessage>& msgs) {
  for (const v1::ChatMessage& m : msgs) {
    out << "--- " << m.role() << (m.name().empty() ? "" : " (" + m.name() + ")") << " ---\n";
    if (m.role() == "system" && m.content().size() > 600) {
      out << m.content().substr(0, 600) << "\n... [" << m.content().size() << " characters in all]\n";
    } else {
      out << m.content() << "\n";
    }
  }
}

// Reads one reply: lines up to a line holding only "."; shortcuts on the first line.
bool ReadReply(std::istream& in, std::ostream& out, std::string* reply) {
  out << "reply> " << std::flush;
  std::string line, text;
  bool first = true;
  while (std::getline(in, line)) {
    if (first) {
      if (line == ":quit") return false;
      if (absl::StartsWith(line, ":call ")) {
        *reply = absl::StrCat("<think>manual</think>\n<tool_call>", line.substr(6), "</tool_call>");
        return true;
      }
      if (absl::StartsWith(line, ":answer ")) {
        *reply = absl::StrCat("<think>manual</think>\n<answer>", line.substr(8), "</answer>");
        return true;
      }
    }
    if (line == ".") {
      *reply = text;
      return true;
    }
    absl::StrAppend(&text, first ? "" : "\n", line);
    first = false;
  }
  if (text.empty()) return false;
  *reply = text;
  return true;
}

int RunPlay(const std::vector<std::string>& args, const std::string& data_dir, std::istream& in, std::ostream& out) {
  if (args.size() != 2) {
    out << "usage: envtune env play TASK_ID [--format envtuning|bfcl_prompting|hermes] "
           "[--augment_probability P] "
           "[--seed N] [--bfcl_eval]\n";
    return 2;
  }
  v1::EpisodeOptions options;
  absl::StatusOr<v1::OutputFormat> format = ParseOutputFormat(absl::GetFlag(FLAGS_format));
  if (format.ok()) {
    options.set_output_format(*format);
  } else {
    out << "envtune: --format: " << format.status().message() << "\n";
    return 2;
  }
  options.set_augment_probability(absl::GetFlag(FLAGS_augment_probability));
  options.set_seed(absl::GetFlag(FLAGS_seed));
  options.set_bfcl_eval_semantics(absl::GetFlag(FLAGS_bfcl_eval));
  EnvServiceOptions so;
  so.data_dir = data_dir;
  absl::StatusOr<std::unique_ptr<EnvCore>> core = EnvCore::Create(so);
  if (!core.ok()) return PrintError(out, core.status(), 1);
  v1::StartEpisodeRequest start_req;
  start_req.set_task_id(args[1]);
  *start_req.mutable_options() = options;
  absl::StatusOr<v1::StartEpisodeResponse> start = (*core)->StartEpisode(start_req);
  if (!start.ok()) return PrintError(out, start.status(), start.status().code() == absl::StatusCode::kNotFound ? 2 : 1);
  out << "task " << args[1] << ": " << start->num_turns() << " turns, "
      << (start->augmented() ? "augmented" : "standard") << " environment, " << start->tools_json_size()
      << " tools\n";
  PrintMessages(out, start->messages());
  std::string blob = start->episode_state();
  std::string reply;
  while (ReadReply(in, out, &reply)) {
    v1::StepRequest req;
    req.set_episode_state(blob);
    req.set_model_output(reply);
    absl::StatusOr<v1::StepResponse> step = (*core)->Step(req);
    if (!step.ok()) {
      out << "rejected: " << step.status().message() << "\n";
      continue;
    }
    blob = step->episode_state();
    for (const v1::CallResult& c : step->calls()) {
      out << "call " << c.call() << (c.raised() ? "  [raised]" : "") << "\n  -> " << c.result() << "\n";
    }
    if (!step->format_error().empty()) out << "format error: " << step->format_error() << "\n";
    out << "(turn " << step->turn_index() << ", step " << step->step_index() << ", signal " << step->step_signal()
        << ")\n";
    if (step->turn_ended()) {
      const v1::TurnScore& ts = step->turn_score();
      out << "== turn " << ts.turn_index() << " ended ("
          << EnumLabel(v1::TurnEndReason_Name(ts.end_reason()), "TURN_END_REASON_") << "): score "
          << ts.score() << (ts.cannot_serve() ? " [cannot-serve turn]" : "")
          << "  state_ok=" << ts.state_ok() << " response_ok=" << ts.response_ok() << "\n";
    }
    PrintMessages(out, step->observation());
    const v1::RewardComponents& c = step->components();
    out << "progress " << c.progress() << "  format " << c.format_score() << "  tool-call " << c.tool_call_score()
        << "  stage1 " << c.stage1_reward() << "  reward " << step->episode_reward() << "\n";
    if (step->episode_ended()) {
      out << "episode ended: reward " << step->episode_reward() << "\n";
      return 0;
    }
  }
  out << "\nstopped before the episode ended\n";
  return 0;
}

// The JSON-lines commands of deploy/env_cli.h (results on `out`, diagnostics on stderr).
using JsonLinesFn = int (*)(const std::vector<std::string>&, const EnvCliOptions&, std::istream&, std::ostream&,
                            std::ostream&);
std::function<int(const std::vector<std::string>&, const std::string&, std::istream&, std::ostream&)> JsonLinesCommand(
    JsonLinesFn fn) {
  return [fn](const std::vector<std::string>& args, const std::string& data_dir, std::istream& in, std::ostream& out) {
    EnvCliOptions options;
    options.data_dir = data_dir;
    options.mode = absl::GetFlag(FLAGS_mode);
    options.model_name = absl::GetFlag(FLAGS_model_name);
    return fn(args, options, in, out, std::cerr);
  };
}

struct EnvSubcommand {
  const char* name;
  std::function<int(const std::vector<std::string>&, const std::string&, std::istream&, std::ostream&)> run;
};

const std::vector<EnvSubcommand>& Subcommands() {
  static const auto* table = new std::vector<EnvSubcommand>{
      {"play", RunPlay},
      {"replay", JsonLinesCommand(RunEnvReplay)},
      {"check", JsonLinesCommand(RunEnvCheck)},
      {"decode", JsonLinesCommand(RunEnvDecode)},
  };
  return *table;
}

}  // namespace

const char* EnvCommandsUsage() {
  return "  env-server    serve EnvService (BFCL sandboxes, rewards; stateless)\n"
         "                  --host ADDR --port N --data_dir DIR [--hmac_key_file FILE]\n"
         "                  [--coordinator HOST:PORT --advertise_address HOST:PORT --name NAME]\n"
         "                  [--drain_grace_ms N]\n"
         "  env play      play an episode by hand: envtune env play TASK_ID\n"
         "                  [--format envtuning|bfcl|hermes] [--augment_probability P] [--seed N] "
         "[--bfcl_eval]\n"
         "  env replay    execute call strings per turn, golden-format lines: env replay FILE|-\n"
         "  env check     BFCL multi-turn checker verdicts + rewards: env check FILE|- [--mode "
         "bfcl_prompting|bfcl_fc|envtuning]\n"
         "  env decode    decode model replies to BFCL call strings: env decode FILE|- [--mode "
         "bfcl_prompting|bfcl_fc|envtuning]";
}

namespace {

// The address clients dial: --advertise_address, else host:port (the machine's host name for a
// wildcard host).
std::string AdvertisedAddress(const EnvServerCommandArgs& args, int port) {
  if (!args.advertise_address.empty()) return args.advertise_address;
  std::string host = args.host;
  if (host == "0.0.0.0" || host == "::" || host == "[::]") {
    char name[256] = {0};
    host = gethostname(name, sizeof(name) - 1) == 0 && name[0] != 0 ? name : "127.0.0.1";
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

int RunEnvServerCommand(const EnvServerCommandArgs& args) {
  if (args.port < 0 || args.port > 65535) {
    return PrintError(std::cerr, absl::InvalidArgumentError(absl::StrCat(
                                     "env-server: --port ", args.port, " outside 0..65535")),
                      2);
  }
  if (args.drain_grace_ms < 0) {
    return PrintError(std::cerr, absl::InvalidArgumentError("env-server: --drain_grace_ms < 0"), 2);
  }
  ConfigureEnvServerProcess();  // heap and lock-checking settings (env_service.h)
  EnvServiceOptions options;
  options.data_dir = args.data_dir;
  if (!args.hmac_key_file.empty()) {
    absl::StatusOr<std::string> key = ReadHmacKeyFile(args.hmac_key_file);
    if (!key.ok()) return PrintError(std::cerr, key.status(), 2);
    options.engine.hmac_key = *std::move(key);
  }
  std::string address = absl::StrCat(args.host, ":", args.port);
  absl::StatusOr<std::unique_ptr<EnvServer>> server = EnvServer::Start(options, address);
  if (!server.ok()) {
    return PrintError(std::cerr, server.status(), server.status().code() == absl::StatusCode::kUnavailable ? 1 : 2);
  }
  std::cout << "env server listening on " << args.host << ":" << (*server)->port() << std::endl;
  std::cout << "env server episode blobs: "
            << (options.engine.hmac_key.empty()
                    ? "SHA-256 checksum only (no --hmac_key_file: anyone can forge them)"
                    : "HMAC-SHA256 with --hmac_key_file")
            << std::endl;
  absl::Notification stop;
  g_env_stop = &stop;
  std::signal(SIGINT, OnEnvSignal);
  std::signal(SIGTERM, OnEnvSignal);
  std::unique_ptr<EnvFleetMember> member;
  if (!args.coordinator.empty()) {
    EnvFleetMemberOptions fleet;
    fleet.coordinator = args.coordinator;
    fleet.address = AdvertisedAddress(args, (*server)->port());
    fleet.name = args.name;
    absl::StatusOr<std::unique_ptr<EnvFleetMember>> joined =
        EnvFleetMember::Start(server->get(), std::move(fleet));
    if (!joined.ok()) return PrintError(std::cerr, joined.status(), 2);
    member = *std::move(joined);
  }
  // Until SIGINT/SIGTERM, or the coordinator asks this server to drain; the load goes to
  // /metrics every second (when served).
  absl::Time metrics_at = absl::InfinitePast();
  while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
    if (member != nullptr && member->drain_requested().HasBeenNotified()) break;
    if (Metrics::Global().enabled() && absl::Now() - metrics_at >= absl::Seconds(1)) {
      metrics_at = absl::Now();
      UpdateEnvServerMetrics(Metrics::Global(), (*server)->Load(), (*server)->draining());
    }
  }
  std::cout << "env server draining (" << (*server)->inflight() << " calls in flight)"
            << std::endl;
  (*server)->BeginDrain();
  if (member != nullptr) member->ReportDraining();
  UpdateEnvServerMetrics(Metrics::Global(), (*server)->Load(), /*draining=*/true);
  (*server)->DrainAndShutdown(absl::Milliseconds(args.drain_grace_ms), absl::Seconds(60));
  if (member != nullptr) member->Leave();
  g_env_stop = nullptr;
  std::cout << "env server stopped" << std::endl;
  return 0;
}

int RunEnvCommand(const std::vector<std::string>& args, const std::string& data_dir, std::istream& in,
                  std::ostream& out) {
  if (!args.empty()) {
    for (const EnvSubcommand& sub : Subcommands()) {
      if (args[0] == sub.name) return sub.run(args, data_dir, in, out);
    }
  }
  out << "usage: envtune env <subcommand> ...\n" << EnvCommandsUsage() << "\n";
  return 2;
}

}  // namespace envtune
