// Sparse fully-connected, block CSR on x86 AVX-512 VNNI (vpdpbusd; compiled with only the
// AVX-512 F/BW/VL/VNNI flags, chosen at run time after a CPU check).
//
// vpdpbusd multiplies unsigned by signed bytes, so the activations are copied once per call
// into scratch as u8 = x + 128 (x ^ 0x80) and, per output row,
//   sum_{stored k} (x + io) * w = sum (x + 128) * w + (io - 128) * sum_{stored k} w,
// all mod 2^32 (bit-exact with the reference's wrapping accumulator). The weight sums come from
// a second vpdpbusd against a vector of ones on the same loaded weights.
// Tiles:
//  - 4x16: one 16-byte activation slice is broadcast to the four 128-bit lanes of a zmm and
//    meets the block's 64 weight bytes (4 rows x 16) in one vpdpbusd: lane i is row i.
//  - 1x16: four consecutive blocks of a row fill one zmm of weights; their four activation
//    slices are inserted lane by lane; a last group of 1-3 blocks uses xmm vpdpbusd.
// Other block shapes run the reference loops.
#include <immintrin.h>

#include "tinyquant/rt/sparse.hpp"

namespace tinyquant::rt::detail {
namespace {

bool simd_shape(const SparseMatrixS8& w) noexcept {
  return w.block_cols == 16 && (w.block_rows == 1 || w.block_rows == 4);
}

// GCC 12's unmasked extract / broadcast merge into an undefined vector and trip a false
// -Wmaybe-uninitialized: the zero-masked forms with an all-ones mask are the same instruction.
inline __m512i bcast16(__m128i v) noexcept {
  return _mm512_maskz_broadcast_i32x4(0xFFFF, v);
}

// Sum of each 128-bit lane of v: element i of the result is the sum of lane i.
inline __m128i lane_sums(__m512i v) noexcept {
  const __m128i l0 = _mm512_maskz_extracti32x4_epi32(0xF, v, 0),
                l1 = _mm512_maskz_extracti32x4_epi32(0xF, v, 1);
  const __m128i l2 = _mm512_maskz_extracti32x4_epi32(0xF, v, 2),
                l3 = _mm512_maskz_extracti32x4_epi32(0xF, v, 3);
  return _mm_hadd_epi32(_mm_hadd_epi32(l0, l1), _mm_hadd_epi32(l2, l3));
}

inline int32_t hsum128(__m128i s) noexcept {
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline __m128i load16(const void* p) noexcept {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// Row dot products of one block row against one activation row (u8, x + 128), with the
// (io - 128) * sum(w) correction folded in; dot[i] for the block row's rows.
template <int kRows>
void block_row_dots(const SparseMatrixS8& w, int32_t r, const uint8_t* xu, __m512i comp,
                    int32_t* dot) noexcept {
  const uint32_t b0 = w.block_row_ptr[r], b1 = w.block_row_ptr[r + 1];
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512(), ws = _mm512_setzero_si512();
  if (kRows == 4) {
    __m512i acc1 = _mm512_setzero_si512(), ws1 = _mm512_setzero_si512();
    uint32_t j = b0;
    for (; j + 2 <= b1; j += 2) {  // two independent chains hide the vpdpbusd latency
      const __m512i w0 = _mm512_loadu_si512(w.values + static_cast<int64_t>(j) * 64);
      const __m512i w1 = _mm512_loadu_si512(w.values + static_cast<int64_t>(j) * 64 + 64);
      const __m512i x0 = bcast16(load16(xu + int32_t{w.block_col[j]} * 16));
      const __m512i x1 = bcast16(load16(xu + int32_t{w.block_col[j + 1]} * 16));
      acc = _mm512_dpbusd_epi32(acc, x0, w0);
      ws = _mm512_dpbusd_epi32(ws, ones, w0);
      acc1 = _mm512_dpbusd_epi32(acc1, x1, w1);
      ws1 = _mm512_dpbusd_epi32(ws1, ones, w1);
    }
    if (j < b1) {
      const __m512i w0 = _mm512_loadu_si512(w.values + static_cast<int64_t>(j) * 64);
      const __m512i x0 = bcast16(load16(xu + int32_t{w.block_col[j]} * 16));
      acc = _mm512_dpbusd_epi32(acc, x0, w0);
      ws = _mm512_dpbusd_epi32(ws, ones, w0);
    }
    acc = _mm512_add_epi32(acc, acc1);
    ws = _mm512_add_epi32(ws, ws1);
    const __m512i t = _mm512_add_epi32(acc, _mm512_mullo_epi32(ws, comp));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dot), lane_sums(t));
    return;
  }
  uint32_t j = b0;
  for (; j + 4 <= b1; j += 4) {
    const __m512i wv = _mm512_loadu_si512(w.values + static_cast<int64_t>(j) * 16);
    __m512i xv = _mm512_zextsi128_si512(load16(xu + int32_t{w.block_col[j]} * 16));
    xv = _mm512_inserti32x4(xv, load16(xu + int32_t{w.block_col[j + 1]} * 16), 1);
    xv = _mm512_inserti32x4(xv, load16(xu + int32_t{w.block_col[j + 2]} * 16), 2);
    xv = _mm512_inserti32x4(xv, load16(xu + int32_t{w.block_col[j + 3]} * 16), 3);
    acc = _mm512_dpbusd_epi32(acc, xv, wv);
    ws = _mm512_dpbusd_epi32(ws, ones, wv);
  }
  __m128i acc4 = _mm_setzero_si128(), ws4 = _mm_setzero_si128();
  const __m128i ones4 = _mm_set1_epi8(1);
  for (; j < b1; ++j) {
    const __m128i wv = load16(w.values + static_cast<int64_t>(j) * 16);
    acc4 = _mm_dpbusd_epi32(acc4, load16(xu + int32_t{w.block_col[j]} * 16), wv);
    ws4 = _mm_dpbusd_epi32(ws4, ones4, wv);
  }
  const __m512i t = _mm512_add_epi32(acc, _mm512_mullo_epi32(ws, comp));
  const __m128i t4 =
      _mm_add_epi32(acc4, _mm_mullo_epi32(ws4, _mm512_maskz_extracti32x4_epi32(0xF, comp, 0)));
  dot[0] = hsum128(_mm_add_epi32(lane_sums(t), t4));
}

template <int kRows>
void block_fc(const SparseFcArgs& a) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  uint8_t* xu = static_cast<uint8_t*>(a.scratch);
  int32_t* pruned = reinterpret_cast<int32_t*>(xu + static_cast<int64_t>(d.batch) * d.in_features);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi8(1);
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    uint8_t* xr = xu + static_cast<int64_t>(b) * d.in_features;
    // sum(x + io) = sum(x + 128) + (io - 128) * K, mod 2^32.
    __m512i sum = _mm512_setzero_si512();
    for (int32_t k = 0; k < d.in_features; k += 64) {
      const int32_t left = d.in_features - k;
      const __mmask64 m = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
      const __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + k), flip);
      _mm512_mask_storeu_epi8(xr + k, m, v);
      sum = _mm512_dpbusd_epi32(sum, _mm512_maskz_mov_epi8(m, v), ones);
    }
    const int32_t xsum =
        wrap_add(hsum128(lane_sums(sum)), wrap_mul(p.input_offset - 128, d.in_features));
    pruned[b] = wrap_mul(xsum, p.filter_offset);
  }
  const __m512i comp = _mm512_set1_epi32(p.input_offset - 128);
  for (int32_t r = 0; r < w.rows / kRows; ++r) {
    for (int32_t b = 0; b < d.batch; ++b) {
      int32_t dot[4];
      block_row_dots<kRows>(w, r, xu + static_cast<int64_t>(b) * d.in_features, comp, dot);
      for (int32_t i = 0; i < kRows; ++i) {
        const int32_t o = r * kRows + i;
        const int32_t acc =
            wrap_add(wrap_add(a.bias != nullptr ? a.bias[o] : 0, pruned[b]), dot[i]);
        a.output[static_cast<int64_t>(b) * d.out_features + o] =
            sparse_fc_finish(acc, o, p, *a.requant);
      }
    }
  }
}

}  // namespace

// Scratch: the u8 activations [batch][cols], then pruned[batch] (int32). None for the shapes
// that run the reference loops.
int32_t sparse_fc_s8_avx512vnni_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept {
  if (!simd_shape(w)) return 0;
  const int64_t bytes =
      static_cast<int64_t>(dims.batch) * dims.in_features + static_cast<int64_t>(dims.batch) * 4;
  return bytes > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int32_t>(bytes);
}

void sparse_fc_s8_avx512vnni(const SparseFcArgs& a) noexcept {
  if (!simd_shape(*a.weights))
    sparse_fc_s8_reference(a);
  else if (a.weights->block_rows == 1)
    block_fc<1>(a);
  else
    block_fc<4>(a);
}

}  // namespace tinyquant::rt::detail
