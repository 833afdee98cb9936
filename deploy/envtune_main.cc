// envtune: one binary for every role of the cluster and the user's tools.
//
//   envtune coordinator --config FILE [--port N] [--data_dir DIR] [key.sub=value ...]
//   envtune status --coordinator HOST:PORT [--json]
//   envtune scale --run_dir DIR env-servers N [--wait_s S]   (a running `envtune train`)
//   envtune env-server [--host ADDR] [--port N] [--data_dir DIR] [--hmac_key_file FILE]
//                      [--coordinator HOST:PORT] [--advertise_address A] [--drain_grace_ms N]
//   envtune env play TASK_ID [--format envtuning|bfcl_prompting|hermes] [...]
//   (deploy/env_commands.h) envtune actor --coordinator HOST:PORT --learner HOST:PORT --env
//   LIST|dns:///NAME:PORT
//                 [--config FILE] [actor.key=value ...]   (builds with ENVTUNE_WITH_TORCH only)
//   envtune plan --config FILE [--gpus N] [--gpu_memory GIB] [--json]   (deploy/commands/plan_command.h)
//   envtune learner [--config FILE] [--port N] [--host ADDR] [--coordinator HOST:PORT]
//                   [learner.key=value ...]   (builds with ENVTUNE_WITH_TORCH only)
//
// Each command parses its own flags (`envtune <command> --help`). Exit codes: 0 success,
// 1 runtime failure, 2 usage or configuration error.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <functional>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/channels.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "common/security.h"
#include "coordinator/curriculum_config.h"
#include "coordinator/service.h"
#include "deploy/ablate.h"
#include "deploy/config_command.h"
#include "deploy/env_commands.h"
#include "deploy/local_launcher.h"
#include "deploy/role_metrics.h"
#include "deploy/status_command.h"
#include "grpcpp/grpcpp.h"
#ifdef ENVTUNE_HAS_TORCH
#include "actor/actor.h"
#endif
#ifdef ENVTUNE_HAS_LEARNER
#include "learner/learner_role.h"
#endif

ABSL_FLAG(std::string, config, "", "YAML config file (see configs/)");
ABSL_FLAG(int, port, 0, "port to serve on (0 = pick a free one and print it)");
ABSL_FLAG(std::string, host, "127.0.0.1", "address to bind");
ABSL_FLAG(std::string, data_dir, ENVTUNE_DEFAULT_DATA_DIR,
          "envtune's data directory (BFCL tasks, splits)");
ABSL_FLAG(std::string, coordinator, "", "coordinator address host:port");
ABSL_FLAG(bool, json, false, "print JSON instead of a table");
ABSL_FLAG(int, timeout_ms, 5000, "deadline of each RPC this command makes");
ABSL_FLAG(std::string, hmac_key_file, "",
          "env-server: file holding the cluster key that authenticates episode-state blobs");
ABSL_FLAG(int, metrics_port, -1,
          "coordinator/env-server/learner/actor: serve Prometheus metrics at "
          "http://HOST:PORT/metrics on --host (-1 = off, 0 = pick a free port)");
ABSL_FLAG(std::string, advertise_address, "",
          "env-server: host:port clients dial, registered with --coordinator (default: "
          "--host:port, the host name for a wildcard --host)");
ABSL_FLAG(std::string, name, "", "env-server: name shown in `envtune status` (default: address)");
ABSL_FLAG(int, drain_grace_ms, 3000,
          "env-server: on SIGTERM or DrainEnvServer, keep serving this long while clients move "
          "to other replicas, then refuse new calls and exit once in-flight calls finish");
ABSL_FLAG(std::string, run_dir, "", "scale: the run directory of a running `envtune train`");
ABSL_FLAG(std::string, resume, "",
          "train: continue the run in this run directory (its saved config.yaml, the newest "
          "learner checkpoint and the coordinator's state of that step)");
ABSL_FLAG(int, wait_s, 120,
          "scale: wait this long for the launcher to reach the new size (0 = do not wait)");
ABSL_FLAG(std::string, learner, "", "learner address host:port (actor)");
ABSL_FLAG(std::string, env, "",
          "env servers (actor): host:port[,host:port...] or a gRPC target such as "
          "dns:///envserver:5001");

