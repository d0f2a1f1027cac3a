// Sparse fully-connected, block CSR and bitmap on x86 AVX-512 VNNI (vpdpbusd; compiled with only
// the AVX-512 F/BW/VL/VNNI flags, chosen at run time after a CPU check).
//
// vpdpbusd multiplies unsigned by signed bytes, so the activations are copied once per call
// into scratch as u8 = x + 128 (x ^ 0x80) and, per output row,
//   sum_{stored k} (x + io) * w = sum (x + 128) * w + (io - 128) * sum_{stored k} w,
// all mod 2^32 (bit-exact with the reference's wrapping accumulator). The weight sums come from
// a second vpdpbusd against a vector of ones on the same loaded weights.
// Row sums go to scratch and are requantized 16 outputs at a time (vector requantize, both
// rounding modes, bit-exact). Tiles:
//  - 4x16: one 16-byte activation slice is broadcast to the four 128-bit lanes of a zmm and
//    meets the block's 64 weight bytes (4 rows x 16) in one vpdpbusd: lane i is row i.
//  - 1x16: four consecutive blocks of a row fill one zmm of weights; their four activation
//    slices are inserted lane by lane; a last group of 1-3 blocks uses zero-masked weights.
//  Batch rows go four at a time, then two, then one: each block's weights are loaded, and
//  their sum taken, once for the group (2026-11-24; 1.4-2.0x faster at batch 8, bench/README).
// Other block shapes run the reference loops.
// Bitmap (only on CPUs with AVX-512 VBMI2, whose functions below carry their own target
// attribute; the dispatcher checks the CPU): every 64 columns of a row, vpexpandb loads the
// row's next popcount(bits) packed values straight to their set bits (zeros elsewhere), so one
// vpdpbusd meets 64 activations; nothing is gathered. Four rows share each activation load and
// run independent chains. The weight sums are taken afterwards from each row's packed values
// (one vpdpbusd per 64 stored values, not per 64 columns). Batch rows go four at a time (then
// two, then one): each expanded weight vector meets every one of them, so the weights are
// decoded once per group of batch rows rather than once per batch row (but for the last
// rows % 4 weight rows, decoded per batch row). One body serves every group size, batch 1
// included: its accumulators, an indexed array acc[4 * kBatch], stay in registers once unrolled
// (a copy with named accumulators for batch 1 measured no faster; bench/README).
#include <immintrin.h>

#include <cstring>

#include "tinyquant/rt/sparse.hpp"

