// Calibration observers, each checked against an independent reference: sorting, plain loops,
// a hand-written EMA, brute-force searches written from the definitions in observers.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/observers.hpp"
#include "tinyquant/quantize.hpp"

using namespace tinyquant;
using namespace tq_test;

namespace {

std::vector<float> normal_data(size_t n, uint32_t seed, float sigma = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> laplace_data(size_t n, uint32_t seed, float b) {
  std::mt19937 rng(seed);
  std::exponential_distribution<float> e(1.0f / b);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (float& x : v) x = sign(rng) ? e(rng) : -e(rng);
  return v;
}

QuantSpec symmetric_spec() {
  QuantSpec s;
  s.scheme = Scheme::kSymmetric;
  s.narrow_range = true;
  return s;
}

// The slice of a row-major [d0, d1, d2] tensor at index c along axis, copied out.
std::vector<float> slice3(const std::vector<float>& t, const Shape& s, int axis, int64_t c) {
  std::vector<float> out;
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t k = 0; k < s[2]; ++k) {
        const int64_t idx[3] = {i, j, k};
        if (idx[axis] == c) out.push_back(t[static_cast<size_t>((i * s[1] + j) * s[2] + k)]);
      }
  return out;
}

// Plain-loop histogram on the grid (exponent e, first bin f) of `bins` bins.
std::vector<uint64_t> plain_histogram(const std::vector<float>& v, int e, int64_t f, int64_t bins,
                                      bool magnitude) {
  std::vector<uint64_t> h(static_cast<size_t>(bins), 0);
  for (float x : v) {
    const double y = magnitude ? std::fabs(static_cast<double>(x)) : x;
    const auto j = static_cast<int64_t>(std::floor(y / std::pow(2.0, e))) - f;
    EXPECT_GE(j, 0);
    EXPECT_LT(j, bins);
    ++h[static_cast<size_t>(j)];
  }
  return h;
}

}  // namespace

// ---- MinMaxObserver ----------------------------------------------------------------------------

TEST(MinMaxObserver, PerTensorMatchesSort) {
  std::vector<float> v = normal_data(10007, 1, 2.0f, 0.5f);
  MinMaxObserver obs;
  obs.observe(v.data(), Shape{10007});
  std::vector<float> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(obs.mins()[0], sorted.front());
  EXPECT_EQ(obs.maxs()[0], sorted.back());
  const QuantParams p = obs.params();
  const ScaleZeroPoint sz = choose_scale_zero_point(sorted.front(), sorted.back(), QuantSpec{});
  EXPECT_EQ(p.scales[0], sz.scale);
  EXPECT_EQ(p.zero_points[0], sz.zero_point);
  EXPECT_EQ(obs.values_observed(), 10007);
}

TEST(MinMaxObserver, ManySmallBatchesEqualOneBigBatch) {
  const std::vector<float> v = laplace_data(50000, 2, 0.3f);
  MinMaxObserver big;
  big.observe(v.data(), Shape{50000});
  MinMaxObserver streamed;
  std::mt19937 rng(3);
  size_t pos = 0;
  while (pos < v.size()) {
    const size_t len = std::min(v.size() - pos, static_cast<size_t>(rng() % 37 + 1));
    streamed.observe(v.data() + pos, Shape{static_cast<int64_t>(len)});
    pos += len;
  }
  EXPECT_EQ(streamed.mins(), big.mins());
  EXPECT_EQ(streamed.maxs(), big.maxs());
  EXPECT_EQ(streamed.params().scales, big.params().scales);
  EXPECT_EQ(streamed.params().zero_points, big.params().zero_points);
  EXPECT_EQ(streamed.values_observed(), 50000);
}

TEST(MinMaxObserver, PerChannelEqualsPerTensorOnEachSlice) {
  const Shape s{5, 6, 7};
  const std::vector<float> v = normal_data(5 * 6 * 7, 4);
  for (int axis : {0, 1, 2, -1}) {
    const int a = axis < 0 ? axis + 3 : axis;
    QuantSpec spec = QuantSpec::int8_weights_per_channel(axis);
    MinMaxObserver obs(spec);
    // Two batches along the first axis when it is not the channel axis.
    if (a != 0) {
      obs.observe(v.data(), Shape{2, 6, 7});
      obs.observe(v.data() + 2 * 6 * 7, Shape{3, 6, 7});
    } else {
      obs.observe(v.data(), s);
    }
    const QuantParams p = obs.params();
    ASSERT_EQ(static_cast<int64_t>(p.scales.size()), s[static_cast<size_t>(a)]);
    for (int64_t c = 0; c < s[static_cast<size_t>(a)]; ++c) {
      const std::vector<float> sl = slice3(v, s, a, c);
      QuantSpec ts = spec;
      ts.granularity = Granularity::kPerTensor;
      MinMaxObserver one(ts);
      one.observe(sl.data(), Shape{static_cast<int64_t>(sl.size())});
      EXPECT_EQ(p.scales[static_cast<size_t>(c)], one.params().scales[0]) << "axis " << axis;
      EXPECT_EQ(obs.mins()[static_cast<size_t>(c)], *std::min_element(sl.begin(), sl.end()));
    }
  }
}

TEST(MinMaxObserver, PerGroupMatchesPlainLoops) {
  const Shape s{4, 10};
  const std::vector<float> v = normal_data(40, 5);
  for (int axis : {1, 0}) {
    MinMaxObserver obs(QuantSpec::int4_per_group(3, axis));
    obs.observe(v.data(), s);
    const ParamLayout l = param_layout(QuantSpec::int4_per_group(3, axis), s);
    std::vector<float> lo(static_cast<size_t>(l.count), INFINITY), hi(lo.size(), -INFINITY);
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t c = 0; c < 10; ++c) {
        // groups of 3 along the axis, for every position of the other axis
        const int64_t slot = axis == 1 ? r * 4 + c / 3 : (r / 3) * 10 + c;
        const float x = v[static_cast<size_t>(r * 10 + c)];
        lo[static_cast<size_t>(slot)] = std::min(lo[static_cast<size_t>(slot)], x);
        hi[static_cast<size_t>(slot)] = std::max(hi[static_cast<size_t>(slot)], x);
      }
    EXPECT_EQ(obs.mins(), lo) << "axis " << axis;
    EXPECT_EQ(obs.maxs(), hi) << "axis " << axis;
  }
}

TEST(MinMaxObserver, MergeOfHalvesEqualsOnePass) {
  const std::vector<float> v = normal_data(6 * 100, 6);
  const QuantSpec spec = QuantSpec::int8_weights_per_channel(1);
  MinMaxObserver all(spec), a(spec), b(spec);
  all.observe(v.data(), Shape{100, 6});
  a.observe(v.data(), Shape{37, 6});
  b.observe(v.data() + 37 * 6, Shape{63, 6});
  a.merge(b);
  EXPECT_EQ(a.mins(), all.mins());
  EXPECT_EQ(a.maxs(), all.maxs());
  EXPECT_EQ(a.values_observed(), 600);
  MinMaxObserver empty(spec);
  empty.merge(a);  // into an empty observer
  EXPECT_EQ(empty.maxs(), all.maxs());
  a.merge(MinMaxObserver(spec));  // an empty one changes nothing
  EXPECT_EQ(a.maxs(), all.maxs());
}

// ---- MovingAverageMinMaxObserver ---------------------------------------------------------------

TEST(MovingAverageMinMaxObserver, MatchesHandWrittenEma) {
  const double c = 0.25;
  MovingAverageMinMaxObserver obs(QuantSpec{}, c);
  double m = 0.0, x = 0.0;
  for (int b = 0; b < 20; ++b) {
    const std::vector<float> v =
        normal_data(64, 100 + static_cast<uint32_t>(b), 1.0f + 0.1f * static_cast<float>(b));
    obs.observe(v.data(), Shape{8, 8});
    const double lo = *std::min_element(v.begin(), v.end());
    const double hi = *std::max_element(v.begin(), v.end());
    if (b == 0) {
      m = lo;
      x = hi;
    } else {
      m = (1 - c) * m + c * lo;
      x = (1 - c) * x + c * hi;
    }
    EXPECT_NEAR(obs.mins()[0], m, 1e-12);
    EXPECT_NEAR(obs.maxs()[0], x, 1e-12);
  }
  const ScaleZeroPoint sz =
      choose_scale_zero_point(static_cast<float>(m), static_cast<float>(x), QuantSpec{});
  EXPECT_EQ(obs.params().scales[0], sz.scale);
  EXPECT_EQ(obs.params().zero_points[0], sz.zero_point);
}

