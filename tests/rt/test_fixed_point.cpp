// Requantization checked against hand-computed values (the TFLite/CMSIS-NN cases) and against an
// independent exact-arithmetic formula over edges and random inputs; the init-time multipliers
// from float scales against the formula written out and against the toolkit's layers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "tinyquant/layers.hpp"
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

int32_t wrap32(i128 v) {
  return static_cast<int32_t>(static_cast<uint32_t>(v & 0xFFFFFFFF));
}

// Double rounding written from the definition: x' = x * 2^left mod 2^32; h = round_half_up(2 x' m
// / 2^32) (as 32-bit); r = h / 2^right rounded half away from zero.
int32_t oracle_double(int32_t x, int32_t m, int32_t shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int32_t xs = wrap32(static_cast<i128>(x) * (static_cast<i128>(1) << left));
  const int32_t h =
      wrap32(floor_div_pot(static_cast<i128>(xs) * m + (static_cast<i128>(1) << 30), 31));
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
  EXPECT_EQ(rt::requantize(3, 1 << 30, 0), 2);     // 1.5 -> 2
  EXPECT_EQ(rt::requantize(-3, 1 << 30, 0), -1);   // -1.5 -> -1 (high mul rounds half up)
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1), 2);    // 3 / 2 -> 2 (away from zero)
  EXPECT_EQ(rt::requantize(-5, 1 << 30, -1), -1);  // -2 / 2 -> -1
  EXPECT_EQ(rt::requantize(-6, 1 << 30, -1), -2);  // -3 / 2 -> -2 (away from zero)
  EXPECT_EQ(rt::requantize(INT32_MAX, INT32_MAX, -31), 1);
  EXPECT_EQ(rt::requantize(1000, INT32_MAX, 30), 0);  // 1000 << 30 wraps to 0
  EXPECT_EQ(rt::requantize(0, INT32_MAX, 30), 0);
  EXPECT_EQ(rt::requantize(100, 0, 0), 0);
}

TEST(Requantize, HandComputedSingleRounding) {
  EXPECT_EQ(rt::requantize(3, 1 << 30, 0, Rounding::kSingle), 2);     // 1.5 -> 2
  EXPECT_EQ(rt::requantize(-3, 1 << 30, 0, Rounding::kSingle), -1);   // -1.5 -> -1
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1, Rounding::kSingle), 1);    // 1.25 -> 1 (one rounding)
  EXPECT_EQ(rt::requantize(-6, 1 << 30, -1, Rounding::kSingle), -1);  // -1.5 -> -1
  EXPECT_EQ(rt::requantize(7, 1 << 30, -1, Rounding::kSingle), 2);    // 1.75 -> 2
}

TEST(Requantize, DoubleRoundingDiffersFromSingleWhereExpected) {
  // 5 * 0.5 / 2 = 1.25. Double rounding: the high multiply rounds 2.5 up to 3, then 3 / 2 rounds
  // away from zero to 2. Single rounding rounds 1.25 once, to 1.
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1, Rounding::kDouble), 2);
  EXPECT_EQ(rt::requantize(5, 1 << 30, -1, Rounding::kSingle), 1);
}

TEST(Requantize, EdgeTableMatchesOracle) {
  const int32_t xs[] = {0,
                        1,
                        -1,
                        2,
                        -2,
                        3,
                        -3,
                        127,
                        -128,
                        255,
                        65535,
                        -65536,
                        1 << 20,
                        INT32_MAX,
                        INT32_MIN,
                        INT32_MAX - 1,
                        INT32_MIN + 1,
                        1 << 30,
                        -(1 << 30)};
  const int32_t ms[] = {0,          1,         1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1,
                        1518500250, 1073741823};
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
  EXPECT_EQ(rt::requantize_checked(1, 1 << 30, -32, Rounding::kDouble, &out),
            rt::Status::kBadShift);
  EXPECT_EQ(rt::requantize_checked(1, -5, 0, Rounding::kDouble, &out), rt::Status::kBadMultiplier);
  EXPECT_EQ(rt::requantize_checked(1, 1, 0, Rounding::kDouble, nullptr), rt::Status::kNullPointer);
  EXPECT_EQ(out, 77);
  EXPECT_EQ(rt::requantize_checked(3, 1 << 30, 0, Rounding::kDouble, &out), rt::Status::kOk);
  EXPECT_EQ(out, 2);
  EXPECT_STREQ(rt::status_name(rt::Status::kBadShift), "bad_shift");
}

