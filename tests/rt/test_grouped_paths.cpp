// Grouped fully-connected kernels (rt/grouped.hpp) on every path against the reference path
// and an oracle written here from the header's formula, tolerance 0: random shapes (GEMV and
// batches, odd and even in_features, group sizes from 1 to beyond in_features with short last
// groups), extreme offsets and values, ratios 0 and 255, both roundings, null bias, narrow
// clamps, groups whose 32-bit sums wrap, and the scratch contract.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tinyquant/rt/grouped.hpp"

namespace {

namespace rt = tinyquant::rt;
using rt::Path;

bool available(Path p) {
  return p == Path::kReference || (rt::supported_paths() & rt::path_bits(p)) != 0;
}

enum class Fill { kRandom, kMin, kMax };

struct Case {
  int32_t batch = 1, in = 16, out = 4, group = 8;
  int32_t io = 0, fo = 0, oo = 0, act_min = -128, act_max = 127;
  bool per_channel = true, null_bias = false, s8 = false;
  rt::Rounding rounding = rt::Rounding::kDouble;
  int ratio = -1;                         // -1: random bytes, else every ratio byte
  Fill x = Fill::kRandom;                 // kMin: every x = -128, kMax: 127
  Fill w = Fill::kRandom;                 // kMin: every weight at its minimum, kMax: its maximum
  int32_t shift_lo = -20, shift_hi = -4;  // most shifts (1 in 8 anywhere in the valid range)
  bool centered = false;                  // see center()
  uint32_t seed = 1;
};

struct Operands {
  std::vector<int8_t> x, w8;
  std::vector<uint8_t> w4, ratio;
  std::vector<int32_t> bias, mult, shift;
};

int32_t groups_of(const Case& c) {
  return (c.in - 1) / c.group + 1;
}

Operands make(const Case& c) {
  std::mt19937 rng(c.seed);
  auto uni = [&](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  };
  Operands op;
  const int64_t kn = int64_t{c.in} * c.out;
  op.x.resize(static_cast<size_t>(int64_t{c.batch} * c.in));
  for (auto& v : op.x)
    v = static_cast<int8_t>(c.x == Fill::kMin ? -128 : c.x == Fill::kMax ? 127 : uni(-128, 127));
  if (c.s8) {
    op.w8.resize(static_cast<size_t>(kn));
    for (auto& v : op.w8)
      v = static_cast<int8_t>(c.w == Fill::kMin ? -128 : c.w == Fill::kMax ? 127 : uni(-128, 127));
  } else {
    op.w4.resize(static_cast<size_t>((kn + 1) / 2));
    const int32_t byte = c.w == Fill::kMin ? 0x88 : 0x77;
    for (auto& v : op.w4) v = static_cast<uint8_t>(c.w == Fill::kRandom ? uni(0, 255) : byte);
  }
  op.ratio.resize(static_cast<size_t>(int64_t{c.out} * groups_of(c)));
  for (auto& v : op.ratio) v = static_cast<uint8_t>(c.ratio >= 0 ? c.ratio : uni(0, 255));
  op.bias.resize(static_cast<size_t>(c.out));
  for (auto& v : op.bias) v = uni(-(1 << 30), 1 << 30) >> uni(0, 20);
  const int32_t channels = c.per_channel ? c.out : 1;
  for (int32_t i = 0; i < channels; ++i) {
    op.mult.push_back(uni(0, 3) == 0 ? uni(0, INT32_MAX) : uni(1 << 30, INT32_MAX));
    op.shift.push_back(uni(0, 7) == 0 ? uni(rt::kMinShift, rt::kMaxShift)
                                      : uni(c.shift_lo, c.shift_hi));
  }
  return op;
}

// Weight (o, k) as an integer.
int32_t weight(const Case& c, const Operands& op, int32_t o, int32_t k) {
  const int64_t i = int64_t{o} * c.in + k;
  if (c.s8) return op.w8[static_cast<size_t>(i)];
  const int32_t byte = op.w4[static_cast<size_t>(i / 2)];
  const int32_t nib = (i % 2 == 0) ? (byte & 15) : (byte >> 4);
  return nib >= 8 ? nib - 16 : nib;
}

// grouped.hpp's t for (b, o), with plain int64 sums wrapped to 32 bits per group.
int32_t oracle_t(const Case& c, const Operands& op, int32_t b, int32_t o) {
  const int32_t groups = groups_of(c);
  int64_t total = 0;
  for (int32_t g = 0; g < groups; ++g) {
    int64_t sum = 0;
    for (int32_t k = g * c.group; k < c.in && k < (g + 1) * int64_t{c.group}; ++k) {
      const int32_t xv = op.x[static_cast<size_t>(int64_t{b} * c.in + k)];
      sum += int64_t{xv + c.io} * (weight(c, op, o, k) + c.fo);
    }
    const auto acc = static_cast<int32_t>(static_cast<uint32_t>(sum));
    total += int64_t{acc} * (op.ratio[static_cast<size_t>(int64_t{o} * groups + g)] + 1);
  }
  return static_cast<int32_t>((total + 128) >> 8);
}

// The rest of grouped.hpp's formula.
std::vector<int8_t> oracle(const Case& c, const Operands& op) {
  std::vector<int8_t> y(static_cast<size_t>(int64_t{c.batch} * c.out));
  for (int32_t b = 0; b < c.batch; ++b) {
    for (int32_t o = 0; o < c.out; ++o) {
      const int32_t t = oracle_t(c, op, b, o);
      const int32_t acc = rt::wrap_add(c.null_bias ? 0 : op.bias[static_cast<size_t>(o)], t);
      const size_t ch = c.per_channel ? static_cast<size_t>(o) : 0;
      int32_t v = rt::wrap_add(rt::requantize(acc, op.mult[ch], op.shift[ch], c.rounding), c.oo);
      v = v < c.act_min ? c.act_min : (v > c.act_max ? c.act_max : v);
      y[static_cast<size_t>(int64_t{b} * c.out + o)] = static_cast<int8_t>(v);
    }
  }
  return y;
}

// Makes every output of batch row 0 show t exactly: requantization becomes the identity
// (multiplier 2^30, shift 1) and the bias cancels t up to a small random rest, so a path whose
// t is off by one changes an output.
void center(const Case& c, Operands* op) {
  std::mt19937 rng(c.seed + 7);
  std::uniform_int_distribution<int32_t> rest(-100, 100);
  for (auto& m : op->mult) m = 1 << 30;
  for (auto& s : op->shift) s = 1;
  for (int32_t o = 0; o < c.out; ++o)
    op->bias[static_cast<size_t>(o)] = rt::wrap_add(-oracle_t(c, *op, 0, o), rest(rng));
}

rt::GroupScales scales(const Case& c, const Operands& op) {
  return rt::GroupScales{c.group, op.ratio.data()};
}

rt::FcDims dims_of(const Case& c) {
  return rt::FcDims{c.batch, c.in, c.out};
}

int32_t scratch_size(const Case& c, const Operands& op, Path p) {
  return c.s8 ? rt::fully_connected_s8_grouped_scratch_size(dims_of(c), scales(c, op), p)
              : rt::fully_connected_s4_grouped_scratch_size(dims_of(c), scales(c, op), p);
}

// The kernel on `p` with exactly the asked scratch at an odd address; guard bytes around y.
rt::Status run(const Case& c, const Operands& op, Path p, std::vector<int8_t>* y,
               int32_t scratch_bytes) {
  std::vector<uint8_t> scratch(static_cast<size_t>(scratch_bytes) + 1, 0xA5);
  rt::Context ctx;
  ctx.path = p;
  ctx.scratch = scratch_bytes > 0 ? scratch.data() + 1 : nullptr;
  ctx.scratch_size = scratch_bytes;
  rt::FcParams params;
  params.input_offset = c.io;
  params.filter_offset = c.fo;
  params.output_offset = c.oo;
  params.act_min = c.act_min;
  params.act_max = c.act_max;
  rt::Requant rq;
  rq.multiplier = op.mult.data();
  rq.shift = op.shift.data();
  rq.per_channel = c.per_channel;
  rq.rounding = c.rounding;
  const size_t n = static_cast<size_t>(int64_t{c.batch} * c.out);
  std::vector<int8_t> out(n + 32, 0x5A);
  const int32_t* bias = c.null_bias ? nullptr : op.bias.data();
  const rt::Status st =
      c.s8 ? rt::fully_connected_s8_grouped(ctx, params, rq, dims_of(c), scales(c, op), op.x.data(),
                                            op.w8.data(), bias, out.data() + 16)
           : rt::fully_connected_s4_grouped(ctx, params, rq, dims_of(c), scales(c, op), op.x.data(),
                                            op.w4.data(), bias, out.data() + 16);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(out[i], 0x5A) << "guard before the output";
    EXPECT_EQ(out[n + 16 + i], 0x5A) << "guard after the output";
  }
  y->assign(out.begin() + 16, out.begin() + 16 + static_cast<std::ptrdiff_t>(n));
  return st;
}

