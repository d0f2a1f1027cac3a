// Grouped fully-connected, int4 and int8 weights, AArch64 Advanced SIMD (baseline ARMv8-A):
// four output rows per pass, 16 k per step on SMULL + SADALP, as the NEON GEMM
// (s8s8_gemm_4x4c16_neon.cpp); the body is grouped_fc_neon_common.inc, the arithmetic
// grouped_paths.hpp.
#include <arm_neon.h>

#include <cstdint>

#include "grouped_paths.hpp"

namespace tinyquant::rt::detail {
namespace {

#include "neon_mac16.inc"  // mac16 / sum16

#include "grouped_fc_neon_common.inc"  // the body, compiled with this file's flags

}  // namespace

void s8s4_grouped_fc_1x4c16_neon(const GroupedRowArgs& a) noexcept {
  grouped_rows(a);
}

void s8s8_grouped_fc_1x4c16_neon(const GroupedRowArgs& a) noexcept {
  grouped_rows(a);
}

}  // namespace tinyquant::rt::detail
