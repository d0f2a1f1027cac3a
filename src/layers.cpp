#include "tinyquant/layers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "detail/check.hpp"
#include "detail/hot_clones.hpp"
#include "tinyquant/rt/grouped.hpp"

// quantize_activations' NaN check and rounding rely on IEEE arithmetic.
#if defined(__FAST_MATH__)
#error "src/layers.cpp must not be compiled with -ffast-math"
#endif

namespace tinyquant {

using detail::fail;

ActivationParams ActivationParams::from_range(float min, float max) {
  const ScaleZeroPoint sz = choose_scale_zero_point(min, max, QuantSpec::int8_activations());
  return ActivationParams{sz.scale, sz.zero_point};
}

void ActivationParams::validate(const char* what) const {
  if (!std::isfinite(scale) || !(scale > 0.0f))
    fail<InvalidArgument>("{}: activation scale = {} must be finite and > 0", what, scale);
  if (zero_point < -128 || zero_point > 127)
    fail<InvalidArgument>("{}: activation zero point = {} is outside [-128, 127]", what,
                          zero_point);
}

void activation_range(Activation act, const ActivationParams& out, int32_t* act_min,
                      int32_t* act_max) {
  if (act != Activation::kNone && act != Activation::kRelu && act != Activation::kRelu6)
    fail<InvalidArgument>("activation_range: unknown activation {}", static_cast<int>(act));
  *act_min = -128;
  *act_max = 127;
  if (act == Activation::kRelu || act == Activation::kRelu6)
    *act_min = std::max(-128, out.zero_point);
  if (act == Activation::kRelu6) {
    // 6 / scale in float, as TFLite's CalculateActivationRangeQuantized computes it: the double
    // quotient can round to the other side of a half (6 / 0.0470588244 is 127.4999... in double
    // and 127.5 in float), and the clamp must be the one the converted model runs.
    const float steps = 6.0f / out.scale;
    const double top = std::round(static_cast<double>(steps)) + out.zero_point;
    *act_max = static_cast<int32_t>(std::clamp(top, -128.0, 127.0));
  }
}

int8_t quantize_activation(float x, const ActivationParams& p) {
  p.validate("quantize_activation");  // a zero scale would make 0 / 0 a NaN to convert
  if (std::isnan(x)) fail<DataError>("quantize_activation: x = {} is not a number", x);
  const double q = std::round(static_cast<double>(x) / static_cast<double>(p.scale)) + p.zero_point;
  return static_cast<int8_t>(std::clamp(q, -128.0, 127.0));
}

namespace {

// 1 if any of x[0, n) is NaN (Inf is fine: it saturates).
TINYQUANT_HOT_CLONES uint32_t any_nan(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>(x[i] != x[i]);
  return bad;
}

// clamp(round(x / scale) + zp, -128, 127) per element, round half away from zero. The quotient's
// magnitude is first limited to 512, which cannot change a result that saturates (zp lies in
// [-128, 127]) and keeps the conversion in range (NaN would become +-512). Then with
// t = trunc(2v), exact since doubling is, round(v) = (t + sign(t)) / 2 in integer division: for
// 2v in [2k + 1, 2k + 2) (v in [k + 0.5, k + 1), k >= 0) that is k + 1, for 2v in [2k, 2k + 1)
// it is k, and the negative side mirrors it. One conversion, no compare feeding a branch, so
// the loop vectorises.
TINYQUANT_HOT_CLONES void quantize_activations_loop(const float* x, int64_t n, double scale,
                                                    int32_t zp, int8_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]) / scale;
    const double a = std::fabs(v);
    const double c = std::copysign(a < 512.0 ? a : 512.0, v);
    const auto t = static_cast<int32_t>(c + c);
    int32_t q = (t + static_cast<int32_t>(t > 0) - static_cast<int32_t>(t < 0)) / 2 + zp;
    q = q < -128 ? -128 : q;
    out[i] = static_cast<int8_t>(q > 127 ? 127 : q);
  }
}

}  // namespace

void quantize_activations(const float* x, int64_t n, const ActivationParams& p, int8_t* out) {
  constexpr const char* kWhat = "quantize_activations";
  p.validate(kWhat);
  if (n < 0) fail<InvalidArgument>("{}: n = {} is negative", kWhat, n);
  if (n > 0 && (x == nullptr || out == nullptr))
    fail<InvalidArgument>("{}: x or out is null for n = {}", kWhat, n);
  if (any_nan(x, n) != 0) {
    int64_t i = 0;
    while (!std::isnan(x[i])) ++i;
    fail<DataError>("{}: x[{}] = {} is not a number", kWhat, i, x[i]);
  }
  quantize_activations_loop(x, n, static_cast<double>(p.scale), p.zero_point, out);
}

