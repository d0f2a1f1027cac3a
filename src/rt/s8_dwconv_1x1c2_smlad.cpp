// Depthwise conv, smlad path: per output element, the valid kernel taps are taken two at a
// time, (x + input_offset) and (w + filter_offset) packed into int16 pairs with PKHBT and
// accumulated with one SMLAD; an odd last tap uses SMLABB. Padded taps are skipped (they would
// contribute exactly 0).
#include <cstdint>

#include "path_kernels.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::rt::detail {

void s8_dwconv_1x1c2_smlad(const DepthwiseArgs& a) {
  const ConvParams& p = *a.params;
  const ConvDims& d = *a.dims;
  const int32_t mult = p.depth_multiplier;
  for (int32_t b = 0; b < d.batch; ++b) {
    for (int32_t oy = 0; oy < d.out_h; ++oy) {
      const int32_t iy0 = oy * p.stride_h - p.pad_top;
      for (int32_t ox = 0; ox < d.out_w; ++ox) {
        const int32_t ix0 = ox * p.stride_w - p.pad_left;
        int8_t* out_px = a.output + ((int64_t{b} * d.out_h + oy) * d.out_w + ox) * d.out_c;
        for (int32_t oc = 0; oc < d.out_c; ++oc) {
          const int32_t ic = oc / mult;
          uint32_t acc = a.bias != nullptr ? static_cast<uint32_t>(a.bias[oc]) : 0u;
          bool pending = false;
          uint32_t px = 0, pw = 0;
          for (int32_t ky = 0; ky < d.kernel_h; ++ky) {
            const int32_t iy = iy0 + ky * p.dilation_h;
            if (iy < 0 || iy >= d.in_h) continue;
            const int8_t* in_row = a.input + (int64_t{b} * d.in_h + iy) * d.in_w * d.in_c;
            const int8_t* w_row = a.weights + int64_t{ky} * d.kernel_w * d.out_c;
            for (int32_t kx = 0; kx < d.kernel_w; ++kx) {
              const int32_t ix = ix0 + kx * p.dilation_w;
              if (ix < 0 || ix >= d.in_w) continue;
              const auto x =
                  static_cast<uint32_t>(in_row[int64_t{ix} * d.in_c + ic] + p.input_offset);
              const auto w =
                  static_cast<uint32_t>(w_row[int64_t{kx} * d.out_c + oc] + p.filter_offset);
              if (pending) {
                acc = dsp::smlad(dsp::pkhbt<16>(px, x), dsp::pkhbt<16>(pw, w), acc);
              } else {
                px = x;
                pw = w;
              }
              pending = !pending;
            }
          }
          if (pending) acc = dsp::smlabb(px, pw, acc);
          const int32_t ch = a.per_channel ? oc : 0;
          int32_t out =
              requantize(static_cast<int32_t>(acc), a.multiplier[ch], a.shift[ch], a.rounding);
          out = wrap_add(out, p.output_offset);
          out = out < p.act_min ? p.act_min : (out > p.act_max ? p.act_max : out);
          out_px[oc] = static_cast<int8_t>(out);
        }
      }
    }
  }
}

}  // namespace tinyquant::rt::detail
