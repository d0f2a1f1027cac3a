// Grouped fully-connected, int4 and int8 weights, AArch64 Advanced SIMD (baseline ARMv8-A):
// four output rows per pass, 16 k per step on SMULL + SADALP, as the NEON GEMM
// (s8s8_gemm_4x4c16_neon.cpp); the body is grouped_fc_neon_common.inc, the arithmetic
// grouped_paths.hpp.
#include <arm_neon.h>

#include <cstdint>

#include "grouped_paths.hpp"

namespace tinyquant::rt::detail {
namespace {

// SMULL/SMULL2 form int16 products (at most 2^14), SADALP pair-sums each into int32 at once.
inline int32x4_t mac16(int32x4_t acc, int8x16_t a, int8x16_t b) {
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_high_s8(a, b));
}
inline int32x4_t sum16(int32x4_t acc, int8x16_t b) {
  return vpadalq_s16(acc, vpaddlq_s8(b));
}

#include "grouped_fc_neon_common.inc"  // the body, compiled with this file's flags

}  // namespace

void s8s4_grouped_fc_1x4c16_neon(const GroupedRowArgs& a) noexcept {
  grouped_rows(a);
}

void s8s8_grouped_fc_1x4c16_neon(const GroupedRowArgs& a) noexcept {
  grouped_rows(a);
}

}  // namespace tinyquant::rt::detail
