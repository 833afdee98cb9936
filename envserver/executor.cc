// The BFCL executor: instances of one side of one task, call-string execution (checker.md A.5).
#include "envserver/executor.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "envserver/pyparse.h"

namespace envtune {
namespace {

constexpr const char* kBlocked[] = {"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"};

// Python's `\w` for str patterns (Unicode alphanumerics and '_'), approximated outside ASCII by
// the same letter test the tokenizer uses.
bool IsWordCp(uint32_t cp) {
  if (cp < 0x80) return std::isalnum(static_cast<int>(cp)) || cp == '_';
  if (cp <= 0xBF) return cp == 0xAA || cp == 0xB2 || cp == 0xB3 || cp == 0xB5 || cp == 0xB9 || cp == 0xBA ||
                         (cp >= 0xBC && cp <= 0xBE);
  if (cp == 0xD7 || cp == 0xF7) return false;
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;
  if (cp >= 0x3000 && cp <= 0x303F) return false;
  if (cp >= 0xFF00 && cp <= 0xFF0F) return false;
  if (cp >= 0xE000 && cp <= 0xF8FF) return false;
  if (cp >= 0x1F000) return false;
  return true;
}

// Python's `\s` for str patterns.
bool IsSpaceCp(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Decodes the code point at s[i] (invalid bytes decode as themselves, length 1).
int CpAt(std::string_view s, size_t i, uint32_t* cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
  if (i + len > s.size()) len = 1;
  if (len == 1) {
    *cp = c;
    return 1;
  }
  uint32_t v = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      *cp = c;
      return 1;
    }
    v = (v << 6) | (cc & 0x3F);
  }
  *cp = v;
  return len;
}

std::string SanitizeInstanceName(std::string s) {
  for (char& c : s) {
    if (c == '-' || c == '.' || c == '/') c = '_';
  }
  return s;
}

// Finds a repeated keyword in any call of the tree (CPython's compiler rejects it).
const std::string* RepeatedKeyword(const PyNode& n) {
  if (n.kind == PyNodeKind::kCall) {
    for (size_t i = 0; i < n.keywords.size(); ++i) {
      if (!n.keywords[i].arg) continue;
      for (size_t j = 0; j < i; ++j) {
        if (n.keywords[j].arg && *n.keywords[j].arg == *n.keywords[i].arg) return &*n.keywords[i].arg;
      }
    }
  }
  for (const PyNode* c : {n.a.get(), n.b.get(), n.c.get()}) {
    if (c != nullptr) {
      if (const std::string* r = RepeatedKeyword(*c)) return r;
    }
  }
  for (const auto& v : {&n.elts, &n.values}) {
    for (const PyNodePtr& e : *v) {
      if (e == nullptr) continue;
      if (const std::string* r = RepeatedKeyword(*e)) return r;
    }
  }
  for (const PyKeyword& k : n.keywords) {
    if (const std::string* r = RepeatedKeyword(*k.value)) return r;
  }
  return nullptr;
}

std::shared_ptr<const ParsedCallCache::Entry> ParseCall(const std::string& code) {
  auto entry = std::make_shared<ParsedCallCache::Entry>();
  absl::StatusOr<PyNodePtr> tree = ParsePyExpression(code, /*strip_leading_ws=*/true);
  if (!tree.ok()) {
    entry->status = tree.status();
    return entry;
  }
  if (const std::string* dup = RepeatedKeyword(**tree)) entry->repeated_kw = *dup;
  entry->tree = *std::move(tree);
  return entry;
}

}  // namespace

std::shared_ptr<const ParsedCallCache::Entry> ParsedCallCache::Parse(const std::string& code) {
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(code);
    if (it != entries_.end()) return it->second;
  }
  std::shared_ptr<const Entry> entry = ParseCall(code);  // outside the lock
  absl::MutexLock lock(&mu_);
  if (entries_.size() >= capacity_) entries_.clear();
  entries_.emplace(code, entry);
  return entry;
}

size_t ParsedCallCache::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

