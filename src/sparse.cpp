#include "tinyquant/sparse.hpp"

#include <algorithm>
#include <limits>

#include "detail/check.hpp"

namespace tinyquant {

using detail::fail;

const char* to_string(StorageFormat f) noexcept {
  switch (f) {
    case StorageFormat::kDense:
      return "dense";
    case StorageFormat::kCsrU8:
      return "csr-u8";
    case StorageFormat::kCsrU16:
      return "csr-u16";
    case StorageFormat::kBlockCsr:
      return "block-csr";
    case StorageFormat::kBitmap:
      return "bitmap";
    case StorageFormat::kNm:
      return "nm";  // as `tinyquant prune --storage` spells it
  }
  return "unknown";
}

namespace {

size_t sz(int64_t v) {
  return static_cast<size_t>(v);
}

int64_t bitmap_row_bytes(int64_t cols) {
  return (cols + 7) / 8;
}

int64_t nm_row_bytes(int64_t cols, int n, int m) {
  return rt::nm_row_index_bytes(static_cast<int32_t>(cols), n, m);
}

void check_options(int64_t rows, int64_t cols, const SparseOptions& o, const char* what) {
  if (rows < 1 || cols < 1)
    fail<InvalidArgument>("{}: matrix {}x{} must have at least one row and column", what, rows,
                          cols);
  if (rows > std::numeric_limits<int32_t>::max() || cols > rt::kSparseMaxCols)
    fail<InvalidArgument>(
        "{}: matrix {}x{} exceeds the index range (at most 2^31 - 1 rows and 2^31 - 256 columns)",
        what, rows, cols);
  if (o.value_type != ValueType::kInt8 && o.value_type != ValueType::kInt4)
    fail<InvalidArgument>("{}: unknown value type {}", what, static_cast<int>(o.value_type));
  switch (o.format) {
    case StorageFormat::kCsrU8:
      return;
    case StorageFormat::kCsrU16:
      if (cols > 65536)
        fail<InvalidArgument>("{}: cols = {} exceeds 65536, the uint16 column index range", what,
                              cols);
      return;
    case StorageFormat::kBlockCsr:
      if (o.block_rows < 1 || o.block_cols < 1 || rows % o.block_rows != 0 ||
          cols % o.block_cols != 0)
        fail<InvalidArgument>("{}: block {}x{} does not tile the {}x{} matrix", what, o.block_rows,
                              o.block_cols, rows, cols);
      if (cols / o.block_cols > 65536)
        fail<InvalidArgument>("{}: {} block columns exceed the uint16 index range", what,
                              cols / o.block_cols);
      return;
    case StorageFormat::kBitmap:
      return;
    case StorageFormat::kNm:
      if (o.nm_m < 1 || o.nm_m > 256 || o.nm_n < 1 || o.nm_n > o.nm_m)
        fail<InvalidArgument>("{}: N:M = {}:{} is invalid (need 1 <= N <= M <= 256)", what, o.nm_n,
                              o.nm_m);
      return;
    case StorageFormat::kDense:
      break;
  }
  fail<InvalidArgument>("{}: format {} cannot be stored as a sparse matrix", what,
                        to_string(o.format));
}

void put_bits(std::vector<uint8_t>& out, int64_t byte0, int64_t bit, int bits, uint32_t v) {
  for (int i = 0; i < bits; ++i) {
    const int64_t b = bit + i;
    if ((v >> i) & 1u)
      out[sz(byte0 + (b >> 3))] = static_cast<uint8_t>(out[sz(byte0 + (b >> 3))] | (1u << (b & 7)));
  }
}
uint32_t get_bits(const std::vector<uint8_t>& in, int64_t byte0, int64_t bit, int bits) {
  uint32_t v = 0;
  for (int i = 0; i < bits; ++i) {
    const int64_t b = bit + i;
    v |= static_cast<uint32_t>((in[sz(byte0 + (b >> 3))] >> (b & 7)) & 1u) << i;
  }
  return v;
}

void push_row_nnz(SparseArrays& a, int64_t count, int64_t row) {
  if (count > 65535)
    fail<InvalidArgument>("sparse matrix: row {} has {} entries, more than the uint16 count allows",
                          row, count);
  a.row_nnz.push_back(static_cast<uint16_t>(count));
}

}  // namespace

SparseMatrix SparseMatrix::from_dense(const int8_t* dense, int64_t rows, int64_t cols,
                                      const SparseOptions& o) {
  check_options(rows, cols, o, "SparseMatrix::from_dense");
  if (dense == nullptr) fail<InvalidArgument>("SparseMatrix::from_dense: dense data is null");
  if (o.value_type == ValueType::kInt4) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      if (dense[i] < -8 || dense[i] > 7)
        fail<InvalidArgument>(
            "SparseMatrix::from_dense: int4 value {} at row {}, column {} is outside [-8, 7]",
            dense[i], i / cols, i % cols);
    }
  }
  SparseMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.options_ = o;
  SparseArrays& a = m.arrays_;
  auto at = [&](int64_t r, int64_t c) { return dense[r * cols + c]; };
  switch (o.format) {
    case StorageFormat::kCsrU8:
      for (int64_t r = 0; r < rows; ++r) {
        const size_t before = a.values.size();
        int64_t prev = 0;
        for (int64_t c = 0; c < cols; ++c) {
          if (at(r, c) == 0) continue;
          int64_t gap = c - prev;
          while (gap > 255) {  // padding entries: move 255 columns, add nothing
            a.col_delta.push_back(255);
            a.values.push_back(0);
            gap -= 255;
          }
          a.col_delta.push_back(static_cast<uint8_t>(gap));
          a.values.push_back(at(r, c));
          prev = c;
        }
        push_row_nnz(a, static_cast<int64_t>(a.values.size() - before), r);
      }
      break;
    case StorageFormat::kCsrU16:
      for (int64_t r = 0; r < rows; ++r) {
        int64_t count = 0;
        for (int64_t c = 0; c < cols; ++c) {
          if (at(r, c) == 0) continue;
          a.col_index.push_back(static_cast<uint16_t>(c));
          a.values.push_back(at(r, c));
          ++count;
        }
        push_row_nnz(a, count, r);
      }
      break;
    case StorageFormat::kBlockCsr: {
      const int64_t br = o.block_rows, bc = o.block_cols;
      a.block_row_ptr.push_back(0);
      for (int64_t R = 0; R < rows / br; ++R) {
        for (int64_t C = 0; C < cols / bc; ++C) {
          bool any = false;
          for (int64_t i = 0; i < br && !any; ++i) {
            for (int64_t j = 0; j < bc && !any; ++j) any = at(R * br + i, C * bc + j) != 0;
          }
          if (!any) continue;
          a.block_col.push_back(static_cast<uint16_t>(C));
          for (int64_t i = 0; i < br; ++i) {
            for (int64_t j = 0; j < bc; ++j) a.values.push_back(at(R * br + i, C * bc + j));
          }
        }
        a.block_row_ptr.push_back(static_cast<uint32_t>(a.block_col.size()));
      }
      break;
    }
    case StorageFormat::kBitmap: {
      const int64_t rb = bitmap_row_bytes(cols);
      a.bitmap.assign(sz(rows * rb), 0);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          if (at(r, c) == 0) continue;
          a.bitmap[sz(r * rb + c / 8)] =
              static_cast<uint8_t>(a.bitmap[sz(r * rb + c / 8)] | (1u << (c % 8)));
          a.values.push_back(at(r, c));
        }
      }
      break;
    }
    case StorageFormat::kNm: {
      const int bits = rt::nm_index_bits(o.nm_m);
      const int64_t rb = nm_row_bytes(cols, o.nm_n, o.nm_m);
      a.nm_index.assign(sz(rows * rb), 0);
      for (int64_t r = 0; r < rows; ++r) {
        int64_t slot = 0;
        for (int64_t g = 0; g < cols; g += o.nm_m) {
          const int64_t size = std::min<int64_t>(o.nm_m, cols - g);
          int used = 0;
          for (int64_t j = 0; j < size; ++j) {
            if (at(r, g + j) == 0) continue;
            if (used == o.nm_n)
              fail<InvalidArgument>(
                  "SparseMatrix::from_dense: row {} group at column {} has more than {} nonzeros "
                  "({}:{} format)",
                  r, g, o.nm_n, o.nm_n, o.nm_m);
            put_bits(a.nm_index, r * rb, slot * bits, bits, static_cast<uint32_t>(j));
            a.values.push_back(at(r, g + j));
            ++used;
            ++slot;
          }
          for (; used < o.nm_n; ++used, ++slot) a.values.push_back(0);  // index 0, value 0
        }
      }
      break;
    }
    case StorageFormat::kDense:
      break;
  }
  return m;
}