void check_kernel_status(rt::Status st, const char* op, const char* detail) {
  if (st != rt::Status::kOk)
    throw KernelError(st, fmt::format("{}: {} ({})", op, rt::status_name(st), detail));
}

namespace {

// Per output channel, the multiplier and shift of input_scale * channel_scales[c] / output_scale
// (one channel scale for per-tensor weights), by the runtime's own init-time function, so a
// firmware that computes them from shipped float scales gets the same pairs.
void to_multipliers(float input_scale, const std::vector<float>& channel_scales, bool per_channel,
                    float output_scale, size_t channels, std::vector<int32_t>* mult,
                    std::vector<int32_t>* shift, const char* what) {
  mult->resize(channels);
  shift->resize(channels);
  const rt::Status st =
      rt::multipliers_from_scales(input_scale, channel_scales.data(), per_channel, output_scale,
                                  static_cast<int32_t>(channels), mult->data(), shift->data());
  if (st != rt::Status::kOk)
    fail<InvalidArgument>(
        "{}: no requantization multipliers for input scale {}, output scale {}: {}", what,
        input_scale, output_scale, rt::status_name(st));
}

// A real multiplier above 1 makes the kernels shift the accumulator left before the fixed-point
// multiply, in int32 as CMSIS-NN and TFLite Micro do: an accumulator past INT32_MAX >> shift
// wraps to the other sign. Throws InvalidArgument when a channel can reach one: |acc| is at most
// sum_k |w + filter_offset| * max|x - input zero point| + |bias| (+ one per group for grouped
// rows' rounding). Such a layer saturates nearly every output anyway (its multiplier is at
// least 2^(shift - 1)); it comes from an output scale far finer than the input's.
void check_left_shift_headroom(const int8_t* codes, int64_t rows, int64_t cols,
                               int32_t filter_offset, int32_t input_zero_point,
                               const std::vector<int32_t>& bias, const std::vector<int32_t>& shifts,
                               int64_t groups, float output_scale, const char* what) {
  const int64_t x_max = std::max(128 + int64_t{input_zero_point}, 127 - int64_t{input_zero_point});
  for (int64_t c = 0; c < rows; ++c) {
    const int32_t shift = shifts[static_cast<size_t>(c)];
    if (shift <= 0) continue;
    int64_t w_sum = 0;
    for (int64_t k = 0; k < cols; ++k)
      w_sum += std::abs(int64_t{codes[c * cols + k]} + filter_offset);
    const int64_t b = bias.empty() ? 0 : std::abs(int64_t{bias[static_cast<size_t>(c)]});
    const int64_t bound = w_sum * x_max + b + groups;
    const int64_t room = int64_t{INT32_MAX} >> shift;
    if (bound > room)
      fail<InvalidArgument>(
          "{}: output scale {} is too fine for output channel {}: its requantization shifts "
          "accumulators left by {}, and accumulators up to {} would pass int32 (at most {} fit) "
          "and wrap, as on Cortex-M; use a coarser output scale",
          what, output_scale, c, shift, bound, room);
  }
}

int32_t quantize_bias(float b, double scale, size_t c, const char* what) {
  const double q = std::round(static_cast<double>(b) / scale);
  if (!std::isfinite(q) || q < INT32_MIN || q > INT32_MAX)
    fail<DataError>(
        "{}: bias[{}] = {} does not fit int32 at scale {} (input scale x weight scale); quantize "
        "the weights knowing the input scale (quantize_weights_for_bias, `tinyquant quantize "
        "--input-scale`) or build the layer from float weights: both raise that weight scale",
        what, c, b, scale);
  return static_cast<int32_t>(q);
}

// The largest bias code a layer built from float weights keeps: 2^30 leaves the int32
// accumulator half its range for the products.
constexpr double kBiasCodeLimit = 1073741824.0;

// Weights quantized as quantize_weights does (min / max ranges), except that a per-tensor or
// per-channel weight scale whose bias code, |bias| / (input scale x weight scale), would pass
// kBiasCodeLimit is raised until it does not. Such a channel's weights are negligible next to its
// bias (a dead unit whose weights decayed, say); they round more coarsely, to zeros at the limit,
// where the layer would otherwise have no int32 bias. TFLite's converter treats these the same.
// Symmetric per-group weights [out][in] grouped along the input axis carry the bias at the row's
// largest group scale (QuantizedLinear::build): a row whose largest group scale is short gets
// every group scale set to the one it needs. Other per-group weights are returned as
// quantize_weights gives them.
QTensor weights_fitting_bias(const float* weights, const Shape& shape, const QuantSpec& spec,
                             const float* bias, int64_t channels, float input_scale,
                             const char* owner, const char* what,
                             RoundMode mode = RoundMode::kHalfAwayFromZero,
                             int64_t* raised = nullptr) {
  if (raised != nullptr) *raised = 0;
  std::vector<float> mins, maxs;
  QuantParams p;
  // Errors of the weights themselves (a NaN, every range [0, 0]) name the caller.
  try {
    ranges_of(weights, shape, spec, &mins, &maxs);
    p = params_from_ranges(spec, shape, mins, maxs);  // params_for's
  } catch (const DataError& e) {
    fail<DataError>("{} weights: {}", owner, e.what());
  }
  // Checked for every layout, raised or not: a NaN bias is bad input whichever path runs.
  if (bias != nullptr) detail::check_finite(bias, channels, what);
  const bool per_tensor = spec.granularity == Granularity::kPerTensor;
  const bool scale_ok = input_scale > 0.0f && std::isfinite(input_scale);
  if (bias != nullptr && scale_ok && spec.granularity == Granularity::kPerGroup &&
      spec.scheme == Scheme::kSymmetric && shape.size() == 2 &&
      normalize_axis(spec.axis, shape, what) == 1) {
    const size_t groups = p.scales.size() / static_cast<size_t>(channels);
    for (size_t c = 0; c < static_cast<size_t>(channels); ++c) {
      float* row = p.scales.data() + c * groups;
      const double need = std::fabs(static_cast<double>(bias[c])) /
                          (static_cast<double>(input_scale) * kBiasCodeLimit);
      if (static_cast<double>(*std::max_element(row, row + groups)) >= need) continue;
      const double s = need * (1.0 + 1e-6);  // the margin covers the rounding to float
      if (!(s <= std::numeric_limits<float>::max()))
        fail<DataError>(
            "{}: bias {} needs a weight scale of at least {} at input scale {}, beyond float32",
            what, bias[c], need, input_scale);
      // The row's largest |w| (from its groups' ranges) must keep a finite dequantized value at
      // the raised scale (weights near FLT_MAX next to a bias that needs a scale near
      // FLT_MAX / qmax would not).
      const float sf = static_cast<float>(s);
      float top = 0.0f;
      for (size_t g = c * groups; g < (c + 1) * groups; ++g)
        top = std::max({top, -mins[g], maxs[g]});
      const float code = std::min(std::round(top / sf), static_cast<float>(spec.qmax()));
      if (!std::isfinite(sf * code))
        fail<DataError>(
            "{}: bias {} needs a weight scale of at least {} at input scale {}, at which the "
            "row's largest weight {} dequantizes beyond float32",
            what, bias[c], need, input_scale, top);
      std::fill(row, row + groups, sf);
      if (raised != nullptr) ++*raised;
    }
    return quantize(weights, shape, p, mode);
  }
  // Per-group weights, per-channel ones along another axis and bad input scales go through as
  // they are: the layer's own checks report the last two.
  if (bias == nullptr || spec.granularity == Granularity::kPerGroup ||
      (!per_tensor && normalize_axis(spec.axis, shape, what) != 0) || !scale_ok)
    return quantize(weights, shape, p, mode);
  const bool symmetric = spec.scheme == Scheme::kSymmetric;
  for (size_t i = 0; i < p.scales.size(); ++i) {
    double top = 0.0;  // the largest |bias| this scale carries: every channel's per tensor
    if (per_tensor)
      for (int64_t c = 0; c < channels; ++c)
        top = std::max(top, std::fabs(static_cast<double>(bias[c])));
    else
      top = std::fabs(static_cast<double>(bias[i]));
    const double need = top / (static_cast<double>(input_scale) * kBiasCodeLimit);
    if (static_cast<double>(p.scales[i]) >= need) continue;
    // The data's range widened on the positive side until its scale is `need`; the margin covers
    // the rounding of the scale (and of the range's end) to float.
    const double lo = std::min(0.0, static_cast<double>(mins[i]));
    const double span = need * (1.0 + 1e-6) * (symmetric ? spec.qmax() : spec.qmax() - spec.qmin());
    const double hi = std::max(static_cast<double>(maxs[i]), (symmetric ? 0.0 : lo) + span);
    // A widened range near FLT_MAX may have no float32 scale at all (choose_scale_zero_point's
    // DataError names that range, not the bias that asked for it): the same error as too far.
    ScaleZeroPoint sz{0.0f, 0};
    if (hi <= std::numeric_limits<float>::max()) {
      try {
        sz = choose_scale_zero_point(static_cast<float>(lo), static_cast<float>(hi), spec);
      } catch (const DataError&) {
        sz.scale = 0.0f;
      }
    }
    if (!(static_cast<double>(sz.scale) >= need))
      fail<DataError>(
          "{}: bias {} needs a weight scale of at least {} at input scale {}, beyond "
          "float32",
          what, top, need, input_scale);
    p.scales[i] = sz.scale;
    p.zero_points[i] = sz.zero_point;
    if (raised != nullptr) ++*raised;
  }
  return quantize(weights, shape, p, mode);
}

// w's codes, one per weight: nibble-packed ones (bits <= 4) unpacked into *unpacked, one-per-byte
// ones (bits 5..8) read in place.
const int8_t* weight_codes(const QTensor& w, std::vector<int8_t>* unpacked) {
  if (w.bits() > 4) return reinterpret_cast<const int8_t*>(w.data.data());
  *unpacked = unpack_int4(w.data, w.numel());
  return unpacked->data();
}

// A row (output channel) whose weight codes are all 0 outputs its bias alone, requantized at
// input scale x its weight scale. That weight scale is a placeholder (1 for a [0, 0] range,
// quant_params.hpp), which can leave the bias many output steps off: up to 25 at input scale
// 0.05 and output scale 0.001. Such a row of per-channel or per-group weights [rows][cols] takes
// the finest scale of the rows with weights instead (per group: the row's largest) unless its
// own is finer, raised as weights_fitting_bias raises one until its bias code is within
// kBiasCodeLimit, for every group of the row. No weight changes: its codes stay 0 at any scale.
// Layers of dead rows only are left as they are. `codes`: w's codes, one per weight (unpacked
// when nibble-packed).
void retune_dead_rows(QTensor* w, const int8_t* codes, int64_t rows, int64_t cols,
                      const float* bias, float input_scale) {
  QuantParams& p = w->params;
  if (p.spec.granularity == Granularity::kPerTensor) return;
  const size_t per_row = p.scales.size() / static_cast<size_t>(rows);
  std::vector<bool> dead(static_cast<size_t>(rows), true);
  float finest = std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols && dead[static_cast<size_t>(r)]; ++k)
      dead[static_cast<size_t>(r)] = codes[r * cols + k] == 0;
    if (dead[static_cast<size_t>(r)]) continue;
    const float* s = p.scales.data() + static_cast<size_t>(r) * per_row;
    finest = std::min(finest, *std::max_element(s, s + per_row));
  }
  if (!std::isfinite(finest)) return;
  for (int64_t r = 0; r < rows; ++r) {
    if (!dead[static_cast<size_t>(r)]) continue;
    // A dead row whose own scale is finer already (given so by the caller) keeps that.
    const float* own = p.scales.data() + static_cast<size_t>(r) * per_row;
    float s = std::min(finest, *std::max_element(own, own + per_row));
    if (bias != nullptr) {
      const double need = std::fabs(static_cast<double>(bias[r])) /
                          (static_cast<double>(input_scale) * kBiasCodeLimit);
      // A bias that needs more than float32 holds is left to quantize_bias's error.
      if (static_cast<double>(s) < need && need * (1.0 + 1e-6) <= std::numeric_limits<float>::max())
        s = static_cast<float>(need * (1.0 + 1e-6));
    }
    std::fill_n(p.scales.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(r) * per_row),
                per_row, s);
  }
}

}  // namespace