bool IsBlockedCallName(std::string_view name) {
  for (const char* b : kBlocked) {
    if (name == b) return true;
  }
  return false;
}

std::string RewriteCallString(std::string_view text,
                              const absl::flat_hash_map<std::string, std::string>& method_to_instance) {
  std::string out;
  out.reserve(text.size() + 64);
  size_t i = 0;
  bool prev_word = false;  // was the previous code point a \w character?
  while (i < text.size()) {
    uint32_t cp;
    int len = CpAt(text, i, &cp);
    bool start_ok = !prev_word && cp < 0x80 && (std::isalpha(static_cast<int>(cp)) || cp == '_');
    if (start_ok) {
      // [a-zA-Z_]\w* then \s* then lookahead '('.
      size_t j = i + len;
      while (j < text.size()) {
        uint32_t c2;
        int l2 = CpAt(text, j, &c2);
        if (!IsWordCp(c2)) break;
        j += l2;
      }
      size_t k = j;
      while (k < text.size()) {
        uint32_t c3;
        int l3 = CpAt(text, k, &c3);
        if (!IsSpaceCp(c3)) break;
        k += l3;
      }
      std::string_view name = text.substr(i, j - i);
      if (k < text.size() && text[k] == '(') {
        auto it = method_to_instance.find(std::string(name));
        if (it != method_to_instance.end()) {
          absl::StrAppend(&out, it->second, ".", std::string(name));
        } else {
          out.append(name);
        }
        i = k;
        prev_word = false;  // next char is '('
        continue;
      }
      out.append(text.substr(i, j - i));
      i = j;
      prev_word = true;
      continue;
    }
    out.append(text.substr(i, len));
    prev_word = IsWordCp(cp);
    i += len;
  }
  return out;
}

absl::StatusOr<Sandbox> Sandbox::Create(std::string task_id,
                                        const std::vector<std::string>& involved_classes,
                                        const PyValue& initial_config, bool long_context,
                                        const SandboxContext* context, SandboxOptions options) {
  Sandbox sb;
  sb.task_id_ = std::move(task_id);
  sb.options_ = std::move(options);
  const std::vector<std::string>& known = AllToolApiClassNames();
  for (const std::string& cls : involved_classes) {
    if (std::find(known.begin(), known.end(), cls) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("task ", sb.task_id_, ": unknown class '", cls, "'"));
    }
    if (std::find(sb.classes_.begin(), sb.classes_.end(), cls) != sb.classes_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("task ", sb.task_id_, ": class '", cls, "' listed twice"));
    }
    sb.classes_.push_back(cls);
    sb.instance_names_.push_back(SanitizeInstanceName(
        absl::StrCat(sb.options_.model_name, "_", sb.task_id_, "_", cls, "_instance")));
    absl::StatusOr<std::unique_ptr<ToolApi>> inst = CreateToolApi(cls);
    if (!inst.ok()) {
      sb.unavailable_.push_back(cls);
      sb.instances_.push_back(nullptr);
      continue;
    }
    (*inst)->set_context(context);
    if (cls != "MathAPI") {
      PyValue scenario = PyValue::Dict();
      if (initial_config.is_dict()) {
        if (const PyValue* s = initial_config.dict().Find(cls)) scenario = *s;  // deep copy
      }
      (*inst)->LoadScenario(scenario, long_context);
    }
    sb.instances_.push_back(*std::move(inst));
  }
  sb.BuildMaps();
  return sb;
}

Sandbox::Sandbox(const Sandbox& other) { *this = other; }

Sandbox& Sandbox::operator=(const Sandbox& other) {
  if (this == &other) return *this;
  task_id_ = other.task_id_;
  options_ = other.options_;
  classes_ = other.classes_;
  unavailable_ = other.unavailable_;
  instance_names_ = other.instance_names_;
  instances_.clear();
  for (const auto& inst : other.instances_) instances_.push_back(inst ? inst->Clone() : nullptr);
  touched_ = other.touched_;
  maps_ = other.maps_;
  return *this;
}

