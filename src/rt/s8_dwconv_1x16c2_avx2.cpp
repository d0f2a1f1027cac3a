// AVX2 path: depthwise conv, one output pixel x 16 channels, taps in pairs on vpmaddwd (the
// driver is s8_dwconv_x86.inc). Each pair of taps is interleaved per channel with vpunpck{l,h}wd
// (input and weights alike), so one vpmaddwd adds both taps of 8 channels; the two accumulators
// hold channels 0-3 / 8-11 and 4-7 / 12-15 and are put back in order once per pixel, then the
// path's epilogue (avx2_requantize_row) requantizes and stores them.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kLanes = 16;
using Wide = __m256i;     // 16 int16
using Shuffle = __m128i;  // pshufb indices

struct Acc {
  __m256i lo, hi;
};

inline Acc acc_zero() {
  return {_mm256_setzero_si256(), _mm256_setzero_si256()};
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

inline void mac2(Acc& acc, Wide x0, Wide x1, Wide w0, Wide w1) {
  acc.lo = _mm256_add_epi32(
      acc.lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), _mm256_unpacklo_epi16(w0, w1)));
  acc.hi = _mm256_add_epi32(
      acc.hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), _mm256_unpackhi_epi16(w0, w1)));
}

class Epilogue {
 public:
  explicit Epilogue(const DepthwiseArgs& a) {
    const ConvParams& p = *a.params;
    g_.n = a.dims->out_c;
    g_.bias = a.bias;
    g_.multiplier = a.multiplier;
    g_.shift = a.shift;
    g_.per_channel = a.per_channel;
    g_.rounding = a.rounding;
    g_.c_offset = p.output_offset;
    g_.act_min = p.act_min;
    g_.act_max = p.act_max;
  }

  void store(const Acc& acc, int32_t oc0, int32_t cnt, int8_t* out) const {
    alignas(32) int32_t sums[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums),
                       _mm256_permute2x128_si256(acc.lo, acc.hi, 0x20));
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8),
                       _mm256_permute2x128_si256(acc.lo, acc.hi, 0x31));
    avx2_requantize_row(g_, oc0, cnt, sums, out);
  }

 private:
  GemmS8Args g_;
};

#include "s8_dwconv_x86.inc"  // the driver, built with this file's flags

}  // namespace

void s8_dwconv_1x16c2_avx2(const DepthwiseArgs& a) {
  dwconv_run(a);
}

}  // namespace tinyquant::rt::detail
