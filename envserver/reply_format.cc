#include "envserver/reply_format.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace envtune {
namespace {

struct FormatName {
  v1::OutputFormat format;
  const char* name;
};
constexpr FormatName kFormats[] = {{v1::OUTPUT_FORMAT_ENVTUNING, "envtuning"},
                                   {v1::OUTPUT_FORMAT_BFCL_PROMPTING, "bfcl_prompting"},
                                   {v1::OUTPUT_FORMAT_HERMES, "hermes"}};

struct ModeName {
  DecodeMode mode;
  const char* name;
};
constexpr ModeName kModes[] = {{DecodeMode::kBfclPrompting, "bfcl_prompting"},
                               {DecodeMode::kBfclFunctionCalling, "bfcl_fc"},
                               {DecodeMode::kEnvTuning, "envtuning"}};

template <typename Row>
std::string NamesOf(const Row& rows) {
  std::string out;
  for (const auto& row : rows) absl::StrAppend(&out, out.empty() ? "" : ", ", row.name);
  return out;
}

}  // namespace

absl::StatusOr<v1::OutputFormat> ParseOutputFormat(absl::string_view name) {
  for (const FormatName& row : kFormats) {
    if (name == row.name) return row.format;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reply format '", name, "' (one of: ", OutputFormatNames(), ")"));
}

absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name) {
  for (const ModeName& row : kModes) {
    if (name == row.name) return row.mode;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown decoder mode '", name, "' (one of: ", DecodeModeNames(), ")"));
}

absl::string_view OutputFormatName(v1::OutputFormat format) {
  for (const FormatName& row : kFormats) {
    if (format == row.format) return row.name;
  }
  return "envtuning";  // UNSPECIFIED (= envtuning)
}

absl::string_view DecodeModeName(DecodeMode mode) {
  for (const ModeName& row : kModes) {
    if (mode == row.mode) return row.name;
  }
  return "envtuning";
}

std::string OutputFormatNames() { return NamesOf(kFormats); }
std::string DecodeModeNames() { return NamesOf(kModes); }

}  // namespace envtune
