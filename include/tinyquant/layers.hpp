// Integer-only layers: float weights + quantization parameters in, runtime kernel arguments out.
//
// A layer is quantized once, at construction:
//   weights     QTensor (int8, or int4 packed in the s4 nibble stream), symmetric per-channel
//               along the output axis or per-tensor; int4 per-group runs the grouped kernel
//   bias        int32 with scale input_scale * weight_scale[c] (round half away from zero)
//   multiplier  rt::multipliers_from_scales: rt::quantize_multiplier(input_scale *
//               weight_scale[c] / output_scale), in double; weight_scale[c] is the row's largest
//               group scale for per-group weights. A firmware that ships the float scales
//               (export-c --requant scales) calls the same function at init and gets the same pairs
//   kernel sums for fully-connected layers the input offset is folded into the bias once:
//               bias'[c] = bias[c] + input_offset * sum_k (w[c][k] + filter_offset)   (wraps)
//               so the kernel runs with input_offset 0 (exact: all arithmetic is mod 2^32);
//               per-group weights are the exception: their group ratios make the fold inexact,
//               so the grouped kernel keeps input_offset = -input zero point and the plain bias
// and then runs integer-only through tinyquant::rt. Activations are int8 affine per-tensor:
// real = scale * (q - zero_point). A fused ReLU / ReLU6 becomes the act_min / act_max clamp.
// Kernel errors surface as KernelError naming the layer, the argument and its value.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace tinyquant {

// int8 affine per-tensor activation quantization.
struct ActivationParams {
  float scale = 1.0f;      // finite, > 0
  int32_t zero_point = 0;  // [-128, 127]

  // TFLite's choice for an observed range (widened to contain 0).
  static ActivationParams from_range(float min, float max);
  // Throws InvalidArgument naming `what` if scale or zero point is out of range.
  void validate(const char* what) const;
};

enum class Activation : uint8_t { kNone = 0, kRelu = 1, kRelu6 = 2 };

// act_min / act_max for an int8 output with these parameters: ReLU clamps below at the zero
// point, ReLU6 also above at zero_point + round(6.0f / scale), the quotient in float as TFLite
// computes it. InvalidArgument for an Activation outside the three.
void activation_range(Activation act, const ActivationParams& out, int32_t* act_min,
                      int32_t* act_max);

// Quantizes one float (round half away from zero, saturating to int8; infinities saturate too):
// clamp(round(x / scale) + zero_point, -128, 127), the quotient in double. Throws DataError for
// NaN and InvalidArgument for parameters ActivationParams::validate rejects.
int8_t quantize_activation(float x, const ActivationParams& p);

// quantize_activation on x[0, n) into out[0, n), the same integers, in a loop the compiler
// vectorises (a model's input row, say). Every x is checked before anything is written: a NaN
// throws DataError naming its index and leaves out as it was. InvalidArgument for parameters
// ActivationParams::validate rejects, n < 0, or a null x or out with n > 0.
void quantize_activations(const float* x, int64_t n, const ActivationParams& p, int8_t* out);

// The weights QuantizedLinear and QuantizedConv2d keep from float weights, for a layer whose input
// scale is known when its weights are quantized (a model file a firmware export will run):
// quantize_weights (min / max ranges), except that a per-tensor or per-channel (axis 0) scale at
// which a bias code |bias[c]| / (input_scale x scale) would pass 2^30 is raised until it does not.
// Such a channel's weights are negligible next to its bias (a dead unit, say) and round more
// coarsely; without the raise its bias has no int32 code and QuantizedLinear on the stored
// weights throws DataError. Symmetric per-group weights [out][in] grouped along the input axis
// carry the bias at the row's largest group scale: a row where that is short gets every group
// scale set to the one the bias needs. weights [out][...], bias [out] (one for a scalar) or null
// (then this is quantize_weights); other per-group weights and per-channel ones along another
// axis are quantized as quantize_weights does. *raised (if not null) counts the scales raised
// (per-group: the rows). Throws what
// quantize_weights throws, InvalidArgument for an input scale not finite and > 0 and DataError for
// a non-finite bias.
QTensor quantize_weights_for_bias(const float* weights, const Shape& shape, const QuantSpec& spec,
                                  const float* bias, float input_scale,
                                  RoundMode mode = RoundMode::kHalfAwayFromZero,
                                  int64_t* raised = nullptr);

class QuantizedLinear {
 public:
  // weights [out_features][in_features] row-major float; bias [out_features] or null.
  // weight_spec: bits 2..8; kSymmetric per-channel (axis 0) or per-tensor (affine allowed
  // per-tensor); symmetric per-group along axis 1 runs the grouped kernels (the int4 one for
  // bits <= 4, the int8 one for 5..8). Weights that are all 0, or hold a NaN or infinity, are a
  // DataError naming the layer.
  // Weight scales come from min / max, except that a per-tensor or per-channel scale (per-group:
  // a row's largest group scale) at which a bias code |bias| / (input scale x weight scale) would
  // pass 2^30 is raised until it does not (a unit whose weights are negligible next to its bias),
  // as TFLite's converter does (quantize_weights_for_bias).
  QuantizedLinear(const float* weights, int64_t out_features, int64_t in_features,
                  const float* bias, const QuantSpec& weight_spec, ActivationParams input,
                  ActivationParams output, Activation act = Activation::kNone,
                  rt::Rounding rounding = rt::Rounding::kDouble);
  // From weights already quantized (e.g. pruned, or loaded from a model file). Data whose byte
  // count is not the shape's is a ShapeError. A bias that does not fit int32 at input scale x
  // weight scale is a DataError (quantize_weights_for_bias avoids it).
  // Both constructors: an output scale so much finer than input x weight scale that the
  // requantization's left shift (a real multiplier above 1) could carry an accumulator the
  // layer can reach past int32, where the kernels wrap as CMSIS-NN does, is InvalidArgument.
  // Both constructors: a per-channel or per-group row whose weight codes are all 0 (a neuron
  // pruned in place) outputs its bias alone, so its placeholder scale (1, from a [0, 0] range)
  // would set that bias's precision. weights() carries such a row at the finest scale of the
  // rows with weights instead (per group: a row's largest), unless its own is finer, raised as
  // above if its bias needs.
  QuantizedLinear(QTensor weights, const float* bias, ActivationParams input,
                  ActivationParams output, Activation act = Activation::kNone,
                  rt::Rounding rounding = rt::Rounding::kDouble);

