// The BFCL executor (spec checker.md §A.2-A.5): a Sandbox holds the instances of one side (model
// or ground truth) of one task and executes call strings on them, producing BFCL's exact result
// strings.
//
// Contract:
// * Sandbox::Create builds one instance per involved class, in order; every class except MathAPI
//   gets LoadScenario(deep copy of initial_config[Class] or {}, long_context). A class that is a
//   BFCL class but not (yet) registered in CreateToolApi is listed in unavailable_classes() and
//   simply has no methods (its calls fail as unknown names); an unknown class name is an error.
// * ExecuteCall never throws and never evaluates code: the call string is rewritten exactly as
//   BFCL's _process_method_calls does (including inside string literals: `name (` loses the
//   space, method names gain the instance prefix), checked against the blocklist, parsed by
//   pyparse, its arguments evaluated as literals (plus nested method calls), and dispatched.
//   Unknown names give "Error during execution: name 'x' is not defined".
// * The instance prefix BFCL inserts is `re.sub('[-./]', '_', f"{model}_{task_id}_{Class}_instance")`
//   + "." where `model` is BFCL's model-name argument (checker: "<model>_ground_truth_eval" for
//   the ground-truth side, "<model>_eval" for the model side; inference: "<model>"). It only
//   shows up in state when a string argument contains `method(`; SandboxOptions::model_name
//   chooses it.
// * Copyable: copies Clone() every instance (including private state such as RNGs).
// Not thread-safe.
#ifndef ENVTUNE_ENVSERVER_EXECUTOR_H_
#define ENVTUNE_ENVSERVER_EXECUTOR_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "envserver/decode.h"
#include "envserver/pyparse.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

// A thread-safe memo of parsed call strings (after BFCL's rewriting), shared by the sandboxes of
// one engine, so rebuilding an episode from its blob does not parse the same calls again.
// Bounded: once it holds `capacity` entries it starts over empty.
class ParsedCallCache {
 public:
  struct Entry {
    absl::Status status;                     // the parse error, if any
    PyNodePtr tree;                          // when status is OK
    std::optional<std::string> repeated_kw;  // a keyword repeated in some call of the tree
  };
  explicit ParsedCallCache(size_t capacity) : capacity_(capacity) {}
  // The parse of `code`, from the memo or parsed now.
  std::shared_ptr<const Entry> Parse(const std::string& code);
  size_t size() const;

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

struct SandboxOptions {
  std::string model_name = "envtune";
  // Not owned; nullptr: every call is parsed. Must outlive the sandbox and its copies.
  ParsedCallCache* parse_cache = nullptr;
};

struct CallRecord {
  std::string call;       // the call string as given
  std::string result;     // BFCL's result string
  std::string served_by;  // class whose method ran (outermost call); "" if none
  bool raised = false;    // result is "Error during execution: ..."
};

// The blocked callee names of checker.md A.5 step 3.
bool IsBlockedCallName(std::string_view name);

// BFCL's _process_method_calls over the whole text: `\b([a-zA-Z_]\w*)\s*(?=\()` replaced by
// `prefix.name` when `name` is a key of `method_to_instance`, else by `name` (whitespace dropped).
std::string RewriteCallString(std::string_view text,
                              const absl::flat_hash_map<std::string, std::string>& method_to_instance);

class Sandbox {
 public:
  static absl::StatusOr<Sandbox> Create(std::string task_id,
                                        const std::vector<std::string>& involved_classes,
                                        const PyValue& initial_config, bool long_context,
                                        const SandboxContext* context, SandboxOptions options = {});

  Sandbox(const Sandbox& other);
  Sandbox& operator=(const Sandbox& other);
  Sandbox(Sandbox&&) = default;
  Sandbox& operator=(Sandbox&&) = default;

  CallRecord ExecuteCall(std::string_view call);
  // ExecuteCall(call) for a call the decoder also gave structured (DecodeResult::structured):
  // the same record, without rewriting and parsing `call` when `decoded.name` is one of this
  // sandbox's methods and not blocked (otherwise ExecuteCall(call) decides). Consumes the
  // keyword values.
  CallRecord ExecuteDecoded(std::string call, DecodedCall& decoded);
  std::vector<CallRecord> ExecuteCalls(const std::vector<std::string>& calls);
  // Convenience: just the result strings.
  std::vector<std::string> ExecuteCallStrings(const std::vector<std::string>& calls);

  // {Class: PublicState()} for every available class, in involved order.
  PyValue PublicStates() const;

  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<std::string>& unavailable_classes() const { return unavailable_; }
  // nullptr when the class is not involved or unavailable.
  ToolApi* instance(std::string_view class_name);
  const ToolApi* instance(std::string_view class_name) const;
  // Index of `class_name` in classes(), or -1.
  int ClassIndex(std::string_view class_name) const;
  // nullptr when unavailable. REQUIRES: i < classes().size().
  const ToolApi* instance_at(size_t i) const { return instances_[i].get(); }
  // Whether a call has reached a method of class i since Create (a touched instance may still
  // hold its initial state; an untouched one certainly does). Copies keep the flags.
  bool touched(size_t i) const { return touched_[i] != 0; }
  // Class serving each method name (later class wins on clashes).
  const absl::flat_hash_map<std::string, std::string>& method_classes() const { return maps_->method_class; }

 private:
  Sandbox() = default;
  void BuildMaps();

  std::string task_id_;
  SandboxOptions options_;
  std::vector<std::string> classes_;      // involved, in order
  std::vector<std::string> unavailable_;  // involved but not registered
  std::vector<std::string> instance_names_;                     // parallel to classes_
  std::vector<std::unique_ptr<ToolApi>> instances_;             // parallel; nullptr if unavailable
  std::vector<char> touched_;                                   // parallel; see touched()
  // Fixed once the instances exist; copies of a sandbox share them.
  struct Maps {
    absl::flat_hash_map<std::string, std::string> method_instance;  // method -> instance name
    absl::flat_hash_map<std::string, std::string> method_class;     // method -> class
    absl::flat_hash_map<std::string, size_t> instance_index;        // instance name -> index
  };
  std::shared_ptr<const Maps> maps_;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_EXECUTOR_H_
