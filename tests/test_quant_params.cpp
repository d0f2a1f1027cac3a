// QuantParams: formulas checked by hand and against the definitions in quant_params.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"

using namespace tinyquant;

namespace {
// Round trip of one value through (scale, zp), with TFLite's rounding, written out plainly.
float round_trip(float r, ScaleZeroPoint sz, const QuantSpec& spec) {
  double q = std::round(static_cast<double>(r) / sz.scale) + sz.zero_point;
  q = std::fmin(std::fmax(q, spec.qmin()), spec.qmax());
  return static_cast<float>(sz.scale * (q - sz.zero_point));
}
}  // namespace

TEST(QuantSpec, IntegerRanges) {
  QuantSpec s;
  EXPECT_EQ(s.qmin(), -128);
  EXPECT_EQ(s.qmax(), 127);
  s.narrow_range = true;
  EXPECT_EQ(s.qmin(), -127);
  s.bits = 4;
  EXPECT_EQ(s.qmin(), -7);
  EXPECT_EQ(s.qmax(), 7);
  s.narrow_range = false;
  EXPECT_EQ(s.qmin(), -8);
  s.bits = 2;
  EXPECT_EQ(s.qmin(), -2);
  EXPECT_EQ(s.qmax(), 1);
  s.bits = 16;
  EXPECT_EQ(s.qmin(), -32768);
  EXPECT_EQ(s.qmax(), 32767);
}

TEST(QuantSpec, RejectsBadBitsAndGroup) {
  QuantSpec s;
  for (int b : {0, 1, 9, 12, 15, 17, 32, -8}) {
    s.bits = b;
    try {
      s.validate();
      FAIL() << "bits " << b << " accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("bits = " + std::to_string(b)), std::string::npos)
          << e.what();
    }
  }
  s = QuantSpec::int4_per_group(0);
  EXPECT_THROW(s.validate(), InvalidArgument);
  try {
    s.validate();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("group_size = 0"), std::string::npos) << e.what();
  }
}

// The tutorial formula Z = -round(rmin / S) clipped to [-128, 127] maps 0.8 of [-0.5, 0.8] to
// 255 -> 127. With Z = qmin - round(rmin / S), both ends survive within S / 2.
TEST(ChooseScaleZeroPoint, AsymmetricRangeKeepsBothEnds) {
  const QuantSpec spec;  // int8 affine
  const ScaleZeroPoint sz = choose_scale_zero_point(-0.5f, 0.8f, spec);
  EXPECT_NEAR(sz.scale, 1.3 / 255.0, 1e-9);
  EXPECT_EQ(sz.zero_point, -128 - static_cast<int>(std::round(-0.5 / sz.scale)));
  EXPECT_EQ(sz.zero_point, -30);
  EXPECT_LE(std::fabs(round_trip(0.8f, sz, spec) - 0.8f), sz.scale / 2 + 1e-7);
  EXPECT_LE(std::fabs(round_trip(-0.5f, sz, spec) + 0.5f), sz.scale / 2 + 1e-7);
  EXPECT_EQ(round_trip(0.0f, sz, spec), 0.0f);  // zero is exact
  // The tutorial formula really does lose the top: Z' = round(0.5 / S) = 98, so 0.8 maps to
  // 157 + 98 = 255, clipped to 127, which dequantizes to (127 - 98) * S ~ 0.15.
  const int bad_z = static_cast<int>(std::round(0.5 / sz.scale));
  const double q = std::fmin(std::round(0.8 / sz.scale) + bad_z, 127.0);
  EXPECT_GT(std::fabs(sz.scale * (q - bad_z) - 0.8), 0.3);
}

// The float scale is the ratio rounded to nearest, 2^-24 of itself at most; over a 16-bit grid's
// 65535 steps that moves the far end by up to 0.004 of a step, as the header says. This range's
// top end lands 0.503 steps from its code (worked out in double here, not through dequantize).
TEST(ChooseScaleZeroPoint, SixteenBitEndsDriftByTheScalesRounding) {
  QuantSpec spec;
  spec.bits = 16;  // affine
  const double lo = -66310.3125, hi = 65701.9766;
  const ScaleZeroPoint sz =
      choose_scale_zero_point(static_cast<float>(lo), static_cast<float>(hi), spec);
  const double exact =
      (static_cast<double>(static_cast<float>(hi)) - static_cast<double>(static_cast<float>(lo))) /
      65535.0;
  const double s = sz.scale;
  EXPECT_LE(std::fabs(s - exact), exact * 0x1p-24);
  for (double r :
       {static_cast<double>(static_cast<float>(lo)), static_cast<double>(static_cast<float>(hi))}) {
    const double q = std::clamp(std::round(r / s) + sz.zero_point, -32768.0, 32767.0);
    const double steps = std::fabs(s * (q - sz.zero_point) - r) / s;
    EXPECT_LE(steps, 0.5 + 65535 * 0x1p-24) << r;
  }
  const double q_hi =
      std::clamp(std::round(static_cast<float>(hi) / s) + sz.zero_point, -32768.0, 32767.0);
  EXPECT_GT(std::fabs(s * (q_hi - sz.zero_point) - static_cast<float>(hi)) / s, 0.5);
}

