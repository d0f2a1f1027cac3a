// Integer-only layers against (1) the kernel formula evaluated in plain int64 loops here, from the
// layer's quantized weights and independently derived bias / multipliers, bit for bit, and (2)
// the float layer they approximate, within a few output steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/grouped.hpp"

using namespace tinyquant;
namespace rt = tinyquant::rt;

namespace {

std::vector<float> randn(size_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Every path this build and CPU run, from the reference to AMX.
std::vector<uint32_t> path_list() {
  std::vector<uint32_t> out;
  for (uint32_t b = 1; b <= rt::path_bits(rt::Path::kAmx); b <<= 1)
    if ((rt::supported_paths() & b) != 0) out.push_back(b);
  return out;
}

int32_t requant_oracle_inputs(double real, int32_t* mult) {
  rt::QuantizedMultiplier qm;
  EXPECT_EQ(rt::quantize_multiplier(real, &qm), rt::Status::kOk);
  *mult = qm.multiplier;
  return qm.shift;
}

// Expected int8 output of a per-channel / per-tensor linear layer from its definition.
std::vector<int8_t> linear_oracle(const QuantizedLinear& l, const std::vector<int8_t>& x,
                                  int64_t batch, const std::vector<float>& bias, Activation act) {
  const int64_t in = l.in_features(), out = l.out_features();
  const QTensor& w = l.weights();
  const bool per_tensor = w.params.spec.granularity == Granularity::kPerTensor;
  const int32_t wzp = w.params.zero_points[0];
  int32_t amin = -128, amax = 127;
  const ActivationParams op = l.output_params(), ip = l.input_params();
  if (act != Activation::kNone) amin = std::max(-128, op.zero_point);
  std::vector<int8_t> y(static_cast<size_t>(batch * out));
  for (int64_t c = 0; c < out; ++c) {
    const double ws = w.params.scales[per_tensor ? 0 : static_cast<size_t>(c)];
    int32_t mult = 0;
    const int32_t shift = requant_oracle_inputs(ip.scale * ws / op.scale, &mult);
    const int64_t bq =
        bias.empty() ? 0 : std::llround(bias[static_cast<size_t>(c)] / (ip.scale * ws));
    for (int64_t b = 0; b < batch; ++b) {
      int64_t acc = bq;
      for (int64_t k = 0; k < in; ++k)
        acc += int64_t{x[static_cast<size_t>(b * in + k)] - ip.zero_point} *
               (w.value(c * in + k) - (per_tensor ? wzp : 0));
      int32_t v = rt::requantize(static_cast<int32_t>(acc), mult, shift) + op.zero_point;
      y[static_cast<size_t>(b * out + c)] = static_cast<int8_t>(std::clamp(v, amin, amax));
    }
  }
  return y;
}

// The grouped kernels' definition (rt/grouped.hpp) for a per-group layer's weights q
// [out][in] (groups of `group` along the input axis), input x [batch][in] and float bias (empty:
// none), straight from the formula: int64 sums, ratios from the float scales.
std::vector<int8_t> grouped_oracle(const QTensor& q, int64_t group, const std::vector<int8_t>& x,
                                   int64_t batch, const std::vector<float>& bias,
                                   ActivationParams ip, ActivationParams op) {
  const int64_t out = q.shape[0], in = q.shape[1], groups = (in + group - 1) / group;
  std::vector<int8_t> y(static_cast<size_t>(batch * out));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < out; ++c) {
      double row_max = 0;
      for (int64_t g = 0; g < groups; ++g)
        row_max = std::max(row_max, double{q.params.scales[static_cast<size_t>(c * groups + g)]});
      int64_t total = 0;
      for (int64_t g = 0; g < groups; ++g) {
        int64_t acc = 0;
        for (int64_t k = g * group; k < std::min(in, (g + 1) * group); ++k)
          acc += int64_t{x[static_cast<size_t>(b * in + k)] - ip.zero_point} * q.value(c * in + k);
        const int64_t r = std::clamp<int64_t>(
            std::llround(q.params.scales[static_cast<size_t>(c * groups + g)] / row_max * 256.0), 1,
            256);
        total += acc * r;
      }
      const int64_t bq =
          bias.empty() ? 0 : std::llround(bias[static_cast<size_t>(c)] / (ip.scale * row_max));
      const int32_t t = static_cast<int32_t>(bq + ((total + (1 << 7)) >> 8));
      int32_t mult = 0;
      const int32_t shift = requant_oracle_inputs(ip.scale * row_max / op.scale, &mult);
      y[static_cast<size_t>(b * out + c)] = static_cast<int8_t>(
          std::clamp(rt::requantize(t, mult, shift) + op.zero_point, -128, 127));
    }
  return y;
}

}  // namespace

TEST(QuantizedLinear, MatchesFormulaOnEveryPath) {
  const int64_t out = 37, in = 83, batch = 3;
  const std::vector<float> w = randn(static_cast<size_t>(out * in), 0.1f, 1);
  const std::vector<float> bias = randn(static_cast<size_t>(out), 0.5f, 2);
  std::vector<int8_t> x(static_cast<size_t>(batch * in));
  std::mt19937 rng(3);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  const ActivationParams ip{0.05f, -7}, op{0.08f, 11};
  struct Case {
    QuantSpec spec;
    Activation act;
  };
  QuantSpec pt;  // int8 affine per-tensor weights: exercises filter_offset
  QuantSpec w4 = QuantSpec::int8_weights_per_channel(0);
  w4.bits = 4;
  const Case cases[] = {{QuantSpec::int8_weights_per_channel(0), Activation::kNone},
                        {QuantSpec::int8_weights_per_channel(0), Activation::kRelu},
                        {pt, Activation::kNone},
                        {w4, Activation::kRelu}};
  for (const Case& cs : cases) {
    const QuantizedLinear layer(w.data(), out, in, bias.data(), cs.spec, ip, op, cs.act);
    const std::vector<int8_t> want = linear_oracle(layer, x, batch, bias, cs.act);
    for (uint32_t p : path_list()) {
      EXPECT_EQ(layer.forward(x, static_cast<rt::Path>(p)), want)
          << "bits " << cs.spec.bits << " " << to_string(cs.spec.granularity) << " path "
          << rt::path_name(static_cast<rt::Path>(p));
    }
  }
}

TEST(QuantizedLinear, ApproximatesTheFloatLayer) {
  const int64_t out = 64, in = 200;
  const std::vector<float> w = randn(static_cast<size_t>(out * in), 0.07f, 5);
  const std::vector<float> bias = randn(static_cast<size_t>(out), 0.1f, 6);
  const std::vector<float> xf = randn(static_cast<size_t>(in), 1.0f, 7);
  float lo = 0, hi = 0;
  for (int64_t c = 0; c < out; ++c) {
    double s = bias[static_cast<size_t>(c)];
    for (int64_t k = 0; k < in; ++k)
      s += double{w[static_cast<size_t>(c * in + k)]} * xf[static_cast<size_t>(k)];
    lo = std::min(lo, static_cast<float>(s));
    hi = std::max(hi, static_cast<float>(s));
  }
  const ActivationParams ip = ActivationParams::from_range(*std::min_element(xf.begin(), xf.end()),
                                                           *std::max_element(xf.begin(), xf.end()));
  const ActivationParams op = ActivationParams::from_range(1.5f * lo, 1.5f * hi);  // no clipping
  std::vector<int8_t> xq(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) xq[i] = quantize_activation(xf[i], ip);
  // Against the float layer evaluated with the layer's own dequantized weights and inputs, only
  // the bias, requantization and (grouped) 8-bit ratio roundings remain: about one output step.
  QuantSpec g4 = QuantSpec::int4_per_group(32, 1);
  for (const QuantSpec& spec : {QuantSpec::int8_weights_per_channel(0), g4}) {
    const QuantizedLinear layer(w.data(), out, in, bias.data(), spec, ip, op);
    const std::vector<float> wd = dequantize(layer.weights());
    const std::vector<int8_t> y = layer.forward(xq);
    double worst = 0;
    for (int64_t c = 0; c < out; ++c) {
      double s = bias[static_cast<size_t>(c)];
      for (int64_t k = 0; k < in; ++k)
        s += double{wd[static_cast<size_t>(c * in + k)]} * ip.scale *
             (xq[static_cast<size_t>(k)] - ip.zero_point);
      const double got = double{op.scale} * (y[static_cast<size_t>(c)] - op.zero_point);
      worst = std::max(worst, std::fabs(got - s) / op.scale);
    }
    EXPECT_LT(worst, 0.6) << to_string(spec.granularity) << " bits " << spec.bits;
  }
}

