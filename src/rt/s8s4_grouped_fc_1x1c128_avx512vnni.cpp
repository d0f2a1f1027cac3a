// Grouped fully-connected, int4 weights, x86 AVX-512 VNNI (vpdpbusd; compiled with only the
// AVX-512 F/BW/VL/VNNI flags, chosen at run time after a CPU check). 128 k (one 64-byte weight
// vector) per step, two output rows per pass; the arithmetic is in grouped_paths.hpp.
//
// Per step the 64 weight bytes are flipped to u = nibble ^ 8 (b ^ 0x88, then the low and the
// high nibbles), and three vpdpbusd give each int32 lane (8 consecutive k, one group)
//   sum u_lo * x_even + sum u_hi * x_odd + io * sum (u_lo + u_hi)
// (io = 128 does not fit a byte and goes in as 64 + 64). The lane is multiplied by its group's
// r = ratio + 1 (the row's 16 ratio bytes from the step's first group, shuffled by the lane
// table and widened), and multiplied and summed in int32 by one vpdpwssd (at most 256 steps: |lane|
// <= 8 * 15 * 255 and r <= 256 keep it below 2^31) before widening to int64. int8 weights
// (s8s8_grouped_fc_1x1c64_avx512vnni, here because it shares these loops): 64 k per step, u = w ^
// 0x80, lanes of 4 k, vpmulld for the ratio.
#include <immintrin.h>

#include "avx512_epilogue.hpp"  // requantize16: this file's flags
#include "grouped_paths.hpp"

// GCC 12's unmasked AVX-512 intrinsics merge into _mm512_undefined_*(), which
// -Wmaybe-uninitialized flags wherever they are inlined: a false positive, silenced here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tinyquant::rt::detail {
namespace {

constexpr int32_t kBytes = 64;  // weight bytes per step: 128 int4 or 64 int8 weights
static_assert(kGroupedChunkAvx512 / 2 == kBytes && kGroupedChunkAvx512S8 == kBytes, "one zmm");
constexpr int32_t kLanes = 16;

// Steps whose int32 lane sums (times r) stay below 2^31 before they widen to int64: int4
// lanes are at most 8 * 15 * 255, int8 lanes 4 * 255 * 255, and r <= 256.
template <bool kS8>
constexpr int32_t flush_steps() noexcept {
  return kS8 ? 32 : 256;
}

inline __m512i widen_add(__m512i acc64, __m512i v32) noexcept {
  acc64 = _mm512_add_epi64(acc64, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v32)));
  return _mm512_add_epi64(acc64, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v32, 1)));
}

struct Consts {
  __m512i flip, low, io_a, io_b, one;
  __mmask64 tail_mask;  // bytes of a row's last step
};

// The ratio bytes a step may read: 16 from its first group on, fewer at the end of a row.
inline __mmask16 ratio_mask(int32_t left) noexcept {
  return left >= kLanes ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1);
}

// R rows' accumulators + the lanes of step c times their group's r. b[i] holds row i's
// flipped weight bytes (0 past k); the rows share the activation and lane-table loads. Each
// row's r = ratio + 1 comes straight from its ratio bytes (a byte shuffle by the lane table,
// then widened), never through memory just written: a vector load spanning earlier vector
// stores does not forward and waits for them to retire.
// A lane is at most 8 * 15 * 255 = 30600 in size and r <= 256, so both are int16 in the low
// half of their dword (r's high half is 0) and one vpdpwssd multiplies and adds exactly.
// int8 weights (kS8): b[i] holds u = w + 128, one vpdpbusd against x and one against io give
// the lane, and the product with r (up to 2^26) needs vpmulld.
template <bool kSplit, bool kS8, int R>
inline void step(const GroupedLaneArgs& a, const Consts& k, const __m512i* b,
                 const uint8_t* const* ratio, int32_t c, __m512i* acc) noexcept {
  const __m512i xe = _mm512_load_si512(a.x_even + int64_t{c} * kBytes);
  const __m128i sel = _mm512_cvtepi32_epi8(_mm512_loadu_si512(a.lane_group + int64_t{c} * kLanes));
  const int32_t first = a.chunk_group[c];
  const __mmask16 m = ratio_mask(a.groups - first);
  __m512i r[R];
  for (int i = 0; i < R; ++i) {
    const __m128i r8 = _mm_shuffle_epi8(_mm_maskz_loadu_epi8(m, ratio[i] + first), sel);
    r[i] = _mm512_add_epi32(_mm512_cvtepu8_epi32(r8), k.one);
  }
  if (kS8) {
    for (int i = 0; i < R; ++i) {
      __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), b[i], xe);
      p = _mm512_dpbusd_epi32(p, b[i], k.io_a);
      if (kSplit) p = _mm512_dpbusd_epi32(p, b[i], k.io_b);
      acc[i] = _mm512_add_epi32(acc[i], _mm512_mullo_epi32(p, r[i]));
    }
    return;
  }
  const __m512i xo = _mm512_load_si512(a.x_odd + int64_t{c} * kBytes);
  for (int i = 0; i < R; ++i) {
    const __m512i lo = _mm512_and_si512(b[i], k.low);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(b[i], 4), k.low);
    const __m512i both = _mm512_add_epi8(lo, hi);
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xe);
    p = _mm512_dpbusd_epi32(p, hi, xo);
    p = _mm512_dpbusd_epi32(p, both, k.io_a);
    if (kSplit) p = _mm512_dpbusd_epi32(p, both, k.io_b);
    acc[i] = _mm512_dpwssd_epi32(acc[i], p, r[i]);
  }
}

