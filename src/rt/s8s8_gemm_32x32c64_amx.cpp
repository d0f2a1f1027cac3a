// AMX-INT8 path: s8 x s8 GEMM on tdpbssd, 32x32 output blocks held in four 16x16 int32 tiles.
//
// Tiles: tmm0-3 accumulate C (16 rows x 16 int32 each), tmm4-5 hold two 16-row x 64-byte panels
// of a, tmm6-7 two B tiles of b in the k4 layout (path_kernels.hpp: 16 groups of 4 k x 16
// columns). Each 64-k step is 4 tile loads and 4 tdpbssd. The last <= 16 rows of a panel (all
// of them when m <= 16) run 16-row blocks up to 64 columns wide instead, so no padding rows are
// computed. tdpbssd multiplies signed by signed bytes, so no +128 trick is needed:
//   sum_k (a + ao)(b + bo) = D + ao * colsum(b) + bo * rowsum(a) + k * ao * bo,  D = sum_k a * b
// all mod 2^32, bit-exact with the reference for any offsets; ao * colsum(b) + k * ao * bo
// (+ bias) is one per-column term.
//
// a is taken 32 rows at a time (one row of blocks, whose a stays in L1 while b streams past).
// With b_offset 0 (symmetric weights) and no row_add there is no row term, and the tiles read a
// in place (stride lda) wherever the panel is whole 16-row tiles and the kp = k rounded up to 64
// bytes read from its last row stay inside a: the bytes past k meet zero weights. Otherwise the
// panel is copied, zero padded, its row sums taken on the way. b is packed into the k4 layout in
// scratch per call (k4_pack), or comes prepacked.
//
// Each block's C tiles are stored and requantized on the vector units right away. Spreading
// that epilogue over the 64-k steps of the next block (between its tdpbssd, as before) did not
// overlap the two units and was 2-4 % slower at 16x256x256 and 256x256x256, and so was
// interleaving it after every tdpbssd or deferring it to the end of each 32-row panel.
//
// AMX only pays once the 16-row tiles are mostly full: calls with m < kAmxMinM (GEMV, small
// batches) and int4 weights run the AVX-512 VNNI kernels instead, with their scratch. The
// dispatch (dispatch.cpp) reports this path only where the CPU has AMX-INT8 and AVX-512 VNNI and
// the OS granted the tile state.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

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

constexpr int32_t kAmxMinM = 16;    // below: AVX-512 VNNI kernels
constexpr int32_t kPanelRows = 32;  // rows of a per panel
constexpr int32_t kBm = 32;         // output block: rows
constexpr int32_t kBn = 32;         // output block: columns

inline uint32_t u32(int32_t v) {
  return static_cast<uint32_t>(v);
}
inline int32_t s32(uint32_t v) {
  return static_cast<int32_t>(v);
}
inline int32_t round_up(int32_t v, int32_t to) {
  return (v + to - 1) / to * to;
}
inline int64_t align64(int64_t v) {
  return (v + 63) / 64 * 64;
}
inline int32_t clamp32(int64_t v) {
  return v > INT32_MAX ? INT32_MAX : static_cast<int32_t>(v);
}
inline uint8_t* align_ptr(void* p) {
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 63) / 64 * 64);
}

