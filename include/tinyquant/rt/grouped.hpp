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
//
// Paths (ctx.path): kAuto follows a forced reference, smlad or avx2 path (force_path,
// TINYQUANT_PATH), on AArch64 the neon or neondot path dispatch picks (or a forced one), and on
// an ARM build with the DSP extension smlad (dispatch's default there); else it runs AVX-512
// VNNI on CPUs that have it, else AVX2, else the reference. kReference, kSmlad, kAvx2,
// kAvx512Vnni, kNeon and kNeonDot can be asked for (kPathUnavailable if the build or CPU lacks
// one; kAmx is unavailable here). All are bit-identical to the reference. The x86 bodies
// take int4 shapes with in_features even, group_size % 8 == 0 (or group_size >= in_features)
// and int8 shapes with group_size % 4 == 0 (or >= in_features, any in_features), both with
// min(group_size, in_features) <= 32768. The smlad body takes every int4 shape with
// min(group_size, in_features) < 65536 and every int8 shape; the AArch64 bodies take every
// shape. Other shapes run the reference loops and need no scratch.
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

// Scratch bytes the call needs on `path` (kAuto: the path it would take), 0 if none or if the
// dims are invalid (as the dense queries): x + offset rearranged once per batch row, per-group
// input sums, per-call tables and (AArch64, int4) rows unpacked to int8. A call given less
// returns kScratchTooSmall. Any alignment.
int32_t fully_connected_s4_grouped_scratch_size(const FcDims& dims, const GroupScales& groups,
                                                Path path) noexcept;
int32_t fully_connected_s8_grouped_scratch_size(const FcDims& dims, const GroupScales& groups,
                                                Path path) noexcept;

}  // namespace tinyquant::rt
