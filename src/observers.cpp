#include "tinyquant/observers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <typeinfo>

#include "detail/check.hpp"

namespace tinyquant {

using detail::fail;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Calls f(slot, pointer, length) for contiguous runs of data that share one parameter, in
// memory order, so every pass reads the batch sequentially.
template <class F>
void for_each_run(const ParamLayout& l, const float* data, int64_t n, F&& f) {
  switch (l.granularity) {
    case Granularity::kPerTensor:
      f(int64_t{0}, data, n);
      return;
    case Granularity::kPerChannel:
      for (int64_t o = 0; o < l.outer; ++o)
        for (int64_t a = 0; a < l.axis_len; ++a)
          f(a, data + (o * l.axis_len + a) * l.inner, l.inner);
      return;
    case Granularity::kPerGroup:
      if (l.inner == 1) {
        for (int64_t o = 0; o < l.outer; ++o)
          for (int64_t g = 0; g < l.groups; ++g) {
            const int64_t start = g * l.group_size;
            f(o * l.groups + g, data + o * l.axis_len + start,
              std::min(l.group_size, l.axis_len - start));
          }
      } else {
        for (int64_t o = 0; o < l.outer; ++o)
          for (int64_t a = 0; a < l.axis_len; ++a)
            for (int64_t i = 0; i < l.inner; ++i)
              f((o * l.groups + a / l.group_size) * l.inner + i,
                data + (o * l.axis_len + a) * l.inner + i, int64_t{1});
      }
      return;
  }
}

// Non-zero in bit 31 exactly when x is NaN or infinite: (bits & exponent) + 1 ulp of exponent
// reaches bit 31 only for an all-ones exponent.
inline uint32_t nonfinite_bit(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b & 0x7F800000u) + 0x00800000u;
}

// Folds the min and max of p[0, n) into *lo_out and *hi_out and sets bit 31 of *bad_out when any
// value is NaN or infinite, calling each(i, x) for every element too. 64 independent lanes in
// local arrays: the lane loop is an element-wise loop the compiler vectorises, each() inlined
// into it (a plain min reduction would need reassociation, which it refuses without
// -ffast-math).
template <typename Each>
void minmax_scan(const float* p, int64_t n, float* lo_out, float* hi_out, uint32_t* bad_out,
                 Each each) {
  constexpr int kLanes = 64;
  alignas(64) float lo[kLanes];
  alignas(64) float hi[kLanes];
  alignas(64) uint32_t bad[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    lo[j] = kInf;
    hi[j] = -kInf;
    bad[j] = 0;
  }
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const float* q = p + i;
    for (int j = 0; j < kLanes; ++j) {
      const float x = q[j];
      lo[j] = x < lo[j] ? x : lo[j];
      hi[j] = x > hi[j] ? x : hi[j];
      bad[j] |= nonfinite_bit(x);
      each(i + j, x);
    }
  }
  float l = *lo_out, h = *hi_out;
  uint32_t any = *bad_out;
  for (; i < n; ++i) {
    const float x = p[i];
    l = std::min(l, x);
    h = std::max(h, x);
    any |= nonfinite_bit(x);
    each(i, x);
  }
  for (int j = 0; j < kLanes; ++j) {
    l = std::min(l, lo[j]);
    h = std::max(h, hi[j]);
    any |= bad[j];
  }
  *lo_out = l;
  *hi_out = h;
  *bad_out = any & 0x80000000u;
}

void minmax_run(const float* p, int64_t n, float* lo_out, float* hi_out, uint32_t* bad_out) {
  minmax_scan(p, n, lo_out, hi_out, bad_out, [](int64_t, float) {});
}

bool same_spec(const QuantSpec& a, const QuantSpec& b) {
  return a.bits == b.bits && a.scheme == b.scheme && a.narrow_range == b.narrow_range &&
         a.granularity == b.granularity && a.axis == b.axis &&
         (a.granularity != Granularity::kPerGroup || a.group_size == b.group_size);
}

// Every field same_spec compares, so a merge error shows the one that differs.
std::string spec_text(const QuantSpec& s) {
  std::string t = fmt::format("{} {} {}-bit{} axis {}", to_string(s.granularity),
                              to_string(s.scheme), s.bits, s.narrow_range ? " narrow" : "", s.axis);
  if (s.granularity == Granularity::kPerGroup) t += fmt::format(" group {}", s.group_size);
  return t;
}

// ---- power-of-two histogram grid ---------------------------------------------------------------

constexpr int kMinExponent = -120;  // 2^-e stays a normal float

// floor(a / 2^d) for any sign.
int64_t floor_shift(int64_t a, int d) {
  if (d <= 0) return a;
  if (d >= 62) return a < 0 ? -1 : 0;
  return a >= 0 ? a >> d : -((-a - 1) >> d) - 1;
}

int64_t grid_index(double x, int e) {
  return static_cast<int64_t>(std::floor(std::ldexp(x, -e)));
}

// Smallest exponent >= at_least whose `bins` bins from floor(lo / 2^e) reach hi.
int required_exponent(double lo, double hi, int64_t bins, int at_least) {
  int e = std::max(kMinExponent, at_least);
  const double m = std::max(std::fabs(lo), std::fabs(hi));
  if (m > 0.0) e = std::max(e, std::ilogb(m) - 29);  // |x| / 2^e < 2^30: indices fit int32
  while (grid_index(hi, e) - grid_index(lo, e) + 1 > bins) ++e;
  return e;
}

