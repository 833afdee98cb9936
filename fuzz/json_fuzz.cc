// libFuzzer target for the JSON reader every model reply and tool argument goes through
// (PyValue::FromJson, nesting bounded at 1000) and its writer: whatever parses must dump, and
// the dump must parse back to an equal value.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "envserver/pyvalue.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<envtune::PyValue> value = envtune::PyValue::FromJson(text);
  if (!value.ok()) return 0;
  absl::StatusOr<std::string> dumped = envtune::PyJsonDumps(*value);
  if (!dumped.ok()) return 0;  // NaN/inf are Python-only; unsortable keys
  absl::StatusOr<envtune::PyValue> again = envtune::PyValue::FromJson(*dumped);
  if (!again.ok()) std::abort();
  (void)value->Repr();
  return 0;
}
