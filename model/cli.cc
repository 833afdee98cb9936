#include "model/cli.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "model/device.h"
#include "model/generate.h"
#include "model/qwen2.h"
#include "model/text/chat_template.h"
#include "model/text/text_tools.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kUsage[] = R"(envtune model <subcommand>:
  tokenize  [--tokenizer DIR]                       JSON lines {"text"} -> {"text","ids","decoded"}
  generate  --model DIR [--tokenizer DIR] [--max_new_tokens N] [--temperature T] [--top_k K]
            [--top_p P] [--seed S] [--dtype float32|bfloat16] [--device cpu|cuda]
            JSON lines {"prompt"} or {"prompt_ids"} -> {"ids","text","logprobs","finish_reason"}
  convert   --model DIR --out DIR [--dtype fp32|bf16] [--shard_bytes N]
  init      --config FILE --out DIR [--tokenizer DIR]   tiny random Qwen2 (config `model.tiny`))";

int Usage(std::ostream& err, const std::string& message) {
  err << "envtune model: " << message << "\n\n" << kUsage << "\n";
  return 2;
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "envtune model: " << status.message() << "\n";
  return 1;
}

absl::StatusOr<std::string> NormalizeDtype(const std::string& name) {
  if (name.empty()) return std::string();
  if (name == "fp32" || name == "float32" || name == "f32") return std::string("float32");
  if (name == "bf16" || name == "bfloat16") return std::string("bfloat16");
  if (name == "fp16" || name == "float16" || name == "f16") return std::string("float16");
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected fp32, bf16 or fp16)"));
}

void WriteLine(std::ostream& out, const Json& j) {
  out << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
}

void WriteError(std::ostream& out, int line, const std::string& message) {
  WriteLine(out, Json{{"line", line}, {"error", message}});
}

}  // namespace

std::string CliFlags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

absl::StatusOr<int64_t> CliFlags::GetInt(const std::string& name, int64_t fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", it->second, "' is not an integer"));
  }
  return v;
}

absl::StatusOr<double> CliFlags::GetDouble(const std::string& name, double fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(it->second, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", it->second, "' is not a number"));
  }
  return v;
}

