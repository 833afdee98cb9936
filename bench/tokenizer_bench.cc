// Tokenizer throughput on BFCL text: every line of data/bfcl/*.json, multi_turn_func_doc/*.json
// and possible_answer/*.json (questions, function docs, ground-truth calls) is encoded.
// Usage: bench_tokenizer_bench [tokenizer.json or dir] [bfcl data dir] [threads]
// Prints tokens/s for a cold pass (empty word cache), warm passes, and a multi-threaded pass.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "model/text/text_tools.h"
#include "model/text/tokenizer.h"

namespace {

std::vector<std::string> ReadBfclLines(const std::filesystem::path& dir) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
  }
  return lines;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tokenizer_hint = argc > 1 ? argv[1] : "";
  std::string data_dir = argc > 2 ? argv[2] : "";
  const int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2;
  if (data_dir.empty()) {
    const char* src = std::getenv("ENVTUNE_SOURCE_DIR");
    data_dir = std::string(src != nullptr ? src : ".") + "/data/bfcl";
  }
  const auto load_start = std::chrono::steady_clock::now();
  auto tokenizer = envtune::LoadTokenizer(tokenizer_hint);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "error: %s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  std::printf("load: %.3f s\n", Seconds(load_start));
  const std::vector<std::string> lines = ReadBfclLines(data_dir);
  size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size();
  if (lines.empty()) {
    std::fprintf(stderr, "error: no BFCL .json lines under %s\n", data_dir.c_str());
    return 1;
  }
  std::printf("corpus: %zu lines, %.2f MB from %s\n", lines.size(), bytes / 1e6, data_dir.c_str());

  auto pass = [&](const char* label) {
    const auto start = std::chrono::steady_clock::now();
    size_t tokens = 0;
    for (const auto& l : lines) {
      auto ids = (*tokenizer)->Encode(l);
      if (!ids.ok()) {
        std::fprintf(stderr, "encode failed: %s\n", ids.status().ToString().c_str());
        std::exit(1);
      }
      tokens += ids->size();
    }
    const double s = Seconds(start);
    std::printf("%-10s %9zu tokens in %.3f s: %.2f M tokens/s, %.1f MB/s\n", label, tokens, s,
                tokens / s / 1e6, bytes / s / 1e6);
    return tokens;
  };
  pass("cold");
  pass("warm");
  const size_t tokens = pass("warm");

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (size_t i = t; i < lines.size(); i += threads) (void)(*tokenizer)->Encode(lines[i]);
    });
  }
  for (auto& w : workers) w.join();
  const double s = Seconds(start);
  std::printf("%d threads %9zu tokens in %.3f s: %.2f M tokens/s\n", threads, tokens, s,
              tokens / s / 1e6);

  const auto dstart = std::chrono::steady_clock::now();
  size_t decoded = 0;
  for (const auto& l : lines) decoded += (*tokenizer)->Decode(*(*tokenizer)->Encode(l))->size();
  std::printf("encode+decode round trip: %.3f s (%zu bytes)\n", Seconds(dstart), decoded);
  return 0;
}
