// The expected outputs of the ARM kernel cases (kernel_cases.hpp), written here from the formulas
// in the rt headers (kernels.hpp, grouped.hpp) as plain loops with int64 sums, so that the
// vectors the target is checked against do not come from the kernels under test. Only the
// fixed-point requantize() is shared; tests/rt/test_fixed_point.cpp checks it against exact
// 128-bit arithmetic.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "../kernel_cases.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tq::oracle {

inline int32_t wrap32(int64_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v)));
}

// clamp(requantize(acc) + output_offset, act_min, act_max) for output channel ch.
inline int8_t out8(const KernelCase& c, const KernelBuffers& b, int64_t acc, int32_t ch) {
  const int32_t i = c.per_channel ? ch : 0;
  const int32_t r =
      wrap32(int64_t{rt::requantize(wrap32(acc), b.multiplier[i], b.shift[i], c.rounding)} +
             c.q.output_offset);
  return static_cast<int8_t>(r < c.q.act_min ? c.q.act_min : (r > c.q.act_max ? c.q.act_max : r));
}

inline int64_t bias_of(const KernelCase& c, const KernelBuffers& b, int32_t ch) {
  return c.with_bias ? b.bias[ch] : 0;
}

// Weight (o, k) of an [out][in] fully-connected case: int8, or the int4 nibble stream (element i
// in the low nibble of byte i / 2 when i is even, the high nibble when odd; two's complement).
inline int32_t fc_weight(const KernelCase& c, const KernelBuffers& b, int32_t o, int32_t k) {
  const int64_t i = int64_t{o} * c.fc.in_features + k;
  if (c.op == Op::kFcS8 || c.op == Op::kFcS8Grouped) return b.weights[i];
  const auto byte = static_cast<uint8_t>(b.weights[i / 2]);
  const int32_t nibble = i % 2 == 0 ? byte & 15 : byte >> 4;
  return nibble >= 8 ? nibble - 16 : nibble;
}

// sum over k in [k0, k1) of (x[row][k] + input_offset) * (w[o][k] + filter_offset), exact.
inline int64_t fc_sum(const KernelCase& c, const KernelBuffers& b, int32_t row, int32_t o,
                      int32_t k0, int32_t k1) {
  int64_t sum = 0;
  for (int32_t k = k0; k < k1; ++k)
    sum += int64_t{b.input[int64_t{row} * c.fc.in_features + k] + c.q.input_offset} *
           (fc_weight(c, b, o, k) + c.q.filter_offset);
  return sum;
}

inline void fully_connected(const KernelCase& c, const KernelBuffers& b, int8_t* out) {
  const rt::FcDims& d = c.fc;
  const bool grouped = c.op == Op::kFcS4Grouped || c.op == Op::kFcS8Grouped;
  const int32_t groups = grouped ? (d.in_features + c.group_size - 1) / c.group_size : 1;
  for (int32_t row = 0; row < d.batch; ++row) {
    for (int32_t o = 0; o < d.out_features; ++o) {
      int64_t acc = 0;
      if (!grouped) {
        acc = bias_of(c, b, o) + fc_sum(c, b, row, o, 0, d.in_features);
      } else {
        // grouped.hpp: each group's sum wraps to 32 bits, t = (sum_g acc_g r_g + 2^7) >> 8.
        int64_t total = 0;
        for (int32_t g = 0; g < groups; ++g) {
          const int32_t k0 = g * c.group_size;
          const int32_t k1 = k0 + c.group_size < d.in_features ? k0 + c.group_size : d.in_features;
          total += int64_t{wrap32(fc_sum(c, b, row, o, k0, k1))} *
                   (b.ratio[int64_t{o} * groups + g] + 1);
        }
        // (total + 2^7) >> 8 as a floor division, rounding half up.
        const int64_t v = total + 128;
        const int64_t t = v >= 0 ? v / 256 : -((255 - v) / 256);
        acc = wrap32(bias_of(c, b, o)) + int64_t{wrap32(t)};
      }
      out[int64_t{row} * d.out_features + o] = out8(c, b, acc, o);
    }
  }
}

