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
  if (biased_exp == 0 && mantissa == 0) {                   // +0.0 or -0.0
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

}  // namespace tinyquant::rt