// The ends of the valid ranges are accepted: multiplier 0 (a real multiplier of 0, what
// quantize_multiplier gives for it), shift kMinShift and kMaxShift.
TEST(Requantize, CheckedAcceptsTheEndsOfTheValidRanges) {
  int32_t out = 77;
  EXPECT_EQ(rt::requantize_checked(12345, 0, 0, Rounding::kDouble, &out), rt::Status::kOk);
  EXPECT_EQ(out, 0);
  out = 77;
  EXPECT_EQ(rt::requantize_checked(-9, 0, -7, Rounding::kSingle, &out), rt::Status::kOk);
  EXPECT_EQ(out, 0);
  // 1 * 0.5 * 2^30 = 2^29; 2^30 * 0.5 / 2^31 = 0.25 -> 0; -2^31 * 0.5 / 2^31 = -0.5 -> -1.
  EXPECT_EQ(rt::requantize_checked(1, 1 << 30, rt::kMaxShift, Rounding::kDouble, &out),
            rt::Status::kOk);
  EXPECT_EQ(out, 1 << 29);
  EXPECT_EQ(rt::requantize_checked(1 << 30, 1 << 30, rt::kMinShift, Rounding::kDouble, &out),
            rt::Status::kOk);
  EXPECT_EQ(out, 0);
  EXPECT_EQ(rt::requantize_checked(INT32_MIN, 1 << 30, rt::kMinShift, Rounding::kDouble, &out),
            rt::Status::kOk);
  EXPECT_EQ(out, -1);
}

// The two building blocks on their own, over operands requantize never passes them (any sign of
// the multiplier, INT32_MIN twice): doubling_high_mul is the non-saturating form, so
// INT32_MIN * INT32_MIN wraps to INT32_MIN where TFLite's SaturatingRoundingDoublingHighMul
// returns INT32_MAX.
TEST(Requantize, DoublingHighMulAndDivideByPotMatchTheirDefinitions) {
  EXPECT_EQ(rt::doubling_high_mul(INT32_MIN, INT32_MIN), INT32_MIN);
  EXPECT_EQ(rt::doubling_high_mul(INT32_MIN, INT32_MAX), -INT32_MAX);
  EXPECT_EQ(rt::doubling_high_mul(-1, 1 << 30), 0);   // -0.5 rounds half up, to 0
  EXPECT_EQ(rt::doubling_high_mul(-3, 1 << 30), -1);  // -1.5 -> -1
  EXPECT_EQ(rt::rounding_divide_by_pot(INT32_MIN, 31), -1);
  EXPECT_EQ(rt::rounding_divide_by_pot(-(1 << 30), 31), -1);  // -0.5 -> -1 (away from zero)
  EXPECT_EQ(rt::rounding_divide_by_pot(1 << 30, 31), 1);      // 0.5 -> 1
  EXPECT_EQ(rt::rounding_divide_by_pot((1 << 30) - 1, 31), 0);
  EXPECT_EQ(rt::rounding_divide_by_pot(INT32_MAX, 31), 1);
  EXPECT_EQ(rt::rounding_divide_by_pot(-7, 0), -7);
  std::mt19937_64 rng(4321);
  std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX);
  std::uniform_int_distribution<int32_t> exponent(0, 31);
  const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30),    -3,       -2, -1, 0, 1, 2,
                           3,         1 << 30,       INT32_MAX - 1, INT32_MAX};
  for (int i = 0; i < 100000; ++i) {
    const int32_t a = i < 169 ? edges[i / 13] : any(rng);
    const int32_t b = i < 169 ? edges[i % 13] : any(rng);
    const int32_t want_h =
        wrap32(floor_div_pot(static_cast<i128>(a) * b + (static_cast<i128>(1) << 30), 31));
    ASSERT_EQ(rt::doubling_high_mul(a, b), want_h) << a << " * " << b;
    const int32_t e = exponent(rng);
    // |a| / 2^e rounded half up in magnitude, sign restored.
    const i128 mag = a < 0 ? -static_cast<i128>(a) : a;
    const i128 q = e == 0 ? mag : floor_div_pot(mag + (static_cast<i128>(1) << (e - 1)), e);
    ASSERT_EQ(rt::rounding_divide_by_pot(a, e), static_cast<int32_t>(a < 0 ? -q : q))
        << a << " / 2^" << e;
  }
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
  // Zero, of either sign, is {0, 0}: every requantized value becomes 0.
  for (double zero : {0.0, -0.0}) {
    qm = {12345, 7};
    ASSERT_EQ(rt::quantize_multiplier(zero, &qm), rt::Status::kOk) << zero;
    EXPECT_EQ(qm.multiplier, 0);
    EXPECT_EQ(qm.shift, 0);
  }
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
  ASSERT_EQ(rt::quantize_multiplier(std::numeric_limits<double>::denorm_min(), &got),
            rt::Status::kOk);
  EXPECT_EQ(got.multiplier, 0);
}

