#include "tinyquant/gptq.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "detail/check.hpp"

namespace tinyquant {

using detail::fail;

namespace {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;  // column-major
using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The spec for one run of values sharing one (scale, zero point).
QuantSpec per_tensor(QuantSpec spec) {
  spec.granularity = Granularity::kPerTensor;
  spec.axis = 0;
  spec.group_size = 0;
  return spec;
}

// What the column pass needs to know about the parameters.
struct Plan {
  QuantSpec one;  // per-tensor form of the spec, for each fit
  int64_t out = 0, in = 0;
  int64_t group = 0;   // per-group: inputs per group; else 0
  int64_t groups = 1;  // per-group: groups per row
  bool lazy = false;   // per-group fitted when the pass reaches the group
  bool snap = false;
  std::vector<float> row_top;      // snap: each row's largest group scale
  std::vector<int64_t> top_group;  // snap: the group that keeps it
};

// (scale, zero point) of n values with the options' rule; all-zero values get {1, 0}. A range
// with no float32 scale is a DataError naming the row (-1: the whole tensor) and group (-1: none).
ScaleZeroPoint fit(const float* v, int64_t n, const QuantSpec& one, const GptqOptions& o,
                   int64_t row, int64_t group) {
  if (std::all_of(v, v + n, [](float x) { return x == 0.0f; })) return ScaleZeroPoint{1.0f, 0};
  const Shape shape{n};
  try {
    const QuantParams p = o.mse_params ? params_for_mse(v, shape, one, o.mse_steps, o.mse_min_ratio)
                                       : params_for(v, shape, one);
    return ScaleZeroPoint{p.scales[0], p.zero_points[0]};
  } catch (const DataError& e) {
    if (row < 0) fail<DataError>("gptq: weights: {}", e.what());
    if (group < 0) fail<DataError>("gptq: weights: row {}: {}", row, e.what());
    fail<DataError>("gptq: weights: row {} group {}: {}", row, group, e.what());
  }
}

// An error-updated weight as the float the rounding sees: beyond the float range it is the
// largest float of its sign (the conversion of a larger double is undefined), so it clamps to
// qmin / qmax like any weight past the grid.
float to_float(double v) {
  const double top = std::numeric_limits<float>::max();
  return static_cast<float>(std::clamp(v, -top, top));
}

// a * b for dimensions >= 1; ShapeError if the product overflows int64.
int64_t count_of(int64_t a, int64_t b, const char* what) {
  if (a > std::numeric_limits<int64_t>::max() / b)
    fail<ShapeError>("gptq: {} [{}][{}]: the element count overflows int64", what, a, b);
  return a * b;
}

// Parameter index of weight (row, col) in the QuantParams of the spec.
int64_t param_of(const Plan& plan, const QuantSpec& spec, int64_t row, int64_t col) {
  switch (spec.granularity) {
    case Granularity::kPerTensor:
      return 0;
    case Granularity::kPerChannel:
      return row;
    case Granularity::kPerGroup:
      return row * plan.groups + col / plan.group;
  }
  return 0;
}

// The snapping top of one row of `groups` group scales s: the largest scale among the groups
// for which holds(g) (they hold a nonzero weight) and its group, else the row's largest scale and
// its group (a row of zeros).
struct RowTop {
  float scale;
  int64_t group;
};
template <class Holds>
RowTop row_top(const float* s, int64_t groups, Holds&& holds) {
  RowTop top{0.0f, 0}, any{s[0], 0};
  for (int64_t g = 0; g < groups; ++g) {
    if (s[g] > any.scale) any = RowTop{s[g], g};
    if (s[g] > top.scale && holds(g)) top = RowTop{s[g], g};
  }
  return top.scale > 0.0f ? top : any;
}

// Fits the parameters of every row's group g (columns [g * group, ...)) from the current
// weights W (column-major, original column order), snapping when asked.
void fit_group(const Plan& plan, const GptqOptions& o, const MatrixD& w, int64_t g,
               QuantParams* p) {
  const int64_t c0 = g * plan.group, n = std::min(plan.group, plan.in - c0);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t r = 0; r < plan.out; ++r) {
    const size_t k = static_cast<size_t>(r * plan.groups + g);
    if (plan.snap && plan.top_group[static_cast<size_t>(r)] == g) continue;  // keeps the top
    for (int64_t j = 0; j < n; ++j) v[static_cast<size_t>(j)] = to_float(w(r, c0 + j));
    const ScaleZeroPoint sz = fit(v.data(), n, plan.one, o, r, g);
    p->scales[k] =
        plan.snap ? snap_group_scale(sz.scale, plan.row_top[static_cast<size_t>(r)]) : sz.scale;
    p->zero_points[k] = sz.zero_point;
  }
}

void check_options(const GptqOptions& o) {
  if (!std::isfinite(o.damp) || o.damp < 0.0)
    fail<InvalidArgument>("gptq: damp = {} must be finite and >= 0", o.damp);
  if (o.mse_params && o.mse_steps < 1)
    fail<InvalidArgument>("gptq: mse_steps = {} must be >= 1", o.mse_steps);
  if (o.mse_params && !(o.mse_min_ratio > 0.0f && o.mse_min_ratio <= 1.0f))
    fail<InvalidArgument>("gptq: mse_min_ratio = {} must be in (0, 1]", o.mse_min_ratio);
}

// Validates the spec against [out][in] and fits whatever is fitted beforehand, from the weights
// w0 (dead inputs already zeroed).
Plan make_plan(const MatrixD& w0, const QuantSpec& spec, const GptqOptions& o, QuantParams* p) {
  const int64_t out = w0.rows(), in = w0.cols();
  const Shape shape{out, in};
  // The axis by its index, not by the extents it spans: on square weights axis 1 spans as many
  // rows as axis 0 would.
  const int axis =
      spec.granularity == Granularity::kPerTensor ? 0 : normalize_axis(spec.axis, shape, "gptq");
  const ParamLayout layout = param_layout(spec, shape);  // bits, group size
  Plan plan;
  plan.one = per_tensor(spec);
  plan.out = out;
  plan.in = in;
  if (spec.granularity == Granularity::kPerChannel && axis != 0)
    fail<InvalidArgument>(
        "gptq: per-channel parameters must run along the outputs (axis 0), got axis {}", spec.axis);
  if (spec.granularity == Granularity::kPerGroup) {
    if (axis != 1)
      fail<InvalidArgument>(
          "gptq: per-group parameters must group the inputs (axis 1 or -1), got axis {}",
          spec.axis);
    plan.group = spec.group_size;
    plan.groups = layout.groups;
    plan.lazy = !o.act_order;
  }
  if (o.snap_group_scales &&
      (spec.granularity != Granularity::kPerGroup || spec.scheme != Scheme::kSymmetric))
    fail<InvalidArgument>("gptq: snap_group_scales needs symmetric per-group weights, got {} {}",
                          to_string(spec.scheme), to_string(spec.granularity));
  p->spec = spec;
  p->scales.assign(static_cast<size_t>(layout.count), 1.0f);
  p->zero_points.assign(static_cast<size_t>(layout.count), 0);
  if (plan.lazy && !o.snap_group_scales) return plan;
  // Fitted from the original weights: everything (static), or the snapping rows' tops.
  if (spec.granularity != Granularity::kPerGroup) {
    const RowMatrixF wf = w0.cast<float>();
    const bool tensor = spec.granularity == Granularity::kPerTensor;
    for (int64_t r = 0; r < (tensor ? 1 : out); ++r) {
      const ScaleZeroPoint sz =
          fit(wf.data() + r * in, tensor ? out * in : in, plan.one, o, tensor ? -1 : r, -1);
      p->scales[static_cast<size_t>(r)] = sz.scale;
      p->zero_points[static_cast<size_t>(r)] = sz.zero_point;
    }
    return plan;
  }
  for (int64_t g = 0; g < plan.groups; ++g) fit_group(plan, o, w0, g, p);
  if (!o.snap_group_scales) return plan;
  plan.snap = true;
  plan.row_top.resize(static_cast<size_t>(out));
  plan.top_group.resize(static_cast<size_t>(out));
  // The top is that of snap_group_scales (row_top): an all-zero group's placeholder scale 1 must
  // not coarsen the row's grid.
  for (int64_t r = 0; r < out; ++r) {
    const RowTop top = row_top(p->scales.data() + r * plan.groups, plan.groups, [&](int64_t g) {
      const int64_t c0 = g * plan.group, n = std::min(plan.group, in - c0);
      return (w0.row(r).segment(c0, n).array() != 0.0).any();
    });
    plan.row_top[static_cast<size_t>(r)] = top.scale;
    plan.top_group[static_cast<size_t>(r)] = top.group;
  }
  // Static groups are snapped now; lazy ones when they are reached (the tops are kept).
  if (!plan.lazy)
    for (size_t k = 0; k < p->scales.size(); ++k)
      p->scales[k] =
          snap_group_scale(p->scales[k], plan.row_top[k / static_cast<size_t>(plan.groups)]);
  return plan;
}

// Checks the dimensions and that W [out][in] and H [in][in] can be counted before reading W.
void check_weights(const float* w, int64_t out, int64_t in) {
  if (out < 1 || in < 1)
    fail<InvalidArgument>("gptq: weights are [{}][{}]: both dimensions must be >= 1", out, in);
  const int64_t n = count_of(out, in, "weights");
  count_of(in, in, "Hessian");
  if (w == nullptr) fail<InvalidArgument>("gptq: weights are null");
  detail::check_finite(w, n, "gptq: weights");
}

// gptq_quantize_hessian after check_weights (W read and counted, so neither entry checks it
// twice).
GptqResult quantize_checked(const float* w, int64_t out, int64_t in, const double* h,
                            const QuantSpec& spec, const GptqOptions& options) {
  check_options(options);
  const int64_t hn = in * in;  // counted by check_weights
  if (h == nullptr) fail<InvalidArgument>("gptq: Hessian is null");
  for (int64_t i = 0; i < hn; ++i)
    if (!std::isfinite(h[i]))
      fail<DataError>("gptq: Hessian: non-finite value {} at index {} (row {}, column {})", h[i], i,
                      i / in, i % in);
  MatrixD wd = Eigen::Map<const RowMatrixF>(w, out, in).cast<double>();
  MatrixD hd = Eigen::Map<const RowMatrixD>(h, in, in);
  for (int64_t i = 0; i < in; ++i)
    if (hd(i, i) < 0.0)
      fail<DataError>("gptq: Hessian: diagonal entry {} is {} (a Gram matrix has none < 0)", i,
                      hd(i, i));
  // Symmetric up to rounding: |H[i][j] - H[j][i]| <= 1e-9 sqrt(H[i][i] H[j][j]) (two square
  // roots, so the product neither underflows nor overflows).
  for (int64_t i = 0; i < in; ++i)
    for (int64_t j = 0; j < i; ++j)
      if (std::abs(hd(i, j) - hd(j, i)) > 1e-9 * std::sqrt(hd(i, i)) * std::sqrt(hd(j, j)))
        fail<DataError>("gptq: Hessian is not symmetric: H[{}][{}] = {} but H[{}][{}] = {}", i, j,
                        hd(i, j), j, i, hd(j, i));
  for (int64_t i = 0; i < in; ++i)
    if (hd(i, i) == 0.0) {  // dead input
      hd(i, i) = 1.0;
      wd.col(i).setZero();
    }
  QuantParams params;
  const Plan plan = make_plan(wd, spec, options, &params);
  // Column order: natural, or by decreasing H[i][i] (stable, so ties keep their order).
  std::vector<int64_t> order(static_cast<size_t>(in));
  std::iota(order.begin(), order.end(), 0);
  if (options.act_order)
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return hd(a, a) > hd(b, b); });
  Eigen::PermutationMatrix<Eigen::Dynamic, Eigen::Dynamic, int64_t> perm(in);
  for (int64_t k = 0; k < in; ++k) perm.indices()[k] = order[static_cast<size_t>(k)];
  // Permuted copies: column k of wp is original column order[k].
  MatrixD wp = wd * perm;
  MatrixD hp = perm.transpose() * hd * perm;
  hp.diagonal().array() += options.damp * hp.diagonal().mean();
  const Eigen::LLT<MatrixD> llt_h(hp);
  // A singular H can factor with pivots that are rounding noise (dependent inputs): a pivot
  // L[k][k]^2 within in * epsilon of its own H'[k][k] counts as 0 (relative to the column's own
  // scale, so inputs of very different magnitudes are not mistaken for dependent ones).
  const double noise = static_cast<double>(in) * std::numeric_limits<double>::epsilon();
  if (llt_h.info() != Eigen::Success ||
      (llt_h.matrixLLT().diagonal().array().square() <= noise * hp.diagonal().array()).any())
    fail<DataError>(
        "gptq: Hessian + {} * mean(diag) is not positive definite ({} inputs); raise damp",
        options.damp, in);
  const MatrixD hinv = llt_h.solve(MatrixD::Identity(in, in));
  const Eigen::LLT<MatrixD> llt_inv(hinv);
  if (llt_inv.info() != Eigen::Success)
    fail<DataError>("gptq: the inverse Hessian is not positive definite ({} inputs); raise damp",
                    in);
  const MatrixD u = llt_inv.matrixU();

  const int32_t qmin = spec.qmin(), qmax = spec.qmax();
  GptqResult result;
  result.dequantized.assign(static_cast<size_t>(out * in), 0.0f);
  std::vector<int32_t> integers(static_cast<size_t>(out * in));
  Eigen::VectorXd err(out);
  for (int64_t k = 0; k < in; ++k) {
    const int64_t col = order[static_cast<size_t>(k)];
    if (plan.lazy && col % plan.group == 0) {
      // Natural order (no act_order): wp's columns are the original ones.
      fit_group(plan, options, wp, col / plan.group, &params);
    }
    for (int64_t r = 0; r < out; ++r) {
      const size_t pi = static_cast<size_t>(param_of(plan, spec, r, col));
      const float scale = params.scales[pi];
      const int32_t zp = params.zero_points[pi];
      const float v = to_float(wp(r, k));
      // clamp(round(v / scale) + zp, qmin, qmax), clamped before the conversion to int.
      const float t = std::clamp(std::round(v / scale), static_cast<float>(qmin - zp),
                                 static_cast<float>(qmax - zp));
      const int32_t q = static_cast<int32_t>(t) + zp;
      const float dq = scale * static_cast<float>(q - zp);
      if (!std::isfinite(dq))
        fail<DataError>(
            "gptq: weights: row {} column {} dequantizes to {} ({} * {}): weights this close to "
            "the float limit overflow their grid",
            r, col, dq, scale, q - zp);
      result.dequantized[static_cast<size_t>(r * in + col)] = dq;
      integers[static_cast<size_t>(r * in + col)] = q;
      err[r] = (wp(r, k) - static_cast<double>(dq)) / u(k, k);
    }
    const int64_t rest = in - k - 1;
    if (rest > 0) wp.rightCols(rest).noalias() -= err * u.row(k).tail(rest);
  }
  result.weights = from_integers(integers.data(), Shape{out, in}, params);
  return result;
}

}  // namespace