TEST(QuantizedLinear, GroupedMatchesItsDefinition) {
  struct Config {
    int64_t out, in, group;
    int bits;
  };
  // Groups of 32 with a short tail (32 + 32 + 6); odd rows whose groups start mid-byte; and groups
  // longer than the kernel's 256-weight decoding chunk, int4 and int8.
  for (const Config cfg : {Config{9, 70, 32, 4}, Config{5, 71, 16, 4}, Config{3, 1300, 600, 4},
                           Config{4, 777, 300, 8}}) {
    const int64_t out = cfg.out, in = cfg.in, batch = 2;
    std::vector<float> w = randn(static_cast<size_t>(out * in), 0.2f, 8);
    // Row 0's first group far below the row's largest: its ratio rounds to 0 and must stay 1/256.
    for (int64_t k = 0; k < cfg.group; ++k) w[static_cast<size_t>(k)] *= 1e-4f;
    const ActivationParams ip{0.03f, 5}, op{0.2f, -3};
    std::vector<int8_t> x(static_cast<size_t>(batch * in));
    std::mt19937 rng(9);
    for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    QuantSpec spec = QuantSpec::int4_per_group(cfg.group, 1);
    spec.bits = cfg.bits;
    const QuantizedLinear layer(w.data(), out, in, nullptr, spec, ip, op);
    EXPECT_EQ(layer.forward(x), grouped_oracle(layer.weights(), cfg.group, x, batch, {}, ip, op))
        << "in " << in << " group " << cfg.group;
  }
}

// A group longer than the row is one group per row, whatever its size: the kernel's 32-bit field
// gets min(group, in), not the 64-bit size cut to its low 32 bits (2^32 + 4 would become 4).
TEST(QuantizedLinear, GroupLongerThanTheRowIsOneGroup) {
  const int64_t out = 4, in = 8, batch = 3;
  const std::vector<float> w = randn(static_cast<size_t>(out * in), 0.3f, 21);
  const ActivationParams ip{0.05f, -2}, op{0.1f, 1};
  std::vector<int8_t> x(static_cast<size_t>(batch * in));
  std::mt19937 rng(22);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  for (const int64_t group :
       {int64_t{8}, int64_t{9}, (int64_t{1} << 32) + 4, std::numeric_limits<int64_t>::max()}) {
    const QuantizedLinear layer(w.data(), out, in, nullptr, QuantSpec::int4_per_group(group, 1), ip,
                                op);
    EXPECT_EQ(layer.kernel_group_size(), 8) << group;
    EXPECT_EQ(layer.group_ratios().size(), static_cast<size_t>(out)) << group;
    EXPECT_EQ(layer.forward(x), grouped_oracle(layer.weights(), in, x, batch, {}, ip, op))
        << "group " << group;
  }
}

TEST(QuantizedConv2d, MatchesDirectIntegerConvolution) {
  const int32_t oc = 6, kh = 3, kw = 3, ic = 4, h = 7, wd = 6, batch = 2;
  Conv2dGeometry geo;
  geo.stride_h = 2;
  geo.padding = Padding::kSame;
  const std::vector<float> w = randn(static_cast<size_t>(oc * kh * kw * ic), 0.2f, 10);
  const std::vector<float> bias = randn(static_cast<size_t>(oc), 0.3f, 11);
  const ActivationParams ip{0.04f, -20}, op{0.1f, 4};
  const QuantizedConv2d conv(w.data(), oc, kh, kw, ic, bias.data(), geo,
                             QuantSpec::int8_weights_per_channel(0), ip, op, Activation::kRelu);
  int32_t oh = 0, ow = 0;
  conv.output_size(h, wd, &oh, &ow);
  EXPECT_EQ(oh, 4);  // ceil(7 / 2)
  EXPECT_EQ(ow, 6);
  std::vector<int8_t> x(static_cast<size_t>(batch * h * wd * ic));
  std::mt19937 rng(12);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  // TFLite SAME: total padding (oh - 1) * s + k - h = 3 * 2 + 3 - 7 = 2 rows, 1 on top.
  const int pad_top = 1, pad_left = 1;
  const QTensor& q = conv.weights();
  for (uint32_t p : path_list()) {
    std::vector<int8_t> y(static_cast<size_t>(batch * oh * ow * oc));
    conv.forward(x.data(), batch, h, wd, y.data(), static_cast<rt::Path>(p));
    for (int b = 0; b < batch; ++b)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox)
          for (int c = 0; c < oc; ++c) {
            const double ws = q.params.scales[static_cast<size_t>(c)];
            int64_t acc = std::llround(bias[static_cast<size_t>(c)] / (ip.scale * ws));
            for (int ky = 0; ky < kh; ++ky)
              for (int kx = 0; kx < kw; ++kx) {
                const int iy = oy * 2 - pad_top + ky, ix = ox - pad_left + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;  // padding adds nothing
                for (int ci = 0; ci < ic; ++ci)
                  acc += int64_t{x[static_cast<size_t>(((b * h + iy) * wd + ix) * ic + ci)] -
                                 ip.zero_point} *
                         q.value(((c * kh + ky) * kw + kx) * ic + ci);
              }
            int32_t mult = 0;
            const int32_t shift = requant_oracle_inputs(ip.scale * ws / op.scale, &mult);
            const int32_t v =
                std::clamp(rt::requantize(static_cast<int32_t>(acc), mult, shift) + op.zero_point,
                           std::max(-128, op.zero_point), 127);
            ASSERT_EQ(y[static_cast<size_t>(((b * oh + oy) * ow + ox) * oc + c)], v)
                << "path " << rt::path_name(static_cast<rt::Path>(p)) << " at " << b << "," << oy
                << "," << ox << "," << c;
          }
  }
}

