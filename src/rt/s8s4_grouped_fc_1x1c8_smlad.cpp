// Grouped fully-connected, int4 and int8 weights, smlad path (Cortex-M DSP data flow, emulated
// off-ARM through dsp.hpp). One output row at a time, each group 8 k (int8: 4 k) per step where
// the group allows.
//
// Eight nibbles come from one 32-bit load, as in s8s4_gemm_1x2c8_smlad.cpp:
//   hi = w & 0xF0F0F0F0, lo = (w << 4) & 0xF0F0F0F0
// and SXTB16 / SXTB16-ROR8 give 16 * (n0, n4), (n2, n6), (n1, n5), (n3, n7), met by SMLAD with
// the activation pairs (x + io) the caller repacked once per batch row. The 16x sum is shifted
// back (exact: |sum| < 255 * 8 * 2^16 = 2^27 for a group shorter than 2^16); the k before the
// first 8-aligned k of a group and after its last full step go nibble by nibble (SMLABB), as do
// rows starting mid-byte (odd in_features). The filter offset enters through the caller's
// fo * X_g per group; acc_g * r is an SMLAL.
// int8 weights (s8s8_grouped_fc_1x1c4_smlad): one word holds 4 weights, SXTB16 / SXTB16-ROR8 give
// (w0, w2), (w1, w3), met by the (a0, a2), (a1, a3) pairs; no scaling, so any group length.
#include <cstdint>

#include "grouped_paths.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"

