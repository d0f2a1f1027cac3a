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

// GCC 12's unmasked AVX-512 intrinsics merge into _mm512_undefined_*(), which
// -Wmaybe-uninitialized flags wherever they are inlined: a false positive (every lane is
// written), silenced for the code of this header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

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

// Per-column constant of the epilogue: colterm[j] = coef * colsum[j] + extra[j] + add (extra =
// bias or col_add, may be null; add: a term common to every output) for j < n, 0 up to n16 = n
// rounded up to 16; scratch of 4 * n16 bytes.
inline void make_colterm(int32_t n, int32_t coef, const int32_t* colsum, const int32_t* extra,
                         int32_t* colterm, int32_t add = 0) {
  const __m512i vc = _mm512_set1_epi32(coef);
  const __m512i va = _mm512_set1_epi32(add);
  for (int32_t j = 0; j < n; j += 16) {
    const int32_t cnt = n - j < 16 ? n - j : 16;
    __m512i v = _mm512_add_epi32(_mm512_mullo_epi32(vc, load16(colsum + j, cnt)), va);
    if (extra != nullptr) v = _mm512_add_epi32(v, load16(extra + j, cnt));
    _mm512_storeu_si512(colterm + j, _mm512_maskz_mov_epi32(lanes16(cnt), v));
  }
}

// Scratch int32 [kEpilogueArrays][n16] of the int8-output epilogue.
constexpr int32_t kEpilogueArrays = 14;

