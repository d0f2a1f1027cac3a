// AVX2 path: s8 x s8 (and s8 x s4) GEMM on vpmaddwd, dot-product orientation.
//
// Micro-kernels 2x4c16 (m > 1) and 1x8c16 (GEMV): each accumulator ymm holds the partial dot
// product of one row of a with one row of b, 16 k values a step; horizontal sums happen once
// per tile. Both operands are sign-extended to int16 and their offsets added there, so
// vpmaddwd sees (a + ao) and (b + bo), each in [-256, 255]: a product is at most 2^16 and a pair
// sum fits int32 exactly (vpmaddubsw would saturate, so it is not used). Accumulation wraps mod
// 2^32 like the reference. In the K tail, lanes past k are zeroed on the a side after the offset
// is added, so they contribute 0 whatever b holds there.
//
// These tiles serve the GEMV, small m and int4 weights; calls with m >= kAvx2C2MinRows on int8
// weights, and all prepacked weights, run the 6x16 outer-product kernel of
// s8s8_gemm_6x16c2_avx2.cpp. This file holds the path's requantization epilogue for both.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kKc = 16;                 // k values per step
constexpr int32_t kMr = 2;                  // rows of a per GEMM tile
constexpr int32_t kNr = 4;                  // rows of b per GEMM tile
constexpr int32_t kGemvNr = 8;              // rows of b per GEMV tile
constexpr int32_t kBlockBytes = 64 * 1024;  // a bytes kept hot across one sweep of b

#include "x86_avx2_common.inc"  // loads, unpack_s4, requantize8, blocking: this file's flags

// Four ymm accumulators to their four horizontal sums.
inline __m128i reduce4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i c = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

// How b rows are read: row r, step c at base + r * row + c * 16, widened and offset.
struct BRows {
  const int8_t* base;
  ptrdiff_t row;       // elements between rows
  ptrdiff_t readable;  // bytes from base on that may be read (the last row ends there)
};

// Raw sums of an MR x NR tile, at out[i * ld + r]: with kFold D[i][r] = sum_k (a + ao)(b + bo)
// (offsets added in int16); without it D = sum_k a * b, and the caller adds the offset terms
// from row sums (two fewer vector adds per step, no spills at 2x4). a_tail, when set (MR = 1),
// holds a's last k % 16 values zero-padded to 16, copied once by the caller for all its tiles.
template <int MR, int NR, bool kFold>
void dot_tile(const int8_t* a, int32_t lda, BRows b, int32_t k, int32_t a_offset, int32_t b_offset,
              int32_t* out, ptrdiff_t ld_out, const int8_t* a_tail) {
  __m256i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_setzero_si256();
  const __m256i ao = _mm256_set1_epi16(static_cast<int16_t>(a_offset));
  const __m256i bo = _mm256_set1_epi16(static_cast<int16_t>(b_offset));
  const int8_t* b8 = b.base;
  int32_t kk = 0;
  for (; kk + kKc <= k; kk += kKc) {
    __m256i bv[NR];
    for (int r = 0; r < NR; ++r) {
      bv[r] = load16_s8(b8 + r * b.row);
      if (kFold) bv[r] = _mm256_add_epi16(bv[r], bo);
    }
    for (int i = 0; i < MR; ++i) {
      __m256i av = load16_s8(a + i * lda + kk);
      if (kFold) av = _mm256_add_epi16(av, ao);
      for (int r = 0; r < NR; ++r)
        acc[i][r] = _mm256_add_epi32(acc[i][r], _mm256_madd_epi16(av, bv[r]));
    }
    b8 += kKc;
  }
  if (kk < k) {
    const int32_t rem = k - kk;
    alignas(32) int16_t lane_mask[16];
    for (int32_t t = 0; t < 16; ++t) lane_mask[t] = static_cast<int16_t>(t < rem ? -1 : 0);
    const __m256i keep = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane_mask));
    // A b row whose next 16 bytes lie inside b is read whole: its lanes past k meet a lanes
    // that are 0. Only the rows near the end of b need the short copy.
    const ptrdiff_t at = b8 - b.base;
    __m256i bv[NR];
    for (int r = 0; r < NR; ++r) {
      bv[r] = at + r * b.row + kKc <= b.readable ? load16_s8(b8 + r * b.row)
                                                 : load16_s8_partial(b8 + r * b.row, rem);
      if (kFold) bv[r] = _mm256_add_epi16(bv[r], bo);
    }
    for (int i = 0; i < MR; ++i) {
      // Zero-filled lanes of a are 0 without the offset; with it they are masked back to 0.
      __m256i av = a_tail != nullptr ? load16_s8(a_tail) : load16_s8_partial(a + i * lda + kk, rem);
      if (kFold) av = _mm256_and_si256(_mm256_add_epi16(av, ao), keep);
      for (int r = 0; r < NR; ++r)
        acc[i][r] = _mm256_add_epi32(acc[i][r], _mm256_madd_epi16(av, bv[r]));
    }
  }
  const __m256i z = _mm256_setzero_si256();
  for (int i = 0; i < MR; ++i) {
    for (int r0 = 0; r0 < NR; r0 += 4) {
      const __m128i s = reduce4(acc[i][r0], r0 + 1 < NR ? acc[i][r0 + 1] : z,
                                r0 + 2 < NR ? acc[i][r0 + 2] : z, r0 + 3 < NR ? acc[i][r0 + 3] : z);
      const int cnt = NR - r0 < 4 ? NR - r0 : 4;
      if (cnt == 4) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i * ld_out + r0), s);
      } else {
        alignas(16) int32_t tmp[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), s);
        for (int t = 0; t < cnt; ++t) out[i * ld_out + r0 + t] = tmp[t];
      }
    }
  }
}

