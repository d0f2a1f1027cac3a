// Quantization parameters: how real values map to integers, and the formulas that choose them.
//
//   q = clamp(round(r / scale) + zero_point, qmin, qmax)        r ~= scale * (q - zero_point)
//
// Integer range for `bits` b in [2, 8] or 16:
//   qmin = -2^(b-1), qmax = 2^(b-1) - 1; narrow_range raises qmin to -(2^(b-1) - 1)
//   (TFLite's [-127, 127] weights).
// Granularity, for a tensor of shape S and axis a:
//   per-tensor   one (scale, zero point)
//   per-channel  one per index along a                       (count S[a])
//   per-group    one per run of group_size consecutive indices along a, for every position of
//                the other axes: the parameters form a tensor of shape S with S[a] replaced by
//                ceil(S[a] / group_size), row-major; the last group may be shorter.
// Choosing (scale, zero point) from a real range [rmin, rmax]:
//   the range is first widened to contain 0, so 0.0 is exactly representable;
//   affine:    scale = (rmax - rmin) / (qmax - qmin),  zero_point = qmin - round(rmin / scale)
//              (clamped to [qmin, qmax]); both ends of the range survive within scale / 2, up to
//              the float rounding of the scale: the stored scale is off the ratio by up to 2^-24
//              of itself, which moves the far end of the grid by up to (qmax - qmin) 2^-24 steps
//              (0.004 of a step at 16 bits, 1.5e-5 at 8);
//   symmetric: scale = max(|rmin|, |rmax|) / qmax_s, zero_point = 0, where qmax_s = 2^(b-1) - 1.
// A channel or group whose widened range is [0, 0] holds only zeros; it gets scale 1 (any scale
// represents it exactly). If every channel is [0, 0] there is nothing to calibrate: DataError.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/shape.hpp"

namespace tinyquant {

enum class Scheme : uint8_t { kAffine = 0, kSymmetric = 1 };
enum class Granularity : uint8_t { kPerTensor = 0, kPerChannel = 1, kPerGroup = 2 };
// How real / scale is rounded to an integer. TFLite rounds half away from zero.
enum class RoundMode : uint8_t { kHalfAwayFromZero = 0, kHalfToEven = 1 };

const char* to_string(Scheme s) noexcept;
const char* to_string(Granularity g) noexcept;

// What the user asks for; QuantParams adds the numbers.
struct QuantSpec {
  int bits = 8;  // 2..8, or 16
  Scheme scheme = Scheme::kAffine;
  bool narrow_range = false;  // qmin = -(2^(bits-1) - 1)
  Granularity granularity = Granularity::kPerTensor;
  int axis = 0;            // channel / group axis; negative counts from the end
  int64_t group_size = 0;  // per-group only, >= 1

  int32_t qmin() const;
  int32_t qmax() const;
  // Throws InvalidArgument for bits outside {2..8, 16} or group_size < 1 with per-group.
  void validate() const;

  static QuantSpec int8_weights_per_channel(int axis = 0);        // symmetric, narrow, per-channel
  static QuantSpec int8_activations();                            // affine, per-tensor
  static QuantSpec int4_per_group(int64_t group, int axis = -1);  // symmetric, narrow
};

// Where each element's parameters live, for a given spec and shape (see the header comment).
struct ParamLayout {
  int64_t outer = 1;     // product of extents before the axis
  int64_t axis_len = 1;  // extent of the axis
  int64_t inner = 1;     // product of extents after the axis
  int64_t groups = 1;    // per-group: ceil(axis_len / group_size)
  int64_t count = 1;     // number of (scale, zero point) pairs
  Granularity granularity = Granularity::kPerTensor;
  int64_t group_size = 1;

  // Parameter index of the element at flat row-major index i.
  int64_t param_index(int64_t i) const noexcept {
    switch (granularity) {
      case Granularity::kPerTensor:
        return 0;
      case Granularity::kPerChannel:
        return (i / inner) % axis_len;
      case Granularity::kPerGroup: {
        const int64_t in = i % inner;
        const int64_t a = (i / inner) % axis_len;
        const int64_t o = i / (inner * axis_len);
        return (o * groups + a / group_size) * inner + in;
      }
    }
    return 0;
  }
};

// Throws InvalidArgument / ShapeError if the spec does not fit the shape.
ParamLayout param_layout(const QuantSpec& spec, const Shape& shape);

struct QuantParams {
  QuantSpec spec;
  std::vector<float> scales;         // finite, > 0
  std::vector<int32_t> zero_points;  // in [qmin, qmax]; 0 for symmetric

  // Throws if the spec is invalid for the shape, the counts differ from param_layout().count,
  // a scale is not finite and > 0, or a zero point is outside [qmin, qmax] (or != 0 when
  // symmetric). Messages name the parameter index and value.
  void validate(const Shape& shape) const;
};

struct ScaleZeroPoint {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// (scale, zero point) for one real range. Throws DataError for non-finite or rmin > rmax.
// A [0, 0] range (after widening) returns {1, 0}, zero point 0 for the affine case too. A range
// too narrow for a normal float scale (|x| below about 127 * FLT_MIN for int8) gets FLT_MIN,
// the smallest normal scale, so its data keep codes within FLT_MIN / 2. Near FLT_MAX the scale is
// lowered so that every code in [qmin, qmax] dequantizes to a finite float; a range no such scale
// covers within scale / 2 is a DataError (an affine one over most of +-FLT_MAX, or a symmetric one
// without narrow range reaching past (1 - 2^-b) FLT_MAX, whose code -2^(b-1) would overflow).
ScaleZeroPoint choose_scale_zero_point(float rmin, float rmax, const QuantSpec& spec);

// Parameters from per-parameter ranges (mins/maxs have param_layout(spec, shape).count entries,
// or 1 for per-tensor). Throws DataError if every range is [0, 0], naming the spec.
QuantParams params_from_ranges(const QuantSpec& spec, const Shape& shape,
                               const std::vector<float>& mins, const std::vector<float>& maxs);

// Per-parameter min and max of the data itself (what a min/max observer over one batch gives).
// data holds numel(shape) floats (a pointer carries no size: not checked). Throws DataError for
// NaN/Inf with the index or an empty shape, InvalidArgument for null data, and what
// param_layout throws when the spec does not fit the shape.
void ranges_of(const float* data, const Shape& shape, const QuantSpec& spec,
               std::vector<float>* mins, std::vector<float>* maxs);

// Convenience: ranges_of + params_from_ranges (weights are their own calibration data).
QuantParams params_for(const float* data, const Shape& shape, const QuantSpec& spec);

// Like params_for, but each parameter's range [min, max] is shrunk to [a * min, a * max] with the
// clip ratio a, from the grid 1, 1 - (1 - min_ratio) / steps, ..., min_ratio, that minimises the
// squared error of quantizing that parameter's own elements (round half away from zero; the
// first best ratio on ties). Clipping a few outliers buys finer steps for everything else: the
// usual remedy for int4 weights. steps >= 1, min_ratio in (0, 1]; InvalidArgument otherwise.
QuantParams params_for_mse(const float* data, const Shape& shape, const QuantSpec& spec,
                           int steps = 40, float min_ratio = 0.5f);

}  // namespace tinyquant
