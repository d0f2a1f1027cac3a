// Streaming calibration observers: feed batches of float data, get QuantParams.
//
// Every observer keeps state whose size depends only on its configuration (spec, bins) and on the
// number of parameters, never on the number of values observed, so a data set of any size (more
// than 2^31 values included) streams through batch by batch. Each observer works per-tensor,
// per-channel or per-group as its QuantSpec says (granularity, axis, group_size), with an affine
// or symmetric scheme, and hands its ranges to params_from_ranges().
//
// Batches: observe(data, shape) reads numel(shape) floats, row-major. Later batches must agree
// with the first on what the parameters index: per-tensor accepts any shape, per-channel needs
// the same rank and the same extent along the axis (the batch dimension may vary), per-group the
// same shape; otherwise ShapeError. A NaN or infinity anywhere in a batch throws DataError naming
// the flat index, and leaves the observer as it was before the call (no partial batch).
//
// Histogram observers (percentile, entropy, MSE) bin values on a grid of power-of-two width:
// bin j covers [(first_bin + j) * 2^e, (first_bin + j + 1) * 2^e). The exponent e is the smallest
// for which `bins` bins starting at floor(min / 2^e) reach the largest value seen so far (min is 0
// for histograms of |x|), bounded below by -120 (so 2^-e is a normal float) and so that
// |x| / 2^e < 2^30. Because both e and first_bin depend only on the running min and max, a batch
// that exceeds the range grows it by shifting the absolute bin index right by the exponent
// increase: with widths that are powers of two this merges exact groups of 2^d old bins, so a
// histogram grown over many batches, one built in a single pass, and the merge of histograms of
// parts of the data are identical, count for count.
// The price: between bins/2 and bins of the bins are in use, fewer when a lower bound of e sets
// it (values close together for their magnitude, such as a constant, or all within 2^-120 of 0).
//
// merge(other) folds in an observer of the same type and configuration (InvalidArgument
// otherwise) that observed other data: min/max and histograms then equal a single pass over both
// data sets exactly. Observers are not thread-safe; use one per thread and merge them.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/quant_params.hpp"
#include "tinyquant/shape.hpp"

namespace tinyquant {

// What callers hold: any observer behind one interface.
class Observer {
 public:
  virtual ~Observer() = default;
  // Folds one batch of numel(shape) values in. Throws DataError (non-finite value, with index),
  // ShapeError (batch disagrees with earlier ones), InvalidArgument (null data).
  virtual void observe(const float* data, const Shape& shape) = 0;
  // Quantization parameters for the data seen so far, for the shape of the first batch.
  // Throws DataError "empty calibration: no values observed" before any value.
  virtual QuantParams params() const = 0;
  // Folds in another observer of the same type and configuration (see the file comment).
  virtual void merge(const Observer& other) = 0;
  // Forgets every value observed; the configuration stays.
  virtual void reset() = 0;
  // "minmax", "moving_average_minmax", "percentile", "entropy", "mse".
  virtual const char* name() const noexcept = 0;
};

// Plumbing shared by the observers below: spec, batch checks, per-parameter batch ranges.
class ObserverBase : public Observer {
 public:
  void observe(const float* data, const Shape& shape) final;
  const QuantSpec& spec() const noexcept { return spec_; }
  int64_t values_observed() const noexcept { return values_; }
  int64_t batches_observed() const noexcept { return batches_; }
  // Number of (scale, zero point) pairs; 0 before the first non-empty batch.
  int64_t param_count() const noexcept { return slots_; }

