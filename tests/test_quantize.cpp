// quantize / dequantize / int4 packing / fake-quant, checked against plain reference loops
// written here from the formulas in quantize.hpp, and against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/quantize.hpp"

using namespace tinyquant;
using namespace tq_test;

namespace {

// ---- Reference: every element's parameter index, from its coordinates -------------------------
int64_t ref_param_index(const Shape& shape, const QuantSpec& spec, int64_t flat) {
  if (spec.granularity == Granularity::kPerTensor) return 0;
  const int rank = static_cast<int>(shape.size());
  const int axis = spec.axis < 0 ? spec.axis + rank : spec.axis;
  std::vector<int64_t> c(shape.size());
  for (int d = rank - 1; d >= 0; --d) {
    c[static_cast<size_t>(d)] = flat % shape[static_cast<size_t>(d)];
    flat /= shape[static_cast<size_t>(d)];
  }
  if (spec.granularity == Granularity::kPerChannel) return c[static_cast<size_t>(axis)];
  // Per-group: the parameter tensor has the axis extent replaced by the group count.
  Shape pshape = shape;
  const size_t ax = static_cast<size_t>(axis);
  pshape[ax] = (shape[ax] + spec.group_size - 1) / spec.group_size;
  c[ax] /= spec.group_size;
  int64_t idx = 0;
  for (size_t d = 0; d < shape.size(); ++d) idx = idx * pshape[d] + c[d];
  return idx;
}

int64_t ref_param_count(const Shape& shape, const QuantSpec& spec) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  if (spec.granularity == Granularity::kPerTensor) return 1;
  const int rank = static_cast<int>(shape.size());
  const size_t ax = static_cast<size_t>(spec.axis < 0 ? spec.axis + rank : spec.axis);
  if (spec.granularity == Granularity::kPerChannel) return shape[ax];
  return n / shape[ax] * ((shape[ax] + spec.group_size - 1) / spec.group_size);
}

int32_t ref_qmin(const QuantSpec& s) {
  const int32_t lo = -(1 << (s.bits - 1));
  return s.narrow_range ? lo + 1 : lo;
}
int32_t ref_qmax(const QuantSpec& s) {
  return (1 << (s.bits - 1)) - 1;
}

// q = clamp(round(x / scale) + zp, qmin, qmax), written out plainly with the C library rounding.
int64_t ref_preclamp(float x, float scale, int32_t zp, RoundMode mode) {
  const float v = x / scale;
  const double r = mode == RoundMode::kHalfToEven ? std::nearbyint(static_cast<double>(v))
                                                  : std::round(static_cast<double>(v));
  const double clipped = std::fmin(std::fmax(r + zp, -1e9), 1e9);
  return static_cast<int64_t>(clipped);
}

std::vector<int32_t> ref_quantize(const std::vector<float>& x, const Shape& shape,
                                  const QuantParams& p, RoundMode mode) {
  std::vector<int32_t> q(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t k = static_cast<size_t>(ref_param_index(shape, p.spec, static_cast<int64_t>(i)));
    int64_t v = ref_preclamp(x[i], p.scales[k], p.zero_points[k], mode);
    if (v < ref_qmin(p.spec)) v = ref_qmin(p.spec);
    if (v > ref_qmax(p.spec)) v = ref_qmax(p.spec);
    q[i] = static_cast<int32_t>(v);
  }
  return q;
}

std::vector<float> ref_dequantize(const std::vector<int32_t>& q, const Shape& shape,
                                  const QuantParams& p) {
  std::vector<float> r(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    const size_t k = static_cast<size_t>(ref_param_index(shape, p.spec, static_cast<int64_t>(i)));
    r[i] = p.scales[k] * static_cast<float>(q[i] - p.zero_points[k]);
  }
  return r;
}

// The storage bytes the header promises, built from the integers one by one.
std::vector<uint8_t> ref_bytes(const std::vector<int32_t>& q, int bits) {
  std::vector<uint8_t> b;
  if (bits <= 4) {
    b.assign((q.size() + 1) / 2, 0);
    for (size_t i = 0; i < q.size(); ++i) {
      const uint8_t nib = static_cast<uint8_t>(q[i] & 0xF);
      b[i / 2] = static_cast<uint8_t>(b[i / 2] | (i % 2 == 0 ? nib : nib << 4));
    }
  } else if (bits <= 8) {
    for (int32_t v : q) b.push_back(static_cast<uint8_t>(v & 0xFF));
  } else {
    for (int32_t v : q) {  // little-endian
      b.push_back(static_cast<uint8_t>(v & 0xFF));
      b.push_back(static_cast<uint8_t>((v >> 8) & 0xFF));
    }
  }
  return b;
}

