#include "quant_mlp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "tinyquant/error.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/rt/sparse.hpp"

namespace fmnist {

namespace tq = tinyquant;

namespace {

bool kernel_runs(tq::StorageFormat f) {
  return f == tq::StorageFormat::kCsrU8 || f == tq::StorageFormat::kCsrU16 ||
         f == tq::StorageFormat::kBitmap || f == tq::StorageFormat::kNm;
}

// The layer's weights as one int8 per value (int4 unpacked), row-major [out][in].
std::vector<int8_t> int_weights(const tq::QTensor& w) {
  if (w.bits() <= 4) return tq::unpack_int4(w.data, w.numel());
  std::vector<int8_t> v(w.data.size());
  std::transform(w.data.begin(), w.data.end(), v.begin(),
                 [](uint8_t b) { return static_cast<int8_t>(b); });
  return v;
}

}  // namespace

int64_t QuantMlp::total_bytes() const {
  int64_t t = 0;
  for (const LayerBytes& b : bytes) t += b.total();
  return t;
}

int QuantMlp::sparse_layers() const {
  return static_cast<int>(
      std::count_if(sparse.begin(), sparse.end(), [](const auto& s) { return s.has_value(); }));
}

GptqMlp gptq_mlp(const FloatMlp& mlp, const MatrixRM& x, const tq::QuantSpec& spec,
                 const tq::GptqOptions& options, GptqInputs inputs) {
  GptqMlp g;
  g.model = mlp;
  MatrixRM act = x;  // layer i's float input: x through layers 0..i-1 of mlp or of g.model
  for (size_t i = 0; i < mlp.layers.size(); ++i) {
    MatrixRM quantized;  // act quantized to int8 and back (kSequentialQuantized)
    if (inputs == GptqInputs::kSequentialQuantized) {
      const tq::ActivationParams p =
          tq::ActivationParams::from_range(act.minCoeff(), act.maxCoeff());
      quantized = act.unaryExpr([&](float v) {
        return p.scale * static_cast<float>(tq::quantize_activation(v, p) - p.zero_point);
      });
    }
    const MatrixRM& in = quantized.size() > 0 ? quantized : act;
    MatrixRM& w = g.model.layers[i].w;
    tq::GptqResult r =
        tq::gptq_quantize(w.data(), w.rows(), w.cols(), in.data(), in.rows(), spec, options);
    std::copy(r.dequantized.begin(), r.dequantized.end(), w.data());
    g.params.push_back(std::move(r.weights.params));
    act = layer_output(inputs == GptqInputs::kFloat ? mlp : g.model, i, act);
  }
  return g;
}

tq::GptqOptions demo_gptq_options() {
  tq::GptqOptions o;
  o.snap_group_scales = true;
  o.mse_params = false;
  return o;
}

QuantMlp quantize_mlp(const FloatMlp& mlp, const std::vector<ActRange>& ranges,
                      const tq::QuantSpec& weight_spec, bool sparse_storage,
                      const WeightParamsChoice& wp) {
  if (ranges.size() != mlp.layers.size() + 1)
    throw tq::ShapeError(fmt::format("quantize_mlp: {} ranges for {} layers (need {})",
                                     ranges.size(), mlp.layers.size(), mlp.layers.size() + 1));
  if (wp.given != nullptr && wp.given->size() != mlp.layers.size())
    throw tq::ShapeError(fmt::format("quantize_mlp: {} given weight parameters for {} layers",
                                     wp.given->size(), mlp.layers.size()));
  QuantMlp q;
  q.input = tq::ActivationParams::from_range(ranges[0].min, ranges[0].max);
  tq::ActivationParams in = q.input;
  for (size_t i = 0; i < mlp.layers.size(); ++i) {
    const DenseLayer& f = mlp.layers[i];
    const tq::ActivationParams out =
        tq::ActivationParams::from_range(ranges[i + 1].min, ranges[i + 1].max);
    const tq::Activation act = mlp.is_hidden(i) ? tq::Activation::kRelu : tq::Activation::kNone;
    if (weight_spec.bits <= 4) {
      // 4-bit weights: each channel's / group's range clipped where that lowers its squared
      // error, so a few outliers do not waste the 15 levels.
      // Given parameters (learned scales) are used as they are.
      const tq::Shape shape{f.w.rows(), f.w.cols()};
      tq::QuantParams p =
          wp.given != nullptr ? (*wp.given)[i] : tq::params_for_mse(f.w.data(), shape, weight_spec);
      if (wp.given == nullptr && wp.snap) p = snap_group_scales(std::move(p), shape, f.w.data());
      tq::QTensor qw = tq::quantize(f.w.data(), shape, p);
      q.layers.emplace_back(std::move(qw), f.b.data(), in, out, act);
    } else {
      q.layers.emplace_back(f.w.data(), f.w.rows(), f.w.cols(), f.b.data(), weight_spec, in, out,
                            act);
    }
    const tq::QuantizedLinear& l = q.layers.back();
    const tq::QTensor& w = l.weights();
    const tq::QuantSpec& spec = w.params.spec;
    LayerBytes b;
    b.weights = static_cast<int64_t>(w.data.size());
    b.bias = 4 * l.out_features();
    const int64_t requant_scales =
        spec.granularity == tq::Granularity::kPerTensor ? 1 : l.out_features();
    b.params = 4 * requant_scales + 4 + 4 + static_cast<int64_t>(l.group_ratios().size());
    std::optional<tq::SparseMatrix> sparse;
    if (sparse_storage) {
      const std::vector<int8_t> values = int_weights(w);
      tq::SparseOptions opt;
      opt.value_type = spec.bits <= 4 ? tq::ValueType::kInt4 : tq::ValueType::kInt8;
      const tq::FormatChoice choice =
          tq::choose_format(values.data(), l.out_features(), l.in_features(), opt);
      b.format = choice.best;
      b.weights = choice.best_bytes;
      const bool grouped = spec.granularity == tq::Granularity::kPerGroup;
      if (kernel_runs(choice.best) && opt.value_type == tq::ValueType::kInt8 && !grouped) {
        opt.format = choice.best;
        sparse =
            tq::SparseMatrix::from_dense(values.data(), l.out_features(), l.in_features(), opt);
      }
    }
    q.sparse.push_back(std::move(sparse));
    q.bytes.push_back(b);
    in = out;
  }
  return q;
}

void forward_quant(const QuantMlp& q, const int8_t* input, int32_t batch,
                   std::vector<int8_t>* logits, rt::Path path) {
  thread_local std::vector<int8_t> a, y;
  thread_local std::vector<uint8_t> scratch;
  const int8_t* x = input;
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const tq::QuantizedLinear& l = q.layers[i];
    std::vector<int8_t>& out = i + 1 == q.layers.size() ? *logits : (i % 2 == 0 ? a : y);
    out.resize(static_cast<size_t>(batch) * static_cast<size_t>(l.out_features()));
    if (!q.sparse[i]) {
      l.forward(x, batch, out.data(), path);
    } else {
      const rt::SparseMatrixS8 view = q.sparse[i]->view();
      const rt::FcDims dims{batch, static_cast<int32_t>(l.in_features()),
                            static_cast<int32_t>(l.out_features())};
      const bool sparse_path =
          path == rt::Path::kReference || path == rt::Path::kSmlad || path == rt::Path::kAvx2;
      rt::Context ctx;
      ctx.path = sparse_path ? path : rt::Path::kAuto;
      scratch.resize(
          static_cast<size_t>(rt::sparse_fully_connected_s8_scratch_size(dims, view, ctx.path)));
      ctx.scratch = scratch.empty() ? nullptr : scratch.data();
      ctx.scratch_size = static_cast<int32_t>(scratch.size());
      rt::Requant rq;
      rq.multiplier = l.multipliers().data();
      rq.shift = l.shifts().data();
      rq.per_channel = l.weights().params.spec.granularity != tq::Granularity::kPerTensor;
      const rt::Status st = rt::sparse_fully_connected_s8(ctx, l.kernel_params(), rq, dims, x, view,
                                                          l.kernel_bias().data(), out.data());
      if (st != rt::Status::kOk)
        throw tq::KernelError(
            st, fmt::format("forward_quant: layer {} ({} -> {}, {} storage, batch {}): {}", i,
                            l.in_features(), l.out_features(), tq::to_string(q.bytes[i].format),
                            batch, rt::status_name(st)));
    }
    x = out.data();
  }
}

