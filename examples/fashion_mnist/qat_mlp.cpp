#include "qat_mlp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "prune_mlp.hpp"
#include "quant_mlp.hpp"
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

float lsq_scale_grad(float w, float s, int32_t qmin, int32_t qmax) {
  const float v = w / s;
  const float q = std::round(v);
  if (q < static_cast<float>(qmin)) return static_cast<float>(qmin);
  if (q > static_cast<float>(qmax)) return static_cast<float>(qmax);
  return q - v;
}

tq::QuantParams weight_params(const MatrixRM& w, const tq::QuantSpec& spec, bool snap,
                              bool minmax) {
  const tq::Shape shape{w.rows(), w.cols()};
  tq::QuantParams p = spec.bits <= 4 && !minmax ? tq::params_for_mse(w.data(), shape, spec)
                                                : tq::params_for(w.data(), shape, spec);
  return snap ? snap_group_scales(std::move(p), shape, w.data()) : p;
}

FloatMlp quantized_weights(const FloatMlp& mlp, const tq::QuantSpec& spec) {
  FloatMlp out = mlp;
  for (DenseLayer& l : out.layers)
    set_weights(&l, fake_layer(l.w, weight_params(l.w, spec)).values);
  return out;
}

namespace {

// Learned per-group scales: the raw values Adam moves, its moments, and the step count.
struct LearnedScales {
  std::vector<float> raw, m, v, grad;
  int64_t t = 0;
};

// Adds LSQ's gradient of each group scale to ls->grad: grad_w = dL / d w_hat for the layer's
// master weights w quantized with p (whose scales are the ones the forward pass used).
void accumulate_scale_grad(const MatrixRM& w, const MatrixRM& grad_w, const tq::QuantParams& p,
                           LearnedScales* ls) {
  const tq::ParamLayout layout = tq::param_layout(p.spec, tq::Shape{w.rows(), w.cols()});
  const int32_t qmin = p.spec.qmin(), qmax = p.spec.qmax();
  const float* wd = w.data();
  const float* gd = grad_w.data();
  for (int64_t k = 0; k < w.size(); ++k) {
    const size_t j = static_cast<size_t>(layout.param_index(k));
    ls->grad[j] += gd[k] * lsq_scale_grad(wd[k], p.scales[j], qmin, qmax);
  }
}

// One Adam step of the scales on their accumulated gradient (times LSQ's gradient scale), then
// clears it. beta1 / beta2 / eps as the weights'.
void step_scales(LearnedScales* ls, float grad_scale, float lr, const TrainConfig& c) {
  constexpr float kFloor = 1e-8f;
  using Vec = Eigen::Map<Eigen::VectorXf>;
  const auto count = static_cast<Eigen::Index>(ls->raw.size());
  Vec raw(ls->raw.data(), count), m(ls->m.data(), count), v(ls->v.data(), count);
  Vec grad(ls->grad.data(), count);
  adam_step(raw, grad_scale * grad, m, v, c, adam_correction(c, lr, ++ls->t));
  raw = raw.cwiseMax(kFloor);
  grad.setZero();
}

}  // namespace

