// GorillaFileSystem: see gorilla_file_system.h and shared/bfcl/spec/gorilla_file_system.md.
#include "envserver/apis/gorilla_file_system.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "envserver/apis/apis.h"

namespace envtune {
namespace {

using Node = GorillaFileSystem::Node;
using Contents = GorillaFileSystem::Contents;

constexpr std::string_view kInvalidNameChars = "|/\\?%*:\"><";

// ---------------------------------------------------------------------------------------------
// Augmented error texts (METHOD.md §5.1): condition -> text. $-placeholders per row.
// ---------------------------------------------------------------------------------------------
enum class Hint {
  kCdPath,        // cd argument is a path ($0 folder, $1 cwd)
  kCdMissing,     // cd target is not a directory of the current directory ($0 folder, $1 cwd)
  kNamePath,      // mkdir/touch/echo name contains "/" ($0 command, $1 name, $2 cwd)
  kNameChars,     // mkdir/touch/echo name has another forbidden character ($0 command, $1 name)
  kNameExists,    // mkdir/touch name exists ($0 command, $1 name, $2 cwd)
  kEchoDir,       // echo into a directory ($0 name)
  kArgPath,       // wc/sort/grep/tail/rm/rmdir argument contains "/" ($0 command, $1 name, $2 cwd)
  kIsDir,         // wc/sort/grep/tail on a directory ($0 command, $1 name)
  kNotFound,      // wc/sort/grep/tail/rm/rmdir/mv/cp: name not in cwd ($0 cmd, $1 name, $2 cwd, $3 kind)
  kDiffPath,      // diff with a path argument ($0 cwd)
  kDiffMissingBoth,  // ($0 name1, $1 name2, $2 cwd)
  kDiffMissingOne,   // ($0 name, $1 cwd)
  kDiffDirBoth,      // ($0 name1, $1 name2)
  kDiffDirOne,       // ($0 name)
  kSourcePath,    // mv/cp source contains "/" ($0 command, $1 source, $2 cwd)
  kDestPath,      // mv/cp destination contains "/" ($0 command, $1 destination, $2 cwd)
  kMvExists,      // mv into a directory already holding the name ($0 source, $1 destination)
  kMvDestFile,    // mv onto an existing file ($0 source, $1 destination)
};

struct HintRow {
  Hint hint;
  const char* text;
};

constexpr HintRow kHints[] = {
    {Hint::kCdPath,
     "cd: '$0': paths are not allowed, cd one directory at a time: give the name of a directory "
     "inside the current directory '$1' (or '..' for the parent directory)."},
    {Hint::kCdMissing,
     "cd: '$0': no directory named '$0' in the current directory '$1'. Use ls to see what the "
     "current directory contains, or cd .. to go up one level."},
    {Hint::kNamePath,
     "$0: '$1': paths are not allowed; give only a name, it is used in the current directory "
     "'$2' (cd into the target directory first)."},
    {Hint::kNameChars,
     "$0: '$1': invalid character; names cannot contain any of these characters: "
     "| / \\ ? % * : \" > <"},
    {Hint::kNameExists,
     "$0: '$1': a file or directory named '$1' already exists in the current directory '$2'."},
    {Hint::kEchoDir,
     "echo: cannot write to '$0': '$0' is a directory; echo can only write into a file."},
    {Hint::kArgPath,
     "$0: '$1': paths are not allowed; give only the name of an item in the current directory "
     "'$2' (cd into its directory first)."},
    {Hint::kIsDir, "$0: '$1': is a directory; $0 works only on files."},
    {Hint::kNotFound,
     "$0: '$1': no $3 named '$1' in the current directory '$2'. Use ls to list the current "
     "directory or find to locate it."},
    {Hint::kDiffPath,
     "diff: paths are not allowed; give only names of files in the current directory '$0'."},
    {Hint::kDiffMissingBoth,
     "diff: neither '$0' nor '$1' exists in the current directory '$2'."},
    {Hint::kDiffMissingOne, "diff: no file named '$0' in the current directory '$1'."},
    {Hint::kDiffDirBoth,
     "diff: '$0' and '$1' are directories; diff can only compare two files."},
    {Hint::kDiffDirOne, "diff: '$0' is a directory; diff can only compare two files."},
    {Hint::kSourcePath,
     "$0: '$1': paths are not allowed in the source; give only the name of an item in the "
     "current directory '$2'."},
    {Hint::kDestPath,
     "$0: '$1': paths are not allowed in the destination; give only a file or directory name "
     "in the current directory '$2'."},
    {Hint::kMvExists,
     "mv: cannot move '$0' to '$1/$0': an item named '$0' already exists in the destination "
     "directory '$1'."},
    {Hint::kMvDestFile,
     "mv: cannot move '$0' to '$1': '$1' is an existing file and overwriting is not allowed; "
     "give a new name or the name of an existing directory."},
};

std::string HintText(Hint hint, const std::string& a0 = "", const std::string& a1 = "",
                     const std::string& a2 = "", const std::string& a3 = "") {
  for (const HintRow& row : kHints) {
    if (row.hint == hint) return absl::Substitute(row.text, a0, a1, a2, a3);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Python helpers.
// ---------------------------------------------------------------------------------------------
PyValue Err(std::string message) {
  PyDict d;
  d.Set("error", PyValue::Str(std::move(message)));
  return PyValue::Dict(std::move(d));
}
CallOutcome ErrOut(std::string message) { return CallOutcome::Return(Err(std::move(message))); }

PyValue One(std::string_view key, PyValue value) {
  PyDict d;
  d.Set(key, std::move(value));
  return PyValue::Dict(std::move(d));
}

std::string TypeName(const PyValue& v) { return std::string(v.TypeName()); }
std::string AttrError(const PyValue& v, const std::string& attr) {
  return absl::StrCat("'", TypeName(v), "' object has no attribute '", attr, "'");
}
std::string NotIterable(const PyValue& v) {
  return absl::StrCat("argument of type '", TypeName(v), "' is not iterable");
}
bool Unhashable(const PyValue& v) {
  // Tuples are treated as unhashable too (documented deviation: they would become dict keys).
  return v.is_list() || v.is_dict() || v.is_set() || v.is_tuple();
}
std::string UnhashableError(const PyValue& v) {
  return absl::StrCat("unhashable type: '", TypeName(v), "'");
}
// f"{v}".
std::string Fmt(const PyValue& v) { return v.is_str() ? v.as_str() : v.Str(); }

// Decodes one UTF-8 code point at s[i]; returns its length (invalid bytes count as one).
size_t DecodeAt(std::string_view s, size_t i, char32_t* cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = 1;
  char32_t v = c;
  if (c >= 0xC0 && c < 0xE0) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c < 0xF0) {
    len = 3;
    v = c & 0x0F;
  } else if (c >= 0xF0 && c < 0xF8) {
    len = 4;
    v = c & 0x07;
  }
  if (len > 1) {
    if (i + len > s.size()) {
      *cp = c;
      return 1;
    }
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        *cp = c;
        return 1;
      }
      v = (v << 6) | (cc & 0x3F);
    }
  }
  *cp = v;
  return len;
}

bool IsLineBreak(char32_t c) {
  switch (c) {
    case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E: case 0x85:
    case 0x2028: case 0x2029:
      return true;
    default:
      return false;
  }
}

bool IsPySpace(char32_t c) {
  if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return true;
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// Python str.splitlines().
std::vector<std::string> SplitLines(std::string_view s) {
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    char32_t cp;
    size_t len = DecodeAt(s, i, &cp);
    if (IsLineBreak(cp)) {
      lines.emplace_back(s.substr(start, i - start));
      i += len;
      if (cp == 0x0D && i < s.size() && s[i] == '\n') ++i;
      start = i;
    } else {
      i += len;
    }
  }
  if (start < s.size()) lines.emplace_back(s.substr(start));
  return lines;
}

// len(str.split()).
int64_t CountWords(std::string_view s) {
  int64_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    i += DecodeAt(s, i, &cp);
    if (IsPySpace(cp)) {
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      ++words;
    }
  }
  return words;
}

