// UTF-8 and Unicode helpers for the tokenizer: strict validation, WHATWG/Rust-style lossy decoding
// (each maximal ill-formed subsequence becomes one U+FFFD, as String::from_utf8_lossy and
// TextDecoder do), and NFC normalization (tables generated from Unicode 14.0 by
// gen_unicode_nfc.py). All functions are pure and thread-safe.
#ifndef ENVTUNE_MODEL_TEXT_UNICODE_H_
#define ENVTUNE_MODEL_TEXT_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace envtune {

// True iff `s` is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Byte offset of the first ill-formed sequence, or s.size() if valid.
size_t FirstInvalidUtf8Offset(std::string_view s);

// Replaces every maximal ill-formed subsequence with U+FFFD ("\xEF\xBF\xBD").
std::string Utf8Lossy(std::string_view bytes);

// Appends the UTF-8 encoding of `cp` (REQUIRES: cp is a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// Decodes valid UTF-8 into code points. REQUIRES: IsValidUtf8(s).
std::vector<char32_t> DecodeUtf8(std::string_view s);

// Unicode Normalization Form C. REQUIRES: IsValidUtf8(s). Returns `s` unchanged (cheaply) when it
// contains no code point >= U+0300.
std::string NormalizeNfc(std::string_view s);

// Version of the Unicode Character Database behind NormalizeNfc.
const char* NfcUnicodeVersion();

}  // namespace envtune

#endif  // ENVTUNE_MODEL_TEXT_UNICODE_H_
