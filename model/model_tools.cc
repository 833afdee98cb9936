#include "model/model_tools.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/device.h"
#include "model/generate.h"
#include "model/qwen2.h"
#include "model/text/chat_template.h"
#include "model/text/text_tools.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using Json = nlohmann::ordered_json;

}  // namespace

absl::StatusOr<std::string> NormalizeDtype(const std::string& name) {
  if (name.empty()) return std::string();
  if (name == "fp32" || name == "float32" || name == "f32") return std::string("float32");
  if (name == "bf16" || name == "bfloat16") return std::string("bfloat16");
  if (name == "fp16" || name == "float16" || name == "f16") return std::string("float16");
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected fp32, bf16 or fp16)"));
}

namespace {

void WriteLine(std::ostream& out, const Json& j) {
  out << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
}

void WriteError(std::ostream& out, int line, const std::string& message) {
  WriteLine(out, Json{{"line", line}, {"error", message}});
}

}  // namespace

absl::Status InitTinyQwen2(const TinyQwen2Spec& spec, const Tokenizer& tokenizer,
                           const std::string& out_dir, uint64_t seed) {
  absl::StatusOr<ModelConfig> config = TinyQwen2ConfigFor(spec, tokenizer);
  if (!config.ok()) return config.status();
  try {
    Policy policy(PolicyOptions(*config).dtype(c10::kFloat));
    policy->InitRandom(seed);
    return SavePolicy(*policy, out_dir);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("building the tiny model: ", e.what()));
  }
}

absl::Status ConvertCheckpoint(const std::string& in_dir, const std::string& out_dir,
                               const std::string& dtype, int64_t shard_bytes) {
  absl::StatusOr<std::string> name = NormalizeDtype(dtype);
  if (!name.ok()) return name.status();
  if (shard_bytes < 0) return absl::InvalidArgumentError("--shard_bytes must be >= 0");
  LoadPolicyOptions load;
  if (!name->empty()) {
    absl::StatusOr<c10::ScalarType> t = DtypeFromName(*name);
    if (!t.ok()) return t.status();
    load.dtype = *t;
  }
  absl::StatusOr<Policy> policy = LoadPolicy(in_dir, load);
  if (!policy.ok()) return policy.status();
  std::error_code ec;
  if (std::filesystem::exists(out_dir, ec) && std::filesystem::equivalent(in_dir, out_dir, ec)) {
    return absl::InvalidArgumentError("--out must differ from --model");
  }
  return SavePolicy(**policy, out_dir, shard_bytes > 0 ? shard_bytes : int64_t{5} << 30);
}

int TokenizeJsonLines(const Tokenizer& tokenizer, std::istream& in, std::ostream& out) {
  int bad = 0, line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      WriteError(out, line_no, "expected a JSON object with a string \"text\"");
      ++bad;
      continue;
    }
    const std::string text = j["text"].get<std::string>();
    absl::StatusOr<std::vector<TokenId>> ids = tokenizer.Encode(text);
    if (!ids.ok()) {
      WriteError(out, line_no, std::string(ids.status().message()));
      ++bad;
      continue;
    }
    absl::StatusOr<std::string> decoded = tokenizer.Decode(*ids);
    if (!decoded.ok()) {
      WriteError(out, line_no, std::string(decoded.status().message()));
      ++bad;
      continue;
    }
    WriteLine(out, Json{{"text", text}, {"ids", *ids}, {"decoded", *decoded}});
  }
  return bad;
}

int GenerateJsonLines(PolicyImpl& policy, const Tokenizer& tokenizer,
                      const GenerateCliOptions& options, std::istream& in, std::ostream& out) {
  int bad = 0, line_no = 0;
  std::vector<int64_t> stops;
  if (std::optional<TokenId> id = tokenizer.TokenToId(kImEnd)) stops.push_back(*id);
  for (int64_t id : policy.config().generation_eos_token_ids) stops.push_back(id);
  for (int64_t id : policy.config().eos_token_ids) stops.push_back(id);
  const int64_t vocab = policy.config().vocab_size;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      WriteError(out, line_no, "expected a JSON object");
      ++bad;
      continue;
    }
    std::vector<int64_t> prompt;
    std::string error;
    try {
      if (j.contains("prompt_ids")) {
        for (const Json& v : j.at("prompt_ids")) {
          int64_t id = v.get<int64_t>();
          if (id < 0 || id >= vocab)
            throw std::out_of_range(absl::StrCat("id ", id, " out of range"));
          prompt.push_back(id);
        }
      } else if (j.contains("prompt") && j["prompt"].is_string()) {
        absl::StatusOr<std::vector<TokenId>> ids = tokenizer.Encode(j["prompt"].get<std::string>());
        if (!ids.ok()) throw std::invalid_argument(std::string(ids.status().message()));
        prompt.assign(ids->begin(), ids->end());
      } else {
        throw std::invalid_argument("expected \"prompt\" (text) or \"prompt_ids\" (list of ids)");
      }
      if (prompt.empty()) throw std::invalid_argument("empty prompt");
    } catch (const std::exception& e) {
      error = e.what();
    }
    GenerationOptions g;
    g.stop_token_ids = stops;
    g.max_new_tokens = options.max_new_tokens;
    double temperature = options.temperature;
    g.top_k = options.top_k;
    g.top_p = options.top_p;
    g.seed = options.seed;
    if (error.empty()) {
      try {
        if (j.contains("max_new_tokens")) g.max_new_tokens = j["max_new_tokens"].get<int64_t>();
        if (j.contains("temperature")) temperature = j["temperature"].get<double>();
        if (j.contains("top_k")) g.top_k = j["top_k"].get<int64_t>();
        if (j.contains("top_p")) g.top_p = j["top_p"].get<double>();
        if (j.contains("seed")) g.seed = j["seed"].get<uint64_t>();
        if (j.contains("stop")) g.stop_strings = j["stop"].get<std::vector<std::string>>();
      } catch (const std::exception& e) {
        error = absl::StrCat("bad sampling option: ", e.what());
      }
    }
    if (!error.empty()) {
      WriteError(out, line_no, error);
      ++bad;
      continue;
    }
    g.do_sample = temperature > 0;
    g.temperature = temperature > 0 ? temperature : 1.0;
    DetokenizeFn detok = [&tokenizer](const std::vector<int64_t>& ids) {
      std::vector<TokenId> t(ids.begin(), ids.end());
      absl::StatusOr<std::string> s = tokenizer.Decode(t);
      return s.ok() ? *s : std::string();
    };
    absl::StatusOr<std::vector<GenerationResult>> r = Generate(policy, {prompt}, g, detok);
    if (!r.ok()) {
      WriteError(out, line_no, std::string(r.status().message()));
      ++bad;
      continue;
    }
    const GenerationResult& res = (*r)[0];
    std::vector<TokenId> ids(res.token_ids.begin(), res.token_ids.end());
    absl::StatusOr<std::string> text = tokenizer.Decode(ids);
    Json o;
    o["ids"] = res.token_ids;
    o["text"] = text.ok() ? *text : std::string();
    Json lp = Json::array();
    for (float v : res.logprobs) lp.push_back(static_cast<double>(v));
    o["logprobs"] = std::move(lp);
    o["finish_reason"] = FinishReasonName(res.finish_reason);
    if (!res.matched_stop.empty()) o["matched_stop"] = res.matched_stop;
    WriteLine(out, o);
  }
  return bad;
}

}  // namespace envtune