QuantParams random_params(const Shape& shape, const QuantSpec& spec, std::mt19937& rng) {
  QuantParams p;
  p.spec = spec;
  const size_t n = static_cast<size_t>(ref_param_count(shape, spec));
  std::uniform_real_distribution<float> sd(0.01f, 0.5f);
  std::uniform_int_distribution<int32_t> zd(ref_qmin(spec), ref_qmax(spec));
  for (size_t i = 0; i < n; ++i) {
    p.scales.push_back(sd(rng));
    p.zero_points.push_back(spec.scheme == Scheme::kSymmetric ? 0 : zd(rng));
  }
  return p;
}

std::vector<float> uniform_data(size_t n, float range, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-range, range);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

int64_t count(const Shape& s) {
  int64_t n = 1;
  for (int64_t e : s) n *= e;
  return n;
}

QuantParams per_tensor(int bits, float scale, int32_t zp, bool narrow = false) {
  QuantParams p;
  p.spec.bits = bits;
  p.spec.narrow_range = narrow;
  p.scales = {scale};
  p.zero_points = {zp};
  return p;
}

}  // namespace

// ---- Every granularity, axis, bit width and rounding mode against the reference ---------------
TEST(Quantize, MatchesReferenceForAllLayouts) {
  std::mt19937 rng(7);
  const std::vector<Shape> shapes{{37}, {6, 10}, {3, 5, 7}, {2, 3, 4, 5}};
  const int bits_list[] = {2, 3, 4, 5, 6, 7, 8, 16};
  int cases = 0;
  for (const Shape& shape : shapes) {
    const int rank = static_cast<int>(shape.size());
    std::vector<QuantSpec> specs;
    specs.push_back(QuantSpec{});
    for (int axis = -rank; axis < rank; ++axis) {
      QuantSpec c;
      c.granularity = Granularity::kPerChannel;
      c.axis = axis;
      specs.push_back(c);
      for (int64_t g : {1, 2, 3, 4, 32}) {
        QuantSpec gs = c;
        gs.granularity = Granularity::kPerGroup;
        gs.group_size = g;
        specs.push_back(gs);
      }
    }
    for (QuantSpec spec : specs) {
      for (int bits : bits_list) {
        for (RoundMode mode : {RoundMode::kHalfAwayFromZero, RoundMode::kHalfToEven}) {
          spec.bits = bits;
          spec.scheme = (cases % 2 == 0) ? Scheme::kAffine : Scheme::kSymmetric;
          spec.narrow_range = (cases % 3 == 0);
          ++cases;
          const QuantParams p = random_params(shape, spec, rng);
          // Wide enough to clamp at both ends for the small bit widths.
          std::vector<float> x = uniform_data(static_cast<size_t>(count(shape)), 40.0f, rng);
          x[0] = 1e30f;
          x[1] = -1e30f;
          const std::vector<int32_t> want = ref_quantize(x, shape, p, mode);
          const QTensor q = quantize(x.data(), shape, p, mode);
          const std::string where =
              "shape " + to_string(shape) + " " + to_string(spec.granularity) + " axis " +
              std::to_string(spec.axis) + " group " + std::to_string(spec.group_size) + " bits " +
              std::to_string(bits) + " even " + std::to_string(mode == RoundMode::kHalfToEven);
          ASSERT_EQ(q.data, ref_bytes(want, bits)) << where;
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_EQ(q.value(static_cast<int64_t>(i)), want[i]) << where << " i " << i;
          const std::vector<float> back = dequantize(q);
          ASSERT_EQ(back, ref_dequantize(want, shape, p)) << where;

          std::vector<uint8_t> buf(q.data.size() + 1, 0xAB);
          quantize(x.data(), shape, p, buf.data(), static_cast<int64_t>(q.data.size()), mode);
          EXPECT_TRUE(std::equal(q.data.begin(), q.data.end(), buf.begin())) << where;
          EXPECT_EQ(buf.back(), 0xAB) << "wrote past the buffer, " << where;
          std::vector<float> fbuf(back.size());
          dequantize(q, fbuf.data(), static_cast<int64_t>(fbuf.size()));
          EXPECT_EQ(fbuf, back) << where;
        }
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

// Long runs exercise the vector bodies of the hot loops, not just their scalar tails.
TEST(Quantize, LongRunsMatchReference) {
  std::mt19937 rng(11);
  const Shape shape{8, 1000};
  for (int axis : {0, 1}) {
    for (Granularity g :
         {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup}) {
      for (int bits : {4, 8, 16}) {
        for (RoundMode mode : {RoundMode::kHalfAwayFromZero, RoundMode::kHalfToEven}) {
          QuantSpec spec;
          spec.bits = bits;
          spec.granularity = g;
          spec.axis = axis;
          spec.group_size = 32;
          QuantParams p = random_params(shape, spec, rng);
          // Scale 1 on every other parameter, so the half-integers below are exact ties.
          for (size_t k = 0; k < p.scales.size(); k += 2) p.scales[k] = 1.0f;
          std::vector<float> x = uniform_data(8000, 70.0f, rng);
          for (size_t i = 0; i < x.size(); i += 3) x[i] = std::round(x[i]) + 0.5f;
          const std::vector<int32_t> want = ref_quantize(x, shape, p, mode);
          const QTensor q = quantize(x.data(), shape, p, mode);
          ASSERT_EQ(q.data, ref_bytes(want, bits)) << "axis " << axis << " bits " << bits;
          ASSERT_EQ(dequantize(q), ref_dequantize(want, shape, p));
        }
      }
    }
  }
}

// Packed tensors larger than any internal buffer, with odd run lengths, so runs straddle buffer
// and byte boundaries in every way.
TEST(Quantize, PackedLargeTensorsMatchReference) {
  std::mt19937 rng(13);
  const Shape shape{3, 11001};
  const std::vector<float> x = uniform_data(33003, 5.0f, rng);
  for (int bits : {2, 3, 4}) {
    for (Granularity g :
         {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup}) {
      for (int axis : {0, 1}) {
        QuantSpec spec;
        spec.bits = bits;
        spec.granularity = g;
        spec.axis = axis;
        spec.group_size = 7;
        const QuantParams p = random_params(shape, spec, rng);
        const std::vector<int32_t> want = ref_quantize(x, shape, p, RoundMode::kHalfAwayFromZero);
        const QTensor q = quantize(x.data(), shape, p);
        ASSERT_EQ(q.data, ref_bytes(want, bits)) << "bits " << bits << " axis " << axis;
        ASSERT_EQ(dequantize(q), ref_dequantize(want, shape, p));
      }
    }
  }
}

// ---- Rounding: exact ties, both modes, hand-computed ------------------------------------------
TEST(Quantize, TiesRoundAsDocumented) {
  const std::vector<float> x{0.5f,        1.5f,         2.5f,        -0.5f,  -1.5f,   -2.5f,
                             0.49999997f, -0.49999997f, 0.50000006f, 126.5f, -127.5f, 3.0f};
  const std::vector<int32_t> away{1, 2, 3, -1, -2, -3, 0, 0, 1, 127, -128, 3};
  const std::vector<int32_t> even{0, 2, 2, 0, -2, -2, 0, 0, 1, 126, -128, 3};
  const QuantParams p = per_tensor(8, 1.0f, 0);
  const Shape shape{static_cast<int64_t>(x.size())};
  const QTensor qa = quantize(x.data(), shape, p, RoundMode::kHalfAwayFromZero);
  const QTensor qe = quantize(x.data(), shape, p, RoundMode::kHalfToEven);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(qa.value(static_cast<int64_t>(i)), away[i]) << "x = " << x[i];
    EXPECT_EQ(qe.value(static_cast<int64_t>(i)), even[i]) << "x = " << x[i];
  }
  // The default is TFLite's half away from zero.
  EXPECT_EQ(quantize(x.data(), shape, p).data, qa.data);
}

TEST(Quantize, TiesWithScaleAndZeroPoint) {
  // scale 0.25: x / scale is exact, so 0.125 -> 0.5, -0.375 -> -1.5, 0.625 -> 2.5.
  const std::vector<float> x{0.125f, -0.375f, 0.625f, -0.125f};
  const QuantParams p = per_tensor(8, 0.25f, 10);
  const QTensor qa = quantize(x.data(), {4}, p, RoundMode::kHalfAwayFromZero);
  const QTensor qe = quantize(x.data(), {4}, p, RoundMode::kHalfToEven);
  const std::vector<int32_t> away{11, 8, 13, 9}, even{10, 8, 12, 10};
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(qa.value(i), away[static_cast<size_t>(i)]) << i;
    EXPECT_EQ(qe.value(i), even[static_cast<size_t>(i)]) << i;
  }
}

// Every tie of the int16 range and the floats just around it, against std::round / nearbyint.
TEST(Quantize, RoundingMatchesCLibraryAroundEveryTie) {
  std::vector<float> x;
  for (int k = -32769; k <= 32768; ++k) {
    const float tie = static_cast<float>(k) + 0.5f;
    x.push_back(tie);
    x.push_back(std::nextafter(tie, 0.0f));
    x.push_back(std::nextafter(tie, tie * 2.0f));
    x.push_back(std::nextafter(std::nextafter(tie, 0.0f), 0.0f));
    x.push_back(static_cast<float>(k));
  }
  const Shape shape{static_cast<int64_t>(x.size())};
  const QuantParams p = per_tensor(16, 1.0f, 0);
  for (RoundMode mode : {RoundMode::kHalfAwayFromZero, RoundMode::kHalfToEven}) {
    const QTensor q = quantize(x.data(), shape, p, mode);
    for (size_t i = 0; i < x.size(); ++i) {
      const double r = mode == RoundMode::kHalfToEven ? std::nearbyint(static_cast<double>(x[i]))
                                                      : std::round(static_cast<double>(x[i]));
      const int32_t want = static_cast<int32_t>(std::fmin(std::fmax(r, -32768.0), 32767.0));
      ASSERT_EQ(q.value(static_cast<int64_t>(i)), want) << "x = " << x[i];
    }
  }
}

// The float division is what TFLite does; a reciprocal multiply differs on some inputs.
TEST(Quantize, UsesDivisionNotReciprocal) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1.5f, 1.5f);
  const float scale = 0.0123f;
  const float inv = 1.0f / scale;
  std::vector<float> x;
  // Inputs where the two disagree after rounding: rare, but a few million draws find enough.
  for (int tries = 0; tries < 20000000 && x.size() < 20; ++tries) {
    const float v = d(rng);
    if (std::round(v / scale) != std::round(v * inv)) x.push_back(v);
  }
  ASSERT_EQ(x.size(), 20u);
  const QuantParams p = per_tensor(8, scale, 0);
  const QTensor q = quantize(x.data(), {20}, p);
  const FakeQuantResult f = fake_quant(x.data(), {20}, p);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(q.value(static_cast<int64_t>(i)), static_cast<int32_t>(std::round(x[i] / scale)));
    EXPECT_EQ(f.values[i], scale * static_cast<float>(std::round(x[i] / scale))) << x[i];
  }
}