// GCC 12's unmasked AVX-512 intrinsics (shifts, multiplies, unpacks) merge into
// _mm512_undefined_*(), which -Wmaybe-uninitialized flags wherever they are inlined: a false
// positive (every lane is written), silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tinyquant::rt::detail {
namespace {

bool simd_shape(const SparseMatrixS8& w) noexcept {
  if (w.format == SparseFormat::kBitmap) return true;
  return w.format == SparseFormat::kBlockCsr && w.block_cols == 16 &&
         (w.block_rows == 1 || w.block_rows == 4);
}

// Where the int32 row sums start in scratch: after the u8 activations, on a 64-byte boundary.
int64_t row_sums_offset(const FcDims& d) noexcept {
  return (static_cast<int64_t>(d.batch) * d.in_features + 63) / 64 * 64;
}

// GCC 12's unmasked extract / broadcast merge into an undefined vector and trip a false
// -Wmaybe-uninitialized: the zero-masked forms with an all-ones mask are the same instruction.
inline __m512i bcast16(__m128i v) noexcept {
  return _mm512_maskz_broadcast_i32x4(0xFFFF, v);
}

inline int32_t hsum128(__m128i s) noexcept {
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline __m128i load16(const void* p) noexcept {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// sum_{stored} (x + 128) * w + (io - 128) * sum_{stored} w of one block row, not yet reduced, for
// kBatch batch rows (activations x[0 .. kBatch)) into out[0 .. kBatch): each block's weights are
// loaded, and their sum taken, once for all of them. 4x16: 128-bit lane i holds row i's four
// partial sums; 1x16: all 16 lanes belong to the row.
// kBatch accumulators, returned by value (in registers; see block_batch's batch-1 branch).
template <int kBatch>
struct Accs {
  __m512i v[kBatch];
};

template <int kRows, int kBatch>
Accs<kBatch> block_row_acc(const SparseMatrixS8& w, int32_t r, const uint8_t* const* x,
                           __m512i comp) noexcept {
  const uint32_t b0 = w.block_row_ptr[r], b1 = w.block_row_ptr[r + 1];
  const __m512i ones = _mm512_set1_epi8(1);
  if (kRows == 4) {
    // Two blocks per step, each with chains of its own, to hide the vpdpbusd latency at batch 1.
    __m512i acc[2][kBatch], ws[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    for (auto& h : acc)
      for (__m512i& v : h) v = _mm512_setzero_si512();
    auto block = [&](int h, uint32_t j) {
      const __m512i wv = _mm512_loadu_si512(w.values + static_cast<int64_t>(j) * 64);
      ws[h] = _mm512_dpbusd_epi32(ws[h], ones, wv);
      const int32_t col = int32_t{w.block_col[j]} * 16;
      for (int i = 0; i < kBatch; ++i)
        acc[h][i] = _mm512_dpbusd_epi32(acc[h][i], bcast16(load16(x[i] + col)), wv);
    };
    uint32_t j = b0;
    for (; j + 2 <= b1; j += 2) {
      block(0, j);
      block(1, j + 1);
    }
    if (j < b1) block(0, j);
    const __m512i fix = _mm512_mullo_epi32(_mm512_add_epi32(ws[0], ws[1]), comp);
    Accs<kBatch> out;
    for (int i = 0; i < kBatch; ++i)
      out.v[i] = _mm512_add_epi32(_mm512_add_epi32(acc[0][i], acc[1][i]), fix);
    return out;
  }
  // Four blocks (one zmm of weights) per chain, two chains per step.
  __m512i acc[2][kBatch], ws[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
  for (auto& h : acc)
    for (__m512i& v : h) v = _mm512_setzero_si512();
  auto four = [&](int h, uint32_t j) {
    const __m512i wv = _mm512_loadu_si512(w.values + static_cast<int64_t>(j) * 16);
    ws[h] = _mm512_dpbusd_epi32(ws[h], ones, wv);
    for (int i = 0; i < kBatch; ++i) {
      __m512i xv = _mm512_zextsi128_si512(load16(x[i] + int32_t{w.block_col[j]} * 16));
      xv = _mm512_inserti32x4(xv, load16(x[i] + int32_t{w.block_col[j + 1]} * 16), 1);
      xv = _mm512_inserti32x4(xv, load16(x[i] + int32_t{w.block_col[j + 2]} * 16), 2);
      xv = _mm512_inserti32x4(xv, load16(x[i] + int32_t{w.block_col[j + 3]} * 16), 3);
      acc[h][i] = _mm512_dpbusd_epi32(acc[h][i], xv, wv);
    }
  };
  uint32_t j = b0;
  for (; j + 8 <= b1; j += 8) {
    four(0, j);
    four(1, j + 4);
  }
  if (j + 4 <= b1) {
    four(0, j);
    j += 4;
  }
  if (j < b1) {  // 1-3 blocks left: zero-masked weights make the unused lanes add nothing
    const int32_t left = static_cast<int32_t>(b1 - j);
    const __mmask64 m = (__mmask64{1} << (16 * left)) - 1;
    const __m512i wv = _mm512_maskz_loadu_epi8(m, w.values + static_cast<int64_t>(j) * 16);
    ws[1] = _mm512_dpbusd_epi32(ws[1], ones, wv);
    for (int i = 0; i < kBatch; ++i) {
      __m512i xv = _mm512_zextsi128_si512(load16(x[i] + int32_t{w.block_col[j]} * 16));
      if (left > 1) xv = _mm512_inserti32x4(xv, load16(x[i] + int32_t{w.block_col[j + 1]} * 16), 1);
      if (left > 2) xv = _mm512_inserti32x4(xv, load16(x[i] + int32_t{w.block_col[j + 2]} * 16), 2);
      acc[1][i] = _mm512_dpbusd_epi32(acc[1][i], xv, wv);
    }
  }
  const __m512i fix = _mm512_mullo_epi32(_mm512_add_epi32(ws[0], ws[1]), comp);
  Accs<kBatch> out;
  for (int i = 0; i < kBatch; ++i)
    out.v[i] = _mm512_add_epi32(_mm512_add_epi32(acc[0][i], acc[1][i]), fix);
  return out;
}

// Per 128-bit lane L: [sum of lane L of t0, of t1, of t2, of t3].
inline __m512i lane_sums4(__m512i t0, __m512i t1, __m512i t2, __m512i t3) noexcept {
  const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(t0, t1), _mm512_unpackhi_epi32(t0, t1));
  const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(t2, t3), _mm512_unpackhi_epi32(t2, t3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

// The four 128-bit lanes of v added together.
inline __m128i add_lanes(__m512i v) noexcept {
  return _mm_add_epi32(_mm_add_epi32(_mm512_maskz_extracti32x4_epi32(0xF, v, 0),
                                     _mm512_maskz_extracti32x4_epi32(0xF, v, 1)),
                       _mm_add_epi32(_mm512_maskz_extracti32x4_epi32(0xF, v, 2),
                                     _mm512_maskz_extracti32x4_epi32(0xF, v, 3)));
}

// requantize() (fixed_point.hpp) on 16 lanes, bit for bit, both rounding modes.
inline __m512i requantize16(__m512i x, __m512i mult, __m512i shift, Rounding rounding) noexcept {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i one64 = _mm512_set1_epi64(1);
  if (rounding == Rounding::kSingle) {
    const __m512i t = _mm512_sub_epi32(_mm512_set1_epi32(31), shift);  // [1, 62]
    const __m512i te = _mm512_srli_epi64(_mm512_slli_epi64(t, 32), 32);
    const __m512i to = _mm512_srli_epi64(t, 32);
    __m512i pe = _mm512_mul_epi32(x, mult);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(mult, 32));
    pe = _mm512_add_epi64(pe, _mm512_sllv_epi64(one64, _mm512_sub_epi64(te, one64)));
    po = _mm512_add_epi64(po, _mm512_sllv_epi64(one64, _mm512_sub_epi64(to, one64)));
    pe = _mm512_srav_epi64(pe, te);
    po = _mm512_srav_epi64(po, to);
    return _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  }
  const __m512i left = _mm512_max_epi32(shift, zero);
  const __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
  const __m512i xs = _mm512_sllv_epi32(x, left);
  const __m512i half = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i pe = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(xs, mult), half), 31);
  const __m512i po = _mm512_srai_epi64(
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(xs, 32), _mm512_srli_epi64(mult, 32)),
                       half),
      31);
  const __m512i h = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  // Divide by 2^right, ties away from zero.
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
  const __m512i remainder = _mm512_and_si512(h, mask);
  const __m512i result = _mm512_srav_epi32(h, right);
  const __m512i half_mask = _mm512_srli_epi32(mask, 1);
  const __mmask16 neg = _mm512_cmplt_epi32_mask(result, zero);
  const __m512i threshold = _mm512_mask_add_epi32(half_mask, neg, half_mask, one);
  const __mmask16 up = _mm512_cmpgt_epi32_mask(remainder, threshold);
  return _mm512_mask_add_epi32(result, up, result, one);
}

// out[o] = clamp(requantize(bias[o] + pruned + dot[o]) + output_offset) for o < out_features.
void finish_row(const SparseFcArgs& a, const int32_t* dot, int32_t pruned, int8_t* out) noexcept {
  const FcParams& p = *a.params;
  const Requant& rq = *a.requant;
  const int32_t n = a.dims->out_features;
  const __m512i base = _mm512_set1_epi32(pruned);
  const __m512i oo = _mm512_set1_epi32(p.output_offset);
  const __m512i lo = _mm512_set1_epi32(p.act_min), hi = _mm512_set1_epi32(p.act_max);
  const __m512i m1 = _mm512_set1_epi32(rq.multiplier[0]), s1 = _mm512_set1_epi32(rq.shift[0]);
  for (int32_t o = 0; o < n; o += 16) {
    const int32_t left = n - o;
    const __mmask16 m = left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1);
    __m512i acc = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, dot + o), base);
    if (a.bias != nullptr) acc = _mm512_add_epi32(acc, _mm512_maskz_loadu_epi32(m, a.bias + o));
    const __m512i mult = rq.per_channel ? _mm512_maskz_loadu_epi32(m, rq.multiplier + o) : m1;
    const __m512i shift = rq.per_channel ? _mm512_maskz_loadu_epi32(m, rq.shift + o) : s1;
    __m512i r = _mm512_add_epi32(requantize16(acc, mult, shift, rq.rounding), oo);
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    _mm_mask_storeu_epi8(out + o, m, _mm512_cvtepi32_epi8(r));
  }
}

