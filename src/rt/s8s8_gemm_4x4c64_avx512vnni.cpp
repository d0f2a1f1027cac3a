// AVX-512 VNNI path: s8 x s8 (and s8 x s4) GEMM on vpdpbusd, dot-product orientation.
//
// Micro-kernels 4x4c64 (m > 1) and 1x8c64 (GEMV): each accumulator zmm holds the partial dot
// product of one row of a with one row of b, 64 k values a step; horizontal sums happen once
// per tile. K tails use masked loads, so no byte past a row is read.
//
// vpdpbusd multiplies unsigned by signed bytes, so a is fed as a + 128 (a ^ 0x80) and
//   sum_k (a + ao)(b + bo) = D + (ao - 128) * rowsum(b) + bo * rowsum(a) + k * ao * bo
// with D = sum_k (a + 128) * b. Every term is taken mod 2^32, so the result is bit-exact with
// the reference for any offsets. rowsum(b) is computed in the GEMV loop itself (one extra
// vpdpbusd per load) or in one pass for m > 1.
// Prepacked weights use the k4 layout shared with the AMX path (see k4_tile below): broadcast a,
// whole 64-byte lines of b, column sums stored with the weights.
// The epilogue (offset terms, requantization, clamp) is vectorised over 8 output columns.
#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "avx512_epilogue.hpp"
#include "path_kernels.hpp"

// GCC 12's unmasked AVX-512 shift/multiply/min/max intrinsics merge into _mm512_undefined_*(),
// which -Wmaybe-uninitialized flags wherever they are inlined: a false positive (every lane is
// written), silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kKc = 64;                 // k bytes per step
constexpr int32_t kMr = 4;                  // rows of a per GEMM tile
constexpr int32_t kNr = 4;                  // rows of b per GEMM tile
constexpr int32_t kGemvNr = 8;              // rows of b per GEMV tile (and per packed block)
constexpr int32_t kBlockBytes = 64 * 1024;  // a bytes kept hot across one sweep of b

inline uint32_t u32(int32_t v) {
  return static_cast<uint32_t>(v);
}
inline int32_t s32(uint32_t v) {
  return static_cast<int32_t>(v);
}

inline __mmask64 tail_mask(int32_t remaining) {
  return remaining >= 64 ? ~__mmask64{0} : ((__mmask64{1} << remaining) - 1);
}

// Four zmm accumulators to their four horizontal sums. Written by hand: GCC 12's
// _mm512_reduce_add_epi32, _mm512_castsi512_si256 and _mm512_extracti64x4_epi64 trip a false
// -Wuninitialized (they merge into an undefined vector), so the zero-masked extract is used.
inline __m128i reduce4(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  const __m256i h0 = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, v0, 0),
                                      _mm512_maskz_extracti64x4_epi64(0xFF, v0, 1));
  const __m256i h1 = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, v1, 0),
                                      _mm512_maskz_extracti64x4_epi64(0xFF, v1, 1));
  const __m256i h2 = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, v2, 0),
                                      _mm512_maskz_extracti64x4_epi64(0xFF, v2, 1));
  const __m256i h3 = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, v3, 0),
                                      _mm512_maskz_extracti64x4_epi64(0xFF, v3, 1));
  const __m256i c = _mm256_hadd_epi32(_mm256_hadd_epi32(h0, h1), _mm256_hadd_epi32(h2, h3));
  return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