std::string describe(const Case& c) {
  return "batch " + std::to_string(c.batch) + " in " + std::to_string(c.in) + " out " +
         std::to_string(c.out) + " group " + std::to_string(c.group) + " io " +
         std::to_string(c.io) + " fo " + std::to_string(c.fo) + " oo " + std::to_string(c.oo) +
         " clamp [" + std::to_string(c.act_min) + ", " + std::to_string(c.act_max) + "] ratio " +
         std::to_string(c.ratio) + (c.s8 ? " s8" : " s4") + " seed " + std::to_string(c.seed);
}

// Reference path == oracle, and path p == reference path, byte for byte.
void check(const Case& c, Path p) {
  Operands op = make(c);
  if (c.centered) center(c, &op);
  const std::vector<int8_t> want = oracle(c, op);
  std::vector<int8_t> ref, got;
  ASSERT_EQ(run(c, op, Path::kReference, &ref, 0), rt::Status::kOk) << describe(c);
  ASSERT_EQ(ref, want) << "reference vs oracle: " << describe(c);
  ASSERT_EQ(run(c, op, p, &got, scratch_size(c, op, p)), rt::Status::kOk) << describe(c);
  ASSERT_EQ(got, ref) << rt::path_name(p) << ": " << describe(c);
}

class GroupedPaths : public ::testing::TestWithParam<Path> {
 protected:
  void SetUp() override {
    if (!available(GetParam())) GTEST_SKIP() << rt::path_name(GetParam()) << " not available";
  }
};

