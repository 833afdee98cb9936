#include "model/text/unicode.h"

#include <algorithm>
#include <iterator>

namespace envtune {
namespace {

struct CccEntry {
  uint32_t cp;
  uint32_t ccc;
};
struct DecompEntry {
  uint32_t cp;
  uint32_t first;
  uint32_t second;  // 0 for singleton decompositions
};
struct CompEntry {
  uint32_t first;
  uint32_t second;
  uint32_t composite;
};

#include "model/text/unicode_nfc_tables.inc"

// Hangul syllable constants (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

uint32_t CombiningClass(char32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::lower_bound(std::begin(kCombiningClass), std::end(kCombiningClass), cp,
                             [](const CccEntry& e, char32_t c) { return e.cp < c; });
  return (it != std::end(kCombiningClass) && it->cp == cp) ? it->ccc : 0;
}

void Decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = static_cast<int>(cp - kSBase);
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    auto it = std::lower_bound(std::begin(kDecomposition), std::end(kDecomposition), cp,
                               [](const DecompEntry& e, char32_t c) { return e.cp < c; });
    if (it != std::end(kDecomposition) && it->cp == cp) {
      Decompose(it->first, out);
      if (it->second != 0) Decompose(it->second, out);
      return;
    }
  }
  out->push_back(cp);
}

// Primary composite of (a, b), or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  auto it = std::lower_bound(std::begin(kComposition), std::end(kComposition),
                             std::pair<char32_t, char32_t>(a, b),
                             [](const CompEntry& e, const std::pair<char32_t, char32_t>& k) {
                               return e.first < k.first ||
                                      (e.first == k.first && e.second < k.second);
                             });
  if (it != std::end(kComposition) && it->first == a && it->second == b) return it->composite;
  return 0;
}

}  // namespace

std::vector<char32_t> DecodeUtf8(std::string_view s) {
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t cp;
    size_t n;
    if (b0 < 0x80) {
      cp = b0, n = 1;
    } else if (b0 < 0xE0) {
      cp = b0 & 0x1F, n = 2;
    } else if (b0 < 0xF0) {
      cp = b0 & 0x0F, n = 3;
    } else {
      cp = b0 & 0x07, n = 4;
    }
    for (size_t k = 1; k < n && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    cps.push_back(cp);
    i += n;
  }
  return cps;
}

std::string NormalizeNfc(std::string_view s) {
  bool needs_work = false;
  for (unsigned char c : s) {
    // Code points < U+0300 are encoded with lead bytes < 0xCC and are all NFC-stable starters.
    if (c >= 0xCC) {
      needs_work = true;
      break;
    }
  }
  if (!needs_work) return std::string(s);

  // 1. Full canonical decomposition.
  std::vector<char32_t> d;
  d.reserve(s.size());
  for (char32_t cp : DecodeUtf8(s)) Decompose(cp, &d);
  // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (CombiningClass(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && CombiningClass(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j, [](char32_t a, char32_t b) {
      return CombiningClass(a) < CombiningClass(b);
    });
    i = j;
  }
  // 3. Canonical composition.
  std::vector<char32_t> c;
  c.reserve(d.size());
  size_t starter = SIZE_MAX;  // index in c of the last starter
  uint32_t last_ccc = 0;
  for (char32_t cp : d) {
    const uint32_t ccc = CombiningClass(cp);
    if (starter != SIZE_MAX) {
      const bool blocked = c.size() - 1 != starter && (last_ccc == 0 || last_ccc >= ccc);
      if (!blocked) {
        if (char32_t comp = Compose(c[starter], cp); comp != 0) {
          c[starter] = comp;
          continue;
        }
      }
    }
    if (ccc == 0) {
      starter = c.size();
      last_ccc = 0;
    } else {
      last_ccc = ccc;
    }
    c.push_back(cp);
  }
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : c) AppendUtf8(cp, &out);
  return out;
}

const char* NfcUnicodeVersion() { return kUnicodeVersion; }

}  // namespace envtune