// The per-column parts of requantize() for Rounding::kDouble, 16 columns. Even columns sit in
// the 64-bit lanes of the *_even vectors, odd ones in those of *_odd.
//
// requantize() with kDouble is h = (xs * m + 2^30) >> 31 (xs = x << left, wrapping), then
// h / 2^e rounded half away from zero (e = right shift): (h + 2^(e-1) - [h < 0]) >> e for
// e >= 1, h for e = 0. Both floor divisions nest into one on the 64-bit product:
//   result = (xs * m + 2^30 + 2^31 * (2^(e-1) - [h < 0])) >> (31 + e),  h < 0 <=> xs * m < -2^30
// exact in 64 bits (|xs * m| < 2^62). So per 64-bit lane: multiply, add bias, subtract corr
// where the product is below -2^30, arithmetic shift.
//
// The output offset c can ride in the bias too: with T = 31 + e and q the sum above,
// (q + c * 2^T) >> T = (q >> T) + c exactly (floor division of a sum with a multiple of 2^T),
// and the low 32 bits of that are the reference's wrapping 32-bit add, provided the 64-bit sum
// does not overflow. |xs| <= 2^31 and 0 <= m < 2^31 give |p| <= 2^62 - 2^31; the bias lies in
// [2^30, 2^30 + 2^(30+e)] and corr in {0, 2^31}, so
//   |p + bias - corr + c * 2^T| < 2^62 + 2^(30+e) + |c| * 2^(31+e) = 2^62 + 2^(30+e) (1 + 2|c|)
// which is <= 2^63 whenever 1 + 2|c| <= 2^(32-e): for |c| <= 128 (the output offsets
// validate.hpp admits) every e <= 23. c_offset_foldable() checks it per call.
//
// So can the column term ct (x = D + ct): with no left shift and D + ct inside int32 (no wrap),
// x * m = D * m + ct * m, so the bias takes ct * m and the multiplies read raw D; the half-away
// test x * m < -2^30 becomes D * m < -2^30 - ct * m (below, per column). Same product, same
// bound.
//
// Where every column shifts right (e >= 1, T >= 32) the final shift can run on 32-bit lanes:
// q >> T = (q >> 32) >> (e - 1), and q >> 32, the high half of q, is an int32 (|q| < 2^63), as
// is the result; so one permute gathers the high halves of the even and odd products and one
// 16-lane shift by e - 1 finishes, instead of two 64-bit shifts and the permute.
//
// The doubled form (column term folded, no left shift; e >= 1 and e = 0 columns alike) moves the
// half-away correction after the permute, onto 16 lanes at once. With c = [h < 0]:
//   result = floor((q - 2^31 c) / 2^T) = floor(floor((2q - 2^32 c) / 2^32) / 2^e)
//          = (V >> e),  V = floor(2q / 2^32) - c = hi32(2q) - c
// (nested floor divisions). Everything up to V may wrap: V mod 2^32 only needs 2q mod 2^64, so
// only V itself has to lie inside int32 for the 32-bit shift to be exact.
// - V: write x * m + 2^30 = 2^31 h + r, 0 <= r < 2^31. For e >= 1 the bias adds 2^31 (2^(e-1) +
//   c_offset 2^e), so V = h - c + 2^(e-1) + c_offset 2^e, and with |x| <= xb (xb = d_bound +
//   the largest |ct|) and m < 2^31, |h| <= xb: V stays inside int32 for every e <= emax when
//   xb + 2^(emax-1) (1 + 2|c_offset|) <= 2^31 - 1 (twice_fits(), per call; c_offset 0 when not
//   folded). For e = 0 the bias adds c_offset 2^31 and c is 0, so V = h + c_offset, whose low
//   32 bits are the reference's wrapping add whatever its size: no bound.
// - 2q = D * 2m + 2 bias. 2m fits an int32 only for m < 2^30; for m >= 2^30 the multiplier is
//   m2 = 2m - 2^32 (the int32 of 2m mod 2^32), and D * m2 + 2 bias = 2q - D 2^32, whose high
//   dword is hi32(2q) - D mod 2^32: those columns add the raw D after the permute (the same 16
//   values in column order). m2 < 0 exactly for those columns, so their mask is m2's sign.
// - c = [h < 0] may be replaced by [x < 0]: h < 0 needs x * m < -2^30, so x < 0; and x < 0 with
//   h >= 0 means h = 0, where (0 - c + 2^(e-1)) >> e = 0 for c = 0 and c = 1 (and V stays in the
//   bound above). x < 0 <=> D < -ct, exact as D + ct does not wrap (colterm_fits; so -ct is an
//   int32 too): one 16-lane compare of the raw D with -ct per column, INT32_MIN (no D is below
//   it) for e = 0 columns, where c must be 0. m = 0: h = 0, so either c is right.
// Per 16 outputs: 2 vpmuldq, 2 adds, the permute, the masked add of D, the compare, the masked
// subtract of c and the 32-bit shift by e.
struct DoubleParams {
  __m512i mult, mult_odd;  // multiplier, or m2 in the doubled form (in the low half of each
                           // 64-bit lane for mult_odd)
  __m512i left;            // left shift per column (32-bit lanes)
  __m512i bias_even, bias_odd, corr_even, corr_odd, shift_even, shift_odd;  // 64-bit lanes
  // bias_*: 2 bias in the doubled form, which reads no corr_*, shift_* or below_*
  __m512i below_even, below_odd;  // -2^30 (- ct * m), 64-bit lanes
  __m512i last_shift;             // e - 1 per column (32-bit lanes), e in the doubled form
  __m512i negx;                   // doubled form: -ct, or INT32_MIN where e = 0 (32-bit lanes)
};

// Whether the doubled form's V stays inside int32 (see DoubleParams): |x| <= xb = d_bound +
// ct_abs, emax the largest right shift of the call, c_fold the output offset in the bias or 0.
inline bool twice_fits(int64_t d_bound, int64_t ct_abs, int32_t emax, int32_t c_fold) {
  if (emax == 0) return true;
  const uint64_t c = c_fold < 0 ? uint64_t{0} - static_cast<uint64_t>(int64_t{c_fold})
                                : static_cast<uint64_t>(c_fold);
  const auto xb = static_cast<uint64_t>(d_bound + ct_abs);  // both in [0, 2^31]
  return xb + (uint64_t{1} << (emax - 1)) * (2 * c + 1) <= uint64_t{INT32_MAX};
}