TEST(Quantize, ClampsAtBothEnds) {
  const float inf_quotient = std::numeric_limits<float>::max();
  const std::vector<float> x{1000.0f, -1000.0f, inf_quotient, -inf_quotient, 12.7f, -12.8f};
  const QuantParams p = per_tensor(8, 0.1f, 0);
  const QTensor q = quantize(x.data(), {6}, p);
  EXPECT_EQ(q.value(0), 127);
  EXPECT_EQ(q.value(1), -128);
  EXPECT_EQ(q.value(2), 127);  // x / scale overflows to +inf
  EXPECT_EQ(q.value(3), -128);
  EXPECT_EQ(q.value(4), 127);
  EXPECT_EQ(q.value(5), -128);
  // Narrow range and a zero point: [-7, 7] for int4, zp 3 -> real range [-10, 4] * scale.
  const QuantParams p4 = per_tensor(4, 1.0f, 3, true);
  const std::vector<float> y{100.0f, -100.0f, 4.0f, -10.0f, 5.0f, -11.0f};
  const QTensor q4 = quantize(y.data(), {6}, p4);
  const std::vector<int32_t> want{7, -7, 7, -7, 7, -7};
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(q4.value(i), want[static_cast<size_t>(i)]) << i;
  // 16 bits.
  const QuantParams p16 = per_tensor(16, 1.0f, 0);
  const std::vector<float> z{40000.0f, -40000.0f, 32767.0f, -32768.0f};
  const QTensor q16 = quantize(z.data(), {4}, p16);
  EXPECT_EQ(q16.value(0), 32767);
  EXPECT_EQ(q16.value(1), -32768);
  EXPECT_EQ(q16.data, (std::vector<uint8_t>{0xFF, 0x7F, 0x00, 0x80, 0xFF, 0x7F, 0x00, 0x80}));
}

