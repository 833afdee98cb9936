// libFuzzer target for the YAML config reader: a fuzzed document plus fuzzed `key=value`
// overrides through Config, ConfigReader (with a bounds table) and the coordinator's section
// reader. Errors must be statuses naming keys; never a crash, an exception escaping, or a hang.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "coordinator/curriculum_config.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<std::string> overrides;
  for (int i = in.ConsumeIntegralInRange(0, 3); i > 0; --i) {
    overrides.push_back(in.ConsumeRandomLengthString(200));
  }
  const std::string yaml = in.ConsumeRemainingBytesAsString();
  absl::StatusOr<envtune::Config> config = envtune::Config::FromString(yaml, overrides);
  if (!config.ok()) return 0;
  envtune::ConfigReader reader(*config);
  static constexpr envtune::ConfigBound kBounds[] = {{"launch.actors", 1, 256},
                                                     {"learner.stage_batch_groups", 1, 65536}};
  reader.AddBounds(kBounds);
  (void)reader.Get<int>("launch.actors", 1);
  (void)reader.Get<double>("learner.lr", 1e-6);
  (void)reader.Get<std::string>("model.path", "");
  (void)reader.Get<std::vector<int>>("learner.stage_batch_groups", {});
  (void)reader.Get<std::vector<std::string>>("evaluation.categories", {});
  static const std::string data_dir = envtune::fuzz::DataDir();
  (void)envtune::ReadCoordinatorOptions(reader, data_dir);
  (void)reader.Finish();
  return 0;
}