namespace tinyquant::rt::detail {
namespace {

constexpr uint32_t kHighNibbles = 0xF0F0F0F0u;

// 16 * the dot product of 8 nibbles (word w) with the quad q, added to acc.
inline uint32_t dot8(const uint32_t* q, uint32_t w, uint32_t acc) noexcept {
  const uint32_t hi = w & kHighNibbles;
  const uint32_t lo = (w << 4) & kHighNibbles;
  acc = dsp::smlad(q[0], dsp::sxtb16(lo), acc);
  acc = dsp::smlad(q[1], dsp::sxtb16<8>(lo), acc);
  acc = dsp::smlad(q[2], dsp::sxtb16(hi), acc);
  acc = dsp::smlad(q[3], dsp::sxtb16<8>(hi), acc);
  return acc;
}

// The dot product of 4 int8 weights (word w) with the pairs q, added to acc.
inline uint32_t dot4(const uint32_t* q, uint32_t w, uint32_t acc) noexcept {
  acc = dsp::smlad(q[0], dsp::sxtb16(w), acc);
  return dsp::smlad(q[1], dsp::sxtb16<8>(w), acc);
}

// acc + sum_{k in [k0, k1)} (x[k] + io) * w[k], one k at a time; weight(k) reads w[k].
template <class Weight>
inline uint32_t singles(const GroupedRowArgs& a, Weight weight, int32_t k0, int32_t k1,
                        uint32_t acc) noexcept {
  for (int32_t k = k0; k < k1; ++k) {
    const auto xv = static_cast<uint32_t>(a.x[k] + a.input_offset);
    acc = dsp::smlabb(xv, static_cast<uint32_t>(weight(k)), acc);
  }
  return acc;
}

// sum_{k in [k0, k1)} (x[k] + io) * w[k] of an int4 row starting on a byte, wrapping.
inline uint32_t group_dot_s4(const GroupedRowArgs& a, const uint8_t* row, int32_t k0,
                             int32_t k1) noexcept {
  const auto weight = [row](int32_t k) { return smlad::nibble_at(row, k); };
  int32_t k = (k0 + 7) & ~7;
  if (k > k1) k = k1;
  uint32_t acc = singles(a, weight, k0, k, 0);
  uint32_t acc16 = 0;
  for (; k + 8 <= k1; k += 8) acc16 = dot8(a.quads + k / 2, smlad::load4(row + k / 2), acc16);
  acc += static_cast<uint32_t>(static_cast<int32_t>(acc16) >> 4);
  return singles(a, weight, k, k1, acc);
}

// The same for an int8 row, 8 k per step, then 4.
inline uint32_t group_dot_s8(const GroupedRowArgs& a, const int8_t* row, int32_t k0,
                             int32_t k1) noexcept {
  const auto weight = [row](int32_t k) { return int32_t{row[k]}; };
  int32_t k = (k0 + 3) & ~3;
  if (k > k1) k = k1;
  uint32_t acc = singles(a, weight, k0, k, 0);
  const auto span = static_cast<uint32_t>(k1 - k);
  const uint32_t* q = a.quads + static_cast<uint32_t>(k) / 2;
  const int8_t* w = row + k;
  for (const int8_t* const end = w + (span & ~7u); w != end; w += 8, q += 4) {
    acc = dot4(q, smlad::load4(w), acc);
    acc = dot4(q + 2, smlad::load4(w + 4), acc);
  }
  if ((span & 4u) != 0) acc = dot4(q, smlad::load4(w), acc);
  return singles(a, weight, k + static_cast<int32_t>(span & ~3u), k1, acc);
}

// Group gi's share of a row's total: (dot + fo * X_g) * r, r = ratio byte + 1 (one SMLAL).
inline int64_t group_term(const GroupedRowArgs& a, uint32_t dot, const uint8_t* ratio,
                          int32_t gi) noexcept {
  return int64_t{static_cast<int32_t>(dot + a.group_fx[gi])} * (int32_t{ratio[gi]} + 1);
}

inline int32_t row_result(int64_t total) noexcept {
  return static_cast<int32_t>((total + (int64_t{1} << 7)) >> 8);
}

// t[o] for every row; row_dot(o) gives the row's dot(k0, k1) = sum_{k in [k0, k1)}
// (x[k] + io) * w[k].
template <class RowDot>
void rows(const GroupedRowArgs& a, RowDot row_dot) noexcept {
  for (int32_t o = 0; o < a.n; ++o) {
    const uint8_t* ratio = a.ratio + int64_t{o} * a.groups;
    const auto dot = row_dot(o);
    int64_t total = 0;
    for (int32_t gi = 0; gi < a.groups; ++gi) {
      const int32_t k0 = gi * a.group_size;
      const int32_t k1 = a.k - k0 > a.group_size ? k0 + a.group_size : a.k;
      total += group_term(a, dot(k0, k1), ratio, gi);
    }
    a.t[o] = row_result(total);
  }
}

// 16 * the dot products of two rows' 8 nibbles (words w0, w1) with the same quad q, added to
// acc0 / acc1: each activation pair is loaded once for both rows.
inline void dot8_two_rows(const uint32_t* q, uint32_t w0, uint32_t w1, uint32_t* acc0,
                          uint32_t* acc1) noexcept {
  const uint32_t lo0 = (w0 << 4) & kHighNibbles, lo1 = (w1 << 4) & kHighNibbles;
  const uint32_t hi0 = w0 & kHighNibbles, hi1 = w1 & kHighNibbles;
  uint32_t x = q[0];
  *acc0 = dsp::smlad(x, dsp::sxtb16(lo0), *acc0);
  *acc1 = dsp::smlad(x, dsp::sxtb16(lo1), *acc1);
  x = q[1];
  *acc0 = dsp::smlad(x, dsp::sxtb16<8>(lo0), *acc0);
  *acc1 = dsp::smlad(x, dsp::sxtb16<8>(lo1), *acc1);
  x = q[2];
  *acc0 = dsp::smlad(x, dsp::sxtb16(hi0), *acc0);
  *acc1 = dsp::smlad(x, dsp::sxtb16(hi1), *acc1);
  x = q[3];
  *acc0 = dsp::smlad(x, dsp::sxtb16<8>(hi0), *acc0);
  *acc1 = dsp::smlad(x, dsp::sxtb16<8>(hi1), *acc1);
}

// Even k and group_size % 8 == 0 (the common shapes): every row starts on a byte and every
// whole group is group_size / 8 steps of 8 k, walked with pointers and no tail; a shorter last
// group goes through group_dot_s4. Rows go in pairs that share the activation loads.
void rows_s4_whole_groups(const GroupedRowArgs& a) noexcept {
  const int32_t whole = a.k / a.group_size;
  const int32_t steps = a.group_size / 8;
  const int64_t row_bytes = a.k / 2;
  int32_t o = 0;
  for (; o + 2 <= a.n; o += 2) {
    const uint8_t* row0 = a.w4 + int64_t{o} * row_bytes;
    const uint8_t* row1 = row0 + row_bytes;
    const uint8_t* ratio0 = a.ratio + int64_t{o} * a.groups;
    const uint8_t* ratio1 = ratio0 + a.groups;
    const uint8_t* w0 = row0;
    const uint8_t* w1 = row1;
    const uint32_t* q = a.quads;
    int64_t total0 = 0, total1 = 0;
    for (int32_t gi = 0; gi < whole; ++gi) {
      uint32_t acc0 = 0, acc1 = 0;
      for (int32_t s = 0; s < steps; ++s, w0 += 4, w1 += 4, q += 4)
        dot8_two_rows(q, smlad::load4(w0), smlad::load4(w1), &acc0, &acc1);
      total0 += group_term(a, static_cast<uint32_t>(static_cast<int32_t>(acc0) >> 4), ratio0, gi);
      total1 += group_term(a, static_cast<uint32_t>(static_cast<int32_t>(acc1) >> 4), ratio1, gi);
    }
    if (whole < a.groups) {
      const int32_t k0 = whole * a.group_size;
      total0 += group_term(a, group_dot_s4(a, row0, k0, a.k), ratio0, whole);
      total1 += group_term(a, group_dot_s4(a, row1, k0, a.k), ratio1, whole);
    }
    a.t[o] = row_result(total0);
    a.t[o + 1] = row_result(total1);
  }
  for (; o < a.n; ++o) {
    const uint8_t* row = a.w4 + int64_t{o} * row_bytes;
    const uint8_t* ratio = a.ratio + int64_t{o} * a.groups;
    const uint8_t* w = row;
    const uint32_t* q = a.quads;
    int64_t total = 0;
    for (int32_t gi = 0; gi < whole; ++gi) {
      uint32_t acc16 = 0;
      for (int32_t s = 0; s < steps; ++s, w += 4, q += 4) acc16 = dot8(q, smlad::load4(w), acc16);
      total += group_term(a, static_cast<uint32_t>(static_cast<int32_t>(acc16) >> 4), ratio, gi);
    }
    if (whole < a.groups)
      total += group_term(a, group_dot_s4(a, row, whole * a.group_size, a.k), ratio, whole);
    a.t[o] = row_result(total);
  }
}

}  // namespace

void s8s4_grouped_fc_1x1c8_smlad(const GroupedRowArgs& a) noexcept {
  if (a.k % 2 == 0 && a.group_size % 8 == 0) {
    rows_s4_whole_groups(a);
    return;
  }
  rows(a, [&a](int32_t o) {
    const int64_t start = int64_t{o} * a.k;  // the row's first nibble
    const uint8_t* row = a.w4 + (start >> 1);
    const bool odd = (start & 1) != 0;
    return [&a, row, odd](int32_t k0, int32_t k1) {
      if (!odd) return group_dot_s4(a, row, k0, k1);
      const auto weight = [row](int32_t k) { return smlad::nibble_at(row, 1 + k); };
      return singles(a, weight, k0, k1, 0);
    };
  });
}

void s8s8_grouped_fc_1x1c4_smlad(const GroupedRowArgs& a) noexcept {
  rows(a, [&a](int32_t o) {
    const int8_t* row = a.w8 + int64_t{o} * a.k;
    return [&a, row](int32_t k0, int32_t k1) { return group_dot_s8(a, row, k0, k1); };
  });
}

}  // namespace tinyquant::rt::detail