// Whether c_offset * 2^(31 + e) fits in the 64-bit bias of every channel (see DoubleParams):
// 1 + 2|c_offset| <= 2^(32 - e) for the largest right shift e = -lowest (lowest: the lowest of
// the call's shifts and 0).
inline bool c_offset_foldable(int32_t lowest, int32_t c_offset) {
  const uint64_t c = c_offset < 0 ? uint64_t{0} - static_cast<uint64_t>(int64_t{c_offset})
                                  : static_cast<uint64_t>(c_offset);
  return lowest >= -32 && 2 * c + 1 <= (uint64_t{1} << 32) >> -lowest;
}

// The lowest and the highest of v[0, cnt) and 0.
inline void range_with_zero(const int32_t* v, int32_t cnt, int32_t* lowest, int32_t* highest) {
  __m512i lo = _mm512_setzero_si512();
  __m512i hi = lo;
  for (int32_t j = 0; j < cnt; j += 16) {
    const __m512i x = load16(v + j, cnt - j);  // zero past cnt
    lo = _mm512_min_epi32(lo, x);
    hi = _mm512_max_epi32(hi, x);
  }
  *lowest = _mm512_reduce_min_epi32(lo);
  *highest = _mm512_reduce_max_epi32(hi);
}

// Whether D + colterm[j] stays inside int32 for every |D| <= d_bound and j < n, from the lowest
// and highest column terms (range_with_zero).
inline bool colterm_fits(int32_t lowest, int32_t highest, int64_t d_bound) {
  if (d_bound < 0 || d_bound > INT32_MAX) return false;
  return lowest >= d_bound - INT32_MAX && highest <= INT32_MAX - d_bound;
}

// The DoubleParams of columns [j, j + 16) straight from the multipliers and shifts ([n] when
// per_channel, else [1]); past n the values of channel 0, so every lane computes something
// defined. c_fold: the output offset folded into the bias (c_offset_foldable) or 0; ct: the
// column terms of these columns to fold into the bias, or null; twice: the doubled form (ct not
// null).
inline DoubleParams make_double_params(const int32_t* multiplier, const int32_t* shift,
                                       bool per_channel, int32_t n, int32_t j, int32_t c_fold,
                                       const int32_t* ct, bool twice = false) {
  const __mmask16 in = lanes16(n - j);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i m0 = _mm512_set1_epi32(multiplier[0]);
  const __m512i s0 = _mm512_set1_epi32(shift[0]);
  const __m512i vs = per_channel ? _mm512_mask_loadu_epi32(s0, in, shift + j) : s0;
  DoubleParams p;
  p.mult = per_channel ? _mm512_mask_loadu_epi32(m0, in, multiplier + j) : m0;
  p.mult_odd = _mm512_srli_epi64(p.mult, 32);
  p.left = _mm512_max_epi32(vs, zero);
  const __m512i r = _mm512_max_epi32(_mm512_sub_epi32(zero, vs), zero);  // e
  p.last_shift = twice ? r : _mm512_sub_epi32(r, _mm512_set1_epi32(1));
  // e of the even and odd columns in 64-bit lanes; per lane: bias 2^30 + 2^(e-1) * 2^31
  // (+ c_fold * 2^(31 + e)) and corr 2^31 for e >= 1, bias 2^30 (+ c_fold * 2^31) and corr 0
  // for e = 0; shift 31 + e.
  const __m512i e_lanes[2] = {_mm512_and_si512(r, _mm512_set1_epi64(0xFFFFFFFF)),
                              _mm512_srli_epi64(r, 32)};
  __m512i* const bias[2] = {&p.bias_even, &p.bias_odd};
  __m512i* const corr[2] = {&p.corr_even, &p.corr_odd};
  __m512i* const total[2] = {&p.shift_even, &p.shift_odd};
  __m512i* const below[2] = {&p.below_even, &p.below_odd};
  const __m512i vct = ct != nullptr ? _mm512_loadu_si512(ct) : zero;
  const __m512i x_lanes[2] = {vct, _mm512_srli_epi64(vct, 32)};
  const __m512i* const m_lanes[2] = {&p.mult, &p.mult_odd};
  for (int h = 0; h < 2; ++h) {
    const __m512i eh = e_lanes[h];
    const __mmask8 pos = _mm512_cmpgt_epi64_mask(eh, zero);
    const __m512i half = _mm512_sllv_epi64(one, _mm512_add_epi64(eh, _mm512_set1_epi64(30)));
    *corr[h] = _mm512_maskz_mov_epi64(pos, _mm512_set1_epi64(int64_t{1} << 31));
    *total[h] = _mm512_add_epi64(eh, _mm512_set1_epi64(31));
    *bias[h] =
        _mm512_add_epi64(_mm512_set1_epi64(int64_t{1} << 30), _mm512_maskz_mov_epi64(pos, half));
    *below[h] = _mm512_set1_epi64(-(int64_t{1} << 30));
    if (c_fold != 0) {
      *bias[h] =
          _mm512_add_epi64(*bias[h], _mm512_sllv_epi64(_mm512_set1_epi64(c_fold), *total[h]));
    }
    if (ct != nullptr) {
      const __m512i ct_m = _mm512_mul_epi32(x_lanes[h], *m_lanes[h]);
      *bias[h] = _mm512_add_epi64(*bias[h], ct_m);
      *below[h] = _mm512_sub_epi64(*below[h], ct_m);
    }
    if (twice) *bias[h] = _mm512_add_epi64(*bias[h], *bias[h]);
  }
  if (twice) {
    p.mult = _mm512_add_epi32(p.mult, p.mult);  // m2
    p.mult_odd = _mm512_srli_epi64(p.mult, 32);
    p.negx = _mm512_mask_sub_epi32(_mm512_set1_epi32(INT32_MIN), _mm512_cmpgt_epi32_mask(r, zero),
                                   zero, vct);
  } else {
    p.negx = _mm512_set1_epi32(INT32_MIN);
  }
  return p;
}