// The u8 activations (x + 128) of one batch row into xr; returns sum(x + io) mod 2^32.
inline int32_t widen_row(const int8_t* x, int32_t k_total, int32_t input_offset,
                         uint8_t* xr) noexcept {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  for (int32_t k = 0; k < k_total; k += 64) {
    const int32_t left = k_total - k;
    const __mmask64 m = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
    const __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + k), flip);
    _mm512_mask_storeu_epi8(xr + k, m, v);
    sum = _mm512_dpbusd_epi32(sum, _mm512_maskz_mov_epi8(m, v), ones);
  }
  // sum(x + io) = sum(x + 128) + (io - 128) * K, mod 2^32.
  return wrap_add(hsum128(add_lanes(sum)), wrap_mul(input_offset - 128, k_total));
}

// Batch rows b .. b + n - 1 widened into scratch (x[j]: row b + j's u8 activations), and their
// offset terms filter_offset * sum(x + io) in pruned[j].
inline void widen_rows(const SparseFcArgs& a, int32_t b, int n, const uint8_t** x,
                       int32_t* pruned) noexcept {
  const FcParams& p = *a.params;
  const int32_t k = a.dims->in_features;
  uint8_t* xu = static_cast<uint8_t*>(a.scratch);
  for (int j = 0; j < n; ++j) {
    const int64_t at = static_cast<int64_t>(b + j) * k;
    pruned[j] = wrap_mul(widen_row(a.input + at, k, p.input_offset, xu + at), p.filter_offset);
    x[j] = xu + at;
  }
}

