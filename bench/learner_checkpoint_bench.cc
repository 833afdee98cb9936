// Full learner checkpoint size and write/restore time (learner/checkpoint.h) for a policy of a
// given shape, one process (replicated optimizer), after one AdamW step so the moments exist.
//
//   build/bench/bench_learner_checkpoint_bench [shape=tiny|tiny-default|0.5b]
//       [dtype=float32|bfloat16] [dir=/tmp/envtune_ckpt_bench]
//
// tiny-default is configs/tiny-cpu.yaml's policy (hidden 128, 2 layers, Qwen vocabulary); 0.5b
// is Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14/2 heads, intermediate 4864, tied
// embeddings; 494M parameters). Prints bytes on disk per file, save and restore seconds, and
// whether the restored weights are bitwise the saved ones (tests/learner/checkpoint_test.cc
// checks the moments through the steps that follow).
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "learner/checkpoint.h"
#include "learner/optimizer.h"
#include "learner/trainer.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "model/qwen2.h"

namespace envtune {
namespace {

// The tiny model's architecture (model/model_spec.h) at Qwen2.5-0.5B's sizes, the tiny
// default's (configs/tiny-cpu.yaml), or the tests' (any other name).
ModelConfig Shape(const std::string& name) {
  struct Named {
    const char* name;
    TinyQwen2Spec spec;  // vocab, hidden, intermediate, layers, heads, kv heads
  };
  static const Named kShapes[] = {
      {"0.5b", {kQwen25VocabSize, 896, 4864, 24, 14, 2}},
      {"tiny-default", {kQwen25VocabSize, 128, 384, 2, 2, 1}},
  };
  for (const Named& shape : kShapes) {
    if (name == shape.name) return TinyQwen2Config(shape.spec);
  }
  return TinyQwen2Config({64, 16, 32, 2, 2, 1});
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Main(int argc, char** argv) {
  std::map<std::string, std::string> args{
      {"shape", "tiny-default"}, {"dtype", "float32"}, {"dir", "/tmp/envtune_ckpt_bench"}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const size_t eq = a.find('=');
    if (eq == std::string::npos || args.count(a.substr(0, eq)) == 0) {
      std::cerr << "usage: bench_learner_checkpoint_bench [shape=tiny|tiny-default|0.5b] "
                   "[dtype=float32|bfloat16] [dir=DIR]\n";
      return 2;
    }
    args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  const torch::ScalarType dtype =
      args["dtype"] == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  const std::string dir = args["dir"];
  std::filesystem::remove_all(dir);
  TrainerOptions options;
  options.grpo.kl_coef = 0;
  options.zero_stage = 0;
  std::vector<torch::Tensor> saved_weights;
  int64_t parameters = 0;
  {
    auto policy = std::make_shared<PolicyImpl>(PolicyOptions(Shape(args["shape"])).dtype(dtype));
    policy->InitRandom(1);
    auto trainer = Trainer::Create(policy, nullptr, options);
    if (!trainer.ok()) {
      std::cerr << trainer.status() << "\n";
      return 1;
    }
    // One AdamW step on random gradients: the moments exist, as in any checkpoint after step 1.
    PolicyOptimizer& opt = (*trainer)->optimizer();
    opt.ZeroGrad();
    {
      torch::NoGradGuard no_grad;
      for (auto& p : policy->parameters()) {
        p.mutable_grad().copy_(torch::randn_like(p) * 1e-3);
        parameters += p.numel();
      }
    }
    if (absl::Status s = opt.AccumulateGradients(); !s.ok()) return std::cerr << s << "\n", 1;
    if (absl::Status s = opt.Step(1e-4); !s.ok()) return std::cerr << s << "\n", 1;
    (*trainer)->set_steps(1);
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = SaveLearnerCheckpoint(**trainer, nullptr, dir, "step-1", 2, 0);
    const double save_s = Seconds(start);
    if (!s.ok()) return std::cerr << s << "\n", 1;
    int64_t total = 0;
    std::cout << "shape " << args["shape"] << " (" << parameters << " parameters), dtype "
              << args["dtype"] << "\n";
    for (const auto& e : std::filesystem::directory_iterator(dir + "/step-1")) {
      std::cout << "  " << e.path().filename().string() << ": " << e.file_size() << " bytes\n";
      total += static_cast<int64_t>(e.file_size());
    }
    std::cout << "checkpoint " << total << " bytes (" << total / 1e9 << " GB), saved in " << save_s
              << " s (" << total / 1e6 / save_s << " MB/s)\n";
    for (const auto& p : policy->parameters()) saved_weights.push_back(p.detach().clone());
  }
  auto policy = std::make_shared<PolicyImpl>(PolicyOptions(Shape(args["shape"])).dtype(dtype));
  auto trainer = Trainer::Create(policy, nullptr, options);
  if (!trainer.ok()) return std::cerr << trainer.status() << "\n", 1;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<CheckpointInfo> info = RestoreLearnerCheckpoint(**trainer, nullptr,
                                                                 dir + "/step-1");
  const double restore_s = Seconds(start);
  if (!info.ok()) return std::cerr << info.status() << "\n", 1;
  bool equal = true;
  auto params = policy->parameters();
  for (size_t i = 0; i < params.size(); ++i) equal &= torch::equal(params[i], saved_weights[i]);
  std::cout << "restored in " << restore_s << " s; weights bitwise equal: "
            << (equal ? "yes" : "no") << "; optimizer state bytes "
            << (*trainer)->optimizer().StateBytes() << "\n";
  std::filesystem::remove_all(dir);
  return equal ? 0 : 1;
}

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) { return envtune::Main(argc, argv); }
