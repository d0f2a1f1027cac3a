// Internal: the small set of inner operations each kernel path implements.
//
// The public kernels (kernels.cpp) validate every argument once, then call these through the
// table of the chosen path; conv2d is built on gemm_s8 over an im2col block in scratch. A path
// that leaves an entry null falls back to the reference entry. Arguments reaching these
// functions are already valid: no checks, no status.
//
// Not a public header: only src/rt/ includes it.
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"

namespace tinyquant::rt::detail {

// c[i][j] = clamp(requantize(bias[j] + sum_k (a[i][k] + a_offset)(b[j][k] + b_offset))
//                 + c_offset, act_min, act_max)
// The accumulation and the "+ c_offset" both wrap at 32 bits (as on a Cortex-M); the clamp
// comes last.
// b may be int8 ([n][ldb]) or a packed int4 nibble stream (b_s4, element (j, k) at nibble
// j * k_total + k, where k_total == k: rows are contiguous in the stream).
struct GemmS8Args {
  int32_t m = 0, n = 0, k = 0;
  const int8_t* a = nullptr;
  int32_t lda = 0;
  const int8_t* b = nullptr;      // int8 weights, or null when b_s4 is set
  const uint8_t* b_s4 = nullptr;  // packed int4 weights
  // Nibble index of element (0, 0) inside b_s4[0]: 0 or 1. Only the reference path reads it;
  // kernels.cpp sends every call with 1 (a conv group starting mid-byte) to the reference path.
  int32_t b_s4_first_nibble = 0;
  int32_t ldb = 0;                // int8 only
  const int32_t* bias = nullptr;  // [n] or null
  int32_t a_offset = 0, b_offset = 0;
  int8_t* c = nullptr;
  int32_t ldc = 0;
  const int32_t* multiplier = nullptr;  // [n] if per_channel else [1]
  const int32_t* shift = nullptr;
  bool per_channel = false;
  Rounding rounding = Rounding::kDouble;
  int32_t c_offset = 0, act_min = -128, act_max = 127;
  // path_scratch bytes (see PathKernels::gemm_s8_scratch), 64-byte aligned; null if none asked.
  void* scratch = nullptr;
};

// What every fully-connected call as a GEMM shares (GemmS8Args or GemmS32Args): a = input
// [batch][in_features], c = output [batch][out_features], the input and filter offsets.
template <class Args, class Out>
inline void set_fc_shape(Args* g, const FcParams& p, const FcDims& d, const int8_t* input,
                         Out* output) noexcept {
  g->m = d.batch;
  g->n = d.out_features;
  g->k = d.in_features;
  g->a = input;
  g->lda = d.in_features;
  g->a_offset = p.input_offset;
  g->b_offset = p.filter_offset;
  g->c = output;
  g->ldc = d.out_features;
}

// A fully-connected call as a GEMM (set_fc_shape) with the call's bias, requantization and
// clamps. The weights (b or b_s4, ldb) and the scratch are the caller's to fill.
inline GemmS8Args fc_gemm_args(const FcParams& p, const Requant& rq, const FcDims& d,
                               const int8_t* input, const int32_t* bias, int8_t* output) noexcept {
  GemmS8Args g;
  set_fc_shape(&g, p, d, input, output);
  g.bias = bias;
  g.multiplier = rq.multiplier;
  g.shift = rq.shift;
  g.per_channel = rq.per_channel;
  g.rounding = rq.rounding;
  g.c_offset = p.output_offset;
  g.act_min = p.act_min;
  g.act_max = p.act_max;
  return g;
}

struct GemmS32Args {
  int32_t m = 0, n = 0, k = 0;
  const int8_t* a = nullptr;
  int32_t lda = 0;
  const int8_t* b = nullptr;
  int32_t ldb = 0;
  int32_t a_offset = 0, b_offset = 0;
  const int32_t* row_add = nullptr;
  const int32_t* col_add = nullptr;
  int32_t* c = nullptr;
  int32_t ldc = 0;
  void* scratch = nullptr;
};

struct DepthwiseArgs {
  const ConvParams* params = nullptr;
  const ConvDims* dims = nullptr;
  const int8_t* input = nullptr;
  const int8_t* weights = nullptr;
  const int32_t* bias = nullptr;
  const int32_t* multiplier = nullptr;
  const int32_t* shift = nullptr;
  bool per_channel = false;
  Rounding rounding = Rounding::kDouble;
  int8_t* output = nullptr;
  void* scratch = nullptr;
};

struct PathKernels {
  Path path;
  void (*gemm_s8)(const GemmS8Args&);
  void (*gemm_s32)(const GemmS32Args&);
  void (*depthwise_s8)(const DepthwiseArgs&);
  // Scratch bytes the path's gemm needs for given m, n, k (0 if none).
  int32_t (*gemm_s8_scratch)(int32_t m, int32_t n, int32_t k, bool s4);
  int32_t (*gemm_s32_scratch)(int32_t m, int32_t n, int32_t k);
};

// The table for a path compiled into this build, or null. Each path's file defines its table.
const PathKernels* reference_kernels() noexcept;
const PathKernels* smlad_kernels() noexcept;
const PathKernels* avx2_kernels() noexcept;        // null unless built for x86-64
const PathKernels* avx512vnni_kernels() noexcept;  // null unless built for x86-64
const PathKernels* neon_kernels() noexcept;        // null unless built for AArch64
const PathKernels* neondot_kernels() noexcept;     // null unless built for AArch64

// Optional prepacked weights (prepack.cpp), for paths whose gemm gains from a layout prepared
// once: b [n][k] (ldb) is laid out into packed_bytes(n, k) bytes at a 4-byte aligned address,
// with whatever per-row data the path wants (row sums, offsets folded in). gemm_s8_packed then
// runs GemmS8Args (b and b_s4 ignored) on it, with gemm_s8_packed_scratch(m, n, k) bytes of
// 64-aligned scratch. pack() may fold b_offset in, so the run must use the same b_offset.
// gemm_s32_packed runs GemmS32Args (b and ldb ignored) on the same packed b: the raw
// accumulators, through the same tiles with an int32-out epilogue, in at most
// gemm_s8_packed_scratch(m, n, k) bytes of scratch.
struct PackedGemmKernels {
  Path path;
  int64_t (*packed_bytes)(int32_t n, int32_t k);
  void (*pack)(const int8_t* b, int32_t n, int32_t k, int32_t ldb, int32_t b_offset, void* out);
  void (*gemm_s8_packed)(const GemmS8Args& args, const void* packed);
  int32_t (*gemm_s8_packed_scratch)(int32_t m, int32_t n, int32_t k);
  void (*gemm_s32_packed)(const GemmS32Args& args, const void* packed);
};
const PackedGemmKernels* avx2_packed_kernels() noexcept;        // x86 paths only
const PackedGemmKernels* avx512vnni_packed_kernels() noexcept;  // x86 paths only
const PackedGemmKernels* neon_packed_kernels() noexcept;        // AArch64 only
const PackedGemmKernels* neondot_packed_kernels() noexcept;     // AArch64 only

// AVX2 path internals, shared by its two files (both built with the AVX2 flags only).
// s8s8_gemm_6x16c2_avx2.cpp: the 6x16 outer-product kernel. It runs all prepacked avx2 weights
// (avx2_packed_kernels(): 16-column panels of int16 (b + b_offset), k pairs interleaved) and the
// plain int8-weight gemm_s8 / gemm_s32 calls with m >= kAvx2C2MinRows, packing b one panel at a
// time into avx2_c2_scratch(m, k) bytes of scratch (b_s4 is not accepted).
constexpr int32_t kAvx2C2MinRows = 8;
void avx2_c2_gemm_s8(const GemmS8Args& g);
void avx2_c2_gemm_s32(const GemmS32Args& g);
int32_t avx2_c2_scratch(int32_t m, int32_t k);
// s8s8_gemm_2x4c16_avx2.cpp: the path's int8 epilogue. acc[0, cnt) are the int32 sums of row
// columns j0 .. j0 + cnt; writes out[0, cnt) = clamp(requantize(acc + bias) + c_offset).
void avx2_requantize_row(const GemmS8Args& g, int32_t j0, int32_t cnt, const int32_t* acc,
                         int8_t* out);

// x86 depthwise kernels (s8_dwconv_x86.inc): one output pixel, channels across the lanes, taps
// in pairs on vpmaddwd. The AVX-512 one also serves the AMX path.
void s8_dwconv_1x16c2_avx2(const DepthwiseArgs& a);
void s8_dwconv_1x32c2_avx512vnni(const DepthwiseArgs& a);

// The AMX-INT8 path (s8s8_gemm_32x32c64_amx.cpp): null unless built for x86-64.
const PathKernels* amx_kernels() noexcept;
const PackedGemmKernels* amx_packed_kernels() noexcept;

// The "k4" packed layout shared by the AVX-512 VNNI and AMX paths (x86 only, both need an
// AVX-512 VNNI CPU): b [n][k] stored as [n16 / 16][kp / 4][16][4] bytes, n16 = n rounded up
// to 16, kp = k rounded up to 64, zero padded: the 4 consecutive k of one column form one
// dword, 16 columns one 64-byte line (one vpdpbusd operand), and each 16-column block is one
// contiguous run of kp / 4 lines, so 16 lines (1 KiB) are one AMX B tile. The column sums
// sum_k b[j][k] follow as int32 [n16].
int64_t k4_packed_bytes(int32_t n, int32_t k) noexcept;
void k4_pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, void* out) noexcept;
// AVX-512 VNNI gemm_s8 on k4-packed b (any m; b, b_s4, ldb of the args ignored), with
// k4_gemm_scratch_avx512vnni() bytes of 64-aligned scratch.
void k4_gemm_s8_avx512vnni(const GemmS8Args& g, const void* packed) noexcept;
// The same for gemm_s32 (b and ldb of the args ignored), in no more scratch.
void k4_gemm_s32_avx512vnni(const GemmS32Args& g, const void* packed) noexcept;
int32_t k4_gemm_scratch_avx512vnni(int32_t m, int32_t n, int32_t k) noexcept;