QTensor quantize_weights_for_bias(const float* weights, const Shape& shape, const QuantSpec& spec,
                                  const float* bias, float input_scale, RoundMode mode,
                                  int64_t* raised) {
  constexpr const char* kWhat = "quantize_weights_for_bias";
  ActivationParams{input_scale, 0}.validate(kWhat);
  // A scalar weight is a 1 x 1 layer: one output channel.
  return weights_fitting_bias(weights, shape, spec, bias, shape.empty() ? 1 : shape[0], input_scale,
                              kWhat, kWhat, mode, raised);
}

QuantizedLinear::QuantizedLinear(const float* weights, int64_t out_features, int64_t in_features,
                                 const float* bias, const QuantSpec& weight_spec,
                                 ActivationParams input, ActivationParams output, Activation act,
                                 rt::Rounding rounding)
    : QuantizedLinear(
          [&] {
            if (weights == nullptr) fail<InvalidArgument>("QuantizedLinear: weights are null");
            if (out_features < 1 || in_features < 1)
              fail<ShapeError>("QuantizedLinear: weight shape [{}, {}] must be positive",
                               out_features, in_features);
            return weights_fitting_bias(weights, Shape{out_features, in_features}, weight_spec,
                                        bias, out_features, input.scale, "QuantizedLinear",
                                        "QuantizedLinear bias");
          }(),
          bias, input, output, act, rounding) {}

