// Minibatch training of a FloatMlp: softmax cross-entropy, Adam, reshuffled every epoch.
//
// Deterministic for a given config: the only randomness is the shuffle, drawn from
// std::mt19937(seed + 1) with a portable Fisher-Yates (no std::shuffle, whose draws differ
// between standard libraries); Eigen's single-threaded GEMM gives the same sums run to run, and,
// planned with FixedEigenBlocking's cache sizes, whatever caches the CPU has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "float_mlp.hpp"

namespace fmnist {

enum class LrSchedule : uint8_t {
  kConstant,  // lr every step
  kCosine,    // lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2 at step t of T (0-based)
};

// The demo's regularization of its QAT and global pruning fine-tunes, TrainConfig's
// label_smoothing and weight_decay (chosen on the validation images: README, "What was tried");
// fashion_mnist and `fashion_mnist_explore --qat base` use them.
inline constexpr float kDemoLabelSmoothing = 0.05f;
inline constexpr float kDemoWeightDecay = 0.1f;

struct TrainConfig {
  int epochs = 12;       // >= 1
  int batch = 64;        // >= 1; the last, shorter batch of an epoch is used too
  float lr = 1e-3f;      // Adam step size, > 0
  float beta1 = 0.9f;    // [0, 1)
  float beta2 = 0.999f;  // [0, 1)
  float eps = 1e-8f;     // > 0
  uint32_t seed = 1;
  LrSchedule schedule = LrSchedule::kConstant;
  float lr_min = 0.0f;     // cosine floor, [0, lr]
  bool keep_best = false;  // end with the weights of the epoch of best validation accuracy
                           // (the earliest on ties); needs a non-empty validation set
  // Knowledge distillation: when set, the loss is (1 - distill_weight) * cross-entropy on the
  // labels + distill_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)), with
  // T = temperature (Hinton et al.'s soft targets); the teacher must take the same input and
  // give as many logits. It is only read, never trained.
  const FloatMlp* teacher = nullptr;
  float distill_weight = 0.5f;  // [0, 1]
  float temperature = 2.0f;     // > 0
  // Label smoothing: the cross-entropy's target puts 1 - label_smoothing + label_smoothing / K
  // on the label and label_smoothing / K on each other class (K classes); [0, 1).
  float label_smoothing = 0.0f;
  // Decoupled weight decay (AdamW): every step also subtracts lr * weight_decay * w from the
  // weights (not the biases); >= 0, with lr * weight_decay < 1.
  float weight_decay = 0.0f;
};

// Sets c's label smoothing and weight decay to the demo's (kDemoLabelSmoothing, kDemoWeightDecay).
void apply_demo_regularization(TrainConfig* c);

// "-ls<label_smoothing>-wd<weight_decay>" if either is set, else "": the part of a cached
// model's recipe tag (TrainKey::recipe) that names its regularization.
std::string regularization_tag(const TrainConfig& c);

struct EpochStats {
  int epoch = 0;  // 1-based
  // Mean cross-entropy over the epoch's minibatches as trained, against the labels (unsmoothed).
  double train_loss = 0.0;
  double val_accuracy = 0.0;
  double seconds = 0.0;  // wall time of the epoch, evaluation included
  float lr = 0.0f;       // step size of the epoch's last step
};

// Called after every optimizer step with the 0-based index of that step, e.g. to update and
// apply pruning masks; it may change the weights (not their shapes).
using StepHook = std::function<void(int64_t step, FloatMlp* mlp)>;
// Called during every step's backward pass with a layer's index and the loss gradient of its
// weights [out][in] (before the optimizer uses it), e.g. to train quantization scales.
using GradHook = std::function<void(size_t layer, const MatrixRM& grad_w)>;

// The weights of the epoch with the best validation accuracy seen so far (the earliest on ties).
struct BestEpoch {
  FloatMlp weights;
  double accuracy = -1.0;

  bool found() const { return accuracy >= 0.0; }
  // Keeps m if val_accuracy beats every earlier offer; returns whether it did.
  bool offer(double val_accuracy, const FloatMlp& m) {
    if (!(val_accuracy > accuracy)) return false;
    accuracy = val_accuracy;
    weights = m;
    return true;
  }
};

// Adam's bias corrections for step t (1-based) folded into the step size and epsilon:
// lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps_t = eps sqrt(1 - b2^t).
struct AdamCorrection {
  float lr_t, eps_t;
};
AdamCorrection adam_correction(const TrainConfig& c, float lr, int64_t t);

// One Adam update of parameters p (Eigen vectors, matrices or maps of them) from gradient g:
// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr_t m / (sqrt(v) + eps_t).
template <class P, class G>
void adam_step(P& p, const G& g, P& m, P& v, const TrainConfig& c, const AdamCorrection& corr) {
  m = c.beta1 * m + (1.0f - c.beta1) * g;
  v = c.beta2 * v + (1.0f - c.beta2) * g.cwiseProduct(g);
  p.array() -= corr.lr_t * m.array() / (v.array().sqrt() + corr.eps_t);
}

// Step size of step t (0-based) out of total_steps for the config's schedule.
float scheduled_lr(const TrainConfig& config, int64_t t, int64_t total_steps);

// Trains mlp in place on `train`, reporting each epoch's stats (validation accuracy on `val`) to
// on_epoch if given, calling on_grad with each layer's weight gradient in every step and
// after_step after every step. Throws tinyquant::InvalidArgument for a
// bad config, tinyquant::ShapeError if the data does not fit the model, tinyquant::DataError if the
// loss stops being finite.
void train_mlp(FloatMlp* mlp, const Dataset& train, const Dataset& val, const TrainConfig& config,
               const std::function<void(const EpochStats&)>& on_epoch = {},
               const StepHook& after_step = {}, const GradHook& on_grad = {});

// Mean softmax cross-entropy of logits [batch][classes] against labels (log-sum-exp, stable).
double cross_entropy(const MatrixRM& logits, const uint8_t* labels);

}  // namespace fmnist