// Batch rows b .. b + kBatch - 1 of a 1x16 / 4x16 block CSR layer: widened into scratch, each
// block row's weights loaded once for all of them (block_row_acc), the raw row sums of batch row
// b + j in dot[j * rows, (j + 1) * rows), then requantized.
template <int kRows, int kBatch>
void block_batch(const SparseFcArgs& a, int32_t b) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  int32_t* dot = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(a.scratch) + row_sums_offset(d));
  const __m512i comp = _mm512_set1_epi32(p.input_offset - 128);
  const uint8_t* x[kBatch];
  int32_t pruned[kBatch];
  widen_rows(a, b, kBatch, x, pruned);
  // Four block rows at a time: t[q].v[j] is block row r + q (zero past the end) of batch row j.
  // 4x16: output 4 * (r + q) + L is lane L of t[q]; after lane_sums4 and the transpose, element
  // 4q + L. 1x16: output r + q is the sum of t[q]'s lanes.
  const __m512i transpose = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const int32_t block_rows = w.rows / kRows;
  Accs<kBatch> zero;
  for (__m512i& v : zero.v) v = _mm512_setzero_si512();
  for (int32_t r = 0; r < block_rows; r += 4) {
    Accs<kBatch> t[4];
    // Batch 1 assigns the four results one by one: through the loop below it measured 6-7 %
    // slower on 1x16 (bench/README).
    if constexpr (kBatch == 1) {
      t[0] = block_row_acc<kRows, kBatch>(w, r, x, comp);
      t[1] = r + 1 < block_rows ? block_row_acc<kRows, kBatch>(w, r + 1, x, comp) : zero;
      t[2] = r + 2 < block_rows ? block_row_acc<kRows, kBatch>(w, r + 2, x, comp) : zero;
      t[3] = r + 3 < block_rows ? block_row_acc<kRows, kBatch>(w, r + 3, x, comp) : zero;
    } else {
      for (int32_t q = 0; q < 4; ++q)
        t[q] = r + q < block_rows ? block_row_acc<kRows, kBatch>(w, r + q, x, comp) : zero;
    }
    const int32_t cnt = block_rows - r < 4 ? block_rows - r : 4;  // block rows in this step
    for (int j = 0; j < kBatch; ++j) {
      int32_t* out = dot + static_cast<int64_t>(j) * w.rows + static_cast<int64_t>(r) * kRows;
      const __m512i s = lane_sums4(t[0].v[j], t[1].v[j], t[2].v[j], t[3].v[j]);
      if (kRows == 4)
        _mm512_mask_storeu_epi32(out, static_cast<__mmask16>((1u << (cnt * 4)) - 1),
                                 _mm512_permutexvar_epi32(transpose, s));
      else
        _mm_mask_storeu_epi32(out, static_cast<__mmask8>((1u << cnt) - 1), add_lanes(s));
    }
  }
  for (int j = 0; j < kBatch; ++j)
    finish_row(a, dot + static_cast<int64_t>(j) * w.rows, pruned[j],
               a.output + static_cast<int64_t>(b + j) * d.out_features);
}