void Sandbox::BuildMaps() {
  touched_.assign(classes_.size(), 0);
  auto maps = std::make_shared<Maps>();
  for (size_t i = 0; i < classes_.size(); ++i) {
    maps->instance_index[instance_names_[i]] = i;
    if (instances_[i] == nullptr) continue;
    for (const std::string& m : instances_[i]->MethodNames()) {
      if (m.empty() || m[0] == '_') continue;
      maps->method_instance[m] = instance_names_[i];  // later class wins
      maps->method_class[m] = classes_[i];
    }
  }
  maps_ = std::move(maps);
}

int Sandbox::ClassIndex(std::string_view class_name) const {
  for (size_t i = 0; i < classes_.size(); ++i) {
    if (classes_[i] == class_name) return static_cast<int>(i);
  }
  return -1;
}

ToolApi* Sandbox::instance(std::string_view class_name) {
  for (size_t i = 0; i < classes_.size(); ++i) {
    if (classes_[i] == class_name) return instances_[i].get();
  }
  return nullptr;
}
const ToolApi* Sandbox::instance(std::string_view class_name) const {
  return const_cast<Sandbox*>(this)->instance(class_name);
}

PyValue Sandbox::PublicStates() const {
  PyDict states;
  for (size_t i = 0; i < classes_.size(); ++i) {
    if (instances_[i] == nullptr) continue;
    states.Set(classes_[i], instances_[i]->PublicState());
  }
  return PyValue::Dict(std::move(states));
}

CallRecord Sandbox::ExecuteCall(std::string_view call) {
  CallRecord rec;
  rec.call = std::string(call);
  auto raise = [&](std::string msg) {
    rec.raised = true;
    rec.result = CallOutcome::Raise(std::move(msg)).ResultString();
    return rec;
  };
  std::string code = RewriteCallString(call, maps_->method_instance);
  // Blocklist: text before the first '(', then the part after the first '.'.
  std::string head = code.substr(0, code.find('('));
  if (size_t dot = head.find('.'); dot != std::string::npos) {
    std::string rest = head.substr(dot + 1);
    head = rest.substr(0, rest.find('.'));
  }
  if (IsBlockedCallName(head)) return raise(absl::StrCat("Function call ", head, " is not allowed."));

  std::shared_ptr<const ParsedCallCache::Entry> parsed =
      options_.parse_cache != nullptr ? options_.parse_cache->Parse(code) : ParseCall(code);
  if (!parsed->status.ok()) return raise(std::string(parsed->status.message()));
  if (parsed->repeated_kw.has_value()) {
    return raise(absl::StrCat("keyword argument repeated: ", *parsed->repeated_kw, " (<string>, line 1)"));
  }

  std::string served;
  PyCallHook hook = [&](const PyNode& node) -> absl::StatusOr<PyValue> {
    // Resolve the callee first (Python evaluates the function before its arguments).
    const PyNode& func = *node.a;
    size_t index = 0;
    std::string method;
    if (func.kind == PyNodeKind::kName) {
      return absl::InvalidArgumentError(absl::StrCat("name '", func.text, "' is not defined"));
    }
    if (func.kind == PyNodeKind::kAttribute && func.a->kind == PyNodeKind::kName) {
      auto it = maps_->instance_index.find(func.a->text);
      if (it == maps_->instance_index.end() || instances_[it->second] == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("name '", func.a->text, "' is not defined"));
      }
      index = it->second;
      method = func.text;
    } else if (func.kind == PyNodeKind::kAttribute) {
      // Python evaluates the object first: its own errors (e.g. an unknown name) come first.
      absl::StatusOr<PyValue> obj = EvalPyLiteral(*func.a, hook);
      if (!obj.ok()) return obj.status();
      return absl::InvalidArgumentError(absl::StrCat("'", std::string(obj->TypeName()),
                                                     "' object has no attribute '", func.text, "'"));
    } else {
      absl::StatusOr<PyValue> callee = EvalPyLiteral(func, hook);
      if (!callee.ok()) return callee.status();
      return absl::InvalidArgumentError(
          absl::StrCat("'", std::string(callee->TypeName()), "' object is not callable"));
    }
    PyArgs args;
    for (const PyNodePtr& e : node.elts) {
      if (e->kind == PyNodeKind::kStarred) {
        absl::StatusOr<PyValue> v = EvalPyLiteral(*e->a, hook);
        if (!v.ok()) return v.status();
        if (!(v->is_list() || v->is_tuple() || v->is_set())) {
          return absl::InvalidArgumentError(absl::StrCat(
              classes_[index], ".", method, "() argument after * must be an iterable, not ",
              std::string(v->TypeName())));
        }
        for (const PyValue& x : v->items()) args.positional.push_back(x);
        continue;
      }
      absl::StatusOr<PyValue> v = EvalPyLiteral(*e, hook);
      if (!v.ok()) return v.status();
      args.positional.push_back(*std::move(v));
    }
    for (const PyKeyword& kw : node.keywords) {
      absl::StatusOr<PyValue> v = EvalPyLiteral(*kw.value, hook);
      if (!v.ok()) return v.status();
      if (kw.arg.has_value()) {
        args.keywords.emplace_back(*kw.arg, *std::move(v));
        continue;
      }
      if (!v->is_dict()) {
        return absl::InvalidArgumentError(absl::StrCat(
            classes_[index], ".", method, "() argument after ** must be a mapping, not ",
            std::string(v->TypeName())));
      }
      for (const auto& [k, x] : v->dict()) {
        if (!k.is_str()) return absl::InvalidArgumentError("keywords must be strings");
        for (const auto& existing : args.keywords) {
          if (existing.first == k.as_str()) {
            return absl::InvalidArgumentError(absl::StrCat(classes_[index], ".", method,
                                                           "() got multiple values for keyword argument '",
                                                           k.as_str(), "'"));
          }
        }
        args.keywords.emplace_back(k.as_str(), x);
      }
    }
    touched_[index] = 1;
    CallOutcome out = instances_[index]->Invoke(method, args);
    served = classes_[index];
    if (out.raised()) return absl::InvalidArgumentError(*out.exception_message);
    return std::move(out.value);
  };
  absl::StatusOr<PyValue> value = EvalPyLiteral(*parsed->tree, hook);
  rec.served_by = served;
  if (!value.ok()) return raise(std::string(value.status().message()));
  rec.result = CallOutcome::Return(*std::move(value)).ResultString();
  return rec;
}

