#include "tinyquant/quant_params.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "detail/check.hpp"

namespace tinyquant {

using detail::fail;

const char* to_string(Scheme s) noexcept {
  return s == Scheme::kSymmetric ? "symmetric" : "affine";
}

const char* to_string(Granularity g) noexcept {
  switch (g) {
    case Granularity::kPerTensor:
      return "per-tensor";
    case Granularity::kPerChannel:
      return "per-channel";
    case Granularity::kPerGroup:
      return "per-group";
  }
  return "unknown";
}

void QuantSpec::validate() const {
  if (!((bits >= 2 && bits <= 8) || bits == 16))
    fail<InvalidArgument>("quant spec: bits = {} is not supported (expected 2..8 or 16)", bits);
  if (granularity == Granularity::kPerGroup && group_size < 1)
    fail<InvalidArgument>("quant spec: group_size = {} must be >= 1 for per-group quantization",
                          group_size);
  if (static_cast<int>(granularity) > 2 || static_cast<int>(scheme) > 1)
    fail<InvalidArgument>("quant spec: unknown granularity {} or scheme {}",
                          static_cast<int>(granularity), static_cast<int>(scheme));
}

int32_t QuantSpec::qmin() const {
  validate();
  const int32_t lo = -(int32_t{1} << (bits - 1));
  return narrow_range ? lo + 1 : lo;
}

int32_t QuantSpec::qmax() const {
  validate();
  return (int32_t{1} << (bits - 1)) - 1;
}

QuantSpec QuantSpec::int8_weights_per_channel(int axis) {
  QuantSpec s;
  s.bits = 8;
  s.scheme = Scheme::kSymmetric;
  s.narrow_range = true;
  s.granularity = Granularity::kPerChannel;
  s.axis = axis;
  return s;
}

QuantSpec QuantSpec::int8_activations() {
  return QuantSpec{};
}

QuantSpec QuantSpec::int4_per_group(int64_t group, int axis) {
  QuantSpec s;
  s.bits = 4;
  s.scheme = Scheme::kSymmetric;
  s.narrow_range = true;
  s.granularity = Granularity::kPerGroup;
  s.axis = axis;
  s.group_size = group;
  return s;
}

ParamLayout param_layout(const QuantSpec& spec, const Shape& shape) {
  spec.validate();
  const int64_t n = numel(shape);
  ParamLayout l;
  l.granularity = spec.granularity;
  if (spec.granularity == Granularity::kPerTensor) {
    l.axis_len = n;
    return l;
  }
  const int axis = normalize_axis(spec.axis, shape, to_string(spec.granularity));
  for (int d = 0; d < axis; ++d) l.outer *= shape[static_cast<size_t>(d)];
  l.axis_len = shape[static_cast<size_t>(axis)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) l.inner *= shape[d];
  if (spec.granularity == Granularity::kPerChannel) {
    l.count = l.axis_len;
  } else {
    l.group_size = spec.group_size;
    // ceil(axis_len / group_size) without the overflow of axis_len + group_size - 1.
    l.groups = l.axis_len / spec.group_size + (l.axis_len % spec.group_size != 0 ? 1 : 0);
    l.count = l.outer * l.groups * l.inner;
  }
  return l;
}

void QuantParams::validate(const Shape& shape) const {
  const ParamLayout l = param_layout(spec, shape);
  if (static_cast<int64_t>(scales.size()) != l.count ||
      static_cast<int64_t>(zero_points.size()) != l.count)
    fail<ShapeError>(
        "quant params: {} scales and {} zero points, but a {} {}-bit spec on shape {} needs {}",
        scales.size(), zero_points.size(), to_string(spec.granularity), spec.bits, to_string(shape),
        l.count);
  const int32_t lo = spec.qmin(), hi = spec.qmax();
  for (size_t i = 0; i < scales.size(); ++i) {
    if (!std::isfinite(scales[i]) || !(scales[i] > 0.0f))
      fail<InvalidArgument>("quant params: scale[{}] = {} must be finite and > 0", i, scales[i]);
    if (zero_points[i] < lo || zero_points[i] > hi)
      fail<InvalidArgument>("quant params: zero_point[{}] = {} is outside [{}, {}]", i,
                            zero_points[i], lo, hi);
    if (spec.scheme == Scheme::kSymmetric && zero_points[i] != 0)
      fail<InvalidArgument>("quant params: zero_point[{}] = {} but the scheme is symmetric", i,
                            zero_points[i]);
  }
}

namespace {

// True when the widened range is [0, 0]; otherwise the scale, at least FLT_MIN.
bool scale_from_range(double rmin, double rmax, const QuantSpec& spec, float* scale) {
  const double qmin = spec.qmin(), qmax = spec.qmax();
  double s = 0.0;
  if (spec.scheme == Scheme::kSymmetric) {
    const double qmax_s = static_cast<double>((int32_t{1} << (spec.bits - 1)) - 1);
    s = std::max(-rmin, rmax) / qmax_s;
  } else {
    s = (rmax - rmin) / (qmax - qmin);
  }
  if (!(s > 0.0)) return true;
  // A range too narrow for a normal float scale gets the smallest normal one: its codes then
  // hold the data to within FLT_MIN / 2 instead of rounding all of it to 0.
  *scale = std::max(static_cast<float>(s), std::numeric_limits<float>::min());
  return false;
}

}  // namespace

ScaleZeroPoint choose_scale_zero_point(float rmin, float rmax, const QuantSpec& spec) {
  spec.validate();
  if (!std::isfinite(rmin) || !std::isfinite(rmax))
    fail<DataError>("range [{}, {}] is not finite", rmin, rmax);
  if (rmin > rmax) fail<DataError>("range [{}, {}] has min > max", rmin, rmax);
  const double lo = std::min(0.0, static_cast<double>(rmin));
  const double hi = std::max(0.0, static_cast<double>(rmax));
  ScaleZeroPoint out;
  if (scale_from_range(lo, hi, spec, &out.scale)) return ScaleZeroPoint{1.0f, 0};
  const auto set_zero_point = [&] {
    if (spec.scheme != Scheme::kAffine) return;
    const double qmin = spec.qmin(), qmax = spec.qmax();
    const double z = qmin - std::round(lo / static_cast<double>(out.scale));
    out.zero_point = static_cast<int32_t>(std::clamp(z, qmin, qmax));
  };
  set_zero_point();
  // Data near FLT_MAX: an end code can dequantize (in float, as dequantize does) to infinity,
  // because the float scale rounded up or the affine grid reaches a step past the data. Cap the
  // scale at FLT_MAX / (largest |end code|), so the outermost data clamp into the last code.
  // Every code of the grid counts, -2^(b-1) of a symmetric one without narrow range included:
  // data inside the range never map to it, but data clipped below the range (other data than
  // the range came from, or a range an observer or the MSE search shrank) do.
  const int32_t code_lo = spec.qmin();
  const int32_t code_hi = spec.qmax();
  const auto ends_finite = [&] {
    const float a = out.scale * static_cast<float>(code_lo - out.zero_point);
    const float b = out.scale * static_cast<float>(code_hi - out.zero_point);
    return std::isfinite(a) && std::isfinite(b);
  };
  if (ends_finite()) return out;
  for (int step = 0; step < 8 && !ends_finite(); ++step) {
    const double c = std::max(std::abs(static_cast<double>(code_lo - out.zero_point)),
                              std::abs(static_cast<double>(code_hi - out.zero_point)));
    const double cap = static_cast<double>(std::numeric_limits<float>::max()) / c;
    float capped = static_cast<float>(cap);
    if (static_cast<double>(capped) > cap) capped = std::nextafter(capped, 0.0f);
    out.scale = std::nextafter(std::min(out.scale, capped), 0.0f);
    set_zero_point();
  }
  // The capped grid must still hold both ends of the range within scale / 2; when it cannot
  // (an affine range spanning most of [-FLT_MAX, FLT_MAX]: its grid always reaches one step
  // past one end) there is no float32 scale for it.
  const auto round_trips = [&](double v) {
    const double q = std::clamp(std::round(v / out.scale) + out.zero_point,
                                static_cast<double>(spec.qmin()), static_cast<double>(spec.qmax()));
    return std::fabs(static_cast<double>(out.scale) * (q - out.zero_point) - v) <=
           0.5 * static_cast<double>(out.scale) * (1.0 + 1e-6);
  };
  if (!ends_finite() || !round_trips(lo) || !round_trips(hi))
    fail<DataError>(
        "range [{}, {}]: no float32 scale covers it with {}-bit {} codes whose ends stay finite "
        "(values this close to FLT_MAX cannot be quantized)",
        rmin, rmax, spec.bits, to_string(spec.scheme));
  return out;
}

QuantParams params_from_ranges(const QuantSpec& spec, const Shape& shape,
                               const std::vector<float>& mins, const std::vector<float>& maxs) {
  const ParamLayout l = param_layout(spec, shape);
  if (static_cast<int64_t>(mins.size()) != l.count || maxs.size() != mins.size())
    fail<ShapeError>("params_from_ranges: {} mins and {} maxs, but a {} spec on shape {} needs {}",
                     mins.size(), maxs.size(), to_string(spec.granularity), to_string(shape),
                     l.count);
  QuantParams p;
  p.spec = spec;
  p.scales.resize(mins.size());
  p.zero_points.resize(mins.size());
  bool any_nonzero = false;
  for (size_t i = 0; i < mins.size(); ++i) {
    if (!std::isfinite(mins[i]) || !std::isfinite(maxs[i]) || mins[i] > maxs[i])
      fail<DataError>("params_from_ranges: range {} is [{}, {}] (must be finite with min <= max)",
                      i, mins[i], maxs[i]);
    const ScaleZeroPoint sz = choose_scale_zero_point(mins[i], maxs[i], spec);
    any_nonzero = any_nonzero || !(mins[i] >= 0.0f && maxs[i] <= 0.0f);
    p.scales[i] = sz.scale;
    p.zero_points[i] = sz.zero_point;
  }
  if (!any_nonzero)
    fail<DataError>(
        "params_from_ranges: zero range: every range is [0, 0] (shape {}, {}), so there is no "
        "scale to calibrate",
        to_string(shape), to_string(spec.granularity));
  return p;
}

void ranges_of(const float* data, const Shape& shape, const QuantSpec& spec,
               std::vector<float>* mins, std::vector<float>* maxs) {
  const ParamLayout l = param_layout(spec, shape);
  const int64_t n = numel(shape);
  if (n == 0) fail<DataError>("ranges_of: tensor of shape {} is empty", to_string(shape));
  if (data == nullptr) fail<InvalidArgument>("ranges_of: data is null");
  detail::check_finite(data, n, "ranges_of");
  mins->assign(static_cast<size_t>(l.count), std::numeric_limits<float>::infinity());
  maxs->assign(static_cast<size_t>(l.count), -std::numeric_limits<float>::infinity());
  float* mn = mins->data();
  float* mx = maxs->data();
  if (l.granularity == Granularity::kPerTensor) {
    float lo = data[0], hi = data[0];
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, data[i]);
      hi = std::max(hi, data[i]);
    }
    mn[0] = lo;
    mx[0] = hi;
    return;
  }
  // Walk (outer, axis, inner) so the inner loop is contiguous.
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t a = 0; a < l.axis_len; ++a) {
      const float* row = data + (o * l.axis_len + a) * l.inner;
      const int64_t base = l.granularity == Granularity::kPerChannel
                               ? a
                               : (o * l.groups + a / l.group_size) * l.inner;
      if (l.granularity == Granularity::kPerChannel) {
        float lo = mn[base], hi = mx[base];
        for (int64_t i = 0; i < l.inner; ++i) {
          lo = std::min(lo, row[i]);
          hi = std::max(hi, row[i]);
        }
        mn[base] = lo;
        mx[base] = hi;
      } else {
        for (int64_t i = 0; i < l.inner; ++i) {
          mn[base + i] = std::min(mn[base + i], row[i]);
          mx[base + i] = std::max(mx[base + i], row[i]);
        }
      }
    }
  }
}

