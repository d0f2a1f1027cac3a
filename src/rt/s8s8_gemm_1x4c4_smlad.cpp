// gemm with requantized int8 output, smlad path, one activation row per pass (GEMV when m == 1):
// four weight rows share each widened activation word, their accumulators stay in registers.
// Per 4 k: one activation load widened with its offset (LDR + 2 SXTAB16), then per weight row
// LDR + SXTB16 + SXTB16-ROR8 + 2 SMLAD, i.e. about 1.4 instructions per MAC with 4 rows.
// The weight offset is folded out (b_offset * sum of the activation row, see smlad_common.hpp).
// k % 4 tail: one more step of the same arithmetic on pairs widened once per activation row (see
// Tail); n % 4 rows one at a time. 32-bit counters and pointer steps only.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

// The k % 4 (1..3) last activations of a row, widened with the offset once per row into pairs
// that are zero past k, so each weight row's tail is one more step of the loop body: its word
// is read whole where that stays inside the weight array (the bytes past k meet zero
// activations) and byte by byte otherwise.
struct Tail {
  smlad::Pairs x;
  int32_t rem;         // k % 4
  int32_t whole_rows;  // rows r < whole_rows can read their tail as one word
};

inline Tail make_tail(const GemmS8Args& g) {
  Tail t{{0u, 0u}, g.k & 3, 0};
  if (t.rem != 0 && g.n > 0 && g.ldb > 0) {
    // Row r's tail word ends at r * ldb + k - rem + 4, inside the array while that is at most
    // (n - 1) * ldb + k: r <= ((n - 1) * ldb + rem - 4) / ldb.
    const ptrdiff_t room = (g.n - 1) * static_cast<ptrdiff_t>(g.ldb) + t.rem - 4;
    t.whole_rows = room < 0 ? 0 : static_cast<int32_t>(room / g.ldb) + 1;
  }
  return t;
}

// Row x's tail pairs (t.rem != 0).
inline void widen_tail(Tail& t, const int8_t* x, int32_t k, int32_t offset) {
  uint32_t h[4] = {0u, 0u, 0u, 0u};
  for (int32_t i = 0; i < t.rem; ++i)
    h[i] = static_cast<uint32_t>(x[k - t.rem + i] + offset) & 0xFFFFu;
  t.x = {h[0] | (h[2] << 16), h[1] | (h[3] << 16)};
}

// t, read from memory where it is used: on the DSP target the compiler cannot tell the copied
// reference from the original, so it does not keep t's fields in registers across the main
// loop (at -Os GCC did, and spilled accumulators and pointers inside it).
inline const Tail& reload(const Tail& t) {
  const Tail* p = &t;
#if TINYQUANT_RT_NATIVE_DSP
  __asm__("" : "+r"(p));
#endif
  return *p;
}

// acc + the four-term dot product of widened activation pairs x and the weight word w.
inline uint32_t dot4(const smlad::Pairs& x, uint32_t w, uint32_t acc) {
  acc = dsp::smlad(x.even, dsp::sxtb16(w), acc);
  return dsp::smlad(x.odd, dsp::sxtb16<8>(w), acc);
}

// A weight row's tail word: read whole (Whole: the read stays inside the weight array) or the
// first rem bytes, zero above.
template <bool Whole>
inline uint32_t tail_word(const int8_t* p, int32_t rem) {
  return Whole ? smlad::load4(p) : smlad::load_tail(p, rem);
}

// The tails of weight rows w0, w0 + ldb, w2, w2 + ldb.
template <bool Whole>
inline void tail4(const Tail& t, const int8_t* w0, const int8_t* w2, ptrdiff_t ldb,
                  uint32_t (&acc)[4]) {
  acc[0] = dot4(t.x, tail_word<Whole>(w0, t.rem), acc[0]);
  acc[1] = dot4(t.x, tail_word<Whole>(w0 + ldb, t.rem), acc[1]);
  acc[2] = dot4(t.x, tail_word<Whole>(w2, t.rem), acc[2]);
  acc[3] = dot4(t.x, tail_word<Whole>(w2 + ldb, t.rem), acc[3]);
}

