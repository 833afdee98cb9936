// The top-level sections of an envtune config file and the programs that read them.
//
// A program reads its own sections with a ConfigReader, then calls DeclareOtherSections: the
// sections other programs own count as read there (their owners check every key of them), and a
// top-level key that is no section in kConfigSections is an error naming the known ones, so a
// misspelt or invented section ("envserver:", "data:") is refused instead of silently ignored.
// `envtune config check` runs every program's readers over one file (deploy/config_command.h),
// so each key of each section is checked before anything starts.
#ifndef ENVTUNE_COMMON_CONFIG_SECTIONS_H_
#define ENVTUNE_COMMON_CONFIG_SECTIONS_H_

#include <span>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace envtune {

struct ConfigSection {
  std::string_view name;
  std::string_view readers;  // the programs that read it, for people
  std::string_view what;
};

// Every section, in the order docs and `envtune config keys` list them.
std::span<const ConfigSection> ConfigSections();

// Marks every known section not in `own` as read and records "unknown section" errors for
// top-level keys that are no known section. `own` must name known sections.
void DeclareOtherSections(ConfigReader& reader, const Config& config,
                          const std::vector<std::string_view>& own);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_CONFIG_SECTIONS_H_
