#include "deploy/commands/model_command.h"

#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/cli_flags.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "model/device.h"
#include "model/model_spec.h"
#include "model/model_tools.h"
#include "model/qwen2.h"
#include "model/text/text_tools.h"

namespace envtune {
namespace {

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

}  // namespace

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
    absl::StatusOr<CliFlags> f =
        ParseCliFlags(rest, {"model", "tokenizer", "max_new_tokens", "temperature", "top_k",
                             "top_p", "seed", "dtype", "device"});
    if (!f.ok()) return Usage(err, std::string(f.status().message()));
    if (!f->Has("model")) return Usage(err, "--model DIR is required");
    GenerateCliOptions o;
    absl::StatusOr<int64_t> mnt = f->GetInt("max_new_tokens", o.max_new_tokens);
    absl::StatusOr<double> temp = f->GetDouble("temperature", o.temperature);
    absl::StatusOr<int64_t> top_k = f->GetInt("top_k", o.top_k);
    absl::StatusOr<double> top_p = f->GetDouble("top_p", o.top_p);
    absl::StatusOr<int64_t> seed = f->GetInt("seed", 0);
    for (const absl::Status& s :
         {mnt.status(), temp.status(), top_k.status(), top_p.status(), seed.status()}) {
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
    if (!f->Has("model") || !f->Has("out"))
      return Usage(err, "--model DIR and --out DIR are required");
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