// A unit whose weights decayed next to its bias (|w| ~ 1e-7, bias 0.6): at min / max scales its
// bias code, 0.6 / (0.02 x 2e-9), does not fit int32. Built from float weights, the layer raises
// that channel's weight scale until the code is at most 2^30 (the other channels keep theirs);
// built from the same weights already quantized, it reports the bias.
TEST(QuantizedLinear, RaisesWeightScalesABiasDoesNotFit) {
  const int64_t out = 4, in = 16;
  std::vector<float> w = randn(static_cast<size_t>(out * in), 0.1f, 41);
  for (int64_t k = 0; k < in; ++k) w[static_cast<size_t>(in + k)] *= 1e-6f;  // channel 1
  // The largest |bias| is negative: a per-tensor scale must be raised for its magnitude.
  const std::vector<float> bias = {0.1f, 0.6f, -0.9f, 0.05f};
  const ActivationParams ip{0.02f, 3}, op{0.05f, -2};
  std::vector<int8_t> x(static_cast<size_t>(in));
  std::mt19937 rng(42);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  const double limit = 1073741824.0;  // 2^30

  for (const QuantSpec& spec : {QuantSpec::int8_weights_per_channel(0), QuantSpec{}}) {
    const bool per_tensor = spec.granularity == Granularity::kPerTensor;
    std::vector<float> wt = w;
    if (per_tensor)  // every weight tiny, so the one scale must rise
      for (float& v : wt) v *= 1e-6f;
    const QuantizedLinear layer(wt.data(), out, in, bias.data(), spec, ip, op);
    const QuantParams& p = layer.weights().params;
    for (int64_t c = 0; c < out; ++c) {
      const float s = p.scales[per_tensor ? 0 : static_cast<size_t>(c)];
      EXPECT_LE(std::fabs(bias[static_cast<size_t>(c)] / (double{ip.scale} * s)), limit) << c;
      if (per_tensor || c == 1) continue;
      float top = 0.0f;  // the untouched channels keep max |w| / 127
      for (int64_t k = 0; k < in; ++k) top = std::max(top, std::fabs(wt[c * in + k]));
      EXPECT_FLOAT_EQ(s, static_cast<float>(top / 127.0)) << c;
    }
    const std::vector<int8_t> want = linear_oracle(layer, x, 1, bias, Activation::kNone);
    for (uint32_t path : path_list())
      EXPECT_EQ(layer.forward(x, static_cast<rt::Path>(path)), want)
          << rt::path_name(static_cast<rt::Path>(path));
    // Against the float layer: within 2 output steps.
    for (int64_t c = 0; c < out; ++c) {
      double y = bias[static_cast<size_t>(c)];
      for (int64_t k = 0; k < in; ++k)
        y += double{wt[static_cast<size_t>(c * in + k)]} * ip.scale *
             (x[static_cast<size_t>(k)] - ip.zero_point);
      const double code = std::clamp(std::round(y / op.scale) + op.zero_point, -128.0, 127.0);
      EXPECT_LE(std::fabs(want[static_cast<size_t>(c)] - code), 2.0) << c;
    }
    try {
      QuantizedLinear(quantize_weights(wt.data(), Shape{out, in}, spec), bias.data(), ip, op);
      ADD_FAILURE() << "the bias fits at min / max scales";
    } catch (const DataError& e) {
      const char* first = per_tensor ? "bias[0] = 0.1 does not fit" : "bias[1] = 0.6 does not fit";
      EXPECT_NE(std::string(e.what()).find(first), std::string::npos) << e.what();
    }
  }
}

// A row whose weights are all 0 (a neuron pruned in place, not removed) outputs its bias alone.
// Its placeholder weight scale (1, from a [0, 0] range) put the bias on a grid of input scale x 1
// = 0.05, which at output scale 0.001 is 50 output steps: 0.0315 came out as 50 (0.05), not 32.
// The layer now carries such a row at the finest scale of the rows with weights. The expected
// outputs here are the float layer's, bias / output scale, within one step.
TEST(QuantizedLinear, DeadRowsOutputTheirBiasAtTheLiveRowsPrecision) {
  const int64_t out = 4, in = 40;
  std::vector<float> w = randn(static_cast<size_t>(out * in), 0.3f, 31);
  for (int64_t k = 0; k < in; ++k) {
    w[static_cast<size_t>(1 * in + k)] = 0.0f;
    w[static_cast<size_t>(3 * in + k)] = 0.0f;
  }
  const std::vector<float> bias = {0.01f, 0.0315f, -0.02f, -0.1083f};
  const ActivationParams ip{0.05f, -3}, op{0.001f, 2};
  const std::vector<int8_t> x(static_cast<size_t>(in), 7);
  struct Case {
    const char* name;
    QuantSpec spec;
  };
  for (const Case& cs : {Case{"int8 per-channel", QuantSpec::int8_weights_per_channel()},
                         Case{"int4 per-channel",
                              [] {
                                QuantSpec s4 = QuantSpec::int8_weights_per_channel();
                                s4.bits = 4;
                                return s4;
                              }()},
                         Case{"int4 per-group 16", QuantSpec::int4_per_group(16, 1)}}) {
    const QTensor q = quantize_weights(w.data(), {out, in}, cs.spec);
    const QuantizedLinear from_q(q, bias.data(), ip, op);
    const QuantizedLinear from_float(w.data(), out, in, bias.data(), cs.spec, ip, op);
    for (const QuantizedLinear* layer : {&from_q, &from_float}) {
      const std::vector<float>& s = layer->weights().params.scales;
      const size_t per_row = s.size() / static_cast<size_t>(out);
      float finest = std::numeric_limits<float>::infinity();
      for (size_t r : {size_t{0}, size_t{2}})
        finest = std::min(
            finest, *std::max_element(s.begin() + r * per_row, s.begin() + (r + 1) * per_row));
      for (size_t r : {size_t{1}, size_t{3}})
        for (size_t g = 0; g < per_row; ++g) EXPECT_EQ(s[r * per_row + g], finest) << cs.name;
      // The live rows keep the parameters quantize_weights gave them.
      for (size_t i = 0; i < per_row; ++i) {
        EXPECT_EQ(s[i], q.params.scales[i]) << cs.name;
        EXPECT_EQ(s[2 * per_row + i], q.params.scales[2 * per_row + i]) << cs.name;
      }
      // Within half a bias step (input scale x finest, in output steps) and one output step,
      // as a live row's bias: 0.5 and 3.7 steps here for int8 and int4, where the placeholder
      // scale allowed 25.
      const double slack = 0.5 * ip.scale * finest / op.scale + 1.0;
      const std::vector<int8_t> y = layer->forward(x);
      for (size_t r : {size_t{1}, size_t{3}}) {
        const double want = static_cast<double>(bias[r]) / op.scale + op.zero_point;
        EXPECT_LE(std::fabs(y[r] - want), slack) << cs.name << " row " << r << " got " << int{y[r]};
      }
    }
  }
  // A dead row given a finer scale than that by the caller keeps it.
  QTensor fine = quantize_weights(w.data(), {out, in}, QuantSpec::int8_weights_per_channel());
  fine.params.scales[1] = 1e-4f;
  EXPECT_EQ(QuantizedLinear(fine, bias.data(), ip, op).weights().params.scales[1], 1e-4f);
  // A conv's output channel likewise (weights [out_c][1][1][in_c]).
  const QuantizedConv2d conv(w.data(), static_cast<int32_t>(out), 1, 1, static_cast<int32_t>(in),
                             bias.data(), Conv2dGeometry{}, QuantSpec::int8_weights_per_channel(0),
                             ip, op);
  std::vector<int8_t> y(static_cast<size_t>(out));
  conv.forward(x.data(), 1, 1, 1, y.data());
  const std::vector<float>& cs = conv.weights().params.scales;
  EXPECT_EQ(cs[1], std::min(cs[0], cs[2]));
  EXPECT_EQ(cs[3], cs[1]);
  const double slack = 0.5 * ip.scale * cs[1] / op.scale + 1.0;
  for (size_t r : {size_t{1}, size_t{3}})
    EXPECT_LE(std::fabs(y[r] - (static_cast<double>(bias[r]) / op.scale + op.zero_point)), slack)
        << "conv row " << r;
}