// NHWC conv (weights OHWI [out_c][kh][kw][in_c / groups]) or depthwise (weights [kh][kw][out_c],
// output channel oc reads input channel oc / depth_multiplier). Padded taps add 0.
inline void convolution(const KernelCase& c, const KernelBuffers& b, int8_t* out) {
  const rt::ConvDims& d = c.conv;
  const rt::ConvParams& p = c.conv_params;
  const bool dw = c.op == Op::kDepthwise;
  const int32_t icg = dw ? 1 : d.in_c / p.groups, ocg = dw ? 1 : d.out_c / p.groups;
  for (int32_t n = 0; n < d.batch; ++n)
    for (int32_t oy = 0; oy < d.out_h; ++oy)
      for (int32_t ox = 0; ox < d.out_w; ++ox)
        for (int32_t oc = 0; oc < d.out_c; ++oc) {
          int64_t acc = bias_of(c, b, oc);
          for (int32_t ky = 0; ky < d.kernel_h; ++ky)
            for (int32_t kx = 0; kx < d.kernel_w; ++kx) {
              const int32_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
              const int32_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
              if (iy < 0 || iy >= d.in_h || ix < 0 || ix >= d.in_w) continue;
              for (int32_t ci = 0; ci < icg; ++ci) {
                const int32_t ch = dw ? oc / p.depth_multiplier : (oc / ocg) * icg + ci;
                const int64_t xi = ((int64_t{n} * d.in_h + iy) * d.in_w + ix) * d.in_c + ch;
                const int64_t wi =
                    dw ? (int64_t{ky} * d.kernel_w + kx) * d.out_c + oc
                       : ((int64_t{oc} * d.kernel_h + ky) * d.kernel_w + kx) * icg + ci;
                acc +=
                    int64_t{b.input[xi] + c.q.input_offset} * (b.weights[wi] + c.q.filter_offset);
              }
            }
          out[((int64_t{n} * d.out_h + oy) * d.out_w + ox) * d.out_c + oc] = out8(c, b, acc, oc);
        }
}

// kernels.hpp: c[i][j] = sum_k (a[i][k] + a_offset) (b[j][k] + b_offset) + row_add[i]
// + col_add[j], wrapped; run_case passes row_add always and the bias as col_add when with_bias.
// Entries between rows (ldc > n) keep run_case's 0x55 fill.
inline void gemm_s32(const KernelCase& c, const KernelBuffers& b, int32_t* out) {
  const rt::GemmDims& g = c.gemm;
  const int32_t lda = g.lda != 0 ? g.lda : g.k, ldb = g.ldb != 0 ? g.ldb : g.k;
  const int32_t ldc = g.ldc != 0 ? g.ldc : g.n;
  for (int32_t i = 0; i < g.m; ++i)
    for (int32_t j = 0; j < g.n; ++j) {
      int64_t acc = int64_t{b.row_add[i]} + (c.with_bias ? b.bias[j] : 0);
      for (int32_t k = 0; k < g.k; ++k)
        acc += int64_t{b.input[int64_t{i} * lda + k] + c.q.input_offset} *
               (b.weights[int64_t{j} * ldb + k] + c.q.filter_offset);
      out[int64_t{i} * ldc + j] = wrap32(acc);
    }
}

// The bytes case c must produce from the operands run_case left in b: output_bytes(c) of them,
// laid out as case_output(c, b) holds them.
inline std::vector<uint8_t> expected_output(const KernelCase& c, const KernelBuffers& b) {
  static KernelBuffers out;
  std::memset(out.output, 0x55, sizeof out.output);
  std::memset(out.output32, 0x55, sizeof out.output32);
  switch (c.op) {
    case Op::kFcS8:
    case Op::kFcS4:
    case Op::kFcS4Grouped:
    case Op::kFcS8Grouped:
      fully_connected(c, b, out.output);
      break;
    case Op::kConv:
    case Op::kDepthwise:
      convolution(c, b, out.output);
      break;
    case Op::kGemmS32:
      gemm_s32(c, b, out.output32);
      break;
  }
  const uint8_t* p = case_output(c, out);
  return std::vector<uint8_t>(p, p + output_bytes(c));
}

}  // namespace tq::oracle
