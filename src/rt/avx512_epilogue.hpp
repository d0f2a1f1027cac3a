// Internal: the 16-lane GEMM epilogue shared by the AVX-512 VNNI and AMX translation units
// (both compiled with -mavx512f -mavx512bw -mavx512vl, both run only on such CPUs).
//
// Everything here has internal linkage, so each including file gets its own copy built with
// its own flags and no inline function is shared between files of different ISAs.
//
// Given raw dot products D[i][j] of one row and the operand sums, the epilogue forms
//   acc = D + (coef * colsum(b)[j] + extra[j]) + (b_offset * rowsum(a)[i] + k * ao * bo [+
//   row_add])
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

// Per-column constant of the epilogue: colterm[j] = coef * colsum[j] + extra[j] (extra = bias or
// col_add, may be null) for j < n, 0 up to n16 = n rounded up to 16; scratch of 4 * n16 bytes.
inline void make_colterm(int32_t n, int32_t coef, const int32_t* colsum, const int32_t* extra,
                         int32_t* colterm) {
  const __m512i vc = _mm512_set1_epi32(coef);
  for (int32_t j = 0; j < n; j += 16) {
    const int32_t cnt = n - j < 16 ? n - j : 16;
    __m512i v = _mm512_mullo_epi32(vc, load16(colsum + j, cnt));
    if (extra != nullptr) v = _mm512_add_epi32(v, load16(extra + j, cnt));
    _mm512_storeu_si512(colterm + j, _mm512_maskz_mov_epi32(lanes16(cnt), v));
  }
}

// Scratch int32 [kEpilogueArrays][n16] of the int8-output epilogue.
constexpr int32_t kEpilogueArrays = 7;

// The int8-output epilogue with every argument copied out of GemmS8Args once per call: kept in
// a local, its fields need no reload after each int8 store (which may alias anything). For
// Rounding::kDouble the per-column parts of requantize() (the multiplier of the odd lanes, the
// left and right shifts, the remainder mask and its half) are precomputed over n16 columns.
struct EpilogueS8 {
  int8_t* c;
  int64_t ldc;
  const int32_t* colterm;  // [n16] each, 0 or the last channel's values past n
  const int32_t* mult;
  const int32_t* mult_odd;
  const int32_t* left;
  const int32_t* right;
  const int32_t* mask;
  const int32_t* half;
  const int32_t* shift;  // per channel or null (kSingle only)
  Rounding rounding;
  int32_t shift0, c_offset, act_min, act_max;

  // Row i, columns [j0, j0 + cnt) (cnt <= 16, j0 % 16 == 0) from raw D at d[0, 16).
  void run(int32_t i, int32_t j0, int32_t cnt, const int32_t* d, int32_t row_term) const {
    __m512i v = _mm512_add_epi32(_mm512_loadu_si512(d), _mm512_loadu_si512(colterm + j0));
    v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term));
    const __m512i vm = _mm512_loadu_si512(mult + j0);
    if (rounding == Rounding::kDouble) {
      const __m512i one = _mm512_set1_epi32(1);
      const __m512i rnd = _mm512_set1_epi64(int64_t{1} << 30);
      const __m512i xs = _mm512_sllv_epi32(v, _mm512_loadu_si512(left + j0));
      const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(xs, vm), rnd);
      const __m512i po = _mm512_add_epi64(
          _mm512_mul_epi32(_mm512_srli_epi64(xs, 32), _mm512_loadu_si512(mult_odd + j0)), rnd);
      const __m512i h =
          _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
      const __m512i remainder = _mm512_and_si512(h, _mm512_loadu_si512(mask + j0));
      v = _mm512_srav_epi32(h, _mm512_loadu_si512(right + j0));
      __m512i threshold = _mm512_loadu_si512(half + j0);
      threshold = _mm512_mask_add_epi32(
          threshold, _mm512_cmplt_epi32_mask(v, _mm512_setzero_si512()), threshold, one);
      v = _mm512_mask_add_epi32(v, _mm512_cmpgt_epi32_mask(remainder, threshold), v, one);
    } else {
      const __m512i vs = shift != nullptr ? load16(shift + j0, cnt) : _mm512_set1_epi32(shift0);
      v = requantize16(v, vm, vs, rounding);
    }
    v = _mm512_add_epi32(v, _mm512_set1_epi32(c_offset));
    v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(act_min)),
                         _mm512_set1_epi32(act_max));
    _mm512_mask_cvtepi32_storeu_epi8(c + i * ldc + j0, lanes16(cnt), v);
  }
};

