// CPython 3.11's random.Random, bit for bit: MT19937 seeded by init_by_array from a Python int
// (random.seed(int)), getrandbits, random(), _randbelow (rejection sampling on getrandbits),
// randint, randrange, uniform and choice. Several BFCL backends draw ids and readings from a
// per-instance random.Random(seed); parity requires the same algorithm and draw order.
// See ../shared/bfcl/spec/trading_bot.md §2.2. Not thread-safe; copyable (copies the state).
#ifndef ENVTUNE_ENVSERVER_PY_RANDOM_H_
#define ENVTUNE_ENVSERVER_PY_RANDOM_H_

#include <array>
#include <cstdint>

#include "envserver/pyint.h"

namespace envtune {

class PyRandom {
 public:
  // random.Random(seed) for a non-negative or negative Python int (CPython uses abs(seed)).
  explicit PyRandom(int64_t seed = 0);
  explicit PyRandom(const PyBigInt& seed);  // a seed of any size
  void Seed(int64_t seed);
  void Seed(const PyBigInt& seed);

  uint32_t GenRand32();              // genrand_uint32
  double Random();                   // random.random(): 53-bit float in [0, 1)
  uint64_t GetRandBits(int k);       // random.getrandbits(k), 0 < k <= 64
  uint64_t RandBelow(uint64_t n);    // random._randbelow(n), n > 0
  int64_t RandInt(int64_t a, int64_t b);        // random.randint(a, b), inclusive
  int64_t RandRange(int64_t start, int64_t stop);  // random.randrange(start, stop)
  double Uniform(double a, double b);            // a + (b - a) * random()
  // random.choice(seq) index for a sequence of length n > 0.
  uint64_t ChoiceIndex(uint64_t n) { return RandBelow(n); }

 private:
  void SeedByArray(const uint32_t* key, int key_length);

  static constexpr int kN = 624;
  std::array<uint32_t, kN> mt_{};
  int mti_ = kN + 1;
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_PY_RANDOM_H_