// The same unit quantized ahead of the layer, knowing its input scale (a model file a firmware
// export will run): quantize_weights_for_bias raises the same scale, so the stored weights build
// the layer that min / max weights cannot, and it runs as the layer built from floats.
TEST(QuantizeWeightsForBias, StoredWeightsBuildTheLayerMinMaxOnesCannot) {
  const int64_t out = 4, in = 16;
  std::vector<float> w = randn(static_cast<size_t>(out * in), 0.1f, 45);
  for (int64_t k = 0; k < in; ++k) w[static_cast<size_t>(2 * in + k)] *= 1e-6f;  // channel 2
  const std::vector<float> bias = {0.3f, -0.1f, -0.7f, 0.2f};
  const ActivationParams ip{0.02f, -5}, op{0.04f, 1};
  std::vector<int8_t> x(static_cast<size_t>(in));
  std::mt19937 rng(46);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  for (const QuantSpec& spec : {QuantSpec::int8_weights_per_channel(0), QuantSpec{}}) {
    const bool per_tensor = spec.granularity == Granularity::kPerTensor;
    std::vector<float> wt = w;
    if (per_tensor)
      for (float& v : wt) v *= 1e-6f;
    const Shape shape{out, in};
    EXPECT_THROW(QuantizedLinear(quantize_weights(wt.data(), shape, spec), bias.data(), ip, op),
                 DataError);
    int64_t raised = -1;
    const QTensor q = quantize_weights_for_bias(wt.data(), shape, spec, bias.data(), ip.scale,
                                                RoundMode::kHalfAwayFromZero, &raised);
    EXPECT_EQ(raised, 1);
    const QTensor plain = quantize_weights(wt.data(), shape, spec);
    for (int64_t c = 0; c < out; ++c) {
      const size_t i = per_tensor ? 0 : static_cast<size_t>(c);
      EXPECT_LE(std::fabs(bias[static_cast<size_t>(c)] / (double{ip.scale} * q.params.scales[i])),
                1073741824.0)
          << c;
      if (per_tensor || c == 2) {
        EXPECT_GT(q.params.scales[i], plain.params.scales[i]) << c;
        continue;
      }
      EXPECT_EQ(q.params.scales[i], plain.params.scales[i]) << c;  // the others untouched
      for (int64_t k = 0; k < in; ++k)
        EXPECT_EQ(q.value(c * in + k), plain.value(c * in + k)) << c << "," << k;
    }
    // Each weight within half a step of its (raised) scale: (code - zero point) x scale.
    for (int64_t c = 0; c < out; ++c) {
      const size_t i = per_tensor ? 0 : static_cast<size_t>(c);
      for (int64_t k = 0; k < in; ++k)
        EXPECT_LE(
            std::fabs((q.value(c * in + k) - q.params.zero_points[i]) * double{q.params.scales[i]} -
                      wt[static_cast<size_t>(c * in + k)]),
            0.5001 * q.params.scales[i])
            << c << "," << k;
    }
    const QuantizedLinear stored(q, bias.data(), ip, op);
    const QuantizedLinear from_float(wt.data(), out, in, bias.data(), spec, ip, op);
    EXPECT_EQ(stored.kernel_bias(), from_float.kernel_bias());
    EXPECT_EQ(stored.forward(x), linear_oracle(from_float, x, 1, bias, Activation::kNone));
  }
}

// Per-group int4 weights carry the bias at the row's largest group scale: a dead row's groups
// all get the scale its bias needs, the other rows keep max |w| / 7 per group, and the layer runs
// as the grouped kernel's definition (grouped.hpp) says, with the bias added after the ratios.
TEST(QuantizeWeightsForBias, PerGroupRowsCarryTheirBias) {
  const int64_t out = 3, in = 20, group = 8, groups = 3;
  std::vector<float> w = randn(static_cast<size_t>(out * in), 0.2f, 47);
  for (int64_t k = 0; k < in; ++k) w[static_cast<size_t>(in + k)] *= 1e-7f;  // row 1
  const std::vector<float> bias = {0.4f, -0.8f, 0.1f};
  const ActivationParams ip{0.03f, 2}, op{0.1f, -1};
  const QuantSpec spec = QuantSpec::int4_per_group(group, 1);
  const Shape shape{out, in};
  EXPECT_THROW(QuantizedLinear(quantize_weights(w.data(), shape, spec), bias.data(), ip, op),
               DataError);
  int64_t raised = 0;
  const QTensor q = quantize_weights_for_bias(w.data(), shape, spec, bias.data(), ip.scale,
                                              RoundMode::kHalfAwayFromZero, &raised);
  EXPECT_EQ(raised, 1);
  for (int64_t c = 0; c < out; ++c)
    for (int64_t g = 0; g < groups; ++g) {
      const float s = q.params.scales[static_cast<size_t>(c * groups + g)];
      if (c == 1) {
        EXPECT_EQ(s, q.params.scales[static_cast<size_t>(c * groups)]) << g;
        EXPECT_LE(0.8 / (double{ip.scale} * s), 1073741824.0) << g;
        continue;
      }
      float top = 0.0f;
      for (int64_t k = g * group; k < std::min(in, (g + 1) * group); ++k)
        top = std::max(top, std::fabs(w[static_cast<size_t>(c * in + k)]));
      EXPECT_FLOAT_EQ(s, top / 7.0f) << c << "," << g;
    }
  const QuantizedLinear layer(q, bias.data(), ip, op);
  const QuantizedLinear from_float(w.data(), out, in, bias.data(), spec, ip, op);
  EXPECT_EQ(from_float.weights().params.scales, q.params.scales);
  std::vector<int8_t> x(static_cast<size_t>(in));
  std::mt19937 rng(48);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  EXPECT_EQ(layer.forward(x), grouped_oracle(q, group, x, 1, bias, ip, op));
}

