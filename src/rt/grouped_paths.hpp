// Internal: the per-path bodies of the grouped fully-connected kernels (grouped.hpp).
//
// fully_connected_grouped.cpp validates the arguments, picks the path and prepares, per batch
// row, what the bodies share; a body computes for every output row o
//   t[o] = (sum_g int64(acc_g) * r[o][g] + 2^7) >> 8
// and finishes each output (bias, requantize, output offset, clamp): the x86 lane bodies
// themselves, on vectors, the row bodies' caller one at a time. Not a public header.
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"

namespace tinyquant::rt::detail {

// x86 lane bodies. A chunk is kGroupedChunk[path] consecutive k of a row; its int32 lanes
// each own lane_k consecutive k (int4: 8, two k per byte), so every lane lies in one group when
// group_size % lane_k == 0 (or one group covers the row), int4 rows start on a byte
// (in_features even), and no group wraps its 32-bit sum (min(group_size, in_features) <=
// kGroupedLaneMaxGroup). With w = u - 8 (u = nibble ^ 8 in [0, 15], an unsigned byte):
//   acc_g = sum_{k in g} u * (x + io) + (fo - 8) * X_g,   X_g = sum_{k in g} (x + io)
// so the vector loops multiply raw int8 x by unsigned u and add io * sum u, and the group sums
// X_g (one per batch row) carry the filter offset. Exact in int64 because no acc_g wraps.
// int8 weights on AVX-512 VNNI use the same frame with u = w + 128 = w ^ 0x80 in [0, 255],
// fo - 128 for fo - 8, 64 k per chunk and lanes of 4 k (group_size % 4 == 0, any in_features);
// x_even then holds x itself ([chunks][64], 0 past k) and x_odd is unused. int8 weights on AVX2
// multiply w itself by x + io widened to int16 (x_even then holds int16 x + io, [chunks][32],
// 0 past k), 32 k per chunk in lanes of 4 k, and fo for fo - 8:
//   acc_g = sum_{k in g} w * (x + io) + fo * X_g.
// Lane L of an AVX2 int8 chunk holds the 4 k from c * 32 + 4 * kGroupedAvx2S8LaneBlock[L] (the
// order vphaddd leaves them in); every other body's lane L holds the lane_k k from
// c * chunk + lane_k * L.
constexpr int32_t kGroupedLaneMaxGroup = 32768;

// The AVX2 body's ratio buffer per row, in int32: the row's groups rounded up to 8 lanes (stored
// a vector at a time), then a zero vector for the steps' loads past the last group.
constexpr int64_t avx2_ratio_stride(int64_t groups) noexcept {
  return (groups + 7) / 8 * 8 + 8;
}

struct GroupedLaneArgs {
  int32_t n = 0;       // output rows
  int32_t k = 0;       // in_features (even for int4)
  int32_t groups = 0;  // per row
  int32_t chunks = 0;  // ceil(k / chunk)
  int32_t lanes = 0;   // int32 lanes per chunk (chunk / lane_k)
  const uint8_t* w4 = nullptr;
  const int8_t* w8 = nullptr;            // int8 weights (s8s8 bodies)
  const uint8_t* ratio = nullptr;        // [n][groups]
  const int8_t* x_even = nullptr;        // [chunks][chunk / 2]: x[c * chunk + 2j], 0 past k
  const int8_t* x_odd = nullptr;         // [chunks][chunk / 2]: x[c * chunk + 2j + 1], 0 past k
  const int32_t* group_x = nullptr;      // X_g [groups], then `lanes` zeros
  const int32_t* chunk_group = nullptr;  // [chunks] group of the chunk's first k
  const int32_t* lane_group = nullptr;   // [chunks][lanes] lane's group - chunk_group (< lanes)
  // AVX2 scratch: r = ratio + 1 of two rows, [2][avx2_ratio_stride(groups)].
  int32_t* ratio_row = nullptr;
  int32_t input_offset = 0;
  int32_t x_scale = 0;   // filter_offset - 8 (int8 weights: - 128 on AVX-512, - 0 on AVX2)
  int32_t* t = nullptr;  // scratch: [n]
  // The finish: out[o] = clamp(requantize(bias[o] + t[o]) + output_offset), wrapping adds.
  const FcParams* params = nullptr;
  const Requant* rq = nullptr;
  const int32_t* bias = nullptr;  // [n], or null
  int8_t* out = nullptr;          // [n]: the batch row's outputs
};

// The x86 bodies (x86-64 builds only; the caller checked the CPU). Each int8-weight body lives
// in its int4 body's file, whose loops it shares.
void s8s4_grouped_fc_1x1c64_avx2(const GroupedLaneArgs& a) noexcept;
void s8s8_grouped_fc_1x1c32_avx2(const GroupedLaneArgs& a) noexcept;
void s8s4_grouped_fc_1x1c128_avx512vnni(const GroupedLaneArgs& a) noexcept;
void s8s8_grouped_fc_1x1c64_avx512vnni(const GroupedLaneArgs& a) noexcept;
constexpr int32_t kGroupedChunkAvx2 = 64;
constexpr int32_t kGroupedChunkAvx2S8 = 32;
constexpr int32_t kGroupedChunkAvx512 = 128;
constexpr int32_t kGroupedChunkAvx512S8 = 64;
constexpr int32_t kGroupedAvx2S8LaneBlock[8] = {0, 1, 4, 5, 2, 3, 6, 7};

// Row bodies: smlad (int4 and int8) and AArch64 NEON / dot product (int4 and int8). One output
// row (smlad) or a few (NEON) at a time, group by group, each group's sum wrapping in 32 bits as
// in the definition, so they take every shape; the int4 smlad body alone needs
// min(group_size, in_features) < kGroupedSmladMaxGroup (its 16x scaled sums). Per batch row the
// caller stores fo * X_g (wrapping) per group; the filter offset enters only there:
//   acc_g = sum_{k in g} (x + io) * w + fo * X_g.
// smlad: the caller also stores x + io as int16 pairs, for int4 (a0, a4) (a2, a6) (a1, a5)
// (a3, a7) of each 8 k ([ceil(k / 8)][4] words), for int8 (a0, a2) (a1, a3) of each 4 k
// ([ceil(k / 4)][2] words), zero past k. NEON: the bodies multiply raw int8 x by w and add
// io * sum w; int4 rows are unpacked to int8 into `unpacked` ([kGroupedNeonRows][k]).
constexpr int32_t kGroupedSmladMaxGroup = 65536;
constexpr int32_t kGroupedNeonRows = 4;

struct GroupedRowArgs {
  int32_t n = 0, k = 0, group_size = 0, groups = 0;
  const uint8_t* w4 = nullptr;  // int4 weights, or
  const int8_t* w8 = nullptr;   // int8 weights
  const uint8_t* ratio = nullptr;
  const int8_t* x = nullptr;  // the batch row
  int32_t input_offset = 0;
  const uint32_t* quads = nullptr;     // smlad: x + io pairs (above)
  const uint32_t* group_fx = nullptr;  // fo * X_g, [groups]
  int8_t* unpacked = nullptr;          // NEON int4: [kGroupedNeonRows][k]
  int32_t* t = nullptr;                // out: [n]
};
void s8s4_grouped_fc_1x1c8_smlad(const GroupedRowArgs& a) noexcept;
void s8s8_grouped_fc_1x1c4_smlad(const GroupedRowArgs& a) noexcept;
// AArch64 builds only; the dot-product ones after a CPU check.
void s8s4_grouped_fc_1x4c16_neon(const GroupedRowArgs& a) noexcept;
void s8s8_grouped_fc_1x4c16_neon(const GroupedRowArgs& a) noexcept;
void s8s4_grouped_fc_1x4c16_neondot(const GroupedRowArgs& a) noexcept;
void s8s8_grouped_fc_1x4c16_neondot(const GroupedRowArgs& a) noexcept;

}  // namespace tinyquant::rt::detail
