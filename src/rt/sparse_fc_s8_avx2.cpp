// Sparse fully-connected, x86 AVX2 (compiled with -mavx2 only; chosen at run time).
//
// The activations of every batch row are widened once into scratch as 32-bit words holding
// (x + input_offset) in the low 16 bits and 0 above, so a vpgatherdd of 8 of them followed by
// vpmaddwd against 8 sign-extended weights (high halves 0 * anything) gives 8 exact products.
// Each weight row's columns are decoded once and reused by every batch row:
//  - CSR u16: the indices are loaded and zero-extended in place;
//  - CSR u8 deltas: 8 deltas are prefix-summed in 16-bit lanes (at most 8 * 255) and added to
//    the running column;
//  - bitmap: each bitmap byte becomes up to 8 columns through a 256-entry position table;
//  - N:M: indices are unpacked to columns with scalar code.
// Integer sums wrap exactly as the reference's 32-bit accumulator does.
#include <immintrin.h>

#include "tinyquant/rt/sparse.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr int64_t align8(int64_t n) noexcept {
  return (n + 7) & ~int64_t{7};
}

// Positions of the set bits of every byte value, lowest first; the rest of each row is 0.
struct BitPositions {
  uint8_t pos[256][8];
};
constexpr BitPositions make_bit_positions() noexcept {
  BitPositions t{};
  for (int v = 0; v < 256; ++v) {
    int n = 0;
    for (int b = 0; b < 8; ++b) {
      if ((v >> b) & 1) t.pos[v][n++] = static_cast<uint8_t>(b);
    }
  }
  return t;
}
constexpr BitPositions kBitPositions = make_bit_positions();

int32_t max_row_entries(const SparseMatrixS8& w) noexcept {
  switch (w.format) {
    case SparseFormat::kBitmap:
      return w.cols;
    case SparseFormat::kNm:
      return nm_groups(w.cols, w.nm_m) * w.nm_n;
    default:
      return 0;  // CSR rows are read in place
  }
}

inline int32_t hsum(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline __m256i mac8(__m256i acc, const int32_t* xw, __m256i cols, const int8_t* vals) noexcept {
  const __m256i xv = _mm256_i32gather_epi32(xw, cols, 4);
  const __m256i wv = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(vals)));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(xv, wv));
}

inline int32_t scalar_x(const int32_t* xw, int32_t col) noexcept {
  return static_cast<int16_t>(static_cast<uint16_t>(xw[col]));
}

// sum of (x + io) * w over a decoded column list.
int32_t dot_list(const int32_t* xw, const int32_t* cols, const int8_t* vals, int32_t n) noexcept {
  __m256i acc = _mm256_setzero_si256();
  int32_t j = 0;
  for (; j + 8 <= n; j += 8)
    acc = mac8(acc, xw, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols + j)), vals + j);
  int32_t s = hsum(acc);
  for (; j < n; ++j) s = wrap_add(s, scalar_x(xw, cols[j]) * vals[j]);
  return s;
}

int32_t dot_u16(const int32_t* xw, const uint16_t* idx, const int8_t* vals, int32_t n) noexcept {
  __m256i acc = _mm256_setzero_si256();
  int32_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i cols =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + j)));
    acc = mac8(acc, xw, cols, vals + j);
  }
  int32_t s = hsum(acc);
  for (; j < n; ++j) s = wrap_add(s, scalar_x(xw, idx[j]) * vals[j]);
  return s;
}

int32_t dot_u8_delta(const int32_t* xw, const uint8_t* delta, const int8_t* vals,
                     int32_t n) noexcept {
  __m256i acc = _mm256_setzero_si256();
  int32_t col = 0;
  int32_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m128i p = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(delta + j)));
    p = _mm_add_epi16(p, _mm_slli_si128(p, 2));
    p = _mm_add_epi16(p, _mm_slli_si128(p, 4));
    p = _mm_add_epi16(p, _mm_slli_si128(p, 8));
    const __m256i cols = _mm256_add_epi32(_mm256_cvtepu16_epi32(p), _mm256_set1_epi32(col));
    acc = mac8(acc, xw, cols, vals + j);
    col += _mm_extract_epi16(p, 7);
  }
  int32_t s = hsum(acc);
  for (; j < n; ++j) {
    col += delta[j];
    s = wrap_add(s, scalar_x(xw, col) * vals[j]);
  }
  return s;
}

