// Multi-threaded integer GEMM and fully-connected layers on top of the rt kernels.
//
// The output columns (weight rows) are split into one contiguous slice per thread, each a
// multiple of 16 columns except the last; every thread runs the rt kernel on its slice with its
// own scratch. Each output element is computed by exactly one kernel call with the same inputs
// as in a single-threaded call, so results are bit-identical to it for any thread count.
//
// threads: 0 = std::thread::hardware_concurrency() (at least 1); never more threads than
// slices of 16 columns. path: as rt::Context::path (kAuto resolves once, before the split).
// Errors: InvalidArgument (threads < 0, offsets/requantization outside the rt ranges, with the
// argument, index and value), ShapeError (a dimension < 1, a leading dimension too small, or an
// operand past the kernels' 2^31 - 2^16 element limit, as for one single-threaded call),
// KernelError (an rt status on a slice, e.g. an unavailable path). On error nothing is written.
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"

namespace tinyquant {

// Threads used when 0 is asked for.
int default_thread_count() noexcept;

// c[i][j] = sum_k (a[i][k] + a_offset)(b[j][k] + b_offset) + row_add[i] + col_add[j], as
// rt::gemm_s8s8_s32, split over the n columns.
void gemm_s8s8_s32_parallel(int threads, const rt::GemmDims& dims, const int8_t* a,
                            int32_t a_offset, const int8_t* b, int32_t b_offset,
                            const int32_t* row_add, const int32_t* col_add, int32_t* c,
                            rt::Path path = rt::Path::kAuto);

// As rt::fully_connected_s8, split over out_features.
void fully_connected_s8_parallel(int threads, const rt::FcParams& params,
                                 const rt::Requant& requant, const rt::FcDims& dims,
                                 const int8_t* input, const int8_t* weights, const int32_t* bias,
                                 int8_t* output, rt::Path path = rt::Path::kAuto);

}  // namespace tinyquant
