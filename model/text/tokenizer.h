// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (the Qwen2/2.5/3 family).
//
// Supported tokenizer.json subset (anything else is rejected by Load with InvalidArgument naming
// the offending field): model.type "BPE" with vocab + merges ("a b" strings or ["a","b"] pairs),
// no dropout, no continuing_subword_prefix/end_of_word_suffix, byte_fallback false; normalizer
// null, NFC or Sequence of those; pre_tokenizer Split(Regex, Isolated) and ByteLevel(use_regex
// false), alone or in a Sequence; decoder ByteLevel (or null); added_tokens with special / lstrip /
// rstrip flags (single_word and normalized=true are treated like HF does for the Qwen files: all
// added tokens are matched on the raw text). Encoding matches HF `tokenizers`: added tokens are
// split out first (leftmost-longest match), the rest is NFC-normalized, split by the
// pre-tokenizer regex (PCRE2, UTF+UCP), byte-level mapped and BPE-merged by merge rank.
// The regex runs with the JavaScript semantics of the reference encodings (transformers.js) where
// regex engines disagree: \s is the JS whitespace set (includes U+FEFF, excludes U+0085 and
// U+180E) and Qwen's "(?i:'s|'t|...)" folds ASCII only.
//
// Thread safety: after construction every method is const and safe to call concurrently (the
// word cache is internally synchronized).
#ifndef ENVTUNE_MODEL_TEXT_TOKENIZER_H_
#define ENVTUNE_MODEL_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace envtune {

using TokenId = int32_t;

struct EncodeOptions {
  // When false (HF default), special added tokens written in the text (e.g. "<|im_end|>") become
  // their single id. When true they are encoded as ordinary text (HF split_special_tokens=True);
  // non-special added tokens such as "<tool_call>" are still matched.
  bool split_special_tokens = false;
};

struct DecodeOptions {
  // Drop added tokens flagged special (e.g. <|im_end|>); non-special added tokens are kept.
  bool skip_special_tokens = false;
  // Skip ids in [0, model vocab) that have no token (a model's embedding is often padded past
  // the tokenizer, e.g. Qwen2.5's 151936 rows for 151665 tokens), as HF tokenizers' decode
  // does; otherwise they are an InvalidArgument error. Negative ids are always an error.
  bool skip_unknown_ids = false;
};

class Tokenizer {
 public:
  // Loads tokenizer.json from `path`. Errors: NotFound (unreadable file), InvalidArgument
  // (malformed JSON or unsupported configuration; the message names the field).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // Same from the file contents.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text` (no BOS/EOS are added). InvalidArgument if `text` is not valid UTF-8.
  absl::StatusOr<std::vector<TokenId>> Encode(std::string_view text,
                                              const EncodeOptions& options = {}) const;

  // Text of `ids`; bytes that do not form valid UTF-8 become U+FFFD (as HF's decode).
  // InvalidArgument if an id is out of range.
  absl::StatusOr<std::string> Decode(absl::Span<const TokenId> ids,
                                     const DecodeOptions& options = {}) const;
  // Raw bytes of `ids` without UTF-8 repair (useful for incremental detokenization).
  absl::StatusOr<std::string> DecodeBytes(absl::Span<const TokenId> ids,
                                          const DecodeOptions& options = {}) const;

  // Normalized pre-tokenizer pieces ("words" before BPE) of `text`, ignoring added tokens.
  absl::StatusOr<std::vector<std::string>> PreTokenize(std::string_view text) const;

  // Id of a vocabulary or added token written in its tokenizer.json form ("Ġthe", "<|im_end|>").
  std::optional<TokenId> TokenToId(std::string_view token) const;
  // tokenizer.json form of `id`, or nullopt if out of range.
  std::optional<std::string> IdToToken(TokenId id) const;
  bool IsSpecial(TokenId id) const;
  bool IsAddedToken(TokenId id) const;

  // One past the largest id (BPE vocabulary plus added tokens).
  int32_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace envtune

#endif  // ENVTUNE_MODEL_TEXT_TOKENIZER_H_