// ---- Round trips ------------------------------------------------------------------------------
TEST(Quantize, RoundTripWithinHalfStepInsideRange) {
  std::mt19937 rng(5);
  const Shape shape{12, 40};
  for (int bits : {2, 3, 4, 5, 8, 16}) {
    for (Granularity g :
         {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup}) {
      for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric}) {
        QuantSpec spec;
        spec.bits = bits;
        spec.scheme = scheme;
        spec.granularity = g;
        spec.axis = 1;
        spec.group_size = 5;
        const std::vector<float> x = uniform_data(480, 3.0f, rng);
        const QTensor q = quantize_weights(x.data(), shape, spec);
        EXPECT_EQ(q.data, quantize(x.data(), shape, params_for(x.data(), shape, spec)).data);
        const std::vector<float> back = dequantize(q);
        for (size_t i = 0; i < x.size(); ++i) {
          const float s = q.params.scales[static_cast<size_t>(
              ref_param_index(shape, spec, static_cast<int64_t>(i)))];
          EXPECT_LE(std::fabs(back[i] - x[i]), s * 0.5f + 1e-6f)
              << "bits " << bits << " " << to_string(g) << " i " << i;
        }
      }
    }
  }
}

TEST(Quantize, AsymmetricRangeSurvivesAtBothEnds) {
  const std::vector<float> x{-0.5f, 0.8f, 0.0f, 0.3f};
  const QTensor q = quantize_weights(x.data(), {4}, QuantSpec{});
  const float s = q.params.scales[0];
  EXPECT_NEAR(s, 1.3 / 255.0, 1e-7);
  const std::vector<float> back = dequantize(q);
  EXPECT_LE(std::fabs(back[0] + 0.5f), s / 2);
  EXPECT_LE(std::fabs(back[1] - 0.8f), s / 2);
  EXPECT_EQ(back[2], 0.0f);
  EXPECT_EQ(q.value(0), -128);
  EXPECT_EQ(q.value(1), 127);
}

