// PyRandom against CPython 3.11's random.Random. Vectors: ../shared/bfcl/spec/trading_bot.md
// §2.1-2.2 (seed 1053520) and values printed by python3.11 (quoted next to each table).
#include "envserver/py_random.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace envtune {
namespace {

TEST(PyRandomTest, SpecGenrandVector) {
  PyRandom r(1053520);  // trading_bot.md §2.2
  EXPECT_EQ(r.GenRand32(), 2261486938u);
  EXPECT_EQ(r.GenRand32(), 229209566u);
  EXPECT_EQ(r.GenRand32(), 2122974597u);
}

TEST(PyRandomTest, SpecTransactionOffsets) {
  // trading_bot.md §2.1: k = _randbelow(86401); first k = 69015. The six timestamps
  // 2024-09-02 05:40:15, 2024-09-01 12:26:34, 2024-09-02 04:29:48, 2024-09-02 09:45:15,
  // 2024-09-01 17:54:53, 2024-09-01 22:05:15 are 10:30:00 plus these offsets.
  PyRandom r(1053520);
  const uint64_t kOffsets[] = {69015, 6994, 64788, 83715, 26693, 41715};
  for (uint64_t k : kOffsets) EXPECT_EQ(r.RandBelow(86401), k);
}

TEST(PyRandomTest, RandomMatchesCPython) {
  // random.Random(42).random() x2; random.Random(0).random()
  PyRandom r42(42);
  EXPECT_EQ(r42.Random(), 0.6394267984578837);
  EXPECT_EQ(r42.Random(), 0.025010755222666936);
  PyRandom r0(0);
  EXPECT_EQ(r0.Random(), 0.8444218515250481);
  // Past the first twist (624 words): random.Random(7), 700th random() == 0.034097423373332436
  PyRandom r7(7);
  double x = 0;
  for (int i = 0; i < 700; ++i) x = r7.Random();
  EXPECT_EQ(x, 0.034097423373332436);
}

TEST(PyRandomTest, SeedingFromAbsAndWideInts) {
  struct Case {
    int64_t seed;
    std::vector<uint32_t> words;  // successive getrandbits(32)
  };
  const Case kCases[] = {
      {-7, {1390851128u, 4071050724u}},                                   // abs(seed) is used
      {(int64_t{1} << 40) + 3, {943978446u, 261273136u, 2359950418u}},    // two key words
      {INT64_MAX, {1359979423u, 2819855560u}},
      {1053520, {2261486938u, 229209566u, 2122974597u}},
  };
  for (const Case& c : kCases) {
    PyRandom r(c.seed);
    for (uint32_t w : c.words) EXPECT_EQ(r.GetRandBits(32), w) << "seed " << c.seed;
    r.Seed(c.seed);  // reseeding restarts the stream
    EXPECT_EQ(r.GetRandBits(32), c.words[0]);
  }
}

TEST(PyRandomTest, GetRandBitsWidths) {
  // r = random.Random(123); [r.getrandbits(k) for k in (1, 7, 31, 32, 33, 40, 63, 64)]
  PyRandom r(123);
  const std::pair<int, uint64_t> kDraws[] = {
      {1, 0u},          {7, 34u},          {31, 187231959u}, {32, 3302642556u},
      {33, 1749090055u}, {40, 919585570314u}, {63, 8068843355061418034u},
      {64, 6993609550205317205u},
  };
  for (const auto& [k, want] : kDraws) EXPECT_EQ(r.GetRandBits(k), want) << "k=" << k;
}

TEST(PyRandomTest, IntegerHelpers) {
  // random.Random(42): [randint(1, 100) for _ in range(5)] == [82, 15, 4, 95, 36]
  PyRandom r42(42);
  for (int64_t want : {82, 15, 4, 95, 36}) EXPECT_EQ(r42.RandInt(1, 100), want);
  // random.Random(141053): [randint(10000, 99999) for _ in range(4)]
  PyRandom travel(141053);
  for (int64_t want : {28959, 44620, 58617, 34936}) EXPECT_EQ(travel.RandInt(10000, 99999), want);
  // random.Random(5): [randrange(-50, 50) for _ in range(6)], then uniform(1.5, 9.5)
  PyRandom r5(5);
  for (int64_t want : {29, -18, 44, -5, 38, 44}) EXPECT_EQ(r5.RandRange(-50, 50), want);
  EXPECT_EQ(r5.Uniform(1.5, 9.5), 6.716253574033081);
  // random.Random(9): [_randbelow(n) for n in (1, 2, 3, 86401, 2**40+1, 2**64-1)]
  PyRandom r9(9);
  const std::pair<uint64_t, uint64_t> kBelow[] = {
      {1, 0},          {2, 1},  {3, 1}, {86401, 18158}, {(uint64_t{1} << 40) + 1, 15791063902u},
      {UINT64_MAX, 9274692319059935286u},
  };
  for (const auto& [n, want] : kBelow) EXPECT_EQ(r9.RandBelow(n), want) << "n=" << n;
  // random.Random(11): [choice('abcdefg') for _ in range(6)] == list('dgeggd')
  PyRandom r11(11);
  for (uint64_t want : {3u, 6u, 4u, 6u, 6u, 3u}) EXPECT_EQ(r11.ChoiceIndex(7), want);
}

TEST(PyRandomTest, CopiesContinueIndependently) {
  PyRandom a(1053520);
  a.GenRand32();
  PyRandom b = a;
  EXPECT_EQ(a.GenRand32(), 229209566u);
  EXPECT_EQ(b.GenRand32(), 229209566u);
}

TEST(PyRandomTest, DegenerateArgumentsDoNotCrash) {
  PyRandom r(1);
  EXPECT_EQ(r.RandBelow(0), 0u);
  EXPECT_EQ(r.RandRange(5, 5), 5);
  EXPECT_EQ(r.GetRandBits(0), 0u);
}

}  // namespace
}  // namespace envtune