float snap_group_scale(float s, float row_scale) {
  // std::clamp would pass a NaN through, and a scale <= 0 has no grid.
  if (!std::isfinite(s) || !(s > 0.0f) || !std::isfinite(row_scale) || !(row_scale > 0.0f))
    fail<InvalidArgument>(
        "snap_group_scale: group scale {} and row scale {} must both be finite and > 0", s,
        row_scale);
  const double top = row_scale;
  const double r = std::clamp(std::round(static_cast<double>(s) / top * 256.0), 1.0, 256.0);
  // Never 0: r = 1 only for s < S / 512, so S / 256 is then at least two of the smallest floats.
  return static_cast<float>(top * r / 256.0);
}

QuantParams snap_group_scales(QuantParams params, const Shape& shape, const float* w) {
  if (params.spec.granularity != Granularity::kPerGroup) return params;
  const ParamLayout layout = param_layout(params.spec, shape);
  if (layout.inner != 1)
    fail<InvalidArgument>(
        "snap_group_scales: groups of shape {} run along axis {}; they must run along the last "
        "axis ({}), the inputs of [out][in] weights",
        to_string(shape), params.spec.axis, static_cast<int64_t>(shape.size()) - 1);
  const int64_t groups = layout.groups, in = layout.axis_len, size = layout.group_size;
  for (int64_t r = 0; r < layout.outer; ++r) {
    float* s = params.scales.data() + r * groups;
    const float* wr = w + r * in;
    const float top = row_top(s, groups, [&](int64_t g) {
                        return std::any_of(wr + g * size, wr + std::min(in, (g + 1) * size),
                                           [](float v) { return v != 0.0f; });
                      }).scale;
    for (int64_t g = 0; g < groups; ++g) s[g] = snap_group_scale(s[g], top);
  }
  return params;
}