int64_t CountCodePoints(std::string_view s) {
  int64_t n = 0;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    i += DecodeAt(s, i, &cp);
    ++n;
  }
  return n;
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out.append(sep);
    out.append(parts[i]);
  }
  return out;
}

PyValue StrList(const std::vector<std::string>& items) {
  PyList list;
  list.reserve(items.size());
  for (const std::string& s : items) list.push_back(PyValue::Str(s));
  return PyValue::List(std::move(list));
}

// `c in name for c in '|/\\?%*:"><'`: sets *valid; returns a TypeError text for non-iterables.
std::optional<std::string> CheckName(const PyValue& name, bool* valid) {
  *valid = true;
  if (name.is_str()) {
    *valid = name.as_str().find_first_of(kInvalidNameChars) == std::string::npos;
    return std::nullopt;
  }
  if (name.is_list() || name.is_tuple() || name.is_set() || name.is_dict()) {
    auto hit = [](const PyValue& v) {
      return v.is_str() && v.as_str().size() == 1 &&
             kInvalidNameChars.find(v.as_str()[0]) != std::string_view::npos;
    };
    if (name.is_dict()) {
      for (const auto& [k, v] : name.dict()) *valid = *valid && !hit(k);
    } else {
      for (const PyValue& v : name.items()) *valid = *valid && !hit(v);
    }
    return std::nullopt;
  }
  return NotIterable(name);
}

// `"/" in value` for the mv/cp destination.
std::optional<std::string> ContainsSlash(const PyValue& v, bool* has) {
  *has = false;
  if (v.is_str()) {
    *has = v.as_str().find('/') != std::string::npos;
    return std::nullopt;
  }
  if (v.is_list() || v.is_tuple() || v.is_set()) {
    for (const PyValue& x : v.items()) *has = *has || (x.is_str() && x.as_str() == "/");
    return std::nullopt;
  }
  if (v.is_dict()) {
    for (const auto& [k, x] : v.dict()) *has = *has || (k.is_str() && k.as_str() == "/");
    return std::nullopt;
  }
  return NotIterable(v);
}

bool StrHasSlash(const PyValue& v) { return v.is_str() && v.as_str().find('/') != std::string::npos; }

// `key in dir.contents` then `dir._get_item(key)`: *found is the node or nullptr. Returns the
// TypeError text for unhashable keys.
std::optional<std::string> Lookup(const Node* dir, const PyValue& key, Node** found) {
  *found = nullptr;
  if (Unhashable(key)) return UnhashableError(key);
  if (key.is_str()) *found = dir->contents->Get(key.as_str());
  return std::nullopt;
}

// Node content as a str; nullptr when echo stored another type.
const std::string* ContentStr(const Node* file) {
  return file->content.is_str() ? &file->content.as_str() : nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Arena.
// ---------------------------------------------------------------------------------------------
Node* GorillaFileSystem::Contents::Get(std::string_view name) const {
  for (const auto& [k, n] : entries) {
    if (k == name) return n;
  }
  return nullptr;
}

bool GorillaFileSystem::Contents::Erase(std::string_view name) {
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->first == name) {
      entries.erase(it);
      return true;
    }
  }
  return false;
}

GorillaFileSystem::GorillaFileSystem() { LoadScenario(PyValue::Dict(), false); }

GorillaFileSystem::GorillaFileSystem(const GorillaFileSystem& other)
    : ToolApiBase<GorillaFileSystem>(other), long_context_(other.long_context_) {
  std::unordered_map<const Node*, Node*> node_map;
  std::unordered_map<const Contents*, Contents*> map_map;
  node_map[nullptr] = nullptr;
  map_map[nullptr] = nullptr;
  for (const auto& n : other.nodes_) {
    nodes_.push_back(std::make_unique<Node>(*n));
    node_map[n.get()] = nodes_.back().get();
  }
  for (const auto& m : other.maps_) {
    maps_.push_back(std::make_unique<Contents>(*m));
    map_map[m.get()] = maps_.back().get();
  }
  for (auto& n : nodes_) {
    n->parent = node_map[n->parent];
    n->contents = map_map[n->contents];
  }
  for (auto& m : maps_) {
    for (auto& entry : m->entries) entry.second = node_map[entry.second];
  }
  root_ = node_map[other.root_];
  current_ = node_map[other.current_];
}

GorillaFileSystem::~GorillaFileSystem() = default;

