// Grouped fully-connected, int4 and int8 weights, x86 AVX2 (compiled with only the AVX2 flags,
// chosen at run time after a CPU check). One output row at a time, one 32-byte weight vector
// (64 int4 or 32 int8 k) per step; the arithmetic is in grouped_paths.hpp.
//
// int4: the weight bytes are flipped to u = nibble ^ 8 (b ^ 0x88, then the low and the high
// nibbles) and vpmaddubsw forms, per int16 pair,
//   u_lo * x_even + u_hi * x_odd + io * (u_lo + u_hi)
// (each term at most 2 * 30 * 128 in size, so the int16 sums stay below 2^15; io = 128 goes in
// as 64 + 64), vpmaddwd against ones makes int32 lanes of 8 consecutive k (one group each).
// A lane is multiplied by its group's r = ratio + 1 (one vpermd from the row's expanded
// ratios, one vpmaddwd) and summed in int32 for at most 256 steps (|lane| <= 8 * 15 * 255, r <=
// 256), then widened to int64.
// int8 (s8s8_grouped_fc_1x1c32_avx2): the two 16-byte halves are widened to int16 (vpmovsxbw)
// and vpmaddwd multiplies them by x + io (int16, from the caller), vphaddd joins neighbouring
// pairs into lanes of 4 k (|lane| <= 4 * 128 * 255), vpmulld multiplies by r, and the lanes sum
// in int32 for at most 64 steps (64 * 130560 * 256 < 2^31).
#include <immintrin.h>

#include <cstring>

#include "grouped_paths.hpp"
#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

// Only x86_avx2_common.inc's requantize8 is used here (its row blocking serves the GEMMs).
constexpr int32_t kMr = 1;
constexpr int32_t kBlockBytes = 64 * 1024;
#include "x86_avx2_common.inc"  // requantize8: this file's flags

constexpr int32_t kBytes = 32;  // weight bytes per step
static_assert(kGroupedChunkAvx2 / 2 == kBytes && kGroupedChunkAvx2S8 == kBytes, "one ymm");
constexpr int32_t kLanes = 8;

inline __m256i widen_add(__m256i acc64, __m256i v32) noexcept {
  acc64 = _mm256_add_epi64(acc64, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v32)));
  return _mm256_add_epi64(acc64, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v32, 1)));
}

inline int64_t hsum64(__m256i v) noexcept {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s)));
}

// The r of step c's lanes: one vpermd of the row's expanded ratios (rr) by the lane table.
inline __m256i lane_ratios(const GroupedLaneArgs& a, const int32_t* rr, int32_t c) noexcept {
  const __m256i idx =
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.lane_group + int64_t{c} * kLanes));
  const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rr + a.chunk_group[c]));
  return _mm256_permutevar8x32_epi32(r, idx);
}

// int4 weights; kSplit: io = 128 enters as 64 + 64.
template <bool kSplit>
struct S4 {
  static constexpr int32_t kFlushSteps = 256;  // int32 lane sums widen to int64 this often
  static constexpr uint8_t kFlip = 0x88;       // u = nibble ^ 8 of both nibbles
  static constexpr bool kAnyPad = false;       // bytes past a row add io * u: must be u = 0
  __m256i low, ones, io_a, io_b;

  explicit S4(int32_t io) noexcept {
    const int32_t io_a_v = kSplit ? io / 2 : io;
    low = _mm256_set1_epi8(0x0F);
    ones = _mm256_set1_epi16(1);
    io_a = _mm256_set1_epi8(static_cast<char>(io_a_v));
    io_b = _mm256_set1_epi8(static_cast<char>(io - io_a_v));
  }
  static int32_t row_bytes(const GroupedLaneArgs& a) noexcept { return a.k / 2; }

  // The lanes of step c, times their group's r. b holds the flipped weight bytes (0 past k).
  __m256i step(const GroupedLaneArgs& a, const int32_t* rr, __m256i b, int32_t c) const noexcept {
    const __m256i lo = _mm256_and_si256(b, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low);
    const __m256i both = _mm256_add_epi8(lo, hi);
    const auto* xe = reinterpret_cast<const __m256i*>(a.x_even + int64_t{c} * kBytes);
    const auto* xo = reinterpret_cast<const __m256i*>(a.x_odd + int64_t{c} * kBytes);
    __m256i p16 = _mm256_maddubs_epi16(lo, _mm256_load_si256(xe));
    p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(hi, _mm256_load_si256(xo)));
    p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(both, io_a));
    if (kSplit) p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(both, io_b));
    const __m256i p = _mm256_madd_epi16(p16, ones);
    // |p| <= 8 * 15 * 255 = 30600 and r <= 256: both are int16 in the low half of their dword
    // (r's high half is 0), so vpmaddwd is the exact product.
    return _mm256_madd_epi16(p, lane_ratios(a, rr, c));
  }
};

