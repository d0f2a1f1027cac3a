// Integer-only kernels: CMSIS-NN's argument conventions, bit-exact with its s8 kernels.
//
// Every kernel computes, per output element,
//   acc = bias + sum_k (x + input_offset) * (w + filter_offset)     (32-bit, wraps)
//   out = clamp(requantize(acc, multiplier, shift, rounding) + output_offset, act_min, act_max)
// with value ranges
//   input_offset  in [-127, 128]  (= -input_zero_point)
//   filter_offset in [-127, 128]  (= -filter_zero_point; 0 for TFLite's symmetric weights)
//   output_offset in [-128, 127]  (=  output_zero_point)
//   act_min <= act_max, both in [-128, 127]
//   shift in [-31, 30], multiplier in [0, 2^31 - 1]
// Layouts: activations row-major [batch][features] or NHWC; fully-connected weights [out][in];
// conv weights OHWI [out_c][kh][kw][in_c / groups]; depthwise weights [kh][kw][in_c * mult]
// (TFLite's 1HWC). int4 weights are one continuous nibble stream over the row-major tensor:
// element 2i in the low nibble of byte i, element 2i+1 in the high nibble (CMSIS-NN's s4).
//
// Dimensions are >= 1 and no tensor (input, weights, output, and their per-row products such as
// batch * in_features) holds more than 2^31 - 2^16 elements, else kBadDimension. Convolutions
// also bound out_c * kernel_h * kernel_w * in_c by that limit (the full in_c, even where grouped
// or depthwise weights hold fewer elements), and the window's reach (the output's stride span
// plus the dilated kernel extent) and each padding by half of it.
//
// No kernel allocates: scratch memory comes from the caller through Context, sized by the
// matching *_scratch_size() query for the path that will run. No kernel throws: bad arguments
// return a Status and leave the output untouched.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/status.hpp"

