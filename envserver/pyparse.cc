// Tokenizer, parser and unparser for the Python expression subset (see pyparse.h).
#include "envserver/pyparse.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/utf8.h"
#include "envserver/pyvalue.h"

namespace envtune {
namespace {

constexpr int kMaxBracketDepth = 200;  // CPython's MAXLEVEL
constexpr int kMaxChainDepth = 500;    // unary / not / ** / lambda / if-else chains
constexpr int kMaxTreeDepth = 1000;    // left-deep operator chains

// ------------------------------------------------------------------------------------------
// UTF-8 helpers

// Decodes one code point at s[i]; returns its length (0 on invalid UTF-8). Unlike strict UTF-8,
// encoded surrogates (U+D800..U+DFFF) are accepted, as this tokenizer always has.
int DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  char32_t c = 0;
  const size_t len = DecodeUtf8At(s, i, &c, nullptr, /*allow_surrogates=*/true);
  if (len > 0) *cp = c;
  return static_cast<int>(len);
}

// Approximation of Python's identifier characters outside ASCII: letters of every script are
// accepted; common punctuation, symbols, spaces and emoji are rejected ("invalid character").
bool IsNonAsciiIdentChar(uint32_t cp) {
  if (cp < 0x80) return false;
  if (cp <= 0xBF) return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
  if (cp == 0xD7 || cp == 0xF7) return false;
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;  // punctuation, arrows, math, boxes, symbols
  if (cp >= 0x3000 && cp <= 0x303F) return false;  // CJK punctuation
  if (cp >= 0xFE30 && cp <= 0xFE4F) return false;
  if (cp >= 0xFF00 && cp <= 0xFF0F) return false;
  if (cp >= 0xFF1A && cp <= 0xFF20) return false;
  if (cp >= 0xFF3B && cp <= 0xFF40) return false;
  if (cp >= 0xFF5B && cp <= 0xFF65) return false;
  if (cp >= 0xE000 && cp <= 0xF8FF) return false;  // private use
  if (cp >= 0xFFF0 && cp <= 0xFFFF) return false;
  if (cp >= 0x1F000) return false;  // emoji and friends
  return true;
}

bool IsPrintableForError(uint32_t cp) { return cp > 0xA0 || (cp >= 0x21 && cp < 0x7F); }

// ------------------------------------------------------------------------------------------
// Tokens

enum class TokType { kName, kNumber, kString, kOp, kNewline, kEnd };

struct StrPiece {
  bool is_bytes = false;
  bool is_fstring = false;
  std::string value;  // decoded (UTF-8 or raw bytes)
  std::string source;
};

struct Token {
  TokType type = TokType::kEnd;
  std::string text;  // NAME id, NUMBER text, OP text
  int line = 1;
  int level = 0;  // bracket level before this token
  StrPiece str;   // kString
};

bool IsKeyword(std::string_view s) {
  static const char* const kKeywords[] = {
      "False", "None",     "True",     "and",    "as",   "assert", "async",  "await",
      "break", "class",    "continue", "def",    "del",  "elif",   "else",   "except",
      "finally", "for",    "from",     "global", "if",   "import", "in",     "is",
      "lambda", "nonlocal", "not",     "or",     "pass", "raise",  "return", "try",
      "while", "with",     "yield"};
  for (const char* k : kKeywords) {
    if (s == k) return true;
  }
  return false;
}

std::string WithLoc(std::string_view msg, int line) {
  return absl::StrCat(std::string(msg), " (<string>, line ", line, ")");
}

class Tokenizer {
 public:
  explicit Tokenizer(std::string_view src) : src_(src) {}

  // Tokenizes everything. On a tokenizer error stores it (message with location) and stops.
  void Run() {
    while (true) {
      if (!Next()) return;
      if (tokens_.back().type == TokType::kEnd) return;
    }
  }

  std::vector<Token> tokens_;
  std::optional<std::string> error_;
  // Brackets still open at the end: (char, line).
  std::vector<std::pair<char, int>> open_;

 private:
  bool Fail(std::string_view msg, int line) {
    error_ = WithLoc(msg, line);
    return false;
  }

  void Push(TokType type, std::string text, int line) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line;
    t.level = static_cast<int>(open_.size());
    tokens_.push_back(std::move(t));
  }

