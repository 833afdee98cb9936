// Child processes for the one-machine launcher: spawn with stdout/stderr to a log file, wait for
// a line announcing the listening address, poll for exit, terminate (SIGTERM, then SIGKILL after
// a grace period). POSIX only. Not thread-safe.
#ifndef ENVTUNE_DEPLOY_PROCESS_H_
#define ENVTUNE_DEPLOY_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace envtune {

class ChildProcess {
 public:
  // Starts `argv` (argv[0] is the executable path) with stdout and stderr appended to
  // `log_path`. The child gets its own process group so a terminal Ctrl-C reaches only the
  // launcher, which then stops children in order.
  static absl::StatusOr<ChildProcess> Spawn(std::string name, std::vector<std::string> argv,
                                            std::string log_path);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // terminates a still-running child

  // Waits until this child's output (LogTail) contains a line "<anything> listening on
  // HOST:PORT" and returns "HOST:PORT". Fails (naming the process and quoting its log tail) if the child exits or the
  // timeout passes first.
  absl::StatusOr<std::string> WaitForListeningAddress(absl::Duration timeout);
  // The exit status once the child has exited (non-blocking): exit code, or 128 + signal.
  std::optional<int> PollExit();
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status.
  int Terminate(absl::Duration grace);
  // Sends SIGKILL at once (fault-injection in tests).
  void Kill();
  // Sends SIGTERM and returns at once (the child drains and exits by itself; see PollExit).
  void RequestStop();

  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }
  // The last `max_bytes` of what this child wrote to its log. The log file is appended to
  // across runs and restarts; what was in it before this child was spawned is left out.
  std::string LogTail(size_t max_bytes = 2000) const;

 private:
  ChildProcess() = default;

  std::string name_;
  std::string log_path_;
  int64_t log_start_ = 0;  // the log's size when this child was spawned
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_PROCESS_H_
