#include "int8_mlp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "tinyquant/error.hpp"
#include "tinyquant/observers.hpp"
#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace fmnist {

std::vector<ActRange> calibrate_ranges(const FloatMlp& mlp, const MatrixRM& x, int64_t batch) {
  std::vector<ActRange> ranges(
      mlp.layers.size() + 1,
      ActRange{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()});
  if (x.rows() == 0) throw tinyquant::DataError("calibrate_ranges: no calibration images");
  for (Eigen::Index start = 0; start < x.rows(); start += batch) {
    const Eigen::Index n = std::min<Eigen::Index>(batch, x.rows() - start);
    const std::vector<MatrixRM> acts = layer_activations(mlp, x.middleRows(start, n));
    for (size_t i = 0; i < acts.size(); ++i) {
      ranges[i].min = std::min(ranges[i].min, acts[i].minCoeff());
      ranges[i].max = std::max(ranges[i].max, acts[i].maxCoeff());
    }
  }
  return ranges;
}

std::string ActCalibration::tag() const {
  switch (kind) {
    case kPercentile:
      return fmt::format("p{}", percentile);
    case kMse:
      return "mse";
    case kMinMax:
      break;
  }
  return "minmax";
}

std::vector<ActRange> calibrate_ranges(const FloatMlp& mlp, const MatrixRM& x,
                                       const ActCalibration& how, int64_t batch) {
  std::vector<ActRange> ranges = calibrate_ranges(mlp, x, batch);
  if (how.kind == ActCalibration::kMinMax) return ranges;
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int8_activations();
  std::vector<std::unique_ptr<tinyquant::Observer>> obs;
  for (size_t i = 0; i + 1 < mlp.layers.size(); ++i) {
    if (how.kind == ActCalibration::kPercentile)
      obs.push_back(std::make_unique<tinyquant::PercentileObserver>(spec, how.percentile));
    else
      obs.push_back(std::make_unique<tinyquant::MseObserver>(spec));
  }
  for (Eigen::Index start = 0; start < x.rows(); start += batch) {
    const Eigen::Index n = std::min<Eigen::Index>(batch, x.rows() - start);
    const std::vector<MatrixRM> acts = layer_activations(mlp, x.middleRows(start, n));
    for (size_t i = 0; i < obs.size(); ++i)
      obs[i]->observe(acts[i + 1].data(), tinyquant::Shape{acts[i + 1].rows(), acts[i + 1].cols()});
  }
  for (size_t i = 0; i < obs.size(); ++i) {
    const tinyquant::QuantParams p = obs[i]->params();
    const float s = p.scales[0];
    const auto zp = static_cast<float>(p.zero_points[0]);
    ranges[i + 1] = {(static_cast<float>(spec.qmin()) - zp) * s,
                     (static_cast<float>(spec.qmax()) - zp) * s};
  }
  return ranges;
}

int64_t Int8Mlp::parameter_bytes() const {
  int64_t bytes = 0;
  for (const Int8Layer& l : layers)
    bytes += static_cast<int64_t>(l.w.size()) +
             4 * static_cast<int64_t>(l.bias.size() + l.w_scale.size()) + 4 + 4;
  return bytes;
}

Int8Mlp quantize_mlp_int8(const FloatMlp& mlp, const std::vector<ActRange>& ranges) {
  if (ranges.size() != mlp.layers.size() + 1)
    throw tinyquant::ShapeError(fmt::format("quantize_mlp_int8: {} ranges for {} layers (need {})",
                                            ranges.size(), mlp.layers.size(),
                                            mlp.layers.size() + 1));
  const tinyquant::QuantSpec act_spec = tinyquant::QuantSpec::int8_activations();
  const tinyquant::QuantSpec w_spec = tinyquant::QuantSpec::int8_weights_per_channel(0);
  Int8Mlp q;
  const tinyquant::ScaleZeroPoint in =
      tinyquant::choose_scale_zero_point(ranges[0].min, ranges[0].max, act_spec);
  q.in_scale = in.scale;
  q.in_zero_point = in.zero_point;
  float in_scale = in.scale;
  int32_t in_zp = in.zero_point;
  for (size_t i = 0; i < mlp.layers.size(); ++i) {
    const DenseLayer& f = mlp.layers[i];
    const tinyquant::ScaleZeroPoint out =
        tinyquant::choose_scale_zero_point(ranges[i + 1].min, ranges[i + 1].max, act_spec);
    Int8Layer l;
    l.in_features = f.in_features();
    l.out_features = f.out_features();
    const tinyquant::QTensor qw = tinyquant::quantize_weights(
        f.w.data(), tinyquant::Shape{l.out_features, l.in_features}, w_spec);
    l.w.resize(qw.data.size());
    std::transform(qw.data.begin(), qw.data.end(), l.w.begin(),
                   [](uint8_t b) { return static_cast<int8_t>(b); });
    l.w_scale = qw.params.scales;
    l.bias.resize(static_cast<size_t>(l.out_features));
    l.multiplier.resize(l.bias.size());
    l.shift.resize(l.bias.size());
    for (size_t o = 0; o < l.bias.size(); ++o) {
      const double acc_scale = static_cast<double>(in_scale) * l.w_scale[o];
      const double b =
          std::round(static_cast<double>(f.b[static_cast<Eigen::Index>(o)]) / acc_scale);
      if (!(std::fabs(b) < 2147483647.0))
        throw tinyquant::DataError(
            fmt::format("layer {}: bias[{}] = {} does not fit int32 at scale {}", i, o,
                        f.b[static_cast<Eigen::Index>(o)], acc_scale));
      l.bias[o] = static_cast<int32_t>(b);
      rt::QuantizedMultiplier m;
      const rt::Status st = rt::quantize_multiplier(acc_scale / out.scale, &m);
      if (st != rt::Status::kOk)
        throw tinyquant::KernelError(
            st, fmt::format("layer {}: channel {}: multiplier {} cannot be quantized: {}", i, o,
                            acc_scale / out.scale, rt::status_name(st)));
      l.multiplier[o] = m.multiplier;
      l.shift[o] = m.shift;
    }
    l.params.input_offset = -in_zp;
    l.params.filter_offset = 0;
    l.params.output_offset = out.zero_point;
    l.params.act_min = mlp.is_hidden(i) ? std::max(out.zero_point, -128) : -128;  // fused ReLU
    l.params.act_max = 127;
    l.out_scale = out.scale;
    l.out_zero_point = out.zero_point;
    in_scale = out.scale;
    in_zp = out.zero_point;
    q.layers.push_back(std::move(l));
  }
  return q;
}

