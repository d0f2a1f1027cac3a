// The smlad path's table: the Cortex-M DSP data flow (SXTB16 + SMLAD), real instructions when
// compiled for a core with the DSP extension, bit-exact emulation elsewhere.
// The gemm entry picks the kernel by shape: one activation row per pass for m == 1 (GEMV, four
// weight rows share each activation load, no scratch), 2x2 tiles for m >= 2 (weights reused
// across two activation rows, which are widened once per pair into 4 * round_up(k, 4) bytes of
// scratch), the int4 kernel for packed weights (every layout, no scratch). Depthwise: the 3x3,
// multiplier-1 kernel where it applies, the generic one elsewhere. The path never falls back to
// the reference path, so a single-path build (path_kernels.hpp) links no reference code.
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"

namespace tinyquant::rt::detail {

void s8s8_gemm_smlad(const GemmS8Args& g) {
  if (g.m == 1) {
    s8s8_gemm_1x4c4_smlad(g);
  } else {
    s8s8_gemm_2x2c4_smlad(g);
  }
}

void s8_dwconv_smlad(const DepthwiseArgs& a) {
  if (s8_dwconv_3x3c4_smlad_fits(a)) {
    s8_dwconv_3x3c4_smlad(a);
  } else {
    s8_dwconv_1x1c2_smlad(a);
  }
}

namespace {
void gemm_smlad(const GemmS8Args& g) {
  if (g.b_s4 != nullptr) {
    s8s4_gemm_1x2c8_smlad(g);
  } else {
    s8s8_gemm_smlad(g);
  }
}

int32_t no_gemm_s32_scratch(int32_t, int32_t, int32_t) {
  return 0;
}

constexpr PathKernels kSmladKernels = {
    Path::kSmlad,
    gemm_smlad,
    s8s8_s32_gemm_2x2c4_smlad,
    s8_dwconv_smlad,
    s8s8_gemm_smlad_scratch,
    no_gemm_s32_scratch,
};
}  // namespace

const PathKernels* smlad_kernels() noexcept {
  return &kSmladKernels;
}

}  // namespace tinyquant::rt::detail