  bool Next() {
    // Skip whitespace, comments, continuations; newlines inside brackets.
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\f') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < src_.size() && src_[pos_] != '\n' && src_[pos_] != '\r') ++pos_;
      } else if (c == '\\') {
        size_t p = pos_ + 1;
        if (p < src_.size() && src_[p] == '\r') ++p;
        if (p < src_.size() && src_[p] == '\n') {
          pos_ = p + 1;
          if (pos_ >= src_.size()) return Fail("unexpected EOF while parsing", line_);
          ++line_;
        } else {
          return Fail("unexpected character after line continuation character", line_);
        }
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '\n') ++pos_;
        ++pos_;
        if (open_.empty() && !tokens_.empty() && tokens_.back().type != TokType::kNewline) {
          Push(TokType::kNewline, "", line_);
        }
        ++line_;
      } else {
        break;
      }
    }
    if (pos_ >= src_.size()) {
      Push(TokType::kEnd, "", line_);
      return true;
    }
    char c = src_[pos_];
    unsigned char uc = static_cast<unsigned char>(c);
    if (std::isalpha(uc) || c == '_' || uc >= 0x80) {
      // Possible string prefix.
      size_t p = pos_;
      while (p < src_.size() && p - pos_ < 3 && std::isalpha(static_cast<unsigned char>(src_[p]))) ++p;
      if (p < src_.size() && (src_[p] == '\'' || src_[p] == '"')) {
        std::string prefix(src_.substr(pos_, p - pos_));
        std::string lower;
        for (char ch : prefix) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
        static const char* const kPrefixes[] = {"r", "u", "b", "br", "rb", "f", "fr", "rf"};
        for (const char* k : kPrefixes) {
          if (lower == k) return LexString(lower);
        }
      }
      return LexName();
    }
    if (std::isdigit(uc) || (c == '.' && pos_ + 1 < src_.size() &&
                             std::isdigit(static_cast<unsigned char>(src_[pos_ + 1])))) {
      return LexNumber();
    }
    if (c == '\'' || c == '"') return LexString("");
    return LexOp();
  }

  bool LexName() {
    size_t start = pos_;
    while (pos_ < src_.size()) {
      unsigned char c = static_cast<unsigned char>(src_[pos_]);
      if (std::isalnum(c) || c == '_') {
        ++pos_;
        continue;
      }
      if (c < 0x80) break;
      uint32_t cp;
      int len = DecodeUtf8(src_, pos_, &cp);
      if (len == 0) return Fail("invalid UTF-8 in source", line_);
      if (!IsNonAsciiIdentChar(cp)) {
        if (pos_ == start) {
          if (!IsPrintableForError(cp) || cp == 0xA0) {
            return Fail(absl::StrFormat("invalid non-printable character U+%04X", cp), line_);
          }
          std::string ch;
          AppendUtf8(cp, &ch);
          return Fail(absl::StrFormat("invalid character '%s' (U+%04X)", ch, cp), line_);
        }
        break;
      }
      pos_ += len;
    }
    Push(TokType::kName, std::string(src_.substr(start, pos_ - start)), line_);
    return true;
  }

  bool LexNumber() {
    size_t start = pos_;
    auto digits = [&](auto is_digit, std::string_view kind) -> bool {
      // digits with single underscores between them; returns false on a bad underscore
      bool any = false;
      while (pos_ < src_.size()) {
        char c = src_[pos_];
        if (is_digit(c)) {
          any = true;
          ++pos_;
        } else if (c == '_' && any && pos_ + 1 < src_.size() && is_digit(src_[pos_ + 1])) {
          ++pos_;
        } else {
          break;
        }
      }
      return any;
    };
    auto is_dec = [](char c) { return c >= '0' && c <= '9'; };
    auto ident_follows = [&]() {
      if (pos_ >= src_.size()) return false;
      unsigned char c = static_cast<unsigned char>(src_[pos_]);
      return std::isalnum(c) || c == '_' || c >= 0x80;
    };
    if (src_[pos_] == '0' && pos_ + 1 < src_.size() &&
        std::strchr("xXoObB", src_[pos_ + 1]) != nullptr) {
      char kind = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos_ + 1])));
      pos_ += 2;
      if (pos_ < src_.size() && src_[pos_] == '_') ++pos_;
      auto is_d = [kind](char c) {
        if (kind == 'x') return std::isxdigit(static_cast<unsigned char>(c)) != 0;
        if (kind == 'o') return c >= '0' && c <= '7';
        return c == '0' || c == '1';
      };
      const char* name = kind == 'x' ? "hexadecimal" : kind == 'o' ? "octal" : "binary";
      bool any = digits(is_d, name);
      if (!any || ident_follows()) {
        if (pos_ < src_.size() && is_dec(src_[pos_]) && kind != 'x') {
          return Fail(absl::StrFormat("invalid digit '%c' in %s literal", src_[pos_], name), line_);
        }
        return Fail(absl::StrFormat("invalid %s literal", name), line_);
      }
      Push(TokType::kNumber, std::string(src_.substr(start, pos_ - start)), line_);
      return true;
    }
    bool is_float = false;
    if (src_[pos_] != '.') {
      digits(is_dec, "decimal");
      if (pos_ < src_.size() && src_[pos_] == '_') return Fail("invalid decimal literal", line_);
    }
    if (pos_ < src_.size() && src_[pos_] == '.') {
      is_float = true;
      ++pos_;
      if (pos_ < src_.size() && is_dec(src_[pos_])) digits(is_dec, "decimal");
      if (pos_ < src_.size() && src_[pos_] == '_') return Fail("invalid decimal literal", line_);
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t save = pos_;
      ++pos_;
      if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) ++pos_;
      if (pos_ < src_.size() && is_dec(src_[pos_])) {
        digits(is_dec, "decimal");
        is_float = true;
      } else {
        pos_ = save;
        return Fail("invalid decimal literal", line_);
      }
    }
    if (pos_ < src_.size() && (src_[pos_] == 'j' || src_[pos_] == 'J')) {
      ++pos_;
      if (ident_follows()) return Fail("invalid imaginary literal", line_);
      Push(TokType::kNumber, std::string(src_.substr(start, pos_ - start)), line_);
      return true;
    }
    if (ident_follows()) return Fail("invalid decimal literal", line_);
    std::string text(src_.substr(start, pos_ - start));
    if (!is_float && text.size() > 1 && text[0] == '0') {
      for (char ch : text) {
        if (ch != '0' && ch != '_') {
          return Fail(
              "leading zeros in decimal integer literals are not permitted; use an 0o prefix for "
              "octal integers",
              line_);
        }
      }
    }
    Push(TokType::kNumber, std::move(text), line_);
    return true;
  }

  bool LexString(const std::string& prefix) {
    int start_line = line_;
    bool raw = prefix.find('r') != std::string::npos;
    bool is_bytes = prefix.find('b') != std::string::npos;
    bool is_f = prefix.find('f') != std::string::npos;
    size_t src_start = pos_;
    pos_ += prefix.size();
    char q = src_[pos_];
    bool triple = pos_ + 2 < src_.size() && src_[pos_ + 1] == q && src_[pos_ + 2] == q;
    pos_ += triple ? 3 : 1;
    std::string body;
    bool closed = false;
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == '\\') {
        if (pos_ + 1 >= src_.size()) {
          body.push_back(c);
          ++pos_;
          break;
        }
        body.push_back(c);
        body.push_back(src_[pos_ + 1]);
        if (src_[pos_ + 1] == '\n') ++line_;
        pos_ += 2;
        continue;
      }
      if (c == q) {
        if (!triple) {
          ++pos_;
          closed = true;
          break;
        }
        if (pos_ + 2 < src_.size() && src_[pos_ + 1] == q && src_[pos_ + 2] == q) {
          pos_ += 3;
          closed = true;
          break;
        }
      }
      if (c == '\n' || c == '\r') {
        if (!triple) break;
        ++line_;
      }
      body.push_back(c);
      ++pos_;
    }
    if (!closed) {
      if (triple) {
        return Fail(absl::StrFormat("unterminated triple-quoted string literal (detected at line %d)", line_),
                    start_line);
      }
      return Fail(absl::StrFormat("unterminated string literal (detected at line %d)", line_), start_line);
    }
    StrPiece piece;
    piece.is_bytes = is_bytes;
    piece.is_fstring = is_f;
    piece.source = std::string(src_.substr(src_start, pos_ - src_start));
    if (is_f) {
      piece.value = body;
    } else {
      std::string err;
      if (!DecodeBody(body, raw, is_bytes, &piece.value, &err)) return Fail(err, start_line);
    }
    Token t;
    t.type = TokType::kString;
    t.line = start_line;
    t.level = static_cast<int>(open_.size());
    t.str = std::move(piece);
    tokens_.push_back(std::move(t));
    return true;
  }

  static bool DecodeBody(const std::string& body, bool raw, bool is_bytes, std::string* out,
                         std::string* err) {
    const char* codec = is_bytes ? "(value error) " : "(unicode error) 'unicodeescape' codec can't decode bytes in position ";
    for (size_t i = 0; i < body.size();) {
      unsigned char c = static_cast<unsigned char>(body[i]);
      if (c >= 0x80) {
        if (is_bytes) {
          *err = "bytes can only contain ASCII literal characters";
          return false;
        }
        uint32_t cp;
        int len = DecodeUtf8(body, i, &cp);
        if (len == 0) {
          *err = "invalid UTF-8 in string literal";
          return false;
        }
        out->append(body, i, len);
        i += len;
        continue;
      }
      if (c != '\\' || raw) {
        out->push_back(static_cast<char>(c));
        ++i;
        continue;
      }
      // Escape sequence (i + 1 exists unless the literal ended in a lone backslash, which the
      // lexer cannot produce for a closed literal).
      if (i + 1 >= body.size()) {
        out->push_back('\\');
        ++i;
        continue;
      }
      char e = body[i + 1];
      size_t esc_start = i;
      i += 2;
      auto bad = [&](std::string_view what) {
        if (is_bytes) {
          *err = absl::StrCat(codec, "invalid \\x escape at position ", esc_start);
        } else {
          *err = absl::StrCat(codec, esc_start, "-", std::min(i, body.size()) - 1, ": ", std::string(what));
        }
        return false;
      };
      switch (e) {
        case '\n': break;
        case '\\': out->push_back('\\'); break;
        case '\'': out->push_back('\''); break;
        case '"': out->push_back('"'); break;
        case 'a': out->push_back('\a'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'v': out->push_back('\v'); break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
          uint32_t v = e - '0';
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k) {
            v = v * 8 + (body[i] - '0');
            ++i;
          }
          if (is_bytes) {
            out->push_back(static_cast<char>(v & 0xFF));
          } else {
            AppendUtf8(v, out);
          }
          break;
        }
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (is_bytes && e != 'x') {
            out->push_back('\\');
            out->push_back(e);
            break;
          }
          uint32_t v = 0;
          int k = 0;
          for (; k < n && i < body.size() && std::isxdigit(static_cast<unsigned char>(body[i])); ++k, ++i) {
            char h = body[i];
            v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (k < n) {
            return bad(e == 'x' ? "truncated \\xXX escape" : e == 'u' ? "truncated \\uXXXX escape" : "truncated \\UXXXXXXXX escape");
          }
          if (is_bytes) {
            out->push_back(static_cast<char>(v));
          } else {
            if (v > 0x10FFFF) return bad("illegal Unicode character");
            AppendUtf8(v, out);
          }
          break;
        }
        case 'N':
          if (!is_bytes) return bad("malformed \\N character escape");
          [[fallthrough]];
        default:
          // Unknown escapes are kept verbatim (CPython warns, does not fail).
          out->push_back('\\');
          i -= 1;
          break;
      }
    }
    return true;
  }

  bool LexOp() {
    static const char* const kOps3[] = {"**=", "//=", ">>=", "<<=", "..."};
    static const char* const kOps2[] = {"**", "//", "<<", ">>", "<=", ">=", "==", "!=", "->",
                                        ":=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@="};
    int line = line_;
    for (const char* op : kOps3) {
      if (src_.substr(pos_, 3) == op) {
        pos_ += 3;
        Push(TokType::kOp, op, line);
        return true;
      }
    }
    for (const char* op : kOps2) {
      if (src_.substr(pos_, 2) == op) {
        pos_ += 2;
        Push(TokType::kOp, op, line);
        return true;
      }
    }
    char c = src_[pos_];
    if (c == '(' || c == '[' || c == '{') {
      if (open_.size() >= kMaxBracketDepth) return Fail("too many nested parentheses", line);
      Push(TokType::kOp, std::string(1, c), line);
      open_.push_back({c, line});
      ++pos_;
      return true;
    }
    if (c == ')' || c == ']' || c == '}') {
      if (open_.empty()) return Fail(absl::StrFormat("unmatched '%c'", c), line);
      char o = open_.back().first;
      char expect = o == '(' ? ')' : o == '[' ? ']' : '}';
      if (c != expect) {
        if (open_.back().second != line) {
          return Fail(absl::StrFormat("closing parenthesis '%c' does not match opening parenthesis '%c' on line %d",
                                      c, o, open_.back().second),
                      line);
        }
        return Fail(absl::StrFormat("closing parenthesis '%c' does not match opening parenthesis '%c'", c, o),
                    line);
      }
      open_.pop_back();
      ++pos_;
      Push(TokType::kOp, std::string(1, c), line);
      return true;
    }
    if (std::strchr("+-*/%@&|^~<>=.,:;!", c) != nullptr) {
      ++pos_;
      Push(TokType::kOp, std::string(1, c), line);
      return true;
    }
    unsigned char uc = static_cast<unsigned char>(c);
    if (uc < 0x20 || uc == 0x7F) {
      if (uc == 0) return Fail("source code cannot contain null bytes", line);
      return Fail(absl::StrFormat("invalid non-printable character U+%04X", uc), line);
    }
    // '$', '?', '`' and friends: an error token the parser rejects as invalid syntax.
    ++pos_;
    Push(TokType::kOp, std::string(1, c), line);
    return true;
  }

  std::string_view src_;
  size_t pos_ = 0;
  int line_ = 1;
};