std::vector<double> gptq_hessian(const float* x, int64_t samples, int64_t in) {
  if (samples < 1)
    fail<DataError>("gptq: calibration inputs are empty ({} samples of {} inputs)", samples, in);
  if (in < 1) fail<InvalidArgument>("gptq: calibration inputs have {} features (>= 1)", in);
  const int64_t n = count_of(samples, in, "calibration inputs");
  count_of(in, in, "Hessian");
  if (x == nullptr) fail<InvalidArgument>("gptq: calibration inputs are null");
  detail::check_finite(x, n, "gptq: calibration inputs");
  const MatrixD xd = Eigen::Map<const RowMatrixF>(x, samples, in).cast<double>();
  RowMatrixD h(in, in);
  h.setZero();
  h.selfadjointView<Eigen::Lower>().rankUpdate(xd.transpose(), 2.0 / static_cast<double>(samples));
  h.triangularView<Eigen::StrictlyUpper>() = h.transpose();
  return std::vector<double>(h.data(), h.data() + h.size());
}

GptqResult gptq_quantize(const float* w, int64_t out, int64_t in, const float* x, int64_t samples,
                         const QuantSpec& spec, const GptqOptions& options) {
  check_weights(w, out, in);
  const std::vector<double> h = gptq_hessian(x, samples, in);
  return quantize_checked(w, out, in, h.data(), spec, options);
}

