// AArch64 Advanced SIMD path: s8 x s8 (and s8 x s4) GEMM on SMULL + SADALP, baseline ARMv8-A.
//
// Micro-kernels 4x4c16 (m > 1) and 1x8c16 (GEMV): each accumulator holds the partial dot product
// of one row of a with one row of b, 16 k values a step; horizontal sums happen once per tile.
// The tiles multiply the raw int8 values: a product is at most 128 * 128 = 2^14 and fits int16,
// and each int16 product vector is pair-summed into int32 (vpadalq_s16) straight away, so no
// int16 sum of two products (up to 2^15) is ever formed. The offsets enter afterwards through
// row and column sums, all mod 2^32 like the reference:
//   sum (a + ao)(b + bo) = sum a*b + bo * sum a + ao * sum b + k * ao * bo.
// In the K tail both operands are copied into zeroed 16-byte blocks, so padding adds 0.
// The epilogue (bias, requantize, output offset, clamp) runs on four lanes at a time and is
// exact as rt::requantize for both rounding modes. int4 weights are unpacked to int8 rows in
// scratch, a tile's rows at a time.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kKc = 16;                 // k values per step
constexpr int32_t kMr = 4;                  // rows of a per GEMM tile
constexpr int32_t kNr = 4;                  // rows of b per GEMM tile
constexpr int32_t kGemvNr = 8;              // rows of b per GEMV tile
constexpr int32_t kTileLd = 8;              // row stride of a tile's int32 results
constexpr int32_t kBlockBytes = 32 * 1024;  // a bytes kept hot across one sweep of b

// Raw sums D[i][r] = sum_k a[i][k] * b[r][k] of an MR x NR tile, into out[i * kTileLd + r].
// With kSumB (GEMV) also the column sums bsum[r] = sum_k b[r][k], from the b vectors already in
// registers, instead of a second pass over b.
template <int MR, int NR, bool kSumB>
void dot_tile(const int8_t* a, ptrdiff_t lda, const int8_t* b, ptrdiff_t ldb, int32_t k,
              int32_t* out, int32_t* bsum) {
  int32x4_t acc[MR][NR];
  int32x4_t sb[NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) acc[i][r] = vdupq_n_s32(0);
  for (int r = 0; r < NR; ++r) sb[r] = vdupq_n_s32(0);
  auto step = [&](const int8_t* const* ap, const int8_t* const* bp) {
    int8x16_t bv[NR];
    for (int r = 0; r < NR; ++r) {
      bv[r] = vld1q_s8(bp[r]);
      if constexpr (kSumB) sb[r] = vpadalq_s16(sb[r], vpaddlq_s8(bv[r]));
    }
    for (int i = 0; i < MR; ++i) {
      const int8x16_t av = vld1q_s8(ap[i]);
      for (int r = 0; r < NR; ++r) {
        acc[i][r] = vpadalq_s16(acc[i][r], vmull_s8(vget_low_s8(av), vget_low_s8(bv[r])));
        acc[i][r] = vpadalq_s16(acc[i][r], vmull_high_s8(av, bv[r]));
      }
    }
  };
  const int8_t* ap[MR];
  const int8_t* bp[NR];
  int32_t kk = 0;
  for (; kk + kKc <= k; kk += kKc) {
    for (int i = 0; i < MR; ++i) ap[i] = a + i * lda + kk;
    for (int r = 0; r < NR; ++r) bp[r] = b + r * ldb + kk;
    step(ap, bp);
  }
  if (kk < k) {
    const auto rem = static_cast<size_t>(k - kk);
    int8_t at[MR][kKc] = {};
    int8_t bt[NR][kKc] = {};
    for (int i = 0; i < MR; ++i) {
      std::memcpy(at[i], a + i * lda + kk, rem);
      ap[i] = at[i];
    }
    for (int r = 0; r < NR; ++r) {
      std::memcpy(bt[r], b + r * ldb + kk, rem);
      bp[r] = bt[r];
    }
    step(ap, bp);
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) out[i * kTileLd + r] = vaddvq_s32(acc[i][r]);
  if constexpr (kSumB) {
    for (int r = 0; r < NR; ++r) bsum[r] = vaddvq_s32(sb[r]);
  } else {
    static_cast<void>(bsum);
  }
}

using TileFn = void (*)(const int8_t*, ptrdiff_t, const int8_t*, ptrdiff_t, int32_t, int32_t*,
                        int32_t*);

constexpr TileFn kGemmTiles[kMr][kNr] = {
    {dot_tile<1, 1, false>, dot_tile<1, 2, false>, dot_tile<1, 3, false>, dot_tile<1, 4, false>},
    {dot_tile<2, 1, false>, dot_tile<2, 2, false>, dot_tile<2, 3, false>, dot_tile<2, 4, false>},
    {dot_tile<3, 1, false>, dot_tile<3, 2, false>, dot_tile<3, 3, false>, dot_tile<3, 4, false>},
    {dot_tile<4, 1, false>, dot_tile<4, 2, false>, dot_tile<4, 3, false>, dot_tile<4, 4, false>},
};
// [with column sums][nr - 1]
constexpr TileFn kGemvTiles[2][kGemvNr] = {
    {dot_tile<1, 1, false>, dot_tile<1, 2, false>, dot_tile<1, 3, false>, dot_tile<1, 4, false>,
     dot_tile<1, 5, false>, dot_tile<1, 6, false>, dot_tile<1, 7, false>, dot_tile<1, 8, false>},
    {dot_tile<1, 1, true>, dot_tile<1, 2, true>, dot_tile<1, 3, true>, dot_tile<1, 4, true>,
     dot_tile<1, 5, true>, dot_tile<1, 6, true>, dot_tile<1, 7, true>, dot_tile<1, 8, true>},
};

// sum_k p[k] mod 2^32.
int32_t row_sum(const int8_t* p, int32_t k) {
  int32x4_t acc = vdupq_n_s32(0);
  int32_t t = 0;
  for (; t + 16 <= k; t += 16) acc = vpadalq_s16(acc, vpaddlq_s8(vld1q_s8(p + t)));
  auto sum = static_cast<uint32_t>(vaddvq_s32(acc));
  for (; t < k; ++t) sum += static_cast<uint32_t>(p[t]);
  return static_cast<int32_t>(sum);
}

#include "neon_gemm_common.inc"  // shared driver, compiled with this file's flags

constexpr PathKernels kTable{Path::kNeon, gemm_s8,         gemm_s32,
                             nullptr,     gemm_s8_scratch, gemm_s32_scratch};

}  // namespace

const PathKernels* neon_kernels() noexcept {
  return &kTable;
}

}  // namespace tinyquant::rt::detail
