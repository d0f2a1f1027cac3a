// Sparse storage for pruned int8 / int4 weight matrices [rows][cols], with exact byte accounting
// and a round trip to dense.
//
// Formats (the index layouts of CSR, block CSR, bitmap and N:M are those of rt/sparse.hpp, so
// an int8 matrix exposes a kernel view without copying):
//  - kCsrU8:   row_nnz uint16 [rows], col_delta uint8 [nnz], values. Gaps > 255 are bridged by
//              padding entries (delta 255, value 0), counted in nnz and in bytes(). A row holds
//              at most 65535 entries, padding included (its count is a uint16).
//  - kCsrU16:  row_nnz uint16 [rows], col_index uint16 [nnz], values. cols <= 65536, and at most
//              65535 entries per row (so not a full row of 65536 columns).
//  - kBlockCsr: blocks of block_rows x block_cols that tile the matrix; block_row_ptr uint32
//              [rows / block_rows + 1], block_col uint16 [blocks] (block column), values
//              [blocks][block_rows][block_cols] (zeros inside a stored block included).
//  - kBitmap:  bitmap [rows][ceil(cols / 8)] (LSB first), values of the set bits, row-major.
//  - kNm:      nm_n slots per group of nm_m inputs (tail group included), indices packed
//              ceil(log2 nm_m) bits each per row (rt::nm_row_index_bytes), values [rows][slots].
// Values are int8, or int4 in [-8, 7] shipped as one nibble stream (element 2i in the low nibble
// of byte i, 2i+1 in the high one: CMSIS-NN's s4 layout) of ceil(count / 2) bytes.
// bytes() counts every array that must be shipped; dense counts rows * cols int8 bytes or
// ceil(rows * cols / 2) int4 bytes. Format parameters (rows, cols, N, M, block shape) are a few
// constants of the generated code and are not counted.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tinyquant/rt/sparse.hpp"

namespace tinyquant {

enum class StorageFormat : uint8_t { kDense, kCsrU8, kCsrU16, kBlockCsr, kBitmap, kNm };
enum class ValueType : uint8_t { kInt8, kInt4 };

const char* to_string(StorageFormat f) noexcept;

struct SparseOptions {
  StorageFormat format = StorageFormat::kCsrU8;
  ValueType value_type = ValueType::kInt8;
  int nm_n = 2, nm_m = 4;  // kNm: 1 <= n <= m <= 256
  // kBlockCsr: must tile the matrix (no partial blocks). 1x16 and 4x16 are the SIMD tiles of
  // the x86 kernels (16 inputs = one xmm of int8); other shapes run scalar loops there.
  int64_t block_rows = 1, block_cols = 16;
};

// The arrays of a sparse matrix; only those of its format are used. Values are unpacked here
// (one int8 per value, int4 ones in [-8, 7]); packed_values() gives the shipped bytes.
struct SparseArrays {
  std::vector<uint16_t> row_nnz;
  std::vector<uint8_t> col_delta;
  std::vector<uint16_t> col_index;
  std::vector<uint32_t> block_row_ptr;
  std::vector<uint16_t> block_col;
  std::vector<uint8_t> bitmap;
  std::vector<uint8_t> nm_index;
  std::vector<int8_t> values;
};

class SparseMatrix {
 public:
  // Encodes a dense row-major matrix. Throws InvalidArgument for bad options, int4 values
  // outside [-8, 7], blocks that do not tile, a kNm group with more than nm_n nonzeros, or
  // dimensions beyond the format's index range.
  static SparseMatrix from_dense(const int8_t* dense, int64_t rows, int64_t cols,
                                 const SparseOptions& options);
  // Adopts raw arrays (e.g. read from a file) after checking them: a count that does not match,
  // a row pointer that is not monotone, a column out of range or not increasing, a bitmap whose
  // popcount differs from the value count, an N:M index outside its group -> FormatError naming
  // the row and the offending value; bad options -> InvalidArgument.
  static SparseMatrix from_arrays(int64_t rows, int64_t cols, const SparseOptions& options,
                                  SparseArrays arrays);

  std::vector<int8_t> to_dense() const;
  // Calls f(r * cols() + c, value) once for every nonzero stored value, in storage order
  // (row-major, but block by block for block CSR), without a dense copy: memory stays that of
  // the arrays however large rows() x cols() is.
  void for_each_value(const std::function<void(int64_t, int8_t)>& f) const;
  int64_t bytes() const;
  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  const SparseOptions& options() const noexcept { return options_; }
  const SparseArrays& arrays() const noexcept { return arrays_; }
  // Stored values as shipped: int8 bytes, or the int4 nibble stream.
  std::vector<uint8_t> packed_values() const;
  // Kernel view (int8 kCsrU8 / kCsrU16 / kBlockCsr / kBitmap / kNm); throws InvalidArgument
  // for int4 values.
  // Valid while this object lives and is not modified.
  rt::SparseMatrixS8 view() const;

 private:
  SparseMatrix() = default;
  void validate() const;
  int64_t rows_ = 0, cols_ = 0;
  SparseOptions options_;
  SparseArrays arrays_;
};

// Byte counts of every format that can hold the matrix (kNm only when every group has at most
// nm_n nonzeros, kBlockCsr only when the blocks tile it, kCsrU16 only when cols <= 65536, CSR
// only when no row needs more than 65535 entries, padding included), and the smallest. Ties go to
// the earlier entry in the order dense, CSR u8, CSR u16, block CSR, bitmap, N:M, so dense wins
// unless a format is strictly smaller. Options no matrix could take (N:M outside
// 1 <= n <= m <= 256, a block dimension below 1) throw InvalidArgument.
struct FormatChoice {
  StorageFormat best = StorageFormat::kDense;
  int64_t best_bytes = 0;
  std::vector<std::pair<StorageFormat, int64_t>> sizes;
};
FormatChoice choose_format(const int8_t* dense, int64_t rows, int64_t cols,
                           const SparseOptions& options);

}  // namespace tinyquant