TEST(QuantizeWeightsForBias, RoundsAsAskedAndChecksTheInputScale) {
  // Symmetric per tensor, scale 127 / 127 = 1: 2.5 is a tie.
  const float w[2] = {2.5f, 127.0f}, bias = 0.25f;
  const QuantSpec spec{8, Scheme::kSymmetric, true, Granularity::kPerTensor, 0, 0};
  EXPECT_EQ(quantize_weights_for_bias(w, Shape{1, 2}, spec, &bias, 0.1f).value(0), 3);
  EXPECT_EQ(
      quantize_weights_for_bias(w, Shape{1, 2}, spec, &bias, 0.1f, RoundMode::kHalfToEven).value(0),
      2);
  EXPECT_EQ(quantize_weights_for_bias(w, Shape{1, 2}, spec, nullptr, 0.1f).value(0), 3);
  for (const float s : {0.0f, -1.0f, std::numeric_limits<float>::infinity()})
    EXPECT_THROW(quantize_weights_for_bias(w, Shape{1, 2}, spec, &bias, s), InvalidArgument) << s;
  const float nan_bias = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(quantize_weights_for_bias(w, Shape{1, 2}, spec, &nan_bias, 0.1f), DataError);
  // Layouts whose scales are never raised (per-channel along another axis, affine per-group)
  // reject a non-finite bias too.
  const float w4[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  const float bias2[2] = {0.5f, std::numeric_limits<float>::infinity()};
  const QuantSpec other_axis = QuantSpec::int8_weights_per_channel(1);
  const QuantSpec affine_groups{4, Scheme::kAffine, false, Granularity::kPerGroup, 1, 2};
  for (const QuantSpec& s : {spec, other_axis, affine_groups})
    tq_test::expect_error<DataError>(
        [&] {
          quantize_weights_for_bias(w4, Shape{2, 2}, s, bias2, 0.1f);
        },
        {"quantize_weights_for_bias", "index 1", "inf"});
}

// A per-group row raised for its bias to a scale near FLT_MAX / 7, with a weight at FLT_MAX: that
// weight's code (5 here) would dequantize to infinity, so the raise is refused with a DataError.
// Per-tensor and per-channel raises go through choose_scale_zero_point, whose cap keeps every
// code finite or throws the same class of error.
TEST(QuantizeWeightsForBias, ARaiseThatWouldOverflowAWeightIsAnError) {
  const float big = std::numeric_limits<float>::max();
  const float w[2] = {big, 1.0f};
  const float input_scale = 1e-16f;
  // need = bias / (input_scale * 2^30): about FLT_MAX / 5.
  const float bias = static_cast<float>(static_cast<double>(big) / 5.0 * 1e-16 * 1073741824.0);
  const QuantSpec groups = QuantSpec::int4_per_group(2, 1);
  tq_test::expect_error<DataError>(
      [&] {
        quantize_weights_for_bias(w, Shape{1, 2}, groups, &bias, input_scale);
      },
      {"quantize_weights_for_bias", "dequantizes beyond float32"});
  // The same raise on a row of small weights is fine, and every value stays finite.
  const float small[2] = {1.0f, -2.0f};
  const QTensor q = quantize_weights_for_bias(small, Shape{1, 2}, groups, &bias, input_scale);
  for (const float v : dequantize(q)) EXPECT_TRUE(std::isfinite(v));
  EXPECT_GE(static_cast<double>(q.params.scales[0]), static_cast<double>(big) / 5.0);
  // Per channel, a bias whose scale would need a 3-bit symmetric range past (1 - 2^-3) FLT_MAX
  // has no float32 scale: the error names the bias, not the widened range it would have taken.
  QuantSpec sym3 = QuantSpec::int8_weights_per_channel(0);
  sym3.bits = 3;
  sym3.narrow_range = false;
  const float bias3 = static_cast<float>(static_cast<double>(big) / 3.1 * 1e-16 * 1073741824.0);
  tq_test::expect_error<DataError>(
      [&] {
        quantize_weights_for_bias(small, Shape{1, 2}, sym3, &bias3, input_scale);
      },
      {"quantize_weights_for_bias", "needs a weight scale of at least", "beyond float32"});
}

TEST(QuantizedConv2d, RaisesWeightScalesABiasDoesNotFit) {
  const int32_t oc = 3, k = 3, ic = 2, h = 5, wd = 5;
  std::vector<float> w = randn(static_cast<size_t>(oc * k * k * ic), 0.2f, 43);
  for (int i = 0; i < k * k * ic; ++i) w[static_cast<size_t>(2 * k * k * ic + i)] *= 1e-6f;
  const std::vector<float> bias = {0.2f, -0.1f, -0.9f};
  const ActivationParams ip{0.03f, 0}, op{0.1f, 0};
  Conv2dGeometry geo;
  geo.padding = Padding::kValid;
  const QuantizedConv2d conv(w.data(), oc, k, k, ic, bias.data(), geo,
                             QuantSpec::int8_weights_per_channel(0), ip, op);
  EXPECT_LE(0.9 / (double{ip.scale} * conv.weights().params.scales[2]), 1073741824.0);
  std::vector<int8_t> x(static_cast<size_t>(h * wd * ic));
  std::mt19937 rng(44);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  int32_t oh = 0, ow = 0;
  conv.output_size(h, wd, &oh, &ow);
  std::vector<int8_t> y(static_cast<size_t>(oh * ow * oc));
  conv.forward(x.data(), 1, h, wd, y.data());
  for (int oy = 0; oy < oh; ++oy)
    for (int ox = 0; ox < ow; ++ox)
      for (int c = 0; c < oc; ++c) {
        double acc = bias[static_cast<size_t>(c)];
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx)
            for (int ci = 0; ci < ic; ++ci)
              acc += double{w[static_cast<size_t>(((c * k + ky) * k + kx) * ic + ci)]} * ip.scale *
                     x[static_cast<size_t>(((oy + ky) * wd + ox + kx) * ic + ci)];
        const double code = std::clamp(std::round(acc / op.scale), -128.0, 127.0);
        EXPECT_LE(std::fabs(y[static_cast<size_t>((oy * ow + ox) * oc + c)] - code), 2.0)
            << oy << "," << ox << "," << c;
      }
}

TEST(Layers, BadArguments) {
  const std::vector<float> w(12, 0.5f);
  const ActivationParams ok{0.1f, 0};
  auto expect_msg = [](auto fn, const char* text) {
    try {
      fn();
      ADD_FAILURE() << "no exception, expected: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_msg(
      [&] {
        QuantizedLinear(w.data(), 3, 4, nullptr, QuantSpec{}, {0.0f, 0}, ok);
      },
      "activation scale = 0");
  expect_msg(
      [&] {
        QuantizedLinear(w.data(), 3, 4, nullptr, QuantSpec{}, ok, {0.1f, 300});
      },
      "zero point = 300");
  expect_msg(
      [&] {
        QuantizedLinear(w.data(), 3, 4, nullptr, QuantSpec{}, {0.1f, -129}, ok);
      },
      "activation zero point = -129 is outside [-128, 127]");
  QuantSpec affine_pc = QuantSpec::int8_weights_per_channel(0);
  affine_pc.scheme = Scheme::kAffine;
  expect_msg([&] { QuantizedLinear(w.data(), 3, 4, nullptr, affine_pc, ok, ok); },
             "must be symmetric");
  expect_msg([&] { QuantizedLinear(w.data(), 0, 4, nullptr, QuantSpec{}, ok, ok); },
             "must be positive");
  const QuantizedLinear l(w.data(), 3, 4, nullptr, QuantSpec::int8_weights_per_channel(0), ok, ok);
  expect_msg([&] { l.forward(std::vector<int8_t>(5)); }, "not a positive multiple");
  Conv2dGeometry g;
  g.groups = 3;
  expect_msg(
      [&] {
        QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, g, QuantSpec::int8_weights_per_channel(0),
                        ok, ok);
      },
      "groups = 3");
  g.groups = 1;
  g.padding = Padding::kValid;
  const QuantizedConv2d c(w.data(), 3, 2, 2, 1, nullptr, g, QuantSpec::int8_weights_per_channel(0),
                          ok, ok);
  int32_t oh, ow;
  expect_msg([&] { c.output_size(1, 5, &oh, &ow); }, "empty output");
  // A runtime status surfaces as KernelError naming the status.
  try {
    check_kernel_status(rt::Status::kBadShift, "op", "shift[2] = 40");
    FAIL();
  } catch (const KernelError& e) {
    EXPECT_EQ(e.status(), rt::Status::kBadShift);
    EXPECT_NE(std::string(e.what()).find("bad_shift (shift[2] = 40)"), std::string::npos);
  }
}

// A bias code below INT32_MIN is refused like one above INT32_MAX (E86 with the sign flipped).
TEST(QuantizedLinear, RejectsANegativeBiasBeyondInt32) {
  const std::vector<float> w{1e-6f, -1e-6f};
  QuantSpec spec;
  const QTensor q = quantize_weights(w.data(), {1, 2}, spec);
  const std::vector<float> bias{-100.0f};
  try {
    QuantizedLinear(q, bias.data(), {0.5f, 0}, {1.0f, 0});
    ADD_FAILURE() << "no exception";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("QuantizedLinear: bias[0] = -100 does not fit int32"),
              std::string::npos)
        << e.what();
  }
}

// The clamp bounds of a fused activation, in output codes: relu starts at the zero point (real
// 0), relu6 ends at round(6 / scale) + zero point (real 6), both saturating to int8.
TEST(Layers, ActivationRangeCountsFromTheZeroPoint) {
  int32_t lo = 0, hi = 0;
  activation_range(Activation::kRelu6, {0.05f, -100}, &lo, &hi);
  EXPECT_EQ(lo, -100);
  EXPECT_EQ(hi, 20);  // 6 / 0.05 = 120 codes above -100
  activation_range(Activation::kRelu6, {0.1f, 10}, &lo, &hi);
  EXPECT_EQ(lo, 10);
  EXPECT_EQ(hi, 70);
  activation_range(Activation::kRelu6, {0.01f, 0}, &lo, &hi);
  EXPECT_EQ(hi, 127);  // 600 saturates
  activation_range(Activation::kRelu, {0.05f, -100}, &lo, &hi);
  EXPECT_EQ(lo, -100);
  EXPECT_EQ(hi, 127);
  activation_range(Activation::kNone, {0.05f, -100}, &lo, &hi);
  EXPECT_EQ(lo, -128);
  EXPECT_EQ(hi, 127);
}

