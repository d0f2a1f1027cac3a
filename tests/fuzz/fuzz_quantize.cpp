// Feeds arbitrary floats and quantization options to the numeric core: parameter choice
// (params_for, params_for_mse, quantize_weights_for_bias), quantize / dequantize / fake_quant,
// the streaming observers, and the runtime's multiplier helpers (quantize_multiplier,
// multipliers_from_scales). Float inputs reach every class: zeros, denormals, values near
// FLT_MAX, NaN and infinities, ties at half a step.
//
// Input layout: byte 0 picks the operation, byte 1 the bit width, scheme, narrow range,
// granularity and rounding mode, byte 2 the rank and axis, then the extents, the group size,
// the value encoding and the values (see read_case). An input that runs out reads zeros.
//
// Checks beyond "no crash", each against a formula written here rather than the library's own
// output:
//  - non-finite data -> DataError; only-zero data -> DataError; a range with no float32 scale
//    (affine near FLT_MAX, symmetric without narrow range past (1 - 2^-b) FLT_MAX) -> DataError,
//    and so do a moving average or a percentile range that reach [0, 0]; any other finite data
//    calibrates;
//  - every code equals clamp(round(x / scale) + zero_point, qmin, qmax) (float division, the
//    spec's rounding) and is stored as the header of quantize.hpp says (int8, s4 nibbles, int16);
//  - dequantize gives scale * (q - zero_point) bit for bit; fake_quant gives the same values and
//    a mask of 1 exactly where the unclamped code is in range;
//  - data calibrated on itself (min / max) comes back within scale / 2 (plus float rounding);
//  - params_for_mse never loses to min / max on its own data (its grid holds ratio 1);
//  - quantize_weights_for_bias leaves every bias code |bias| / (input_scale x scale) <= 2^30 and
//    scales it did not need to raise equal params_for's;
//  - observers: min / max equals the ranges computed here, a merge of two halves equals one pass
//    (min / max and every histogram observer), and a batch holding a NaN or infinity throws and
//    leaves the observer exactly as it was;
//  - quantize_multiplier equals frexp + round half away (the TFLite definition) and
//    multipliers_from_scales equals it on double(in) * double(w) / double(out), writing nothing
//    on error.
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/observers.hpp"
#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace {

using namespace tinyquant;
using fuzz::Bytes;

struct Case {
  QuantSpec spec;
  RoundMode mode = RoundMode::kHalfAwayFromZero;
  Shape shape;
  std::vector<float> data;
};

// One value: raw float bits, or a small integer times a power of two (ties at half a step,
// exact zeros and exact range ends are common there), or a value near a float boundary.
float read_value(Bytes& in, uint8_t encoding) {
  switch (encoding % 3) {
    case 0:
      return in.f32();
    case 1: {
      const int8_t m = static_cast<int8_t>(in.u8());
      const int e = static_cast<int>(in.u8()) - 150;  // 2^-150 (a denormal half) .. 2^105
      return std::ldexp(static_cast<float>(m), e);
    }
    default: {
      return fuzz::edge_value(in.u8());
    }
  }
}

Case read_case(Bytes& in, int64_t max_numel) {
  Case c;
  static const int kBits[] = {2, 3, 4, 5, 6, 7, 8, 16};
  const uint8_t b = in.u8();
  c.spec.bits = kBits[b & 7];
  c.spec.scheme = (b & 8) != 0 ? Scheme::kSymmetric : Scheme::kAffine;
  c.spec.narrow_range = (b & 16) != 0;
  c.spec.granularity = static_cast<Granularity>(((b >> 5) & 3) % 3);
  c.mode = (b & 128) != 0 ? RoundMode::kHalfToEven : RoundMode::kHalfAwayFromZero;
  const uint8_t r = in.u8();
  const int rank = 1 + r % 3;
  c.spec.axis = static_cast<int>((r >> 2) % (2 * rank)) - rank;  // [-rank, rank)
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    const int64_t extent = 1 + in.u8() % 8;
    c.shape.push_back(extent);
    n *= extent;
  }
  c.spec.group_size = 1 + in.u8() % 8;
  if (n > max_numel) {
    c.shape = {max_numel};
    c.spec.axis = 0;
    n = max_numel;
  }
  const uint8_t encoding = in.u8();
  c.data.resize(static_cast<size_t>(n));
  for (float& v : c.data) v = read_value(in, encoding);
  return c;
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

