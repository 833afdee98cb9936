// A main for the libFuzzer targets in builds without libFuzzer (gcc, no instrumentation), so
// the test suite runs every target briefly: it replays each seed (files under the directories or
// files given), then mutates seeds blindly (bit flips, byte edits, insertions of parser tokens,
// erased, duplicated and spliced ranges) with a seeded generator until --seconds or --runs is
// used up. No coverage feedback and no sanitizers: this is a smoke run that catches crashes,
// aborts and escaping exceptions; scripts/fuzz is the real fuzzer. A crash writes the input that
// caused it to $TMPDIR (or /tmp) as fuzz-crash-<pid> and names it, then dies with the signal;
// rerun the target binary with that file to reproduce.
//
// Usage: <target> [--seconds S (10)] [--runs N (0 = no cap)] [--seed N (1)] [--max_len B (65536)]
//                 [SEED_DIR_OR_FILE ...]
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// The input being run, for the crash handler.
const std::string* g_current = nullptr;
char g_crash_path[512];

void OnCrash(int sig) {
  if (g_current != nullptr) {
    const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      const char* p = g_current->data();
      size_t left = g_current->size();
      while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<size_t>(n);
      }
      ::close(fd);
    }
    static const char kMsg[] = "fuzz smoke: crashed; the input is in ";
    (void)!::write(2, kMsg, sizeof(kMsg) - 1);
    (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
    (void)!::write(2, "\n", 1);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Tokens the readers under test treat specially (JSON, Python literals, YAML, reply tags).
const char* const kTokens[] = {
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "\"",
    "'",
    ",",
    ":",
    "=",
    "\\",
    "\\u0000",
    "\\ud800",
    "\n",
    "- ",
    "null",
    "None",
    "true",
    "False",
    "1e308",
    "-0",
    "nan",
    "inf",
    "99999999999999999999999",
    "0x",
    "</tool_call>",
    "<tool_call>",
    "<answer>",
    "<think>",
    "{\"name\": ",
    "\"arguments\": ",
    "? ",
    "&a",
    "*a",
    "!!binary",
};

class Mutator {
 public:
  Mutator(uint64_t seed, size_t max_len) : rng_(seed), max_len_(max_len) {}

  std::string Next(const std::vector<std::string>& seeds) {
    std::string s;
    if (!seeds.empty() && Below(10) != 0)
      s = seeds[Below(seeds.size())];
    else
      s = RandomBytes(Below(256));
    for (size_t n = 1 + Below(8); n > 0; --n) Mutate(s, seeds);
    if (s.size() > max_len_) s.resize(max_len_);
    return s;
  }

 private:
  size_t Below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  std::string RandomBytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(Below(256));
    return s;
  }

  void Mutate(std::string& s, const std::vector<std::string>& seeds) {
    const size_t pos = Below(s.size() + 1);
    switch (Below(7)) {
      case 0:  // flip a bit
        if (!s.empty()) s[Below(s.size())] ^= static_cast<char>(1u << Below(8));
        break;
      case 1:  // set a byte
        if (!s.empty()) s[Below(s.size())] = static_cast<char>(Below(256));
        break;
      case 2:  // insert random bytes
        s.insert(pos, RandomBytes(1 + Below(16)));
        break;
      case 3:  // insert a token, possibly many times (nesting)
      {
        std::string token = kTokens[Below(std::size(kTokens))];
        const size_t times = Below(4) == 0 ? 1 + Below(2000) : 1;
        std::string run;
        for (size_t i = 0; i < times && run.size() < max_len_; ++i) run += token;
        s.insert(pos, run);
      } break;
      case 4:  // erase a range
        if (!s.empty()) s.erase(pos == s.size() ? pos - 1 : pos, 1 + Below(64));
        break;
      case 5:  // duplicate a range elsewhere
        if (!s.empty()) {
          const size_t from = Below(s.size());
          const std::string chunk = s.substr(from, 1 + Below(256));
          s.insert(Below(s.size() + 1), chunk);
        }
        break;
      default:  // splice another seed
        if (!seeds.empty()) {
          const std::string& other = seeds[Below(seeds.size())];
          const size_t from = Below(other.size() + 1);
          s = s.substr(0, pos) + other.substr(from, Below(other.size() - from + 1));
        }
        break;
    }
  }

  std::mt19937_64 rng_;
  size_t max_len_;
};

void ReadSeeds(const std::filesystem::path& path, size_t max_len, std::vector<std::string>* out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path, ec)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());  // the same order everywhere: runs are reproducible
    for (const auto& f : files) ReadSeeds(f, max_len, out);
    return;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.size() > max_len) s.resize(max_len);
  out->push_back(std::move(s));
}

int Usage(const char* argv0, const std::string& problem) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s [--seconds S] [--runs N] [--seed N] [--max_len B] "
               "[SEED_DIR_OR_FILE ...]\n",
               argv0, problem.c_str(), argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  uint64_t runs_cap = 0, seed = 1;
  size_t max_len = 65536;
  std::vector<std::string> seed_paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (arg == name && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    char* end = nullptr;
    if (const char* v = value("--seconds")) {
      seconds = std::strtod(v, &end);
    } else if (const char* v = value("--runs")) {
      runs_cap = std::strtoull(v, &end, 10);
    } else if (const char* v = value("--seed")) {
      seed = std::strtoull(v, &end, 10);
    } else if (const char* v = value("--max_len")) {
      max_len = std::strtoull(v, &end, 10);
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage(argv[0], "unknown flag '" + arg + "'");
    } else {
      seed_paths.push_back(arg);
      continue;
    }
    if (end == nullptr || *end != '\0' || !(seconds >= 0) || max_len == 0) {
      return Usage(argv[0], "bad value for " + arg);
    }
  }

  const char* tmp = std::getenv("TMPDIR");
  std::snprintf(g_crash_path, sizeof(g_crash_path), "%s/fuzz-crash-%d",
                tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", static_cast<int>(::getpid()));
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, OnCrash);
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  std::vector<std::string> seeds;
  for (const std::string& p : seed_paths) ReadSeeds(p, max_len, &seeds);
  const auto start = std::chrono::steady_clock::now();
  auto run = [](const std::string& input) {
    g_current = &input;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    g_current = nullptr;
  };
  for (const std::string& s : seeds) run(s);
  run(std::string());

  Mutator mutator(seed, max_len);
  uint64_t runs = 0;
  const auto budget = std::chrono::duration<double>(seconds);
  while ((runs_cap == 0 || runs < runs_cap) && std::chrono::steady_clock::now() - start < budget) {
    run(mutator.Next(seeds));
    ++runs;
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz smoke %s: %zu seeds, %llu mutated inputs in %.1f s (seed %llu), no crash\n",
              argv[0], seeds.size(), static_cast<unsigned long long>(runs), took,
              static_cast<unsigned long long>(seed));
  return 0;
}