// ---------------------------------------------------------------------------------------------
// multipliers_from_scales: the init-time computation a firmware runs on shipped float scales.

namespace {

// The real multiplier written out: the float scales widened to double, product, then quotient.
double real_multiplier(float in, float w, float out) {
  const double product = static_cast<double>(in) * static_cast<double>(w);
  return product / static_cast<double>(out);
}

// Float scales spread over many binades, with the ends of the float range mixed in.
float random_scale(std::mt19937_64& rng) {
  const float edges[] = {std::numeric_limits<float>::denorm_min(),
                         std::numeric_limits<float>::min(),
                         std::numeric_limits<float>::max(),
                         1.0f,
                         0.5f,
                         std::nextafter(1.0f, 0.0f),
                         std::nextafter(1.0f, 2.0f),
                         1.0f / 255.0f,
                         1.0f / 127.0f};
  std::uniform_int_distribution<int> pick(0, 9);
  const int i = pick(rng);
  if (i < 9) return edges[i];
  std::uniform_real_distribution<float> mant(0.5f, 1.0f);
  std::uniform_int_distribution<int> ex(-40, 20);
  return std::ldexp(mant(rng), ex(rng));
}

}  // namespace

TEST(MultipliersFromScales, MatchTheWrittenOutFormulaOverRandomAndEdgeScales) {
  std::mt19937_64 rng(2026);
  std::uniform_int_distribution<int32_t> count(1, 9);
  int saturated = 0, flushed = 0, normal = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const int32_t n = count(rng);
    const bool per_channel = (trial & 1) != 0;
    const float in = random_scale(rng), out = random_scale(rng);
    std::vector<float> w(static_cast<size_t>(n));
    for (float& s : w) s = random_scale(rng);
    std::vector<int32_t> mult(static_cast<size_t>(n), -1), shift(static_cast<size_t>(n), -99);
    ASSERT_EQ(
        rt::multipliers_from_scales(in, w.data(), per_channel, out, n, mult.data(), shift.data()),
        rt::Status::kOk);
    for (int32_t c = 0; c < n; ++c) {
      const rt::QuantizedMultiplier want =
          oracle_qm(real_multiplier(in, w[static_cast<size_t>(per_channel ? c : 0)], out));
      ASSERT_EQ(mult[static_cast<size_t>(c)], want.multiplier)
          << "in " << in << " w " << w[static_cast<size_t>(c)] << " out " << out;
      ASSERT_EQ(shift[static_cast<size_t>(c)], want.shift);
      if (want.multiplier == INT32_MAX && want.shift == 30)
        ++saturated;
      else if (want.multiplier == 0)
        ++flushed;
      else
        ++normal;
    }
  }
  // The draw reaches both clamps of QuantizeMultiplier as well as the ordinary range.
  EXPECT_GT(saturated, 100);
  EXPECT_GT(flushed, 100);
  EXPECT_GT(normal, 10000);
}

TEST(MultipliersFromScales, HandComputedAndRoundingToTwoToThe31) {
  int32_t m[2] = {0, 0}, s[2] = {0, 0};
  const float w[2] = {0.25f, 0.75f};
  ASSERT_EQ(rt::multipliers_from_scales(0.5f, w, true, 0.125f, 2, m, s), rt::Status::kOk);
  EXPECT_EQ(m[0], 1 << 30);  // 0.5 * 0.25 / 0.125 = 1 = 0.5 * 2^1
  EXPECT_EQ(s[0], 1);
  EXPECT_EQ(m[1], 3 << 29);  // 3 = 0.75 * 2^2
  EXPECT_EQ(s[1], 2);
  // Per-tensor: every channel gets the pair of the one scale.
  ASSERT_EQ(rt::multipliers_from_scales(0.5f, w + 1, false, 0.125f, 2, m, s), rt::Status::kOk);
  EXPECT_EQ(m[0], 3 << 29);
  EXPECT_EQ(m[1], 3 << 29);
  EXPECT_EQ(s[0], 2);
  EXPECT_EQ(s[1], 2);
  // (1 - 2^-24) * 0.25 / 0.25: q * 2^31 = 2^31 - 2^7 exactly.
  const float below_one = std::nextafter(1.0f, 0.0f);
  ASSERT_EQ(rt::multipliers_from_scales(below_one, w, true, 0.25f, 1, m, s), rt::Status::kOk);
  EXPECT_EQ(m[0], INT32_MAX - 127);
  EXPECT_EQ(s[0], 0);
  // (1 + 2^-23) * (1 - 2^-23) / 1 = 1 - 2^-46 in double (not in float): q * 2^31 rounds to
  // 2^31, which is halved with the shift incremented.
  const float up = 1.0f + std::ldexp(1.0f, -23), down = 1.0f - std::ldexp(1.0f, -23);
  ASSERT_EQ(rt::multipliers_from_scales(up, &down, false, 1.0f, 1, m, s), rt::Status::kOk);
  EXPECT_EQ(m[0], 1 << 30);
  EXPECT_EQ(s[0], 1);
}

