// Internal: the 16-lane GEMM epilogue shared by the AVX-512 VNNI and AMX translation units
// (both compiled with -mavx512f -mavx512bw -mavx512vl, both run only on such CPUs).
//
// Everything here has internal linkage, so each including file gets its own copy built with
// its own flags and no inline function is shared between files of different ISAs.
//
// Given raw dot products D[i][j] of one row and the operand sums, the epilogue forms
//   acc = D + coef * colsum(b)[j] + (b_offset * rowsum(a)[i] + k * a_offset * b_offset) + extra
// (mod 2^32), where coef = a_offset for signed x signed D (AMX) or a_offset - 128 for
// D = sum (a + 128) * b (vpdpbusd), then requantizes exactly as rt::requantize().
// Not a public header: only src/rt/ includes it.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

inline __mmask16 lanes16(int32_t cnt) {
  return cnt >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << cnt) - 1);
}

inline __m512i load16(const int32_t* p, int32_t cnt) {
  return cnt >= 16 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi32(lanes16(cnt), p);
}

// requantize() on 16 lanes, exactly as the scalar definition (see fixed_point.hpp).
inline __m512i requantize16(__m512i x, __m512i mult, __m512i shift, Rounding rounding) {
  const __m512i zero = _mm512_setzero_si512();
  constexpr __mmask16 kOdd = 0xAAAA;
  if (rounding == Rounding::kSingle) {
    // (x * mult + 2^(t - 1)) >> t with t = 31 - shift in [1, 62], per 64-bit product.
    const __m512i t = _mm512_sub_epi32(_mm512_set1_epi32(31), shift);
    const __m512i one = _mm512_set1_epi64(1);
    const __m512i t_even = _mm512_and_si512(t, _mm512_set1_epi64(0xFFFFFFFFll));
    const __m512i t_odd = _mm512_srli_epi64(t, 32);
    __m512i pe = _mm512_mul_epi32(x, mult);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(mult, 32));
    pe = _mm512_add_epi64(pe, _mm512_sllv_epi64(one, _mm512_sub_epi64(t_even, one)));
    po = _mm512_add_epi64(po, _mm512_sllv_epi64(one, _mm512_sub_epi64(t_odd, one)));
    pe = _mm512_srav_epi64(pe, t_even);
    po = _mm512_srav_epi64(po, t_odd);
    return _mm512_mask_blend_epi32(kOdd, pe, _mm512_slli_epi64(po, 32));
  }
  const __m512i left = _mm512_max_epi32(shift, zero);
  const __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
  const __m512i xs = _mm512_sllv_epi32(x, left);
  const __m512i half = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(xs, mult), half);
  const __m512i po = _mm512_add_epi64(
      _mm512_mul_epi32(_mm512_srli_epi64(xs, 32), _mm512_srli_epi64(mult, 32)), half);
  // Bits 31..62 of each product: the low 32 bits of (p >> 31).
  const __m512i h =
      _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
  const __m512i remainder = _mm512_and_si512(h, mask);
  __m512i result = _mm512_srav_epi32(h, right);
  __m512i threshold = _mm512_srli_epi32(mask, 1);
  threshold =
      _mm512_mask_add_epi32(threshold, _mm512_cmplt_epi32_mask(result, zero), threshold, one);
  return _mm512_mask_add_epi32(result, _mm512_cmpgt_epi32_mask(remainder, threshold), result, one);
}

// Row i, columns [j0, j0 + cnt) (cnt <= 16) of an int8-output gemm from raw D at d[0, cnt).
inline void finish_s8_16(const GemmS8Args& g, int32_t i, int32_t j0, int32_t cnt, const int32_t* d,
                         int32_t row_term, int32_t coef, const int32_t* colsum) {
  __m512i v = load16(d, cnt);
  v = _mm512_add_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(coef), load16(colsum + j0, cnt)));
  v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term));
  if (g.bias != nullptr) v = _mm512_add_epi32(v, load16(g.bias + j0, cnt));
  const __m512i mult =
      g.per_channel ? load16(g.multiplier + j0, cnt) : _mm512_set1_epi32(g.multiplier[0]);
  const __m512i sh = g.per_channel ? load16(g.shift + j0, cnt) : _mm512_set1_epi32(g.shift[0]);
  v = _mm512_add_epi32(requantize16(v, mult, sh, g.rounding), _mm512_set1_epi32(g.c_offset));
  v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(g.act_min)),
                       _mm512_set1_epi32(g.act_max));
  _mm512_mask_cvtepi32_storeu_epi8(g.c + int64_t{i} * g.ldc + j0, lanes16(cnt), v);
}

// The same for int32 output (row_term already holds row_add[i]).
inline void finish_s32_16(const GemmS32Args& g, int32_t i, int32_t j0, int32_t cnt,
                          const int32_t* d, int32_t row_term, int32_t coef, const int32_t* colsum) {
  __m512i v = load16(d, cnt);
  v = _mm512_add_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(coef), load16(colsum + j0, cnt)));
  v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term));
  if (g.col_add != nullptr) v = _mm512_add_epi32(v, load16(g.col_add + j0, cnt));
  _mm512_mask_storeu_epi32(g.c + int64_t{i} * g.ldc + j0, lanes16(cnt), v);
}

}  // namespace
}  // namespace tinyquant::rt::detail