bool all_zero(const std::vector<float>& v) {
  for (float x : v)
    if (x != 0.0f) return false;
  return true;
}

// The code of x under (scale, zero point) as the quantize.hpp header defines it; *in_range says
// whether the unclamped code lies in [qmin, qmax].
int32_t expected_code(float x, float scale, int32_t zp, const QuantSpec& spec, RoundMode mode,
                      bool* in_range) {
  const float ratio = x / scale;
  const float r = mode == RoundMode::kHalfAwayFromZero ? std::round(ratio) : std::nearbyint(ratio);
  const double unclamped = static_cast<double>(r) + zp;
  *in_range = unclamped >= spec.qmin() && unclamped <= spec.qmax();
  if (unclamped < spec.qmin()) return spec.qmin();
  if (unclamped > spec.qmax()) return spec.qmax();
  return static_cast<int32_t>(unclamped);
}

// The element's code read straight from the storage bytes (quantize.hpp's layout).
int32_t stored_code(const QTensor& q, int64_t i) {
  const int bits = q.bits();
  if (bits == 16) {
    int16_t v;
    std::memcpy(&v, q.data.data() + 2 * i, 2);
    return v;
  }
  if (bits >= 5) return static_cast<int8_t>(q.data[static_cast<size_t>(i)]);
  const uint8_t byte = q.data[static_cast<size_t>(i / 2)];
  const int nibble = (i % 2 == 0) ? (byte & 0xF) : (byte >> 4);
  return nibble >= 8 ? nibble - 16 : nibble;
}

// Every check of a quantized tensor against the header's formulas. `self_calibrated`: the
// parameters came from the data's own min / max, so nothing was clipped.
void check_quantized(const Case& c, const QTensor& q, bool self_calibrated) {
  q.params.validate(c.shape);  // must not throw
  const int64_t n = static_cast<int64_t>(c.data.size());
  FUZZ_REQUIRE(static_cast<int64_t>(q.data.size()) == storage_bytes(q.bits(), n));
  if (q.bits() <= 4 && n % 2 == 1) FUZZ_REQUIRE((q.data.back() >> 4) == 0);
  const ParamLayout layout = param_layout(q.params.spec, c.shape);
  const std::vector<float> deq = dequantize(q);
  const FakeQuantResult fq = fake_quant(c.data.data(), c.shape, q.params, c.mode);
  FUZZ_REQUIRE(static_cast<int64_t>(deq.size()) == n &&
               static_cast<int64_t>(fq.values.size()) == n &&
               static_cast<int64_t>(fq.mask.size()) == n);
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    const size_t p = static_cast<size_t>(layout.param_index(i));
    const float scale = q.params.scales[p];
    const int32_t zp = q.params.zero_points[p];
    bool in_range = false;
    const int32_t code = expected_code(c.data[k], scale, zp, q.params.spec, c.mode, &in_range);
    FUZZ_REQUIRE(stored_code(q, i) == code && q.value(i) == code);
    const float back = scale * static_cast<float>(code - zp);
    FUZZ_REQUIRE(std::memcmp(&back, &deq[k], sizeof(float)) == 0);
    FUZZ_REQUIRE(std::memcmp(&back, &fq.values[k], sizeof(float)) == 0);
    FUZZ_REQUIRE(fq.mask[k] == (in_range ? 1 : 0));
    if (self_calibrated) {
      FUZZ_REQUIRE(std::isfinite(back));
      const double x = c.data[k];
      const double step = scale;
      const double tol = 0.5 * step * (1.0 + 1e-6) + std::fabs(x) * 0x1p-22 +
                         std::fabs(static_cast<double>(back)) * 0x1p-23;
      FUZZ_REQUIRE(std::fabs(static_cast<double>(back) - x) <= tol);
    }
  }
}

// Largest |x| of the data, in double.
double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::fmax(m, std::fabs(static_cast<double>(x)));
  return m;
}