// c = 1 keeps exactly the last batch, even after a batch near FLT_MAX: m + (b - m) would lose a
// tiny b next to m (here min 0 > max, and a DataError instead of a range).
TEST(MovingAverageMinMaxObserver, ConstantOneKeepsExactlyTheLastBatch) {
  const float huge[2] = {-0x1.fe0002p+127f, -0x1.3d3d3cp-66f};
  const float tiny[2] = {-0x1.3d3d3cp-66f, -0x1.4f3d3cp-66f};
  QuantSpec spec;
  spec.bits = 16;
  spec.scheme = Scheme::kSymmetric;
  MovingAverageMinMaxObserver obs(spec, 1.0);
  obs.observe(huge, Shape{2});
  obs.observe(tiny, Shape{2});
  EXPECT_EQ(obs.mins()[0], static_cast<double>(tiny[1]));
  EXPECT_EQ(obs.maxs()[0], static_cast<double>(tiny[0]));
  const QuantParams p = obs.params();
  const QuantParams want = params_for(tiny, Shape{2}, spec);
  EXPECT_EQ(p.scales, want.scales);
  EXPECT_EQ(p.zero_points, want.zero_points);
}

TEST(MovingAverageMinMaxObserver, MergeAppendsTheOtherStream) {
  for (double c : {0.01, 0.3, 1.0}) {
    const QuantSpec spec = QuantSpec::int8_weights_per_channel(0);
    MovingAverageMinMaxObserver seq(spec, c), a(spec, c), b(spec, c);
    for (int k = 0; k < 9; ++k) {
      const std::vector<float> v =
          normal_data(3 * 16, 200 + static_cast<uint32_t>(k), 1.0f + static_cast<float>(k));
      seq.observe(v.data(), Shape{3, 16});
      (k < 4 ? a : b).observe(v.data(), Shape{3, 16});
    }
    a.merge(b);
    for (size_t s = 0; s < 3; ++s) {
      EXPECT_NEAR(a.mins()[s], seq.mins()[s], 1e-9) << "c " << c;
      EXPECT_NEAR(a.maxs()[s], seq.maxs()[s], 1e-9) << "c " << c;
    }
    EXPECT_EQ(a.batches_observed(), 9);
  }
}

TEST(MovingAverageMinMaxObserver, MergeIntoAnEmptyObserverContinuesTheOtherStream) {
  // An observer that has seen nothing takes the other's whole state, its first batch included:
  // the batches observed after the merge continue that stream exactly.
  const QuantSpec spec = QuantSpec::int8_weights_per_channel(0);
  MovingAverageMinMaxObserver seq(spec, 0.3), a(spec, 0.3), b(spec, 0.3);
  for (int k = 0; k < 5; ++k) {
    const std::vector<float> v =
        normal_data(3 * 16, 300 + static_cast<uint32_t>(k), 1.0f + static_cast<float>(k));
    seq.observe(v.data(), Shape{3, 16});
    if (k == 3) a.merge(b);
    (k < 3 ? b : a).observe(v.data(), Shape{3, 16});
  }
  EXPECT_EQ(a.mins(), seq.mins());
  EXPECT_EQ(a.maxs(), seq.maxs());
  EXPECT_EQ(a.batches_observed(), 5);
  EXPECT_EQ(a.params().scales, seq.params().scales);
}

// ---- histogram grid ----------------------------------------------------------------------------

TEST(HistogramObserver, GridIsCanonicalAndCountsMatchPlainLoop) {
  // Values in [-3, 5], 64 bins: e = -3 would need 40 - (-24) + 1 = 65 bins, so e = -2 with
  // 20 - (-12) + 1 = 33 bins from first bin -12.
  std::vector<float> v = normal_data(5000, 7, 1.0f);
  for (float& x : v) x = std::clamp(x, -3.0f, 5.0f);
  v[10] = -3.0f;
  v[20] = 5.0f;
  PercentileObserver obs(QuantSpec{}, 99.0, 64);
  obs.observe(v.data(), Shape{5000});
  const Histogram& h = obs.histogram(0);
  EXPECT_EQ(h.exponent, -2);
  EXPECT_EQ(h.first_bin, -12);
  EXPECT_EQ(h.total, 5000u);
  EXPECT_EQ(h.counts, plain_histogram(v, -2, -12, 64, false));
  // Symmetric: histogram of |x| in [0, 5]: 5 * 8 = 40 < 64 -> e = -3, first bin 0.
  PercentileObserver sym(symmetric_spec(), 99.0, 64);
  sym.observe(v.data(), Shape{5000});
  EXPECT_EQ(sym.histogram(0).exponent, -3);
  EXPECT_EQ(sym.histogram(0).first_bin, 0);
  EXPECT_EQ(sym.histogram(0).counts, plain_histogram(v, -3, 0, 64, true));
}

TEST(HistogramObserver, GrowingRangeOverManyBatchesEqualsOnePass) {
  // Batches whose range widens (both sides) force many regrids; the result must be identical,
  // count for count, to observing everything at once.
  std::vector<float> v;
  for (int b = 0; b < 30; ++b) {
    std::vector<float> part =
        normal_data(997, 300 + static_cast<uint32_t>(b),
                    0.01f * std::pow(1.5f, static_cast<float>(b)), b % 2 ? 0.3f : -0.2f);
    v.insert(v.end(), part.begin(), part.end());
  }
  for (bool magnitude : {false, true}) {
    const QuantSpec spec = magnitude ? symmetric_spec() : QuantSpec{};
    PercentileObserver one(spec, 99.9, 256), streamed(spec, 99.9, 256);
    one.observe(v.data(), Shape{static_cast<int64_t>(v.size())});
    for (size_t pos = 0; pos < v.size(); pos += 997) streamed.observe(v.data() + pos, Shape{997});
    const Histogram& a = one.histogram(0);
    const Histogram& b = streamed.histogram(0);
    EXPECT_EQ(a.exponent, b.exponent);
    EXPECT_EQ(a.first_bin, b.first_bin);
    EXPECT_EQ(a.counts, b.counts);
    EXPECT_EQ(a.total, v.size());
    EXPECT_EQ(a.counts, plain_histogram(v, a.exponent, a.first_bin, 256, magnitude));
    EXPECT_EQ(one.params().scales, streamed.params().scales);
  }
}

// ---- PercentileObserver ------------------------------------------------------------------------

