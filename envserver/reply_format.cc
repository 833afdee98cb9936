// The reply formats and their registry (see reply_format.h).
#include "envserver/reply_format.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envserver/prompts.h"

namespace envtune {
namespace {

// BFCL's function docs as the prompts show them: the Python-3 suffix, json.dumps(indent=4).
std::string FunctionsText(const PyList& visible_docs) {
  return DocsJsonIndent4(WithPython3Suffix(visible_docs));
}

// The defaults are BFCL's function-calling conventions (prompting mode and Hermes share them):
// tools listed as BFCL's docs, results as one "tool" message per call, format errors without
// the envtuning reminder.
class FunctionCallingFormat : public ReplyFormat {
 public:
  std::string ToolJson(const PyValue& doc) const override {
    JsonDumpsOptions opts;
    opts.ensure_ascii = false;
    return doc.JsonDumps(opts);
  }
  std::string FormatErrorObservation(std::string_view problem) const override {
    return envtune::FormatErrorObservation(problem, /*envtuning_reminder=*/false);
  }
  void AddResultsObservation(
      std::vector<ShownResult> shown, size_t /*max_observation_bytes*/,
      google::protobuf::RepeatedPtrField<v1::ChatMessage>* out) const override {
    for (ShownResult& r : shown)
      AddChatMessage(out, "tool", std::move(r.result), std::move(r.call));
  }
};

class EnvTuningFormat final : public FunctionCallingFormat {
 public:
  absl::string_view name() const override { return "envtuning"; }
  DecodeResult Decode(std::string_view reply) const override { return DecodeEnvTuning(reply); }
  std::optional<std::string> SystemPrompt(const PyList& visible_docs) const override {
    return EnvTuningSystemPrompt(FunctionsText(visible_docs));
  }
  std::string RevealMessage(const PyList& revealed) const override {
    return EnvTuningRevealMessage(revealed);
  }
  bool NoCallIsToolAttempt() const override { return true; }
  std::string FormatErrorObservation(std::string_view problem) const override {
    return envtune::FormatErrorObservation(problem, /*envtuning_reminder=*/true);
  }
  // METHOD.md §2.5: all results in one user message.
  void AddResultsObservation(
      std::vector<ShownResult> shown, size_t max_observation_bytes,
      google::protobuf::RepeatedPtrField<v1::ChatMessage>* out) const override {
    std::vector<std::string> results;
    results.reserve(shown.size());
    for (ShownResult& r : shown) results.push_back(std::move(r.result));
    AddChatMessage(out, "user", CapText(ToolResultsObservation(results), max_observation_bytes));
  }
};

class BfclPromptingFormat final : public FunctionCallingFormat {
 public:
  absl::string_view name() const override { return "bfcl_prompting"; }
  DecodeResult Decode(std::string_view reply) const override {
    return DecodeModelOutput(DecodeMode::kBfclPrompting, reply);
  }
  std::optional<std::string> SystemPrompt(const PyList& visible_docs) const override {
    return BfclSystemPrompt(FunctionsText(visible_docs));
  }
  std::string RevealMessage(const PyList& revealed) const override {
    return BfclRevealMessage(revealed);
  }
};

class HermesFormat final : public FunctionCallingFormat {
 public:
  absl::string_view name() const override { return "hermes"; }
  DecodeResult Decode(std::string_view reply) const override { return DecodeHermes(reply); }
  // Tools travel as chat-template schemas, not in a system prompt.
  std::optional<std::string> SystemPrompt(const PyList& /*visible_docs*/) const override {
    return std::nullopt;
  }
  std::string ToolJson(const PyValue& doc) const override { return HermesToolJson(doc); }
  // The revealed docs join the tool list; the message only says so.
  std::string RevealMessage(const PyList& /*revealed*/) const override {
    return std::string(kRevealSentence);
  }
};

// BFCL's function-calling output: decoded by the checker CLI, played by no episode.
class BfclFunctionCallingDecoder final : public ReplyDecoder {
 public:
  absl::string_view name() const override { return "bfcl_fc"; }
  DecodeResult Decode(std::string_view reply) const override {
    return DecodeModelOutput(DecodeMode::kBfclFunctionCalling, reply);
  }
};

const EnvTuningFormat kEnvTuning;
const BfclPromptingFormat kBfclPrompting;
const HermesFormat kHermes;
const BfclFunctionCallingDecoder kBfclFc;

// The registry: one row per format. The first row is the default.
struct Row {
  const ReplyDecoder* decoder;
  const ReplyFormat* format;       // the same object; null: no episode plays in it
  v1::OutputFormat output_format;  // UNSPECIFIED where `format` is null
  std::optional<DecodeMode> mode;  // the checker CLI's decoder mode, if it has one
};
const Row kRows[] = {
    {&kEnvTuning, &kEnvTuning, v1::OUTPUT_FORMAT_ENVTUNING, DecodeMode::kEnvTuning},
    {&kBfclPrompting, &kBfclPrompting, v1::OUTPUT_FORMAT_BFCL_PROMPTING,
     DecodeMode::kBfclPrompting},
    {&kHermes, &kHermes, v1::OUTPUT_FORMAT_HERMES, std::nullopt},
    {&kBfclFc, nullptr, v1::OUTPUT_FORMAT_UNSPECIFIED, DecodeMode::kBfclFunctionCalling},
};

const Row* RowOf(v1::OutputFormat format) {
  for (const Row& row : kRows) {
    if (row.format != nullptr && row.output_format == format) return &row;
  }
  return nullptr;
}

const Row* RowOf(DecodeMode mode) {
  for (const Row& row : kRows) {
    if (row.mode == mode) return &row;
  }
  return nullptr;
}

// The names of the rows `key` gives a key for, in key (enum) order.
template <typename KeyOf>
std::string NamesInEnumOrder(KeyOf key) {
  std::vector<std::pair<int, absl::string_view>> names;
  for (const Row& row : kRows) {
    if (std::optional<int> k = key(row)) names.emplace_back(*k, row.decoder->name());
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& [k, name] : names) absl::StrAppend(&out, out.empty() ? "" : ", ", name);
  return out;
}

}  // namespace

void AddChatMessage(google::protobuf::RepeatedPtrField<v1::ChatMessage>* out, std::string role,
                    std::string content, std::string name) {
  v1::ChatMessage* m = out->Add();
  m->set_role(std::move(role));
  m->set_content(std::move(content));
  if (!name.empty()) m->set_name(std::move(name));
}

const ReplyFormat& ReplyFormatFor(v1::OutputFormat format) {
  const Row* row = RowOf(format);
  return row != nullptr ? *row->format : *kRows[0].format;
}

const ReplyDecoder& ReplyDecoderFor(DecodeMode mode) {
  const Row* row = RowOf(mode);
  return row != nullptr ? *row->decoder : *kRows[0].decoder;
}

absl::StatusOr<v1::OutputFormat> ParseOutputFormat(absl::string_view name) {
  for (const Row& row : kRows) {
    if (row.format != nullptr && name == row.decoder->name()) return row.output_format;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reply format '", name, "' (one of: ", OutputFormatNames(), ")"));
}

absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name) {
  for (const Row& row : kRows) {
    if (row.mode.has_value() && name == row.decoder->name()) return *row.mode;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown decoder mode '", name, "' (one of: ", DecodeModeNames(), ")"));
}

absl::string_view OutputFormatName(v1::OutputFormat format) {
  return ReplyFormatFor(format).name();
}
absl::string_view DecodeModeName(DecodeMode mode) { return ReplyDecoderFor(mode).name(); }

std::string OutputFormatNames() {
  return NamesInEnumOrder([](const Row& row) -> std::optional<int> {
    if (row.format == nullptr) return std::nullopt;
    return static_cast<int>(row.output_format);
  });
}

std::string DecodeModeNames() {
  return NamesInEnumOrder([](const Row& row) -> std::optional<int> {
    if (!row.mode.has_value()) return std::nullopt;
    return static_cast<int>(*row.mode);
  });
}

}  // namespace envtune