SparseMatrix SparseMatrix::from_arrays(int64_t rows, int64_t cols, const SparseOptions& o,
                                       SparseArrays arrays) {
  check_options(rows, cols, o, "SparseMatrix::from_arrays");
  SparseMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.options_ = o;
  m.arrays_ = std::move(arrays);
  m.validate();
  return m;
}

void SparseMatrix::validate() const {
  const SparseArrays& a = arrays_;
  const int64_t nv = static_cast<int64_t>(a.values.size());
  const char* f = to_string(options_.format);
  if (options_.value_type == ValueType::kInt4) {
    for (int64_t i = 0; i < nv; ++i) {
      if (a.values[sz(i)] < -8 || a.values[sz(i)] > 7)
        fail<FormatError>("{} matrix: int4 value {} at value index {} is outside [-8, 7]", f,
                          a.values[sz(i)], i);
    }
  }
  switch (options_.format) {
    case StorageFormat::kCsrU8:
    case StorageFormat::kCsrU16: {
      const bool u8 = options_.format == StorageFormat::kCsrU8;
      if (static_cast<int64_t>(a.row_nnz.size()) != rows_)
        fail<FormatError>("{} matrix: {} row counts for {} rows", f, a.row_nnz.size(), rows_);
      const int64_t ni = static_cast<int64_t>(u8 ? a.col_delta.size() : a.col_index.size());
      int64_t total = 0;
      for (uint16_t c : a.row_nnz) total += c;
      if (total != nv || ni != nv)
        fail<FormatError>("{} matrix: row counts sum to {} but there are {} indices and {} values",
                          f, total, ni, nv);
      int64_t i = 0;
      for (int64_t r = 0; r < rows_; ++r) {
        int64_t col = u8 ? 0 : -1;
        for (int64_t j = 0; j < a.row_nnz[sz(r)]; ++j, ++i) {
          int64_t c = 0;
          if (u8) {
            c = col + a.col_delta[sz(i)];
            if (j > 0 && a.col_delta[sz(i)] == 0)
              fail<FormatError>("{} matrix: row {} entry {} repeats column {} (delta 0)", f, r, j,
                                c);
          } else {
            c = a.col_index[sz(i)];
            if (c <= col)
              fail<FormatError>(
                  "{} matrix: row {} entry {}: column {} does not increase (after {})", f, r, j, c,
                  col);
          }
          if (c >= cols_)
            fail<FormatError>("{} matrix: row {} entry {}: column {} is out of range [0, {})", f, r,
                              j, c, cols_);
          col = c;
        }
      }
      return;
    }
    case StorageFormat::kBlockCsr: {
      const int64_t brs = rows_ / options_.block_rows, bcs = cols_ / options_.block_cols;
      const int64_t bsize = options_.block_rows * options_.block_cols;
      if (static_cast<int64_t>(a.block_row_ptr.size()) != brs + 1)
        fail<FormatError>("{} matrix: {} block row pointers for {} block rows (need {})", f,
                          a.block_row_ptr.size(), brs, brs + 1);
      if (a.block_row_ptr[0] != 0)
        fail<FormatError>("{} matrix: the first block row pointer is {}, not 0", f,
                          a.block_row_ptr[0]);
      for (int64_t R = 0; R < brs; ++R) {
        if (a.block_row_ptr[sz(R + 1)] < a.block_row_ptr[sz(R)])
          fail<FormatError>(
              "{} matrix: block row pointer is not monotone at block row {} ({} after {})", f, R,
              a.block_row_ptr[sz(R + 1)], a.block_row_ptr[sz(R)]);
      }
      const int64_t nb = a.block_row_ptr.back();
      if (static_cast<int64_t>(a.block_col.size()) != nb || nv != nb * bsize)
        fail<FormatError>(
            "{} matrix: {} blocks by row pointers but {} block columns and {} values "
            "(expected {})",
            f, nb, a.block_col.size(), nv, nb * bsize);
      for (int64_t R = 0; R < brs; ++R) {
        int64_t prev = -1;
        for (uint32_t b = a.block_row_ptr[sz(R)]; b < a.block_row_ptr[sz(R + 1)]; ++b) {
          const int64_t c = a.block_col[b];
          if (c >= bcs || c <= prev)
            fail<FormatError>(
                "{} matrix: block row {}: block column {} is out of range [0, {}) or "
                "not increasing (after {})",
                f, R, c, bcs, prev);
          prev = c;
        }
      }
      return;
    }
    case StorageFormat::kBitmap: {
      const int64_t rb = bitmap_row_bytes(cols_);
      if (static_cast<int64_t>(a.bitmap.size()) != rows_ * rb)
        fail<FormatError>("{} matrix: bitmap has {} bytes, expected {}", f, a.bitmap.size(),
                          rows_ * rb);
      int64_t pop = 0;
      for (int64_t r = 0; r < rows_; ++r) {
        for (int64_t b = 0; b < rb; ++b) pop += __builtin_popcount(a.bitmap[sz(r * rb + b)]);
        const int tail = static_cast<int>(cols_ % 8);
        if (tail != 0 && (a.bitmap[sz(r * rb + rb - 1)] >> tail) != 0)
          fail<FormatError>("{} matrix: row {} sets bits past column {} (last byte {:#04x})", f, r,
                            cols_ - 1, a.bitmap[sz(r * rb + rb - 1)]);
      }
      if (pop != nv)
        fail<FormatError>("{} matrix: bitmap popcount {} differs from the value count {}", f, pop,
                          nv);
      return;
    }
    case StorageFormat::kNm: {
      const int n = options_.nm_n, mm = options_.nm_m;
      const int bits = rt::nm_index_bits(mm);
      const int64_t rb = nm_row_bytes(cols_, n, mm);
      const int64_t groups = (cols_ + mm - 1) / mm;
      if (static_cast<int64_t>(a.nm_index.size()) != rows_ * rb || nv != rows_ * groups * n)
        fail<FormatError>("{} matrix: {} index bytes and {} values, expected {} and {}", f,
                          a.nm_index.size(), nv, rows_ * rb, rows_ * groups * n);
      int64_t v = 0;
      for (int64_t r = 0; r < rows_; ++r) {
        int64_t slot = 0;
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t size = std::min<int64_t>(mm, cols_ - g * mm);
          std::vector<bool> used(sz(size), false);
          for (int s = 0; s < n; ++s, ++slot, ++v) {
            const int64_t p = get_bits(a.nm_index, r * rb, slot * bits, bits);
            if (p >= size)
              fail<FormatError>(
                  "{} matrix: row {} group {} slot {}: index {} is outside the group "
                  "of {}",
                  f, r, g, s, p, size);
            if (a.values[sz(v)] != 0) {
              if (used[sz(p)])
                fail<FormatError>("{} matrix: row {} group {} slot {}: index {} is used twice", f,
                                  r, g, s, p);
              used[sz(p)] = true;
            }
          }
        }
      }
      return;
    }
    case StorageFormat::kDense:
      return;
  }
}

