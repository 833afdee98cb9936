#include "common/config.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace envtune {
namespace {

// Splits "a.b[2].c" into {"a", "b", "[2]", "c"}.
std::vector<std::string> SplitKey(const std::string& key) {
  std::vector<std::string> parts;
  for (absl::string_view piece : absl::StrSplit(key, '.')) {
    std::string part(piece);
    size_t bracket = part.find('[');
    if (bracket == std::string::npos) {
      parts.push_back(part);
      continue;
    }
    parts.push_back(part.substr(0, bracket));
    while (bracket != std::string::npos) {
      size_t close = part.find(']', bracket);
      parts.push_back(part.substr(bracket, close - bracket + 1));
      bracket = part.find('[', close);
    }
  }
  return parts;
}

// "[N]" with N a decimal of at most 6 digits. Anything else ("[x]", "[-1]", a 30-digit number)
// is no index (Override refuses it; std::stoul threw on it, and the uncaught exception aborted
// every role: found by fuzz/config_fuzz).
bool IsIndex(const std::string& part, size_t* index) {
  if (part.size() < 3 || part.size() > 8 || part.front() != '[' || part.back() != ']') return false;
  size_t value = 0;
  for (size_t i = 1; i + 1 < part.size(); ++i) {
    if (part[i] < '0' || part[i] > '9') return false;
    value = value * 10 + static_cast<size_t>(part[i] - '0');
  }
  *index = value;
  return true;
}

// Collects every leaf key ("a.b", "a.c[0].d") of a node.
void CollectLeaves(const YAML::Node& node, const std::string& prefix,
                   std::vector<std::string>* out) {
  if (node.IsMap()) {
    for (const auto& entry : node) {
      // A non-scalar key ({[1]: 2}) has no name: as<std::string>() threw (fuzz/config_fuzz).
      std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "<non-scalar key>";
      CollectLeaves(entry.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else if (node.IsSequence() && node.size() > 0 && node[0].IsMap()) {
    for (size_t i = 0; i < node.size(); ++i) {
      CollectLeaves(node[i], absl::StrCat(prefix, "[", i, "]"), out);
    }
  } else {
    out->push_back(prefix);
  }
}

}  // namespace

absl::StatusOr<Config> Config::Load(const std::string& path,
                                    const std::vector<std::string>& overrides) {
  if (path.empty()) return FromString("", overrides);
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file '", path, "' cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<Config> config = FromString(text.str(), {});
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  config->source_ = path;
  for (const std::string& assignment : overrides) {
    if (absl::Status s = config->Override(assignment); !s.ok()) return s;
  }
  return config;
}

absl::StatusOr<Config> Config::FromString(const std::string& yaml,
                                          const std::vector<std::string>& overrides) {
  Config config;
  config.source_ = "<config>";
  try {
    config.root_ = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("YAML error: ", e.what()));
  }
  if (config.root_.IsNull()) config.root_ = YAML::Node(YAML::NodeType::Map);
  if (!config.root_.IsMap()) {
    return absl::InvalidArgumentError("the config's top level must be a mapping");
  }
  for (const std::string& assignment : overrides) {
    if (absl::Status s = config.Override(assignment); !s.ok()) return s;
  }
  return config;
}

absl::Status Config::Override(const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("override '", assignment, "' is not of the form key.sub=value"));
  }
  std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("override ", key, ": ", e.what()));
  }
  std::vector<std::string> parts = SplitKey(key);
  for (const std::string& part : parts) {
    size_t unused = 0;
    if (!part.empty() && part.front() == '[' && !IsIndex(part, &unused)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "override ", key.substr(0, 200), ": '", part.substr(0, 64), "' is not an index [0-999999]"));
    }
  }
  // Walk with fresh handles (yaml-cpp nodes are references into the tree).
  std::vector<YAML::Node> path{root_};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    size_t index = 0;
    YAML::Node next = IsIndex(parts[i], &index) ? path.back()[index] : path.back()[parts[i]];
    if (next.IsDefined() && !next.IsMap() && !next.IsSequence()) {
      return absl::InvalidArgumentError(
          absl::StrCat("override ", key, ": '", parts[i], "' is not a section"));
    }
    path.push_back(next);
  }
  size_t index = 0;
  if (IsIndex(parts.back(), &index)) {
    path.back()[index] = value;
  } else {
    path.back()[parts.back()] = value;
  }
  return absl::OkStatus();
}

