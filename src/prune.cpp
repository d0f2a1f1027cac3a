#include "tinyquant/prune.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "detail/check.hpp"

namespace tinyquant {

using detail::fail;

namespace {

void check_sparsity(double s, const char* what) {
  if (!(s >= 0.0 && s < 1.0)) fail<InvalidArgument>("{}: sparsity = {} is outside [0, 1)", what, s);
}

int64_t prune_count(double sparsity, int64_t n) {
  return static_cast<int64_t>(std::llround(sparsity * static_cast<double>(n)));
}

const float* checked_data(const WeightView& w, const char* what) {
  const int64_t n = numel(w.shape);
  if (n > 0 && w.data == nullptr)
    fail<InvalidArgument>("{}: weights of shape {} are null", what, to_string(w.shape));
  detail::check_finite(w.data, n, what);
  return w.data;
}

// Prunes the k lowest scores. Among equal scores the lower index is kept, so the pruned ones
// at the threshold are taken from the highest indices down. O(n). Derived scores (norms, means)
// stay double: rounding them to float would turn close but distinct scores into ties.
template <typename T>
Mask prune_lowest(const std::vector<T>& score, int64_t k) {
  const int64_t n = static_cast<int64_t>(score.size());
  Mask mask(score.size(), 1);
  if (k <= 0) return mask;
  std::vector<T> tmp(score);
  std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end());
  const T threshold = tmp[static_cast<size_t>(k - 1)];
  int64_t left = k;
  for (int64_t i = 0; i < n; ++i) {
    if (score[static_cast<size_t>(i)] < threshold) {
      mask[static_cast<size_t>(i)] = 0;
      --left;
    }
  }
  for (int64_t i = n - 1; i >= 0 && left > 0; --i) {
    if (score[static_cast<size_t>(i)] == threshold) {
      mask[static_cast<size_t>(i)] = 0;
      --left;
    }
  }
  return mask;
}

// rows x cols view of a tensor: [shape[0]][rest], a 1-D tensor as [1][n].
void as_matrix(const Shape& shape, int64_t* rows, int64_t* cols) {
  const int64_t n = numel(shape);
  if (shape.size() <= 1) {
    *rows = 1;
    *cols = n;
  } else {
    *rows = shape[0];
    *cols = shape[0] == 0 ? 0 : n / shape[0];
  }
}

}  // namespace

void apply_mask(float* weights, int64_t n, const Mask& mask) {
  if (static_cast<int64_t>(mask.size()) != n)
    fail<ShapeError>("apply_mask: mask has {} entries but the tensor has {} weights", mask.size(),
                     n);
  if (weights == nullptr && n > 0)
    fail<InvalidArgument>("apply_mask: weights of {} elements are null", n);
  for (int64_t i = 0; i < n; ++i) {
    if (mask[static_cast<size_t>(i)] == 0) weights[i] = 0.0f;
  }
}

double mask_sparsity(const Mask& mask) {
  if (mask.empty()) return 0.0;
  const auto zeros = std::count(mask.begin(), mask.end(), uint8_t{0});
  return static_cast<double>(zeros) / static_cast<double>(mask.size());
}

Mask magnitude_mask(const WeightView& w, double sparsity) {
  check_sparsity(sparsity, "magnitude_mask");
  const float* d = checked_data(w, "magnitude_mask");
  const int64_t n = numel(w.shape);
  std::vector<float> score(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) score[static_cast<size_t>(i)] = std::fabs(d[i]);
  return prune_lowest(score, prune_count(sparsity, n));
}

std::vector<Mask> global_magnitude_masks(const std::vector<WeightView>& tensors, double sparsity) {
  check_sparsity(sparsity, "global_magnitude_masks");
  if (tensors.empty()) fail<InvalidArgument>("global_magnitude_masks: the tensor list is empty");
  std::vector<float> score;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const float* d = checked_data(tensors[t], "global_magnitude_masks");
    const int64_t n = numel(tensors[t].shape);
    for (int64_t i = 0; i < n; ++i) score.push_back(std::fabs(d[i]));
  }
  const Mask all = prune_lowest(score, prune_count(sparsity, static_cast<int64_t>(score.size())));
  std::vector<Mask> out;
  size_t at = 0;
  for (const WeightView& t : tensors) {
    const size_t n = static_cast<size_t>(numel(t.shape));
    out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(at),
                     all.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  return out;
}

Mask nm_mask(const WeightView& w, int n, int m) {
  if (m < 1 || m > 256 || n < 1 || n > m)
    fail<InvalidArgument>("nm_mask: N:M = {}:{} is invalid (need 1 <= N <= M <= 256)", n, m);
  const float* d = checked_data(w, "nm_mask");
  if (w.shape.empty()) fail<ShapeError>("nm_mask: a scalar has no input axis");
  const int64_t total = numel(w.shape);
  const int64_t in = w.shape.back();
  Mask mask(static_cast<size_t>(total), 0);
  if (in == 0) return mask;
  std::vector<int64_t> order;
  for (int64_t row = 0; row < total / in; ++row) {
    for (int64_t g = 0; g < in; g += m) {
      const int64_t size = std::min<int64_t>(m, in - g);
      const int64_t base = row * in + g;
      order.resize(static_cast<size_t>(size));
      std::iota(order.begin(), order.end(), base);
      // Larger |w| first; equal |w|: lower index first (kept).
      std::stable_sort(order.begin(), order.end(),
                       [d](int64_t a, int64_t b) { return std::fabs(d[a]) > std::fabs(d[b]); });
      for (int64_t j = 0; j < std::min<int64_t>(n, size); ++j)
        mask[static_cast<size_t>(order[static_cast<size_t>(j)])] = 1;
    }
  }
  return mask;
}

