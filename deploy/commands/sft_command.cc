#include "deploy/commands/sft_command.h"

#include "absl/strings/str_format.h"
#include "common/cli_flags.h"
#include "common/config.h"
#include "common/config_sections.h"
#include "learner/sft.h"

namespace envtune {

int RunSftCommand(const std::vector<std::string>& args, const std::string& default_data_dir,
                  std::ostream& out, std::ostream& err) {
  absl::StatusOr<CliFlags> f = ParseCliFlags(args, {"config"});
  if (!f.ok()) {
    err << "envtune sft: " << f.status().message() << "\nusage: envtune sft --config FILE [sft.key=value ...]\n";
    return 2;
  }
  for (const std::string& p : f->positionals) {
    if (p.find('=') == std::string::npos) {
      err << "envtune sft: unexpected argument '" << p << "' (overrides are sft.key=value)\n";
      return 2;
    }
  }
  absl::StatusOr<Config> config = Config::Load(f->Get("config"), f->positionals);
  if (!config.ok()) {
    err << "envtune sft: " << config.status().message() << "\n";
    return 2;
  }
  ConfigReader reader(*config);
  DeclareOtherSections(reader, *config, {"sft"});
  SftOptions options;
  options.data_dir = default_data_dir;
  ReadSftOptions(reader, &options);
  if (absl::Status s = reader.Finish(); !s.ok()) {
    err << "envtune sft: " << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<SftResult> r = RunSft(options, &err);
  if (!r.ok()) {
    err << "envtune sft: " << r.status().message() << "\n";
    return r.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  out << absl::StrFormat(
      "{\"examples\": %d, \"assistant_tokens\": %d, \"steps\": %d, \"first_loss\": %.6f, "
      "\"last_loss\": %.6f, \"output_dir\": \"%s\"}\n",
      r->examples, r->trained_tokens, r->steps, r->first_loss, r->last_loss, options.output_dir);
  return 0;
}

}  // namespace envtune
