// AArch64 dot-product path: s8 x s8 (and s8 x s4) GEMM on SDOT (ARMv8.2-A + dotprod).
//
// Built with -march=armv8.2-a+dotprod and called only when dispatch.cpp has found the extension
// (HWCAP_ASIMDDP), so everything here stays in an anonymous namespace: no inline function of a
// shared header is instantiated with these flags and merged into code that runs anywhere.
//
// Micro-kernels 1x8c16 (GEMV) and, for every m > 1 (kPackedMinRows), 8x8 tiles on b packed 8
// columns at a time in groups of 4 k, column sums taken while packing; the 4x4c16 tiles of
// neon_gemm_common.inc, on b in place, are left to the baseline path. In the GEMV each
// accumulator holds the partial dot product of the row of a with one row of b; vdotq_s32 adds
// four signed int8 x int8 products into each int32 lane, 16 k values a step, with no
// intermediate that can overflow (4 * 2^14 < 2^31). In the 8x8 tiles vdotq_laneq_s32 multiplies
// 4 k of one row of a (one 32-bit lane of a 16-k load) with the same 4 k of 4 columns, so each
// accumulator holds 4 outputs and the 4-lane epilogue reads them with no horizontal sum.
// Signed x signed, so no +128 bias trick is needed: the offsets enter afterwards through row and
// column sums (themselves SDOT against a vector of ones), mod 2^32 like the reference:
//   sum (a + ao)(b + bo) = sum a*b + bo * sum a + ao * sum b + k * ao * bo.
// In the K tail both operands are copied into zeroed 16-byte blocks, so padding adds 0.
// The epilogue (bias, requantize, output offset, clamp) runs on four lanes at a time and is
// exact as rt::requantize for both rounding modes. int4 weights are unpacked to int8 rows in
// scratch, a tile's (or a panel's) rows at a time, then packed like int8 ones. Prepacked weights
// (prepack.cpp) are stored as the packed kernel's panels with their column sums, so such a call
// runs the packed kernel's tiles on them (the GEMV its one-row tile) with no packing and no
// column sums of its own.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "s8s8_gemm_8x8c4_neondot.cpp needs -march=armv8.2-a+dotprod (see src/rt/CMakeLists.txt)"
#endif

namespace tinyquant::rt::detail {
namespace {

#include "neondot_mac16.inc"  // mac16 / sum16

// From this many rows on, gemm packs b and runs the 8x8 SDOT-by-element kernel. Counted under
// QEMU (Cortex-A76, k = n = 256), it issues fewer instructions than the 4x4c16 tiles from
// m = 2 on (0.87x at m = 2, 0.72x at m = 5-12; bench/README.md, "AArch64 paths").
constexpr int32_t kPackedMinRows = 2;
struct LaneMac {
  template <int G>
  static int32x4_t mac(int32x4_t acc, int8x16_t b, int8x16_t a) {
    return vdotq_laneq_s32(acc, b, a, G);
  }
  static int32x4_t sum4(int32x4_t acc, int8x16_t b) { return vdotq_s32(acc, b, vdupq_n_s8(1)); }
};

#include "neon_gemm_common.inc"  // shared tiles and driver, compiled with this file's flags

constexpr PathKernels kTable{Path::kNeonDot, gemm_s8,         gemm_s32,
                             nullptr,        gemm_s8_scratch, gemm_s32_scratch};

// Prepacked weights (PackedGemmKernels): the packed kernel's panels as pack_panel lays them out
// (8 columns each, 4-k groups, zero past k up to a multiple of 16 and past n), one after another,
// then their column sums (int32 [n]). Every call, the GEMV included, runs the packed tiles
// straight on the panels: no packing, no column sums and no int8 row copies in the K tail.
// The sums are trusted as stored (the header check covers the header only, as on every packed
// path); fully_connected_s8_prepacked_verify() detects an altered payload.
int64_t sums_offset(int32_t n, int32_t k) {
  return (int64_t{n} + kPackNr - 1) / kPackNr * panel_bytes(int64_t{k});
}
int64_t packed_bytes(int32_t n, int32_t k) {
  return sums_offset(n, k) + 4 * int64_t{n};
}
void pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, int32_t /*b_offset*/, void* out) {
  auto* panels = static_cast<int8_t*>(out);
  auto* sums = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(out) + sums_offset(n, k));
  for (int32_t j0 = 0; j0 < n; j0 += kPackNr) {
    const int32_t nr = n - j0 < kPackNr ? n - j0 : kPackNr;
    pack_panel<LaneMac>(b + int64_t{j0} * ldb, ldb, nr, k,
                        panels + int64_t{j0 / kPackNr} * panel_bytes(k), sums + j0);
  }
}
PrepackedB prepacked_b(const void* packed, int32_t n, int32_t k) {
  const auto* bytes = static_cast<const uint8_t*>(packed);
  return {nullptr, static_cast<const int8_t*>(packed),
          reinterpret_cast<const int32_t*>(bytes + sums_offset(n, k)), nullptr};
}

constexpr PackedGemmKernels kPackedTable{Path::kNeonDot, packed_bytes,           pack,
                                         gemm_s8_packed, gemm_s8_packed_scratch, gemm_s32_packed};

}  // namespace

const PathKernels* neondot_kernels() noexcept {
  return &kTable;
}

const PackedGemmKernels* neondot_packed_kernels() noexcept {
  return &kPackedTable;
}

}  // namespace tinyquant::rt::detail