// int8 weights, used as they are (no flip); x_even holds int16 x + io.
struct S8 {
  static constexpr int32_t kFlushSteps = 64;
  static constexpr uint8_t kFlip = 0;
  static constexpr bool kAnyPad = true;  // bytes past a row meet x + io = 0

  explicit S8(int32_t) noexcept {}
  static int32_t row_bytes(const GroupedLaneArgs& a) noexcept { return a.k; }

  __m256i step(const GroupedLaneArgs& a, const int32_t* rr, __m256i b, int32_t c) const noexcept {
    const auto* x = reinterpret_cast<const __m256i*>(a.x_even + int64_t{c} * 2 * kBytes);
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(b));
    const __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(b, 1));
    const __m256i p0 = _mm256_madd_epi16(w0, _mm256_load_si256(x));      // k pairs 0..15
    const __m256i p1 = _mm256_madd_epi16(w1, _mm256_load_si256(x + 1));  // k pairs 16..31
    // Lanes of 4 k in kGroupedAvx2S8LaneBlock order: 0-3, 4-7, 16-19, 20-23 | 8-11, ...
    return _mm256_mullo_epi32(_mm256_hadd_epi32(p0, p1), lane_ratios(a, rr, c));
  }
};

// cnt <= 8 int32 from p, zeros after; reads nothing past p + cnt.
inline __m256i load8(const int32_t* p, int32_t cnt) noexcept {
  if (cnt >= kLanes) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i m =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_epi32(p, m);
}

// bias + t, requantized, offset and clamped, 8 outputs at a time.
void finish(const GroupedLaneArgs& a) noexcept {
  const FcParams& p = *a.params;
  const Requant& rq = *a.rq;
  const __m256i offset = _mm256_set1_epi32(p.output_offset);
  const __m256i lo = _mm256_set1_epi32(p.act_min);
  const __m256i hi = _mm256_set1_epi32(p.act_max);
  __m256i mult = _mm256_set1_epi32(rq.multiplier[0]);
  __m256i shift = _mm256_set1_epi32(rq.shift[0]);
  for (int32_t o = 0; o < a.n; o += kLanes) {
    const int32_t cnt = a.n - o < kLanes ? a.n - o : kLanes;
    __m256i acc = load8(a.t + o, cnt);
    if (a.bias != nullptr) acc = _mm256_add_epi32(acc, load8(a.bias + o, cnt));
    if (rq.per_channel) {
      mult = load8(rq.multiplier + o, cnt);
      shift = load8(rq.shift + o, cnt);
    }
    __m256i r = _mm256_add_epi32(requantize8(acc, mult, shift, rq.rounding), offset);
    r = _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);  // inside int8: the packs are exact
    const __m128i r16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    const __m128i r8 = _mm_packs_epi16(r16, r16);
    if (cnt == kLanes) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(a.out + o), r8);
    } else {
      const auto bytes = static_cast<uint64_t>(_mm_cvtsi128_si64(r8));
      std::memcpy(a.out + o, &bytes, static_cast<size_t>(cnt));  // little-endian: lanes in order
    }
  }
}

// r = ratio + 1 of row o into dst (0 past the row's groups, then a zero vector), vector stores
// only; returns sum_g r_g * X_g as int64 lanes from the same registers (each product < 2^31).
__m256i expand_ratios(const GroupedLaneArgs& a, int32_t o, int32_t* dst) noexcept {
  const uint8_t* ratio = a.ratio + int64_t{o} * a.groups;
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i xr = _mm256_setzero_si256();
  int32_t g = 0;
  for (; g < a.groups; g += kLanes) {
    const int32_t left = a.groups - g;
    __m128i r8;
    if (left >= kLanes) {
      r8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(ratio + g));
    } else {  // gathered in a register: a reload of bytes just stored would stall
      uint64_t v = 0;
      for (int32_t i = 0; i < left; ++i) v |= uint64_t{ratio[g + i]} << (8 * i);
      r8 = _mm_cvtsi64_si128(static_cast<long long>(v));
    }
    __m256i r = _mm256_add_epi32(_mm256_cvtepu8_epi32(r8), one);
    r = _mm256_and_si256(r, _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane_index));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + g), r);
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.group_x + g));
    xr = widen_add(xr, _mm256_mullo_epi32(r, x));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + g), _mm256_setzero_si256());
  return xr;
}

