// The smlad path's shape-specialised kernels against the reference path and the testers' direct
// formula (tolerance 0): the cases that select each kernel and its edges. GEMV (m == 1, four
// weight rows per pass, n % 4 leftovers, k % 4 tails), 2x2 tiles over a widened activation
// pair (odd m and n, every k % 4 tail, K = 1..7 convs, 1x1 with stride and padding), int4 with 8
// nibbles per load (k % 8 tails, odd k and conv groups starting mid-byte, which take the
// nibble loop), depthwise 3x3 with four channels per load (leftover channels, stride, asymmetric
// padding, border-only images, offsets at both ends), and the 32-bit output stage over the
// whole shift and multiplier range.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "rt/kernel_tester.hpp"
#include "rt/path_kernels.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace rt = tinyquant::rt;
using rt::Path;
using rt::Rounding;
using tinyquant_test::ConvTester;
using tinyquant_test::FcTester;

TEST(SmladGemv, EveryRowRemainderAndKTail) {
  for (int32_t out = 1; out <= 9; ++out) {
    for (int32_t k : {1, 3, 4, 5, 8, 27, 33}) {
      FcTester()
          .batch(1)
          .in(k)
          .out(out)
          .input_offset(128)
          .seed(static_cast<uint32_t>(out * k))
          .test(Path::kSmlad);
    }
  }
}

TEST(SmladGemv, OffsetsAtBothEnds) {
  for (int32_t in_off : {-127, 0, 128}) {
    for (int32_t w_off : {-127, 0, 128}) {
      FcTester()
          .batch(1)
          .in(37)
          .out(6)
          .input_offset(in_off)
          .filter_offset(w_off)
          .output_offset(-128)
          .per_channel(true)
          .test(Path::kSmlad);
    }
  }
}

TEST(SmladGemm2x2, OddBatchAndOutputs) {
  for (int32_t batch : {2, 3, 4, 5}) {
    for (int32_t out : {1, 2, 3, 5}) {
      FcTester()
          .batch(batch)
          .in(19)
          .out(out)
          .input_offset(-127)
          .filter_offset(5)
          .per_channel(true)
          .rounding(Rounding::kSingle)
          .test(Path::kSmlad);
    }
  }
}

// The 2x2 tile over a widened activation pair: every k % 4 tail (its weight bytes read one by
// one, its activation halves zeroed), both offsets at their ends, odd batch and outputs.
TEST(SmladGemm2x2, KTailsAndOffsetsOfTheWidenedPair) {
  for (int32_t k : {1, 2, 3, 4, 5, 6, 7, 9, 27, 33}) {
    for (int32_t in_off : {-127, 128}) {
      for (int32_t w_off : {0, -127, 128}) {
        FcTester()
            .batch(k % 2 == 0 ? 4 : 3)
            .in(k)
            .out(k % 3 + 2)
            .input_offset(in_off)
            .filter_offset(w_off)
            .output_offset(-128)
            .per_channel(k % 2 == 1)
            .seed(static_cast<uint32_t>(k * 7 + in_off + w_off))
            .test(Path::kSmlad);
      }
    }
  }
}

// Conv shapes that go through the widened 2x2 tile: K = 1, 2, 3, 5 (1x1 over 1, 2, 3, 5
// channels, with and without stride and padding), 3-channel 3x3 (K = 27), odd channel counts,
// batches, groups.
TEST(SmladGemm2x2, ConvSmallAndOddK) {
  for (int32_t c : {1, 2, 3, 5}) {
    ConvTester().batch(2).input(5, 4, c).kernel(1, 1).out_channels(3).test(Path::kSmlad);
    ConvTester()
        .input(6, 5, c)
        .kernel(1, 1)
        .out_channels(5)
        .stride(2, 2)
        .padding(1, 0, 1, 1)
        .input_offset(-127)
        .test(Path::kSmlad);
  }
  ConvTester()
      .batch(3)
      .input(7, 7, 3)
      .kernel(3, 3)
      .out_channels(16)
      .padding_same()
      .input_offset(128)
      .test(Path::kSmlad);
  ConvTester()
      .input(5, 6, 7)
      .kernel(3, 3)
      .out_channels(9)
      .stride(2, 1)
      .padding_same()
      .filter_offset(-127)
      .test(Path::kSmlad);
  ConvTester().batch(2).input(4, 4, 6).kernel(1, 1).out_channels(6).groups(3).test(Path::kSmlad);
}