inline int32_t reduce1(__m512i v) {
  const __m128i s =
      reduce4(v, _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
  return _mm_cvtsi128_si32(s);
}

// Raw dot products D[i][r] = sum_k (a[i][k] + 128) * b[r][k] of an MR x NR tile, stored at
// out[i * ld_out + r]; with kSumB also sumb[r] = sum_k b[r][k]. Row r of b, step c, starts at
// b + r * b_row + c * b_step (plain rows: b_row = ldb, b_step = 64; packed: 64, 8 * 64).
template <int MR, int NR, bool kSumB>
void dot_tile(const int8_t* a, int32_t lda, const int8_t* b, ptrdiff_t b_row, ptrdiff_t b_step,
              int32_t k, int32_t* out, ptrdiff_t ld_out, int32_t* sumb) {
  __m512i acc[MR][NR];
  __m512i sb[NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_si512();
  for (int r = 0; r < NR; ++r) sb[r] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi8(1);
  int32_t kk = 0;
  const int8_t* bc = b;
  for (; kk + kKc <= k; kk += kKc, bc += b_step) {
    __m512i bv[NR];
    for (int r = 0; r < NR; ++r) bv[r] = _mm512_loadu_si512(bc + r * b_row);
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_xor_si512(_mm512_loadu_si512(a + i * lda + kk), flip);
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], av, bv[r]);
    }
    if (kSumB)
      for (int r = 0; r < NR; ++r) sb[r] = _mm512_dpbusd_epi32(sb[r], ones, bv[r]);
  }
  if (kk < k) {
    // Masked-off bytes load as 0: a becomes 0x80 there, b stays 0, so they add nothing.
    const __mmask64 m = tail_mask(k - kk);
    __m512i bv[NR];
    for (int r = 0; r < NR; ++r) bv[r] = _mm512_maskz_loadu_epi8(m, bc + r * b_row);
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i * lda + kk), flip);
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], av, bv[r]);
    }
    if (kSumB)
      for (int r = 0; r < NR; ++r) sb[r] = _mm512_dpbusd_epi32(sb[r], ones, bv[r]);
  }
  const __m512i z = _mm512_setzero_si512();
  for (int i = 0; i < MR; ++i) {
    for (int r0 = 0; r0 < NR; r0 += 4) {
      const __m128i s = reduce4(acc[i][r0], r0 + 1 < NR ? acc[i][r0 + 1] : z,
                                r0 + 2 < NR ? acc[i][r0 + 2] : z, r0 + 3 < NR ? acc[i][r0 + 3] : z);
      const int cnt = NR - r0 < 4 ? NR - r0 : 4;
      _mm_mask_storeu_epi32(out + i * ld_out + r0, static_cast<__mmask8>((1u << cnt) - 1), s);
    }
  }
  if (kSumB) {
    for (int r0 = 0; r0 < NR; r0 += 4) {
      const __m128i s = reduce4(sb[r0], r0 + 1 < NR ? sb[r0 + 1] : z, r0 + 2 < NR ? sb[r0 + 2] : z,
                                r0 + 3 < NR ? sb[r0 + 3] : z);
      const int cnt = NR - r0 < 4 ? NR - r0 : 4;
      _mm_mask_storeu_epi32(sumb + r0, static_cast<__mmask8>((1u << cnt) - 1), s);
    }
  }
}

using TileFn = void (*)(const int8_t*, int32_t, const int8_t*, ptrdiff_t, ptrdiff_t, int32_t,
                        int32_t*, ptrdiff_t, int32_t*);

// [mr - 1][nr - 1] for m > 1 (rowsums of b come from a separate pass).
constexpr TileFn kGemmTiles[kMr][kNr] = {
    {dot_tile<1, 1, false>, dot_tile<1, 2, false>, dot_tile<1, 3, false>, dot_tile<1, 4, false>},
    {dot_tile<2, 1, false>, dot_tile<2, 2, false>, dot_tile<2, 3, false>, dot_tile<2, 4, false>},
    {dot_tile<3, 1, false>, dot_tile<3, 2, false>, dot_tile<3, 3, false>, dot_tile<3, 4, false>},
    {dot_tile<4, 1, false>, dot_tile<4, 2, false>, dot_tile<4, 3, false>, dot_tile<4, 4, false>},
};
// [nr - 1] for m == 1, rowsums in the loop.
constexpr TileFn kGemvTiles[kGemvNr] = {
    dot_tile<1, 1, true>, dot_tile<1, 2, true>, dot_tile<1, 3, true>, dot_tile<1, 4, true>,
    dot_tile<1, 5, true>, dot_tile<1, 6, true>, dot_tile<1, 7, true>, dot_tile<1, 8, true>};