 protected:
  explicit ObserverBase(const QuantSpec& spec);
  // Called once per non-empty, finite, shape-checked batch with its per-parameter min and max.
  virtual void absorb(const float* data, const ParamLayout& layout, const std::vector<float>& mins,
                      const std::vector<float>& maxs) = 0;
  // Per-tensor batches go to absorb_per_tensor() instead, in one pass, when this says so.
  virtual bool streams_per_tensor() const noexcept { return false; }
  // Folds in a per-tensor batch of n > 0 values; returns false, with the state unchanged, if the
  // batch holds a NaN or infinity.
  virtual bool absorb_per_tensor(const float* data, int64_t n);
  // Throws DataError if nothing was observed.
  void require_data() const;
  // Throws InvalidArgument if other is not the same type with the same spec, ShapeError if both
  // observed data of disagreeing shapes. Returns false when other has seen nothing.
  bool check_merge(const Observer& other) const;
  // Counters and shape after a successful merge.
  void merge_base(const ObserverBase& other);
  void reset_base();
  QuantParams params_from(const std::vector<float>& mins, const std::vector<float>& maxs) const;

  QuantSpec spec_;
  Shape shape_;  // of the first non-empty batch
  int64_t slots_ = 0;
  int64_t values_ = 0;
  int64_t batches_ = 0;

 private:
  // `whose`: "batch", or the merged observer's, for the message.
  void check_shape(const Shape& shape, const char* whose) const;
  [[noreturn]] void throw_non_finite(const float* data, int64_t n, const Shape& shape) const;
  void finish_batch(const ParamLayout& layout, const Shape& shape, int64_t n);
};

// Range = smallest and largest value seen, per parameter.
class MinMaxObserver final : public ObserverBase {
 public:
  explicit MinMaxObserver(const QuantSpec& spec = QuantSpec{});
  QuantParams params() const override;
  void merge(const Observer& other) override;
  void reset() override;
  const char* name() const noexcept override { return "minmax"; }
  const std::vector<float>& mins() const noexcept { return mins_; }
  const std::vector<float>& maxs() const noexcept { return maxs_; }

 protected:
  void absorb(const float* data, const ParamLayout& layout, const std::vector<float>& mins,
              const std::vector<float>& maxs) override;

 private:
  std::vector<float> mins_, maxs_;
};

// Range = exponential moving average of each batch's min and max:
//   m_1 = batch_min_1,  m_k = m_{k-1} + c * (batch_min_k - m_{k-1}),  c in (0, 1]
// (the same for max). c = 1 keeps only the last batch. merge(other) appends other's batches
// after this observer's: m = m_other + (1 - c)^n_other * (m_this - first_batch_min_other), which
// is what one pass over this stream followed by other's gives (up to rounding, kept in double).
class MovingAverageMinMaxObserver final : public ObserverBase {
 public:
  // Throws InvalidArgument unless c is finite and in (0, 1].
  explicit MovingAverageMinMaxObserver(const QuantSpec& spec = QuantSpec{}, double c = 0.01);
  QuantParams params() const override;
  void merge(const Observer& other) override;
  void reset() override;
  const char* name() const noexcept override { return "moving_average_minmax"; }
  double averaging_constant() const noexcept { return c_; }
  const std::vector<double>& mins() const noexcept { return mins_; }
  const std::vector<double>& maxs() const noexcept { return maxs_; }

 protected:
  void absorb(const float* data, const ParamLayout& layout, const std::vector<float>& mins,
              const std::vector<float>& maxs) override;

 private:
  double c_;
  std::vector<double> mins_, maxs_;
  std::vector<double> first_mins_, first_maxs_;  // of this observer's first batch, for merge
};

// One parameter's histogram (see the file comment for the grid).
struct Histogram {
  int exponent = 0;              // bin width = 2^exponent
  int64_t first_bin = 0;         // absolute index of counts[0]
  std::vector<uint64_t> counts;  // empty until the first value
  uint64_t total = 0;

  double bin_width() const noexcept;
  // Lower edge of bin j (j == counts.size() gives the upper edge of the last bin).
  double edge(int64_t j) const noexcept;
};

// Shared by the histogram observers: one Histogram per parameter plus the exact min and max.
class HistogramObserver : public ObserverBase {
 public:
  static constexpr int64_t kMinBins = 16;
  static constexpr int64_t kMaxBins = int64_t{1} << 22;

