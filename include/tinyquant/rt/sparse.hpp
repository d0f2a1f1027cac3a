// Sparse x dense int8 fully-connected kernels: pruned weights stored compactly, results
// bit-identical to fully_connected_s8 (kernels.hpp) on the same weights with the zeros put back.
//
// Per output element the dense kernel computes
//   acc = bias + sum_k (x + input_offset) * (w + filter_offset)      (32-bit, wraps)
// Pruned weights are 0 but still contribute (x + input_offset) * filter_offset, so the sparse
// kernels use the equal (mod 2^32) split
//   acc = bias + filter_offset * sum_k (x + input_offset) + sum_{stored k} (x + input_offset) * w
// with the first sum computed once per batch row. Requantization, rounding modes, offsets and
// activation clamps are those of kernels.hpp.
//
// Weight formats (rows = out_features, cols = in_features, weights [out][in]):
//  - kCsrU8Delta: row_nnz[rows] entries per row; col_delta[i] is the column distance from the
//    previous entry of the same row (from column 0 for a row's first entry). A gap larger than
//    255 is bridged by padding entries of value 0 and delta 255 (each padding entry moves the
//    column by 255 and adds nothing), so every delta fits a byte.
//  - kCsrU16: row_nnz[rows], col_index[i] absolute column in [0, cols), strictly increasing in a
//    row (cols <= 65536).
//  Both CSR formats count a row's entries in a uint16: at most 65535 per row, padding included.
//  - kBitmap: bitmap [rows][ceil(cols / 8)] bytes, bit (k % 8) of byte k / 8 (LSB first) set when
//    column k is stored; values in row-major order of the set bits. Bits past cols must be 0.
//  - kNm: every row is split into groups of nm_m consecutive columns (the last group holds
//    cols % nm_m columns when that is not 0); every group, the tail included, stores exactly nm_n
//    (value, index) slots, index = position inside the group in [0, group size). Unused slots
//    hold value 0. Indices are packed LSB first, ceil(log2(nm_m)) bits each, each row's indices
//    starting on a fresh byte: nm_row_index_bytes() bytes per row.
//  - kBlockCsr: block_rows x block_cols blocks that must tile the matrix (rows % block_rows ==
//    0 and cols % block_cols == 0, else kBadDimension: no partial blocks, so the kernels never
//    test for a tail). block_row_ptr[rows / block_rows + 1] (uint32, [0] = 0, non-decreasing,
//    last = block count); block_col[blocks] the block column in [0, cols / block_cols), strictly
//    increasing inside a block row; values [blocks][block_rows][block_cols] (value_count =
//    blocks * block_rows * block_cols, zeros inside a kept block included). The x86 paths run
//    1x16 and 4x16 blocks as SIMD tiles (one 16-byte activation slice per block, shared by the
//    block's rows) and every other shape through the reference loops.
// Values are int8 in [-128, 127] (TFLite weights use [-127, 127]).
//
// Validation: the kernel checks pointers, dims, offsets, requantization and the O(rows) counts
// (each row_nnz at most cols and their sum value_count, bitmap/N:M sizes). Per-index checks
// cost O(nnz): run validate_sparse_s8() once when the weights are loaded; a kernel given
// unvalidated corrupt indices may read out of bounds (never write: every write is placed by the
// checked counts).
#pragma once

#include <cstdint>

#include "tinyquant/rt/kernels.hpp"