// sum_k p[k] over one row, vectorised.
int32_t row_sum(const int8_t* p, int32_t k) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  int32_t kk = 0;
  for (; kk + kKc <= k; kk += kKc) acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(p + kk));
  if (kk < k)
    acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(tail_mask(k - kk), p + kk));
  return reduce1(acc);
}

#include "x86_avx2_common.inc"  // unpack_s4, requantize8, blocking: this file's flags

inline __m256i load8(const int32_t* p, int32_t cnt) {
  if (cnt >= 8) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm256_maskz_loadu_epi32(static_cast<__mmask8>((1u << cnt) - 1), p);
}

// Scratch layout (bytes, 64-aligned pieces): suma[m] | sumb[n] | acc[mc][n] | unpacked b rows.

int64_t scratch_bytes(int32_t m, int32_t n, int32_t k, bool s4, bool need_acc) {
  int64_t bytes = align64(4 * int64_t{m}) + align64(4 * int64_t{n});
  if (need_acc) bytes += align64(4 * int64_t{rows_per_block(m, k)} * n);
  if (s4) bytes += align64(int64_t{kGemvNr} * k);
  return bytes + 64;  // alignment slack
}

// Runs the tiles and calls fin(i, row_acc, row_first_j, count, suma_i, sumb) per finished row
// block: row_acc points at D for (i, j0..j0+count).
template <class Finish>
void drive(const TileProblem& p, void* scratch, int32_t* acc_out, ptrdiff_t ld_acc, Finish&& fin) {
  auto base = reinterpret_cast<uintptr_t>(scratch);
  base = (base + 63) / 64 * 64;
  int32_t* suma = reinterpret_cast<int32_t*>(base);
  int32_t* sumb = suma + align64(4 * int64_t{p.m}) / 4;
  int32_t* accbuf = sumb + align64(4 * int64_t{p.n}) / 4;
  const int32_t mc = rows_per_block(p.m, p.k);
  if (acc_out == nullptr) {
    acc_out = accbuf;
    ld_acc = p.n;
  }
  int8_t* unpacked =
      reinterpret_cast<int8_t*>(accbuf) + (acc_out == accbuf ? align64(4 * int64_t{mc} * p.n) : 0);
  for (int32_t i = 0; i < p.m; ++i) suma[i] = row_sum(p.a + int64_t{i} * p.lda, p.k);

  // Rows j0 .. j0 + nr of b as (pointer, row stride, step stride); unpacks int4 first.
  auto b_rows = [&](int32_t j0, int32_t nr, const int8_t** ptr, ptrdiff_t* row, ptrdiff_t* step) {
    if (p.b_s4 != nullptr) {
      for (int32_t r = 0; r < nr; ++r)
        unpack_s4(p.b_s4, int64_t{j0 + r} * p.k, p.k, unpacked + int64_t{r} * p.k);
      *ptr = unpacked;
      *row = p.k;
      *step = kKc;
    } else {
      *ptr = p.b + int64_t{j0} * p.ldb;
      *row = p.ldb;
      *step = kKc;
    }
  };

  if (p.m == 1) {
    for (int32_t j0 = 0; j0 < p.n; j0 += kGemvNr) {
      const int32_t nr = p.n - j0 < kGemvNr ? p.n - j0 : kGemvNr;
      const int8_t* bp;
      ptrdiff_t row, step;
      b_rows(j0, nr, &bp, &row, &step);
      kGemvTiles[nr - 1](p.a, p.lda, bp, row, step, p.k, acc_out + j0, ld_acc, sumb + j0);
    }
    fin(0, 1, acc_out, ld_acc, suma, sumb);
    return;
  }
  for (int32_t ic = 0; ic < p.m; ic += mc) {
    const int32_t mb = p.m - ic < mc ? p.m - ic : mc;
    int32_t* acc_blk = acc_out == accbuf ? accbuf : acc_out + int64_t{ic} * ld_acc;
    for (int32_t j0 = 0; j0 < p.n; j0 += kNr) {
      const int32_t nr = p.n - j0 < kNr ? p.n - j0 : kNr;
      const int8_t* bp;
      ptrdiff_t row, step;
      b_rows(j0, nr, &bp, &row, &step);
      if (ic == 0) {
        for (int32_t r = 0; r < nr; ++r) sumb[j0 + r] = row_sum(bp + r * row, p.k);
      }
      for (int32_t i0 = 0; i0 < mb; i0 += kMr) {
        const int32_t mr = mb - i0 < kMr ? mb - i0 : kMr;
        kGemmTiles[mr - 1][nr - 1](p.a + int64_t{ic + i0} * p.lda, p.lda, bp, row, step, p.k,
                                   acc_blk + int64_t{i0} * ld_acc + j0, ld_acc, nullptr);
      }
    }
    fin(ic, mb, acc_blk, ld_acc, suma, sumb);
  }
}