using TileFn = void (*)(const int8_t*, int32_t, BRows, int32_t, int32_t, int32_t, int32_t*,
                        ptrdiff_t, const int8_t*);

// m > 1: row sums carry the offsets (no fold).
constexpr TileFn kGemmTiles[kMr][kNr] = {
    {dot_tile<1, 1, false>, dot_tile<1, 2, false>, dot_tile<1, 3, false>, dot_tile<1, 4, false>},
    {dot_tile<2, 1, false>, dot_tile<2, 2, false>, dot_tile<2, 3, false>, dot_tile<2, 4, false>},
};
// m == 1: offsets folded (few registers in use, and no row-sum pass over b).
constexpr TileFn kGemvTiles[kGemvNr] = {
    dot_tile<1, 1, true>, dot_tile<1, 2, true>, dot_tile<1, 3, true>, dot_tile<1, 4, true>,
    dot_tile<1, 5, true>, dot_tile<1, 6, true>, dot_tile<1, 7, true>, dot_tile<1, 8, true>};

// sum_k p[k], via sum (p ^ 0x80) as unsigned bytes (vpsadbw) minus 128 per byte.
int32_t row_sum(const int8_t* p, int32_t k) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i acc = _mm256_setzero_si256();
  int32_t t = 0;
  for (; t + 32 <= k; t += 32) {
    const __m256i x =
        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + t)), flip);
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(x, _mm256_setzero_si256()));
  }
  alignas(32) int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  int64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3] - int64_t{128} * t;
  for (; t < k; ++t) sum += p[t];
  return static_cast<int32_t>(sum);
}

inline __m256i load8(const int32_t* p, int32_t cnt) {
  if (cnt >= 8) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  alignas(32) int32_t tmp[8] = {};
  std::memcpy(tmp, p, sizeof(int32_t) * static_cast<size_t>(cnt));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
}

// Scratch: acc[mc][n] int32 (int8 output only) | unpacked int4 rows [8][k] | suma[m] | sumb[n].
int64_t scratch_bytes(int32_t m, int32_t n, int32_t k, bool s4, bool need_acc) {
  int64_t bytes = 0;
  if (need_acc) bytes += align64(4 * int64_t{rows_per_block(m, k)} * n);
  if (s4) bytes += align64(int64_t{kGemvNr} * k);
  return bytes + align64(4 * int64_t{m}) + align64(4 * int64_t{n});
}

