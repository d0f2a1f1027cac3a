// gemm with raw int32 accumulators (gemm_s8s8_s32), smlad path: 2x2 output tile, 4 k per step,
// SMLABB tail for k % 4, 1-wide tiles for odd m and n. Accumulation wraps like SMLAD.
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

template <int MR, int NR>
void tile(const GemmS32Args& g, int32_t i0, int32_t j0) {
  const uint32_t a_off = smlad::offset_pair(g.a_offset);
  const uint32_t b_off = smlad::offset_pair(g.b_offset);
  const int8_t* a_row[MR];
  const int8_t* b_row[NR];
  for (int r = 0; r < MR; ++r) a_row[r] = g.a + int64_t{i0 + r} * g.lda;
  for (int c = 0; c < NR; ++c) b_row[c] = g.b + int64_t{j0 + c} * g.ldb;
  uint32_t acc[MR][NR];
  for (int r = 0; r < MR; ++r) {
    for (int c = 0; c < NR; ++c) {
      uint32_t init = 0;
      if (g.row_add != nullptr) init += static_cast<uint32_t>(g.row_add[i0 + r]);
      if (g.col_add != nullptr) init += static_cast<uint32_t>(g.col_add[j0 + c]);
      acc[r][c] = init;
    }
  }
  int32_t k = 0;
  for (; k + 4 <= g.k; k += 4) {
    smlad::Pairs a[MR];
    for (int r = 0; r < MR; ++r) a[r] = smlad::widen4(a_row[r] + k, a_off);
    for (int c = 0; c < NR; ++c) {
      const smlad::Pairs b = smlad::widen4(b_row[c] + k, b_off);
      for (int r = 0; r < MR; ++r) {
        acc[r][c] = dsp::smlad(a[r].even, b.even, acc[r][c]);
        acc[r][c] = dsp::smlad(a[r].odd, b.odd, acc[r][c]);
      }
    }
  }
  for (; k < g.k; ++k) {
    for (int c = 0; c < NR; ++c) {
      const auto w = static_cast<uint32_t>(b_row[c][k] + g.b_offset);
      for (int r = 0; r < MR; ++r) {
        const auto x = static_cast<uint32_t>(a_row[r][k] + g.a_offset);
        acc[r][c] = dsp::smlabb(x, w, acc[r][c]);
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    for (int c = 0; c < NR; ++c) {
      g.c[int64_t{i0 + r} * g.ldc + j0 + c] = static_cast<int32_t>(acc[r][c]);
    }
  }
}

}  // namespace

void s8s8_s32_gemm_2x2c4_smlad(const GemmS32Args& g) {
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