void gemm_s8(const GemmS8Args& g) {
  TileProblem p{g.m, g.n, g.k, g.a, g.lda, g.b, g.b_s4, g.ldb, g.a_offset, g.b_offset};
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  const __m256i v_sumb_coef = _mm256_set1_epi32(s32(u32(g.a_offset) - 128u));
  const __m256i v_cofs = _mm256_set1_epi32(g.c_offset);
  const __m256i v_min = _mm256_set1_epi32(g.act_min);
  const __m256i v_max = _mm256_set1_epi32(g.act_max);
  auto fin = [&](int32_t i_first, int32_t rows, const int32_t* acc, ptrdiff_t ld,
                 const int32_t* suma, const int32_t* sumb) {
    for (int32_t ii = 0; ii < rows; ++ii) {
      const int32_t i = i_first + ii;
      const __m256i row_term = _mm256_set1_epi32(s32(u32(g.b_offset) * u32(suma[i]) + kab));
      int8_t* crow = g.c + int64_t{i} * g.ldc;
      for (int32_t j = 0; j < g.n; j += 8) {
        const int32_t cnt = g.n - j < 8 ? g.n - j : 8;
        __m256i v = load8(acc + ii * ld + j, cnt);
        v = _mm256_add_epi32(v, _mm256_mullo_epi32(v_sumb_coef, load8(sumb + j, cnt)));
        v = _mm256_add_epi32(v, row_term);
        if (g.bias != nullptr) v = _mm256_add_epi32(v, load8(g.bias + j, cnt));
        const __m256i mult =
            g.per_channel ? load8(g.multiplier + j, cnt) : _mm256_set1_epi32(g.multiplier[0]);
        const __m256i sh = g.per_channel ? load8(g.shift + j, cnt) : _mm256_set1_epi32(g.shift[0]);
        v = _mm256_add_epi32(requantize8(v, mult, sh, g.rounding), v_cofs);
        v = _mm256_min_epi32(_mm256_max_epi32(v, v_min), v_max);
        _mm256_mask_cvtepi32_storeu_epi8(crow + j, static_cast<__mmask8>((1u << cnt) - 1), v);
      }
    }
  };
  drive(p, g.scratch, nullptr, 0, fin);
}