// The table of a compiled-in path the CPU supports, or null (dispatch.cpp). kAuto is resolved
// through default_path() first.
const PathKernels* path_kernels(Path p) noexcept;

// Single-path builds for firmware: TINYQUANT_RT_ONLY_SMLAD (CMake TINYQUANT_RT_SINGLE_PATH=smlad)
// compiles dispatch down to the smlad path. supported_paths() is then kSmlad alone, and the
// public kernels call these entries directly instead of through a table: a table keeps every
// entry of every path alive, so --gc-sections could drop nothing; direct calls let a firmware
// link keep only the kernels it calls.
#if defined(TINYQUANT_RT_ONLY_SMLAD)
void s8s8_gemm_smlad(const GemmS8Args& g);        // int8 weights
void s8s4_gemm_1x2c8_smlad(const GemmS8Args& g);  // packed int4 weights
void s8s8_s32_gemm_2x2c4_smlad(const GemmS32Args& g);
void s8_dwconv_smlad(const DepthwiseArgs& a);
#endif

// The smlad path's gemm_s8_scratch: for m >= 2 with int8 weights, the 2x2 tile's activation row
// pair widened to int16 (two rows of round_up(k, 4)); nothing otherwise.
inline int32_t s8s8_gemm_smlad_scratch(int32_t m, int32_t /*n*/, int32_t k, bool s4) {
  return s4 || m < 2 ? 0 : 4 * ((k + 3) & ~3);
}

}  // namespace tinyquant::rt::detail