std::vector<tq::QuantParams> qat_finetune(FloatMlp* mlp, const Dataset& train, const Dataset& val,
                                          const TrainConfig& config, const tq::QuantSpec& spec,
                                          const QatConfig& qat,
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
  if (qat.learn_scales && (spec.granularity != tq::Granularity::kPerGroup || !(qat.scale_lr > 0)))
    throw tq::InvalidArgument(fmt::format(
        "qat_finetune: learn_scales needs a per-group spec and scale_lr > 0 (got {}, {})",
        tq::to_string(spec.granularity), qat.scale_lr));
  if (qat.average_last_epochs < 0 || qat.average_last_epochs > config.epochs ||
      (qat.average_last_epochs > 0 && (qat.keep_best || qat.learn_scales)))
    throw tq::InvalidArgument(
        fmt::format("qat_finetune: average_last_epochs = {} (need 0..{}, and neither keep_best nor "
                    "learn_scales with it)",
                    qat.average_last_epochs, config.epochs));
  const size_t n = mlp->layers.size();
  FloatMlp master = *mlp;
  if (qat.masks != nullptr) apply_masks(&master, *qat.masks);
  std::vector<tq::QuantParams> params;
  std::vector<tq::FakeQuantResult> fake(n);
  std::vector<LearnedScales> learned(qat.learn_scales ? n : 0);
  std::vector<MatrixRM> grads(qat.learn_scales ? n : 0);
  const int64_t steps_per_epoch = (train.size() + config.batch - 1) / config.batch;
  const int64_t total_steps = steps_per_epoch * config.epochs;
  const int64_t freeze_from =
      qat.freeze_last_epoch ? steps_per_epoch * (config.epochs - 1) : total_steps;
  bool frozen = freeze_from <= 0;
  const int64_t average_from = steps_per_epoch * (config.epochs - qat.average_last_epochs);
  FloatMlp average;
  int64_t averaged = 0;
  // The re-fit of every layer's parameters to the current master weights.
  auto refit = [&] {
    std::vector<tq::QuantParams> p;
    for (const DenseLayer& l : master.layers)
      p.push_back(weight_params(l.w, spec, qat.snap_scales, qat.minmax_fits));
    return p;
  };
  auto refresh_params = [&] { params = refit(); };
  // params from the learned raw scales (snapped if asked).
  auto load_learned = [&] {
    for (size_t i = 0; i < n; ++i) {
      params[i].scales = learned[i].raw;
      if (qat.snap_scales)
        params[i] = snap_group_scales(
            std::move(params[i]), tq::Shape{master.layers[i].w.rows(), master.layers[i].w.cols()},
            master.layers[i].w.data());
    }
  };
  // The parameters the master weights would be quantized with now: the ones in use when they
  // are learned or frozen, else a re-fit.
  auto result_params = [&] { return qat.learn_scales || frozen ? params : refit(); };
  // Puts fake_quant(master) into m and remembers it (and its mask) for the next update.
  auto load_fake = [&](FloatMlp* m) {
    for (size_t i = 0; i < n; ++i) {
      fake[i] = fake_layer(master.layers[i].w, params[i]);
      set_weights(&m->layers[i], fake[i].values);
    }
  };
  BestEpoch best;
  std::vector<tq::QuantParams> best_params;
  auto epoch_end = [&](EpochStats s) {
    std::vector<tq::QuantParams> p = result_params();
    if (val.size() > 0) {
      FloatMlp q = master;
      for (size_t i = 0; i < n; ++i)
        set_weights(&q.layers[i], fake_layer(q.layers[i].w, p[i]).values);
      s.val_accuracy = accuracy(q, val);
    }
    if (qat.keep_best && best.offer(s.val_accuracy, master)) best_params = std::move(p);
    if (on_epoch) on_epoch(s);
  };
  refresh_params();
  for (size_t i = 0; i < learned.size(); ++i) {
    const size_t count = params[i].scales.size();
    learned[i].raw = params[i].scales;
    learned[i].m.assign(count, 0.0f);
    learned[i].v.assign(count, 0.0f);
    learned[i].grad.assign(count, 0.0f);
  }
  load_fake(mlp);
  const float grad_scale =
      1.0f / std::sqrt(static_cast<float>(spec.group_size) * static_cast<float>(spec.qmax()));
  // Validation runs on the master weights in epoch_end, not on train_mlp's fake-quantized ones.
  auto after_step = [&](int64_t step, FloatMlp* m) {
    frozen = step >= freeze_from;
    const bool learn = qat.learn_scales && !frozen;
    for (size_t i = 0; i < n; ++i) {
      DenseLayer& ml = master.layers[i];
      if (learn) accumulate_scale_grad(ml.w, grads[i], params[i], &learned[i]);
      const float* after = m->layers[i].w.data();
      const std::vector<float>& before = fake[i].values;
      const std::vector<uint8_t>& mask = fake[i].mask;
      float* w = ml.w.data();
      for (size_t k = 0; k < before.size(); ++k)
        if (mask[k] != 0) w[k] += after[k] - before[k];
      ml.b = m->layers[i].b;
    }
    if (qat.masks != nullptr) apply_masks(&master, *qat.masks);
    if (qat.average_last_epochs > 0 && step >= average_from) {
      if (++averaged == 1) {
        average = master;
      } else {
        const float f = 1.0f / static_cast<float>(averaged);  // running mean
        for (size_t i = 0; i < n; ++i) {
          average.layers[i].w += f * (master.layers[i].w - average.layers[i].w);
          average.layers[i].b += f * (master.layers[i].b - average.layers[i].b);
        }
      }
    }
    if (learn) {
      const float lr = qat.scale_lr * scheduled_lr(config, step, total_steps) / config.lr;
      for (LearnedScales& ls : learned) step_scales(&ls, grad_scale, lr, config);
      load_learned();
    } else if (!qat.learn_scales && !frozen && (step + 1) % qat.refresh_every == 0) {
      refresh_params();
    }
    load_fake(m);
  };
  GradHook on_grad;
  if (qat.learn_scales) on_grad = [&](size_t i, const MatrixRM& g) { grads[i] = g; };
  train_mlp(mlp, train, Dataset{}, config, epoch_end, after_step, on_grad);
  if (averaged > 0) master = std::move(average);
  std::vector<tq::QuantParams> out = qat.keep_best  ? best_params
                                     : averaged > 0 ? refit()
                                                    : result_params();
  *mlp = std::move(qat.keep_best ? best.weights : master);
  return out;
}

DemoQat demo_qat(const TrainConfig& ft, float float_lr) {
  DemoQat q;
  q.train = ft;
  q.train.epochs = kDemoQatEpochs;
  q.train.lr = kDemoFinetuneLrScale * float_lr;
  q.train.keep_best = false;
  apply_demo_regularization(&q.train);
  q.qat.refresh_every = kDemoQatRefresh;
  q.qat.snap_scales = true;
  return q;
}

std::string demo_qat_recipe(const DemoQat& q, const std::string& from, const std::string& prefix) {
  return fmt::format("{}-g32-r{}-snap{}-cos_{}", prefix, q.qat.refresh_every,
                     regularization_tag(q.train), from);
}

}  // namespace fmnist
