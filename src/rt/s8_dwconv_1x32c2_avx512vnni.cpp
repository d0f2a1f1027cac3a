// AVX-512 path (AVX-512 VNNI and AMX tables): depthwise conv, one output pixel x 32 channels,
// taps in pairs on vpmaddwd, from the same driver as the AVX2 kernel (s8_dwconv_x86.inc) with
// 512-bit registers. Partial channel blocks load with byte masks; the channel-multiplier
// rearrangement is one vpermw on the widened values (indices up to 16, so it crosses 128-bit
// lanes, which pshufb cannot). The epilogue is requantize16 of avx512_epilogue.hpp on the
// accumulators as they are (the block's constants are arranged to match once per block), then
// vpackssdw puts the channels back in order.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "avx512_epilogue.hpp"
#include "path_kernels.hpp"

// GCC 12's unmasked AVX-512 min/max intrinsics merge into _mm512_undefined_*(), which
// -Wmaybe-uninitialized (and, at -O2 with the sanitizers, -Wuninitialized) flags wherever they
// are inlined: a false positive (every lane is written), silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kLanes = 32;
constexpr bool kMaskedLoads = true;  // vmovdqu8 with a byte mask
using Wide = __m512i;                // 32 int16
using Shuffle = __m512i;             // vpermw indices

using Vec = __m512i;  // 16 int32 or 32 int16

inline Vec vzero() {
  return _mm512_setzero_si512();
}
inline Vec add32(Vec a, Vec b) {
  return _mm512_add_epi32(a, b);
}
inline Vec madd16(Vec a, Vec b) {
  return _mm512_madd_epi16(a, b);
}
inline Vec unpacklo16(Vec a, Vec b) {
  return _mm512_unpacklo_epi16(a, b);
}
inline Vec unpackhi16(Vec a, Vec b) {
  return _mm512_unpackhi_epi16(a, b);
}
inline Vec set1_32(int32_t v) {
  return _mm512_set1_epi32(v);
}
inline Vec clamp32(Vec v, Vec lo, Vec hi) {
  return _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
}
inline Vec requant(Vec v, Vec mult, Vec shift, Rounding r) {
  return requantize16(v, mult, shift, r);
}
inline Wide wide_set1(int32_t v) {
  return _mm512_set1_epi16(static_cast<int16_t>(v));
}
inline Wide wide_zero() {
  return _mm512_setzero_si512();
}

inline Shuffle make_shuffle(int32_t r, int32_t mult) {
  alignas(64) int16_t idx[32];
  for (int32_t i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>((r + i) / mult);
  return _mm512_load_si512(idx);
}

template <bool kFull, bool kShuffle>
inline Wide load_wide(const int8_t* p, int32_t n, Shuffle shuffle, Wide offset) {
  const __m256i v =
      kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
            : _mm256_maskz_loadu_epi8(static_cast<__mmask32>((uint64_t{1} << n) - 1), p);
  __m512i x = _mm512_cvtepi8_epi16(v);
  if (kShuffle) x = _mm512_permutexvar_epi16(shuffle, x);
  return _mm512_add_epi16(x, offset);
}

inline __mmask32 lanes32(int32_t cnt) {
  return static_cast<__mmask32>((uint64_t{1} << cnt) - 1);
}
// Accumulator and constant order: 128-bit lane L of lo has channels 8L .. 8L + 3, of hi
// 8L + 4 .. 8L + 7. v[oc0, oc0 + cnt) (zeros past cnt, or all zeros when v is null) in that
// order.
inline void split(const int32_t* v, int32_t oc0, int32_t cnt, Vec* lo, Vec* hi) {
  __m512i a = _mm512_setzero_si512(), c = _mm512_setzero_si512();
  if (v != nullptr) {
    a = _mm512_maskz_loadu_epi32(lanes16(cnt), v + oc0);
    if (cnt > 16) c = _mm512_maskz_loadu_epi32(lanes16(cnt - 16), v + oc0 + 16);
  }
  // permutex2var index i < 16 takes a[i] (channel i), 16 + i takes c[i] (channel 16 + i).
  *lo = _mm512_permutex2var_epi32(
      a, _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27), c);
  *hi = _mm512_permutex2var_epi32(
      a, _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31), c);
}
// Writes out[0, cnt) from finished int32 values in the accumulator order.
inline void store_channels(Vec lo, Vec hi, int32_t cnt, int8_t* out) {
  // Channels 0 .. 31 in order as int16 (already in [-128, 127], so no pack saturates).
  _mm512_mask_cvtepi16_storeu_epi8(out, lanes32(cnt), _mm512_packs_epi32(lo, hi));
}

#include "s8_dwconv_x86.inc"  // the driver, built with this file's flags

}  // namespace

void s8_dwconv_1x32c2_avx512vnni(const DepthwiseArgs& a) {
  dwconv_run(a);
}

}  // namespace tinyquant::rt::detail