Mask block_mask(const WeightView& w, int64_t block_rows, int64_t block_cols, double sparsity,
                BlockScore score) {
  check_sparsity(sparsity, "block_mask");
  if (score != BlockScore::kMean && score != BlockScore::kMax)
    fail<InvalidArgument>("block_mask: unknown block score {}", static_cast<int>(score));
  const float* d = checked_data(w, "block_mask");
  int64_t rows = 0, cols = 0;
  as_matrix(w.shape, &rows, &cols);
  if (block_rows < 1 || block_cols < 1 || rows % block_rows != 0 || cols % block_cols != 0)
    fail<InvalidArgument>(
        "block_mask: block {}x{} does not tile the {}x{} matrix of a tensor of shape {}",
        block_rows, block_cols, rows, cols, to_string(w.shape));
  // An empty tensor has no block to rank, however many rows it has ([2^40, 0]).
  if (rows == 0 || cols == 0) return Mask{};
  const int64_t brs = rows / block_rows, bcs = cols / block_cols;
  std::vector<double> scores(static_cast<size_t>(brs * bcs));
  for (int64_t br = 0; br < brs; ++br) {
    for (int64_t bc = 0; bc < bcs; ++bc) {
      double sum = 0.0, mx = 0.0;
      for (int64_t r = 0; r < block_rows; ++r) {
        for (int64_t c = 0; c < block_cols; ++c) {
          const double a = std::fabs(d[(br * block_rows + r) * cols + bc * block_cols + c]);
          sum += a;
          mx = std::max(mx, a);
        }
      }
      scores[static_cast<size_t>(br * bcs + bc)] =
          score == BlockScore::kMax ? mx : sum / static_cast<double>(block_rows * block_cols);
    }
  }
  const Mask blocks = prune_lowest(scores, prune_count(sparsity, brs * bcs));
  Mask mask(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      mask[static_cast<size_t>(r * cols + c)] =
          blocks[static_cast<size_t>((r / block_rows) * bcs + c / block_cols)];
  }
  return mask;
}

namespace {
// Copies slice s (along axis) of a row-major tensor: outer x [axis] x inner.
void slice_geometry(const Shape& shape, int axis, int64_t* outer, int64_t* len, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i) *outer *= shape[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < shape.size(); ++i) *inner *= shape[i];
  *len = shape[static_cast<size_t>(axis)];
}
}  // namespace

Mask structured_mask(const WeightView& w, int axis, double sparsity, Criterion criterion) {
  check_sparsity(sparsity, "structured_mask");
  if (criterion != Criterion::kL1 && criterion != Criterion::kL2 &&
      criterion != Criterion::kGeometricMedian)
    fail<InvalidArgument>("structured_mask: unknown criterion {}", static_cast<int>(criterion));
  const float* d = checked_data(w, "structured_mask");
  const int a = normalize_axis(axis, w.shape, "structured_mask");
  // Slices of an empty tensor have no norm to rank (and may still be many: [2^40, 0]).
  if (numel(w.shape) == 0)
    fail<DataError>("structured_mask: tensor of shape {} is empty", to_string(w.shape));
  int64_t outer = 0, len = 0, inner = 0;
  slice_geometry(w.shape, a, &outer, &len, &inner);
  // Gather each slice contiguously: slices[s][outer * inner].
  const int64_t per = outer * inner;
  std::vector<double> slices(static_cast<size_t>(len * per));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t s = 0; s < len; ++s) {
      for (int64_t i = 0; i < inner; ++i)
        slices[static_cast<size_t>(s * per + o * inner + i)] = d[(o * len + s) * inner + i];
    }
  }
  std::vector<double> score(static_cast<size_t>(len));
  for (int64_t s = 0; s < len; ++s) {
    const double* v = &slices[static_cast<size_t>(s * per)];
    double acc = 0.0;
    if (criterion == Criterion::kL1) {
      for (int64_t i = 0; i < per; ++i) acc += std::fabs(v[i]);
    } else if (criterion == Criterion::kL2) {
      for (int64_t i = 0; i < per; ++i) acc += v[i] * v[i];
      acc = std::sqrt(acc);
    } else {
      for (int64_t t = 0; t < len; ++t) {
        if (t == s) continue;
        const double* u = &slices[static_cast<size_t>(t * per)];
        double d2 = 0.0;
        for (int64_t i = 0; i < per; ++i) d2 += (v[i] - u[i]) * (v[i] - u[i]);
        acc += std::sqrt(d2);
      }
    }
    score[static_cast<size_t>(s)] = acc;
  }
  return prune_lowest(score, prune_count(sparsity, len));
}

