// Unicode helpers for the tokenizer: the UTF-8 primitives of common/utf8.h (strict validation,
// WHATWG/Rust-style lossy decoding, encoding), fast decoding of valid UTF-8, and NFC normalization
// (tables generated from Unicode 14.0 by gen_unicode_nfc.py). All functions are pure and
// thread-safe.
#ifndef ENVTUNE_MODEL_TEXT_UNICODE_H_
#define ENVTUNE_MODEL_TEXT_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/utf8.h"  // IsValidUtf8, FirstInvalidUtf8Offset, Utf8Lossy, AppendUtf8

namespace envtune {

// Decodes valid UTF-8 into code points. REQUIRES: IsValidUtf8(s).
std::vector<char32_t> DecodeUtf8(std::string_view s);

// Unicode Normalization Form C. REQUIRES: IsValidUtf8(s). Returns `s` unchanged (cheaply) when it
// contains no code point >= U+0300.
std::string NormalizeNfc(std::string_view s);

// Version of the Unicode Character Database behind NormalizeNfc.
const char* NfcUnicodeVersion();

}  // namespace envtune

#endif  // ENVTUNE_MODEL_TEXT_UNICODE_H_
