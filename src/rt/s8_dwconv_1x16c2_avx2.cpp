// AVX2 path: depthwise conv, one output pixel x 16 channels, taps in pairs on vpmaddwd (the
// driver is s8_dwconv_x86.inc). Each pair of taps is interleaved per channel with vpunpck{l,h}wd
// (input and weights alike), so one vpmaddwd adds both taps of 8 channels; the two accumulators
// hold channels 0-3 / 8-11 and 4-7 / 12-15; they are requantized in that order (the block's
// per-channel constants are arranged to match once per block) with the path's requantize8, and
// vpackssdw puts the channels back in order.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

// x86_avx2_common.inc's row blocking serves the GEMM files; this kernel steps one output pixel
// at a time (kMr) and blocks nothing by bytes, so only its requantize8 is used here.
constexpr int32_t kMr = 1;
constexpr int32_t kBlockBytes = 64 * 1024;
#include "x86_avx2_common.inc"  // requantize8: this file's flags

constexpr int32_t kLanes = 16;
constexpr bool kMaskedLoads = false;  // partial loads copy through a zeroed buffer
using Wide = __m256i;                 // 16 int16
using Shuffle = __m128i;              // pshufb indices

using Vec = __m256i;  // 8 int32 or 16 int16

inline Vec vzero() {
  return _mm256_setzero_si256();
}
inline Vec add32(Vec a, Vec b) {
  return _mm256_add_epi32(a, b);
}
inline Vec madd16(Vec a, Vec b) {
  return _mm256_madd_epi16(a, b);
}
inline Vec unpacklo16(Vec a, Vec b) {
  return _mm256_unpacklo_epi16(a, b);
}
inline Vec unpackhi16(Vec a, Vec b) {
  return _mm256_unpackhi_epi16(a, b);
}
inline Vec set1_32(int32_t v) {
  return _mm256_set1_epi32(v);
}
inline Vec clamp32(Vec v, Vec lo, Vec hi) {
  return _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
}
inline Vec requant(Vec v, Vec mult, Vec shift, Rounding r) {
  return requantize8(v, mult, shift, r);
}
inline Wide wide_set1(int32_t v) {
  return _mm256_set1_epi16(static_cast<int16_t>(v));
}
inline Wide wide_zero() {
  return _mm256_setzero_si256();
}

inline Shuffle make_shuffle(int32_t r, int32_t mult) {
  alignas(16) int8_t idx[16];
  for (int32_t i = 0; i < 16; ++i) idx[i] = static_cast<int8_t>((r + i) / mult);
  return _mm_load_si128(reinterpret_cast<const __m128i*>(idx));
}

template <bool kFull, bool kShuffle>
inline Wide load_wide(const int8_t* p, int32_t n, Shuffle shuffle, Wide offset) {
  alignas(16) int8_t tmp[16] = {};
  if (!kFull) {
    std::memcpy(tmp, p, static_cast<size_t>(n));
    p = tmp;
  }
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (kShuffle) v = _mm_shuffle_epi8(v, shuffle);
  return _mm256_add_epi16(_mm256_cvtepi8_epi16(v), offset);
}

// Accumulator and constant order: lo has channels 0-3 / 8-11, hi 4-7 / 12-15.
// v[oc0, oc0 + cnt) (zeros past cnt, or all zeros when v is null) in that order.
inline void split(const int32_t* v, int32_t oc0, int32_t cnt, Vec* lo, Vec* hi) {
  alignas(32) int32_t tmp[16] = {};
  if (v != nullptr) std::memcpy(tmp, v + oc0, sizeof(int32_t) * static_cast<size_t>(cnt));
  const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
  const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp + 8));
  *lo = _mm256_permute2x128_si256(a, c, 0x20);
  *hi = _mm256_permute2x128_si256(a, c, 0x31);
}
// Writes out[0, cnt) from finished int32 values in the accumulator order.
inline void store_channels(Vec lo, Vec hi, int32_t cnt, int8_t* out) {
  // Channels 0-7 | 8-15 as int16 (already in [-128, 127], so no pack saturates).
  const __m256i h = _mm256_packs_epi32(lo, hi);
  const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  if (cnt == 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
  } else {
    alignas(16) int8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
    std::memcpy(out, tmp, static_cast<size_t>(cnt));
  }
}

#include "s8_dwconv_x86.inc"  // the driver, built with this file's flags

}  // namespace

void s8_dwconv_1x16c2_avx2(const DepthwiseArgs& a) {
  dwconv_run(a);
}

}  // namespace tinyquant::rt::detail
