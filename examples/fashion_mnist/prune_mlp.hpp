// Pruning a FloatMlp with the toolkit's masks, and the short fine-tunes that recover accuracy.
//
// Global magnitude pruning ranks the weights of every layer together (biases are never pruned)
// with tinyquant::global_magnitude_masks. During the fine-tune the target sparsity follows a
// tinyquant::PolynomialDecay from 0 to the final sparsity over the first ramp_fraction of the
// steps; the masks are recomputed at every step where the schedule says so and applied after
// every optimizer step, so pruned weights stay exactly 0. The fine-tune ends with one last mask at
// the final sparsity, so the result has exactly round(sparsity * weights) zeros pruned.
//
// Structured pruning removes whole hidden neurons (rows of a layer, with the matching inputs of
// the next layer) chosen by tinyquant::structured_mask and cut out with tinyquant::shrink: the
// network gets physically smaller and stays dense.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "float_mlp.hpp"
#include "tinyquant/prune.hpp"
#include "train.hpp"

namespace fmnist {

// Masks over every layer's weights with one global magnitude threshold (layer order = flat
// order for the toolkit's tie rule). sparsity in [0, 1).
std::vector<tinyquant::Mask> global_masks(const FloatMlp& mlp, double sparsity);
// Zeroes the pruned weights. Throws tinyquant::ShapeError if the masks do not fit the layers.
void apply_masks(FloatMlp* mlp, const std::vector<tinyquant::Mask>& masks);
// Fraction of exactly-zero weights over all layers (biases excluded).
double weight_sparsity(const FloatMlp& mlp);

struct PruneConfig {
  double sparsity = 0.7;       // final, [0, 1)
  double ramp_fraction = 0.6;  // (0, 1]: the schedule reaches `sparsity` at this share of steps
  int64_t frequency = 100;     // >= 1: mask update period in steps
  double power = 3.0;          // > 0: PolynomialDecay exponent
};

// The schedule for a fine-tune of total_steps: initial 0, begin 0, end = ramp_fraction *
// total_steps rounded down to a multiple of frequency (at least frequency).
tinyquant::PolynomialDecay prune_schedule(const PruneConfig& prune, int64_t total_steps);

// Fine-tunes mlp in place while pruning it globally to prune.sparsity; returns the final masks.
// With config.keep_best, ends with the weights of the best validation epoch among those that end
// after the ramp (at the final sparsity; the last epoch if none does). Throws
// tinyquant::InvalidArgument for a bad prune or train config.
std::vector<tinyquant::Mask> prune_finetune(
    FloatMlp* mlp, const Dataset& train, const Dataset& val, const TrainConfig& config,
    const PruneConfig& prune, const std::function<void(const EpochStats&)>& on_epoch = {});

// Removes round(fraction * neurons) neurons of every hidden layer (smallest by `criterion` over
// the neuron's incoming weights), shrinking the next layer's inputs to match. fraction in [0, 1);
// throws tinyquant::InvalidArgument if a layer would lose every neuron.
FloatMlp shrink_hidden(const FloatMlp& mlp, double fraction, tinyquant::Criterion criterion);

}  // namespace fmnist
