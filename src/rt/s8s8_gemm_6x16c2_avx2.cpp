// AVX2 path: s8 x s8 GEMM on vpmaddwd, outer-product orientation, 6x16 register block.
//
// b is laid out as 16-column panels of int16 (b + bo) with k pairs interleaved: step t of a
// panel is one 64-byte line [16 columns][2 k], so one ymm holds 8 columns x 2 k values. a is
// widened once per block of rows to int16 (a + ao), row-major with k rounded up to even; one
// (k, k + 1) pair of a row is broadcast to all eight dwords (vpbroadcastd) and vpmaddwd against
// the two ymm of the panel line adds its contribution to 16 outputs of that row. Twelve ymm
// accumulators hold the 6x16 block over the whole of k: no horizontal sums, and the epilogue
// (requantization, or the int32 adds) runs straight from the finished block.
//
// Exactness: (a + ao) and (b + bo) are each in [-256, 255], so a product is at most 2^16 and a
// pair sum fits int32 exactly; accumulation wraps mod 2^32 like the reference. An odd k gets a
// zero pair partner on both sides, so the padding contributes 0.
//
// Prepacked weights (PackedGemmKernels of the avx2 path) are the panels, one after another. Plain
// calls with enough rows to pay for it pack one panel at a time into scratch.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kMr = 6;                  // rows of a per register block
constexpr int32_t kNr = 16;                 // columns (rows of b) per panel
constexpr int32_t kBlockBytes = 96 * 1024;  // widened a rows kept hot across a sweep of b

#include "x86_avx2_common.inc"  // loads, blocking, size helpers: this file's flags

// k rounded up to the pair size.
inline int64_t k_pairs(int32_t k) {
  return (int64_t{k} + 1) / 2;
}
// Rows of a widened per block (4 bytes per k pair each).
int32_t block_rows(int32_t m, int32_t k) {
  return rows_per_block(m, clamp32(4 * k_pairs(k)));
}
// 16 int16 lanes: all ones for lanes below count, zero from count on.
inline __m256i lanes_below(int32_t count) {
  const __m256i idx = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm256_cmpgt_epi16(_mm256_set1_epi16(static_cast<int16_t>(count)), idx);
}
// 16 values of p from kk on (k in total), widened, plus `offset`; lanes at or past k are 0.
inline __m256i widen16(const int8_t* p, int32_t kk, int32_t k, __m256i offset) {
  if (kk + 16 <= k) {
    return _mm256_add_epi16(load16_s8(p + kk), offset);
  }
  const int32_t rem = k - kk;
  return _mm256_and_si256(_mm256_add_epi16(load16_s8_partial(p + kk, rem), offset),
                          lanes_below(rem));
}

// Rows a[0, rows) (stride lda) to int16 (a + ao) at out + r * 2 * pairs, zero-padded to 2 * pairs.
void widen_rows(const int8_t* a, int32_t lda, int32_t rows, int32_t k, int32_t a_offset,
                int16_t* out) {
  const int64_t kp = 2 * k_pairs(k);
  const __m256i ao = _mm256_set1_epi16(static_cast<int16_t>(a_offset));
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t* src = a + int64_t{r} * lda;
    int16_t* dst = out + r * kp;
    int32_t kk = 0;
    for (; kk + 16 <= k; kk += 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + kk), widen16(src, kk, k, ao));
    }
    if (kk < kp) {
      alignas(32) int16_t tmp[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), widen16(src, kk, k, ao));
      std::memcpy(dst + kk, tmp, sizeof(int16_t) * static_cast<size_t>(kp - kk));
    }
  }
}