// Whether some lane shifts left.
inline bool any_left(const DoubleParams& p) {
  return _mm512_test_epi32_mask(p.left, p.left) != 0;
}

// Whether every lane shifts right (e >= 1).
inline bool all_right(const DoubleParams& p) {
  return _mm512_cmplt_epi32_mask(p.last_shift, _mm512_setzero_si512()) == 0;
}

// requantize() with Rounding::kDouble on 16 lanes, already shifted left, from the per-column
// parts: x_even holds the even columns' values in the low 32 bits of its 64-bit lanes, x_odd the
// odd ones' (vpmuldq reads only those, so x_odd may be the same 16 values loaded one int32
// further on). kHigh: every lane shifts right (all_right), the last shift on 32-bit lanes.
template <bool kHigh = false>
inline __m512i requantize16_double_split(__m512i x_even, __m512i x_odd, const DoubleParams& p) {
  const __m512i pe = _mm512_mul_epi32(x_even, p.mult);
  const __m512i po = _mm512_mul_epi32(x_odd, p.mult_odd);
  __m512i qe = _mm512_add_epi64(pe, p.bias_even);
  __m512i qo = _mm512_add_epi64(po, p.bias_odd);
  qe = _mm512_mask_sub_epi64(qe, _mm512_cmplt_epi64_mask(pe, p.below_even), qe, p.corr_even);
  qo = _mm512_mask_sub_epi64(qo, _mm512_cmplt_epi64_mask(po, p.below_odd), qo, p.corr_odd);
  if (kHigh) {
    // The high 32 bits of each 64-bit lane, even and odd columns interleaved again.
    const __m512i hi = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1);
    return _mm512_srav_epi32(_mm512_permutex2var_epi32(qe, hi, qo), p.last_shift);
  }
  qe = _mm512_srav_epi64(qe, p.shift_even);
  qo = _mm512_srav_epi64(qo, p.shift_odd);
  // The low 32 bits of each 64-bit lane, even and odd columns interleaved again.
  const __m512i idx = _mm512_set_epi32(30, 14, 28, 12, 26, 10, 24, 8, 22, 6, 20, 4, 18, 2, 16, 0);
  return _mm512_permutex2var_epi32(qe, idx, qo);
}

