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

// Nibble stream element `first + t` for t < k, sign-extended, into dst[0, k).
void unpack_s4(const uint8_t* stream, int64_t first, int32_t k, int8_t* dst) {
  int32_t t = 0;
  if ((first & 1) != 0) {
    dst[t++] = static_cast<int8_t>(((stream[first >> 1] >> 4) ^ 8) - 8);
  }
  const uint8_t* src = stream + ((first + t) >> 1);
  for (; t + 32 <= k; t += 32, src += 16) {
    const int8x16_t x = vreinterpretq_s8_u8(vld1q_u8(src));
    const int8x16_t lo = vshrq_n_s8(vshlq_n_s8(x, 4), 4);  // arithmetic shifts sign-extend
    const int8x16_t hi = vshrq_n_s8(x, 4);
    // Element 2i is the low nibble of byte i, 2i + 1 the high one.
    vst1q_s8(dst + t, vzip1q_s8(lo, hi));
    vst1q_s8(dst + t + 16, vzip2q_s8(lo, hi));
  }
  for (; t < k; ++t) {
    const int64_t e = first + t;
    const int32_t byte = stream[e >> 1];
    const int32_t v = (e & 1) != 0 ? byte >> 4 : byte & 0x0F;
    dst[t] = static_cast<int8_t>((v ^ 8) - 8);
  }
}

// requantize() on 4 lanes, exactly as the scalar definition (fixed_point.hpp).
inline int32x4_t requantize4(int32x4_t x, int32x4_t mult, int32x4_t shift, Rounding rounding) {
  if (rounding == Rounding::kSingle) {
    // (x * m + 2^(t - 1)) >> t with t = 31 - shift in [1, 62]: SRSHL rounds half up, in full
    // precision; the low 32 bits are kept as the scalar cast does.
    const int32x4_t neg_t = vsubq_s32(shift, vdupq_n_s32(31));
    const int64x2_t lo =
        vrshlq_s64(vmull_s32(vget_low_s32(x), vget_low_s32(mult)), vmovl_s32(vget_low_s32(neg_t)));
    const int64x2_t hi = vrshlq_s64(vmull_high_s32(x, mult), vmovl_high_s32(neg_t));
    return vcombine_s32(vmovn_s64(lo), vmovn_s64(hi));
  }
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t left = vmaxq_s32(shift, zero);
  const int32x4_t neg_right = vminq_s32(shift, zero);
  // SSHL by a positive count wraps like wrap_shl. SQRDMULH is (x * m + 2^30) >> 31, saturating
  // only for x == m == INT32_MIN, impossible with m >= 0: equal to doubling_high_mul.
  const int32x4_t h = vqrdmulhq_s32(vshlq_s32(x, left), mult);
  // Ties away from zero: SRSHL rounds half up, so negative values are lowered by one first
  // (when shifting at all). INT32_MIN saturates instead, and is exact either way.
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(h, neg_right), 31);
  return vrshlq_s32(vqaddq_s32(h, fixup), neg_right);
}

// p[0, cnt) into the low lanes, zeros above; cnt in [1, 4].
inline int32x4_t load4(const int32_t* p, int32_t cnt) {
  if (cnt >= 4) return vld1q_s32(p);
  int32_t tmp[4] = {};
  std::memcpy(tmp, p, sizeof(int32_t) * static_cast<size_t>(cnt));
  return vld1q_s32(tmp);
}

int32_t rows_per_block(int32_t m, int32_t k) {
  int32_t mc = kBlockBytes / (k > 0 ? k : 1);
  mc = mc / kMr * kMr;
  if (mc < kMr) mc = kMr;
  return mc < m ? mc : m;
}
inline int32_t clamp32(int64_t v) {
  return v > INT32_MAX ? INT32_MAX : static_cast<int32_t>(v);
}
inline int64_t align64(int64_t v) {
  return (v + 63) / 64 * 64;
}

// Scratch: suma[m] | sumb[n] | unpacked int4 rows [kGemvNr][k] (int4 only).
int64_t scratch_bytes(int32_t m, int32_t n, int32_t k, bool s4) {
  return align64(4 * int64_t{m}) + align64(4 * int64_t{n}) + (s4 ? int64_t{kGemvNr} * k : 0);
}

struct Problem {
  int32_t m, n, k;
  const int8_t* a;
  int32_t lda;
  const int8_t* b;      // int8 rows, or null
  const uint8_t* b_s4;  // nibble stream, or null
  int32_t ldb;
  int32_t a_offset, b_offset;
};

