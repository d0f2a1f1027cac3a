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

// Four int4 values from nibble `index` on, offset added, as the same even/odd pairs. The 16
// bits holding them are spread to bytes 0 and 2 (n0|n1 and n2|n3); each nibble n is isolated
// in a halfword and biased to n ^ 8 in [0, 15], so one SXTAB16 against (offset - 8) in both
// halfwords gives offset + sext4(n) for two nibbles at once.
inline Pairs widen4_s4(const uint8_t* stream, int64_t index, int32_t offset) {
  const uint8_t* p = stream + (index >> 1);
  uint32_t v = p[0] | (uint32_t{p[1]} << 8);
  if ((index & 1) != 0) v = (v >> 4) | (uint32_t{p[2]} << 12);  // start mid-byte
  const uint32_t spread = (v & 0xFFu) | ((v & 0xFF00u) << 8);
  const uint32_t bias = offset_pair(offset - 8);  // [-135, 120]: fits int16
  return {dsp::sxtab16(bias, (spread & 0x000F000Fu) ^ 0x00080008u),
          dsp::sxtab16(bias, ((spread >> 4) & 0x000F000Fu) ^ 0x00080008u)};
}

}  // namespace tinyquant::rt::detail::smlad
