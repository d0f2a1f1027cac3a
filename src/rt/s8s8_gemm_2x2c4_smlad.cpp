// gemm with requantized int8 output, smlad path, for m >= 2 (batched fully-connected, conv):
// a 2x2 tile (two activation rows x two weight rows) with its four accumulators in registers.
//
// Each pair of activation rows is widened once into scratch (s8s8_gemm_smlad_scratch bytes,
// path_kernels.hpp): per 4 k, the SXTAB16 / SXTAB16-ROR8 pairs (a + a_offset) of row 0, then those
// of row 1, four words. The tile's inner loop then runs over every weight row pair with one
// activation pointer and no offset register: per 4 k, 2 weight loads + 4 SXTB16 + 4 activation
// loads + 8 SMLAD for 16 MACs, and only the loop bound is spilled (20 instructions; with the
// activations widened in the loop it was 29, two pointers spilled). The k % 4 tail is one more
// step: its activation words are zero past k, and its weight bytes are read one by one (never
// past the row).
// The weight offset is folded out (b_offset * activation row sum, see smlad_common.hpp).
// An odd last weight row goes through a 2x1 tile, an odd last activation row through
// s8s8_gemm_1x4c4_smlad, as does every row when no scratch is given.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

// Widens activation rows x0, x1 (k bytes each, offset added) into w: per 4 k the words
// (even, odd) of row 0, then of row 1. The tail group's halves past k are 0.
void widen_pair(const int8_t* x0, const int8_t* x1, int32_t k, uint32_t a_off, uint32_t* w) {
  for (int32_t steps = k >> 2; steps > 0; --steps) {
    const uint32_t q0 = smlad::load4(x0);
    const uint32_t q1 = smlad::load4(x1);
    x0 += 4;
    x1 += 4;
    w[0] = dsp::sxtab16(a_off, q0);
    w[1] = dsp::sxtab16<8>(a_off, q0);
    w[2] = dsp::sxtab16(a_off, q1);
    w[3] = dsp::sxtab16<8>(a_off, q1);
    w += 4;
  }
  const int32_t rem = k & 3;
  if (rem == 0) return;
  // Even word: k0 (low), k2 (high); odd word: k1 (low), k3 (high, never in a tail).
  const uint32_t even_mask = rem > 2 ? 0xFFFFFFFFu : 0x0000FFFFu;
  const uint32_t odd_mask = rem > 1 ? 0x0000FFFFu : 0u;
  const uint32_t q0 = smlad::load_tail(x0, rem);
  const uint32_t q1 = smlad::load_tail(x1, rem);
  w[0] = dsp::sxtab16(a_off, q0) & even_mask;
  w[1] = dsp::sxtab16<8>(a_off, q0) & odd_mask;
  w[2] = dsp::sxtab16(a_off, q1) & even_mask;
  w[3] = dsp::sxtab16<8>(a_off, q1) & odd_mask;
}

// b_offset * sum_k (a[k] + a_offset) of rows 0 and 1 of a widened pair (groups 4-k groups).
void offset_terms(const uint32_t* w, int32_t groups, int32_t b_offset, uint32_t* init0,
                  uint32_t* init1) {
  *init0 = 0u;
  *init1 = 0u;
  if (b_offset == 0) return;
  const uint32_t ones = 0x00010001u;
  uint32_t s0 = 0u, s1 = 0u;
  for (int32_t i = 0; i < groups; ++i, w += 4) {
    s0 = dsp::smlad(w[1], ones, dsp::smlad(w[0], ones, s0));
    s1 = dsp::smlad(w[3], ones, dsp::smlad(w[2], ones, s1));
  }
  *init0 = static_cast<uint32_t>(b_offset) * s0;
  *init1 = static_cast<uint32_t>(b_offset) * s1;
}

struct RowPair {
  const uint32_t* x;  // widened pair, see widen_pair
  int8_t* c0;
  int8_t* c1;
  uint32_t init0, init1;  // b_offset * activation row sum
};

struct Acc2x2 {
  uint32_t a00, a01, a10, a11;
};

// One 4-k step of the 2x2 tile: weight words q0, q1 (rows j, j + 1), widened pair words x.
inline void step2x2(Acc2x2& a, uint32_t q0, uint32_t q1, const uint32_t* x) {
  const uint32_t we0 = dsp::sxtb16(q0);
  const uint32_t wo0 = dsp::sxtb16<8>(q0);
  const uint32_t we1 = dsp::sxtb16(q1);
  const uint32_t wo1 = dsp::sxtb16<8>(q1);
  uint32_t xe = x[0], xo = x[1];
  a.a00 = dsp::smlad(xo, wo0, dsp::smlad(xe, we0, a.a00));
  a.a01 = dsp::smlad(xo, wo1, dsp::smlad(xe, we1, a.a01));
  xe = x[2];
  xo = x[3];
  a.a10 = dsp::smlad(xo, wo0, dsp::smlad(xe, we0, a.a10));
  a.a11 = dsp::smlad(xo, wo1, dsp::smlad(xe, we1, a.a11));
}