// Adds the counts of a histogram on grid (e, first) into h, whose grid is at least as coarse and
// covers every non-empty source bin.
void add_regridded(Histogram* h, int e, int64_t first, const std::vector<uint64_t>& counts) {
  const int d = h->exponent - e;
  const int64_t last = static_cast<int64_t>(h->counts.size()) - 1;
  for (size_t j = 0; j < counts.size(); ++j) {
    if (counts[j] == 0) continue;
    const int64_t k = floor_shift(first + static_cast<int64_t>(j), d) - h->first_bin;
    h->counts[static_cast<size_t>(std::clamp<int64_t>(k, 0, last))] += counts[j];
    h->total += counts[j];
  }
}

// Makes h's grid the canonical one for the running range [lo, hi], regridding what it holds.
void fit_grid(Histogram* h, double lo, double hi, int64_t bins) {
  if (h->counts.empty()) {
    h->exponent = required_exponent(lo, hi, bins, kMinExponent);
    h->first_bin = grid_index(lo, h->exponent);
    h->counts.assign(static_cast<size_t>(bins), 0);
    h->total = 0;
    return;
  }
  const int e = required_exponent(lo, hi, bins, h->exponent);
  const int64_t first = grid_index(lo, e);
  if (e == h->exponent && first == h->first_bin) return;
  Histogram old = std::move(*h);
  h->exponent = e;
  h->first_bin = first;
  h->counts.assign(static_cast<size_t>(bins), 0);
  h->total = 0;
  add_regridded(h, old.exponent, old.first_bin, old.counts);
}

// Bin of x on the grid: floor(x * 2^-e) - first, clamped; branch-free so it vectorises. For
// values inside the grid the product is below 2^30 in magnitude and exact (power-of-two scale)
// unless it falls below the normal range, where only its floor, 0 or -1, matters. Others (in a
// block about to widen the range and be redone, or holding a NaN about to be reported) must still
// be defined behaviour: a product of magnitude >= 2^30, infinite or NaN is replaced by 0 through
// its exponent bits before the conversion (a float clamp here keeps GCC from vectorising), so
// neither the conversion nor the subtraction can overflow.
template <bool kMagnitude>
inline int32_t bin_of(float x, float scale, int32_t first, int32_t top) {
  float v = (kMagnitude ? std::fabs(x) : x) * scale;
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  const uint32_t exponent = (b >> 23) & 0xFFu;
  b &= 0u - static_cast<uint32_t>(exponent < 127u + 30u);
  std::memcpy(&v, &b, sizeof v);
  int32_t t = static_cast<int32_t>(v);
  t -= static_cast<int32_t>(static_cast<float>(t) > v);
  // A negative x whose product underflowed to -0 (below 2^-149 on the grid) is in bin -1, as the
  // grid's own floor (in double) puts it; -0 itself stays in bin 0.
  if (!kMagnitude) t -= static_cast<int32_t>(x < 0.0f) & static_cast<int32_t>(v == 0.0f);
  t -= first;
  t = t < 0 ? 0 : t;
  return t > top ? top : t;
}

// Counts precomputed indices into 4 partial 32-bit histograms of `bins` bins each, taken in
// turn so consecutive increments of one bin do not wait on each other's store.
void scatter_block(const int32_t* idx, int64_t m, int64_t bins, uint32_t* partial) {
  uint32_t* h0 = partial;
  uint32_t* h1 = h0 + bins;
  uint32_t* h2 = h1 + bins;
  uint32_t* h3 = h2 + bins;
  int64_t j = 0;
  for (; j + 4 <= m; j += 4) {
    ++h0[idx[j]];
    ++h1[idx[j + 1]];
    ++h2[idx[j + 2]];
    ++h3[idx[j + 3]];
  }
  for (; j < m; ++j) ++h0[idx[j]];
}

// Counts p[0, n) (inside h's grid) into the 4 partial histograms of h.counts.size() bins each
// (scatter_block). Indices are computed a block at a time in a loop the compiler vectorises. n
// must stay below 2^32 between flushes.
template <bool kMagnitude>
void count_block(const Histogram& h, const float* p, int64_t n, uint32_t* partial) {
  const float scale = std::ldexp(1.0f, -h.exponent);
  const int32_t first = static_cast<int32_t>(h.first_bin);
  const int64_t bins = static_cast<int64_t>(h.counts.size());
  const int32_t top = static_cast<int32_t>(bins - 1);
  constexpr int64_t kBlock = 1024;
  int32_t idx[kBlock];
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t m = std::min(kBlock, n - start);
    const float* q = p + start;
    for (int64_t j = 0; j < m; ++j) idx[j] = bin_of<kMagnitude>(q[j], scale, first, top);
    scatter_block(idx, m, bins, partial);
  }
}

// Adds the partial histograms into h and clears them.
void flush_partial(Histogram* h, uint32_t* partial) {
  const size_t bins = h->counts.size();
  uint64_t added = 0;
  for (size_t b = 0; b < bins; ++b) {
    const uint64_t c =
        uint64_t{partial[b]} + partial[b + bins] + partial[b + 2 * bins] + partial[b + 3 * bins];
    h->counts[b] += c;
    added += c;
    partial[b] = partial[b + bins] = partial[b + 2 * bins] = partial[b + 3 * bins] = 0;
  }
  h->total += added;
}

constexpr int64_t kFlushEvery = int64_t{1} << 30;  // each partial bin stays below 2^31

