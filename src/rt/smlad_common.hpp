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

// The smlad path's kernels (one file each); s8s8_gemm_smlad picks among the int8 gemm ones.
void s8s8_gemm_smlad(const GemmS8Args& g);
void s8s8_gemm_1x4c4_smlad(const GemmS8Args& g);  // any m, one activation row per pass
void s8s8_gemm_2x2c4_smlad(const GemmS8Args& g);  // m >= 2: two activation rows per pass
void s8s4_gemm_1x2c8_smlad(const GemmS8Args& g);  // packed int4 weights, any layout
void s8s8_s32_gemm_2x2c4_smlad(const GemmS32Args& g);
void s8_dwconv_smlad(const DepthwiseArgs& a);  // picks one of the two below
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

// Bytes 0 .. rem - 1 of p (rem in 1..3), zero above: the k % 4 tail of a row, read without
// touching the bytes after it.
inline uint32_t load_tail(const int8_t* p, int32_t rem) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  uint32_t v = u[0];
  if (rem > 1) v |= uint32_t{u[1]} << 8;
  if (rem > 2) v |= uint32_t{u[2]} << 16;
  return v;
}

// a + byte `Byte` (0..3) of q, zero-extended: one UXTAB with ROR (GCC 12 folds only byte 0 and
// emits UBFX + ADD for the others).
template <unsigned Byte>
inline uint32_t add_byte(uint32_t a, uint32_t q) {
  static_assert(Byte < 4, "a word has bytes 0..3");
#if TINYQUANT_RT_NATIVE_DSP
  uint32_t r;
  if (Byte == 0)
    __asm__("uxtab %0, %1, %2" : "=r"(r) : "r"(a), "r"(q));
  else if (Byte == 1)
    __asm__("uxtab %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(q));
  else if (Byte == 2)
    __asm__("uxtab %0, %1, %2, ror #16" : "=r"(r) : "r"(a), "r"(q));
  else
    __asm__("uxtab %0, %1, %2, ror #24" : "=r"(r) : "r"(a), "r"(q));
  return r;
#else
  return a + ((q >> (8 * Byte)) & 0xFFu);
#endif
}

// acc + x.hi * y.hi (SMLATT). dsp.hpp has no SMLATT; written as plain arithmetic GCC does
// select it, but also hoists a loop-invariant operand's ">> 16" out of the loop and falls
// back to ASR + MUL + MLA, so on the DSP target it is one asm instruction.
inline uint32_t smlatt(uint32_t x, uint32_t y, uint32_t acc) {
#if TINYQUANT_RT_NATIVE_DSP
  uint32_t r;
  __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
#else
  return acc +
         static_cast<uint32_t>((static_cast<int32_t>(x) >> 16) * (static_cast<int32_t>(y) >> 16));
#endif
}

// Keeps the loads of the next weight row below this point. GCC's scheduler otherwise hoists
// all of a loop body's loads to its top, which needs one more live register per row than the
// Cortex-M4 has and makes the register allocator spill accumulators inside the loop. Values
// in registers are unaffected; off the DSP target it is a no-op.
inline void order_point() {
#if TINYQUANT_RT_NATIVE_DSP
  __asm__ volatile("" ::: "memory");
#endif
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

// One output channel's requantization parameters, decoded once for every output of that channel
// a tile produces (the shift split into its left and right parts, the remainder mask).
struct Channel {
  int32_t multiplier, shift, left;
  uint32_t right, mask;
};

// Branch-free: `negative` is all ones when shift < 0, so left = max(shift, 0) and
// right = max(-shift, 0) are one AND each (shift in [kMinShift, kMaxShift]).
inline Channel channel(int32_t multiplier, int32_t shift) {
  const auto negative = static_cast<uint32_t>(shift >> 31);
  const auto left = static_cast<int32_t>(static_cast<uint32_t>(shift) & ~negative);
  const uint32_t right = (0u - static_cast<uint32_t>(shift)) & negative;  // [0, 31]
  return {multiplier, shift, left, right, (uint32_t{1} << right) - 1u};
}

// rt::requantize, bit for bit, with the double-rounding divide done in 32-bit arithmetic: the
// generic form builds its remainder mask in 64 bits, about 20 extra instructions per output
// on a Cortex-M4, which matters when K is small (depthwise: 9 MACs per output).
// round_shift is that divide: h / 2^right, ties away from zero, mask = 2^right - 1.
// remainder > threshold is taken from the sign of threshold - remainder (both below 2^31), so
// the round-up is one ADD with LSR #31 instead of a compare and two conditional moves;
// threshold - remainder = (mask >> 1) - remainder - (h >> 31), an RSB and a SUB with shifted
// operands.
inline int32_t round_shift(int32_t h, uint32_t right, uint32_t mask) {
  const uint32_t remainder = static_cast<uint32_t>(h) & mask;
  const uint32_t below = (mask >> 1) - remainder - static_cast<uint32_t>(h >> 31);
  return (h >> right) + static_cast<int32_t>(below >> 31);
}
inline int32_t requant(int32_t x, const Channel& c, Rounding rounding) {
  if (rounding == Rounding::kSingle) return requantize(x, c.multiplier, c.shift, rounding);
  return round_shift(doubling_high_mul(wrap_shl(x, c.left), c.multiplier), c.right, c.mask);
}

// The output stage's parameters, copied out of the kernel arguments once per call: kept in
// locals, the compiler need not reload them after every int8 store (an int8_t* may alias them).
struct OutStage {
  const int32_t* multiplier;
  const int32_t* shift;
  int32_t channel_mask;  // -1 per-channel, 0 per-tensor: channel index = j & channel_mask
  int32_t offset, act_min, act_max;
  Rounding rounding;
};

inline OutStage out_stage(const GemmS8Args& g) {
  return {g.multiplier, g.shift,   g.per_channel ? -1 : 0, g.c_offset, g.act_min,
          g.act_max,    g.rounding};
}

inline int8_t clamp_out(const OutStage& o, int32_t out) {
  out = out < o.act_min ? o.act_min : (out > o.act_max ? o.act_max : out);
  return static_cast<int8_t>(out);
}

// Channel j's requantization parameters.
inline Channel channel(const OutStage& o, int32_t j) {
  const int32_t ch = j & o.channel_mask;
  return channel(o.multiplier[ch], o.shift[ch]);
}

// requantize, add the output offset (wrapping), clamp: the int8 output of channel c.
inline int8_t finish(const OutStage& o, const Channel& c, uint32_t acc) {
  return clamp_out(o, wrap_add(requant(static_cast<int32_t>(acc), c, o.rounding), o.offset));
}
inline int8_t finish(const OutStage& o, int32_t j, uint32_t acc) {
  return finish(o, channel(o, j), acc);
}

}  // namespace smlad
}  // namespace tinyquant::rt::detail
