// Feeds sparse index arrays carved from arbitrary bytes to SparseMatrix::from_arrays (every
// format, int8 and int4 values) and to the runtime's validate_sparse_s8.
//
// Input layout: byte 0 picks the format (low 3 bits), int4 values (bit 3), counts taken from the
// input instead of derived from the arrays (bit 4) and raw N:M / block options (bit 5); then
// rows, cols and the format's options, then the arrays, each as long as its counts say.
//
// Checks beyond "no crash":
//  - a tinyquant::Error is the only accepted failure of from_arrays;
//  - an accepted matrix round trips: from_dense(to_dense()) gives the same dense matrix, and its
//    int8 kernel view passes validate_sparse_s8;
//  - whenever validate_sparse_s8 accepts a view (the toolkit's, or one built straight from the
//    carved arrays), sparse_fully_connected_s8 on every path the host runs (kPaths) runs
//    without reading out of bounds, and when the toolkit accepted the same arrays its output is
//    bit-identical to fully_connected_s8 on to_dense().
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"
#include "tinyquant/sparse.hpp"

namespace {

using namespace tinyquant;

// The automatic path (the widest the CPU has: AVX-512 VNNI here, whose body runs block CSR and
// bitmap and hands the other formats to the AVX2 one), AVX2 on its own (its bitmap body), the
// smlad emulation and the reference; a path the CPU lacks returns kPathUnavailable.
constexpr rt::Path kPaths[] = {rt::Path::kReference, rt::Path::kAuto, rt::Path::kAvx2,
                               rt::Path::kSmlad};

using fuzz::Bytes;

// Output of the dense reference kernel and of the sparse kernel on `path` for the same weights.
struct KernelCase {
  rt::FcParams params;
  int32_t multiplier = 1 << 30;
  int32_t shift = -6;
  std::vector<int8_t> input;
  std::vector<int32_t> bias;
  rt::FcDims dims;
};

KernelCase make_case(Bytes& in, int32_t rows, int32_t cols) {
  KernelCase k;
  // 1-17: the bitmap and block bodies' groups of 4, 2 and 1 batch rows, the column-list body's
  // groups of 8 (two of them from 9) and its last group of 1-4.
  k.dims.batch = 1 + in.u8() % 17;
  k.dims.in_features = cols;
  k.dims.out_features = rows;
  k.params.input_offset = static_cast<int32_t>(in.u8()) - 127;   // [-127, 128]
  k.params.filter_offset = static_cast<int32_t>(in.u8()) - 127;  // [-127, 128]
  k.params.output_offset = static_cast<int32_t>(in.u8()) - 128;
  k.shift = -static_cast<int32_t>(in.u8() % 16);
  k.input.resize(static_cast<size_t>(k.dims.batch) * static_cast<size_t>(cols));
  for (size_t i = 0; i < k.input.size(); ++i) {
    k.input[i] = static_cast<int8_t>(static_cast<uint8_t>(i * 37u + in.u8()));
  }
  k.bias.resize(static_cast<size_t>(rows));
  for (size_t i = 0; i < k.bias.size(); ++i) k.bias[i] = static_cast<int32_t>(i * 1000u) - 5000;
  return k;
}

std::vector<int8_t> run_sparse(const KernelCase& k, const rt::SparseMatrixS8& w, rt::Path path) {
  const rt::Requant rq{&k.multiplier, &k.shift, false, rt::Rounding::kDouble};
  const int32_t need = rt::sparse_fully_connected_s8_scratch_size(k.dims, w, path);
  if (need < 0) __builtin_trap();
  std::vector<uint8_t> scratch(static_cast<size_t>(need) + 1);
  const rt::Context ctx{scratch.data(), need, path};
  std::vector<int8_t> out(static_cast<size_t>(k.dims.batch) * static_cast<size_t>(w.rows));
  const rt::Status st = rt::sparse_fully_connected_s8(ctx, k.params, rq, k.dims, k.input.data(), w,
                                                      k.bias.data(), out.data());
  if (st == rt::Status::kPathUnavailable) return {};
  if (st != rt::Status::kOk) __builtin_trap();  // validated weights, valid arguments
  return out;
}

std::vector<int8_t> run_dense(const KernelCase& k, const std::vector<int8_t>& dense) {
  const rt::Requant rq{&k.multiplier, &k.shift, false, rt::Rounding::kDouble};
  const int32_t need = rt::fully_connected_s8_scratch_size(k.dims, rt::Path::kReference);
  std::vector<uint8_t> scratch(static_cast<size_t>(need) + 1);
  const rt::Context ctx{scratch.data(), need, rt::Path::kReference};
  std::vector<int8_t> out(static_cast<size_t>(k.dims.batch) *
                          static_cast<size_t>(k.dims.out_features));
  if (rt::fully_connected_s8(ctx, k.params, rq, k.dims, k.input.data(), dense.data(), k.bias.data(),
                             out.data()) != rt::Status::kOk)
    __builtin_trap();
  return out;
}

// The same arrays as a raw runtime view (int8 values only).
rt::SparseMatrixS8 raw_view(const SparseArrays& a, const SparseOptions& o, int32_t rows,
                            int32_t cols) {
  rt::SparseMatrixS8 w;
  w.rows = rows;
  w.cols = cols;
  w.values = a.values.data();
  w.value_count = static_cast<int32_t>(a.values.size());
  switch (o.format) {
    case StorageFormat::kCsrU8:
      w.format = rt::SparseFormat::kCsrU8Delta;
      w.row_nnz = a.row_nnz.data();
      w.col_delta = a.col_delta.data();
      break;
    case StorageFormat::kCsrU16:
      w.format = rt::SparseFormat::kCsrU16;
      w.row_nnz = a.row_nnz.data();
      w.col_index = a.col_index.data();
      break;
    case StorageFormat::kBlockCsr:
      w.format = rt::SparseFormat::kBlockCsr;
      w.block_row_ptr = a.block_row_ptr.data();
      w.block_col = a.block_col.data();
      w.block_rows = static_cast<int32_t>(o.block_rows);
      w.block_cols = static_cast<int32_t>(o.block_cols);
      break;
    case StorageFormat::kBitmap:
      w.format = rt::SparseFormat::kBitmap;
      w.bitmap = a.bitmap.data();
      break;
    default:
      w.format = rt::SparseFormat::kNm;
      w.nm_index = a.nm_index.data();
      w.nm_n = o.nm_n;
      w.nm_m = o.nm_m;
      break;
  }
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const uint8_t mode = in.u8();
  static const StorageFormat kFormats[5] = {StorageFormat::kCsrU8, StorageFormat::kCsrU16,
                                            StorageFormat::kBlockCsr, StorageFormat::kBitmap,
                                            StorageFormat::kNm};
  SparseOptions o;
  o.format = kFormats[(mode & 7u) % 5u];
  o.value_type = (mode & 8u) != 0 ? ValueType::kInt4 : ValueType::kInt8;
  const bool raw_counts = (mode & 16u) != 0;
  const bool raw_options = (mode & 32u) != 0;
  const int32_t rows = 1 + in.u8() % 24;
  const int32_t cols = 1 + in.u16() % 600;  // > 255 reaches the u8 delta padding entries

  SparseArrays a;
  size_t values = 0;
  // Count adjustments when raw: the declared count may disagree with the arrays.
  auto adjust = [&](size_t n) {
    if (!raw_counts) return n;
    const int d = static_cast<int8_t>(in.u8());
    return d < 0 && static_cast<size_t>(-d) > n ? size_t{0} : n + static_cast<size_t>(d);
  };
  switch (o.format) {
    case StorageFormat::kCsrU8:
    case StorageFormat::kCsrU16: {
      a.row_nnz.resize(adjust(static_cast<size_t>(rows)));
      size_t nnz = 0;
      for (uint16_t& n : a.row_nnz) {
        n = in.u8();
        nnz += n;
      }
      nnz = adjust(nnz);
      if (o.format == StorageFormat::kCsrU8) {
        a.col_delta.resize(nnz);
        for (uint8_t& d : a.col_delta) d = in.u8();
      } else {
        a.col_index.resize(nnz);
        for (uint16_t& c : a.col_index) c = in.u16();
      }
      values = adjust(nnz);
      break;
    }
    case StorageFormat::kBlockCsr: {
      o.block_rows = raw_options ? in.u8() % 6 : 1 + in.u8() % 4;
      o.block_cols = raw_options ? in.u8() % 20 : 1 + in.u8() % 16;
      if (o.block_rows < 1 || o.block_cols < 1 || rows % o.block_rows != 0 ||
          cols % o.block_cols != 0) {
        // Still exercise the option checks.
        try {
          (void)SparseMatrix::from_arrays(rows, cols, o, a);
        } catch (const Error&) {
        }
        return 0;
      }
      const size_t block_rows_n = static_cast<size_t>(rows / o.block_rows);
      a.block_row_ptr.resize(adjust(block_rows_n + 1));
      uint32_t acc = 0;
      for (size_t i = 0; i < a.block_row_ptr.size(); ++i) {
        acc += i == 0 ? (raw_counts ? in.u8() : 0u) : in.u8() % 8u;
        a.block_row_ptr[i] = acc;
      }
      const size_t blocks = a.block_row_ptr.empty() ? 0 : a.block_row_ptr.back();
      a.block_col.resize(adjust(blocks));
      for (uint16_t& c : a.block_col) c = in.u8();
      values = adjust(blocks * static_cast<size_t>(o.block_rows * o.block_cols));
      break;
    }
    case StorageFormat::kBitmap: {
      a.bitmap.resize(adjust(static_cast<size_t>(rows) * static_cast<size_t>((cols + 7) / 8)));
      size_t bits = 0;
      for (uint8_t& b : a.bitmap) {
        b = in.u8();
        bits += static_cast<size_t>(__builtin_popcount(b));
      }
      values = adjust(bits);
      break;
    }
    default: {
      o.nm_m = raw_options ? in.u16() % 300 : 1 + in.u8() % 16;
      o.nm_n = raw_options ? in.u8() % 20 : 1 + in.u8() % o.nm_m;
      if (o.nm_n < 1 || o.nm_m < 1 || o.nm_n > o.nm_m || o.nm_m > 256) {
        try {
          (void)SparseMatrix::from_arrays(rows, cols, o, a);
        } catch (const Error&) {
        }
        return 0;
      }
      a.nm_index.resize(adjust(static_cast<size_t>(rows) *
                               static_cast<size_t>(rt::nm_row_index_bytes(cols, o.nm_n, o.nm_m))));
      for (uint8_t& b : a.nm_index) b = in.u8();
      values = adjust(static_cast<size_t>(rows) *
                      static_cast<size_t>(rt::nm_groups(cols, o.nm_m) * o.nm_n));
      break;
    }
  }
  if (values > (size_t{1} << 20)) return 0;
  a.values.resize(values);
  for (int8_t& v : a.values) v = static_cast<int8_t>(in.u8());
  KernelCase k = make_case(in, rows, cols);

  bool accepted = false;
  std::vector<int8_t> dense;
  try {
    const SparseMatrix m = SparseMatrix::from_arrays(rows, cols, o, a);
    accepted = true;
    dense = m.to_dense();
    if (dense.size() != static_cast<size_t>(rows) * static_cast<size_t>(cols)) __builtin_trap();
    // Re-encoding the dense matrix in the same format must give the same matrix back.
    const SparseMatrix again = SparseMatrix::from_dense(dense.data(), rows, cols, o);
    if (again.to_dense() != dense) __builtin_trap();
    if (m.bytes() <= 0) __builtin_trap();
    if (o.value_type == ValueType::kInt8) {
      const rt::SparseMatrixS8 w = m.view();
      if (rt::validate_sparse_s8(w) != rt::Status::kOk) __builtin_trap();
      const std::vector<int8_t> want = run_dense(k, dense);
      for (rt::Path p : kPaths) {
        const std::vector<int8_t> got = run_sparse(k, w, p);
        if (!got.empty() && got != want) __builtin_trap();
      }
    }
  } catch (const Error&) {
    if (accepted) __builtin_trap();  // only from_arrays may reject
  }
  // The runtime validator on the carved arrays as they are; the arrays are exactly as long as
  // the counts say only when the counts were derived, so raw counts stop here.
  if (o.value_type == ValueType::kInt8 && !raw_counts) {
    const rt::SparseMatrixS8 w = raw_view(a, o, rows, cols);
    if (rt::validate_sparse_s8(w) == rt::Status::kOk) {
      for (rt::Path p : kPaths) (void)run_sparse(k, w, p);
    }
  }
  return 0;
}
