// deploy/slurm/envtune.sbatch on a real Slurm (Debian's slurm-wlm and munge), started by this
// test in a scratch directory and on loopback: munged with a generated key, slurmctld and three
// slurmd (node envtune-cpu in partition cpu; envtune-learner and envtune-actors in partition gpu
// with 4 GRES "gpus" each, /dev/null devices; one machine, NodeAddr 127.0.0.1), cons_tres,
// proctrack/linuxproc, task/none, no cgroups, no accounting. The job script is submitted
// unchanged; its #SBATCH sizes are overridden on the sbatch command line per heterogeneous
// component, as docs/operations.md describes (1 coordinator + 1 env server, 1 learner rank, 1
// actor). Two runs of a tiny policy:
//  - to completion: the job ends COMPLETED once the coordinator reports the curriculum finished,
//    with the learner's final checkpoint at the last step;
//  - requeued (`scontrol requeue`) once checkpoint step-2 and its coordinator state exist: the
//    same job id runs again, resumes from the newest checkpoint the coordinator has a state of
//    (not step 0) and completes the curriculum.
// Skips, with the reason, when the Slurm or munge programs are missing or the daemons do not come
// up on this machine (their log tails in the message).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file.h"
#include "deploy/process.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/integration_util.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;
using integration::Binary;
using integration::SourceDir;

