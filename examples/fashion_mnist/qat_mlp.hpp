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
// TrainConfig's label smoothing and weight decay act on the fake-quantized weights the step
// starts from, as train_mlp's on its weights; the decay reaches the master weights through the
// same masked update as Adam's step (master -= mask * lr * weight_decay * w_fake), so master
// weights outside the quantization range (mask 0) are not decayed.
//
// Pruned models: with masks given, master weights where the mask is 0 are reset to exactly 0
// after every step (symmetric quantization maps 0 to 0), so the sparsity pattern is kept.
//
// Options (QatConfig):
// - snap_scales: the fake quantization uses per-group scales snapped to the grid the integer
//   layer applies (snap_group_scales), so the forward pass sees the deployed weights exactly.
// - learn_scales (LSQ, Esser et al. 2020): the per-group scales start from the re-fit above and
//   are then trained, never re-fitted. For w_hat = s * clamp(round(w / s), qmin, qmax):
//     d w_hat / d s = round(w / s) - w / s where round(w / s) lies in [qmin, qmax], else the
//     bound it is clamped to (lsq_scale_grad); d w_hat / d w is the clipped STE above.
//   A group's gradient, sum over its weights of dL/dw_hat * d w_hat / d s, is multiplied by
//   1 / sqrt(group_size * qmax) as LSQ does, and the scales take Adam steps of their own (own
//   moments, step size scale_lr following the config's schedule): Adam's steps do not depend on
//   the gradient's magnitude, which differs by orders between layers and from the weights'.
//   Scales stay >= 1e-8 (and snapped, with snap_scales, before every use).
// - freeze_last_epoch: in the last epoch the weight parameters neither re-fit nor learn.
//
// The result is the master weights and the weight parameters they are meant to be quantized
// with: quantize_mlp(..., {&params}) gives the integer network the fine-tune was aiming at (without
// learned scales, snapping or freezing, these are weight_params() of the result, what
// quantize_mlp fits by itself).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
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
  bool snap_scales = false;   // per-group scales on the deployed grid (see above)
  bool learn_scales = false;  // LSQ per-group scales (needs a per-group spec)
  float scale_lr = 1e-4f;     // > 0: Adam step size of learned scales (before the schedule)
  bool freeze_last_epoch = false;
  // > 0: end with the mean of the master weights and biases after every step of the last
  // `average_last_epochs` epochs (stochastic weight averaging), re-fitted; not with keep_best
  // or learn_scales.
  int average_last_epochs = 0;
  // <= 4-bit specs: re-fit with min / max ranges (params_for) instead of MSE-optimal ones.
  bool minmax_fits = false;
};

// LSQ's straight-through derivative of w_hat = s * clamp(round(w / s), qmin, qmax) with respect
// to s (round half away from zero): round(w / s) - w / s inside [qmin, qmax], else the bound.
float lsq_scale_grad(float w, float s, int32_t qmin, int32_t qmax);

// The weight QuantParams quantize_mlp would use for this layer's weights (snapped per-group
// scales with snap, as quantize_mlp's WeightParamsChoice::snap).
tinyquant::QuantParams weight_params(const MatrixRM& w, const tinyquant::QuantSpec& spec,
                                     bool snap = false, bool minmax = false);

// mlp with every layer's weights replaced by fake_quant(w, weight_params(w, spec)): the float
// model of what quantize_mlp stores (activations still in float).
FloatMlp quantized_weights(const FloatMlp& mlp, const tinyquant::QuantSpec& spec);

// Fine-tunes mlp in place with fake-quantized weights (see above). on_epoch's val_accuracy is
// that of quantized_weights() of the master weights at the end of the epoch. config.keep_best
// must be false (use qat.keep_best: an epoch's snapshot must be the master weights). Throws
// tinyquant::InvalidArgument for a bad config, refresh_every < 1, keep_best without validation
// data, learn_scales without a per-group spec or scale_lr <= 0; tinyquant::ShapeError if the
// masks do not fit the layers. Returns the weight parameters per layer (see above); with
// keep_best, those of the kept epoch.
std::vector<tinyquant::QuantParams> qat_finetune(
    FloatMlp* mlp, const Dataset& train, const Dataset& val, const TrainConfig& config,
    const tinyquant::QuantSpec& spec, const QatConfig& qat = {},
    const std::function<void(const EpochStats&)>& on_epoch = {});

// The demo's int4 per-group 32 QAT, chosen on the validation images (README, "What was tried"):
// kDemoQatEpochs at kDemoFinetuneLrScale times the float model's lr (cosine to 0, the last
// epoch), with the demo's regularization (apply_demo_regularization), ranges re-fitted every
// kDemoQatRefresh steps and group scales snapped to the kernel's grid. fashion_mnist and
// `fashion_mnist_explore --qat base` both build it here, so they train and cache the same model.
inline constexpr int kDemoQatEpochs = 12;
inline constexpr float kDemoFinetuneLrScale = 2.0f;  // also the global pruning fine-tunes' lr
inline constexpr int64_t kDemoQatRefresh = 100;

struct DemoQat {
  TrainConfig train;
  QatConfig qat;
};

// The demo's QAT on top of ft (the fine-tunes' config: the float recipe's seed, batch, schedule
// and any distillation teacher); float_lr is the float model's training lr.
DemoQat demo_qat(const TrainConfig& ft, float float_lr);

// The recipe text of a cached model (TrainKey::recipe) trained by q from the model whose own
// recipe text is `from` ("from-e<epochs>-lr<lr>-<recipe>", with any distillation tag first);
// `prefix` names the quantization ("qat-int4"; explore's full-grid variant has its own).
std::string demo_qat_recipe(const DemoQat& q, const std::string& from,
                            const std::string& prefix = "qat-int4");

}  // namespace fmnist