void gemm_s32(const GemmS32Args& g) {
  TileProblem p{g.m, g.n, g.k, g.a, g.lda, g.b, nullptr, g.ldb, g.a_offset, g.b_offset};
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  const __m256i v_sumb_coef = _mm256_set1_epi32(s32(u32(g.a_offset) - 128u));
  auto fin = [&](int32_t i_first, int32_t rows, const int32_t*, ptrdiff_t, const int32_t* suma,
                 const int32_t* sumb) {
    for (int32_t ii = 0; ii < rows; ++ii) {
      const int32_t i = i_first + ii;
      uint32_t rt = u32(g.b_offset) * u32(suma[i]) + kab;
      if (g.row_add != nullptr) rt += u32(g.row_add[i]);
      const __m256i row_term = _mm256_set1_epi32(s32(rt));
      int32_t* crow = g.c + int64_t{i} * g.ldc;
      for (int32_t j = 0; j < g.n; j += 8) {
        const int32_t cnt = g.n - j < 8 ? g.n - j : 8;
        __m256i v = load8(crow + j, cnt);
        v = _mm256_add_epi32(v, _mm256_mullo_epi32(v_sumb_coef, load8(sumb + j, cnt)));
        v = _mm256_add_epi32(v, row_term);
        if (g.col_add != nullptr) v = _mm256_add_epi32(v, load8(g.col_add + j, cnt));
        _mm256_mask_storeu_epi32(crow + j, static_cast<__mmask8>((1u << cnt) - 1), v);
      }
    }
  };
  drive(p, g.scratch, g.c, g.ldc, fin);
}

int32_t gemm_s8_scratch(int32_t m, int32_t n, int32_t k, bool s4) {
  return clamp32(scratch_bytes(m, n, k, s4, true));
}
int32_t gemm_s32_scratch(int32_t m, int32_t n, int32_t k) {
  return clamp32(scratch_bytes(m, n, k, false, false));
}

// Prepacked b: the k4 layout (path_kernels.hpp), shared with the AMX path. Here the a rows are
// broadcast 4 bytes at a time and multiplied into whole 64-byte lines of b: one vpdpbusd per
// weight load, 16 output columns per accumulator, no horizontal sums, and the column sums of b
// come precomputed. m > 1 runs 6x64 tiles (24 accumulators; 4x64 tiles took 3-15 % longer on
// an AVX-512 core at 16x256x256 to 1024^3). GEMV passes cover 64 columns: wider passes read 8
// or 16 blocks of b at once, which at k = 256 lie exactly 4 KiB apart,
// one L1 set (16 blocks: 1x256x256 took 1.7x as long as with 4).
constexpr int32_t kK4Mr = 6;       // rows of a per tile (m > 1)
constexpr int32_t kK4Nb = 4;       // 16-column blocks per tile (m > 1)
constexpr int32_t kK4GemvNb = 4;   // 16-column blocks per GEMV pass
constexpr int32_t kK4Ld = 5 * 16;  // row stride (int32) of the raw tile buffer: a tile's 64
                                   // columns and the readable slack past them (EpilogueS8)
static_assert(kK4Ld >= 16 * (kK4Nb > kK4GemvNb ? kK4Nb : kK4GemvNb) + 1, "tile buffer row");

inline int32_t round_up(int32_t v, int32_t to) {
  return (v + to - 1) / to * to;
}

// D[i][c] = sum_k (a[i][k] + 128) * b[j0 + c][k] for MR rows and NB blocks of 16 columns, into
// d[i * kK4Ld + c]. af: the rows of a xor 0x80 (stride ld_af, readable to 4 * groups);
// bp: the k4 line of group 0 of the first block; bs: bytes between 16-column blocks.
// The loops over the tile are unrolled by pragma: GCC 12 unrolls at most 16 iterations of a
// nest on its own, and an accumulator array it does not unroll stays in memory (every
// vpdpbusd then stores its result), which halves the speed of tiles over 16 accumulators.
template <int MR, int NB>
void k4_tile(const uint8_t* af, ptrdiff_t ld_af, const int8_t* bp, ptrdiff_t bs, int32_t groups,
             int32_t* d) {
  __m512i acc[MR][NB];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int nb = 0; nb < NB; ++nb) acc[i][nb] = _mm512_setzero_si512();
  for (int32_t q = 0; q < groups; ++q, bp += 64) {
    __m512i bv[NB];
#pragma GCC unroll 16
    for (int nb = 0; nb < NB; ++nb) bv[nb] = _mm512_loadu_si512(bp + nb * bs);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      int32_t w = 0;
      std::memcpy(&w, af + i * ld_af + 4 * q, 4);
      const __m512i av = _mm512_set1_epi32(w);
#pragma GCC unroll 16
      for (int nb = 0; nb < NB; ++nb) acc[i][nb] = _mm512_dpbusd_epi32(acc[i][nb], av, bv[nb]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int nb = 0; nb < NB; ++nb) _mm512_storeu_si512(d + i * kK4Ld + nb * 16, acc[i][nb]);
}