TEST(ChooseScaleZeroPoint, RangeWidenedToContainZero) {
  const QuantSpec spec;
  const ScaleZeroPoint pos = choose_scale_zero_point(2.0f, 5.0f, spec);  // -> [0, 5]
  EXPECT_FLOAT_EQ(pos.scale, 5.0f / 255.0f);
  EXPECT_EQ(pos.zero_point, -128);
  const ScaleZeroPoint neg = choose_scale_zero_point(-4.0f, -1.0f, spec);  // -> [-4, 0]
  EXPECT_FLOAT_EQ(neg.scale, 4.0f / 255.0f);
  EXPECT_EQ(neg.zero_point, 127);
}

TEST(ChooseScaleZeroPoint, Symmetric) {
  QuantSpec spec = QuantSpec::int8_weights_per_channel();
  const ScaleZeroPoint sz = choose_scale_zero_point(-0.3f, 1.27f, spec);
  EXPECT_FLOAT_EQ(sz.scale, 0.01f);
  EXPECT_EQ(sz.zero_point, 0);
  spec.bits = 4;
  EXPECT_FLOAT_EQ(choose_scale_zero_point(-0.7f, 0.1f, spec).scale, 0.1f);
}

TEST(ChooseScaleZeroPoint, RandomRangesRoundTripWithinHalfScale) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-10.0f, 10.0f);
  for (int bits : {2, 3, 4, 5, 8, 16})
    for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric})
      for (int i = 0; i < 2000; ++i) {
        QuantSpec spec;
        spec.bits = bits;
        spec.scheme = scheme;
        float a = u(rng), b = u(rng);
        if (a > b) std::swap(a, b);
        const ScaleZeroPoint sz = choose_scale_zero_point(a, b, spec);
        ASSERT_GT(sz.scale, 0.0f);
        ASSERT_GE(sz.zero_point, spec.qmin());
        ASSERT_LE(sz.zero_point, spec.qmax());
        // Every value of the (widened) range is within scale/2 after a round trip, plus the
        // header's drift of the float scale over the grid ((qmax - qmin) 2^-24 steps) and the
        // float result's rounding; symmetric with a full negative range may lose the -2^(b-1)
        // end only by design (qmin is not used), which still holds here since
        // |rmin| <= qmax_s * scale.
        const float drift = static_cast<float>(spec.qmax() - spec.qmin()) * 0x1p-24f;
        for (float r : {a, b, 0.5f * (a + b), 0.0f}) {
          const float back = round_trip(r, sz, spec);
          ASSERT_LE(std::fabs(back - r), sz.scale * (0.5f + drift) + 1e-6f)
              << "bits " << bits << " r " << r << " range [" << a << ", " << b << "]";
        }
        ASSERT_EQ(round_trip(0.0f, sz, spec), 0.0f);
      }
}

