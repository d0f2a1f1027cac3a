// A FloatMlp as a stack of tinyquant::QuantizedLinear layers (any weight QuantSpec the toolkit
// supports: int8 / int4, per-tensor / per-channel / per-group), optionally with sparse weight
// storage, plus the byte accounting and the batch-1 evaluation the demo's table reports.
//
// Activations are int8 affine per tensor from ranges calibrated on the validation images (the
// same ActRange as int8_mlp.hpp); hidden layers fuse ReLU.
//
// Sparse storage (for pruned models): every layer's quantized weights go through
// tinyquant::choose_format; its smallest format is what the bytes count. When that format is one
// rt::sparse_fully_connected_s8 runs (CSR u8 / u16, bitmap, N:M) and the weights are int8, the
// layer runs through that kernel (bit-identical to the dense kernel on the same weights);
// otherwise (dense, block CSR, or int4 values) it runs through the layer's dense kernel.
//
// Bytes per layer = weights (dense bytes or the chosen format's bytes) + int32 bias [out]
// + the TFLite-Micro requantization form: one float32 scale per channel (the weight scale, or the
// row's largest group scale for per-group weights; one in total for per-tensor weights) and the
// layer's float32 input and output scales, from which the firmware computes the int32
// multiplier and shift once at init into RAM (rt::multipliers_from_scales, what `tinyquant
// export-c --requant scales` writes) + one ratio byte per group for per-group weights
// (rt/grouped.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "float_mlp.hpp"
#include "int8_mlp.hpp"
#include "tinyquant/gptq.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/sparse.hpp"

namespace fmnist {

struct LayerBytes {
  tinyquant::StorageFormat format = tinyquant::StorageFormat::kDense;
  int64_t weights = 0;  // in `format`
  int64_t bias = 0;
  int64_t params = 0;  // requantization scales, input / output scale, group ratios

  int64_t total() const { return weights + bias + params; }
};

struct QuantMlp {
  tinyquant::ActivationParams input;
  std::vector<tinyquant::QuantizedLinear> layers;
  // Per layer: the sparse weights when the layer runs through sparse_fully_connected_s8.
  std::vector<std::optional<tinyquant::SparseMatrix>> sparse;
  std::vector<LayerBytes> bytes;

  int64_t total_bytes() const;
  // How many layers run through the sparse kernel.
  int sparse_layers() const;
};

// How quantize_mlp chooses the weight parameters of <= 4-bit layers.
struct WeightParamsChoice {
  // Per layer, the parameters to quantize with as given (e.g. learned by qat_finetune), or null
  // to fit them with params_for_mse.
  const std::vector<tinyquant::QuantParams>* given = nullptr;
  // Snap fitted per-group scales to the deployed grid (snap_group_scales) before rounding the
  // weights, so the integers are rounded against the scales the kernel applies.
  bool snap = false;
};

// Which inputs GPTQ sees for layer i, from calibration images x:
enum class GptqInputs {
  kFloat,       // the float model's activations
  kSequential,  // the float activations of the model whose layers before i hold their GPTQ weights
  kSequentialQuantized,  // the same, each layer input quantized to int8 and back with the
                         // min / max ranges of that model on x (what the integer layer reads)
};

// GPTQ of every layer (tinyquant/gptq.hpp) with calibration inputs x [samples][pixels].
struct GptqMlp {
  // The model with every layer's weights replaced by their GPTQ values (dequantized).
  FloatMlp model;
  // Per layer, the parameters GPTQ rounded against: quantize_mlp(model, ..., {&params}) stores
  // exactly GPTQ's integers.
  std::vector<tinyquant::QuantParams> params;
};
GptqMlp gptq_mlp(const FloatMlp& mlp, const MatrixRM& x, const tinyquant::QuantSpec& spec,
                 const tinyquant::GptqOptions& options, GptqInputs inputs);

// The demo's GPTQ (chosen on validation, README "What was tried"): group scales snapped to the
// kernel's grid, each group fitted from its min / max when the column pass reaches it, columns
// in their natural order, damping 0.01; used with GptqInputs::kSequential.
tinyquant::GptqOptions demo_gptq_options();

// Throws the toolkit's errors (bad ranges, unsupported spec, given parameters that do not fit)
// naming the layer.
QuantMlp quantize_mlp(const FloatMlp& mlp, const std::vector<ActRange>& ranges,
                      const tinyquant::QuantSpec& weight_spec, bool sparse_storage,
                      const WeightParamsChoice& wp = {});

// Integer-only forward of `batch` rows of quantized input [batch][in]; logits [batch][classes].
void forward_quant(const QuantMlp& q, const int8_t* input, int32_t batch,
                   std::vector<int8_t>* logits, rt::Path path = rt::Path::kAuto);

// Bytes of a float32 model: 4 per weight and bias.
int64_t float_bytes(const FloatMlp& mlp);
// Bytes of a pruned float32 model stored sparsely: per layer, the smallest of dense (4 per
// weight) and every format choose_format() can hold the zero pattern in, with 4-byte values
// (index arrays as the format stores them, values counted from the encoded matrix, CSR padding
// included); plus 4 per bias.
int64_t sparse_float_bytes(const FloatMlp& mlp);

struct EvalResult {
  double accuracy = 0.0;
  double us_per_sample = 0.0;  // wall time of the batch-1 loop divided by the sample count
  int64_t count = 0;
};

// Batch-1 evaluation of the first `limit` samples (all when limit <= 0). The quantized one times
// input quantization + the integer network + argmax; the float one the Eigen forward + argmax.
EvalResult evaluate_float(const FloatMlp& mlp, const Dataset& d, int64_t limit);
EvalResult evaluate_quant(const QuantMlp& q, const Dataset& d, int64_t limit,
                          rt::Path path = rt::Path::kAuto);

}  // namespace fmnist
