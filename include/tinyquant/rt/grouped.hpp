// Integer-only fully-connected layer with per-group weight scales (int4 or int8 weights).
//
// Per-group weights have one scale s[o][g] per run of group_size inputs of output row o. The
// kernel stays integer-only by storing, per group, the ratio to the row's largest group scale
// S[o] = max_g s[o][g] in Q15:  r[o][g] = round(s[o][g] / S[o] * 2^15), in [1, 32768].
// Per output element:
//   acc_g = sum_{k in g} (x[k] + input_offset) * (w[o][k] + filter_offset)          (32-bit)
//   t     = (sum_g int64(acc_g) * r[o][g] + 2^14) >> 15                   (int64, round half up)
//   acc   = bias[o] + t                                                   (32-bit, wraps)
//   out   = clamp(requantize(acc, multiplier[o], shift[o]) + output_offset, act_min, act_max)
// where bias has scale input_scale * S[o] and multiplier/shift encode
// input_scale * S[o] / output_scale. The Q15 ratio adds a relative error below 2^-16 per group,
// far under int4's own. Value ranges are those of kernels.hpp; group_size >= 1 (the last group of
// a row may be shorter); r in [1, 32768]. Weights use the s4 nibble stream over [out][in]
// (fully_connected_s4_grouped) or int8 [out][in] (fully_connected_s8_grouped).
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"

namespace tinyquant::rt {

struct GroupScales {
  int32_t group_size = 0;              // >= 1
  const int32_t* ratio_q15 = nullptr;  // [out_features][ceil(in_features / group_size)]
};

Status fully_connected_s4_grouped(const Context& ctx, const FcParams& params,
                                  const Requant& requant, const FcDims& dims,
                                  const GroupScales& groups, const int8_t* input,
                                  const uint8_t* packed_weights, const int32_t* bias,
                                  int8_t* output) noexcept;

Status fully_connected_s8_grouped(const Context& ctx, const FcParams& params,
                                  const Requant& requant, const FcDims& dims,
                                  const GroupScales& groups, const int8_t* input,
                                  const int8_t* weights, const int32_t* bias,
                                  int8_t* output) noexcept;

}  // namespace tinyquant::rt