// Batch rows four at a time, then two, then one.
template <int kRows>
void block_fc(const SparseFcArgs& a) noexcept {
  const int32_t batch = a.dims->batch;
  int32_t b = 0;
  for (; b + 4 <= batch; b += 4) block_batch<kRows, 4>(a, b);
  if (b + 2 <= batch) {
    block_batch<kRows, 2>(a, b);
    b += 2;
  }
  if (b < batch) block_batch<kRows, 1>(a, b);
}

// Bits of the 64 columns from byte `byte0` of a bitmap row of row_bytes bytes (fewer at its end;
// bit j of the little-endian word is column 8 * byte0 + j). A short word is read with a byte
// mask, in a register: a partial memcpy would go through the stack and stall the load that
// follows it.
inline uint64_t bitmap_word(const uint8_t* row, int32_t byte0, int32_t row_bytes) noexcept {
  const int32_t left = row_bytes - byte0;
  const __mmask16 m = left >= 8 ? __mmask16{0xFF} : static_cast<__mmask16>((1u << left) - 1);
  return static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_maskz_loadu_epi8(m, row + byte0)));
}

// The 64 bits of a row from byte byte0 when all eight bytes are in the row.
inline uint64_t bitmap_word8(const uint8_t* row, int32_t byte0) noexcept {
  uint64_t m;
  std::memcpy(&m, row + byte0, 8);
  return m;
}

// Stored values in a bitmap row of row_bytes bytes.
__attribute__((target("avx512vbmi2,popcnt"))) inline int64_t bitmap_row_count(
    const uint8_t* row, int32_t row_bytes) noexcept {
  int64_t n = 0;
  int32_t b = 0;
  for (; b + 8 <= row_bytes; b += 8) n += _mm_popcnt_u64(bitmap_word8(row, b));
  if (b < row_bytes) n += _mm_popcnt_u64(bitmap_word(row, b, row_bytes));
  return n;
}

