// Policy throughput: prefill (tokens/s), batched KV-cache generation (generated tokens/s, and
// decode-only: the decode steps alone), and scoring (forward + backward through ScoreTokens).
// Random weights of the given shape, or --model=DIR (a HF checkpoint; the shape flags are then
// ignored). --json=1 adds one JSON line of the figures (bench/model-vs-hf reads it to compare
// with HF transformers on the same weights).
// Usage: bench_model_bench [--hidden=256] [--layers=4] [--heads=4] [--kv_heads=2]
//   [--intermediate=0 (= 11/4 hidden)] [--vocab=32000] [--batch=8] [--prompt_len=64]
//   [--new_tokens=64] [--dtype=float32|bfloat16] [--device=cpu|cuda] [--iters=3]
//   [--threads=0 (torch default)] [--sample=1] [--checkpointing=0] [--arch=qwen2|llama]
//   [--model=DIR] [--json=0]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/status/statusor.h"
#include "model/device.h"
#include "model/generate.h"
#include "model/qwen2.h"
#include "model/score.h"

namespace {

using envtune::GenerationOptions;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Process CPU seconds (all threads): on a shared, oversubscribed machine tokens per CPU-second
// is the steadier figure; wall-clock rates are printed too.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

void Sync(const c10::Device& device) {
  // A tiny device->host copy waits for queued kernels without naming CUDA APIs.
  if (!device.is_cpu()) at::zeros({1}, at::TensorOptions().device(device)).to(at::kCPU);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags = {
      {"hidden", "256"},   {"layers", "4"},      {"heads", "4"},       {"kv_heads", "2"},
      {"intermediate", "0"}, {"vocab", "32000"}, {"batch", "8"},       {"prompt_len", "64"},
      {"new_tokens", "64"}, {"dtype", "float32"}, {"device", "cpu"},   {"iters", "3"},
      {"threads", "0"},    {"sample", "1"},      {"checkpointing", "0"}, {"arch", "qwen2"},
      {"model", ""},       {"json", "0"}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos || !flags.count(arg.substr(2, eq - 2))) {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return 2;
    }
    flags[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  auto num = [&](const char* k) { return std::atoll(flags[k].c_str()); };
  envtune::ModelConfig config;
  config.architecture = flags["arch"] == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM";
  config.model_type = flags["arch"] == "llama" ? "llama" : "qwen2";
  config.hidden_size = num("hidden");
  config.num_hidden_layers = num("layers");
  config.num_attention_heads = num("heads");
  config.num_key_value_heads = num("kv_heads");
  config.head_dim = config.hidden_size / std::max<int64_t>(1, config.num_attention_heads);
  config.intermediate_size = num("intermediate") > 0 ? num("intermediate") : config.hidden_size * 11 / 4;
  config.vocab_size = num("vocab");
  config.qkv_bias = flags["arch"] != "llama";
  config.tie_word_embeddings = true;
  config.rope_theta = 1e6;
  config.max_position_embeddings = 32768;
  if (flags["model"].empty()) {
    if (auto st = envtune::ValidateModelConfig(config); !st.ok()) {
      std::fprintf(stderr, "bad config: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  auto dtype = envtune::DtypeFromName(flags["dtype"]);
  if (!dtype.ok()) {
    std::fprintf(stderr, "%s\n", std::string(dtype.status().message()).c_str());
    return 2;
  }
  if (num("threads") > 0) at::set_num_threads(static_cast<int>(num("threads")));
  const int64_t batch = num("batch"), prompt_len = num("prompt_len"), new_tokens = num("new_tokens");
  const int iters = static_cast<int>(std::max<int64_t>(1, num("iters")));
  try {
    absl::StatusOr<c10::Device> resolved = envtune::ResolveDevice(flags["device"]);
    if (!resolved.ok()) {
      std::fprintf(stderr, "%s\n", std::string(resolved.status().message()).c_str());
      return 2;
    }
    const c10::Device device = *resolved;
    envtune::Policy policy{nullptr};
    if (!flags["model"].empty()) {
      envtune::LoadPolicyOptions load;
      load.dtype = *dtype;
      load.device = device;
      load.gradient_checkpointing = num("checkpointing") != 0;
      absl::StatusOr<envtune::Policy> loaded = envtune::LoadPolicy(flags["model"], load);
      if (!loaded.ok()) {
        std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
        return 2;
      }
      policy = *loaded;
      config = policy->config();
    } else {
      policy = envtune::Policy(envtune::PolicyOptions(config)
                                   .dtype(*dtype)
                                   .device(device)
                                   .gradient_checkpointing(num("checkpointing") != 0));
      policy->InitRandom(1, 0.02);
    }
    std::map<std::string, double> figures;
    int64_t params = 0;
    for (const auto& p : policy->parameters()) params += p.numel();
    std::printf("config: arch=%s hidden=%ld layers=%ld heads=%ld kv_heads=%ld inter=%ld vocab=%ld "
                "params=%.1fM dtype=%s device=%s threads=%d\n",
                config.architecture.c_str(), (long)config.hidden_size, (long)config.num_hidden_layers,
                (long)config.num_attention_heads, (long)config.num_key_value_heads,
                (long)config.intermediate_size, (long)config.vocab_size, params / 1e6,
                flags["dtype"].c_str(), device.str().c_str(), at::get_num_threads());
    std::printf("workload: batch=%ld prompt_len=%ld new_tokens=%ld iters=%d\n", (long)batch,
                (long)prompt_len, (long)new_tokens, iters);

    at::Tensor prompts_t = at::randint(0, config.vocab_size, {batch, prompt_len}, at::kLong);
    std::vector<std::vector<int64_t>> prompts(batch);
    for (int64_t b = 0; b < batch; ++b) {
      auto row = prompts_t[b];
      prompts[b].assign(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + prompt_len);
    }
    GenerationOptions gen;
    gen.max_new_tokens = new_tokens;
    gen.do_sample = num("sample") != 0;
    gen.seed = 7;

    // Prefill alone (forward over the prompts, no grad), as generation uses it: the logits of
    // each row's last position only.
    auto prefill = [&] {
      at::Tensor hidden = policy->Hidden(prompts_t.to(device));
      return policy->Logits(hidden.select(1, hidden.size(1) - 1));
    };
    {
      at::NoGradGuard no_grad;
      policy->eval();
      prefill();  // warm-up
      Sync(device);
      auto t0 = std::chrono::steady_clock::now();
      const double c0 = CpuSeconds();
      for (int i = 0; i < iters; ++i) prefill();
      Sync(device);
      const double s = Seconds(t0) / iters;
      const double cpu = (CpuSeconds() - c0) / iters;
      std::printf("prefill:  %.3f s/batch  %.0f prompt tokens/s  (%.0f tokens/cpu-s)\n", s,
                  batch * prompt_len / s, batch * prompt_len / cpu);
      figures["prefill_tokens_per_s"] = batch * prompt_len / s;
    }
    // Generation (prefill + new_tokens decode steps with the KV cache).
    std::vector<std::vector<int64_t>> generated;
    {
      auto warm = envtune::Generate(*policy, prompts, gen);
      if (!warm.ok()) {
        std::fprintf(stderr, "generate: %s\n", std::string(warm.status().message()).c_str());
        return 1;
      }
      auto t0 = std::chrono::steady_clock::now();
      const double c0 = CpuSeconds();
      int64_t tokens = 0;
      for (int i = 0; i < iters; ++i) {
        auto out = envtune::Generate(*policy, prompts, gen);
        for (const auto& r : *out) tokens += static_cast<int64_t>(r.token_ids.size());
        if (i == 0) {
          for (const auto& r : *out) generated.push_back(r.token_ids);
        }
      }
      const double s = Seconds(t0);
      const double cpu = CpuSeconds() - c0;
      std::printf("generate: %.3f s/batch  %.0f generated tokens/s  (%.0f tokens/cpu-s, %s)\n",
                  s / iters, tokens / s, tokens / cpu, gen.do_sample ? "sampling" : "greedy");
      figures["generate_tokens_per_s"] = tokens / s;
      // Decode-only: the same batch generating one token (prefill + first token) subtracted.
      GenerationOptions one = gen;
      one.max_new_tokens = 1;
      auto t1 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) {
        if (!envtune::Generate(*policy, prompts, one).ok()) return 1;
      }
      const double s1 = Seconds(t1);
      const double decode_tokens = static_cast<double>(tokens) - static_cast<double>(batch) * iters;
      if (new_tokens > 1 && s > s1) {
        figures["decode_tokens_per_s"] = decode_tokens / (s - s1);
        std::printf("decode:   %.0f tokens/s (decode steps alone)\n", decode_tokens / (s - s1));
      }
    }
    // Scoring: forward + backward over prompt + completion, loss on the completion.
    {
      policy->train();
      std::vector<std::vector<int64_t>> seqs;
      std::vector<std::vector<uint8_t>> masks;
      for (int64_t b = 0; b < batch; ++b) {
        seqs.push_back(prompts[b]);
        seqs.back().insert(seqs.back().end(), generated[b].begin(), generated[b].end());
        masks.emplace_back(seqs.back().size(), 0);
        std::fill(masks.back().begin() + prompt_len, masks.back().end(), 1);
      }
      int64_t tokens = 0;
      for (const auto& s : seqs) tokens += static_cast<int64_t>(s.size());
      auto step = [&] {
        policy->zero_grad();
        auto out = envtune::ScoreSequences(*policy, seqs, masks);
        if (!out.ok()) {
          std::fprintf(stderr, "score: %s\n", std::string(out.status().message()).c_str());
          std::exit(1);
        }
        envtune::MeanNll(*out).backward();
      };
      step();  // warm-up
      Sync(device);
      auto t0 = std::chrono::steady_clock::now();
      const double c0 = CpuSeconds();
      for (int i = 0; i < iters; ++i) step();
      Sync(device);
      const double s = Seconds(t0) / iters;
      const double cpu = (CpuSeconds() - c0) / iters;
      std::printf("score:    %.3f s/batch  %.0f tokens/s forward+backward  (%.0f tokens/cpu-s; %ld "
                  "tokens/batch%s)\n",
                  s, tokens / s, tokens / cpu, (long)tokens,
                  num("checkpointing") ? ", checkpointing" : "");
      figures["forward_backward_tokens_per_s"] = tokens / s;
    }
    if (num("json") != 0) {
      std::string line = "{";
      for (const auto& [key, value] : figures) {
        if (line.size() > 1) line += ", ";
        line += "\"" + key + "\": " + std::to_string(value);
      }
      std::printf("%s}\n", line.c_str());
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "torch error: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