// One panel: rows b[0, cols) (stride ldb), cols <= 16, as int16 (b + bo) lines [pairs][16][2];
// columns past cols and the odd-k partner are 0.
void pack_panel(const int8_t* b, int32_t ldb, int32_t cols, int32_t k, int32_t b_offset,
                int16_t* out) {
  const int64_t pairs = k_pairs(k);
  const __m256i bo = _mm256_set1_epi16(static_cast<int16_t>(b_offset));
  for (int32_t g = 0; g < kNr; g += 8) {
    for (int32_t kk = 0; kk < k; kk += 16) {
      // v[r]: the 8 pairs (dwords) of column g + r from kk on; then an 8x8 dword transpose so
      // that w[t] holds pair kk / 2 + t of the 8 columns.
      __m256i v[8];
      for (int32_t r = 0; r < 8; ++r) {
        v[r] = g + r < cols ? widen16(b + int64_t{g + r} * ldb, kk, k, bo) : _mm256_setzero_si256();
      }
      __m256i t[8], w[8];
      for (int32_t r = 0; r < 8; r += 2) {
        t[r] = _mm256_unpacklo_epi32(v[r], v[r + 1]);
        t[r + 1] = _mm256_unpackhi_epi32(v[r], v[r + 1]);
      }
      for (int32_t h = 0; h < 8; h += 4) {
        v[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);          // pairs 0 | 4
        v[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);      // pairs 1 | 5
        v[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);  // pairs 2 | 6
        v[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);  // pairs 3 | 7
      }
      for (int32_t q = 0; q < 4; ++q) {
        w[q] = _mm256_permute2x128_si256(v[q], v[q + 4], 0x20);
        w[q + 4] = _mm256_permute2x128_si256(v[q], v[q + 4], 0x31);
      }
      const int64_t first = kk / 2;
      const int64_t count = pairs - first < 8 ? pairs - first : 8;
      for (int64_t q = 0; q < count; ++q) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (first + q) * 2 * kNr + 2 * g), w[q]);
      }
    }
  }
}

// One widened row of a against one panel line (b0: columns 0-7, b1: 8-15) at pair t.
inline void row_step(const int16_t* a_row, int64_t t, __m256i b0, __m256i b1, __m256i& c0,
                     __m256i& c1) {
  int32_t pair;
  std::memcpy(&pair, a_row + 2 * t, sizeof pair);
  const __m256i av = _mm256_set1_epi32(pair);
  c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(av, b0));
  c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(av, b1));
}
inline void store_row(int32_t* out, __m256i c0, __m256i c1) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), c0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), c1);
}

// The MR x 16 block of a (MR widened rows, stride lda elements) times one panel over `pairs` k
// pairs, to out[MR][16]. Accumulators are named variables, not an array, so that all twelve
// stay in registers.
template <int MR>
void block(const int16_t* a, int64_t lda, const int16_t* panel, int64_t pairs, int32_t* out) {
  static_assert(MR >= 1 && MR <= kMr, "rows per block");
  const __m256i z = _mm256_setzero_si256();
  __m256i c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
  __m256i c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
  for (int64_t t = 0; t < pairs; ++t) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + t * 32));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + t * 32 + 16));
    row_step(a, t, b0, b1, c00, c01);
    if constexpr (MR > 1) row_step(a + lda, t, b0, b1, c10, c11);
    if constexpr (MR > 2) row_step(a + 2 * lda, t, b0, b1, c20, c21);
    if constexpr (MR > 3) row_step(a + 3 * lda, t, b0, b1, c30, c31);
    if constexpr (MR > 4) row_step(a + 4 * lda, t, b0, b1, c40, c41);
    if constexpr (MR > 5) row_step(a + 5 * lda, t, b0, b1, c50, c51);
  }
  store_row(out, c00, c01);
  if constexpr (MR > 1) store_row(out + kNr, c10, c11);
  if constexpr (MR > 2) store_row(out + 2 * kNr, c20, c21);
  if constexpr (MR > 3) store_row(out + 3 * kNr, c30, c31);
  if constexpr (MR > 4) store_row(out + 4 * kNr, c40, c41);
  if constexpr (MR > 5) store_row(out + 5 * kNr, c50, c51);
}