  QuantParams params() const final;
  void merge(const Observer& other) final;
  void reset() final;
  int64_t bins() const noexcept { return bins_; }
  // True when the histograms are of |x| (the range is then chosen as a threshold T >= 0).
  bool magnitude() const noexcept { return magnitude_; }
  // Throws InvalidArgument for slot outside [0, param_count()).
  const Histogram& histogram(int64_t slot) const;
  const std::vector<float>& mins() const noexcept { return mins_; }
  const std::vector<float>& maxs() const noexcept { return maxs_; }

 protected:
  // Throws InvalidArgument for bins outside [kMinBins, kMaxBins] (or below min_bins).
  HistogramObserver(const QuantSpec& spec, int64_t bins, bool magnitude, int64_t min_bins);
  void absorb(const float* data, const ParamLayout& layout, const std::vector<float>& mins,
              const std::vector<float>& maxs) final;
  // Per-tensor batches are read once: chunk by chunk, min/max (growing the grid if needed),
  // then binning while the chunk is still in cache.
  bool streams_per_tensor() const noexcept final { return true; }
  bool absorb_per_tensor(const float* data, int64_t n) final;
  // The clipping range chosen for one parameter; it is then clipped to [min, max] seen.
  virtual void choose_range(int64_t slot, double* lo, double* hi) const = 0;
  // Range for a magnitude threshold T: [-T, T] when symmetric, [min, max] clipped to it else.
  void range_from_threshold(int64_t slot, double t, double* lo, double* hi) const;
  // Extra configuration (percentile, levels) must match for merge.
  virtual bool same_options(const HistogramObserver& other) const = 0;

  int64_t bins_;
  bool magnitude_;
  std::vector<Histogram> hists_;
  std::vector<float> mins_, maxs_;

 private:
  template <bool kMagnitude>
  bool stream_per_tensor(const float* data, int64_t n);
  std::vector<uint32_t> partial_;  // scratch: 4 partial histograms for the binning loop
};

// Range = the p-th percentile of the value distribution: for affine, the lower tail at 100 - p
// and the upper tail at p; for symmetric, the p-th percentile of |x|. The estimate interpolates
// linearly inside the bin holding the rank-k value, k = ceil(p / 100 * n), so it is within one
// bin width of the exact sorted quantile (x_(k) for the upper tail, x_(n+1-k) for the lower).
// Affine ends can both land on 0 (mostly zeros and a few negative values, whose upper estimate
// is clipped to the observed maximum 0): that parameter then holds only zeros, and if every
// parameter does, params() throws DataError naming a range that was observed. With a few
// positive values instead, the upper estimate lies inside the first bin above 0 (within one bin
// width of the exact quantile 0), so the range is one bin wide and clips those values. Values all
// within the finest bin width of 0 (2^-120) keep their [min, max].
class PercentileObserver final : public HistogramObserver {
 public:
  // Throws InvalidArgument for p outside (0, 100], or p <= 50 with an affine scheme (the lower
  // tail would lie at or above the upper: at 50 the two estimates cross), or a bad bin count.
  explicit PercentileObserver(const QuantSpec& spec = QuantSpec{}, double percentile = 99.99,
                              int64_t bins = 2048);
  const char* name() const noexcept override { return "percentile"; }
  double percentile() const noexcept { return percentile_; }

 protected:
  void choose_range(int64_t slot, double* lo, double* hi) const override;
  bool same_options(const HistogramObserver& other) const override;