int64_t float_bytes(const FloatMlp& mlp) {
  int64_t n = 0;
  for (const DenseLayer& l : mlp.layers) n += 4 * (l.w.size() + l.b.size());
  return n;
}

int64_t sparse_float_bytes(const FloatMlp& mlp) {
  int64_t total = 0;
  for (const DenseLayer& l : mlp.layers) {
    std::vector<int8_t> pattern(static_cast<size_t>(l.w.size()));
    for (size_t k = 0; k < pattern.size(); ++k)
      pattern[k] = l.w.data()[k] != 0.0f ? int8_t{1} : int8_t{0};
    tq::SparseOptions opt;
    const tq::FormatChoice choice = tq::choose_format(pattern.data(), l.w.rows(), l.w.cols(), opt);
    int64_t best = 4 * l.w.size();
    for (const auto& [format, int8_bytes] : choice.sizes) {
      if (format == tq::StorageFormat::kDense) continue;
      opt.format = format;
      const tq::SparseMatrix m =
          tq::SparseMatrix::from_dense(pattern.data(), l.w.rows(), l.w.cols(), opt);
      best = std::min(best, int8_bytes + 3 * static_cast<int64_t>(m.arrays().values.size()));
    }
    total += best + 4 * l.b.size();
  }
  return total;
}

namespace {

template <class Fn>
EvalResult timed_loop(const Dataset& d, int64_t limit, Fn&& predict) {
  EvalResult r;
  r.count = limit > 0 ? std::min(limit, d.size()) : d.size();
  if (r.count == 0) return r;
  int64_t correct = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < r.count; ++i)
    correct += predict(i) == static_cast<int>(d.labels[static_cast<size_t>(i)]);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.count);
  r.us_per_sample = 1e6 * s / static_cast<double>(r.count);
  return r;
}

}  // namespace

EvalResult evaluate_float(const FloatMlp& mlp, const Dataset& d, int64_t limit) {
  return timed_loop(d, limit, [&](int64_t i) {
    const MatrixRM logits = forward(mlp, d.images.middleRows(i, 1));
    Eigen::Index best = 0;
    logits.row(0).maxCoeff(&best);
    return static_cast<int>(best);
  });
}

EvalResult evaluate_quant(const QuantMlp& q, const Dataset& d, int64_t limit, rt::Path path) {
  if (q.layers.empty()) throw tq::InvalidArgument("evaluate_quant: the model has no layers");
  const int64_t in = q.layers.front().in_features();
  if (d.images.cols() != in)
    throw tq::ShapeError(fmt::format("evaluate_quant: images of {} pixels for a model of {} inputs",
                                     d.images.cols(), in));
  std::vector<int8_t> x(static_cast<size_t>(in)), logits;
  return timed_loop(d, limit, [&](int64_t i) {
    const float* row = d.images.data() + i * in;
    tq::quantize_activations(row, in, q.input, x.data());
    forward_quant(q, x.data(), 1, &logits, path);
    return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  });
}

}  // namespace fmnist