// The per-tensor streaming kernel: bin indices of q[0, m) on h's grid and, in the same read, the
// block's min, max and non-finite flag (see minmax_scan).
template <bool kMagnitude>
void index_block(const Histogram& h, const float* q, int64_t m, int32_t* idx, float* lo_out,
                 float* hi_out, uint32_t* bad_out) {
  const float scale = std::ldexp(1.0f, -h.exponent);
  const auto first = static_cast<int32_t>(h.first_bin);
  const auto top = static_cast<int32_t>(h.counts.size()) - 1;
  *lo_out = kInf;
  *hi_out = -kInf;
  *bad_out = 0;
  minmax_scan(q, m, lo_out, hi_out, bad_out, [idx, scale, first, top](int64_t i, float x) {
    idx[i] = bin_of<kMagnitude>(x, scale, first, top);
  });
}

// Adds p[0, n) to h (whose grid already covers them).
template <bool kMagnitude>
void bin_run(Histogram* h, const float* p, int64_t n, std::vector<uint32_t>* partial) {
  const int64_t bins = static_cast<int64_t>(h->counts.size());
  if (n < 4 * bins) {  // short run: the partials would cost more than they save
    const float scale = std::ldexp(1.0f, -h->exponent);
    const auto first = static_cast<int32_t>(h->first_bin);
    const auto top = static_cast<int32_t>(bins - 1);
    for (int64_t i = 0; i < n; ++i)
      ++h->counts[static_cast<size_t>(bin_of<kMagnitude>(p[i], scale, first, top))];
    h->total += static_cast<uint64_t>(n);
    return;
  }
  partial->assign(static_cast<size_t>(4 * bins), 0);
  for (int64_t start = 0; start < n; start += kFlushEvery) {
    count_block<kMagnitude>(*h, p + start, std::min(kFlushEvery, n - start), partial->data());
    flush_partial(h, partial->data());
  }
}

}  // namespace

// ---- ObserverBase ------------------------------------------------------------------------------

ObserverBase::ObserverBase(const QuantSpec& spec) : spec_(spec) {
  spec_.validate();
}

void ObserverBase::check_shape(const Shape& shape, const char* whose) const {
  if (slots_ == 0 || spec_.granularity == Granularity::kPerTensor) return;
  if (spec_.granularity == Granularity::kPerGroup) {
    if (shape != shape_)
      fail<ShapeError>(
          "{} observer: {} shape {} differs from the first batch's {} (per-group "
          "parameters need the same shape)",
          name(), whose, to_string(shape), to_string(shape_));
    return;
  }
  if (shape.size() != shape_.size())
    fail<ShapeError>("{} observer: {} shape {} has rank {}, but the first batch's {} has rank {}",
                     name(), whose, to_string(shape), shape.size(), to_string(shape_),
                     shape_.size());
  const auto axis = static_cast<size_t>(normalize_axis(spec_.axis, shape_, "observer"));
  if (shape[axis] != shape_[axis])
    fail<ShapeError>(
        "{} observer: {} shape {} has {} channels along axis {}, but the first "
        "batch's {} has {}",
        name(), whose, to_string(shape), shape[axis], spec_.axis, to_string(shape_), shape_[axis]);
}

void ObserverBase::observe(const float* data, const Shape& shape) {
  check_shape(shape, "batch");
  const int64_t n = numel(shape);
  if (n == 0) return;
  if (data == nullptr)
    fail<InvalidArgument>("{} observer: data is null for a batch of shape {}", name(),
                          to_string(shape));
  const ParamLayout layout = param_layout(spec_, shape);
  if (layout.granularity == Granularity::kPerTensor && streams_per_tensor()) {
    if (!absorb_per_tensor(data, n)) throw_non_finite(data, n, shape);
    finish_batch(layout, shape, n);
    return;
  }
  std::vector<float> mins(static_cast<size_t>(layout.count), kInf);
  std::vector<float> maxs(static_cast<size_t>(layout.count), -kInf);
  uint32_t bad = 0;
  if (layout.granularity == Granularity::kPerChannel && layout.inner < 16) {
    // Channels on (nearly) the last axis: rows of axis_len * inner values, one element per
    // (channel, inner) position, folded element-wise into a row of running mins and maxs.
    const int64_t row = layout.axis_len * layout.inner;
    std::vector<float> lo(static_cast<size_t>(row), kInf), hi(static_cast<size_t>(row), -kInf);
    std::vector<uint32_t> flags(static_cast<size_t>(row), 0);
    for (int64_t o = 0; o < layout.outer; ++o) {
      const float* p = data + o * row;
      for (int64_t j = 0; j < row; ++j) {
        const float x = p[j];
        uint32_t b;
        std::memcpy(&b, &x, sizeof b);
        lo[static_cast<size_t>(j)] =
            x < lo[static_cast<size_t>(j)] ? x : lo[static_cast<size_t>(j)];
        hi[static_cast<size_t>(j)] =
            x > hi[static_cast<size_t>(j)] ? x : hi[static_cast<size_t>(j)];
        flags[static_cast<size_t>(j)] |= (b & 0x7F800000u) + 0x00800000u;
      }
    }
    for (int64_t j = 0; j < row; ++j) {
      const auto s = static_cast<size_t>(j / layout.inner);
      mins[s] = std::min(mins[s], lo[static_cast<size_t>(j)]);
      maxs[s] = std::max(maxs[s], hi[static_cast<size_t>(j)]);
      bad |= flags[static_cast<size_t>(j)] & 0x80000000u;
    }
  } else {
    for_each_run(layout, data, n, [&](int64_t slot, const float* p, int64_t len) {
      const auto s = static_cast<size_t>(slot);
      minmax_run(p, len, &mins[s], &maxs[s], &bad);
    });
  }
  if (bad != 0) throw_non_finite(data, n, shape);
  absorb(data, layout, mins, maxs);
  finish_batch(layout, shape, n);
}

