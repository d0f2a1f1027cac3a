// gemm with requantized int8 output, smlad path, one activation row per pass (GEMV when m == 1):
// four weight rows share each widened activation word, their accumulators stay in registers.
// Per 4 k: one activation load widened with its offset (LDR + 2 SXTAB16), then per weight row
// LDR + SXTB16 + SXTB16-ROR8 + 2 SMLAD, i.e. about 1.4 instructions per MAC with 4 rows.
// The weight offset is folded out (b_offset * sum of the activation row, see smlad_common.hpp).
// k % 4 tail with SMLABB; n % 4 rows one at a time. 32-bit counters and pointer steps only.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

// Weight rows j .. j + 3 against activation row x; acc_init = bias-free offset term.
inline void quad(const GemmS8Args& g, const smlad::OutStage& o, const int8_t* __restrict x,
                 int8_t* __restrict c, int32_t j, uint32_t a_off, uint32_t init) {
  // Two row pointers and the row stride (register-offset loads) instead of four pointers: the
  // Cortex-M4 has 14 allocatable registers and this loop needs all of them.
  const ptrdiff_t ldb = g.ldb;
  const int8_t* __restrict w0 = g.b + j * ldb;
  const int8_t* __restrict w2 = w0 + 2 * ldb;
  uint32_t acc0 = init + smlad::bias_at(g, j);
  uint32_t acc1 = init + smlad::bias_at(g, j + 1);
  uint32_t acc2 = init + smlad::bias_at(g, j + 2);
  uint32_t acc3 = init + smlad::bias_at(g, j + 3);
  for (int32_t steps = g.k >> 2; steps > 0; --steps) {
    const uint32_t q = smlad::load4(x);
    x += 4;
    const uint32_t xe = dsp::sxtab16(a_off, q);
    const uint32_t xo = smlad::sxtab16_ror8(a_off, q);
    uint32_t w = smlad::load4(w0);
    acc0 = dsp::smlad(xe, dsp::sxtb16(w), acc0);
    acc0 = dsp::smlad(xo, smlad::sxtb16_ror8(w), acc0);
    smlad::order_point();
    w = smlad::load4(w0 + ldb);
    w0 += 4;
    acc1 = dsp::smlad(xe, dsp::sxtb16(w), acc1);
    acc1 = dsp::smlad(xo, smlad::sxtb16_ror8(w), acc1);
    smlad::order_point();
    w = smlad::load4(w2);
    acc2 = dsp::smlad(xe, dsp::sxtb16(w), acc2);
    acc2 = dsp::smlad(xo, smlad::sxtb16_ror8(w), acc2);
    smlad::order_point();
    w = smlad::load4(w2 + ldb);
    w2 += 4;
    acc3 = dsp::smlad(xe, dsp::sxtb16(w), acc3);
    acc3 = dsp::smlad(xo, smlad::sxtb16_ror8(w), acc3);
  }
  const int8_t* __restrict w1 = w0 + ldb;
  const int8_t* __restrict w3 = w2 + ldb;
  for (int32_t t = g.k & 3; t > 0; --t) {
    const auto xv = static_cast<uint32_t>(*x++ + g.a_offset);
    acc0 = dsp::smlabb(xv, static_cast<uint32_t>(int32_t{*w0++}), acc0);
    acc1 = dsp::smlabb(xv, static_cast<uint32_t>(int32_t{*w1++}), acc1);
    acc2 = dsp::smlabb(xv, static_cast<uint32_t>(int32_t{*w2++}), acc2);
    acc3 = dsp::smlabb(xv, static_cast<uint32_t>(int32_t{*w3++}), acc3);
  }
  c[j] = smlad::finish(o, j, acc0);
  c[j + 1] = smlad::finish(o, j + 1, acc1);
  c[j + 2] = smlad::finish(o, j + 2, acc2);
  c[j + 3] = smlad::finish(o, j + 3, acc3);
}

inline void single(const GemmS8Args& g, const smlad::OutStage& o, const int8_t* __restrict x,
                   int8_t* __restrict c, int32_t j, uint32_t a_off, uint32_t init) {
  const int8_t* __restrict w0 = g.b + j * static_cast<ptrdiff_t>(g.ldb);
  uint32_t acc0 = init + smlad::bias_at(g, j);
  for (int32_t steps = g.k >> 2; steps > 0; --steps) {
    const uint32_t q = smlad::load4(x);
    x += 4;
    const uint32_t w = smlad::load4(w0);
    w0 += 4;
    acc0 = dsp::smlad(dsp::sxtab16(a_off, q), dsp::sxtb16(w), acc0);
    acc0 = dsp::smlad(smlad::sxtab16_ror8(a_off, q), smlad::sxtb16_ror8(w), acc0);
  }
  for (int32_t t = g.k & 3; t > 0; --t) {
    const auto xv = static_cast<uint32_t>(*x++ + g.a_offset);
    acc0 = dsp::smlabb(xv, static_cast<uint32_t>(int32_t{*w0++}), acc0);
  }
  c[j] = smlad::finish(o, j, acc0);
}

}  // namespace

void s8s8_gemm_1x4c4_smlad(const GemmS8Args& g) {
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const smlad::OutStage o = smlad::out_stage(g);
  for (int32_t i = 0; i < g.m; ++i) {
    const int8_t* x = g.a + i * static_cast<ptrdiff_t>(g.lda);
    int8_t* c = g.c + i * static_cast<ptrdiff_t>(g.ldc);
    const uint32_t init = g.b_offset != 0
                              ? static_cast<uint32_t>(g.b_offset) *
                                    static_cast<uint32_t>(smlad::row_sum(x, g.k, g.a_offset))
                              : 0u;
    int32_t j = 0;
    for (; j + 4 <= g.n; j += 4) quad(g, o, x, c, j, a_off, init);
    for (; j < g.n; ++j) single(g, o, x, c, j, a_off, init);
  }
}

}  // namespace tinyquant::rt::detail