// Ranges choose_scale_zero_point documents as having no float32 scale: affine ones near FLT_MAX,
// and symmetric ones without narrow range past (1 - 2^-bits) FLT_MAX (less a few float steps:
// the limit is found in float arithmetic, and an observer's range end is rounded to float).
bool may_lack_a_scale(const QuantSpec& spec, double top) {
  if (spec.scheme == Scheme::kAffine) return top > 0x1p126;
  return !spec.narrow_range && top > (1.0 - std::ldexp(1.0, -spec.bits)) * FLT_MAX * (1 - 1e-6);
}

// A DataError from calibrating finite data that is not all zero is accepted only for such ranges.
void check_calibration_error(const Case& c, const DataError& e) {
  if (!all_finite(c.data) || all_zero(c.data)) return;
  const std::string what = e.what();
  FUZZ_REQUIRE(may_lack_a_scale(c.spec, max_abs(c.data)) &&
               what.find("no float32 scale covers it") != std::string::npos);
}

// Squared error of the data quantized with p (round half away from zero).
double squared_error(const Case& c, const QuantParams& p) {
  const std::vector<float> back = dequantize(quantize(c.data.data(), c.shape, p));
  double e = 0.0;
  for (size_t i = 0; i < back.size(); ++i) {
    const double d = static_cast<double>(back[i]) - c.data[i];
    e += d * d;
  }
  return e;
}

void fuzz_params_for(Bytes& in) {
  const Case c = read_case(in, 512);
  QTensor q;
  try {
    q = quantize_weights(c.data.data(), c.shape, c.spec, c.mode);
  } catch (const DataError& e) {
    check_calibration_error(c, e);
    return;
  } catch (const InvalidArgument&) {
    return;  // a spec that does not fit the shape (axis, group size)
  } catch (const ShapeError&) {
    return;
  }
  FUZZ_REQUIRE(all_finite(c.data) && !all_zero(c.data));
  check_quantized(c, q, /*self_calibrated=*/true);
}

void fuzz_mse(Bytes& in) {
  const int steps = 1 + in.u8() % 48;
  const float min_ratio = static_cast<float>(1 + in.u8()) / 256.0f;
  const Case c = read_case(in, 256);
  QuantParams mm, mse;
  try {
    mm = params_for(c.data.data(), c.shape, c.spec);
    mse = params_for_mse(c.data.data(), c.shape, c.spec, steps, min_ratio);
  } catch (const DataError& e) {
    check_calibration_error(c, e);
    return;
  } catch (const InvalidArgument&) {
    return;
  } catch (const ShapeError&) {
    return;
  }
  mse.validate(c.shape);
  Case clipped = c;
  clipped.mode = RoundMode::kHalfAwayFromZero;
  check_quantized(clipped, quantize(c.data.data(), c.shape, mse), /*self_calibrated=*/false);
  // Per parameter the grid holds ratio 1, i.e. min / max: the total cannot be worse (up to the
  // search's double arithmetic against quantize's float arithmetic).
  const double e_mm = squared_error(c, mm);
  const double e_mse = squared_error(c, mse);
  FUZZ_REQUIRE(std::isfinite(e_mse) || !std::isfinite(e_mm));
  if (std::isfinite(e_mm)) FUZZ_REQUIRE(e_mse <= e_mm * (1.0 + 1e-4) + 1e-300);
}

