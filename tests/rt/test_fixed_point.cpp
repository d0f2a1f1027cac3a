// Requantization checked against hand-computed values (the TFLite/CMSIS-NN cases) and against an
// independent exact-arithmetic formula over edges and random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

#include "tinyquant/rt/fixed_point.hpp"

namespace rt = tinyquant::rt;
using rt::Rounding;

namespace {

__extension__ typedef __int128 i128;  // exact oracle arithmetic (GCC/Clang)

// floor(n / 2^e) for any sign, exact, e in [0, 126].
i128 floor_div_pot(i128 n, int e) {
  const i128 d = static_cast<i128>(1) << e;
  i128 q = n / d;
  if ((n % d != 0) && (n < 0)) --q;
  return q;
}

int32_t wrap32(i128 v) { return static_cast<int32_t>(static_cast<uint32_t>(v & 0xFFFFFFFF)); }

// Double rounding written from the definition: x' = x * 2^left mod 2^32; h = round_half_up(2 x' m
// / 2^32) (as 32-bit); r = h / 2^right rounded half away from zero.
int32_t oracle_double(int32_t x, int32_t m, int32_t shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int32_t xs = wrap32(static_cast<i128>(x) * (static_cast<i128>(1) << left));
  const int32_t h = wrap32(floor_div_pot(static_cast<i128>(xs) * m + (static_cast<i128>(1) << 30), 31));
  if (right == 0) return h;
  // |h| / 2^right rounded half up in magnitude, sign restored.
  const i128 mag = h < 0 ? -static_cast<i128>(h) : h;
  const i128 r = floor_div_pot(mag + (static_cast<i128>(1) << (right - 1)), right);
  return static_cast<int32_t>(h < 0 ? -r : r);
}

// Single rounding: round_half_up(x m / 2^(31 - shift)) — before any 32-bit truncation.
i128 oracle_single_exact(int32_t x, int32_t m, int32_t shift) {
  const int t = 31 - shift;
  return floor_div_pot(static_cast<i128>(x) * m + (static_cast<i128>(1) << (t - 1)), t);
}

}  // namespace

TEST(Requantize, HandComputedDoubleRounding) {
  EXPECT_EQ(rt::requantize(3, 1 << 30, 0), 2);        // 1.5 -> 2
  EXPECT_EQ(rt::requantize(-3, 1 << 30, 0), -1);      // -1.5 -> -1 (high mul rounds half up)
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1), 2);       // 3 / 2 -> 2 (away from zero)
  EXPECT_EQ(rt::requantize(-5, 1 << 30, -1), -1);     // -2 / 2 -> -1
  EXPECT_EQ(rt::requantize(-6, 1 << 30, -1), -2);     // -3 / 2 -> -2 (away from zero)
  EXPECT_EQ(rt::requantize(INT32_MAX, INT32_MAX, -31), 1);
  EXPECT_EQ(rt::requantize(1000, INT32_MAX, 30), 0);  // 1000 << 30 wraps to 0
  EXPECT_EQ(rt::requantize(0, INT32_MAX, 30), 0);
  EXPECT_EQ(rt::requantize(100, 0, 0), 0);
}

TEST(Requantize, HandComputedSingleRounding) {
  EXPECT_EQ(rt::requantize(3, 1 << 30, 0, Rounding::kSingle), 2);   // 1.5 -> 2
  EXPECT_EQ(rt::requantize(-3, 1 << 30, 0, Rounding::kSingle), -1); // -1.5 -> -1
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1, Rounding::kSingle), 1);  // 1.25 -> 1 (one rounding)
  EXPECT_EQ(rt::requantize(-6, 1 << 30, -1, Rounding::kSingle), -1); // -1.5 -> -1
  EXPECT_EQ(rt::requantize(7, 1 << 30, -1, Rounding::kSingle), 2);  // 1.75 -> 2
}

TEST(Requantize, DoubleRoundingDiffersFromSingleWhereExpected) {
  // 5 * 0.5 / 2 = 1.25. Double rounding: the high multiply rounds 2.5 up to 3, then 3 / 2 rounds
  // away from zero to 2. Single rounding rounds 1.25 once, to 1.
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1, Rounding::kDouble), 2);
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1, Rounding::kSingle), 1);
}

TEST(Requantize, EdgeTableMatchesOracle) {
  const int32_t xs[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 255, 65535, -65536, 1 << 20,
                        INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, 1 << 30, -(1 << 30)};
  const int32_t ms[] = {0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1, 1518500250,
                        1073741823};
  for (int32_t shift = rt::kMinShift; shift <= rt::kMaxShift; ++shift)
    for (int32_t x : xs)
      for (int32_t m : ms) {
        ASSERT_EQ(rt::requantize(x, m, shift), oracle_double(x, m, shift))
            << "x=" << x << " m=" << m << " shift=" << shift;
        const i128 exact = oracle_single_exact(x, m, shift);
        if (exact >= INT32_MIN && exact <= INT32_MAX) {
          ASSERT_EQ(rt::requantize(x, m, shift, Rounding::kSingle), static_cast<int32_t>(exact))
              << "x=" << x << " m=" << m << " shift=" << shift;
        }
      }
}