// The next popcount(m) values of a row, from v, at the set bits of m (zeros elsewhere); v
// moves past them. vpexpandb reads only the bytes it places, so nothing past the row's last
// value is touched.
__attribute__((target("avx512vbmi2,popcnt"), always_inline)) inline __m512i expand_next(
    uint64_t m, const int8_t*& v) noexcept {
  const __m512i w = _mm512_maskz_expandloadu_epi8(m, v);
  v += _mm_popcnt_u64(m);
  return w;
}

// The sum of the n values from v, spread over 16 lanes (mod 2^32 once the lanes are added).
__attribute__((target("avx512vbmi2,popcnt"), always_inline)) inline __m512i value_sums(
    const int8_t* v, int64_t n) noexcept {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i ws = _mm512_setzero_si512();
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) ws = _mm512_dpbusd_epi32(ws, ones, _mm512_loadu_si512(v + j));
  if (j < n)
    ws = _mm512_dpbusd_epi32(ws, ones,
                             _mm512_maskz_loadu_epi8((__mmask64{1} << (n - j)) - 1, v + j));
  return ws;
}

// The bits of a row from byte byte0: kWhole when all eight bytes are in the row.
template <bool kWhole>
inline uint64_t bitmap_bits(const uint8_t* row, int32_t byte0, int32_t row_bytes) noexcept {
  return kWhole ? bitmap_word8(row, byte0) : bitmap_word(row, byte0, row_bytes);
}

// One 64-column chunk (bitmap bytes from byte0) of four consecutive bitmap rows from `row`, for
// kBatch batch rows at once (activations xv[j]): each row's next values are expanded once and
// met with every batch row's activations; acc[4 j + i] is weight row i's accumulator for batch
// row j.
template <bool kWhole, int kBatch>
__attribute__((target("avx512vbmi2,popcnt"), always_inline)) inline void bitmap_chunk4xb(
    const uint8_t* row, int32_t row_bytes, int32_t byte0, const __m512i* xv, const int8_t*& v0,
    const int8_t*& v1, const int8_t*& v2, const int8_t*& v3, __m512i* acc) noexcept {
  const __m512i w0 = expand_next(bitmap_bits<kWhole>(row, byte0, row_bytes), v0);
  row += row_bytes;
  const __m512i w1 = expand_next(bitmap_bits<kWhole>(row, byte0, row_bytes), v1);
  row += row_bytes;
  const __m512i w2 = expand_next(bitmap_bits<kWhole>(row, byte0, row_bytes), v2);
  row += row_bytes;
  const __m512i w3 = expand_next(bitmap_bits<kWhole>(row, byte0, row_bytes), v3);
  for (int j = 0; j < kBatch; ++j) {
    acc[4 * j] = _mm512_dpbusd_epi32(acc[4 * j], xv[j], w0);
    acc[4 * j + 1] = _mm512_dpbusd_epi32(acc[4 * j + 1], xv[j], w1);
    acc[4 * j + 2] = _mm512_dpbusd_epi32(acc[4 * j + 2], xv[j], w2);
    acc[4 * j + 3] = _mm512_dpbusd_epi32(acc[4 * j + 3], xv[j], w3);
  }
}

