#include "train.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "tinyquant/error.hpp"

namespace fmnist {

namespace {

// Uniform in [0, bound) without modulo bias (rejection sampling on 32-bit draws).
uint32_t bounded(std::mt19937& rng, uint32_t bound) {
  const uint32_t limit = static_cast<uint32_t>(-bound) % bound;  // 2^32 mod bound
  for (;;) {
    const uint32_t r = static_cast<uint32_t>(rng());
    if (r >= limit) return r % bound;
  }
}

void fisher_yates(std::vector<int64_t>* v, std::mt19937& rng) {
  for (size_t i = v->size(); i > 1; --i) {
    const size_t j = bounded(rng, static_cast<uint32_t>(i));
    std::swap((*v)[i - 1], (*v)[j]);
  }
}

struct AdamState {
  MatrixRM mw, vw;
  Eigen::VectorXf mb, vb;
};

// softmax of one row of logits, shifted by its maximum for stability.
Eigen::RowVectorXf softmax_row(const Eigen::RowVectorXf& z) {
  Eigen::RowVectorXf e = (z.array() - z.maxCoeff()).exp().matrix();
  return e / e.sum();
}

}  // namespace

void apply_demo_regularization(TrainConfig* c) {
  c->label_smoothing = kDemoLabelSmoothing;
  c->weight_decay = kDemoWeightDecay;
}

std::string regularization_tag(const TrainConfig& c) {
  if (c.label_smoothing == 0.0f && c.weight_decay == 0.0f) return {};
  return fmt::format("-ls{}-wd{}", c.label_smoothing, c.weight_decay);
}

AdamCorrection adam_correction(const TrainConfig& c, float lr, int64_t t) {
  const float b1t = 1.0f - std::pow(c.beta1, static_cast<float>(t));
  const float b2t = std::sqrt(1.0f - std::pow(c.beta2, static_cast<float>(t)));
  return {lr * b2t / b1t, c.eps * b2t};
}

float scheduled_lr(const TrainConfig& c, int64_t t, int64_t total_steps) {
  if (c.schedule == LrSchedule::kConstant || total_steps <= 1) return c.lr;
  const double kPi = 3.14159265358979323846;
  const double frac = static_cast<double>(t) / static_cast<double>(total_steps);
  return static_cast<float>(c.lr_min + (c.lr - c.lr_min) * 0.5 * (1.0 + std::cos(kPi * frac)));
}

double cross_entropy(const MatrixRM& logits, const uint8_t* labels) {
  double total = 0.0;
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    const float mx = logits.row(r).maxCoeff();
    const double lse = mx + std::log(static_cast<double>((logits.row(r).array() - mx).exp().sum()));
    total += lse - static_cast<double>(logits(r, labels[r]));
  }
  return logits.rows() > 0 ? total / static_cast<double>(logits.rows()) : 0.0;
}

