// Internal: argument checks shared by the public kernels, one per documented range of
// kernels.hpp. Each returns Status::kOk or the code that names the first failed rule; none
// touches an output. Dimension checks also guarantee that every element count and every index
// a kernel computes fits in int32, so kernels may index with int32 products.
//
// Not a public header: only src/rt/ includes it.
#pragma once

#include <cstdint>

#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/status.hpp"

namespace tinyquant::rt::detail {

// The largest element count of any tensor a kernel takes, 2^31 - 2^16: below INT32_MAX by more
// than any tile or panel a path rounds a dimension up to, so padded dimensions, their loop
// counters and the sizes derived from them stay within int32.
inline constexpr int64_t kMaxElements = INT32_MAX - 65535;

// True when p is exactly one path (not kAuto, not a mask of several) that this build and CPU
// run: force_path's and the grouped kernels' test.
inline bool runnable_path(Path p) noexcept {
  const uint32_t bits = path_bits(p);
  return bits != 0 && (bits & (bits - 1)) == 0 && (supported_paths() & bits) != 0;
}

constexpr bool in_range(int32_t v, int32_t lo, int32_t hi) noexcept {
  return v >= lo && v <= hi;
}

// input_offset and filter_offset in [-127, 128], output_offset in [-128, 127].
constexpr Status check_offsets(int32_t input_offset, int32_t filter_offset,
                               int32_t output_offset) noexcept {
  if (!in_range(input_offset, -127, 128) || !in_range(filter_offset, -127, 128) ||
      !in_range(output_offset, -128, 127)) {
    return Status::kBadOffset;
  }
  return Status::kOk;
}

// -128 <= act_min <= act_max <= 127.
constexpr Status check_activation(int32_t act_min, int32_t act_max) noexcept {
  if (!in_range(act_min, -128, 127) || !in_range(act_max, -128, 127) || act_min > act_max) {
    return Status::kBadActivationRange;
  }
  return Status::kOk;
}

// Pointers present; every multiplier in [0, 2^31 - 1] (i.e. >= 0) and every shift in
// [kMinShift, kMaxShift], over `channels` entries when per-channel, else over one. A negative
// multiplier anywhere gives kBadMultiplier, else a shift out of range kBadShift.
// One pass without early exits, so the compiler vectorizes it (it runs on every call, over up
// to out_features channels): the bad entries are only or-ed together, and which status to
// return is decided after the loop.
constexpr Status check_requant(const Requant& rq, int32_t channels) noexcept {
  if (rq.multiplier == nullptr || rq.shift == nullptr) return Status::kNullPointer;
  if (rq.rounding != Rounding::kDouble && rq.rounding != Rounding::kSingle) {
    return Status::kBadArgument;
  }
  const int32_t count = rq.per_channel ? channels : 1;
  constexpr uint32_t kShiftSpan = static_cast<uint32_t>(kMaxShift - kMinShift);
  uint32_t bad_mult = 0;
  uint32_t bad_shift = 0;
  for (int32_t i = 0; i < count; ++i) {
    bad_mult |= static_cast<uint32_t>(rq.multiplier[i]) >> 31;  // the sign bit
    // shift - kMinShift as unsigned: below kMinShift wraps past the span.
    const uint32_t from_min = static_cast<uint32_t>(rq.shift[i]) - static_cast<uint32_t>(kMinShift);
    bad_shift |= static_cast<uint32_t>(from_min > kShiftSpan);
  }
  if (bad_mult != 0) return Status::kBadMultiplier;
  if (bad_shift != 0) return Status::kBadShift;
  return Status::kOk;
}

// Product of up to four non-negative factors, or -1 once it exceeds kMaxElements.
constexpr int64_t checked_count(int64_t a, int64_t b, int64_t c = 1, int64_t d = 1) noexcept {
  int64_t r = 1;
  const int64_t f[4] = {a, b, c, d};
  for (int64_t v : f) {
    if (v < 0) return -1;
    r *= v;
    if (r > kMaxElements) return -1;
  }
  return r;
}

constexpr Status check_fc_dims(const FcDims& d) noexcept {
  if (d.batch < 1 || d.in_features < 1 || d.out_features < 1) return Status::kBadDimension;
  if (checked_count(d.batch, d.in_features) < 0 ||
      checked_count(d.out_features, d.in_features) < 0 ||
      checked_count(d.batch, d.out_features) < 0) {
    return Status::kBadDimension;
  }
  return Status::kOk;
}

// Shared by conv2d and depthwise: positive sizes, strides, dilations; non-negative padding; the
// receptive field of the last output stays within int32 coordinates; tensors fit in int32.
constexpr Status check_conv_geometry(const ConvParams& p, const ConvDims& d) noexcept {
  if (d.batch < 1 || d.in_h < 1 || d.in_w < 1 || d.in_c < 1 || d.kernel_h < 1 || d.kernel_w < 1 ||
      d.out_h < 1 || d.out_w < 1 || d.out_c < 1) {
    return Status::kBadDimension;
  }
  if (p.stride_h < 1 || p.stride_w < 1 || p.dilation_h < 1 || p.dilation_w < 1 || p.pad_top < 0 ||
      p.pad_left < 0) {
    return Status::kBadArgument;
  }
  const int64_t reach_h =
      int64_t{d.out_h - 1} * p.stride_h + int64_t{d.kernel_h - 1} * p.dilation_h;
  const int64_t reach_w =
      int64_t{d.out_w - 1} * p.stride_w + int64_t{d.kernel_w - 1} * p.dilation_w;
  if (reach_h > kMaxElements / 2 || reach_w > kMaxElements / 2 || p.pad_top > kMaxElements / 2 ||
      p.pad_left > kMaxElements / 2) {
    return Status::kBadDimension;
  }
  if (checked_count(d.batch, d.in_h, d.in_w, d.in_c) < 0 ||
      checked_count(d.batch, d.out_h, d.out_w, d.out_c) < 0 ||
      checked_count(d.out_c, d.kernel_h, d.kernel_w, d.in_c) < 0) {
    return Status::kBadDimension;
  }
  return Status::kOk;
}

// conv2d: groups >= 1 divides in_c and out_c (depth_multiplier is ignored).
constexpr Status check_conv_dims(const ConvParams& p, const ConvDims& d) noexcept {
  const Status s = check_conv_geometry(p, d);
  if (s != Status::kOk) return s;
  if (p.groups < 1) return Status::kBadArgument;
  if (d.in_c % p.groups != 0 || d.out_c % p.groups != 0) return Status::kBadDimension;
  return Status::kOk;
}

// depthwise: depth_multiplier >= 1 and out_c == in_c * depth_multiplier (groups is ignored).
constexpr Status check_depthwise_dims(const ConvParams& p, const ConvDims& d) noexcept {
  const Status s = check_conv_geometry(p, d);
  if (s != Status::kOk) return s;
  if (p.depth_multiplier < 1) return Status::kBadArgument;
  if (int64_t{d.in_c} * p.depth_multiplier != d.out_c) return Status::kBadDimension;
  return Status::kOk;
}

// m, n, k >= 1; lda, ldb >= k and ldc >= n once 0 is read as "packed"; extents fit in int32.
constexpr Status check_gemm_dims(const GemmDims& d, int32_t* lda, int32_t* ldb,
                                 int32_t* ldc) noexcept {
  if (d.m < 1 || d.n < 1 || d.k < 1) return Status::kBadDimension;
  *lda = d.lda == 0 ? d.k : d.lda;
  *ldb = d.ldb == 0 ? d.k : d.ldb;
  *ldc = d.ldc == 0 ? d.n : d.ldc;
  if (*lda < d.k || *ldb < d.k || *ldc < d.n) return Status::kBadDimension;
  if (checked_count(d.m, *lda) < 0 || checked_count(d.n, *ldb) < 0 ||
      checked_count(d.m, *ldc) < 0) {
    return Status::kBadDimension;
  }
  return Status::kOk;
}

// Caller scratch: at least `needed` bytes, and a pointer when any is needed.
constexpr Status check_scratch(const Context& ctx, int32_t needed) noexcept {
  if (needed <= 0) return Status::kOk;
  if (ctx.scratch_size < needed) return Status::kScratchTooSmall;
  if (ctx.scratch == nullptr) return Status::kNullPointer;
  return Status::kOk;
}

}  // namespace tinyquant::rt::detail