GptqResult gptq_quantize(const std::vector<float>& w, const Shape& w_shape,
                         const std::vector<float>& x, const Shape& x_shape, const QuantSpec& spec,
                         const GptqOptions& options) {
  if (w_shape.size() != 2 || x_shape.size() != 2)
    fail<ShapeError>("gptq: weights {} and calibration inputs {} must both be 2-D",
                     to_string(w_shape), to_string(x_shape));
  if (static_cast<int64_t>(w.size()) != numel(w_shape))
    fail<ShapeError>("gptq: weights hold {} values, shape {} needs {}", w.size(),
                     to_string(w_shape), numel(w_shape));
  if (static_cast<int64_t>(x.size()) != numel(x_shape))
    fail<ShapeError>("gptq: calibration inputs hold {} values, shape {} needs {}", x.size(),
                     to_string(x_shape), numel(x_shape));
  if (x_shape[1] != w_shape[1])
    fail<ShapeError>(
        "gptq: calibration inputs {} have {} features but the weights {} take {} inputs",
        to_string(x_shape), x_shape[1], to_string(w_shape), w_shape[1]);
  return gptq_quantize(w.data(), w_shape[0], w_shape[1], x.data(), x_shape[0], spec, options);
}

GptqResult gptq_quantize_hessian(const float* w, int64_t out, int64_t in, const double* h,
                                 const QuantSpec& spec, const GptqOptions& options) {
  check_weights(w, out, in);
  return quantize_checked(w, out, in, h, spec, options);
}

}  // namespace tinyquant