// ------------------------------------------------------------------------------------------
// Parser

int NodeDepth(const PyNode& n);

struct ParseError {
  std::string message;  // without location
  int line;
  bool at_end = false;       // the parser needed more input (EOF)
  bool specific = false;     // a specific (second-pass) message
};

class Parser {
 public:
  Parser(std::vector<Token> toks, std::vector<std::pair<char, int>> open)
      : toks_(std::move(toks)), open_at_end_(std::move(open)) {}

  absl::StatusOr<PyNodePtr> ParseAll() {
    PyNodePtr result = CheckDepth(ParseStarExpressions());
    if (result != nullptr) {
      while (Peek().type == TokType::kNewline) ++pos_;
      if (Peek().type != TokType::kEnd) {
        result.reset();
        GenericError();
      }
    }
    if (result != nullptr) return result;
    return absl::InvalidArgumentError(Report());
  }

 private:
  // ---- token helpers
  const Token& Peek(int k = 0) const {
    size_t i = std::min(pos_ + k, toks_.size() - 1);
    return toks_[i];
  }
  bool IsOp(std::string_view op, int k = 0) const {
    const Token& t = Peek(k);
    return t.type == TokType::kOp && t.text == op;
  }
  bool IsKw(std::string_view kw, int k = 0) const {
    const Token& t = Peek(k);
    return t.type == TokType::kName && t.text == kw;
  }
  bool AcceptOp(std::string_view op) {
    if (IsOp(op)) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool AcceptKw(std::string_view kw) {
    if (IsKw(kw)) {
      ++pos_;
      return true;
    }
    return false;
  }

  // Records an error unless one is already recorded (the first specific error wins; a generic
  // error is replaced by a specific one).
  std::nullptr_t Error(std::string msg, bool specific, const Token* at = nullptr) {
    const Token& t = at != nullptr ? *at : Peek();
    if (!error_.has_value() || (specific && !error_->specific)) {
      error_ = ParseError{std::move(msg), t.line, t.type == TokType::kEnd, specific};
    }
    return nullptr;
  }
  std::nullptr_t GenericError() { return Error("invalid syntax", false); }

  std::string Report() const {
    ParseError e = error_.value_or(ParseError{"invalid syntax", Peek().line, false, false});
    if (!open_at_end_.empty()) {
      const auto& [ch, line] = open_at_end_.back();
      if ((e.at_end && !e.specific) || e.line > line) {
        return WithLoc(absl::StrFormat("'%c' was never closed", ch), line);
      }
    }
    if (e.at_end && !e.specific && toks_.size() == 1) {
      // Empty input.
      return WithLoc("invalid syntax", 0);
    }
    return WithLoc(e.message, e.line);
  }

  PyNodePtr Make(PyNodeKind kind, int line) {
    auto n = std::make_unique<PyNode>();
    n->kind = kind;
    n->line = line;
    return n;
  }

  PyNodePtr CheckDepth(PyNodePtr n) {
    if (n == nullptr) return n;
    if (NodeDepth(*n) > kMaxTreeDepth) return Error("expression too deeply nested", true);
    return n;
  }

  struct ChainGuard {
    explicit ChainGuard(int* d) : d_(d) { ++*d_; }
    ~ChainGuard() { --*d_; }
    int* d_;
  };
  bool ChainTooDeep() {
    if (chain_depth_ > kMaxChainDepth) {
      Error("expression too deeply nested", true);
      return true;
    }
    return false;
  }

  bool StartsExpression(int k = 0) const {
    const Token& t = Peek(k);
    switch (t.type) {
      case TokType::kName:
        return !IsKeyword(t.text) || t.text == "True" || t.text == "False" || t.text == "None" ||
               t.text == "not" || t.text == "lambda" || t.text == "await";
      case TokType::kNumber:
      case TokType::kString:
        return true;
      case TokType::kOp:
        return t.text == "(" || t.text == "[" || t.text == "{" || t.text == "-" || t.text == "+" ||
               t.text == "~" || t.text == "...";
      default:
        return false;
    }
  }

  // "invalid syntax. Perhaps you forgot a comma?": inside brackets, an expression directly
  // followed by another expression.
  void MaybeForgotComma(const PyNode& prev, size_t prev_start) {
    const Token& t = Peek();
    if (t.level == 0 || error_.has_value()) return;
    if (t.type == TokType::kOp && t.text != "(" && t.text != "[" && t.text != "{" && t.text != "...") return;
    if (!StartsExpression()) return;
    if (prev.kind == PyNodeKind::kName && t.type == TokType::kString &&
        pos_ == prev_start + 1) {
      return;  // NAME STRING: CPython leaves it generic
    }
    size_t save = pos_;
    auto saved_error = error_;
    PyNodePtr next = ParseExpression();
    bool ok = next != nullptr;
    pos_ = save;
    error_ = saved_error;
    if (ok) Error("invalid syntax. Perhaps you forgot a comma?", true, &toks_[prev_start]);
  }

  // ---- grammar
  // star_expressions: (expression | '*' bitwise_or) (',' ...)* [','] -> Tuple if a comma
  PyNodePtr ParseStarExpressions() {
    int line = Peek().line;
    if (Peek().type == TokType::kName && IsOp(":=", 1)) return GenericError();  // unparenthesized
    PyNodePtr first = ParseStarExpr();
    if (first == nullptr) return nullptr;
    if (!IsOp(",")) {
      if (first->kind == PyNodeKind::kStarred) return GenericError();
      return first;
    }
    PyNodePtr tup = Make(PyNodeKind::kTuple, line);
    tup->elts.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (!StartsExpression() && !IsOp("*")) break;
      PyNodePtr e = ParseStarExpr();
      if (e == nullptr) return nullptr;
      tup->elts.push_back(std::move(e));
    }
    return tup;
  }