namespace envtune {
namespace {

constexpr char kUsage[] = R"(envtune: distributed Environment Tuning for multi-turn tool use.

usage: envtune <command> [flags] [key.sub=value ...]

commands:
  train         run the whole system on this machine (coordinator, env servers, learner,
                actors as processes) until the curriculum ends; Ctrl-C stops it cleanly
                  --config FILE (default configs/tiny-cpu.yaml) [key.sub=value ...]
                  --resume RUN_DIR [key.sub=value ...]: continue a stopped or killed run
                  (launcher options: the config's `launch:` section, deploy/local_launcher.h)
  ablate        the same seeds with one switch flipped, both arms trained and compared
                  --config FILE --switch augment|reward|curriculum [--run_dir DIR]
                  [key.sub=value ...]   (deploy/ablate.h; comparison.md, comparison.svg)
  coordinator   serve CoordinatorService (membership, leases, curriculum, status)
                  --config FILE --port N --host ADDR --data_dir DIR
  config        check a config file against every program's keys, or list the keys
                  check --config FILE [key.sub=value ...]   keys [--config FILE] [--markdown]
                  (deploy/config_command.h; the reference: docs/config-reference.md)
  status        show a running cluster's status (workers, env-server fleet with load, metrics)
                  --coordinator HOST:PORT [--json] [--timeout_ms N]
  plan          the memory each role needs per device (parameters, gradients, optimizer,
                reference, activations, KV cache) and whether it fits, before renting GPUs
                  --config FILE [--gpus N] [--gpu_memory GIB] [--model_config FILE] [--json]
  scale         change the number of env servers of a running `envtune train`
                  --run_dir DIR env-servers N [--wait_s S]   (deploy/local_launcher.h)
  env-server    serve EnvService (BFCL sandboxes, augmentation, rewards; stateless)
                  --host ADDR --port N --data_dir DIR [--hmac_key_file FILE]
  env play      play an episode by hand: env play TASK_ID [--format envtuning|bfcl_prompting|hermes]
                  [--augment_probability P] [--seed N] [--bfcl_eval]
  env replay    execute call strings per turn, print golden-format lines: env replay FILE|-
  env check     BFCL multi-turn checker verdicts + rewards: env check FILE|-
                  [--mode bfcl_prompting|bfcl_fc|envtuning] [--model_name M]
  env decode    decode model replies to BFCL call strings: env decode FILE|-
  actor         roll out leased episodes and stream trajectories to the learner
                  --coordinator HOST:PORT --learner HOST:PORT --env LIST [--config FILE]
                  (options: the config's `actor:` section, documented in actor/actor.h)
  learner       train the policy with GRPO on pushed trajectories, serve LearnerService
                  --config FILE --port N --host ADDR [--coordinator HOST:PORT]
                  (options: the config's `learner:` and `model:` sections, documented in
                  learner/learner_role.h)
  eval          BFCL V3 multi-turn evaluation of a checkpoint (or --policy ground_truth|no_calls)
                  --model DIR [--split base,miss_func,...] [--subset val,test] [--tasks FILE]
                  [--limit N] [--format bfcl_prompting|envtuning|hermes] [--env LIST] [--out DIR]
  sft           supervised fine-tuning on ground-truth trajectories (the SFT baseline)
                  --config FILE [sft.key=value ...]   (keys documented in learner/sft.h)
  model         tokenize | generate | convert | init   (deploy/commands/model_command.h)

coordinator, env-server, learner and actor take --metrics_port N: Prometheus metrics at
http://HOST:N/metrics (docs/operations.md, "Metrics").

TLS and authentication (coordinator, env-server, learner, actor, status): the `security:`
section of --config or overrides, e.g. security.tls.cert=FILE security.tls.key=FILE
security.tls.ca=FILE security.tls.require_client_cert=true security.token_file=FILE
security.admin_token_file=FILE (common/security.h; docs/operations.md, "Security").

Run `envtune <command> --help` for every flag.)";

absl::Notification* g_stop = nullptr;
void OnSignal(int) {
  if (g_stop != nullptr && !g_stop->HasBeenNotified()) g_stop->Notify();
}

int Fail(const absl::Status& status, int code) {
  std::cerr << "envtune: " << status.message() << "\n";
  return code;
}

// Reads the `security:` section of --config and the overrides, loads its files and makes it the
// process's security (common/security.h), before any server or channel exists.
absl::Status SetUpSecurity(const std::vector<std::string>& overrides) {
  absl::StatusOr<SecurityOptions> options =
      LoadSecurityOptions(absl::GetFlag(FLAGS_config), overrides);
  if (!options.ok()) return options.status();
  absl::StatusOr<std::shared_ptr<const Security>> security = Security::Load(*options);
  if (!security.ok()) return security.status();
  SetProcessSecurity(*std::move(security));
  return absl::OkStatus();
}

int RunCoordinator(const std::vector<std::string>& overrides) {
  absl::StatusOr<Config> config = Config::Load(absl::GetFlag(FLAGS_config), overrides);
  if (!config.ok()) return Fail(config.status(), 2);
  ConfigReader reader(*config);
  absl::StatusOr<CoordinatorOptions> options =
      ReadCoordinatorOptions(reader, absl::GetFlag(FLAGS_data_dir));
  if (!options.ok()) return Fail(options.status(), 2);
  // Other sections are other programs' (security: main, SetUpSecurity).
  DeclareOtherSections(reader, *config, {"coordinator", "curriculum", "evaluation"});
  if (absl::Status s = reader.Finish(); !s.ok()) return Fail(s, 2);
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator = Coordinator::Create(*options);
  if (!coordinator.ok()) return Fail(coordinator.status(), 2);
  CoordinatorServiceImpl service(coordinator->get());
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  int port = 0;
  builder.AddListeningPort(absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port)),
                           ListeningCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError(absl::StrCat("cannot listen on ", absl::GetFlag(FLAGS_host),
                                                    ":", absl::GetFlag(FLAGS_port))),
                1);
  }
  std::cout << "coordinator listening on " << absl::GetFlag(FLAGS_host) << ":" << port << std::endl;
  absl::Notification stop;
  g_stop = &stop;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  // Sweep expired workers and leases even when nobody calls; mirror the status into metrics.
  CoordinatorMetrics metrics(Metrics::Global());
  while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(500))) {
    (*coordinator)->Sweep();
    if (Metrics::Global().enabled()) metrics.Update((*coordinator)->Status());
  }
  service.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::cout << "coordinator stopped" << std::endl;
  return 0;
}

