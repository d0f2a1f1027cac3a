// Reference depthwise conv, straight from the definition: for every output element, walk the
// kernel window and skip taps that fall in the padding (they would contribute exactly 0).
#include <cstdint>

#include "path_kernels.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::rt::detail {

void s8_dwconv_1x1c1_reference(const DepthwiseArgs& a) {
  const ConvParams& p = *a.params;
  const ConvDims& d = *a.dims;
  const int32_t mult = p.depth_multiplier;
  for (int32_t b = 0; b < d.batch; ++b) {
    for (int32_t oy = 0; oy < d.out_h; ++oy) {
      for (int32_t ox = 0; ox < d.out_w; ++ox) {
        for (int32_t oc = 0; oc < d.out_c; ++oc) {
          const int32_t ic = oc / mult;
          uint32_t acc = a.bias != nullptr ? static_cast<uint32_t>(a.bias[oc]) : 0u;
          for (int32_t ky = 0; ky < d.kernel_h; ++ky) {
            const int32_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
            if (iy < 0 || iy >= d.in_h) continue;
            for (int32_t kx = 0; kx < d.kernel_w; ++kx) {
              const int32_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
              if (ix < 0 || ix >= d.in_w) continue;
              const int32_t x = a.input[((int64_t{b} * d.in_h + iy) * d.in_w + ix) * d.in_c + ic] +
                                p.input_offset;
              const int32_t w =
                  a.weights[(int64_t{ky} * d.kernel_w + kx) * d.out_c + oc] + p.filter_offset;
              acc += static_cast<uint32_t>(x * w);
            }
          }
          const int32_t ch = a.per_channel ? oc : 0;
          int32_t out =
              requantize(static_cast<int32_t>(acc), a.multiplier[ch], a.shift[ch], a.rounding);
          out = wrap_add(out, p.output_offset);
          out = out < p.act_min ? p.act_min : (out > p.act_max ? p.act_max : out);
          a.output[((int64_t{b} * d.out_h + oy) * d.out_w + ox) * d.out_c + oc] =
              static_cast<int8_t>(out);
        }
      }
    }
  }
}

}  // namespace tinyquant::rt::detail