TEST_P(GroupedPaths, RandomShapes) {
  std::mt19937 rng(20261122);
  auto uni = [&](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  };
  const int32_t offsets[] = {-127, 128, 0, 1, -1, 127};
  for (int32_t i = 0; i < 600; ++i) {
    Case c;
    c.seed = static_cast<uint32_t>(i + 1);
    c.batch = uni(0, 2) == 0 ? 1 : uni(2, 5);
    c.in = uni(0, 3) == 0 ? uni(1, 40) : uni(41, 700);
    c.out = uni(1, 19);
    const int32_t sizes[] = {1, 2, 3, 4, 12, 8, 16, 24, 32, 40, 64, 96, 128, 256, c.in, c.in + 3};
    c.group = sizes[uni(0, 15)];
    c.io = uni(0, 1) == 0 ? offsets[uni(0, 5)] : uni(-127, 128);
    c.fo = uni(0, 1) == 0 ? offsets[uni(0, 5)] : uni(-127, 128);
    c.oo = uni(0, 2) == 0 ? (uni(0, 1) == 0 ? -128 : 127) : uni(-128, 127);
    if (uni(0, 3) == 0) {
      c.act_min = uni(-128, 127);
      c.act_max = uni(c.act_min, c.act_min + uni(0, 3) < 127 ? c.act_min + uni(0, 3) : 127);
    }
    c.per_channel = uni(0, 3) != 0;
    c.null_bias = uni(0, 4) == 0;
    c.rounding = uni(0, 1) == 0 ? rt::Rounding::kDouble : rt::Rounding::kSingle;
    const int32_t r = uni(0, 5);
    c.ratio = r == 0 ? 0 : (r == 1 ? 255 : -1);
    c.s8 = uni(0, 3) == 0;
    c.centered = uni(0, 2) == 0;
    c.null_bias = c.null_bias && !c.centered;
    check(c, GetParam());
    if (HasFatalFailure()) return;
  }
}