using K4TileFn = void (*)(const uint8_t*, ptrdiff_t, const int8_t*, ptrdiff_t, int32_t, int32_t*);

template <int MR, int... NB>
constexpr std::array<K4TileFn, sizeof...(NB)> k4_row(std::integer_sequence<int, NB...>) {
  return {k4_tile<MR, NB + 1>...};
}
template <int... MR>
constexpr std::array<std::array<K4TileFn, kK4Nb>, kK4Mr> k4_table(
    std::integer_sequence<int, MR...>) {
  return {k4_row<MR + 1>(std::make_integer_sequence<int, kK4Nb>{})...};
}
// [mr - 1][nb - 1] for m > 1; [nb - 1] for the GEMV.
constexpr auto kK4Tiles = k4_table(std::make_integer_sequence<int, kK4Mr>{});
constexpr auto kK4Gemv = k4_row<1>(std::make_integer_sequence<int, kK4GemvNb>{});

// What k4_drive reads of a call: the same for the int8-output and int32-output runs.
struct K4Call {
  int32_t m, n, k;
  const int8_t* a;
  int32_t lda;
  void* scratch;   // k4_gemm_scratch_avx512vnni() bytes
  uint32_t b_off;  // row term of row i: b_off * rowsum(a)[i] (+ row_add[i])
  const int32_t* row_add;
};

// Scratch: a rows xor 0x80 [kK4Mr][k64] | raw D [kK4Mr][kK4Ld] int32 | epilogue arrays.
int32_t* k4_epilogue_arrays(void* scratch, int32_t k) {
  return reinterpret_cast<int32_t*>((reinterpret_cast<uintptr_t>(scratch) + 63) / 64 * 64 +
                                    uintptr_t{kK4Mr} * static_cast<uintptr_t>(round_up(k, 64)) +
                                    4 * uintptr_t{kK4Mr} * kK4Ld);
}

const int32_t* k4_colsum(const void* packed, int32_t n, int32_t k) {
  return reinterpret_cast<const int32_t*>(static_cast<const int8_t*>(packed) +
                                          int64_t{round_up(k, 64)} * round_up(n, 16));
}

// |D| for D = sum_k (a + 128) * b: at most k * 255 * 128; -1 where that passes int32.
int64_t k4_d_bound(int32_t k) {
  const int64_t bound = int64_t{k} * 255 * 128;
  return bound <= INT32_MAX ? bound : -1;
}

