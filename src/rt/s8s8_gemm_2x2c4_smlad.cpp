// gemm with requantized int8 output, smlad path, for m >= 2 (batched fully-connected, conv):
// a 2x2 tile (two activation rows x two weight rows) with its four accumulators in registers,
// so each widened weight word serves two activation rows and each widened activation word two
// weight rows. Per 4 k: 2 activation + 2 weight loads, 8 SXTB16/SXTAB16, 8 SMLAD for 16 MACs.
// The weight offset is folded out (b_offset * activation row sum, see smlad_common.hpp).
// k % 4 tail with SMLABB; an odd last weight row goes through a 2x1 tile and an odd last
// activation row through s8s8_gemm_1x4c4_smlad.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

struct RowPair {
  const int8_t* x0;
  const int8_t* x1;
  int8_t* c0;
  int8_t* c1;
  uint32_t init0, init1;  // b_offset * activation row sum
};

inline void tile2x2(const GemmS8Args& g, const smlad::OutStage& o, const RowPair& r, int32_t j,
                    uint32_t a_off) {
  const ptrdiff_t ldb = g.ldb;
  const int8_t* __restrict w0 = g.b + j * ldb;
  const int8_t* __restrict w1 = w0 + ldb;
  const int8_t* __restrict x0 = r.x0;
  const int8_t* __restrict x1 = r.x1;
  const uint32_t b0 = smlad::bias_at(g, j);
  const uint32_t b1 = smlad::bias_at(g, j + 1);
  uint32_t acc00 = r.init0 + b0, acc01 = r.init0 + b1;
  uint32_t acc10 = r.init1 + b0, acc11 = r.init1 + b1;
  for (int32_t steps = g.k >> 2; steps > 0; --steps) {
    uint32_t w = smlad::load4(w0);
    w0 += 4;
    const uint32_t we0 = dsp::sxtb16(w);
    const uint32_t wo0 = smlad::sxtb16_ror8(w);
    w = smlad::load4(w1);
    w1 += 4;
    const uint32_t we1 = dsp::sxtb16(w);
    const uint32_t wo1 = smlad::sxtb16_ror8(w);
    uint32_t q = smlad::load4(x0);
    x0 += 4;
    uint32_t xv = dsp::sxtab16(a_off, q);
    acc00 = dsp::smlad(xv, we0, acc00);
    acc01 = dsp::smlad(xv, we1, acc01);
    xv = smlad::sxtab16_ror8(a_off, q);
    acc00 = dsp::smlad(xv, wo0, acc00);
    acc01 = dsp::smlad(xv, wo1, acc01);
    q = smlad::load4(x1);
    x1 += 4;
    xv = dsp::sxtab16(a_off, q);
    acc10 = dsp::smlad(xv, we0, acc10);
    acc11 = dsp::smlad(xv, we1, acc11);
    xv = smlad::sxtab16_ror8(a_off, q);
    acc10 = dsp::smlad(xv, wo0, acc10);
    acc11 = dsp::smlad(xv, wo1, acc11);
  }
  for (int32_t t = g.k & 3; t > 0; --t) {
    const auto wv0 = static_cast<uint32_t>(int32_t{*w0++});
    const auto wv1 = static_cast<uint32_t>(int32_t{*w1++});
    const auto xv0 = static_cast<uint32_t>(*x0++ + g.a_offset);
    const auto xv1 = static_cast<uint32_t>(*x1++ + g.a_offset);
    acc00 = dsp::smlabb(xv0, wv0, acc00);
    acc01 = dsp::smlabb(xv0, wv1, acc01);
    acc10 = dsp::smlabb(xv1, wv0, acc10);
    acc11 = dsp::smlabb(xv1, wv1, acc11);
  }
  r.c0[j] = smlad::finish(o, j, acc00);
  r.c0[j + 1] = smlad::finish(o, j + 1, acc01);
  r.c1[j] = smlad::finish(o, j, acc10);
  r.c1[j + 1] = smlad::finish(o, j + 1, acc11);
}

inline void tile2x1(const GemmS8Args& g, const smlad::OutStage& o, const RowPair& r, int32_t j,
                    uint32_t a_off) {
  const int8_t* __restrict w0 = g.b + j * static_cast<ptrdiff_t>(g.ldb);
  const int8_t* __restrict x0 = r.x0;
  const int8_t* __restrict x1 = r.x1;
  const uint32_t b0 = smlad::bias_at(g, j);
  uint32_t acc00 = r.init0 + b0, acc10 = r.init1 + b0;
  for (int32_t steps = g.k >> 2; steps > 0; --steps) {
    const uint32_t w = smlad::load4(w0);
    w0 += 4;
    const uint32_t q0 = smlad::load4(x0);
    x0 += 4;
    const uint32_t q1 = smlad::load4(x1);
    x1 += 4;
    const uint32_t we = dsp::sxtb16(w);
    const uint32_t wo = smlad::sxtb16_ror8(w);
    acc00 = dsp::smlad(dsp::sxtab16(a_off, q0), we, acc00);
    acc00 = dsp::smlad(smlad::sxtab16_ror8(a_off, q0), wo, acc00);
    acc10 = dsp::smlad(dsp::sxtab16(a_off, q1), we, acc10);
    acc10 = dsp::smlad(smlad::sxtab16_ror8(a_off, q1), wo, acc10);
  }
  for (int32_t t = g.k & 3; t > 0; --t) {
    const auto wv0 = static_cast<uint32_t>(int32_t{*w0++});
    acc00 = dsp::smlabb(static_cast<uint32_t>(*x0++ + g.a_offset), wv0, acc00);
    acc10 = dsp::smlabb(static_cast<uint32_t>(*x1++ + g.a_offset), wv0, acc10);
  }
  r.c0[j] = smlad::finish(o, j, acc00);
  r.c1[j] = smlad::finish(o, j, acc10);
}

uint32_t offset_term(const GemmS8Args& g, const int8_t* x) {
  if (g.b_offset == 0) return 0u;
  return static_cast<uint32_t>(g.b_offset) *
         static_cast<uint32_t>(smlad::row_sum(x, g.k, g.a_offset));
}

}  // namespace

void s8s8_gemm_2x2c4_smlad(const GemmS8Args& g) {
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const smlad::OutStage o = smlad::out_stage(g);
  const ptrdiff_t lda = g.lda, ldc = g.ldc;
  int32_t i = 0;
  for (; i + 2 <= g.m; i += 2) {
    RowPair r;
    r.x0 = g.a + i * lda;
    r.x1 = r.x0 + lda;
    r.c0 = g.c + i * ldc;
    r.c1 = r.c0 + ldc;
    r.init0 = offset_term(g, r.x0);
    r.init1 = offset_term(g, r.x1);
    int32_t j = 0;
    for (; j + 2 <= g.n; j += 2) tile2x2(g, o, r, j, a_off);
    if (j < g.n) tile2x1(g, o, r, j, a_off);
  }
  if (i < g.m) {
    GemmS8Args last = g;
    last.m = 1;
    last.a = g.a + i * lda;
    last.c = g.c + i * ldc;
    s8s8_gemm_1x4c4_smlad(last);
  }
}

}  // namespace tinyquant::rt::detail