// Ranges that reach FLT_MAX: the float scale rounded up, or the affine grid's step past the data,
// used to make an end code dequantize to infinity (silently, for data that passed every check).
// Now either every code of the grid stays finite and the data ends round-trip within scale / 2,
// or the range is a DataError. Symmetric narrow ranges always take the first way; symmetric ones
// without narrow range only up to (1 - 2^-b) FLT_MAX, since their code -2^(b-1), which data
// clipped below the range reach, must stay finite too.
TEST(ChooseScaleZeroPoint, RangesReachingFloatMaxKeepFiniteEndsOrAreRejected) {
  const float big = std::numeric_limits<float>::max();
  int kept = 0, rejected = 0;
  for (int bits : {2, 4, 8, 16})
    for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric})
      for (bool narrow : {false, true})
        for (const std::pair<float, float>& r :
             {std::pair{-big, big}, std::pair{0.0f, big}, std::pair{-big, 1.0f},
              std::pair{-big / 3, big}, std::pair{-big / 2, big / 2}}) {
          QuantSpec spec;
          spec.bits = bits;
          spec.scheme = scheme;
          spec.narrow_range = narrow;
          ScaleZeroPoint sz;
          try {
            sz = choose_scale_zero_point(r.first, r.second, spec);
          } catch (const DataError& e) {
            const double top = std::max(-static_cast<double>(r.first), double{r.second});
            EXPECT_TRUE(scheme == Scheme::kAffine ||
                        (!narrow && top > (1.0 - std::ldexp(1.0, -bits)) * big))
                << e.what();
            EXPECT_NE(std::string(e.what()).find("FLT_MAX"), std::string::npos) << e.what();
            ++rejected;
            continue;
          }
          // Every code of the grid, the one only clipped data reach included.
          const float lo = sz.scale * static_cast<float>(spec.qmin() - sz.zero_point);
          const float hi = sz.scale * static_cast<float>(spec.qmax() - sz.zero_point);
          ASSERT_TRUE(std::isfinite(lo) && std::isfinite(hi))
              << bits << " bits, range [" << r.first << ", " << r.second << "]";
          for (float v : {r.first, r.second}) {
            const float back = round_trip(v, sz, spec);
            ASSERT_TRUE(std::isfinite(back));
            ASSERT_LE(std::fabs(static_cast<double>(back) - v), 0.51 * sz.scale)
                << bits << " bits, " << v;
          }
          ++kept;
        }
  // Every symmetric narrow case (20), the symmetric ones half way to FLT_MAX (4), and the affine
  // ones a finite grid can hold.
  EXPECT_GE(kept, 24);
  EXPECT_GE(rejected, 12);  // at least the symmetric ones without narrow range that reach FLT_MAX
}

// A symmetric int8 grid without narrow range has the code -128 that only data clipped below the
// range reach (data calibrated elsewhere, a range an MSE search shrank). Near FLT_MAX it must
// dequantize to a finite value too, not to -inf.
TEST(ChooseScaleZeroPoint, TheClippedOnlyCodeOfASymmetricGridStaysFinite) {
  const float big = std::numeric_limits<float>::max();
  QuantSpec spec;
  spec.scheme = Scheme::kSymmetric;
  const ScaleZeroPoint sz = choose_scale_zero_point(-0.995f * big, 0.995f * big, spec);
  QuantParams p;
  p.spec = spec;
  p.scales = {sz.scale};
  p.zero_points = {0};
  const float data[3] = {-big, 0.995f * big, -0.995f * big};
  const QTensor q = quantize(data, Shape{3}, p);
  EXPECT_EQ(q.value(0), -128);
  const std::vector<float> back = dequantize(q);
  for (float v : back) EXPECT_TRUE(std::isfinite(v)) << v;
  EXPECT_LE(std::fabs(static_cast<double>(back[1]) - data[1]), 0.5 * sz.scale);
}

// Ranges too narrow for a normal float scale (|x| < 127 * FLT_MIN at 8 bits) used to get the
// placeholder scale 1 and quantize to all zeros. They get the smallest normal scale instead, so
// their data keep codes: each end round-trips within scale / 2, and 1e-37 is not rounded to 0.
TEST(ChooseScaleZeroPoint, RangesBelowTheNormalScaleGetTheSmallestNormalScale) {
  const float fmin = std::numeric_limits<float>::min();
  for (int bits : {2, 4, 8, 16})
    for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric})
      for (const std::pair<float, float>& r :
           {std::pair{-1e-37f, 1e-37f}, std::pair{0.0f, 1e-37f}, std::pair{-3e-38f, 0.0f},
            std::pair{-1e-39f, 2e-40f}, std::pair{0.0f, 1e-45f}}) {
        QuantSpec spec;
        spec.bits = bits;
        spec.scheme = scheme;
        const ScaleZeroPoint sz = choose_scale_zero_point(r.first, r.second, spec);
        ASSERT_GE(sz.scale, fmin) << bits << " bits, [" << r.first << ", " << r.second << "]";
        ASSERT_EQ(std::fpclassify(sz.scale), FP_NORMAL);
        for (float v : {r.first, r.second})
          ASSERT_LE(std::fabs(static_cast<double>(round_trip(v, sz, spec)) - v), 0.51 * sz.scale)
              << bits << " bits, " << v;
      }
  QuantSpec s8;
  const ScaleZeroPoint sz = choose_scale_zero_point(-1e-37f, 1e-37f, s8);
  EXPECT_EQ(sz.scale, fmin);  // 1e-37 / 127 is below FLT_MIN
  EXPECT_NE(round_trip(1e-37f, sz, s8), 0.0f);
}

