// gemm with requantized int8 output, smlad path: 2x2 output tile, 4 k per step (two SMLADs per
// output per step), scalar SMLABB tail for k % 4, 1-wide tiles for odd m and n. int8 or packed
// int4 weights. Requantization through rt::requantize, as in CMSIS-NN.
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::rt::detail {
namespace {

template <int MR, int NR>
void tile(const GemmS8Args& g, int32_t i0, int32_t j0) {
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const uint32_t b_off = smlad::offset_pair(g.b_offset);
  const int8_t* a_row[MR];
  for (int r = 0; r < MR; ++r) a_row[r] = g.a + int64_t{i0 + r} * g.lda;
  uint32_t acc[MR][NR];
  for (int c = 0; c < NR; ++c) {
    const uint32_t init = g.bias != nullptr ? static_cast<uint32_t>(g.bias[j0 + c]) : 0u;
    for (int r = 0; r < MR; ++r) acc[r][c] = init;
  }
  int32_t k = 0;
  for (; k + 4 <= g.k; k += 4) {
    smlad::Pairs a[MR];
    for (int r = 0; r < MR; ++r) a[r] = smlad::widen4(a_row[r] + k, a_off);
    for (int c = 0; c < NR; ++c) {
      const int64_t col = int64_t{j0 + c};
      const smlad::Pairs b =
          g.b_s4 != nullptr
              ? smlad::widen4_s4(g.b_s4, g.b_s4_first_nibble + col * g.k + k, g.b_offset)
              : smlad::widen4(g.b + col * g.ldb + k, b_off);
      for (int r = 0; r < MR; ++r) {
        acc[r][c] = dsp::smlad(a[r].even, b.even, acc[r][c]);
        acc[r][c] = dsp::smlad(a[r].odd, b.odd, acc[r][c]);
      }
    }
  }
  for (; k < g.k; ++k) {
    for (int c = 0; c < NR; ++c) {
      const int64_t col = int64_t{j0 + c};
      const int32_t w =
          (g.b_s4 != nullptr ? smlad::nibble_at(g.b_s4, g.b_s4_first_nibble + col * g.k + k)
                             : g.b[col * g.ldb + k]) +
          g.b_offset;
      for (int r = 0; r < MR; ++r) {
        const int32_t x = a_row[r][k] + g.a_offset;
        acc[r][c] = dsp::smlabb(static_cast<uint32_t>(x), static_cast<uint32_t>(w), acc[r][c]);
      }
    }
  }
  for (int c = 0; c < NR; ++c) {
    const int32_t ch = g.per_channel ? j0 + c : 0;
    for (int r = 0; r < MR; ++r) {
      int32_t out =
          requantize(static_cast<int32_t>(acc[r][c]), g.multiplier[ch], g.shift[ch], g.rounding);
      out = wrap_add(out, g.c_offset);
      out = out < g.act_min ? g.act_min : (out > g.act_max ? g.act_max : out);
      g.c[int64_t{i0 + r} * g.ldc + j0 + c] = static_cast<int8_t>(out);
    }
  }
}

}  // namespace

void s8s8_gemm_2x2c4_smlad(const GemmS8Args& g) {
  int32_t i = 0;
  for (; i + 2 <= g.m; i += 2) {
    int32_t j = 0;
    for (; j + 2 <= g.n; j += 2) tile<2, 2>(g, i, j);
    if (j < g.n) tile<2, 1>(g, i, j);
  }
  if (i < g.m) {
    int32_t j = 0;
    for (; j + 2 <= g.n; j += 2) tile<1, 2>(g, i, j);
    if (j < g.n) tile<1, 1>(g, i, j);
  }
}

}  // namespace tinyquant::rt::detail