std::vector<int8_t> quantize_input(const Int8Mlp& q, const MatrixRM& x) {
  std::vector<int8_t> out(static_cast<size_t>(x.size()));
  const float* p = x.data();
  for (size_t i = 0; i < out.size(); ++i) {
    const float v = std::round(p[i] / q.in_scale) + static_cast<float>(q.in_zero_point);
    out[i] = static_cast<int8_t>(std::clamp(v, -128.0f, 127.0f));
  }
  return out;
}

std::vector<int8_t> forward_int8(const Int8Mlp& q, const std::vector<int8_t>& input, int32_t batch,
                                 rt::Path path) {
  std::vector<int8_t> a = input, y;
  std::vector<uint8_t> scratch;
  const rt::Path run_path = path == rt::Path::kAuto ? rt::default_path() : path;
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const Int8Layer& l = q.layers[i];
    if (a.size() != static_cast<size_t>(batch) * static_cast<size_t>(l.in_features))
      throw tinyquant::ShapeError(fmt::format("forward_int8: layer {} gets {} values, not {} x {}",
                                              i, a.size(), batch, l.in_features));
    rt::FcDims dims;
    dims.batch = batch;
    dims.in_features = l.in_features;
    dims.out_features = l.out_features;
    scratch.resize(static_cast<size_t>(rt::fully_connected_s8_scratch_size(dims, run_path)));
    rt::Context ctx;
    ctx.scratch = scratch.empty() ? nullptr : scratch.data();
    ctx.scratch_size = static_cast<int32_t>(scratch.size());
    ctx.path = run_path;
    rt::Requant rq;
    rq.multiplier = l.multiplier.data();
    rq.shift = l.shift.data();
    rq.per_channel = true;
    y.assign(static_cast<size_t>(batch) * static_cast<size_t>(l.out_features), 0);
    const rt::Status st = rt::fully_connected_s8(ctx, l.params, rq, dims, a.data(), l.w.data(),
                                                 l.bias.data(), y.data());
    if (st != rt::Status::kOk)
      throw tinyquant::KernelError(
          st,
          fmt::format("forward_int8: layer {} ({} -> {}, batch {}, path {}): {}", i, l.in_features,
                      l.out_features, batch, rt::path_name(run_path), rt::status_name(st)));
    a.swap(y);
  }
  return a;
}

double accuracy_int8(const Int8Mlp& q, const Dataset& d, rt::Path path, int64_t batch) {
  if (d.size() == 0 || q.layers.empty()) return 0.0;
  const size_t classes = static_cast<size_t>(q.layers.back().out_features);
  int64_t correct = 0;
  for (int64_t start = 0; start < d.size(); start += batch) {
    const int64_t n = std::min(batch, d.size() - start);
    const std::vector<int8_t> logits = forward_int8(
        q, quantize_input(q, d.images.middleRows(start, n)), static_cast<int32_t>(n), path);
    for (int64_t r = 0; r < n; ++r) {
      const int8_t* row = logits.data() + static_cast<size_t>(r) * classes;
      const size_t best = static_cast<size_t>(std::max_element(row, row + classes) - row);
      correct += best == d.labels[static_cast<size_t>(start + r)];
    }
  }
  return static_cast<double>(correct) / static_cast<double>(d.size());
}

}  // namespace fmnist