TEST(Requantize, RandomMatchesOracle) {
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX);
  std::uniform_int_distribution<int32_t> mult(1 << 30, INT32_MAX);
  std::uniform_int_distribution<int32_t> sh(rt::kMinShift, rt::kMaxShift);
  std::uniform_int_distribution<int32_t> acc(-(1 << 22), 1 << 22);
  for (int i = 0; i < 200000; ++i) {
    const int32_t x = (i & 1) ? any(rng) : acc(rng);
    const int32_t m = mult(rng), s = sh(rng);
    ASSERT_EQ(rt::requantize(x, m, s), oracle_double(x, m, s)) << x << " " << m << " " << s;
    const i128 exact = oracle_single_exact(x, m, s);
    if (exact >= INT32_MIN && exact <= INT32_MAX) {
      ASSERT_EQ(rt::requantize(x, m, s, Rounding::kSingle), static_cast<int32_t>(exact))
          << x << " " << m << " " << s;
    }
  }
}

TEST(Requantize, CheckedRejectsBadShiftAndMultiplier) {
  int32_t out = 77;
  EXPECT_EQ(rt::requantize_checked(1, 1 << 30, 31, Rounding::kDouble, &out), rt::Status::kBadShift);
  EXPECT_EQ(rt::requantize_checked(1, 1 << 30, -32, Rounding::kDouble, &out), rt::Status::kBadShift);
  EXPECT_EQ(rt::requantize_checked(1, -5, 0, Rounding::kDouble, &out), rt::Status::kBadMultiplier);
  EXPECT_EQ(rt::requantize_checked(1, 1, 0, Rounding::kDouble, nullptr), rt::Status::kNullPointer);
  EXPECT_EQ(out, 77);
  EXPECT_EQ(rt::requantize_checked(3, 1 << 30, 0, Rounding::kDouble, &out), rt::Status::kOk);
  EXPECT_EQ(out, 2);
  EXPECT_STREQ(rt::status_name(rt::Status::kBadShift), "bad_shift");
}

namespace {
// TFLite's QuantizeMultiplier, written with frexp/round as it is specified.
rt::QuantizedMultiplier oracle_qm(double m) {
  if (m == 0.0) return {0, 0};
  int shift = 0;
  const double q = std::frexp(m, &shift);
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(1LL << 31)));
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {0, 0};
  if (shift > 30) return {INT32_MAX, 30};
  return {static_cast<int32_t>(q_fixed), shift};
}
}  // namespace

TEST(QuantizeMultiplier, HandComputed) {
  rt::QuantizedMultiplier qm;
  ASSERT_EQ(rt::quantize_multiplier(0.5, &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, 1 << 30);
  EXPECT_EQ(qm.shift, 0);
  ASSERT_EQ(rt::quantize_multiplier(1.0, &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, 1 << 30);
  EXPECT_EQ(qm.shift, 1);
  ASSERT_EQ(rt::quantize_multiplier(0.75, &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, 3 << 29);
  EXPECT_EQ(qm.shift, 0);
  // A mantissa that rounds up to 2^31 is halved and the shift incremented.
  ASSERT_EQ(rt::quantize_multiplier(1.0 - std::ldexp(1.0, -40), &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, 1 << 30);
  EXPECT_EQ(qm.shift, 1);
  // Below 2^-32 the shift would be < -31: flushed to zero.
  ASSERT_EQ(rt::quantize_multiplier(std::ldexp(1.0, -33), &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, 0);
  EXPECT_EQ(qm.shift, 0);
  ASSERT_EQ(rt::quantize_multiplier(std::ldexp(1.0, -32), &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, 1 << 30);
  EXPECT_EQ(qm.shift, -31);
  // Above 2^30 the shift saturates.
  ASSERT_EQ(rt::quantize_multiplier(std::ldexp(1.0, 40), &qm), rt::Status::kOk);
  EXPECT_EQ(qm.multiplier, INT32_MAX);
  EXPECT_EQ(qm.shift, 30);
  EXPECT_EQ(rt::quantize_multiplier(-0.5, &qm), rt::Status::kBadMultiplier);
  EXPECT_EQ(rt::quantize_multiplier(NAN, &qm), rt::Status::kBadMultiplier);
  EXPECT_EQ(rt::quantize_multiplier(INFINITY, &qm), rt::Status::kBadMultiplier);
}

TEST(QuantizeMultiplier, MatchesFrexpFormula) {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> mant(0.5, 1.0);
  std::uniform_int_distribution<int> ex(-40, 35);
  for (int i = 0; i < 200000; ++i) {
    const double m = std::ldexp(mant(rng), ex(rng));
    rt::QuantizedMultiplier got;
    ASSERT_EQ(rt::quantize_multiplier(m, &got), rt::Status::kOk);
    const rt::QuantizedMultiplier want = oracle_qm(m);
    ASSERT_EQ(got.multiplier, want.multiplier) << m;
    ASSERT_EQ(got.shift, want.shift) << m;
  }
  // Subnormals flush to zero like any value below 2^-32.
  rt::QuantizedMultiplier got;
  ASSERT_EQ(rt::quantize_multiplier(std::numeric_limits<double>::denorm_min(), &got), rt::Status::kOk);
  EXPECT_EQ(got.multiplier, 0);
}
