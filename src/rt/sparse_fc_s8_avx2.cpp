// Sparse fully-connected, x86 AVX2 (compiled with -mavx2 -mpopcnt only: every AVX2 CPU has
// POPCNT, and without the flag each popcount is a library call; chosen at run time).
//
// No format gathers: activations are widened to int16 (x + input_offset) once per call, laid out
// so that plain loads and vpmaddwd meet the stored weights, and each weight row is decoded once
// for several batch rows.
//  - CSR u16, CSR u8 deltas and N:M (the column-list body): the activations of up to 8 batch rows
//    are stored column by column, so one load (16 bytes for 8 rows, 8 for 4) holds one column of
//    every row. Each weight
//    row is decoded to a list of columns (u16 indices zero-extended; u8 deltas prefix-summed, 8
//    at a time in 16-bit lanes; N:M indices unpacked by scalar code) and its values widened to
//    int16, once for those rows; two entries of the list meet every row in one vpmaddwd.
//  - bitmap: every 16 columns the packed values are spread to their lanes with pshufb controls
//    from a 256-entry table and multiplied with 16-bit activations (vpmaddwd), each spread
//    serving up to four batch rows;
//  - block CSR 1x16 / 4x16: no index decode per weight: each block's 16-byte activation slice
//    (pre-widened to int16 with the input offset, once per call) is one ymm load, shared by the
//    block's rows; each row slice is sign-extended and multiplied by one vpmaddwd, once for up
//    to 4 (1x16) or 2 (4x16) batch rows. Other block shapes run the reference loops.
// Integer sums wrap exactly as the reference's 32-bit accumulator does.
#include <immintrin.h>

#include "tinyquant/rt/sparse.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr int64_t align8(int64_t n) noexcept {
  return (n + 7) & ~int64_t{7};
}

// pshufb controls that spread the popcount(v) packed values of bitmap byte v to the 8 lanes of
// its set bits (rank of the bit among the set ones); clear bits get 0x80, which pshufb zeroes.
struct ExpandTable {
  uint8_t ctl[256][8];
};
constexpr ExpandTable make_expand_table() noexcept {
  ExpandTable t{};
  for (int v = 0; v < 256; ++v) {
    int rank = 0;
    for (int b = 0; b < 8; ++b) t.ctl[v][b] = ((v >> b) & 1) ? static_cast<uint8_t>(rank++) : 0x80;
  }
  return t;
}
constexpr ExpandTable kExpand = make_expand_table();

// Batch rows that take the column-list body (column_list_rows) at once: 8 (one ymm of int32
// sums), or 4 (xmm) for the last 1-4 rows.
constexpr int32_t kChunk = 8;

// The column-list body's widest group of batch rows for this batch (its activations' stride),
// and the most batch rows whose raw sums it holds at once.
constexpr int32_t chunk_rows(int32_t batch) noexcept {
  return batch > 4 ? kChunk : 4;
}
constexpr int32_t sum_rows(int32_t batch) noexcept {
  return batch < kChunk ? batch : kChunk;
}

// Entries of one decoded row of a CSR or N:M matrix: a CSR row has at most `cols` (the kernel's
// O(rows) checks refuse a larger row_nnz) and at most 65535 (row_nnz is 16-bit), an N:M row
// groups * n. Bitmap rows are expanded in registers.
int32_t max_row_entries(const SparseMatrixS8& w) noexcept {
  if (w.format == SparseFormat::kNm) return nm_groups(w.cols, w.nm_m) * w.nm_n;
  if (w.format == SparseFormat::kBitmap) return 0;
  return w.cols < 65535 ? w.cols : 65535;
}

// Bitmap rows are read 64 columns at a time: the int16 activations are zero padded to that.
constexpr int64_t align64(int64_t n) noexcept {
  return (n + 63) & ~int64_t{63};
}

inline int32_t hsum(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// 8 bytes at vals[v, v + 8); kBounded: zero past `count`, for the last rows of the array.
template <bool kBounded>
inline __m128i load8(const int8_t* vals, int64_t v, int64_t count) noexcept {
  if (!kBounded || v + 8 <= count)
    return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(vals + v));
  alignas(16) int8_t tmp[16] = {};
  for (int64_t i = v; i < count; ++i) tmp[i - v] = vals[i];
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}

