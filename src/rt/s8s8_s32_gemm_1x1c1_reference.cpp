// Reference gemm with raw int32 accumulators (gemm_s8s8_s32): one output, one k at a time,
// 32-bit wrap through uint32 arithmetic.
#include <cstdint>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {

void s8s8_s32_gemm_1x1c1_reference(const GemmS32Args& g) {
  for (int32_t i = 0; i < g.m; ++i) {
    for (int32_t j = 0; j < g.n; ++j) {
      uint32_t acc = 0;
      if (g.row_add != nullptr) acc += static_cast<uint32_t>(g.row_add[i]);
      if (g.col_add != nullptr) acc += static_cast<uint32_t>(g.col_add[j]);
      for (int32_t k = 0; k < g.k; ++k) {
        const int32_t x = g.a[int64_t{i} * g.lda + k] + g.a_offset;
        const int32_t w = g.b[int64_t{j} * g.ldb + k] + g.b_offset;
        acc += static_cast<uint32_t>(x * w);
      }
      g.c[int64_t{i} * g.ldc + j] = static_cast<int32_t>(acc);
    }
  }
}

}  // namespace tinyquant::rt::detail
