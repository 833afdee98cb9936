// libFuzzer target: arbitrary bytes through every model-output decoder and the execution-side
// parser (ParsePyExpression + EvalPyLiteral + UnparsePy). Must never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "envserver/decode.h"
#include "envserver/pyparse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (envtune::DecodeMode mode : {envtune::DecodeMode::kBfclPrompting, envtune::DecodeMode::kBfclFunctionCalling,
                                   envtune::DecodeMode::kEnvTuning}) {
    envtune::DecodeResult r = envtune::DecodeModelOutput(mode, text);
    // Decoded calls must themselves parse (they are executed later).
    for (const std::string& call : r.calls) (void)envtune::ParsePyExpression(call);
  }
  absl::StatusOr<envtune::PyNodePtr> tree = envtune::ParsePyExpression(text);
  if (tree.ok()) {
    (void)envtune::UnparsePy(**tree);
    (void)envtune::EvalPyLiteral(**tree);
  }
  return 0;
}
