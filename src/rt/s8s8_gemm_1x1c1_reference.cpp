// Reference gemm with requantized int8 output: one output at a time, one k at a time. The oracle
// every other path is tested against, so it stays obvious: accumulation in uint32 (32-bit wrap
// without signed overflow), int4 weights unpacked nibble by nibble.
#include <cstdint>

#include "path_kernels.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::rt::detail {
namespace {

// Element `index` of a packed int4 stream: low nibble first, sign-extended from 4 bits.
int32_t nibble_at(const uint8_t* stream, int64_t index) {
  const uint32_t byte = stream[index / 2];
  const uint32_t nib = (index % 2 == 0) ? (byte & 0xFu) : (byte >> 4);
  return static_cast<int32_t>(nib ^ 8u) - 8;
}

}  // namespace

void s8s8_gemm_1x1c1_reference(const GemmS8Args& g) {
  for (int32_t i = 0; i < g.m; ++i) {
    for (int32_t j = 0; j < g.n; ++j) {
      uint32_t acc = g.bias != nullptr ? static_cast<uint32_t>(g.bias[j]) : 0u;
      for (int32_t k = 0; k < g.k; ++k) {
        const int32_t x = g.a[int64_t{i} * g.lda + k] + g.a_offset;
        const int32_t w =
            (g.b_s4 != nullptr ? nibble_at(g.b_s4, g.b_s4_first_nibble + int64_t{j} * g.k + k)
                               : g.b[int64_t{j} * g.ldb + k]) +
            g.b_offset;
        acc += static_cast<uint32_t>(x * w);  // |x * w| <= 256 * 256: no int32 overflow
      }
      const int32_t ch = g.per_channel ? j : 0;
      int32_t out =
          requantize(static_cast<int32_t>(acc), g.multiplier[ch], g.shift[ch], g.rounding);
      out = wrap_add(out, g.c_offset);
      out = out < g.act_min ? g.act_min : (out > g.act_max ? g.act_max : out);
      g.c[int64_t{i} * g.ldc + j] = static_cast<int8_t>(out);
    }
  }
}

}  // namespace tinyquant::rt::detail
