// libFuzzer target for a checkpoint's config.json (ParseModelConfig: the JSON, the key checks
// and ValidateModelConfig's bounds): whatever parses must serialize and parse back.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<envtune::ModelConfig> config = envtune::ParseModelConfig(text);
  if (!config.ok()) return 0;
  if (!envtune::ValidateModelConfig(*config).ok()) std::abort();  // Parse validates
  if (envtune::ApproxParameterCount(*config) > envtune::kMaxModelParameters) std::abort();
  absl::StatusOr<envtune::ModelConfig> again =
      envtune::ParseModelConfig(envtune::SerializeModelConfig(*config));
  if (!again.ok() || again->num_hidden_layers != config->num_hidden_layers ||
      again->vocab_size != config->vocab_size) {
    std::abort();
  }
  (void)envtune::SerializeGenerationConfig(*config);
  return 0;
}