QuantizedLinear::QuantizedLinear(QTensor weights, const float* bias, ActivationParams input,
                                 ActivationParams output, Activation act, rt::Rounding rounding)
    : weights_(std::move(weights)), input_(input), output_(output), act_(act), rounding_(rounding) {
  if (weights_.shape.size() != 2)
    fail<ShapeError>("QuantizedLinear: weights must be 2-D [out, in], got shape {}",
                     to_string(weights_.shape));
  out_ = weights_.shape[0];
  in_ = weights_.shape[1];
  if (out_ < 1 || in_ < 1 || out_ > INT32_MAX || in_ > INT32_MAX || out_ * in_ > INT32_MAX)
    fail<ShapeError>("QuantizedLinear: weight shape {} is empty or exceeds int32 kernel limits",
                     to_string(weights_.shape));
  weights_.params.validate(weights_.shape);
  detail::check_storage("QuantizedLinear weights", weights_);
  build(bias);
}

int32_t QuantizedLinear::kernel_group_size() const noexcept {
  const QuantSpec& spec = weights_.params.spec;
  if (spec.granularity != Granularity::kPerGroup) return 0;
  return static_cast<int32_t>(std::min(spec.group_size, in_));  // in_ <= INT32_MAX (checked)
}

void QuantizedLinear::build(const float* bias) {
  constexpr const char* kWhat = "QuantizedLinear";
  input_.validate("QuantizedLinear input");
  output_.validate("QuantizedLinear output");
  const QuantSpec& spec = weights_.params.spec;
  if (spec.bits == 16)
    fail<InvalidArgument>("{}: 16-bit weights are not supported by the int8 kernels", kWhat);
  const bool grouped = spec.granularity == Granularity::kPerGroup;
  if (grouped && normalize_axis(spec.axis, weights_.shape, kWhat) != 1)
    fail<InvalidArgument>("{}: per-group weights must be grouped along the input axis (1), got {}",
                          kWhat, spec.axis);
  if (spec.granularity == Granularity::kPerChannel &&
      normalize_axis(spec.axis, weights_.shape, kWhat) != 0)
    fail<InvalidArgument>("{}: per-channel weights must use the output axis (0), got {}", kWhat,
                          spec.axis);
  if (spec.granularity != Granularity::kPerTensor && spec.scheme != Scheme::kSymmetric)
    fail<InvalidArgument>(
        "{}: {} weights must be symmetric (zero point 0): the kernels take one filter offset",
        kWhat, to_string(spec.granularity));

  // One code per weight, unpacked once: sub-8-bit weights stored one per byte (bits 5..7) run
  // through the int8 kernel as they are; bits <= 4 are nibble-packed and run through the s4
  // kernels.
  std::vector<int8_t> unpacked;
  const int8_t* codes = weight_codes(weights_, &unpacked);
  retune_dead_rows(&weights_, codes, out_, in_, bias, input_.scale);
  const std::vector<float>& ws = weights_.params.scales;
  const size_t out = static_cast<size_t>(out_);
  const int64_t groups = grouped ? param_layout(spec, weights_.shape).groups : 1;
  const bool per_tensor = spec.granularity == Granularity::kPerTensor;
  // Per output channel: the scale the accumulator carries (per-group: the row's largest group
  // scale, rt::group_row_scales); per-tensor weights have one.
  std::vector<float> row_scale = ws;
  if (grouped) {
    row_scale.resize(out);
    check_kernel_status(rt::group_row_scales(ws.data(), static_cast<int32_t>(out_),
                                             static_cast<int32_t>(groups), row_scale.data()),
                        kWhat, "group_row_scales");
    group_ratios_.resize(out * static_cast<size_t>(groups));
    for (size_t c = 0; c < out; ++c)
      for (int64_t g = 0; g < groups; ++g) {
        const size_t i = c * static_cast<size_t>(groups) + static_cast<size_t>(g);
        const double r =
            std::round(static_cast<double>(ws[i]) / static_cast<double>(row_scale[c]) * 256.0);
        group_ratios_[i] = static_cast<uint8_t>(std::clamp(r, 1.0, 256.0) - 1.0);
      }
  }

  params_ = rt::FcParams{};
  params_.input_offset = -input_.zero_point;
  params_.filter_offset =
      spec.granularity == Granularity::kPerTensor ? -weights_.params.zero_points[0] : 0;
  params_.output_offset = output_.zero_point;
  activation_range(act_, output_, &params_.act_min, &params_.act_max);

  to_multipliers(input_.scale, row_scale, !per_tensor, output_.scale, out, &multipliers_, &shifts_,
                 kWhat);

  kernel_bias_.assign(out, 0);
  if (bias != nullptr) {
    detail::check_finite(bias, out_, "QuantizedLinear bias");
    for (size_t c = 0; c < out; ++c)
      kernel_bias_[c] = quantize_bias(
          bias[c], static_cast<double>(input_.scale) * row_scale[per_tensor ? 0 : c], c, kWhat);
  }
  check_left_shift_headroom(codes, out_, in_, params_.filter_offset, input_.zero_point,
                            kernel_bias_, shifts_, grouped ? groups : 0, output_.scale, kWhat);
  // Fold the input offset into the bias (kernel sums), except for grouped rows, whose per-group
  // ratios make the fold inexact; those keep input_offset in the kernel.
  if (!grouped && params_.input_offset != 0) {
    for (size_t c = 0; c < out; ++c) {
      int32_t sum = 0;
      for (int64_t k = 0; k < in_; ++k) {
        sum = rt::wrap_add(sum, codes[static_cast<int64_t>(c) * in_ + k] + params_.filter_offset);
      }
      kernel_bias_[c] = rt::wrap_add(kernel_bias_[c], rt::wrap_mul(params_.input_offset, sum));
    }
    params_.input_offset = 0;
  }
}