TEST(Layers, QuantizeActivationSaturatesInfinitiesAndRejectsNaN) {
  const ActivationParams p{0.5f, 5};
  EXPECT_EQ(quantize_activation(1.25f, p), 8);  // 2.5 rounds away from zero to 3
  EXPECT_EQ(quantize_activation(std::numeric_limits<float>::infinity(), p), 127);
  EXPECT_EQ(quantize_activation(-std::numeric_limits<float>::infinity(), p), -128);
  // NaN has no int8 value: converting it is undefined behaviour, so it must be refused.
  EXPECT_THROW(quantize_activation(std::numeric_limits<float>::quiet_NaN(), p), DataError);
}

// The whole message of the E that expr throws.
#define EXPECT_MESSAGE(E, expr, text) EXPECT_EQ(tq_test::thrown_message<E>([&] { expr; }), text)

TEST(Layers, QuantizeActivationRejectsParametersWithoutAScale) {
  // Scale 0 made 0 / 0 a NaN, whose conversion to int8 is undefined behaviour.
  EXPECT_MESSAGE(InvalidArgument, quantize_activation(0.0f, {0.0f, 0}),
                 "quantize_activation: activation scale = 0 must be finite and > 0");
  EXPECT_MESSAGE(InvalidArgument, quantize_activation(1.0f, {0.1f, 200}),
                 "quantize_activation: activation zero point = 200 is outside [-128, 127]");
}

// The vector form against the scalar one (std::round of the double quotient) on values chosen to
// sit on and beside rounding ties, at the saturation edges, and far outside them.
TEST(Layers, QuantizeActivationsMatchesTheScalarFunction) {
  std::mt19937 rng(7);
  std::vector<float> x;
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::max(),
                  -std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                  1e30f, -1e30f})
    x.push_back(v);
  for (const float scale : {0.25f, 0.1f, 1.0f / 255.0f, 3e-3f, 7.0f}) {
    for (int k = -300; k <= 300; ++k) {  // ties k + 0.5 (exact for scale 0.25) and their neighbours
      const float tie = (static_cast<float>(k) + 0.5f) * scale;
      x.push_back(tie);
      x.push_back(std::nextafter(tie, inf));
      x.push_back(std::nextafter(tie, -inf));
    }
    std::uniform_real_distribution<float> wide(-600.0f * scale, 600.0f * scale);
    for (int i = 0; i < 2000; ++i) x.push_back(wide(rng));
  }
  std::vector<int8_t> out(x.size());
  size_t checked = 0;
  for (const float scale : {0.25f, 0.1f, 1.0f / 255.0f, 3e-3f, 7.0f}) {
    for (const int32_t zp : {-128, -100, -1, 0, 1, 37, 127}) {
      const ActivationParams p{scale, zp};
      quantize_activations(x.data(), static_cast<int64_t>(x.size()), p, out.data());
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(out[i], quantize_activation(x[i], p))
            << "x = " << x[i] << " scale " << scale << " zero point " << zp;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 35 * x.size());
  // The tie 2.5 (x = 0.625 at scale 0.25) goes away from zero, as TFLite rounds.
  const float ties[2] = {0.625f, -0.625f};
  int8_t q[2] = {0, 0};
  quantize_activations(ties, 2, {0.25f, 0}, q);
  EXPECT_EQ(q[0], 3);
  EXPECT_EQ(q[1], -3);
}

TEST(Layers, QuantizeActivationsRejectsNaNBeforeWritingAndBadArguments) {
  const float x[5] = {1.0f, 2.0f, 3.0f, std::numeric_limits<float>::quiet_NaN(), 5.0f};
  int8_t out[5] = {9, 9, 9, 9, 9};
  EXPECT_MESSAGE(DataError, quantize_activations(x, 5, {0.1f, 0}, out),
                 "quantize_activations: x[3] = nan is not a number");
  for (const int8_t v : out) EXPECT_EQ(v, 9);  // nothing written
  quantize_activations(x, 3, {0.1f, 0}, out);  // the prefix before the NaN is fine
  EXPECT_EQ(out[2], 30);
  EXPECT_EQ(out[3], 9);
  EXPECT_MESSAGE(InvalidArgument, quantize_activations(x, -1, {0.1f, 0}, out),
                 "quantize_activations: n = -1 is negative");
  EXPECT_MESSAGE(InvalidArgument, quantize_activations(nullptr, 2, {0.1f, 0}, out),
                 "quantize_activations: x or out is null for n = 2");
  EXPECT_MESSAGE(InvalidArgument, quantize_activations(x, 2, {0.1f, 0}, nullptr),
                 "quantize_activations: x or out is null for n = 2");
  EXPECT_MESSAGE(InvalidArgument, quantize_activations(x, 2, {-1.0f, 0}, out),
                 "quantize_activations: activation scale = -1 must be finite and > 0");
  quantize_activations(nullptr, 0, {0.1f, 0}, nullptr);  // nothing to do
}

TEST(QuantizedLinear, RejectsABatchWhoseSizeOverflows) {
  // batch * in_features wraps int64 to a negative number: the batch must still be rejected, not
  // truncated to int32 (2^62 + 4 would run as batch 4 over buffers sized for 1).
  const std::vector<float> w(4, 0.5f);
  const QuantizedLinear l(w.data(), 2, 2, nullptr, QuantSpec::int8_weights_per_channel(0),
                          {0.1f, 0}, {0.1f, 0});
  std::vector<int8_t> x(64, 1), y(64, 0);
  EXPECT_THROW(l.forward(x.data(), (int64_t{1} << 62) + 4, y.data()), ShapeError);
  EXPECT_EQ(y, std::vector<int8_t>(64, 0));
}

TEST(GroupedKernel, HandComputedAndBadArguments) {
  const int8_t x[4] = {1, 2, 3, 4};
  const uint8_t w[2] = {0x21, 0x43};    // 1, 2, 3, 4
  const uint8_t ratio[2] = {255, 127};  // r = 256 (the row's largest scale) and 128 (half)
  const int32_t mult = 1 << 30, shift = 0;
  rt::Requant rq;
  rq.multiplier = &mult;
  rq.shift = &shift;
  rt::GroupScales gs{2, ratio};
  const rt::FcDims dims{1, 4, 1};
  int8_t y = 99;
  const rt::Context ctx;
  // Group 0: 1*1 + 2*2 = 5 at ratio 1; group 1: 3*3 + 4*4 = 25 at ratio 1/2. t = 5 + 12.5 = 17.5,
  // rounded half up to 18; the multiplier 2^30 with shift 0 is 0.5, so the output is 9.
  ASSERT_EQ(rt::fully_connected_s4_grouped(ctx, rt::FcParams{}, rq, dims, gs, x, w, nullptr, &y),
            rt::Status::kOk);
  EXPECT_EQ(y, 9);
  // The same through int8 weights.
  const int8_t w8[4] = {1, 2, 3, 4};
  y = 0;
  ASSERT_EQ(rt::fully_connected_s8_grouped(ctx, rt::FcParams{}, rq, dims, gs, x, w8, nullptr, &y),
            rt::Status::kOk);
  EXPECT_EQ(y, 9);
  y = 99;
  gs.group_size = 0;
  EXPECT_EQ(rt::fully_connected_s4_grouped(ctx, rt::FcParams{}, rq, dims, gs, x, w, nullptr, &y),
            rt::Status::kBadArgument);
  gs.group_size = 2;
  EXPECT_EQ(
      rt::fully_connected_s4_grouped(ctx, rt::FcParams{}, rq, dims, gs, x, nullptr, nullptr, &y),
      rt::Status::kNullPointer);
  rt::FcParams bad;
  bad.act_min = 5;
  bad.act_max = 4;
  EXPECT_EQ(rt::fully_connected_s4_grouped(ctx, bad, rq, dims, gs, x, w, nullptr, &y),
            rt::Status::kBadActivationRange);
  gs.ratio = nullptr;
  EXPECT_EQ(rt::fully_connected_s4_grouped(ctx, rt::FcParams{}, rq, dims, gs, x, w, nullptr, &y),
            rt::Status::kNullPointer);
  EXPECT_EQ(y, 99);
}