TEST(SmladGemmS4, KTailsOddKAndLargeK) {
  for (int32_t k : {2, 6, 8, 10, 16, 23, 24, 31, 784}) {
    FcTester()
        .batch(2)
        .in(k)
        .out(5)
        .int4(true)
        .input_offset(128)
        .filter_offset(-3)
        .per_channel(true)
        .seed(static_cast<uint32_t>(k))
        .test(Path::kSmlad);
  }
}

// The 8-nibble loop accumulates 16 times the dot product, which stays inside int32 only while
// 255 * 8 * 16 * k < 2^31 (k < 65794); longer rows must take the nibble loop. All-extreme
// operands make row 0's scaled sum leave int32 (255 * -8 * 70000 * 16 < -2^31): the outputs
// are checked against the sum written out in int64.
TEST(SmladGemmS4, RowsLongerThanTheScaledSumRange) {
  const int32_t k = 70000, out = 3, batch = 2;
  std::vector<int8_t> x(static_cast<size_t>(batch * k));
  // Row 0: every x + 128 = 255; row 1: 255 and 0 alternating.
  for (int32_t i = 0; i < k; ++i) {
    x[static_cast<size_t>(i)] = 127;
    x[static_cast<size_t>(k + i)] = static_cast<int8_t>(i % 2 == 0 ? 127 : -128);
  }
  // Row 0: every weight -8; row 1: every weight 7; row 2: -8, 7 alternating.
  std::vector<uint8_t> w(static_cast<size_t>(out * k / 2));
  for (size_t i = 0; i < w.size(); ++i) {
    const size_t row = i / static_cast<size_t>(k / 2);
    w[i] = row == 0 ? 0x88 : (row == 1 ? 0x77 : 0x78);
  }
  auto weight = [&](int32_t o, int32_t kk) {
    const int32_t nib = (w[static_cast<size_t>((o * k + kk) / 2)] >> (kk % 2 == 0 ? 0 : 4)) & 15;
    return nib >= 8 ? nib - 16 : nib;
  };
  const int32_t bias[out] = {-1000, 2000, 3};
  const int32_t mult = 1 << 30, shift = -20;  // acc / 2^21
  rt::FcParams p;
  p.input_offset = 128;
  const rt::FcDims d{batch, k, out};
  rt::Requant rq;
  rq.multiplier = &mult;
  rq.shift = &shift;
  std::vector<int8_t> want(static_cast<size_t>(batch * out));
  for (int32_t b = 0; b < batch; ++b) {
    for (int32_t o = 0; o < out; ++o) {
      int64_t acc = bias[o];
      for (int32_t kk = 0; kk < k; ++kk)
        acc += int64_t{x[static_cast<size_t>(b * k + kk)] + 128} * weight(o, kk);
      want[static_cast<size_t>(b * out + o)] =
          tinyquant_test::oracle_output(acc, mult, shift, Rounding::kDouble, 0, -128, 127);
    }
  }
  EXPECT_EQ(want[0], -68);  // -142,800,000 / 2^21, nowhere near the clamp
  for (Path path : {Path::kReference, Path::kSmlad}) {
    rt::Context ctx;
    ctx.path = path;
    ASSERT_EQ(rt::fully_connected_s4_scratch_size(d, path), 0);
    std::vector<int8_t> got(static_cast<size_t>(batch * out), 0x5A);
    ASSERT_EQ(rt::fully_connected_s4(ctx, p, rq, d, x.data(), w.data(), bias, got.data()),
              rt::Status::kOk);
    EXPECT_EQ(got, want) << rt::path_name(path);
  }
}

TEST(SmladGemmS4, ConvGroupsStartingMidByte) {
  // 3 input channels per group, 3x3: K = 27 nibbles per row, so every other group starts mid-byte.
  ConvTester().input(5, 5, 6).kernel(3, 3).out_channels(6).groups(2).int4(true).test(Path::kSmlad);
}

