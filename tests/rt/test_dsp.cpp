// The DSP-instruction emulation against oracles written here from the ARM ARM pseudo-code:
// halfwords and bytes extracted with plain casts, products and sums in int64, then the low
// 32 bits kept and Q raised when the exact sum does not fit int32. An edge table pins the
// boundaries by hand; ~1e6 random operands per instruction (biased towards INT16_MIN/MAX,
// 0 and -1 halfwords) cover the rest. On an ARM build with DSP the real instructions
// (tinyquant::rt::dsp) are compared with the emulation as well.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>

#include "tinyquant/rt/dsp.hpp"

namespace dsp = tinyquant::rt::dsp;
namespace emu = tinyquant::rt::dsp::emu;

namespace {

constexpr int kRandomCount = 1000000;

int64_t lo(uint32_t v) {
  return static_cast<int16_t>(static_cast<uint16_t>(v & 0xFFFFu));
}
int64_t hi(uint32_t v) {
  return static_cast<int16_t>(static_cast<uint16_t>(v >> 16));
}
int64_t sbyte(uint32_t v, unsigned i) {
  return static_cast<int8_t>(static_cast<uint8_t>((v >> (8 * (i % 4))) & 0xFFu));
}
int64_t s32(uint32_t v) {
  return static_cast<int32_t>(v);
}

struct Result {
  uint32_t value;
  bool q;
};
Result fit32(int64_t exact) {
  return {static_cast<uint32_t>(exact & 0xFFFFFFFF), exact < INT32_MIN || exact > INT32_MAX};
}
Result clamp_q(int64_t exact, int64_t min, int64_t max) {
  const int64_t c = std::clamp(exact, min, max);
  return {static_cast<uint32_t>(c & 0xFFFFFFFF), c != exact};
}
uint32_t halves(int64_t l, int64_t h) {
  return static_cast<uint32_t>(l & 0xFFFF) | (static_cast<uint32_t>(h & 0xFFFF) << 16);
}

// Random words whose halfwords are often INT16_MIN, INT16_MAX, 0, -1 or 1.
class Operands {
 public:
  explicit Operands(uint32_t seed) : rng_(seed) {}
  uint32_t next() { return static_cast<uint32_t>(half()) | (static_cast<uint32_t>(half()) << 16); }
  unsigned below(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng_); }

 private:
  uint16_t half() {
    static constexpr uint16_t kSpecial[] = {0x8000, 0x7FFF, 0x0000, 0xFFFF, 0x0001, 0x8001};
    if (below(4) == 0) return kSpecial[below(6)];
    return static_cast<uint16_t>(rng_());
  }
  std::mt19937 rng_;
};

// Runs an emulated instruction with a fresh Q flag and compares value and flag with the oracle.
#define EXPECT_DSP(call_with_q, oracle_result)            \
  do {                                                    \
    bool q = false;                                       \
    const uint32_t got = call_with_q;                     \
    const Result want = (oracle_result);                  \
    ASSERT_EQ(got, want.value) << #call_with_q;           \
    ASSERT_EQ(q, want.q) << "Q flag of " << #call_with_q; \
  } while (0)

}  // namespace

// ---- edges, by hand -------------------------------------------------------------------------

TEST(DspEdges, DualMultiplyAccumulate) {
  bool q = false;
  // INT16_MIN * INT16_MIN twice: 2^31, one past INT32_MAX.
  EXPECT_EQ(emu::smuad(0x80008000u, 0x80008000u, &q), 0x80000000u);
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::smlad(0x80008000u, 0x80008000u, 0xFFFFFFFFu, &q), 0x7FFFFFFFu);  // 2^31 - 1
  EXPECT_FALSE(q);
  EXPECT_EQ(emu::smlad(0x7FFF7FFFu, 0x7FFF7FFFu, 0x7FFFFFFFu, &q), 0xFFFE0001u);  // wraps
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::smlad(0x00010001u, 0x00010001u, 0x7FFFFFFFu, &q), 0x80000001u);
  EXPECT_TRUE(q);
  q = true;  // sticky: an exact result leaves a set flag set
  EXPECT_EQ(emu::smlad(0x00020003u, 0x00050007u, 10u, &q), 3u * 7 + 2 * 5 + 10);
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::smladx(0x00020003u, 0x00050007u, 10u, &q), 3u * 5 + 2 * 7 + 10);
  EXPECT_EQ(emu::smlsd(0x00020003u, 0x00050007u, 10u, &q), 3u * 7 - 2 * 5 + 10);
  EXPECT_FALSE(q);
  // 0 * x - (-2^15)(-2^15) + INT32_MIN = -3 * 2^30: below INT32_MIN, wraps to 2^30.
  EXPECT_EQ(emu::smlsd(0x80000000u, 0x80000000u, 0x80000000u, &q), 0x40000000u);
  EXPECT_TRUE(q);
  EXPECT_EQ(emu::smusd(0x00018000u, 0x80008000u), 0x40008000u);  // 2^30 - (-2^15)
  q = false;
  EXPECT_EQ(emu::smuadx(0x80000001u, 0x80000001u, &q), 0xFFFF0000u);  // -2^15 - 2^15
  EXPECT_FALSE(q);
  EXPECT_EQ(emu::smulbb(0x00008000u, 0x12348000u), 0x40000000u);
  EXPECT_EQ(emu::smlabb(0x8000u, 0x8000u, 0x40000000u, &q), 0x80000000u);
  EXPECT_TRUE(q);
}