// A per-group row whose bias needs a scale past FLT_MAX: |bias| / (input scale x 2^30) =
// 1e30 / (1e-30 x 2^30), about 9e50, has no float32 scale at all.
TEST(QuantizeWeightsForBias, PerGroupBiasBeyondFloat32IsAnError) {
  const float w[2] = {1.0f, -2.0f};
  const float bias = 1e30f;
  tq_test::expect_error<DataError>(
      [&] {
        quantize_weights_for_bias(w, Shape{1, 2}, QuantSpec::int4_per_group(2, 1), &bias, 1e-30f);
      },
      {"quantize_weights_for_bias", "bias 1e+30 needs a weight scale",
       "at input scale 1e-30, beyond float32"});
}

TEST(QuantizedLinear, RejectsNonMatrixWeights) {
  const float w[4] = {1.0f, -1.0f, 0.5f, 0.25f};
  const ActivationParams ok{0.1f, 0};
  const QTensor q = quantize_weights(w, Shape{4}, QuantSpec{});
  tq_test::expect_error<ShapeError>([&] { QuantizedLinear(q, nullptr, ok, ok); },
                                    {"QuantizedLinear", "must be 2-D [out, in]", "shape [4]"});
}

// The shape is checked before the parameters or data: an empty matrix, and one of 2^32 weights
// (past the kernels' int32 element count), need no data to be refused.
TEST(QuantizedLinear, RejectsEmptyOrOversizedWeightShapes) {
  const ActivationParams ok{0.1f, 0};
  for (const Shape& s : {Shape{0, 4}, Shape{65536, 65536}}) {
    QTensor q;
    q.shape = s;
    tq_test::expect_error<ShapeError>(
        [&] { QuantizedLinear(q, nullptr, ok, ok); },
        {"QuantizedLinear: weight shape " + to_string(s), "empty or exceeds int32 kernel limits"});
  }
}

TEST(QuantizedLinear, RejectsGroupsOrChannelsOnTheWrongAxis) {
  const std::vector<float> w(8, 0.5f);
  const ActivationParams ok{0.1f, 0};
  // Groups of 2 along the output axis of a [4, 2] matrix.
  const QTensor grouped = quantize_weights(w.data(), Shape{4, 2}, QuantSpec::int4_per_group(2, 0));
  tq_test::expect_error<InvalidArgument>(
      [&] { QuantizedLinear(grouped, nullptr, ok, ok); },
      {"QuantizedLinear", "per-group weights must be grouped along the input axis (1), got 0"});
  // One scale per input column.
  const QTensor channels =
      quantize_weights(w.data(), Shape{4, 2}, QuantSpec::int8_weights_per_channel(1));
  tq_test::expect_error<InvalidArgument>(
      [&] { QuantizedLinear(channels, nullptr, ok, ok); },
      {"QuantizedLinear", "per-channel weights must use the output axis (0), got 1"});
}

TEST(QuantizedLinear, ForwardRejectsNullBuffers) {
  const std::vector<float> w(4, 0.5f);
  const QuantizedLinear l(w.data(), 2, 2, nullptr, QuantSpec::int8_weights_per_channel(0),
                          {0.1f, 0}, {0.1f, 0});
  int8_t x[2] = {1, 2}, y[2] = {0, 0};
  tq_test::expect_error<InvalidArgument>([&] { l.forward(nullptr, 1, y); },
                                         {"QuantizedLinear::forward", "input or output is null"});
  tq_test::expect_error<InvalidArgument>([&] { l.forward(x, 1, nullptr); },
                                         {"QuantizedLinear::forward", "input or output is null"});
}

TEST(QuantizedConv2d, RejectsBadShapesGeometryAndSpecs) {
  const std::vector<float> w(16, 0.5f);
  const ActivationParams ok{0.1f, 0};
  const QuantSpec pc = QuantSpec::int8_weights_per_channel(0);
  const Conv2dGeometry geo;
  tq_test::expect_error<ShapeError>(
      [&] { QuantizedConv2d(w.data(), 0, 1, 1, 4, nullptr, geo, pc, ok, ok); },
      {"QuantizedConv2d", "out_c 0, kernel 1x1, in_c 4 must all be >= 1"});
  tq_test::expect_error<ShapeError>(
      [&] { QuantizedConv2d(w.data(), 2, 1, 2, 0, nullptr, geo, pc, ok, ok); },
      {"QuantizedConv2d", "out_c 2, kernel 1x2, in_c 0 must all be >= 1"});
  Conv2dGeometry bad = geo;
  bad.stride_h = 0;
  tq_test::expect_error<InvalidArgument>(
      [&] { QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, bad, pc, ok, ok); },
      {"QuantizedConv2d", "stride 0x1 and dilation 1x1 must be >= 1"});
  bad = geo;
  bad.dilation_w = -2;
  tq_test::expect_error<InvalidArgument>(
      [&] { QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, bad, pc, ok, ok); },
      {"QuantizedConv2d", "stride 1x1 and dilation 1x-2 must be >= 1"});
  QuantSpec six = pc;
  six.bits = 6;
  tq_test::expect_error<InvalidArgument>(
      [&] { QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, geo, six, ok, ok); },
      {"QuantizedConv2d", "weight bits = 6 (the conv kernels take 8 or 4)"});
  tq_test::expect_error<InvalidArgument>(
      [&] {
        QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, geo, QuantSpec::int4_per_group(2), ok, ok);
      },
      {"QuantizedConv2d", "per-group weights are not supported for convolution"});
  // QuantSpec{} is affine per-tensor.
  tq_test::expect_error<InvalidArgument>(
      [&] { QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, geo, QuantSpec{}, ok, ok); },
      {"QuantizedConv2d", "conv weights must be symmetric (zero point 0)"});
}

TEST(QuantizedConv2d, ForwardRejectsNullBuffers) {
  const std::vector<float> w(8, 0.5f);
  const QuantizedConv2d c(w.data(), 2, 1, 1, 4, nullptr, Conv2dGeometry{},
                          QuantSpec::int8_weights_per_channel(0), {0.1f, 0}, {0.1f, 0});
  std::vector<int8_t> x(4, 1), y(2, 0);
  tq_test::expect_error<InvalidArgument>([&] { c.forward(nullptr, 1, 1, 1, y.data()); },
                                         {"QuantizedConv2d::forward", "input or output is null"});
  tq_test::expect_error<InvalidArgument>([&] { c.forward(x.data(), 1, 1, 1, nullptr); },
                                         {"QuantizedConv2d::forward", "input or output is null"});
}

