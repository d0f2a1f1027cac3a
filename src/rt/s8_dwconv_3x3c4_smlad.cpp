// Depthwise 3x3 conv, channel multiplier 1, no dilation (any stride and padding), smlad path:
// four channels per 32-bit load. Channel groups of four are the outer loop: their nine weight
// words are widened once (with the filter offset) into (c, c+2) / (c+1, c+3) halfword pairs in
// a local table, then every output pixel of the group runs, per tap, one input load widened
// with the input offset (LDR + 2 SXTAB16), two table loads and four MACs: SMLABB for the low
// halves, SMLATT for the high ones (channel sums must not mix, so no dual MAC). Interior pixels
// run the nine taps unrolled with no bounds checks; border pixels clip the tap rectangle once
// per pixel (padded taps contribute exactly 0, so skipping them is exact). in_c % 4 leftover
// channels go one at a time.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::rt::detail {
namespace {

struct Acc4 {
  uint32_t a0, a1, a2, a3;
};

// One tap of four channels; w points at the tap's two widened weight pairs.
inline void tap4(const int8_t* x, const uint32_t* w, uint32_t x_off, Acc4& s) {
  const uint32_t xq = smlad::load4(x);
  const uint32_t xe = dsp::sxtab16(x_off, xq);
  const uint32_t xo = dsp::sxtab16<8>(x_off, xq);
  s.a0 = dsp::smlabb(xe, w[0], s.a0);
  s.a2 = smlad::smlatt(xe, w[0], s.a2);
  s.a1 = dsp::smlabb(xo, w[1], s.a1);
  s.a3 = smlad::smlatt(xo, w[1], s.a3);
}

inline smlad::OutStage out_stage(const DepthwiseArgs& a) {
  const ConvParams& p = *a.params;
  return {a.multiplier, a.shift,   a.per_channel ? -1 : 0, p.output_offset, p.act_min,
          p.act_max,    a.rounding};
}

inline uint32_t bias_at(const DepthwiseArgs& a, int32_t ch) {
  return a.bias != nullptr ? static_cast<uint32_t>(a.bias[ch]) : 0u;
}

// Output pixel geometry: tap (0, 0) at input offset `origin` (possibly outside the image), the
// in-range taps ky in [ky0, ky1), kx in [kx0, kx1).
struct Window {
  ptrdiff_t origin;
  int32_t ky0, ky1, kx0, kx1;
};

// Calls f(out_offset, window) for every output pixel of image b.
template <typename F>
inline void for_each_pixel(const ConvParams& p, const ConvDims& d, ptrdiff_t row, F&& f) {
  ptrdiff_t out = 0;
  for (int32_t oy = 0; oy < d.out_h; ++oy) {
    const int32_t iy0 = oy * p.stride_h - p.pad_top;
    const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
    const int32_t ky1 = d.in_h - iy0 < 3 ? d.in_h - iy0 : 3;
    for (int32_t ox = 0; ox < d.out_w; ++ox, out += d.out_c) {
      const int32_t ix0 = ox * p.stride_w - p.pad_left;
      const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
      const int32_t kx1 = d.in_w - ix0 < 3 ? d.in_w - ix0 : 3;
      f(out, Window{iy0 * row + static_cast<ptrdiff_t>(ix0) * d.in_c, ky0, ky1, kx0, kx1});
    }
  }
}

}  // namespace

bool s8_dwconv_3x3c4_smlad_fits(const DepthwiseArgs& a) {
  const ConvParams& p = *a.params;
  const ConvDims& d = *a.dims;
  return d.kernel_h == 3 && d.kernel_w == 3 && p.depth_multiplier == 1 && p.dilation_h == 1 &&
         p.dilation_w == 1 && d.in_c == d.out_c;
}

void s8_dwconv_3x3c4_smlad(const DepthwiseArgs& a) {
  const ConvParams& p = *a.params;
  const ConvDims& d = *a.dims;
  const ptrdiff_t col = d.in_c;
  const ptrdiff_t row = d.in_w * col;
  const uint32_t x_off = smlad::offset_pair(p.input_offset);
  const uint32_t w_off = smlad::offset_pair(p.filter_offset);
  const smlad::OutStage o = out_stage(a);
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* image = a.input + b * d.in_h * row;
    int8_t* out_image = a.output + static_cast<ptrdiff_t>(b) * d.out_h * d.out_w * d.out_c;
    int32_t c = 0;
    for (; c + 4 <= d.in_c; c += 4) {
      uint32_t w[18];  // tap t: w[2t] = (c, c+2), w[2t+1] = (c+1, c+3), filter offset added
      for (int32_t t = 0; t < 9; ++t) {
        const uint32_t q = smlad::load4(a.weights + t * col + c);
        w[2 * t] = dsp::sxtab16(w_off, q);
        w[2 * t + 1] = dsp::sxtab16<8>(w_off, q);
      }
      const Acc4 bias{bias_at(a, c), bias_at(a, c + 1), bias_at(a, c + 2), bias_at(a, c + 3)};
      // Requantization decoded once per channel group, not per output pixel.
      const smlad::Channel ch[4] = {smlad::channel(o, c), smlad::channel(o, c + 1),
                                    smlad::channel(o, c + 2), smlad::channel(o, c + 3)};
      const int8_t* const base = image + c;
      for_each_pixel(p, d, row, [&](ptrdiff_t out, const Window& win) {
        Acc4 s = bias;
        if (win.ky0 == 0 && win.ky1 == 3 && win.kx0 == 0 && win.kx1 == 3) {
          const int8_t* x = base + win.origin;
          tap4(x, w + 0, x_off, s);
          tap4(x + col, w + 2, x_off, s);
          tap4(x + 2 * col, w + 4, x_off, s);
          x += row;
          tap4(x, w + 6, x_off, s);
          tap4(x + col, w + 8, x_off, s);
          tap4(x + 2 * col, w + 10, x_off, s);
          x += row;
          tap4(x, w + 12, x_off, s);
          tap4(x + col, w + 14, x_off, s);
          tap4(x + 2 * col, w + 16, x_off, s);
        } else {
          for (int32_t ky = win.ky0; ky < win.ky1; ++ky) {
            for (int32_t kx = win.kx0; kx < win.kx1; ++kx) {
              tap4(base + (win.origin + ky * row + kx * col), w + 2 * (ky * 3 + kx), x_off, s);
            }
          }
        }
        int8_t* y = out_image + out + c;
        y[0] = smlad::finish(o, ch[0], s.a0);
        y[1] = smlad::finish(o, ch[1], s.a1);
        y[2] = smlad::finish(o, ch[2], s.a2);
        y[3] = smlad::finish(o, ch[3], s.a3);
      });
    }
    for (; c < d.in_c; ++c) {
      const uint32_t start = bias_at(a, c);
      for_each_pixel(p, d, row, [&](ptrdiff_t out, const Window& win) {
        uint32_t acc = start;
        for (int32_t ky = win.ky0; ky < win.ky1; ++ky) {
          for (int32_t kx = win.kx0; kx < win.kx1; ++kx) {
            const auto xv =
                static_cast<uint32_t>(image[win.origin + ky * row + kx * col + c] + p.input_offset);
            const auto wv =
                static_cast<uint32_t>(a.weights[(ky * 3 + kx) * col + c] + p.filter_offset);
            acc = dsp::smlabb(xv, wv, acc);
          }
        }
        out_image[out + c] = smlad::finish(o, c, acc);
      });
    }
  }
}

}  // namespace tinyquant::rt::detail