// The memory image ldtilecfg reads (palette 1).
struct TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// Every tile used is 16 rows x 64 bytes.
void configure_tiles() {
  alignas(64) TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

// Raw D of a (16 * TA) x (16 * TB) block, left in tmm0-3, C tile (r, c) in tmm(r * TB + c)
// (stored by amx_store). ap: the block's rows of a (stride ld_a, kp bytes read of each: any
// bytes past k meet zero weights); bp: the block's first
// 16-column k4 block (the next ones follow at 16 * kp bytes each). Shapes: 32x16, 32x32 (TA 2)
// and 16x16 .. 16x64 (TA 1, for the last <= 16 rows: no padding rows computed, and four
// independent accumulators); with TA 1 and TB 4 the fourth B tile reuses tmm6 once the first
// tdpbssd has read it.
template <int TA, int TB>
void amx_compute(const int8_t* ap, int64_t ld_a, int32_t kp, const int8_t* bp) {
  static_assert(TA * TB <= 4 && (TA == 1 || TB <= 2), "four C tiles, two A or four B tiles");
  _tile_zero(0);
  if constexpr (TA * TB > 1) _tile_zero(1);
  if constexpr (TA * TB > 2) _tile_zero(2);
  if constexpr (TA * TB > 3) _tile_zero(3);
  const ptrdiff_t nb = int64_t{16} * kp;  // bytes of one 16-column k4 block
  const int32_t steps = kp / 64;
  for (int32_t s = 0; s < steps; ++s) {
    const int32_t kk = 64 * s;
    const int8_t* bk = bp + kk * 16;  // 1 KiB per 64-k step of a 16-column block
    _tile_loadd(4, ap + kk, ld_a);
    _tile_loadd(6, bk, 64);
    _tile_dpbssd(0, 4, 6);
    if constexpr (TB > 1) {
      _tile_loadd(7, bk + nb, 64);
      _tile_dpbssd(1, 4, 7);
    }
    if constexpr (TA > 1) {
      _tile_loadd(5, ap + 16 * ld_a + kk, ld_a);
      if constexpr (TB == 1) {
        _tile_dpbssd(1, 5, 6);
      } else {
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
      }
    }
    if constexpr (TA == 1 && TB > 2) {
      _tile_loadd(5, bk + 2 * nb, 64);
      _tile_dpbssd(2, 4, 5);
    }
    if constexpr (TA == 1 && TB > 3) {
      _tile_loadd(6, bk + 3 * nb, 64);
      _tile_dpbssd(3, 4, 6);
    }
  }
}

// tmm0-3 into c (row stride 16 * TB int32), C tile t at block position (t / TB, t % TB). The
// tile number is spelled out: the intrinsics paste it into the instruction text.
template <int TA, int TB>
void amx_store(int32_t* c) {
  constexpr int32_t kLd = 16 * TB;
  auto at = [c](int t) { return c + (t / TB) * 16 * kLd + (t % TB) * 16; };
  _tile_stored(0, at(0), 4 * kLd);
  if constexpr (TA * TB > 1) _tile_stored(1, at(1), 4 * kLd);
  if constexpr (TA * TB > 2) _tile_stored(2, at(2), 4 * kLd);
  if constexpr (TA * TB > 3) _tile_stored(3, at(3), 4 * kLd);
}

// One (16 * TA) x (16 * TB) block: computed, then stored to c.
template <int TA, int TB>
void amx_block_of(const int8_t* ap, int64_t ld_a, int32_t kp, const int8_t* bp, int32_t* c) {
  amx_compute<TA, TB>(ap, ld_a, kp, bp);
  amx_store<TA, TB>(c);
}

// The block shapes the driver uses: 16 x 16..64 (ta = 1) and 32 x 16 / 32 x 32 (ta = 2).
void amx_block(int ta, int tb, const int8_t* ap, int64_t ld_a, int32_t kp, const int8_t* bp,
               int32_t* c) {
  using Block = void (*)(const int8_t*, int64_t, int32_t, const int8_t*, int32_t*);
  static constexpr Block kOneRow[] = {amx_block_of<1, 1>, amx_block_of<1, 2>, amx_block_of<1, 3>,
                                      amx_block_of<1, 4>};
  const Block f = ta == 1 ? kOneRow[tb - 1] : tb == 1 ? amx_block_of<2, 1> : amx_block_of<2, 2>;
  f(ap, ld_a, kp, bp, c);
}

// Scratch after the (optional) packed b: panel [kPanelRows][kp] | C block [kBm][kBn] int32 and
// 64 bytes (the int8 epilogue may read each 16 int32 of a row again from one int32 further on,
// so up to 4 bytes past the block) | epilogue arrays [kEpilogueArrays][n16] int32.
constexpr int64_t kCBlockBytes = 4 * int64_t{kBm} * kBn + 64;
int64_t panel_bytes(int32_t n, int32_t k) {
  return int64_t{kPanelRows} * round_up(k, 64) + kCBlockBytes +
         4 * int64_t{kEpilogueArrays} * round_up(n, 16);
}
int32_t* colterm_of(uint8_t* work, int32_t k) {
  return reinterpret_cast<int32_t*>(work + int64_t{kPanelRows} * round_up(k, 64) + kCBlockBytes);
}

// The per-row part of the offsets: b_offset * rowsum(a)[i] (+ row_add[i] for gemm_s32). With
// b_offset 0 and no row_add there is none, and the panel copy skips the row sums.
struct RowTerms {
  uint32_t b_offset;
  const int32_t* row_add;  // [m] or null
};

// Copies rows [p0, p0 + prow) of a into the panel (rows up to prow16 zero, bytes past k zero)
// and, when rows.b_offset or rows.row_add is set, their row terms into term; returns whether it
// did.
bool copy_panel(const int8_t* a, int32_t lda, int32_t k, int32_t p0, int32_t prow, int8_t* panel,
                int32_t kp, RowTerms rows, int32_t* term) {
  const int32_t prow16 = round_up(prow, 16);
  const bool sums = rows.b_offset != 0;
  const __m512i ones = _mm512_set1_epi8(1);
  for (int32_t r = 0; r < prow16; ++r) {
    int8_t* dst = panel + int64_t{r} * kp;
    if (r >= prow) {  // rows past m: zero, their outputs are dropped
      std::memset(dst, 0, static_cast<size_t>(kp));
      continue;
    }
    const int8_t* src = a + int64_t{p0 + r} * lda;
    __m512i sum = _mm512_setzero_si512();
    for (int32_t t = 0; t < kp; t += 64) {
      const int32_t left = k - t;
      const __mmask64 mk = left >= 64 ? ~__mmask64{0}
                           : left > 0 ? (__mmask64{1} << left) - 1
                                      : __mmask64{0};
      const __m512i v = _mm512_maskz_loadu_epi8(mk, src + t);
      if (sums) sum = _mm512_dpbusd_epi32(sum, ones, v);
      _mm512_storeu_si512(dst + t, v);
    }
    if (sums || rows.row_add != nullptr) {
      uint32_t t = sums ? rows.b_offset * u32(_mm512_reduce_add_epi32(sum)) : 0u;
      if (rows.row_add != nullptr) t += u32(rows.row_add[p0 + r]);
      term[r] = s32(t);
    }
  }
  return sums || rows.row_add != nullptr;
}

// Runs the blocks over k4-packed b and calls fin(i, rows, j0, cnt, d, ldd, term) for each
// finished run of rows [i, i + rows) x columns [j0, j0 + cnt) (cnt <= 16), d pointing at the raw
// D of (i, j0) with row stride ldd, term at the rows' terms or null.
template <class Finish>
void amx_drive(int32_t m, int32_t n, int32_t k, const int8_t* a, int32_t lda, const int8_t* pb,
               uint8_t* work, RowTerms rows, Finish&& fin) {
  const int32_t kp = round_up(k, 64);
  const int32_t n16 = round_up(n, 16);
  auto* panel = reinterpret_cast<int8_t*>(work);
  int32_t term[kPanelRows];  // row terms of the panel's rows
  bool with_terms = false;
  auto* cbuf = reinterpret_cast<int32_t*>(work + int64_t{kPanelRows} * kp);
  const int8_t* ap = panel;  // rows of the current panel
  int64_t ld_a = kp;
  auto block = [&](int32_t p0, int32_t i0, int32_t rows_in, int32_t j0, int ta, int tb) {
    amx_block(ta, tb, ap + i0 * ld_a, ld_a, kp, pb + int64_t{j0} * kp, cbuf);
    const int32_t cols = n - j0 < 16 * tb ? n - j0 : 16 * tb;
    for (int32_t c = 0; c < cols; c += 16) {
      fin(p0 + i0, rows_in, j0 + c, cols - c < 16 ? cols - c : 16, cbuf + c, 16 * tb,
          with_terms ? term + i0 : nullptr);
    }
  };
  configure_tiles();
  for (int32_t p0 = 0; p0 < m; p0 += kPanelRows) {
    const int32_t prow = m - p0 < kPanelRows ? m - p0 : kPanelRows;
    // The tiles read a in place when no row terms are needed, the panel is whole 16-row tiles,
    // kp bytes from its last row stay inside a ((m - 1) * lda + k bytes) and lda is not a
    // multiple of 512 (rows that far apart share few L1 sets: at 1024x1024x1024 reading in
    // place took 1.15x the time of copying); otherwise the panel is copied (zero padded, row
    // terms taken on the way).
    if (rows.b_offset == 0 && rows.row_add == nullptr && prow % 16 == 0 && lda % 512 != 0 &&
        int64_t{m - p0 - prow} * lda + k >= kp) {
      ap = a + int64_t{p0} * lda;
      ld_a = lda;
      with_terms = false;
    } else {
      ap = panel;
      ld_a = kp;
      with_terms = copy_panel(a, lda, k, p0, prow, panel, kp, rows, term);
    }
    // Rows [0, i2) in 32-row blocks (the last one may have 17..31 rows), the rest (<= 16 rows)
    // in 16-row blocks up to 64 columns wide.
    int32_t i2 = 0;
    while (prow - i2 > 16) i2 += kBm;
    if (i2 > prow) i2 = prow;
    for (int32_t j0 = 0; j0 < n16; j0 += kBn) {
      const int tb = n16 - j0 >= 32 ? 2 : 1;
      for (int32_t i0 = 0; i0 < i2; i0 += kBm) {
        block(p0, i0, prow - i0 < kBm ? prow - i0 : kBm, j0, 2, tb);
      }
    }
    if (i2 < prow) {
      for (int32_t j0 = 0; j0 < n16; j0 += 64) {
        const int32_t tb = (n16 - j0) / 16 < 4 ? (n16 - j0) / 16 : 4;
        block(p0, i2, prow - i2, j0, 1, tb);
      }
    }
  }
  _tile_release();
}

void amx_s8(const GemmS8Args& g, const int8_t* pb, uint8_t* work) {
  const int32_t* colsum =
      reinterpret_cast<const int32_t*>(pb + int64_t{round_up(g.k, 64)} * round_up(g.n, 16));
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  // One panel of rows finishes each 16 columns once: its requantization constants are built
  // where they are used instead of precomputed into scratch. Without row terms (b_offset 0) the
  // blocks hand over raw D, |D| <= k * 128 * 128 (s8 x s8), with the 4 bytes past each row of
  // the C block buffer readable.
  const EpilogueS8 e =
      make_epilogue_s8(g, g.a_offset, colsum, colterm_of(work, g.k), g.m > kPanelRows, s32(kab),
                       g.b_offset == 0 ? int64_t{g.k} * 128 * 128 : -1);
  amx_drive(g.m, g.n, g.k, g.a, g.lda, pb, work, RowTerms{u32(g.b_offset), nullptr},
            [&e](int32_t i, int32_t rows, int32_t j0, int32_t cnt, const int32_t* d, int32_t ldd,
                 const int32_t* term) { e.rows(i, rows, j0, cnt, d, ldd, term); });
}

bool use_vnni(int32_t m, bool s4) {
  return m < kAmxMinM || s4;
}

void gemm_s8(const GemmS8Args& g) {
  if (use_vnni(g.m, g.b_s4 != nullptr)) {
    avx512vnni_kernels()->gemm_s8(g);
    return;
  }
  uint8_t* pb = align_ptr(g.scratch);
  k4_pack(g.b, g.n, g.k, g.ldb, pb);
  amx_s8(g, reinterpret_cast<const int8_t*>(pb), pb + align64(k4_packed_bytes(g.n, g.k)));
}

// The int32-out run on k4-packed b: each block's tiles stored, plus the column term (k * ao *
// bo and col_add folded in) and the row terms, as they are.
void amx_s32(const GemmS32Args& g, const int8_t* pb, uint8_t* work) {
  const auto* colsum =
      reinterpret_cast<const int32_t*>(pb + int64_t{round_up(g.k, 64)} * round_up(g.n, 16));
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  int32_t* colterm = colterm_of(work, g.k);
  make_colterm(g.n, g.a_offset, colsum, g.col_add, colterm, s32(kab));
  const EpilogueS32 e{g.c, g.ldc, colterm};
  amx_drive(g.m, g.n, g.k, g.a, g.lda, pb, work, RowTerms{u32(g.b_offset), g.row_add},
            [&e](int32_t i, int32_t rows, int32_t j0, int32_t cnt, const int32_t* d, int32_t ldd,
                 const int32_t* term) { e.rows(i, rows, j0, cnt, d, ldd, term); });
}

void gemm_s32(const GemmS32Args& g) {
  if (use_vnni(g.m, false)) {
    avx512vnni_kernels()->gemm_s32(g);
    return;
  }
  uint8_t* pb = align_ptr(g.scratch);
  k4_pack(g.b, g.n, g.k, g.ldb, pb);
  amx_s32(g, reinterpret_cast<const int8_t*>(pb), pb + align64(k4_packed_bytes(g.n, g.k)));
}

int32_t gemm_s8_scratch(int32_t m, int32_t n, int32_t k, bool s4) {
  if (use_vnni(m, s4)) return avx512vnni_kernels()->gemm_s8_scratch(m, n, k, s4);
  return clamp32(align64(k4_packed_bytes(n, k)) + panel_bytes(n, k) + 64);
}

int32_t gemm_s32_scratch(int32_t m, int32_t n, int32_t k) {
  if (use_vnni(m, false)) return avx512vnni_kernels()->gemm_s32_scratch(m, n, k);
  return clamp32(align64(k4_packed_bytes(n, k)) + panel_bytes(n, k) + 64);
}

void pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, int32_t /*b_offset*/, void* out) {
  k4_pack(b, n, k, ldb, out);
}

