// UTF-8 primitives shared by the env server (Python str semantics) and the tokenizer (model/text):
// decoding one code point with Unicode's well-formedness rules (Table 3-7: shortest form only,
// <= U+10FFFF, no UTF-16 surrogates unless asked), the maximal ill-formed subpart that one U+FFFD
// replaces (as Python's decode("utf-8", "replace"), WHATWG TextDecoder and Rust's
// String::from_utf8_lossy do), validation, lossy repair and encoding. Pure and thread-safe;
// depends on nothing else in the project.
#ifndef ENVTUNE_COMMON_UTF8_H_
#define ENVTUNE_COMMON_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace envtune {

// Decodes the sequence starting at s[i]. REQUIRES: i < s.size().
// Well-formed (with `allow_surrogates`, encoded U+D800..U+DFFF count as well-formed too): stores
// the code point in *cp when cp != nullptr and returns the sequence length, 1..4.
// Ill-formed: returns 0, leaves *cp alone, and when maximal != nullptr stores the length (>= 1) of
// the maximal ill-formed subpart starting at i (the bytes that one U+FFFD stands for).
size_t DecodeUtf8At(std::string_view s, size_t i, char32_t* cp, size_t* maximal = nullptr,
                    bool allow_surrogates = false);

// Byte offset of the first ill-formed sequence, or s.size() if `s` is well-formed.
size_t FirstInvalidUtf8Offset(std::string_view s);

// True iff `s` is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `bytes` with every maximal ill-formed subpart replaced by U+FFFD ("\xEF\xBF\xBD").
std::string Utf8Lossy(std::string_view bytes);

// Appends the UTF-8 encoding of `cp`. REQUIRES: cp <= 0x10FFFF (a surrogate is written in its
// 3-byte form, as Python's "surrogatepass" does).
void AppendUtf8(char32_t cp, std::string* out);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_UTF8_H_
