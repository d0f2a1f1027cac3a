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
// The result is the master weights: quantize them with the same spec (quantize_mlp) to get the
// integer network the fine-tune was aiming at.
#pragma once

#include <cstdint>
#include <functional>

#include "float_mlp.hpp"
#include "tinyquant/quant_params.hpp"
#include "train.hpp"

namespace fmnist {

// The weight QuantParams quantize_mlp would use for this layer's weights.
tinyquant::QuantParams weight_params(const MatrixRM& w, const tinyquant::QuantSpec& spec);

// Fine-tunes mlp in place with fake-quantized weights (see above). config.keep_best must be
// false (an epoch's snapshot would be the fake-quantized weights, not the master ones).
// Throws tinyquant::InvalidArgument for a bad config or refresh_every < 1.
void qat_finetune(FloatMlp* mlp, const Dataset& train, const Dataset& val,
                  const TrainConfig& config, const tinyquant::QuantSpec& spec,
                  int64_t refresh_every = 100,
                  const std::function<void(const EpochStats&)>& on_epoch = {});

}  // namespace fmnist