// ---- int4 packing -----------------------------------------------------------------------------
TEST(PackInt4, HandWrittenBytes) {
  const std::vector<int8_t> v{1, -1, 7, -8, 3};
  const std::vector<uint8_t> bytes{0xF1, 0x87, 0x03};
  EXPECT_EQ(pack_int4(v), bytes);
  EXPECT_EQ(unpack_int4(bytes, 5), v);
  EXPECT_EQ(pack_int4(std::vector<int8_t>{0, -8}), (std::vector<uint8_t>{0x80}));
  EXPECT_EQ(pack_int4(std::vector<int8_t>{-1}), (std::vector<uint8_t>{0x0F}));  // odd: high 0
  EXPECT_EQ(pack_int4(std::vector<int8_t>{}), (std::vector<uint8_t>{}));
  EXPECT_EQ(unpack_int4(std::vector<uint8_t>{0x8F}, 2), (std::vector<int8_t>{-1, -8}));
}

TEST(PackInt4, AllValuesRoundTrip) {
  std::vector<int8_t> v;
  for (int a = -8; a <= 7; ++a)
    for (int b = -8; b <= 7; ++b) {
      v.push_back(static_cast<int8_t>(a));
      v.push_back(static_cast<int8_t>(b));
    }
  v.push_back(-5);  // odd count
  const std::vector<uint8_t> p = pack_int4(v);
  ASSERT_EQ(p.size(), 257u);
  for (size_t i = 0; i < 256; ++i)
    EXPECT_EQ(p[i], static_cast<uint8_t>((v[2 * i] & 0xF) | ((v[2 * i + 1] & 0xF) << 4)));
  EXPECT_EQ(p[256], 0x0B);
  EXPECT_EQ(unpack_int4(p, static_cast<int64_t>(v.size())), v);
}

TEST(PackInt4, RejectsOutOfRangeWithIndex) {
  expect_error<InvalidArgument>(
      [] {
        pack_int4(std::vector<int8_t>{1, 2, 8, 3});
      },
      {"pack_int4", "value 8", "index 2", "[-8, 7]"});
  expect_error<InvalidArgument>([] { pack_int4(std::vector<int8_t>{-9}); },
                                {"value -9", "index 0"});
  expect_error<ShapeError>(
      [] {
        unpack_int4(std::vector<uint8_t>{1, 2}, 5);
      },
      {"unpack_int4", "2 packed bytes", "5 elements", "need 3"});
}