absl::StatusOr<bool> CliFlags::GetBool(const std::string& name, bool fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  bool v = false;
  if (!absl::SimpleAtob(it->second, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", it->second, "' is not a boolean"));
  }
  return v;
}

absl::StatusOr<CliFlags> ParseCliFlags(const std::vector<std::string>& args,
                                       const std::set<std::string>& known,
                                       const std::set<std::string>& bool_flags) {
  CliFlags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-' || a == "-") {
      flags.positionals.push_back(a);
      continue;
    }
    std::string body = a.substr(a[1] == '-' ? 2 : 1);
    std::string name = body, value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    const bool is_bool = bool_flags.count(name) > 0;
    if (!is_bool && known.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (is_bool) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        value = args[++i];
      }
    }
    flags.values[name] = value;
  }
  return flags;
}

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
  if (std::filesystem::exists(out_dir, ec) &&
      std::filesystem::equivalent(in_dir, out_dir, ec)) {
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
          if (id < 0 || id >= vocab) throw std::out_of_range(absl::StrCat("id ", id, " out of range"));
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

const char* ModelCommandUsage() { return kUsage; }

int RunModelCommand(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                    std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "help") {
    return Usage(err, args.empty() ? "missing subcommand" : "help");
  }
  const std::string sub = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "tokenize") {
    absl::StatusOr<CliFlags> f = ParseCliFlags(rest, {"tokenizer"});
    if (!f.ok()) return Usage(err, std::string(f.status().message()));
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(f->Get("tokenizer"));
    if (!tok.ok()) return Fail(err, tok.status());
    return TokenizeJsonLines(**tok, in, out) == 0 ? 0 : 1;
  }
  if (sub == "generate") {
    absl::StatusOr<CliFlags> f = ParseCliFlags(
        rest, {"model", "tokenizer", "max_new_tokens", "temperature", "top_k", "top_p", "seed",
               "dtype", "device"});
    if (!f.ok()) return Usage(err, std::string(f.status().message()));
    if (!f->Has("model")) return Usage(err, "--model DIR is required");
    GenerateCliOptions o;
    absl::StatusOr<int64_t> mnt = f->GetInt("max_new_tokens", o.max_new_tokens);
    absl::StatusOr<double> temp = f->GetDouble("temperature", o.temperature);
    absl::StatusOr<int64_t> top_k = f->GetInt("top_k", o.top_k);
    absl::StatusOr<double> top_p = f->GetDouble("top_p", o.top_p);
    absl::StatusOr<int64_t> seed = f->GetInt("seed", 0);
    for (const absl::Status& s : {mnt.status(), temp.status(), top_k.status(), top_p.status(),
                                  seed.status()}) {
      if (!s.ok()) return Usage(err, std::string(s.message()));
    }
    o.max_new_tokens = *mnt;
    o.temperature = *temp;
    o.top_k = *top_k;
    o.top_p = *top_p;
    o.seed = static_cast<uint64_t>(*seed);
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(f->Get("tokenizer"));
    if (!tok.ok()) return Fail(err, tok.status());
    LoadPolicyOptions load;
    absl::StatusOr<std::string> dtype = NormalizeDtype(f->Get("dtype"));
    if (!dtype.ok()) return Usage(err, std::string(dtype.status().message()));
    if (!dtype->empty()) load.dtype = *DtypeFromName(*dtype);
    absl::StatusOr<c10::Device> device = ResolveDevice(f->Get("device", "cpu"));
    if (!device.ok()) return Usage(err, absl::StrCat("--device: ", device.status().message()));
    load.device = *device;
    absl::StatusOr<Policy> policy = LoadPolicy(f->Get("model"), load);
    if (!policy.ok()) return Fail(err, policy.status());
    return GenerateJsonLines(**policy, **tok, o, in, out) == 0 ? 0 : 1;
  }
  if (sub == "convert") {
    absl::StatusOr<CliFlags> f = ParseCliFlags(rest, {"model", "out", "dtype", "shard_bytes"});
    if (!f.ok()) return Usage(err, std::string(f.status().message()));
    if (!f->Has("model") || !f->Has("out")) return Usage(err, "--model DIR and --out DIR are required");
    absl::StatusOr<int64_t> shard = f->GetInt("shard_bytes", 0);
    if (!shard.ok()) return Usage(err, std::string(shard.status().message()));
    if (absl::Status s = ConvertCheckpoint(f->Get("model"), f->Get("out"), f->Get("dtype"), *shard);
        !s.ok()) {
      return s.code() == absl::StatusCode::kInvalidArgument ? Usage(err, std::string(s.message()))
                                                            : Fail(err, s);
    }
    err << "wrote " << f->Get("out") << "\n";
    return 0;
  }
  if (sub == "init") {
    absl::StatusOr<CliFlags> f = ParseCliFlags(rest, {"config", "out", "tokenizer"});
    if (!f.ok()) return Usage(err, std::string(f.status().message()));
    if (!f->Has("out")) return Usage(err, "--out DIR is required");
    absl::StatusOr<Config> config = Config::Load(f->Get("config"));
    if (!config.ok()) return Usage(err, std::string(config.status().message()));
    ConfigReader reader(*config);
    // Only `model:` is read here; the rest of a training config is somebody else's.
    DeclareOtherSections(reader, *config, {"model"});
    TinyQwen2Spec spec;
    ReadTinyQwen2Spec(reader, "model", &spec);
    const uint64_t seed = reader.Get<uint64_t>("model.seed", 1);
    if (absl::Status s = reader.Finish(); !s.ok()) return Usage(err, std::string(s.message()));
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(f->Get("tokenizer"));
    if (!tok.ok()) return Fail(err, tok.status());
    if (absl::Status s = InitTinyQwen2(spec, **tok, f->Get("out"), seed); !s.ok()) {
      return s.code() == absl::StatusCode::kInvalidArgument ? Usage(err, std::string(s.message()))
                                                            : Fail(err, s);
    }
    err << "wrote " << f->Get("out") << "\n";
    return 0;
  }
  return Usage(err, absl::StrCat("unknown subcommand '", sub, "'"));
}

}  // namespace envtune