TEST(ChooseScaleZeroPoint, BadRanges) {
  const QuantSpec spec;
  EXPECT_THROW(choose_scale_zero_point(NAN, 1.0f, spec), DataError);
  EXPECT_THROW(choose_scale_zero_point(0.0f, INFINITY, spec), DataError);
  try {
    choose_scale_zero_point(2.0f, 1.0f, spec);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("min > max"), std::string::npos) << e.what();
  }
  EXPECT_EQ(choose_scale_zero_point(0.0f, 0.0f, spec).scale, 1.0f);
}

TEST(ParamLayout, PerChannelAndPerGroupIndexing) {
  const Shape shape{3, 10};
  QuantSpec s = QuantSpec::int4_per_group(4, 1);
  const ParamLayout l = param_layout(s, shape);
  EXPECT_EQ(l.groups, 3);  // 4 + 4 + 2 (short tail group)
  EXPECT_EQ(l.count, 9);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(l.param_index(r * 10 + c), r * 3 + c / 4);
  s.granularity = Granularity::kPerChannel;
  s.axis = 0;
  const ParamLayout pc = param_layout(s, shape);
  EXPECT_EQ(pc.count, 3);
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(pc.param_index(i), i / 10);
  // Channel axis in the middle of a 4-D tensor (NHWC conv weights per output channel = axis 0,
  // depthwise per channel = axis 3).
  const Shape w{2, 3, 3, 5};
  s.axis = -1;
  const ParamLayout dw = param_layout(s, w);
  EXPECT_EQ(dw.count, 5);
  for (int64_t i = 0; i < 90; ++i) EXPECT_EQ(dw.param_index(i), i % 5);
  // Group along axis 0 of [5, 2]: params shape [ceil(5/2) = 3, 2].
  QuantSpec g = QuantSpec::int4_per_group(2, 0);
  const ParamLayout g0 = param_layout(g, Shape{5, 2});
  EXPECT_EQ(g0.count, 6);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(g0.param_index(r * 2 + c), (r / 2) * 2 + c);
}

TEST(ParamLayout, GroupsAtLeastAsLongAsTheAxisAreOneGroup) {
  // ceil(10 / g) for g = 10, 11 and the largest group size: no overflow on the way.
  for (const int64_t g : {int64_t{10}, int64_t{11}, std::numeric_limits<int64_t>::max()}) {
    const ParamLayout l = param_layout(QuantSpec::int4_per_group(g, 1), Shape{3, 10});
    EXPECT_EQ(l.groups, 1) << "group size " << g;
    EXPECT_EQ(l.count, 3) << "group size " << g;
    EXPECT_EQ(l.param_index(29), 2) << "group size " << g;
  }
}

TEST(ParamLayout, AxisOutOfRange) {
  QuantSpec s = QuantSpec::int8_weights_per_channel(2);
  try {
    param_layout(s, Shape{4, 4});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("axis 2 is out of range"), std::string::npos) << e.what();
  }
  s.axis = -3;
  EXPECT_THROW(param_layout(s, Shape{4, 4}), InvalidArgument);
}

TEST(ParamsFor, PerChannelMatchesPlainLoops) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const Shape shape{6, 7, 5};
  std::vector<float> w(6 * 7 * 5);
  for (float& v : w) v = n(rng);
  for (int axis : {0, 1, 2}) {
    const QuantSpec spec = QuantSpec::int8_weights_per_channel(axis);
    const QuantParams p = params_for(w.data(), shape, spec);
    ASSERT_EQ(static_cast<int64_t>(p.scales.size()), shape[static_cast<size_t>(axis)]);
    for (int64_t c = 0; c < shape[static_cast<size_t>(axis)]; ++c) {
      float amax = 0.0f;
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t j = 0; j < 7; ++j)
          for (int64_t k = 0; k < 5; ++k) {
            const int64_t idx[3] = {i, j, k};
            if (idx[axis] == c)
              amax = std::max(amax, std::fabs(w[static_cast<size_t>((i * 7 + j) * 5 + k)]));
          }
      EXPECT_FLOAT_EQ(p.scales[static_cast<size_t>(c)], amax / 127.0f);
      EXPECT_EQ(p.zero_points[static_cast<size_t>(c)], 0);
    }
    p.validate(shape);
  }
}

