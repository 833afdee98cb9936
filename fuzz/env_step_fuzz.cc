// libFuzzer target for EnvService's StartEpisode and Step below gRPC (EnvCore, what the
// handlers call): a fuzzed StartEpisodeRequest (task from the catalog or arbitrary, fuzzed
// options), then up to 8 Steps with fuzzed replies, the episode-state blob passed on, sometimes
// corrupted or replaced. Every answer must be a status or a response; never a crash, hang or
// leak. Replies are capped at the service's 256 KiB limit.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "envserver/env_service.h"
#include "fuzz/fuzz_util.h"

namespace {

const envtune::EnvCore* Core() {
  static const envtune::EnvCore* core = [] {
    envtune::EnvServiceOptions options;
    options.data_dir = envtune::fuzz::DataDir();
    options.engine.hmac_key = "fuzz-key";
    absl::StatusOr<std::unique_ptr<envtune::EnvCore>> created = envtune::EnvCore::Create(options);
    if (!created.ok()) {
      std::fprintf(stderr, "env_step_fuzz: %s\n", std::string(created.status().message()).c_str());
      std::abort();
    }
    return created->release();
  }();
  return core;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Core();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const envtune::EnvCore& core = *Core();
  FuzzedDataProvider in(data, size);
  envtune::v1::StartEpisodeRequest start;
  const auto& tasks = core.catalog().tasks();
  if (in.ConsumeBool()) {
    start.set_task_id(tasks[in.ConsumeIntegralInRange<size_t>(0, tasks.size() - 1)].id);
  } else {
    start.set_task_id(in.ConsumeRandomLengthString(512));
  }
  envtune::v1::EpisodeOptions* o = start.mutable_options();
  if (in.ConsumeBool()) {
    // Raw option bytes: whatever a client may put on the wire.
    (void)o->ParseFromString(in.ConsumeRandomLengthString(256));
  } else {
    o->set_output_format(static_cast<envtune::v1::OutputFormat>(in.ConsumeIntegralInRange(0, 4)));
    o->set_augment_probability(in.ConsumeBool() ? in.ConsumeProbability<double>()
                                                : in.ConsumeFloatingPoint<double>());
    o->set_seed(in.ConsumeIntegral<uint64_t>());
    o->set_max_steps_per_turn(in.ConsumeIntegralInRange<uint32_t>(0, 120));
    o->set_bfcl_eval_semantics(in.ConsumeBool());
  }
  absl::StatusOr<envtune::v1::StartEpisodeResponse> started = core.StartEpisode(start);
  std::string blob = started.ok() ? started->episode_state() : in.ConsumeRandomLengthString(4096);
  for (int step = 0; step < 8 && in.remaining_bytes() > 0; ++step) {
    envtune::v1::StepRequest request;
    const int tamper = in.ConsumeIntegralInRange(0, 7);
    if (tamper == 0 && !blob.empty()) {
      blob[in.ConsumeIntegralInRange<size_t>(0, blob.size() - 1)] ^= in.ConsumeIntegral<uint8_t>();
    } else if (tamper == 1) {
      blob = in.ConsumeRandomLengthString(4096);
    }
    request.set_episode_state(blob);
    request.set_model_output(in.ConsumeRandomLengthString(256 << 10));
    absl::StatusOr<envtune::v1::StepResponse> stepped = core.Step(request);
    if (!stepped.ok()) continue;
    blob = stepped->episode_state();
    if (stepped->episode_ended()) break;
  }
  return 0;
}