Node* GorillaFileSystem::NewFile(std::string name, PyValue content) {
  auto n = std::make_unique<Node>();
  n->is_dir = false;
  n->name = std::move(name);
  n->content = std::move(content);
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

Contents* GorillaFileSystem::NewContents() {
  maps_.push_back(std::make_unique<Contents>());
  return maps_.back().get();
}

Node* GorillaFileSystem::NewDir(std::string name, Node* parent, Contents* contents) {
  auto n = std::make_unique<Node>();
  n->is_dir = true;
  n->name = std::move(name);
  n->parent = parent;
  n->contents = contents != nullptr ? contents : NewContents();
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

size_t GorillaFileSystem::NodeBytes(const Node* n) const {
  size_t bytes = n->name.size();
  if (!n->is_dir) bytes += n->content.is_str() ? n->content.as_str().size() : 16;
  return bytes;
}

void GorillaFileSystem::CollectGarbage() {
  std::unordered_set<const Node*> live_nodes;
  std::unordered_set<const Contents*> live_maps;
  std::vector<const Node*> stack = {root_, current_};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (n == nullptr || !live_nodes.insert(n).second) continue;
    if (!n->is_dir) continue;
    stack.push_back(n->parent);
    if (live_maps.insert(n->contents).second) {
      for (const auto& entry : n->contents->entries) stack.push_back(entry.second);
    }
  }
  std::erase_if(nodes_, [&](const std::unique_ptr<Node>& n) { return !live_nodes.count(n.get()); });
  std::erase_if(maps_,
                [&](const std::unique_ptr<Contents>& m) { return !live_maps.count(m.get()); });
}

std::optional<std::string> GorillaFileSystem::Reserve(size_t nodes, size_t bytes,
                                                      size_t entries) {
  auto usage = [&](size_t* n, size_t* b, size_t* e) {
    *n = nodes_.size();
    *b = 0;
    *e = 0;
    for (const auto& node : nodes_) *b += NodeBytes(node.get());
    for (const auto& m : maps_) *e += m->entries.size();
  };
  size_t n, b, e;
  usage(&n, &b, &e);
  auto fits = [&] {
    return n + nodes <= kMaxNodes && b + bytes <= kMaxTotalBytes && e + entries <= kMaxMapEntries;
  };
  if (fits()) return std::nullopt;
  CollectGarbage();
  usage(&n, &b, &e);
  if (fits()) return std::nullopt;
  return absl::StrCat("file system limit reached (at most ", kMaxNodes,
                      " files and directories, ", kMaxTotalBytes,
                      " bytes of content and names, ", kMaxMapEntries,
                      " directory entries); remove something first");
}

// ---------------------------------------------------------------------------------------------
// Scenario and state.
// ---------------------------------------------------------------------------------------------
void GorillaFileSystem::LoadDirectory(const PyValue& contents, Node* dir, bool long_context) {
  const PyValue* lc = context().long_context_constants;
  auto list_of = [&](std::string_view key) -> const PyValue* {
    if (lc == nullptr || !lc->is_dict()) return nullptr;
    const PyValue* v = lc->dict().Find(key);
    return v != nullptr && v->is_list() ? v : nullptr;
  };
  bool bottommost = true;
  if (contents.is_dict()) {
    for (const auto& [key, data] : contents.dict()) {
      if (!key.is_str() || !data.is_dict()) continue;
      const PyValue* type = data.dict().Find("type");
      if (type == nullptr || !type->is_str()) continue;
      if (type->as_str() == "directory") {
        bottommost = false;
        Node* sub = NewDir(key.as_str(), dir, nullptr);
        const PyValue* sub_contents = data.dict().Find("contents");
        LoadDirectory(sub_contents != nullptr ? *sub_contents : PyValue::Dict(), sub, long_context);
        // parent.contents[dir_name] = new_dir (replaces in place if the key repeats).
        bool replaced = false;
        for (auto& entry : dir->contents->entries) {
          if (entry.first == key.as_str()) {
            entry.second = sub;
            replaced = true;
          }
        }
        if (!replaced) dir->contents->entries.emplace_back(key.as_str(), sub);
      } else if (type->as_str() == "file") {
        const PyValue* c = data.dict().Find("content");
        PyValue content = c != nullptr ? *c : PyValue::Str("");
        if (long_context && content.is_str()) {
          bool tail_used = false;
          if (const PyValue* used = list_of("FILES_TAIL_USED")) {
            for (const PyValue& u : used->items()) tail_used = tail_used || u == key;
          }
          const PyValue* ext =
              lc != nullptr && lc->is_dict() ? lc->dict().Find("FILE_CONTENT_EXTENSION") : nullptr;
          if (!tail_used && ext != nullptr && ext->is_str()) content.as_str() += ext->as_str();
        }
        Node* file = NewFile(key.as_str(), std::move(content));
        bool replaced = false;
        for (auto& entry : dir->contents->entries) {
          if (entry.first == key.as_str()) {
            entry.second = file;
            replaced = true;
          }
        }
        if (!replaced) dir->contents->entries.emplace_back(key.as_str(), file);
      }
    }
  }
  if (bottommost && long_context) {
    if (const PyValue* names = list_of("POPULATE_FILE_EXTENSION")) {
      for (const PyValue& name : names->items()) {
        if (!name.is_str() || dir->contents->Get(name.as_str()) != nullptr) continue;
        dir->contents->entries.emplace_back(name.as_str(), NewFile(name.as_str(), PyValue::Str("")));
      }
    }
  }
}

void GorillaFileSystem::LoadScenario(const PyValue& scenario, bool long_context) {
  nodes_.clear();
  maps_.clear();
  long_context_ = long_context;
  root_ = NewDir("/", nullptr, nullptr);
  current_ = root_;  // the old current_ was freed above; CollectGarbage reads it
  if (scenario.is_dict()) {
    const PyValue* root = scenario.dict().Find("root");
    if (root != nullptr && root->is_dict() && !root->dict().empty()) {
      const auto& [name, data] = root->dict().entries().front();
      root_ = NewDir(name.is_str() ? name.as_str() : name.Str(), nullptr, nullptr);
      const PyValue* contents = data.is_dict() ? data.dict().Find("contents") : nullptr;
      LoadDirectory(contents != nullptr ? *contents : PyValue::Dict(), root_, long_context);
      CollectGarbage();
    }
  }
  current_ = root_;
}

namespace {
PyValue TreeState(const Node* n, int depth) {
  PyDict d;
  if (n->is_dir) {
    PyDict contents;
    if (depth < GorillaFileSystem::kMaxRecursionDepth) {
      for (const auto& [name, child] : n->contents->entries) {
        contents.Set(name, TreeState(child, depth + 1));
      }
    }
    d.Set("contents", PyValue::Dict(std::move(contents)));
    d.Set("name", PyValue::Str(n->name));
    d.Set("type", PyValue::Str("directory"));
  } else {
    d.Set("content", n->content);
    d.Set("name", PyValue::Str(n->name));
    d.Set("type", PyValue::Str("file"));
  }
  return PyValue::Dict(std::move(d));
}

// TreeState(n, depth) == v, without building TreeState.
bool TreeStateEquals(const Node* n, int depth, const PyValue& v) {
  if (!v.is_dict() || v.dict().size() != 3) return false;
  const PyDict& d = v.dict();
  const PyValue* name = d.Find("name");
  const PyValue* type = d.Find("type");
  if (name == nullptr || !name->is_str() || name->as_str() != n->name) return false;
  if (type == nullptr || !type->is_str() || type->as_str() != (n->is_dir ? "directory" : "file")) return false;
  if (!n->is_dir) {
    const PyValue* content = d.Find("content");
    return content != nullptr && *content == n->content;
  }
  const PyValue* contents = d.Find("contents");
  if (contents == nullptr || !contents->is_dict()) return false;
  if (depth >= GorillaFileSystem::kMaxRecursionDepth) return contents->dict().empty();
  if (contents->dict().size() != n->contents->entries.size()) return false;
  for (const auto& [child_name, child] : n->contents->entries) {
    const PyValue* c = contents->dict().Find(child_name);
    if (c == nullptr || !TreeStateEquals(child, depth + 1, *c)) return false;
  }
  return true;
}
}  // namespace

bool GorillaFileSystem::PublicStateEquals(const PyValue& other) const {
  if (!other.is_dict() || other.dict().size() != 2) return false;
  const PyValue* lc = other.dict().Find("long_context");
  const PyValue* root = other.dict().Find("root");
  return lc != nullptr && *lc == PyValue::Bool(long_context_) && root != nullptr && TreeStateEquals(root_, 0, *root);
}

PyValue GorillaFileSystem::PublicState() const {
  PyDict d;
  d.Set("long_context", PyValue::Bool(long_context_));
  d.Set("root", TreeState(root_, 0));
  return PyValue::Dict(std::move(d));
}

// ---------------------------------------------------------------------------------------------
// Methods.
// ---------------------------------------------------------------------------------------------
const GorillaFileSystem::MethodTable& GorillaFileSystem::Methods() {
  static const auto* table = new MethodTable{
      {"pwd", {}, &GorillaFileSystem::Pwd},
      {"ls", {{"a", PyValue::Bool(false)}}, &GorillaFileSystem::Ls},
      {"cd", {{"folder", std::nullopt}}, &GorillaFileSystem::Cd},
      {"mkdir", {{"dir_name", std::nullopt}}, &GorillaFileSystem::Mkdir},
      {"touch", {{"file_name", std::nullopt}}, &GorillaFileSystem::Touch},
      {"echo", {{"content", std::nullopt}, {"file_name", PyValue::None()}},
       &GorillaFileSystem::Echo},
      {"cat", {{"file_name", std::nullopt}}, &GorillaFileSystem::Cat},
      {"find", {{"path", PyValue::Str(".")}, {"name", PyValue::None()}},
       &GorillaFileSystem::Find},
      {"wc", {{"file_name", std::nullopt}, {"mode", PyValue::Str("l")}}, &GorillaFileSystem::Wc},
      {"sort", {{"file_name", std::nullopt}}, &GorillaFileSystem::Sort},
      {"grep", {{"file_name", std::nullopt}, {"pattern", std::nullopt}},
       &GorillaFileSystem::Grep},
      {"du", {{"human_readable", PyValue::Bool(false)}}, &GorillaFileSystem::Du},
      {"tail", {{"file_name", std::nullopt}, {"lines", PyValue::Int(10)}},
       &GorillaFileSystem::Tail},
      {"diff", {{"file_name1", std::nullopt}, {"file_name2", std::nullopt}},
       &GorillaFileSystem::Diff},
      {"mv", {{"source", std::nullopt}, {"destination", std::nullopt}}, &GorillaFileSystem::Mv},
      {"rm", {{"file_name", std::nullopt}}, &GorillaFileSystem::Rm},
      {"rmdir", {{"dir_name", std::nullopt}}, &GorillaFileSystem::Rmdir},
      {"cp", {{"source", std::nullopt}, {"destination", std::nullopt}}, &GorillaFileSystem::Cp},
  };
  return *table;
}

CallOutcome GorillaFileSystem::Pwd(const std::vector<PyValue>&) {
  std::vector<std::string> names;
  for (const Node* d = current_; d != nullptr; d = d->parent) names.push_back(d->name);
  std::reverse(names.begin(), names.end());
  return CallOutcome::Return(
      One("current_working_directory", PyValue::Str("/" + Join(names, "/"))));
}

CallOutcome GorillaFileSystem::Ls(const std::vector<PyValue>& a) {
  bool all = a[0].Truthy();
  std::vector<std::string> names;
  for (const auto& [name, node] : current_->contents->entries) {
    if (all || name.empty() || name[0] != '.') names.push_back(name);
  }
  return CallOutcome::Return(One("current_directory_content", StrList(names)));
}

namespace {
// _navigate_to_directory(path) for a str path: the target or nullptr.
Node* Navigate(Node* root, Node* current, const std::string& path) {
  if (path == ".") return current;
  if (path == "/") return root;
  size_t b = path.find_first_not_of('/');
  std::string stripped;
  if (b != std::string::npos) {
    size_t e = path.find_last_not_of('/');
    stripped = path.substr(b, e - b + 1);
  }
  Node* dir = !path.empty() && path[0] == '/' ? root : current;
  size_t start = 0;
  while (true) {
    size_t slash = stripped.find('/', start);
    std::string part =
        stripped.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    Node* next = part == "." ? dir : dir->contents->Get(part);
    if (next == nullptr || !next->is_dir) return nullptr;
    dir = next;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return dir;
}

std::string RStripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}
}  // namespace

CallOutcome GorillaFileSystem::Cd(const std::vector<PyValue>& a) {
  const PyValue& arg = a[0];
  if (!arg.is_str()) return CallOutcome::Raise(AttrError(arg, "rstrip"));
  std::string folder = RStripSlash(arg.as_str());
  if (folder.empty()) folder = "/";
  if (folder != "." && folder != ".." && folder != "/" && folder.find('/') != std::string::npos) {
    if (augment()) return ErrOut(HintText(Hint::kCdPath, folder, CwdName()));
    return ErrOut(absl::StrCat("cd: ", folder,
                               ": Unsupported path. Only one folder level at a time is supported."));
  }
  if (folder == "..") {
    if (current_->parent != nullptr) {
      current_ = current_->parent;
      return CallOutcome::Return(PyValue::Dict());
    }
    if (current_ == root_) {
      return ErrOut("Current directory is already the root. Cannot go back.");
    }
    return ErrOut("cd: ..: No such directory");
  }
  Node* target = Navigate(root_, current_, folder);
  if (target == nullptr) {
    if (augment()) return ErrOut(HintText(Hint::kCdMissing, folder, CwdName()));
    return ErrOut(absl::StrCat("cd: '", folder, "': No such file or directory"));
  }
  current_ = target;
  return CallOutcome::Return(One("current_working_directory", PyValue::Str(target->name)));
}

std::optional<CallOutcome> GorillaFileSystem::CheckNewName(const PyValue& name, const char* cmd,
                                                           const char* action) const {
  bool valid;
  if (auto err = CheckName(name, &valid)) return CallOutcome::Raise(*err);
  if (!valid) {
    if (augment()) {
      return ErrOut(StrHasSlash(name) ? HintText(Hint::kNamePath, cmd, Fmt(name), CwdName())
                                      : HintText(Hint::kNameChars, cmd, Fmt(name)));
    }
    return ErrOut(absl::StrCat(cmd, ": cannot ", action, " '", Fmt(name), "': Invalid character"));
  }
  Node* existing;
  if (auto err = Lookup(current_, name, &existing)) return CallOutcome::Raise(*err);
  if (existing != nullptr) {
    if (augment()) return ErrOut(HintText(Hint::kNameExists, cmd, Fmt(name), CwdName()));
    return ErrOut(absl::StrCat(cmd, ": cannot ", action, " '", Fmt(name), "': File exists"));
  }
  return std::nullopt;
}

std::optional<CallOutcome> GorillaFileSystem::FindOperand(const PyValue& name, const char* cmd,
                                                          const char* verb, bool is_source,
                                                          const char* kind, Node** item) const {
  if (augment() && StrHasSlash(name)) {
    return ErrOut(HintText(is_source ? Hint::kSourcePath : Hint::kArgPath, cmd, Fmt(name),
                           CwdName()));
  }
  if (auto err = Lookup(current_, name, item)) return CallOutcome::Raise(*err);
  if (*item == nullptr) {
    if (augment()) return ErrOut(HintText(Hint::kNotFound, cmd, Fmt(name), CwdName(), kind));
    return ErrOut(
        absl::StrCat(cmd, ": cannot ", verb, " '", Fmt(name), "': No such file or directory"));
  }
  return std::nullopt;
}

std::optional<CallOutcome> GorillaFileSystem::FindDestination(const PyValue& destination,
                                                              const char* cmd, Node** dest) const {
  bool slash;
  if (auto err = ContainsSlash(destination, &slash)) return CallOutcome::Raise(*err);
  if (slash) {
    if (augment()) return ErrOut(HintText(Hint::kDestPath, cmd, Fmt(destination), CwdName()));
    return ErrOut(absl::StrCat(
        cmd, ": path not allowed in destination. Provide only a file or directory name."));
  }
  if (auto err = Lookup(current_, destination, dest)) return CallOutcome::Raise(*err);
  return std::nullopt;
}

CallOutcome GorillaFileSystem::NoFileError(const char* cmd, const PyValue& name, const Node* item,
                                           bool path_hint) const {
  if (augment()) {
    if (item != nullptr) return ErrOut(HintText(Hint::kIsDir, cmd, Fmt(name)));
    if (path_hint && StrHasSlash(name)) {
      return ErrOut(HintText(Hint::kArgPath, cmd, Fmt(name), CwdName()));
    }
    return ErrOut(HintText(Hint::kNotFound, cmd, Fmt(name), CwdName(), "file"));
  }
  return ErrOut(absl::StrCat(cmd, ": ", Fmt(name), ": No such file or directory"));
}

CallOutcome GorillaFileSystem::Mkdir(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  if (auto err = CheckNewName(name, "mkdir", "create directory")) return *std::move(err);
  if (auto err = Reserve(1, name.as_str().size(), 1)) return ErrOut("mkdir: " + *err);
  current_->contents->entries.emplace_back(name.as_str(), NewDir(name.as_str(), current_, nullptr));
  return CallOutcome::Return(PyValue::None());
}

CallOutcome GorillaFileSystem::Touch(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  if (auto err = CheckNewName(name, "touch", "touch")) return *std::move(err);
  if (auto err = Reserve(1, name.as_str().size(), 1)) return ErrOut("touch: " + *err);
  current_->contents->entries.emplace_back(name.as_str(),
                                           NewFile(name.as_str(), PyValue::Str("")));
  return CallOutcome::Return(PyValue::None());
}

CallOutcome GorillaFileSystem::Echo(const std::vector<PyValue>& a) {
  const PyValue& content = a[0];
  const PyValue& name = a[1];
  if (content.is_str() && content.as_str().size() > kMaxFileBytes) {
    return ErrOut(absl::StrCat("echo: content exceeds the ", kMaxFileBytes, "-byte limit"));
  }
  if (name.is_none()) return CallOutcome::Return(One("terminal_output", content));
  bool valid;
  if (auto err = CheckName(name, &valid)) return CallOutcome::Raise(*err);
  if (!valid) {
    if (augment()) {
      return ErrOut(StrHasSlash(name) ? HintText(Hint::kNamePath, "echo", Fmt(name), CwdName())
                                      : HintText(Hint::kNameChars, "echo", Fmt(name)));
    }
    return ErrOut(absl::StrCat("echo: cannot write to '", Fmt(name), "': Invalid character"));
  }
  if (!name.Truthy()) return CallOutcome::Return(One("terminal_output", content));
  Node* target;
  if (auto err = Lookup(current_, name, &target)) return CallOutcome::Raise(*err);
  if (target == nullptr) {
    return ErrOut(absl::StrCat("echo: cannot write to '", Fmt(name), "': No such file"));
  }
  if (target->is_dir) {
    if (augment()) return ErrOut(HintText(Hint::kEchoDir, Fmt(name)));
    return CallOutcome::Raise("'Directory' object has no attribute '_write'");
  }
  size_t new_bytes = content.is_str() ? content.as_str().size() : 16;
  if (new_bytes > kMaxFileBytes) {
    return ErrOut(absl::StrCat("echo: cannot write to '", Fmt(name), "': content exceeds the ",
                               kMaxFileBytes, "-byte file size limit"));
  }
  size_t old_bytes = NodeBytes(target) - target->name.size();
  if (new_bytes > old_bytes) {
    if (auto err = Reserve(0, new_bytes - old_bytes, 0)) return ErrOut("echo: " + *err);
  }
  target->content = content;
  return CallOutcome::Return(PyValue::None());
}

CallOutcome GorillaFileSystem::Cat(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  bool valid;
  if (auto err = CheckName(name, &valid)) return CallOutcome::Raise(*err);
  if (!valid) return ErrOut(absl::StrCat("cat: '", Fmt(name), "': Invalid character"));
  Node* item;
  if (auto err = Lookup(current_, name, &item)) return CallOutcome::Raise(*err);
  if (item == nullptr) {
    return ErrOut(absl::StrCat("cat: '", Fmt(name), "': No such file or directory"));
  }
  if (item->is_dir) return ErrOut(absl::StrCat("cat: '", Fmt(name), "': Is a directory"));
  return CallOutcome::Return(One("file_content", item->content));
}

CallOutcome GorillaFileSystem::Find(const std::vector<PyValue>& a) {
  const PyValue& path = a[0];
  const PyValue& name = a[1];
  Node* target = nullptr;
  if (path.is_none() || (path.is_str() && path.as_str() == ".")) {
    target = current_;
  } else if (path.is_str() && path.as_str() == "/") {
    target = root_;
  } else if (!path.is_str()) {
    return CallOutcome::Raise(AttrError(path, "strip"));
  } else {
    target = Navigate(root_, current_, path.as_str());
    if (target == nullptr) {
      return ErrOut(absl::StrCat("find: '", path.as_str(), "': No such file or directory"));
    }
  }
  if (!path.is_str()) return CallOutcome::Raise(AttrError(path, "rstrip"));
  std::string base = RStripSlash(path.as_str());
  std::vector<std::string> matches;
  size_t visits = 0;
  std::optional<std::string> failure;
  // Explicit recursion mirrors Python's recursive_search (depth-limited like Python).
  auto search = [&](auto&& self, const Node* dir, const std::string& base_path,
                    int depth) -> bool {
    if (depth > kMaxRecursionDepth) {
      failure = "maximum recursion depth exceeded";
      return false;
    }
    for (const auto& [item_name, item] : dir->contents->entries) {
      if (++visits > kMaxFindVisits) {
        failure = absl::StrCat("find: search aborted after visiting ", kMaxFindVisits,
                               " entries");
        return false;
      }
      std::string item_path = absl::StrCat(base_path, "/", item_name);
      if (name.is_none()) {
        matches.push_back(item_path);
      } else if (!name.is_str()) {
        failure = absl::StrCat("'in <string>' requires string as left operand, not ",
                               TypeName(name));
        return false;
      } else if (item_name.find(name.as_str()) != std::string::npos) {
        matches.push_back(item_path);
      }
      if (item->is_dir && !self(self, item, item_path, depth + 1)) return false;
    }
    return true;
  };
  if (!search(search, target, base, 1)) {
    if (failure->rfind("find: ", 0) == 0) return ErrOut(*failure);
    return CallOutcome::Raise(*failure);
  }
  return CallOutcome::Return(One("matches", StrList(matches)));
}

namespace {
// The common "present and a file" pattern. Returns the TypeError text for unhashable names.
struct FileLookup {
  Node* item = nullptr;
  bool is_file() const { return item != nullptr && !item->is_dir; }
};
}  // namespace

CallOutcome GorillaFileSystem::Wc(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  const PyValue& mode = a[1];
  std::string m = mode.is_str() ? mode.as_str() : "";
  if (!mode.is_str() || (m != "l" && m != "w" && m != "c")) {
    return ErrOut(absl::StrCat("wc: invalid mode '", Fmt(mode), "'"));
  }
  if (augment() && StrHasSlash(name)) {
    return ErrOut(HintText(Hint::kArgPath, "wc", Fmt(name), CwdName()));
  }
  Node* item;
  if (auto err = Lookup(current_, name, &item)) return CallOutcome::Raise(*err);
  if (item != nullptr && !item->is_dir) {
    const std::string* text = ContentStr(item);
    PyDict d;
    if (m == "l") {
      if (text == nullptr) return CallOutcome::Raise(AttrError(item->content, "splitlines"));
      d.Set("count", PyValue::Int(static_cast<int64_t>(SplitLines(*text).size())));
      d.Set("type", PyValue::Str("lines"));
    } else if (m == "w") {
      if (text == nullptr) return CallOutcome::Raise(AttrError(item->content, "split"));
      d.Set("count", PyValue::Int(CountWords(*text)));
      d.Set("type", PyValue::Str("words"));
    } else {
      int64_t n;
      if (text != nullptr) {
        n = CountCodePoints(*text);
      } else if (item->content.is_list() || item->content.is_tuple() || item->content.is_set()) {
        n = static_cast<int64_t>(item->content.items().size());
      } else if (item->content.is_dict()) {
        n = static_cast<int64_t>(item->content.dict().size());
      } else {
        return CallOutcome::Raise(
            absl::StrCat("object of type '", TypeName(item->content), "' has no len()"));
      }
      d.Set("count", PyValue::Int(n));
      d.Set("type", PyValue::Str("characters"));
    }
    return CallOutcome::Return(PyValue::Dict(std::move(d)));
  }
  return NoFileError("wc", name, item, /*path_hint=*/false);
}

CallOutcome GorillaFileSystem::Sort(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  Node* item;
  if (auto err = Lookup(current_, name, &item)) return CallOutcome::Raise(*err);
  if (item != nullptr && !item->is_dir) {
    const std::string* text = ContentStr(item);
    if (text == nullptr) return CallOutcome::Raise(AttrError(item->content, "splitlines"));
    std::vector<std::string> lines = SplitLines(*text);
    std::sort(lines.begin(), lines.end());
    return CallOutcome::Return(One("sorted_content", PyValue::Str(Join(lines, "\n"))));
  }
  return NoFileError("sort", name, item, /*path_hint=*/true);
}

CallOutcome GorillaFileSystem::Grep(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  const PyValue& pattern = a[1];
  if (augment() && StrHasSlash(name)) {
    return ErrOut(HintText(Hint::kArgPath, "grep", Fmt(name), CwdName()));
  }
  Node* item;
  if (auto err = Lookup(current_, name, &item)) return CallOutcome::Raise(*err);
  if (item != nullptr && !item->is_dir) {
    const std::string* text = ContentStr(item);
    if (text == nullptr) return CallOutcome::Raise(AttrError(item->content, "splitlines"));
    std::vector<std::string> lines = SplitLines(*text);
    std::vector<std::string> matching;
    for (const std::string& line : lines) {
      if (!pattern.is_str()) {
        return CallOutcome::Raise(absl::StrCat(
            "'in <string>' requires string as left operand, not ", TypeName(pattern)));
      }
      if (line.find(pattern.as_str()) != std::string::npos) matching.push_back(line);
    }
    return CallOutcome::Return(One("matching_lines", StrList(matching)));
  }
  return NoFileError("grep", name, item, /*path_hint=*/false);
}

CallOutcome GorillaFileSystem::Du(const std::vector<PyValue>& a) {
  // get_size recursion over the current directory (shared maps are counted each time reached).
  std::optional<std::string> failure;
  auto size_of = [&](auto&& self, const Node* n, int depth) -> uint64_t {
    if (failure) return 0;
    if (!n->is_dir) {
      if (!n->content.is_str()) {
        failure = AttrError(n->content, "encode");
        return 0;
      }
      return n->content.as_str().size();
    }
    if (depth > kMaxRecursionDepth) {
      failure = "maximum recursion depth exceeded";
      return 0;
    }
    uint64_t total = 0;
    for (const auto& entry : n->contents->entries) total += self(self, entry.second, depth + 1);
    return total;
  };
  uint64_t total = size_of(size_of, current_, 1);
  if (failure) return CallOutcome::Raise(*failure);
  std::string text;
  if (a[0].Truthy()) {
    double size = static_cast<double>(total);
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    bool done = false;
    for (const char* unit : units) {
      if (size < 1024) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.2f %s", size, unit);
        text = buf;
        done = true;
        break;
      }
      size /= 1024;
    }
    if (!done) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.2f PB", size);
      text = buf;
    }
  } else {
    text = absl::StrCat(total, " bytes");
  }
  return CallOutcome::Return(One("disk_usage", PyValue::Str(text)));
}

