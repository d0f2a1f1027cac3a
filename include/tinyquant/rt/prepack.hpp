// Prepacked fully-connected weights: an optional step, run once before inference, that lays the
// int8 weights out for one kernel path (and stores what that path precomputes from them, e.g.
// row sums), so the per-inference call streams them once in the order the path reads them.
//
// The packed buffer is caller memory, written by fully_connected_s8_prepack(): a 64-byte header
// recording the path, the dims, filter_offset and the payload size, then the path's payload.
// It must be 4-byte aligned (64 recommended) and is position independent, so it may be copied,
// stored in flash, or placed in a section. Paths without a packed layout of their own (reference,
// smlad) store the weights unchanged and run the plain kernel on them; neon stores them
// unchanged followed by their column sums and, per 4 output channels, whether any weight is -128;
// neondot stores them in its 8x8 kernel's panels (8 output channels each, in_features padded to a
// multiple of 16 with zeros, out_features to a multiple of 8) followed by their column sums.
//
// Contract (as for every rt kernel): no allocation, no exceptions; bad arguments return a Status
// and leave the output untouched. A packed buffer whose header is corrupt, prepared for other
// dims or another filter_offset, or prepared for a path other than ctx.path (when ctx.path is
// not kAuto) gives Status::kBadArgument. A packed path the CPU cannot run gives
// kPathUnavailable. Calls check the header only: a pass over the payload would cost as much as
// the product itself at batch 1, so an altered payload (weights, or a path's stored sums and
// flags) gives wrong outputs, never undefined behaviour. The calls take no buffer size, so they
// read the whole buffer the header describes: a buffer cut short is read past its end.
// fully_connected_s8_prepacked_verify() takes the size and checks the payload too; run it once
// where the buffer may have been altered or cut (copied from flash or a file, received over a
// link).
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/status.hpp"

namespace tinyquant::rt {

// Bytes of the packed buffer for these dims on this path (kAuto: default_path()); 0 if the dims
// are invalid, the path is unavailable, or the size would exceed INT32_MAX.
int32_t fully_connected_s8_prepacked_size(const FcDims& dims, Path path) noexcept;

// Packs weights [out_features][in_features] for `path` into packed[0, packed_size).
// Only params.filter_offset is used (in [-127, 128]); it is recorded and must match at run time.
// dims.batch is ignored (any batch may run on the packed weights).
Status fully_connected_s8_prepack(const FcParams& params, const FcDims& dims, const int8_t* weights,
                                  Path path, void* packed, int32_t packed_size) noexcept;

// The header checks of every call, plus the payload against the checksum prepack recorded in
// the header (FNV-1a over its bytes). kOk; kNullPointer; kBadArgument if the header or the
// payload has been altered, or packed_size (the bytes readable at packed) is smaller than the
// buffer the header describes.
Status fully_connected_s8_prepacked_verify(const void* packed, int32_t packed_size) noexcept;

// The path a packed buffer was prepared for, or kAuto if it is not a valid packed buffer.
Path fully_connected_s8_prepacked_path(const void* packed) noexcept;

// Scratch bytes fully_connected_s8_prepacked() needs for these dims on the packed buffer's path.
int32_t fully_connected_s8_prepacked_scratch_size(const FcDims& dims, const void* packed) noexcept;

// Same result, bit for bit, as fully_connected_s8() with the original weights on the same path.
Status fully_connected_s8_prepacked(const Context& ctx, const FcParams& params,
                                    const Requant& requant, const FcDims& dims, const int8_t* input,
                                    const void* packed, const int32_t* bias,
                                    int8_t* output) noexcept;

// Raw accumulators on the packed weights, no requantization:
//   acc[b][o] = (bias ? bias[o] : 0) + sum_k (input[b][k] + input_offset) * (w[o][k] +
//   filter_offset)
// wrapping at 32 bits, acc [batch][out_features] int32. The acc of fully_connected_s8_prepacked()
// before requantize(), for a caller with its own output stage (or a float one). Of params only
// input_offset and filter_offset are read (both in [-127, 128]; filter_offset must match the
// packing); the output fields are ignored. Every path runs it on its own packed layout, through
// the same tiles as the int8 run with an int32-out epilogue (reference and smlad: the path's
// gemm_s8s8_s32() on the stored weights). Scratch:
// fully_connected_s8_prepacked_s32_scratch_size() bytes (never more than the int8 run needs on
// the packed layouts). Errors as for fully_connected_s8_prepacked().
Status fully_connected_s8_prepacked_s32(const Context& ctx, const FcParams& params,
                                        const FcDims& dims, const int8_t* input, const void* packed,
                                        const int32_t* bias, int32_t* acc) noexcept;
int32_t fully_connected_s8_prepacked_s32_scratch_size(const FcDims& dims,
                                                      const void* packed) noexcept;

}  // namespace tinyquant::rt