TEST(PercentileObserver, WithinOneBinOfSortedQuantile) {
  // p = 50 is symmetric only: affine observers want p > 50 (AffineNeedsAPercentileAbove50).
  for (double pct : {50.0, 50.01, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const std::vector<float> v = laplace_data(20000, 8, 0.5f);
    std::vector<float> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const auto n = static_cast<int64_t>(v.size());
    // k = ceil(pct / 100 * n) in integers (pct has at most two decimals): the double product
    // can land a hair above an integer and ceil past it.
    const int64_t centi = std::llround(pct * 100.0);
    const auto k = std::max<int64_t>(1, (centi * n + 9999) / 10000);
    if (pct > 50.0) {  // affine: both tails
      PercentileObserver aff(QuantSpec{}, pct, 2048);
      aff.observe(v.data(), Shape{n});
      const QuantParams pa = aff.params();
      const double w = aff.histogram(0).bin_width();
      const double hi = sorted[static_cast<size_t>(k - 1)], lo = sorted[static_cast<size_t>(n - k)];
      // Recover the chosen range from scale and zero point: rmin = (qmin - zp) * scale.
      const double rmin = (-128.0 - pa.zero_points[0]) * pa.scales[0];
      const double rmax = (127.0 - pa.zero_points[0]) * pa.scales[0];
      EXPECT_NEAR(rmax - rmin, std::max(hi, 0.0) - std::min(lo, 0.0), 2 * w + 1e-6) << pct;
      EXPECT_NEAR(rmin, std::min(lo, 0.0), w + pa.scales[0]) << pct;
    }
    // Symmetric: quantile of |x|, scale = T / 127.
    std::vector<float> mags(v.size());
    for (size_t i = 0; i < v.size(); ++i) mags[i] = std::fabs(v[i]);
    std::sort(mags.begin(), mags.end());
    PercentileObserver sym(symmetric_spec(), pct, 2048);
    sym.observe(v.data(), Shape{n});
    const double t = sym.params().scales[0] * 127.0;
    EXPECT_NEAR(t, mags[static_cast<size_t>(k - 1)], sym.histogram(0).bin_width() + 1e-6) << pct;
  }
}

// 99.9 % of 1000 values is rank 999 exactly; the double product p / 100 * n is 999.0000000000001,
// whose ceil would pick rank 1000, the outlier the percentile is there to clip.
TEST(PercentileObserver, RankIsExactWhenTheProductIsAnInteger) {
  std::vector<float> v;
  for (int i = 0; i < 999; ++i) v.push_back(static_cast<float>(i) / 1000.0f);
  v.push_back(1000.0f);
  for (const QuantSpec& spec : {QuantSpec{}, symmetric_spec()}) {
    PercentileObserver obs(spec, 99.9);
    obs.observe(v.data(), Shape{1000});
    const QuantParams p = obs.params();
    const double top = (spec.qmax() - p.zero_points[0]) * static_cast<double>(p.scales[0]);
    EXPECT_NEAR(top, 0.998, obs.histogram(0).bin_width() + p.scales[0]) << to_string(spec.scheme);
  }
}

// All-zero data has no range for the affine percentile either (its lower-tail estimate, inside
// the bin holding 0, used to land above the maximum and widen the range).
TEST(PercentileObserver, AllZeroDataIsAZeroRangeForBothSchemes) {
  const std::vector<float> z(100, 0.0f);
  for (const QuantSpec& spec : {QuantSpec{}, symmetric_spec()}) {
    PercentileObserver obs(spec, 99.9);
    obs.observe(z.data(), Shape{100});
    expect_error<DataError>([&] { obs.params(); }, {"zero range"});
  }
  // All-equal data: the range stays inside [min, max] widened to 0, so v itself round-trips.
  const std::vector<float> same(100, 3.0f);
  PercentileObserver obs(QuantSpec{}, 99.0);
  obs.observe(same.data(), Shape{100});
  const QuantParams p = obs.params();
  EXPECT_NEAR((127 - p.zero_points[0]) * static_cast<double>(p.scales[0]), 3.0, 0.5 * p.scales[0]);
}

// A negative value whose product with the grid's 2^-e underflows float (-2^-148 on bins 2^98 wide)
// is in the bin below 0: binned while streaming it must land where the grid's floor, and a merge
// (which regrids in integers), put it. -0 stays in the bin from 0.
TEST(PercentileObserver, TinyNegativeValuesOnACoarseGridStayBelowZero) {
  const float big[2] = {-0x1p100f, 0x1p100f};
  const float tiny[2] = {-0x1p-148f, -0.0f};
  PercentileObserver whole(QuantSpec{}, 99.0, 16), a(QuantSpec{}, 99.0, 16),
      b(QuantSpec{}, 99.0, 16);
  whole.observe(big, Shape{2});
  whole.observe(tiny, Shape{2});
  a.observe(big, Shape{2});
  b.observe(tiny, Shape{2});
  a.merge(b);
  const Histogram& h = whole.histogram(0);
  EXPECT_EQ(h.counts, a.histogram(0).counts);
  EXPECT_EQ(h.first_bin, a.histogram(0).first_bin);
  EXPECT_EQ(h.exponent, a.histogram(0).exponent);
  int64_t zero = -1;
  for (int64_t j = 0; j < static_cast<int64_t>(h.counts.size()); ++j)
    if (h.edge(j) == 0.0) zero = j;
  ASSERT_GT(zero, 0);
  EXPECT_EQ(h.counts[static_cast<size_t>(zero - 1)], 1u);  // -2^-148
  EXPECT_EQ(h.counts[static_cast<size_t>(zero)], 1u);      // -0
  EXPECT_EQ(h.total, 4u);
}

// Values finer than the finest bins (2^-120 wide) share the bins around 0: both affine estimates
// land on 0, and the observed [min, max] is used instead of a zero range that is not one.
TEST(PercentileObserver, DataFinerThanTheGridKeepsItsRange) {
  const float tiny[2] = {-FLT_MIN, 0.0f};
  QuantSpec spec;
  spec.bits = 3;
  PercentileObserver obs(spec, 50.0 + 50.0 * 2 / 256, 32);
  obs.observe(tiny, Shape{2});
  ASSERT_GT(obs.histogram(0).bin_width(), static_cast<double>(FLT_MIN));
  const QuantParams p = obs.params();
  const ScaleZeroPoint want = choose_scale_zero_point(-FLT_MIN, 0.0f, spec);
  EXPECT_EQ(p.scales[0], want.scale);
  EXPECT_EQ(p.zero_points[0], want.zero_point);
  const std::vector<float> back = dequantize(quantize(tiny, Shape{2}, p));
  EXPECT_LE(std::fabs(back[0] + FLT_MIN), 0.5f * p.scales[0]);
}

// A percentile that clips every nonzero value chooses [0, 0]; the error says so instead of
// claiming the data were all zeros. A second channel with a real range keeps the call working.
TEST(PercentileObserver, ARangeClippedToZeroIsNamedAsSuch) {
  std::vector<float> v(1000, 0.0f);
  v[0] = -5.0f;
  PercentileObserver obs(QuantSpec{}, 99.0);
  obs.observe(v.data(), Shape{1000});
  expect_error<DataError>([&] { obs.params(); }, {"every chosen range is [0, 0]",
                                                  "observed [-5, 0]", "raise the percentile"});
  QuantSpec per_channel;
  per_channel.granularity = Granularity::kPerChannel;
  per_channel.axis = 1;
  std::vector<float> two(2000, 0.0f);
  two[0] = -5.0f;
  for (size_t i = 1; i < two.size(); i += 2) two[i] = static_cast<float>(i % 7);
  PercentileObserver channels(per_channel, 99.0);
  channels.observe(two.data(), Shape{1000, 2});
  const QuantParams p = channels.params();
  EXPECT_EQ(p.scales[0], 1.0f);  // the clipped channel: only zeros left
  EXPECT_NE(p.scales[1], 1.0f);
}

TEST(PercentileObserver, PerChannelEqualsPerTensorOnEachSliceAndMergeIsExact) {
  const Shape s{3, 8, 50};
  std::vector<float> v = laplace_data(3 * 8 * 50, 9, 1.0f);
  for (size_t i = 0; i < v.size(); ++i) v[i] *= 1.0f + static_cast<float>((i / 50) % 8);
  QuantSpec spec;
  spec.granularity = Granularity::kPerChannel;
  spec.axis = 1;
  PercentileObserver obs(spec, 99.0, 128), a(spec, 99.0, 128), b(spec, 99.0, 128);
  obs.observe(v.data(), s);
  a.observe(v.data(), Shape{1, 8, 50});
  b.observe(v.data() + 400, Shape{2, 8, 50});
  a.merge(b);
  const QuantParams p = obs.params();
  EXPECT_EQ(a.params().scales, p.scales);
  EXPECT_EQ(a.params().zero_points, p.zero_points);
  for (int64_t c = 0; c < 8; ++c) {
    EXPECT_EQ(a.histogram(c).counts, obs.histogram(c).counts);
    const std::vector<float> sl = slice3(v, s, 1, c);
    PercentileObserver one(QuantSpec{}, 99.0, 128);
    one.observe(sl.data(), Shape{static_cast<int64_t>(sl.size())});
    EXPECT_EQ(one.histogram(0).counts, obs.histogram(c).counts);
    EXPECT_EQ(one.params().scales[0], p.scales[static_cast<size_t>(c)]);
    EXPECT_EQ(one.params().zero_points[0], p.zero_points[static_cast<size_t>(c)]);
  }
}

// ---- EntropyObserver ---------------------------------------------------------------------------

namespace {

// KL(P || Q) for cut bin i, straight from the definition in observers.hpp.
double kl_definition(const std::vector<uint64_t>& h, size_t i, size_t levels) {
  std::vector<double> p(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(i));
  double outliers = 0;
  for (size_t j = i; j < h.size(); ++j) outliers += static_cast<double>(h[j]);
  p[i - 1] += outliers;
  std::vector<double> level_sum(levels, 0.0), level_nonzero(levels, 0.0);
  for (size_t j = 0; j < i; ++j) {
    level_sum[j * levels / i] += static_cast<double>(h[j]);
    level_nonzero[j * levels / i] += p[j] > 0 ? 1.0 : 0.0;
  }
  std::vector<double> q(i, 0.0);
  for (size_t j = 0; j < i; ++j)
    if (p[j] > 0) q[j] = level_sum[j * levels / i] / level_nonzero[j * levels / i];
  double sp = 0, sq = 0;
  for (size_t j = 0; j < i; ++j) {
    sp += p[j];
    sq += q[j];
  }
  double kl = 0;
  for (size_t j = 0; j < i; ++j) {
    if (p[j] == 0) continue;
    if (q[j] == 0) return std::numeric_limits<double>::infinity();
    kl += p[j] / sp * std::log((p[j] / sp) / (q[j] / sq));
  }
  return kl;
}

// The first cut in [levels, used] with the smallest kl_definition: the search, by brute force.
size_t best_cut(const std::vector<uint64_t>& h, size_t levels) {
  size_t used = h.size();
  while (h[used - 1] == 0) --used;
  double best = std::numeric_limits<double>::infinity();
  size_t best_i = 0;
  for (size_t i = levels; i <= used; ++i) {
    const double kl = kl_definition(h, i, levels);
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return best_i;
}

}  // namespace

TEST(EntropyObserver, MatchesBruteForceKlSearch) {
  for (uint32_t seed : {10u, 11u, 12u}) {
    // Laplace body plus a few far outliers; max |x| pinned at 1.5 so the grid is 2048 bins of
    // width 2^-10 (1.5 * 1024 + 1 <= 2048 < 1.5 * 2048 + 1).
    std::vector<float> v = laplace_data(30000, seed, 0.05f);
    for (float& x : v) x = std::clamp(x, -1.5f, 1.5f);
    v[0] = 1.5f;
    v[1] = -1.2f;
    v[2] = 0.9f;
    EntropyObserver obs(symmetric_spec());
    obs.observe(v.data(), Shape{static_cast<int64_t>(v.size())});
    ASSERT_EQ(obs.histogram(0).exponent, -10);
    const std::vector<uint64_t> h = plain_histogram(v, -10, 0, 2048, true);
    ASSERT_EQ(obs.histogram(0).counts, h);
    size_t used = h.size();
    while (h[used - 1] == 0) --used;
    const size_t best_i = best_cut(h, 128);
    const double expect_t = std::min(static_cast<double>(best_i) / 1024.0, 1.5);
    const float scale = obs.params().scales[0];
    EXPECT_FLOAT_EQ(scale,
                    static_cast<float>(static_cast<double>(static_cast<float>(expect_t)) / 127.0))
        << "seed " << seed << " brute-force cut " << best_i;
    // The observer's own divergence agrees with the definition on a few cuts.
    for (size_t i : {size_t{128}, size_t{300}, best_i, used})
      EXPECT_NEAR(obs.divergence(0, static_cast<int64_t>(i)), kl_definition(h, i, 128), 1e-9);
    EXPECT_LT(best_i, used);  // the outliers were clipped
  }
}

// The search merges Q into 2^(bits - 1) levels: int4 cuts from 8 bins on, against the same
// definition with 8 levels, and lands well inside the int8 threshold on the same data (fewer
// levels make clipping cheaper than rounding).
TEST(EntropyObserver, LevelsFollowTheBitWidth) {
  std::vector<float> v = laplace_data(30000, 13, 0.05f);
  for (float& x : v) x = std::clamp(x, -1.5f, 1.5f);
  v[0] = 1.5f;
  QuantSpec s4 = symmetric_spec();
  s4.bits = 4;
  EntropyObserver obs4(s4), obs8(symmetric_spec());
  EXPECT_EQ(obs4.levels(), 8);
  EXPECT_EQ(obs8.levels(), 128);
  obs4.observe(v.data(), Shape{static_cast<int64_t>(v.size())});
  obs8.observe(v.data(), Shape{static_cast<int64_t>(v.size())});
  ASSERT_EQ(obs4.histogram(0).exponent, -10);
  const std::vector<uint64_t> h = plain_histogram(v, -10, 0, 2048, true);
  const size_t best_i = best_cut(h, 8);
  const double t4 = std::min(static_cast<double>(best_i) / 1024.0, 1.5);
  EXPECT_FLOAT_EQ(obs4.params().scales[0],
                  static_cast<float>(static_cast<double>(static_cast<float>(t4)) / 7.0));
  for (size_t i : {size_t{8}, size_t{100}, best_i})
    EXPECT_NEAR(obs4.divergence(0, static_cast<int64_t>(i)), kl_definition(h, i, 8), 1e-9);
  EXPECT_LT(static_cast<double>(obs4.params().scales[0]) * 7.0,
            0.8 * static_cast<double>(obs8.params().scales[0]) * 127.0);
  // 16 bits would need 32768 levels, more bins than the quadratic search takes.
  QuantSpec s16 = symmetric_spec();
  s16.bits = 16;
  expect_error<InvalidArgument>([&] { EntropyObserver o(s16); }, {"16-bit", "32768"});
  QuantSpec s2 = symmetric_spec();
  s2.bits = 2;
  EXPECT_EQ(EntropyObserver(s2, 16).levels(), 2);
}

// ---- MseObserver -------------------------------------------------------------------------------

namespace {

// E(T) for cut bin i from the definition, each bin's mean error taken numerically (the midpoint
// rule, at least 64 points a grid step and 256 a bin) where the observer integrates in closed
// form: the values of bin j are spread evenly over [j w, (j + 1) w), the last up to max_abs;
// below the cut they round to the grid of `step`, at or above it they clip to
// t = min(i * w, max_abs).
double mse_definition(const std::vector<uint64_t>& h, size_t i, double w, double max_abs,
                      double step) {
  const double t = std::min(static_cast<double>(i) * w, max_abs);
  const auto points = static_cast<int>(std::max(256.0, 64.0 * std::ceil(w / step)));
  double e = 0;
  for (size_t j = 0; j < h.size(); ++j) {
    if (h[j] == 0) continue;
    const double a = static_cast<double>(j) * w;
    const double b = std::min(a + w, max_abs);
    double sum = 0;
    for (int k = 0; k < points; ++k) {
      const double x = a + (b - a) * (k + 0.5) / points;
      const double d = j < i ? x - step * std::round(x / step) : x - t;
      sum += d * d;
    }
    e += static_cast<double>(h[j]) * sum / points;
  }
  return e;
}

// The first cut minimising the observer's expected_error, over all cuts [1, last].
size_t argmin_expected_error(const MseObserver& obs, size_t last) {
  double best = std::numeric_limits<double>::infinity();
  size_t best_i = 0;
  for (size_t i = 1; i <= last; ++i) {
    const double e = obs.expected_error(0, static_cast<int64_t>(i));
    if (e < best) {
      best = e;
      best_i = i;
    }
  }
  return best_i;
}

// Mean squared error of quantizing v with scale s and zero point zp into [qmin, qmax], computed
// here with plain loops: what the chosen parameters really cost on the data.
double fake_quant_mse(const std::vector<float>& v, double s, int32_t zp, int32_t qmin,
                      int32_t qmax) {
  double e = 0;
  for (const float x : v) {
    const double q =
        std::clamp(std::round(x / s) + zp, static_cast<double>(qmin), static_cast<double>(qmax));
    const double d = x - (q - zp) * s;
    e += d * d;
  }
  return e / static_cast<double>(v.size());
}

}  // namespace

// expected_error follows the definition (checked against numerical means on a spread of cuts),
// params() takes its first minimum, and on the data itself the chosen threshold's mean squared
// error is within 1 % of the best of 1500 thresholds tried by fake quantization.
TEST(MseObserver, FollowsItsDefinitionAndTakesItsFirstMinimum) {
  for (int bits : {8, 4}) {
    std::vector<float> v = laplace_data(20000, 20 + static_cast<uint32_t>(bits), 0.1f);
    for (float& x : v) x = std::clamp(x, -1.5f, 1.5f);
    v[0] = -1.5f;
    QuantSpec spec = symmetric_spec();
    spec.bits = bits;
    MseObserver obs(spec);
    obs.observe(v.data(), Shape{200, 100});
    ASSERT_EQ(obs.histogram(0).exponent, -10);
    const std::vector<uint64_t> h = plain_histogram(v, -10, 0, 2048, true);
    ASSERT_EQ(obs.histogram(0).counts, h);
    const double w = 1.0 / 1024, qmax_s = (1 << (bits - 1)) - 1;
    for (size_t i = 1; i <= 1537; i += 64) {
      const double t = std::min(static_cast<double>(i) * w, 1.5);
      const double e = mse_definition(h, i, w, 1.5, t / qmax_s);
      EXPECT_NEAR(obs.expected_error(0, static_cast<int64_t>(i)), e, 1e-4 * e) << "cut " << i;
    }
    const size_t best_i = argmin_expected_error(obs, 1537);
    const double t = obs.params().scales[0] * qmax_s;
    EXPECT_NEAR(t, static_cast<double>(best_i) * w, 1e-6) << "bits " << bits;
    EXPECT_GT(best_i, 10u);
    EXPECT_LT(best_i, 1537u);  // 4 or 8 bits on a Laplace body: clipping pays
    const auto q = static_cast<int32_t>(qmax_s);
    double best = std::numeric_limits<double>::infinity();
    for (int k = 1; k <= 1500; ++k)
      best = std::min(best, fake_quant_mse(v, k / 1000.0 / qmax_s, 0, -q, q));
    EXPECT_LE(fake_quant_mse(v, obs.params().scales[0], 0, -q, q), best * 1.01) << "bits " << bits;
  }
}

TEST(MseObserver, AffineUsesTheClippedRange) {
  // Only positive values (ReLU output): the affine range is [0, T], so the step is T / 255.
  std::vector<float> v = laplace_data(20000, 30, 0.2f);
  for (float& x : v) x = std::min(std::fabs(x), 1.5f);
  v[0] = 1.5f;
  MseObserver aff(QuantSpec{});
  aff.observe(v.data(), Shape{20000});
  const std::vector<uint64_t> h = plain_histogram(v, -10, 0, 2048, true);
  for (size_t i = 1; i <= 1537; i += 96) {
    const double t = std::min(static_cast<double>(i) / 1024, 1.5);
    const double e = mse_definition(h, i, 1.0 / 1024, 1.5, t / 255.0);
    EXPECT_NEAR(aff.expected_error(0, static_cast<int64_t>(i)), e, 1e-4 * e) << "cut " << i;
  }
  const size_t best_i = argmin_expected_error(aff, 1537);
  const QuantParams p = aff.params();
  EXPECT_EQ(p.zero_points[0], -128);
  EXPECT_NEAR(p.scales[0] * 255.0, std::min(static_cast<double>(best_i) / 1024, 1.5), 1e-6);
}

// A few large outliers among N(0, 1) values at 4 bits: a step wide enough to keep them rounds
// the whole bulk to 0, at an error of the bulk's own square (about 1 a value), which the
// uniform-noise figure step^2 / 12 overstates 17 times. Charged at what the grid really does,
// the observer keeps the outliers, and its parameters cost no more than min / max's or than the
// best of 2000 thresholds tried on the data itself (within 2 %). At 8 bits, too.
TEST(MseObserver, KeepsOutliersWhenClippingThemCostsMore) {
  std::mt19937 rng(77);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(20000);
  for (float& x : v) x = normal(rng);
  for (size_t i = 0; i < 20; ++i) v[i * 997] = i % 2 == 0 ? 100.0f : -100.0f;
  for (const int bits : {4, 8}) {
    QuantSpec spec = symmetric_spec();
    spec.bits = bits;
    const int32_t qmax = (1 << (bits - 1)) - 1;
    MseObserver mse(spec);
    mse.observe(v.data(), Shape{20000});
    MinMaxObserver minmax(spec);
    minmax.observe(v.data(), Shape{20000});
    const double got = fake_quant_mse(v, mse.params().scales[0], 0, -qmax, qmax);
    const double mm = fake_quant_mse(v, minmax.params().scales[0], 0, -qmax, qmax);
    double best = std::numeric_limits<double>::infinity();
    for (int k = 1; k <= 2000; ++k)
      best = std::min(best, fake_quant_mse(v, 100.0 * k / 2000 / qmax, 0, -qmax, qmax));
    EXPECT_LE(got, mm * (1 + 1e-9)) << "bits " << bits;
    EXPECT_LE(got, best * 1.02) << "bits " << bits;
  }
}

// ---- all observers: merge, reset, the interface ------------------------------------------------

namespace {

std::vector<std::unique_ptr<Observer>> all_observers(const QuantSpec& spec) {
  std::vector<std::unique_ptr<Observer>> v;
  v.push_back(std::make_unique<MinMaxObserver>(spec));
  v.push_back(std::make_unique<MovingAverageMinMaxObserver>(spec, 1.0));
  v.push_back(std::make_unique<PercentileObserver>(spec, 99.5, 512));
  v.push_back(std::make_unique<EntropyObserver>(spec, 512));
  v.push_back(std::make_unique<MseObserver>(spec, 512));
  return v;
}

}  // namespace

TEST(Observers, MergeOfHalvesEqualsOnePassForEveryObserver) {
  const std::vector<float> v = laplace_data(64 * 300, 40, 0.7f);
  for (const QuantSpec& spec : {QuantSpec{}, QuantSpec::int8_weights_per_channel(1)}) {
    auto one = all_observers(spec), a = all_observers(spec), b = all_observers(spec);
    for (size_t k = 0; k < one.size(); ++k) {
      // MovingAverage with c = 1 keeps the last batch: the merged result is b's last batch.
      one[k]->observe(v.data(), Shape{100, 64});
      one[k]->observe(v.data() + 6400, Shape{200, 64});
      a[k]->observe(v.data(), Shape{100, 64});
      b[k]->observe(v.data() + 6400, Shape{200, 64});
      a[k]->merge(*b[k]);
      const QuantParams pa = a[k]->params(), p1 = one[k]->params();
      EXPECT_EQ(pa.scales, p1.scales) << one[k]->name();
      EXPECT_EQ(pa.zero_points, p1.zero_points) << one[k]->name();
    }
  }
}

TEST(Observers, PerChannelEqualsPerTensorOnEachSliceForEveryObserver) {
  // Two batches of [n, 5, 30], channels along axis 1 with different spreads; a per-tensor
  // observer per channel sees that channel's slice of each batch.
  const Shape s1{4, 5, 30}, s2{3, 5, 30};
  std::vector<float> b1 = laplace_data(4 * 5 * 30, 70, 1.0f),
                     b2 = laplace_data(3 * 5 * 30, 71, 1.0f);
  for (size_t i = 0; i < b1.size(); ++i) b1[i] *= static_cast<float>(1 + (i / 30) % 5);
  for (size_t i = 0; i < b2.size(); ++i) b2[i] *= 0.5f * static_cast<float>(1 + (i / 30) % 5);
  for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric}) {
    QuantSpec spec;
    spec.scheme = scheme;
    spec.granularity = Granularity::kPerChannel;
    spec.axis = 1;
    QuantSpec tensor_spec = spec;
    tensor_spec.granularity = Granularity::kPerTensor;
    auto pc = all_observers(spec);
    for (auto& o : pc) {
      o->observe(b1.data(), s1);
      o->observe(b2.data(), s2);
    }
    for (int64_t c = 0; c < 5; ++c) {
      const std::vector<float> x1 = slice3(b1, s1, 1, c), x2 = slice3(b2, s2, 1, c);
      auto pt = all_observers(tensor_spec);
      for (size_t k = 0; k < pt.size(); ++k) {
        pt[k]->observe(x1.data(), Shape{static_cast<int64_t>(x1.size())});
        pt[k]->observe(x2.data(), Shape{static_cast<int64_t>(x2.size())});
        const QuantParams a = pc[k]->params(), b = pt[k]->params();
        EXPECT_EQ(a.scales[static_cast<size_t>(c)], b.scales[0]) << pt[k]->name() << " " << c;
        EXPECT_EQ(a.zero_points[static_cast<size_t>(c)], b.zero_points[0]) << pt[k]->name();
      }
    }
  }
}

