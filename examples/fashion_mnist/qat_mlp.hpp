// Quantization-aware fine-tuning of a FloatMlp: the forward and backward passes see the weights
// as the integer network will (quantized then dequantized with the layer's QuantParams), while
// the optimizer's updates land on float "master" weights (straight-through estimator).
//
// Per optimizer step, for each layer: master += mask * (w_after_step - w_fake), where w_fake is
// what the step started from and mask is tinyquant::fake_quant's clipped-STE mask (0 where the
// master weight lies outside the quantization range, so clipped weights are not pushed further);
// then w = fake_quant(master). The QuantParams are recomputed from the master weights every
// `refresh_every` steps, with the same calibration the final quantization uses (MSE-optimal
// ranges for <= 4 bits, the spec's own rule otherwise). Biases train in float as usual.
//
// Pruned models: with masks given, master weights where the mask is 0 are reset to exactly 0
// after every step (symmetric quantization maps 0 to 0), so the sparsity pattern is kept.
//
// The result is the master weights: quantize them with the same spec (quantize_mlp) to get the
// integer network the fine-tune was aiming at.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "float_mlp.hpp"
#include "tinyquant/prune.hpp"
#include "tinyquant/quant_params.hpp"
#include "train.hpp"

namespace fmnist {

struct QatConfig {
  int64_t refresh_every = 100;  // >= 1: steps between re-fits of the weight QuantParams
  // End with the master weights of the epoch whose weight-quantized model (quantized_weights())
  // scored best on the validation set, the earliest on ties; needs a non-empty validation set.
  bool keep_best = false;
  // Pruning masks (one per layer, 0 = pruned), or null for a dense model.
  const std::vector<tinyquant::Mask>* masks = nullptr;
};

// The weight QuantParams quantize_mlp would use for this layer's weights.
tinyquant::QuantParams weight_params(const MatrixRM& w, const tinyquant::QuantSpec& spec);

// mlp with every layer's weights replaced by fake_quant(w, weight_params(w, spec)): the float
// model of what quantize_mlp stores (activations still in float).
FloatMlp quantized_weights(const FloatMlp& mlp, const tinyquant::QuantSpec& spec);

// Fine-tunes mlp in place with fake-quantized weights (see above). on_epoch's val_accuracy is
// that of quantized_weights() of the master weights at the end of the epoch. config.keep_best
// must be false (use qat.keep_best: an epoch's snapshot must be the master weights). Throws
// tinyquant::InvalidArgument for a bad config, refresh_every < 1, or keep_best without
// validation data; tinyquant::ShapeError if the masks do not fit the layers.
void qat_finetune(FloatMlp* mlp, const Dataset& train, const Dataset& val,
                  const TrainConfig& config, const tinyquant::QuantSpec& spec,
                  const QatConfig& qat = {},
                  const std::function<void(const EpochStats&)>& on_epoch = {});

}  // namespace fmnist