Mask expand_slice_mask(const Mask& slices, const Shape& shape, int axis) {
  const int a = normalize_axis(axis, shape, "expand_slice_mask");
  int64_t outer = 0, len = 0, inner = 0;
  slice_geometry(shape, a, &outer, &len, &inner);
  if (static_cast<int64_t>(slices.size()) != len)
    fail<ShapeError>("expand_slice_mask: mask has {} entries but axis {} of shape {} has {}",
                     slices.size(), axis, to_string(shape), len);
  Mask out(static_cast<size_t>(outer * len * inner));
  if (out.empty()) return out;  // nothing to fill, however many slices ([2^40, 4, 0])
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t s = 0; s < len; ++s) {
      for (int64_t i = 0; i < inner; ++i)
        out[static_cast<size_t>((o * len + s) * inner + i)] = slices[static_cast<size_t>(s)];
    }
  }
  return out;
}

ShrinkResult shrink(const WeightView& layer, const float* bias, const WeightView& next,
                    const Mask& keep) {
  if (layer.shape.empty()) fail<ShapeError>("shrink: the layer is a scalar");
  if (numel(layer.shape) > 0 && layer.data == nullptr)
    fail<InvalidArgument>("shrink: layer weights of shape {} are null", to_string(layer.shape));
  const int64_t out = layer.shape[0];
  if (static_cast<int64_t>(keep.size()) != out)
    fail<ShapeError>("shrink: mask has {} entries but the layer of shape {} has {} outputs",
                     keep.size(), to_string(layer.shape), out);
  ShrinkResult r;
  for (int64_t o = 0; o < out; ++o) {
    if (keep[static_cast<size_t>(o)] != 0) r.kept.push_back(o);
  }
  if (r.kept.empty()) fail<InvalidArgument>("shrink: the mask keeps none of the {} outputs", out);
  const int64_t rest = numel(layer.shape) / out;
  const int64_t kept = static_cast<int64_t>(r.kept.size());
  r.shape = layer.shape;
  r.shape[0] = kept;
  for (int64_t o : r.kept) {
    r.weights.insert(r.weights.end(), layer.data + o * rest, layer.data + (o + 1) * rest);
    if (bias != nullptr) r.bias.push_back(bias[o]);
  }
  if (next.data != nullptr) {
    if (next.shape.empty() || next.shape.back() != out)
      fail<ShapeError>("shrink: next layer of shape {} must have {} inputs on its last axis",
                       to_string(next.shape), out);
    const int64_t rows = numel(next.shape) / out;
    r.next_shape = next.shape;
    r.next_shape.back() = kept;
    r.next_weights.reserve(static_cast<size_t>(rows * kept));
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t o : r.kept) r.next_weights.push_back(next.data[row * out + o]);
    }
  }
  return r;
}

namespace {
void check_window(int64_t begin, int64_t end, int64_t frequency, const char* what) {
  if (begin < 0) fail<InvalidArgument>("{}: begin_step = {} must be >= 0", what, begin);
  if (end <= begin)
    fail<InvalidArgument>("{}: end_step = {} must be > begin_step = {}", what, end, begin);
  if (frequency <= 0) fail<InvalidArgument>("{}: frequency = {} must be >= 1", what, frequency);
}
bool in_update_window(int64_t t, int64_t begin, int64_t end, int64_t frequency) {
  return t >= begin && t <= end && (t - begin) % frequency == 0;
}
}  // namespace

void ConstantSparsity::validate() const {
  check_sparsity(target, "ConstantSparsity target");
  check_window(begin_step, end_step, frequency, "ConstantSparsity");
}
double ConstantSparsity::sparsity(int64_t) const {
  validate();
  return target;
}
bool ConstantSparsity::should_update(int64_t step) const {
  validate();
  return in_update_window(step, begin_step, end_step, frequency);
}

void PolynomialDecay::validate() const {
  check_sparsity(initial, "PolynomialDecay initial");
  check_sparsity(final, "PolynomialDecay final");
  check_window(begin_step, end_step, frequency, "PolynomialDecay");
  if (!(power > 0.0) || !std::isfinite(power))
    fail<InvalidArgument>("PolynomialDecay: power = {} must be finite and > 0", power);
}
double PolynomialDecay::sparsity(int64_t step) const {
  validate();
  const int64_t t = std::clamp(step, begin_step, end_step);
  const double progress =
      static_cast<double>(t - begin_step) / static_cast<double>(end_step - begin_step);
  // Weighted as s_i * f + s_f * (1 - f): the same polynomial, but exactly s_i at t0 and s_f at
  // t_end (s_f + (s_i - s_f) rounds, e.g. 0.9 + (0.1 - 0.9) = 0.09999999999999998).
  const double f = std::pow(1.0 - progress, power);
  return initial * f + final * (1.0 - f);
}
bool PolynomialDecay::should_update(int64_t step) const {
  validate();
  return in_update_window(step, begin_step, end_step, frequency);
}

}  // namespace tinyquant