 private:
  double percentile_;
};

// TensorRT-style entropy calibration on a histogram of |x|, with levels = 2^(bits - 1) magnitude
// levels (int8: 128, int4: 8). For every cut bin i in [levels, used] (used = bins up to the last
// non-empty one):
//   P = counts[0, i) with every count at or beyond i added to P[i-1]  (outliers folded in),
//   Q = counts[0, i) (without the outliers) merged into `levels` levels, bin j in level
//       floor(j * levels / i), each level's sum spread evenly over the bins where P is non-zero
//       (bins where P is zero stay zero). That spreads the remainder of i / levels over the
//       levels, where TensorRT and MXNet give each level i / levels bins (rounded down) and the
//       last the rest; on the same histogram the two can pick different thresholds,
// and the threshold T = min(i * width, max|x|) of the i minimising KL(P || Q) (P, Q normalised;
// a Q that is zero where P is not makes the divergence infinite) is used, the first on ties.
// Q is built before the outliers are folded, as TensorRT and MXNet do: quantizing P itself
// would make i = levels always win with KL = 0.
// params() costs O(bins^2) per parameter (every cut builds P and Q over its bins), so bins is
// at most kMaxEntropyBins (about a second per parameter there; 2048, the default and TensorRT's,
// takes milliseconds); more throws InvalidArgument, as do fewer bins than levels and so 16-bit
// specs (32768 levels; the percentile and MSE observers take them).
class EntropyObserver final : public HistogramObserver {
 public:
  static constexpr int64_t kMaxEntropyBins = 16384;
  explicit EntropyObserver(const QuantSpec& spec = QuantSpec::int8_activations(),
                           int64_t bins = 2048);
  const char* name() const noexcept override { return "entropy"; }
  // KL(P || Q) for cut bin i of one parameter's histogram (infinity when Q misses P).
  double divergence(int64_t slot, int64_t cut) const;
  // The magnitude levels Q is merged into: 2^(bits - 1).
  int64_t levels() const noexcept { return int64_t{1} << (spec().bits - 1); }

 protected:
  void choose_range(int64_t slot, double* lo, double* hi) const override;
  bool same_options(const HistogramObserver& other) const override;
};

// Range minimising the expected squared quantization error, on a histogram of |x|. For a
// threshold T = min(i * width, max|x|), i in [1, used], with the step delta(T) that the scheme
// gives for the resulting range (symmetric: T / (2^(bits-1) - 1); affine: the width of [min, max]
// clipped to [-T, T] and widened to hold 0, over qmax - qmin), and the values of bin j taken as
// spread evenly over it, [j * width, (j + 1) * width) (the last one only up to max|x|):
//   E(T) = sum over bins j < i  of counts[j] * mean of (x - delta(T) round(x / delta(T)))^2
//                                                          (rounding to the grid of step delta)
//        + sum over bins j >= i of counts[j] * mean of (x - T)^2                     (clipping)
// Each mean is exact (the integral of a piecewise quadratic). The rounding term is what the
// grid does to those values, not the uniform-noise figure delta^2 / 12, which holds only for a
// step much finer than the data's spread: a step wider than the bulk of the data rounds it all
// to 0, at an error of the bulk's own square, which delta^2 / 12 overstates (so clipping
// outliers would look better than it is; at 4 bits, 20 outliers at 100 among N(0, 1) values
// made that model pick T = 37 at 5x the mean squared error of T = 100). The first minimising
// i wins. params() costs O(used bins x non-empty bins) per parameter, about the entropy
// observer's: 5.5 ms for 2048 filled bins (bench_observers), so a per-channel observer of a few
// hundred channels takes a second or more; fewer bins cost quadratically less.
class MseObserver final : public HistogramObserver {
 public:
  explicit MseObserver(const QuantSpec& spec = QuantSpec::int8_activations(), int64_t bins = 2048);
  const char* name() const noexcept override { return "mse"; }
  // E(T) for cut bin i of one parameter's histogram.
  double expected_error(int64_t slot, int64_t cut) const;

 protected:
  void choose_range(int64_t slot, double* lo, double* hi) const override;
  bool same_options(const HistogramObserver& other) const override;

 private:
  double step_for(int64_t slot, double t) const;
  // E(T) for one cut, summed over the first `used` bins, from the top; it stops once the sum
  // reaches `bound` (params() needs no more of a cut that cannot win).
  double cut_error(int64_t slot, int64_t cut, int64_t used, double bound) const;
};

}  // namespace tinyquant