// requantize() with Rounding::kDouble on 16 lanes from the doubled form's parts (DoubleParams) and
// the raw D of 16 columns: d from the row's start, d1 one int32 further on; add_d: the columns
// with m >= 2^30 (m2 < 0).
inline __m512i requantize16_twice(__m512i d, __m512i d1, const DoubleParams& p, __mmask16 add_d) {
  const __m512i qe = _mm512_add_epi64(_mm512_mul_epi32(d, p.mult), p.bias_even);
  const __m512i qo = _mm512_add_epi64(_mm512_mul_epi32(d1, p.mult_odd), p.bias_odd);
  const __m512i hi = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1);
  __m512i v = _mm512_permutex2var_epi32(qe, hi, qo);
  v = _mm512_mask_add_epi32(v, add_d, v, d);
  v = _mm512_mask_sub_epi32(v, _mm512_cmplt_epi32_mask(d, p.negx), v, _mm512_set1_epi32(1));
  return _mm512_srav_epi32(v, p.last_shift);
}

// requantize() with Rounding::kDouble on 16 lanes from the per-column parts; kLeft false when
// no channel shifts left (left is then 0 in every lane).
template <bool kLeft>
inline __m512i requantize16_double(__m512i v, const DoubleParams& p) {
  const __m512i xs = kLeft ? _mm512_sllv_epi32(v, p.left) : v;
  return requantize16_double_split(xs, _mm512_srli_epi64(xs, 32), p);
}

// The int8-output epilogue with every argument copied out of GemmS8Args once per call: kept in
// a local, its fields need no reload after each int8 store (which may alias anything). For
// Rounding::kDouble the per-column parts of requantize() (DoubleParams) are either precomputed
// over n16 columns (a driver that finishes each 16 columns many times) or built from the
// multipliers and shifts where a group of 16 columns is finished (one that finishes each group
// once per call, e.g. a single panel of rows: no arrays written and read back).
struct EpilogueS8 {
  int8_t* c;
  int64_t ldc;
  const int32_t* colterm;     // [n16] each, 0 or the last channel's values past n
  bool fold_c;                // kDouble: c_offset is in the bias (c_offset_foldable)
  bool fold_ct;               // kDouble: colterm is in the bias, d holds raw D (DoubleParams)
  bool twice;                 // fold_ct and the doubled form's bound holds (twice_fits)
  bool precomputed;           // kDouble: the arrays below hold DoubleParams
  const int32_t* multiplier;  // as in GemmS8Args, read when not precomputed
  const int32_t* shift_in;
  bool per_channel;
  int32_t n;
  const int32_t* mult;
  const int32_t* mult_odd;
  const int32_t* left;
  const int32_t* bias_even;  // [n16 / 2] 64-bit lanes each
  const int32_t* bias_odd;
  const int32_t* corr_even;
  const int32_t* corr_odd;
  const int32_t* shift_even;
  const int32_t* shift_odd;
  const int32_t* below_even;  // read when fold_ct
  const int32_t* below_odd;
  const int32_t* last_shift;
  const int32_t* negx;   // read when twice
  const int32_t* shift;  // per channel or null (kSingle only)
  Rounding rounding;
  bool full_range;  // act_min -128 and act_max 127: the saturating int8 store clamps
  int32_t shift0, c_offset, act_min, act_max;