// Bitmap row x activations, gather-free: every 16 columns, the stored values are spread to
// their columns with two pshufb and multiplied with the 16-bit activations by one vpmaddwd.
// 64 columns are handled per step: the value offsets of their 16-column pieces come from
// popcounts of the 64-bit mask, so the only loop-carried dependency is one popcount per step.
// kBatch batch rows at once (x16 + j * x16_stride), so each row's values are spread once for all
// of them; their dot products go to dot[0, kBatch).
template <bool kBounded, int kBatch>
void dot_bitmap(const int16_t* x16, int64_t x16_stride, const uint8_t* bm, int32_t row_bytes,
                const int8_t* vals, int64_t v, int64_t count, int32_t* dot) noexcept {
  __m256i acc[kBatch];
  for (__m256i& a : acc) a = _mm256_setzero_si256();
  for (int32_t byte = 0; byte < row_bytes; byte += 8) {
    uint64_t m = 0;
    if (byte + 8 <= row_bytes) {
      __builtin_memcpy(&m, bm + byte, 8);
    } else {
      for (int32_t i = 0; byte + i < row_bytes; ++i)
        m |= static_cast<uint64_t>(bm[byte + i]) << (8 * i);
    }
    for (int32_t c = 0; c < 4; ++c) {
      const uint64_t below = c == 0 ? 0u : (m & ((uint64_t{1} << (16 * c)) - 1u));
      const int64_t v0 = v + __builtin_popcountll(below);
      const uint32_t m0 = static_cast<uint32_t>(m >> (16 * c)) & 0xFFu;
      const uint32_t m1 = static_cast<uint32_t>(m >> (16 * c + 8)) & 0xFFu;
      const __m128i w0 =
          _mm_shuffle_epi8(load8<kBounded>(vals, v0, count),
                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kExpand.ctl[m0])));
      const __m128i w1 =
          _mm_shuffle_epi8(load8<kBounded>(vals, v0 + __builtin_popcount(m0), count),
                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kExpand.ctl[m1])));
      const __m256i w16 = _mm256_cvtepi8_epi16(_mm_unpacklo_epi64(w0, w1));
      for (int j = 0; j < kBatch; ++j) {
        const __m256i xv = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(x16 + j * x16_stride + (byte + 2 * c) * 8));
        acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(xv, w16));
      }
    }
    v += __builtin_popcountll(m);
  }
  for (int j = 0; j < kBatch; ++j) dot[j] = hsum(acc[j]);
}

// dot_bitmap for batch rows [b, b + kBatch) of one weight row, bounded or not.
template <int kBatch>
void dot_bitmap_rows(bool bounded, const int16_t* x16, int64_t x16_stride, const uint8_t* bm,
                     int32_t row_bytes, const SparseMatrixS8& w, int64_t v, int32_t* dot) noexcept {
  if (bounded)
    dot_bitmap<true, kBatch>(x16, x16_stride, bm, row_bytes, w.values, v, w.value_count, dot);
  else
    dot_bitmap<false, kBatch>(x16, x16_stride, bm, row_bytes, w.values, v, w.value_count, dot);
}

int32_t decode_nm_row(const SparseMatrixS8& w, int32_t row, int32_t* out) noexcept {
  const int32_t bits = nm_index_bits(w.nm_m);
  const uint8_t* idx =
      w.nm_index + static_cast<int64_t>(row) * nm_row_index_bytes(w.cols, w.nm_n, w.nm_m);
  const int32_t groups = nm_groups(w.cols, w.nm_m);
  const uint32_t mask = (1u << bits) - 1u;
  // The row's index bits, least significant first, through a bit buffer refilled a byte at a
  // time (bits <= 8, so one byte always suffices; no byte past the row's is read).
  uint32_t buf = 0;
  int32_t avail = 0;
  int32_t n = 0;
  for (int32_t g = 0; g < groups; ++g) {
    for (int32_t s = 0; s < w.nm_n; ++s) {
      if (avail < bits) {
        buf |= static_cast<uint32_t>(*idx++) << avail;
        avail += 8;
      }
      out[n++] = g * w.nm_m + static_cast<int32_t>(buf & mask);
      buf >>= bits;
      avail -= bits;
    }
  }
  return n;
}

// N:M index bytes decoded a byte at a time where a byte holds whole groups: bits per index 1, 2,
// 4 or 8, and n dividing the byte's 8 / bits slots (2:4, 1:4, 1:2, 2:16, ...). at[v][s] is the
// column of slot s of index byte v, counted from the byte's first group: (s / n) * m + index s.
struct NmTable {
  int32_t per_byte = 0;  // slots per byte; 0: no table (decode_nm_row decodes slot by slot)
  int32_t step = 0;      // columns spanned by one byte's groups
  alignas(32) int32_t at[256][8];
};

