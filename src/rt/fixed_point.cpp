#include "tinyquant/rt/fixed_point.hpp"

#include <cstring>

namespace tinyquant::rt {

Status quantize_multiplier(double m, QuantizedMultiplier* out) noexcept {
  if (out == nullptr) return Status::kNullPointer;
  uint64_t bits = 0;
  std::memcpy(&bits, &m, sizeof bits);
  const bool negative = (bits >> 63) != 0;
  const int32_t biased_exp = static_cast<int32_t>((bits >> 52) & 0x7FF);
  uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  if (biased_exp == 0x7FF) return Status::kBadMultiplier;  // NaN or infinity
  if (biased_exp == 0 && mantissa == 0) {                  // +0.0 or -0.0
    *out = {0, 0};
    return Status::kOk;
  }
  if (negative) return Status::kBadMultiplier;

  // Normalise to m = mantissa * 2^(exp2 - 52) with bit 52 of mantissa set.
  int32_t exp2 = 0;
  if (biased_exp == 0) {  // subnormal
    exp2 = -1022;
    while ((mantissa & (uint64_t{1} << 52)) == 0) {
      mantissa <<= 1;
      --exp2;
    }
  } else {
    mantissa |= uint64_t{1} << 52;
    exp2 = biased_exp - 1023;
  }
  // frexp: m = q * 2^shift, q = mantissa / 2^53 in [0.5, 1), shift = exp2 + 1.
  int32_t shift = exp2 + 1;
  // q * 2^31 = mantissa / 2^22, rounded half away from zero (q > 0 here).
  int64_t q_fixed = static_cast<int64_t>((mantissa + (uint64_t{1} << 21)) >> 22);
  if (q_fixed == (int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < kMinShift) {
    *out = {0, 0};
    return Status::kOk;
  }
  if (shift > kMaxShift) {
    *out = {INT32_MAX, kMaxShift};
    return Status::kOk;
  }
  *out = {static_cast<int32_t>(q_fixed), shift};
  return Status::kOk;
}

namespace {

// Finite and > 0, from the bits (no libm): an exponent field of all ones is NaN or infinity.
bool positive_finite(float s) noexcept {
  uint32_t bits = 0;
  std::memcpy(&bits, &s, sizeof bits);
  return s > 0.0f && ((bits >> 23) & 0xFF) != 0xFF;
}

}  // namespace

Status group_row_scales(const float* group_scales, int32_t rows, int32_t groups,
                        float* row_scale) noexcept {
  if (group_scales == nullptr || row_scale == nullptr) return Status::kNullPointer;
  if (rows < 1 || groups < 1) return Status::kBadDimension;
  for (int32_t o = 0; o < rows; ++o) {
    const float* s = group_scales + static_cast<int64_t>(o) * groups;
    float m = s[0];
    for (int32_t g = 1; g < groups; ++g)
      if (s[g] > m) m = s[g];
    row_scale[o] = m;
  }
  return Status::kOk;
}

Status multipliers_from_scales(float input_scale, const float* weight_scales, bool per_channel,
                               float output_scale, int32_t n, int32_t* multiplier,
                               int32_t* shift) noexcept {
  if (weight_scales == nullptr || multiplier == nullptr || shift == nullptr)
    return Status::kNullPointer;
  if (n < 1) return Status::kBadDimension;
  if (!positive_finite(input_scale) || !positive_finite(output_scale))
    return Status::kBadMultiplier;
  const int32_t count = per_channel ? n : 1;
  for (int32_t c = 0; c < count; ++c)
    if (!positive_finite(weight_scales[c])) return Status::kBadMultiplier;
  for (int32_t c = 0; c < n; ++c) {
    const double real = static_cast<double>(input_scale) *
                        static_cast<double>(weight_scales[per_channel ? c : 0]) /
                        static_cast<double>(output_scale);
    QuantizedMultiplier qm;
    // Cannot fail: a product and quotient of finite positive floats is a finite positive double.
    const Status st = quantize_multiplier(real, &qm);
    if (st != Status::kOk) return st;
    multiplier[c] = qm.multiplier;
    shift[c] = qm.shift;
  }
  return Status::kOk;
}

}  // namespace tinyquant::rt