template <class Kind>
void rows(const GroupedLaneArgs& a) noexcept {
  const Kind kind(a.input_offset);
  const int32_t row_bytes = Kind::row_bytes(a);
  const int32_t tail = row_bytes - (a.chunks - 1) * kBytes;  // bytes of the last step, 1..32
  const auto* weights = a.w4 != nullptr ? a.w4 : reinterpret_cast<const uint8_t*>(a.w8);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(Kind::kFlip));
  const int64_t all_bytes = int64_t{a.n} * row_bytes;
  // Bytes of a partial last step that belong to the row (int4 sets the others to u = 0).
  const __m256i keep = _mm256_cmpgt_epi8(
      _mm256_set1_epi8(static_cast<char>(tail)),
      _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                       22, 23, 24, 25, 26, 27, 28, 29, 30, 31));
  const auto stride = static_cast<int32_t>(avx2_ratio_stride(a.groups));
  __m256i xr_next = expand_ratios(a, 0, a.ratio_row);
  for (int32_t o = 0; o < a.n; ++o) {
    const uint8_t* w = weights + int64_t{o} * row_bytes;
    // A partial last step is loaded whole where the weights go on past it (the next rows), and
    // the bytes past the row then replaced in the register when they matter (int4); at the end
    // of the weights it goes through a padded copy instead.
    const bool partial = tail < kBytes;
    const bool copy_last =
        partial && int64_t{o} * row_bytes + int64_t{a.chunks} * kBytes > all_bytes;
    const bool blend_last = partial && !copy_last && !Kind::kAnyPad;
    // Row o + 1's ratios go into the other buffer now, so that its steps do not load vectors
    // spanning stores made just before them (such a load does not forward; it waits for them).
    const int32_t* rr = a.ratio_row + (o & 1) * stride;
    const __m256i xr = xr_next;
    if (o + 1 < a.n) xr_next = expand_ratios(a, o + 1, a.ratio_row + ((o + 1) & 1) * stride);
    __m256i acc64 = _mm256_setzero_si256();
    for (int32_t c0 = 0; c0 < a.chunks; c0 += Kind::kFlushSteps) {
      const int32_t c1 = a.chunks - c0 > Kind::kFlushSteps ? c0 + Kind::kFlushSteps : a.chunks;
      const int32_t full = c1 < a.chunks || !(copy_last || blend_last) ? c1 : a.chunks - 1;
      __m256i acc = _mm256_setzero_si256();
      for (int32_t c = c0; c < full; ++c) {
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + int64_t{c} * kBytes));
        acc = _mm256_add_epi32(acc, kind.step(a, rr, _mm256_xor_si256(raw, flip), c));
      }
      if (full < c1) {  // the row's last step: bytes past the row become weight (u) 0
        __m256i raw;
        if (blend_last) {
          raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + int64_t{full} * kBytes));
          raw = _mm256_blendv_epi8(flip, raw, keep);
        } else {
          alignas(32) uint8_t last[kBytes];
          std::memset(last, Kind::kFlip, sizeof last);
          std::memcpy(last, w + int64_t{full} * kBytes, static_cast<size_t>(tail));
          raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(last));
        }
        acc = _mm256_add_epi32(acc, kind.step(a, rr, _mm256_xor_si256(raw, flip), full));
      }
      acc64 = widen_add(acc64, acc);
    }
    const int64_t total = hsum64(acc64) + int64_t{a.x_scale} * hsum64(xr);
    a.t[o] = static_cast<int32_t>((total + (int64_t{1} << 7)) >> 8);
  }
  finish(a);
}

}  // namespace

void s8s4_grouped_fc_1x1c64_avx2(const GroupedLaneArgs& a) noexcept {
  if (a.input_offset == 128)
    rows<S4<true>>(a);
  else
    rows<S4<false>>(a);
}

void s8s8_grouped_fc_1x1c32_avx2(const GroupedLaneArgs& a) noexcept {
  rows<S8>(a);
}

}  // namespace tinyquant::rt::detail
