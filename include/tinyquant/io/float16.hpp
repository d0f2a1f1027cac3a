// Exact widening of IEEE 754 binary16 (half) and bfloat16 bit patterns to float32.
// Every half and bfloat16 value is representable in float32, so no rounding happens: zeros keep
// their sign, subnormal halves become normal floats, infinities stay infinite and NaNs stay NaN
// with their payload shifted into the top of the float mantissa (quiet/signalling bit preserved).
#pragma once

#include <cstdint>
#include <cstring>

namespace tinyquant::io {

// Bit pattern of the float32 equal to the half with bits h.
constexpr uint32_t half_bits_to_float_bits(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1Fu) return sign | 0x7F800000u | (mant << 13);  // inf or NaN
  if (exp != 0) return sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  if (mant == 0) return sign;  // signed zero
  // Subnormal: mant * 2^-24. Shift the leading one up to the implicit bit position (bit 10);
  // each shift lowers the exponent by one from that of 2^-14, the smallest normal half.
  uint32_t e = 127 - 14;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return sign | (e << 23) | ((mant & 0x3FFu) << 13);
}

// bfloat16 is the top half of a float32.
constexpr uint32_t bfloat16_bits_to_float_bits(uint16_t b) noexcept {
  return static_cast<uint32_t>(b) << 16;
}

inline float half_to_float(uint16_t h) noexcept {
  const uint32_t bits = half_bits_to_float_bits(h);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float bfloat16_to_float(uint16_t b) noexcept {
  const uint32_t bits = bfloat16_bits_to_float_bits(b);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace tinyquant::io
