// AVX-512 path (AVX-512 VNNI and AMX tables): depthwise conv, one output pixel x 32 channels,
// taps in pairs on vpmaddwd, from the same driver as the AVX2 kernel (s8_dwconv_x86.inc) with
// 512-bit registers. Partial channel blocks load with byte masks; the channel-multiplier
// rearrangement is one vpermw on the widened values (indices up to 16, so it crosses 128-bit
// lanes, which pshufb cannot). The epilogue is requantize16 of avx512_epilogue.hpp.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "avx512_epilogue.hpp"
#include "path_kernels.hpp"

// GCC 12's unmasked AVX-512 min/max intrinsics merge into _mm512_undefined_*(), which
// -Wmaybe-uninitialized flags wherever they are inlined: a false positive (every lane is
// written), silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kLanes = 32;
using Wide = __m512i;     // 32 int16
using Shuffle = __m512i;  // vpermw indices

struct Acc {
  __m512i lo, hi;
};

inline Acc acc_zero() {
  return {_mm512_setzero_si512(), _mm512_setzero_si512()};
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

inline void mac2(Acc& acc, Wide x0, Wide x1, Wide w0, Wide w1) {
  acc.lo = _mm512_add_epi32(
      acc.lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(x0, x1), _mm512_unpacklo_epi16(w0, w1)));
  acc.hi = _mm512_add_epi32(
      acc.hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(x0, x1), _mm512_unpackhi_epi16(w0, w1)));
}

class Epilogue {
 public:
  explicit Epilogue(const DepthwiseArgs& a)
      : bias_(a.bias),
        mult_(a.multiplier),
        shift_(a.shift),
        per_channel_(a.per_channel),
        rounding_(a.rounding),
        c_offset_(a.params->output_offset),
        act_min_(a.params->act_min),
        act_max_(a.params->act_max) {}

  void store(const Acc& acc, int32_t oc0, int32_t cnt, int8_t* out) const {
    // 128-bit lane L of lo holds channels 8L .. 8L + 3, of hi 8L + 4 .. 8L + 7.
    const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    store16(_mm512_permutex2var_epi64(acc.lo, first, acc.hi), oc0, cnt, out);
    if (cnt > 16) {
      store16(_mm512_permutex2var_epi64(acc.lo, second, acc.hi), oc0 + 16, cnt - 16, out + 16);
    }
  }

 private:
  // Channels [oc, oc + cnt), cnt in [1, 16].
  void store16(__m512i v, int32_t oc, int32_t cnt, int8_t* out) const {
    const __mmask16 m = lanes16(cnt);
    if (bias_ != nullptr) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(m, bias_ + oc));
    const __m512i vm =
        per_channel_ ? _mm512_maskz_loadu_epi32(m, mult_ + oc) : _mm512_set1_epi32(mult_[0]);
    const __m512i vs =
        per_channel_ ? _mm512_maskz_loadu_epi32(m, shift_ + oc) : _mm512_set1_epi32(shift_[0]);
    v = _mm512_add_epi32(requantize16(v, vm, vs, rounding_), _mm512_set1_epi32(c_offset_));
    v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(act_min_)),
                         _mm512_set1_epi32(act_max_));
    _mm512_mask_cvtepi32_storeu_epi8(out, m, v);
  }

  const int32_t* bias_;
  const int32_t* mult_;
  const int32_t* shift_;
  bool per_channel_;
  Rounding rounding_;
  int32_t c_offset_, act_min_, act_max_;
};

#include "s8_dwconv_x86.inc"  // the driver, built with this file's flags

}  // namespace

void s8_dwconv_1x32c2_avx512vnni(const DepthwiseArgs& a) {
  dwconv_run(a);
}

}  // namespace tinyquant::rt::detail