void build_nm_table(const SparseMatrixS8& w, NmTable* t) noexcept {
  const int32_t bits = nm_index_bits(w.nm_m);
  t->per_byte = 0;
  if (bits == 0 || 8 % bits != 0 || (8 / bits) % w.nm_n != 0) return;
  const int32_t k = 8 / bits;
  t->per_byte = k;
  t->step = k / w.nm_n * w.nm_m;
  const uint32_t mask = (1u << bits) - 1u;
  for (uint32_t v = 0; v < 256; ++v)
    for (int32_t s = 0; s < k; ++s)
      t->at[v][s] = s / w.nm_n * w.nm_m + static_cast<int32_t>((v >> (s * bits)) & mask);
}

// decode_nm_row through the table: the bytes holding whole groups, then the last slots one by
// one (an index never straddles a byte here).
int32_t decode_nm_row_table(const SparseMatrixS8& w, const NmTable& t, int32_t row,
                            int32_t* out) noexcept {
  const int32_t bits = nm_index_bits(w.nm_m);
  const uint8_t* idx =
      w.nm_index + static_cast<int64_t>(row) * nm_row_index_bytes(w.cols, w.nm_n, w.nm_m);
  const int32_t slots = nm_groups(w.cols, w.nm_m) * w.nm_n;
  const int32_t whole = slots / t.per_byte;
  int32_t base = 0;
  for (int32_t i = 0; i < whole; ++i, base += t.step) {
    const int32_t* e = t.at[idx[i]];
    int32_t* o = out + static_cast<int64_t>(i) * t.per_byte;
    if (t.per_byte == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o),
                          _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(e)),
                                           _mm256_set1_epi32(base)));
    } else if (t.per_byte == 4) {
      _mm_storeu_si128(
          reinterpret_cast<__m128i*>(o),
          _mm_add_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(e)), _mm_set1_epi32(base)));
    } else {
      for (int32_t s = 0; s < t.per_byte; ++s) o[s] = base + e[s];
    }
  }
  const uint32_t mask = (1u << bits) - 1u;
  for (int32_t s = whole * t.per_byte; s < slots; ++s) {
    const int64_t bit = static_cast<int64_t>(s) * bits;
    out[s] = s / w.nm_n * w.nm_m + static_cast<int32_t>((idx[bit >> 3] >> (bit & 7)) & mask);
  }
  return slots;
}

bool block_simd_shape(const SparseMatrixS8& w) noexcept {
  return w.format == SparseFormat::kBlockCsr && w.block_cols == 16 &&
         (w.block_rows == 1 || w.block_rows == 4);
}

// Four ymm accumulators to their four horizontal sums, in order.
inline __m128i hsum4(__m256i a0, __m256i a1, __m256i a2, __m256i a3) noexcept {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

inline __m256i widen16(const int8_t* p) noexcept {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// requantize() (fixed_point.hpp) on 8 lanes, bit for bit. AVX2 has no 64-bit arithmetic
// shift: the even and odd products are shifted logically with their sign flipped around it
// (x >> t == ~(~x >>> t) for x < 0).
inline __m256i sra64(__m256i v, __m256i t) noexcept {
  const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
  return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, sign), t), sign);
}

inline __m256i requantize8(__m256i x, __m256i mult, __m256i shift, Rounding rounding) noexcept {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i x_odd = _mm256_srli_epi64(x, 32), m_odd = _mm256_srli_epi64(mult, 32);
  if (rounding == Rounding::kSingle) {
    const __m256i one = _mm256_set1_epi64x(1);
    const __m256i t = _mm256_sub_epi32(_mm256_set1_epi32(31), shift);  // [1, 62]
    const __m256i te = _mm256_srli_epi64(_mm256_slli_epi64(t, 32), 32);
    const __m256i to = _mm256_srli_epi64(t, 32);
    __m256i pe = _mm256_mul_epi32(x, mult);
    __m256i po = _mm256_mul_epi32(x_odd, m_odd);
    pe = sra64(_mm256_add_epi64(pe, _mm256_sllv_epi64(one, _mm256_sub_epi64(te, one))), te);
    po = sra64(_mm256_add_epi64(po, _mm256_sllv_epi64(one, _mm256_sub_epi64(to, one))), to);
    return _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
  }
  const __m256i left = _mm256_max_epi32(shift, zero);
  const __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
  const __m256i xs = _mm256_sllv_epi32(x, left);
  const __m256i half = _mm256_set1_epi64x(int64_t{1} << 30);
  // Low 32 bits of (p + 2^30) >> 31 are bits 31..62 of the sum: a logical shift gives them too.
  const __m256i pe = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(xs, mult), half), 31);
  const __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(xs, 32), m_odd), half);
  const __m256i h = _mm256_blend_epi32(pe, _mm256_slli_epi64(_mm256_srli_epi64(po, 31), 32), 0xAA);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
  const __m256i remainder = _mm256_and_si256(h, mask);
  const __m256i result = _mm256_srav_epi32(h, right);
  // threshold = mask / 2 + (result < 0); cmpgt gives -1 where true, so subtract it.
  const __m256i threshold =
      _mm256_sub_epi32(_mm256_srli_epi32(mask, 1), _mm256_cmpgt_epi32(zero, result));
  return _mm256_sub_epi32(result, _mm256_cmpgt_epi32(remainder, threshold));
}

