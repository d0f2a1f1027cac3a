// Every kernel path against the reference path (exact equality), and the reference path against
// hand-computed cases and the testers' direct-formula oracles. Each suite is instantiated for
// every path that can exist; paths this build or CPU lacks are skipped with the reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "rt/kernel_tester.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace rt = tinyquant::rt;
using rt::Path;
using rt::Rounding;
using tinyquant_test::ConvTester;
using tinyquant_test::FcTester;
using tinyquant_test::GemmTester;

namespace {

// Multiplier 2^30 with shift 1 is exactly 1.0: requantize(acc) == acc.
constexpr int32_t kUnitMultiplier = 1 << 30;
constexpr int32_t kUnitShift = 1;

// conv2d_s8 on the reference path with requantization 1.0 and no bias, into out.
rt::Status reference_conv_unit(const rt::ConvParams& p, const rt::ConvDims& d, const int8_t* x,
                               const int8_t* w, int8_t* out) {
  const int32_t mult = kUnitMultiplier, shift = kUnitShift;
  rt::Requant rq;
  rq.multiplier = &mult;
  rq.shift = &shift;
  std::vector<uint8_t> scratch(
      static_cast<size_t>(rt::conv2d_s8_scratch_size(p, d, Path::kReference)));
  rt::Context ctx;
  ctx.path = Path::kReference;
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  return rt::conv2d_s8(ctx, p, rq, d, x, w, nullptr, out);
}

}  // namespace

// ---- the reference path on hand-computed cases ---------------------------------------------

TEST(ReferenceByHand, FullyConnected2x3WithOffsets) {
  // x + 2 = [[3, 0, 5], [1, 2, 2]]; w + 1 = [[2, 3, 4], [0, 1, 5]]; bias [10, -20].
  // acc = [[36, 5], [26, -8]]; * 0.5 (multiplier 2^30, shift 0; halves round up) =
  // [[18, 3], [13, -4]]; + output_offset -5 = [[13, -2], [8, -9]].
  const int8_t x[6] = {1, -2, 3, -1, 0, 0};
  const int8_t w[6] = {1, 2, 3, -1, 0, 4};
  const int32_t bias[2] = {10, -20};
  const int32_t mult = 1 << 30, shift = 0;
  rt::Requant rq;
  rq.multiplier = &mult;
  rq.shift = &shift;
  rt::FcParams p;
  p.input_offset = 2;
  p.filter_offset = 1;
  p.output_offset = -5;
  const rt::FcDims d{2, 3, 2};
  rt::Context ctx;
  ctx.path = Path::kReference;
  int8_t out[4] = {};
  ASSERT_EQ(rt::fully_connected_s8(ctx, p, rq, d, x, w, bias, out), rt::Status::kOk);
  EXPECT_EQ(out[0], 13);
  EXPECT_EQ(out[1], -2);
  EXPECT_EQ(out[2], 8);
  EXPECT_EQ(out[3], -9);
}