// Runs `run` on this thread; SIGINT/SIGTERM call `stop`, which must make `run` return.
absl::Status RunUntilSignal(const std::function<absl::Status()>& run,
                            const std::function<void()>& stop_fn) {
  absl::Notification stop;
  g_stop = &stop;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  absl::Notification done;
  std::thread stopper([&] {
    while (!done.HasBeenNotified()) {
      if (stop.WaitForNotificationWithTimeout(absl::Milliseconds(200))) {
        stop_fn();
        return;
      }
    }
  });
  absl::Status status = run();
  done.Notify();
  stopper.join();
  return status;
}

std::atomic<bool> g_train_stop{false};
void OnTrainSignal(int) { g_train_stop.store(true); }

int RunTrain(const std::vector<std::string>& overrides) {
  LaunchOptions options;
  std::error_code ec;
  options.envtune_binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Fail(absl::InternalError("cannot locate the envtune executable"), 1);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  if (const std::string run_dir = absl::GetFlag(FLAGS_resume); !run_dir.empty()) {
    if (!absl::GetFlag(FLAGS_config).empty()) {
      return Fail(absl::InvalidArgumentError(
                      "train: --resume uses the run's saved config; drop --config (give "
                      "key.sub=value overrides to change it)"),
                  2);
    }
    if (absl::Status s = ReadResumeOptions(run_dir, overrides, options); !s.ok()) {
      return Fail(s, 2);
    }
  } else {
    options.config_path = absl::GetFlag(FLAGS_config);
    if (options.config_path.empty()) options.config_path = ENVTUNE_DEFAULT_CONFIG;
    options.overrides = overrides;
    if (absl::Status s = ReadLaunchOptions(options); !s.ok()) return Fail(s, 2);
  }
  // Every section, before any process starts: a typo in `actor:` fails here, not in a role's log.
  {
    absl::StatusOr<Config> config = Config::Load(options.config_path, options.overrides);
    if (!config.ok()) return Fail(config.status(), 2);
    if (absl::Status s = CheckConfig(*config, options.data_dir); !s.ok()) return Fail(s, 2);
  }
  std::signal(SIGINT, OnTrainSignal);
  std::signal(SIGTERM, OnTrainSignal);
  absl::Status status = RunLocalTraining(options, g_train_stop, std::cout);
  if (!status.ok()) return Fail(status, 1);
  return 0;
}

// `envtune ablate` (deploy/ablate.h): parses its own flags; Ctrl-C stops the arm in progress.
int RunAblate(const std::vector<std::string>& args) {
  std::error_code ec;
  const std::string binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Fail(absl::InternalError("cannot locate the envtune executable"), 1);
  std::signal(SIGINT, OnTrainSignal);
  std::signal(SIGTERM, OnTrainSignal);
  return RunAblateCommand(args, binary, ENVTUNE_DEFAULT_DATA_DIR, g_train_stop, std::cout,
                          std::cerr);
}