TEST(Observers, PerGroupEqualsPerTensorOnEachGroupForEveryObserver) {
  // Groups along the last axis ([6, 70] in groups of 32: 32, 32, 6) and along the first
  // ([40, 3] in groups of 16 down each column: 16, 16, 8), two batches each; a per-tensor
  // observer per group sees that group's values of each batch.
  struct Case {
    Shape shape;
    int axis;
    int64_t group;
  };
  for (const Case& c : {Case{{6, 70}, 1, 32}, Case{{40, 3}, 0, 16}}) {
    const int64_t rows = c.shape[0], cols = c.shape[1];
    const int64_t len = c.shape[static_cast<size_t>(c.axis)];
    const int64_t groups = (len + c.group - 1) / c.group;
    std::vector<float> b1 = laplace_data(static_cast<size_t>(rows * cols), 72, 1.0f),
                       b2 = laplace_data(static_cast<size_t>(rows * cols), 73, 0.6f);
    for (size_t i = 0; i < b1.size(); ++i) b1[i] *= static_cast<float>(1 + i % 7);
    // Slot of element (r, k): groups run along `axis`, one set per position of the other axis.
    const auto slot_of = [&](int64_t r, int64_t k) {
      return c.axis == 1 ? r * groups + k / c.group : (r / c.group) * cols + k;
    };
    for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric}) {
      QuantSpec spec = QuantSpec::int4_per_group(c.group, c.axis);
      spec.scheme = scheme;
      spec.narrow_range = scheme == Scheme::kSymmetric;
      QuantSpec tensor_spec = spec;
      tensor_spec.granularity = Granularity::kPerTensor;
      tensor_spec.group_size = 0;
      tensor_spec.axis = 0;
      auto pg = all_observers(spec);
      for (auto& o : pg) {
        o->observe(b1.data(), c.shape);
        o->observe(b2.data(), c.shape);
      }
      const int64_t slots = c.axis == 1 ? rows * groups : groups * cols;
      for (int64_t slot = 0; slot < slots; ++slot) {
        std::vector<float> x1, x2;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < cols; ++k)
            if (slot_of(r, k) == slot) {
              x1.push_back(b1[static_cast<size_t>(r * cols + k)]);
              x2.push_back(b2[static_cast<size_t>(r * cols + k)]);
            }
        ASSERT_FALSE(x1.empty());
        auto pt = all_observers(tensor_spec);
        for (size_t k = 0; k < pt.size(); ++k) {
          pt[k]->observe(x1.data(), Shape{static_cast<int64_t>(x1.size())});
          pt[k]->observe(x2.data(), Shape{static_cast<int64_t>(x2.size())});
          const QuantParams a = pg[k]->params(), b = pt[k]->params();
          ASSERT_EQ(a.scales.size(), static_cast<size_t>(slots));
          EXPECT_EQ(a.scales[static_cast<size_t>(slot)], b.scales[0])
              << pt[k]->name() << " axis " << c.axis << " slot " << slot;
          EXPECT_EQ(a.zero_points[static_cast<size_t>(slot)], b.zero_points[0]) << pt[k]->name();
        }
      }
    }
  }
}

