// AMX-INT8 path: s8 x s8 GEMM on tdpbssd, 32x32 output blocks held in four 16x16 int32 tiles.
//
// Tiles: tmm0-3 accumulate C (16 rows x 16 int32 each), tmm4-5 hold two 16-row x 64-byte panels
// of a, tmm6-7 two B tiles of b in the k4 layout (path_kernels.hpp: 16 groups of 4 k x 16
// columns). Each 64-k step is 4 tile loads and 4 tdpbssd. tdpbssd multiplies signed by signed
// bytes, so no +128 trick is needed:
//   sum_k (a + ao)(b + bo) = D + ao * colsum(b) + bo * rowsum(a) + k * ao * bo,  D = sum_k a * b
// all mod 2^32, bit-exact with the reference for any offsets.
//
// a is copied 128 rows at a time into a zero-padded panel (k rounded up to 64), its row sums
// taken on the way; b is packed into the k4 layout in scratch per call (k4_pack), or comes
// prepacked. Zero padding adds nothing to D or to the sums, so any m, n, k work.
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

constexpr int32_t kAmxMinM = 16;     // below: AVX-512 VNNI kernels
constexpr int32_t kPanelRows = 128;  // rows of a copied per panel
constexpr int32_t kBm = 32;          // output block: rows
constexpr int32_t kBn = 32;          // output block: columns

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

// Raw D of a (16 * TA) x (16 * TB) block, left in tmm0-3 (stored by amx_store).
// ap: the panel rows of the block (stride kp); bp: the block's first 16-column k4 block.
template <int TA, int TB>
void amx_compute(const int8_t* ap, int32_t kp, const int8_t* bp) {
  _tile_zero(0);
  if (TB > 1) _tile_zero(1);
  if (TA > 1) _tile_zero(2);
  if (TA > 1 && TB > 1) _tile_zero(3);
  const ptrdiff_t ld_a = kp;
  for (int32_t kk = 0; kk < kp; kk += 64) {
    const int8_t* bk = bp + kk * 16;  // 1 KiB per 64-k step of a 16-column block
    _tile_loadd(4, ap + kk, ld_a);
    _tile_loadd(6, bk, 64);
    _tile_dpbssd(0, 4, 6);
    if (TB > 1) {
      _tile_loadd(7, bk + 16 * ld_a, 64);  // the next 16-column block
      _tile_dpbssd(1, 4, 7);
    }
    if (TA > 1) {
      _tile_loadd(5, ap + 16 * ld_a + kk, ld_a);
      _tile_dpbssd(2, 5, 6);
      if (TB > 1) _tile_dpbssd(3, 5, 7);
    }
  }
}

// tmm0-3 into c (row stride kBn int32).
template <int TA, int TB>
void amx_store(int32_t* c) {
  constexpr ptrdiff_t kLdc = kBn * 4;
  _tile_stored(0, c, kLdc);
  if (TB > 1) _tile_stored(1, c + 16, kLdc);
  if (TA > 1) _tile_stored(2, c + 16 * kBn, kLdc);
  if (TA > 1 && TB > 1) _tile_stored(3, c + 16 * kBn + 16, kLdc);
}

using ComputeFn = void (*)(const int8_t*, int32_t, const int8_t*);
using StoreFn = void (*)(int32_t*);
constexpr ComputeFn kCompute[2][2] = {{amx_compute<1, 1>, amx_compute<1, 2>},
                                      {amx_compute<2, 1>, amx_compute<2, 2>}};
constexpr StoreFn kStore[2][2] = {{amx_store<1, 1>, amx_store<1, 2>},
                                  {amx_store<2, 1>, amx_store<2, 2>}};

// Scratch after the (optional) packed b: panel [kPanelRows][kp] | two C blocks [kBm][kBn]
// int32 | epilogue arrays [kEpilogueArrays][n16] int32.
int64_t panel_bytes(int32_t n, int32_t k) {
  return int64_t{kPanelRows} * round_up(k, 64) + 8 * int64_t{kBm} * kBn +
         4 * int64_t{kEpilogueArrays} * round_up(n, 16);
}
int32_t* colterm_of(uint8_t* work, int32_t k) {
  return reinterpret_cast<int32_t*>(work + int64_t{kPanelRows} * round_up(k, 64) +
                                    8 * int64_t{kBm} * kBn);
}