TEST(ParamsFor, BadInputs) {
  std::vector<float> w{1.0f, 2.0f, NAN, 4.0f};
  try {
    params_for(w.data(), Shape{2, 2}, QuantSpec{});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("at index 2"), std::string::npos) << e.what();
  }
  std::vector<float> zeros(8, 0.0f);
  try {
    params_for(zeros.data(), Shape{2, 4}, QuantSpec{});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("zero range"), std::string::npos) << e.what();
  }
  // One all-zero channel among others is fine: scale 1, represented exactly.
  std::vector<float> one_zero_row{0, 0, 0, 0, 1, -2, 3, 0.5f};
  const QuantParams p =
      params_for(one_zero_row.data(), Shape{2, 4}, QuantSpec::int8_weights_per_channel(0));
  EXPECT_EQ(p.scales[0], 1.0f);
  EXPECT_FLOAT_EQ(p.scales[1], 3.0f / 127.0f);
  EXPECT_THROW(params_for(w.data(), Shape{0, 2}, QuantSpec{}), DataError);
}

TEST(QuantParamsValidate, CatchesInconsistentParams) {
  QuantParams p;
  p.spec = QuantSpec::int8_weights_per_channel(0);
  p.scales = {0.1f, 0.2f};
  p.zero_points = {0, 0};
  EXPECT_NO_THROW(p.validate(Shape{2, 3}));
  EXPECT_THROW(p.validate(Shape{3, 3}), ShapeError);
  p.scales[1] = 0.0f;
  try {
    p.validate(Shape{2, 3});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("scale[1] = 0"), std::string::npos) << e.what();
  }
  p.scales[1] = -INFINITY;
  EXPECT_THROW(p.validate(Shape{2, 3}), InvalidArgument);
  p.scales[1] = 0.2f;
  p.zero_points[0] = 3;
  EXPECT_THROW(p.validate(Shape{2, 3}), InvalidArgument);  // symmetric needs 0
  // The zero points are counted too, not only the scales: one short would be read past its end.
  p.zero_points = {0};
  try {
    p.validate(Shape{2, 3});
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("quant params: 2 scales and 1 zero points, but a "
                                         "per-channel 8-bit spec on shape [2, 3] needs 2"),
              std::string::npos)
        << e.what();
  }
}