  // `'*' bitwise_or` at a '*' token: a Starred node.
  PyNodePtr ParseStarred() {
    int line = Peek().line;
    ++pos_;
    PyNodePtr v = ParseBitOr();
    if (v == nullptr) return nullptr;
    PyNodePtr s = Make(PyNodeKind::kStarred, line);
    s->a = std::move(v);
    return s;
  }

  PyNodePtr ParseStarExpr() { return IsOp("*") ? ParseStarred() : ParseNamedExpr(); }

  PyNodePtr ParseNamedExpr() {
    if (Peek().type == TokType::kName && IsOp(":=", 1) && !IsKeyword(Peek().text)) {
      int line = Peek().line;
      PyNodePtr target = Make(PyNodeKind::kName, line);
      target->text = Peek().text;
      pos_ += 2;
      PyNodePtr value = ParseExpression();
      if (value == nullptr) return nullptr;
      PyNodePtr n = Make(PyNodeKind::kNamedExpr, line);
      n->a = std::move(target);
      n->b = std::move(value);
      return n;
    }
    size_t start = pos_;
    PyNodePtr e = ParseExpression();
    if (e != nullptr && IsOp(":=")) {
      return Error(absl::StrCat("cannot use assignment expressions with ", Describe(*e)), true,
                   &toks_[start]);
    }
    return e;
  }

  static std::string Describe(const PyNode& n) {
    switch (n.kind) {
      case PyNodeKind::kConstant:
        if (n.const_kind == PyConstKind::kNone) return "None";
        if (n.const_kind == PyConstKind::kBool) return n.bool_value ? "True" : "False";
        if (n.const_kind == PyConstKind::kEllipsis) return "ellipsis";
        return "literal";
      case PyNodeKind::kCall: return "function call";
      case PyNodeKind::kAttribute: return "attribute";
      case PyNodeKind::kSubscript: return "subscript";
      case PyNodeKind::kBinOp: case PyNodeKind::kUnaryOp: return "expression";
      case PyNodeKind::kBoolOp: return "expression";
      case PyNodeKind::kCompare: return "comparison";
      case PyNodeKind::kList: return "list";
      case PyNodeKind::kTuple: return "tuple";
      case PyNodeKind::kDict: return "dict literal";
      case PyNodeKind::kSet: return "set display";
      case PyNodeKind::kLambda: return "lambda";
      case PyNodeKind::kIfExp: return "conditional expression";
      case PyNodeKind::kJoinedStr: return "f-string expression";
      case PyNodeKind::kListComp: return "list comprehension";
      case PyNodeKind::kSetComp: return "set comprehension";
      case PyNodeKind::kDictComp: return "dict comprehension";
      case PyNodeKind::kGeneratorExp: return "generator expression";
      case PyNodeKind::kStarred: return "starred";
      case PyNodeKind::kNamedExpr: return "named expression";
      default: return "expression";
    }
  }

  // expression: lambda | disjunction ['if' disjunction 'else' expression]
  PyNodePtr ParseExpression() {
    ChainGuard g(&chain_depth_);
    if (ChainTooDeep()) return nullptr;
    if (IsKw("lambda")) return ParseLambda();
    int line = Peek().line;
    size_t start = pos_;
    PyNodePtr body = ParseDisjunction();
    if (body == nullptr) return nullptr;
    if (IsKw("if")) {
      ++pos_;
      PyNodePtr test = ParseDisjunction();
      if (test == nullptr) return nullptr;
      if (!AcceptKw("else")) return Error("expected 'else' after 'if' expression", true);
      PyNodePtr orelse = ParseExpression();
      if (orelse == nullptr) return nullptr;
      PyNodePtr n = Make(PyNodeKind::kIfExp, line);
      n->a = std::move(test);
      n->b = std::move(body);
      n->c = std::move(orelse);
      return CheckDepth(std::move(n));
    }
    MaybeForgotComma(*body, start);
    return body;
  }

  PyNodePtr ParseLambda() {
    int line = Peek().line;
    ++pos_;  // lambda
    PyNodePtr n = Make(PyNodeKind::kLambda, line);
    // Simplified parameter list: names with optional defaults, *args, **kwargs, '/', '*'.
    while (!IsOp(":")) {
      if (AcceptOp("*") || AcceptOp("**") || AcceptOp("/")) {
        if (Peek().type == TokType::kName && !IsKeyword(Peek().text)) {
          PyNodePtr p = Make(PyNodeKind::kName, Peek().line);
          p->text = Peek().text;
          n->elts.push_back(std::move(p));
          ++pos_;
        }
      } else if (Peek().type == TokType::kName && !IsKeyword(Peek().text)) {
        PyNodePtr p = Make(PyNodeKind::kName, Peek().line);
        p->text = Peek().text;
        n->elts.push_back(std::move(p));
        ++pos_;
        if (AcceptOp("=")) {
          if (ParseExpression() == nullptr) return nullptr;
        }
      } else {
        return GenericError();
      }
      if (!AcceptOp(",")) break;
    }
    if (!AcceptOp(":")) return GenericError();
    PyNodePtr body = ParseExpression();
    if (body == nullptr) return nullptr;
    n->a = std::move(body);
    return n;
  }

  PyNodePtr ParseBoolChain(const char* op, PyNodePtr (Parser::*sub)()) {
    int line = Peek().line;
    PyNodePtr first = (this->*sub)();
    if (first == nullptr || !IsKw(op)) return first;
    PyNodePtr n = Make(PyNodeKind::kBoolOp, line);
    n->text = op;
    n->elts.push_back(std::move(first));
    while (AcceptKw(op)) {
      PyNodePtr v = (this->*sub)();
      if (v == nullptr) return nullptr;
      n->elts.push_back(std::move(v));
    }
    return CheckDepth(std::move(n));
  }
  PyNodePtr ParseDisjunction() { return ParseBoolChain("or", &Parser::ParseConjunction); }
  PyNodePtr ParseConjunction() { return ParseBoolChain("and", &Parser::ParseInversion); }

  PyNodePtr ParseInversion() {
    if (IsKw("not")) {
      ChainGuard g(&chain_depth_);
      if (ChainTooDeep()) return nullptr;
      int line = Peek().line;
      ++pos_;
      PyNodePtr operand = ParseInversion();
      if (operand == nullptr) return nullptr;
      PyNodePtr n = Make(PyNodeKind::kUnaryOp, line);
      n->text = "not";
      n->a = std::move(operand);
      return n;
    }
    return ParseComparison();
  }