TEST(ReferenceByHand, Conv3x3SamePaddingContributesZero) {
  // x + 10 = 1..9 on a 3x3 grid, 3x3 kernel of ones, pad 1: each output is the sum of its
  // in-bounds neighbours. Were the padding read as raw 0 instead of -input_offset, every border
  // output would grow by 10 per padded tap.
  int8_t x[9];
  for (int i = 0; i < 9; ++i) x[i] = static_cast<int8_t>(i + 1 - 10);
  int8_t w[9];
  for (auto& v : w) v = 1;
  rt::ConvParams p;
  p.input_offset = 10;
  p.pad_top = p.pad_left = 1;
  const rt::ConvDims d{1, 3, 3, 1, 3, 3, 3, 3, 1};
  int8_t out[9] = {};
  ASSERT_EQ(reference_conv_unit(p, d, x, w, out), rt::Status::kOk);
  const int8_t expected[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(out[i], expected[i]) << "output " << i;
}

TEST(ReferenceByHand, TfliteSamePaddingStride2IsAsymmetric) {
  // TFLite SAME, 4x4 input, 3x3 kernel, stride 2: out 2x2, total padding 1 -> top/left 0,
  // bottom/right 1. x + input_offset = 1..16. Sums: rows 0-2 x cols 0-2 = 54; cols 2-3 = 45;
  // rows 2-3 x cols 0-2 = 72; rows 2-3 x cols 2-3 = 54.
  int8_t x[16];
  for (int i = 0; i < 16; ++i) x[i] = static_cast<int8_t>(i + 1 + 3);
  int8_t w[9];
  for (auto& v : w) v = 1;
  rt::ConvParams p;
  p.input_offset = -3;
  p.stride_h = p.stride_w = 2;
  const rt::ConvDims d{1, 4, 4, 1, 3, 3, 2, 2, 1};
  int8_t out[4] = {};
  ASSERT_EQ(reference_conv_unit(p, d, x, w, out), rt::Status::kOk);
  EXPECT_EQ(out[0], 54);
  EXPECT_EQ(out[1], 45);
  EXPECT_EQ(out[2], 72);
  EXPECT_EQ(out[3], 54);
}

TEST(ReferenceByHand, GemmS32WrapsAt32Bits) {
  // 1 x 1 x 1: (127 + 128) * (127 + 128) + INT32_MAX wraps to INT32_MIN + 65024.
  const int8_t a = 127, b = 127;
  const int32_t row = INT32_MAX;
  int32_t c = 0;
  rt::Context ctx;
  ctx.path = Path::kReference;
  ASSERT_EQ(rt::gemm_s8s8_s32(ctx, rt::GemmDims{1, 1, 1}, &a, 128, &b, 128, &row, nullptr, &c),
            rt::Status::kOk);
  EXPECT_EQ(c, INT32_MIN + 65024);
}

TEST(ReferenceByHand, FullyConnectedS4OddRowsShareBytes) {
  // in = 3: row 1 starts in the high nibble of byte 1. Weights [[1, -2, 7], [-8, 3, -1]]:
  // nibbles 1, E, 7, 8, 3, F -> bytes 0xE1, 0x87, 0xF3. x = [1, 2, 3]:
  // acc = [1 - 4 + 21, -8 + 6 - 3] = [18, -5].
  const uint8_t packed[3] = {0xE1, 0x87, 0xF3};
  const int8_t x[3] = {1, 2, 3};
  const int32_t mult = kUnitMultiplier, shift = kUnitShift;
  rt::Requant rq;
  rq.multiplier = &mult;
  rq.shift = &shift;
  rt::Context ctx;
  ctx.path = Path::kReference;
  int8_t out[2] = {};
  ASSERT_EQ(
      rt::fully_connected_s4(ctx, rt::FcParams{}, rq, rt::FcDims{1, 3, 2}, x, packed, nullptr, out),
      rt::Status::kOk);
  EXPECT_EQ(out[0], 18);
  EXPECT_EQ(out[1], -5);
}

// ---- every path against the reference -----------------------------------------------------

class KernelPaths : public ::testing::TestWithParam<Path> {
 protected:
  void SetUp() override {
    if (!tinyquant_test::path_supported(GetParam())) {
      GTEST_SKIP() << tinyquant_test::unsupported_reason(GetParam());
    }
  }
};

TEST_P(KernelPaths, FcGemvAndOddK) {
  for (int32_t k : {1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 33, 64, 100}) {
    FcTester().batch(1).in(k).out(7).seed(static_cast<uint32_t>(k)).test(GetParam());
  }
}

TEST_P(KernelPaths, FcBatchAndTails) {
  for (int32_t batch : {1, 2, 3, 5}) {
    for (int32_t out : {1, 2, 3, 13}) {
      FcTester().batch(batch).in(27).out(out).input_offset(128).per_channel(true).test(GetParam());
    }
  }
}

TEST_P(KernelPaths, FcRandomShapesAndParams) {
  std::mt19937 rng(7);
  auto pick = [&](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  };
  for (uint32_t i = 0; i < 150; ++i) {
    const int32_t act_lo = pick(-128, 127);
    FcTester()
        .batch(pick(1, 6))
        .in(pick(1, 70))
        .out(pick(1, 20))
        .input_offset(pick(-127, 128))
        .filter_offset(pick(-127, 128))
        .output_offset(pick(-128, 127))
        .act(act_lo, pick(act_lo, 127))
        .per_channel(pick(0, 1) == 1)
        .rounding(pick(0, 1) == 1 ? Rounding::kSingle : Rounding::kDouble)
        .bias(pick(0, 3) != 0)
        .int4(pick(0, 1) == 1)
        .shift_range(-14, -4)
        .seed(i)
        .test(GetParam());
  }
}

TEST_P(KernelPaths, FcExtremeOffsets) {
  for (int32_t io : {-127, 0, 128}) {
    for (int32_t fo : {-127, 0, 5, 128}) {
      for (int32_t oo : {-128, 127}) {
        FcTester()
            .batch(3)
            .in(19)
            .out(5)
            .input_offset(io)
            .filter_offset(fo)
            .output_offset(oo)
            .shift_range(-16, -10)
            .test(GetParam());
      }
    }
  }
}

TEST_P(KernelPaths, FcMultipliersAndShiftsOverTheFullRange) {
  for (Rounding r : {Rounding::kDouble, Rounding::kSingle}) {
    // Multipliers near 2^30 and 2^31 - 1.
    FcTester()
        .batch(2)
        .in(21)
        .out(9)
        .per_channel(true)
        .multiplier_range((1 << 30) - 3, (1 << 30) + 3)
        .rounding(r)
        .test(GetParam());
    FcTester()
        .batch(2)
        .in(21)
        .out(9)
        .per_channel(true)
        .multiplier_range(INT32_MAX - 5, INT32_MAX)
        .rounding(r)
        .test(GetParam());
    // Every shift: negative ones with full-range operands, positive ones with small operands.
    for (int32_t s = -31; s <= 0; ++s) {
      FcTester()
          .batch(2)
          .in(13)
          .out(6)
          .shift_range(s, s)
          .rounding(r)
          .seed(static_cast<uint32_t>(s + 100))
          .test(GetParam());
    }
    for (int32_t s = 0; s <= 30; ++s) {
      FcTester()
          .batch(2)
          .in(13)
          .out(6)
          .shift_range(s, s)
          .small_values(true)
          .input_offset(-20)
          .filter_offset(3)
          .multiplier_range(1, INT32_MAX)
          .rounding(r)
          .seed(static_cast<uint32_t>(s + 200))
          .test(GetParam());
    }
    FcTester().batch(3).in(40).out(11).per_channel(true).shift_range(-31, 30).rounding(r).test(
        GetParam());
  }
}

TEST_P(KernelPaths, FcNarrowClamps) {
  FcTester().batch(2).in(10).out(6).act(3, 3).test(GetParam());
  FcTester().batch(2).in(10).out(6).act(-5, 5).test(GetParam());
  FcTester().batch(2).in(10).out(6).act(-128, -128).int4(true).test(GetParam());
}

TEST_P(KernelPaths, FcInt4OddK) {
  for (int32_t k : {1, 3, 5, 7, 9, 33}) {
    for (int32_t out : {1, 2, 5}) {
      FcTester().batch(2).in(k).out(out).int4(true).filter_offset(3).per_channel(true).test(
          GetParam());
    }
  }
}

TEST_P(KernelPaths, ConvStridePaddingDilation) {
  const Path p = GetParam();
  ConvTester().input(7, 6, 3).kernel(3, 3).out_channels(5).padding_same().test(p);
  ConvTester().input(7, 6, 3).kernel(3, 3).out_channels(5).padding_valid().test(p);
  ConvTester().input(8, 8, 4).kernel(3, 3).out_channels(6).stride(2, 2).padding_same().test(p);
  ConvTester().input(9, 7, 2).kernel(3, 2).out_channels(3).stride(2, 3).padding(2, 0, 1, 3).test(p);
  ConvTester().input(9, 9, 3).kernel(3, 3).out_channels(4).dilation(2, 2).padding_same().test(p);
  ConvTester()
      .input(10, 8, 2)
      .kernel(2, 3)
      .out_channels(3)
      .dilation(3, 1)
      .stride(1, 2)
      .padding(1, 2, 0, 0)
      .test(p);
  ConvTester().batch(3).input(5, 5, 5).kernel(1, 1).out_channels(7).test(p);  // direct 1x1
  // A 1x1, stride-1, unpadded conv whose output leaves the last rows and columns unread is not
  // the direct case: its output pixels are not the input's pixels in order.
  ConvTester().batch(2).input(5, 6, 3).kernel(1, 1).out_channels(4).padding(0, 0, -1, -2).test(p);
  ConvTester().input(4, 5, 2).kernel(1, 1).out_channels(3).padding(0, 0, 0, -1).test(p);
  ConvTester().batch(2).input(6, 6, 4).kernel(1, 1).out_channels(3).stride(2, 2).test(p);
  ConvTester().input(5, 5, 3).kernel(5, 5).out_channels(2).padding(4, 4, 4, 4).test(p);
  ConvTester().input(4, 4, 3).kernel(3, 3).out_channels(4).bias(false).padding_same().test(p);
  ConvTester()
      .input(6, 5, 3)
      .kernel(3, 3)
      .out_channels(4)
      .padding_same()
      .input_offset(-127)
      .filter_offset(-127)
      .output_offset(127)
      .per_channel(true)
      .test(p);
  ConvTester()
      .input(6, 5, 3)
      .kernel(3, 3)
      .out_channels(4)
      .padding_same()
      .input_offset(128)
      .filter_offset(128)
      .output_offset(-128)
      .rounding(Rounding::kSingle)
      .test(p);
}

TEST_P(KernelPaths, ConvGroups) {
  const Path p = GetParam();
  ConvTester()
      .input(6, 6, 6)
      .kernel(3, 3)
      .out_channels(4)
      .groups(2)
      .padding_same()
      .per_channel(true)
      .test(p);
  ConvTester().input(5, 5, 6).kernel(3, 3).out_channels(9).groups(3).stride(2, 1).test(p);
  ConvTester().input(5, 5, 4).kernel(3, 3).out_channels(8).groups(4).padding_same().test(p);
  ConvTester().batch(2).input(4, 4, 6).kernel(1, 1).out_channels(6).groups(3).test(p);
}

TEST_P(KernelPaths, ConvInt4) {
  const Path p = GetParam();
  ConvTester().input(5, 5, 3).kernel(3, 3).out_channels(5).int4(true).padding_same().test(p);
  // K = 3 * 3 * 1 = 9 odd and 3 channels per group: groups 1 and 3 start mid-byte.
  ConvTester()
      .input(5, 5, 4)
      .kernel(3, 3)
      .out_channels(12)
      .groups(4)
      .int4(true)
      .padding_same()
      .per_channel(true)
      .test(p);
  ConvTester().input(6, 6, 5).kernel(1, 1).out_channels(3).int4(true).filter_offset(2).test(p);
}

TEST_P(KernelPaths, ConvRandom) {
  std::mt19937 rng(11);
  auto pick = [&](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  };
  for (uint32_t i = 0; i < 40; ++i) {
    // One pick per statement: the order of a call's arguments is unspecified (GCC and clang
    // differ), and the shapes must not depend on the compiler.
    const int32_t groups = pick(1, 3);
    const int32_t in_h = pick(3, 9), in_w = pick(3, 9), in_c = groups * pick(1, 4);
    const int32_t kh = pick(1, 3), kw = pick(1, 3);
    const int32_t sh = pick(1, 2), sw = pick(1, 2);
    const int32_t dh = pick(1, 2), dw = pick(1, 2);
    ConvTester t;
    t.batch(pick(1, 2))
        .input(in_h, in_w, in_c)
        .kernel(kh, kw)
        .out_channels(groups * pick(1, 4))
        .groups(groups)
        .stride(sh, sw)
        .dilation(dh, dw)
        .input_offset(pick(-127, 128))
        .filter_offset(pick(-127, 128))
        .output_offset(pick(-128, 127))
        .per_channel(pick(0, 1) == 1)
        .rounding(pick(0, 1) == 1 ? Rounding::kSingle : Rounding::kDouble)
        .int4(pick(0, 2) == 0)
        .bias(pick(0, 3) != 0)
        .shift_range(-16, -6)
        .seed(i);
    // VALID only where the dilated kernel fits the input (else there is no output).
    const bool valid_fits = (kh - 1) * dh < in_h && (kw - 1) * dw < in_w;
    if (pick(0, 1) == 1 || !valid_fits) {
      t.padding_same();
    } else {
      t.padding_valid();
    }
    t.test(GetParam());
  }
}

TEST_P(KernelPaths, Depthwise) {
  const Path p = GetParam();
  ConvTester().input(6, 6, 5).kernel(3, 3).padding_same().test_depthwise(p);
  ConvTester()
      .input(6, 6, 3)
      .kernel(3, 3)
      .depth_multiplier(2)
      .padding_same()
      .per_channel(true)
      .test_depthwise(p);
  ConvTester()
      .batch(2)
      .input(7, 5, 4)
      .kernel(3, 2)
      .depth_multiplier(3)
      .stride(2, 1)
      .padding(1, 0, 1, 1)
      .test_depthwise(p);
  // Offsets at their ends: every (x + 128)(w - 127) <= 0, so the output offset is 127 (with
  // -128 every output would clamp to -128 whatever the taps) and the shifts keep most sums
  // inside the int8 range.
  ConvTester()
      .input(9, 9, 2)
      .kernel(3, 3)
      .dilation(2, 3)
      .padding_same()
      .input_offset(128)
      .filter_offset(-127)
      .output_offset(127)
      .shift_range(-12, -10)
      .bias(false)
      .test_depthwise(p);
  ConvTester().input(9, 8, 3).kernel(3, 3).dilation(2, 1).padding_same().test_depthwise(p);
  ConvTester().input(8, 9, 4).kernel(3, 2).dilation(1, 3).padding_same().test_depthwise(p);
  ConvTester()
      .input(5, 5, 8)
      .kernel(5, 5)
      .padding(2, 2, 2, 2)
      .rounding(Rounding::kSingle)
      .act(-5, 5)
      .test_depthwise(p);
  ConvTester().input(4, 4, 3).kernel(1, 1).depth_multiplier(4).test_depthwise(p);
}

TEST_P(KernelPaths, GemmS32) {
  const Path p = GetParam();
  for (int32_t m : {1, 2, 3, 5}) {
    for (int32_t n : {1, 2, 3, 7}) {
      for (int32_t k : {1, 3, 4, 9, 16, 33}) {
        GemmTester().m(m).n(n).k(k).a_offset(128).b_offset(-128).test(p);
      }
    }
  }
  GemmTester().m(4).n(5).k(7).lda(9).ldb(11).ldc(8).test(p);
  GemmTester().m(3).n(3).k(20).row_add(false).col_add(false).a_offset(-128).b_offset(128).test(p);
  GemmTester().m(6).n(17).k(64).row_add(false).test(p);
}

INSTANTIATE_TEST_SUITE_P(AllPaths, KernelPaths, ::testing::ValuesIn(tinyquant_test::all_paths()),
                         [](const ::testing::TestParamInfo<Path>& param_info) {
                           return std::string(rt::path_name(param_info.param));
                         });

// ---- dispatch ------------------------------------------------------------------------------

TEST(Dispatch, ReferenceAndSmladAlwaysSupported) {
  EXPECT_NE(rt::supported_paths() & rt::path_bits(Path::kReference), 0u);
  EXPECT_NE(rt::supported_paths() & rt::path_bits(Path::kSmlad), 0u);
  EXPECT_NE(rt::supported_paths() & rt::path_bits(rt::default_path()), 0u);
}

TEST(Dispatch, ForcePathRoundTrip) {
  ASSERT_EQ(rt::force_path(Path::kSmlad), rt::Status::kOk);
  EXPECT_EQ(rt::default_path(), Path::kSmlad);
  ASSERT_EQ(rt::force_path(Path::kReference), rt::Status::kOk);
  EXPECT_EQ(rt::default_path(), Path::kReference);
  ASSERT_EQ(rt::force_path(Path::kAuto), rt::Status::kOk);
  EXPECT_NE(rt::default_path(), Path::kAuto);
}

// Unforced, kAuto takes the widest path this machine runs: AMX, then AVX-512 VNNI, AVX2, the
// dot-product NEON, NEON; else smlad where the DSP instructions are real, else the reference.
TEST(Dispatch, AutoPicksTheWidestSupportedPath) {
  ASSERT_EQ(rt::force_path(Path::kAuto), rt::Status::kOk);
  Path want = Path::kReference;
#if TINYQUANT_RT_NATIVE_DSP
  want = Path::kSmlad;
#endif
  for (Path p : {Path::kNeon, Path::kNeonDot, Path::kAvx2, Path::kAvx512Vnni, Path::kAmx}) {
    if ((rt::supported_paths() & rt::path_bits(p)) != 0) want = p;
  }
  EXPECT_EQ(rt::default_path(), want);
}

TEST(Dispatch, PathNames) {
  EXPECT_STREQ(rt::path_name(Path::kReference), "reference");
  EXPECT_STREQ(rt::path_name(Path::kSmlad), "smlad");
  EXPECT_STREQ(rt::path_name(Path::kAvx2), "avx2");
  EXPECT_STREQ(rt::path_name(Path::kAvx512Vnni), "avx512vnni");
  EXPECT_STREQ(rt::path_name(Path::kNeon), "neon");
  EXPECT_STREQ(rt::path_name(Path::kNeonDot), "neondot");
  EXPECT_STREQ(rt::path_name(Path::kAuto), "auto");
}

// Run by the test_kernels.env_path CTest entry with TINYQUANT_PATH=smlad: the variable forces
// the path at first use. Skipped in a plain run, where nothing sets it.
TEST(DispatchEnv, EnvironmentForcesPathAtFirstUse) {
  const char* env = std::getenv("TINYQUANT_PATH");
  if (env == nullptr) GTEST_SKIP() << "TINYQUANT_PATH is not set";
  EXPECT_STREQ(rt::path_name(rt::default_path()), env);
}
