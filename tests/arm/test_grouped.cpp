// Grouped fully-connected kernels (rt/grouped.hpp), int4 and int8 weights, on every path this
// target supports, against an oracle written here from the header's formula and against the
// reference path, tolerance 0: random shapes (batches, odd in_features, group sizes 1 to beyond
// in_features with short last groups), extreme and random offsets and values, ratio bytes 0,
// 255 and random, both roundings, per-tensor and per-channel, null bias, narrow clamps.
#include <cstdint>
#include <cstring>

#include "check.hpp"
#include "kernel_cases.hpp"
#include "tinyquant/rt/grouped.hpp"

namespace rt = tinyquant::rt;

namespace {

constexpr int32_t kMaxIn = 200, kMaxOut = 9, kMaxBatch = 3;

struct Case {
  int32_t batch, in, out, group;
  rt::FcParams p;
  bool per_channel, with_bias, s8;
  rt::Rounding rounding;
};

int8_t g_x[kMaxBatch * kMaxIn];
int8_t g_w8[kMaxIn * kMaxOut];
uint8_t g_w4[(kMaxIn * kMaxOut + 1) / 2];
uint8_t g_ratio[kMaxIn * kMaxOut];
int32_t g_bias[kMaxOut], g_mult[kMaxOut], g_shift[kMaxOut];
int8_t g_want[kMaxBatch * kMaxOut], g_ref[kMaxBatch * kMaxOut], g_got[kMaxBatch * kMaxOut + 8];
alignas(16) uint8_t g_scratch[16384];

int32_t weight(const Case& c, int32_t o, int32_t k) {
  const int32_t i = o * c.in + k;
  if (c.s8) return g_w8[i];
  const int32_t nib = (i % 2 == 0) ? (g_w4[i / 2] & 15) : (g_w4[i / 2] >> 4);
  return nib >= 8 ? nib - 16 : nib;
}

// grouped.hpp's formula with plain loops: each group's sum wrapped to 32 bits, int64 total.
void oracle(const Case& c) {
  const int32_t groups = (c.in - 1) / c.group + 1;
  for (int32_t b = 0; b < c.batch; ++b) {
    for (int32_t o = 0; o < c.out; ++o) {
      int64_t total = 0;
      for (int32_t g = 0; g < groups; ++g) {
        int64_t sum = 0;
        for (int32_t k = g * c.group; k < c.in && k < (g + 1) * c.group; ++k)
          sum +=
              int64_t{g_x[b * c.in + k] + c.p.input_offset} * (weight(c, o, k) + c.p.filter_offset);
        const auto acc = static_cast<int32_t>(static_cast<uint32_t>(sum));
        total += int64_t{acc} * (g_ratio[o * groups + g] + 1);
      }
      const auto t = static_cast<int32_t>((total + 128) >> 8);
      const int32_t ch = c.per_channel ? o : 0;
      int32_t v = rt::wrap_add(rt::requantize(rt::wrap_add(c.with_bias ? g_bias[o] : 0, t),
                                              g_mult[ch], g_shift[ch], c.rounding),
                               c.p.output_offset);
      v = v < c.p.act_min ? c.p.act_min : (v > c.p.act_max ? c.p.act_max : v);
      g_want[b * c.out + o] = static_cast<int8_t>(v);
    }
  }
}

rt::Status run(const Case& c, rt::Path path, int8_t* out) {
  const rt::FcDims d{c.batch, c.in, c.out};
  const rt::GroupScales gs{c.group, g_ratio};
  const int32_t need = c.s8 ? rt::fully_connected_s8_grouped_scratch_size(d, gs, path)
                            : rt::fully_connected_s4_grouped_scratch_size(d, gs, path);
  if (!TQ_CHECK_EQ(need <= static_cast<int32_t>(sizeof g_scratch), true, "scratch fits"))
    return rt::Status::kScratchTooSmall;
  rt::Context ctx;
  ctx.path = path;
  ctx.scratch = g_scratch;
  ctx.scratch_size = need;
  rt::Requant rq;
  rq.multiplier = g_mult;
  rq.shift = g_shift;
  rq.per_channel = c.per_channel;
  rq.rounding = c.rounding;
  const int32_t* bias = c.with_bias ? g_bias : nullptr;
  return c.s8 ? rt::fully_connected_s8_grouped(ctx, c.p, rq, d, gs, g_x, g_w8, bias, out)
              : rt::fully_connected_s4_grouped(ctx, c.p, rq, d, gs, g_x, g_w4, bias, out);
}

}  // namespace