  // kTwice: twice (a constant, so the parts the doubled form does not read are not built).
  template <bool kTwice>
  DoubleParams double_params(int32_t j0) const {
    if (!precomputed) {
      return make_double_params(multiplier, shift_in, per_channel, n, j0, fold_c ? c_offset : 0,
                                fold_ct ? colterm + j0 : nullptr, kTwice);
    }
    DoubleParams p;
    p.mult = _mm512_loadu_si512(mult + j0);
    p.mult_odd = _mm512_loadu_si512(mult_odd + j0);
    p.left = _mm512_loadu_si512(left + j0);
    p.bias_even = _mm512_loadu_si512(bias_even + j0);
    p.bias_odd = _mm512_loadu_si512(bias_odd + j0);
    p.corr_even = _mm512_loadu_si512(corr_even + j0);
    p.corr_odd = _mm512_loadu_si512(corr_odd + j0);
    p.shift_even = _mm512_loadu_si512(shift_even + j0);
    p.shift_odd = _mm512_loadu_si512(shift_odd + j0);
    const __m512i below = _mm512_set1_epi64(-(int64_t{1} << 30));
    p.below_even = fold_ct ? _mm512_loadu_si512(below_even + j0) : below;
    p.below_odd = fold_ct ? _mm512_loadu_si512(below_odd + j0) : below;
    p.last_shift = _mm512_loadu_si512(last_shift + j0);
    p.negx = kTwice ? _mm512_loadu_si512(negx + j0) : _mm512_set1_epi32(INT32_MIN);
    return p;
  }

  // + c_offset (wrapping) unless folded into the requantization, clamp, store lanes [0, cnt) at
  // dst.
  template <bool kAddOffset>
  void finish(__m512i v, int8_t* dst, __mmask16 lanes) const {
    if (kAddOffset) v = _mm512_add_epi32(v, _mm512_set1_epi32(c_offset));
    store_s8(v, dst, lanes, full_range, _mm512_set1_epi32(act_min), _mm512_set1_epi32(act_max));
  }

  // Clamp to [lo, hi] unless full (the saturating store clamps), store lanes at dst.
  static void store_s8(__m512i v, int8_t* dst, __mmask16 lanes, bool full, __m512i lo, __m512i hi) {
    if (!full) v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
    _mm512_mask_cvtsepi32_storeu_epi8(dst, lanes, v);
  }