// The pointer overloads refuse a null buffer for a non-empty count, naming the count; a count of
// 0 needs no buffers.
TEST(PackInt4, RejectsNullBuffers) {
  const int8_t v[3] = {1, -2, 3};
  uint8_t packed[2] = {0, 0};
  int8_t out[3] = {0, 0, 0};
  expect_error<InvalidArgument>([&] { pack_int4(nullptr, 3, packed); },
                                {"pack_int4: null buffer for 3 elements"});
  expect_error<InvalidArgument>([&] { pack_int4(v, 3, nullptr); },
                                {"pack_int4: null buffer for 3 elements"});
  expect_error<InvalidArgument>([&] { unpack_int4(nullptr, 3, out); },
                                {"unpack_int4: null buffer for 3 elements"});
  expect_error<InvalidArgument>([&] { unpack_int4(packed, 3, nullptr); },
                                {"unpack_int4: null buffer for 3 elements"});
  pack_int4(nullptr, 0, nullptr);
  unpack_int4(nullptr, 0, nullptr);
}

TEST(Quantize, Int4OddCountLeavesHighNibbleZero) {
  const std::vector<float> x{1.0f, -1.0f, 7.0f, -8.0f, -3.0f};
  const QTensor q = quantize(x.data(), {5}, per_tensor(4, 1.0f, 0));
  EXPECT_EQ(q.data, (std::vector<uint8_t>{0xF1, 0x87, 0x0D}));
  EXPECT_EQ(dequantize(q), x);
  const QTensor q2 = quantize(x.data(), {5}, per_tensor(2, 1.0f, 0));  // [-2, 1]
  EXPECT_EQ(q2.data, (std::vector<uint8_t>{0xF1, 0xE1, 0x0E}));
}

// from_integers stores integers as quantize would: each value v of [qmin, qmax] quantized from
// the float v with scale 1 and zero point 0 is v itself, so the bytes must match quantize's
// (checked on its own above), element by element through value() too.
TEST(FromIntegers, StoresLikeQuantizeAtEveryBitWidth) {
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4, 5, 8, 16}) {
    for (bool narrow : {false, true}) {
      const QuantParams p = per_tensor(bits, 1.0f, 0, narrow);
      const int32_t lo = ref_qmin(p.spec), hi = ref_qmax(p.spec);
      std::uniform_int_distribution<int32_t> pick(lo, hi);
      std::vector<int32_t> v(37);  // odd: the packed forms' last high nibble stays 0
      for (int32_t& x : v) x = pick(rng);
      v[0] = lo;
      v[1] = hi;
      const std::vector<float> f(v.begin(), v.end());
      const QTensor q = from_integers(v.data(), {37}, p);
      EXPECT_EQ(q.data, quantize(f.data(), {37}, p).data) << bits << " bits";
      for (int64_t i = 0; i < 37; ++i) ASSERT_EQ(q.value(i), v[static_cast<size_t>(i)]) << i;
      EXPECT_EQ(dequantize(q), f);
    }
  }
  EXPECT_TRUE(from_integers(nullptr, {0, 3}, per_tensor(4, 1.0f, 0)).data.empty());
}

TEST(FromIntegers, RejectsValuesOffTheGridWithIndex) {
  const std::vector<int32_t> v{1, -2, 8, 3};
  expect_error<InvalidArgument>([&] { from_integers(v.data(), {4}, per_tensor(4, 1.0f, 0)); },
                                {"from_integers", "value 8", "index 2", "[-8, 7]"});
  const std::vector<int32_t> w{0, -128};
  expect_error<InvalidArgument>([&] { from_integers(w.data(), {2}, per_tensor(8, 1.0f, 0, true)); },
                                {"value -128", "index 1", "[-127, 127]"});
  expect_error<InvalidArgument>([] { from_integers(nullptr, {2}, per_tensor(8, 1.0f, 0)); },
                                {"from_integers", "null", "2 elements"});
  QuantParams three;  // three channels for a shape with two
  three.spec = QuantSpec::int8_weights_per_channel(0);
  three.scales = {1.0f, 1.0f, 1.0f};
  three.zero_points = {0, 0, 0};
  expect_error<ShapeError>(
      [&] {
        from_integers(v.data(), {2, 2}, three);
      },
      {"from_integers", "3 scales", "[2, 2]"});
}