QuantParams params_for(const float* data, const Shape& shape, const QuantSpec& spec) {
  std::vector<float> mins, maxs;
  ranges_of(data, shape, spec, &mins, &maxs);
  return params_from_ranges(spec, shape, mins, maxs);
}

QuantParams params_for_mse(const float* data, const Shape& shape, const QuantSpec& spec, int steps,
                           float min_ratio) {
  if (steps < 1) fail<InvalidArgument>("params_for_mse: steps = {} must be >= 1", steps);
  if (!(min_ratio > 0.0f && min_ratio <= 1.0f))
    fail<InvalidArgument>("params_for_mse: min_ratio = {} must be in (0, 1]", min_ratio);
  std::vector<float> mins, maxs;
  ranges_of(data, shape, spec, &mins, &maxs);
  const ParamLayout l = param_layout(spec, shape);
  const int64_t n = numel(shape);
  // Bucket the elements by parameter (counting sort) so each search reads one contiguous run.
  std::vector<int64_t> start(static_cast<size_t>(l.count) + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++start[static_cast<size_t>(l.param_index(i)) + 1];
  for (size_t p = 1; p < start.size(); ++p) start[p] += start[p - 1];
  std::vector<float> bucket(static_cast<size_t>(n));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i)
      bucket[static_cast<size_t>(fill[static_cast<size_t>(l.param_index(i))]++)] = data[i];
  }
  const double qmin = spec.qmin(), qmax = spec.qmax();
  for (size_t p = 0; p < mins.size(); ++p) {
    const float* v = bucket.data() + start[p];
    const int64_t m = start[p + 1] - start[p];
    double best_err = std::numeric_limits<double>::infinity();
    float best_ratio = 1.0f;
    for (int s = 0; s <= steps; ++s) {
      const float a = 1.0f - (1.0f - min_ratio) * static_cast<float>(s) / static_cast<float>(steps);
      const ScaleZeroPoint sz = choose_scale_zero_point(a * mins[p], a * maxs[p], spec);
      const double scale = sz.scale;
      double err = 0.0;
      for (int64_t i = 0; i < m; ++i) {
        const double q = std::clamp(std::round(v[i] / scale) + sz.zero_point, qmin, qmax);
        const double d = scale * (q - sz.zero_point) - v[i];
        err += d * d;
      }
      if (err < best_err) {
        best_err = err;
        best_ratio = a;
      }
    }
    mins[p] *= best_ratio;
    maxs[p] *= best_ratio;
  }
  return params_from_ranges(spec, shape, mins, maxs);
}

}  // namespace tinyquant
