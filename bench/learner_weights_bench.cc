// Weight publishing, learner -> actor, over gRPC on loopback: a random model shaped like Qwen2
// (default: hidden 1024, 12 layers, intermediate 2816, 16 heads / 2 key-value heads, the
// 151936-token vocabulary, tied, fp32: 1.15 GB) published by the learner and fetched by an
// actor's PolicyClient, the streaming path side by side with the whole-model-string path it
// replaced (reproduced here: the old SerializePolicyWeights, and a client that appends every
// chunk to one string, then copies it into tensors).
//
// Per path it prints, with GB = 1e9 bytes of weights:
//   publish   the learner's training-thread time for one version (snapshot / serialisation)
//   transfer  GetWeights alone: the stream read and discarded by a raw stub (GB/s)
//   fetch     PolicyClient-style fetch: the stream received and loaded into the actor's policy,
//             a new policy (first version) and in place (a later version) (GB/s)
// and the resident memory growth it caused. Repeatable phases run 3 times and report the best
// (the first version's publish and build happen once). Compare the two paths within a run.
//
// With --cuda the learner's and the actor's policies live on the GPU: the streaming publish
// then only queues the device-to-host copies (its "publish" row is the training thread's stall,
// "publish visible" the time until the version can be served), the string path copies to
// pageable memory synchronously.
//
//   bench_learner_weights_bench [--hidden N] [--layers N] [--intermediate N] [--vocab N]
//                               [--bf16] [--chunk_bytes N] [--qwen05b] [--cuda]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "actor/policy_client.h"
#include "common/channels.h"
#include "grpcpp/grpcpp.h"
#include "learner/learner_service.h"
#include "learner/trajectory_queue.h"
#include "learner/weight_publisher.h"
#include "learner/weight_store.h"
#include "model/config.h"
#include "model/model_spec.h"
#include "model/qwen2.h"
#include "model/weights_io.h"

namespace envtune {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kRepeats = 3;  // repeated phases report their best time (a shared machine)
double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Resident set size in bytes (Linux), for the memory each path adds.
int64_t Rss() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long pages = 0, resident = 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<int64_t>(resident) * 4096;
}

// The publish path before per-tensor snapshots (learner_role.cc, weights_io.cc up to this
// change): each parameter converted to a CPU tensor, then one zero-filled whole-model string
// with every tensor copied in.
PolicyWeights OldSerialize(PolicyImpl& policy) {
  at::NoGradGuard no_grad;
  PolicyWeights out;
  ModelConfig config = policy.config();
  const bool fp32 = policy.dtype() == c10::kFloat;
  config.torch_dtype = fp32 ? "float32" : "bfloat16";
  out.header.set_config_json(SerializeModelConfig(config));
  std::vector<at::Tensor> cpu;
  uint64_t total = 0;
  for (auto& [name, tensor] : policy.StateDict()) {
    at::Tensor t = tensor.detach().to(at::kCPU, fp32 ? at::kFloat : at::kBFloat16).contiguous();
    v1::TensorHeader* th = out.header.add_tensors();
    th->set_name(name);
    th->set_dtype(fp32 ? "F32" : "BF16");
    for (int64_t d : t.sizes()) th->add_shape(d);
    th->set_byte_size(t.nbytes());
    total += t.nbytes();
    cpu.push_back(std::move(t));
  }
  out.header.set_total_bytes(total);
  out.data.resize(total);
  uint64_t offset = 0;
  for (const at::Tensor& t : cpu) {
    std::memcpy(out.data.data() + offset, t.data_ptr(), t.nbytes());
    offset += t.nbytes();
  }
  return out;
}

// GetWeights read to the end; the data chunks go to `sink` (nullptr: discarded).
uint64_t ReadStream(v1::LearnerService::Stub& stub, uint32_t chunk_bytes, v1::WeightsHeader* header,
                    std::string* sink) {
  grpc::ClientContext context;
  SetDeadline(context, std::chrono::minutes(10));
  v1::GetWeightsRequest request;
  request.set_known_version(~uint64_t{0});
  request.set_chunk_bytes(chunk_bytes);
  auto reader = stub.GetWeights(&context, request);
  v1::WeightsChunk chunk;
  uint64_t bytes = 0;
  while (reader->Read(&chunk)) {
    if (chunk.has_header()) {
      if (header != nullptr) *header = chunk.header();
      if (sink != nullptr) {
        sink->reserve(std::min<uint64_t>(chunk.header().total_bytes(), uint64_t{8} << 30));
      }
    }
    bytes += chunk.data().size();
    if (sink != nullptr) sink->append(chunk.data());
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "GetWeights: %s\n", status.error_message().c_str());
    std::exit(1);
  }
  return bytes;
}

