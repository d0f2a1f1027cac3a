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
// scratch, a tile's (or a panel's) rows at a time, then packed like int8 ones.
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

}  // namespace

const PathKernels* neondot_kernels() noexcept {
  return &kTable;
}

}  // namespace tinyquant::rt::detail
