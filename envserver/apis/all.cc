// The registry of BFCL sandbox classes: one row per class, in BFCL's canonical order.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "envserver/apis/apis.h"

namespace envtune {
namespace {

struct ApiRow {
  const char* class_name;
  std::unique_ptr<ToolApi> (*factory)();
};

// Each API implementation adds its row here when it lands.
constexpr ApiRow kApis[] = {
    {"", nullptr},  // placeholder keeps the array non-empty; skipped below
    {"MessageAPI", &NewMessageApi},
    {"TwitterAPI", &NewTwitterApi},
    {"TicketAPI", &NewTicketApi},
    {"GorillaFileSystem", &NewGorillaFileSystem},
    {"MathAPI", &NewMathApi},
    {"TradingBot", &NewTradingBot},
    {"TravelAPI", &NewTravelApi},
    {"VehicleControlAPI", &NewVehicleControlApi},
};

}  // namespace

absl::StatusOr<std::unique_ptr<ToolApi>> CreateToolApi(std::string_view class_name) {
  for (const ApiRow& row : kApis) {
    if (row.factory != nullptr && class_name == row.class_name) return row.factory();
  }
  return absl::NotFoundError(absl::StrCat("unknown BFCL class '", std::string(class_name), "'"));
}

const std::vector<std::string>& AllToolApiClassNames() {
  static const auto* names = new std::vector<std::string>{
      "GorillaFileSystem", "MathAPI",  "MessageAPI", "TwitterAPI",
      "TicketAPI",         "TradingBot", "TravelAPI", "VehicleControlAPI"};
  return *names;
}

}  // namespace envtune