// arrays: kEpilogueArrays * n16 int32 of scratch, filled here.
inline EpilogueS8 make_epilogue_s8(const GemmS8Args& g, int32_t coef, const int32_t* colsum,
                                   int32_t* arrays) {
  const int32_t n16 = (g.n + 15) / 16 * 16;
  EpilogueS8 e{};
  int32_t* colterm = arrays;
  int32_t* mult = arrays + n16;
  int32_t* mult_odd = arrays + 2 * n16;
  int32_t* left = arrays + 3 * n16;
  int32_t* right = arrays + 4 * n16;
  int32_t* mask = arrays + 5 * n16;
  int32_t* half = arrays + 6 * n16;
  make_colterm(g.n, coef, colsum, g.bias, colterm);
  for (int32_t j = 0; j < n16; j += 16) {
    const int32_t cnt = g.n - j < 16 ? g.n - j : 16;
    const __mmask16 in = lanes16(cnt);
    // Past n: the values of channel 0, so every lane computes something defined.
    const __m512i m0 = _mm512_set1_epi32(g.multiplier[0]);
    const __m512i s0 = _mm512_set1_epi32(g.shift[0]);
    const __m512i vm = g.per_channel ? _mm512_mask_loadu_epi32(m0, in, g.multiplier + j) : m0;
    const __m512i vs = g.per_channel ? _mm512_mask_loadu_epi32(s0, in, g.shift + j) : s0;
    const __m512i zero = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i r = _mm512_max_epi32(_mm512_sub_epi32(zero, vs), zero);
    const __m512i mk = _mm512_sub_epi32(_mm512_sllv_epi32(one, r), one);
    _mm512_storeu_si512(mult + j, vm);
    _mm512_storeu_si512(mult_odd + j, _mm512_srli_epi64(vm, 32));
    _mm512_storeu_si512(left + j, _mm512_max_epi32(vs, zero));
    _mm512_storeu_si512(right + j, r);
    _mm512_storeu_si512(mask + j, mk);
    _mm512_storeu_si512(half + j, _mm512_srli_epi32(mk, 1));
  }
  e.c = g.c;
  e.ldc = g.ldc;
  e.colterm = colterm;
  e.mult = mult;
  e.mult_odd = mult_odd;
  e.left = left;
  e.right = right;
  e.mask = mask;
  e.half = half;
  e.shift = g.per_channel ? g.shift : nullptr;
  e.rounding = g.rounding;
  e.shift0 = g.shift[0];
  e.c_offset = g.c_offset;
  e.act_min = g.act_min;
  e.act_max = g.act_max;
  return e;
}

// The int32-output epilogue: c[i][j] = D + colterm[j] + row_term (row_add[i] included).
struct EpilogueS32 {
  int32_t* c;
  int64_t ldc;
  const int32_t* colterm;

  void run(int32_t i, int32_t j0, int32_t cnt, const int32_t* d, int32_t row_term) const {
    __m512i v = _mm512_add_epi32(_mm512_loadu_si512(d), _mm512_loadu_si512(colterm + j0));
    v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term));
    _mm512_mask_storeu_epi32(c + i * ldc + j0, lanes16(cnt), v);
  }
};

}  // namespace
}  // namespace tinyquant::rt::detail