TEST(DspEdges, ExtendEveryRotation) {
  const uint32_t x = 0x80FF7F01u;  // bytes 01 7F FF 80 from the bottom
  EXPECT_EQ(emu::sxtb16(x, 0), 0xFFFF0001u);
  EXPECT_EQ(emu::sxtb16(x, 8), 0xFF80007Fu);
  EXPECT_EQ(emu::sxtb16(x, 16), 0x0001FFFFu);
  EXPECT_EQ(emu::sxtb16(x, 24), 0x007FFF80u);
  EXPECT_EQ(emu::uxtb16(x, 0), 0x00FF0001u);
  EXPECT_EQ(emu::uxtb16(x, 8), 0x0080007Fu);
  EXPECT_EQ(emu::uxtb16(x, 16), 0x000100FFu);
  EXPECT_EQ(emu::uxtb16(x, 24), 0x007F0080u);
  // Halfword adds wrap: 0x7FFF + 1 -> 0x8000; 1 + (-128) -> -127.
  EXPECT_EQ(emu::sxtab16(0x7FFF0001u, 0x00010080u, 0), 0x8000FF81u);
  EXPECT_EQ(emu::sxtab16(0x00010002u, 0x80FF7F01u, 8), 0xFF810081u);
  EXPECT_EQ(dsp::sxtb16<8>(x), 0xFF80007Fu);
  EXPECT_EQ(dsp::sxtab16<8>(0x00010002u, x), 0xFF810081u);
  EXPECT_EQ(dsp::uxtb16<24>(x), 0x007F0080u);
}

TEST(DspEdges, Pack) {
  EXPECT_EQ(emu::pkhbt(0x12345678u, 0xABCDEF01u, 0), 0xABCD5678u);
  EXPECT_EQ(emu::pkhbt(0x12345678u, 0xABCDEF01u, 16), 0xEF015678u);
  EXPECT_EQ(emu::pkhbt(0x12345678u, 0x00000001u, 31), 0x80005678u);
  EXPECT_EQ(emu::pkhtb(0x12345678u, 0xABCDEF01u, 0), 0x1234EF01u);
  EXPECT_EQ(emu::pkhtb(0x12345678u, 0xABCDEF01u, 16), 0x1234ABCDu);
  EXPECT_EQ(emu::pkhtb(0x12345678u, 0x80000000u, 32), 0x1234FFFFu);  // ASR #32: sign fill
  EXPECT_EQ(emu::pkhtb(0x12345678u, 0x7FFFFFFFu, 32), 0x12340000u);
  EXPECT_EQ(dsp::pkhbt<16>(0x12345678u, 0xABCDEF01u), 0xEF015678u);
  EXPECT_EQ(dsp::pkhtb<16>(0x12345678u, 0xABCDEF01u), 0x1234ABCDu);
}

TEST(DspEdges, SsatEveryBitCount) {
  for (unsigned n = 1; n <= 32; ++n) {
    const int64_t max = (int64_t{1} << (n - 1)) - 1, min = -max - 1;
    const auto w = [](int64_t v) { return static_cast<uint32_t>(v & 0xFFFFFFFF); };
    bool q = false;
    EXPECT_EQ(emu::ssat(w(max), n, &q), w(max)) << n;
    EXPECT_EQ(emu::ssat(w(min), n, &q), w(min)) << n;
    EXPECT_FALSE(q) << n;
    EXPECT_EQ(emu::ssat(0x7FFFFFFFu, n, &q), w(max)) << n;
    EXPECT_EQ(q, n < 32) << n;
    q = false;
    EXPECT_EQ(emu::ssat(0x80000000u, n, &q), w(min)) << n;
    EXPECT_EQ(q, n < 32) << n;
    if (n < 32) {
      q = false;
      EXPECT_EQ(emu::ssat(w(max + 1), n, &q), w(max)) << n;
      EXPECT_TRUE(q) << n;
      q = false;
      EXPECT_EQ(emu::ssat(w(min - 1), n, &q), w(min)) << n;
      EXPECT_TRUE(q) << n;
    }
  }
  EXPECT_EQ(dsp::ssat<8>(200u), 127u);
  EXPECT_EQ(dsp::ssat<8>(static_cast<uint32_t>(-200)), static_cast<uint32_t>(-128));
  EXPECT_EQ(dsp::ssat<1>(5u), 0u);
  EXPECT_EQ(dsp::ssat<32>(0x80000000u), 0x80000000u);
}