// The MSE search against a brute force written here: every grid ratio tried on each channel's
// elements directly, the error computed from the definition.
TEST(ParamsForMse, MatchesBruteForceAndNeverLosesToMinMax) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const Shape shape{6, 64};
  std::vector<float> w(6 * 64);
  for (float& v : w) v = n(rng);
  w[5] = 9.0f;        // an outlier in channel 0
  w[64 + 7] = -7.5f;  // and in channel 1
  for (int bits : {4, 8}) {
    QuantSpec spec = QuantSpec::int8_weights_per_channel(0);
    spec.bits = bits;
    const QuantParams mse = params_for_mse(w.data(), shape, spec, 20, 0.4f);
    const QuantParams plain = params_for(w.data(), shape, spec);
    for (int c = 0; c < 6; ++c) {
      auto err_at = [&](double scale) {
        double e = 0;
        for (int k = 0; k < 64; ++k) {
          const double x = w[static_cast<size_t>(c * 64 + k)];
          const double q = std::fmin(std::fmax(std::round(x / scale), spec.qmin()), spec.qmax());
          e += (scale * q - x) * (scale * q - x);
        }
        return e;
      };
      float amax = 0;
      for (int k = 0; k < 64; ++k)
        amax = std::max(amax, std::fabs(w[static_cast<size_t>(c * 64 + k)]));
      double best = 1e300;
      float best_scale = 0;
      for (int s = 0; s <= 20; ++s) {
        const float a = 1.0f - 0.6f * static_cast<float>(s) / 20.0f;
        const float scale = static_cast<float>(double{a * amax} / spec.qmax());
        const double e = err_at(scale);
        if (e < best) {
          best = e;
          best_scale = scale;
        }
      }
      EXPECT_FLOAT_EQ(mse.scales[static_cast<size_t>(c)], best_scale)
          << "bits " << bits << " c " << c;
      EXPECT_LE(err_at(mse.scales[static_cast<size_t>(c)]),
                err_at(plain.scales[static_cast<size_t>(c)]));
    }
    // The outlier channels are clipped at 4 bits: a real gain, not a tie.
    if (bits == 4) {
      EXPECT_LT(mse.scales[0], plain.scales[0]);
    }
  }
  try {
    params_for_mse(w.data(), shape, QuantSpec{}, 0);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("steps = 0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(params_for_mse(w.data(), shape, QuantSpec{}, 10, 0.0f), InvalidArgument);
}

// The last grid ratio, min_ratio itself, is a candidate too. 2-bit symmetric (codes -2..1) on
// {1, 0.5, 0.5}, steps 1, min_ratio 0.5: ratio 1 gives scale 1, where 1 is exact and each 0.5
// rounds to 1 (error 0.25 + 0.25); ratio 0.5 gives scale 0.5, where the 0.5s are exact and 1
// clamps to 0.5 (error 0.25). So the search must end at scale 0.5.
TEST(ParamsForMse, TheSmallestRatioCanWin) {
  QuantSpec spec;
  spec.bits = 2;
  spec.scheme = Scheme::kSymmetric;
  const std::vector<float> w{1.0f, 0.5f, 0.5f};
  const QuantParams p = params_for_mse(w.data(), {3}, spec, 1, 0.5f);
  EXPECT_EQ(p.scales, (std::vector<float>{0.5f}));
  EXPECT_EQ(params_for(w.data(), {3}, spec).scales, (std::vector<float>{1.0f}));
}

// ranges_of is the data's own min and max, not widened to 0 (params_from_ranges does that).
TEST(RangesOf, PerTensorRangeOfOneSignedData) {
  std::vector<float> mins, maxs;
  const std::vector<float> pos{3.0f, 2.0f, 5.0f};
  ranges_of(pos.data(), {3}, QuantSpec{}, &mins, &maxs);
  EXPECT_EQ(mins, (std::vector<float>{2.0f}));
  EXPECT_EQ(maxs, (std::vector<float>{5.0f}));
  const std::vector<float> neg{-1.0f, -4.0f};
  ranges_of(neg.data(), {2}, QuantSpec{}, &mins, &maxs);
  EXPECT_EQ(mins, (std::vector<float>{-4.0f}));
  EXPECT_EQ(maxs, (std::vector<float>{-1.0f}));
}

// An enum value outside the declared ones (a cast from a corrupt file, say) is refused by number.
TEST(QuantSpec, RejectsUnknownGranularityOrScheme) {
  QuantSpec s;
  s.granularity = static_cast<Granularity>(3);
  tq_test::expect_error<InvalidArgument>([&] { s.validate(); },
                                         {"quant spec: unknown granularity 3 or scheme 0"});
  s = QuantSpec{};
  s.scheme = static_cast<Scheme>(2);
  tq_test::expect_error<InvalidArgument>([&] { s.qmax(); },
                                         {"quant spec: unknown granularity 0 or scheme 2"});
}

// A per-channel spec on [3, 4] along axis 0 needs 3 ranges; mins and maxs must also agree.
TEST(ParamsFromRanges, RejectsWrongRangeCounts) {
  const QuantSpec pc = QuantSpec::int8_weights_per_channel(0);
  tq_test::expect_error<ShapeError>(
      [&] {
        params_from_ranges(pc, Shape{3, 4}, {-1.0f, -1.0f}, {1.0f, 1.0f});
      },
      {"params_from_ranges: 2 mins and 2 maxs, but a per-channel spec on shape [3, 4] needs 3"});
  tq_test::expect_error<ShapeError>(
      [&] {
        params_from_ranges(pc, Shape{3, 4}, {-1.0f, -1.0f, -1.0f}, {1.0f, 1.0f});
      },
      {"3 mins and 2 maxs", "needs 3"});
}

// Each range must be finite with min <= max; the message names its index and ends.
TEST(ParamsFromRanges, RejectsInvertedOrNonFiniteRanges) {
  const QuantSpec pc = QuantSpec::int8_weights_per_channel(0);
  tq_test::expect_error<DataError>(
      [&] {
        params_from_ranges(pc, Shape{2, 2}, {-1.0f, 2.0f}, {1.0f, 0.5f});
      },
      {"params_from_ranges: range 1 is [2, 0.5] (must be finite with min <= max)"});
  const float inf = std::numeric_limits<float>::infinity();
  tq_test::expect_error<DataError>(
      [&] {
        params_from_ranges(QuantSpec{}, Shape{2, 2}, {-inf}, {1.0f});
      },
      {"range 0 is [-inf, 1]"});
  tq_test::expect_error<DataError>(
      [&] {
        params_from_ranges(QuantSpec{}, Shape{2, 2}, {0.0f}, {NAN});
      },
      {"range 0 is [0, nan]"});
}