void ObserverBase::throw_non_finite(const float* data, int64_t n, const Shape& shape) const {
  const int64_t i = detail::first_non_finite(data, n);
  fail<DataError>("{} observer: non-finite value {} at index {} of a batch of shape {}", name(),
                  data[i], i, to_string(shape));
}

void ObserverBase::finish_batch(const ParamLayout& layout, const Shape& shape, int64_t n) {
  if (slots_ == 0) {
    shape_ = shape;
    slots_ = layout.count;
  }
  values_ += n;
  ++batches_;
}

bool ObserverBase::absorb_per_tensor(const float*, int64_t) {
  return true;
}

void ObserverBase::require_data() const {
  if (values_ == 0) fail<DataError>("{} observer: empty calibration: no values observed", name());
}

bool ObserverBase::check_merge(const Observer& other) const {
  const auto* o = dynamic_cast<const ObserverBase*>(&other);
  if (o == nullptr || typeid(other) != typeid(*this))
    fail<InvalidArgument>("{} observer: cannot merge a {} observer into it", name(), other.name());
  if (!same_spec(spec_, o->spec_))
    fail<InvalidArgument>(
        "{} observer: cannot merge an observer with a different spec (this one {}, the other {})",
        name(), spec_text(spec_), spec_text(o->spec_));
  if (o->values_ == 0) return false;
  check_shape(o->shape_, "the merged observer's first batch");
  return true;
}

void ObserverBase::merge_base(const ObserverBase& other) {
  if (slots_ == 0) {
    shape_ = other.shape_;
    slots_ = other.slots_;
  }
  values_ += other.values_;
  batches_ += other.batches_;
}

void ObserverBase::reset_base() {
  shape_.clear();
  slots_ = 0;
  values_ = 0;
  batches_ = 0;
}

QuantParams ObserverBase::params_from(const std::vector<float>& mins,
                                      const std::vector<float>& maxs) const {
  try {
    return params_from_ranges(spec_, shape_, mins, maxs);
  } catch (const DataError& e) {
    fail<DataError>("{} observer ({} values in {} batches): {}", name(), values_, batches_,
                    e.what());
  }
}

// ---- MinMaxObserver ----------------------------------------------------------------------------

MinMaxObserver::MinMaxObserver(const QuantSpec& spec) : ObserverBase(spec) {}

void MinMaxObserver::absorb(const float*, const ParamLayout& layout, const std::vector<float>& mins,
                            const std::vector<float>& maxs) {
  if (mins_.empty()) {
    mins_.assign(static_cast<size_t>(layout.count), kInf);
    maxs_.assign(static_cast<size_t>(layout.count), -kInf);
  }
  for (size_t s = 0; s < mins.size(); ++s) {
    mins_[s] = std::min(mins_[s], mins[s]);
    maxs_[s] = std::max(maxs_[s], maxs[s]);
  }
}

QuantParams MinMaxObserver::params() const {
  require_data();
  return params_from(mins_, maxs_);
}

void MinMaxObserver::merge(const Observer& other) {
  if (!check_merge(other)) return;
  const auto& o = static_cast<const MinMaxObserver&>(other);
  if (mins_.empty()) {
    mins_ = o.mins_;
    maxs_ = o.maxs_;
  } else {
    for (size_t s = 0; s < mins_.size(); ++s) {
      mins_[s] = std::min(mins_[s], o.mins_[s]);
      maxs_[s] = std::max(maxs_[s], o.maxs_[s]);
    }
  }
  merge_base(o);
}

void MinMaxObserver::reset() {
  mins_.clear();
  maxs_.clear();
  reset_base();
}

// ---- MovingAverageMinMaxObserver ---------------------------------------------------------------

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(const QuantSpec& spec, double c)
    : ObserverBase(spec), c_(c) {
  if (!(std::isfinite(c) && c > 0.0 && c <= 1.0))
    fail<InvalidArgument>(
        "moving_average_minmax observer: averaging constant c = {} must be in "
        "(0, 1]",
        c);
}

void MovingAverageMinMaxObserver::absorb(const float*, const ParamLayout&,
                                         const std::vector<float>& mins,
                                         const std::vector<float>& maxs) {
  if (mins_.empty()) {
    mins_.assign(mins.begin(), mins.end());
    maxs_.assign(maxs.begin(), maxs.end());
    first_mins_ = mins_;
    first_maxs_ = maxs_;
    return;
  }
  if (c_ == 1.0) {  // the last batch, exactly: m + (b - m) can lose b next to a huge m
    mins_.assign(mins.begin(), mins.end());
    maxs_.assign(maxs.begin(), maxs.end());
    return;
  }
  for (size_t s = 0; s < mins.size(); ++s) {
    mins_[s] += c_ * (static_cast<double>(mins[s]) - mins_[s]);
    maxs_[s] += c_ * (static_cast<double>(maxs[s]) - maxs_[s]);
  }
}

QuantParams MovingAverageMinMaxObserver::params() const {
  require_data();
  std::vector<float> lo(mins_.size()), hi(maxs_.size());
  for (size_t s = 0; s < lo.size(); ++s) {
    // The average of the mins never exceeds that of the maxs, but its rounding can (batches whose
    // min and max nearly meet, next to much larger ones): such a pair is taken in order.
    lo[s] = static_cast<float>(std::min(mins_[s], maxs_[s]));
    hi[s] = static_cast<float>(std::max(mins_[s], maxs_[s]));
  }
  return params_from(lo, hi);
}