  // Returns the comparison operator at the cursor (consuming it) or "".
  std::string AcceptCompOp() {
    static const char* const kOps[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (const char* op : kOps) {
      if (AcceptOp(op)) return op;
    }
    if (AcceptKw("in")) return "in";
    if (IsKw("not") && IsKw("in", 1)) {
      pos_ += 2;
      return "not in";
    }
    if (AcceptKw("is")) {
      if (AcceptKw("not")) return "is not";
      return "is";
    }
    return "";
  }

  PyNodePtr ParseComparison() {
    int line = Peek().line;
    PyNodePtr left = ParseBitOr();
    if (left == nullptr) return nullptr;
    std::string op = AcceptCompOp();
    if (op.empty()) return left;
    PyNodePtr n = Make(PyNodeKind::kCompare, line);
    n->a = std::move(left);
    while (!op.empty()) {
      PyNodePtr right = ParseBitOr();
      if (right == nullptr) return nullptr;
      n->ops.push_back(op);
      n->elts.push_back(std::move(right));
      op = AcceptCompOp();
    }
    return CheckDepth(std::move(n));
  }

  // Left-associative binary levels, table-driven.
  PyNodePtr ParseBinLevel(int level) {
    static const std::vector<std::vector<std::string>> kLevels = {
        {"|"}, {"^"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "//", "%", "@"}};
    if (level == static_cast<int>(kLevels.size())) return ParseFactor();
    int line = Peek().line;
    PyNodePtr left = ParseBinLevel(level + 1);
    if (left == nullptr) return nullptr;
    while (true) {
      std::string op;
      for (const std::string& candidate : kLevels[level]) {
        if (IsOp(candidate)) op = candidate;
      }
      if (op.empty()) return left;
      ++pos_;
      PyNodePtr right = ParseBinLevel(level + 1);
      if (right == nullptr) return nullptr;
      PyNodePtr n = Make(PyNodeKind::kBinOp, line);
      n->text = op;
      n->a = std::move(left);
      n->b = std::move(right);
      left = CheckDepth(std::move(n));
      if (left == nullptr) return nullptr;
    }
  }
  PyNodePtr ParseBitOr() { return ParseBinLevel(0); }

  PyNodePtr ParseFactor() {
    if (IsOp("-") || IsOp("+") || IsOp("~")) {
      ChainGuard g(&chain_depth_);
      if (ChainTooDeep()) return nullptr;
      int line = Peek().line;
      std::string op = Peek().text;
      ++pos_;
      PyNodePtr operand = ParseFactor();
      if (operand == nullptr) return nullptr;
      PyNodePtr n = Make(PyNodeKind::kUnaryOp, line);
      n->text = op;
      n->a = std::move(operand);
      return n;
    }
    return ParsePower();
  }

  PyNodePtr ParsePower() {
    int line = Peek().line;
    PyNodePtr base = ParsePrimary();
    if (base == nullptr) return nullptr;
    if (!IsOp("**")) return base;
    ChainGuard g(&chain_depth_);
    if (ChainTooDeep()) return nullptr;
    ++pos_;
    PyNodePtr exp = ParseFactor();
    if (exp == nullptr) return nullptr;
    PyNodePtr n = Make(PyNodeKind::kBinOp, line);
    n->text = "**";
    n->a = std::move(base);
    n->b = std::move(exp);
    return CheckDepth(std::move(n));
  }

  PyNodePtr ParsePrimary() {
    PyNodePtr node = ParseAtom();
    if (node == nullptr) return nullptr;
    while (true) {
      int line = Peek().line;
      if (AcceptOp(".")) {
        if (Peek().type != TokType::kName || IsKeyword(Peek().text)) return GenericError();
        PyNodePtr n = Make(PyNodeKind::kAttribute, node->line);
        n->text = Peek().text;
        ++pos_;
        n->a = std::move(node);
        node = CheckDepth(std::move(n));
      } else if (IsOp("(")) {
        ++pos_;
        PyNodePtr n = Make(PyNodeKind::kCall, node->line);
        n->a = std::move(node);
        if (!ParseCallArgs(n.get())) return nullptr;
        node = CheckDepth(std::move(n));
      } else if (IsOp("[")) {
        ++pos_;
        PyNodePtr slice = ParseSlices();
        if (slice == nullptr) return nullptr;
        if (!AcceptOp("]")) return GenericError();
        PyNodePtr n = Make(PyNodeKind::kSubscript, node->line);
        n->a = std::move(node);
        n->b = std::move(slice);
        node = CheckDepth(std::move(n));
      } else {
        (void)line;
        return node;
      }
      if (node == nullptr) return nullptr;
    }
  }

  PyNodePtr ParseSlice() {
    int line = Peek().line;
    PyNodePtr lower;
    if (!IsOp(":")) {
      lower = ParseNamedExpr();
      if (lower == nullptr) return nullptr;
      if (!IsOp(":")) return lower;
    }
    ++pos_;  // ':'
    PyNodePtr n = Make(PyNodeKind::kSlice, line);
    n->a = std::move(lower);
    if (!IsOp(":") && !IsOp("]") && !IsOp(",")) {
      n->b = ParseExpression();
      if (n->b == nullptr) return nullptr;
    }
    if (AcceptOp(":")) {
      if (!IsOp("]") && !IsOp(",")) {
        n->c = ParseExpression();
        if (n->c == nullptr) return nullptr;
      }
    }
    return n;
  }

  PyNodePtr ParseSlices() {
    int line = Peek().line;
    PyNodePtr first = IsOp("*") ? ParseStarExpr() : ParseSlice();
    if (first == nullptr) return nullptr;
    if (!IsOp(",")) return first;
    PyNodePtr tup = Make(PyNodeKind::kTuple, line);
    tup->elts.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (IsOp("]")) break;
      PyNodePtr e = IsOp("*") ? ParseStarExpr() : ParseSlice();
      if (e == nullptr) return nullptr;
      tup->elts.push_back(std::move(e));
    }
    return tup;
  }

  // After '(' of a call.
  bool ParseCallArgs(PyNode* call) {
    bool seen_keyword = false;
    bool seen_double_star = false;
    while (!IsOp(")")) {
      const Token& start_tok = Peek();
      if (IsOp("**")) {
        ++pos_;
        PyNodePtr v = ParseExpression();
        if (v == nullptr) return false;
        call->keywords.push_back(PyKeyword{std::nullopt, std::move(v)});
        seen_double_star = true;
      } else if (IsOp("*")) {
        int line = Peek().line;
        ++pos_;
        PyNodePtr v = ParseExpression();
        if (v == nullptr) return false;
        if (seen_double_star) {
          Error("iterable argument unpacking follows keyword argument unpacking", true, &start_tok);
          return false;
        }
        PyNodePtr s = Make(PyNodeKind::kStarred, line);
        s->a = std::move(v);
        call->elts.push_back(std::move(s));
      } else if (Peek().type == TokType::kName && IsOp("=", 1)) {
        const Token& name_tok = Peek();
        if (name_tok.text == "True" || name_tok.text == "False" || name_tok.text == "None") {
          Error(absl::StrCat("cannot assign to ", name_tok.text), true, &name_tok);
          return false;
        }
        if (IsKeyword(name_tok.text)) {
          GenericError();
          return false;
        }
        std::string name = name_tok.text;
        pos_ += 2;
        PyNodePtr v = ParseExpression();
        if (v == nullptr) return false;
        call->keywords.push_back(PyKeyword{std::move(name), std::move(v)});
        seen_keyword = true;
      } else {
        size_t start = pos_;
        PyNodePtr v = ParseNamedExpr();
        if (v == nullptr) return false;
        if (IsOp("=")) {
          Error("expression cannot contain assignment, perhaps you meant \"==\"?", true,
                &toks_[start]);
          return false;
        }
        if (IsKw("for") || IsKw("async")) {
          // Generator expression as the sole argument.
          PyNodePtr gen = ParseComprehension(PyNodeKind::kGeneratorExp, std::move(v), nullptr, start);
          if (gen == nullptr) return false;
          v = std::move(gen);
        }
        if (seen_double_star) {
          Error("positional argument follows keyword argument unpacking", true, &toks_[start]);
          return false;
        }
        if (seen_keyword) {
          Error("positional argument follows keyword argument", true, &toks_[start]);
          return false;
        }
        call->elts.push_back(std::move(v));
      }
      if (!AcceptOp(",")) break;
    }
    if (!AcceptOp(")")) {
      GenericError();
      return false;
    }
    return true;
  }