TEST(Observers, LongPerChannelRunsEqualPerTensorOnEachRow) {
  // Channels on axis 0 of [3, 9000]: each channel is one run of 9000 values, past the length
  // (4 x bins) at which the histogram observers count a run through per-lane partial counts.
  const Shape s{3, 9000};
  std::vector<float> v = laplace_data(3 * 9000, 74, 1.0f);
  for (size_t i = 9000; i < v.size(); ++i) v[i] *= i < 18000 ? 0.25f : 3.0f;
  for (Scheme scheme : {Scheme::kAffine, Scheme::kSymmetric}) {
    QuantSpec spec = QuantSpec::int8_weights_per_channel(0);
    spec.scheme = scheme;
    spec.narrow_range = scheme == Scheme::kSymmetric;
    QuantSpec tensor_spec = spec;
    tensor_spec.granularity = Granularity::kPerTensor;
    auto pc = all_observers(spec);
    for (auto& o : pc) o->observe(v.data(), s);
    for (int64_t c = 0; c < 3; ++c) {
      auto pt = all_observers(tensor_spec);
      for (size_t k = 0; k < pt.size(); ++k) {
        pt[k]->observe(v.data() + c * 9000, Shape{9000});
        const QuantParams a = pc[k]->params(), b = pt[k]->params();
        EXPECT_EQ(a.scales[static_cast<size_t>(c)], b.scales[0]) << pt[k]->name() << " " << c;
        EXPECT_EQ(a.zero_points[static_cast<size_t>(c)], b.zero_points[0]) << pt[k]->name();
      }
    }
  }
}