// The product first: input_scale * weight_scale is exact in double (24 + 24 significant bits), so
// real is the exact quotient rounded once. Dividing first rounds twice and can land one ulp
// away; these scales (found by a search) are ones where that ulp moves real across a rounding
// boundary of the 31-bit multiplier, so the pair tells the two orders apart.
TEST(MultipliersFromScales, TheProductIsFormedBeforeTheQuotient) {
  const float cases[][3] = {{0x1.47ae14p-7f, 0x1.89374cp-9f, 0x1.733df8p-7f},
                            {0x1.333334p-2f, 0x1.0c97bep-11f, 0x1.8212f6p-7f},
                            {0x1.0101p-8f, 0x1.47ae14p-6f, 0x1.83b996p-7f},
                            {0x1.81818p-6f, 0x1.0c97bep-11f, 0x1.8fffbap-7f},
                            {0x1.8a3d7p-4f, 0x1.0c97bep-11f, 0x1.89f642p-7f},
                            {0x1.8a3d7p-4f, 0x1.89374cp-9f, 0x1.512p-7f}};
  for (const auto& c : cases) {
    const float in = c[0], w = c[1], out = c[2];
    const rt::QuantizedMultiplier want = oracle_qm(real_multiplier(in, w, out));
    const rt::QuantizedMultiplier other =
        oracle_qm(static_cast<double>(in) * (static_cast<double>(w) / static_cast<double>(out)));
    ASSERT_TRUE(want.multiplier != other.multiplier || want.shift != other.shift)
        << "the case does not tell the two orders apart: " << in << " " << w << " " << out;
    int32_t m = 0, s = 0;
    ASSERT_EQ(rt::multipliers_from_scales(in, &w, false, out, 1, &m, &s), rt::Status::kOk);
    EXPECT_EQ(m, want.multiplier) << in << " " << w << " " << out;
    EXPECT_EQ(s, want.shift);
  }
}

TEST(MultipliersFromScales, RejectsBadArgumentsWithoutWriting) {
  const float w[2] = {0.5f, 0.25f};
  int32_t m[2] = {7, 7}, s[2] = {7, 7};
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  EXPECT_EQ(rt::multipliers_from_scales(1.0f, nullptr, true, 1.0f, 2, m, s),
            rt::Status::kNullPointer);
  EXPECT_EQ(rt::multipliers_from_scales(1.0f, w, true, 1.0f, 2, nullptr, s),
            rt::Status::kNullPointer);
  EXPECT_EQ(rt::multipliers_from_scales(1.0f, w, true, 1.0f, 2, m, nullptr),
            rt::Status::kNullPointer);
  EXPECT_EQ(rt::multipliers_from_scales(1.0f, w, true, 1.0f, 0, m, s), rt::Status::kBadDimension);
  EXPECT_EQ(rt::multipliers_from_scales(1.0f, w, true, 1.0f, -3, m, s), rt::Status::kBadDimension);
  for (const float bad : {0.0f, -0.0f, -1.0f, inf, -inf, nan}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(rt::multipliers_from_scales(bad, w, true, 1.0f, 2, m, s), rt::Status::kBadMultiplier);
    EXPECT_EQ(rt::multipliers_from_scales(1.0f, w, true, bad, 2, m, s), rt::Status::kBadMultiplier);
    const float bad_w[2] = {0.5f, bad};  // the last channel's scale
    EXPECT_EQ(rt::multipliers_from_scales(1.0f, bad_w, true, 1.0f, 2, m, s),
              rt::Status::kBadMultiplier);
    // Per-tensor reads only the first scale.
    EXPECT_EQ(rt::multipliers_from_scales(1.0f, bad_w, false, 1.0f, 2, m, s), rt::Status::kOk);
    m[0] = m[1] = s[0] = s[1] = 7;
  }
  EXPECT_EQ(m[0], 7);
  EXPECT_EQ(s[1], 7);
}