  // for_if_clauses after the element; `value` set for dict comprehensions.
  PyNodePtr ParseComprehension(PyNodeKind kind, PyNodePtr elt, PyNodePtr value, size_t start) {
    PyNodePtr n = Make(kind, toks_[start].line);
    n->a = std::move(elt);
    n->b = std::move(value);
    while (IsKw("for") || IsKw("async")) {
      AcceptKw("async");
      if (!AcceptKw("for")) return GenericError();
      // target: star_targets, parsed as a bitwise-or list
      PyNodePtr target = ParseTargetList();
      if (target == nullptr) return nullptr;
      if (!AcceptKw("in")) return GenericError();
      PyNodePtr iter = ParseDisjunction();
      if (iter == nullptr) return nullptr;
      PyNodePtr clause = Make(PyNodeKind::kTuple, target->line);  // (target, iter, ifs...)
      clause->elts.push_back(std::move(target));
      clause->elts.push_back(std::move(iter));
      while (AcceptKw("if")) {
        PyNodePtr cond = ParseDisjunction();
        if (cond == nullptr) return nullptr;
        clause->elts.push_back(std::move(cond));
      }
      n->values.push_back(std::move(clause));
    }
    return n;
  }

  PyNodePtr ParseTargetList() {
    int line = Peek().line;
    PyNodePtr first = ParseStarTarget();
    if (first == nullptr || !IsOp(",")) return first;
    PyNodePtr tup = Make(PyNodeKind::kTuple, line);
    tup->elts.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (IsKw("in")) break;
      PyNodePtr e = ParseStarTarget();
      if (e == nullptr) return nullptr;
      tup->elts.push_back(std::move(e));
    }
    return tup;
  }
  PyNodePtr ParseStarTarget() { return IsOp("*") ? ParseStarred() : ParseBitOr(); }

  PyNodePtr ParseAtom() {
    const Token& t = Peek();
    int line = t.line;
    switch (t.type) {
      case TokType::kName: {
        if (t.text == "True" || t.text == "False" || t.text == "None") {
          PyNodePtr n = Make(PyNodeKind::kConstant, line);
          n->const_kind = t.text == "None" ? PyConstKind::kNone : PyConstKind::kBool;
          n->bool_value = t.text == "True";
          ++pos_;
          return n;
        }
        if (IsKeyword(t.text)) return GenericError();
        PyNodePtr n = Make(PyNodeKind::kName, line);
        n->text = t.text;
        ++pos_;
        return n;
      }
      case TokType::kNumber:
        return ParseNumber();
      case TokType::kString:
        return ParseStrings();
      case TokType::kOp:
        if (t.text == "...") {
          ++pos_;
          PyNodePtr n = Make(PyNodeKind::kConstant, line);
          n->const_kind = PyConstKind::kEllipsis;
          return n;
        }
        if (t.text == "(") return ParseParen();
        if (t.text == "[") return ParseListDisplay();
        if (t.text == "{") return ParseBraceDisplay();
        return GenericError();
      default:
        return GenericError();
    }
  }

  PyNodePtr ParseNumber() {
    const Token& t = Peek();
    PyNodePtr n = Make(PyNodeKind::kConstant, t.line);
    std::string clean;
    for (char c : t.text) {
      if (c != '_') clean.push_back(c);
    }
    ++pos_;
    char last = clean.back();
    if (last == 'j' || last == 'J') {
      clean.pop_back();
      n->const_kind = PyConstKind::kComplex;
      n->float_value = std::strtod(clean.c_str(), nullptr);
      return n;
    }
    bool is_prefixed = clean.size() > 1 && clean[0] == '0' && std::isalpha(static_cast<unsigned char>(clean[1]));
    if (!is_prefixed && clean.find_first_of(".eE") != std::string::npos) {
      n->const_kind = PyConstKind::kFloat;
      n->float_value = std::strtod(clean.c_str(), nullptr);  // glibc strtod rounds correctly
      return n;
    }
    n->const_kind = PyConstKind::kInt;
    int base = 10;
    std::string digits = clean;
    if (is_prefixed) {
      char k = static_cast<char>(std::tolower(static_cast<unsigned char>(clean[1])));
      base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
      digits = clean.substr(2);
    }
    // Accumulate with overflow detection; beyond int64 keep the decimal text.
    unsigned __int128 v = 0;
    bool overflow = false;
    for (char c : digits) {
      int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
      v = v * base + d;
      if (v > static_cast<unsigned __int128>(INT64_MAX)) {
        overflow = true;
        break;
      }
    }
    if (!overflow) {
      n->int_value = static_cast<int64_t>(v);
      return n;
    }
    n->big_int = true;
    if (base == 10) {
      size_t nz = digits.find_first_not_of('0');
      n->text = nz == std::string::npos ? "0" : digits.substr(nz);
      if (n->text.size() > kIntMaxStrDigits) {
        return Error(absl::StrCat("Exceeds the limit (", kIntMaxStrDigits,
                                  " digits) for integer string conversion: value has ",
                                  n->text.size(),
                                  " digits; use sys.set_int_max_str_digits() to increase the "
                                  "limit - Consider hexadecimal for huge integer literals to "
                                  "avoid decimal conversion limits."),
                     true, &t);
      }
    } else {
      // Power-of-two bases have no digit limit in CPython.
      n->text = PyBigInt::FromString(digits, base)->ToString();
    }
    return n;
  }

  PyNodePtr ParseStrings() {
    int line = Peek().line;
    bool any_bytes = false, any_str = false, any_f = false;
    std::string value, source;
    while (Peek().type == TokType::kString) {
      const StrPiece& p = Peek().str;
      (p.is_bytes ? any_bytes : any_str) = true;
      any_f = any_f || p.is_fstring;
      value += p.value;
      if (!source.empty()) source += " ";
      source += p.source;
      ++pos_;
    }
    if (any_bytes && any_str) return Error("cannot mix bytes and nonbytes literals", true);
    if (any_f) {
      PyNodePtr n = Make(PyNodeKind::kJoinedStr, line);
      n->text = source;
      return n;
    }
    PyNodePtr n = Make(PyNodeKind::kConstant, line);
    n->const_kind = any_bytes ? PyConstKind::kBytes : PyConstKind::kStr;
    n->str = std::move(value);
    return n;
  }

  PyNodePtr ParseParen() {
    int line = Peek().line;
    ++pos_;  // (
    if (AcceptOp(")")) return Make(PyNodeKind::kTuple, line);
    size_t start = pos_;
    PyNodePtr first = ParseStarExpr();
    if (first == nullptr) return nullptr;
    if (IsKw("for") || IsKw("async")) {
      PyNodePtr gen = ParseComprehension(PyNodeKind::kGeneratorExp, std::move(first), nullptr, start);
      if (gen == nullptr) return nullptr;
      if (!AcceptOp(")")) return GenericError();
      return gen;
    }
    if (AcceptOp(")")) {
      if (first->kind == PyNodeKind::kStarred) return Error("cannot use starred expression here", true);
      return first;
    }
    if (!IsOp(",")) return GenericError();
    PyNodePtr tup = Make(PyNodeKind::kTuple, line);
    tup->elts.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (IsOp(")")) break;
      PyNodePtr e = ParseStarExpr();
      if (e == nullptr) return nullptr;
      tup->elts.push_back(std::move(e));
    }
    if (!AcceptOp(")")) return GenericError();
    return tup;
  }

  PyNodePtr ParseListDisplay() {
    int line = Peek().line;
    ++pos_;  // [
    PyNodePtr list = Make(PyNodeKind::kList, line);
    if (AcceptOp("]")) return list;
    size_t start = pos_;
    PyNodePtr first = ParseStarExpr();
    if (first == nullptr) return nullptr;
    if (IsKw("for") || IsKw("async")) {
      PyNodePtr comp = ParseComprehension(PyNodeKind::kListComp, std::move(first), nullptr, start);
      if (comp == nullptr) return nullptr;
      if (!AcceptOp("]")) return GenericError();
      return comp;
    }
    list->elts.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (IsOp("]")) break;
      PyNodePtr e = ParseStarExpr();
      if (e == nullptr) return nullptr;
      list->elts.push_back(std::move(e));
    }
    if (!AcceptOp("]")) return GenericError();
    return list;
  }

  PyNodePtr ParseBraceDisplay() {
    int line = Peek().line;
    ++pos_;  // {
    if (AcceptOp("}")) return Make(PyNodeKind::kDict, line);
    size_t start = pos_;
    // Dict if the first item is '**x' or 'k: v'.
    if (IsOp("**")) return ParseDictRest(line, nullptr, nullptr);
    PyNodePtr first = ParseStarExpr();
    if (first == nullptr) return nullptr;
    if (AcceptOp(":")) {
      if (first->kind == PyNodeKind::kStarred) return GenericError();
      if (IsOp("}") || IsOp(",")) return Error("expression expected after dictionary key and ':'", true);
      PyNodePtr v = ParseExpression();
      if (v == nullptr) return nullptr;
      if (IsKw("for") || IsKw("async")) {
        PyNodePtr comp = ParseComprehension(PyNodeKind::kDictComp, std::move(first), std::move(v), start);
        if (comp == nullptr) return nullptr;
        if (!AcceptOp("}")) return GenericError();
        return comp;
      }
      return ParseDictRest(line, std::move(first), std::move(v));
    }
    if (IsKw("for") || IsKw("async")) {
      PyNodePtr comp = ParseComprehension(PyNodeKind::kSetComp, std::move(first), nullptr, start);
      if (comp == nullptr) return nullptr;
      if (!AcceptOp("}")) return GenericError();
      return comp;
    }
    PyNodePtr set = Make(PyNodeKind::kSet, line);
    set->elts.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (IsOp("}")) break;
      PyNodePtr e = ParseStarExpr();
      if (e == nullptr) return nullptr;
      set->elts.push_back(std::move(e));
    }
    if (!AcceptOp("}")) return GenericError();
    return set;
  }

  // Continues a dict display after an optional first pair (k == nullptr && v == nullptr: none).
  PyNodePtr ParseDictRest(int line, PyNodePtr k, PyNodePtr v) {
    PyNodePtr dict = Make(PyNodeKind::kDict, line);
    bool need_item = k == nullptr && v == nullptr;
    if (!need_item) {
      dict->elts.push_back(std::move(k));
      dict->values.push_back(std::move(v));
    }
    while (true) {
      if (!need_item) {
        if (!AcceptOp(",")) break;
        if (IsOp("}")) break;
      }
      need_item = false;
      if (AcceptOp("**")) {
        PyNodePtr m = ParseBitOr();
        if (m == nullptr) return nullptr;
        dict->elts.push_back(nullptr);
        dict->values.push_back(std::move(m));
        continue;
      }
      PyNodePtr key = ParseExpression();
      if (key == nullptr) return nullptr;
      if (!AcceptOp(":")) {
        if (IsOp("}") || IsOp(",")) return Error("':' expected after dictionary key", true);
        return GenericError();
      }
      if (IsOp("}") || IsOp(",")) return Error("expression expected after dictionary key and ':'", true);
      PyNodePtr value = ParseExpression();
      if (value == nullptr) return nullptr;
      dict->elts.push_back(std::move(key));
      dict->values.push_back(std::move(value));
    }
    if (!AcceptOp("}")) return GenericError();
    return dict;
  }

  std::vector<Token> toks_;
  std::vector<std::pair<char, int>> open_at_end_;
  size_t pos_ = 0;
  int chain_depth_ = 0;
  std::optional<ParseError> error_;
};