// Runs the tiles over k4-packed b and calls fin(i, rows, j0, cnt, d, ldd, term) for each block
// of up to 16 finished columns of a tile's rows: d points at the raw D of (i, j0), row stride
// ldd, with 4 readable bytes past each row; term at the rows' terms, or null when every row
// term is 0 (b_off 0, no row_add).
template <class Finish>
void k4_drive(const K4Call& g, const void* packed, Finish&& fin) {
  const int32_t n16 = round_up(g.n, 16);
  const int32_t k64 = round_up(g.k, 64);
  const int32_t groups = (g.k + 3) / 4;
  const ptrdiff_t bs = 16 * ptrdiff_t{k64};  // bytes per 16-column block
  const auto* pb = static_cast<const int8_t*>(packed);
  auto* af = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(g.scratch) + 63) / 64 * 64);
  auto* d = reinterpret_cast<int32_t*>(af + int64_t{kK4Mr} * k64);  // then colterm [n]
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi8(1);
  const bool with_terms = g.b_off != 0 || g.row_add != nullptr;
  const int32_t mr_max = g.m == 1 ? 1 : kK4Mr;
  for (int32_t i0 = 0; i0 < g.m; i0 += mr_max) {
    const int32_t mr = g.m - i0 < mr_max ? g.m - i0 : mr_max;
    int32_t term[kK4Mr] = {};
    for (int32_t r = 0; r < mr; ++r) {
      const int8_t* src = g.a + int64_t{i0 + r} * g.lda;
      uint8_t* dst = af + int64_t{r} * k64;
      __m512i sum = _mm512_setzero_si512();
      for (int32_t t = 0; t < g.k; t += 64) {
        const __m512i v = _mm512_maskz_loadu_epi8(tail_mask(g.k - t), src + t);
        if (with_terms) sum = _mm512_dpbusd_epi32(sum, ones, v);
        _mm512_storeu_si512(dst + t, _mm512_xor_si512(v, flip));
      }
      if (with_terms) {
        uint32_t t = g.b_off * u32(reduce1(sum));
        if (g.row_add != nullptr) t += u32(g.row_add[i0 + r]);
        term[r] = s32(t);
      }
    }
    const int32_t nb_max = g.m == 1 ? kK4GemvNb : kK4Nb;
    for (int32_t j0 = 0; j0 < g.n; j0 += nb_max * 16) {
      const int32_t nb = (n16 - j0) / 16 < nb_max ? (n16 - j0) / 16 : nb_max;
      (g.m == 1 ? kK4Gemv[nb - 1] : kK4Tiles[mr - 1][nb - 1])(af, k64, pb + j0 / 16 * bs, bs,
                                                              groups, d);
      for (int32_t c = 0; c < nb * 16 && j0 + c < g.n; c += 16) {
        const int32_t cnt = g.n - j0 - c < 16 ? g.n - j0 - c : 16;
        fin(i0, mr, j0 + c, cnt, d + c, kK4Ld, with_terms ? term : nullptr);
      }
    }
  }
}

void pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, int32_t /*b_offset*/, void* out) {
  k4_pack(b, n, k, ldb, out);
}

int64_t packed_bytes(int32_t n, int32_t k) {
  return k4_packed_bytes(n, k);
}

int32_t gemm_s8_packed_scratch(int32_t m, int32_t n, int32_t k) {
  return k4_gemm_scratch_avx512vnni(m, n, k);
}

void gemm_s8_packed(const GemmS8Args& g, const void* packed) {
  k4_gemm_s8_avx512vnni(g, packed);
}

void gemm_s32_packed(const GemmS32Args& g, const void* packed) {
  k4_gemm_s32_avx512vnni(g, packed);
}

constexpr PackedGemmKernels kPackedTable{
    Path::kAvx512Vnni, packed_bytes, pack, gemm_s8_packed, gemm_s8_packed_scratch, gemm_s32_packed};

constexpr PathKernels kTable{Path::kAvx512Vnni,           gemm_s8,         gemm_s32,
                             s8_dwconv_1x32c2_avx512vnni, gemm_s8_scratch, gemm_s32_scratch};

}  // namespace

const PathKernels* avx512vnni_kernels() noexcept {
  return &kTable;
}
const PackedGemmKernels* avx512vnni_packed_kernels() noexcept {
  return &kPackedTable;
}

int64_t k4_packed_bytes(int32_t n, int32_t k) noexcept {
  const int64_t n16 = round_up(n, 16);
  return int64_t{round_up(k, 64)} * n16 + 4 * n16;
}