void QuantizedLinear::forward(const int8_t* input, int64_t batch, int8_t* output,
                              rt::Path path) const {
  if (input == nullptr || output == nullptr)
    fail<InvalidArgument>("QuantizedLinear::forward: input or output is null");
  if (batch < 1 || batch > INT32_MAX / std::max(in_, out_))
    fail<ShapeError>("QuantizedLinear::forward: batch = {} must be in [1, {}]", batch,
                     INT32_MAX / std::max(in_, out_));
  const QuantSpec& spec = weights_.params.spec;
  const bool per_tensor = spec.granularity == Granularity::kPerTensor;
  rt::Requant rq;
  rq.multiplier = multipliers_.data();
  rq.shift = shifts_.data();
  rq.per_channel = !per_tensor;
  rq.rounding = rounding_;
  const rt::FcDims dims{static_cast<int32_t>(batch), static_cast<int32_t>(in_),
                        static_cast<int32_t>(out_)};
  rt::Context ctx;
  ctx.path = path;
  std::vector<uint8_t> scratch;
  rt::Status st;
  if (spec.granularity == Granularity::kPerGroup) {
    rt::GroupScales gs;
    gs.group_size = kernel_group_size();
    gs.ratio = group_ratios_.data();
    scratch.resize(static_cast<size_t>(
        spec.bits <= 4 ? rt::fully_connected_s4_grouped_scratch_size(dims, gs, path)
                       : rt::fully_connected_s8_grouped_scratch_size(dims, gs, path)));
    ctx.scratch = scratch.data();
    ctx.scratch_size = static_cast<int32_t>(scratch.size());
    st = spec.bits <= 4
             ? rt::fully_connected_s4_grouped(ctx, params_, rq, dims, gs, input,
                                              weights_.data.data(), kernel_bias_.data(), output)
             : rt::fully_connected_s8_grouped(ctx, params_, rq, dims, gs, input,
                                              reinterpret_cast<const int8_t*>(weights_.data.data()),
                                              kernel_bias_.data(), output);
  } else if (spec.bits <= 4) {
    scratch.resize(static_cast<size_t>(rt::fully_connected_s4_scratch_size(dims, path)));
    ctx.scratch = scratch.data();
    ctx.scratch_size = static_cast<int32_t>(scratch.size());
    st = rt::fully_connected_s4(ctx, params_, rq, dims, input, weights_.data.data(),
                                kernel_bias_.data(), output);
  } else {
    scratch.resize(static_cast<size_t>(rt::fully_connected_s8_scratch_size(dims, path)));
    ctx.scratch = scratch.data();
    ctx.scratch_size = static_cast<int32_t>(scratch.size());
    st = rt::fully_connected_s8(ctx, params_, rq, dims, input,
                                reinterpret_cast<const int8_t*>(weights_.data.data()),
                                kernel_bias_.data(), output);
  }
  const std::string where =
      fmt::format("layer [{} x {}], batch {}, path {}", out_, in_, batch, rt::path_name(path));
  check_kernel_status(st, "QuantizedLinear::forward", where.c_str());
}