YAML::Node Config::Find(const std::string& dotted_key) const {
  YAML::Node node = YAML::Clone(root_);
  for (const std::string& part : SplitKey(dotted_key)) {
    size_t index = 0;
    if (IsIndex(part, &index)) {
      if (!node.IsSequence() || index >= node.size()) return YAML::Node(YAML::NodeType::Undefined);
      node = node[index];
    } else {
      if (!node.IsMap() || !node[part]) return YAML::Node(YAML::NodeType::Undefined);
      node = node[part];
    }
  }
  return node;
}

bool ConfigReader::Has(const std::string& key) const {
  YAML::Node node = config_.Find(key);
  return node.IsDefined() && !node.IsNull();
}

size_t ConfigReader::SequenceSize(const std::string& key) {
  read_.insert(key);
  YAML::Node node = config_.Find(key);
  if (!node.IsDefined() || node.IsNull()) return 0;
  if (!node.IsSequence()) {
    AddError(absl::StrCat(key, ": expected a list"));
    return 0;
  }
  return node.size();
}

void ConfigReader::MarkRead(const std::string& key) { subtrees_.insert(key); }

namespace {

// "a.b[3].c" -> "a.b[*].c": the pattern a sequence element's bound is registered under (and the
// name a declared key is listed under).
std::string BoundPattern(const std::string& key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '[') {
      size_t close = key.find(']', i);
      if (close != std::string::npos) {
        out += "[*]";
        i = close;
        continue;
      }
    }
    out += key[i];
  }
  return out;
}

std::string FormatBound(double x) {
  if (std::abs(x) < 9e15 && x == std::floor(x)) return absl::StrCat(static_cast<int64_t>(x));
  return absl::StrCat(x);
}

}  // namespace

bool ConfigReader::InBounds(const std::string& key, double value, const YAML::Node& node,
                            size_t index) {
  if (bounds_.empty()) return true;
  auto it = bounds_.find(key);
  if (it == bounds_.end()) it = bounds_.find(BoundPattern(key));
  if (it == bounds_.end()) return true;
  const ConfigBound& b = it->second;
  if (value >= b.min && value <= b.max) return true;  // false for NaN
  AddError(absl::StrCat(key, index == SIZE_MAX ? "" : absl::StrCat("[", index, "]"), ": ",
                        Dump(node), " is outside [", FormatBound(b.min), ", ", FormatBound(b.max),
                        "]"));
  return false;
}

void ConfigReader::Declare(const std::string& key, const char* type, std::string fallback,
                           bool required) {
  std::string pattern = BoundPattern(key);
  auto [it, inserted] = declared_index_.emplace(pattern, declared_.size());
  if (!inserted) {
    if (required) declared_[it->second].required = true;
    return;
  }
  DeclaredKey d;
  d.key = std::move(pattern);
  d.type = type;
  d.required = required;
  if (!required) d.fallback = std::move(fallback);
  declared_.push_back(std::move(d));
}

void ConfigReader::AddBounds(std::span<const ConfigBound> bounds) {
  for (const ConfigBound& b : bounds) bounds_[b.key] = b;
}

std::vector<DeclaredKey> ConfigReader::declared() const {
  std::vector<DeclaredKey> out = declared_;
  for (DeclaredKey& d : out) {
    auto it = bounds_.find(d.key);
    if (it == bounds_.end()) continue;
    d.bounded = true;
    d.min = it->second.min;
    d.max = it->second.max;
  }
  return out;
}

std::string ConfigReader::ShortestDouble(double x) {
  char buffer[64];
  const std::to_chars_result r = std::to_chars(buffer, buffer + sizeof(buffer), x);
  return std::string(buffer, r.ptr);
}

std::string ConfigReader::Dump(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

absl::Status ConfigReader::Finish() const {
  std::vector<std::string> problems = errors_;
  std::vector<std::string> leaves;
  CollectLeaves(config_.root(), "", &leaves);
  for (const std::string& leaf : leaves) {
    if (leaf.empty()) continue;
    bool known = read_.count(leaf) > 0;
    for (const std::string& tree : subtrees_) {
      if (leaf == tree || absl::StartsWith(leaf, tree + ".") || absl::StartsWith(leaf, tree + "[")) {
        known = true;
        break;
      }
    }
    if (!known) problems.push_back(absl::StrCat("unknown key '", leaf, "'"));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(config_.source(), ": ", absl::StrJoin(problems, "; ")));
}

}  // namespace envtune