// Gathers one dword (4 k of one column) from each of 16 rows of b per 64-byte line; the column
// sums accumulate on the way (vpdpbusd with 1 as the unsigned operand). Rows past n and bytes
// past k are zero.
void k4_pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, void* out) noexcept {
  const int32_t n16 = round_up(n, 16);
  const int32_t kp = round_up(k, 64);
  auto* dst = static_cast<int8_t*>(out);
  int8_t* colsum = dst + int64_t{kp} * n16;
  const int32_t full = k / 4;
  const bool gather = int64_t{ldb} * 15 <= INT32_MAX;
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(ldb));
  for (int32_t j0 = 0; j0 < n16; j0 += 16) {
    const int32_t cols = n - j0 < 16 ? n - j0 : 16;
    const __mmask16 cm = lanes16(cols);
    const int8_t* src = b + int64_t{j0} * ldb;
    int8_t* line = dst + int64_t{j0} * kp;  // block j0 / 16 of 16 * kp bytes
    __m512i sum = _mm512_setzero_si512();
    for (int32_t q = 0; q < kp / 4; ++q, line += 64) {
      __m512i v;
      if (q < full && gather) {
        v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), cm, idx, src + 4 * q, 1);
      } else {
        alignas(64) int8_t tmp[64] = {};
        const int32_t len = k - 4 * q < 4 ? k - 4 * q : 4;  // <= 0 past k: stays zero
        for (int32_t c = 0; c < cols; ++c)
          for (int32_t t = 0; t < len; ++t) tmp[4 * c + t] = src[int64_t{c} * ldb + 4 * q + t];
        v = _mm512_load_si512(tmp);
      }
      sum = _mm512_dpbusd_epi32(sum, ones, v);
      _mm512_storeu_si512(line, v);
    }
    _mm512_storeu_si512(colsum + 4 * int64_t{j0}, sum);
  }
}

// m > 1 hands raw D to the epilogue without row terms where b_offset is 0, so the column term
// and the output offset ride in the requantization's bias (EpilogueS8::rows); k * ao * bo is
// in the column term.
void k4_gemm_s8_avx512vnni(const GemmS8Args& g, const void* packed) noexcept {
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  const int32_t coef = s32(u32(g.a_offset) - 128u);
  const EpilogueS8 e =
      make_epilogue_s8(g, coef, k4_colsum(packed, g.n, g.k), k4_epilogue_arrays(g.scratch, g.k),
                       g.m > 1,  // a GEMV finishes each 16 columns once
                       s32(kab), g.m > 1 && g.b_offset == 0 ? k4_d_bound(g.k) : -1);
  k4_drive(K4Call{g.m, g.n, g.k, g.a, g.lda, g.scratch, u32(g.b_offset), nullptr}, packed,
           [&e](int32_t i, int32_t rows, int32_t j0, int32_t cnt, const int32_t* d, int32_t ldd,
                const int32_t* term) { e.rows(i, rows, j0, cnt, d, ldd, term); });
}

// The int32-out run: the same tiles, the raw sum plus the column term (k * ao * bo and col_add
// folded in) and the row term stored as they are.
void k4_gemm_s32_avx512vnni(const GemmS32Args& g, const void* packed) noexcept {
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  const int32_t coef = s32(u32(g.a_offset) - 128u);
  int32_t* colterm = k4_epilogue_arrays(g.scratch, g.k);
  make_colterm(g.n, coef, k4_colsum(packed, g.n, g.k), g.col_add, colterm, s32(kab));
  const EpilogueS32 e{g.c, g.ldc, colterm};
  k4_drive(K4Call{g.m, g.n, g.k, g.a, g.lda, g.scratch, u32(g.b_offset), g.row_add}, packed,
           [&e](int32_t i, int32_t rows, int32_t j0, int32_t cnt, const int32_t* d, int32_t ldd,
                const int32_t* term) { e.rows(i, rows, j0, cnt, d, ldd, term); });
}

int32_t k4_gemm_scratch_avx512vnni(int32_t /*m*/, int32_t n, int32_t k) noexcept {
  return clamp32(int64_t{kK4Mr} * round_up(k, 64) + 4 * int64_t{kK4Mr} * kK4Ld +
                 4 * int64_t{kEpilogueArrays} * round_up(n, 16) + 64);
}

}  // namespace tinyquant::rt::detail