TEST(Observers, ResetForgetsEverything) {
  const std::vector<float> v = normal_data(1000, 41);
  for (auto& obs : all_observers(QuantSpec{})) {
    obs->observe(v.data(), Shape{1000});
    obs->reset();
    expect_error<DataError>([&] { obs->params(); }, {"empty calibration: no values observed"});
    // After reset, a different per-tensor shape and data are fine and give fresh results.
    std::vector<float> w = v;
    for (float& x : w) x *= 10.0f;
    obs->observe(w.data(), Shape{10, 100});
    auto fresh = all_observers(QuantSpec{});
    for (auto& f : fresh)
      if (std::string(f->name()) == obs->name()) {
        f->observe(w.data(), Shape{1000});
        EXPECT_EQ(f->params().scales, obs->params().scales) << obs->name();
      }
  }
}

// ---- bad inputs --------------------------------------------------------------------------------

TEST(Observers, NonFiniteValuesNameTheIndexAndLeaveStateUntouched) {
  std::vector<float> v = normal_data(300, 50);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    for (auto& obs : all_observers(QuantSpec{})) {
      obs->observe(v.data(), Shape{300});
      const QuantParams before = obs->params();
      std::vector<float> w = v;
      for (float& x : w) x *= 100.0f;  // would change the range if absorbed
      w[217] = bad;
      expect_error<DataError>(
          [&] {
            obs->observe(w.data(), Shape{3, 100});
          },
          {"non-finite", "at index 217", obs->name()});
      EXPECT_EQ(obs->params().scales, before.scales) << obs->name();
    }
  }
  // A long per-tensor batch is read chunk by chunk: a NaN far in, after chunks that already
  // widened the range, must still leave the histogram as it was.
  std::vector<float> big = normal_data(100000, 53);
  for (size_t i = 0; i < 90000; ++i) big[i] *= 1000.0f;
  big[99999] = NAN;
  for (auto& obs : all_observers(QuantSpec{})) {
    obs->observe(v.data(), Shape{300});
    const QuantParams before = obs->params();
    expect_error<DataError>([&] { obs->observe(big.data(), Shape{100000}); }, {"at index 99999"});
    EXPECT_EQ(obs->params().scales, before.scales) << obs->name();
    if (auto* h = dynamic_cast<HistogramObserver*>(obs.get())) {
      EXPECT_EQ(h->histogram(0).total, 300u);
      EXPECT_EQ(h->histogram(0).counts,
                plain_histogram(v, h->histogram(0).exponent, h->histogram(0).first_bin, h->bins(),
                                h->magnitude()));
    }
  }
  PercentileObserver first(QuantSpec{});  // failing on the very first batch
  expect_error<DataError>([&] { first.observe(big.data(), Shape{100000}); }, {"99999"});
  expect_error<DataError>([&] { first.params(); }, {"empty calibration"});
  EXPECT_EQ(first.param_count(), 0);
  // Per-channel along the last axis goes through the short-run path.
  std::vector<float> w = v;
  w[5] = NAN;
  MinMaxObserver pc(QuantSpec::int8_weights_per_channel(-1));
  expect_error<DataError>([&] { pc.observe(w.data(), Shape{100, 3}); }, {"at index 5"});
}