void MovingAverageMinMaxObserver::merge(const Observer& other) {
  const bool has_data = check_merge(other);
  const auto& o = static_cast<const MovingAverageMinMaxObserver&>(other);
  if (o.c_ != c_)
    fail<InvalidArgument>("moving_average_minmax observer: cannot merge c = {} into c = {}", o.c_,
                          c_);
  if (!has_data) return;
  if (mins_.empty()) {
    mins_ = o.mins_;
    maxs_ = o.maxs_;
    first_mins_ = o.first_mins_;
    first_maxs_ = o.first_maxs_;
  } else {
    // Other's stream restarted from its first batch; replace that start by this state.
    const double decay = std::pow(1.0 - c_, static_cast<double>(o.batches_));
    for (size_t s = 0; s < mins_.size(); ++s) {
      mins_[s] = o.mins_[s] + decay * (mins_[s] - o.first_mins_[s]);
      maxs_[s] = o.maxs_[s] + decay * (maxs_[s] - o.first_maxs_[s]);
    }
  }
  merge_base(o);
}

void MovingAverageMinMaxObserver::reset() {
  mins_.clear();
  maxs_.clear();
  first_mins_.clear();
  first_maxs_.clear();
  reset_base();
}

// ---- Histogram ---------------------------------------------------------------------------------

double Histogram::bin_width() const noexcept {
  return std::ldexp(1.0, exponent);
}

double Histogram::edge(int64_t j) const noexcept {
  return std::ldexp(static_cast<double>(first_bin + j), exponent);
}

// ---- HistogramObserver -------------------------------------------------------------------------

HistogramObserver::HistogramObserver(const QuantSpec& spec, int64_t bins, bool magnitude,
                                     int64_t min_bins)
    : ObserverBase(spec), bins_(bins), magnitude_(magnitude) {
  const int64_t lo = std::max(kMinBins, min_bins);
  if (bins < lo || bins > kMaxBins)
    fail<InvalidArgument>("histogram observer: bins = {} is outside [{}, {}]", bins, lo, kMaxBins);
}

const Histogram& HistogramObserver::histogram(int64_t slot) const {
  if (slot < 0 || slot >= static_cast<int64_t>(hists_.size()))
    fail<InvalidArgument>("{} observer: histogram slot {} is outside [0, {})", name(), slot,
                          hists_.size());
  return hists_[static_cast<size_t>(slot)];
}

void HistogramObserver::absorb(const float* data, const ParamLayout& layout,
                               const std::vector<float>& mins, const std::vector<float>& maxs) {
  if (hists_.empty()) {
    hists_.resize(static_cast<size_t>(layout.count));
    mins_.assign(static_cast<size_t>(layout.count), kInf);
    maxs_.assign(static_cast<size_t>(layout.count), -kInf);
  }
  // Grow every grid first, so the binning pass never meets a value outside its window.
  for (size_t s = 0; s < mins.size(); ++s) {
    mins_[s] = std::min(mins_[s], mins[s]);
    maxs_[s] = std::max(maxs_[s], maxs[s]);
    const double lo = mins_[s], hi = maxs_[s];
    if (magnitude_)
      fit_grid(&hists_[s], 0.0, std::max(-lo, hi), bins_);
    else
      fit_grid(&hists_[s], lo, hi, bins_);
  }
  const int64_t n = layout.outer * layout.axis_len * layout.inner;
  for_each_run(layout, data, n, [&](int64_t slot, const float* p, int64_t len) {
    Histogram* h = &hists_[static_cast<size_t>(slot)];
    if (magnitude_)
      bin_run<true>(h, p, len, &partial_);
    else
      bin_run<false>(h, p, len, &partial_);
  });
}

bool HistogramObserver::absorb_per_tensor(const float* data, int64_t n) {
  return magnitude_ ? stream_per_tensor<true>(data, n) : stream_per_tensor<false>(data, n);
}

// Reads the batch once, a block at a time: indices, min, max and the non-finite flag in one
// loop; in the rare block that widens the range, the grid grows and the indices are redone.
template <bool kMagnitude>
bool HistogramObserver::stream_per_tensor(const float* data, int64_t n) {
  const bool fresh = hists_.empty();
  if (fresh) {
    hists_.resize(1);
    mins_.assign(1, kInf);
    maxs_.assign(1, -kInf);
  }
  Histogram* h = &hists_[0];
  const Histogram backup = *h;  // bins * 8 bytes: restored if the batch turns out non-finite
  const float backup_min = mins_[0], backup_max = maxs_[0];
  partial_.assign(static_cast<size_t>(4 * bins_), 0);
  uint32_t* partial = partial_.data();
  constexpr int64_t kBlock = 2048;
  alignas(64) int32_t idx[kBlock];
  int64_t since_flush = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t m = std::min(kBlock, n - start);
    const float* q = data + start;
    float lo = kInf, hi = -kInf;
    uint32_t bad = 0;
    if (!h->counts.empty())
      index_block<kMagnitude>(*h, q, m, idx, &lo, &hi, &bad);
    else
      minmax_run(q, m, &lo, &hi, &bad);
    if (bad != 0) {
      if (fresh) {
        hists_.clear();
        mins_.clear();
        maxs_.clear();
      } else {
        *h = backup;
        mins_[0] = backup_min;
        maxs_[0] = backup_max;
      }
      return false;
    }
    if (lo < mins_[0] || hi > maxs_[0] || h->counts.empty()) {
      mins_[0] = std::min(mins_[0], lo);
      maxs_[0] = std::max(maxs_[0], hi);
      if (!h->counts.empty()) flush_partial(h, partial);  // partials are on the old grid
      since_flush = 0;
      const double a = mins_[0], b = maxs_[0];
      if (kMagnitude)
        fit_grid(h, 0.0, std::max(-a, b), bins_);
      else
        fit_grid(h, a, b, bins_);
      index_block<kMagnitude>(*h, q, m, idx, &lo, &hi, &bad);
    }
    scatter_block(idx, m, bins_, partial);
    since_flush += m;
    if (since_flush >= kFlushEvery) {
      flush_partial(h, partial);
      since_flush = 0;
    }
  }
  flush_partial(h, partial);
  return true;
}

