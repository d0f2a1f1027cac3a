// The public kernels: validate every argument once, pick the path's table, and run its entries.
//
// fully_connected is one gemm with m = batch. conv2d lowers to gemm per group: a 1x1, stride 1,
// unpadded conv reads the NHWC input in place (m = batch * h * w, lda = in_c); any other conv
// copies kIm2colRows output pixels' receptive fields at a time into an im2col block in scratch,
// padded taps filled with -input_offset so that (x + input_offset) is exactly 0 there.
//
// Scratch layout: [im2col block: rows * K bytes][pad to 64][path gemm scratch]. Peak scratch of
// a non-direct conv is min(out_h * out_w, kIm2colRows) * kernel_h * kernel_w * in_c / groups
// bytes plus whatever the path's gemm asks (0 for reference; smlad with int8 weights and m >= 2:
// one widened activation row pair, 4 * round_up(K, 4) bytes) plus 63 alignment bytes.
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"
#include "scratch.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "validate.hpp"

namespace tinyquant::rt {
namespace {

using detail::GemmS32Args;
using detail::GemmS8Args;
using detail::PathKernels;

// Output pixels per im2col block: small enough for an MCU arena (8 * K bytes), large enough to
// give a path's row tile (2 for smlad, more on x86) full blocks.
constexpr int32_t kIm2colRows = 8;
constexpr int64_t kAlign = 64;

#if defined(TINYQUANT_RT_ONLY_SMLAD)
// Single-path build (path_kernels.hpp): direct calls, no table.
void (*gemm_s8_fn(const PathKernels*, bool s4))(const GemmS8Args&) {
  return s4 ? detail::s8s4_gemm_1x2c8_smlad : detail::s8s8_gemm_smlad;
}
void (*gemm_s32_fn(const PathKernels*))(const GemmS32Args&) {
  return detail::s8s8_s32_gemm_2x2c4_smlad;
}
void (*depthwise_fn(const PathKernels*))(const detail::DepthwiseArgs&) {
  return detail::s8_dwconv_smlad;
}
#else
void (*gemm_s8_fn(const PathKernels* t, bool /*s4*/))(const GemmS8Args&) {
  return t->gemm_s8 != nullptr ? t->gemm_s8 : detail::reference_kernels()->gemm_s8;
}
void (*gemm_s32_fn(const PathKernels* t))(const GemmS32Args&) {
  return t->gemm_s32 != nullptr ? t->gemm_s32 : detail::reference_kernels()->gemm_s32;
}
void (*depthwise_fn(const PathKernels* t))(const detail::DepthwiseArgs&) {
  return t->depthwise_s8 != nullptr ? t->depthwise_s8 : detail::reference_kernels()->depthwise_s8;
}
#endif

// Path gemm scratch, plus slack to align it to kAlign inside any caller buffer.
int64_t gemm_s8_need(const PathKernels* t, int32_t m, int32_t n, int32_t k, bool s4) {
#if defined(TINYQUANT_RT_ONLY_SMLAD)
  static_cast<void>(t);
  const int32_t bytes = detail::s8s8_gemm_smlad_scratch(m, n, k, s4);
#else
  if (t->gemm_s8 == nullptr || t->gemm_s8_scratch == nullptr) return 0;
  const int32_t bytes = t->gemm_s8_scratch(m, n, k, s4);
#endif
  return bytes > 0 ? bytes + kAlign - 1 : 0;
}

void* align_up(void* base, int64_t offset) {
  return detail::align_scratch(static_cast<uint8_t*>(base) + offset, kAlign);
}

// Saturates a scratch size for the *_scratch_size() queries: not the output clamp, which each
// path applies in its epilogue (e.g. EpilogueS8::finish in avx512_epilogue.hpp).
int32_t clamp_scratch(int64_t bytes) {
  return bytes > INT32_MAX ? INT32_MAX : static_cast<int32_t>(bytes);
}

Status check_fc(const FcParams& p, const Requant& rq, const FcDims& d) {
  Status s = detail::check_fc_dims(d);
  if (s == Status::kOk) s = detail::check_offsets(p.input_offset, p.filter_offset, p.output_offset);
  if (s == Status::kOk) s = detail::check_activation(p.act_min, p.act_max);
  if (s == Status::kOk) s = detail::check_requant(rq, d.out_features);
  return s;
}

int64_t fc_need(const FcDims& d, const PathKernels* t, bool s4) {
  return gemm_s8_need(t, d.batch, d.out_features, d.in_features, s4);
}

// Inlined into the s8 and s4 entry points, where w8 / w4 are constants: a single-path firmware
// build then links only the kernels of the weight type it calls.
[[gnu::always_inline]] inline Status fc_run(const Context& ctx, const FcParams& p,
                                            const Requant& rq, const FcDims& d, const int8_t* input,
                                            const int8_t* w8, const uint8_t* w4,
                                            const int32_t* bias, int8_t* output) {
  Status s = check_fc(p, rq, d);
  if (s != Status::kOk) return s;
  const PathKernels* t = detail::path_kernels(ctx.path);
  if (t == nullptr) return Status::kPathUnavailable;
  const int64_t need = fc_need(d, t, w4 != nullptr);
  if (need > INT32_MAX) return Status::kBadDimension;
  s = detail::check_scratch(ctx, static_cast<int32_t>(need));
  if (s != Status::kOk) return s;
  GemmS8Args g = detail::fc_gemm_args(p, rq, d, input, bias, output);
  g.b = w8;
  g.b_s4 = w4;
  g.ldb = d.in_features;
  g.scratch = need > 0 ? align_up(ctx.scratch, 0) : nullptr;
  gemm_s8_fn(t, w4 != nullptr)(g);
  return Status::kOk;
}

// How a conv lowers to gemm.
struct ConvPlan {
  bool direct = false;    // 1x1, stride 1, unpadded, same size: gemm straight on the input
  int32_t in_cg = 0;      // input channels per group
  int32_t out_cg = 0;     // output channels per group
  int32_t kdim = 0;       // gemm K = kernel_h * kernel_w * in_cg
  int32_t rows = 0;       // im2col rows per block (0 when direct)
  int64_t col_bytes = 0;  // im2col block bytes, rounded up to kAlign
  int64_t need = 0;       // total scratch bytes
};

ConvPlan plan_conv(const ConvParams& p, const ConvDims& d, const PathKernels* t, bool s4) {
  ConvPlan c;
  c.in_cg = d.in_c / p.groups;
  c.out_cg = d.out_c / p.groups;
  c.kdim = d.kernel_h * d.kernel_w * c.in_cg;
  c.direct = d.kernel_h == 1 && d.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
             p.pad_top == 0 && p.pad_left == 0 && d.out_h == d.in_h && d.out_w == d.in_w;
  if (c.direct) {
    c.need = gemm_s8_need(t, d.batch * d.out_h * d.out_w, c.out_cg, c.kdim, s4);
    return c;
  }
  const int32_t pixels = d.out_h * d.out_w;
  c.rows = pixels < kIm2colRows ? pixels : kIm2colRows;
  c.col_bytes = (int64_t{c.rows} * c.kdim + kAlign - 1) / kAlign * kAlign;
  c.need = c.col_bytes + gemm_s8_need(t, c.rows, c.out_cg, c.kdim, s4);
  return c;
}

// dst[0, n) = src[0, n). A call to memcpy costs more than the copy itself for the few bytes of
// an im2col tap or window row with few channels (3 for an RGB input), so short runs are copied
// inline, a word at a time. (Padding stays a memset: inline byte stores measured no better.)
inline void copy_run(int8_t* dst, const int8_t* src, int32_t n) {
  if (n > 32) {
    std::memcpy(dst, src, static_cast<size_t>(n));
    return;
  }
  for (; n >= 4; n -= 4, dst += 4, src += 4) std::memcpy(dst, src, 4);
  for (; n > 0; --n) *dst++ = *src++;
}

// Copies the receptive fields of output pixels [p0, p0 + rows) of image b, group g, into col.
// A window row that lies inside the image with contiguous taps (one group, no dilation) is one
// run of kernel_w * in_c bytes; otherwise tap by tap. The parameters live in locals (an int8
// store may alias them) and offsets are ptrdiff_t: every one stays inside the input or the block.
void fill_im2col(const ConvParams& p, const ConvDims& d, const ConvPlan& c, const int8_t* input,
                 int32_t b, int32_t g, int32_t p0, int32_t rows, int8_t* col) {
  const auto pad_value = static_cast<int8_t>(-p.input_offset);  // [-128, 127]
  const int32_t n = c.in_cg, in_c = d.in_c, in_w = d.in_w, in_h = d.in_h;
  const int32_t kw = d.kernel_w, kh = d.kernel_h, out_w = d.out_w;
  const int32_t sw = p.stride_w, sh = p.stride_h, dw = p.dilation_w, dh = p.dilation_h;
  const int32_t pad_left = p.pad_left, pad_top = p.pad_top;
  const bool runs = n == in_c && dw == 1;
  const ptrdiff_t row_stride = ptrdiff_t{in_w} * in_c;
  const int8_t* image = input + ptrdiff_t{b} * in_h * row_stride + ptrdiff_t{g} * n;
  int32_t oy = p0 / out_w;
  int32_t ox = p0 % out_w;
  int8_t* dst = col;
  for (int32_t r = 0; r < rows; ++r) {
    const int32_t ix0 = ox * sw - pad_left;
    const bool whole_rows = runs && ix0 >= 0 && ix0 + kw <= in_w;
    // The steps wrap (wrap_add) rather than overflow: the step after the last tap is never used,
    // and with one tap the dilation may be as large as int32 allows.
    for (int32_t ky = 0, iy = oy * sh - pad_top; ky < kh; ++ky, iy = wrap_add(iy, dh)) {
      if (iy < 0 || iy >= in_h) {
        std::memset(dst, pad_value, static_cast<size_t>(kw * n));
        dst += kw * n;
        continue;
      }
      const int8_t* src_row = image + ptrdiff_t{iy} * row_stride;
      if (whole_rows) {
        copy_run(dst, src_row + ptrdiff_t{ix0} * in_c, kw * n);
        dst += kw * n;
        continue;
      }
      for (int32_t kx = 0, ix = ix0; kx < kw; ++kx, ix = wrap_add(ix, dw), dst += n) {
        if (ix >= 0 && ix < in_w) {
          copy_run(dst, src_row + ptrdiff_t{ix} * in_c, n);
        } else {
          std::memset(dst, pad_value, static_cast<size_t>(n));
        }
      }
    }
    if (++ox == out_w) {
      ox = 0;
      ++oy;
    }
  }
}

[[gnu::always_inline]] inline Status conv_run(const Context& ctx, const ConvParams& p,
                                              const Requant& rq, const ConvDims& d,
                                              const int8_t* input, const int8_t* w8,
                                              const uint8_t* w4, const int32_t* bias,
                                              int8_t* output) {
  Status s = detail::check_conv_dims(p, d);
  if (s == Status::kOk) s = detail::check_offsets(p.input_offset, p.filter_offset, p.output_offset);
  if (s == Status::kOk) s = detail::check_activation(p.act_min, p.act_max);
  if (s == Status::kOk) s = detail::check_requant(rq, d.out_c);
  if (s != Status::kOk) return s;
  const PathKernels* t = detail::path_kernels(ctx.path);
  if (t == nullptr) return Status::kPathUnavailable;
  const ConvPlan c = plan_conv(p, d, t, w4 != nullptr);
  if (c.need > INT32_MAX) return Status::kBadDimension;
  s = detail::check_scratch(ctx, static_cast<int32_t>(c.need));
  if (s != Status::kOk) return s;

  auto* col = static_cast<int8_t*>(ctx.scratch);
  GemmS8Args g;
  g.n = c.out_cg;
  g.k = c.kdim;
  g.ldb = c.kdim;
  g.a_offset = p.input_offset;
  g.b_offset = p.filter_offset;
  g.ldc = d.out_c;
  g.per_channel = rq.per_channel;
  g.rounding = rq.rounding;
  g.c_offset = p.output_offset;
  g.act_min = p.act_min;
  g.act_max = p.act_max;
  const bool has_path_scratch = c.need > c.col_bytes;
  g.scratch = has_path_scratch ? align_up(ctx.scratch, c.col_bytes) : nullptr;

  // Points g at group `grp`'s weights, bias and requantization; returns the gemm to run.
  auto select_group = [&](int32_t grp) -> void (*)(const GemmS8Args&) {
    const int64_t first = int64_t{grp} * c.out_cg;
    g.bias = bias != nullptr ? bias + first : nullptr;
    g.multiplier = rq.per_channel ? rq.multiplier + first : rq.multiplier;
    g.shift = rq.per_channel ? rq.shift + first : rq.shift;
    if (w4 == nullptr) {
      g.b = w8 + first * c.kdim;
      return gemm_s8_fn(t, false);
    }
    const int64_t nibble = first * c.kdim;
    g.b_s4 = w4 + nibble / 2;
    g.b_s4_first_nibble = static_cast<int32_t>(nibble % 2);
#if defined(TINYQUANT_RT_ONLY_SMLAD)
    return gemm_s8_fn(t, true);  // the smlad int4 kernel reads b_s4_first_nibble too
#else
    // Only the reference path reads b_s4_first_nibble.
    return g.b_s4_first_nibble == 0 ? gemm_s8_fn(t, true) : detail::reference_kernels()->gemm_s8;
#endif
  };

  if (c.direct) {
    g.m = d.batch * d.out_h * d.out_w;
    g.lda = d.in_c;
    for (int32_t grp = 0; grp < p.groups; ++grp) {
      auto* run = select_group(grp);
      g.a = input + int64_t{grp} * c.in_cg;
      g.c = output + int64_t{grp} * c.out_cg;
      run(g);
    }
    return Status::kOk;
  }

  const int32_t pixels = d.out_h * d.out_w;
  g.a = col;
  g.lda = c.kdim;
  for (int32_t b = 0; b < d.batch; ++b) {
    for (int32_t p0 = 0; p0 < pixels; p0 += c.rows) {
      const int32_t rows = pixels - p0 < c.rows ? pixels - p0 : c.rows;
      g.m = rows;
      for (int32_t grp = 0; grp < p.groups; ++grp) {
        fill_im2col(p, d, c, input, b, grp, p0, rows, col);
        auto* run = select_group(grp);
        g.c = output + (int64_t{b} * pixels + p0) * d.out_c + int64_t{grp} * c.out_cg;
        run(g);
      }
    }
  }
  return Status::kOk;
}

int32_t conv_scratch(const ConvParams& p, const ConvDims& d, Path path, bool s4) {
  if (detail::check_conv_dims(p, d) != Status::kOk) return 0;
  const PathKernels* t = detail::path_kernels(path);
  if (t == nullptr) return 0;
  return clamp_scratch(plan_conv(p, d, t, s4).need);
}

}  // namespace

Status fully_connected_s8(const Context& ctx, const FcParams& params, const Requant& requant,
                          const FcDims& dims, const int8_t* input, const int8_t* weights,
                          const int32_t* bias, int8_t* output) noexcept {
  if (input == nullptr || weights == nullptr || output == nullptr) return Status::kNullPointer;
  return fc_run(ctx, params, requant, dims, input, weights, nullptr, bias, output);
}

int32_t fully_connected_s8_scratch_size(const FcDims& dims, Path path) noexcept {
  const PathKernels* t = detail::path_kernels(path);
  if (t == nullptr || detail::check_fc_dims(dims) != Status::kOk) return 0;
  return clamp_scratch(fc_need(dims, t, false));
}

Status fully_connected_s4(const Context& ctx, const FcParams& params, const Requant& requant,
                          const FcDims& dims, const int8_t* input, const uint8_t* packed_weights,
                          const int32_t* bias, int8_t* output) noexcept {
  if (input == nullptr || packed_weights == nullptr || output == nullptr) {
    return Status::kNullPointer;
  }
  return fc_run(ctx, params, requant, dims, input, nullptr, packed_weights, bias, output);
}

int32_t fully_connected_s4_scratch_size(const FcDims& dims, Path path) noexcept {
  const PathKernels* t = detail::path_kernels(path);
  if (t == nullptr || detail::check_fc_dims(dims) != Status::kOk) return 0;
  return clamp_scratch(fc_need(dims, t, true));
}

Status conv2d_s8(const Context& ctx, const ConvParams& params, const Requant& requant,
                 const ConvDims& dims, const int8_t* input, const int8_t* weights,
                 const int32_t* bias, int8_t* output) noexcept {
  if (input == nullptr || weights == nullptr || output == nullptr) return Status::kNullPointer;
  return conv_run(ctx, params, requant, dims, input, weights, nullptr, bias, output);
}

int32_t conv2d_s8_scratch_size(const ConvParams& params, const ConvDims& dims, Path path) noexcept {
  return conv_scratch(params, dims, path, false);
}

Status conv2d_s4(const Context& ctx, const ConvParams& params, const Requant& requant,
                 const ConvDims& dims, const int8_t* input, const uint8_t* packed_weights,
                 const int32_t* bias, int8_t* output) noexcept {
  if (input == nullptr || packed_weights == nullptr || output == nullptr) {
    return Status::kNullPointer;
  }
  return conv_run(ctx, params, requant, dims, input, nullptr, packed_weights, bias, output);
}

int32_t conv2d_s4_scratch_size(const ConvParams& params, const ConvDims& dims, Path path) noexcept {
  return conv_scratch(params, dims, path, true);
}

Status depthwise_conv2d_s8(const Context& ctx, const ConvParams& params, const Requant& requant,
                           const ConvDims& dims, const int8_t* input, const int8_t* weights,
                           const int32_t* bias, int8_t* output) noexcept {
  if (input == nullptr || weights == nullptr || output == nullptr) return Status::kNullPointer;
  Status s = detail::check_depthwise_dims(params, dims);
  if (s == Status::kOk) {
    s = detail::check_offsets(params.input_offset, params.filter_offset, params.output_offset);
  }
  if (s == Status::kOk) s = detail::check_activation(params.act_min, params.act_max);
  if (s == Status::kOk) s = detail::check_requant(requant, dims.out_c);
  if (s != Status::kOk) return s;
  const PathKernels* t = detail::path_kernels(ctx.path);
  if (t == nullptr) return Status::kPathUnavailable;
  detail::DepthwiseArgs a;
  a.params = &params;
  a.dims = &dims;
  a.input = input;
  a.weights = weights;
  a.bias = bias;
  a.multiplier = requant.multiplier;
  a.shift = requant.shift;
  a.per_channel = requant.per_channel;
  a.rounding = requant.rounding;
  a.output = output;
  a.scratch = nullptr;  // no path needs depthwise scratch
  depthwise_fn(t)(a);
  return Status::kOk;
}

int32_t depthwise_conv2d_s8_scratch_size(const ConvParams&, const ConvDims&, Path) noexcept {
  return 0;
}

Status gemm_s8s8_s32(const Context& ctx, const GemmDims& dims, const int8_t* a, int32_t a_offset,
                     const int8_t* b, int32_t b_offset, const int32_t* row_add,
                     const int32_t* col_add, int32_t* c) noexcept {
  if (a == nullptr || b == nullptr || c == nullptr) return Status::kNullPointer;
  int32_t lda = 0, ldb = 0, ldc = 0;
  const Status s = detail::check_gemm_dims(dims, &lda, &ldb, &ldc);
  if (s != Status::kOk) return s;
  if (!detail::in_range(a_offset, -128, 128) || !detail::in_range(b_offset, -128, 128)) {
    return Status::kBadOffset;
  }
  const PathKernels* t = detail::path_kernels(ctx.path);
  if (t == nullptr) return Status::kPathUnavailable;
  const int32_t need = gemm_s8s8_s32_scratch_size(dims, ctx.path);
  const Status ss = detail::check_scratch(ctx, need);
  if (ss != Status::kOk) return ss;
  GemmS32Args g;
  g.m = dims.m;
  g.n = dims.n;
  g.k = dims.k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.a_offset = a_offset;
  g.b_offset = b_offset;
  g.row_add = row_add;
  g.col_add = col_add;
  g.c = c;
  g.ldc = ldc;
  g.scratch = need > 0 ? align_up(ctx.scratch, 0) : nullptr;
  gemm_s32_fn(t)(g);
  return Status::kOk;
}

int32_t gemm_s8s8_s32_scratch_size(const GemmDims& dims, Path path) noexcept {
  const PathKernels* t = detail::path_kernels(path);
  int32_t lda = 0, ldb = 0, ldc = 0;
  if (t == nullptr || detail::check_gemm_dims(dims, &lda, &ldb, &ldc) != Status::kOk) return 0;
  if (t->gemm_s32 == nullptr || t->gemm_s32_scratch == nullptr) return 0;
  const int32_t bytes = t->gemm_s32_scratch(dims.m, dims.n, dims.k);
  return bytes > 0 ? clamp_scratch(int64_t{bytes} + kAlign - 1) : 0;
}

}  // namespace tinyquant::rt