TEST(Observers, EmptyCalibration) {
  for (auto& obs : all_observers(QuantSpec{})) {
    expect_error<DataError>([&] { obs->params(); },
                            {"empty calibration: no values observed", obs->name()});
    obs->observe(nullptr, Shape{0, 5});  // an empty batch is no data
    expect_error<DataError>([&] { obs->params(); }, {"empty calibration"});
  }
  std::vector<float> zeros(10, 0.0f);
  MinMaxObserver z;
  z.observe(zeros.data(), Shape{10});
  expect_error<DataError>([&] { z.params(); }, {"zero range"});
}

TEST(Observers, ShapeMismatchesBetweenBatches) {
  std::vector<float> v = normal_data(120, 51);
  for (auto& obs : all_observers(QuantSpec::int8_weights_per_channel(1))) {
    obs->observe(v.data(), Shape{10, 4, 3});
    obs->observe(v.data(), Shape{5, 4, 3});  // batch dimension may change
    expect_error<ShapeError>(
        [&] {
          obs->observe(v.data(), Shape{4, 5, 3});
        },
        {"5 channels along axis 1", "[4, 5, 3]", "[10, 4, 3]"});
    expect_error<ShapeError>([&] { obs->observe(v.data(), Shape{40, 3}); }, {"rank 2"});
  }
  MinMaxObserver g(QuantSpec::int4_per_group(4, 1));
  g.observe(v.data(), Shape{10, 12});
  expect_error<ShapeError>([&] { g.observe(v.data(), Shape{12, 10}); }, {"per-group", "[12, 10]"});
  // Merging observers that saw different channel counts.
  MinMaxObserver a(QuantSpec::int8_weights_per_channel(0)),
      b(QuantSpec::int8_weights_per_channel(0));
  a.observe(v.data(), Shape{4, 30});
  b.observe(v.data(), Shape{6, 20});
  expect_error<ShapeError>([&] { a.merge(b); }, {"6 channels"});
  MinMaxObserver n;
  expect_error<InvalidArgument>([&] { n.observe(nullptr, Shape{3}); }, {"data is null"});
}

TEST(Observers, BadConfiguration) {
  for (double p : {0.0, -1.0, 100.5, static_cast<double>(NAN)})
    expect_error<InvalidArgument>([&] { PercentileObserver o(QuantSpec{}, p); },
                                  {"percentile", "outside (0, 100]"});
  expect_error<InvalidArgument>([&] { PercentileObserver o(QuantSpec{}, 30.0); }, {"30 <= 50"});
  EXPECT_NO_THROW(PercentileObserver(symmetric_spec(), 30.0));
  for (double c : {0.0, -0.5, 1.5, static_cast<double>(INFINITY)})
    expect_error<InvalidArgument>([&] { MovingAverageMinMaxObserver o(QuantSpec{}, c); },
                                  {"averaging constant", "(0, 1]"});
  expect_error<InvalidArgument>([] { PercentileObserver o(QuantSpec{}, 99.0, 8); }, {"bins = 8"});
  expect_error<InvalidArgument>([] { MseObserver o(QuantSpec{}, int64_t{1} << 30); },
                                {"bins = 1073741824"});
  expect_error<InvalidArgument>([] { EntropyObserver o(QuantSpec{}, 100); }, {"bins = 100"});
  // The entropy search is quadratic in the bins: the generic 2^22 would take hours.
  expect_error<InvalidArgument>(
      [] { EntropyObserver o(QuantSpec{}, EntropyObserver::kMaxEntropyBins + 1); },
      {"bins = 16385", "quadratic"});
  EXPECT_NO_THROW(EntropyObserver(QuantSpec{}, EntropyObserver::kMaxEntropyBins));
  QuantSpec bad;
  bad.bits = 9;
  expect_error<InvalidArgument>([&] { MinMaxObserver o(bad); }, {"bits = 9"});
  // Merging different types or configurations.
  MinMaxObserver mm;
  PercentileObserver p99(QuantSpec{}, 99.0), p999(QuantSpec{}, 99.9);
  expect_error<InvalidArgument>([&] { mm.merge(p99); }, {"cannot merge a percentile"});
  expect_error<InvalidArgument>([&] { p99.merge(p999); },
                                {"other options (this one: bins 2048, percentile 99; the other: "
                                 "bins 2048, percentile 99.9)"});
  PercentileObserver p99b(QuantSpec{}, 99.0, 1024);
  expect_error<InvalidArgument>([&] { p99.merge(p99b); },
                                {"this one: bins 2048, percentile 99; the other: bins 1024"});
  MinMaxObserver sym(symmetric_spec());
  expect_error<InvalidArgument>([&] { mm.merge(sym); }, {"different spec"});
  // Specs that differ only in narrow_range, or only in the group size, say so.
  QuantSpec narrow;
  narrow.narrow_range = true;
  MinMaxObserver wide_obs(QuantSpec{}), narrow_obs(narrow);
  expect_error<InvalidArgument>([&] { wide_obs.merge(narrow_obs); },
                                {"(this one per-tensor affine 8-bit axis 0, the other per-tensor "
                                 "affine 8-bit narrow axis 0)"});
  MinMaxObserver g16(QuantSpec::int4_per_group(16, 1)), g32(QuantSpec::int4_per_group(32, 1));
  expect_error<InvalidArgument>([&] { g16.merge(g32); }, {"this one per-group", "group 16",
                                                          "the other per-group", "group 32"});
  MovingAverageMinMaxObserver e1(QuantSpec{}, 0.1), e2(QuantSpec{}, 0.2);
  std::vector<float> v = normal_data(10, 52);
  e2.observe(v.data(), Shape{10});
  expect_error<InvalidArgument>([&] { e1.merge(e2); }, {"c = 0.2"});
  expect_error<InvalidArgument>([&] { p99.histogram(3); }, {"slot 3"});
}

// ---- large streams -----------------------------------------------------------------------------

// More than 2^31 values through min/max and a histogram in bounded memory (one 64 MiB batch
// reused). About 5 s of CPU, longer on a busy machine, so it runs only when TINYQUANT_TEST_HUGE=1.
TEST(Observers, StreamsMoreThan2To31Values) {
  const char* env = std::getenv("TINYQUANT_TEST_HUGE");
  if (env == nullptr || env[0] != '1') GTEST_SKIP() << "set TINYQUANT_TEST_HUGE=1 to run";
  const int64_t batch = int64_t{1} << 24;
  std::vector<float> v = normal_data(static_cast<size_t>(batch), 60);
  const int batches = 129;  // 129 * 2^24 > 2^31
  MinMaxObserver mm;
  PercentileObserver pct(symmetric_spec(), 100.0, 2048);
  for (int b = 0; b < batches; ++b) {
    v[static_cast<size_t>(b)] = 10.0f + static_cast<float>(b);  // new maximum every batch
    mm.observe(v.data(), Shape{batch});
    pct.observe(v.data(), Shape{batch});
  }
  EXPECT_EQ(mm.values_observed(), batches * batch);
  EXPECT_EQ(pct.histogram(0).total, static_cast<uint64_t>(batches * batch));
  EXPECT_EQ(mm.maxs()[0], 10.0f + batches - 1);
  EXPECT_NEAR(pct.params().scales[0] * 127.0, 10.0 + batches - 1, 1e-3);
}

// ---- boundaries of the histogram searches ------------------------------------------------------

// The grid exponent is bounded below so that |x| / 2^e < 2^30. Values 2^30 and 2^30 + 128 span
// 65 bins at e = 1, the bound (ilogb 30 - 29); at e = 0 they would be 2^30 and out of range.
TEST(HistogramObserver, ExponentBoundKeepsLargeNarrowRangesOnTheGrid) {
  const std::vector<float> v{1073741824.0f, 1073741952.0f};
  PercentileObserver obs(QuantSpec{}, 99.0, 2048);
  obs.observe(v.data(), Shape{2});
  const Histogram& h = obs.histogram(0);
  EXPECT_EQ(h.exponent, 1);
  EXPECT_EQ(h.first_bin, int64_t{1} << 29);
  EXPECT_EQ(h.counts, plain_histogram(v, 1, int64_t{1} << 29, 2048, false));
  EXPECT_EQ(h.counts[64], 1u);
}

