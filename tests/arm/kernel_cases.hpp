// Kernel cases shared by the host generator (host/gen_vectors.cpp) and the on-target test
// (test_kernels.cpp): the same shapes, parameters and xorshift-generated inputs on both sides, so
// the target's outputs can be compared with the host's byte for byte. Shapes are small, odd and
// cover every argument the kernels treat specially: odd K, int4 rows sharing a byte, padding,
// stride 2, groups, depth multiplier, per-tensor and per-channel requantization, clamping, null
// bias, nonzero filter offset, and both rounding modes.
#pragma once

#include <cstdint>
#include <cstring>

#include "check.hpp"
#include "tinyquant/rt/grouped.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

namespace tq {

namespace rt = tinyquant::rt;

enum class Op { kFcS8, kFcS4, kConv, kDepthwise, kGemmS32, kFcS4Grouped, kFcS8Grouped };

// The offsets and activation range of a case; most cases keep the full int8 range.
struct Quant {
  int32_t input_offset, filter_offset, output_offset;
  int32_t act_min = -128, act_max = 127;
};

struct KernelCase {
  const char* name;
  Op op;
  rt::FcDims fc;
  rt::ConvDims conv;
  rt::ConvParams conv_params;  // geometry only; offsets and activation range come from q
  rt::GemmDims gemm;
  Quant q;
  bool per_channel, with_bias;
  rt::Rounding rounding;
  uint32_t seed;
  int32_t group_size = 0;                 // Op::kFcS4Grouped and kFcS8Grouped only
  int32_t shift_lo = -12, shift_hi = -7;  // range of the random shifts
  // Edits after the random fill, for the NEON path's paired step (neon_mac16.inc), which adds
  // the products of k and k + 8 (k % 16 < 8) in one int16 lane and is exact only without -128
  // in the weights. min_row >= 0: weight (min_row, min_k) is -128, so are (min_row, min_k + 8)
  // with min_pair and every input row at those k: the paired step would wrap there
  // (2 * 128 * 128 = 2^15). extreme: every input -128 and every weight -127 or 127 (with
  // extreme_min, also -128), the largest products either step forms, over long K.
  int32_t min_row = -1, min_k = 0;
  bool min_pair = false;
  bool extreme = false, extreme_min = false;
};

inline rt::ConvParams geometry(int32_t stride, int32_t pad, int32_t groups, int32_t mult) {
  rt::ConvParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_top = p.pad_left = pad;
  p.groups = groups;
  p.depth_multiplier = mult;
  return p;
}

inline rt::ConvDims conv_dims(int32_t n, int32_t h, int32_t w, int32_t c, int32_t k, int32_t oh,
                              int32_t ow, int32_t oc) {
  rt::ConvDims d;
  d.batch = n;
  d.in_h = h;
  d.in_w = w;
  d.in_c = c;
  d.kernel_h = d.kernel_w = k;
  d.out_h = oh;
  d.out_w = ow;
  d.out_c = oc;
  return d;
}

constexpr rt::Rounding kDbl = rt::Rounding::kDouble;
constexpr rt::Rounding kSgl = rt::Rounding::kSingle;

// Requantization and data of a case: per-channel or per-tensor, with or without bias, rounding,
// input seed.
struct Setup {
  bool per_channel, with_bias;
  rt::Rounding rounding;
  uint32_t seed;
};

// Op::kFcS8, kFcS4, kFcS4Grouped and kFcS8Grouped (group_size for the grouped ones).
inline KernelCase fc_case(const char* name, Op op, rt::FcDims fc, Quant q, Setup s,
                          int32_t group_size = 0) {
  return {name, op, fc, {}, {}, {}, q, s.per_channel, s.with_bias, s.rounding, s.seed, group_size};
}
// Op::kConv and kDepthwise.
inline KernelCase conv_case(const char* name, Op op, rt::ConvDims d, rt::ConvParams g, Quant q,
                            Setup s) {
  return {name, op, {}, d, g, {}, q, s.per_channel, s.with_bias, s.rounding, s.seed};
}
// Op::kGemmS32: q.output_offset and the activation range are unused; with_bias adds col_add.
inline KernelCase gemm_case(const char* name, rt::GemmDims d, Quant q, Setup s) {
  return {name, Op::kGemmS32, {}, {}, {}, d, q, s.per_channel, s.with_bias, s.rounding, s.seed};
}

// c with its shifts drawn from the whole valid range instead of [-12, -7]: most outputs then
// saturate or round to the output offset, through every left and right shift of the epilogue.
inline KernelCase all_shifts(KernelCase c) {
  c.shift_lo = rt::kMinShift;
  c.shift_hi = rt::kMaxShift;
  return c;
}

// c with weight (row, k) at -128 and, with pair, (row, k + 8) and every input row at k and
// k + 8 at -128 too.
inline KernelCase with_min_weight(KernelCase c, int32_t row, int32_t k, bool pair) {
  c.min_row = row;
  c.min_k = k;
  c.min_pair = pair;
  return c;
}
// c with every input -128 and every weight -127 or 127, or with with_min, -128, -127 or 127.
inline KernelCase extreme(KernelCase c, bool with_min) {
  c.extreme = true;
  c.extreme_min = with_min;
  return c;
}

// Quant: {in_off, w_off, out_off[, act_min, act_max]}; Setup: {per_channel, bias, rounding, seed}.
inline const KernelCase kKernelCases[] = {
    fc_case("fc_s8 1x27x13", Op::kFcS8, {1, 27, 13}, {128, 0, -3}, {true, true, kDbl, 1}),
    fc_case("fc_s8 3x64x17", Op::kFcS8, {3, 64, 17}, {-127, 0, 5, -100, 90},
            {false, true, kSgl, 2}),
    fc_case("fc_s8 2x33x8 w_off", Op::kFcS8, {2, 33, 8}, {7, -3, 0}, {true, false, kDbl, 3}),
    fc_case("fc_s4 1x27x13", Op::kFcS4, {1, 27, 13}, {128, 0, -3}, {true, true, kDbl, 4}),
    fc_case("fc_s4 2x64x9", Op::kFcS4, {2, 64, 9}, {1, 0, 12}, {false, true, kSgl, 5}),
    // Grouped int4: rows starting mid-byte (odd K), a short last group, group 1 and 3, a group
    // longer than the row, the extreme offsets (input offset 128 is the x86 bodies' 64 + 64).
    fc_case("fc_s4_grouped 1x75x13 g8", Op::kFcS4Grouped, {1, 75, 13}, {128, 3, -3},
            {true, true, kDbl, 21}, 8),
    fc_case("fc_s4_grouped 2x64x9 g32", Op::kFcS4Grouped, {2, 64, 9}, {-127, -127, 5},
            {false, false, kSgl, 22}, 32),
    fc_case("fc_s4_grouped 1x40x6 g3", Op::kFcS4Grouped, {1, 40, 6}, {7, 128, 0, -20, 40},
            {true, true, kDbl, 23}, 3),
    fc_case("fc_s4_grouped 3x17x5 g1", Op::kFcS4Grouped, {3, 17, 5}, {-5, 0, 2},
            {true, true, kSgl, 24}, 1),
    fc_case("fc_s4_grouped 1x96x4 g128", Op::kFcS4Grouped, {1, 96, 4}, {0, 8, -1},
            {true, true, kDbl, 25}, 128),
    // Groups of 16 k steps, an 8 k step and single k (NEON), rows in blocks of 4 and fewer.
    fc_case("fc_s4_grouped 1x300x9 g40", Op::kFcS4Grouped, {1, 300, 9}, {-127, 5, 3},
            {true, true, kSgl, 26}, 40),
    fc_case("fc_s4_grouped 2x71x6 g20", Op::kFcS4Grouped, {2, 71, 6}, {128, -127, 0},
            {true, true, kDbl, 27}, 20),
    // Grouped int8: the same kinds of shapes.
    fc_case("fc_s8_grouped 1x75x13 g8", Op::kFcS8Grouped, {1, 75, 13}, {128, 3, -3},
            {true, true, kDbl, 31}, 8),
    fc_case("fc_s8_grouped 2x64x9 g32", Op::kFcS8Grouped, {2, 64, 9}, {-127, -127, 5},
            {false, false, kSgl, 32}, 32),
    fc_case("fc_s8_grouped 1x40x6 g3", Op::kFcS8Grouped, {1, 40, 6}, {7, 128, 0, -20, 40},
            {true, true, kDbl, 33}, 3),
    fc_case("fc_s8_grouped 3x17x5 g1", Op::kFcS8Grouped, {3, 17, 5}, {-5, 0, 2},
            {true, true, kSgl, 34}, 1),
    fc_case("fc_s8_grouped 1x100x4 g128", Op::kFcS8Grouped, {1, 100, 4}, {0, 8, -1},
            {true, true, kDbl, 35}, 128),
    fc_case("fc_s8_grouped 1x300x9 g40", Op::kFcS8Grouped, {1, 300, 9}, {-127, 5, 3},
            {true, true, kSgl, 36}, 40),
    fc_case("fc_s8_grouped 2x71x6 g20", Op::kFcS8Grouped, {2, 71, 6}, {128, -127, 0},
            {true, true, kDbl, 37}, 20),
    conv_case("conv 7x7x3->5 3x3 same", Op::kConv, conv_dims(1, 7, 7, 3, 3, 7, 7, 5),
              geometry(1, 1, 1, 1), {128, 0, -1}, {true, true, kDbl, 6}),
    conv_case("conv 8x6x8->16 3x3 s2", Op::kConv, conv_dims(2, 8, 6, 8, 3, 4, 3, 16),
              geometry(2, 1, 1, 1), {3, 0, 2}, {true, true, kSgl, 7}),
    conv_case("conv 1x1 5x5x16->8", Op::kConv, conv_dims(1, 5, 5, 16, 1, 5, 5, 8),
              geometry(1, 0, 1, 1), {-5, 0, 0, -64, 64}, {false, false, kDbl, 8}),
    conv_case("conv 6x6x8->8 3x3 g2", Op::kConv, conv_dims(1, 6, 6, 8, 3, 6, 6, 8),
              geometry(1, 1, 2, 1), {128, 2, -7}, {true, true, kDbl, 9}),
    conv_case("dw 7x7x8 3x3 same", Op::kDepthwise, conv_dims(1, 7, 7, 8, 3, 7, 7, 8),
              geometry(1, 1, 1, 1), {128, 0, 1}, {true, true, kDbl, 10}),
    conv_case("dw 6x6x5 m2 3x3 s2", Op::kDepthwise, conv_dims(1, 6, 6, 5, 3, 3, 3, 10),
              geometry(2, 1, 1, 2), {-9, 0, -2}, {true, false, kSgl, 11}),
    gemm_case("gemm_s32 5x7x19", {5, 7, 19, 0, 0, 0}, {128, -128, 0, 0, 0},
              {false, true, kDbl, 12}),
    // m >= 8 (the packed AArch64 dot-product kernel): every count of rows in the last 8-row
    // tile, columns past the last multiple of 4 and 8, K tails of 1-15 and multiples of 16.
    all_shifts(
        fc_case("fc_s8 9x27x13", Op::kFcS8, {9, 27, 13}, {128, -127, -3}, {true, true, kDbl, 41})),
    fc_case("fc_s8 10x100x12", Op::kFcS8, {10, 100, 12}, {-127, 128, 4, -100, 90},
            {false, true, kSgl, 42}),
    all_shifts(
        fc_case("fc_s8 11x33x23", Op::kFcS8, {11, 33, 23}, {17, 0, 0}, {true, false, kSgl, 43})),
    fc_case("fc_s8 12x16x8", Op::kFcS8, {12, 16, 8}, {0, 0, -1}, {false, true, kDbl, 44}),
    fc_case("fc_s8 13x130x5", Op::kFcS8, {13, 130, 5}, {-5, 3, 2}, {true, true, kDbl, 45}),
    fc_case("fc_s8 14x7x30", Op::kFcS8, {14, 7, 30}, {128, 128, 0}, {true, true, kSgl, 46}),
    all_shifts(fc_case("fc_s8 39x64x17", Op::kFcS8, {39, 64, 17}, {-127, -127, 5, -20, 40},
                       {true, true, kDbl, 47})),
    fc_case("fc_s8 40x200x16", Op::kFcS8, {40, 200, 16}, {3, 0, -2}, {false, true, kSgl, 48}),
    all_shifts(
        fc_case("fc_s8 33x48x40", Op::kFcS8, {33, 48, 40}, {128, -1, 1}, {true, true, kDbl, 49})),
    all_shifts(
        fc_case("fc_s4 9x45x19", Op::kFcS4, {9, 45, 19}, {128, 0, 2}, {true, true, kDbl, 50})),
    fc_case("fc_s4 16x64x8", Op::kFcS4, {16, 64, 8}, {-127, 0, -3}, {false, true, kSgl, 51}),
    gemm_case("gemm_s32 19x33x10 lda 40 ldb 35", {19, 33, 10, 40, 35, 0}, {-127, 128, 0, 0, 0},
              {false, true, kDbl, 52}),
    gemm_case("gemm_s32 8x16x8", {8, 16, 8, 0, 0, 0}, {0, 0, 0, 0, 0}, {false, false, kDbl, 53}),
    // m = 2-7 (the packed dot-product kernel's short tiles), k = 1-3 (no whole 16-k step), n = 1.
    fc_case("fc_s8 2x3x1", Op::kFcS8, {2, 3, 1}, {128, -127, 7}, {true, true, kDbl, 54}),
    all_shifts(
        fc_case("fc_s8 3x1x9", Op::kFcS8, {3, 1, 9}, {-127, 128, -128}, {true, true, kDbl, 55})),
    fc_case("fc_s8 5x2x5", Op::kFcS8, {5, 2, 5}, {1, 3, 0, -50, 50}, {false, true, kSgl, 56}),
    fc_case("fc_s8 7x17x9", Op::kFcS8, {7, 17, 9}, {128, 128, 127}, {true, false, kSgl, 57}),
    fc_case("fc_s4 3x1x7", Op::kFcS4, {3, 1, 7}, {128, 0, 1}, {true, true, kDbl, 58}),
    all_shifts(
        fc_case("fc_s4 6x33x3", Op::kFcS4, {6, 33, 3}, {-127, 0, -2}, {true, true, kDbl, 59})),
    gemm_case("gemm_s32 6x9x3 lda 5 ldb 4", {6, 9, 3, 5, 4, 0}, {128, -128, 0, 0, 0},
              {false, true, kDbl, 60}),
    gemm_case("gemm_s32 2x1x1", {2, 1, 1, 0, 0, 0}, {-127, 128, 0, 0, 0}, {false, true, kDbl, 61}),
    // The NEON path's paired step at m > 1 (4x4c16 tiles, each 4-column strip of b checked for
    // -128): weights at -128 in pairs the paired step would wrap on, in the first and last strip,
    // a middle and the K tail (k % 16 = 9-15), beside strips without (and in the GEMV, which
    // keeps the exact step); a lone -128; every input at
    // -128 against weights at +-127 (the int16 pair bound) and at -128, over long K; the last
    // tile with 1-4 rows, N tails 1-3.
    with_min_weight(
        fc_case("fc_s8 6x27x7 min tail", Op::kFcS8, {6, 27, 7}, {0, 0, 0}, {true, true, kDbl, 62}),
        6, 17, true),
    with_min_weight(gemm_case("gemm_s32 7x5x40 min first", {7, 5, 40, 0, 0, 0}, {0, 0, 0, 0, 0},
                              {false, false, kDbl, 63}),
                    0, 3, true),
    with_min_weight(gemm_case("gemm_s32 5x10x73 lda 75 ldb 80 min tail", {5, 10, 73, 75, 80, 0},
                              {17, -3, 0, 0, 0}, {false, true, kDbl, 64}),
                    9, 64, true),
    with_min_weight(gemm_case("gemm_s32 8x9x64 min middle", {8, 9, 64, 0, 0, 0}, {0, 0, 0, 0, 0},
                              {false, false, kDbl, 65}),
                    5, 38, true),
    with_min_weight(fc_case("fc_s8 9x64x13 min middle", Op::kFcS8, {9, 64, 13}, {-7, 2, 1},
                            {true, true, kDbl, 73}),
                    6, 35, true),
    extreme(fc_case("fc_s8 5x1500x5 extreme min", Op::kFcS8, {5, 1500, 5}, {0, 0, 0},
                    {false, true, kSgl, 74}),
            true),
    with_min_weight(
        fc_case("fc_s8 1x27x5 min tail", Op::kFcS8, {1, 27, 5}, {9, 0, 0}, {true, true, kSgl, 72}),
        4, 18, true),
    with_min_weight(
        fc_case("fc_s8 7x25x6 lone min", Op::kFcS8, {7, 25, 6}, {-3, 0, 1}, {true, true, kSgl, 66}),
        5, 24, false),
    extreme(gemm_case("gemm_s32 2x2x4000 extreme", {2, 2, 4000, 0, 0, 0}, {0, 0, 0, 0, 0},
                      {false, false, kDbl, 67}),
            false),
    extreme(gemm_case("gemm_s32 5x3x1500 extreme", {5, 3, 1500, 0, 0, 0}, {5, 128, 0, 0, 0},
                      {false, true, kDbl, 68}),
            false),
    extreme(gemm_case("gemm_s32 7x7x1000 extreme min", {7, 7, 1000, 0, 0, 0}, {0, 0, 0, 0, 0},
                      {false, false, kDbl, 69}),
            true),
    extreme(gemm_case("gemm_s32 4x4x2001 extreme min", {4, 4, 2001, 0, 0, 0}, {-127, -127, 0, 0, 0},
                      {false, true, kDbl, 70}),
            true),
    all_shifts(extreme(fc_case("fc_s8 6x1111x5 extreme", Op::kFcS8, {6, 1111, 5}, {0, 0, 0},
                               {true, true, kDbl, 71}),
                       false)),
    // A -128 pair in the last row of a full strip (row 7 of columns 4-7; the cases above put it
    // in a strip's first three rows or a short last strip) at k 7 and 15, the last lane of the
    // paired step's SMULL and SMLAL2 halves; plain and prepacked (the flag of that strip).
    with_min_weight(fc_case("fc_s8 8x32x12 min last row of strip", Op::kFcS8, {8, 32, 12},
                            {5, -2, 3}, {true, true, kDbl, 75}),
                    7, 7, true),
    // The GEMV on weights prepacked for the dot-product path (its panels, column sums stored)
    // with input offsets -127 and 128 (the stored sums enter scaled by them): K a multiple of 4
    // but not of 16 and a short last panel (N = 21), whole 16-k steps and panels (K = 64, N = 16).
    fc_case("fc_s8 1x100x21", Op::kFcS8, {1, 100, 21}, {-127, 128, 2}, {true, true, kSgl, 76}),
    all_shifts(
        fc_case("fc_s8 1x64x16", Op::kFcS8, {1, 64, 16}, {128, -127, -1}, {true, false, kDbl, 77})),
};
constexpr int kNumKernelCases = static_cast<int>(sizeof kKernelCases / sizeof kKernelCases[0]);

constexpr int32_t kMaxBytes = 8192;  // inputs, weights, int8 outputs
constexpr int32_t kMaxScratch = 32768;

struct KernelBuffers {
  int8_t input[kMaxBytes];
  int8_t weights[kMaxBytes];
  int32_t bias[256];
  int32_t row_add[256];
  int32_t multiplier[256];
  int32_t shift[256];
  int8_t output[kMaxBytes];
  int32_t output32[kMaxBytes / 4];
  uint8_t ratio[256];  // grouped: [out][groups]
  alignas(16) uint8_t scratch[kMaxScratch];
  alignas(64) uint8_t packed[2 * kMaxBytes + 4096];  // prepacked weights (FcWeights)
};

inline int32_t output_bytes(const KernelCase& c) {
  switch (c.op) {
    case Op::kFcS8:
    case Op::kFcS4:
    case Op::kFcS4Grouped:
    case Op::kFcS8Grouped:
      return c.fc.batch * c.fc.out_features;
    case Op::kConv:
    case Op::kDepthwise:
      return c.conv.batch * c.conv.out_h * c.conv.out_w * c.conv.out_c;
    case Op::kGemmS32:
      return c.gemm.m * c.gemm.n * 4;
  }
  return 0;
}

// p (rt::FcParams or rt::ConvParams) with the offsets and activation range of q.
template <class Params>
Params with_quant(Params p, const Quant& q) {
  p.input_offset = q.input_offset;
  p.filter_offset = q.filter_offset;
  p.output_offset = q.output_offset;
  p.act_min = q.act_min;
  p.act_max = q.act_max;
  return p;
}

// The input and weight shape of an Op::kFcS8 or kGemmS32 case: rows and row stride of each.
struct MatShape {
  int32_t m, lda, n, ldb, k;
};
inline MatShape mat_shape(const KernelCase& c) {
  if (c.op == Op::kGemmS32) {
    const rt::GemmDims& g = c.gemm;
    return {g.m, g.lda != 0 ? g.lda : g.k, g.n, g.ldb != 0 ? g.ldb : g.k, g.k};
  }
  return {c.fc.batch, c.fc.in_features, c.fc.out_features, c.fc.in_features, c.fc.in_features};
}

// The case's min_row / extreme edits (KernelCase) on the filled buffers.
inline void apply_edits(const KernelCase& c, XorShift32* rng, KernelBuffers& b) {
  if (c.min_row < 0 && !c.extreme) return;
  const MatShape s = mat_shape(c);
  if (c.extreme) {
    for (int32_t i = 0; i < s.m; ++i)
      for (int32_t t = 0; t < s.k; ++t) b.input[i * s.lda + t] = INT8_MIN;
    for (int32_t j = 0; j < s.n; ++j) {
      for (int32_t t = 0; t < s.k; ++t) {
        const int32_t pick = rng->range(0, c.extreme_min ? 2 : 1);
        b.weights[j * s.ldb + t] = static_cast<int8_t>(pick == 0 ? -127 : pick == 1 ? 127 : -128);
      }
    }
  }
  if (c.min_row >= 0) {
    for (int32_t t = c.min_k; t <= c.min_k + (c.min_pair ? 8 : 0); t += 8) {
      b.weights[c.min_row * s.ldb + t] = INT8_MIN;
      for (int32_t i = 0; c.min_pair && i < s.m; ++i) b.input[i * s.lda + t] = INT8_MIN;
    }
  }
}

// How an Op::kFcS8 case hands its weights over: as given, or prepacked for the path
// (fully_connected_s8_prepack) and run by fully_connected_s8_prepacked, or by
// fully_connected_s8_prepacked_s32 into b.output32 (m * n raw accumulators).
enum class FcWeights { kPlain, kPrepacked, kPrepackedS32 };

// Runs case c on `path` into b.output (or b.output32), inputs regenerated from c.seed.
// Returns the kernel's status.
inline rt::Status run_case(const KernelCase& c, rt::Path path, KernelBuffers& b,
                           FcWeights weights = FcWeights::kPlain) {
  XorShift32 rng;
  rng.s = 0x1234567u * c.seed + 1u;
  for (int32_t i = 0; i < kMaxBytes; ++i) b.input[i] = static_cast<int8_t>(rng.range(-128, 127));
  const int32_t wlo = c.op == Op::kFcS4 || c.op == Op::kFcS4Grouped
                          ? -128
                          : -127;  // int4: any byte pattern is valid
  for (int32_t i = 0; i < kMaxBytes; ++i) b.weights[i] = static_cast<int8_t>(rng.range(wlo, 127));
  for (int32_t i = 0; i < 256; ++i) {
    b.bias[i] = rng.range(-20000, 20000);
    b.row_add[i] = rng.range(-100000, 100000);
    b.multiplier[i] = rng.range(1 << 30, INT32_MAX);
    b.shift[i] = rng.range(c.shift_lo, c.shift_hi);
  }
  for (int32_t i = 0; i < 256; ++i) b.ratio[i] = static_cast<uint8_t>(rng.range(0, 255));
  apply_edits(c, &rng, b);
  std::memset(b.output, 0x55, sizeof b.output);
  std::memset(b.output32, 0x55, sizeof b.output32);

  rt::Context ctx;
  ctx.scratch = b.scratch;
  ctx.scratch_size = kMaxScratch;
  ctx.path = path;
  rt::Requant rq;
  rq.multiplier = b.multiplier;
  rq.shift = b.shift;
  rq.per_channel = c.per_channel;
  rq.rounding = c.rounding;
  const int32_t* bias = c.with_bias ? b.bias : nullptr;

  switch (c.op) {
    case Op::kFcS8:
    case Op::kFcS4:
    case Op::kFcS4Grouped:
    case Op::kFcS8Grouped: {
      const auto p = with_quant(rt::FcParams{}, c.q);
      if (c.op == Op::kFcS8 && weights == FcWeights::kPlain) {
        return rt::fully_connected_s8(ctx, p, rq, c.fc, b.input, b.weights, bias, b.output);
      }
      if (c.op == Op::kFcS8) {
        const rt::Status s = rt::fully_connected_s8_prepack(p, c.fc, b.weights, path, b.packed,
                                                            static_cast<int32_t>(sizeof b.packed));
        if (s != rt::Status::kOk) return s;
        if (weights == FcWeights::kPrepacked) {
          return rt::fully_connected_s8_prepacked(ctx, p, rq, c.fc, b.input, b.packed, bias,
                                                  b.output);
        }
        return rt::fully_connected_s8_prepacked_s32(ctx, p, c.fc, b.input, b.packed, bias,
                                                    b.output32);
      }
      const rt::GroupScales gs{c.group_size, b.ratio};
      if (c.op == Op::kFcS4Grouped) {
        return rt::fully_connected_s4_grouped(ctx, p, rq, c.fc, gs, b.input,
                                              reinterpret_cast<const uint8_t*>(b.weights), bias,
                                              b.output);
      }
      if (c.op == Op::kFcS8Grouped) {
        return rt::fully_connected_s8_grouped(ctx, p, rq, c.fc, gs, b.input, b.weights, bias,
                                              b.output);
      }
      return rt::fully_connected_s4(ctx, p, rq, c.fc, b.input,
                                    reinterpret_cast<const uint8_t*>(b.weights), bias, b.output);
    }
    case Op::kConv:
    case Op::kDepthwise: {
      const auto p = with_quant(c.conv_params, c.q);
      if (c.op == Op::kConv) {
        return rt::conv2d_s8(ctx, p, rq, c.conv, b.input, b.weights, bias, b.output);
      }
      return rt::depthwise_conv2d_s8(ctx, p, rq, c.conv, b.input, b.weights, bias, b.output);
    }
    case Op::kGemmS32:
      return rt::gemm_s8s8_s32(ctx, c.gemm, b.input, c.q.input_offset, b.weights, c.q.filter_offset,
                               b.row_add, c.with_bias ? b.bias : nullptr, b.output32);
  }
  return rt::Status::kBadArgument;
}

// The bytes a case produced, for comparison.
inline const uint8_t* case_output(const KernelCase& c, const KernelBuffers& b) {
  return c.op == Op::kGemmS32 ? reinterpret_cast<const uint8_t*>(b.output32)
                              : reinterpret_cast<const uint8_t*>(b.output);
}

// The paths to exercise on this build: every supported one except kAuto.
constexpr rt::Path kPaths[] = {rt::Path::kReference,  rt::Path::kSmlad, rt::Path::kAvx2,
                               rt::Path::kAvx512Vnni, rt::Path::kNeon,  rt::Path::kNeonDot};

}  // namespace tq
