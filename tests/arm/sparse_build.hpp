// Pruning and sparse encoding on the target itself, for the on-target sparse test
// (test_sparse.cpp) and the Cortex-M4 cost harness (bench/arm/cost_main.cpp): no heap, no
// library beyond tinyquant::rt, so the same code runs bare metal. Every array goes into a
// caller-owned SparseStore; a store too small makes encode_sparse() return false.
//
// Pruning keeps an exact count: the `keep` entries (or blocks) of largest magnitude (|w|, or
// the sum of |w| over a block), ties broken by position (the first ones are kept).
#pragma once

#include <cstdint>

#include "tinyquant/rt/sparse.hpp"

namespace tq {

namespace rt = tinyquant::rt;

struct SparseStore {
  int8_t* values;
  int32_t values_cap;
  uint8_t* index;           // col_delta / col_index / bitmap / nm_index / block_col, 4-byte aligned
  int32_t index_cap;        // bytes
  uint16_t* row_nnz;        // [rows]
  uint32_t* block_row_ptr;  // [rows + 1]
};

// Smallest threshold t such that at most `keep` of the n magnitudes exceed t; mag(i) >= 0.
template <class Mag>
int32_t keep_threshold(int32_t n, int32_t keep, int32_t max_mag, Mag mag) {
  int32_t lo = -1, hi = max_mag;  // count(> hi) == 0 <= keep; find the smallest such t
  while (hi - lo > 1) {
    const int32_t mid = lo + (hi - lo) / 2;
    int32_t above = 0;
    for (int32_t i = 0; i < n; ++i) above += mag(i) > mid ? 1 : 0;
    if (above <= keep)
      hi = mid;
    else
      lo = mid;
  }
  return hi;
}

// Marks the `keep` largest of n magnitudes: drop(i) is called for every other one.
template <class Mag, class Drop>
void keep_largest(int32_t n, int32_t keep, int32_t max_mag, Mag mag, Drop drop) {
  const int32_t t = keep_threshold(n, keep, max_mag, mag);
  int32_t above = 0;
  for (int32_t i = 0; i < n; ++i) above += mag(i) > t ? 1 : 0;
  int32_t ties = keep - above;  // entries equal to t still kept, first ones first
  for (int32_t i = 0; i < n; ++i) {
    const int32_t m = mag(i);
    if (m > t) continue;
    if (m == t && ties > 0) {
      --ties;
      continue;
    }
    drop(i);
  }
}

inline int32_t magnitude(int8_t v) {
  return v < 0 ? -int32_t{v} : v;
}

// Unstructured magnitude pruning of w[n] down to `keep` stored entries.
inline void prune_magnitude(int8_t* w, int32_t n, int32_t keep) {
  keep_largest(
      n, keep, 128, [w](int32_t i) { return magnitude(w[i]); }, [w](int32_t i) { w[i] = 0; });
}

// N:M: keep the nm_n largest of every nm_m consecutive weights of a row.
inline void prune_nm(int8_t* w, int32_t rows, int32_t cols, int32_t n, int32_t m) {
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t g = 0; g < cols; g += m) {
      int8_t* p = w + int64_t{r} * cols + g;
      const int32_t size = cols - g < m ? cols - g : m;
      keep_largest(
          size, n < size ? n : size, 128, [p](int32_t i) { return magnitude(p[i]); },
          [p](int32_t i) { p[i] = 0; });
    }
  }
}

// Block pruning: keep the `keep` br x bc blocks of largest L1 norm (rows % br == cols % bc == 0).
inline void prune_blocks(int8_t* w, int32_t rows, int32_t cols, int32_t br, int32_t bc,
                         int32_t keep) {
  const int32_t per_row = cols / bc;
  auto norm = [=](int32_t b) {
    const int8_t* p = w + int64_t{b / per_row} * br * cols + int64_t{b % per_row} * bc;
    int32_t s = 0;
    for (int32_t i = 0; i < br; ++i)
      for (int32_t j = 0; j < bc; ++j) s += magnitude(p[int64_t{i} * cols + j]);
    return s;
  };
  // Blocks are disjoint: zeroing one does not change another's norm.
  auto drop = [=](int32_t b) {
    int8_t* p = w + int64_t{b / per_row} * br * cols + int64_t{b % per_row} * bc;
    for (int32_t i = 0; i < br; ++i)
      for (int32_t j = 0; j < bc; ++j) p[int64_t{i} * cols + j] = 0;
  };
  keep_largest((rows / br) * per_row, keep, 128 * br * bc, norm, drop);
}