int RunStatus() {
  std::string address = absl::GetFlag(FLAGS_coordinator);
  if (address.empty()) {
    return Fail(absl::InvalidArgumentError("status: --coordinator HOST:PORT is required"), 2);
  }
  absl::StatusOr<v1::ClusterStatus> status = FetchStatus(address, absl::GetFlag(FLAGS_timeout_ms));
  if (!status.ok()) return Fail(status.status(), 1);
  std::cout << (absl::GetFlag(FLAGS_json) ? RenderStatusJson(*status) : RenderStatusTable(*status));
  return 0;
}

// `envtune scale --run_dir DIR env-servers N`.
int RunScale(const std::vector<std::string>& args) {
  const std::string run_dir = absl::GetFlag(FLAGS_run_dir);
  int count = 0;
  if (run_dir.empty() || args.size() != 2 || args[0] != "env-servers" ||
      !absl::SimpleAtoi(args[1], &count)) {
    return Fail(absl::InvalidArgumentError(
                    "usage: envtune scale --run_dir DIR env-servers N [--wait_s S]"),
                2);
  }
  if (absl::Status s = RequestEnvServerScale(run_dir, count); !s.ok()) {
    return Fail(s, absl::IsInvalidArgument(s) ? 2 : 1);
  }
  std::cout << "requested " << count << " env servers for " << run_dir << std::endl;
  const int wait_s = absl::GetFlag(FLAGS_wait_s);
  if (wait_s <= 0) return 0;
  if (absl::Status s = WaitForEnvServerScale(run_dir, count, absl::Seconds(wait_s)); !s.ok()) {
    return Fail(s, 1);
  }
  std::cout << count << " env servers serving" << std::endl;
  return 0;
}

int RunActor(const std::vector<std::string>& overrides) {
#ifdef ENVTUNE_HAS_TORCH
  absl::StatusOr<Config> config = Config::Load(absl::GetFlag(FLAGS_config), overrides);
  if (!config.ok()) return Fail(config.status(), 2);
  ConfigReader reader(*config);
  ActorOptions options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  options.learner = absl::GetFlag(FLAGS_learner);
  options.env = absl::GetFlag(FLAGS_env);
  ReadActorOptions(reader, &options);
  DeclareOtherSections(reader, *config, {"actor"});
  if (absl::Status s = reader.Finish(); !s.ok()) return Fail(s, 2);
  absl::StatusOr<std::unique_ptr<Actor>> actor = Actor::Create(options);
  if (!actor.ok()) return Fail(actor.status(), 2);
  absl::Status status = RunUntilSignal([&] { return (*actor)->Run(); }, [&] { (*actor)->Stop(); });
  if (!status.ok()) return Fail(status, 1);
  std::cout << "actor stopped after " << (*actor)->leases_completed() << " leases" << std::endl;
  return 0;
#else
  return Fail(absl::UnimplementedError(
                  "actor: this envtune was built with ENVTUNE_WITH_TORCH=OFF (no policy)"),
              2);
#endif
}

int RunLearner(const std::vector<std::string>& overrides) {
#ifdef ENVTUNE_HAS_LEARNER
  absl::StatusOr<Config> config = Config::Load(absl::GetFlag(FLAGS_config), overrides);
  if (!config.ok()) return Fail(config.status(), 2);
  ConfigReader reader(*config);
  LearnerRoleOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  ReadLearnerOptions(reader, &options);
  DeclareOtherSections(reader, *config, {"learner", "model"});
  if (absl::Status s = reader.Finish(); !s.ok()) return Fail(s, 2);
  absl::StatusOr<std::unique_ptr<LearnerRole>> learner = LearnerRole::Create(options);
  if (!learner.ok()) return Fail(learner.status(), 2);
  if (options.rank == 0) {
    std::cout << "learner listening on " << options.host << ":" << (*learner)->port() << std::endl;
  }
  absl::Status status = RunUntilSignal([&] { return (*learner)->Run(); }, [&] { (*learner)->Stop(); });
  if (!status.ok()) return Fail(status, 1);
  std::cout << "learner stopped after " << (*learner)->progress().steps << " steps" << std::endl;
  return 0;
#else
  return Fail(absl::UnimplementedError(
                  "learner: this envtune was built with ENVTUNE_WITH_TORCH=OFF (no trainer)"),
              2);
#endif
}

}  // namespace
}  // namespace envtune