TEST(DspEdges, UsatEveryBitCount) {
  for (unsigned n = 0; n <= 31; ++n) {
    const uint32_t max = static_cast<uint32_t>((uint64_t{1} << n) - 1);
    bool q = false;
    EXPECT_EQ(emu::usat(max, n, &q), max) << n;
    EXPECT_EQ(emu::usat(0, n, &q), 0u) << n;
    EXPECT_FALSE(q) << n;
    EXPECT_EQ(emu::usat(0xFFFFFFFFu, n, &q), 0u) << n;  // -1
    EXPECT_TRUE(q) << n;
    q = false;
    EXPECT_EQ(emu::usat(0x80000000u, n, &q), 0u) << n;
    EXPECT_TRUE(q) << n;
    if (n < 31) {
      q = false;
      EXPECT_EQ(emu::usat(max + 1, n, &q), max) << n;
      EXPECT_TRUE(q) << n;
    }
    q = false;
    EXPECT_EQ(emu::usat(0x7FFFFFFFu, n, &q), max) << n;
    EXPECT_EQ(q, n < 31) << n;
  }
  EXPECT_EQ(dsp::usat<8>(300u), 255u);
  EXPECT_EQ(dsp::usat<0>(300u), 0u);
  EXPECT_EQ(dsp::usat<31>(0x7FFFFFFFu), 0x7FFFFFFFu);
}

TEST(DspEdges, SaturatingAddSub) {
  const uint32_t kMax = 0x7FFFFFFFu, kMin = 0x80000000u;
  bool q = false;
  EXPECT_EQ(emu::qadd(kMax, kMin, &q), 0xFFFFFFFFu);
  EXPECT_EQ(emu::qsub(0xFFFFFFFFu, kMin, &q), kMax);  // -1 - INT32_MIN = INT32_MAX exactly
  EXPECT_FALSE(q);
  EXPECT_EQ(emu::qadd(kMax, 1u, &q), kMax);
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::qadd(kMin, 0xFFFFFFFFu, &q), kMin);
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::qadd(kMin, kMin, &q), kMin);
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::qsub(kMin, 1u, &q), kMin);
  EXPECT_TRUE(q);
  q = false;
  EXPECT_EQ(emu::qsub(0u, kMin, &q), kMax);
  EXPECT_TRUE(q);
  EXPECT_EQ(dsp::qadd(kMax, kMax), kMax);
  EXPECT_EQ(dsp::qsub(kMin, kMax), kMin);
}

TEST(DspEdges, UsableInConstantExpressions) {
  static_assert(emu::smlad(0x00020003u, 0x00050007u, 1u) == 32u);
  static_assert(emu::sxtb16(0x00800001u) == 0xFF800001u);
  static_assert(emu::ssat(1000u, 8) == 127u);
  static_assert(emu::qadd(0x7FFFFFFFu, 1u) == 0x7FFFFFFFu);
  SUCCEED();
}

// ---- random operands against the oracles ----------------------------------------------------

TEST(DspRandom, DualMultiplies) {
  Operands ops(1);
  for (int i = 0; i < kRandomCount; ++i) {
    const uint32_t x = ops.next(), y = ops.next(), a = ops.next();
    EXPECT_DSP(emu::smlad(x, y, a, &q), fit32(lo(x) * lo(y) + hi(x) * hi(y) + s32(a)));
    EXPECT_DSP(emu::smladx(x, y, a, &q), fit32(lo(x) * hi(y) + hi(x) * lo(y) + s32(a)));
    EXPECT_DSP(emu::smlsd(x, y, a, &q), fit32(lo(x) * lo(y) - hi(x) * hi(y) + s32(a)));
    EXPECT_DSP(emu::smuad(x, y, &q), fit32(lo(x) * lo(y) + hi(x) * hi(y)));
    EXPECT_DSP(emu::smuadx(x, y, &q), fit32(lo(x) * hi(y) + hi(x) * lo(y)));
    ASSERT_EQ(emu::smusd(x, y), fit32(lo(x) * lo(y) - hi(x) * hi(y)).value);
    ASSERT_FALSE(fit32(lo(x) * lo(y) - hi(x) * hi(y)).q);  // SMUSD cannot overflow
    ASSERT_EQ(emu::smulbb(x, y), fit32(lo(x) * lo(y)).value);
    EXPECT_DSP(emu::smlabb(x, y, a, &q), fit32(lo(x) * lo(y) + s32(a)));
  }
}

