// Integer-only fully-connected layer with per-group weight scales (int4 or int8 weights).
//
// Per-group weights have one scale s[o][g] per run of group_size inputs of output row o. The
// kernel stays integer-only by storing, per group, one byte: the ratio to the row's largest
// group scale S[o] = max_g s[o][g] in units of 1/256, minus one:
//   ratio[o][g] = clamp(round(s[o][g] / S[o] * 256), 1, 256) - 1,  r = ratio + 1 in [1, 256].
// Per output element:
//   acc_g = sum_{k in g} (x[k] + input_offset) * (w[o][k] + filter_offset)          (32-bit)
//   t     = (sum_g int64(acc_g) * r[o][g] + 2^7) >> 8                     (int64, round half up)
//   acc   = bias[o] + t                                                   (32-bit, wraps)
//   out   = clamp(requantize(acc, multiplier[o], shift[o]) + output_offset, act_min, act_max)
// where bias has scale input_scale * S[o] and multiplier/shift encode
// input_scale * S[o] / output_scale. The 8-bit ratio moves each group's effective scale by at
// most S[o] / 512, well under int4's own rounding error, and costs one byte per group (a float
// scale would cost four). Value ranges are those of kernels.hpp; group_size >= 1 (the last group
// of a row may be shorter); every byte value of ratio is valid. Weights use the s4 nibble stream
// over [out][in] (fully_connected_s4_grouped) or int8 [out][in] (fully_connected_s8_grouped).
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"

namespace tinyquant::rt {

struct GroupScales {
  int32_t group_size = 0;          // >= 1
  const uint8_t* ratio = nullptr;  // [out_features][ceil(in_features / group_size)], r - 1
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