CallOutcome GorillaFileSystem::Tail(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  PyValue lines = a[1];
  Node* item;
  if (auto err = Lookup(current_, name, &item)) return CallOutcome::Raise(*err);
  if (item != nullptr && !item->is_dir) {
    const std::string* text = ContentStr(item);
    if (text == nullptr) return CallOutcome::Raise(AttrError(item->content, "splitlines"));
    std::vector<std::string> content = SplitLines(*text);
    const int64_t len = static_cast<int64_t>(content.size());
    if (!lines.is_number()) {
      return CallOutcome::Raise(absl::StrCat("'>' not supported between instances of '",
                                             TypeName(lines), "' and 'int'"));
    }
    // Exact for ints of any size; a big negative `lines` slices content[-lines:] to nothing.
    bool greater = PyValue::Less(PyValue::Int(len), lines);
    if (greater) lines = PyValue::Int(len);
    if (lines.is_big_int()) lines = PyValue::Int(-len - 1);  // -lines >= len: content[len:]
    if (lines.is_float()) {
      return CallOutcome::Raise(
          "slice indices must be integers or None or have an __index__ method");
    }
    // content[-lines:]
    __int128 start = -static_cast<__int128>(lines.as_int());
    if (start < 0) start = std::max<__int128>(0, len + start);
    if (start > len) start = len;
    std::vector<std::string> tail(content.begin() + start, content.end());
    return CallOutcome::Return(One("last_lines", PyValue::Str(Join(tail, "\n"))));
  }
  return NoFileError("tail", name, item, /*path_hint=*/true);
}

