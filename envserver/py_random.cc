// CPython 3.11 random.Random, bit for bit (Modules/_randommodule.c and Lib/random.py).
#include "envserver/py_random.h"

#include <bit>
#include <vector>

namespace envtune {
namespace {

constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;

void InitGenrand(std::array<uint32_t, 624>& mt, int& mti, uint32_t s) {
  mt[0] = s;
  for (mti = 1; mti < 624; ++mti) {
    mt[mti] = 1812433253U * (mt[mti - 1] ^ (mt[mti - 1] >> 30)) + static_cast<uint32_t>(mti);
  }
}

}  // namespace

PyRandom::PyRandom(int64_t seed) { Seed(seed); }
PyRandom::PyRandom(const PyBigInt& seed) { Seed(seed); }

void PyRandom::Seed(int64_t seed) {
  // random_seed(): the key is abs(seed) as 32-bit words, least significant first ([0] for 0).
  uint64_t n = seed < 0 ? 0 - static_cast<uint64_t>(seed) : static_cast<uint64_t>(seed);
  uint32_t key[2] = {static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32)};
  SeedByArray(key, key[1] != 0 ? 2 : 1);
}

void PyRandom::Seed(const PyBigInt& seed) {
  if (seed.FitsInt64()) return Seed(seed.ToInt64());
  std::vector<uint32_t> key((seed.BitLength() + 31) / 32);
  size_t count = 0;
  mpz_export(key.data(), &count, -1, sizeof(uint32_t), 0, 0, seed.raw());  // |seed|, LS word first
  key.resize(count);
  SeedByArray(key.data(), static_cast<int>(key.size()));
}

void PyRandom::SeedByArray(const uint32_t* key, int key_length) {
  // init_by_array(key, key_length)
  InitGenrand(mt_, mti_, 19650218U);
  int i = 1, j = 0;
  for (int k = kN > key_length ? kN : key_length; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525U)) + key[j] +
             static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941U)) -
             static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000U;
  mti_ = kN;
}

uint32_t PyRandom::GenRand32() {
  static constexpr uint32_t kMag01[2] = {0x0U, kMatrixA};
  uint32_t y;
  if (mti_ >= kN) {
    if (mti_ == kN + 1) InitGenrand(mt_, mti_, 5489U);  // never seeded (not reachable)
    int kk;
    for (kk = 0; kk < kN - kM; ++kk) {
      y = (mt_[kk] & kUpperMask) | (mt_[kk + 1] & kLowerMask);
      mt_[kk] = mt_[kk + kM] ^ (y >> 1) ^ kMag01[y & 0x1U];
    }
    for (; kk < kN - 1; ++kk) {
      y = (mt_[kk] & kUpperMask) | (mt_[kk + 1] & kLowerMask);
      mt_[kk] = mt_[kk + (kM - kN)] ^ (y >> 1) ^ kMag01[y & 0x1U];
    }
    y = (mt_[kN - 1] & kUpperMask) | (mt_[0] & kLowerMask);
    mt_[kN - 1] = mt_[kM - 1] ^ (y >> 1) ^ kMag01[y & 0x1U];
    mti_ = 0;
  }
  y = mt_[mti_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

double PyRandom::Random() {
  uint32_t a = GenRand32() >> 5;
  uint32_t b = GenRand32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

uint64_t PyRandom::GetRandBits(int k) {
  if (k <= 0) return 0;  // Python: getrandbits(0) == 0 (negative raises; callers never pass it)
  if (k > 64) k = 64;
  if (k <= 32) return GenRand32() >> (32 - k);
  // Words least significant first; the last (most significant) one keeps its top k%32 bits.
  uint64_t low = GenRand32();
  uint64_t high = GenRand32();
  if (k < 64) high >>= (64 - k);
  return low | (high << 32);
}

uint64_t PyRandom::RandBelow(uint64_t n) {
  if (n == 0) return 0;  // Python returns 0 for _randbelow(0) as well
  const int k = std::bit_width(n);
  uint64_t r = GetRandBits(k);
  while (r >= n) r = GetRandBits(k);
  return r;
}

int64_t PyRandom::RandInt(int64_t a, int64_t b) { return RandRange(a, b + 1); }

int64_t PyRandom::RandRange(int64_t start, int64_t stop) {
  // REQUIRES: start < stop (Python raises ValueError otherwise; here the result is `start`).
  if (stop <= start) return start;
  const uint64_t width = static_cast<uint64_t>(stop) - static_cast<uint64_t>(start);
  return static_cast<int64_t>(static_cast<uint64_t>(start) + RandBelow(width));
}

double PyRandom::Uniform(double a, double b) { return a + (b - a) * Random(); }

}  // namespace envtune