// For the four bitmap rows r0 .. r0 + 3, whose values start at vals, and kBatch batch rows (u8
// activations x[j]): t[4 j + i] = sum_{stored} (x_j + 128) * w + (io - 128) * sum_{stored} w of
// row r0 + i, not yet reduced (all 16 lanes belong to the row). Each weight is expanded once for
// all batch rows. Returns the end of the last row's values.
template <int kBatch>
__attribute__((target("avx512vbmi2,popcnt"))) const int8_t* bitmap_rows4xb(
    const SparseMatrixS8& w, int32_t r0, const int8_t* vals, const uint8_t* const* x, __m512i comp,
    __m512i* t) noexcept {
  const int32_t row_bytes = (w.cols + 7) / 8;
  const uint8_t* b0 = w.bitmap + static_cast<int64_t>(r0) * row_bytes;
  const int8_t* const s0 = vals;
  const int8_t* const s1 = s0 + bitmap_row_count(b0, row_bytes);
  const int8_t* const s2 = s1 + bitmap_row_count(b0 + row_bytes, row_bytes);
  const int8_t* const s3 = s2 + bitmap_row_count(b0 + 2 * row_bytes, row_bytes);
  const int8_t *v0 = s0, *v1 = s1, *v2 = s2, *v3 = s3;
  __m512i acc[4 * kBatch];
  for (__m512i& v : acc) v = _mm512_setzero_si512();
  __m512i xv[kBatch];
  int32_t k = 0;
  for (; k + 64 <= w.cols; k += 64) {
    for (int j = 0; j < kBatch; ++j) xv[j] = _mm512_loadu_si512(x[j] + k);
    bitmap_chunk4xb<true, kBatch>(b0, row_bytes, k / 8, xv, v0, v1, v2, v3, acc);
  }
  if (k < w.cols) {
    const __mmask64 m = (__mmask64{1} << (w.cols - k)) - 1;
    for (int j = 0; j < kBatch; ++j) xv[j] = _mm512_maskz_loadu_epi8(m, x[j] + k);
    bitmap_chunk4xb<false, kBatch>(b0, row_bytes, k / 8, xv, v0, v1, v2, v3, acc);
  }
  const __m512i ws[4] = {_mm512_mullo_epi32(value_sums(s0, v0 - s0), comp),
                         _mm512_mullo_epi32(value_sums(s1, v1 - s1), comp),
                         _mm512_mullo_epi32(value_sums(s2, v2 - s2), comp),
                         _mm512_mullo_epi32(value_sums(s3, v3 - s3), comp)};
  for (int j = 0; j < kBatch; ++j)
    for (int i = 0; i < 4; ++i) t[4 * j + i] = _mm512_add_epi32(acc[4 * j + i], ws[i]);
  return v3;
}

// One bitmap row r, as bitmap_rows4xb<1> does four; four accumulators over consecutive chunks.
__attribute__((target("avx512vbmi2,popcnt"))) const int8_t* bitmap_row1(
    const SparseMatrixS8& w, int32_t r, const int8_t* vals, const uint8_t* xu, __m512i comp,
    __m512i* t) noexcept {
  const int32_t row_bytes = (w.cols + 7) / 8;
  const uint8_t* b = w.bitmap + static_cast<int64_t>(r) * row_bytes;
  const int8_t* v = vals;
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  int32_t k = 0;
  for (; k + 256 <= w.cols; k += 256) {
    a0 =
        _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xu + k), expand_next(bitmap_word8(b, k / 8), v));
    a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(xu + k + 64),
                             expand_next(bitmap_word8(b, k / 8 + 8), v));
    a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512(xu + k + 128),
                             expand_next(bitmap_word8(b, k / 8 + 16), v));
    a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512(xu + k + 192),
                             expand_next(bitmap_word8(b, k / 8 + 24), v));
  }
  for (; k + 64 <= w.cols; k += 64)
    a0 =
        _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xu + k), expand_next(bitmap_word8(b, k / 8), v));
  if (k < w.cols)
    a1 =
        _mm512_dpbusd_epi32(a1, _mm512_maskz_loadu_epi8((__mmask64{1} << (w.cols - k)) - 1, xu + k),
                            expand_next(bitmap_word(b, k / 8, row_bytes), v));
  const __m512i ws = value_sums(vals, v - vals);
  *t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                        _mm512_mullo_epi32(ws, comp));
  return v;
}