int Main(int argc, char** argv) {
  // The tiny model's architecture (model/model_spec.h) at ~0.2B parameters unless flags say.
  TinyQwen2Spec spec{kQwen25VocabSize, 1024, 2816, 12, 16, 2};
  bool bf16 = false, cuda = false;
  uint32_t chunk_bytes = 4 << 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::stoll(argv[++i]) : 0LL; };
    if (a == "--hidden")
      spec.hidden_size = next();
    else if (a == "--layers")
      spec.num_hidden_layers = next();
    else if (a == "--intermediate")
      spec.intermediate_size = next();
    else if (a == "--vocab")
      spec.vocab_size = next();
    else if (a == "--chunk_bytes") chunk_bytes = static_cast<uint32_t>(next());
    else if (a == "--bf16") bf16 = true;
    else if (a == "--cuda") cuda = true;
    else if (a == "--qwen05b") {  // Qwen2.5-0.5B's shapes
      spec = {spec.vocab_size, 896, 4864, 24, 14, 2};
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const ModelConfig c = TinyQwen2Config(spec);
  const c10::ScalarType dtype = bf16 ? c10::kBFloat16 : c10::kFloat;
  const c10::Device device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "--cuda: no GPU visible\n");
    return 2;
  }
  auto learner = std::make_shared<PolicyImpl>(PolicyOptions(c).dtype(dtype).device(device));
  learner->InitRandom(1);
  int64_t bytes = 0;
  for (const auto& p : learner->parameters()) bytes += p.nbytes();
  const double gb = bytes / 1e9;
  std::printf("model: hidden %lld x %lld layers, intermediate %lld, vocab %lld, %s: %.3f GB in %zu "
              "tensors on %s; chunks of %u bytes; %d threads\n",
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_hidden_layers),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(c.vocab_size),
              bf16 ? "bf16" : "fp32", gb, learner->StateDict().size(), device.str().c_str(),
              chunk_bytes,
              at::get_num_threads());

  TrajectoryQueue queue(1);
  WeightStore store;
  LearnerServiceOptions service_options;
  service_options.max_chunk_bytes = std::max<uint32_t>(chunk_bytes, service_options.max_chunk_bytes);
  LearnerServiceImpl service(&queue, &store, service_options);
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  auto stub = v1::LearnerService::NewStub(MakeChannel(address, ChannelOptions{.round_robin = false}));
  std::printf("%-10s %-36s %10s %10s %14s\n", "path", "phase", "seconds", "GB/s", "RSS +GB");
  auto row = [&](const char* path, const std::string& phase, double s, int64_t rss_before) {
    std::printf("%-10s %-36s %10.3f %10.2f %14.2f\n", path, phase.c_str(), s, gb / s,
                (Rss() - rss_before) / 1e9);
    std::fflush(stdout);
  };

  // --- streaming: per-tensor snapshot, chunks straight from the tensors, straight into tensors.
  {
    WeightPublisher publisher(&store, "");
    int64_t rss = Rss();
    auto t0 = Clock::now();
    if (absl::Status st = publisher.Publish(*learner, 1, 0); !st.ok()) {
      std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
      return 1;
    }
    row("streaming", "publish, new buffers (training thread)", Seconds(t0), rss);
    if (!publisher.Flush().ok()) return 1;
    if (cuda) row("streaming", "publish visible (copy done)", Seconds(t0), rss);
    double best = 1e30;
    rss = Rss();
    for (int r = 0; r < kRepeats; ++r) {
      t0 = Clock::now();
      const uint64_t got = ReadStream(*stub, chunk_bytes, nullptr, nullptr);
      best = std::min(best, Seconds(t0));
      if (got != static_cast<uint64_t>(bytes)) return 1;
    }
    row("streaming", "transfer (GetWeights, discarded)", best, rss);
    PolicyClientOptions client_options;
    client_options.chunk_bytes = chunk_bytes;
    client_options.rpc_timeout = absl::Minutes(10);
    client_options.load.device = cuda ? "cuda" : "cpu";
    PolicyClient client(address, client_options);
    rss = Rss();
    t0 = Clock::now();
    absl::StatusOr<uint64_t> v = client.Fetch();
    if (!v.ok() || *v != 1) {
      std::fprintf(stderr, "fetch: %s\n", std::string(v.status().message()).c_str());
      return 1;
    }
    row("streaming", "fetch + build policy (version 1)", Seconds(t0), rss);
    {
      at::NoGradGuard no_grad;
      for (auto& p : learner->parameters()) p.mul_(0.5);
    }
    // Versions 2, 3, ...: publish (recycled buffers from the third on) and refresh in place.
    double best_publish = 1e30, best_visible = 1e30;
    best = 1e30;
    rss = Rss();
    uint64_t version = 1;
    for (int r = 0; r < kRepeats + 1; ++r) {
      ++version;
      t0 = Clock::now();
      if (!publisher.Publish(*learner, version, version - 1).ok()) return 1;
      if (r > 0) best_publish = std::min(best_publish, Seconds(t0));
      if (!publisher.Flush().ok()) return 1;
      if (r > 0) best_visible = std::min(best_visible, Seconds(t0));
      t0 = Clock::now();
      v = client.Fetch();
      if (!v.ok() || *v != version) return 1;
      best = std::min(best, Seconds(t0));
    }
    if (publisher.recycled() != kRepeats) return 1;
    row("streaming", "publish, recycled buffers", best_publish, rss);
    if (cuda) row("streaming", "publish visible, recycled buffers", best_visible, rss);
    row("streaming", "fetch + refresh in place", best, rss);
    // Correctness: the actor's policy equals the learner's.
    auto actor_params = client.policy()->StateDict();
    auto learner_params = learner->StateDict();
    for (size_t i = 0; i < learner_params.size(); ++i) {
      if (!at::equal(actor_params[i].second, learner_params[i].second)) {
        std::fprintf(stderr, "mismatch in %s\n", learner_params[i].first.c_str());
        return 1;
      }
    }
  }

  // --- whole-model strings: the old serialisation, served from one buffer, reassembled into one
  // string by the client, then copied into tensors.
  {
    int64_t rss = Rss();
    auto t0 = Clock::now();
    PolicyWeights old = OldSerialize(*learner);
    double publish = Seconds(t0);
    for (int r = 1; r < kRepeats; ++r) {  // each version a new string, as before
      t0 = Clock::now();
      PolicyWeights again = OldSerialize(*learner);
      publish = std::min(publish, Seconds(t0));
    }
    row("string", "publish (training thread)", publish, rss);
    std::shared_ptr<WeightSnapshot> snapshot =
        WeightSnapshot::FromContiguous(store.version() + 1, 0, std::move(old.header),
                                       std::move(old.data));
    if (absl::Status st = store.Publish(snapshot); !st.ok()) {
      std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
      return 1;
    }
    snapshot.reset();
    rss = Rss();
    double best = 1e30;
    for (int r = 0; r < kRepeats; ++r) {
      t0 = Clock::now();
      ReadStream(*stub, chunk_bytes, nullptr, nullptr);
      best = std::min(best, Seconds(t0));
    }
    row("string", "transfer (GetWeights, discarded)", best, rss);
    {
      rss = Rss();
      t0 = Clock::now();
      v1::WeightsHeader header;
      std::string data;
      ReadStream(*stub, chunk_bytes, &header, &data);
      WeightsLoadOptions load;
      load.device = cuda ? "cuda" : "cpu";
      absl::StatusOr<std::shared_ptr<PolicyImpl>> built = BuildPolicyFromWeights(header, data, load);
      if (!built.ok()) return 1;
      row("string", "fetch + build policy", Seconds(t0), rss);
    }
    auto existing = std::make_shared<PolicyImpl>(PolicyOptions(c).dtype(dtype).device(device));
    rss = Rss();
    best = 1e30;
    for (int r = 0; r < kRepeats; ++r) {
      t0 = Clock::now();
      v1::WeightsHeader header;
      std::string data;
      ReadStream(*stub, chunk_bytes, &header, &data);
      if (!RefreshPolicyFromWeights(*existing, header, data).ok()) return 1;
      best = std::min(best, Seconds(t0));
    }
    row("string", "fetch + refresh in place", best, rss);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace
}  // namespace envtune

int main(int argc, char** argv) { return envtune::Main(argc, argv); }
