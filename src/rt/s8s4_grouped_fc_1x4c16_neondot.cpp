// Grouped fully-connected, int4 and int8 weights, AArch64 dot product (ARMv8.2-A + dotprod, this
// file alone built for it and called only when dispatch.cpp has found the extension): four
// output rows per pass, 16 k per step on SDOT, as the dot-product GEMM
// (s8s8_gemm_8x8c4_neondot.cpp). Signed x signed, so the input offset enters through the
// weight sums (SDOT against ones); the body is grouped_fc_neon_common.inc, the arithmetic
// grouped_paths.hpp.
#include <arm_neon.h>

#include <cstdint>

#include "grouped_paths.hpp"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "s8s4_grouped_fc_1x4c16_neondot.cpp needs -march=armv8.2-a+dotprod (src/rt/CMakeLists.txt)"
#endif

namespace tinyquant::rt::detail {
namespace {

#include "neondot_mac16.inc"  // mac16 / sum16

#include "grouped_fc_neon_common.inc"  // the body, compiled with this file's flags

}  // namespace

void s8s4_grouped_fc_1x4c16_neondot(const GroupedRowArgs& a) noexcept {
  grouped_rows(a);
}

void s8s8_grouped_fc_1x4c16_neondot(const GroupedRowArgs& a) noexcept {
  grouped_rows(a);
}

}  // namespace tinyquant::rt::detail
