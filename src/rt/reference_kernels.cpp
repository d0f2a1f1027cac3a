// The reference path's table: plain scalar loops, no scratch.
#include <cstdint>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {

void s8s8_gemm_1x1c1_reference(const GemmS8Args& g);
void s8s8_s32_gemm_1x1c1_reference(const GemmS32Args& g);
void s8_dwconv_1x1c1_reference(const DepthwiseArgs& a);

namespace {
int32_t no_gemm_s8_scratch(int32_t, int32_t, int32_t, bool) {
  return 0;
}
int32_t no_gemm_s32_scratch(int32_t, int32_t, int32_t) {
  return 0;
}

constexpr PathKernels kReferenceKernels = {
    Path::kReference,          s8s8_gemm_1x1c1_reference, s8s8_s32_gemm_1x1c1_reference,
    s8_dwconv_1x1c1_reference, no_gemm_s8_scratch,        no_gemm_s32_scratch,
};
}  // namespace

const PathKernels* reference_kernels() noexcept {
  return &kReferenceKernels;
}

}  // namespace tinyquant::rt::detail
