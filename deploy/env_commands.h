// The environment commands of the `envtune` binary:
//
//   envtune env-server [--host ADDR] [--port N] [--data_dir DIR] [--hmac_key_file FILE]
//       [--coordinator HOST:PORT [--advertise_address HOST:PORT] [--name NAME]]
//       [--drain_grace_ms N]
//       serves EnvService; prints "env server listening on HOST:PORT". With --coordinator it
//       joins the fleet (envserver/fleet_member.h): registers the advertised address (default
//       HOST:PORT) and heartbeats its load. SIGINT/SIGTERM, or the coordinator's DrainEnvServer,
//       drain it: health NOT_SERVING and DRAINING reported at once, requests still served for
//       --drain_grace_ms (clients move away), then UNAVAILABLE, in-flight calls finish (up to
//       60 s), a last STOPPED heartbeat, exit 0.
//   envtune env play TASK_ID [--format envtuning|bfcl|hermes] [--augment_probability P]
//       [--seed N] [--bfcl_eval] [--data_dir DIR]
//       a person plays an episode in the terminal: types replies (a line with a single "." ends a
//       reply; ":call JSON" and ":answer TEXT" are shortcuts that add the <think>/<tool_call>/
//       <answer> tags; ":quit" stops) and sees observations, hints, turn scores and rewards.
//
//   envtune env replay|check|decode FILE|- [--mode bfcl_prompting|bfcl_fc|envtuning] [--model_name
//   M]
//       JSON-lines tools over the BFCL executor, checker and decoders (deploy/env_cli.h).
//
// Subcommands of `envtune env` are rows of a table (RunEnvCommand); each returns the process exit
// code: 0 success, 1 runtime failure, 2 usage error.
#ifndef ENVTUNE_DEPLOY_ENV_COMMANDS_H_
#define ENVTUNE_DEPLOY_ENV_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace envtune {

struct EnvServerCommandArgs {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string data_dir;
  std::string hmac_key_file;  // empty: blobs carry a SHA-256 checksum only
  std::string coordinator;    // empty: no fleet membership
  std::string advertise_address;
  std::string name;
  int drain_grace_ms = 3000;
};
int RunEnvServerCommand(const EnvServerCommandArgs& args);

// `args` are the positionals after "env" (subcommand first). Reads the env-play flags defined in
// env_commands.cc (--format, --augment_probability, --seed, --bfcl_eval).
int RunEnvCommand(const std::vector<std::string>& args, const std::string& data_dir, std::istream& in,
                  std::ostream& out);

// Usage lines of the env commands, for the binary's help text.
const char* EnvCommandsUsage();

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_ENV_COMMANDS_H_