namespace {

// Calls f(r * cols + c, value) for every stored value in storage order. Values equal to 0
// (CSR u8 gap padding, zeros inside a stored block or N:M slot) are skipped: they read like the
// positions that store nothing.
template <typename F>
void visit_values(const SparseMatrix& m, F&& f) {
  const SparseArrays& a = m.arrays();
  const SparseOptions& o = m.options();
  const int64_t rows = m.rows(), cols = m.cols();
  switch (o.format) {
    case StorageFormat::kCsrU8:
    case StorageFormat::kCsrU16: {
      const bool u8 = o.format == StorageFormat::kCsrU8;
      int64_t i = 0;
      for (int64_t r = 0; r < rows; ++r) {
        int64_t col = 0;
        for (int64_t j = 0; j < a.row_nnz[sz(r)]; ++j, ++i) {
          col = u8 ? col + a.col_delta[sz(i)] : a.col_index[sz(i)];
          if (a.values[sz(i)] != 0) f(r * cols + col, a.values[sz(i)]);
        }
      }
      return;
    }
    case StorageFormat::kBlockCsr: {
      const int64_t br = o.block_rows, bc = o.block_cols;
      int64_t v = 0;
      for (int64_t R = 0; R + 1 < static_cast<int64_t>(a.block_row_ptr.size()); ++R) {
        for (uint32_t b = a.block_row_ptr[sz(R)]; b < a.block_row_ptr[sz(R + 1)]; ++b) {
          for (int64_t i = 0; i < br; ++i) {
            for (int64_t j = 0; j < bc; ++j, ++v) {
              if (a.values[sz(v)] != 0)
                f((R * br + i) * cols + a.block_col[b] * bc + j, a.values[sz(v)]);
            }
          }
        }
      }
      return;
    }
    case StorageFormat::kBitmap: {
      const int64_t rb = bitmap_row_bytes(cols);
      int64_t v = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          if ((a.bitmap[sz(r * rb + c / 8)] >> (c % 8)) & 1u) {
            if (a.values[sz(v)] != 0) f(r * cols + c, a.values[sz(v)]);
            ++v;
          }
        }
      }
      return;
    }
    case StorageFormat::kNm: {
      const int n = o.nm_n, mm = o.nm_m;
      const int bits = rt::nm_index_bits(mm);
      const int64_t rb = nm_row_bytes(cols, n, mm);
      int64_t v = 0;
      for (int64_t r = 0; r < rows; ++r) {
        int64_t slot = 0;
        for (int64_t g = 0; g < cols; g += mm) {
          for (int s = 0; s < n; ++s, ++slot, ++v) {
            const int64_t p = get_bits(a.nm_index, r * rb, slot * bits, bits);
            if (a.values[sz(v)] != 0) f(r * cols + g + p, a.values[sz(v)]);
          }
        }
      }
      return;
    }
    case StorageFormat::kDense:
      return;
  }
}

}  // namespace

