#include "model/text/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <queue>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/file.h"
#include "model/text/unicode.h"
#include "nlohmann/json.hpp"

namespace envtune {
namespace {

using Json = nlohmann::json;

// Debian's Abseil has its own absl::string_view (not std::string_view).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// GPT-2 byte <-> printable code point mapping used by the ByteLevel pre-tokenizer and decoder.
std::array<char32_t, 256> BytesToUnicode() {
  std::array<char32_t, 256> table{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) table[b] = direct[b] ? static_cast<char32_t>(b) : next++;
  return table;
}

// A compiled PCRE2 pattern (UTF + UCP, JIT when available). Immutable after construction, so it
// may be shared by threads; each match uses its own match data.
class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(
          absl::StrCat("pre_tokenizer Split regex does not compile at offset ", offset, ": ",
                       reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    return std::unique_ptr<Regex>(new Regex(code));
  }
  ~Regex() { pcre2_code_free(code_); }

  // Splits `text` (valid UTF-8) HF "Isolated" style: every match and every gap between matches is
  // one piece. Appends [begin, end) byte ranges relative to `text`.
  absl::Status SplitIsolated(std::string_view text,
                             std::vector<std::pair<size_t, size_t>>* pieces) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (md == nullptr) return absl::ResourceExhaustedError("pcre2_match_data_create failed");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0, last = 0;
    absl::Status status;
    while (pos <= text.size()) {
      const int rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        status = absl::InternalError(absl::StrCat("pre-tokenizer regex match failed: ",
                                                  reinterpret_cast<const char*>(message)));
        break;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t start = ov[0], end = ov[1];
      if (end == start) {  // empty match: skip one code point
        if (start >= text.size()) break;
        pos = start + 1;
        while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
        continue;
      }
      if (start > last) pieces->emplace_back(last, start);
      pieces->emplace_back(start, end);
      last = pos = end;
    }
    if (status.ok() && last < text.size()) pieces->emplace_back(last, text.size());
    pcre2_match_data_free(md);
    return status;
  }