  // input [batch][in_features] int8, output [batch][out_features] int8.
  void forward(const int8_t* input, int64_t batch, int8_t* output,
               rt::Path path = rt::Path::kAuto) const;
  std::vector<int8_t> forward(const std::vector<int8_t>& input,
                              rt::Path path = rt::Path::kAuto) const;

  int64_t in_features() const noexcept { return in_; }
  int64_t out_features() const noexcept { return out_; }
  const QTensor& weights() const noexcept { return weights_; }
  const ActivationParams& input_params() const noexcept { return input_; }
  const ActivationParams& output_params() const noexcept { return output_; }
  // Per output channel: the bias the kernel sees (input offset folded in, except for per-group
  // weights: see kernel_params().input_offset), multiplier, shift (per-tensor weights: every
  // entry equal; the kernel reads the first).
  const std::vector<int32_t>& kernel_bias() const noexcept { return kernel_bias_; }
  const std::vector<int32_t>& multipliers() const noexcept { return multipliers_; }
  const std::vector<int32_t>& shifts() const noexcept { return shifts_; }
  // Grouped weights: per group, its scale's ratio to the row's largest (see rt/grouped.hpp).
  const std::vector<uint8_t>& group_ratios() const noexcept { return group_ratios_; }
  // Grouped weights: the rt::GroupScales group size, min(group size, in_features). A larger
  // group is one group per row either way, and the kernel's field is 32-bit. 0 otherwise.
  int32_t kernel_group_size() const noexcept;
  rt::Rounding rounding() const noexcept { return rounding_; }
  const rt::FcParams& kernel_params() const noexcept { return params_; }
  // Bytes a device stores: weights + int32 bias + multipliers and shifts (one pair for
  // per-tensor weights) + one ratio byte per group for grouped weights.
  int64_t bytes() const;

 private:
  void build(const float* bias);

  int64_t out_ = 0, in_ = 0;
  QTensor weights_;
  ActivationParams input_, output_;
  Activation act_ = Activation::kNone;
  rt::FcParams params_;
  rt::Rounding rounding_ = rt::Rounding::kDouble;
  std::vector<int32_t> kernel_bias_, multipliers_, shifts_;
  std::vector<uint8_t> group_ratios_;  // grouped weights only
};

enum class Padding : uint8_t { kValid = 0, kSame = 1 };

struct Conv2dGeometry {
  int32_t stride_h = 1, stride_w = 1;
  int32_t dilation_h = 1, dilation_w = 1;
  Padding padding = Padding::kSame;  // TFLite's SAME (extra pad bottom/right) or VALID
  int32_t groups = 1;
};

class QuantizedConv2d {
 public:
  // weights OHWI [out_c][kh][kw][in_c / groups] float; bias [out_c] or null. Weights are
  // quantized symmetric (weight_spec bits 8, or 4 for the s4 kernel), per output channel (a
  // per-channel spec's axis is taken as 0 whatever it says) or per-tensor as the spec asks;
  // per-group and affine specs are InvalidArgument. A scale too small for its channel's bias is
  // raised as QuantizedLinear's float constructor does, and an output channel whose weights are
  // all 0 takes the finest scale of the others, as QuantizedLinear's rows do. Bad weights, an
  // unknown padding or activation, and too fine an output scale fail as QuantizedLinear's do.
  QuantizedConv2d(const float* weights, int32_t out_c, int32_t kernel_h, int32_t kernel_w,
                  int32_t in_c, const float* bias, const Conv2dGeometry& geometry,
                  const QuantSpec& weight_spec, ActivationParams input, ActivationParams output,
                  Activation act = Activation::kNone,
                  rt::Rounding rounding = rt::Rounding::kDouble);

  // Output extent for an input extent, per the geometry.
  void output_size(int32_t in_h, int32_t in_w, int32_t* out_h, int32_t* out_w) const;
  // input NHWC [batch][in_h][in_w][in_c] int8 -> output NHWC int8 (sized by output_size).
  void forward(const int8_t* input, int32_t batch, int32_t in_h, int32_t in_w, int8_t* output,
               rt::Path path = rt::Path::kAuto) const;

  const QTensor& weights() const noexcept { return weights_; }
  // Bytes a device stores: weights + int32 bias, multiplier and shift per output channel. The
  // conv kernels read per-channel pairs, so per-tensor weights count out_c pairs too.
  int64_t bytes() const;

 private:
  rt::ConvDims dims(int32_t batch, int32_t in_h, int32_t in_w) const;
  rt::ConvParams params(int32_t in_h, int32_t in_w) const;

  int32_t out_c_, kh_, kw_, in_c_;
  Conv2dGeometry geo_;
  QTensor weights_;
  ActivationParams input_, output_;
  int32_t act_min_ = -128, act_max_ = 127;
  rt::Rounding rounding_;
  std::vector<int32_t> bias_, multipliers_, shifts_;
};

// Throws KernelError("<op>: <status name> (<detail>)") unless st is ok.
void check_kernel_status(rt::Status st, const char* op, const char* detail);

}  // namespace tinyquant
