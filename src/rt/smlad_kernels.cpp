// The smlad path's table: the Cortex-M DSP data flow (SXTB16 + SMLAD), real instructions when
// compiled for a core with the DSP extension, bit-exact emulation elsewhere. No scratch.
#include <cstdint>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {

namespace {
int32_t no_gemm_s8_scratch(int32_t, int32_t, int32_t, bool) {
  return 0;
}
int32_t no_gemm_s32_scratch(int32_t, int32_t, int32_t) {
  return 0;
}

constexpr PathKernels kSmladKernels = {
    Path::kSmlad, nullptr, nullptr, nullptr, no_gemm_s8_scratch, no_gemm_s32_scratch,
};
}  // namespace

const PathKernels* smlad_kernels() noexcept {
  return &kSmladKernels;
}

}  // namespace tinyquant::rt::detail
