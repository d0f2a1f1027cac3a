// Internal: operand preparation and output stage shared by the smlad path's kernels (the
// Cortex-M DSP data flow: SXTB16 / SXTAB16 widening, SMLAD dual 16-bit multiply-accumulate).
//
// Four int8 values q = (v0, v1, v2, v3) of a row are widened as two int16 pairs:
// even = (v0 + off, v2 + off), odd = (v1 + off, v3 + off), built with SXTAB16 and SXTAB16-ROR8
// (offsets in [-128, 128], so every sum fits int16). SMLAD(even_a, even_b) + SMLAD(odd_a, odd_b)
// is then the four-term dot product. The fast kernels widen only the activation side with its
// offset; the weight offset is folded out algebraically,
//   sum_k (a_k + ao)(w_k + wo) = sum_k (a_k + ao) w_k + wo * sum_k (a_k + ao),
// with the second sum computed once per activation row. Every sum wraps at 32 bits, so the
// result equals the reference's wrapping accumulation bit for bit.
// Only the smlad path's files include this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/fixed_point.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the smlad path assumes little-endian loads (as on every Cortex-M in practice)"
#endif

namespace tinyquant::rt::detail {

// The smlad path's kernels (one file each); s8s8_gemm_smlad picks among the gemm ones.
void s8s8_gemm_smlad(const GemmS8Args& g);
void s8s8_gemm_1x4c4_smlad(const GemmS8Args& g);  // any m, one activation row per pass
void s8s8_gemm_2x2c4_smlad(const GemmS8Args& g);  // m >= 2: two activation rows per pass
void s8s4_gemm_1x2c8_smlad(const GemmS8Args& g);  // packed int4 weights
bool s8s4_gemm_1x2c8_smlad_fits(const GemmS8Args& g);
void s8s8_s32_gemm_2x2c4_smlad(const GemmS32Args& g);
void s8_dwconv_1x1c2_smlad(const DepthwiseArgs& a);
void s8_dwconv_3x3c4_smlad(const DepthwiseArgs& a);
bool s8_dwconv_3x3c4_smlad_fits(const DepthwiseArgs& a);

namespace smlad {

// The offset in both halfwords.
inline uint32_t offset_pair(int32_t offset) {
  const auto o = static_cast<uint32_t>(offset);
  return dsp::pkhbt<16>(o, o);
}

// One 32-bit load (a single LDR on Cortex-M3/M4/M7, which allow unaligned word loads).
inline uint32_t load4(const void* p) {
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
inline int32_t nibble_at(const uint8_t* stream, int32_t index) {
  const uint32_t byte = stream[index >> 1];
  const uint32_t nib = (index & 1) != 0 ? byte >> 4 : byte & 0xFu;
  return static_cast<int32_t>(nib ^ 8u) - 8;
}

// sum_k (a[k] + offset), wrapping at 32 bits.
inline int32_t row_sum(const int8_t* a, int32_t k, int32_t offset) {
  uint32_t s = static_cast<uint32_t>(offset) * static_cast<uint32_t>(k);
  const uint32_t ones = 0x00010001u;
  int32_t i = 0;
  for (; i + 4 <= k; i += 4) {
    const uint32_t q = load4(a + i);
    s = dsp::smlad(dsp::sxtb16(q), ones, s);
    s = dsp::smlad(dsp::sxtb16<8>(q), ones, s);
  }
  for (; i < k; ++i) s += static_cast<uint32_t>(int32_t{a[i]});
  return static_cast<int32_t>(s);
}

// The bias of output channel j, or 0.
inline uint32_t bias_at(const GemmS8Args& g, int32_t j) {
  return g.bias != nullptr ? static_cast<uint32_t>(g.bias[j]) : 0u;
}

// requantize + output offset + clamp of channel j's accumulator, as every path does it.
inline int8_t finish(const GemmS8Args& g, int32_t j, uint32_t acc) {
  const int32_t ch = g.per_channel ? j : 0;
  int32_t out = requantize(static_cast<int32_t>(acc), g.multiplier[ch], g.shift[ch], g.rounding);
  out = wrap_add(out, g.c_offset);
  out = out < g.act_min ? g.act_min : (out > g.act_max ? g.act_max : out);
  return static_cast<int8_t>(out);
}

}  // namespace smlad
}  // namespace tinyquant::rt::detail