// bytes(): the stored weights plus an int32 bias, multiplier and shift per output channel (the
// conv layer keeps one triple per channel even for per-tensor weights).
TEST(QuantizedConv2d, BytesCountsWeightsAndPerChannelInt32s) {
  const std::vector<float> w(3 * 2 * 2 * 5, 0.5f);  // OHWI [3][2][2][5]: 60 weights
  const ActivationParams ok{0.1f, 0};
  const Conv2dGeometry geo;
  const QuantSpec pc = QuantSpec::int8_weights_per_channel(0);
  QuantSpec pt = pc;
  pt.granularity = Granularity::kPerTensor;
  QuantSpec s4 = pc;
  s4.bits = 4;
  // int8: 60 bytes + 4 x (3 + 3 + 3).
  EXPECT_EQ(QuantizedConv2d(w.data(), 3, 2, 2, 5, nullptr, geo, pc, ok, ok).bytes(), 60 + 36);
  EXPECT_EQ(QuantizedConv2d(w.data(), 3, 2, 2, 5, nullptr, geo, pt, ok, ok).bytes(), 60 + 36);
  // int4: 60 nibbles in 30 bytes.
  EXPECT_EQ(QuantizedConv2d(w.data(), 3, 2, 2, 5, nullptr, geo, s4, ok, ok).bytes(), 30 + 36);
}

// TFLite computes the ReLU6 clamp as zero_point + round(6.0f / scale) with a float quotient.
// For the parameters of [-6, 6] (scale 12 / 255 = 0.0470588244f, zero point -1) that quotient is
// 127.5f, which rounds to 128: the clamp is 127. In double it is 127.49999..., which would round
// to 127 and clamp at 126. [0, 12] has the same scale at zero point -128: clamp 0, not -1.
TEST(Layers, Relu6ClampIsTfLitesFloatQuotient) {
  const ActivationParams sym = ActivationParams::from_range(-6.0f, 6.0f);
  ASSERT_EQ(sym.scale, 12.0f / 255.0f);
  ASSERT_EQ(sym.zero_point, -1);
  ASSERT_EQ(6.0f / sym.scale, 127.5f);
  ASSERT_LT(6.0 / static_cast<double>(sym.scale), 127.5);
  int32_t lo = 0, hi = 0;
  activation_range(Activation::kRelu6, sym, &lo, &hi);
  EXPECT_EQ(lo, -1);
  EXPECT_EQ(hi, 127);
  const ActivationParams pos = ActivationParams::from_range(0.0f, 12.0f);
  ASSERT_EQ(pos.zero_point, -128);
  activation_range(Activation::kRelu6, pos, &lo, &hi);
  EXPECT_EQ(lo, -128);
  EXPECT_EQ(hi, 0);
}

TEST(Layers, RejectUnknownActivationAndPadding) {
  int32_t lo = 0, hi = 0;
  tq_test::expect_error<InvalidArgument>(
      [&] {
        activation_range(static_cast<Activation>(7), {0.1f, 0}, &lo, &hi);
      },
      {"activation_range: unknown activation 7"});
  const std::vector<float> w(8, 0.5f);
  const ActivationParams ok{0.1f, 0};
  tq_test::expect_error<InvalidArgument>(
      [&] {
        QuantizedLinear(w.data(), 2, 4, nullptr, QuantSpec::int8_weights_per_channel(0), ok, ok,
                        static_cast<Activation>(7));
      },
      {"activation_range: unknown activation 7"});
  Conv2dGeometry geo;
  geo.padding = static_cast<Padding>(5);
  tq_test::expect_error<InvalidArgument>(
      [&] {
        QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, geo, QuantSpec::int8_weights_per_channel(0),
                        ok, ok);
      },
      {"QuantizedConv2d: unknown padding 5"});
}

// Quantized weights whose byte count disagrees with their shape are refused before any code is
// read (a short buffer used to be read past its end).
TEST(QuantizedLinear, RejectsWeightDataOfTheWrongLength) {
  const std::vector<float> w(15, 0.5f);
  const ActivationParams in{0.05f, 3}, out{0.1f, -2};
  for (const int bits : {8, 4}) {
    QuantSpec spec = QuantSpec::int8_weights_per_channel(0);
    spec.bits = bits;
    QTensor q = quantize_weights(w.data(), {3, 5}, spec);
    for (const size_t size : {size_t{2}, q.data.size() + 1}) {
      QTensor bad = q;
      bad.data.resize(size);
      tq_test::expect_error<ShapeError>(
          [&] { QuantizedLinear(bad, nullptr, in, out); },
          {"QuantizedLinear weights: QTensor holds " + std::to_string(size) + " bytes"});
    }
  }
}

// Errors of the float weights themselves name the layer.
TEST(Layers, WeightErrorsNameTheLayer) {
  std::vector<float> w(8, 0.5f);
  const ActivationParams ok{0.1f, 0};
  const QuantSpec pc = QuantSpec::int8_weights_per_channel(0);
  w[4] = std::numeric_limits<float>::quiet_NaN();
  tq_test::expect_error<DataError>(
      [&] { QuantizedLinear(w.data(), 2, 4, nullptr, pc, ok, ok); },
      {"QuantizedLinear weights: ", "non-finite value nan at index 4"});
  std::fill(w.begin(), w.end(), 0.0f);
  tq_test::expect_error<DataError>(
      [&] { QuantizedConv2d(w.data(), 2, 1, 1, 4, nullptr, Conv2dGeometry{}, pc, ok, ok); },
      {"QuantizedConv2d weights: ", "zero range"});
}

// A real multiplier above 1 shifts the int32 accumulator left before the multiply, and wraps
// past INT32_MAX >> shift (as CMSIS-NN does). Weights {1, 1} at scale 1/127, input scale 1,
// output scale 1e-30: the multiplier saturates at shift 30, where accumulators above 1 wrap
// (an input of 1 gave -128); they reach 2 * 127 * 128 = 32512. Refused; a multiplier of 8 is
// fine, and its outputs saturate as the arithmetic says.
TEST(Layers, RefuseAnOutputScaleWhoseShiftWouldWrapTheAccumulator) {
  const std::vector<float> w = {1.0f, 1.0f};
  const ActivationParams in{1.0f, 0};
  const QuantSpec pc = QuantSpec::int8_weights_per_channel(0);
  tq_test::expect_error<InvalidArgument>(
      [&] {
        QuantizedLinear(w.data(), 1, 2, nullptr, pc, in, {1e-30f, 0});
      },
      {"QuantizedLinear: output scale 1e-30 is too fine for output channel 0",
       "shifts accumulators left by 30", "up to 32512", "at most 1 fit"});
  tq_test::expect_error<InvalidArgument>(
      [&] {
        QuantizedConv2d(w.data(), 1, 1, 1, 2, nullptr, Conv2dGeometry{}, pc, in, {1e-30f, 0});
      },
      {"QuantizedConv2d: output scale 1e-30 is too fine for output channel 0"});
  // Weight codes 127 (scale 1/127); output scale 1 / (127 * 8): multiplier 8, shift 4
  // (0.5 * 2^4). Accumulators reach 2 * 127 * 128 = 32512, far below 2^31 >> 4.
  const QuantizedLinear fine(w.data(), 1, 2, nullptr, pc, in, {1.0f / (127.0f * 8.0f), 0});
  EXPECT_EQ(fine.shifts()[0], 4);
  EXPECT_EQ(fine.forward(std::vector<int8_t>{0, 0}), (std::vector<int8_t>{0}));
  EXPECT_EQ(fine.forward(std::vector<int8_t>{1, 0}), (std::vector<int8_t>{127}));  // 8 * 127
  EXPECT_EQ(fine.forward(std::vector<int8_t>{-1, 0}), (std::vector<int8_t>{-128}));
}
