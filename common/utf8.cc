#include "common/utf8.h"

#include <cstdint>
#include <cstring>

namespace envtune {

size_t DecodeUtf8At(std::string_view s, size_t i, char32_t* cp, size_t* maximal,
                    bool allow_surrogates) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (maximal != nullptr) *maximal = 1;
  if (b0 < 0x80) {
    if (cp != nullptr) *cp = b0;
    return 1;
  }
  // Number of continuation bytes, the lead byte's payload, and the valid range of the second byte.
  size_t need;
  char32_t v;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    v = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    v = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED && !allow_surrogates) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    v = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) return 0;
    v = (v << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
    if (maximal != nullptr) *maximal = k + 1;
  }
  if (cp != nullptr) *cp = v;
  return need + 1;
}

size_t FirstInvalidUtf8Offset(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs, eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ULL) != 0) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = DecodeUtf8At(s, i, nullptr);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

bool IsValidUtf8(std::string_view s) { return FirstInvalidUtf8Offset(s) == s.size(); }

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0, maximal = 0;
  while (i < s.size()) {
    const size_t n = DecodeUtf8At(s, i, nullptr, &maximal);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      i += maximal;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace envtune