struct Shell {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Shell RunShell(const std::string& command) {
  Shell r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A loopback port free now (bound to port 0, then released).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// The program `name` on PATH or in /usr/sbin (slurmctld, slurmd, munged live there), or "".
std::string Program(const std::string& name) {
  Shell r = RunShell("PATH=\"$PATH:/usr/sbin:/sbin\" command -v " + name);
  return r.exit_code == 0 ? r.output.substr(0, r.output.find('\n')) : "";
}

std::string Tail(const std::string& path, size_t bytes = 600) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return "(no " + path + ")";
  return text->size() > bytes ? text->substr(text->size() - bytes) : *text;
}

const std::vector<std::string> kNodes = {"envtune-cpu", "envtune-learner", "envtune-actors"};

// munged + slurmctld + 3 slurmd in `dir`, stopped (jobs cancelled first) on destruction.
class SlurmCluster {
 public:
  // Starts the daemons; an error says why this machine cannot run them.
  absl::Status Start(const fs::path& dir) {
    dir_ = dir;
    for (const char* sub : {"munge", "state", "spool", "log", "dev"})
      fs::create_directories(dir / sub);
    fs::permissions(dir / "munge", fs::perms::owner_all, fs::perm_options::replace);
    {
      std::random_device rd;
      std::string key(1024, '\0');
      for (char& c : key) c = static_cast<char>(rd());
      std::ofstream(dir / "munge/munge.key", std::ios::binary) << key;
      fs::permissions(dir / "munge/munge.key", fs::perms::owner_read | fs::perms::owner_write,
                      fs::perm_options::replace);
    }
    const std::string socket = (dir / "munge/munge.sock").string();
    absl::StatusOr<ChildProcess> munged = ChildProcess::Spawn(
        "munged",
        {Program("munged"), "-F", "-f", "--key-file=" + (dir / "munge/munge.key").string(),
         "--socket=" + socket, "--pid-file=" + (dir / "munge/munged.pid").string(),
         "--seed-file=" + (dir / "munge/seed").string(),
         "--log-file=" + (dir / "log/munged.log").string()},
        (dir / "log/munged.out").string());
    if (!munged.ok()) return munged.status();
    daemons_.push_back(std::move(*munged));
    for (int i = 0; i < 100 && !fs::exists(socket); ++i) absl::SleepFor(absl::Milliseconds(100));
    if (!fs::exists(socket)) {
      return absl::UnavailableError("munged made no socket: " +
                                    Tail((dir / "log/munged.out").string()));
    }

    // Four /dev/null "GPU" devices per GPU node (gres/gpu needs character devices).
    for (int i = 0; i < 4; ++i)
      fs::create_symlink("/dev/null", dir / ("dev/gpu" + std::to_string(i)));
    std::string user = RunShell("id -un").output;
    user = user.substr(0, user.find('\n'));
    std::ofstream conf(dir / "slurm.conf");
    conf
        << "ClusterName=envtune-test\nSlurmctldHost=localhost(127.0.0.1)\n"
        << "SlurmctldPort=" << FreePort() << "\nSlurmUser=" << user << "\nSlurmdUser=" << user
        << "\nAuthType=auth/munge\nAuthInfo=socket=" << socket << "\nCredType=cred/munge\n"
        << "StateSaveLocation=" << (dir / "state").string() << "\n"
        << "SlurmdSpoolDir=" << (dir / "spool").string() << "/%n\n"
        << "SlurmctldPidFile=" << (dir / "slurmctld.pid").string() << "\n"
        << "SlurmdPidFile=" << (dir / "slurmd-%n.pid").string() << "\n"
        << "SlurmctldLogFile=" << (dir / "log/slurmctld.log").string() << "\n"
        << "SlurmdLogFile=" << (dir / "log/slurmd-%n.log").string() << "\n"
        << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        << "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
        << "JobCompType=jobcomp/none\nSwitchType=switch/none\nMpiDefault=none\nMailProg=/bin/true\n"
        << "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
        // The configured CPUs and memory count, not the machine's (3 nodes on one host).
        << "SlurmdParameters=config_overrides\nReturnToService=2\nKillWait=5\n"
        // Heterogeneous jobs are scheduled by the backfill scheduler only.
        << "SchedulerParameters=bf_interval=1\nGresTypes=gpu\n";
    for (size_t i = 0; i < kNodes.size(); ++i) {
      conf << "NodeName=" << kNodes[i]
           << " NodeHostname=localhost NodeAddr=127.0.0.1 Port=" << FreePort()
           << " CPUs=16 RealMemory=4000" << (i > 0 ? " Gres=gpu:4" : "") << "\n";
    }
    conf << "PartitionName=cpu Nodes=" << kNodes[0] << " Default=YES MaxTime=INFINITE State=UP\n"
         << "PartitionName=gpu Nodes=" << kNodes[1] << "," << kNodes[2]
         << " MaxTime=INFINITE State=UP\n";
    conf.close();
    std::ofstream(dir / "gres.conf")
        << "NodeName=" << kNodes[1] << "," << kNodes[2]
        << " Name=gpu File=" << (dir / "dev").string() << "/gpu[0-3]\n";
    ::setenv("SLURM_CONF", (dir / "slurm.conf").c_str(), 1);  // daemons, sbatch, scontrol, the job

    absl::StatusOr<ChildProcess> ctld = ChildProcess::Spawn(
        "slurmctld", {Program("slurmctld"), "-D", "-i"}, (dir / "log/slurmctld.out").string());
    if (!ctld.ok()) return ctld.status();
    daemons_.push_back(std::move(*ctld));
    for (const std::string& node : kNodes) {
      absl::StatusOr<ChildProcess> slurmd =
          ChildProcess::Spawn("slurmd-" + node, {Program("slurmd"), "-D", "-N", node},
                              (dir / ("log/slurmd-" + node + ".out")).string());
      if (!slurmd.ok()) return slurmd.status();
      daemons_.push_back(std::move(*slurmd));
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    std::string states;
    while (absl::Now() < deadline) {
      states = RunShell("sinfo -h -N -o '%N %t'").output;
      if (RunShell("sinfo -h -N -t idle -o %N | sort -u | wc -l").output == "3\n")
        return absl::OkStatus();
      for (ChildProcess& d : daemons_) {
        if (d.PollExit().has_value()) {
          return absl::UnavailableError(absl::StrCat(d.name(), " exited: ", d.LogTail(800)));
        }
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
    return absl::UnavailableError(
        absl::StrCat("the Slurm nodes are not idle after 60 s (sinfo: ", states,
                     "); slurmctld: ", Tail((dir / "log/slurmctld.log").string()),
                     " slurmd: ", Tail((dir / "log/slurmd-envtune-cpu.log").string())));
  }

  ~SlurmCluster() {
    if (!daemons_.empty()) {
      // Jobs first, while slurmd still tracks their processes.
      (void)RunShell("scancel --full --signal=KILL --user=$(id -un)");
      for (int i = 0; i < 60 && !RunShell("squeue -h").output.empty(); ++i) {
        absl::SleepFor(absl::Milliseconds(500));
      }
    }
    for (auto it = daemons_.rbegin(); it != daemons_.rend(); ++it) it->Terminate(absl::Seconds(10));
  }

 private:
  fs::path dir_;
  std::vector<ChildProcess> daemons_;
};

// A job's field (JobState, Restarts, ...) from `scontrol show job` (the first component's).
std::string JobField(const std::string& job, const std::string& field) {
  const std::string text = RunShell("scontrol show job " + job + " --oneliner").output;
  const size_t at = text.find(" " + field + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + field.size() + 2;
  return text.substr(start, text.find_first_of(" \n", start) - start);
}

// The learner step in <checkpoint>/trainer_state.json, or -1.
int64_t CheckpointStep(const fs::path& checkpoint) {
  absl::StatusOr<std::string> text = ReadFileToString((checkpoint / "trainer_state.json").string());
  if (!text.ok()) return -1;
  nlohmann::json state = nlohmann::json::parse(*text, nullptr, false);
  return state.is_object() && state.contains("step") ? state["step"].get<int64_t>() : -1;
}

// Two curriculum stages of `steps_per_stage` learner steps each; a checkpoint every step.
// max_episode_tokens 6000 is below the opening prompt, so episodes end before the policy replies
// and steps train on nothing: this test is about the batch script, completion, requeue and
// resume under Slurm (training and bitwise resume are tests/integration/resume_slow_test.cc).
// With replying episodes (32768), one CI run's requeued learner found its fixed port still in
// use (EADDRINUSE) and the actor step outlived the job's cancellation; not yet understood.
std::string Config(int steps_per_stage) {
  const std::string stage = absl::StrCat(
      "split: train, categories: [base], limit: 2, group_size: 2, max_new_tokens: 12, "
      "max_episode_tokens: 6000, advance: {after_steps: ",
      steps_per_stage, "}}\n");
  return absl::StrCat(R"(coordinator:
  heartbeat_interval_ms: 500
  worker_expiry_ms: 30000
  lease_timeout_ms: 600000
  max_policy_staleness: 0
  seed: 3
curriculum:
  stages:
    - {name: syntax, reward: format, )",
                      stage, "    - {name: hints, reward: progress, ", stage,
                      integration::TinyLearnerYaml("  checkpoint_every: 1\n  seed: 5\n"), R"(actor:
  concurrency: 4
  max_model_turns: 2
  max_episode_seconds: 300
  seed: 9
  tokenizer: )",
                      SourceDir(), "/third_party/qwen-tokenizer\n");
}

class SlurmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const char* program :
         {"munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "squeue", "scancel"}) {
      if (Program(program).empty()) {
        skip_reason_ = absl::StrCat(program,
                                    " not found (Debian packages slurm-wlm and munge; "
                                    "scripts/install-deps installs them)");
        return;
      }
    }
    root_ = integration::RunDir("envtune_slurm");
    fs::remove_all(root_);
    cluster_ = std::make_unique<SlurmCluster>();
    if (absl::Status s = cluster_->Start(fs::path(root_) / "slurm"); !s.ok()) {
      skip_reason_ = absl::StrCat("Slurm does not run on this machine: ", s.message());
    }
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    if (!fs::exists(Binary())) GTEST_SKIP() << "envtune binary not built at " << Binary();
  }

  // Submits the job script with `config` in run directory `name`; returns the job id.
  static std::string Submit(const std::string& name, const std::string& config) {
    const fs::path dir = fs::path(root_) / name;
    fs::create_directories(dir);
    std::ofstream(dir / "config.yaml") << config;
    std::vector<std::string> env = {"ENVTUNE_HOME=" + fs::absolute(SourceDir()).string(),
                                    "ENVTUNE_BIN=" + fs::absolute(Binary()).string(),
                                    "ENVTUNE_CONFIG=" + (dir / "config.yaml").string(),
                                    "ENVTUNE_RUN_DIR=" + (dir / "run").string(),
                                    absl::StrCat("ENV_PORT=", FreePort()),
                                    absl::StrCat("COORDINATOR_PORT=", FreePort()),
                                    absl::StrCat("LEARNER_PORT=", FreePort()),
                                    absl::StrCat("MASTER_PORT=", FreePort()),
                                    "METRICS_PORT=-1",
                                    "ENVTUNE_NODE_IP_CMD='echo 127.0.0.1'",
                                    "STARTUP_TIMEOUT_S=300",
                                    "STATUS_POLL_S=1"};
    // Per component: the coordinator + one env server, one learner rank, one actor.
    const std::string sizes =
        absl::StrCat("--time=30 --nodes=1 --ntasks-per-node=2 --mem-per-cpu=100M",
                     " : --time=30 --ntasks-per-node=1 --mem-per-gpu=500M --nodelist=", kNodes[1],
                     " : --time=30 --ntasks-per-node=1 --mem-per-gpu=500M --nodelist=", kNodes[2]);
    Shell r = RunShell(absl::StrCat("env ", absl::StrJoin(env, " "),
                                    " sbatch --parsable --chdir=", Quote(dir.string()), " ", sizes,
                                    " ", Quote(SourceDir() + "/deploy/slurm/envtune.sbatch")));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::string job = r.output.substr(0, r.output.find_first_of(";\n"));
    return job;
  }

  // Waits until the job's state is one of `states`; returns it ("" on timeout).
  static std::string WaitState(const std::string& job, const std::vector<std::string>& states,
                               absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      const std::string state = JobField(job, "JobState");
      for (const std::string& s : states) {
        if (state == s) return state;
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    return "";
  }

  static std::string Diagnostics(const std::string& name, const std::string& job) {
    const fs::path dir = fs::path(root_) / name;
    return absl::StrCat("\njob: ", RunShell("scontrol show job " + job).output,
                        "\nout: ", Tail((dir / ("envtune-" + job + ".out")).string(), 1500),
                        "\nlearner: ", Tail((dir / "run/logs/learner-0.log").string()),
                        "\ncoordinator: ", Tail((dir / "run/logs/coordinator.log").string()),
                        "\nactor: ", Tail((dir / "run/logs/actor-0.log").string()));
  }

  static inline std::string skip_reason_;
  static inline std::string root_;
  static inline std::unique_ptr<SlurmCluster> cluster_;
};

TEST_F(SlurmTest, JobRunsTheCurriculumToCompletion) {
  const absl::Time start = absl::Now();
  const std::string job = Submit("complete", Config(2));
  ASSERT_FALSE(job.empty());
  const std::string state =
      WaitState(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, absl::Minutes(8));
  std::cout << "slurm job " << job << ": " << state << " after " << absl::Now() - start << "\n";
  ASSERT_EQ(state, "COMPLETED") << Diagnostics("complete", job);
  const fs::path run = fs::path(root_) / "complete/run";
  const std::string out =
      Tail((fs::path(root_) / "complete" / ("envtune-" + job + ".out")).string(), 4000);
  EXPECT_TRUE(absl::StrContains(out, "the curriculum finished; stopping the run")) << out;
  EXPECT_FALSE(absl::StrContains(out, "resuming")) << out;
  // Every step's checkpoint, and the final one the learner wrote on SIGTERM, of the last step.
  for (int step = 1; step <= 4; ++step) {
    EXPECT_EQ(CheckpointStep(run / "checkpoints" / ("step-" + std::to_string(step))), step);
  }
  EXPECT_EQ(CheckpointStep(run / "checkpoints/final"), 4) << Diagnostics("complete", job);
  EXPECT_TRUE(fs::exists(run / "coordinator/step-4.binpb"));
  EXPECT_EQ(JobField(job, "Restarts"), "0");
}

TEST_F(SlurmTest, RequeuedJobResumesFromTheNewestCheckpoint) {
  constexpr int kFinal = 12;
  const absl::Time start = absl::Now();
  const std::string job = Submit("requeue", Config(kFinal / 2));
  ASSERT_FALSE(job.empty());
  const fs::path run = fs::path(root_) / "requeue/run";
  const absl::Time deadline = absl::Now() + absl::Minutes(8);
  while (absl::Now() < deadline && !(CheckpointStep(run / "checkpoints/step-2") == 2 &&
                                     fs::exists(run / "coordinator/step-2.binpb"))) {
    const std::string state = JobField(job, "JobState");
    ASSERT_TRUE(state == "PENDING" || state == "RUNNING") << state << Diagnostics("requeue", job);
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(CheckpointStep(run / "checkpoints/step-2"), 2) << Diagnostics("requeue", job);
  const absl::Time requeued = absl::Now();
  Shell r = RunShell("scontrol requeue " + job);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Slurm holds a requeued job back (EligibleTime = now + 2 min); release it once it is pending.
  ASSERT_EQ(WaitState(job, {"PENDING"}, absl::Minutes(2)), "PENDING")
      << Diagnostics("requeue", job);
  const absl::Time pending = absl::Now();
  r = RunShell("scontrol update JobId=" + job + " StartTime=now");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::string state =
      WaitState(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, absl::Minutes(8));
  const absl::Time done = absl::Now();
  ASSERT_EQ(state, "COMPLETED") << Diagnostics("requeue", job);
  EXPECT_EQ(JobField(job, "Restarts"), "1");

  // The second attempt (the same job id, so the same run directory) said where it resumes.
  const std::string out =
      Tail((fs::path(root_) / "requeue" / ("envtune-" + job + ".out")).string(), 4000);
  const size_t at = out.find("resuming from learner step ");
  ASSERT_NE(at, std::string::npos) << out;
  int64_t resume_step = -1;
  ASSERT_TRUE(absl::SimpleAtoi(out.substr(at + 27, out.find(' ', at + 27) - at - 27), &resume_step))
      << out;
  EXPECT_GE(resume_step, 2);
  EXPECT_LT(resume_step, kFinal);
  const std::string learner = Tail((run / "logs/learner-0.log").string(), 100000);
  EXPECT_TRUE(
      absl::StrContains(learner, absl::StrCat("at step ", resume_step, ", policy version ")))
      << learner;
  EXPECT_TRUE(absl::StrContains(out, "the curriculum finished; stopping the run")) << out;
  EXPECT_EQ(CheckpointStep(run / "checkpoints/final"), kFinal) << Diagnostics("requeue", job);
  std::cout << "requeue at step >= 2 after " << requeued - start << "; pending after "
            << pending - requeued << "; resumed from step " << resume_step << "; completed "
            << done - pending << " after the release (total " << done - start << ")\n";
}

}  // namespace
}  // namespace envtune
