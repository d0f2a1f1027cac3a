// Internal: operand preparation shared by the smlad path's kernels (CMSIS-NN's data flow).
//
// Four int8 values q = (v0, v1, v2, v3) of a row are widened with the offset already added, as
// two int16 pairs: even = (v0 + off, v2 + off), odd = (v1 + off, v3 + off), built with
// SXTAB16 and SXTAB16-ROR8 (offsets in [-128, 128], so every sum fits int16). Rows of both
// operands are widened the same way, so SMLAD(even_a, even_b) + SMLAD(odd_a, odd_b) is the
// four-term dot product. Only the smlad path's files include this header.
#pragma once

#include <cstdint>
#include <cstring>

#include "tinyquant/rt/dsp.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the smlad path assumes little-endian loads (as on every Cortex-M in practice)"
#endif

namespace tinyquant::rt::detail::smlad {

// The offset in both halfwords.
inline uint32_t offset_pair(int32_t offset) {
  const auto o = static_cast<uint32_t>(offset);
  return dsp::pkhbt<16>(o, o);
}

inline uint32_t load4(const int8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct Pairs {
  uint32_t even;
  uint32_t odd;
};

inline Pairs widen4(const int8_t* p, uint32_t off) {
  const uint32_t q = load4(p);
  return {dsp::sxtab16(off, q), dsp::sxtab16<8>(off, q)};
}

// Element `index` of a packed int4 stream (low nibble first), sign-extended.
inline int32_t nibble_at(const uint8_t* stream, int64_t index) {
  const uint32_t byte = stream[index >> 1];
  const uint32_t nib = (index & 1) != 0 ? byte >> 4 : byte & 0xFu;
  return static_cast<int32_t>(nib ^ 8u) - 8;
}

// Four int4 values from nibble `index` on, offset added, as the same even/odd pairs.
inline Pairs widen4_s4(const uint8_t* stream, int64_t index, int32_t offset) {
  const auto v0 = static_cast<uint32_t>(nibble_at(stream, index) + offset);
  const auto v1 = static_cast<uint32_t>(nibble_at(stream, index + 1) + offset);
  const auto v2 = static_cast<uint32_t>(nibble_at(stream, index + 2) + offset);
  const auto v3 = static_cast<uint32_t>(nibble_at(stream, index + 3) + offset);
  return {dsp::pkhbt<16>(v0, v2), dsp::pkhbt<16>(v1, v3)};
}

}  // namespace tinyquant::rt::detail::smlad