 private:
  explicit Regex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

// The reference encodings (transformers.js, as HF's Python tokenizers for everything else) run
// the Split regex with JavaScript semantics. Where JS, Oniguruma (HF Rust) and PCRE2 differ, the
// pattern is rewritten to follow JS:
//  * \s / \S are the JS set: \t \n \v \f \r, Zs, U+2028, U+2029 and U+FEFF (PCRE2 would also take
//    U+0085 and U+180E, and leave out U+FEFF);
//  * "(?i:'s|'t|...)" is the ASCII-only case-insensitive group transformers.js substitutes for it
//    (PCRE2/Oniguruma case folding would also match "'ſ" with U+017F).
std::string AdaptSplitRegex(const std::string& pattern) {
  static constexpr char kWs[] = "\\t\\n\\x0B\\f\\r\\p{Zs}\\x{2028}\\x{2029}\\x{FEFF}";
  static constexpr char kCaseless[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  static constexpr char kAscii[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (!in_class && pattern.compare(i, sizeof(kCaseless) - 1, kCaseless) == 0) {
      out += kAscii;
      i += sizeof(kCaseless) - 2;
      continue;
    }
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kWs) : absl::StrCat("[", kWs, "]");
      } else if (e == 'S' && !in_class) {
        out += absl::StrCat("[^", kWs, "]");
      } else {
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

struct AddedToken {
  std::string content;
  TokenId id;
  bool special;
  bool lstrip;
  bool rstrip;
};

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Word -> ids cache, sharded to keep lock contention low under concurrent Encode.
class WordCache {
 public:
  static constexpr size_t kShards = 32;
  static constexpr size_t kMaxEntriesPerShard = 8192;
  static constexpr size_t kMaxWordBytes = 256;

  bool Lookup(std::string_view word, std::vector<TokenId>* out) const {
    Shard& shard = shards_[absl::HashOf(AV(word)) % kShards];
    absl::ReaderMutexLock lock(&shard.mu);
    auto it = shard.map.find(AV(word));
    if (it == shard.map.end()) return false;
    out->insert(out->end(), it->second.begin(), it->second.end());
    return true;
  }
  void Insert(std::string_view word, absl::Span<const TokenId> ids) const {
    if (word.size() > kMaxWordBytes) return;
    Shard& shard = shards_[absl::HashOf(AV(word)) % kShards];
    absl::MutexLock lock(&shard.mu);
    if (shard.map.size() >= kMaxEntriesPerShard) shard.map.clear();
    shard.map.try_emplace(std::string(word), ids.begin(), ids.end());
  }

 private:
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<TokenId>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

uint64_t PairKey(TokenId a, TokenId b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}


}  // namespace

struct Tokenizer::Impl {
  // Constant after construction.
  std::array<char32_t, 256> byte_to_char{};
  absl::flat_hash_map<char32_t, uint8_t> char_to_byte;
  std::vector<std::string> id_to_token;  // tokenizer.json form; empty for unused ids
  std::vector<std::string> id_to_bytes;  // decoded bytes
  std::vector<uint8_t> is_special, is_added, is_used;
  absl::flat_hash_map<std::string, TokenId> token_to_id;
  std::array<TokenId, 256> byte_id{};
  std::optional<TokenId> unk_id;
  absl::flat_hash_map<uint64_t, std::pair<int32_t, TokenId>> merges;  // pair -> (rank, merged)
  std::vector<AddedToken> added;
  std::array<std::vector<size_t>, 256> added_by_first_byte;  // indices into `added`
  bool nfc = false;
  std::vector<std::unique_ptr<Regex>> splits;
  bool byte_level_decoder = true;
  WordCache cache;

  absl::Status Load(const Json& root);
  absl::Status LoadNormalizer(const Json& n);
  absl::Status LoadPreTokenizer(const Json& p);
  absl::Status LoadModel(const Json& m);
  absl::Status LoadAddedTokens(const Json& a);
  absl::Status LoadDecoder(const Json& d);

  std::string TokenBytes(const std::string& token) const;
  void Bpe(std::string_view word, std::vector<TokenId>* out) const;
  absl::Status EncodeSegment(std::string_view text, std::vector<TokenId>* out) const;
  // Pre-tokenizer pieces of `text` (already normalized) as byte ranges.
  absl::Status Split(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;
};

namespace {

absl::Status FieldError(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", AV(field), ": ", AV(what)));
}

bool IsNullOrMissing(const Json& j, const char* key) {
  return !j.contains(key) || j[key].is_null();
}

}  // namespace

absl::Status Tokenizer::Impl::LoadNormalizer(const Json& n) {
  if (n.is_null()) return absl::OkStatus();
  if (!n.is_object() || !n.contains("type") || !n["type"].is_string()) {
    return FieldError("normalizer", "expected an object with a string \"type\"");
  }
  const std::string type = n["type"].get<std::string>();
  if (type == "NFC") {
    nfc = true;
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array()) {
      return FieldError("normalizer.normalizers", "expected an array");
    }
    for (const Json& sub : n["normalizers"]) {
      if (absl::Status s = LoadNormalizer(sub); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  return FieldError("normalizer.type", absl::StrCat("unsupported normalizer \"", type, "\""));
}

absl::Status Tokenizer::Impl::LoadPreTokenizer(const Json& p) {
  if (p.is_null()) return absl::OkStatus();
  if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
    return FieldError("pre_tokenizer", "expected an object with a string \"type\"");
  }
  const std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) {
      return FieldError("pre_tokenizer.pretokenizers", "expected an array");
    }
    for (const Json& sub : p["pretokenizers"]) {
      if (absl::Status s = LoadPreTokenizer(sub); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    if (!p.contains("pattern") || !p["pattern"].is_object()) {
      return FieldError("pre_tokenizer.Split.pattern", "expected an object");
    }
    const Json& pattern = p["pattern"];
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"].get<std::string>();
    } else {
      return FieldError("pre_tokenizer.Split.pattern", "only {\"Regex\": ...} is supported");
    }
    const std::string behavior =
        p.contains("behavior") && p["behavior"].is_string() ? p["behavior"].get<std::string>() : "";
    if (behavior != "Isolated") {
      return FieldError("pre_tokenizer.Split.behavior",
                        absl::StrCat("only \"Isolated\" is supported, got \"", behavior, "\""));
    }
    if (p.contains("invert") && !(p["invert"].is_boolean() && !p["invert"].get<bool>())) {
      return FieldError("pre_tokenizer.Split.invert", "only false is supported");
    }
    auto compiled = Regex::Compile(AdaptSplitRegex(regex));
    if (!compiled.ok()) return compiled.status();
    splits.push_back(*std::move(compiled));
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    if (p.contains("add_prefix_space") && p["add_prefix_space"] == true) {
      return FieldError("pre_tokenizer.ByteLevel.add_prefix_space", "true is not supported");
    }
    if (p.contains("use_regex") && p["use_regex"] == true) {
      // The GPT-2 split pattern HF applies when use_regex is true.
      auto compiled = Regex::Compile(AdaptSplitRegex(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"));
      if (!compiled.ok()) return compiled.status();
      splits.push_back(*std::move(compiled));
    }
    return absl::OkStatus();
  }
  return FieldError("pre_tokenizer.type", absl::StrCat("unsupported pre-tokenizer \"", type, "\""));
}

absl::Status Tokenizer::Impl::LoadModel(const Json& m) {
  if (!m.is_object()) return FieldError("model", "expected an object");
  if (!m.contains("type") || m["type"] != "BPE") {
    return FieldError("model.type", "only \"BPE\" is supported");
  }
  if (!IsNullOrMissing(m, "dropout")) return FieldError("model.dropout", "dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!IsNullOrMissing(m, key) && !(m[key].is_string() && m[key].get<std::string>().empty())) {
      return FieldError(absl::StrCat("model.", key), "only empty/null is supported");
    }
  }
  if (m.contains("byte_fallback") && m["byte_fallback"] == true) {
    return FieldError("model.byte_fallback", "true is not supported");
  }
  if (m.contains("ignore_merges") && m["ignore_merges"] == true) {
    return FieldError("model.ignore_merges", "true is not supported");
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return FieldError("model.vocab", "expected an object of token -> id");
  }
  const Json& vocab = m["vocab"];
  if (vocab.empty()) return FieldError("model.vocab", "is empty");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 30)) {
      return FieldError("model.vocab", absl::StrCat("id of \"", it.key(), "\" is not a valid id"));
    }
    const auto id = static_cast<TokenId>(it.value().get<int64_t>());
    if (static_cast<size_t>(id) >= id_to_token.size()) {
      id_to_token.resize(id + 1);
      is_used.resize(id + 1);
    }
    if (is_used[id]) return FieldError("model.vocab", absl::StrCat("duplicate id ", id));
    is_used[id] = 1;
    id_to_token[id] = it.key();
    token_to_id[it.key()] = id;
  }
  if (!m.contains("merges") || !m["merges"].is_array()) {
    return FieldError("model.merges", "expected an array");
  }
  const Json& list = m["merges"];
  merges.reserve(list.size());
  int32_t rank = 0;
  for (const Json& entry : list) {
    std::string a, b;
    if (entry.is_string()) {
      const std::string& s = entry.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return FieldError("model.merges",
                          absl::StrCat("entry ", rank, " \"", s, "\" is not \"a b\""));
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      return FieldError("model.merges",
                        absl::StrCat("entry ", rank, " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    auto ia = token_to_id.find(a), ib = token_to_id.find(b), im = token_to_id.find(a + b);
    if (ia == token_to_id.end() || ib == token_to_id.end() || im == token_to_id.end()) {
      return FieldError("model.merges", absl::StrCat("entry ", rank, " (\"", a, "\", \"", b,
                                                     "\") uses a token missing from the vocab"));
    }
    merges.try_emplace(PairKey(ia->second, ib->second), rank, im->second);  // first rank wins
    ++rank;
  }
  if (!IsNullOrMissing(m, "unk_token")) {
    if (!m["unk_token"].is_string()) return FieldError("model.unk_token", "expected a string");
    auto it = token_to_id.find(m["unk_token"].get<std::string>());
    if (it != token_to_id.end()) unk_id = it->second;
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::Impl::LoadAddedTokens(const Json& a) {
  if (a.is_null()) return absl::OkStatus();
  if (!a.is_array()) return FieldError("added_tokens", "expected an array");
  for (const Json& t : a) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        !t.contains("content") || !t["content"].is_string()) {
      return FieldError("added_tokens", "each entry needs an integer \"id\" and string \"content\"");
    }
    const int64_t id64 = t["id"].get<int64_t>();
    const std::string content = t["content"].get<std::string>();
    if (id64 < 0 || id64 > (1 << 30)) {
      return FieldError("added_tokens", absl::StrCat("invalid id for \"", content, "\""));
    }
    if (content.empty()) return FieldError("added_tokens", "empty content");
    if (!IsValidUtf8(content)) return FieldError("added_tokens", "content is not valid UTF-8");
    const auto id = static_cast<TokenId>(id64);
    auto flag = [&](const char* key) { return t.contains(key) && t[key] == true; };
    if (static_cast<size_t>(id) >= id_to_token.size()) {
      id_to_token.resize(id + 1);
      is_used.resize(id + 1);
    }
    if (is_used[id] && id_to_token[id] != content) {
      return FieldError("added_tokens",
                        absl::StrCat("id ", id, " of \"", content, "\" is already \"",
                                     id_to_token[id], "\""));
    }
    is_used[id] = 1;
    id_to_token[id] = content;
    token_to_id[content] = id;
    added.push_back({content, id, flag("special"), flag("lstrip"), flag("rstrip")});
  }
  for (size_t i = 0; i < added.size(); ++i) {
    added_by_first_byte[static_cast<unsigned char>(added[i].content[0])].push_back(i);
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::Impl::LoadDecoder(const Json& d) {
  if (d.is_null()) {
    byte_level_decoder = false;
    return absl::OkStatus();
  }
  if (!d.is_object() || d.value("type", "") != "ByteLevel") {
    return FieldError("decoder", "only ByteLevel (or null) is supported");
  }
  return absl::OkStatus();
}

std::string Tokenizer::Impl::TokenBytes(const std::string& token) const {
  if (!byte_level_decoder) return token;
  // HF ByteLevel decoder: map every char back to its byte; if any char is outside the byte
  // alphabet, the token's own UTF-8 bytes are used.
  std::string bytes;
  for (char32_t c : DecodeUtf8(token)) {
    auto it = char_to_byte.find(c);
    if (it == char_to_byte.end()) return token;
    bytes.push_back(static_cast<char>(it->second));
  }
  return bytes;
}

absl::Status Tokenizer::Impl::Load(const Json& root) {
  if (!root.is_object()) return FieldError("<root>", "expected a JSON object");
  byte_to_char = BytesToUnicode();
  for (int b = 0; b < 256; ++b) char_to_byte[byte_to_char[b]] = static_cast<uint8_t>(b);
  if (!root.contains("model")) return FieldError("model", "missing");
  if (absl::Status s = LoadModel(root["model"]); !s.ok()) return s;
  if (absl::Status s = LoadAddedTokens(root.value("added_tokens", Json())); !s.ok()) return s;
  if (absl::Status s = LoadNormalizer(root.value("normalizer", Json())); !s.ok()) return s;
  if (absl::Status s = LoadPreTokenizer(root.value("pre_tokenizer", Json())); !s.ok()) return s;
  if (absl::Status s = LoadDecoder(root.value("decoder", Json())); !s.ok()) return s;

  for (int b = 0; b < 256; ++b) {
    std::string form;
    AppendUtf8(byte_to_char[b], &form);
    auto it = token_to_id.find(form);
    byte_id[b] = it == token_to_id.end() ? -1 : it->second;
  }
  is_special.assign(id_to_token.size(), 0);
  is_added.assign(id_to_token.size(), 0);
  for (const AddedToken& t : added) {
    is_added[t.id] = 1;
    is_special[t.id] = t.special ? 1 : 0;
  }
  id_to_bytes.resize(id_to_token.size());
  for (size_t id = 0; id < id_to_token.size(); ++id) {
    if (is_used[id]) id_to_bytes[id] = TokenBytes(id_to_token[id]);
  }
  return absl::OkStatus();
}

void Tokenizer::Impl::Bpe(std::string_view word, std::vector<TokenId>* out) const {
  if (cache.Lookup(word, out)) return;
  struct Symbol {
    TokenId id;
    int prev;
    int next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (unsigned char b : word) {
    TokenId id = byte_id[b];
    if (id < 0) {
      if (!unk_id) continue;  // HF drops unknown characters when there is no unk token
      if (!symbols.empty() && symbols.back().id == *unk_id) continue;  // fuse unk runs
      id = *unk_id;
    }
    const int n = static_cast<int>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  }
  if (!symbols.empty()) symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int pos;
    TokenId merged;
    bool operator<(const Candidate& o) const {  // max-heap => lowest rank, then leftmost
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int left) {
    const int right = symbols[left].next;
    if (right < 0) return;
    auto it = merges.find(PairKey(symbols[left].id, symbols[right].id));
    if (it != merges.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges.find(PairKey(left.id, right.id));
    if (it == merges.end() || it->second.second != top.merged) continue;  // stale entry
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  const size_t begin = out->size();
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out->push_back(symbols[i].id);
  cache.Insert(word, absl::MakeConstSpan(out->data() + begin, out->size() - begin));
}

absl::Status Tokenizer::Impl::EncodeSegment(std::string_view text, std::vector<TokenId>* out) const {
  if (text.empty()) return absl::OkStatus();
  std::string normalized;
  if (nfc) {
    normalized = NormalizeNfc(text);
    text = normalized;
  }
  std::vector<std::pair<size_t, size_t>> pieces;
  if (absl::Status s = Split(text, &pieces); !s.ok()) return s;
  for (const auto& [b, e] : pieces) Bpe(text.substr(b, e - b), out);
  return absl::OkStatus();
}

absl::Status Tokenizer::Impl::Split(std::string_view text,
                                    std::vector<std::pair<size_t, size_t>>* out) const {
  std::vector<std::pair<size_t, size_t>> pieces = {{0, text.size()}};
  for (const auto& regex : splits) {
    std::vector<std::pair<size_t, size_t>> refined;
    refined.reserve(pieces.size() * 2);
    for (const auto& [b, e] : pieces) {
      std::vector<std::pair<size_t, size_t>> sub;
      if (absl::Status s = regex->SplitIsolated(text.substr(b, e - b), &sub); !s.ok()) return s;
      for (const auto& [sb, se] : sub) refined.emplace_back(b + sb, b + se);
    }
    pieces = std::move(refined);
  }
  *out = std::move(pieces);
  return absl::OkStatus();
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("tokenizer file: ", text.status().message()));
  }
  auto tokenizer = FromJson(*text);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(tokenizer.status().message(), " (", path, ")"));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text) {
  Json root = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("tokenizer.json: not valid JSON");
  auto impl = std::make_unique<Impl>();
  try {
    if (absl::Status s = impl->Load(root); !s.ok()) return s;
  } catch (const std::exception& e) {  // nlohmann type errors on unexpected shapes
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<std::vector<TokenId>> Tokenizer::Encode(std::string_view text,
                                                       const EncodeOptions& options) const {
  if (const size_t bad = FirstInvalidUtf8Offset(text); bad != text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Encode: input is not valid UTF-8 (byte offset ", bad, ")"));
  }
  const Impl& im = *impl_;
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  size_t segment_start = 0, pos = 0;
  while (pos < text.size()) {
    // Leftmost-longest match of an added token at `pos`.
    const AddedToken* best = nullptr;
    for (size_t index : im.added_by_first_byte[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& t = im.added[index];
      if (options.split_special_tokens && t.special) continue;
      if (text.compare(pos, t.content.size(), t.content) == 0 &&
          (best == nullptr || t.content.size() > best->content.size())) {
        best = &t;
      }
    }
    if (best == nullptr) {
      ++pos;
      continue;
    }
    size_t match_begin = pos, match_end = pos + best->content.size();
    if (best->lstrip) {
      while (match_begin > segment_start && IsAsciiSpace(text[match_begin - 1])) --match_begin;
    }
    if (best->rstrip) {
      while (match_end < text.size() && IsAsciiSpace(text[match_end])) ++match_end;
    }
    if (absl::Status s =
            im.EncodeSegment(text.substr(segment_start, match_begin - segment_start), &ids);
        !s.ok()) {
      return s;
    }
    ids.push_back(best->id);
    segment_start = pos = match_end;
  }
  if (absl::Status s = im.EncodeSegment(text.substr(segment_start), &ids); !s.ok()) return s;
  return ids;
}

absl::StatusOr<std::vector<std::string>> Tokenizer::PreTokenize(std::string_view text) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("PreTokenize: input is not valid UTF-8");
  const std::string normalized = impl_->nfc ? NormalizeNfc(text) : std::string(text);
  std::vector<std::pair<size_t, size_t>> pieces;
  if (absl::Status s = impl_->Split(normalized, &pieces); !s.ok()) return s;
  std::vector<std::string> words;
  words.reserve(pieces.size());
  for (const auto& [b, e] : pieces) words.push_back(normalized.substr(b, e - b));
  return words;
}

absl::StatusOr<std::string> Tokenizer::DecodeBytes(absl::Span<const TokenId> ids,
                                                   const DecodeOptions& options) const {
  const Impl& im = *impl_;
  std::string out;
  bool first = true;
  for (TokenId id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= im.id_to_token.size() || !im.is_used[id]) {
      if (id >= 0 && options.skip_unknown_ids) continue;
      return absl::InvalidArgumentError(absl::StrCat("Decode: unknown token id ", id));
    }
    if (options.skip_special_tokens && im.is_special[id]) continue;
    if (!im.byte_level_decoder && !first) out.push_back(' ');
    out += im.id_to_bytes[id];
    first = false;
  }
  return out;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const TokenId> ids,
                                              const DecodeOptions& options) const {
  absl::StatusOr<std::string> bytes = DecodeBytes(ids, options);
  if (!bytes.ok()) return bytes.status();
  if (IsValidUtf8(*bytes)) return bytes;
  return Utf8Lossy(*bytes);
}

std::optional<TokenId> Tokenizer::TokenToId(std::string_view token) const {
  auto it = impl_->token_to_id.find(AV(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokenizer::IdToToken(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size() || !impl_->is_used[id]) {
    return std::nullopt;
  }
  return impl_->id_to_token[id];
}

bool Tokenizer::IsSpecial(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->is_special.size() && impl_->is_special[id];
}

bool Tokenizer::IsAddedToken(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->is_added.size() && impl_->is_added[id];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }

}  // namespace envtune