// Weight rows j .. j + 3 against activation row x; acc_init = bias-free offset term.
inline void quad(const GemmS8Args& g, const smlad::OutStage& o, const Tail& tail,
                 const int8_t* __restrict x, int8_t* __restrict c, int32_t j, uint32_t a_off,
                 uint32_t init) {
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
    const uint32_t xo = dsp::sxtab16<8>(a_off, q);
    uint32_t w = smlad::load4(w0);
    acc0 = dsp::smlad(xe, dsp::sxtb16(w), acc0);
    acc0 = dsp::smlad(xo, dsp::sxtb16<8>(w), acc0);
    smlad::order_point();
    w = smlad::load4(w0 + ldb);
    w0 += 4;
    acc1 = dsp::smlad(xe, dsp::sxtb16(w), acc1);
    acc1 = dsp::smlad(xo, dsp::sxtb16<8>(w), acc1);
    smlad::order_point();
    w = smlad::load4(w2);
    acc2 = dsp::smlad(xe, dsp::sxtb16(w), acc2);
    acc2 = dsp::smlad(xo, dsp::sxtb16<8>(w), acc2);
    smlad::order_point();
    w = smlad::load4(w2 + ldb);
    w2 += 4;
    acc3 = dsp::smlad(xe, dsp::sxtb16(w), acc3);
    acc3 = dsp::smlad(xo, dsp::sxtb16<8>(w), acc3);
  }
  uint32_t acc[4] = {acc0, acc1, acc2, acc3};
  const Tail& t = reload(tail);
  if (t.rem != 0) {
    if (j + 3 < t.whole_rows)
      tail4<true>(t, w0, w2, ldb, acc);
    else
      tail4<false>(t, w0, w2, ldb, acc);
  }
  c[j] = smlad::finish(o, j, acc[0]);
  c[j + 1] = smlad::finish(o, j + 1, acc[1]);
  c[j + 2] = smlad::finish(o, j + 2, acc[2]);
  c[j + 3] = smlad::finish(o, j + 3, acc[3]);
}

inline void single(const GemmS8Args& g, const smlad::OutStage& o, const Tail& tail,
                   const int8_t* __restrict x, int8_t* __restrict c, int32_t j, uint32_t a_off,
                   uint32_t init) {
  const int8_t* __restrict w0 = g.b + j * static_cast<ptrdiff_t>(g.ldb);
  uint32_t acc0 = init + smlad::bias_at(g, j);
  for (int32_t steps = g.k >> 2; steps > 0; --steps) {
    const uint32_t q = smlad::load4(x);
    x += 4;
    const uint32_t w = smlad::load4(w0);
    w0 += 4;
    acc0 = dsp::smlad(dsp::sxtab16(a_off, q), dsp::sxtb16(w), acc0);
    acc0 = dsp::smlad(dsp::sxtab16<8>(a_off, q), dsp::sxtb16<8>(w), acc0);
  }
  if (tail.rem != 0) {
    const uint32_t w =
        j < tail.whole_rows ? tail_word<true>(w0, tail.rem) : tail_word<false>(w0, tail.rem);
    acc0 = dot4(tail.x, w, acc0);
  }
  c[j] = smlad::finish(o, j, acc0);
}

}  // namespace

void s8s8_gemm_1x4c4_smlad(const GemmS8Args& g) {
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const smlad::OutStage o = smlad::out_stage(g);
  Tail tail = make_tail(g);
  for (int32_t i = 0; i < g.m; ++i) {
    const int8_t* x = g.a + i * static_cast<ptrdiff_t>(g.lda);
    int8_t* c = g.c + i * static_cast<ptrdiff_t>(g.ldc);
    const uint32_t init = g.b_offset != 0
                              ? static_cast<uint32_t>(g.b_offset) *
                                    static_cast<uint32_t>(smlad::row_sum(x, g.k, g.a_offset))
                              : 0u;
    if (tail.rem != 0) widen_tail(tail, x, g.k, g.a_offset);
    int32_t j = 0;
    for (; j + 4 <= g.n; j += 4) quad(g, o, tail, x, c, j, a_off, init);
    for (; j < g.n; ++j) single(g, o, tail, x, c, j, a_off, init);
  }
}

}  // namespace tinyquant::rt::detail
