// Fixed-point requantization on the target, three ways:
//  1. hand-computed values,
//  2. the host's results for the same inputs (fixed_point_vectors.h, written by host/gen_vectors),
//  3. an independent formula evaluated on the target: floor division and round-half-away written
//     with int64 division, and quantize_multiplier through libm's frexp/ldexp (TFLite's method).
// multipliers_from_scales, which firmware shipping float scales runs at init, must give the
// host's pairs too: on the Cortex-M4 its double arithmetic is the compiler's soft-float.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "check.hpp"
#include "fixed_point_vectors.h"
#include "tinyquant/rt/fixed_point.hpp"

namespace rt = tinyquant::rt;

namespace {

// floor(n / d) for d > 0, with C++'s truncating division corrected for negative n.
int64_t floor_div(int64_t n, int64_t d) {
  int64_t q = n / d;
  if (n % d != 0 && n < 0) --q;
  return q;
}

int32_t oracle_double(int32_t x, int32_t m, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  // x * 2^left modulo 2^32, as the 32-bit register holds it.
  const uint32_t xs_bits = static_cast<uint32_t>(x) * (uint32_t{1} << left);
  const int64_t xs = xs_bits >= 0x80000000u ? static_cast<int64_t>(xs_bits) - (int64_t{1} << 32)
                                            : static_cast<int64_t>(xs_bits);
  const int64_t h64 = floor_div(xs * m + (int64_t{1} << 30), int64_t{1} << 31);
  const uint32_t h_bits = static_cast<uint32_t>(h64);  // keep the low 32 bits
  const int64_t h = h_bits >= 0x80000000u ? static_cast<int64_t>(h_bits) - (int64_t{1} << 32)
                                          : static_cast<int64_t>(h_bits);
  if (right == 0) return static_cast<int32_t>(h);
  const int64_t mag = h < 0 ? -h : h;
  const int64_t r = (mag + (int64_t{1} << (right - 1))) / (int64_t{1} << right);
  return static_cast<int32_t>(h < 0 ? -r : r);
}

int32_t oracle_single(int32_t x, int32_t m, int32_t shift) {
  const int32_t t = 31 - shift;  // [1, 62]
  const int64_t p = static_cast<int64_t>(x) * m;
  // floor((p + 2^(t-1)) / 2^t) without overflowing: split p = q * 2^t + r first.
  const int64_t d = int64_t{1} << t;
  const int64_t q = floor_div(p, d);
  const int64_t r = p - q * d;  // [0, d)
  return static_cast<int32_t>(static_cast<uint32_t>(q + (r >= d / 2 ? 1 : 0)));
}

rt::QuantizedMultiplier oracle_quantize_multiplier(double m) {
  if (m == 0.0) return {0, 0};
  int e = 0;
  const double q = std::frexp(m, &e);
  long long qf = std::llround(std::ldexp(q, 31));
  if (qf == (1ll << 31)) {
    qf /= 2;
    ++e;
  }
  if (e < rt::kMinShift) return {0, 0};
  if (e > rt::kMaxShift) return {INT32_MAX, rt::kMaxShift};
  return {static_cast<int32_t>(qf), e};
}

float float_of(int32_t bits) {
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void hand_computed() {
  TQ_CHECK_EQ(rt::requantize(3, 1 << 30, 0), 2, "1.5 -> 2");
  TQ_CHECK_EQ(rt::requantize(-3, 1 << 30, 0), -1, "-1.5 -> -1");
  TQ_CHECK_EQ(rt::requantize(5, 1 << 30, -1), 2, "3/2 -> 2");
  TQ_CHECK_EQ(rt::requantize(-6, 1 << 30, -1), -2, "-3/2 -> -2");
  TQ_CHECK_EQ(rt::requantize(INT32_MAX, INT32_MAX, -31), 1, "max*max >> 31");
  TQ_CHECK_EQ(rt::requantize(1000, INT32_MAX, 30), 0, "1000 << 30 wraps");
  TQ_CHECK_EQ(rt::requantize(3, 1 << 30, 0, rt::Rounding::kSingle), 2, "single 1.5 -> 2");
  TQ_CHECK_EQ(rt::requantize(-3, 1 << 30, 0, rt::Rounding::kSingle), -1, "single -1.5 -> -1");
  rt::QuantizedMultiplier qm;
  TQ_CHECK_EQ(static_cast<int>(rt::quantize_multiplier(0.5, &qm)), 0, "qm(0.5) status");
  TQ_CHECK_EQ(qm.multiplier, 1 << 30, "qm(0.5) multiplier");
  TQ_CHECK_EQ(qm.shift, 0, "qm(0.5) shift");
  TQ_CHECK_EQ(static_cast<int>(rt::quantize_multiplier(-1.0, &qm)),
              static_cast<int>(rt::Status::kBadMultiplier), "qm(-1) status");
  int32_t out = 0;
  TQ_CHECK_EQ(static_cast<int>(rt::requantize_checked(1, 1, 31, rt::Rounding::kDouble, &out)),
              static_cast<int>(rt::Status::kBadShift), "shift 31 rejected");
}

void against_host() {
  for (int i = 0; i < TQ_RQ_COUNT; ++i) {
    TQ_CHECK_EQ(rt::requantize(kRqX[i], kRqM[i], kRqShift[i], rt::Rounding::kDouble), kRqDouble[i],
                "requantize double vs host");
    TQ_CHECK_EQ(rt::requantize(kRqX[i], kRqM[i], kRqShift[i], rt::Rounding::kSingle), kRqSingle[i],
                "requantize single vs host");
  }
  for (int i = 0; i < TQ_MS_COUNT; ++i) {
    const float in = float_of(kMsInputBits[i]), w = float_of(kMsWeightBits[i]),
                out = float_of(kMsOutputBits[i]);
    int32_t m = -1, s = -99;
    TQ_CHECK_EQ(static_cast<int>(rt::multipliers_from_scales(in, &w, false, out, 1, &m, &s)), 0,
                "multipliers_from_scales status");
    TQ_CHECK_EQ(m, kMsMultiplier[i], "multipliers_from_scales multiplier vs host");
    TQ_CHECK_EQ(s, kMsShift[i], "multipliers_from_scales shift vs host");
    // And against the formula on the target: the double product and quotient, then the oracle.
    const rt::QuantizedMultiplier want = oracle_quantize_multiplier(
        static_cast<double>(in) * static_cast<double>(w) / static_cast<double>(out));
    TQ_CHECK_EQ(m, want.multiplier, "multipliers_from_scales multiplier vs formula");
    TQ_CHECK_EQ(s, want.shift, "multipliers_from_scales shift vs formula");
  }
  for (int i = 0; i < TQ_QM_COUNT; ++i) {
    double d = 0;
    std::memcpy(&d, &kQmBits[i], sizeof d);
    rt::QuantizedMultiplier qm;
    TQ_CHECK_EQ(static_cast<int>(rt::quantize_multiplier(d, &qm)), 0, "qm status vs host");
    TQ_CHECK_EQ(qm.multiplier, kQmMultiplier[i], "qm multiplier vs host");
    TQ_CHECK_EQ(qm.shift, kQmShift[i], "qm shift vs host");
  }
}

void against_oracle() {
  for (int i = 0; i < TQ_RQ_COUNT; ++i) {
    TQ_CHECK_EQ(rt::requantize(kRqX[i], kRqM[i], kRqShift[i], rt::Rounding::kDouble),
                oracle_double(kRqX[i], kRqM[i], kRqShift[i]), "requantize double vs oracle");
  }
  // Random inputs over every shift; results wider than 32 bits wrap in both.
  tq::XorShift32 rng;
  rng.s = 0x9E3779B9u;
  for (int i = 0; i < 100000; ++i) {
    const int32_t x = (i & 1) != 0 ? rng.next_i32() : rng.range(-(1 << 20), 1 << 20);
    const int32_t m = rng.range(1 << 30, INT32_MAX);
    const int32_t s = rng.range(rt::kMinShift, rt::kMaxShift);
    TQ_CHECK_EQ(rt::requantize(x, m, s, rt::Rounding::kDouble), oracle_double(x, m, s),
                "random requantize double vs oracle");
    TQ_CHECK_EQ(rt::requantize(x, m, s, rt::Rounding::kSingle), oracle_single(x, m, s),
                "random requantize single vs oracle");
  }
  for (int i = 0; i < TQ_QM_COUNT; ++i) {
    double d = 0;
    std::memcpy(&d, &kQmBits[i], sizeof d);
    rt::QuantizedMultiplier qm;
    rt::quantize_multiplier(d, &qm);
    const rt::QuantizedMultiplier want = oracle_quantize_multiplier(d);
    TQ_CHECK_EQ(qm.multiplier, want.multiplier, "qm multiplier vs frexp oracle");
    TQ_CHECK_EQ(qm.shift, want.shift, "qm shift vs frexp oracle");
  }
}

}  // namespace

int main() {
  hand_computed();
  against_host();
  against_oracle();
  return tq::finish("test_fixed_point");
}