int main() {
  tq::XorShift32 rng;
  const int32_t offsets[] = {-127, 128, 0, 1, -1, 127};
  int runs = 0;
  for (int i = 0; i < 300; ++i) {
    Case c;
    c.batch = rng.range(0, 2) == 0 ? rng.range(2, kMaxBatch) : 1;
    c.in = rng.range(0, 3) == 0 ? rng.range(1, 40) : rng.range(41, kMaxIn);
    c.out = rng.range(1, kMaxOut);
    const int32_t sizes[] = {1, 2, 3, 4, 7, 8, 12, 16, 20, 24, 32, 40, 64, c.in, c.in + 3};
    c.group = sizes[rng.range(0, 14)];
    c.p.input_offset = rng.range(0, 1) == 0 ? offsets[rng.range(0, 5)] : rng.range(-127, 128);
    c.p.filter_offset = rng.range(0, 1) == 0 ? offsets[rng.range(0, 5)] : rng.range(-127, 128);
    c.p.output_offset = rng.range(-128, 127);
    c.p.act_min = -128;
    c.p.act_max = 127;
    if (rng.range(0, 3) == 0) {
      c.p.act_min = rng.range(-128, 100);
      c.p.act_max = c.p.act_min + rng.range(0, 27);
    }
    c.per_channel = rng.range(0, 3) != 0;
    c.with_bias = rng.range(0, 4) != 0;
    c.s8 = rng.range(0, 1) == 0;
    c.rounding = rng.range(0, 1) == 0 ? rt::Rounding::kDouble : rt::Rounding::kSingle;
    // Values: random, or all at one end of the range (the SIMD bounds).
    const int32_t fill = rng.range(0, 5);
    for (int32_t j = 0; j < c.batch * c.in; ++j)
      g_x[j] = static_cast<int8_t>(fill == 0 ? -128 : fill == 1 ? 127 : rng.range(-128, 127));
    for (int32_t j = 0; j < c.in * c.out; ++j)
      g_w8[j] = static_cast<int8_t>(fill == 0 ? -128 : fill == 1 ? 127 : rng.range(-128, 127));
    for (auto& v : g_w4)
      v = static_cast<uint8_t>(fill == 0 ? 0x88 : fill == 1 ? 0x77 : rng.range(0, 255));
    const int32_t ratio = rng.range(0, 3);
    for (auto& v : g_ratio)
      v = static_cast<uint8_t>(ratio == 0 ? 0 : ratio == 1 ? 255 : rng.range(0, 255));
    for (int32_t o = 0; o < kMaxOut; ++o) {
      g_bias[o] = rng.range(-(1 << 20), 1 << 20);
      g_mult[o] = rng.range(1 << 30, INT32_MAX);
      g_shift[o] = rng.range(-16, -6);
    }
    oracle(c);
    const int32_t n = c.batch * c.out;
    TQ_CHECK_EQ(static_cast<int>(run(c, rt::Path::kReference, g_ref)), 0, "reference status");
    TQ_CHECK_EQ(std::memcmp(g_ref, g_want, static_cast<size_t>(n)), 0, "reference vs oracle");
    for (rt::Path path : tq::kPaths) {
      if ((rt::supported_paths() & rt::path_bits(path)) == 0) continue;
      ++runs;
      std::memset(g_got, 0x5A, sizeof g_got);
      const rt::Status st = run(c, path, g_got);
      if (!TQ_CHECK_EQ(static_cast<int>(st), 0, rt::path_name(path))) continue;
      const bool same = std::memcmp(g_got, g_ref, static_cast<size_t>(n)) == 0;
      if (!same) {
        std::printf("case %d path %s: batch %ld in %ld out %ld group %ld %s io %ld fo %ld\n", i,
                    rt::path_name(path), static_cast<long>(c.batch), static_cast<long>(c.in),
                    static_cast<long>(c.out), static_cast<long>(c.group), c.s8 ? "s8" : "s4",
                    static_cast<long>(c.p.input_offset), static_cast<long>(c.p.filter_offset));
      }
      TQ_CHECK_EQ(same, true, "path vs reference");
      TQ_CHECK_EQ(static_cast<int>(g_got[n]), 0x5A, "guard byte after the output");
    }
  }
  std::printf("paths: %s default, supported mask 0x%lx, %d case-path runs\n",
              rt::path_name(rt::default_path()), static_cast<unsigned long>(rt::supported_paths()),
              runs);
  return tq::finish("test_grouped");
}