// A single-path smlad build sends conv groups whose weights start on a high nibble to the int4
// kernel itself (kernels.cpp); elsewhere the public kernels route them to the reference path,
// so the kernel's own mid-byte handling is called here through the path's table, against the
// sum written out.
TEST(SmladGemmS4, StreamStartingOnAHighNibbleThroughTheTable) {
  std::mt19937 rng(31);
  std::uniform_int_distribution<int> byte(0, 255), i8(-128, 127);
  const rt::detail::PathKernels* t = rt::detail::smlad_kernels();
  for (int32_t m : {1, 2, 3}) {
    for (int32_t n : {1, 2, 3}) {
      for (int32_t k : {1, 2, 7, 8, 9, 16, 27}) {
        std::vector<int8_t> a(static_cast<size_t>(m * k));
        for (auto& v : a) v = static_cast<int8_t>(i8(rng));
        std::vector<uint8_t> b(static_cast<size_t>((n * k + 2) / 2));
        for (auto& v : b) v = static_cast<uint8_t>(byte(rng));
        std::vector<int32_t> bias(static_cast<size_t>(n)), mult(static_cast<size_t>(n));
        std::vector<int32_t> shift(static_cast<size_t>(n));
        for (int32_t j = 0; j < n; ++j) {
          bias[static_cast<size_t>(j)] = i8(rng) * 100;
          mult[static_cast<size_t>(j)] = (1 << 30) + i8(rng) * 1000;
          shift[static_cast<size_t>(j)] = -6 - (j % 3);
        }
        rt::detail::GemmS8Args g;
        g.m = m, g.n = n, g.k = k, g.a = a.data(), g.lda = k;
        g.b_s4 = b.data(), g.b_s4_first_nibble = 1;
        g.bias = bias.data(), g.a_offset = 127, g.b_offset = -3;
        g.multiplier = mult.data(), g.shift = shift.data(), g.per_channel = true;
        g.c_offset = 5;
        std::vector<int8_t> got(static_cast<size_t>(m * n), 0x5A);
        g.c = got.data(), g.ldc = n;
        ASSERT_EQ(t->gemm_s8_scratch(m, n, k, true), 0);
        t->gemm_s8(g);
        std::vector<int8_t> want(static_cast<size_t>(m * n));
        for (int32_t i = 0; i < m; ++i) {
          for (int32_t j = 0; j < n; ++j) {
            int64_t acc = bias[static_cast<size_t>(j)];
            for (int32_t q = 0; q < k; ++q) {
              const int32_t idx = 1 + j * k + q;  // nibble index, low nibble of a byte first
              const int32_t nib = (b[static_cast<size_t>(idx / 2)] >> (idx % 2 == 0 ? 0 : 4)) & 15;
              acc += int64_t{a[static_cast<size_t>(i * k + q)] + 127} *
                     ((nib >= 8 ? nib - 16 : nib) - 3);
            }
            want[static_cast<size_t>(i * n + j)] = tinyquant_test::oracle_output(
                acc, mult[static_cast<size_t>(j)], shift[static_cast<size_t>(j)], Rounding::kDouble,
                5, -128, 127);
          }
        }
        ASSERT_EQ(got, want) << "m " << m << " n " << n << " k " << k;
      }
    }
  }
}

TEST(SmladDepthwise3x3, ChannelsStridesAndPadding) {
  for (int32_t c : {4, 5, 8, 13}) {
    ConvTester().input(7, 6, c).kernel(3, 3).padding_same().per_channel(true).test_depthwise(
        Path::kSmlad);
    ConvTester()
        .batch(2)
        .input(9, 8, c)
        .kernel(3, 3)
        .stride(2, 2)
        .padding(0, 1, 1, 0)
        .input_offset(-127)
        .filter_offset(128)
        .test_depthwise(Path::kSmlad);
  }
}