// Runs the blocks over k4-packed b and calls fin(i, j0, count, d, rowsum(a)[i]) for each run of
// up to 16 finished outputs, d pointing at the raw D of (i, j0).
template <class Finish>
void amx_drive(int32_t m, int32_t n, int32_t k, const int8_t* a, int32_t lda, const int8_t* pb,
               uint8_t* work, Finish&& fin) {
  const int32_t kp = round_up(k, 64);
  const int32_t n16 = round_up(n, 16);
  auto* panel = reinterpret_cast<int8_t*>(work);
  int32_t suma[kPanelRows];  // row sums of the panel's rows
  int32_t* cbuf[2];
  cbuf[0] = reinterpret_cast<int32_t*>(work + int64_t{kPanelRows} * kp);
  cbuf[1] = cbuf[0] + kBm * kBn;
  // The epilogue of each block runs while the tile unit computes the next one: block b's
  // tdpbssd are issued, then block b - 1's outputs finished from the other buffer, then block
  // b stored.
  struct Pending {
    int32_t i0, j0, rows, cols;
  } pending{0, 0, 0, 0};
  int cur = 0;
  auto flush = [&](int32_t p0) {
    const int32_t* cb = cbuf[1 - cur];
    for (int32_t r = 0; r < pending.rows; ++r) {
      for (int32_t c = 0; c < pending.cols; c += 16) {
        fin(p0 + pending.i0 + r, pending.j0 + c, pending.cols - c < 16 ? pending.cols - c : 16,
            cb + r * kBn + c, suma[pending.i0 + r]);
      }
    }
    pending.rows = 0;
  };
  const __m512i ones = _mm512_set1_epi8(1);
  configure_tiles();
  for (int32_t p0 = 0; p0 < m; p0 += kPanelRows) {
    const int32_t prow = m - p0 < kPanelRows ? m - p0 : kPanelRows;
    const int32_t prow16 = round_up(prow, 16);
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
        sum = _mm512_dpbusd_epi32(sum, ones, v);
        _mm512_storeu_si512(dst + t, v);
      }
      alignas(64) int32_t lanes[16];
      _mm512_store_si512(lanes, sum);
      uint32_t total = 0;
      for (int32_t v : lanes) total += u32(v);
      suma[r] = s32(total);
    }
    for (int32_t j0 = 0; j0 < n16; j0 += kBn) {
      const int tb = n16 - j0 >= 32 ? 2 : 1;
      const int32_t cols = n - j0 < kBn ? n - j0 : kBn;
      for (int32_t i0 = 0; i0 < prow; i0 += kBm) {
        const int32_t rows = prow - i0 < kBm ? prow - i0 : kBm;
        const int ta = rows > 16 ? 2 : 1;
        kCompute[ta - 1][tb - 1](panel + int64_t{i0} * kp, kp, pb + int64_t{j0} * kp);
        flush(p0);
        kStore[ta - 1][tb - 1](cbuf[cur]);
        pending = {i0, j0, rows, cols};
        cur = 1 - cur;
      }
    }
    flush(p0);  // before the next panel overwrites suma
  }
  _tile_release();
}

void amx_s8(const GemmS8Args& g, const int8_t* pb, uint8_t* work) {
  const int32_t* colsum =
      reinterpret_cast<const int32_t*>(pb + int64_t{round_up(g.k, 64)} * round_up(g.n, 16));
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  const uint32_t bo = u32(g.b_offset);
  const EpilogueS8 e = make_epilogue_s8(g, g.a_offset, colsum, colterm_of(work, g.k));
  amx_drive(g.m, g.n, g.k, g.a, g.lda, pb, work,
            [&e, kab, bo](int32_t i, int32_t j0, int32_t cnt, const int32_t* d, int32_t suma) {
              e.run(i, j0, cnt, d, s32(bo * u32(suma) + kab));
            });
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

void gemm_s32(const GemmS32Args& g) {
  if (use_vnni(g.m, false)) {
    avx512vnni_kernels()->gemm_s32(g);
    return;
  }
  uint8_t* pb = align_ptr(g.scratch);
  k4_pack(g.b, g.n, g.k, g.ldb, pb);
  const auto* colsum =
      reinterpret_cast<const int32_t*>(pb + int64_t{round_up(g.k, 64)} * round_up(g.n, 16));
  const uint32_t kab = u32(g.k) * u32(g.a_offset) * u32(g.b_offset);
  const uint32_t bo = u32(g.b_offset);
  uint8_t* work = pb + align64(k4_packed_bytes(g.n, g.k));
  int32_t* colterm = colterm_of(work, g.k);
  make_colterm(g.n, g.a_offset, colsum, g.col_add, colterm);
  const EpilogueS32 e{g.c, g.ldc, colterm};
  const int32_t* row_add = g.row_add;
  amx_drive(
      g.m, g.n, g.k, g.a, g.lda, reinterpret_cast<const int8_t*>(pb), work,
      [&e, kab, bo, row_add](int32_t i, int32_t j0, int32_t cnt, const int32_t* d, int32_t suma) {
        uint32_t row = bo * u32(suma) + kab;
        if (row_add != nullptr) row += u32(row_add[i]);
        e.run(i, j0, cnt, d, s32(row));
      });
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

constexpr PackedGemmKernels kPackedTable{Path::kAmx, packed_bytes, pack, gemm_s8_packed,
                                         gemm_s8_packed_scratch};

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