// Stores dense w[rows][cols] (pruned entries 0) in `format` (nm_n/nm_m or block_rows/block_cols
// in a, b) and fills *out. Returns false if a store array is too small or the shape does not fit.
inline bool encode_sparse(const int8_t* w, int32_t rows, int32_t cols, rt::SparseFormat format,
                          int32_t a, int32_t b, const SparseStore& s, rt::SparseMatrixS8* out) {
  rt::SparseMatrixS8 m;
  m.format = format;
  m.rows = rows;
  m.cols = cols;
  m.values = s.values;
  int32_t nv = 0;
  int64_t ni = 0;  // index bytes used
  auto put = [&](int8_t v) {
    if (nv >= s.values_cap) return false;
    s.values[nv++] = v;
    return true;
  };
  switch (format) {
    case rt::SparseFormat::kCsrU8Delta:
    case rt::SparseFormat::kCsrU16: {
      const bool u8 = format == rt::SparseFormat::kCsrU8Delta;
      auto* idx16 = reinterpret_cast<uint16_t*>(s.index);
      for (int32_t r = 0; r < rows; ++r) {
        const int32_t first = nv;
        int32_t prev = 0;
        for (int32_t k = 0; k < cols; ++k) {
          const int8_t v = w[int64_t{r} * cols + k];
          if (v == 0) continue;
          int32_t gap = k - prev;
          while (u8 && gap > 255) {  // padding entries: value 0, delta 255
            if (ni >= s.index_cap || !put(0)) return false;
            s.index[ni++] = 255;
            gap -= 255;
          }
          if (ni + (u8 ? 1 : 2) > s.index_cap || !put(v)) return false;
          if (u8)
            s.index[ni++] = static_cast<uint8_t>(gap);
          else
            idx16[(ni += 2) / 2 - 1] = static_cast<uint16_t>(k);
          prev = k;
        }
        if (nv - first > 65535) return false;
        s.row_nnz[r] = static_cast<uint16_t>(nv - first);
      }
      m.row_nnz = s.row_nnz;
      if (u8)
        m.col_delta = s.index;
      else
        m.col_index = idx16;
      break;
    }
    case rt::SparseFormat::kBitmap: {
      const int32_t rb = (cols + 7) / 8;
      if (int64_t{rows} * rb > s.index_cap) return false;
      for (int32_t r = 0; r < rows; ++r) {
        for (int32_t j = 0; j < rb; ++j) s.index[int64_t{r} * rb + j] = 0;
        for (int32_t k = 0; k < cols; ++k) {
          const int8_t v = w[int64_t{r} * cols + k];
          if (v == 0) continue;
          if (!put(v)) return false;
          s.index[int64_t{r} * rb + k / 8] |= static_cast<uint8_t>(1u << (k % 8));
        }
      }
      m.bitmap = s.index;
      break;
    }
    case rt::SparseFormat::kNm: {
      const int32_t bits = rt::nm_index_bits(b);
      const int32_t rb = rt::nm_row_index_bytes(cols, a, b);
      if (int64_t{rows} * rb > s.index_cap) return false;
      for (int32_t r = 0; r < rows; ++r) {
        uint8_t* idx = s.index + int64_t{r} * rb;
        for (int32_t j = 0; j < rb; ++j) idx[j] = 0;
        int64_t bit = 0;
        for (int32_t g = 0; g < cols; g += b) {
          int32_t used = 0;
          for (int32_t k = g; k < cols && k < g + b; ++k) {
            const int8_t v = w[int64_t{r} * cols + k];
            if (v == 0) continue;
            if (++used > a || !put(v)) return false;
            for (int32_t i = 0; i < bits; ++i, ++bit)
              idx[bit / 8] |= static_cast<uint8_t>((((k - g) >> i) & 1) << (bit % 8));
          }
          for (; used < a; ++used, bit += bits)  // unused slot: value 0, index 0
            if (!put(0)) return false;
        }
      }
      m.nm_index = s.index;
      m.nm_n = a;
      m.nm_m = b;
      break;
    }
    case rt::SparseFormat::kBlockCsr: {
      if (rows % a != 0 || cols % b != 0) return false;
      auto* bcol = reinterpret_cast<uint16_t*>(s.index);
      int32_t blocks = 0;
      s.block_row_ptr[0] = 0;
      for (int32_t r = 0; r < rows / a; ++r) {
        for (int32_t c = 0; c < cols / b; ++c) {
          const int8_t* p = w + int64_t{r} * a * cols + int64_t{c} * b;
          bool any = false;
          for (int32_t i = 0; i < a; ++i)
            for (int32_t j = 0; j < b; ++j) any = any || p[int64_t{i} * cols + j] != 0;
          if (!any) continue;
          if (int64_t{blocks + 1} * 2 > s.index_cap) return false;
          bcol[blocks++] = static_cast<uint16_t>(c);
          for (int32_t i = 0; i < a; ++i)
            for (int32_t j = 0; j < b; ++j)
              if (!put(p[int64_t{i} * cols + j])) return false;
        }
        s.block_row_ptr[r + 1] = static_cast<uint32_t>(blocks);
      }
      m.block_row_ptr = s.block_row_ptr;
      m.block_col = bcol;
      m.block_rows = a;
      m.block_cols = b;
      break;
    }
  }
  m.value_count = nv;
  *out = m;
  return true;
}

}  // namespace tq