void HistogramObserver::range_from_threshold(int64_t slot, double t, double* lo, double* hi) const {
  const auto s = static_cast<size_t>(slot);
  if (spec_.scheme == Scheme::kSymmetric) {
    *lo = -t;
    *hi = t;
  } else {
    *lo = std::max(static_cast<double>(mins_[s]), -t);
    *hi = std::min(static_cast<double>(maxs_[s]), t);
  }
}

QuantParams HistogramObserver::params() const {
  require_data();
  std::vector<float> lo(hists_.size()), hi(hists_.size());
  for (size_t s = 0; s < hists_.size(); ++s) {
    double l = 0.0, h = 0.0;
    choose_range(static_cast<int64_t>(s), &l, &h);
    const double mn = mins_[s], mx = maxs_[s];
    if (!magnitude_ || spec_.scheme == Scheme::kAffine) {
      // Both ends inside the observed [min, max]: an estimate interpolated inside a bin can
      // pass the other end (all-zero data put the lower tail above 0), and clipping each end
      // on one side only would then widen the range beyond what was observed.
      l = std::clamp(l, mn, mx);
      h = std::clamp(h, mn, mx);
    }
    // Estimates inside a bin that straddles 0 can both land on 0. When every value observed lies
    // within one bin width of 0 (|x| below the finest width, 2^-120), the grid cannot tell the
    // values apart and [min, max] is the range; otherwise the estimate stands.
    if (l == 0.0 && h == 0.0 && std::max(-mn, mx) > 0.0 &&
        std::max(-mn, mx) < hists_[s].bin_width()) {
      l = mn;
      h = mx;
    }
    lo[s] = static_cast<float>(std::min(l, h));
    hi[s] = static_cast<float>(std::max(l, h));
  }
  // Every chosen range [0, 0] although some values were not 0: say so, rather than the generic
  // zero-range error, which would read as if the data were all zeros.
  const auto zero = [](float a, float b) { return a >= 0.0f && b <= 0.0f; };
  bool all_zero = true, any_data = false;
  size_t example = 0;
  for (size_t s = 0; s < hists_.size(); ++s) {
    all_zero = all_zero && zero(lo[s], hi[s]);
    if (!any_data && !zero(mins_[s], maxs_[s])) {
      any_data = true;
      example = s;
    }
  }
  if (all_zero && any_data)
    fail<DataError>(
        "{} observer: every chosen range is [0, 0], although range {} observed [{}, {}]: the "
        "estimate clips every nonzero value (raise the percentile, or calibrate with min / max)",
        name(), example, mins_[example], maxs_[example]);
  return params_from(lo, hi);
}

void HistogramObserver::merge(const Observer& other) {
  const bool has_data = check_merge(other);
  const auto& o = static_cast<const HistogramObserver&>(other);
  if (o.bins_ != bins_ || !same_options(o)) {
    // check_merge saw the same kind: a percentile observer's other option is its percentile.
    const auto* p = dynamic_cast<const PercentileObserver*>(this);
    fail<InvalidArgument>(
        "{} observer: cannot merge an observer with other options (this one: bins {}{}; the "
        "other: bins {}{})",
        name(), bins_,
        p == nullptr ? std::string() : fmt::format(", percentile {}", p->percentile()), o.bins_,
        p == nullptr ? std::string()
                     : fmt::format(", percentile {}",
                                   static_cast<const PercentileObserver&>(o).percentile()));
  }
  if (!has_data) return;
  if (&o == this) {  // doubling: every count twice
    for (Histogram& h : hists_) {
      for (uint64_t& c : h.counts) c *= 2;
      h.total *= 2;
    }
    merge_base(*this);
    return;
  }
  if (hists_.empty()) {
    hists_.resize(o.hists_.size());
    mins_.assign(o.mins_.size(), kInf);
    maxs_.assign(o.maxs_.size(), -kInf);
  }
  for (size_t s = 0; s < hists_.size(); ++s) {
    mins_[s] = std::min(mins_[s], o.mins_[s]);
    maxs_[s] = std::max(maxs_[s], o.maxs_[s]);
    const double lo = mins_[s], hi = maxs_[s];
    Histogram* h = &hists_[s];
    if (magnitude_)
      fit_grid(h, 0.0, std::max(-lo, hi), bins_);
    else
      fit_grid(h, lo, hi, bins_);
    const Histogram& src = o.hists_[s];
    add_regridded(h, src.exponent, src.first_bin, src.counts);
  }
  merge_base(o);
}

void HistogramObserver::reset() {
  hists_.clear();
  mins_.clear();
  maxs_.clear();
  reset_base();
}