// Runs the tiles. For each tile, emit(i0, j0, mr, nr, d, row_term, sumb) receives the raw sums
// d[ii * kTileLd + r]; the full accumulator of (i0 + ii, j0 + r) is
// d + row_term[ii] + a_offset * sumb[j0 + r] (mod 2^32).
template <class Emit>
void drive(const Problem& p, void* scratch, Emit&& emit) {
  auto* suma = static_cast<int32_t*>(scratch);
  int32_t* sumb = suma + align64(4 * int64_t{p.m}) / 4;
  int8_t* unpacked = reinterpret_cast<int8_t*>(sumb + align64(4 * int64_t{p.n}) / 4);
  const bool need_suma = p.b_offset != 0;
  const bool need_sumb = p.a_offset != 0;
  const auto ao = static_cast<uint32_t>(p.a_offset);
  const auto bo = static_cast<uint32_t>(p.b_offset);
  const uint32_t kab = static_cast<uint32_t>(p.k) * ao * bo;
  if (!need_sumb) std::memset(sumb, 0, sizeof(int32_t) * static_cast<size_t>(p.n));

  // Row pointers of b for columns [j0, j0 + nr): unpacked int4 rows or the int8 rows. Column
  // sums are taken on the first pass (first_pass) while the rows are hot; GEMV tiles sum them.
  auto b_rows = [&](int32_t j0, int32_t nr, bool first_pass, ptrdiff_t* ld) -> const int8_t* {
    const int8_t* rows = nullptr;
    if (p.b_s4 != nullptr) {
      for (int32_t r = 0; r < nr; ++r)
        unpack_s4(p.b_s4, int64_t{j0 + r} * p.k, p.k, unpacked + int64_t{r} * p.k);
      rows = unpacked;
      *ld = p.k;
    } else {
      rows = p.b + int64_t{j0} * p.ldb;
      *ld = p.ldb;
    }
    if (first_pass && need_sumb) {
      for (int32_t r = 0; r < nr; ++r) sumb[j0 + r] = row_sum(rows + r * *ld, p.k);
    }
    return rows;
  };

  alignas(16) int32_t d[kMr * kTileLd] = {};
  uint32_t row_term[kMr] = {};
  if (p.m == 1) {
    row_term[0] = (need_suma ? bo * static_cast<uint32_t>(row_sum(p.a, p.k)) : 0u) + kab;
    for (int32_t j0 = 0; j0 < p.n; j0 += kGemvNr) {
      const int32_t nr = p.n - j0 < kGemvNr ? p.n - j0 : kGemvNr;
      ptrdiff_t ld = 0;
      const int8_t* rows = b_rows(j0, nr, false, &ld);
      kGemvTiles[need_sumb ? 1 : 0][nr - 1](p.a, p.lda, rows, ld, p.k, d, sumb + j0);
      emit(0, j0, 1, nr, d, row_term, sumb);
    }
    return;
  }
  for (int32_t i = 0; need_suma && i < p.m; ++i) suma[i] = row_sum(p.a + int64_t{i} * p.lda, p.k);
  const int32_t mc = rows_per_block(p.m, p.k);
  for (int32_t ic = 0; ic < p.m; ic += mc) {
    const int32_t mb = p.m - ic < mc ? p.m - ic : mc;
    for (int32_t j0 = 0; j0 < p.n; j0 += kNr) {
      const int32_t nr = p.n - j0 < kNr ? p.n - j0 : kNr;
      ptrdiff_t ld = 0;
      const int8_t* rows = b_rows(j0, nr, ic == 0, &ld);
      for (int32_t i0 = ic; i0 < ic + mb; i0 += kMr) {
        const int32_t mr = ic + mb - i0 < kMr ? ic + mb - i0 : kMr;
        kGemmTiles[mr - 1][nr - 1](p.a + int64_t{i0} * p.lda, p.lda, rows, ld, p.k, d, nullptr);
        for (int32_t ii = 0; ii < mr; ++ii)
          row_term[ii] = (need_suma ? bo * static_cast<uint32_t>(suma[i0 + ii]) : 0u) + kab;
        emit(i0, j0, mr, nr, d, row_term, sumb);
      }
    }
  }
}