// eval / sft / plan / model: torch-side user commands that parse their own flags
// (deploy/commands/*.h).
#ifdef ENVTUNE_HAS_TORCH
#include "deploy/commands/model_command.h"
#endif
#ifdef ENVTUNE_HAS_LEARNER
#include "deploy/commands/eval_command.h"
#include "deploy/commands/plan_command.h"
#include "deploy/commands/sft_command.h"
#endif

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(envtune::kUsage);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::cout << envtune::kUsage << "\n";
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  // eval, sft and model parse their own flags (before absl sees them).
#ifdef ENVTUNE_HAS_TORCH
  if (command == "model") {
    std::vector<std::string> sub(argv + 2, argv + argc);
    return envtune::RunModelCommand(sub, std::cin, std::cout, std::cerr);
  }
#endif
#ifdef ENVTUNE_HAS_LEARNER
  if (command == "eval") {
    std::vector<std::string> sub(argv + 2, argv + argc);
    return envtune::RunEvalCommand(sub, ENVTUNE_DEFAULT_DATA_DIR, std::cout, std::cerr);
  }
  if (command == "sft") {
    std::vector<std::string> sub(argv + 2, argv + argc);
    return envtune::RunSftCommand(sub, ENVTUNE_DEFAULT_DATA_DIR, std::cout, std::cerr);
  }
  if (command == "plan") {
    return envtune::RunPlanCommand(std::vector<std::string>(argv + 2, argv + argc), std::cout,
                                   std::cerr);
  }
#endif
  if (command == "ablate") return envtune::RunAblate(std::vector<std::string>(argv + 2, argv + argc));
  if (command == "config") {
    return envtune::RunConfigCommand(std::vector<std::string>(argv + 2, argv + argc),
                                     ENVTUNE_DEFAULT_CONFIG, ENVTUNE_DEFAULT_DATA_DIR, std::cout,
                                     std::cerr);
  }
  // Parse the flags after the command; positional leftovers are key.sub=value overrides.
  std::vector<char*> args{argv[0]};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  std::vector<char*> rest = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (command == "env") {
    std::vector<std::string> env_args(rest.begin() + 1, rest.end());
    return envtune::RunEnvCommand(env_args, absl::GetFlag(FLAGS_data_dir), std::cin, std::cout);
  }
  if (command == "scale") {
    return envtune::RunScale(std::vector<std::string>(rest.begin() + 1, rest.end()));
  }
  std::vector<std::string> overrides;
  for (size_t i = 1; i < rest.size(); ++i) {
    std::string arg = rest[i];
    if (arg.find('=') == std::string::npos) {
      std::cerr << "envtune: unexpected argument '" << arg << "' (overrides are key.sub=value)\n";
      return 2;
    }
    overrides.push_back(arg);
  }
  if (command == "coordinator" || command == "env-server" || command == "actor" ||
      command == "learner" || command == "status") {
    // TLS and tokens (the config's `security:` section) before any server, channel or
    // metrics endpoint exists.
    if (absl::Status s = envtune::SetUpSecurity(overrides); !s.ok()) return envtune::Fail(s, 2);
    if (command != "status") {
      std::cout << command << " security: " << envtune::ProcessSecurity()->Describe() << std::endl;
    }
  }
  if (command == "coordinator" || command == "env-server" || command == "actor" || command == "learner") {
    // Before any gRPC server is built, so they get the RPC metrics interceptor.
    absl::Status s = envtune::StartRoleMetrics(command, absl::GetFlag(FLAGS_host),
                                               absl::GetFlag(FLAGS_metrics_port), std::cout);
    if (!s.ok()) return envtune::Fail(s, 1);
  }
  if (command == "train") return envtune::RunTrain(overrides);
  if (command == "coordinator") return envtune::RunCoordinator(overrides);
  if (command == "status") return envtune::RunStatus();
  if (command == "env-server") {
    return envtune::RunEnvServerCommand(
        {absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_data_dir),
         absl::GetFlag(FLAGS_hmac_key_file), absl::GetFlag(FLAGS_coordinator),
         absl::GetFlag(FLAGS_advertise_address), absl::GetFlag(FLAGS_name),
         absl::GetFlag(FLAGS_drain_grace_ms)});
  }
  if (command == "actor") return envtune::RunActor(overrides);
  if (command == "learner") return envtune::RunLearner(overrides);
  std::cerr << "envtune: unknown command '" << command << "'\n\n" << envtune::kUsage << "\n";
  return 2;
}