int64_t packed_bytes(int32_t n, int32_t k) {
  return k4_packed_bytes(n, k);
}

void gemm_s8_packed(const GemmS8Args& g, const void* packed) {
  if (use_vnni(g.m, false)) {
    k4_gemm_s8_avx512vnni(g, packed);
    return;
  }
  amx_s8(g, static_cast<const int8_t*>(packed), align_ptr(g.scratch));
}

int32_t gemm_s8_packed_scratch(int32_t m, int32_t n, int32_t k) {
  if (use_vnni(m, false)) return k4_gemm_scratch_avx512vnni(m, n, k);
  return clamp32(panel_bytes(n, k) + 64);
}

void gemm_s32_packed(const GemmS32Args& g, const void* packed) {
  if (use_vnni(g.m, false)) {
    k4_gemm_s32_avx512vnni(g, packed);
    return;
  }
  amx_s32(g, static_cast<const int8_t*>(packed), align_ptr(g.scratch));
}

constexpr PackedGemmKernels kPackedTable{Path::kAmx,     packed_bytes,           pack,
                                         gemm_s8_packed, gemm_s8_packed_scratch, gemm_s32_packed};

constexpr PathKernels kTable{
    Path::kAmx, gemm_s8, gemm_s32, s8_dwconv_1x32c2_avx512vnni, gemm_s8_scratch, gemm_s32_scratch};

}  // namespace

const PathKernels* amx_kernels() noexcept {
  return &kTable;
}
const PackedGemmKernels* amx_packed_kernels() noexcept {
  return &kPackedTable;
}

}  // namespace tinyquant::rt::detail