void train_mlp(FloatMlp* mlp, const Dataset& train, const Dataset& val, const TrainConfig& c,
               const std::function<void(const EpochStats&)>& on_epoch, const StepHook& after_step,
               const GradHook& on_grad) {
  if (c.epochs < 1 || c.batch < 1 || !(c.lr > 0.0f) || !(c.beta1 >= 0.0f && c.beta1 < 1.0f) ||
      !(c.beta2 >= 0.0f && c.beta2 < 1.0f) || !(c.eps > 0.0f) ||
      !(c.lr_min >= 0.0f && c.lr_min <= c.lr) ||
      !(c.label_smoothing >= 0.0f && c.label_smoothing < 1.0f) ||
      !(c.weight_decay >= 0.0f && c.lr * c.weight_decay < 1.0f))
    throw tinyquant::InvalidArgument(fmt::format(
        "train_mlp: bad config: epochs = {}, batch = {}, lr = {}, beta1 = {}, beta2 = {}, "
        "eps = {}, lr_min = {}, label_smoothing = {}, weight_decay = {}",
        c.epochs, c.batch, c.lr, c.beta1, c.beta2, c.eps, c.lr_min, c.label_smoothing,
        c.weight_decay));
  if (c.teacher != nullptr &&
      (!(c.distill_weight >= 0.0f && c.distill_weight <= 1.0f) || !(c.temperature > 0.0f) ||
       c.teacher->layers.empty() || c.teacher->sizes().front() != mlp->sizes().front() ||
       c.teacher->sizes().back() != mlp->sizes().back()))
    throw tinyquant::InvalidArgument(fmt::format(
        "train_mlp: bad distillation: weight = {}, temperature = {}, teacher {} for student {}",
        c.distill_weight, c.temperature, fmt::join(c.teacher->sizes(), "-"),
        fmt::join(mlp->sizes(), "-")));
  if (c.keep_best && val.size() == 0)
    throw tinyquant::InvalidArgument(
        "train_mlp: keep_best needs validation images, got an empty validation set");
  if (mlp->layers.empty() || train.size() == 0 ||
      train.images.cols() != mlp->layers.front().in_features())
    throw tinyquant::ShapeError(
        fmt::format("train_mlp: {} training images of {} pixels for a model with {} layers",
                    train.size(), train.images.cols(), mlp->layers.size()));
  const FixedEigenBlocking fixed_blocking;  // sums that do not depend on the CPU's caches
  const size_t nl = mlp->layers.size();
  std::vector<AdamState> adam(nl);
  for (size_t i = 0; i < nl; ++i) {
    const DenseLayer& l = mlp->layers[i];
    adam[i].mw = adam[i].vw = MatrixRM::Zero(l.w.rows(), l.w.cols());
    adam[i].mb = adam[i].vb = Eigen::VectorXf::Zero(l.b.size());
  }

  std::mt19937 rng(c.seed + 1);
  std::vector<int64_t> order(static_cast<size_t>(train.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::vector<MatrixRM> acts(nl + 1);  // acts[0] = batch input, acts[i + 1] = layer i output
  std::vector<uint8_t> labels;
  MatrixRM delta, next_delta;
  int64_t step = 0;
  const int64_t steps_per_epoch = (train.size() + c.batch - 1) / c.batch;
  const int64_t total_steps = steps_per_epoch * c.epochs;
  float lr = c.lr;
  BestEpoch best;

  for (int epoch = 1; epoch <= c.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    fisher_yates(&order, rng);
    double loss_sum = 0.0;
    int64_t batches = 0;
    for (int64_t start = 0; start < train.size(); start += c.batch) {
      const int64_t bs = std::min<int64_t>(c.batch, train.size() - start);
      acts[0].resize(bs, train.images.cols());
      labels.resize(static_cast<size_t>(bs));
      for (int64_t r = 0; r < bs; ++r) {
        const int64_t src = order[static_cast<size_t>(start + r)];
        acts[0].row(r) = train.images.row(src);
        labels[static_cast<size_t>(r)] = train.labels[static_cast<size_t>(src)];
      }
      // Forward, keeping every layer's output (post-ReLU; ReLU' is then "output > 0").
      for (size_t i = 0; i < nl; ++i) {
        const DenseLayer& l = mlp->layers[i];
        acts[i + 1].noalias() = acts[i] * l.w.transpose();
        acts[i + 1].rowwise() += l.b.transpose();
        if (mlp->is_hidden(i)) acts[i + 1] = acts[i + 1].cwiseMax(0.0f);
      }
      // Softmax cross-entropy gradient w.r.t. the logits: (softmax - target) / bs, target the
      // one-hot label smoothed by label_smoothing (TrainConfig).
      const MatrixRM& logits = acts[nl];
      loss_sum += cross_entropy(logits, labels.data());
      delta.resize(bs, logits.cols());
      for (int64_t r = 0; r < bs; ++r) {
        const float mx = logits.row(r).maxCoeff();
        delta.row(r) = (logits.row(r).array() - mx).exp().matrix();
        delta.row(r) /= delta.row(r).sum();
        // Without smoothing both subtractions are exact: x - 0 and x - 1.
        delta.row(r).array() -= c.label_smoothing / static_cast<float>(logits.cols());
        delta(r, labels[static_cast<size_t>(r)]) -= 1.0f - c.label_smoothing;
      }
      if (c.teacher != nullptr) {
        // d/dz of a T^2 KL(p_t || p_s) with p = softmax(z / T) is a T (p_s - p_t).
        const float t = c.temperature, a = c.distill_weight;
        const MatrixRM teacher_logits = forward(*c.teacher, acts[0]);
        for (int64_t r = 0; r < bs; ++r) {
          const Eigen::RowVectorXf ps = softmax_row(logits.row(r) / t);
          const Eigen::RowVectorXf pt = softmax_row(teacher_logits.row(r) / t);
          delta.row(r) = (1.0f - a) * delta.row(r) + a * t * (ps - pt);
        }
      }
      delta *= 1.0f / static_cast<float>(bs);
      if (!std::isfinite(loss_sum))
        throw tinyquant::DataError(
            fmt::format("train_mlp: loss became non-finite ({}) at epoch {}, batch {}", loss_sum,
                        epoch, batches));

      lr = scheduled_lr(c, step, total_steps);
      ++step;
      const AdamCorrection corr = adam_correction(c, lr, step);
      for (size_t i = nl; i-- > 0;) {
        DenseLayer& l = mlp->layers[i];
        if (i > 0) {  // propagate before W changes; the input layer needs no gradient
          next_delta.noalias() = delta * l.w;
          next_delta = next_delta.cwiseProduct((acts[i].array() > 0.0f).cast<float>().matrix());
        }
        const MatrixRM gw = delta.transpose() * acts[i];
        const Eigen::VectorXf gb = delta.colwise().sum().transpose();
        if (on_grad) on_grad(i, gw);
        if (c.weight_decay > 0.0f) l.w *= 1.0f - lr * c.weight_decay;
        adam_step(l.w, gw, adam[i].mw, adam[i].vw, c, corr);
        adam_step(l.b, gb, adam[i].mb, adam[i].vb, c, corr);
        if (i > 0) delta.swap(next_delta);
      }
      if (after_step) after_step(step - 1, mlp);
      ++batches;
    }
    EpochStats s;
    s.epoch = epoch;
    s.train_loss = loss_sum / static_cast<double>(batches);
    s.val_accuracy = val.size() > 0 ? accuracy(*mlp, val) : 0.0;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.lr = lr;
    if (c.keep_best) best.offer(s.val_accuracy, *mlp);
    if (on_epoch) on_epoch(s);
  }
  if (c.keep_best) *mlp = std::move(best.weights);
}

}  // namespace fmnist