// ---- Fake quant -------------------------------------------------------------------------------
TEST(FakeQuant, ValuesAndMaskAtBoundaries) {
  const QuantParams p = per_tensor(8, 1.0f, 0);
  const std::vector<float> x{127.4f, 127.5f, -128.4f, -128.5f, 0.3f, 300.0f, -300.0f};
  const FakeQuantResult a = fake_quant(x.data(), {7}, p);
  EXPECT_EQ(a.values, (std::vector<float>{127, 127, -128, -128, 0, 127, -128}));
  EXPECT_EQ(a.mask, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0, 0}));
  // Half to even: 127.5 -> 128 (out), -128.5 -> -128 (in).
  const FakeQuantResult e = fake_quant(x.data(), {7}, p, RoundMode::kHalfToEven);
  EXPECT_EQ(e.mask, (std::vector<uint8_t>{1, 0, 1, 1, 1, 0, 0}));
  // Narrow range: -127.5 rounds to -128, below qmin -127.
  const QuantParams pn = per_tensor(8, 0.5f, 0, true);
  const std::vector<float> y{-63.5f, -63.75f, 63.5f, 63.75f};
  const FakeQuantResult n = fake_quant(y.data(), {4}, pn);
  EXPECT_EQ(n.values, (std::vector<float>{-63.5f, -63.5f, 63.5f, 63.5f}));
  EXPECT_EQ(n.mask, (std::vector<uint8_t>{1, 0, 1, 0}));
}

// 16-bit codes: the mask and values must hold for quotients far beyond the 8-bit range, up to
// qmax - zero point = 65535 (zero point -32768) and down to qmin = -32768 (zero point 0).
TEST(FakeQuant, SixteenBitRangeEnds) {
  const QuantParams a = per_tensor(16, 1.0f, -32768);
  const std::vector<float> x{65535.4f, 65535.6f, 40000.5f, -0.4f, -0.6f, 1e9f};
  const FakeQuantResult fa = fake_quant(x.data(), {6}, a);
  EXPECT_EQ(fa.values, (std::vector<float>{65535, 65535, 40001, 0, 0, 65535}));
  EXPECT_EQ(fa.mask, (std::vector<uint8_t>{1, 0, 1, 1, 0, 0}));
  const QuantParams s = per_tensor(16, 0.5f, 0);
  const std::vector<float> y{-16384.0f, -16384.3f, -20000.25f, 16383.5f, 16383.75f};
  const FakeQuantResult fs = fake_quant(y.data(), {5}, s);
  EXPECT_EQ(fs.values, (std::vector<float>{-16384, -16384, -16384, 16383.5f, 16383.5f}));
  EXPECT_EQ(fs.mask, (std::vector<uint8_t>{1, 0, 0, 1, 0}));
}

TEST(FakeQuant, MatchesQuantizeDequantize) {
  std::mt19937 rng(9);
  const Shape shape{4, 6, 5};
  QuantSpec spec = QuantSpec::int4_per_group(4, 1);
  spec.scheme = Scheme::kAffine;
  const QuantParams p = random_params(shape, spec, rng);
  const std::vector<float> x = uniform_data(120, 5.0f, rng);
  for (RoundMode mode : {RoundMode::kHalfAwayFromZero, RoundMode::kHalfToEven}) {
    const FakeQuantResult f = fake_quant(x.data(), shape, p, mode);
    EXPECT_EQ(f.values, dequantize(quantize(x.data(), shape, p, mode)));
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t k = static_cast<size_t>(ref_param_index(shape, spec, static_cast<int64_t>(i)));
      const int64_t pre = ref_preclamp(x[i], p.scales[k], p.zero_points[k], mode);
      EXPECT_EQ(f.mask[i], pre >= -7 && pre <= 7 ? 1 : 0) << i;
    }
  }
}

// Per-channel along the last axis: each element of a row has its own (scale, zero point).
// Columns of scale 0.5, 1 and 0.25, symmetric narrow int8 ([-127, 127]); by hand:
//   1.2 / 0.5 = 2.4 -> 2 -> 1.0     0.25 / 0.5 = 0.5 -> 1 -> 0.5 (half away from zero)
//   -3.4 / 1 -> -3                  200 / 1 -> 127, clipped
//   100 / 0.25 = 400 -> 127 -> 31.75, clipped; -40 / 0.25 = -160 -> -127 -> -31.75, clipped
TEST(FakeQuant, PerChannelAlongTheLastAxis) {
  QuantParams p;
  p.spec = QuantSpec::int8_weights_per_channel(-1);
  p.scales = {0.5f, 1.0f, 0.25f};
  p.zero_points = {0, 0, 0};
  const std::vector<float> x{1.2f, -3.4f, 100.0f, 0.25f, 200.0f, -40.0f};
  const FakeQuantResult f = fake_quant(x.data(), {2, 3}, p);
  EXPECT_EQ(f.values, (std::vector<float>{1.0f, -3.0f, 31.75f, 0.5f, 127.0f, -31.75f}));
  EXPECT_EQ(f.mask, (std::vector<uint8_t>{1, 1, 0, 1, 0, 0}));
}