std::vector<int8_t> QuantizedLinear::forward(const std::vector<int8_t>& input,
                                             rt::Path path) const {
  if (input.empty() || static_cast<int64_t>(input.size()) % in_ != 0)
    fail<ShapeError>(
        "QuantizedLinear::forward: input has {} values, not a positive multiple of "
        "in_features = {}",
        input.size(), in_);
  const int64_t batch = static_cast<int64_t>(input.size()) / in_;
  std::vector<int8_t> out(static_cast<size_t>(batch * out_));
  forward(input.data(), batch, out.data(), path);
  return out;
}

int64_t QuantizedLinear::bytes() const {
  const bool per_tensor = weights_.params.spec.granularity == Granularity::kPerTensor;
  const int64_t requant_pairs = per_tensor ? 1 : static_cast<int64_t>(multipliers_.size());
  return static_cast<int64_t>(weights_.data.size()) +
         4 * static_cast<int64_t>(kernel_bias_.size()) + 8 * requant_pairs +
         static_cast<int64_t>(group_ratios_.size());
}

// ---------------------------------------------------------------------------------------------

QuantizedConv2d::QuantizedConv2d(const float* weights, int32_t out_c, int32_t kernel_h,
                                 int32_t kernel_w, int32_t in_c, const float* bias,
                                 const Conv2dGeometry& geometry, const QuantSpec& weight_spec,
                                 ActivationParams input, ActivationParams output, Activation act,
                                 rt::Rounding rounding)
    : out_c_(out_c),
      kh_(kernel_h),
      kw_(kernel_w),
      in_c_(in_c),
      geo_(geometry),
      input_(input),
      output_(output),
      rounding_(rounding) {
  constexpr const char* kWhat = "QuantizedConv2d";
  if (weights == nullptr) fail<InvalidArgument>("{}: weights are null", kWhat);
  if (out_c < 1 || kernel_h < 1 || kernel_w < 1 || in_c < 1)
    fail<ShapeError>("{}: out_c {}, kernel {}x{}, in_c {} must all be >= 1", kWhat, out_c, kernel_h,
                     kernel_w, in_c);
  if (geo_.groups < 1 || in_c % geo_.groups != 0 || out_c % geo_.groups != 0)
    fail<InvalidArgument>("{}: groups = {} must be >= 1 and divide in_c = {} and out_c = {}", kWhat,
                          geo_.groups, in_c, out_c);
  if (geo_.stride_h < 1 || geo_.stride_w < 1 || geo_.dilation_h < 1 || geo_.dilation_w < 1)
    fail<InvalidArgument>("{}: stride {}x{} and dilation {}x{} must be >= 1", kWhat, geo_.stride_h,
                          geo_.stride_w, geo_.dilation_h, geo_.dilation_w);
  if (geo_.padding != Padding::kValid && geo_.padding != Padding::kSame)
    fail<InvalidArgument>("{}: unknown padding {}", kWhat, static_cast<int>(geo_.padding));
  input_.validate("QuantizedConv2d input");
  output_.validate("QuantizedConv2d output");
  QuantSpec spec = weight_spec;
  if (spec.bits != 8 && spec.bits != 4)
    fail<InvalidArgument>("{}: weight bits = {} (the conv kernels take 8 or 4)", kWhat, spec.bits);
  if (spec.granularity == Granularity::kPerGroup)
    fail<InvalidArgument>("{}: per-group weights are not supported for convolution", kWhat);
  if (spec.granularity == Granularity::kPerChannel) spec.axis = 0;
  if (spec.scheme != Scheme::kSymmetric)
    fail<InvalidArgument>("{}: conv weights must be symmetric (zero point 0)", kWhat);
  const Shape shape{out_c, kernel_h, kernel_w, in_c / geo_.groups};
  weights_ = weights_fitting_bias(weights, shape, spec, bias, out_c, input_.scale, kWhat,
                                  "QuantizedConv2d bias");
  std::vector<int8_t> unpacked;
  const int8_t* codes = weight_codes(weights_, &unpacked);
  const int64_t per_channel = int64_t{kernel_h} * kernel_w * (in_c / geo_.groups);
  if (spec.granularity != Granularity::kPerTensor)
    retune_dead_rows(&weights_, codes, out_c, per_channel, bias, input_.scale);

  const size_t channels = static_cast<size_t>(out_c);
  to_multipliers(input_.scale, weights_.params.scales, spec.granularity != Granularity::kPerTensor,
                 output_.scale, channels, &multipliers_, &shifts_, kWhat);
  bias_.assign(channels, 0);
  if (bias != nullptr) {
    detail::check_finite(bias, out_c, "QuantizedConv2d bias");
    for (size_t c = 0; c < channels; ++c) {
      const float ws = weights_.params.scales[spec.granularity == Granularity::kPerTensor ? 0 : c];
      bias_[c] = quantize_bias(bias[c], static_cast<double>(input_.scale) * ws, c, kWhat);
    }
  }
  check_left_shift_headroom(codes, out_c, per_channel, 0, input_.zero_point, bias_, shifts_, 0,
                            output_.scale, kWhat);
  activation_range(act, output_, &act_min_, &act_max_);
}