// out[o] = clamp(requantize(bias[o] + pruned + dot[o]) + output_offset), 8 outputs a step,
// the last 1-7 through the scalar epilogue.
void finish_rows8(const SparseFcArgs& a, const int32_t* dot, int32_t pruned, int8_t* out) noexcept {
  const FcParams& p = *a.params;
  const Requant& rq = *a.requant;
  const int32_t n = a.dims->out_features;
  const __m256i base = _mm256_set1_epi32(pruned);
  const __m256i oo = _mm256_set1_epi32(p.output_offset);
  const __m256i lo = _mm256_set1_epi32(p.act_min), hi = _mm256_set1_epi32(p.act_max);
  const __m256i m1 = _mm256_set1_epi32(rq.multiplier[0]), s1 = _mm256_set1_epi32(rq.shift[0]);
  int32_t o = 0;
  for (; o + 8 <= n; o += 8) {
    __m256i acc =
        _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dot + o)), base);
    if (a.bias != nullptr)
      acc = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bias + o)));
    const __m256i mult =
        rq.per_channel ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.multiplier + o))
                       : m1;
    const __m256i shift =
        rq.per_channel ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.shift + o)) : s1;
    __m256i r = _mm256_add_epi32(requantize8(acc, mult, shift, rq.rounding), oo);
    r = _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);
    // 8 int32 in [-128, 127] -> 8 bytes.
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), _mm_packs_epi16(w16, w16));
  }
  for (; o < n; ++o) {
    const int32_t acc = wrap_add(wrap_add(a.bias != nullptr ? a.bias[o] : 0, pruned), dot[o]);
    out[o] = sparse_fc_finish(acc, o, p, rq);
  }
}

// Raw row sums of batch rows b .. b + kBatch - 1 (activations x16 + (b + i) * cols) into
// dots[(b + i) * rows + row]: each block's weights are widened once for all of them. Two chains
// per batch row for 1x16 (blocks alternate), four (one per block row) for 4x16.
template <int kRows, int kBatch>
void block_rows_x16(const SparseFcArgs& a, const int16_t* x16, int32_t b, int32_t* dots) noexcept {
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  const int16_t* x[kBatch];
  for (int i = 0; i < kBatch; ++i) x[i] = x16 + static_cast<int64_t>(b + i) * d.in_features;
  auto xload = [&](int i, uint32_t j) {
    return _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(x[i] + int32_t{w.block_col[j]} * 16));
  };
  const int32_t block_rows = w.rows / kRows;
  for (int32_t r = 0; r < block_rows; ++r) {
    const uint32_t b0 = w.block_row_ptr[r], b1 = w.block_row_ptr[r + 1];
    if (kRows == 1) {
      __m256i acc[2][kBatch];
      for (auto& h : acc)
        for (__m256i& v : h) v = _mm256_setzero_si256();
      auto block = [&](int h, uint32_t j) {
        const __m256i wv = widen16(w.values + static_cast<int64_t>(j) * 16);
        for (int i = 0; i < kBatch; ++i)
          acc[h][i] = _mm256_add_epi32(acc[h][i], _mm256_madd_epi16(xload(i, j), wv));
      };
      uint32_t j = b0;
      for (; j + 2 <= b1; j += 2) {
        block(0, j);
        block(1, j + 1);
      }
      if (j < b1) block(0, j);
      for (int i = 0; i < kBatch; ++i)
        dots[static_cast<int64_t>(b + i) * w.rows + r] =
            hsum(_mm256_add_epi32(acc[0][i], acc[1][i]));
    } else {
      __m256i acc[kBatch][4];
      for (auto& h : acc)
        for (__m256i& v : h) v = _mm256_setzero_si256();
      for (uint32_t j = b0; j < b1; ++j) {
        const int8_t* v = w.values + static_cast<int64_t>(j) * 64;
        const __m256i w0 = widen16(v), w1 = widen16(v + 16), w2 = widen16(v + 32),
                      w3 = widen16(v + 48);
        for (int i = 0; i < kBatch; ++i) {
          const __m256i xv = xload(i, j);
          acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(xv, w0));
          acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(xv, w1));
          acc[i][2] = _mm256_add_epi32(acc[i][2], _mm256_madd_epi16(xv, w2));
          acc[i][3] = _mm256_add_epi32(acc[i][3], _mm256_madd_epi16(xv, w3));
        }
      }
      for (int i = 0; i < kBatch; ++i)
        _mm_storeu_si128(
            reinterpret_cast<__m128i*>(dots + static_cast<int64_t>(b + i) * w.rows + r * 4),
            hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
    }
  }
}