CallOutcome GorillaFileSystem::Diff(const std::vector<PyValue>& a) {
  const PyValue& n1 = a[0];
  const PyValue& n2 = a[1];
  if (augment() && (StrHasSlash(n1) || StrHasSlash(n2))) {
    return ErrOut(HintText(Hint::kDiffPath, CwdName()));
  }
  Node* f1;
  Node* f2 = nullptr;
  if (auto err = Lookup(current_, n1, &f1)) return CallOutcome::Raise(*err);
  if (f1 != nullptr) {
    if (auto err = Lookup(current_, n2, &f2)) return CallOutcome::Raise(*err);
  }
  if (f1 != nullptr && f2 != nullptr && !f1->is_dir && !f2->is_dir) {
    const std::string* t1 = ContentStr(f1);
    if (t1 == nullptr) return CallOutcome::Raise(AttrError(f1->content, "splitlines"));
    const std::string* t2 = ContentStr(f2);
    if (t2 == nullptr) return CallOutcome::Raise(AttrError(f2->content, "splitlines"));
    std::vector<std::string> l1 = SplitLines(*t1), l2 = SplitLines(*t2);
    std::vector<std::string> out;
    for (size_t i = 0; i < std::min(l1.size(), l2.size()); ++i) {
      if (l1[i] != l2[i]) out.push_back(absl::StrCat("- ", l1[i], "\n+ ", l2[i]));
    }
    return CallOutcome::Return(One("diff_lines", PyValue::Str(Join(out, "\n"))));
  }
  if (augment()) {
    if (f1 == nullptr && !Unhashable(n2)) {
      Node* probe;
      Lookup(current_, n2, &probe);
      f2 = probe;
    }
    const std::string s1 = Fmt(n1), s2 = Fmt(n2);
    if (f1 == nullptr && f2 == nullptr) {
      return ErrOut(HintText(Hint::kDiffMissingBoth, s1, s2, CwdName()));
    }
    if (f1 == nullptr) return ErrOut(HintText(Hint::kDiffMissingOne, s1, CwdName()));
    if (f2 == nullptr) return ErrOut(HintText(Hint::kDiffMissingOne, s2, CwdName()));
    if (f1->is_dir && f2->is_dir) return ErrOut(HintText(Hint::kDiffDirBoth, s1, s2));
    return ErrOut(HintText(Hint::kDiffDirOne, f1->is_dir ? s1 : s2));
  }
  return ErrOut(
      absl::StrCat("diff: ", Fmt(n1), " or ", Fmt(n2), ": No such file or directory"));
}