void QuantizedConv2d::output_size(int32_t in_h, int32_t in_w, int32_t* out_h,
                                  int32_t* out_w) const {
  const int64_t eff_h = int64_t{kh_ - 1} * geo_.dilation_h + 1;
  const int64_t eff_w = int64_t{kw_ - 1} * geo_.dilation_w + 1;
  int64_t oh, ow;
  if (geo_.padding == Padding::kSame) {
    oh = (int64_t{in_h} + geo_.stride_h - 1) / geo_.stride_h;
    ow = (int64_t{in_w} + geo_.stride_w - 1) / geo_.stride_w;
  } else {
    oh = in_h >= eff_h ? (in_h - eff_h) / geo_.stride_h + 1 : 0;
    ow = in_w >= eff_w ? (in_w - eff_w) / geo_.stride_w + 1 : 0;
  }
  if (in_h < 1 || in_w < 1 || oh < 1 || ow < 1)
    fail<ShapeError>(
        "QuantizedConv2d: input {}x{} gives an empty output for a {}x{} kernel "
        "(dilation {}x{}, stride {}x{})",
        in_h, in_w, kh_, kw_, geo_.dilation_h, geo_.dilation_w, geo_.stride_h, geo_.stride_w);
  *out_h = static_cast<int32_t>(oh);
  *out_w = static_cast<int32_t>(ow);
}

