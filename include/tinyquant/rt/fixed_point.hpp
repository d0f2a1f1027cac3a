// Fixed-point requantization, bit-exact with CMSIS-NN and TFLite Micro.
//
// A real multiplier M > 0 is stored as (multiplier, shift) with M ~= multiplier * 2^(shift - 31),
// multiplier in [2^30, 2^31 - 1] (or 0 for an M below about 2^-32, which quantize_multiplier
// flushes to {0, 0}) and shift in [kMinShift, kMaxShift].
//
// requantize() has two rounding modes, both exactly as the reference libraries compute them:
//  - Rounding::kDouble (CMSIS-NN's default, TFLite's MultiplyByQuantizedMultiplier):
//      x' = x << max(shift, 0)                         (32-bit, wraps)
//      h  = (int64(x') * multiplier + 2^30) >> 31      (doubling high multiply, rounds half up)
//      r  = h / 2^max(-shift, 0), ties away from zero
//  - Rounding::kSingle (CMSIS_NN_USE_SINGLE_ROUNDING / TFLITE_SINGLE_ROUNDING):
//      r  = (int64(x) * multiplier + 2^(30 - shift)) >> (31 - shift)   (TFLite's formula)
//    CMSIS-NN computes the same value through a 32-bit intermediate of twice the result, so the
//    two agree whenever |r| < 2^30, i.e. for every result that does not saturate an int8/int16
//    output anyway; beyond that CMSIS-NN's intermediate overflows and tinyquant keeps TFLite's.
// Results that do not fit in 32 bits wrap as they do on a Cortex-M; they never invoke UB.
#pragma once

#include <cstdint>

#include "tinyquant/rt/status.hpp"

namespace tinyquant::rt {

inline constexpr int32_t kMinShift = -31;
inline constexpr int32_t kMaxShift = 30;

enum class Rounding : uint8_t {
  kDouble = 0,  // CMSIS-NN / TFLite default
  kSingle = 1,  // CMSIS_NN_USE_SINGLE_ROUNDING / TFLITE_SINGLE_ROUNDING
};

struct QuantizedMultiplier {
  int32_t multiplier = 0;  // [0, 2^31 - 1]; [2^30, 2^31 - 1] unless flushed to 0 (see above)
  int32_t shift = 0;       // [kMinShift, kMaxShift]
};

// Two's complement helpers: defined behaviour for what C++ calls overflow.
constexpr int32_t wrap_add(int32_t a, int32_t b) noexcept {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
constexpr int32_t wrap_mul(int32_t a, int32_t b) noexcept {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}
constexpr int32_t wrap_shl(int32_t a, int32_t s) noexcept {
  return static_cast<int32_t>(static_cast<uint32_t>(a) << s);
}

constexpr bool shift_in_range(int32_t shift) noexcept {
  return shift >= kMinShift && shift <= kMaxShift;
}

// ((int64)a * b + 2^30) >> 31 truncated to 32 bits: CMSIS-NN's non-saturating doubling high
// multiply. Equal to TFLite's saturating version except for a == b == INT32_MIN.
constexpr int32_t doubling_high_mul(int32_t a, int32_t b) noexcept {
  const int64_t p = static_cast<int64_t>(a) * static_cast<int64_t>(b) + (int64_t{1} << 30);
  return static_cast<int32_t>(p >> 31);
}

// x / 2^exponent, ties rounded away from zero. exponent in [0, 31].
constexpr int32_t rounding_divide_by_pot(int32_t x, int32_t exponent) noexcept {
  const int64_t mask = (int64_t{1} << exponent) - 1;
  const int64_t remainder = static_cast<int64_t>(x) & mask;
  int32_t result = x >> exponent;
  const int64_t threshold = (mask >> 1) + (result < 0 ? 1 : 0);
  if (remainder > threshold) ++result;
  return result;
}

// Requantize a 32-bit accumulator. Precondition: shift_in_range(shift); kernels check it once
// per call and return Status::kBadShift instead of calling this.
constexpr int32_t requantize(int32_t x, int32_t multiplier, int32_t shift,
                             Rounding rounding = Rounding::kDouble) noexcept {
  if (rounding == Rounding::kSingle) {
    const int32_t total_shift = 31 - shift;  // [1, 62]; |x * multiplier| < 2^62: no overflow
    const int64_t product = static_cast<int64_t>(x) * static_cast<int64_t>(multiplier);
    return static_cast<int32_t>((product + (int64_t{1} << (total_shift - 1))) >> total_shift);
  }
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  return rounding_divide_by_pot(doubling_high_mul(wrap_shl(x, left), multiplier), right);
}

// Checked form for callers outside the kernels.
constexpr Status requantize_checked(int32_t x, int32_t multiplier, int32_t shift, Rounding rounding,
                                    int32_t* out) noexcept {
  if (out == nullptr) return Status::kNullPointer;
  if (!shift_in_range(shift)) return Status::kBadShift;
  if (multiplier < 0) return Status::kBadMultiplier;
  *out = requantize(x, multiplier, shift, rounding);
  return Status::kOk;
}

// TFLite's QuantizeMultiplier for a real multiplier m >= 0 (finite):
//   m = q * 2^shift with q in [0.5, 1); multiplier = round_half_away(q * 2^31);
//   a multiplier that rounds to 2^31 is halved and the shift incremented;
//   shift < -31 flushes to {0, 0}; shift > 30 saturates to {2^31 - 1, 30}.
// Computed from the bits of the double, so it needs no libm and behaves the same on every target.
// Returns kBadMultiplier for m < 0, NaN or infinity.
Status quantize_multiplier(double m, QuantizedMultiplier* out) noexcept;

// Per-group weights (rt/grouped.hpp): the scale each row's accumulator carries,
// row_scale[o] = max_g group_scales[o * groups + g], for o in [0, rows). Errors: kNullPointer,
// kBadDimension (rows or groups < 1); the scales themselves are not checked.
Status group_row_scales(const float* group_scales, int32_t rows, int32_t groups,
                        float* row_scale) noexcept;

// Per-channel multipliers and shifts from the scales a TFLite model ships (what TFLite Micro
// computes once at init, into RAM), with the arithmetic the toolkit's layers use:
//   real[c] = double(input_scale) * double(weight_scales[per_channel ? c : 0])
//             / double(output_scale)                    (IEEE double, the product first)
//   multiplier[c], shift[c] = quantize_multiplier(real[c]),     c in [0, n)
// weight_scales holds n values when per_channel, else one (every channel then gets the same
// pair; a kernel with Requant::per_channel false reads only the first). For per-group weights
// pass the row scales S[o] = max_g s[o][g] (group_row_scales). Needs no libm (a soft-float target
// uses the compiler's double helpers). Errors, with nothing written: kNullPointer (a null
// array), kBadDimension (n < 1), kBadMultiplier (a scale that is not finite and > 0).
Status multipliers_from_scales(float input_scale, const float* weight_scales, bool per_channel,
                               float output_scale, int32_t n, int32_t* multiplier,
                               int32_t* shift) noexcept;

}  // namespace tinyquant::rt