// GEMV on prepacked b: the row of a times four consecutive panels (64 columns) at once, to
// out[64]: eight accumulators and one broadcast per k pair instead of two and one.
constexpr int32_t kGemvPanels = 4;
void gemv_64(const int16_t* a, const int16_t* panel, int64_t pairs, int32_t* out) {
  const __m256i z = _mm256_setzero_si256();
  __m256i c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
  const int64_t stride = 2 * kNr * pairs;
  const int16_t* p1 = panel + stride;
  const int16_t* p2 = p1 + stride;
  const int16_t* p3 = p2 + stride;
  auto mac = [](__m256i av, const int16_t* line, __m256i& c0, __m256i& c1) {
    c0 = _mm256_add_epi32(
        c0, _mm256_madd_epi16(av, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line))));
    c1 = _mm256_add_epi32(
        c1,
        _mm256_madd_epi16(av, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 8 * 2))));
  };
  for (int64_t t = 0; t < pairs; ++t) {
    int32_t pair;
    std::memcpy(&pair, a + 2 * t, sizeof pair);
    const __m256i av = _mm256_set1_epi32(pair);
    mac(av, panel + t * 32, c00, c01);
    mac(av, p1 + t * 32, c10, c11);
    mac(av, p2 + t * 32, c20, c21);
    mac(av, p3 + t * 32, c30, c31);
  }
  store_row(out, c00, c01);
  store_row(out + kNr, c10, c11);
  store_row(out + 2 * kNr, c20, c21);
  store_row(out + 3 * kNr, c30, c31);
}

using BlockFn = void (*)(const int16_t*, int64_t, const int16_t*, int64_t, int32_t*);
constexpr BlockFn kBlocks[kMr] = {block<1>, block<2>, block<3>, block<4>, block<5>, block<6>};

struct Problem {
  int32_t m, n, k;
  const int8_t* a;
  int32_t lda;
  int32_t a_offset;
  const int16_t* packed;  // panels, or null: pack b one panel at a time
  const int8_t* b;
  int32_t ldb;
  int32_t b_offset;
};

// Scratch: widened a block | one panel (plain b only).
int64_t scratch_bytes(int32_t m, int32_t k, bool plain) {
  const int64_t pairs = k_pairs(k);
  return align64(4 * int64_t{block_rows(m, k)} * pairs) + (plain ? align64(4 * kNr * pairs) : 0);
}

// Calls store(i0, rows, j0, cols, tile) for every finished block, tile[rows][16] (cols valid;
// a GEMV block is one row of up to 64 columns).
template <class Store>
void drive(const Problem& p, void* scratch, Store&& store) {
  const int64_t pairs = k_pairs(p.k);
  const int32_t mc = block_rows(p.m, p.k);
  auto* a16 = static_cast<int16_t*>(scratch);
  int16_t* panel_buf = a16 + align64(4 * int64_t{mc} * pairs) / 2;
  alignas(32) int32_t tile[kMr * kNr];
  static_assert(kMr * kNr >= kGemvPanels * kNr, "a GEMV block fits the tile");
  for (int32_t ic = 0; ic < p.m; ic += mc) {
    const int32_t mb = p.m - ic < mc ? p.m - ic : mc;
    widen_rows(p.a + int64_t{ic} * p.lda, p.lda, mb, p.k, p.a_offset, a16);
    int32_t j0 = 0;
    if (p.m == 1 && p.packed != nullptr) {  // GEMV: four panels a pass while whole ones remain
      for (; j0 + kGemvPanels * kNr <= p.n; j0 += kGemvPanels * kNr) {
        gemv_64(a16, p.packed + (j0 / kNr) * pairs * 2 * kNr, pairs, tile);
        store(0, 1, j0, kGemvPanels * kNr, tile);
      }
    }
    for (; j0 < p.n; j0 += kNr) {
      const int32_t cols = p.n - j0 < kNr ? p.n - j0 : kNr;
      const int16_t* panel = panel_buf;
      if (p.packed != nullptr) {
        panel = p.packed + (j0 / kNr) * pairs * 2 * kNr;
      } else {
        pack_panel(p.b + int64_t{j0} * p.ldb, p.ldb, cols, p.k, p.b_offset, panel_buf);
      }
      for (int32_t i0 = 0; i0 < mb; i0 += kMr) {
        const int32_t rows = mb - i0 < kMr ? mb - i0 : kMr;
        kBlocks[rows - 1](a16 + i0 * 2 * pairs, 2 * pairs, panel, pairs, tile);
        store(ic + i0, rows, j0, cols, tile);
      }
    }
  }
}