std::vector<int8_t> SparseMatrix::to_dense() const {
  std::vector<int8_t> d(sz(rows_ * cols_), 0);
  visit_values(*this, [&](int64_t i, int8_t v) { d[sz(i)] = v; });
  return d;
}

void SparseMatrix::for_each_value(const std::function<void(int64_t, int8_t)>& f) const {
  visit_values(*this, f);
}

int64_t SparseMatrix::bytes() const {
  const SparseArrays& a = arrays_;
  const int64_t nv = static_cast<int64_t>(a.values.size());
  const int64_t vb = options_.value_type == ValueType::kInt4 ? (nv + 1) / 2 : nv;
  switch (options_.format) {
    case StorageFormat::kCsrU8:
      return rows_ * 2 + nv + vb;
    case StorageFormat::kCsrU16:
      return rows_ * 2 + nv * 2 + vb;
    case StorageFormat::kBlockCsr:
      return static_cast<int64_t>(a.block_row_ptr.size()) * 4 +
             static_cast<int64_t>(a.block_col.size()) * 2 + vb;
    case StorageFormat::kBitmap:
      return static_cast<int64_t>(a.bitmap.size()) + vb;
    case StorageFormat::kNm:
      return static_cast<int64_t>(a.nm_index.size()) + vb;
    case StorageFormat::kDense:
      break;
  }
  return options_.value_type == ValueType::kInt4 ? (rows_ * cols_ + 1) / 2 : rows_ * cols_;
}