void gemm_s8(const GemmS8Args& g) {
  const Problem p{g.m, g.n, g.k, g.a, g.lda, g.b, g.b_s4, g.ldb, g.a_offset, g.b_offset};
  const int32x4_t v_ao = vdupq_n_s32(g.a_offset);
  const int32x4_t v_cofs = vdupq_n_s32(g.c_offset);
  const int32x4_t v_min = vdupq_n_s32(g.act_min);
  const int32x4_t v_max = vdupq_n_s32(g.act_max);
  const int32x4_t mult0 = vdupq_n_s32(g.multiplier[0]);
  const int32x4_t shift0 = vdupq_n_s32(g.shift[0]);
  const Rounding rounding = g.rounding;
  auto emit = [&](int32_t i0, int32_t j0, int32_t mr, int32_t nr, const int32_t* d,
                  const uint32_t* row_term, const int32_t* sumb) {
    for (int32_t r = 0; r < nr; r += 4) {
      const int32_t j = j0 + r;
      const int32_t cnt = nr - r < 4 ? nr - r : 4;
      // Per-column terms shared by the tile's rows: a_offset * sum b + bias.
      int32x4_t col = vmulq_s32(load4(sumb + j, cnt), v_ao);
      if (g.bias != nullptr) col = vaddq_s32(col, load4(g.bias + j, cnt));
      const int32x4_t mult = g.per_channel ? load4(g.multiplier + j, cnt) : mult0;
      const int32x4_t sh = g.per_channel ? load4(g.shift + j, cnt) : shift0;
      for (int32_t ii = 0; ii < mr; ++ii) {
        int32x4_t v = vaddq_s32(vld1q_s32(d + ii * kTileLd + r), col);
        v = vaddq_s32(v, vreinterpretq_s32_u32(vdupq_n_u32(row_term[ii])));
        v = vaddq_s32(requantize4(v, mult, sh, rounding), v_cofs);
        v = vminq_s32(vmaxq_s32(v, v_min), v_max);
        const int16x4_t h = vmovn_s32(v);
        const int8x8_t bytes = vmovn_s16(vcombine_s16(h, h));
        int8_t* dst = g.c + int64_t{i0 + ii} * g.ldc + j;
        int8_t tmp[8];
        vst1_s8(tmp, bytes);
        std::memcpy(dst, tmp, static_cast<size_t>(cnt));
      }
    }
  };
  drive(p, g.scratch, emit);
}

void gemm_s32(const GemmS32Args& g) {
  const Problem p{g.m, g.n, g.k, g.a, g.lda, g.b, nullptr, g.ldb, g.a_offset, g.b_offset};
  const int32x4_t v_ao = vdupq_n_s32(g.a_offset);
  auto emit = [&](int32_t i0, int32_t j0, int32_t mr, int32_t nr, const int32_t* d,
                  const uint32_t* row_term, const int32_t* sumb) {
    for (int32_t r = 0; r < nr; r += 4) {
      const int32_t j = j0 + r;
      const int32_t cnt = nr - r < 4 ? nr - r : 4;
      int32x4_t col = vmulq_s32(load4(sumb + j, cnt), v_ao);
      if (g.col_add != nullptr) col = vaddq_s32(col, load4(g.col_add + j, cnt));
      for (int32_t ii = 0; ii < mr; ++ii) {
        const int32_t i = i0 + ii;
        const uint32_t rt =
            row_term[ii] + (g.row_add != nullptr ? static_cast<uint32_t>(g.row_add[i]) : 0u);
        int32x4_t v = vaddq_s32(vld1q_s32(d + ii * kTileLd + r), col);
        v = vaddq_s32(v, vreinterpretq_s32_u32(vdupq_n_u32(rt)));
        int32_t* dst = g.c + int64_t{i} * g.ldc + j;
        if (cnt == 4) {
          vst1q_s32(dst, v);
        } else {
          int32_t tmp[4];
          vst1q_s32(tmp, v);
          std::memcpy(dst, tmp, sizeof(int32_t) * static_cast<size_t>(cnt));
        }
      }
    }
  };
  drive(p, g.scratch, emit);
}

int32_t gemm_s8_scratch(int32_t m, int32_t n, int32_t k, bool s4) {
  return clamp32(scratch_bytes(m, n, k, s4));
}
int32_t gemm_s32_scratch(int32_t m, int32_t n, int32_t k) {
  return clamp32(scratch_bytes(m, n, k, false));
}

constexpr PathKernels kTable{Path::kNeon, gemm_s8,         gemm_s32,
                             nullptr,     gemm_s8_scratch, gemm_s32_scratch};

}  // namespace

const PathKernels* neon_kernels() noexcept {
  return &kTable;
}

}  // namespace tinyquant::rt::detail