void fuzz_for_bias(Bytes& in) {
  const float input_scale = read_value(in, in.u8());
  Case c = read_case(in, 256);
  const int64_t channels = c.shape[0];
  std::vector<float> bias(static_cast<size_t>(channels));
  const uint8_t encoding = in.u8();
  for (float& b : bias) b = read_value(in, encoding);
  QTensor q;
  int64_t raised = -1;
  try {
    q = quantize_weights_for_bias(c.data.data(), c.shape, c.spec, bias.data(), input_scale, c.mode,
                                  &raised);
  } catch (const InvalidArgument&) {
    return;
  } catch (const ShapeError&) {
    return;
  } catch (const DataError& e) {
    if (!all_finite(bias)) return;
    const std::string what = e.what();
    if (what.find("beyond float32") != std::string::npos) return;  // the raise has no float scale
    check_calibration_error(c, e);
    return;
  }
  FUZZ_REQUIRE(std::isfinite(input_scale) && input_scale > 0.0f && all_finite(c.data) &&
               all_finite(bias));
  FUZZ_REQUIRE(raised >= 0);
  check_quantized(c, q, /*self_calibrated=*/true);
  const QuantParams plain = params_for(c.data.data(), c.shape, c.spec);
  const QuantSpec& s = c.spec;
  const ParamLayout l = param_layout(s, c.shape);
  const int rank = static_cast<int>(c.shape.size());
  const int axis = s.axis < 0 ? s.axis + rank : s.axis;
  const bool per_tensor = s.granularity == Granularity::kPerTensor;
  const bool per_channel0 = s.granularity == Granularity::kPerChannel && axis == 0;
  const bool grouped_rows = s.granularity == Granularity::kPerGroup &&
                            s.scheme == Scheme::kSymmetric && rank == 2 && axis == 1;
  const double limit = 1073741824.0;  // 2^30
  const auto code = [&](float b, float scale) {
    return std::fabs(static_cast<double>(b)) /
           (static_cast<double>(input_scale) * static_cast<double>(scale));
  };
  int64_t changed = 0;
  if (per_tensor || per_channel0) {
    for (int64_t ch = 0; ch < channels; ++ch) {
      const size_t p = per_tensor ? 0 : static_cast<size_t>(ch);
      FUZZ_REQUIRE(code(bias[static_cast<size_t>(ch)], q.params.scales[p]) <= limit);
    }
    for (size_t p = 0; p < plain.scales.size(); ++p)
      changed += q.params.scales[p] != plain.scales[p] ? 1 : 0;
  } else if (grouped_rows) {
    const int64_t groups = l.groups;
    for (int64_t row = 0; row < channels; ++row) {
      float top = 0.0f;
      bool row_changed = false;
      for (int64_t g = 0; g < groups; ++g) {
        const size_t p = static_cast<size_t>(row * groups + g);
        top = std::fmax(top, q.params.scales[p]);
        row_changed = row_changed || q.params.scales[p] != plain.scales[p];
      }
      FUZZ_REQUIRE(code(bias[static_cast<size_t>(row)], top) <= limit);
      changed += row_changed ? 1 : 0;
    }
  } else {
    // Every other layout is quantize_weights' own.
    FUZZ_REQUIRE(q.params.scales == plain.scales && q.params.zero_points == plain.zero_points);
  }
  FUZZ_REQUIRE(changed == raised);
}

std::unique_ptr<ObserverBase> make_observer(uint8_t kind, const QuantSpec& spec, uint8_t option) {
  switch (kind % 5) {
    case 0:
      return std::make_unique<MinMaxObserver>(spec);
    case 1:
      return std::make_unique<MovingAverageMinMaxObserver>(spec,
                                                           static_cast<double>(1 + option) / 256.0);
    case 2:
      return std::make_unique<PercentileObserver>(spec, 50.0 + 50.0 * (1 + option) / 256.0,
                                                  16 << (option % 4));
    case 3:
      return std::make_unique<EntropyObserver>(spec, 128 << (option % 2));
    default:
      return std::make_unique<MseObserver>(spec, 16 << (option % 4));
  }
}

// params(), or the message of the DataError it throws.
struct Outcome {
  bool ok = false;
  QuantParams params;
  std::string error;
};
Outcome outcome(const Observer& o) {
  Outcome r;
  try {
    r.params = o.params();
    r.ok = true;
  } catch (const DataError& e) {
    r.error = e.what();
  }
  return r;
}

bool same_params(const QuantParams& a, const QuantParams& b) {
  return a.scales.size() == b.scales.size() && a.zero_points == b.zero_points &&
         (a.scales.empty() ||
          std::memcmp(a.scales.data(), b.scales.data(), a.scales.size() * sizeof(float)) == 0);
}