// Block CSR with 16-column blocks of 1 or 4 rows. Scratch: x16 [batch][cols] int16 holding
// x + input_offset (in [-255, 255], so each vpmaddwd pair sum is exact), then pruned[batch],
// then the raw row sums [batch][rows], requantized 8 at a time at the end. Batch rows go 4 at a
// time for 1x16 and 2 for 4x16 (its four accumulators per row fill the 16 ymm registers), then
// fewer, so each block's weights are widened once per group.
template <int kRows>
void block_fc_x16(const SparseFcArgs& a) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  int16_t* x16 = static_cast<int16_t*>(a.scratch);
  int32_t* pruned = reinterpret_cast<int32_t*>(x16 + static_cast<int64_t>(d.batch) * d.in_features);
  int32_t* dots = pruned + d.batch;  // [batch][rows] raw row sums
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    int16_t* xr = x16 + static_cast<int64_t>(b) * d.in_features;
    const __m256i io = _mm256_set1_epi16(static_cast<int16_t>(p.input_offset));
    __m256i sum = _mm256_setzero_si256();
    for (int32_t k = 0; k < d.in_features; k += 16) {  // cols % 16 == 0
      const __m256i v = _mm256_add_epi16(widen16(x + k), io);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xr + k), v);
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(v, _mm256_set1_epi16(1)));
    }
    pruned[b] = wrap_mul(hsum(sum), p.filter_offset);
  }
  int32_t b = 0;
  if (kRows == 1) {
    for (; b + 4 <= d.batch; b += 4) block_rows_x16<1, 4>(a, x16, b, dots);
  }
  for (; b + 2 <= d.batch; b += 2) block_rows_x16<kRows, 2>(a, x16, b, dots);
  if (b < d.batch) block_rows_x16<kRows, 1>(a, x16, b, dots);
  for (b = 0; b < d.batch; ++b)
    finish_rows8(a, dots + static_cast<int64_t>(b) * a.weights->rows, pruned[b],
                 a.output + static_cast<int64_t>(b) * d.out_features);
}

}  // namespace

// ---- Column-list body: CSR and N:M ----
// kRows batch rows' activations are laid out column by column, xc[col * kRows + r] = x[r][col] +
// io (int16; rows past the batch are 0), and each weight row's column list is decoded once for
// all of them. For two entries (c0, w0), (c1, w1) of the list, unpacking xc's columns c0 and c1
// gives the pairs (x[r][c0], x[r][c1]) of every row r, which one vpmaddwd with the broadcast
// pair (w0, w1) turns into the kRows sums x[r][c0] w0 + x[r][c1] w1. It replaced vpgatherdd
// loops, which fetch one activation per lane for one batch row at a time: this body measured
// 1.1-1.7x faster at batch 1 and 6.8-12.5x faster at batch 8 (bench/README).

// The columns of n u8 deltas (running sums: 8 deltas prefix-summed in 16-bit lanes, at most
// 8 * 255, plus a running base).
void decode_u8_delta(const uint8_t* delta, int32_t n, int32_t* cols) noexcept {
  __m256i base = _mm256_setzero_si256();
  const __m128i last =
      _mm_setr_epi8(14, 15, -1, -1, 14, 15, -1, -1, 14, 15, -1, -1, 14, 15, -1, -1);
  int32_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m128i p = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(delta + j)));
    p = _mm_add_epi16(p, _mm_slli_si128(p, 2));
    p = _mm_add_epi16(p, _mm_slli_si128(p, 4));
    p = _mm_add_epi16(p, _mm_slli_si128(p, 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(cols + j),
                        _mm256_add_epi32(_mm256_cvtepu16_epi32(p), base));
    base = _mm256_add_epi32(base, _mm256_broadcastsi128_si256(_mm_shuffle_epi8(p, last)));
  }
  int32_t col = _mm_cvtsi128_si32(_mm256_castsi256_si128(base));
  for (; j < n; ++j) cols[j] = col += delta[j];
}