// The four-channel 3x3 kernel has no dilation: a dilation in only one direction must still
// send the call elsewhere.
TEST(SmladDepthwise3x3, DilationInOneDirectionOnly) {
  for (const auto& [dh, dw] : {std::pair{2, 1}, std::pair{1, 2}, std::pair{3, 1}}) {
    for (int32_t c : {2, 4, 5}) {
      ConvTester()
          .input(9, 8, c)
          .kernel(3, 3)
          .dilation(dh, dw)
          .padding_same()
          .per_channel(true)
          .input_offset(-127)
          .seed(static_cast<uint32_t>(c * 10 + dh * 3 + dw))
          .test_depthwise(Path::kSmlad);
    }
  }
}

TEST(SmladDepthwise3x3, BorderOnlyAndValid) {
  // 2x2 and 1x1 images: every output pixel is a border pixel.
  ConvTester().input(2, 2, 8).kernel(3, 3).padding_same().input_offset(128).test_depthwise(
      Path::kSmlad);
  ConvTester().input(1, 1, 4).kernel(3, 3).padding(1, 1, 1, 1).test_depthwise(Path::kSmlad);
  ConvTester()
      .input(6, 6, 8)
      .kernel(3, 3)
      .padding_valid()
      .rounding(Rounding::kSingle)
      .test_depthwise(Path::kSmlad);
}

TEST(SmladDepthwise3x3, OutputStageOverTheFullShiftAndMultiplierRange) {
  // Requantization decoded once per channel group: per-channel and per-tensor, both roundings,
  // leftover channels (5, 13) and border pixels. Every shift from -31 to 30 is used on its own
  // (full-range operands up to shift 0; above it operands within 1 of their zero points, so
  // the left shift does not saturate every output), then shifts mixed at random per channel.
  for (Rounding r : {Rounding::kDouble, Rounding::kSingle}) {
    for (bool per_channel : {true, false}) {
      for (int32_t c : {4, 5, 13}) {
        for (int32_t s = -31; s <= 30; ++s)
          ConvTester()
              .input(5, 6, c)
              .kernel(3, 3)
              .padding_same()
              .per_channel(per_channel)
              .shift_range(s, s)
              .multiplier_range(0, INT32_MAX)
              .small_values(s > 0)
              .input_offset(128)
              .filter_offset(-127)
              .rounding(r)
              .seed(static_cast<uint32_t>((s + 40) * 64 + c * 2 + (per_channel ? 1 : 0)))
              .test_depthwise(Path::kSmlad);
        ConvTester()
            .input(5, 6, c)
            .kernel(3, 3)
            .padding_same()
            .per_channel(per_channel)
            .shift_range(-31, 30)
            .multiplier_range(0, INT32_MAX)
            .input_offset(128)
            .filter_offset(-127)
            .rounding(r)
            .seed(static_cast<uint32_t>(c * 7 + (per_channel ? 1 : 0)))
            .test_depthwise(Path::kSmlad);
      }
    }
  }
}

TEST(SmladRequant, OutputStageOverTheFullShiftAndMultiplierRange) {
  // The kernels' 32-bit output stage against rt::requantize (reference path and the direct
  // formula): every shift from -31 to 30 on its own (small operands above shift 0, as above),
  // multipliers up to INT32_MAX, then shifts mixed at random per channel.
  for (Rounding r : {Rounding::kDouble, Rounding::kSingle}) {
    for (int32_t s = -31; s <= 30; ++s) {
      FcTester()
          .batch(3)
          .in(9)
          .out(7)
          .per_channel(true)
          .shift_range(s, s)
          .multiplier_range(1, INT32_MAX)
          .small_values(s > 0)
          .input_offset(s > 0 ? -20 : 0)
          .filter_offset(s > 0 ? 3 : 0)
          .rounding(r)
          .seed(static_cast<uint32_t>(s + 100))
          .test(Path::kSmlad);
    }
    FcTester()
        .batch(1)
        .in(21)
        .out(12)
        .per_channel(true)
        .shift_range(-31, 30)
        .rounding(r)
        .seed(r == Rounding::kDouble ? 1234 : 4321)
        .test(Path::kSmlad);
    FcTester()
        .batch(3)
        .in(9)
        .out(7)
        .per_channel(true)
        .shift_range(-31, 30)
        .multiplier_range(0, INT32_MAX)
        .rounding(r)
        .seed(r == Rounding::kDouble ? 99 : 98)
        .test(Path::kSmlad);
  }
}