TEST(DspRandom, ExtendAndPack) {
  Operands ops(2);
  for (int i = 0; i < kRandomCount; ++i) {
    const uint32_t x = ops.next(), a = ops.next();
    const unsigned rot = 8 * ops.below(4);
    // After ROR rot, byte 0 is the original byte rot / 8 and byte 2 the one two above it.
    const unsigned b0 = rot / 8, b2 = rot / 8 + 2;
    ASSERT_EQ(emu::sxtb16(x, rot), halves(sbyte(x, b0), sbyte(x, b2))) << rot;
    ASSERT_EQ(emu::sxtab16(a, x, rot), halves(lo(a) + sbyte(x, b0), hi(a) + sbyte(x, b2))) << rot;
    ASSERT_EQ(emu::uxtb16(x, rot),
              halves((x >> (8 * (b0 % 4))) & 0xFF, (x >> (8 * (b2 % 4))) & 0xFF));
    const unsigned sh = ops.below(32);
    ASSERT_EQ(emu::pkhbt(a, x, sh), halves(lo(a), static_cast<int64_t>((uint64_t{x} << sh) >> 16)));
    const unsigned sh2 = ops.below(33);
    ASSERT_EQ(emu::pkhtb(a, x, sh2), halves(s32(x) >> sh2, hi(a)));
  }
}

TEST(DspRandom, SaturateAndSaturatingArithmetic) {
  Operands ops(3);
  for (int i = 0; i < kRandomCount; ++i) {
    const uint32_t x = ops.next(), y = ops.next();
    const unsigned n = 1 + ops.below(32);
    const int64_t top = (int64_t{1} << (n - 1)) - 1;
    EXPECT_DSP(emu::ssat(x, n, &q), clamp_q(s32(x), -top - 1, top));
    const unsigned un = ops.below(32);
    EXPECT_DSP(emu::usat(x, un, &q), clamp_q(s32(x), 0, (int64_t{1} << un) - 1));
    EXPECT_DSP(emu::qadd(x, y, &q), clamp_q(s32(x) + s32(y), INT32_MIN, INT32_MAX));
    EXPECT_DSP(emu::qsub(x, y, &q), clamp_q(s32(x) - s32(y), INT32_MIN, INT32_MAX));
  }
}

// The dsp:: layer (real instructions on ARM with DSP, the emulation elsewhere) against emu::.
TEST(DspNative, MatchesEmulation) {
  Operands ops(4);
  for (int i = 0; i < kRandomCount / 4; ++i) {
    const uint32_t x = ops.next(), y = ops.next(), a = ops.next();
    ASSERT_EQ(dsp::smlad(x, y, a), emu::smlad(x, y, a));
    ASSERT_EQ(dsp::smladx(x, y, a), emu::smladx(x, y, a));
    ASSERT_EQ(dsp::smlsd(x, y, a), emu::smlsd(x, y, a));
    ASSERT_EQ(dsp::smuad(x, y), emu::smuad(x, y));
    ASSERT_EQ(dsp::smuadx(x, y), emu::smuadx(x, y));
    ASSERT_EQ(dsp::smusd(x, y), emu::smusd(x, y));
    ASSERT_EQ(dsp::sxtb16<0>(x), emu::sxtb16(x, 0));
    ASSERT_EQ(dsp::sxtb16<8>(x), emu::sxtb16(x, 8));
    ASSERT_EQ(dsp::sxtb16<16>(x), emu::sxtb16(x, 16));
    ASSERT_EQ(dsp::sxtb16<24>(x), emu::sxtb16(x, 24));
    ASSERT_EQ(dsp::sxtab16<8>(a, x), emu::sxtab16(a, x, 8));
    ASSERT_EQ(dsp::uxtb16<16>(x), emu::uxtb16(x, 16));
    ASSERT_EQ(dsp::pkhbt<16>(a, x), emu::pkhbt(a, x, 16));
    ASSERT_EQ(dsp::pkhtb<16>(a, x), emu::pkhtb(a, x, 16));
    ASSERT_EQ(dsp::ssat<8>(x), emu::ssat(x, 8));
    ASSERT_EQ(dsp::ssat<16>(x), emu::ssat(x, 16));
    ASSERT_EQ(dsp::usat<8>(x), emu::usat(x, 8));
    ASSERT_EQ(dsp::qadd(x, y), emu::qadd(x, y));
    ASSERT_EQ(dsp::qsub(x, y), emu::qsub(x, y));
    ASSERT_EQ(dsp::smulbb(x, y), emu::smulbb(x, y));
    ASSERT_EQ(dsp::smlabb(x, y, a), emu::smlabb(x, y, a));
  }
  if (!dsp::kNativeDsp) {
    GTEST_SKIP() << "not an ARM build with the DSP extension: dsp:: is the emulation itself";
  }
}