namespace tinyquant::rt {

enum class SparseFormat : uint8_t {
  kCsrU8Delta = 0,
  kCsrU16 = 1,
  kBitmap = 2,
  kNm = 3,
  kBlockCsr = 4,
};

// A non-owning view of one sparse int8 weight matrix. Only the arrays of `format` are read.
struct SparseMatrixS8 {
  SparseFormat format = SparseFormat::kCsrU8Delta;
  int32_t rows = 0;                         // >= 1, == out_features
  int32_t cols = 0;                         // >= 1, == in_features
  const int8_t* values = nullptr;           // [value_count]
  int32_t value_count = 0;                  // >= 0 (CSR: includes u8 padding entries)
  const uint16_t* row_nnz = nullptr;        // CSR: [rows]
  const uint8_t* col_delta = nullptr;       // kCsrU8Delta: [value_count]
  const uint16_t* col_index = nullptr;      // kCsrU16: [value_count]
  const uint8_t* bitmap = nullptr;          // kBitmap: [rows][(cols + 7) / 8]
  const uint8_t* nm_index = nullptr;        // kNm: [rows][nm_row_index_bytes()]
  int32_t nm_n = 0;                         // kNm: [1, nm_m]
  int32_t nm_m = 0;                         // kNm: [1, 256]
  const uint32_t* block_row_ptr = nullptr;  // kBlockCsr: [rows / block_rows + 1]
  const uint16_t* block_col = nullptr;      // kBlockCsr: [blocks]
  int32_t block_rows = 0;                   // kBlockCsr: >= 1, divides rows
  int32_t block_cols = 0;                   // kBlockCsr: >= 1, divides cols
};

// Bits of one N:M index: ceil(log2(m)), 0 for m == 1. m in [1, 256].
constexpr int32_t nm_index_bits(int32_t m) noexcept {
  int32_t bits = 0;
  while ((int32_t{1} << bits) < m) ++bits;
  return bits;
}
// Largest column count a sparse matrix may have: every per-row count derived from it (bitmap
// bytes, N:M groups, slots and index bytes) then fits int32. The kernels return kBadDimension
// beyond it.
constexpr int32_t kSparseMaxCols = 0x7FFFFFFF - 255;
// Groups of m columns (the last may be shorter); cols >= 0, m in [1, 256].
constexpr int32_t nm_groups(int32_t cols, int32_t m) noexcept {
  return cols / m + (cols % m != 0 ? 1 : 0);
}
// Bytes of one row's N:M indices; cols <= kSparseMaxCols, 1 <= n <= m <= 256.
constexpr int32_t nm_row_index_bytes(int32_t cols, int32_t n, int32_t m) noexcept {
  return static_cast<int32_t>((int64_t{nm_groups(cols, m)} * n * nm_index_bits(m) + 7) / 8);
}

// O(nnz) check of the index data: every column in range and increasing (CSR), set bits and
// value count agree and no bit past cols (bitmap), every block column in range and increasing
// inside its block row (block CSR), every N:M index inside its group and no two
// nonzero slots of a group on the same index. Returns kBadSparseData, kNullPointer,
// kBadDimension or kOk. Reads nothing beyond the arrays the counts describe.
Status validate_sparse_s8(const SparseMatrixS8& w) noexcept;

// output[b][o] for b < batch, o < out_features; input [batch][in_features]; bias
// [out_features] or null. ctx.path: kAuto follows a globally forced reference, smlad or avx2
// path (force_path, TINYQUANT_PATH) and, on an ARM build with the DSP extension, smlad
// (dispatch's default there), else picks AVX-512 VNNI on x86 CPUs that have it, else AVX2, else
// the reference (AArch64 included); kReference, kSmlad, kAvx2 and kAvx512Vnni can be forced
// (kPathUnavailable if the build or CPU lacks it; every other path is unavailable for sparse
// kernels). kAvx512Vnni runs block CSR on vpdpbusd, bitmap too on CPUs with AVX-512 VBMI2
// (vpexpandb), and every other format on the AVX2 bodies.
Status sparse_fully_connected_s8(const Context& ctx, const FcParams& params, const Requant& requant,
                                 const FcDims& dims, const int8_t* input,
                                 const SparseMatrixS8& weights, const int32_t* bias,
                                 int8_t* output) noexcept;
// Scratch bytes sparse_fully_connected_s8 needs on `path` (kAuto: the path it would pick). The
// smlad path keeps x + input_offset as an int16 row there (2 * in_features + 3 bytes) for every
// format but block CSR; without it the call returns kScratchTooSmall, as on the x86 paths.
// INT32_MAX means the layer needs INT32_MAX bytes or more: the call returns kScratchTooSmall
// whatever the scratch, since no int32 size can be shown to hold it. A layer the call refuses
// (bad dims, counts or N:M options; the query runs the call's O(rows) checks, reading row_nnz or
// block_row_ptr) gets 0: the call returns that error first.
int32_t sparse_fully_connected_s8_scratch_size(const FcDims& dims, const SparseMatrixS8& weights,
                                               Path path) noexcept;

namespace detail {

// Per-path bodies behind sparse_fully_connected_s8: arguments are already validated, `path`
// scratch bytes are at ctx.scratch. Not for direct use.
struct SparseFcArgs {
  const FcParams* params = nullptr;
  const Requant* requant = nullptr;
  const FcDims* dims = nullptr;
  const int8_t* input = nullptr;
  const SparseMatrixS8* weights = nullptr;
  const int32_t* bias = nullptr;
  int8_t* output = nullptr;
  void* scratch = nullptr;
};

void sparse_fc_s8_reference(const SparseFcArgs& args) noexcept;
void sparse_fc_s8_smlad(const SparseFcArgs& args) noexcept;
// The int16 row of x + input_offset (every format but block CSR).
int32_t sparse_fc_s8_smlad_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept;
void sparse_fc_s8_avx2(const SparseFcArgs& args) noexcept;  // x86-64 builds only
int32_t sparse_fc_s8_avx2_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept;
// Block CSR, and bitmap, on AVX-512 VNNI (x86-64 builds only; the caller checked the CPU: VNNI,
// and for bitmap also VBMI2).
void sparse_fc_s8_avx512vnni(const SparseFcArgs& args) noexcept;
int32_t sparse_fc_s8_avx512vnni_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept;

// Shared epilogue: requantize, add the output offset, clamp.
inline int8_t sparse_fc_finish(int32_t acc, int32_t channel, const FcParams& p,
                               const Requant& rq) noexcept {
  const int32_t i = rq.per_channel ? channel : 0;
  int32_t r = requantize(acc, rq.multiplier[i], rq.shift[i], rq.rounding);
  r = wrap_add(r, p.output_offset);
  r = r < p.act_min ? p.act_min : (r > p.act_max ? p.act_max : r);
  return static_cast<int8_t>(r);
}

}  // namespace detail
}  // namespace tinyquant::rt