namespace tinyquant::rt {

// Kernel implementations, as bits so a set of them fits in one word.
enum class Path : uint32_t {
  kAuto = 0,              // let dispatch choose (forced path, else the fastest supported)
  kReference = 1u << 0,   // obvious scalar loops: the oracle for every other path
  kSmlad = 1u << 1,       // Cortex-M DSP data flow (SXTB16 + SMLAD); emulated off-ARM
  kAvx2 = 1u << 2,        // x86 AVX2, vpmaddwd
  kAvx512Vnni = 1u << 3,  // x86 AVX-512 VNNI, vpdpbusd
  kNeon = 1u << 4,        // AArch64 Advanced SIMD
  kNeonDot = 1u << 5,     // AArch64 with the dot-product extension
  kAmx = 1u << 6,         // x86 AMX-INT8 tiles (tdpbssd) for m >= 16; AVX-512 VNNI below that
};

constexpr uint32_t path_bits(Path p) noexcept {
  return static_cast<uint32_t>(p);
}

// Paths compiled into this build and runnable on this CPU, as a bit set.
uint32_t supported_paths() noexcept;
// The path kAuto resolves to: the forced path if one is set and supported, else the fastest.
Path default_path() noexcept;
// Force a path for every kAuto call (kAuto clears it). Returns kPathUnavailable if unsupported
// or not a single path (a mask of several).
// On hosted builds the environment variable TINYQUANT_PATH (reference, smlad, avx2,
// avx512vnni, neon, neondot, amx) forces one at first use.
Status force_path(Path p) noexcept;
const char* path_name(Path p) noexcept;

// Per-call context: the scratch buffer and the path to run.
struct Context {
  void* scratch = nullptr;   // at least *_scratch_size() bytes, any alignment
  int32_t scratch_size = 0;  // bytes
  Path path = Path::kAuto;
};

// Output requantization: one multiplier/shift per output channel, or one for the tensor.
struct Requant {
  const int32_t* multiplier = nullptr;  // [0, 2^31 - 1]
  const int32_t* shift = nullptr;       // [-31, 30]
  bool per_channel = false;
  Rounding rounding = Rounding::kDouble;
};

struct FcParams {
  int32_t input_offset = 0;   // [-127, 128]
  int32_t filter_offset = 0;  // [-127, 128]
  int32_t output_offset = 0;  // [-128, 127]
  int32_t act_min = -128;     // [-128, 127]
  int32_t act_max = 127;      // [act_min, 127]
};

struct FcDims {
  int32_t batch = 1;         // >= 1
  int32_t in_features = 0;   // >= 1 (K)
  int32_t out_features = 0;  // >= 1 (N)
};

// output[b][o] for b < batch, o < out_features.
// input [batch][in_features], weights [out_features][in_features], bias [out_features] or null.
Status fully_connected_s8(const Context& ctx, const FcParams& params, const Requant& requant,
                          const FcDims& dims, const int8_t* input, const int8_t* weights,
                          const int32_t* bias, int8_t* output) noexcept;
int32_t fully_connected_s8_scratch_size(const FcDims& dims, Path path) noexcept;

// Same, weights packed int4 (values in [-8, 7]) as one nibble stream over [out][in]; any
// in_features, including odd ones where a row's last nibble shares a byte with the next row's.
Status fully_connected_s4(const Context& ctx, const FcParams& params, const Requant& requant,
                          const FcDims& dims, const int8_t* input, const uint8_t* packed_weights,
                          const int32_t* bias, int8_t* output) noexcept;
int32_t fully_connected_s4_scratch_size(const FcDims& dims, Path path) noexcept;

struct ConvParams {
  int32_t input_offset = 0;                // [-127, 128]
  int32_t filter_offset = 0;               // [-127, 128]
  int32_t output_offset = 0;               // [-128, 127]
  int32_t stride_h = 1, stride_w = 1;      // >= 1
  int32_t pad_top = 0, pad_left = 0;       // >= 0; bottom/right padding follows from out_h/out_w
  int32_t dilation_h = 1, dilation_w = 1;  // >= 1
  int32_t groups = 1;                      // conv2d: >= 1, divides in_c and out_c
  int32_t depth_multiplier = 1;            // depthwise: out_c == in_c * depth_multiplier
  int32_t act_min = -128;
  int32_t act_max = 127;
};

struct ConvDims {
  int32_t batch = 1;
  int32_t in_h = 0, in_w = 0, in_c = 0;
  int32_t kernel_h = 0, kernel_w = 0;
  int32_t out_h = 0, out_w = 0, out_c = 0;
};

// NHWC conv. Padded input positions contribute exactly 0 to the accumulator (they act as
// x = -input_offset). A null bias means zero bias for every output channel of every group.
Status conv2d_s8(const Context& ctx, const ConvParams& params, const Requant& requant,
                 const ConvDims& dims, const int8_t* input, const int8_t* weights,
                 const int32_t* bias, int8_t* output) noexcept;
int32_t conv2d_s8_scratch_size(const ConvParams& params, const ConvDims& dims, Path path) noexcept;

Status conv2d_s4(const Context& ctx, const ConvParams& params, const Requant& requant,
                 const ConvDims& dims, const int8_t* input, const uint8_t* packed_weights,
                 const int32_t* bias, int8_t* output) noexcept;
int32_t conv2d_s4_scratch_size(const ConvParams& params, const ConvDims& dims, Path path) noexcept;

// Depthwise NHWC conv with channel multiplier: output channel c*mult + m reads input channel c.
Status depthwise_conv2d_s8(const Context& ctx, const ConvParams& params, const Requant& requant,
                           const ConvDims& dims, const int8_t* input, const int8_t* weights,
                           const int32_t* bias, int8_t* output) noexcept;
int32_t depthwise_conv2d_s8_scratch_size(const ConvParams& params, const ConvDims& dims,
                                         Path path) noexcept;

struct GemmDims {
  int32_t m = 0, n = 0, k = 0;  // >= 1
  int32_t lda = 0;              // >= k; 0 means k
  int32_t ldb = 0;              // >= k; 0 means k
  int32_t ldc = 0;              // >= n; 0 means n
};

// Raw accumulators: c[i][j] = sum_k (a[i][k] + a_offset) * (b[j][k] + b_offset)
//                           + (row_add ? row_add[i] : 0) + (col_add ? col_add[j] : 0)  (wraps)
// a is [m][k] (lda), b is [n][k] (ldb: the weights' [out][in] layout), c is [m][n] (ldc).
// a_offset, b_offset in [-128, 128].
Status gemm_s8s8_s32(const Context& ctx, const GemmDims& dims, const int8_t* a, int32_t a_offset,
                     const int8_t* b, int32_t b_offset, const int32_t* row_add,
                     const int32_t* col_add, int32_t* c) noexcept;
int32_t gemm_s8s8_s32_scratch_size(const GemmDims& dims, Path path) noexcept;

}  // namespace tinyquant::rt