TEST(GroupRowScales, AreTheLargestScaleOfEachRow) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(1e-4f, 1.0f);
  for (const int32_t groups : {1, 2, 7}) {
    const int32_t rows = 5;
    std::vector<float> s(static_cast<size_t>(rows * groups));
    for (float& v : s) v = u(rng);
    std::vector<float> got(static_cast<size_t>(rows), -1.0f);
    ASSERT_EQ(rt::group_row_scales(s.data(), rows, groups, got.data()), rt::Status::kOk);
    for (int32_t o = 0; o < rows; ++o) {
      float want = 0.0f;
      for (int32_t g = 0; g < groups; ++g)
        want = std::max(want, s[static_cast<size_t>(o * groups + g)]);
      EXPECT_EQ(got[static_cast<size_t>(o)], want) << o;
    }
  }
  float one = 1.0f, out = 0.0f;
  EXPECT_EQ(rt::group_row_scales(nullptr, 1, 1, &out), rt::Status::kNullPointer);
  EXPECT_EQ(rt::group_row_scales(&one, 1, 1, nullptr), rt::Status::kNullPointer);
  EXPECT_EQ(rt::group_row_scales(&one, 0, 1, &out), rt::Status::kBadDimension);
  EXPECT_EQ(rt::group_row_scales(&one, 1, 0, &out), rt::Status::kBadDimension);
}

// The toolkit's layer and the init-time function give the same pairs, for per-tensor,
// per-channel and per-group weights of random layers (per-group: from the row's largest scale,
// computed here by a plain loop).
TEST(MultipliersFromScales, EqualWhatQuantizedLinearUses) {
  namespace tq = tinyquant;
  std::mt19937_64 rng(77);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::uniform_real_distribution<float> act_scale(1e-3f, 0.5f);
  std::uniform_int_distribution<int> dim(1, 40);
  const tq::QuantSpec per_tensor{8, tq::Scheme::kSymmetric, true, tq::Granularity::kPerTensor, 0,
                                 0};
  for (int trial = 0; trial < 60; ++trial) {
    const tq::QuantSpec spec = trial % 3 == 0   ? per_tensor
                               : trial % 3 == 1 ? tq::QuantSpec::int8_weights_per_channel(0)
                                                : tq::QuantSpec::int4_per_group(8, 1);
    const int out = dim(rng), in = dim(rng);
    std::vector<float> w(static_cast<size_t>(out * in));
    for (float& v : w) v = val(rng) * (1.0f + static_cast<float>(v > 0.9f) * 20.0f);
    const tq::ActivationParams ai{act_scale(rng), 3}, ao{act_scale(rng), -5};
    const tq::QuantizedLinear layer(w.data(), out, in, nullptr, spec, ai, ao);
    const std::vector<float>& s = layer.weights().params.scales;
    std::vector<float> channel(static_cast<size_t>(out));
    for (int o = 0; o < out; ++o) {
      if (spec.granularity == tq::Granularity::kPerTensor) {
        channel[static_cast<size_t>(o)] = s[0];
      } else if (spec.granularity == tq::Granularity::kPerChannel) {
        channel[static_cast<size_t>(o)] = s[static_cast<size_t>(o)];
      } else {
        const size_t groups = s.size() / static_cast<size_t>(out);
        float m = 0.0f;
        for (size_t g = 0; g < groups; ++g) m = std::max(m, s[static_cast<size_t>(o) * groups + g]);
        channel[static_cast<size_t>(o)] = m;
      }
    }
    std::vector<int32_t> mult(static_cast<size_t>(out)), shift(static_cast<size_t>(out));
    ASSERT_EQ(rt::multipliers_from_scales(ai.scale, channel.data(), true, ao.scale, out,
                                          mult.data(), shift.data()),
              rt::Status::kOk);
    EXPECT_EQ(mult, layer.multipliers()) << "trial " << trial;
    EXPECT_EQ(shift, layer.shifts()) << "trial " << trial;
    for (int o = 0; o < out; ++o) {  // and the formula written out
      const rt::QuantizedMultiplier want =
          oracle_qm(real_multiplier(ai.scale, channel[static_cast<size_t>(o)], ao.scale));
      EXPECT_EQ(layer.multipliers()[static_cast<size_t>(o)], want.multiplier);
      EXPECT_EQ(layer.shifts()[static_cast<size_t>(o)], want.shift);
    }
  }
}
