// Depthwise 3x3 conv, channel multiplier 1, no dilation (any stride and padding), smlad path:
// four channels per 32-bit load. For each tap, one word of input (channels c..c+3) and one of
// weights are widened with their offsets into (c, c+2) and (c+1, c+3) halfword pairs, and the
// four channel sums advance with SMLABB (low halves) and SMLATT (high halves): LDR, LDR,
// 4 SXTAB16, 4 MACs. Interior pixels run all nine taps unrolled with no bounds checks; border
// pixels clip the tap rectangle once per pixel (padded taps contribute exactly 0, so skipping
// them is exact). in_c % 4 leftover channels go one at a time.
#include <cstddef>
#include <cstdint>

#include "path_kernels.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::rt::detail {
namespace {

// acc + x.hi * y.hi (SMLATT; GCC selects it from the arithmetic-shift pattern).
inline uint32_t mla_tt(uint32_t x, uint32_t y, uint32_t acc) {
  return acc +
         static_cast<uint32_t>((static_cast<int32_t>(x) >> 16) * (static_cast<int32_t>(y) >> 16));
}

struct Geometry {
  ptrdiff_t row;  // input row stride in bytes (in_w * in_c)
  ptrdiff_t col;  // input pixel stride (in_c)
  ptrdiff_t tap;  // weight tap stride (out_c == in_c)
};

struct Acc4 {
  uint32_t a0, a1, a2, a3;
};

inline void tap4(const int8_t* x, const int8_t* w, uint32_t x_off, uint32_t w_off, Acc4& s) {
  const uint32_t xq = smlad::load4(x);
  const uint32_t wq = smlad::load4(w);
  const uint32_t xe = dsp::sxtab16(x_off, xq), we = dsp::sxtab16(w_off, wq);
  const uint32_t xo = smlad::sxtab16_ror8(x_off, xq), wo = smlad::sxtab16_ror8(w_off, wq);
  s.a0 = dsp::smlabb(xe, we, s.a0);
  s.a2 = mla_tt(xe, we, s.a2);
  s.a1 = dsp::smlabb(xo, wo, s.a1);
  s.a3 = mla_tt(xo, wo, s.a3);
}

inline smlad::OutStage out_stage(const DepthwiseArgs& a) {
  const ConvParams& p = *a.params;
  return {a.multiplier, a.shift,   a.per_channel ? -1 : 0, p.output_offset, p.act_min,
          p.act_max,    a.rounding};
}

inline uint32_t bias_at(const DepthwiseArgs& a, int32_t ch) {
  return a.bias != nullptr ? static_cast<uint32_t>(a.bias[ch]) : 0u;
}

// One output pixel: taps ky in [ky0, ky1), kx in [kx0, kx1). Tap (0, 0) is at offset `origin`
// from `image`, possibly outside it; only in-range taps are addressed.
template <bool kInterior>
void pixel(const DepthwiseArgs& a, const Geometry& geo, const int8_t* image, ptrdiff_t origin,
           int8_t* out, int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1) {
  const ConvDims& d = *a.dims;
  const uint32_t x_off = smlad::offset_pair(a.params->input_offset);
  const uint32_t w_off = smlad::offset_pair(a.params->filter_offset);
  const smlad::OutStage o = out_stage(a);
  int32_t c = 0;
  for (; c + 4 <= d.in_c; c += 4) {
    Acc4 s{bias_at(a, c), bias_at(a, c + 1), bias_at(a, c + 2), bias_at(a, c + 3)};
    if (kInterior) {
      const int8_t* x = image + origin + c;
      const int8_t* w = a.weights + c;
      for (int32_t ky = 0; ky < 3; ++ky, x += geo.row, w += 3 * geo.tap) {
        tap4(x, w, x_off, w_off, s);
        tap4(x + geo.col, w + geo.tap, x_off, w_off, s);
        tap4(x + 2 * geo.col, w + 2 * geo.tap, x_off, w_off, s);
      }
    } else {
      for (int32_t ky = ky0; ky < ky1; ++ky) {
        for (int32_t kx = kx0; kx < kx1; ++kx) {
          tap4(image + (origin + ky * geo.row + kx * geo.col + c),
               a.weights + (ky * 3 + kx) * geo.tap + c, x_off, w_off, s);
        }
      }
    }
    out[c] = smlad::finish(o, c, s.a0);
    out[c + 1] = smlad::finish(o, c + 1, s.a1);
    out[c + 2] = smlad::finish(o, c + 2, s.a2);
    out[c + 3] = smlad::finish(o, c + 3, s.a3);
  }
  for (; c < d.in_c; ++c) {
    uint32_t acc = bias_at(a, c);
    for (int32_t ky = ky0; ky < ky1; ++ky) {
      for (int32_t kx = kx0; kx < kx1; ++kx) {
        const auto xv = static_cast<uint32_t>(image[origin + ky * geo.row + kx * geo.col + c] +
                                              a.params->input_offset);
        const auto wv =
            static_cast<uint32_t>(a.weights[(ky * 3 + kx) * geo.tap + c] + a.params->filter_offset);
        acc = dsp::smlabb(xv, wv, acc);
      }
    }
    out[c] = smlad::finish(o, c, acc);
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
  const Geometry geo{static_cast<ptrdiff_t>(d.in_w) * d.in_c, d.in_c, d.out_c};
  int8_t* out = a.output;
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* image = a.input + static_cast<ptrdiff_t>(b) * d.in_h * geo.row;
    for (int32_t oy = 0; oy < d.out_h; ++oy) {
      const int32_t iy0 = oy * p.stride_h - p.pad_top;
      const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
      const int32_t ky1 = d.in_h - iy0 < 3 ? d.in_h - iy0 : 3;
      for (int32_t ox = 0; ox < d.out_w; ++ox, out += d.out_c) {
        const int32_t ix0 = ox * p.stride_w - p.pad_left;
        const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
        const int32_t kx1 = d.in_w - ix0 < 3 ? d.in_w - ix0 : 3;
        const ptrdiff_t origin = iy0 * geo.row + ix0 * geo.col;
        if (ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3) {
          pixel<true>(a, geo, image, origin, out, 0, 3, 0, 3);
        } else {
          pixel<false>(a, geo, image, origin, out, ky0, ky1, kx0, kx1);
        }
      }
    }
  }
}

}  // namespace tinyquant::rt::detail