int NodeDepth(const PyNode& n) {
  // Memoised: every loop-built (left-deep) node is checked when built, so the recursion here only
  // walks parts built by bounded recursive descent.
  if (n.depth_memo > 0) return n.depth_memo;
  int d = 0;
  auto child = [&](const PyNodePtr& c) {
    if (c != nullptr) d = std::max(d, NodeDepth(*c));
  };
  child(n.a);
  child(n.b);
  child(n.c);
  for (const auto& e : n.elts) child(e);
  for (const auto& e : n.values) child(e);
  for (const auto& k : n.keywords) child(k.value);
  n.depth_memo = d + 1;
  return n.depth_memo;
}

// ------------------------------------------------------------------------------------------
// Unparser (ast.unparse, CPython 3.11)

enum Prec {
  kNamedExpr = 0,
  kTuple,
  kYield,
  kTest,
  kOr,
  kAnd,
  kNot,
  kCmp,
  kExpr,  // also BOR
  kBXor,
  kBAnd,
  kShift,
  kArith,
  kTerm,
  kFactor,
  kPower,
  kAwait,
  kAtom,
};

int BinOpPrec(std::string_view op) {
  if (op == "+" || op == "-") return kArith;
  if (op == "*" || op == "/" || op == "//" || op == "%" || op == "@") return kTerm;
  if (op == "<<" || op == ">>") return kShift;
  if (op == "|") return kExpr;
  if (op == "^") return kBXor;
  if (op == "&") return kBAnd;
  return kPower;  // **
}

class Unparser {
 public:
  std::string out;