std::vector<uint8_t> SparseMatrix::packed_values() const {
  const std::vector<int8_t>& v = arrays_.values;
  if (options_.value_type == ValueType::kInt8) return {v.begin(), v.end()};
  std::vector<uint8_t> out((v.size() + 1) / 2, 0);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t nib = static_cast<uint32_t>(v[i]) & 0xFu;
    out[i / 2] = static_cast<uint8_t>(out[i / 2] | (i % 2 == 0 ? nib : nib << 4));
  }
  return out;
}

rt::SparseMatrixS8 SparseMatrix::view() const {
  if (options_.value_type != ValueType::kInt8)
    fail<InvalidArgument>("SparseMatrix::view: no int8 kernel view for {} {} values",
                          to_string(options_.format),
                          options_.value_type == ValueType::kInt4 ? "int4" : "int8");
  // The view counts values in int32 (the kernels' element limit is below 2^31 anyway).
  if (arrays_.values.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail<InvalidArgument>(
        "SparseMatrix::view: {} matrix {}x{} stores {} values, more than the kernels' int32 "
        "count holds",
        to_string(options_.format), rows_, cols_, arrays_.values.size());
  rt::SparseMatrixS8 w;
  w.rows = static_cast<int32_t>(rows_);
  w.cols = static_cast<int32_t>(cols_);
  w.values = arrays_.values.data();
  w.value_count = static_cast<int32_t>(arrays_.values.size());
  w.row_nnz = arrays_.row_nnz.data();
  w.col_delta = arrays_.col_delta.data();
  w.col_index = arrays_.col_index.data();
  w.bitmap = arrays_.bitmap.data();
  w.nm_index = arrays_.nm_index.data();
  w.nm_n = options_.nm_n;
  w.nm_m = options_.nm_m;
  w.block_row_ptr = arrays_.block_row_ptr.data();
  w.block_col = arrays_.block_col.data();
  w.block_rows = static_cast<int32_t>(options_.block_rows);
  w.block_cols = static_cast<int32_t>(options_.block_cols);
  switch (options_.format) {
    case StorageFormat::kCsrU8:
      w.format = rt::SparseFormat::kCsrU8Delta;
      break;
    case StorageFormat::kCsrU16:
      w.format = rt::SparseFormat::kCsrU16;
      break;
    case StorageFormat::kBitmap:
      w.format = rt::SparseFormat::kBitmap;
      break;
    case StorageFormat::kBlockCsr:
      w.format = rt::SparseFormat::kBlockCsr;
      break;
    default:
      w.format = rt::SparseFormat::kNm;
      break;
  }
  return w;
}

FormatChoice choose_format(const int8_t* dense, int64_t rows, int64_t cols,
                           const SparseOptions& options) {
  SparseOptions o = options;
  o.format = StorageFormat::kBitmap;
  check_options(rows, cols, o, "choose_format");
  // Options that no matrix could use are the caller's error; a format that cannot hold this
  // matrix (blocks that do not tile it, a group with more than N nonzeros) is only left out.
  o.format = StorageFormat::kNm;
  check_options(rows, cols, o, "choose_format");
  if (o.block_rows < 1 || o.block_cols < 1)
    fail<InvalidArgument>("choose_format: block {}x{} is invalid (need at least 1x1)", o.block_rows,
                          o.block_cols);
  if (dense == nullptr) fail<InvalidArgument>("choose_format: dense data is null");
  for (int64_t i = 0; options.value_type == ValueType::kInt4 && i < rows * cols; ++i) {
    if (dense[i] < -8 || dense[i] > 7)
      fail<InvalidArgument>("choose_format: int4 value {} at row {}, column {} is outside [-8, 7]",
                            dense[i], i / cols, i % cols);
  }
  FormatChoice choice;
  const int64_t dense_bytes =
      options.value_type == ValueType::kInt4 ? (rows * cols + 1) / 2 : rows * cols;
  choice.sizes.emplace_back(StorageFormat::kDense, dense_bytes);
  for (StorageFormat f : {StorageFormat::kCsrU8, StorageFormat::kCsrU16, StorageFormat::kBlockCsr,
                          StorageFormat::kBitmap, StorageFormat::kNm}) {
    o.format = f;
    try {
      choice.sizes.emplace_back(f, SparseMatrix::from_dense(dense, rows, cols, o).bytes());
    } catch (const InvalidArgument&) {
      // The format cannot hold this matrix (does not tile, too many nonzeros in a group, ...).
    }
  }
  choice.best = choice.sizes[0].first;
  choice.best_bytes = choice.sizes[0].second;
  for (const auto& [f, b] : choice.sizes) {
    if (b < choice.best_bytes) {
      choice.best = f;
      choice.best_bytes = b;
    }
  }
  return choice;
}

}  // namespace tinyquant