rt::ConvDims QuantizedConv2d::dims(int32_t batch, int32_t in_h, int32_t in_w) const {
  rt::ConvDims d;
  d.batch = batch;
  d.in_h = in_h;
  d.in_w = in_w;
  d.in_c = in_c_;
  d.kernel_h = kh_;
  d.kernel_w = kw_;
  output_size(in_h, in_w, &d.out_h, &d.out_w);
  d.out_c = out_c_;
  return d;
}

rt::ConvParams QuantizedConv2d::params(int32_t in_h, int32_t in_w) const {
  rt::ConvParams p;
  p.input_offset = -input_.zero_point;
  p.output_offset = output_.zero_point;
  p.stride_h = geo_.stride_h;
  p.stride_w = geo_.stride_w;
  p.dilation_h = geo_.dilation_h;
  p.dilation_w = geo_.dilation_w;
  p.groups = geo_.groups;
  p.act_min = act_min_;
  p.act_max = act_max_;
  if (geo_.padding == Padding::kSame) {
    int32_t oh, ow;
    output_size(in_h, in_w, &oh, &ow);
    const int64_t eff_h = int64_t{kh_ - 1} * geo_.dilation_h + 1;
    const int64_t eff_w = int64_t{kw_ - 1} * geo_.dilation_w + 1;
    const int64_t pad_h = std::max<int64_t>(0, int64_t{oh - 1} * geo_.stride_h + eff_h - in_h);
    const int64_t pad_w = std::max<int64_t>(0, int64_t{ow - 1} * geo_.stride_w + eff_w - in_w);
    p.pad_top = static_cast<int32_t>(pad_h / 2);  // TFLite: the extra row goes to the bottom
    p.pad_left = static_cast<int32_t>(pad_w / 2);
  }
  return p;
}

void QuantizedConv2d::forward(const int8_t* input, int32_t batch, int32_t in_h, int32_t in_w,
                              int8_t* output, rt::Path path) const {
  if (input == nullptr || output == nullptr)
    fail<InvalidArgument>("QuantizedConv2d::forward: input or output is null");
  if (batch < 1) fail<ShapeError>("QuantizedConv2d::forward: batch = {} must be >= 1", batch);
  const rt::ConvDims d = dims(batch, in_h, in_w);
  const rt::ConvParams p = params(in_h, in_w);
  rt::Requant rq;
  rq.multiplier = multipliers_.data();
  rq.shift = shifts_.data();
  rq.per_channel = true;
  rq.rounding = rounding_;
  rt::Context ctx;
  ctx.path = path;
  const bool s4 = weights_.params.spec.bits == 4;
  std::vector<uint8_t> scratch(static_cast<size_t>(s4 ? rt::conv2d_s4_scratch_size(p, d, path)
                                                      : rt::conv2d_s8_scratch_size(p, d, path)));
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  const rt::Status st =
      s4 ? rt::conv2d_s4(ctx, p, rq, d, input, weights_.data.data(), bias_.data(), output)
         : rt::conv2d_s8(ctx, p, rq, d, input,
                         reinterpret_cast<const int8_t*>(weights_.data.data()), bias_.data(),
                         output);
  const std::string where = fmt::format("input {}x{}x{}x{}, kernel {}x{}, out_c {}, path {}", batch,
                                        in_h, in_w, in_c_, kh_, kw_, out_c_, rt::path_name(path));
  check_kernel_status(st, "QuantizedConv2d::forward", where.c_str());
}

int64_t QuantizedConv2d::bytes() const {
  return static_cast<int64_t>(weights_.data.size()) +
         4 * static_cast<int64_t>(bias_.size() + multipliers_.size() + shifts_.size());
}

}  // namespace tinyquant