  void Visit(const PyNode& n, int prec) {
    switch (n.kind) {
      case PyNodeKind::kConstant:
        out += ConstRepr(n);
        return;
      case PyNodeKind::kName:
        out += n.text;
        return;
      case PyNodeKind::kJoinedStr:
        out += n.text;
        return;
      case PyNodeKind::kList:
        out += "[";
        Items(n.elts);
        out += "]";
        return;
      case PyNodeKind::kSet:
        out += "{";
        Items(n.elts);
        out += "}";
        return;
      case PyNodeKind::kTuple: {
        bool parens = n.elts.empty() || prec > kTuple;
        if (parens) out += "(";
        Items(n.elts);
        if (n.elts.size() == 1) out += ",";
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kDict:
        out += "{";
        for (size_t i = 0; i < n.elts.size(); ++i) {
          if (i > 0) out += ", ";
          if (n.elts[i] == nullptr) {
            out += "**";
            Visit(*n.values[i], kExpr);
          } else {
            Visit(*n.elts[i], kTest);
            out += ": ";
            Visit(*n.values[i], kTest);
          }
        }
        out += "}";
        return;
      case PyNodeKind::kCall: {
        Visit(*n.a, kAtom);
        out += "(";
        bool comma = false;
        for (const auto& e : n.elts) {
          if (comma) out += ", ";
          comma = true;
          Visit(*e, kTest);
        }
        for (const auto& kw : n.keywords) {
          if (comma) out += ", ";
          comma = true;
          if (kw.arg.has_value()) {
            out += *kw.arg;
            out += "=";
          } else {
            out += "**";
          }
          Visit(*kw.value, kTest);
        }
        out += ")";
        return;
      }
      case PyNodeKind::kAttribute:
        Visit(*n.a, kAtom);
        if (n.a->kind == PyNodeKind::kConstant && n.a->const_kind == PyConstKind::kInt) out += " ";
        out += ".";
        out += n.text;
        return;
      case PyNodeKind::kSubscript:
        Visit(*n.a, kAtom);
        out += "[";
        if (n.b->kind == PyNodeKind::kTuple && !n.b->elts.empty()) {
          Items(n.b->elts);
          if (n.b->elts.size() == 1) out += ",";
        } else {
          Visit(*n.b, kTest);
        }
        out += "]";
        return;
      case PyNodeKind::kSlice:
        if (n.a) Visit(*n.a, kTest);
        out += ":";
        if (n.b) Visit(*n.b, kTest);
        if (n.c) {
          out += ":";
          Visit(*n.c, kTest);
        }
        return;
      case PyNodeKind::kStarred:
        out += "*";
        Visit(*n.a, kExpr);
        return;
      case PyNodeKind::kUnaryOp: {
        int p = n.text == "not" ? kNot : kFactor;
        bool parens = prec > p;
        if (parens) out += "(";
        out += n.text;
        if (p != kFactor) out += " ";
        Visit(*n.a, p);
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kBinOp: {
        int p = BinOpPrec(n.text);
        bool parens = prec > p;
        if (parens) out += "(";
        bool rassoc = n.text == "**";
        Visit(*n.a, rassoc ? p + 1 : p);
        out += " " + n.text + " ";
        Visit(*n.b, rassoc ? p : p + 1);
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kBoolOp: {
        int p = n.text == "and" ? kAnd : kOr;
        bool parens = prec > p;
        if (parens) out += "(";
        int level = p;
        for (size_t i = 0; i < n.elts.size(); ++i) {
          if (i > 0) out += " " + n.text + " ";
          ++level;
          Visit(*n.elts[i], level);
        }
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kCompare: {
        bool parens = prec > kCmp;
        if (parens) out += "(";
        Visit(*n.a, kCmp + 1);
        for (size_t i = 0; i < n.elts.size(); ++i) {
          out += " " + n.ops[i] + " ";
          Visit(*n.elts[i], kCmp + 1);
        }
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kIfExp: {
        bool parens = prec > kTest;
        if (parens) out += "(";
        Visit(*n.b, kTest + 1);
        out += " if ";
        Visit(*n.a, kTest + 1);
        out += " else ";
        Visit(*n.c, kTest);
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kLambda: {
        bool parens = prec > kTest;
        if (parens) out += "(";
        out += "lambda";
        for (size_t i = 0; i < n.elts.size(); ++i) {
          out += i == 0 ? " " : ", ";
          out += n.elts[i]->text;
        }
        out += ": ";
        Visit(*n.a, kTest);
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kNamedExpr: {
        bool parens = prec > kNamedExpr;
        if (parens) out += "(";
        Visit(*n.a, kAtom);
        out += " := ";
        Visit(*n.b, kAtom);
        if (parens) out += ")";
        return;
      }
      case PyNodeKind::kListComp:
      case PyNodeKind::kSetComp:
      case PyNodeKind::kDictComp:
      case PyNodeKind::kGeneratorExp: {
        const char* open = n.kind == PyNodeKind::kListComp ? "[" : n.kind == PyNodeKind::kGeneratorExp ? "(" : "{";
        const char* close = n.kind == PyNodeKind::kListComp ? "]" : n.kind == PyNodeKind::kGeneratorExp ? ")" : "}";
        out += open;
        Visit(*n.a, kTest);
        if (n.kind == PyNodeKind::kDictComp) {
          out += ": ";
          Visit(*n.b, kTest);
        }
        for (const auto& clause : n.values) {
          out += " for ";
          Visit(*clause->elts[0], kTuple);
          out += " in ";
          Visit(*clause->elts[1], kTest + 1);
          for (size_t i = 2; i < clause->elts.size(); ++i) {
            out += " if ";
            Visit(*clause->elts[i], kTest + 1);
          }
        }
        out += close;
        return;
      }
    }
  }

 private:
  void Items(const std::vector<PyNodePtr>& items) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += ", ";
      Visit(*items[i], kTest);
    }
  }

  static std::string ConstRepr(const PyNode& n) {
    switch (n.const_kind) {
      case PyConstKind::kNone: return "None";
      case PyConstKind::kBool: return n.bool_value ? "True" : "False";
      case PyConstKind::kEllipsis: return "...";
      case PyConstKind::kInt: return n.big_int ? n.text : std::to_string(n.int_value);
      case PyConstKind::kFloat:
        if (std::isinf(n.float_value)) return "1e309";
        return PyFloatRepr(n.float_value);
      case PyConstKind::kComplex: {
        std::string r = std::isinf(n.float_value) ? "1e309" : PyFloatRepr(n.float_value);
        if (r.size() > 2 && r.compare(r.size() - 2, 2, ".0") == 0) r.resize(r.size() - 2);
        return r + "j";
      }
      case PyConstKind::kStr: return PyStrRepr(n.str);
      case PyConstKind::kBytes: return PyBytesRepr(n.str);
    }
    return "";
  }
};

}  // namespace

namespace {
absl::StatusOr<PyNodePtr> ParseImpl(std::string_view source, bool strip_leading_ws);
}  // namespace

absl::StatusOr<PyNodePtr> ParsePyExpression(std::string_view source, bool strip_leading_ws,
                                            std::string_view filename) {
  absl::StatusOr<PyNodePtr> r = ParseImpl(source, strip_leading_ws);
  if (r.ok() || filename == "<string>") return r;
  std::string msg(r.status().message());
  size_t p = msg.rfind(" (<string>, line ");
  if (p != std::string::npos) msg.replace(p + 2, 8, std::string(filename));
  return absl::InvalidArgumentError(msg);
}

namespace {
absl::StatusOr<PyNodePtr> ParseImpl(std::string_view source, bool strip_leading_ws) {
  if (strip_leading_ws) {
    size_t i = 0;
    while (i < source.size() && (source[i] == ' ' || source[i] == '\t')) ++i;
    source.remove_prefix(i);
  } else if (!source.empty() && (source[0] == ' ' || source[0] == '\t')) {
    size_t i = 0;
    while (i < source.size() && (source[i] == ' ' || source[i] == '\t' || source[i] == '\f')) ++i;
    if (i >= source.size() || (source[i] != '\n' && source[i] != '\r' && source[i] != '#')) {
      return absl::InvalidArgumentError(WithLoc("unexpected indent", 1));
    }
  }
  Tokenizer tok(source);
  tok.Run();
  if (tok.error_.has_value()) return absl::InvalidArgumentError(*tok.error_);
  Parser parser(std::move(tok.tokens_), std::move(tok.open_));
  return parser.ParseAll();
}
}  // namespace

std::string UnparsePy(const PyNode& node) {
  Unparser u;
  u.Visit(node, kTest);
  return u.out;
}

std::string_view PyAstClassName(const PyNode& node) {
  switch (node.kind) {
    case PyNodeKind::kConstant: return "Constant";
    case PyNodeKind::kName: return "Name";
    case PyNodeKind::kList: return "List";
    case PyNodeKind::kTuple: return "Tuple";
    case PyNodeKind::kSet: return "Set";
    case PyNodeKind::kDict: return "Dict";
    case PyNodeKind::kCall: return "Call";
    case PyNodeKind::kAttribute: return "Attribute";
    case PyNodeKind::kSubscript: return "Subscript";
    case PyNodeKind::kSlice: return "Slice";
    case PyNodeKind::kUnaryOp: return "UnaryOp";
    case PyNodeKind::kBinOp: return "BinOp";
    case PyNodeKind::kBoolOp: return "BoolOp";
    case PyNodeKind::kCompare: return "Compare";
    case PyNodeKind::kIfExp: return "IfExp";
    case PyNodeKind::kLambda: return "Lambda";
    case PyNodeKind::kStarred: return "Starred";
    case PyNodeKind::kListComp: return "ListComp";
    case PyNodeKind::kSetComp: return "SetComp";
    case PyNodeKind::kDictComp: return "DictComp";
    case PyNodeKind::kGeneratorExp: return "GeneratorExp";
    case PyNodeKind::kJoinedStr: return "JoinedStr";
    case PyNodeKind::kNamedExpr: return "NamedExpr";
  }
  return "AST";
}

std::string PyBytesRepr(std::string_view bytes) {
  bool has_single = bytes.find('\'') != std::string_view::npos;
  bool has_double = bytes.find('"') != std::string_view::npos;
  char q = (has_single && !has_double) ? '"' : '\'';
  std::string out = "b";
  out.push_back(q);
  for (unsigned char c : bytes) {
    if (c == static_cast<unsigned char>(q) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c >= 0x7F) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back(q);
  return out;
}

}  // namespace envtune