CallOutcome GorillaFileSystem::Mv(const std::vector<PyValue>& a) {
  const PyValue& source = a[0];
  const PyValue& destination = a[1];
  Node* item;
  if (auto err = FindOperand(source, "mv", "move", /*is_source=*/true, "file or directory",
                             &item)) {
    return *std::move(err);
  }
  Node* dest;
  if (auto err = FindDestination(destination, "mv", &dest)) return *std::move(err);
  const std::string& src = source.as_str();
  if (dest != nullptr) {
    const std::string& dst = destination.as_str();
    if (!dest->is_dir) {
      if (augment()) return ErrOut(HintText(Hint::kMvDestFile, src, dst));
      return ErrOut(absl::StrCat("mv: cannot move '", src, "' to '", dst, "': Not a directory"));
    }
    if (dest->contents->Get(src) != nullptr) {
      if (augment()) return ErrOut(HintText(Hint::kMvExists, src, dst));
      return ErrOut(
          absl::StrCat("mv: cannot move '", src, "' to '", dst, "/", src, "': File exists"));
    }
    if (auto err = Reserve(1, NodeBytes(item), 0)) return ErrOut("mv: " + *err);
    current_->contents->Erase(src);
    Node* moved = item->is_dir ? NewDir(src, dest, item->contents) : NewFile(src, item->content);
    dest->contents->entries.emplace_back(src, moved);
    return CallOutcome::Return(
        One("result", PyValue::Str(absl::StrCat("'", src, "' moved to '", dst, "/", src, "'"))));
  }
  // Rename (destination absent, hence a str).
  const std::string& dst = destination.as_str();
  if (auto err = Reserve(1, NodeBytes(item) - src.size() + dst.size(), 0)) {
    return ErrOut("mv: " + *err);
  }
  current_->contents->Erase(src);
  Node* moved =
      item->is_dir ? NewDir(dst, current_, item->contents) : NewFile(dst, item->content);
  current_->contents->entries.emplace_back(dst, moved);
  return CallOutcome::Return(
      One("result", PyValue::Str(absl::StrCat("'", src, "' moved to '", dst, "'"))));
}

