// Small deterministic integer mixing for seeds (same value on every platform and run, unlike
// std::hash or absl::Hash).
#ifndef ENVTUNE_COMMON_HASH_H_
#define ENVTUNE_COMMON_HASH_H_

#include <cstdint>

namespace envtune {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijection on 64-bit integers whose
// outputs for consecutive inputs look independent.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace envtune

#endif  // ENVTUNE_COMMON_HASH_H_
