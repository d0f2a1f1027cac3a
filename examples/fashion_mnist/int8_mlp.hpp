// Integer-only inference of a FloatMlp through the runtime's fully_connected_s8 kernel.
//
// Quantization follows TFLite's int8 conventions:
//   weights      int8 symmetric per output channel in [-127, 127], zero point 0
//   activations  int8 affine per tensor, (scale, zero point) from the min / max observed on the
//                calibration images (the validation split; never the test set)
//   bias         int32, scale in_scale * w_scale[o], zero point 0
//   requant      multiplier/shift per channel from rt::quantize_multiplier(in_scale * w_scale[o]
//                / out_scale); ReLU is fused by clamping at the output zero point
// The network input x in [0, 1] gets its own range too; calibrated on Fashion-MNIST it is
// exactly [0, 1], so q = pixel - 128 and the input quantization is lossless.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "float_mlp.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace fmnist {

namespace rt = tinyquant::rt;

struct ActRange {
  float min = 0.0f;
  float max = 0.0f;
};

// Min / max of every activation tensor over x, in batches: ranges[0] is the network input,
// ranges[i + 1] the output of layer i (post-ReLU for hidden layers, the logits for the last).
std::vector<ActRange> calibrate_ranges(const FloatMlp& mlp, const MatrixRM& x,
                                       int64_t batch = 1000);

// How the hidden layers' output ranges are chosen (the input and the logits always keep their
// min / max: clipping the logits could tie the largest ones).
struct ActCalibration {
  enum Kind : uint8_t { kMinMax, kPercentile, kMse } kind = kMinMax;
  double percentile = 99.99;  // kPercentile: tinyquant::PercentileObserver's p

  // "minmax", "p99.99", "mse" (file-name characters only, for cache keys and tables).
  std::string tag() const;
};

// Like calibrate_ranges, each hidden output's range from the int8 affine per-tensor observer of
// `how` (tinyquant::PercentileObserver / MseObserver over every value of that tensor), turned back
// into the range its (scale, zero point) represents.
std::vector<ActRange> calibrate_ranges(const FloatMlp& mlp, const MatrixRM& x,
                                       const ActCalibration& how, int64_t batch = 1000);

struct Int8Layer {
  int32_t in_features = 0;
  int32_t out_features = 0;
  std::vector<int8_t> w;            // [out][in]
  std::vector<float> w_scale;       // [out]
  std::vector<int32_t> bias;        // [out]
  std::vector<int32_t> multiplier;  // [out]
  std::vector<int32_t> shift;       // [out]
  rt::FcParams params;              // offsets and the fused activation range
  float out_scale = 1.0f;
  int32_t out_zero_point = 0;
};

struct Int8Mlp {
  float in_scale = 1.0f;
  int32_t in_zero_point = 0;
  std::vector<Int8Layer> layers;

  // Bytes a device would store: int8 weights, int32 biases, one float32 weight scale per output
  // channel and the layer's float32 input and output scales (TFLite Micro's form: the int32
  // multipliers and shifts are computed from them at init, into RAM).
  int64_t parameter_bytes() const;
};

// Throws tinyquant errors if a range is not finite or a multiplier cannot be represented.
Int8Mlp quantize_mlp_int8(const FloatMlp& mlp, const std::vector<ActRange>& ranges);

// Quantizes network inputs x [batch][in] with the model's input parameters.
std::vector<int8_t> quantize_input(const Int8Mlp& q, const MatrixRM& x);

// Integer-only forward pass: input [batch][in] int8, returns the int8 logits [batch][classes].
// Throws tinyquant::KernelError with the kernel's status if a kernel refuses its arguments.
std::vector<int8_t> forward_int8(const Int8Mlp& q, const std::vector<int8_t>& input, int32_t batch,
                                 rt::Path path = rt::Path::kAuto);

// Fraction of d classified correctly by the integer-only model (argmax of the int8 logits,
// the first one on ties).
double accuracy_int8(const Int8Mlp& q, const Dataset& d, rt::Path path = rt::Path::kAuto,
                     int64_t batch = 1000);

}  // namespace fmnist