void decode_u16(const uint16_t* idx, int32_t n, int32_t* cols) noexcept {
  int32_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(cols + j),
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + j))));
  for (; j < n; ++j) cols[j] = idx[j];
}

// n values as int16, then a 0 so that an odd list ends in a whole pair.
void widen_values(const int8_t* vals, int32_t n, int16_t* w16) noexcept {
  int32_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(w16 + j),
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vals + j))));
  for (; j < n; ++j) w16[j] = vals[j];
  w16[n] = 0;
}

// xc for batch rows [0, rows) of x (rows <= kRows; the others 0). Every 8 columns, the rows'
// int16 values (one xmm per row) are transposed by unpacking: 16-bit pairs of rows, then 32-bit
// pairs of those, then (8 rows) 64-bit pairs.
template <int kRows>
void fill_columns(const int8_t* x, int32_t k, int32_t rows, int32_t input_offset,
                  int16_t* xc) noexcept {
  const __m128i io = _mm_set1_epi16(static_cast<int16_t>(input_offset));
  int32_t c = 0;
  for (; c + 8 <= k; c += 8) {
    __m128i r[8];
    for (int32_t i = 0; i < kRows; ++i)
      r[i] = i < rows
                 ? _mm_add_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64(
                                     reinterpret_cast<const __m128i*>(x + int64_t{i} * k + c))),
                                 io)
                 : _mm_setzero_si128();
    // q[h][j]: rows 4h..4h+3 of columns 2j and 2j + 1.
    __m128i q[2][4];
    for (int32_t h = 0; h < kRows / 4; ++h) {
      const __m128i a_lo = _mm_unpacklo_epi16(r[4 * h], r[4 * h + 1]);
      const __m128i a_hi = _mm_unpackhi_epi16(r[4 * h], r[4 * h + 1]);
      const __m128i b_lo = _mm_unpacklo_epi16(r[4 * h + 2], r[4 * h + 3]);
      const __m128i b_hi = _mm_unpackhi_epi16(r[4 * h + 2], r[4 * h + 3]);
      q[h][0] = _mm_unpacklo_epi32(a_lo, b_lo);
      q[h][1] = _mm_unpackhi_epi32(a_lo, b_lo);
      q[h][2] = _mm_unpacklo_epi32(a_hi, b_hi);
      q[h][3] = _mm_unpackhi_epi32(a_hi, b_hi);
    }
    __m128i* out = reinterpret_cast<__m128i*>(xc + static_cast<int64_t>(c) * kRows);
    for (int32_t j = 0; j < 4; ++j) {
      if (kRows == 4) {
        _mm_storeu_si128(out + j, q[0][j]);
      } else {
        _mm_storeu_si128(out + 2 * j, _mm_unpacklo_epi64(q[0][j], q[1][j]));
        _mm_storeu_si128(out + 2 * j + 1, _mm_unpackhi_epi64(q[0][j], q[1][j]));
      }
    }
  }
  for (; c < k; ++c) {
    for (int32_t i = 0; i < kRows; ++i)
      xc[static_cast<int64_t>(c) * kRows + i] =
          i < rows ? static_cast<int16_t>(x[static_cast<int64_t>(i) * k + c] + input_offset)
                   : int16_t{0};
  }
}

// The pair (w16[j], w16[j + 1]) in every 32-bit lane.
inline __m256i weight_pair(const int16_t* w16, int32_t j) noexcept {
  int32_t v;
  __builtin_memcpy(&v, w16 + j, 4);
  return _mm256_set1_epi32(v);
}

