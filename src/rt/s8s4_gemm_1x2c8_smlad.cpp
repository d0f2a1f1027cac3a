// gemm with requantized int8 output, smlad path, packed int4 weights (two per byte, low nibble
// first), one activation row per pass against two weight rows at a time, 8 k per step. Eight
// nibbles come from one 32-bit load:
//   hi = w & 0xF0F0F0F0          bytes n1<<4, n3<<4, n5<<4, n7<<4
//   lo = (w << 4) & 0xF0F0F0F0   bytes n0<<4, n2<<4, n4<<4, n6<<4
// and SXTB16 / SXTB16-ROR8 of each give 16 * (n0, n4), (n2, n6), (n1, n5), (n3, n7) exactly,
// so 8 MACs cost LDR + 2 AND + 4 SXTB16 + 4 SMLAD per weight row. The activations are widened
// with their offset and repacked once per pass into the matching pairs (a0, a4) ... (a3, a7).
// The accumulator holds 16x the dot product; it is shifted back (exact while |dot| < 2^27,
// guaranteed by k < 2^16) before the bias and the folded
// weight-offset term are added with 32-bit wrap-around, as the reference does.
// Two rows rather than four: the four repacked activation pairs, the accumulators, the weight
// pointers and the unpacking temporaries of two rows already fill the Cortex-M4's registers.
// k % 8 tail nibble by nibble with SMLABB. Odd k (rows starting mid-byte), a stream starting
// mid-byte (a conv group) and k >= 2^16 take a plain nibble-by-nibble loop instead.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr uint32_t kHighNibbles = 0xF0F0F0F0u;

struct Quad {
  uint32_t x04, x26, x15, x37;
};

inline Quad widen8(const int8_t* x, uint32_t a_off) {
  const uint32_t q0 = smlad::load4(x);
  const uint32_t q1 = smlad::load4(x + 4);
  const uint32_t e0 = dsp::sxtab16(a_off, q0);     // (a0, a2)
  const uint32_t e1 = dsp::sxtab16(a_off, q1);     // (a4, a6)
  const uint32_t o0 = dsp::sxtab16<8>(a_off, q0);  // (a1, a3)
  const uint32_t o1 = dsp::sxtab16<8>(a_off, q1);  // (a5, a7)
  return {dsp::pkhbt<16>(e0, e1), dsp::pkhtb<16>(e1, e0), dsp::pkhbt<16>(o0, o1),
          dsp::pkhtb<16>(o1, o0)};
}

inline uint32_t dot8(const Quad& x, uint32_t w, uint32_t acc) {
  const uint32_t hi = w & kHighNibbles;
  const uint32_t lo = (w << 4) & kHighNibbles;
  acc = dsp::smlad(x.x04, dsp::sxtb16(lo), acc);
  acc = dsp::smlad(x.x26, dsp::sxtb16<8>(lo), acc);
  acc = dsp::smlad(x.x15, dsp::sxtb16(hi), acc);
  acc = dsp::smlad(x.x37, dsp::sxtb16<8>(hi), acc);
  return acc;
}

// The k % 8 tail of one row, from byte `w` on, into an unscaled accumulator.
inline uint32_t tail(const GemmS8Args& g, const int8_t* x, const uint8_t* w, uint32_t acc) {
  for (int32_t t = 0; t < (g.k & 7); ++t) {
    const auto xv = static_cast<uint32_t>(x[t] + g.a_offset);
    acc = dsp::smlabb(xv, static_cast<uint32_t>(smlad::nibble_at(w, t)), acc);
  }
  return acc;
}

inline uint32_t unscale(uint32_t acc16) {
  return static_cast<uint32_t>(static_cast<int32_t>(acc16) >> 4);
}

// Any layout (odd k, a stream starting mid-byte, k >= 2^16): nibble by nibble with SMLABB.
void any_layout(const GemmS8Args& g) {
  const smlad::OutStage o = smlad::out_stage(g);
  for (int32_t i = 0; i < g.m; ++i) {
    const int8_t* x = g.a + i * static_cast<ptrdiff_t>(g.lda);
    int8_t* c = g.c + i * static_cast<ptrdiff_t>(g.ldc);
    for (int32_t j = 0; j < g.n; ++j) {
      uint32_t acc = smlad::bias_at(g, j);
      // Nibble index of (j, 0); the stream of a valid call is shorter than 2^31 nibbles.
      const int32_t first = g.b_s4_first_nibble + j * g.k;
      for (int32_t t = 0; t < g.k; ++t) {
        const auto xv = static_cast<uint32_t>(x[t] + g.a_offset);
        const auto wv = static_cast<uint32_t>(smlad::nibble_at(g.b_s4, first + t) + g.b_offset);
        acc = dsp::smlabb(xv, wv, acc);
      }
      c[j] = smlad::finish(o, j, acc);
    }
  }
}

}  // namespace

void s8s4_gemm_1x2c8_smlad(const GemmS8Args& g) {
  if (g.b_s4_first_nibble != 0 || (g.k & 1) != 0 || g.k >= 65536) {
    any_layout(g);
    return;
  }
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const smlad::OutStage o = smlad::out_stage(g);
  const ptrdiff_t row_bytes = g.k >> 1;
  const int32_t k8 = g.k & ~7;
  for (int32_t i = 0; i < g.m; ++i) {
    const int8_t* x = g.a + i * static_cast<ptrdiff_t>(g.lda);
    int8_t* c = g.c + i * static_cast<ptrdiff_t>(g.ldc);
    const uint32_t init = g.b_offset != 0
                              ? static_cast<uint32_t>(g.b_offset) *
                                    static_cast<uint32_t>(smlad::row_sum(x, g.k, g.a_offset))
                              : 0u;
    int32_t j = 0;
    for (; j + 2 <= g.n; j += 2) {
      const uint8_t* __restrict w0 = g.b_s4 + j * row_bytes;
      const uint8_t* __restrict w1 = w0 + row_bytes;
      const int8_t* __restrict xp = x;
      uint32_t acc0 = 0, acc1 = 0;
      for (int32_t steps = g.k >> 3; steps > 0; --steps) {
        const Quad xq = widen8(xp, a_off);
        xp += 8;
        acc0 = dot8(xq, smlad::load4(w0), acc0);
        w0 += 4;
        acc1 = dot8(xq, smlad::load4(w1), acc1);
        w1 += 4;
      }
      acc0 = tail(g, x + k8, w0, unscale(acc0) + init + smlad::bias_at(g, j));
      acc1 = tail(g, x + k8, w1, unscale(acc1) + init + smlad::bias_at(g, j + 1));
      c[j] = smlad::finish(o, j, acc0);
      c[j + 1] = smlad::finish(o, j + 1, acc1);
    }
    if (j < g.n) {
      const uint8_t* __restrict w0 = g.b_s4 + j * row_bytes;
      const int8_t* __restrict xp = x;
      uint32_t acc0 = 0;
      for (int32_t steps = g.k >> 3; steps > 0; --steps) {
        acc0 = dot8(widen8(xp, a_off), smlad::load4(w0), acc0);
        xp += 8;
        w0 += 4;
      }
      acc0 = tail(g, x + k8, w0, unscale(acc0) + init + smlad::bias_at(g, j));
      c[j] = smlad::finish(o, j, acc0);
    }
  }
}

}  // namespace tinyquant::rt::detail
