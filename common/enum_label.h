// Short lowercase labels of proto enum values for logs, reports and CLIs:
// EnumLabel(v1::TurnEndReason_Name(v1::TURN_END_REASON_FORCE_QUIT), "TURN_END_REASON_")
// is "force_quit". Labels are for people; code switches on the enum values.
#ifndef ENVTUNE_COMMON_ENUM_LABEL_H_
#define ENVTUNE_COMMON_ENUM_LABEL_H_

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace envtune {

inline std::string EnumLabel(absl::string_view name, absl::string_view prefix) {
  return absl::AsciiStrToLower(absl::StripPrefix(name, prefix));
}

}  // namespace envtune

#endif  // ENVTUNE_COMMON_ENUM_LABEL_H_