int32_t decode_bitmap_row(const uint8_t* bm, int32_t cols, int32_t* out) noexcept {
  int32_t n = 0;
  const int32_t bytes = (cols + 7) / 8;
  for (int32_t byte = 0; byte < bytes; ++byte) {
    const uint32_t m = bm[byte];
    if (m == 0) continue;
    const __m256i pos = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kBitPositions.pos[m])));
    // out has 8 spare slots past the row's maximum, so a full 8-lane store is always in bounds.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + n),
                        _mm256_add_epi32(pos, _mm256_set1_epi32(byte * 8)));
    n += __builtin_popcount(m);
  }
  return n;
}

int32_t decode_nm_row(const SparseMatrixS8& w, int32_t row, int32_t* out) noexcept {
  const int32_t bits = nm_index_bits(w.nm_m);
  const uint8_t* idx =
      w.nm_index + static_cast<int64_t>(row) * nm_row_index_bytes(w.cols, w.nm_n, w.nm_m);
  const int32_t groups = nm_groups(w.cols, w.nm_m);
  const uint32_t mask = (1u << bits) - 1u;
  int32_t n = 0;
  int64_t bit = 0;
  for (int32_t g = 0; g < groups; ++g) {
    for (int32_t s = 0; s < w.nm_n; ++s, bit += bits) {
      uint32_t pos = 0;
      if (bits > 0) {
        const int64_t byte = bit >> 3;
        const int32_t off = static_cast<int32_t>(bit & 7);
        uint32_t window = idx[byte];
        if (off + bits > 8) window |= static_cast<uint32_t>(idx[byte + 1]) << 8;
        pos = (window >> off) & mask;
      }
      out[n++] = g * w.nm_m + static_cast<int32_t>(pos);
    }
  }
  return n;
}

}  // namespace

// Scratch: widened activations [batch][cols] int32, per-batch sum(x + io), and one decoded row
// of columns (+ 8 slots of slack), all 32-bit words.
int32_t sparse_fc_s8_avx2_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept {
  const int64_t words = static_cast<int64_t>(dims.batch) * align8(dims.in_features) +
                        align8(dims.batch) + align8(max_row_entries(w)) + 8;
  const int64_t bytes = words * 4;
  return bytes > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int32_t>(bytes);
}

void sparse_fc_s8_avx2(const SparseFcArgs& a) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  const int64_t xstride = align8(d.in_features);
  int32_t* xw = static_cast<int32_t*>(a.scratch);
  int32_t* pruned = xw + static_cast<int64_t>(d.batch) * xstride;
  int32_t* cols = pruned + align8(d.batch);

  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    int32_t* row = xw + b * xstride;
    const __m256i io = _mm256_set1_epi32(p.input_offset);
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
    __m256i sum = _mm256_setzero_si256();
    int32_t k = 0;
    for (; k + 8 <= d.in_features; k += 8) {
      const __m256i v = _mm256_add_epi32(
          _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + k))), io);
      sum = _mm256_add_epi32(sum, v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + k), _mm256_and_si256(v, lo16));
    }
    int32_t s = hsum(sum);
    for (; k < d.in_features; ++k) {
      const int32_t v = x[k] + p.input_offset;
      s = wrap_add(s, v);
      row[k] = static_cast<int32_t>(static_cast<uint32_t>(v) & 0xFFFFu);
    }
    pruned[b] = wrap_mul(s, p.filter_offset);
  }

  int64_t cursor = 0;
  for (int32_t o = 0; o < d.out_features; ++o) {
    int32_t n = 0;
    if (w.format == SparseFormat::kBitmap)
      n = decode_bitmap_row(w.bitmap + static_cast<int64_t>(o) * ((w.cols + 7) / 8), w.cols, cols);
    else if (w.format == SparseFormat::kNm)
      n = decode_nm_row(w, o, cols);
    else
      n = w.row_nnz[o];
    const int8_t* vals = w.values + cursor;
    const int32_t bias = a.bias != nullptr ? a.bias[o] : 0;
    for (int32_t b = 0; b < d.batch; ++b) {
      const int32_t* xb = xw + b * xstride;
      int32_t dot = 0;
      switch (w.format) {
        case SparseFormat::kCsrU8Delta:
          dot = dot_u8_delta(xb, w.col_delta + cursor, vals, n);
          break;
        case SparseFormat::kCsrU16:
          dot = dot_u16(xb, w.col_index + cursor, vals, n);
          break;
        default:
          dot = dot_list(xb, cols, vals, n);
          break;
      }
      const int32_t acc = wrap_add(wrap_add(bias, pruned[b]), dot);
      a.output[static_cast<int64_t>(b) * d.out_features + o] =
          sparse_fc_finish(acc, o, p, *a.requant);
    }
    cursor += n;
  }
}

}  // namespace tinyquant::rt::detail
