#include "qat_mlp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "prune_mlp.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/quantize.hpp"

namespace fmnist {

namespace tq = tinyquant;

namespace {

tq::FakeQuantResult fake_layer(const MatrixRM& w, const tq::QuantParams& params) {
  return tq::fake_quant(w.data(), tq::Shape{w.rows(), w.cols()}, params);
}

void set_weights(DenseLayer* l, const std::vector<float>& values) {
  l->w = Eigen::Map<const MatrixRM>(values.data(), l->w.rows(), l->w.cols());
}

}  // namespace

tq::QuantParams weight_params(const MatrixRM& w, const tq::QuantSpec& spec) {
  const tq::Shape shape{w.rows(), w.cols()};
  return spec.bits <= 4 ? tq::params_for_mse(w.data(), shape, spec)
                        : tq::params_for(w.data(), shape, spec);
}

FloatMlp quantized_weights(const FloatMlp& mlp, const tq::QuantSpec& spec) {
  FloatMlp out = mlp;
  for (DenseLayer& l : out.layers)
    set_weights(&l, fake_layer(l.w, weight_params(l.w, spec)).values);
  return out;
}

void qat_finetune(FloatMlp* mlp, const Dataset& train, const Dataset& val,
                  const TrainConfig& config, const tq::QuantSpec& spec, const QatConfig& qat,
                  const std::function<void(const EpochStats&)>& on_epoch) {
  if (config.keep_best)
    throw tq::InvalidArgument(
        "qat_finetune: config.keep_best would keep fake-quantized weights (use QatConfig)");
  if (qat.refresh_every < 1)
    throw tq::InvalidArgument(
        fmt::format("qat_finetune: refresh_every = {} (need >= 1)", qat.refresh_every));
  if (qat.keep_best && val.size() == 0)
    throw tq::InvalidArgument(
        "qat_finetune: keep_best needs validation images, got an empty validation set");
  const size_t n = mlp->layers.size();
  FloatMlp master = *mlp;
  if (qat.masks != nullptr) apply_masks(&master, *qat.masks);
  std::vector<tq::QuantParams> params;
  std::vector<tq::FakeQuantResult> fake(n);
  auto refresh_params = [&] {
    params.clear();
    for (const DenseLayer& l : master.layers) params.push_back(weight_params(l.w, spec));
  };
  // Puts fake_quant(master) into m and remembers it (and its mask) for the next update.
  auto load_fake = [&](FloatMlp* m) {
    for (size_t i = 0; i < n; ++i) {
      fake[i] = fake_layer(master.layers[i].w, params[i]);
      set_weights(&m->layers[i], fake[i].values);
    }
  };
  BestEpoch best;
  auto epoch_end = [&](EpochStats s) {
    s.val_accuracy = val.size() > 0 ? accuracy(quantized_weights(master, spec), val) : 0.0;
    if (qat.keep_best) best.offer(s.val_accuracy, master);
    if (on_epoch) on_epoch(s);
  };
  refresh_params();
  load_fake(mlp);
  // Validation runs on the master weights in epoch_end, not on train_mlp's fake-quantized ones.
  train_mlp(mlp, train, Dataset{}, config, epoch_end, [&](int64_t step, FloatMlp* m) {
    for (size_t i = 0; i < n; ++i) {
      DenseLayer& ml = master.layers[i];
      const float* after = m->layers[i].w.data();
      const std::vector<float>& before = fake[i].values;
      const std::vector<uint8_t>& mask = fake[i].mask;
      float* w = ml.w.data();
      for (size_t k = 0; k < before.size(); ++k)
        if (mask[k] != 0) w[k] += after[k] - before[k];
      ml.b = m->layers[i].b;
    }
    if (qat.masks != nullptr) apply_masks(&master, *qat.masks);
    if ((step + 1) % qat.refresh_every == 0) refresh_params();
    load_fake(m);
  });
  *mlp = std::move(qat.keep_best ? best.weights : master);
}

}  // namespace fmnist
