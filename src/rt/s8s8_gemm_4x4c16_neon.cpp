// AArch64 Advanced SIMD path: s8 x s8 (and s8 x s4) GEMM on SMULL + SADALP, baseline ARMv8-A.
//
// Micro-kernels 4x4c16 (m > 1) and 1x8c16 (GEMV): each accumulator holds the partial dot product
// of one row of a with one row of b, 16 k values a step; horizontal sums happen once per tile.
// The tiles multiply the raw int8 values: a product is at most 128 * 128 = 2^14 and fits int16.
// The exact step (mac16) pair-sums each int16 product vector into int32 (vpadalq_s16) straight
// away, so no int16 sum of two products (up to 2^15) is formed. At m > 1 each 4-column strip of
// int8 b is first checked for -128 (in the pass that takes its column sums); a strip without one
// (TFLite's symmetric weights, [-127, 127]; int4 weights always) runs the paired step
// (mac16_paired): products are then at most 128 * 127, so those of k and k + 8 share one int16
// lane before the SADALP, 3 instructions per 16 MACs instead of 4. The GEMV keeps the exact
// step. The offsets enter afterwards through row and column sums, all mod 2^32 like the
// reference:
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

#include "neon_mac16.inc"  // mac16 / sum16

// No packed kernel: ARMv8.0 has no multiply by element that reduces 4 int8 products.
constexpr int32_t kPackedMinRows = 0;
struct LaneMac;

#include "neon_gemm_common.inc"  // shared tiles and driver, compiled with this file's flags

constexpr PathKernels kTable{Path::kNeon, gemm_s8,         gemm_s32,
                             nullptr,     gemm_s8_scratch, gemm_s32_scratch};

}  // namespace

const PathKernels* neon_kernels() noexcept {
  return &kTable;
}

}  // namespace tinyquant::rt::detail