// ---- Bad inputs -------------------------------------------------------------------------------
TEST(QuantizeErrors, NonFiniteInputNamesIndex) {
  std::vector<float> x(100, 0.5f);
  x[37] = std::numeric_limits<float>::quiet_NaN();
  const QuantParams p = per_tensor(8, 0.1f, 0);
  expect_error<DataError>([&] { quantize(x.data(), {100}, p); }, {"quantize", "nan", "index 37"});
  expect_error<DataError>([&] { fake_quant(x.data(), {100}, p); },
                          {"fake_quant", "nan", "index 37"});
  x[37] = 0.0f;
  x[99] = -std::numeric_limits<float>::infinity();
  expect_error<DataError>([&] { quantize(x.data(), {100}, p); }, {"-inf", "index 99"});
  // Also on the packed and 16-bit paths.
  expect_error<DataError>([&] { quantize(x.data(), {100}, per_tensor(4, 0.1f, 0)); }, {"index 99"});
  expect_error<DataError>([&] { quantize(x.data(), {100}, per_tensor(16, 0.1f, 0)); },
                          {"index 99"});
}

TEST(QuantizeErrors, ParamsNotMatchingShape) {
  const std::vector<float> x(12, 1.0f);
  QuantParams p;
  p.spec = QuantSpec::int8_weights_per_channel(0);
  p.scales = {0.1f, 0.1f};
  p.zero_points = {0, 0};
  expect_error<ShapeError>(
      [&] {
        quantize(x.data(), {3, 4}, p);
      },
      {"quantize", "2 scales", "[3, 4]", "needs 3"});
  p.scales = {0.1f, -1.0f, 0.1f};
  p.zero_points = {0, 0, 0};
  expect_error<InvalidArgument>([&] { quantize(x.data(), {3, 4}, p); }, {"scale[1] = -1"});
  p.scales = {0.1f, 0.1f, 0.1f};
  p.spec.axis = 2;
  expect_error<InvalidArgument>([&] { quantize(x.data(), {3, 4}, p); }, {"axis 2"});
  expect_error<InvalidArgument>([&] { fake_quant(x.data(), {3, 4}, p); }, {"fake_quant"});
  p.spec.axis = 0;
  p.spec.bits = 9;
  expect_error<InvalidArgument>([&] { quantize(x.data(), {3, 4}, p); }, {"bits = 9"});
  p.spec.bits = 8;
  expect_error<InvalidArgument>([&] { quantize(nullptr, {3, 4}, p); }, {"null", "12 elements"});
}

TEST(QuantizeErrors, BufferSizes) {
  const std::vector<float> x(5, 1.0f);
  const QuantParams p = per_tensor(4, 0.1f, 0);
  std::vector<uint8_t> out(5);
  expect_error<ShapeError>([&] { quantize(x.data(), {5}, p, out.data(), 5); },
                           {"5 bytes", "5 4-bit elements", "need 3"});
  QTensor q = quantize(x.data(), {5}, p);
  std::vector<float> f(4);
  expect_error<ShapeError>([&] { dequantize(q, f.data(), 4); }, {"4 floats", "[5]", "5 elements"});
  q.data.pop_back();
  expect_error<ShapeError>([&] { dequantize(q); }, {"dequantize", "2 bytes", "need 3"});
  q.data.assign(4, 0);  // one byte too many is as inconsistent as one too few
  expect_error<ShapeError>([&] { dequantize(q); },
                           {"QTensor holds 4 bytes, but 5 4-bit elements of shape [5] need 3"});
  expect_error<InvalidArgument>([] { storage_bytes(12, 4); }, {"bits = 12"});
  expect_error<InvalidArgument>([] { storage_bytes(8, -1); }, {"-1"});
  // The largest counts: 16-bit bytes stop where 2 n leaves int64, 8- and 4-bit ones never do.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(storage_bytes(16, kMax / 2), kMax - 1);
  expect_error<ShapeError>([] { storage_bytes(16, kMax / 2 + 1); },
                           {"16-bit", "more bytes than int64 holds"});
  EXPECT_EQ(storage_bytes(8, kMax), kMax);
  EXPECT_EQ(storage_bytes(4, kMax), kMax / 2 + 1);
}

TEST(Quantize, EmptyTensor) {
  const QTensor q = quantize(nullptr, {0, 4}, per_tensor(8, 1.0f, 0));
  EXPECT_TRUE(q.data.empty());
  EXPECT_TRUE(dequantize(q).empty());
}