  // Row i, columns [j0, j0 + cnt) (cnt <= 16, j0 % 16 == 0) from raw D at d[0, 16). Not with
  // twice (whose callers use rows()).
  void run(int32_t i, int32_t j0, int32_t cnt, const int32_t* d, int32_t row_term) const {
    __m512i v = _mm512_loadu_si512(d);
    if (!fold_ct) v = _mm512_add_epi32(v, _mm512_loadu_si512(colterm + j0));
    v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term));
    int8_t* const dst = c + i * ldc + j0;
    if (rounding == Rounding::kDouble) {
      v = requantize16_double<true>(v, double_params<false>(j0));
      if (fold_c) {
        finish<false>(v, dst, lanes16(cnt));
        return;
      }
    } else {
      const __m512i vs = shift != nullptr ? load16(shift + j0, cnt) : _mm512_set1_epi32(shift0);
      const __m512i vm =
          per_channel ? load16(multiplier + j0, cnt) : _mm512_set1_epi32(multiplier[0]);
      v = requantize16(v, vm, vs, rounding);
    }
    finish<true>(v, dst, lanes16(cnt));
  }

  // Rows [i, i + rows) of columns [j0, j0 + cnt) from raw D at d (row stride ldd int32);
  // row_term[r] is added to row i + r, or nothing when row_term is null.
  void rows(int32_t i, int32_t rows, int32_t j0, int32_t cnt, const int32_t* d, int32_t ldd,
            const int32_t* row_term) const {
    if (rounding != Rounding::kDouble) {
      for (int32_t r = 0; r < rows; ++r) {
        run(i + r, j0, cnt, d + int64_t{r} * ldd, row_term != nullptr ? row_term[r] : 0);
      }
      return;
    }
    if (twice) {  // no left shift, no row term
      rows_double_fold<false, true, Final::kTwice>(double_params<true>(j0), i, rows, j0, cnt, d,
                                                   ldd, row_term);
      return;
    }
    const DoubleParams p = double_params<false>(j0);
    if (fold_ct && all_right(p)) {
      rows_double_fold<false, true, Final::kHigh>(p, i, rows, j0, cnt, d, ldd, row_term);
    } else if (fold_ct) {
      rows_double_fold<false, true, Final::kShift64>(p, i, rows, j0, cnt, d, ldd, row_term);
    } else if (any_left(p)) {
      rows_double_fold<true, false, Final::kShift64>(p, i, rows, j0, cnt, d, ldd, row_term);
    } else {
      rows_double_fold<false, false, Final::kShift64>(p, i, rows, j0, cnt, d, ldd, row_term);
    }
  }

  // How rows_double() finishes with kDirect: 64-bit shifts, the high dwords shifted by e - 1
  // (every lane shifts right) or the doubled form (twice).
  enum class Final { kShift64, kHigh, kTwice };

  // rows_double() with kFold = fold_c.
  template <bool kLeft, bool kDirect, Final kFinal>
  void rows_double_fold(const DoubleParams& p, int32_t i, int32_t rows, int32_t j0, int32_t cnt,
                        const int32_t* d, int32_t ldd, const int32_t* row_term) const {
    if (fold_c) {
      rows_double<kLeft, kDirect, kFinal, true>(p, i, rows, j0, cnt, d, ldd, row_term);
    } else {
      rows_double<kLeft, kDirect, kFinal, false>(p, i, rows, j0, cnt, d, ldd, row_term);
    }
  }

  // rows() for Rounding::kDouble with every per-column operand held in registers. kDirect
  // (fold_ct): the multiplies read raw D, the even columns from d and the odd ones from d + 1
  // (the 16th of those reads d[16]: the caller's buffer has 4 bytes past every row). kFold:
  // c_offset is in the bias. kFinal: see Final (kShift64 without kDirect).
  template <bool kLeft, bool kDirect, Final kFinal, bool kFold>
  void rows_double(const DoubleParams& p, int32_t i, int32_t rows, int32_t j0, int32_t cnt,
                   const int32_t* d, int32_t ldd, const int32_t* row_term) const {
    const __m512i ct = _mm512_loadu_si512(colterm + j0);
    const __mmask16 add_d =
        _mm512_cmplt_epi32_mask(p.mult, _mm512_setzero_si512());  // doubled form: m >= 2^30
    const __mmask16 lanes = lanes16(cnt);
    // Copied out of *this, which the int8 stores might alias as far as the compiler knows.
    const bool full = full_range;
    const __m512i off = _mm512_set1_epi32(c_offset);
    const __m512i lo = _mm512_set1_epi32(act_min);
    const __m512i hi = _mm512_set1_epi32(act_max);
    int8_t* dst = c + i * ldc + j0;
    const int64_t ld = ldc;
    for (int32_t r = 0; r < rows; ++r, d += ldd, dst += ld) {
      __m512i q;
      if (kDirect && kFinal == Final::kTwice) {
        q = requantize16_twice(_mm512_loadu_si512(d), _mm512_loadu_si512(d + 1), p, add_d);
      } else if (kDirect) {
        q = requantize16_double_split<kFinal == Final::kHigh>(_mm512_loadu_si512(d),
                                                              _mm512_loadu_si512(d + 1), p);
      } else {
        __m512i v = _mm512_add_epi32(_mm512_loadu_si512(d), ct);
        if (row_term != nullptr) v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term[r]));
        q = requantize16_double<kLeft>(v, p);
      }
      if (!kFold) q = _mm512_add_epi32(q, off);
      store_s8(q, dst, lanes, full, lo, hi);
    }
  }
};