void fuzz_observers(Bytes& in) {
  const uint8_t kind = in.u8();
  const uint8_t option = in.u8();
  const int batches = 1 + in.u8() % 4;
  Case c = read_case(in, 64);
  // The batches: the case's shape each, values read after the first batch's.
  const int64_t n = static_cast<int64_t>(c.data.size());
  std::vector<std::vector<float>> batch(static_cast<size_t>(batches));
  batch[0] = c.data;
  const uint8_t encoding = in.u8();
  for (int b = 1; b < batches; ++b) {
    batch[static_cast<size_t>(b)].resize(static_cast<size_t>(n));
    for (float& v : batch[static_cast<size_t>(b)]) v = read_value(in, encoding);
  }
  // Entropy takes 2-8 bits (2^(bits - 1) levels, at most the 128 of its smallest bin count here).
  if (kind % 5 == 3) {
    c.spec.bits = std::min(c.spec.bits, 8);
    c.spec.granularity = Granularity::kPerTensor;
  }
  std::unique_ptr<ObserverBase> whole, first, second;
  try {
    whole = make_observer(kind, c.spec, option);
    first = make_observer(kind, c.spec, option);
    second = make_observer(kind, c.spec, option);
    param_layout(c.spec, c.shape);
  } catch (const InvalidArgument&) {
    return;
  } catch (const ShapeError&) {
    return;
  }
  // One pass over every batch; the halves go to two observers that are merged afterwards. A
  // batch with a NaN or infinity must throw and change nothing: such batches are skipped by all.
  std::vector<bool> good(static_cast<size_t>(batches));
  for (int b = 0; b < batches; ++b) {
    const std::vector<float>& v = batch[static_cast<size_t>(b)];
    good[static_cast<size_t>(b)] = all_finite(v);
    const Outcome before = outcome(*whole);
    const int64_t seen = whole->values_observed();
    try {
      whole->observe(v.data(), c.shape);
      FUZZ_REQUIRE(good[static_cast<size_t>(b)]);
    } catch (const DataError&) {
      FUZZ_REQUIRE(!good[static_cast<size_t>(b)]);
      const Outcome after = outcome(*whole);
      FUZZ_REQUIRE(whole->values_observed() == seen && after.ok == before.ok &&
                   (!after.ok || same_params(after.params, before.params)));
      continue;
    }
    ObserverBase& half = b < (batches + 1) / 2 ? *first : *second;
    half.observe(v.data(), c.shape);
  }
  const Outcome one_pass = outcome(*whole);
  bool any = false;
  std::vector<float> data;
  for (int b = 0; b < batches; ++b) {
    if (!good[static_cast<size_t>(b)]) continue;
    any = true;
    data.insert(data.end(), batch[static_cast<size_t>(b)].begin(),
                batch[static_cast<size_t>(b)].end());
  }
  if (!any || all_zero(data)) {
    FUZZ_REQUIRE(!one_pass.ok);
    return;
  }
  const bool minmax = kind % 5 == 0;
  const bool histogram = kind % 5 >= 2;
  if (!one_pass.ok) {
    // A moving average can reach [0, 0] (with c = 1 it keeps only the last batch, which may be
    // all zeros), and a percentile can clip every nonzero value (mostly zeros and a few values of
    // one sign); otherwise only ranges near FLT_MAX may fail to calibrate.
    const bool averaged_to_zero =
        kind % 5 == 1 && one_pass.error.find("zero range") != std::string::npos;
    const bool clipped_to_zero =
        kind % 5 == 2 && one_pass.error.find("every chosen range is [0, 0]") != std::string::npos;
    FUZZ_REQUIRE(averaged_to_zero || clipped_to_zero || may_lack_a_scale(c.spec, max_abs(data)));
    return;
  }
  one_pass.params.validate(c.shape);
  if (minmax) {
    // The ranges computed here, per parameter, over every good batch.
    const ParamLayout l = param_layout(c.spec, c.shape);
    std::vector<float> mins(static_cast<size_t>(l.count), INFINITY);
    std::vector<float> maxs(static_cast<size_t>(l.count), -INFINITY);
    for (size_t i = 0; i < data.size(); ++i) {
      const size_t p = static_cast<size_t>(l.param_index(static_cast<int64_t>(i) % n));
      mins[p] = std::fmin(mins[p], data[i]);
      maxs[p] = std::fmax(maxs[p], data[i]);
    }
    FUZZ_REQUIRE(same_params(one_pass.params, params_from_ranges(c.spec, c.shape, mins, maxs)));
  }
  if (minmax || histogram) {
    first->merge(*second);
    const Outcome merged = outcome(*first);
    FUZZ_REQUIRE(merged.ok && same_params(merged.params, one_pass.params));
  }
  // Whatever the observer chose, every batch it saw quantizes as the formulas say under it.
  for (int b = 0; b < batches; ++b) {
    if (!good[static_cast<size_t>(b)]) continue;
    Case one = c;
    one.data = batch[static_cast<size_t>(b)];
    check_quantized(one, quantize(one.data.data(), c.shape, one_pass.params, c.mode),
                    /*self_calibrated=*/false);
  }
}

