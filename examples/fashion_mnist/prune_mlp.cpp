#include "prune_mlp.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "tinyquant/error.hpp"

namespace fmnist {

namespace {

tinyquant::Shape shape_of(const MatrixRM& w) {
  return tinyquant::Shape{w.rows(), w.cols()};
}

}  // namespace

std::vector<tinyquant::Mask> global_masks(const FloatMlp& mlp, double sparsity) {
  std::vector<tinyquant::WeightView> views;
  for (const DenseLayer& l : mlp.layers) views.push_back({l.w.data(), shape_of(l.w)});
  return tinyquant::global_magnitude_masks(views, sparsity);
}

void apply_masks(FloatMlp* mlp, const std::vector<tinyquant::Mask>& masks) {
  if (masks.size() != mlp->layers.size())
    throw tinyquant::ShapeError(
        fmt::format("apply_masks: {} masks for {} layers", masks.size(), mlp->layers.size()));
  for (size_t i = 0; i < masks.size(); ++i)
    tinyquant::apply_mask(mlp->layers[i].w.data(), mlp->layers[i].w.size(), masks[i]);
}

double weight_sparsity(const FloatMlp& mlp) {
  int64_t zeros = 0, total = 0;
  for (const DenseLayer& l : mlp.layers) {
    zeros += (l.w.array() == 0.0f).count();
    total += l.w.size();
  }
  return total > 0 ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
}

tinyquant::PolynomialDecay prune_schedule(const PruneConfig& p, int64_t total_steps) {
  if (!(p.sparsity >= 0.0 && p.sparsity < 1.0) ||
      !(p.ramp_fraction > 0.0 && p.ramp_fraction <= 1.0) || p.frequency < 1 || !(p.power > 0.0) ||
      total_steps < 1)
    throw tinyquant::InvalidArgument(fmt::format(
        "prune_schedule: bad config: sparsity = {}, ramp_fraction = {}, frequency = {}, "
        "power = {}, total_steps = {}",
        p.sparsity, p.ramp_fraction, p.frequency, p.power, total_steps));
  tinyquant::PolynomialDecay s;
  s.initial = 0.0;
  s.final = p.sparsity;
  s.begin_step = 0;
  const auto ramp = static_cast<int64_t>(p.ramp_fraction * static_cast<double>(total_steps));
  s.end_step = std::max(p.frequency, ramp / p.frequency * p.frequency);
  s.power = p.power;
  s.frequency = p.frequency;
  s.validate();
  return s;
}

std::vector<tinyquant::Mask> prune_finetune(
    FloatMlp* mlp, const Dataset& train, const Dataset& val, const TrainConfig& config,
    const PruneConfig& prune, const std::function<void(const EpochStats&)>& on_epoch) {
  const int64_t steps_per_epoch =
      config.batch > 0 ? (train.size() + config.batch - 1) / config.batch : 0;
  const tinyquant::PolynomialDecay schedule =
      prune_schedule(prune, steps_per_epoch * static_cast<int64_t>(std::max(config.epochs, 0)));
  if (config.keep_best && val.size() == 0)
    throw tinyquant::InvalidArgument(
        "prune_finetune: keep_best needs validation images, got an empty validation set");
  std::vector<tinyquant::Mask> masks = global_masks(*mlp, schedule.sparsity(0));
  apply_masks(mlp, masks);
  // keep_best only among the epochs that end at the final sparsity (after the ramp).
  TrainConfig c = config;
  c.keep_best = false;
  BestEpoch best;
  auto epoch_end = [&](const EpochStats& s) {
    const int64_t last_step = static_cast<int64_t>(s.epoch) * steps_per_epoch - 1;
    if (config.keep_best && last_step >= schedule.end_step) best.offer(s.val_accuracy, *mlp);
    if (on_epoch) on_epoch(s);
  };
  train_mlp(mlp, train, val, c, epoch_end, [&](int64_t step, FloatMlp* m) {
    if (schedule.should_update(step)) masks = global_masks(*m, schedule.sparsity(step));
    apply_masks(m, masks);
  });
  if (best.found()) *mlp = std::move(best.weights);
  masks = global_masks(*mlp, prune.sparsity);
  apply_masks(mlp, masks);
  return masks;
}

FloatMlp shrink_hidden(const FloatMlp& mlp, double fraction, tinyquant::Criterion criterion) {
  FloatMlp out = mlp;
  for (size_t i = 0; i + 1 < out.layers.size(); ++i) {
    DenseLayer& l = out.layers[i];
    DenseLayer& next = out.layers[i + 1];
    const tinyquant::Mask keep =
        tinyquant::structured_mask({l.w.data(), shape_of(l.w)}, 0, fraction, criterion);
    const tinyquant::ShrinkResult r = tinyquant::shrink({l.w.data(), shape_of(l.w)}, l.b.data(),
                                                        {next.w.data(), shape_of(next.w)}, keep);
    const auto kept = static_cast<Eigen::Index>(r.kept.size());
    l.w = Eigen::Map<const MatrixRM>(r.weights.data(), kept, l.w.cols());
    l.b = Eigen::Map<const Eigen::VectorXf>(r.bias.data(), kept);
    next.w = Eigen::Map<const MatrixRM>(r.next_weights.data(), next.w.rows(), kept);
  }
  return out;
}

}  // namespace fmnist