// The kRows dot products of one column list with the rows of xc, to dot[0, kRows).
template <int kRows>
void dot_columns(const int16_t* xc, const int32_t* cols, const int16_t* w16, int32_t n,
                 int32_t* dot) noexcept {
  static_assert(kRows == 4 || kRows == 8, "one xmm or one ymm of sums");
  // (c0, c1) of every row, one int32 lane pair per row.
  auto pair = [&](int32_t c0, int32_t c1) {
    const int16_t* p0 = xc + static_cast<int64_t>(c0) * kRows;
    const int16_t* p1 = xc + static_cast<int64_t>(c1) * kRows;
    if (kRows == 8) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p0));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1));
      return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(a, b)),
                                     _mm_unpackhi_epi16(a, b), 1);
    }
    const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p0));
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p1));
    return _mm256_castsi128_si256(_mm_unpacklo_epi16(a, b));
  };
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  int32_t j = 0;
  for (; j + 4 <= n; j += 4) {
    acc0 =
        _mm256_add_epi32(acc0, _mm256_madd_epi16(pair(cols[j], cols[j + 1]), weight_pair(w16, j)));
    acc1 = _mm256_add_epi32(
        acc1, _mm256_madd_epi16(pair(cols[j + 2], cols[j + 3]), weight_pair(w16, j + 2)));
  }
  for (; j < n; j += 2) {
    // An odd last entry pairs with its own column and the 0 widen_values put after it.
    const int32_t c1 = j + 1 < n ? cols[j + 1] : cols[j];
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(pair(cols[j], c1), weight_pair(w16, j)));
  }
  const __m256i acc = _mm256_add_epi32(acc0, acc1);
  if (kRows == 8)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dot), acc);
  else
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dot), _mm256_castsi256_si128(acc));
}

// Every output of batch rows [b0, b0 + rows) (rows <= kRows) through the column-list body: the
// raw sums go to sums[rows][out_features], then each batch row is finished 8 outputs at a time.
template <int kRows>
void column_list_rows(const SparseFcArgs& a, const NmTable& nm, int32_t b0, int32_t rows,
                      const int32_t* pruned, int32_t* cols, int16_t* w16, int16_t* xc,
                      int32_t* sums) noexcept {
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  fill_columns<kRows>(a.input + static_cast<int64_t>(b0) * d.in_features, d.in_features, rows,
                      a.params->input_offset, xc);
  int64_t cursor = 0;
  alignas(32) int32_t dot[kRows];
  for (int32_t o = 0; o < d.out_features; ++o) {
    int32_t n = 0;
    if (w.format == SparseFormat::kNm) {
      n = nm.per_byte > 0 ? decode_nm_row_table(w, nm, o, cols) : decode_nm_row(w, o, cols);
    } else {
      n = w.row_nnz[o];
      if (w.format == SparseFormat::kCsrU8Delta)
        decode_u8_delta(w.col_delta + cursor, n, cols);
      else
        decode_u16(w.col_index + cursor, n, cols);
    }
    widen_values(w.values + cursor, n, w16);
    dot_columns<kRows>(xc, cols, w16, n, dot);
    for (int32_t r = 0; r < rows; ++r) sums[static_cast<int64_t>(r) * d.out_features + o] = dot[r];
    cursor += n;
  }
  for (int32_t r = 0; r < rows; ++r)
    finish_rows8(a, sums + static_cast<int64_t>(r) * d.out_features, pruned[b0 + r],
                 a.output + static_cast<int64_t>(b0 + r) * d.out_features);
}

// Scratch (64-byte aligned by the caller), in 32-bit words: per-batch filter_offset * sum(x +
// io), one decoded row of columns (max_row_entries, rounded up to 8); then
//  - for bitmaps the activations as int16 [batch][cols rounded up to 64], zero padded, and the
//    raw row sums [batch][rows] int32;
//  - for the column-list body the raw sums of min(batch, kChunk) batch rows [rows] int32 each,
//    one decoded row of values as int16 (rounded up to 8, + 8: the 0 after an odd row) and the
//    activations of chunk_rows(batch) batch rows as int16 [cols][chunk_rows] (a whole number of
//    words: chunk_rows is even).
int32_t sparse_fc_s8_avx2_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept {
  if (w.format == SparseFormat::kBlockCsr) {
    if (!block_simd_shape(w)) return 0;
    const int64_t bytes = static_cast<int64_t>(dims.batch) * dims.in_features * 2 +
                          static_cast<int64_t>(dims.batch) * 4 +
                          static_cast<int64_t>(dims.batch) * w.rows * 4;
    return bytes > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int32_t>(bytes);
  }
  const int64_t entries = align8(max_row_entries(w));
  const int64_t rest = w.format == SparseFormat::kBitmap
                           ? static_cast<int64_t>(dims.batch) * align64(dims.in_features) / 2 +
                                 static_cast<int64_t>(dims.batch) * w.rows
                           : int64_t{sum_rows(dims.batch)} * w.rows + (entries + 8) / 2 +
                                 int64_t{chunk_rows(dims.batch)} * dims.in_features / 2;
  const int64_t bytes = (align8(dims.batch) + entries + rest) * 4;
  return bytes > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int32_t>(bytes);
}