// arrays: kEpilogueArrays * n16 int32 of scratch, filled here (only colterm unless
// `precompute`). add: a term common to every output, folded into colterm. d_bound >= 0: the
// caller hands rows() raw D with |D| <= d_bound, no row terms, and 4 readable bytes past each
// row of d (colterm and c_offset may then go into the requantization's bias); -1: D is not raw
// (and the per-call checks for those folds would cost more than they save).
inline EpilogueS8 make_epilogue_s8(const GemmS8Args& g, int32_t coef, const int32_t* colsum,
                                   int32_t* arrays, bool precompute, int32_t add = 0,
                                   int64_t d_bound = -1) {
  const int32_t n16 = (g.n + 15) / 16 * 16;
  EpilogueS8 e{};
  int32_t* out[kEpilogueArrays];
  for (int32_t a = 0; a < kEpilogueArrays; ++a) out[a] = arrays + a * n16;
  make_colterm(g.n, coef, colsum, g.bias, out[0], add);
  const bool dbl = g.rounding == Rounding::kDouble;
  if (dbl && d_bound >= 0) {  // raw D (callers pass it for m > 1: the folds pay for the checks)
    int32_t lowest = 0, highest = 0, ct_low = 0, ct_high = 0;
    range_with_zero(g.shift, g.per_channel ? g.n : 1, &lowest, &highest);
    range_with_zero(out[0], g.n, &ct_low, &ct_high);
    e.fold_c = c_offset_foldable(lowest, g.c_offset);
    e.fold_ct = highest == 0 && colterm_fits(ct_low, ct_high, d_bound);
    e.twice =
        e.fold_ct && twice_fits(d_bound, -int64_t{ct_low} > ct_high ? -int64_t{ct_low} : ct_high,
                                -lowest, e.fold_c ? g.c_offset : 0);
  }
  e.precomputed = precompute && dbl;
  for (int32_t j = 0; e.precomputed && j < n16; j += 16) {
    const DoubleParams p =
        make_double_params(g.multiplier, g.shift, g.per_channel, g.n, j, e.fold_c ? g.c_offset : 0,
                           e.fold_ct ? out[0] + j : nullptr, e.twice);
    const __m512i fields[kEpilogueArrays - 1] = {
        p.mult,       p.mult_odd,  p.left,       p.bias_even, p.bias_odd,   p.corr_even, p.corr_odd,
        p.shift_even, p.shift_odd, p.below_even, p.below_odd, p.last_shift, p.negx};
    for (int32_t a = 1; a < kEpilogueArrays; ++a) _mm512_storeu_si512(out[a] + j, fields[a - 1]);
  }
  e.c = g.c;
  e.ldc = g.ldc;
  e.colterm = out[0];
  e.multiplier = g.multiplier;
  e.shift_in = g.shift;
  e.per_channel = g.per_channel;
  e.n = g.n;
  e.mult = out[1];
  e.mult_odd = out[2];
  e.left = out[3];
  e.bias_even = out[4];
  e.bias_odd = out[5];
  e.corr_even = out[6];
  e.corr_odd = out[7];
  e.shift_even = out[8];
  e.shift_odd = out[9];
  e.below_even = out[10];
  e.below_odd = out[11];
  e.last_shift = out[12];
  e.negx = out[13];
  e.shift = g.per_channel ? g.shift : nullptr;
  e.rounding = g.rounding;
  e.full_range = g.act_min == -128 && g.act_max == 127;
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

  // As EpilogueS8::rows.
  void rows(int32_t i, int32_t rows, int32_t j0, int32_t cnt, const int32_t* d, int32_t ldd,
            const int32_t* row_term) const {
    const __m512i ct = _mm512_loadu_si512(colterm + j0);
    const __mmask16 out = lanes16(cnt);
    int32_t* dst = c + i * ldc + j0;
    for (int32_t r = 0; r < rows; ++r, d += ldd, dst += ldc) {
      __m512i v = _mm512_add_epi32(_mm512_loadu_si512(d), ct);
      if (row_term != nullptr) v = _mm512_add_epi32(v, _mm512_set1_epi32(row_term[r]));
      _mm512_mask_storeu_epi32(dst, out, v);
    }
  }
};

}  // namespace
}  // namespace tinyquant::rt::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