// TFLite's QuantizeMultiplier through frexp, for finite m >= 0.
rt::QuantizedMultiplier expected_multiplier(double m) {
  if (m == 0.0) return {0, 0};
  int e = 0;
  const double q = std::frexp(m, &e);  // q in [0.5, 1), exact
  int64_t mult = std::llround(q * 2147483648.0);
  if (mult == (int64_t{1} << 31)) {
    mult /= 2;
    ++e;
  }
  if (e < -31) return {0, 0};
  if (e > 30) return {2147483647, 30};
  return {static_cast<int32_t>(mult), e};
}

void fuzz_multipliers(Bytes& in) {
  const double m = in.f64();
  rt::QuantizedMultiplier got{-7, -7};
  const rt::Status st = rt::quantize_multiplier(m, &got);
  if (!(m >= 0.0) || !std::isfinite(m)) {
    FUZZ_REQUIRE(st == rt::Status::kBadMultiplier);
  } else {
    FUZZ_REQUIRE(st == rt::Status::kOk);
    const rt::QuantizedMultiplier want = expected_multiplier(m);
    FUZZ_REQUIRE(got.multiplier == want.multiplier && got.shift == want.shift);
  }
  const uint8_t encoding = in.u8();
  const float input_scale = read_value(in, encoding);
  const float output_scale = read_value(in, encoding);
  const bool per_channel = (in.u8() & 1) != 0;
  const int32_t count = 1 + in.u8() % 8;
  std::vector<float> w(static_cast<size_t>(per_channel ? count : 1));
  for (float& s : w) s = read_value(in, encoding);
  std::vector<int32_t> mult(static_cast<size_t>(count), -5), shift(static_cast<size_t>(count), -5);
  const rt::Status st2 = rt::multipliers_from_scales(
      input_scale, w.data(), per_channel, output_scale, count, mult.data(), shift.data());
  const auto valid = [](float s) { return std::isfinite(s) && s > 0.0f; };
  bool ok = valid(input_scale) && valid(output_scale);
  for (float s : w) ok = ok && valid(s);
  if (!ok) {
    FUZZ_REQUIRE(st2 == rt::Status::kBadMultiplier);
    for (int32_t i = 0; i < count; ++i)
      FUZZ_REQUIRE(mult[static_cast<size_t>(i)] == -5 && shift[static_cast<size_t>(i)] == -5);
    return;
  }
  FUZZ_REQUIRE(st2 == rt::Status::kOk);
  for (int32_t i = 0; i < count; ++i) {
    const double real = static_cast<double>(input_scale) *
                        static_cast<double>(w[per_channel ? static_cast<size_t>(i) : 0]) /
                        static_cast<double>(output_scale);
    const rt::QuantizedMultiplier want = expected_multiplier(real);
    FUZZ_REQUIRE(mult[static_cast<size_t>(i)] == want.multiplier &&
                 shift[static_cast<size_t>(i)] == want.shift);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  switch (in.u8() % 5) {
    case 0:
      fuzz_params_for(in);
      break;
    case 1:
      fuzz_mse(in);
      break;
    case 2:
      fuzz_for_bias(in);
      break;
    case 3:
      fuzz_observers(in);
      break;
    default:
      fuzz_multipliers(in);
      break;
  }
  return 0;
}