// Output rows o .. o + R - 1. Every loop over the R rows is innermost and straight-line, so
// the compiler unrolls it and keeps the rows' vectors in registers.
template <bool kSplit, bool kS8, int R>
void row_block(const GroupedLaneArgs& a, const Consts& k, int32_t o) noexcept {
  constexpr int32_t kFlushSteps = flush_steps<kS8>();
  const int32_t row_bytes = kS8 ? a.k : a.k / 2;
  const auto* weights = kS8 ? reinterpret_cast<const uint8_t*>(a.w8) : a.w4;
  const uint8_t* w[R];
  const uint8_t* ratio[R];
  __m512i xr[R], acc64[R], acc[R], b[R];
  for (int i = 0; i < R; ++i) {
    w[i] = weights + int64_t{o + i} * row_bytes;
    ratio[i] = a.ratio + int64_t{o + i} * a.groups;
    xr[i] = acc64[i] = _mm512_setzero_si512();
  }
  // sum_g r_g * X_g per row as int64 lanes (each product < 2^31).
  for (int32_t g = 0; g < a.groups; g += kLanes) {
    const __mmask16 m = ratio_mask(a.groups - g);
    const __m512i x = _mm512_maskz_loadu_epi32(m, a.group_x + g);
    for (int i = 0; i < R; ++i) {
      const __m512i r =
          _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, ratio[i] + g)), k.one);
      xr[i] = widen_add(xr[i], _mm512_mullo_epi32(r, x));
    }
  }
  for (int32_t c0 = 0; c0 < a.chunks; c0 += kFlushSteps) {
    const int32_t c1 = a.chunks - c0 > kFlushSteps ? c0 + kFlushSteps : a.chunks;
    const int32_t full = c1 < a.chunks ? c1 : a.chunks - 1;
    for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_si512();
    for (int32_t c = c0; c < full; ++c) {
      for (int i = 0; i < R; ++i)
        b[i] = _mm512_xor_si512(_mm512_loadu_si512(w[i] + int64_t{c} * kBytes), k.flip);
      step<kSplit, kS8, R>(a, k, b, ratio, c, acc);
    }
    if (full < c1) {  // the row's last step: bytes past the row become u = 0
      for (int i = 0; i < R; ++i) {
        const __m512i raw = _mm512_maskz_loadu_epi8(k.tail_mask, w[i] + int64_t{full} * kBytes);
        b[i] = _mm512_maskz_mov_epi8(k.tail_mask, _mm512_xor_si512(raw, k.flip));
      }
      step<kSplit, kS8, R>(a, k, b, ratio, full, acc);
    }
    for (int i = 0; i < R; ++i) acc64[i] = widen_add(acc64[i], acc[i]);
  }
  for (int i = 0; i < R; ++i) {
    const int64_t total =
        _mm512_reduce_add_epi64(acc64[i]) + int64_t{a.x_scale} * _mm512_reduce_add_epi64(xr[i]);
    a.t[o + i] = static_cast<int32_t>((total + (int64_t{1} << 7)) >> 8);
  }
}

// bias + t, requantized, offset and clamped, 16 outputs at a time.
void finish(const GroupedLaneArgs& a) noexcept {
  const FcParams& p = *a.params;
  const Requant& rq = *a.rq;
  const __m512i offset = _mm512_set1_epi32(p.output_offset);
  const __m512i lo = _mm512_set1_epi32(p.act_min);
  const __m512i hi = _mm512_set1_epi32(p.act_max);
  __m512i mult = _mm512_set1_epi32(rq.multiplier[0]);
  __m512i shift = _mm512_set1_epi32(rq.shift[0]);
  for (int32_t o = 0; o < a.n; o += kLanes) {
    const int32_t cnt = a.n - o < kLanes ? a.n - o : kLanes;
    __m512i acc = load16(a.t + o, cnt);
    if (a.bias != nullptr) acc = _mm512_add_epi32(acc, load16(a.bias + o, cnt));
    if (rq.per_channel) {
      mult = load16(rq.multiplier + o, cnt);
      shift = load16(rq.shift + o, cnt);
    }
    __m512i r = _mm512_add_epi32(requantize16(acc, mult, shift, rq.rounding), offset);
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    _mm512_mask_cvtepi32_storeu_epi8(a.out + o, lanes16(cnt), r);
  }
}

template <bool kSplit, bool kS8>
void rows(const GroupedLaneArgs& a) noexcept {
  const int32_t row_bytes = kS8 ? a.k : a.k / 2;
  const int32_t tail = row_bytes - (a.chunks - 1) * kBytes;  // bytes of the last step, 1..64
  const int32_t io_a = kSplit ? a.input_offset / 2 : a.input_offset;
  Consts k;
  k.flip = _mm512_set1_epi8(static_cast<char>(kS8 ? 0x80 : 0x88));
  k.low = _mm512_set1_epi8(0x0F);
  k.one = _mm512_set1_epi32(1);
  k.io_a = _mm512_set1_epi8(static_cast<char>(io_a));
  k.io_b = _mm512_set1_epi8(static_cast<char>(a.input_offset - io_a));
  k.tail_mask = tail == kBytes ? ~__mmask64{0} : (__mmask64{1} << tail) - 1;
  int32_t o = 0;
  for (; o + 2 <= a.n; o += 2) row_block<kSplit, kS8, 2>(a, k, o);
  if (o < a.n) row_block<kSplit, kS8, 1>(a, k, o);
  finish(a);
}

}  // namespace

void s8s4_grouped_fc_1x1c128_avx512vnni(const GroupedLaneArgs& a) noexcept {
  if (a.input_offset == 128)
    rows<true, false>(a);
  else
    rows<false, false>(a);
}

void s8s8_grouped_fc_1x1c64_avx512vnni(const GroupedLaneArgs& a) noexcept {
  if (a.input_offset == 128)
    rows<true, true>(a);
  else
    rows<false, true>(a);
}

}  // namespace tinyquant::rt::detail
