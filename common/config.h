// YAML configuration with command-line overrides and strict checking.
//
//   absl::StatusOr<Config> config = Config::Load("configs/tiny-cpu.yaml", {"learner.lr=1e-5"});
//   ConfigReader reader(*config);
//   double lr = reader.Get<double>("learner.lr", 1e-6);
//   ...
//   if (absl::Status s = reader.Finish(); !s.ok()) ...   // unknown keys, bad values
//
// Every error names the key (and the file). Overrides are `dotted.key=value`, the value parsed as
// YAML (so `a.b=[1, 2]` and `a.b=true` work); an override may add a key only where the file
// could, and Finish() rejects keys nobody read. Not thread-safe.
//
// Keys are declared by being read: every Get/Require records the key, its type and its default
// (declared()), which is what `envtune config keys` and docs/config-reference.md list. Which
// program reads which top-level section is common/config_sections.h.
#ifndef ENVTUNE_COMMON_CONFIG_H_
#define ENVTUNE_COMMON_CONFIG_H_

#include <map>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace envtune {

class Config {
 public:
  // Loads `path` ("" = empty config) and applies `overrides` in order.
  static absl::StatusOr<Config> Load(const std::string& path,
                                     const std::vector<std::string>& overrides = {});
  static absl::StatusOr<Config> FromString(const std::string& yaml,
                                           const std::vector<std::string>& overrides = {});
  // Applies one `dotted.key=value` override.
  absl::Status Override(const std::string& assignment);

  // The node at a dotted key (an undefined node when absent).
  YAML::Node Find(const std::string& dotted_key) const;
  const YAML::Node& root() const { return root_; }
  const std::string& source() const { return source_; }

 private:
  YAML::Node root_;
  std::string source_;  // file name for messages
};

// A sane range for a numeric key, both ends inclusive. `key` may hold "[*]" for any index of a
// sequence: "curriculum.stages[*].group_size".
struct ConfigBound {
  const char* key;
  double min;
  double max;
};

// A key some reader asked for (ConfigReader::declared()).
struct DeclaredKey {
  std::string key;       // sequence indices as "[*]": "curriculum.stages[*].reward"
  std::string type;      // "an integer", "a list of strings", ...
  std::string fallback;  // the default as flow YAML; empty for a required key
  bool required = false;
  bool bounded = false;  // a range is checked: [min, max]
  double min = 0.0;
  double max = 0.0;
};

class ConfigReader {
 public:
  explicit ConfigReader(const Config& config) : config_(config) {}

  // Registers bounds (a component's table of them, next to its reader) checked by every later
  // Get of a numeric key, list elements included: a value outside its range, or NaN, records
  // "key: V is outside [min, max]" and Get returns the fallback. A key bounded twice keeps the
  // later bound.
  void AddBounds(std::span<const ConfigBound> bounds);

  // The value at `key` converted to T, or `fallback` when absent. A present value that does not
  // convert records an error naming the key (and returns the fallback).
  template <typename T>
  T Get(const std::string& key, const T& fallback) {
    read_.insert(key);
    Declare(key, TypeName<T>(), DumpValue(fallback), /*required=*/false);
    YAML::Node node = config_.Find(key);
    if (!node.IsDefined() || node.IsNull()) return fallback;
    try {
      T value = node.as<T>();
      if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
        if (!InBounds(key, static_cast<double>(value), node)) return fallback;
      } else if constexpr (IsNumericList<T>::value) {
        for (size_t i = 0; i < value.size(); ++i) {
          if (!InBounds(key, static_cast<double>(value[i]), node[i], i)) return fallback;
        }
      }
      return value;
    } catch (const YAML::Exception&) {
      AddError(absl::StrCat(key, ": cannot read '", Dump(node), "' as ", TypeName<T>()));
      return fallback;
    }
  }
  // Like Get, and records an error when the key is absent.
  template <typename T>
  T Require(const std::string& key) {
    Declare(key, TypeName<T>(), "", /*required=*/true);
    if (!Has(key)) {
      read_.insert(key);
      AddError(absl::StrCat(key, ": required"));
      return T{};
    }
    return Get<T>(key, T{});
  }
  bool Has(const std::string& key) const;
  // Number of elements of a sequence at `key` (0 when absent); elements are read as
  // "key[i].sub" keys.
  size_t SequenceSize(const std::string& key);
  // Marks `key` and everything below it as read (for free-form sub-trees).
  void MarkRead(const std::string& key);
  // Records a semantic error (e.g. a value out of range) against `key`.
  void AddError(const std::string& message) { errors_.push_back(message); }
  // OK, or INVALID_ARGUMENT listing bad values and every key present in the config that no
  // Get/Require/MarkRead asked for ("unknown key 'learner.lrr'").
  absl::Status Finish() const;
  // The configuration read (for readers that walk a sub-tree themselves).
  const Config& config() const { return config_; }

  // Every key read so far, in first-read order, each once (by its "[*]" pattern), with the range
  // registered for it.
  std::vector<DeclaredKey> declared() const;

 private:
  static std::string Dump(const YAML::Node& node);
  // Shortest text that reads back as `x` (1e-06, not yaml-cpp's 9.9999999999999995e-07).
  static std::string ShortestDouble(double x);
  template <typename T>
  static std::string DumpValue(const T& value) {
    if constexpr (std::is_floating_point_v<T>) {
      return ShortestDouble(value);
    } else if constexpr (IsFloatList<T>::value) {
      std::string out = "[";
      for (size_t i = 0; i < value.size(); ++i) {
        out += (i == 0 ? "" : ", ") + ShortestDouble(value[i]);
      }
      return out + "]";
    } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
      return Dump(YAML::Node(static_cast<int>(value)));
    } else {
      return Dump(YAML::Node(value));
    }
  }
  // Records `key` in declared_ (first read wins; a required read marks it required).
  void Declare(const std::string& key, const char* type, std::string fallback, bool required);
  template <typename T>
  struct IsNumericList : std::false_type {};
  template <typename E>
  struct IsNumericList<std::vector<E>>
      : std::bool_constant<std::is_arithmetic_v<E> && !std::is_same_v<E, bool>> {};
  template <typename T>
  struct IsFloatList : std::false_type {};
  template <typename E>
  struct IsFloatList<std::vector<E>> : std::is_floating_point<E> {};
  // False (with an error recorded) when `key`'s bound excludes `value`; `index` names a list
  // element (SIZE_MAX: the key itself).
  bool InBounds(const std::string& key, double value, const YAML::Node& node,
                size_t index = SIZE_MAX);
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "a boolean";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>)
      return "a list of strings";
    else if constexpr (std::is_same_v<T, std::vector<bool>>)
      return "a list of booleans";
    else if constexpr (IsNumericList<T>::value) {
      return std::is_integral_v<typename T::value_type> ? "a list of integers"
                                                        : "a list of numbers";
    } else
      return "the expected type";
  }

  const Config& config_;
  std::set<std::string> read_;      // keys read exactly
  std::set<std::string> subtrees_;  // keys whose whole sub-tree counts as read
  std::vector<std::string> errors_;
  std::map<std::string, ConfigBound> bounds_;  // by key pattern ("[*]" for indices)
  std::vector<DeclaredKey> declared_;
  std::map<std::string, size_t> declared_index_;  // pattern -> index in declared_
};

}  // namespace envtune

#endif  // ENVTUNE_COMMON_CONFIG_H_