void sparse_fc_s8_avx2(const SparseFcArgs& a) noexcept {
  if (a.weights->format == SparseFormat::kBlockCsr) {
    if (!block_simd_shape(*a.weights))
      sparse_fc_s8_reference(a);
    else if (a.weights->block_rows == 1)
      block_fc_x16<1>(a);
    else
      block_fc_x16<4>(a);
    return;
  }
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  int32_t* pruned = static_cast<int32_t*>(a.scratch);
  int32_t* cols = pruned + align8(d.batch);
  int32_t* rest = cols + align8(max_row_entries(w));

  // filter_offset * sum(x + io) per batch row: the filter offset's term, over every column
  // (a pruned weight is 0 + filter_offset), as the reference's pruned_term.
  const __m256i io = _mm256_set1_epi32(p.input_offset);
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    __m256i sum = _mm256_setzero_si256();
    int32_t k = 0;
    for (; k + 8 <= d.in_features; k += 8)
      sum = _mm256_add_epi32(
          sum,
          _mm256_add_epi32(
              _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + k))), io));
    int32_t s = hsum(sum);
    for (; k < d.in_features; ++k) s = wrap_add(s, x[k] + p.input_offset);
    pruned[b] = wrap_mul(s, p.filter_offset);
  }

  if (w.format != SparseFormat::kBitmap) {
    // Batch rows kChunk at a time while more than 4 are left, then the last 1-4 together.
    int32_t* sums = rest;
    int16_t* w16 = reinterpret_cast<int16_t*>(sums + int64_t{sum_rows(d.batch)} * w.rows);
    int16_t* xc = w16 + align8(max_row_entries(w)) + 8;
    NmTable nm;  // 8 KB: the x86 bodies run on hosts, not on microcontrollers
    if (w.format == SparseFormat::kNm) build_nm_table(w, &nm);
    for (int32_t b = 0; b < d.batch;) {
      const int32_t left = d.batch - b;
      if (left > 4) {
        const int32_t rows = left < kChunk ? left : kChunk;
        column_list_rows<kChunk>(a, nm, b, rows, pruned, cols, w16, xc, sums);
        b += rows;
      } else {
        column_list_rows<4>(a, nm, b, left, pruned, cols, w16, xc, sums);
        b += left;
      }
    }
    return;
  }

  int16_t* x16 = reinterpret_cast<int16_t*>(rest);
  const int64_t x16_stride = align64(d.in_features);
  int32_t* sums = reinterpret_cast<int32_t*>(x16 + static_cast<int64_t>(d.batch) * x16_stride);
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    for (int64_t k = 0; k < x16_stride; ++k)
      x16[b * x16_stride + k] =
          k < d.in_features ? static_cast<int16_t>(x[k] + p.input_offset) : int16_t{0};
  }
  const int32_t row_bytes = (w.cols + 7) / 8;
  int64_t cursor = 0;
  for (int32_t o = 0; o < d.out_features; ++o) {
    const uint8_t* bm = w.bitmap + static_cast<int64_t>(o) * row_bytes;
    int32_t n = 0;
    for (int32_t i = 0; i < row_bytes; ++i) n += __builtin_popcount(bm[i]);
    // Rows whose values end 8 bytes before the array's end may overread inside it. Batch rows
    // four at a time, then two, then one: each spread of the row's values serves them all.
    const bool bounded = cursor + n + 8 > w.value_count;
    int32_t dots[4];
    for (int32_t b = 0; b < d.batch;) {
      const int32_t group = d.batch - b >= 4 ? 4 : (d.batch - b >= 2 ? 2 : 1);
      const int16_t* xg = x16 + b * x16_stride;
      if (group == 4)
        dot_bitmap_rows<4>(bounded, xg, x16_stride, bm, row_bytes, w, cursor, dots);
      else if (group == 2)
        dot_bitmap_rows<2>(bounded, xg, x16_stride, bm, row_bytes, w, cursor, dots);
      else
        dot_bitmap_rows<1>(bounded, xg, x16_stride, bm, row_bytes, w, cursor, dots);
      for (int32_t j = 0; j < group; ++j, ++b)
        sums[static_cast<int64_t>(b) * d.out_features + o] = dots[j];
    }
    cursor += n;
  }
  // Requantized 8 outputs at a time, as the other bodies do.
  for (int32_t b = 0; b < d.batch; ++b)
    finish_rows8(a, sums + static_cast<int64_t>(b) * d.out_features, pruned[b],
                 a.output + static_cast<int64_t>(b) * d.out_features);
}

}  // namespace tinyquant::rt::detail
