// BFCL's GorillaFileSystem (spec: shared/bfcl/spec/gorilla_file_system.md), byte-exact with
// BFCL's Python backend, plus the optional augmented error texts of METHOD.md §5.1.
//
// Object model: Python's File/Directory objects and directory content dicts are arena-owned
// nodes with raw links, so the aliasing that BFCL's mv/cp create (a moved directory shares its
// contents dict with the detached original; a copied directory shares its child objects) is
// reproduced exactly. Clone() deep-copies the arena preserving that aliasing. File content is a
// PyValue because Python stores whatever `echo` was given (an int content makes later `wc` fail
// with Python's text).
//
// Hostile-input limits (the model is untrusted; exceeding one returns {"error": "..."} and
// changes nothing):
//   * kMaxFileBytes   — 1 MiB per echo content (written or printed) and per copied file;
//   * kMaxTotalBytes  — 16 MiB of file content in the instance (names included);
//   * kMaxNodes       — 50 000 files and directories alive in the instance;
//   * kMaxMapEntries  — 200 000 directory entries over all contents dicts (shallow cp copies);
//   * find visits at most kMaxFindVisits entries and recurses at most kMaxRecursionDepth deep
//     (Python's recursion limit: "maximum recursion depth exceeded", raised);
//   * PublicState() stops descending below kMaxRecursionDepth (only reachable through the
//     self-containing directory that BFCL's degenerate cp(d, d) builds).
// Unreachable nodes (left behind by mv/rm) are garbage-collected before a limit is reported.
//
// Known deviation: a tuple used as a file/directory name (Python would store a tuple key) is
// answered with Python's "unhashable type" TypeError like a list.
#ifndef ENVTUNE_ENVSERVER_APIS_GORILLA_FILE_SYSTEM_H_
#define ENVTUNE_ENVSERVER_APIS_GORILLA_FILE_SYSTEM_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

class GorillaFileSystem : public ToolApiBase<GorillaFileSystem> {
 public:
  static constexpr size_t kMaxFileBytes = size_t{1} << 20;
  static constexpr size_t kMaxTotalBytes = size_t{16} << 20;
  static constexpr size_t kMaxNodes = 50000;
  static constexpr size_t kMaxMapEntries = 200000;
  static constexpr size_t kMaxFindVisits = 1000000;
  static constexpr int kMaxRecursionDepth = 990;

  GorillaFileSystem();
  GorillaFileSystem(const GorillaFileSystem& other);
  GorillaFileSystem& operator=(const GorillaFileSystem&) = delete;
  ~GorillaFileSystem() override;

  static const MethodTable& Methods();

  std::string_view ClassName() const override { return "GorillaFileSystem"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  PyValue PublicState() const override;
  bool PublicStateEquals(const PyValue& other) const override;

  CallOutcome Pwd(const std::vector<PyValue>& a);
  CallOutcome Ls(const std::vector<PyValue>& a);
  CallOutcome Cd(const std::vector<PyValue>& a);
  CallOutcome Mkdir(const std::vector<PyValue>& a);
  CallOutcome Touch(const std::vector<PyValue>& a);
  CallOutcome Echo(const std::vector<PyValue>& a);
  CallOutcome Cat(const std::vector<PyValue>& a);
  CallOutcome Find(const std::vector<PyValue>& a);
  CallOutcome Wc(const std::vector<PyValue>& a);
  CallOutcome Sort(const std::vector<PyValue>& a);
  CallOutcome Grep(const std::vector<PyValue>& a);
  CallOutcome Du(const std::vector<PyValue>& a);
  CallOutcome Tail(const std::vector<PyValue>& a);
  CallOutcome Diff(const std::vector<PyValue>& a);
  CallOutcome Mv(const std::vector<PyValue>& a);
  CallOutcome Rm(const std::vector<PyValue>& a);
  CallOutcome Rmdir(const std::vector<PyValue>& a);
  CallOutcome Cp(const std::vector<PyValue>& a);

  struct Node;
  // A Python dict name -> File/Directory (insertion ordered).
  struct Contents {
    std::vector<std::pair<std::string, Node*>> entries;
    Node* Get(std::string_view name) const;
    bool Erase(std::string_view name);
  };
  struct Node {
    bool is_dir = false;
    std::string name;
    PyValue content;            // files only (a str unless echo wrote another type)
    Node* parent = nullptr;     // directories only
    Contents* contents = nullptr;  // directories only
  };

 private:
  Node* NewFile(std::string name, PyValue content);
  Node* NewDir(std::string name, Node* parent, Contents* contents);
  Contents* NewContents();
  void LoadDirectory(const PyValue& contents, Node* dir, bool long_context);
  // Ensures room for the additions, collecting garbage first if needed. Returns the limit
  // error text when it still does not fit.
  std::optional<std::string> Reserve(size_t nodes, size_t bytes, size_t entries);
  void CollectGarbage();
  size_t NodeBytes(const Node* n) const;
  std::string CwdName() const { return current_->name; }
  // The checks before mkdir/touch (`cmd`) create `name` in the current directory. Returns the
  // outcome to give back instead (a raise for a bad argument type; "<cmd>: cannot <action>
  // '<name>': Invalid character" or "...': File exists", or with augmentation the matching hint),
  // or nullopt when `name` may be created.
  std::optional<CallOutcome> CheckNewName(const PyValue& name, const char* cmd,
                                          const char* action) const;
  // The entry `name` of the current directory that mv/rm/rmdir/cp (`cmd`) acts on. Returns the
  // outcome to give back instead (with augmentation first the path hint for a name with '/':
  // the source-path one when `is_source`, else the argument-path one; a raise for a bad argument
  // type; "<cmd>: cannot <verb> '<name>': No such file or directory", or with augmentation the
  // not-found hint naming `kind`), or nullopt with *item set.
  std::optional<CallOutcome> FindOperand(const PyValue& name, const char* cmd, const char* verb,
                                         bool is_source, const char* kind, Node** item) const;
  // The destination entry of mv/cp (`cmd`): a plain name in the current directory. Returns the
  // outcome to give back instead (a raise for a bad argument type; "<cmd>: path not allowed in
  // destination. ..." for a name with '/', or with augmentation the destination-path hint), or
  // nullopt with *dest set to the entry of that name (nullptr when there is none).
  std::optional<CallOutcome> FindDestination(const PyValue& destination, const char* cmd,
                                             Node** dest) const;
  // The error of wc/sort/grep/tail (`cmd`) when `name` is not a file of the current directory
  // (`item`: the directory found under that name, or nullptr): "<cmd>: <name>: No such file or
  // directory", or with augmentation the is-a-directory hint, the argument-path hint for a name
  // with '/' when `path_hint`, else the not-found hint.
  CallOutcome NoFileError(const char* cmd, const PyValue& name, const Node* item,
                          bool path_hint) const;

  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Contents>> maps_;
  Node* root_ = nullptr;
  Node* current_ = nullptr;
  bool long_context_ = false;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_GORILLA_FILE_SYSTEM_H_