namespace {

// Number of bins up to and including the last non-empty one.
int64_t used_bins(const Histogram& h) {
  int64_t used = static_cast<int64_t>(h.counts.size());
  while (used > 0 && h.counts[static_cast<size_t>(used - 1)] == 0) --used;
  return used;
}

}  // namespace

// ---- PercentileObserver ------------------------------------------------------------------------

PercentileObserver::PercentileObserver(const QuantSpec& spec, double percentile, int64_t bins)
    : HistogramObserver(spec, bins, spec.scheme == Scheme::kSymmetric, kMinBins),
      percentile_(percentile) {
  if (!(std::isfinite(percentile) && percentile > 0.0 && percentile <= 100.0))
    fail<InvalidArgument>("percentile observer: percentile = {} is outside (0, 100]", percentile);
  if (spec.scheme == Scheme::kAffine && percentile <= 50.0)
    fail<InvalidArgument>(
        "percentile observer: percentile = {} <= 50 with an affine scheme puts "
        "the lower tail at or above the upper",
        percentile);
}

bool PercentileObserver::same_options(const HistogramObserver& other) const {
  return static_cast<const PercentileObserver&>(other).percentile_ == percentile_;
}

void PercentileObserver::choose_range(int64_t slot, double* lo, double* hi) const {
  const Histogram& h = hists_[static_cast<size_t>(slot)];
  const double n = static_cast<double>(h.total);
  // k = ceil(p / 100 * n), but a product within rounding of an integer is that integer: 99.9
  // is stored a hair above 99.9, so 99.9 / 100 * 1000 is 999.0000000000001, whose ceil (1000)
  // would keep the very outlier the 99.9th percentile is asked to clip.
  const double exact = percentile_ / 100.0 * n;
  const double nearest = std::round(exact);
  const double slack = 4.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, exact);
  const double rank = std::fabs(exact - nearest) <= slack ? nearest : std::ceil(exact);
  const auto k = std::max<uint64_t>(1, static_cast<uint64_t>(rank));
  // Value of rank r (1-based): inside the first bin whose cumulative count reaches r.
  auto value_of_rank = [&](uint64_t r) {
    uint64_t before = 0;
    for (size_t j = 0; j < h.counts.size(); ++j) {
      const uint64_t c = h.counts[j];
      if (before + c >= r) {
        const double frac = static_cast<double>(r - before) / static_cast<double>(c);
        return h.edge(static_cast<int64_t>(j)) + frac * h.bin_width();
      }
      before += c;
    }
    return h.edge(static_cast<int64_t>(h.counts.size()));
  };
  const auto s = static_cast<size_t>(slot);
  if (magnitude_) {
    const double t =
        std::min(value_of_rank(k), std::max(-static_cast<double>(mins_[s]), double{maxs_[s]}));
    range_from_threshold(slot, t, lo, hi);
    return;
  }
  *hi = value_of_rank(k);
  *lo = value_of_rank(h.total - k + 1);
}

// ---- EntropyObserver ---------------------------------------------------------------------------

namespace {

// 2^(bits - 1) magnitude levels, checked before the histogram's bin count is (which must hold
// them): a 16-bit spec would need more bins than the quadratic search takes.
int64_t entropy_levels(const QuantSpec& spec) {
  spec.validate();
  const int64_t levels = int64_t{1} << (spec.bits - 1);
  if (levels > EntropyObserver::kMaxEntropyBins)
    fail<InvalidArgument>(
        "entropy observer: {}-bit ranges need {} magnitude levels, more than the {} bins its KL "
        "search takes (the percentile and MSE observers take {}-bit specs)",
        spec.bits, levels, EntropyObserver::kMaxEntropyBins, spec.bits);
  return levels;
}

}  // namespace

EntropyObserver::EntropyObserver(const QuantSpec& spec, int64_t bins)
    : HistogramObserver(spec, bins, true, entropy_levels(spec)) {
  if (bins > kMaxEntropyBins)
    fail<InvalidArgument>(
        "entropy observer: bins = {} is above {} (params() is quadratic in the bin count)", bins,
        kMaxEntropyBins);
}

bool EntropyObserver::same_options(const HistogramObserver&) const {
  return true;
}

double EntropyObserver::divergence(int64_t slot, int64_t cut) const {
  const Histogram& h = histogram(slot);
  const auto bins = static_cast<int64_t>(h.counts.size());
  const int64_t n_levels = levels();
  if (cut < n_levels || cut > bins)
    fail<InvalidArgument>("entropy observer: cut bin {} is outside [{}, {}]", cut, n_levels, bins);
  const uint64_t* c = h.counts.data();
  uint64_t outliers = 0;
  for (int64_t j = cut; j < bins; ++j) outliers += c[j];
  const double p_total = static_cast<double>(h.total);
  const double q_total = static_cast<double>(h.total - outliers);
  if (q_total == 0.0) return std::numeric_limits<double>::infinity();
  double kl = 0.0;
  for (int64_t l = 0; l < n_levels; ++l) {
    // Level l holds bins j with floor(j * levels / cut) == l.
    const int64_t b0 = (l * cut + n_levels - 1) / n_levels;
    const int64_t b1 = ((l + 1) * cut + n_levels - 1) / n_levels;
    uint64_t sum = 0;
    int64_t nonzero = 0;
    for (int64_t j = b0; j < b1; ++j) {
      const uint64_t pj = c[j] + (j == cut - 1 ? outliers : 0);
      sum += c[j];
      nonzero += pj != 0;
    }
    if (nonzero == 0) continue;
    if (sum == 0) return std::numeric_limits<double>::infinity();
    const double q = static_cast<double>(sum) / static_cast<double>(nonzero) / q_total;
    for (int64_t j = b0; j < b1; ++j) {
      const uint64_t pj = c[j] + (j == cut - 1 ? outliers : 0);
      if (pj == 0) continue;
      const double p = static_cast<double>(pj) / p_total;
      kl += p * std::log(p / q);
    }
  }
  return kl;
}