CallRecord Sandbox::ExecuteDecoded(std::string call, DecodedCall& decoded) {
  auto it = maps_->method_instance.find(decoded.name);
  if (it == maps_->method_instance.end() || IsBlockedCallName(decoded.name)) return ExecuteCall(call);
  const size_t index = maps_->instance_index.at(it->second);
  if (instances_[index] == nullptr) return ExecuteCall(call);
  PyArgs args;
  args.keywords = std::move(decoded.keywords);
  touched_[index] = 1;
  CallOutcome out = instances_[index]->Invoke(decoded.name, args);
  CallRecord rec;
  rec.call = std::move(call);
  rec.served_by = classes_[index];
  if (out.raised()) {
    rec.raised = true;
    rec.result = CallOutcome::Raise(*std::move(out.exception_message)).ResultString();
  } else {
    rec.result = CallOutcome::Return(std::move(out.value)).ResultString();
  }
  return rec;
}

std::vector<CallRecord> Sandbox::ExecuteCalls(const std::vector<std::string>& calls) {
  std::vector<CallRecord> out;
  out.reserve(calls.size());
  for (const std::string& c : calls) out.push_back(ExecuteCall(c));
  return out;
}

std::vector<std::string> Sandbox::ExecuteCallStrings(const std::vector<std::string>& calls) {
  std::vector<std::string> out;
  out.reserve(calls.size());
  for (const std::string& c : calls) out.push_back(ExecuteCall(c).result);
  return out;
}

}  // namespace envtune