inline void tile2x2(const GemmS8Args& g, const smlad::OutStage& o, const RowPair& r, int32_t j) {
  const ptrdiff_t ldb = g.ldb;
  const int8_t* __restrict w0 = g.b + j * ldb;
  const int8_t* __restrict w1 = w0 + ldb;
  const uint32_t* __restrict x = r.x;
  const uint32_t b0 = smlad::bias_at(g, j);
  const uint32_t b1 = smlad::bias_at(g, j + 1);
  Acc2x2 a{r.init0 + b0, r.init0 + b1, r.init1 + b0, r.init1 + b1};
  const uint32_t* const x_end = x + 4 * (g.k >> 2);
  for (; x != x_end; x += 4) {
    const uint32_t q0 = smlad::load4(w0);
    const uint32_t q1 = smlad::load4(w1);
    w0 += 4;
    w1 += 4;
    step2x2(a, q0, q1, x);
  }
  const int32_t rem = g.k & 3;
  if (rem != 0) step2x2(a, smlad::load_tail(w0, rem), smlad::load_tail(w1, rem), x);
  // Each channel's parameters are decoded once for both rows (an int8 store may alias them).
  const smlad::Channel ch0 = smlad::channel(o, j);
  r.c0[j] = smlad::finish(o, ch0, a.a00);
  r.c1[j] = smlad::finish(o, ch0, a.a10);
  const smlad::Channel ch1 = smlad::channel(o, j + 1);
  r.c0[j + 1] = smlad::finish(o, ch1, a.a01);
  r.c1[j + 1] = smlad::finish(o, ch1, a.a11);
}

inline void step2x1(uint32_t& a0, uint32_t& a1, uint32_t q, const uint32_t* x) {
  const uint32_t we = dsp::sxtb16(q);
  const uint32_t wo = dsp::sxtb16<8>(q);
  a0 = dsp::smlad(x[1], wo, dsp::smlad(x[0], we, a0));
  a1 = dsp::smlad(x[3], wo, dsp::smlad(x[2], we, a1));
}

inline void tile2x1(const GemmS8Args& g, const smlad::OutStage& o, const RowPair& r, int32_t j) {
  const int8_t* __restrict w0 = g.b + j * static_cast<ptrdiff_t>(g.ldb);
  const uint32_t* __restrict x = r.x;
  const uint32_t b0 = smlad::bias_at(g, j);
  uint32_t a0 = r.init0 + b0, a1 = r.init1 + b0;
  const uint32_t* const x_end = x + 4 * (g.k >> 2);
  for (; x != x_end; x += 4) {
    const uint32_t q = smlad::load4(w0);
    w0 += 4;
    step2x1(a0, a1, q, x);
  }
  const int32_t rem = g.k & 3;
  if (rem != 0) step2x1(a0, a1, smlad::load_tail(w0, rem), x);
  const smlad::Channel ch = smlad::channel(o, j);
  r.c0[j] = smlad::finish(o, ch, a0);
  r.c1[j] = smlad::finish(o, ch, a1);
}

}  // namespace

void s8s8_gemm_2x2c4_smlad(const GemmS8Args& g) {
  if (g.scratch == nullptr) {
    s8s8_gemm_1x4c4_smlad(g);
    return;
  }
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const smlad::OutStage o = smlad::out_stage(g);
  const ptrdiff_t lda = g.lda, ldc = g.ldc;
  auto* const pair = static_cast<uint32_t*>(g.scratch);
  int32_t i = 0;
  for (; i + 2 <= g.m; i += 2) {
    const int8_t* x0 = g.a + i * lda;
    widen_pair(x0, x0 + lda, g.k, a_off, pair);
    RowPair r;
    r.x = pair;
    r.c0 = g.c + i * ldc;
    r.c1 = r.c0 + ldc;
    offset_terms(pair, (g.k + 3) >> 2, g.b_offset, &r.init0, &r.init1);
    int32_t j = 0;
    for (; j + 2 <= g.n; j += 2) tile2x2(g, o, r, j);
    if (j < g.n) tile2x1(g, o, r, j);
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