void EntropyObserver::choose_range(int64_t slot, double* lo, double* hi) const {
  const Histogram& h = hists_[static_cast<size_t>(slot)];
  const auto s = static_cast<size_t>(slot);
  const double max_abs = std::max(-static_cast<double>(mins_[s]), double{maxs_[s]});
  const int64_t used = used_bins(h);
  const int64_t n_levels = levels();
  int64_t best_cut = used;
  if (used > n_levels) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t cut = n_levels; cut <= used; ++cut) {
      const double kl = divergence(slot, cut);
      if (kl < best) {
        best = kl;
        best_cut = cut;
      }
    }
  }
  range_from_threshold(slot, std::min(h.edge(best_cut), max_abs), lo, hi);
}

// ---- MseObserver -------------------------------------------------------------------------------

MseObserver::MseObserver(const QuantSpec& spec, int64_t bins)
    : HistogramObserver(spec, bins, true, kMinBins) {}

bool MseObserver::same_options(const HistogramObserver&) const {
  return true;
}

double MseObserver::step_for(int64_t slot, double t) const {
  double lo = 0.0, hi = 0.0;
  range_from_threshold(slot, t, &lo, &hi);
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (spec_.scheme == Scheme::kSymmetric)
    return hi / static_cast<double>((int32_t{1} << (spec_.bits - 1)) - 1);
  return (hi - lo) / static_cast<double>(spec_.qmax() - spec_.qmin());
}

namespace {

// Integral of (x - s * round(x / s))^2 over [0, x) as a whole number k of periods (each s^3 / 12)
// and the cube of the remainder r = x - k s in [-s/2, s/2): k s^3 / 12 + r^3 / 3. Kept apart so
// that differences over a bin do not cancel.
struct GridIntegral {
  double periods;
  double rem_cube;
};
GridIntegral grid_integral(double x, double s) {
  const double k = std::floor(x / s + 0.5);
  const double r = x - k * s;
  return {k, r * r * r};
}

// Mean of (x - s * round(x / s))^2 over x spread evenly on [a, b) (the point a when b <= a).
double mean_rounding_error(double a, double b, double s) {
  if (!(s > 0.0)) return 0.0;  // a zero range: every value is 0 and exact
  if (!(b > a)) {
    const double r = a - s * std::floor(a / s + 0.5);
    return r * r;
  }
  const GridIntegral ia = grid_integral(a, s), ib = grid_integral(b, s);
  const double integral =
      (ib.periods - ia.periods) * s * s * s / 12.0 + (ib.rem_cube - ia.rem_cube) / 3.0;
  return std::max(0.0, integral / (b - a));
}

// Mean of (x - t)^2 over x spread evenly on [a, b) (the point a when b <= a).
double mean_clipping_error(double a, double b, double t) {
  if (!(b > a)) return (a - t) * (a - t);
  const double hi = b - t, lo = a - t;
  return (hi * hi * hi - lo * lo * lo) / (3.0 * (b - a));
}

}  // namespace

double MseObserver::expected_error(int64_t slot, int64_t cut) const {
  const Histogram& h = histogram(slot);
  const auto bins = static_cast<int64_t>(h.counts.size());
  if (cut < 1 || cut > bins)
    fail<InvalidArgument>("mse observer: cut bin {} is outside [1, {}]", cut, bins);
  return cut_error(slot, cut, used_bins(h), std::numeric_limits<double>::infinity());
}

double MseObserver::cut_error(int64_t slot, int64_t cut, int64_t used, double bound) const {
  const Histogram& h = hists_[static_cast<size_t>(slot)];
  const auto s = static_cast<size_t>(slot);
  const double max_abs = std::max(-static_cast<double>(mins_[s]), double{maxs_[s]});
  const double t = std::min(h.edge(cut), max_abs);
  const double step = step_for(slot, t);
  const double w = h.bin_width();
  double err = 0.0;
  // From the top: the clipped bins, whose errors are the large ones, reach `bound` soonest.
  for (int64_t j = used - 1; j >= 0 && err < bound; --j) {
    const double c = static_cast<double>(h.counts[static_cast<size_t>(j)]);
    if (c == 0.0) continue;
    const double a = static_cast<double>(j) * w;
    // The bin's values lie in [a, a + w), the last one's only up to max|x|.
    const double b = std::min(a + w, max_abs);
    err += c * (j < cut ? mean_rounding_error(a, b, step) : mean_clipping_error(a, b, t));
  }
  return err;
}

void MseObserver::choose_range(int64_t slot, double* lo, double* hi) const {
  const Histogram& h = hists_[static_cast<size_t>(slot)];
  const auto s = static_cast<size_t>(slot);
  const int64_t used = used_bins(h);
  const double max_abs = std::max(-static_cast<double>(mins_[s]), double{maxs_[s]});
  double best = std::numeric_limits<double>::infinity();
  double best_t = max_abs;
  for (int64_t cut = 1; cut <= used; ++cut) {
    const double err = cut_error(slot, cut, used, best);  // stops once it reaches best
    if (err < best) {
      best = err;
      best_t = std::min(h.edge(cut), max_abs);
    }
  }
  range_from_threshold(slot, best_t, lo, hi);
}

}  // namespace tinyquant