// Batch rows b .. b + kBatch - 1: widened into scratch, each group of four weight rows expanded
// once for all of them (bitmap_rows4xb; the last rows % 4 weight rows once per batch row, by
// bitmap_row1), the raw row sums of batch row b + j in
// dot[j * rows, (j + 1) * rows), then requantized.
template <int kBatch>
__attribute__((target("avx512vbmi2,popcnt"))) void bitmap_batch(const SparseFcArgs& a,
                                                                int32_t b) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  int32_t* dot = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(a.scratch) + row_sums_offset(d));
  const __m512i comp = _mm512_set1_epi32(p.input_offset - 128);
  const uint8_t* x[kBatch];
  int32_t pruned[kBatch];
  widen_rows(a, b, kBatch, x, pruned);
  const int8_t* vals = w.values;
  for (int32_t o = 0; o < w.rows; o += 4) {
    __m512i t[4 * kBatch];
    for (__m512i& v : t) v = _mm512_setzero_si512();
    if (o + 4 > w.rows) {
      for (int32_t i = 0; o + i < w.rows; ++i) {
        const int8_t* end = vals;  // past row o + i's values, the same for every batch row
        for (int j = 0; j < kBatch; ++j)
          end = bitmap_row1(w, o + i, vals, x[j], comp, t + 4 * j + i);
        vals = end;
      }
    } else {
      vals = bitmap_rows4xb<kBatch>(w, o, vals, x, comp, t);
    }
    const int32_t cnt = w.rows - o < 4 ? w.rows - o : 4;
    for (int j = 0; j < kBatch; ++j) {
      const __m128i s = add_lanes(lane_sums4(t[4 * j], t[4 * j + 1], t[4 * j + 2], t[4 * j + 3]));
      _mm_mask_storeu_epi32(dot + static_cast<int64_t>(j) * w.rows + o,
                            static_cast<__mmask8>((1u << cnt) - 1), s);
    }
  }
  for (int j = 0; j < kBatch; ++j)
    finish_row(a, dot + static_cast<int64_t>(j) * w.rows, pruned[j],
               a.output + static_cast<int64_t>(b + j) * d.out_features);
}

// Batch rows four at a time, then two, then one.
__attribute__((target("avx512vbmi2,popcnt"))) void bitmap_fc(const SparseFcArgs& a) noexcept {
  const int32_t batch = a.dims->batch;
  int32_t b = 0;
  for (; b + 4 <= batch; b += 4) bitmap_batch<4>(a, b);
  if (b + 2 <= batch) {
    bitmap_batch<2>(a, b);
    b += 2;
  }
  if (b < batch) bitmap_batch<1>(a, b);
}

}  // namespace

// Scratch (64-byte aligned by the caller): the u8 activations [batch][cols], then, from the
// next multiple of 64 bytes, the raw row sums (int32) [rows] of as many batch rows as bitmap_fc
// and block_fc take at once (1, 2 or 4). None for the shapes that run the reference loops.
int32_t sparse_fc_s8_avx512vnni_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept {
  if (!simd_shape(w)) return 0;
  // The largest group of batch rows bitmap_fc and block_fc take at once.
  const int64_t sums = dims.batch > 1 ? (dims.batch < 4 ? 2 : 4) : 1;
  const int64_t bytes = row_sums_offset(dims) + sums * static_cast<int64_t>(w.rows) * 4;
  return bytes > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int32_t>(bytes);
}

void sparse_fc_s8_avx512vnni(const SparseFcArgs& a) noexcept {
  if (!simd_shape(*a.weights))
    sparse_fc_s8_reference(a);
  else if (a.weights->format == SparseFormat::kBitmap)
    bitmap_fc(a);
  else if (a.weights->block_rows == 1)
    block_fc<1>(a);
  else
    block_fc<4>(a);
}

}  // namespace tinyquant::rt::detail