// Runs the tiles; calls fin(i_first, rows, acc, ld) for each finished block of rows.
template <class Finish>
void drive(const TileProblem& p, void* scratch, int32_t* acc_out, ptrdiff_t ld_acc, Finish&& fin) {
  auto* accbuf = static_cast<int32_t*>(scratch);
  const int32_t mc = rows_per_block(p.m, p.k);
  int8_t* unpacked = static_cast<int8_t*>(scratch);
  if (acc_out == nullptr) {
    acc_out = accbuf;
    ld_acc = p.n;
    unpacked += align64(4 * int64_t{mc} * p.n);
  }
  auto* suma = reinterpret_cast<int32_t*>(
      unpacked + (p.b_s4 != nullptr ? align64(int64_t{kGemvNr} * p.k) : 0));
  int32_t* sumb = suma + align64(4 * int64_t{p.m}) / 4;
  // Tiles without the fold (m > 1) leave sum a * b; the offset terms are added here.
  if (p.m > 1) {
    for (int32_t i = 0; i < p.m; ++i) suma[i] = row_sum(p.a + int64_t{i} * p.lda, p.k);
  }
  const uint32_t kab = static_cast<uint32_t>(p.k) * static_cast<uint32_t>(p.a_offset) *
                       static_cast<uint32_t>(p.b_offset);
  auto add_offset_terms = [&](int32_t i_first, int32_t rows, int32_t* acc, ptrdiff_t ld) {
    for (int32_t ii = 0; ii < rows; ++ii) {
      const uint32_t row_term =
          static_cast<uint32_t>(p.b_offset) * static_cast<uint32_t>(suma[i_first + ii]) + kab;
      int32_t* r = acc + ii * ld;
      for (int32_t j = 0; j < p.n; ++j) {
        r[j] = static_cast<int32_t>(static_cast<uint32_t>(r[j]) + row_term +
                                    static_cast<uint32_t>(p.a_offset) *
                                        static_cast<uint32_t>(sumb[j]));
      }
    }
  };

  // b rows j0 .. j0 + nr as int8 rows (int4 ones unpacked into scratch first).
  auto rows_at = [&](int32_t j0, int32_t nr) {
    if (p.b_s4 != nullptr) {
      for (int32_t r = 0; r < nr; ++r)
        unpack_s4(p.b_s4, int64_t{j0 + r} * p.k, p.k, unpacked + int64_t{r} * p.k);
      return BRows{unpacked, p.k, ptrdiff_t{nr} * p.k};
    }
    return BRows{p.b + int64_t{j0} * p.ldb, p.ldb, ptrdiff_t{p.n - 1 - j0} * p.ldb + p.k};
  };

  if (p.m == 1) {
    alignas(16) int8_t a_tail[kKc] = {};
    const int32_t tail = p.k % kKc;
    if (tail != 0) std::memcpy(a_tail, p.a + (p.k - tail), static_cast<size_t>(tail));
    for (int32_t j0 = 0; j0 < p.n; j0 += kGemvNr) {
      const int32_t nr = p.n - j0 < kGemvNr ? p.n - j0 : kGemvNr;
      kGemvTiles[nr - 1](p.a, p.lda, rows_at(j0, nr), p.k, p.a_offset, p.b_offset, acc_out + j0,
                         ld_acc, a_tail);
    }
    fin(0, 1, acc_out, ld_acc);
    return;
  }
  for (int32_t ic = 0; ic < p.m; ic += mc) {
    const int32_t mb = p.m - ic < mc ? p.m - ic : mc;
    int32_t* acc_blk = acc_out == accbuf ? accbuf : acc_out + int64_t{ic} * ld_acc;
    for (int32_t j0 = 0; j0 < p.n; j0 += kNr) {
      const int32_t nr = p.n - j0 < kNr ? p.n - j0 : kNr;
      const BRows rows = rows_at(j0, nr);
      if (ic == 0) {
        for (int32_t r = 0; r < nr; ++r) sumb[j0 + r] = row_sum(rows.base + r * rows.row, p.k);
      }
      for (int32_t i0 = 0; i0 < mb; i0 += kMr) {
        const int32_t mr = mb - i0 < kMr ? mb - i0 : kMr;
        kGemmTiles[mr - 1][nr - 1](p.a + int64_t{ic + i0} * p.lda, p.lda, rows, p.k, p.a_offset,
                                   p.b_offset, acc_blk + int64_t{i0} * ld_acc + j0, ld_acc,
                                   nullptr);
      }
    }
    add_offset_terms(ic, mb, acc_blk, ld_acc);
    fin(ic, mb, acc_blk, ld_acc);
  }
}

// Plain int8 weights with this many rows or more go to the 6x16 kernel (b packed per call).
bool use_c2(int32_t m, bool s4) {
  return !s4 && m >= kAvx2C2MinRows;
}

void gemm_s8(const GemmS8Args& g) {
  if (use_c2(g.m, g.b_s4 != nullptr)) {
    avx2_c2_gemm_s8(g);
    return;
  }
  const TileProblem p{g.m, g.n, g.k, g.a, g.lda, g.b, g.b_s4, g.ldb, g.a_offset, g.b_offset};
  auto fin = [&](int32_t i_first, int32_t rows, const int32_t* acc, ptrdiff_t ld) {
    for (int32_t ii = 0; ii < rows; ++ii) {
      avx2_requantize_row(g, 0, g.n, acc + ii * ld, g.c + int64_t{i_first + ii} * g.ldc);
    }
  };
  drive(p, g.scratch, nullptr, 0, fin);
}