// Every x and weight at an end of its range with the offsets that maximise the products: the
// bounds the SIMD bodies rely on (int16 pair sums, int32 lane sums, 64 + 64 for io = 128), for
// int4 and int8 weights.
TEST_P(GroupedPaths, ExtremeValues) {
  for (const Fill x : {Fill::kMin, Fill::kMax}) {
    for (const Fill w : {Fill::kMin, Fill::kMax}) {
      for (const int32_t io : {-127, 128}) {
        for (const int32_t fo : {-127, 128}) {
          for (const int32_t group : {4, 8, 32, 64, 600}) {
            for (const bool s8 : {false, true}) {
              Case c;
              c.s8 = s8;
              c.batch = 2;
              c.in = 600;
              c.out = 3;
              c.group = group;
              c.io = io;
              c.fo = fo;
              c.x = x;
              c.w = w;
              c.ratio = 255;
              c.centered = true;
              check(c, GetParam());
              if (HasFatalFailure()) return;
            }
          }
        }
      }
    }
  }
}

// The largest group the x86 lanes take (sums up to 255 * 255 * 32768 < 2^31), rows long
// enough that the lane sums widen to int64 on the way (more than 256 steps), and groups longer
// than that whose 32-bit sums wrap (the x86 paths then run the reference loops; smlad keeps
// its wrapping sums).
TEST_P(GroupedPaths, LongGroups) {
  const int32_t shapes[][2] = {{32768, 32768}, {65792, 8192},  {65792, 32768},
                               {34000, 34000}, {70001, 70001}, {66000, 65535}};
  for (const auto& s : shapes) {
    for (const Fill f : {Fill::kMin, Fill::kRandom}) {
      for (const bool s8 : {false, true}) {
        Case c;
        c.s8 = s8;
        c.in = s[0];
        c.group = s[1];
        c.out = 4;
        c.io = -127;
        c.fo = -127;
        c.x = f;
        c.w = f;
        c.shift_lo = -26;  // t reaches 2^31 here
        c.shift_hi = -22;
        c.centered = f == Fill::kRandom;
        check(c, GetParam());
        if (HasFatalFailure()) return;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllPaths, GroupedPaths,
                         ::testing::Values(Path::kReference, Path::kSmlad, Path::kAvx2,
                                           Path::kAvx512Vnni, Path::kNeon, Path::kNeonDot),
                         [](const ::testing::TestParamInfo<Path>& param) {
                           return std::string(rt::path_name(param.param));
                         });

TEST(GroupedScratch, SizesAndRefusals) {
  Case c;
  c.in = 784;
  c.out = 8;
  c.group = 32;
  const Operands op = make(c);
  std::vector<int8_t> y;
  Case s8 = c;
  s8.s8 = true;
  const Operands op8 = make(s8);
  for (const Path p : {Path::kSmlad, Path::kAvx2, Path::kAvx512Vnni, Path::kNeon, Path::kNeonDot}) {
    if (!available(p)) continue;
    for (const auto& [cc, o] : {std::pair<const Case&, const Operands&>{c, op}, {s8, op8}}) {
      const int32_t need = scratch_size(cc, o, p);
      ASSERT_GT(need, 0) << rt::path_name(p) << ": " << describe(cc);
      EXPECT_EQ(run(cc, o, p, &y, 0), rt::Status::kScratchTooSmall) << rt::path_name(p);
      EXPECT_EQ(run(cc, o, p, &y, need - 1), rt::Status::kScratchTooSmall) << rt::path_name(p);
      EXPECT_EQ(run(cc, o, p, &y, need), rt::Status::kOk) << rt::path_name(p);
      EXPECT_EQ(y, oracle(cc, o)) << rt::path_name(p) << ": " << describe(cc);
    }
  }
  // Shapes a path runs with the reference loops need no scratch: on x86 int4 with odd
  // in_features or a group size that is not a multiple of 8, int8 with one not a multiple of 4.
  Case odd = c;
  odd.in = 785;
  Case g12 = c;
  g12.group = 12;
  Case s8g6 = s8;
  s8g6.group = 6;
  for (const Path p : {Path::kAvx2, Path::kAvx512Vnni}) {
    if (!available(p)) continue;
    EXPECT_EQ(scratch_size(odd, make(odd), p), 0);
    EXPECT_EQ(scratch_size(g12, make(g12), p), 0);
    EXPECT_EQ(scratch_size(s8g6, make(s8g6), p), 0);
    // int8 weights take the lanes from group_size % 4 == 0, any in_features.
    Case s8odd = s8;
    s8odd.in = 785;
    s8odd.group = 4;
    EXPECT_GT(scratch_size(s8odd, make(s8odd), p), 0);
  }
  // The row bodies (smlad, NEON) take every shape, int8 weights with any group length.
  for (const Path p : {Path::kSmlad, Path::kNeon, Path::kNeonDot}) {
    if (!available(p)) continue;
    EXPECT_GT(scratch_size(odd, make(odd), p), 0);
    EXPECT_GT(scratch_size(g12, make(g12), p), 0);
    Case s8long = s8;
    s8long.in = 70001;
    s8long.group = 70001;
    EXPECT_GT(scratch_size(s8long, make(s8long), p), 0);
  }
  EXPECT_EQ(scratch_size(c, op, Path::kReference), 0);
  EXPECT_EQ(scratch_size(s8, op8, Path::kReference), 0);
  // Invalid dims need nothing, on every path, as the dense queries say.
  for (const Path p : {Path::kSmlad, Path::kAvx2, Path::kAvx512Vnni, Path::kNeon, Path::kNeonDot}) {
    if (!available(p)) continue;
    Case none = c;
    none.batch = 0;
    EXPECT_EQ(scratch_size(none, op, p), 0) << rt::path_name(p);
    none.s8 = true;
    EXPECT_EQ(scratch_size(none, op8, p), 0) << rt::path_name(p);
    Case huge = c;
    huge.batch = 1 << 22;  // batch x in_features past the element limit
    EXPECT_EQ(scratch_size(huge, op, p), 0) << rt::path_name(p);
  }
  EXPECT_EQ(scratch_size(c, op, static_cast<Path>(3)), 0);  // a mask of paths is no path
  // kAuto asks for what the path it resolves to needs, and runs.
  const int32_t need = scratch_size(c, op, Path::kAuto);
  EXPECT_EQ(run(c, op, Path::kAuto, &y, need), rt::Status::kOk);
  EXPECT_EQ(y, oracle(c, op));
  // Paths the grouped kernels do not have, or this build or CPU lacks.
  for (const Path p : {Path::kAvx2, Path::kAvx512Vnni, Path::kNeon, Path::kNeonDot, Path::kAmx}) {
    if (p != Path::kAmx && available(p)) continue;
    EXPECT_EQ(run(c, op, p, &y, 1 << 16), rt::Status::kPathUnavailable) << rt::path_name(p);
  }
  // A mask of several paths is no path, even when the CPU has one of them.
  for (const uint32_t bits : {3u, 5u, 0x7fu})
    EXPECT_EQ(run(c, op, static_cast<Path>(bits), &y, 1 << 16), rt::Status::kPathUnavailable)
        << bits;
}

}  // namespace
