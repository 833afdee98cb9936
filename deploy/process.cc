#include "deploy/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace envtune {
namespace {

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(std::string name, std::vector<std::string> argv,
                                                 std::string log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("Spawn: empty argv");
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open log ", log_path, ": ", std::strerror(errno)));
  }
  const off_t log_start = ::lseek(fd, 0, SEEK_END);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot start ", name, " (", argv[0], "): ", std::strerror(rc)));
  }
  ChildProcess child;
  child.name_ = std::move(name);
  child.log_path_ = std::move(log_path);
  child.log_start_ = log_start > 0 ? log_start : 0;
  child.pid_ = pid;
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept { *this = std::move(other); }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !exit_status_.has_value()) Terminate(absl::Seconds(2));
    name_ = std::move(other.name_);
    log_path_ = std::move(other.log_path_);
    log_start_ = other.log_start_;
    pid_ = other.pid_;
    exit_status_ = other.exit_status_;
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_status_.has_value()) Terminate(absl::Seconds(2));
}

std::string ChildProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path_);
  in.seekg(log_start_);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() <= max_bytes ? all : all.substr(all.size() - max_bytes);
}

absl::StatusOr<std::string> ChildProcess::WaitForListeningAddress(absl::Duration timeout) {
  static const std::regex kListening(R"(listening on ([^\s:]+:\d+))");
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const std::string log = LogTail(1 << 20);
    std::smatch match;
    if (std::regex_search(log, match, kListening)) return match[1].str();
    if (std::optional<int> status = PollExit(); status.has_value()) {
      return absl::UnavailableError(absl::StrCat(name_, " exited with status ", *status,
                                                 " before listening; log tail:\n", LogTail()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(name_, " did not report a listening address within ",
                                                      absl::FormatDuration(timeout),
                                                      "; log tail:\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::optional<int> ChildProcess::PollExit() {
  if (exit_status_.has_value() || pid_ <= 0) return exit_status_;
  int status = 0;
  pid_t rc = ::waitpid(pid_, &status, WNOHANG);
  if (rc == pid_) exit_status_ = DecodeWaitStatus(status);
  return exit_status_;
}

int ChildProcess::Terminate(absl::Duration grace) {
  if (pid_ <= 0) return -1;
  if (PollExit().has_value()) return *exit_status_;
  ::kill(pid_, SIGTERM);
  absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    if (PollExit().has_value()) return *exit_status_;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  exit_status_ = DecodeWaitStatus(status);
  return *exit_status_;
}

void ChildProcess::Kill() {
  if (pid_ > 0 && !PollExit().has_value()) ::kill(pid_, SIGKILL);
}

void ChildProcess::RequestStop() {
  if (pid_ > 0 && !PollExit().has_value()) ::kill(pid_, SIGTERM);
}

}  // namespace envtune