void gemm_s32(const GemmS32Args& g) {
  if (use_c2(g.m, false)) {
    avx2_c2_gemm_s32(g);
    return;
  }
  const TileProblem p{g.m, g.n, g.k, g.a, g.lda, g.b, nullptr, g.ldb, g.a_offset, g.b_offset};
  auto fin = [&](int32_t i_first, int32_t rows, const int32_t*, ptrdiff_t) {
    if (g.row_add == nullptr && g.col_add == nullptr) return;
    for (int32_t ii = 0; ii < rows; ++ii) {
      const int32_t i = i_first + ii;
      const __m256i row_term = _mm256_set1_epi32(g.row_add != nullptr ? g.row_add[i] : 0);
      int32_t* crow = g.c + int64_t{i} * g.ldc;
      for (int32_t j = 0; j < g.n; j += 8) {
        const int32_t cnt = g.n - j < 8 ? g.n - j : 8;
        __m256i v = _mm256_add_epi32(load8(crow + j, cnt), row_term);
        if (g.col_add != nullptr) v = _mm256_add_epi32(v, load8(g.col_add + j, cnt));
        alignas(32) int32_t tmp[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
        std::memcpy(crow + j, tmp, sizeof(int32_t) * static_cast<size_t>(cnt));
      }
    }
  };
  drive(p, g.scratch, g.c, g.ldc, fin);
}

// Callers size scratch for their largest call and may then run smaller ones (conv2d's last
// im2col block), so a size for the 6x16 kernel also covers every smaller m on these tiles.
int32_t scratch_for(int32_t m, int32_t n, int32_t k, bool s4, bool need_acc) {
  if (!use_c2(m, s4)) return clamp32(scratch_bytes(m, n, k, s4, need_acc));
  const int64_t tiles = scratch_bytes(kAvx2C2MinRows - 1, n, k, s4, need_acc);
  const int32_t c2 = avx2_c2_scratch(m, k);
  return tiles > c2 ? clamp32(tiles) : c2;
}
int32_t gemm_s8_scratch(int32_t m, int32_t n, int32_t k, bool s4) {
  return scratch_for(m, n, k, s4, true);
}
int32_t gemm_s32_scratch(int32_t m, int32_t n, int32_t k) {
  return scratch_for(m, n, k, false, false);
}

constexpr PathKernels kTable{Path::kAvx2,           gemm_s8,         gemm_s32,
                             s8_dwconv_1x16c2_avx2, gemm_s8_scratch, gemm_s32_scratch};

}  // namespace

void avx2_requantize_row(const GemmS8Args& g, int32_t j0, int32_t cnt, const int32_t* acc,
                         int8_t* out) {
  const __m256i v_cofs = _mm256_set1_epi32(g.c_offset);
  const __m256i v_min = _mm256_set1_epi32(g.act_min);
  const __m256i v_max = _mm256_set1_epi32(g.act_max);
  for (int32_t j = 0; j < cnt; j += 8) {
    const int32_t c = cnt - j < 8 ? cnt - j : 8;
    const int32_t col = j0 + j;
    __m256i v = load8(acc + j, c);
    if (g.bias != nullptr) v = _mm256_add_epi32(v, load8(g.bias + col, c));
    const __m256i mult =
        g.per_channel ? load8(g.multiplier + col, c) : _mm256_set1_epi32(g.multiplier[0]);
    const __m256i sh = g.per_channel ? load8(g.shift + col, c) : _mm256_set1_epi32(g.shift[0]);
    v = _mm256_add_epi32(requantize8(v, mult, sh, g.rounding), v_cofs);
    v = _mm256_min_epi32(_mm256_max_epi32(v, v_min), v_max);
    // 8 int32 in [-128, 127] to 8 bytes: byte 0 of each lane, then the two halves joined.
    const __m256i bytes = _mm256_shuffle_epi8(
        v, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8,
                            12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    const uint32_t lo = static_cast<uint32_t>(_mm256_extract_epi32(bytes, 0));
    const uint32_t hi = static_cast<uint32_t>(_mm256_extract_epi32(bytes, 4));
    const uint64_t packed8 = uint64_t{lo} | (uint64_t{hi} << 32);
    std::memcpy(out + j, &packed8, static_cast<size_t>(c));
  }
}

const PathKernels* avx2_kernels() noexcept {
  return &kTable;
}

}  // namespace tinyquant::rt::detail