CallOutcome GorillaFileSystem::Rm(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  Node* item;
  if (auto err = FindOperand(name, "rm", "remove", /*is_source=*/false, "file or directory",
                             &item)) {
    return *std::move(err);
  }
  current_->contents->Erase(name.as_str());
  return CallOutcome::Return(
      One("result", PyValue::Str(absl::StrCat("'", name.as_str(), "' removed"))));
}

CallOutcome GorillaFileSystem::Rmdir(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  Node* item;
  if (auto err = FindOperand(name, "rmdir", "remove", /*is_source=*/false, "directory", &item)) {
    return *std::move(err);
  }
  const std::string& n = name.as_str();
  if (!item->is_dir) {
    return ErrOut(absl::StrCat("rmdir: cannot remove '", n, "': Not a directory"));
  }
  if (!item->contents->entries.empty()) {
    return ErrOut(absl::StrCat("rmdir: cannot remove '", n, "': Directory not empty"));
  }
  current_->contents->Erase(n);
  return CallOutcome::Return(One("result", PyValue::Str(absl::StrCat("'", n, "' removed"))));
}

CallOutcome GorillaFileSystem::Cp(const std::vector<PyValue>& a) {
  const PyValue& source = a[0];
  const PyValue& destination = a[1];
  Node* item;
  if (auto err = FindOperand(source, "cp", "copy", /*is_source=*/true, "file or directory",
                             &item)) {
    return *std::move(err);
  }
  Node* dest;
  if (auto err = FindDestination(destination, "cp", &dest)) return *std::move(err);
  const std::string& src = source.as_str();
  const std::string& dst = destination.as_str();
  if (item->content.is_str() && item->content.as_str().size() > kMaxFileBytes) {
    return ErrOut(absl::StrCat("cp: cannot copy '", src, "': content exceeds the ", kMaxFileBytes,
                               "-byte file size limit"));
  }
  size_t entries = item->is_dir ? item->contents->entries.size() + 1 : 1;
  auto copy_into = [&](Node* target, const std::string& new_name) {
    if (item->is_dir) {
      Node* copy = NewDir(new_name, target, nullptr);
      target->contents->entries.emplace_back(new_name, copy);
      // .contents = item.contents.copy(), taken after the insertion.
      copy->contents->entries = item->contents->entries;
    } else {
      target->contents->entries.emplace_back(new_name, NewFile(new_name, item->content));
    }
  };
  if (dest != nullptr) {
    if (!dest->is_dir) {
      return ErrOut(absl::StrCat("cp: cannot copy '", src, "' to '", dst, "': Not a directory"));
    }
    if (dest->contents->Get(src) != nullptr) {
      return CallOutcome::Raise(absl::StrCat(item->is_dir ? "Directory '" : "File '", src,
                                             "' already exists in directory '", dest->name,
                                             "'."));
    }
    if (auto err = Reserve(1, NodeBytes(item), entries)) return ErrOut("cp: " + *err);
    copy_into(dest, src);
    return CallOutcome::Return(
        One("result", PyValue::Str(absl::StrCat("'", src, "' copied to '", dst, "/", src, "'"))));
  }
  if (auto err = Reserve(1, NodeBytes(item) - src.size() + dst.size(), entries)) {
    return ErrOut("cp: " + *err);
  }
  copy_into(current_, dst);
  return CallOutcome::Return(
      One("result", PyValue::Str(absl::StrCat("'", src, "' copied to '", dst, "'"))));
}

std::unique_ptr<ToolApi> NewGorillaFileSystem() { return std::make_unique<GorillaFileSystem>(); }

}  // namespace envtune