void run_s8(const GemmS8Args& g, const int16_t* packed) {
  const Problem p{g.m, g.n, g.k, g.a, g.lda, g.a_offset, packed, g.b, g.ldb, g.b_offset};
  drive(p, g.scratch, [&](int32_t i0, int32_t rows, int32_t j0, int32_t cols, const int32_t* t) {
    for (int32_t r = 0; r < rows; ++r) {
      avx2_requantize_row(g, j0, cols, t + r * kNr, g.c + int64_t{i0 + r} * g.ldc + j0);
    }
  });
}

// The int32-out run: both offsets are already in the operands, so each block is stored as it
// is, plus col_add and row_add.
void run_s32(const GemmS32Args& g, const int16_t* packed) {
  const Problem p{g.m, g.n, g.k, g.a, g.lda, g.a_offset, packed, g.b, g.ldb, g.b_offset};
  drive(p, g.scratch, [&](int32_t i0, int32_t rows, int32_t j0, int32_t cols, const int32_t* t) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int32_t h = 0; h < cols; h += 8) {
      // Lanes of this half inside [0, cols): masked loads and stores touch nothing else.
      const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - h), lane);
      const __m256i col = g.col_add != nullptr ? _mm256_maskload_epi32(g.col_add + j0 + h, keep)
                                               : _mm256_setzero_si256();
      for (int32_t r = 0; r < rows; ++r) {
        const int32_t i = i0 + r;
        __m256i v = _mm256_add_epi32(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(t + r * kNr + h)), col);
        if (g.row_add != nullptr) v = _mm256_add_epi32(v, _mm256_set1_epi32(g.row_add[i]));
        _mm256_maskstore_epi32(g.c + int64_t{i} * g.ldc + j0 + h, keep, v);
      }
    }
  });
}

// Prepacked b: panels [ceil(n / 16)][ceil(k / 2)][16][2] int16 (b + bo), zero-padded.
int64_t packed_bytes(int32_t n, int32_t k) {
  return 4 * int64_t{(n + kNr - 1) / kNr} * kNr * k_pairs(k);
}

void pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, int32_t b_offset, void* out) {
  auto* dst = static_cast<int16_t*>(out);
  const int64_t panel_elems = 2 * kNr * k_pairs(k);
  for (int32_t j0 = 0; j0 < n; j0 += kNr) {
    pack_panel(b + int64_t{j0} * ldb, ldb, n - j0 < kNr ? n - j0 : kNr, k, b_offset,
               dst + (j0 / kNr) * panel_elems);
  }
}

void gemm_s8_packed(const GemmS8Args& g, const void* packed) {
  run_s8(g, static_cast<const int16_t*>(packed));
}
int32_t gemm_s8_packed_scratch(int32_t m, int32_t, int32_t k) {
  return clamp32(scratch_bytes(m, k, false));
}

void gemm_s32_packed(const GemmS32Args& g, const void* packed) {
  run_s32(g, static_cast<const int16_t*>(packed));
}

constexpr PackedGemmKernels kPackedTable{Path::kAvx2,    packed_bytes,           pack,
                                         gemm_s8_packed, gemm_s8_packed_scratch, gemm_s32_packed};

}  // namespace

void avx2_c2_gemm_s8(const GemmS8Args& g) {
  run_s8(g, nullptr);
}

void avx2_c2_gemm_s32(const GemmS32Args& g) {
  run_s32(g, nullptr);
}

int32_t avx2_c2_scratch(int32_t m, int32_t k) {
  return clamp32(scratch_bytes(m, k, true));
}

const PackedGemmKernels* avx2_packed_kernels() noexcept {
  return &kPackedTable;
}

}  // namespace tinyquant::rt::detail
