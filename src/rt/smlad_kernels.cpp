// The smlad path's table: the Cortex-M DSP data flow (SXTB16 + SMLAD), real instructions when
// compiled for a core with the DSP extension, bit-exact emulation elsewhere. No scratch.
#include <cstdint>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {

void s8s8_gemm_2x2c4_smlad(const GemmS8Args& g);
void s8s8_s32_gemm_2x2c4_smlad(const GemmS32Args& g);
void s8_dwconv_1x1c2_smlad(const DepthwiseArgs& a);

namespace {
int32_t no_gemm_s8_scratch(int32_t, int32_t, int32_t, bool) {
  return 0;
}
int32_t no_gemm_s32_scratch(int32_t, int32_t, int32_t) {
  return 0;
}

constexpr PathKernels kSmladKernels = {
    Path::kSmlad,          s8s8_gemm_2x2c4_smlad, s8s8_s32_gemm_2x2c4_smlad,
    s8_dwconv_1x1c2_smlad, no_gemm_s8_scratch,    no_gemm_s32_scratch,
};
}  // namespace

const PathKernels* smlad_kernels() noexcept {
  return &kSmladKernels;
}

}  // namespace tinyquant::rt::detail