// k = ceil(p / 100 * n): 95 % of 10 values is rank 9.5 -> 10, the outlier itself. Nine values
// of 1 and one of 1000 on 2048 bins of width 0.5: rank 10 ends its bin at 1000.5, clipped to the
// maximum 1000, so T = 1000 (rank 9 would give 1.5).
TEST(PercentileObserver, FractionalRankRoundsUp) {
  std::vector<float> v(9, 1.0f);
  v.push_back(1000.0f);
  PercentileObserver obs(symmetric_spec(), 95.0);
  obs.observe(v.data(), Shape{10});
  EXPECT_EQ(obs.histogram(0).exponent, -1);
  EXPECT_EQ(obs.params().scales, (std::vector<float>{static_cast<float>(1000.0 / 127.0)}));
}

// The first cut, i = levels, is a candidate. 256 bins of width 1 (max 128.5): bin 0 holds 200
// values, bin 1 holds 10, bins 2..127 hold 100 each and bin 128 one outlier. Cutting at 129
// merges bins 0 and 1 into one level (Q = 105, 105 against P = 200, 10); cutting at 128 only
// folds the outlier into bin 127 (P = 101 against Q = 100). So i = 128 wins, T = 128.
TEST(EntropyObserver, TheFirstCutCanWin) {
  std::vector<float> v(200, 0.5f);
  v.insert(v.end(), 10, 1.5f);
  for (int j = 2; j < 128; ++j) v.insert(v.end(), 100, static_cast<float>(j) + 0.5f);
  v.push_back(-128.5f);
  EntropyObserver obs(symmetric_spec(), 256);
  obs.observe(v.data(), Shape{static_cast<int64_t>(v.size())});
  ASSERT_EQ(obs.histogram(0).exponent, 0);
  const std::vector<uint64_t> h = plain_histogram(v, 0, 0, 256, true);
  ASSERT_EQ(obs.histogram(0).counts, h);
  ASSERT_LT(kl_definition(h, 128, 128), kl_definition(h, 129, 128));
  EXPECT_EQ(obs.params().scales, (std::vector<float>{static_cast<float>(128.0 / 127.0)}));
}

// The first cut, i = 1, is a candidate too. 2-bit symmetric (step T / 1), 16 bins of width
// w = 1/8 (max 1): 1000 values spread evenly over bin 0 and one at 1 (the last bin, whose values
// reach only max|x| = 1: a point).
//   E(1), T = 1/8: bin 0 rounds to {0, 1/8}, mean error w^2 / 12; the one at 1 clips to 1/8:
//         1000 / 768 + 0.875^2 = 2.068.
//   E(i), 2 <= i <= 8: bin 0 all rounds to 0 (x < w <= T / 2), mean x^2 = w^2 / 3:
//         1000 / 192 = 5.208, plus clipping: more than E(1).
//   E(9), T = 1: 5.208 and the one at 1 is exact.
// On the data itself the same holds: scale 1/8 costs 1.30 + 0.77, scale 1 costs 5.21.
TEST(MseObserver, TheFirstCutCanWin) {
  std::vector<float> v;
  for (int k = 0; k < 1000; ++k) v.push_back((static_cast<float>(k) + 0.5f) / 8000.0f);
  v.push_back(1.0f);
  QuantSpec spec = symmetric_spec();
  spec.bits = 2;
  MseObserver obs(spec, 16);
  obs.observe(v.data(), Shape{1001});
  ASSERT_EQ(obs.histogram(0).exponent, -3);
  const double w2 = 1.0 / 64;
  EXPECT_NEAR(obs.expected_error(0, 1), 1000 * w2 / 12 + 0.875 * 0.875, 1e-12);
  EXPECT_NEAR(obs.expected_error(0, 2), 1000 * w2 / 3 + 0.75 * 0.75, 1e-12);
  EXPECT_NEAR(obs.expected_error(0, 9), 1000 * w2 / 3, 1e-12);
  EXPECT_EQ(obs.params().scales, (std::vector<float>{0.125f}));
  EXPECT_LT(fake_quant_mse(v, 0.125, 0, -1, 1), fake_quant_mse(v, 1.0, 0, -1, 1));
}

// Affine ranges from a magnitude threshold T are [max(min, -T), min(max, T)]: both ends clipped.
// 4-bit affine on data reaching +-1.5 with a Laplace body: the brute-force T (step = the clipped
// width / 15) is well below 1.5, so the range is [-T, T] and the scale 2T / 15.
TEST(MseObserver, AffineClipsBothEnds) {
  std::vector<float> v = laplace_data(20000, 31, 0.1f);
  for (float& x : v) x = std::clamp(x, -1.5f, 1.5f);
  v[0] = 1.5f;
  v[1] = -1.5f;
  QuantSpec spec;
  spec.bits = 4;
  MseObserver obs(spec);
  obs.observe(v.data(), Shape{20000});
  ASSERT_EQ(obs.histogram(0).exponent, -10);
  const std::vector<uint64_t> h = plain_histogram(v, -10, 0, 2048, true);
  const double w = 1.0 / 1024;
  for (size_t i = 1; i <= 1537; i += 96) {
    const double t = std::min(static_cast<double>(i) * w, 1.5);
    const double e = mse_definition(h, i, w, 1.5, 2.0 * t / 15.0);
    EXPECT_NEAR(obs.expected_error(0, static_cast<int64_t>(i)), e, 1e-4 * e) << "cut " << i;
  }
  const size_t best_i = argmin_expected_error(obs, 1537);
  const double t = std::min(static_cast<double>(best_i) * w, 1.5);
  ASSERT_LT(t, 1.0);
  const QuantParams p = obs.params();
  EXPECT_FLOAT_EQ(p.scales[0], static_cast<float>(2.0 * t / 15.0));
  // The affine zero point of [-T, T]: -8 - round(-T / scale).
  EXPECT_EQ(p.zero_points[0],
            -8 - static_cast<int32_t>(std::round(-t / static_cast<double>(p.scales[0]))));
}

// A percentile so small that p / 100 * n rounds to rank 0 still takes rank 1, the smallest |x|:
// 1 in its bin of width 2^-8 (max 4 on 2048 bins), whose upper edge is 257 / 256.
TEST(PercentileObserver, RankIsAtLeastOne) {
  const std::vector<float> v{1.0f, 2.0f, 3.0f, 4.0f};
  PercentileObserver obs(symmetric_spec(), 1e-14);
  obs.observe(v.data(), Shape{4});
  ASSERT_EQ(obs.histogram(0).exponent, -8);
  EXPECT_EQ(obs.params().scales, (std::vector<float>{static_cast<float>(257.0 / 256.0 / 127.0)}));
}

// A merge whose channels disagree says it is the merged observer's shape, not a batch's.
TEST(Observers, AMergeOfOtherChannelsNamesTheMergedObserver) {
  const std::vector<float> v = normal_data(24, 53);
  MinMaxObserver a(QuantSpec::int8_weights_per_channel(0)),
      b(QuantSpec::int8_weights_per_channel(0));
  a.observe(v.data(), Shape{4, 6});
  b.observe(v.data(), Shape{6, 4});
  expect_error<ShapeError>([&] { a.merge(b); },
                           {"minmax observer: the merged observer's first batch shape [6, 4] has 6 "
                            "channels along axis 0, but the first batch's [4, 6] has 4"});
}

// A range the observer cannot turn into parameters names the observer and what it saw.
TEST(Observers, AZeroRangeNamesTheObserverAndItsValues) {
  const std::vector<float> zeros(5, 0.0f);
  MinMaxObserver mm;
  mm.observe(zeros.data(), Shape{2});
  mm.observe(zeros.data(), Shape{5});
  expect_error<DataError>([&] { (void)mm.params(); },
                          {"minmax observer (7 values in 2 batches): ", "zero range"});
}

// At p = 50 the affine tails cross (the upper estimate would follow the lower tail's), so an
// affine percentile observer wants p > 50; a symmetric one takes any p in (0, 100].
TEST(PercentileObserver, AffineNeedsAPercentileAbove50) {
  expect_error<InvalidArgument>([] { PercentileObserver o(QuantSpec{}, 50.0); },
                                {"percentile = 50 <= 50 with an affine scheme"});
  EXPECT_NO_THROW(PercentileObserver(QuantSpec{}, 50.001));
  EXPECT_NO_THROW(PercentileObserver(symmetric_spec(), 50.0));
}
