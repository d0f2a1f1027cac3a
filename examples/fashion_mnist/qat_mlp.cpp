#include "qat_mlp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/quantize.hpp"

namespace fmnist {

namespace tq = tinyquant;

tq::QuantParams weight_params(const MatrixRM& w, const tq::QuantSpec& spec) {
  const tq::Shape shape{w.rows(), w.cols()};
  return spec.bits <= 4 ? tq::params_for_mse(w.data(), shape, spec)
                        : tq::params_for(w.data(), shape, spec);
}

void qat_finetune(FloatMlp* mlp, const Dataset& train, const Dataset& val,
                  const TrainConfig& config, const tq::QuantSpec& spec, int64_t refresh_every,
                  const std::function<void(const EpochStats&)>& on_epoch) {
  if (config.keep_best)
    throw tq::InvalidArgument("qat_finetune: keep_best would keep fake-quantized weights");
  if (refresh_every < 1)
    throw tq::InvalidArgument(
        fmt::format("qat_finetune: refresh_every = {} (need >= 1)", refresh_every));
  const size_t n = mlp->layers.size();
  FloatMlp master = *mlp;
  std::vector<tq::QuantParams> params;
  std::vector<tq::FakeQuantResult> fake(n);
  auto refresh_params = [&] {
    params.clear();
    for (const DenseLayer& l : master.layers) params.push_back(weight_params(l.w, spec));
  };
  // Puts fake_quant(master) into m and remembers it (and its mask) for the next update.
  auto load_fake = [&](FloatMlp* m) {
    for (size_t i = 0; i < n; ++i) {
      const MatrixRM& w = master.layers[i].w;
      fake[i] = tq::fake_quant(w.data(), tq::Shape{w.rows(), w.cols()}, params[i]);
      m->layers[i].w = Eigen::Map<const MatrixRM>(fake[i].values.data(), w.rows(), w.cols());
    }
  };
  refresh_params();
  load_fake(mlp);
  train_mlp(mlp, train, val, config, on_epoch, [&](int64_t step, FloatMlp* m) {
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
    if ((step + 1) % refresh_every == 0) refresh_params();
    load_fake(m);
  });
  *mlp = std::move(master);
}

}  // namespace fmnist
