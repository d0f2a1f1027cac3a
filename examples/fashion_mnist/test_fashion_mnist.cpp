// The Fashion-MNIST example's pieces on tiny synthetic data, each against a plain reference:
// forward pass vs triple loops, training gradients vs central finite differences in double,
// the int8 network vs the kernel formula written out with plain loops, the cache file format
// vs its own corruptions, and the dataset helpers vs hand-built IDX files.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <numeric>
#include <random>
#include <regex>
#include <string>

#include "dataset.hpp"
#include "firmware.hpp"
#include "float_mlp.hpp"
#include "int8_mlp.hpp"
#include "model_cache.hpp"
#include "prune_mlp.hpp"
#include "qat_mlp.hpp"
#include "quant_mlp.hpp"
#include "report.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/sparse.hpp"
#include "train.hpp"

using namespace fmnist;

namespace {

template <class E>
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> words) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& w : words)
      EXPECT_NE(msg.find(w), std::string::npos) << "missing '" << w << "' in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

MatrixRM random_matrix(int rows, int cols, uint32_t seed, float lo = 0.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  MatrixRM m(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m(r, c) = u(rng);
  return m;
}

// Plain-loop forward in double: every layer's output, ReLU on all but the last.
std::vector<std::vector<double>> reference_forward(const FloatMlp& mlp, const MatrixRM& x,
                                                   int row) {
  std::vector<std::vector<double>> acts(1);
  for (int c = 0; c < x.cols(); ++c) acts[0].push_back(x(row, c));
  for (size_t i = 0; i < mlp.layers.size(); ++i) {
    const DenseLayer& l = mlp.layers[i];
    std::vector<double> y(static_cast<size_t>(l.out_features()));
    for (int o = 0; o < l.out_features(); ++o) {
      double s = l.b[o];
      for (int k = 0; k < l.in_features(); ++k)
        s += static_cast<double>(l.w(o, k)) * acts.back()[static_cast<size_t>(k)];
      y[static_cast<size_t>(o)] = (i + 1 < mlp.layers.size() && s < 0.0) ? 0.0 : s;
    }
    acts.push_back(y);
  }
  return acts;
}

double reference_loss(const FloatMlp& mlp, const MatrixRM& x, const std::vector<uint8_t>& labels) {
  double total = 0.0;
  for (int r = 0; r < x.rows(); ++r) {
    const std::vector<double> z = reference_forward(mlp, x, r).back();
    double sum = 0.0;
    for (double v : z) sum += std::exp(v);
    total += std::log(sum) - z[labels[static_cast<size_t>(r)]];
  }
  return total / static_cast<double>(x.rows());
}

Dataset tiny_dataset(int n, int pixels, uint32_t seed) {
  Dataset d;
  d.images = random_matrix(n, pixels, seed);
  std::mt19937 rng(seed + 100);
  for (int i = 0; i < n; ++i) d.labels.push_back(static_cast<uint8_t>(rng() % 3));
  return d;
}

// Label = index of the largest of the first three pixels: learnable, so training must gain.
Dataset learnable_dataset(int n, int pixels, uint32_t seed) {
  Dataset d = tiny_dataset(n, pixels, seed);
  for (int r = 0; r < n; ++r) {
    Eigen::Index best;
    d.images.row(r).head(3).maxCoeff(&best);
    d.labels[static_cast<size_t>(r)] = static_cast<uint8_t>(best);
  }
  return d;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "tinyquant_fmnist_" + std::to_string(::getpid()) + "_" + name;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

}  // namespace

TEST(FloatMlp, ForwardAndActivationsMatchPlainLoops) {
  const FloatMlp mlp = he_init({6, 5, 4, 3}, 11);
  ASSERT_EQ(mlp.sizes(), (std::vector<int>{6, 5, 4, 3}));
  const MatrixRM x = random_matrix(7, 6, 3, -1.0f, 1.0f);
  const MatrixRM logits = forward(mlp, x);
  const std::vector<MatrixRM> acts = layer_activations(mlp, x);
  ASSERT_EQ(acts.size(), 4u);
  for (int r = 0; r < 7; ++r) {
    const auto ref = reference_forward(mlp, x, r);
    for (size_t i = 0; i < ref.size(); ++i)
      for (size_t c = 0; c < ref[i].size(); ++c)
        EXPECT_NEAR(acts[i](r, static_cast<Eigen::Index>(c)), ref[i][c], 1e-5) << i << " " << c;
    for (size_t c = 0; c < 3; ++c)
      EXPECT_NEAR(logits(r, static_cast<Eigen::Index>(c)), ref.back()[c], 1e-5);
  }
  expect_error<tinyquant::ShapeError>([&] { forward(mlp, random_matrix(2, 5, 1)); },
                                      {"layer 0", "6 inputs", "got 5"});
}

TEST(FloatMlp, HeInitIsSeededWithHeStddev) {
  const FloatMlp a = he_init({512, 256, 2}, 5), b = he_init({512, 256, 2}, 5);
  const FloatMlp c = he_init({512, 256, 2}, 6);
  EXPECT_EQ(a.layers[0].w, b.layers[0].w);
  EXPECT_NE(a.layers[0].w, c.layers[0].w);
  const MatrixRM& w = a.layers[0].w;
  const double mean = static_cast<double>(w.mean());
  const double var = static_cast<double>((w.array() - w.mean()).square().mean());
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(std::sqrt(var), std::sqrt(2.0 / 512), 0.02 * std::sqrt(2.0 / 512));
  EXPECT_TRUE(a.layers[0].b.isZero());
  expect_error<tinyquant::InvalidArgument>([] { he_init({4}, 1); }, {"1 layer sizes"});
  expect_error<tinyquant::InvalidArgument>([] { he_init({4, 0, 2}, 1); }, {"sizes[1] = 0"});
}

TEST(FloatMlp, ArgmaxAndAccuracy) {
  MatrixRM z(3, 3);
  z << 1, 5, 2, 7, 7, 0, -1, -3, -2;
  EXPECT_EQ(argmax_rows(z), (std::vector<int>{1, 0, 0}));  // first of a tie
  FloatMlp id;
  DenseLayer l;
  l.w = MatrixRM::Identity(3, 3);
  l.b = Eigen::VectorXf::Zero(3);
  id.layers.push_back(l);
  Dataset d;
  d.images = z;
  d.labels = {1, 1, 0};
  EXPECT_DOUBLE_EQ(accuracy(id, d, 2), 2.0 / 3.0);
}

TEST(Train, CrossEntropyMatchesFormula) {
  MatrixRM z(2, 3);
  z << 1.0f, 2.0f, 3.0f, 100.0f, 0.0f, -100.0f;  // large logits must not overflow
  const uint8_t labels[] = {0, 0};
  const double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1.0;
  EXPECT_NEAR(cross_entropy(z, labels), (row0 + std::log1p(std::exp(-100.0))) / 2, 1e-6);
}

namespace {

// One full-batch Adam step with eps = 1 moves each parameter by -lr g / (|g| + 1), so the step
// reveals every gradient, which must match central finite differences of `loss` (plain loops,
// double). Returns how many parameters were checked.
int expect_step_follows_gradients(const FloatMlp& before, const Dataset& d, TrainConfig c,
                                  const std::function<double(const FloatMlp&)>& loss) {
  FloatMlp after = before;
  c.epochs = 1;
  c.batch = static_cast<int>(d.size());
  c.lr = 0.1f;
  c.eps = 1.0f;
  train_mlp(&after, d, Dataset{}, c);
  int checked = 0;
  for (size_t li = 0; li < before.layers.size(); ++li) {
    const DenseLayer& l0 = before.layers[li];
    const int nw = static_cast<int>(l0.w.size());
    for (int k = 0; k < nw + l0.out_features(); ++k) {
      auto param = [&](FloatMlp& m) -> float& {
        return k < nw ? m.layers[li].w.data()[k] : m.layers[li].b[k - nw];
      };
      FloatMlp plus = before, minus = before;
      const float h = 1e-3f;
      param(plus) += h;
      param(minus) -= h;
      const double g = (loss(plus) - loss(minus)) / (2.0 * static_cast<double>(h));
      FloatMlp copy = before;
      const double step = static_cast<double>(param(after)) - static_cast<double>(param(copy));
      const double u = -step / static_cast<double>(c.lr);  // = g / (|g| + 1)
      const double g_from_step = u / (1.0 - std::fabs(u));
      EXPECT_NEAR(g_from_step, g, 2e-3 + 2e-2 * std::fabs(g)) << "layer " << li << " param " << k;
      ++checked;
    }
  }
  return checked;
}

// (1 - a) cross-entropy + a T^2 KL(softmax(teacher / T) || softmax(student / T)), plain loops.
double reference_distill_loss(const FloatMlp& student, const FloatMlp& teacher, const Dataset& d,
                              double a, double t) {
  double kl = 0.0;
  for (int r = 0; r < d.images.rows(); ++r) {
    const std::vector<double> zs = reference_forward(student, d.images, r).back();
    const std::vector<double> zt = reference_forward(teacher, d.images, r).back();
    double ss = 0.0, st = 0.0;
    for (size_t i = 0; i < zs.size(); ++i) {
      ss += std::exp(zs[i] / t);
      st += std::exp(zt[i] / t);
    }
    for (size_t i = 0; i < zs.size(); ++i) {
      const double log_pt = zt[i] / t - std::log(st), log_ps = zs[i] / t - std::log(ss);
      kl += std::exp(log_pt) * (log_pt - log_ps);
    }
  }
  kl /= static_cast<double>(d.images.rows());
  return (1.0 - a) * reference_loss(student, d.images, d.labels) + a * t * t * kl;
}

}  // namespace

TEST(Train, OneAdamStepFollowsFiniteDifferenceGradients) {
  const Dataset d = tiny_dataset(6, 4, 9);
  const int checked = expect_step_follows_gradients(
      he_init({4, 5, 3}, 21), d, TrainConfig{},
      [&](const FloatMlp& m) { return reference_loss(m, d.images, d.labels); });
  EXPECT_EQ(checked, 4 * 5 + 5 + 5 * 3 + 3);
}

TEST(Train, DistillationStepFollowsTheSoftTargetLoss) {
  const Dataset d = tiny_dataset(6, 4, 9);
  const FloatMlp teacher = he_init({4, 7, 3}, 5);  // another width: only the logits matter
  for (const double a : {0.3, 1.0}) {
    TrainConfig c;
    c.teacher = &teacher;
    c.distill_weight = static_cast<float>(a);
    c.temperature = 2.5f;
    const int checked = expect_step_follows_gradients(
        he_init({4, 5, 3}, 21), d, c,
        [&](const FloatMlp& m) { return reference_distill_loss(m, teacher, d, a, 2.5); });
    EXPECT_EQ(checked, 4 * 5 + 5 + 5 * 3 + 3) << "weight " << a;
  }
  // Weight 0 is plain training, bit for bit.
  FloatMlp plain = he_init({4, 5, 3}, 3), kd0 = plain;
  TrainConfig c;
  c.epochs = 2;
  c.batch = 4;
  train_mlp(&plain, d, d, c);
  c.teacher = &teacher;
  c.distill_weight = 0.0f;
  train_mlp(&kd0, d, d, c);
  EXPECT_EQ(plain.layers[0].w, kd0.layers[0].w);
  EXPECT_EQ(plain.layers[1].b, kd0.layers[1].b);
  c.distill_weight = 1.5f;
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&kd0, d, d, c); }, {"weight = 1.5"});
  c.distill_weight = 0.5f;
  const FloatMlp wrong = he_init({5, 3}, 1);
  c.teacher = &wrong;
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&kd0, d, d, c); }, {"teacher 5-3"});
}

namespace {

// Cross-entropy against smoothed targets, plain loops: the label gets 1 - e + e / K, every other
// class e / K (K classes).
double reference_smoothed_loss(const FloatMlp& m, const Dataset& d, double e) {
  double total = 0.0;
  for (int r = 0; r < d.images.rows(); ++r) {
    const std::vector<double> z = reference_forward(m, d.images, r).back();
    double sum = 0.0;
    for (double v : z) sum += std::exp(v);
    const double k = static_cast<double>(z.size());
    for (size_t i = 0; i < z.size(); ++i) {
      const double target = (i == d.labels[static_cast<size_t>(r)] ? 1.0 - e : 0.0) + e / k;
      total -= target * (z[i] - std::log(sum));
    }
  }
  return total / static_cast<double>(d.images.rows());
}

}  // namespace

TEST(Train, LabelSmoothingStepFollowsTheSmoothedLoss) {
  const Dataset d = tiny_dataset(6, 4, 9);
  TrainConfig c;
  c.label_smoothing = 0.2f;
  EXPECT_EQ(expect_step_follows_gradients(
                he_init({4, 5, 3}, 21), d, c,
                [&](const FloatMlp& m) { return reference_smoothed_loss(m, d, 0.2); }),
            4 * 5 + 5 + 5 * 3 + 3);
  // With distillation the smoothed cross-entropy takes the labels' share.
  const FloatMlp teacher = he_init({4, 7, 3}, 5);
  c.teacher = &teacher;
  c.distill_weight = 0.3f;
  c.temperature = 2.5f;
  EXPECT_EQ(expect_step_follows_gradients(he_init({4, 5, 3}, 21), d, c,
                                          [&](const FloatMlp& m) {
                                            return reference_distill_loss(m, teacher, d, 0.3, 2.5) -
                                                   0.7 * reference_loss(m, d.images, d.labels) +
                                                   0.7 * reference_smoothed_loss(m, d, 0.2);
                                          }),
            4 * 5 + 5 + 5 * 3 + 3);
  c.label_smoothing = 1.0f;
  expect_error<tinyquant::InvalidArgument>(
      [&] {
        FloatMlp m = he_init({4, 5, 3}, 21);
        train_mlp(&m, d, d, c);
      },
      {"label_smoothing = 1"});
}

TEST(Train, WeightDecayShrinksWeightsBeforeTheAdamStep) {
  // Decoupled: w -> w (1 - lr wd) + the step Adam takes from the same gradient; biases untouched.
  const Dataset d = tiny_dataset(6, 4, 9);
  FloatMlp before = he_init({4, 5, 3}, 21);
  for (DenseLayer& l : before.layers) l.b.setConstant(0.3f);  // a decayed bias would show
  TrainConfig c;
  c.epochs = 1;
  c.batch = 6;
  c.lr = 0.05f;
  FloatMlp plain = before, decayed = before;
  train_mlp(&plain, d, Dataset{}, c);
  c.weight_decay = 0.5f;
  train_mlp(&decayed, d, Dataset{}, c);
  for (size_t i = 0; i < before.layers.size(); ++i) {
    const MatrixRM expected =
        before.layers[i].w * (1.0f - 0.05f * 0.5f) + (plain.layers[i].w - before.layers[i].w);
    EXPECT_TRUE(decayed.layers[i].w.isApprox(expected, 1e-6f)) << "layer " << i;
    EXPECT_FALSE(decayed.layers[i].w.isApprox(plain.layers[i].w, 1e-3f)) << "layer " << i;
    EXPECT_EQ(decayed.layers[i].b, plain.layers[i].b) << "layer " << i;
  }
  c.weight_decay = -0.1f;
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&decayed, d, d, c); },
                                           {"weight_decay = -0.1"});
  c.weight_decay = 20.0f;  // lr * weight_decay = 1 would zero every weight in one step
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&decayed, d, d, c); },
                                           {"weight_decay = 20"});
}

TEST(Train, WeightDecayFollowsTheScheduledLr) {
  // Black images give the single layer's weights a zero gradient, so Adam leaves them alone and
  // only the decay moves them: over two steps of a cosine schedule (lr, then lr / 2) they are
  // w (1 - lr wd) (1 - lr wd / 2). The logits are the biases alone, so the biases follow the same
  // path with and without decay.
  Dataset d = tiny_dataset(6, 4, 9);
  d.images.setZero();
  FloatMlp before = he_init({4, 3}, 8);
  before.layers[0].b << 0.5f, -0.2f, 0.1f;
  TrainConfig c;
  c.epochs = 2;
  c.batch = 6;
  c.lr = 0.05f;
  c.schedule = LrSchedule::kCosine;
  FloatMlp plain = before, decayed = before;
  train_mlp(&plain, d, Dataset{}, c);
  c.weight_decay = 0.5f;
  train_mlp(&decayed, d, Dataset{}, c);
  EXPECT_EQ(plain.layers[0].w, before.layers[0].w);
  const MatrixRM expected = before.layers[0].w * (1.0f - 0.05f * 0.5f) * (1.0f - 0.025f * 0.5f);
  EXPECT_TRUE(decayed.layers[0].w.isApprox(expected, 1e-6f));
  EXPECT_NE(plain.layers[0].b, before.layers[0].b);
  EXPECT_EQ(decayed.layers[0].b, plain.layers[0].b);
}

TEST(Train, DeterministicAndLearnsASeparableProblem) {
  Dataset d = learnable_dataset(600, 8, 4);
  TrainConfig c;
  c.epochs = 15;
  c.batch = 32;
  c.lr = 5e-3f;
  std::vector<EpochStats> stats;
  FloatMlp a = he_init({8, 16, 3}, 2), b = a;
  train_mlp(&a, d, d, c, [&](const EpochStats& s) { stats.push_back(s); });
  train_mlp(&b, d, d, c);
  EXPECT_EQ(a.layers[0].w, b.layers[0].w);
  EXPECT_EQ(a.layers[1].b, b.layers[1].b);
  ASSERT_EQ(stats.size(), 15u);
  EXPECT_EQ(stats.back().epoch, 15);
  EXPECT_LT(stats.back().train_loss, 0.5 * stats.front().train_loss);
  EXPECT_GT(stats.back().val_accuracy, 0.9);
  EXPECT_DOUBLE_EQ(stats.back().val_accuracy, accuracy(a, d));
}

// Eigen cuts a long dot product into blocks whose depth follows the L1 size it plans with, so a
// 784-input layer's sums change with the CPU's caches; training must not.
TEST(Train, WeightsDoNotDependOnTheCacheSizesEigenPlansWith) {
  const std::ptrdiff_t l1 = Eigen::l1CacheSize(), l2 = Eigen::l2CacheSize(),
                       l3 = Eigen::l3CacheSize();
  const std::ptrdiff_t plans[2] = {std::ptrdiff_t{16} << 10, std::ptrdiff_t{64} << 10};
  const Dataset d = learnable_dataset(256, kPixels, 6);
  const FloatMlp init = he_init({kPixels, 16, 3}, 3);
  TrainConfig c;
  c.epochs = 1;
  FloatMlp trained[2] = {init, init};
  MatrixRM products[2];
  for (int i = 0; i < 2; ++i) {
    Eigen::setCpuCacheSizes(plans[i], l2, l3);
    products[i] = d.images * init.layers[0].w.transpose();  // as Eigen plans it without the fix
    train_mlp(&trained[i], d, d, c);
    EXPECT_EQ(Eigen::l1CacheSize(), plans[i]) << "train_mlp must restore the caller's plan";
  }
  Eigen::setCpuCacheSizes(l1, l2, l3);
  // The hazard is real for this data: the two plans give different float sums...
  EXPECT_NE(products[0], products[1]);
  // ...and training is unaffected.
  for (size_t k = 0; k < init.layers.size(); ++k) {
    EXPECT_EQ(trained[0].layers[k].w, trained[1].layers[k].w) << "layer " << k;
    EXPECT_EQ(trained[0].layers[k].b, trained[1].layers[k].b) << "layer " << k;
  }
  EXPECT_NE(trained[0].layers[0].w, init.layers[0].w);
}

TEST(Train, RejectsBadConfigAndShapes) {
  FloatMlp m = he_init({4, 3}, 1);
  const Dataset d = tiny_dataset(5, 4, 1);
  TrainConfig c;
  c.batch = 0;
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&m, d, d, c); }, {"batch = 0"});
  c = TrainConfig{};
  c.lr = -1.0f;
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&m, d, d, c); }, {"lr = -1"});
  expect_error<tinyquant::ShapeError>(
      [&] { train_mlp(&m, tiny_dataset(5, 7, 1), d, TrainConfig{}); },
      {"5 training images", "7 pixels"});
}

TEST(Int8Mlp, CalibrationIsTheBruteForceMinMax) {
  const FloatMlp mlp = he_init({6, 5, 3}, 8);
  const MatrixRM x = random_matrix(23, 6, 2);
  const std::vector<ActRange> r = calibrate_ranges(mlp, x, 4);  // several batches, a short last
  ASSERT_EQ(r.size(), 3u);
  // Brute force over every row's plain-loop activations (GEMM sums may differ in the last bit).
  std::vector<double> lo(3, 1e300), hi(3, -1e300);
  for (int row = 0; row < x.rows(); ++row) {
    const auto acts = reference_forward(mlp, x, row);
    for (size_t i = 0; i < 3; ++i)
      for (double v : acts[i]) {
        lo[i] = std::min(lo[i], v);
        hi[i] = std::max(hi[i], v);
      }
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(r[i].min, lo[i], 1e-5) << i;
    EXPECT_NEAR(r[i].max, hi[i], 1e-5) << i;
  }
  EXPECT_EQ(r[0].min, x.minCoeff());
  EXPECT_EQ(r[0].max, x.maxCoeff());
  EXPECT_EQ(r[1].min, 0.0f);  // post-ReLU
}

// Percentile calibration: each hidden output's upper end is the p-th percentile of its values
// (sorted brute force over the plain-loop activations; the observer's histogram estimate is
// within a bin, 1/1024 of the maximum here), the lower end stays 0 (post-ReLU), the input and the
// logits keep their min / max. p = 100 gives the maximum itself.
TEST(Int8Mlp, PercentileCalibrationIsTheSortedQuantile) {
  const FloatMlp mlp = he_init({6, 40, 3}, 8);
  const MatrixRM x = random_matrix(500, 6, 2);
  const std::vector<ActRange> minmax = calibrate_ranges(mlp, x);
  std::vector<double> hidden;
  for (int row = 0; row < x.rows(); ++row) {
    const std::vector<std::vector<double>> acts = reference_forward(mlp, x, row);
    hidden.insert(hidden.end(), acts[1].begin(), acts[1].end());
  }
  std::sort(hidden.begin(), hidden.end());
  const double top = hidden.back();
  for (const double p : {99.0, 99.9, 100.0}) {
    ActCalibration how;
    how.kind = ActCalibration::kPercentile;
    how.percentile = p;
    const std::vector<ActRange> r = calibrate_ranges(mlp, x, how, 64);
    ASSERT_EQ(r.size(), 3u);
    // k = ceil(p / 100 * n) in integers (p has at most two decimals): in doubles 99.9 / 100 *
    // 20000 lands a hair above 19980 and ceil would pass it.
    const size_t k = (static_cast<size_t>(std::llround(p * 100.0)) * hidden.size() + 9999) / 10000;
    EXPECT_NEAR(r[1].max, hidden[k - 1], top / 1024.0 + 1e-5) << "p " << p;
    EXPECT_NEAR(r[1].min, 0.0f, 1e-6) << "p " << p;
    EXPECT_LE(r[1].max, minmax[1].max * (1.0f + 1e-6f));
    for (const size_t i : {size_t{0}, size_t{2}}) {
      EXPECT_EQ(r[i].min, minmax[i].min) << i;
      EXPECT_EQ(r[i].max, minmax[i].max) << i;
    }
  }
  EXPECT_LT(calibrate_ranges(mlp, x, {ActCalibration::kPercentile, 99.0})[1].max,
            0.99f * minmax[1].max);  // the case above clips something
  const ActCalibration mse{ActCalibration::kMse, 0.0};
  EXPECT_EQ(mse.tag(), "mse");
  EXPECT_EQ((ActCalibration{ActCalibration::kPercentile, 99.99}).tag(), "p99.99");
  EXPECT_EQ(ActCalibration{}.tag(), "minmax");
  const std::vector<ActRange> r = calibrate_ranges(mlp, x, mse);
  EXPECT_GT(r[1].max, 0.0f);
  EXPECT_LE(r[1].max, minmax[1].max * (1.0f + 1e-6f));
}

TEST(Int8Mlp, KernelForwardMatchesPlainIntegerLoops) {
  FloatMlp mlp = he_init({20, 12, 7, 4}, 31);
  for (DenseLayer& l : mlp.layers) l.b = Eigen::VectorXf::LinSpaced(l.b.size(), -0.3f, 0.4f);
  const MatrixRM x = random_matrix(9, 20, 5);
  const Int8Mlp q = quantize_mlp_int8(mlp, calibrate_ranges(mlp, x));
  const std::vector<int8_t> in = quantize_input(q, x);
  // Plain integer reference of the formula in rt/kernels.hpp.
  std::vector<int32_t> a(in.begin(), in.end());
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const Int8Layer& l = q.layers[i];
    for (int8_t w : l.w) ASSERT_GE(w, -127);
    std::vector<int32_t> y;
    for (int b = 0; b < 9; ++b)
      for (int o = 0; o < l.out_features; ++o) {
        int64_t acc = l.bias[static_cast<size_t>(o)];
        for (int k = 0; k < l.in_features; ++k)
          acc += (a[static_cast<size_t>(b * l.in_features + k)] + l.params.input_offset) *
                 int64_t{l.w[static_cast<size_t>(o * l.in_features + k)]};
        int32_t v = rt::requantize(static_cast<int32_t>(acc), l.multiplier[static_cast<size_t>(o)],
                                   l.shift[static_cast<size_t>(o)]) +
                    l.params.output_offset;
        v = std::min(std::max(v, l.params.act_min), l.params.act_max);
        y.push_back(v);
      }
    a = y;
  }
  for (rt::Path p : {rt::Path::kAuto, rt::Path::kReference}) {
    const std::vector<int8_t> out = forward_int8(q, in, 9, p);
    ASSERT_EQ(out.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_EQ(out[i], a[i]) << "path " << rt::path_name(p) << " index " << i;
  }
  // And the integers approximate the float logits: within a few output steps.
  const MatrixRM logits = forward(mlp, x);
  const Int8Layer& last = q.layers.back();
  for (int b = 0; b < 9; ++b)
    for (int o = 0; o < 4; ++o)
      EXPECT_NEAR(last.out_scale *
                      static_cast<float>(a[static_cast<size_t>(b * 4 + o)] - last.out_zero_point),
                  logits(b, o), 6 * last.out_scale);
}

TEST(Int8Mlp, QuantizationParametersFollowTheConventions) {
  FloatMlp mlp = he_init({10, 6, 3}, 4);
  mlp.layers[0].b.setConstant(0.05f);
  const MatrixRM x = random_matrix(15, 10, 7);
  const std::vector<ActRange> ranges = calibrate_ranges(mlp, x);
  const Int8Mlp q = quantize_mlp_int8(mlp, ranges);
  EXPECT_NEAR(q.in_scale, (ranges[0].max - std::min(0.0f, ranges[0].min)) / 255.0f, 1e-7);
  const Int8Layer& l = q.layers[0];
  EXPECT_EQ(l.params.input_offset, -q.in_zero_point);
  EXPECT_EQ(l.params.filter_offset, 0);
  EXPECT_EQ(l.params.act_min, l.out_zero_point);  // fused ReLU
  EXPECT_EQ(q.layers[1].params.act_min, -128);    // logits are not clamped
  for (int o = 0; o < 6; ++o) {
    float amax = 0.0f;
    for (int k = 0; k < 10; ++k) amax = std::max(amax, std::fabs(mlp.layers[0].w(o, k)));
    EXPECT_NEAR(l.w_scale[static_cast<size_t>(o)], amax / 127.0f, 1e-7f);
    const double acc_scale = static_cast<double>(q.in_scale) * l.w_scale[static_cast<size_t>(o)];
    EXPECT_EQ(l.bias[static_cast<size_t>(o)], static_cast<int32_t>(std::round(0.05 / acc_scale)));
    const double m = l.multiplier[static_cast<size_t>(o)] *
                     std::ldexp(1.0, l.shift[static_cast<size_t>(o)] - 31);
    EXPECT_NEAR(m, acc_scale / l.out_scale, 1e-9 * acc_scale / l.out_scale);
  }
  // Weights, then per layer int32 bias + float32 weight scale per channel + input / output scale.
  EXPECT_EQ(q.parameter_bytes(), 60 + 18 + 4 * 2 * (6 + 3) + 2 * 8);
  expect_error<tinyquant::ShapeError>([&] { quantize_mlp_int8(mlp, std::vector<ActRange>(2)); },
                                      {"2 ranges", "2 layers", "need 3"});
}

namespace {

// The key of a 3-2 model, as the cache tests write and read it.
TrainKey small_key() {
  TrainKey key;
  key.sizes = {3, 2};
  key.seed = 1;
  key.epochs = 1;
  key.batch = 1;
  key.lr = 0.5f;
  key.train_count = 10;
  return key;
}

}  // namespace

TEST(ModelCache, RoundTripIsExact) {
  FloatMlp mlp = he_init({7, 4, 2}, 3);
  mlp.layers[1].b << 0.25f, -1e-30f;
  TrainKey key;
  key.sizes = {7, 4, 2};
  key.seed = 3;
  key.epochs = 2;
  key.batch = 16;
  key.lr = 1e-3f;
  key.train_count = 123;
  const std::vector<uint8_t> bytes = serialize_model(mlp, key);
  // Header 8 + 4 + 4 + 3*4 + 4*3 + 4 + 8 + 4 (empty recipe), floats 4*(28 + 4 + 8 + 2), no
  // parameters 4, CRC 4.
  EXPECT_EQ(bytes.size(), 56u + 4u * 42u + 4u + 4u);
  const FloatMlp back = parse_model(bytes, key, "mem");
  ASSERT_EQ(back.layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.layers[i].w, mlp.layers[i].w);
    EXPECT_EQ(back.layers[i].b, mlp.layers[i].b);
  }
  const std::string dir = temp_path("cache_dir");
  const std::string path = dir + "/sub/model.tqmlp";
  EXPECT_FALSE(load_model(path, key).has_value());
  save_model(path, mlp, key);
  const std::optional<FloatMlp> loaded = load_model(path, key);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->layers[0].w, mlp.layers[0].w);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir + "/sub"),
                          std::filesystem::directory_iterator()),
            1);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(key.tag(), "7-4-2_s3_e2_b16_lr0.001_n123");
}

TEST(ModelCache, RejectsCorruptionAndOtherKeys) {
  const FloatMlp mlp = he_init({3, 2}, 1);
  TrainKey key = small_key();
  const std::vector<uint8_t> good = serialize_model(mlp, key);
  std::vector<uint8_t> flipped = good;
  flipped[40] ^= 0x10;
  expect_error<tinyquant::FormatError>([&] { parse_model(flipped, key, "f.tqmlp"); },
                                       {"f.tqmlp", "checksum mismatch", "offset"});
  std::vector<uint8_t> magic = good;
  magic[0] = 'X';
  expect_error<tinyquant::FormatError>([&] { parse_model(magic, key, "m"); },
                                       {"bad magic", "offset 0"});
  expect_error<tinyquant::FormatError>(
      [&] { parse_model(std::vector<uint8_t>(good.begin(), good.begin() + 10), key, "t"); },
      {"10 bytes", "too short"});
  TrainKey other = key;
  other.seed = 2;
  expect_error<tinyquant::FormatError>([&] { parse_model(good, other, "k"); },
                                       {"trained with 3-2_s1", "but 3-2_s2"});
  key.sizes = {3, 3};
  expect_error<tinyquant::ShapeError>([&] { serialize_model(mlp, key); }, {"3-2", "3-3"});
  // A directory where the cache file should be: IoError naming the path.
  const std::string dir = temp_path("is_a_dir");
  std::filesystem::create_directories(dir);
  expect_error<tinyquant::IoError>([&] { load_model(dir, other); }, {dir});
  std::filesystem::remove_all(dir);
}

namespace {

// The little-endian CRC-32 trailer recomputed after an edit, so only the edited field is wrong.
void fix_crc(std::vector<uint8_t>* b) {
  const size_t body = b->size() - 4;
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, b->data(), static_cast<uInt>(body));
  for (size_t i = 0; i < 4; ++i) (*b)[body + i] = static_cast<uint8_t>(crc >> (8 * i));
}

void put_u32(std::vector<uint8_t>* b, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) (*b)[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Per-group int4 parameters of a [rows][cols] matrix with scales 0.01, 0.02, ...
tinyquant::QuantParams group_params(int64_t rows, int64_t cols, int64_t group) {
  tinyquant::QuantParams p;
  p.spec = tinyquant::QuantSpec::int4_per_group(group, 1);
  const int64_t count = rows * ((cols + group - 1) / group);
  for (int64_t k = 0; k < count; ++k) p.scales.push_back(0.01f * static_cast<float>(k + 1));
  p.zero_points.assign(static_cast<size_t>(count), 0);
  return p;
}

}  // namespace

TEST(ModelCache, WeightParametersRoundTripAndAreChecked) {
  const FloatMlp mlp = he_init({7, 4, 2}, 3);
  const TrainKey key = small_key();
  TrainKey k = key;
  k.sizes = {7, 4, 2};
  // Layer 0: 4 rows x 2 groups of 4 (the last one 3 wide); layer 1: 2 rows x 1 group.
  const std::vector<tinyquant::QuantParams> params = {group_params(4, 7, 4), group_params(2, 4, 4)};
  const std::vector<uint8_t> plain = serialize_model(mlp, k);
  const std::vector<uint8_t> good = serialize_model(mlp, k, &params);
  // Count 4 + per layer bits 4, group size 4, scales 4 * (8 and 2).
  ASSERT_EQ(good.size(), plain.size() + 8u + 4u * 8u + 8u + 4u * 2u);
  std::vector<tinyquant::QuantParams> back;
  const FloatMlp m = parse_model(good, k, "mem", &back);
  EXPECT_EQ(m.layers[1].w, mlp.layers[1].w);
  ASSERT_EQ(back.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back[i].scales, params[i].scales);
    EXPECT_EQ(back[i].zero_points, params[i].zero_points);
    EXPECT_EQ(back[i].spec.bits, 4);
    EXPECT_EQ(back[i].spec.group_size, 4);
    EXPECT_EQ(back[i].spec.granularity, tinyquant::Granularity::kPerGroup);
    EXPECT_EQ(back[i].spec.scheme, tinyquant::Scheme::kSymmetric);
    EXPECT_TRUE(back[i].spec.narrow_range);
  }
  // A file without parameters gives none; the caller may ignore stored ones.
  parse_model(plain, k, "mem", &back);
  EXPECT_TRUE(back.empty());
  EXPECT_EQ(parse_model(good, k, "mem").layers[0].w, mlp.layers[0].w);
  // Through a file.
  const std::string path = temp_path("params.tqmlp");
  save_model(path, mlp, k, &params);
  ASSERT_TRUE(load_model(path, k, &back).has_value());
  EXPECT_EQ(back[0].scales, params[0].scales);
  std::remove(path.c_str());

  // The parameter section starts after the plain file's body, where its count (0) was.
  const size_t section = plain.size() - 8;
  const size_t first_scale = section + 12;
  std::vector<uint8_t> bad = good;
  bad[first_scale + 4 * 3] ^= 0x01;  // a bit flip in a scale: the checksum catches it
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); }, {"checksum mismatch"});
  // Checksum fixed, so the field checks speak: a negative, a zero, a NaN scale.
  for (const uint32_t bits : {0xbf800000u, 0x00000000u, 0x7fc00000u}) {
    bad = good;
    put_u32(&bad, first_scale + 4 * 5, bits);
    fix_crc(&bad);
    expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); },
                                         {"layer 0 group scale 5", "offset"});
  }
  bad = good;
  put_u32(&bad, section + 8, 8);  // group size 8 > 7 inputs
  fix_crc(&bad);
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); },
                                       {"layer 0 group size 8", "inputs 7"});
  bad = good;
  put_u32(&bad, section + 4, 9);  // 9 bits
  fix_crc(&bad);
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); }, {"parameter bits 9"});
  bad = good;
  put_u32(&bad, section, 1);  // parameters for 1 of 2 layers
  fix_crc(&bad);
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); },
                                       {"1 parameter layers", "for 2 layers"});
  // Truncated: the last scale cut off (checksum recomputed over what is left).
  bad.assign(good.begin(), good.end() - 8);
  bad.resize(bad.size() + 4);
  fix_crc(&bad);
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); },
                                       {"truncated", "group scales"});
  // Trailing bytes after the section.
  bad.assign(good.begin(), good.end() - 4);
  bad.insert(bad.end(), {1, 2, 3, 4, 0, 0, 0, 0});
  fix_crc(&bad);
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); }, {"4 unexpected bytes"});
  // A version-2 file (no section) still reads; an unknown version does not.
  std::vector<uint8_t> v2(plain.begin(), plain.end() - 8);
  v2.resize(v2.size() + 4);
  put_u32(&v2, 8, 2);
  fix_crc(&v2);
  back = params;
  EXPECT_EQ(parse_model(v2, k, "v2", &back).layers[1].b, mlp.layers[1].b);
  EXPECT_TRUE(back.empty());
  bad = good;
  put_u32(&bad, 8, 4);
  fix_crc(&bad);
  expect_error<tinyquant::FormatError>([&] { parse_model(bad, k, "p"); }, {"version 4"});
  // Writing checks the parameters too.
  std::vector<tinyquant::QuantParams> wrong = params;
  wrong.pop_back();
  expect_error<tinyquant::InvalidArgument>([&] { serialize_model(mlp, k, &wrong); },
                                           {"1 weight parameters for 2 layers"});
  wrong = params;
  wrong[1].spec = tinyquant::QuantSpec::int8_weights_per_channel(0);
  expect_error<tinyquant::InvalidArgument>([&] { serialize_model(mlp, k, &wrong); },
                                           {"layer 1", "per-group"});
}

TEST(QuantMlp, SnappedScalesAreOnTheKernelsRatioGrid) {
  tinyquant::QuantParams p = group_params(2, 12, 4);  // 2 rows x 3 groups
  p.scales = {1.0f, 0.3f, 0.001f, 0.5f, 0.5f, 0.25f};
  const tinyquant::Shape shape{2, 12};
  const MatrixRM w = random_matrix(2, 12, 3, -0.5f, 0.5f);
  const tinyquant::QuantParams s = snap_group_scales(p, shape, w.data());
  // Row 0: S = 1; 0.3 * 256 = 76.8 -> 77; 0.001 * 256 = 0.256 -> 0 -> clamped to 1.
  // Row 1: S = 0.5; 0.25 / 0.5 * 256 = 128 exactly.
  const std::vector<float> want = {1.0f, 77.0f / 256.0f, 1.0f / 256.0f, 0.5f, 0.5f, 0.25f};
  EXPECT_EQ(s.scales, want);
  EXPECT_EQ(snap_group_scales(s, shape, w.data()).scales, s.scales);
  // The integer layer stores exactly these ratios (r - 1).
  const tinyquant::QuantizedLinear l(tinyquant::quantize(w.data(), shape, s), nullptr,
                                     tinyquant::ActivationParams::from_range(-1.0f, 1.0f),
                                     tinyquant::ActivationParams::from_range(-1.0f, 1.0f),
                                     tinyquant::Activation::kNone);
  EXPECT_EQ(l.group_ratios(), (std::vector<uint8_t>{255, 76, 0, 255, 255, 127}));
  // Other granularities pass through.
  const tinyquant::QuantParams pc =
      tinyquant::params_for(w.data(), shape, tinyquant::QuantSpec::int8_weights_per_channel(0));
  EXPECT_EQ(snap_group_scales(pc, shape, w.data()).scales, pc.scales);
}

TEST(QuantMlp, SnappingIgnoresAnAllZeroGroupsPlaceholderScale) {
  // Row 0's last group is all zero (a pruned group): its fitted scale is the placeholder 1, above
  // the row's real largest scale 0.3. S must be 0.3, or every group of the row would be rounded
  // on a grid of 1 / 256 steps; the zero group itself is snapped to S (it holds only zeros).
  MatrixRM w = random_matrix(2, 12, 5, -0.5f, 0.5f);
  for (int c = 8; c < 12; ++c) w(0, c) = 0.0f;
  tinyquant::QuantParams p = group_params(2, 12, 4);
  p.scales = {0.3f, 0.2f, 1.0f, 0.5f, 0.5f, 0.25f};
  const tinyquant::QuantParams s = snap_group_scales(p, tinyquant::Shape{2, 12}, w.data());
  // 0.2 / 0.3 * 256 = 170.67 -> 171.
  const std::vector<float> want = {
      0.3f, static_cast<float>(static_cast<double>(0.3f) * 171 / 256), 0.3f, 0.5f, 0.5f, 0.25f};
  EXPECT_EQ(s.scales, want);
  // An all-zero row keeps its own largest scale as S.
  const MatrixRM zeros = MatrixRM::Zero(2, 12);
  p.scales = {1.0f, 1.0f, 1.0f, 0.5f, 0.5f, 0.25f};
  EXPECT_EQ(snap_group_scales(p, tinyquant::Shape{2, 12}, zeros.data()).scales, p.scales);
}

TEST(QuantMlp, GptqLayersSeeTheirOwnInputsAndQuantizeToGptqsIntegers) {
  const FloatMlp mlp = he_init({40, 16, 8, 3}, 7);
  MatrixRM x = random_matrix(60, 40, 9);
  x(0, 0) = 60.0f;  // an outlier: int8 inputs are coarse, so GPTQ on them differs from float
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(8, 1);
  tinyquant::GptqOptions o;
  o.snap_group_scales = true;
  for (const GptqInputs inputs :
       {GptqInputs::kFloat, GptqInputs::kSequential, GptqInputs::kSequentialQuantized}) {
    SCOPED_TRACE(static_cast<int>(inputs));
    const bool sequential = inputs != GptqInputs::kFloat;
    const GptqMlp g = gptq_mlp(mlp, x, spec, o, inputs);
    // Reference: layer i's inputs from the float model, or from the model whose layers before it
    // hold their GPTQ weights (then, for kSequentialQuantized, rounded to int8 with that model's
    // min / max range of them: TFLite's affine parameters, written out), then the toolkit's GPTQ
    // on that layer alone.
    FloatMlp ref = mlp;
    const std::vector<ActRange> ranges = calibrate_ranges(g.model, x);
    WeightParamsChoice wp;
    wp.given = &g.params;
    const QuantMlp q = quantize_mlp(g.model, ranges, spec, false, wp);
    for (size_t i = 0; i < mlp.layers.size(); ++i) {
      MatrixRM in = layer_activations(ref, x)[i];
      if (inputs == GptqInputs::kSequentialQuantized) {
        const double lo = std::min(0.0f, in.minCoeff()), hi = std::max(0.0f, in.maxCoeff());
        const double scale = static_cast<float>((hi - lo) / 255.0);
        const double zp = std::clamp(-128.0 - std::round(lo / scale), -128.0, 127.0);
        for (int r = 0; r < in.rows(); ++r)
          for (int c = 0; c < in.cols(); ++c) {
            const double v = std::clamp(std::round(in(r, c) / scale) + zp, -128.0, 127.0);
            in(r, c) = static_cast<float>(scale) * static_cast<float>(v - zp);
          }
      }
      const MatrixRM& w = mlp.layers[i].w;
      const tinyquant::GptqResult r =
          tinyquant::gptq_quantize(w.data(), w.rows(), w.cols(), in.data(), in.rows(), spec, o);
      EXPECT_EQ(g.params[i].scales, r.weights.params.scales) << "layer " << i;
      const MatrixRM& gw = g.model.layers[i].w;
      EXPECT_TRUE(std::equal(r.dequantized.begin(), r.dequantized.end(), gw.data()))
          << "layer " << i;
      // quantize_mlp with the given parameters stores GPTQ's integers.
      std::vector<int32_t> stored, want;
      for (int64_t k = 0; k < w.size(); ++k) {
        stored.push_back(q.layers[i].weights().value(k));
        want.push_back(r.weights.value(k));
      }
      EXPECT_EQ(stored, want) << "layer " << i;
      // The next layer sees this one's GPTQ weights when sequential.
      if (sequential) std::copy(r.dequantized.begin(), r.dequantized.end(), ref.layers[i].w.data());
    }
  }
}

TEST(Dataset, LoadsAnIdxPairAndScalesPixels) {
  const std::string img = temp_path("img.idx"), lab = temp_path("lab.idx");
  std::vector<uint8_t> pixels(2 * 28 * 28);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i % 256);
  write_file(img, idx_bytes({2, 28, 28}, pixels));
  write_file(lab, idx_bytes({2}, {9, 0}));
  const Dataset d = load_idx_pair(img, lab);
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.labels, (std::vector<uint8_t>{9, 0}));
  EXPECT_FLOAT_EQ(d.images(0, 255), 1.0f);
  EXPECT_FLOAT_EQ(d.images(1, 0), static_cast<float>(784 % 256) / 255.0f);
  write_file(lab, idx_bytes({3}, {1, 2, 3}));
  expect_error<tinyquant::ShapeError>([&] { load_idx_pair(img, lab); }, {lab, "[3]", "[2]"});
  write_file(lab, idx_bytes({2}, {1, 10}));
  expect_error<tinyquant::DataError>([&] { load_idx_pair(img, lab); },
                                     {lab, "label 10", "index 1"});
  write_file(img, idx_bytes({2, 28, 27}, std::vector<uint8_t>(2 * 28 * 27)));
  expect_error<tinyquant::ShapeError>([&] { load_idx_pair(img, lab); }, {"[2, 28, 27]"});
  std::remove(img.c_str());
  std::remove(lab.c_str());
  EXPECT_FALSE(fashion_mnist_present(temp_path("nowhere")));
}

TEST(Dataset, SplitKeepsTheLastImagesForValidation) {
  Dataset d;
  d.images.resize(10, 2);
  for (int r = 0; r < 10; ++r) d.images.row(r) << static_cast<float>(r), static_cast<float>(-r);
  for (int r = 0; r < 10; ++r) d.labels.push_back(static_cast<uint8_t>(r));
  const TrainValSplit s = split_train_val(d, 3, 0);
  EXPECT_EQ(s.train.labels, (std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.val.labels, (std::vector<uint8_t>{7, 8, 9}));
  EXPECT_EQ(s.val.images(2, 1), -9.0f);
  const TrainValSplit lim = split_train_val(d, 3, 4);
  EXPECT_EQ(lim.train.labels, (std::vector<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(lim.val.labels, (std::vector<uint8_t>{7, 8, 9}));
  expect_error<tinyquant::InvalidArgument>([&] { split_train_val(d, 10, 0); },
                                           {"val_count = 10", "[1, 9]"});
  expect_error<tinyquant::InvalidArgument>([&] { slice(d, 8, 3); }, {"[8, 11)", "10 rows"});
}

// ---------------------------------------------------------------------------------------------
// Learning-rate schedule, best-epoch weights, pruning, quantized / sparse networks, the report.

TEST(Train, CosineScheduleFollowsTheFormula) {
  TrainConfig c;
  c.lr = 1e-3f;
  c.lr_min = 1e-4f;
  EXPECT_FLOAT_EQ(scheduled_lr(c, 5, 10), 1e-3f);  // constant by default
  c.schedule = LrSchedule::kCosine;
  EXPECT_FLOAT_EQ(scheduled_lr(c, 0, 10), 1e-3f);
  EXPECT_FLOAT_EQ(scheduled_lr(c, 5, 10), 1e-4f + 0.9e-3f * 0.5f);  // cos(pi / 2) = 0
  EXPECT_NEAR(scheduled_lr(c, 10, 10), 1e-4f, 1e-9f);
  EXPECT_NEAR(scheduled_lr(c, 2, 10), 1e-4 + 0.9e-3 * 0.5 * (1.0 + std::cos(0.2 * M_PI)), 1e-9);
}

TEST(Train, KeepBestEndsWithTheBestValidationEpoch) {
  Dataset d = learnable_dataset(300, 8, 5);
  const Dataset train = slice(d, 0, 200), val = slice(d, 200, 100);
  TrainConfig c;
  c.epochs = 8;
  c.batch = 16;
  c.lr = 0.05f;  // large: validation accuracy wanders from epoch to epoch
  c.schedule = LrSchedule::kCosine;
  c.keep_best = true;
  std::vector<double> val_acc;
  FloatMlp m = he_init({8, 16, 3}, 4);
  train_mlp(&m, train, val, c, [&](const EpochStats& s) { val_acc.push_back(s.val_accuracy); });
  ASSERT_EQ(val_acc.size(), 8u);
  EXPECT_DOUBLE_EQ(accuracy(m, val), *std::max_element(val_acc.begin(), val_acc.end()));

  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&m, train, Dataset{}, c); },
                                           {"keep_best", "empty validation"});
  c.lr_min = 1.0f;
  expect_error<tinyquant::InvalidArgument>([&] { train_mlp(&m, train, val, c); }, {"lr_min = 1"});
}

TEST(ModelCache, RecipeIsPartOfTheKey) {
  const FloatMlp mlp = he_init({3, 2}, 1);
  TrainKey key = small_key();
  key.recipe = "global70-f100_from-e20";
  EXPECT_EQ(key.tag(), "3-2_s1_e1_b1_lr0.5_n10_global70-f100_from-e20");
  const std::vector<uint8_t> bytes = serialize_model(mlp, key);
  EXPECT_EQ(parse_model(bytes, key, "r").layers[0].w, mlp.layers[0].w);
  TrainKey other = key;
  other.recipe = "global50";
  expect_error<tinyquant::FormatError>([&] { parse_model(bytes, other, "r"); },
                                       {"global70", "but", "global50"});
  other.recipe = "a/b";
  expect_error<tinyquant::InvalidArgument>([&] { serialize_model(mlp, other); },
                                           {"'a/b'", "'/'", "index 1"});
  other.recipe.assign(201, 'x');
  expect_error<tinyquant::InvalidArgument>([&] { serialize_model(mlp, other); },
                                           {"201 characters"});
}

namespace {

// One QAT step is the straight-through estimator written out: the optimizer step taken at the
// fake-quantized weights (the spec's parameters from `params_of` + fake_quant, called directly
// here), applied to the float weights where the clipped-STE mask is 1; biases take the step as
// is. With pruning masks the start is the masked model and pruned weights end at exactly 0.
void expect_one_ste_step(const tinyquant::QuantSpec& spec,
                         tinyquant::QuantParams (*params_of)(const float*, const tinyquant::Shape&,
                                                             const tinyquant::QuantSpec&),
                         double sparsity) {
  const Dataset d = tiny_dataset(8, 6, 3);
  FloatMlp before = he_init({6, 12, 3}, 4);
  const std::vector<tinyquant::Mask> masks = global_masks(before, sparsity);
  TrainConfig c;
  c.epochs = 1;
  c.batch = 8;
  c.lr = 0.05f;

  FloatMlp qat = before;  // unmasked: qat_finetune applies the masks itself
  QatConfig q;
  q.masks = sparsity > 0.0 ? &masks : nullptr;
  qat_finetune(&qat, d, Dataset{}, c, spec, q);

  apply_masks(&before, masks);
  FloatMlp fake = before;
  std::vector<tinyquant::FakeQuantResult> fq;
  for (DenseLayer& l : fake.layers) {
    const tinyquant::Shape shape{l.w.rows(), l.w.cols()};
    fq.push_back(tinyquant::fake_quant(l.w.data(), shape, params_of(l.w.data(), shape, spec)));
    l.w = Eigen::Map<const MatrixRM>(fq.back().values.data(), l.w.rows(), l.w.cols());
  }
  FloatMlp stepped = fake;
  train_mlp(&stepped, d, Dataset{}, c);

  int moved = 0, held = 0, pruned = 0;
  for (size_t li = 0; li < before.layers.size(); ++li) {
    for (Eigen::Index k = 0; k < before.layers[li].w.size(); ++k) {
      const auto kk = static_cast<size_t>(k);
      const bool pass = fq[li].mask[kk] != 0;
      float expect = before.layers[li].w.data()[k] +
                     (pass ? stepped.layers[li].w.data()[k] - fake.layers[li].w.data()[k] : 0.0f);
      if (masks[li][kk] == 0) {
        expect = 0.0f;
        ++pruned;
      } else {
        (pass ? moved : held) += 1;
      }
      EXPECT_EQ(qat.layers[li].w.data()[k], expect) << "layer " << li << " weight " << k;
    }
    EXPECT_EQ(qat.layers[li].b, stepped.layers[li].b) << "layer " << li;
  }
  EXPECT_GT(moved, 0);
  if (spec.bits <= 4) {
    EXPECT_GT(held, 0);  // MSE ranges clip; min / max ranges never do
  }
  EXPECT_EQ(pruned, static_cast<int>(std::lround(sparsity * (6 * 12 + 12 * 3))));
}

}  // namespace

TEST(Qat, OneStepIsTheStraightThroughEstimator) {
  // Per tensor, so the MSE-optimal range clips the Gaussian tails and the mask matters.
  const tinyquant::QuantSpec spec{
      4, tinyquant::Scheme::kSymmetric, true, tinyquant::Granularity::kPerTensor, 0, 0};
  expect_one_ste_step(
      spec,
      [](const float* w, const tinyquant::Shape& shape, const tinyquant::QuantSpec& sp) {
        return tinyquant::params_for_mse(w, shape, sp);
      },
      0.0);
}

// The int8 per-channel QAT of a pruned model: min / max parameters per output channel, the
// pruning masks kept.
TEST(Qat, Int8PerChannelStepKeepsThePruningMasks) {
  expect_one_ste_step(
      tinyquant::QuantSpec::int8_weights_per_channel(0),
      [](const float* w, const tinyquant::Shape& shape, const tinyquant::QuantSpec& sp) {
        return tinyquant::params_for(w, shape, sp);
      },
      0.5);
}

// quantized_weights() is fake_quant with weight_params per layer; the epochs report its
// validation accuracy on the master weights, and keep_best ends with the best of them.
TEST(Qat, KeepBestEndsWithTheBestWeightQuantizedEpoch) {
  Dataset d = learnable_dataset(300, 8, 5);
  const Dataset train = slice(d, 0, 200), val = slice(d, 200, 100);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(4, 1);
  const FloatMlp start = he_init({8, 16, 3}, 4);
  const FloatMlp fq = quantized_weights(start, spec);
  for (size_t li = 0; li < start.layers.size(); ++li) {
    const MatrixRM& w = start.layers[li].w;
    const tinyquant::Shape shape{w.rows(), w.cols()};
    const std::vector<float> v =
        tinyquant::fake_quant(w.data(), shape, tinyquant::params_for_mse(w.data(), shape, spec))
            .values;
    EXPECT_EQ(fq.layers[li].w, Eigen::Map<const MatrixRM>(v.data(), w.rows(), w.cols()));
    EXPECT_EQ(fq.layers[li].b, start.layers[li].b);
  }
  TrainConfig c;
  c.epochs = 8;
  c.batch = 16;
  c.lr = 0.05f;  // large: validation accuracy wanders from epoch to epoch
  c.schedule = LrSchedule::kCosine;
  QatConfig q;
  q.refresh_every = 3;
  for (const bool keep : {false, true}) {
    q.keep_best = keep;
    std::vector<double> val_acc;
    FloatMlp m = start;
    qat_finetune(&m, train, val, c, spec, q,
                 [&](const EpochStats& s) { val_acc.push_back(s.val_accuracy); });
    ASSERT_EQ(val_acc.size(), 8u);
    const double got = accuracy(quantized_weights(m, spec), val);
    EXPECT_DOUBLE_EQ(got,
                     keep ? *std::max_element(val_acc.begin(), val_acc.end()) : val_acc.back());
    if (keep) {
      EXPECT_GT(got, val_acc.back()) << "the case should wander";
    }
  }
}

TEST(Qat, RejectsKeepBestAndABadRefreshPeriod) {
  FloatMlp m = he_init({4, 3}, 1);
  const Dataset d = tiny_dataset(5, 4, 1);
  TrainConfig c;
  c.keep_best = true;
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(2, 1);
  expect_error<tinyquant::InvalidArgument>([&] { qat_finetune(&m, d, d, c, spec); }, {"keep_best"});
  c.keep_best = false;
  QatConfig q;
  q.refresh_every = 0;
  expect_error<tinyquant::InvalidArgument>([&] { qat_finetune(&m, d, d, c, spec, q); },
                                           {"refresh_every = 0"});
  q.refresh_every = 1;
  q.keep_best = true;
  expect_error<tinyquant::InvalidArgument>([&] { qat_finetune(&m, d, Dataset{}, c, spec, q); },
                                           {"keep_best", "empty validation"});
}

TEST(Qat, RejectsLearnedScalesWithoutGroupsOrStepSize) {
  FloatMlp m = he_init({4, 3}, 1);
  const Dataset d = tiny_dataset(5, 4, 1);
  const TrainConfig c;
  QatConfig q;
  q.learn_scales = true;
  expect_error<tinyquant::InvalidArgument>(
      [&] { qat_finetune(&m, d, d, c, tinyquant::QuantSpec::int8_weights_per_channel(0), q); },
      {"learn_scales", "per-group spec", "(got per-channel"});
  q.scale_lr = 0.0f;
  expect_error<tinyquant::InvalidArgument>(
      [&] { qat_finetune(&m, d, d, c, tinyquant::QuantSpec::int4_per_group(2, 1), q); },
      {"scale_lr > 0", "(got per-group, 0)"});
}

// LSQ's d w_hat / d s on hand values (int4 narrow: [-7, 7]); exact binary fractions, so w / s
// is exact. Clipped values: w_hat = s * bound, whose derivative a finite difference of
// fake_quant confirms; inside the range the mask of fake_quant agrees that nothing clips.
TEST(Qat, LsqScaleGradientOnHandValues) {
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(1, 0);
  ASSERT_EQ(spec.qmin(), -7);
  ASSERT_EQ(spec.qmax(), 7);
  struct Case {
    float w, s, want;
    bool clipped;
  };
  const Case cases[] = {
      {0.5625f, 0.25f, 2.0f - 2.25f, false},    // w / s = 2.25 -> 2
      {-0.6875f, 0.25f, -3.0f + 2.75f, false},  // -2.75 -> -3
      {0.625f, 0.25f, 3.0f - 2.5f, false},      // 2.5, a rounding boundary: half away -> 3
      {-0.625f, 0.25f, -3.0f + 2.5f, false},    // -2.5 -> -3
      {1.8125f, 0.25f, 7.0f - 7.25f, false},    // 7.25 -> 7, inside
      {1.875f, 0.25f, 7.0f, true},              // 7.5 -> 8: clipped above
      {3.0f, 0.25f, 7.0f, true},                // 12
      {-1.875f, 0.25f, -7.0f, true},            // -7.5 -> -8: clipped below
      {-5.0f, 0.5f, -7.0f, true},               // -10
      {0.0f, 0.25f, 0.0f, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(lsq_scale_grad(c.w, c.s, -7, 7), c.want) << "w " << c.w << " s " << c.s;
    auto fq = [&](float s) {
      tinyquant::QuantParams p;
      p.spec = spec;
      p.scales = {s};
      p.zero_points = {0};
      return tinyquant::fake_quant(&c.w, tinyquant::Shape{1}, p);
    };
    EXPECT_EQ(fq(c.s).mask[0] == 0, c.clipped) << "w " << c.w;
    if (c.clipped) {
      const float h = 1e-3f;
      const double fd = (static_cast<double>(fq(c.s + h).values[0]) - fq(c.s - h).values[0]) /
                        (2.0 * static_cast<double>(h));
      EXPECT_NEAR(fd, c.want, 1e-3) << "w " << c.w;
    }
  }
}

// One QAT step with learned scales on the whole dataset: each group scale moves by Adam's first
// step, lr * G / (|G| + 1) with eps = 1, where G = sum over the group's weights of dL/dw_hat
// (central finite differences of the plain-loop loss at the fake-quantized weights) times
// round(w / s) - w / s (or the bound), times 1 / sqrt(group_size * qmax).
TEST(Qat, OneLsqStepFollowsFiniteDifferenceGradients) {
  const Dataset d = learnable_dataset(24, 8, 7);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(4, 1);
  const FloatMlp start = he_init({8, 6, 3}, 11);
  TrainConfig c;
  c.epochs = 1;
  c.batch = static_cast<int>(d.size());
  c.lr = 0.01f;
  c.eps = 1.0f;
  QatConfig q;
  q.learn_scales = true;
  q.scale_lr = 0.002f;
  FloatMlp m = start;
  const std::vector<tinyquant::QuantParams> learned = qat_finetune(&m, d, Dataset{}, c, spec, q);
  ASSERT_EQ(learned.size(), 2u);
  FloatMlp fake = start;
  std::vector<tinyquant::QuantParams> p0;
  for (DenseLayer& l : fake.layers) {
    const tinyquant::Shape shape{l.w.rows(), l.w.cols()};
    p0.push_back(tinyquant::params_for_mse(l.w.data(), shape, spec));
    const std::vector<float> v = tinyquant::fake_quant(l.w.data(), shape, p0.back()).values;
    l.w = Eigen::Map<const MatrixRM>(v.data(), l.w.rows(), l.w.cols());
  }
  int checked = 0;
  for (size_t li = 0; li < 2; ++li) {
    const MatrixRM& w = start.layers[li].w;
    std::vector<double> g(p0[li].scales.size(), 0.0);
    for (Eigen::Index r = 0; r < w.rows(); ++r)
      for (Eigen::Index k = 0; k < w.cols(); ++k) {
        FloatMlp plus = fake, minus = fake;
        const float h = 1e-3f;
        plus.layers[li].w(r, k) += h;
        minus.layers[li].w(r, k) -= h;
        const double dl =
            (reference_loss(plus, d.images, d.labels) - reference_loss(minus, d.images, d.labels)) /
            (2.0 * static_cast<double>(h));
        const size_t j = static_cast<size_t>(r * 2 + k / 4);
        const double v = static_cast<double>(w(r, k)) / static_cast<double>(p0[li].scales[j]);
        const double rv = std::round(v);
        g[j] += dl * (rv > 7.0 ? 7.0 : rv < -7.0 ? -7.0 : rv - v);
      }
    for (size_t j = 0; j < g.size(); ++j) {
      const double big_g = g[j] / std::sqrt(4.0 * 7.0);
      const double step = static_cast<double>(learned[li].scales[j]) - p0[li].scales[j];
      EXPECT_NEAR(step, -0.002 * big_g / (std::fabs(big_g) + 1.0), 2e-8 + 2e-2 * std::fabs(step))
          << "layer " << li << " group " << j;
      checked += std::fabs(step) > 1e-7 ? 1 : 0;
    }
  }
  EXPECT_GE(checked, 10) << "most groups should move";
}

// Learned, snapped scales after a fine-tune with a large scale step size: all positive, on the
// deployed grid, not the re-fit ones; and the integer network quantize_mlp builds from them runs
// exactly the QAT forward's fake-quantized weights: the kernel formula of rt/grouped.hpp with
// integers and ratios recovered from those weights and scales equals forward_quant bit for bit.
TEST(Qat, LearnedScalesGiveTheIntegerModelOfTheQatForward) {
  const Dataset d = learnable_dataset(200, 8, 3);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(4, 1);
  FloatMlp m = he_init({8, 12, 3}, 6);
  TrainConfig c;
  c.epochs = 3;
  c.batch = 16;
  c.lr = 0.01f;
  QatConfig q;
  q.learn_scales = true;
  q.snap_scales = true;
  q.scale_lr = 0.01f;  // large: scales move by up to ~30 %
  std::vector<double> val_acc;
  const std::vector<tinyquant::QuantParams> p = qat_finetune(
      &m, d, d, c, spec, q, [&](const EpochStats& s) { val_acc.push_back(s.val_accuracy); });
  ASSERT_EQ(p.size(), 2u);
  int changed = 0;
  FloatMlp fake = m;
  for (size_t li = 0; li < 2; ++li) {
    const MatrixRM& w = m.layers[li].w;
    const tinyquant::Shape shape{w.rows(), w.cols()};
    for (float s : p[li].scales) {
      EXPECT_TRUE(std::isfinite(s));
      EXPECT_GT(s, 0.0f);
    }
    EXPECT_EQ(snap_group_scales(p[li], shape, w.data()).scales, p[li].scales) << "layer " << li;
    const tinyquant::QuantParams refit = weight_params(w, spec, true);
    for (size_t j = 0; j < refit.scales.size(); ++j)
      changed += refit.scales[j] != p[li].scales[j] ? 1 : 0;
    const std::vector<float> v = tinyquant::fake_quant(w.data(), shape, p[li]).values;
    fake.layers[li].w = Eigen::Map<const MatrixRM>(v.data(), w.rows(), w.cols());
  }
  EXPECT_GT(changed, 5);
  // The last epoch's reported accuracy is the fake-quantized model with these scales.
  EXPECT_DOUBLE_EQ(val_acc.back(), accuracy(fake, d));

  const std::vector<ActRange> ranges = calibrate_ranges(m, d.images);
  WeightParamsChoice wp;
  wp.given = &p;
  const QuantMlp qm = quantize_mlp(m, ranges, spec, false, wp);
  const MatrixRM x = d.images.topRows(10);
  std::vector<int32_t> a;
  for (Eigen::Index b = 0; b < x.rows(); ++b)
    for (Eigen::Index k = 0; k < x.cols(); ++k)
      a.push_back(tinyquant::quantize_activation(x(b, k), qm.input));
  const std::vector<int8_t> input(a.begin(), a.end());
  for (size_t li = 0; li < 2; ++li) {
    const tinyquant::QuantizedLinear& l = qm.layers[li];
    const MatrixRM& wf = fake.layers[li].w;
    const int64_t out = wf.rows(), in = wf.cols(), groups = (in + 3) / 4;
    EXPECT_EQ(tinyquant::dequantize(l.weights()),
              std::vector<float>(wf.data(), wf.data() + wf.size()));
    std::vector<int32_t> y;
    for (Eigen::Index b = 0; b < x.rows(); ++b)
      for (int64_t o = 0; o < out; ++o) {
        const float* s = p[li].scales.data() + o * groups;
        const double top = *std::max_element(s, s + groups);
        int64_t t = 0;
        for (int64_t g = 0; g < groups; ++g) {
          const double r = std::round(static_cast<double>(s[g]) / top * 256.0);
          ASSERT_EQ(static_cast<float>(top * r / 256.0), s[g]) << "scale off the ratio grid";
          ASSERT_EQ(l.group_ratios()[static_cast<size_t>(o * groups + g)] + 1, r);
          int64_t acc = 0;
          for (int64_t k = 4 * g; k < std::min(in, 4 * g + 4); ++k) {
            const float wq = std::round(wf(o, k) / s[g]);
            ASSERT_EQ(s[g] * wq, wf(o, k)) << "fake weight not an integer times its scale";
            acc += (a[static_cast<size_t>(b * in + k)] + l.kernel_params().input_offset) *
                   static_cast<int64_t>(wq);
          }
          t += acc * static_cast<int64_t>(r);
        }
        const int32_t total =
            l.kernel_bias()[static_cast<size_t>(o)] + static_cast<int32_t>((t + 128) >> 8);
        int32_t v = rt::requantize(total, l.multipliers()[static_cast<size_t>(o)],
                                   l.shifts()[static_cast<size_t>(o)]) +
                    l.kernel_params().output_offset;
        y.push_back(std::min(std::max(v, l.kernel_params().act_min), l.kernel_params().act_max));
      }
    a = y;
  }
  std::vector<int8_t> logits;
  forward_quant(qm, input.data(), static_cast<int32_t>(x.rows()), &logits);
  EXPECT_EQ(std::vector<int32_t>(logits.begin(), logits.end()), a);
}

TEST(Qat, FrozenLastEpochKeepsTheParametersOfTheEpochBefore) {
  Dataset d = learnable_dataset(160, 8, 5);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(4, 1);
  TrainConfig c;
  c.epochs = 2;
  c.batch = 16;
  c.lr = 0.02f;
  QatConfig q;
  q.refresh_every = 1;
  q.freeze_last_epoch = true;
  // Epoch 1 ends with a re-fit (every step); epoch 2 keeps those parameters, so the result's
  // parameters are the re-fit of the master weights after epoch 1.
  FloatMlp one = he_init({8, 12, 3}, 2);
  TrainConfig c1 = c;
  FloatMlp m = one;
  const std::vector<tinyquant::QuantParams> p = qat_finetune(&m, d, Dataset{}, c, spec, q);
  // The same epoch 1 alone (the cosine-free constant schedule and the shuffle of seed 1 match).
  c1.epochs = 1;
  QatConfig q1;
  q1.refresh_every = 1;
  qat_finetune(&one, d, Dataset{}, c1, spec, q1);
  for (size_t li = 0; li < 2; ++li) {
    EXPECT_EQ(p[li].scales, weight_params(one.layers[li].w, spec).scales) << "layer " << li;
    EXPECT_NE(p[li].scales, weight_params(m.layers[li].w, spec).scales) << "layer " << li;
  }
}

// Weight averaging over the last epochs: with one step per epoch (a batch of the whole set,
// constant step size), averaging both epochs of a 2-epoch run gives the mean of the master
// weights after its first step (a 1-epoch run: same shuffle, same step) and after its second,
// and the parameters returned are the re-fit of that mean.
TEST(Qat, AveragingEndsWithTheMeanOfTheLastEpochsMasterWeights) {
  const Dataset d = learnable_dataset(64, 8, 5);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(4, 1);
  const FloatMlp start = he_init({8, 12, 3}, 3);
  TrainConfig c;
  c.batch = 64;
  c.lr = 0.02f;
  QatConfig q;
  q.refresh_every = 1;
  auto run = [&](int epochs, int average) {
    FloatMlp m = start;
    TrainConfig ci = c;
    ci.epochs = epochs;
    QatConfig qi = q;
    qi.average_last_epochs = average;
    std::vector<tinyquant::QuantParams> p = qat_finetune(&m, d, Dataset{}, ci, spec, qi);
    return std::make_pair(m, p);
  };
  const FloatMlp one = run(1, 0).first, two = run(2, 0).first;
  const auto [mean, params] = run(2, 2);
  for (size_t li = 0; li < start.layers.size(); ++li) {
    const MatrixRM expect = 0.5f * (one.layers[li].w + two.layers[li].w);
    EXPECT_TRUE(mean.layers[li].w.isApprox(expect, 1e-6f)) << "layer " << li;
    EXPECT_FALSE(mean.layers[li].w.isApprox(two.layers[li].w, 1e-3f)) << "layer " << li;
    const Eigen::VectorXf expect_b = 0.5f * (one.layers[li].b + two.layers[li].b);
    EXPECT_TRUE(mean.layers[li].b.isApprox(expect_b, 1e-6f)) << "layer " << li;
    EXPECT_EQ(params[li].scales, weight_params(mean.layers[li].w, spec).scales) << "layer " << li;
  }
  // Averaging only the last of the two epochs is that epoch's master weights.
  const FloatMlp last = run(2, 1).first;
  for (size_t li = 0; li < start.layers.size(); ++li)
    EXPECT_EQ(last.layers[li].w, two.layers[li].w) << "layer " << li;
  FloatMlp m = start;
  TrainConfig c2 = c;
  c2.epochs = 2;
  q.average_last_epochs = 3;
  expect_error<tinyquant::InvalidArgument>([&] { qat_finetune(&m, d, Dataset{}, c2, spec, q); },
                                           {"average_last_epochs = 3", "0..2"});
  q.average_last_epochs = 1;
  q.keep_best = true;
  expect_error<tinyquant::InvalidArgument>([&] { qat_finetune(&m, d, d, c2, spec, q); },
                                           {"average_last_epochs = 1", "keep_best"});
}

// minmax_fits: the parameters returned (and used in the fine-tune) are the min / max fit of the
// master weights, snapped, where the default re-fits MSE-optimal ranges.
TEST(Qat, MinMaxFitsReturnTheMinMaxParametersOfTheResult) {
  const Dataset d = learnable_dataset(64, 8, 5);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int4_per_group(4, 1);
  FloatMlp m = he_init({8, 12, 3}, 3);
  TrainConfig c;
  c.epochs = 1;
  c.batch = 16;
  QatConfig q;
  q.snap_scales = true;
  q.minmax_fits = true;
  const std::vector<tinyquant::QuantParams> p = qat_finetune(&m, d, Dataset{}, c, spec, q);
  for (size_t li = 0; li < m.layers.size(); ++li) {
    const MatrixRM& w = m.layers[li].w;
    const tinyquant::Shape shape{w.rows(), w.cols()};
    const tinyquant::QuantParams minmax =
        tinyquant::snap_group_scales(tinyquant::params_for(w.data(), shape, spec), shape, w.data());
    EXPECT_EQ(p[li].scales, minmax.scales) << "layer " << li;
    EXPECT_NE(p[li].scales, weight_params(w, spec, true).scales) << "layer " << li;
  }
}

TEST(Prune, ScheduleIsThePolynomialDecay) {
  PruneConfig p;
  p.sparsity = 0.75;
  p.frequency = 5;
  p.ramp_fraction = 0.6;
  const tinyquant::PolynomialDecay s = prune_schedule(p, 57);
  EXPECT_EQ(s.end_step, 30);  // 0.6 * 57 = 34.2 -> 30, a multiple of 5
  EXPECT_DOUBLE_EQ(s.sparsity(0), 0.0);
  EXPECT_DOUBLE_EQ(s.sparsity(15), 0.75 * (1.0 - 0.125));  // (1 - 15/30)^3 = 1/8
  EXPECT_DOUBLE_EQ(s.sparsity(40), 0.75);
  EXPECT_TRUE(s.should_update(25));
  EXPECT_FALSE(s.should_update(26));
  EXPECT_FALSE(s.should_update(35));
  p.sparsity = 1.0;
  expect_error<tinyquant::InvalidArgument>([&] { prune_schedule(p, 57); }, {"sparsity = 1"});
}

TEST(Prune, FineTuneKeepsPrunedWeightsAtZeroAndEndsAtTheTarget) {
  Dataset d = learnable_dataset(600, 8, 4);
  FloatMlp m = he_init({8, 16, 3}, 2);
  TrainConfig c;
  c.epochs = 15;
  c.batch = 32;
  c.lr = 5e-3f;
  train_mlp(&m, d, d, c);  // pretrain, as the demo prunes a trained model
  c.epochs = 3;            // 19 steps an epoch, 57 in all; the ramp ends at step 30
  PruneConfig p;
  p.sparsity = 0.75;
  p.frequency = 5;
  const int total = 8 * 16 + 16 * 3;
  const auto zeros = [](const FloatMlp& x) {
    int z = 0;
    for (const DenseLayer& l : x.layers)
      for (Eigen::Index k = 0; k < l.w.size(); ++k) z += l.w.data()[k] == 0.0f;
    return z;
  };
  std::vector<int> zeros_per_epoch;
  const std::vector<tinyquant::Mask> masks = prune_finetune(
      &m, d, d, c, p, [&](const EpochStats&) { zeros_per_epoch.push_back(zeros(m)); });
  // End of epoch 1 = step 18: the last update was at step 15, sparsity 0.65625.
  ASSERT_EQ(zeros_per_epoch.size(), 3u);
  EXPECT_GE(zeros_per_epoch[0], static_cast<int>(std::lround(0.65625 * total)));
  // After step 30 the masks are final: exactly round(0.75 * 176) = 132 zeros.
  EXPECT_EQ(zeros_per_epoch[1], 132);
  EXPECT_EQ(zeros_per_epoch[2], 132);
  EXPECT_EQ(zeros(m), 132);
  EXPECT_DOUBLE_EQ(weight_sparsity(m), 132.0 / total);
  // The returned masks mark exactly the result's 132 zeros (what pruned them is checked above,
  // by the counts at each step).
  ASSERT_EQ(masks.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    for (Eigen::Index k = 0; k < m.layers[i].w.size(); ++k)
      EXPECT_EQ(masks[i][static_cast<size_t>(k)] == 0, m.layers[i].w.data()[k] == 0.0f);
  EXPECT_GT(accuracy(m, d), 0.8);  // it still learns the problem
  expect_error<tinyquant::ShapeError>([&] { apply_masks(&m, {masks[0]}); },
                                      {"1 masks", "2 layers"});
}

// keep_best picks the best validation epoch among those that end after the ramp (epochs 3 and 4
// of 4 here; epochs 1 and 2 end below the final sparsity and are never taken).
TEST(Prune, KeepBestOnlyAmongEpochsAtTheFinalSparsity) {
  Dataset d = learnable_dataset(600, 8, 4);
  const Dataset train = slice(d, 0, 500), val = slice(d, 500, 100);
  FloatMlp start = he_init({8, 16, 3}, 2);
  TrainConfig c;
  c.epochs = 15;
  c.batch = 32;
  c.lr = 5e-3f;
  train_mlp(&start, train, val, c);
  c.epochs = 4;  // 16 steps an epoch, 64 in all; the ramp ends at step 35 (0.6 * 64 -> 35)
  c.lr = 0.08f;  // large: validation accuracy wanders
  PruneConfig p;
  p.sparsity = 0.75;
  p.frequency = 5;
  std::vector<double> val_acc;
  FloatMlp m = start;
  c.keep_best = true;
  prune_finetune(&m, train, val, c, p,
                 [&](const EpochStats& s) { val_acc.push_back(s.val_accuracy); });
  ASSERT_EQ(val_acc.size(), 4u);
  // Epochs 3 and 4 end at steps 47 and 63, after the ramp; epochs 1 and 2 (15, 31) before it.
  EXPECT_DOUBLE_EQ(accuracy(m, val), std::max(val_acc[2], val_acc[3]));
  // The case can tell: an epoch before the ramp's end scores higher, or epoch 3 beats epoch 4.
  EXPECT_TRUE(std::max(val_acc[0], val_acc[1]) > std::max(val_acc[2], val_acc[3]) ||
              val_acc[2] > val_acc[3])
      << val_acc[0] << " " << val_acc[1] << " " << val_acc[2] << " " << val_acc[3];
  EXPECT_DOUBLE_EQ(weight_sparsity(m), 132.0 / (8 * 16 + 16 * 3));
  FloatMlp last = start;
  c.keep_best = false;
  prune_finetune(&last, train, val, c, p);
  EXPECT_DOUBLE_EQ(accuracy(last, val), val_acc[3]);
  expect_error<tinyquant::InvalidArgument>(
      [&] {
        c.keep_best = true;
        prune_finetune(&m, train, Dataset{}, c, p);
      },
      {"keep_best", "empty validation"});
}

TEST(Prune, ShrinkHiddenEqualsTheNetworkWithThoseNeuronsSilenced) {
  const FloatMlp m = he_init({6, 8, 4, 3}, 9);
  FloatMlp biased = m;
  for (DenseLayer& l : biased.layers) l.b = Eigen::VectorXf::LinSpaced(l.b.size(), -0.1f, 0.2f);
  const FloatMlp s = shrink_hidden(biased, 0.5, tinyquant::Criterion::kL2);
  EXPECT_EQ(s.sizes(), (std::vector<int>{6, 4, 2, 3}));
  // Reference: keep the neurons of largest L2 norm over their (remaining) inputs, lower index
  // first on ties, by sorting; then run the full network with the others forced to 0.
  std::vector<std::vector<bool>> alive;
  std::vector<bool> inputs(6, true);
  for (size_t li = 0; li + 1 < biased.layers.size(); ++li) {
    const DenseLayer& l = biased.layers[li];
    std::vector<double> norm(static_cast<size_t>(l.out_features()));
    for (int o = 0; o < l.out_features(); ++o)
      for (int k = 0; k < l.in_features(); ++k)
        if (inputs[static_cast<size_t>(k)])
          norm[static_cast<size_t>(o)] += static_cast<double>(l.w(o, k)) * l.w(o, k);
    std::vector<int> order(norm.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return norm[static_cast<size_t>(a)] > norm[static_cast<size_t>(b)];
    });
    std::vector<bool> keep(norm.size(), false);
    for (size_t r = 0; r < norm.size() / 2; ++r) keep[static_cast<size_t>(order[r])] = true;
    alive.push_back(keep);
    inputs = keep;
  }
  const MatrixRM x = random_matrix(5, 6, 3);
  const MatrixRM got = forward(s, x);
  for (int r = 0; r < 5; ++r) {
    std::vector<double> a(x.row(r).data(), x.row(r).data() + 6);
    for (size_t li = 0; li < biased.layers.size(); ++li) {
      const DenseLayer& l = biased.layers[li];
      std::vector<double> y(static_cast<size_t>(l.out_features()));
      for (int o = 0; o < l.out_features(); ++o) {
        double v = l.b[o];
        for (int k = 0; k < l.in_features(); ++k) v += l.w(o, k) * a[static_cast<size_t>(k)];
        if (li + 1 < biased.layers.size())
          v = alive[li][static_cast<size_t>(o)] ? std::max(v, 0.0) : 0.0;
        y[static_cast<size_t>(o)] = v;
      }
      a = y;
    }
    for (int o = 0; o < 3; ++o)
      EXPECT_NEAR(got(r, o), a[static_cast<size_t>(o)], 1e-5) << r << "," << o;
  }
}

namespace {

// A {40, 64, 32, 5} network pruned globally to `sparsity`, and its calibration ranges.
FloatMlp pruned_net(double sparsity, std::vector<ActRange>* ranges) {
  FloatMlp m = he_init({40, 64, 32, 5}, 12);
  for (DenseLayer& l : m.layers) l.b = Eigen::VectorXf::LinSpaced(l.b.size(), -0.05f, 0.05f);
  apply_masks(&m, global_masks(m, sparsity));
  *ranges = calibrate_ranges(m, random_matrix(64, 40, 8));
  return m;
}

}  // namespace

TEST(QuantMlp, SparseRowsEqualDenseIntegerInference) {
  std::vector<ActRange> ranges;
  const FloatMlp m = pruned_net(0.9, &ranges);
  const tinyquant::QuantSpec spec = tinyquant::QuantSpec::int8_weights_per_channel(0);
  const QuantMlp dense = quantize_mlp(m, ranges, spec, false);
  const QuantMlp sparse = quantize_mlp(m, ranges, spec, true);
  EXPECT_EQ(dense.sparse_layers(), 0);
  EXPECT_GE(sparse.sparse_layers(), 2);  // 90% zeros: the chooser picks a sparse format
  std::vector<int8_t> x(7 * 40);
  std::mt19937 rng(5);
  for (int8_t& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  std::vector<int8_t> want, got;
  forward_quant(dense, x.data(), 7, &want, rt::Path::kReference);
  for (rt::Path p : {rt::Path::kReference, rt::Path::kAuto}) {
    forward_quant(sparse, x.data(), 7, &got, p);
    EXPECT_EQ(got, want) << rt::path_name(p);
  }
  // Also batch 1 at a time (what the demo times).
  for (int b = 0; b < 7; ++b) {
    forward_quant(sparse, x.data() + b * 40, 1, &got);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin() + b * 5)) << "row " << b;
  }
}

TEST(QuantMlp, BytesAreTheChoosersWeightsPlusBiasAndParameters) {
  std::vector<ActRange> ranges;
  const FloatMlp m = pruned_net(0.7, &ranges);
  const std::vector<int> sizes = {40, 64, 32, 5};
  for (const tinyquant::QuantSpec& spec : {tinyquant::QuantSpec::int8_weights_per_channel(0),
                                           tinyquant::QuantSpec::int4_per_group(32, 1)}) {
    const bool int4 = spec.bits == 4;
    const QuantMlp q = quantize_mlp(m, ranges, spec, true);
    int64_t want = 0;
    for (size_t i = 0; i < 3; ++i) {
      const int64_t out = sizes[i + 1], in = sizes[i];
      const tinyquant::QTensor& w = q.layers[i].weights();
      std::vector<int8_t> v(static_cast<size_t>(out * in));
      for (int64_t k = 0; k < out * in; ++k)
        v[static_cast<size_t>(k)] = static_cast<int8_t>(w.value(k));
      tinyquant::SparseOptions opt;
      opt.value_type = int4 ? tinyquant::ValueType::kInt4 : tinyquant::ValueType::kInt8;
      const int64_t weights = tinyquant::choose_format(v.data(), out, in, opt).best_bytes;
      const int64_t groups = int4 ? out * ((in + 31) / 32) : 0;
      EXPECT_EQ(q.bytes[i].weights, weights) << i;
      // int32 bias and one float32 requantization scale per output, the layer's input and output
      // scales, one ratio byte per group.
      want += weights + 4 * out + 4 * out + 8 + groups;
    }
    EXPECT_EQ(q.total_bytes(), want) << spec.bits;
  }
  // Dense per-channel: the toolkit's own count (an int32 multiplier and shift per channel) with
  // one float32 scale per channel instead, plus the input and output scales; per-tensor: one
  // requantization scale per layer.
  const QuantMlp dense =
      quantize_mlp(m, ranges, tinyquant::QuantSpec::int8_weights_per_channel(0), false);
  int64_t toolkit = 0;
  for (const auto& l : dense.layers) toolkit += l.bytes() - 4 * l.out_features() + 8;
  EXPECT_EQ(dense.total_bytes(), toolkit);
  const tinyquant::QuantSpec per_tensor{
      8, tinyquant::Scheme::kSymmetric, true, tinyquant::Granularity::kPerTensor, 0, 0};
  EXPECT_EQ(quantize_mlp(m, ranges, per_tensor, false).total_bytes(),
            (40 * 64 + 64 * 32 + 32 * 5) + 4 * (64 + 32 + 5) + 3 * (4 + 8));
  expect_error<tinyquant::ShapeError>(
      [&] { quantize_mlp(m, std::vector<ActRange>(3), per_tensor, false); },
      {"3 ranges", "3 layers", "need 4"});
}

TEST(QuantMlp, SparseFloatBytesByHand) {
  FloatMlp m;
  DenseLayer l;
  l.w = MatrixRM::Zero(4, 8);
  l.w(0, 1) = 0.5f;
  l.w(2, 5) = -1.0f;
  l.b = Eigen::VectorXf::Zero(4);
  m.layers.push_back(l);
  // Dense 4*32 = 128; CSR u8 2*4 + 2 + 4*2 = 18; bitmap 4*1 + 4*2 = 12 (the smallest);
  // N:M 2:4 16 slots * 4 + 4 index bytes = 68; plus 4 bytes of bias per output.
  EXPECT_EQ(sparse_float_bytes(m), 12 + 16);
  EXPECT_EQ(float_bytes(m), 128 + 16);
}

TEST(QuantMlp, EvaluationMatchesTheForwardPasses) {
  std::vector<ActRange> ranges;
  const FloatMlp m = pruned_net(0.5, &ranges);
  Dataset d;
  d.images = random_matrix(30, 40, 8);
  for (int i = 0; i < 30; ++i) d.labels.push_back(static_cast<uint8_t>(i % 5));
  const QuantMlp q =
      quantize_mlp(m, ranges, tinyquant::QuantSpec::int8_weights_per_channel(0), true);
  int correct_f = 0, correct_q = 0;
  for (int i = 0; i < 20; ++i) {
    const std::vector<double> z = reference_forward(m, d.images, i).back();
    correct_f += static_cast<int>(std::max_element(z.begin(), z.end()) - z.begin()) ==
                 d.labels[static_cast<size_t>(i)];
    std::vector<int8_t> x(40), logits;
    for (int k = 0; k < 40; ++k)
      x[static_cast<size_t>(k)] = tinyquant::quantize_activation(d.images(i, k), q.input);
    forward_quant(q, x.data(), 1, &logits);
    correct_q += static_cast<int>(std::max_element(logits.begin(), logits.end()) -
                                  logits.begin()) == d.labels[static_cast<size_t>(i)];
  }
  const EvalResult f = evaluate_float(m, d, 20), e = evaluate_quant(q, d, 20);
  EXPECT_EQ(f.count, 20);
  EXPECT_DOUBLE_EQ(f.accuracy, correct_f / 20.0);
  EXPECT_DOUBLE_EQ(e.accuracy, correct_q / 20.0);
  EXPECT_GT(e.us_per_sample, 0.0);
  EXPECT_EQ(evaluate_quant(q, d, 0).count, 30);
  Dataset wrong;
  wrong.images = random_matrix(2, 39, 1);
  wrong.labels = {0, 1};
  expect_error<tinyquant::ShapeError>([&] { evaluate_quant(q, wrong, 0); },
                                      {"39 pixels", "40 inputs"});
}

namespace {

// Minimal XML well-formedness: every tag closes in order, attributes are quoted, no stray '<' or
// '&' outside entities.
bool well_formed(const std::string& s, std::string* why) {
  std::vector<std::string> stack;
  size_t i = 0;
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    if (s[i] == '&') {
      const size_t semi = s.find(';', i);
      const std::string ent = s.substr(i, semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;") {
        *why = "bad entity at " + std::to_string(i);
        return false;
      }
      i = semi + 1;
    } else if (s[i] == '<') {
      size_t j = i + 1;
      bool in_quote = false;
      while (j < s.size() && (in_quote || s[j] != '>')) {
        if (s[j] == '"') in_quote = !in_quote;
        if (!in_quote && s[j] == '<') {
          *why = "'<' inside a tag at " + std::to_string(j);
          return false;
        }
        ++j;
      }
      if (j >= s.size()) {
        *why = "unterminated tag";
        return false;
      }
      const std::string tag = s.substr(i + 1, j - i - 1);
      const std::string name =
          tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" /", 1) - (tag[0] == '/' ? 1 : 0));
      if (tag[0] == '/') {
        if (stack.empty() || stack.back() != name) {
          *why = "mismatched </" + name + ">";
          return false;
        }
        stack.pop_back();
      } else if (tag.back() != '/') {
        stack.push_back(name);
      }
      i = j + 1;
    } else {
      ++i;
    }
  }
  if (!stack.empty()) *why = "unclosed <" + stack.back() + ">";
  return stack.empty();
}

}  // namespace

TEST(Report, TableShowsDropRatioAndNotes) {
  const std::vector<ResultRow> rows = {{"float32", 0.895, 4000, 10.0, "", ""},
                                       {"int8 per-channel", 0.9, 1000, 2.5, "claim X", "ref Y"}};
  const std::string t = format_table(rows, 0.895, 4000);
  EXPECT_NE(t.find("+0.50"), std::string::npos) << t;  // (0.9 - 0.895) * 100
  EXPECT_NE(t.find("4.00x"), std::string::npos) << t;
  EXPECT_NE(t.find("claim X | ref Y"), std::string::npos) << t;
  EXPECT_NE(t.find("90.00%"), std::string::npos) << t;
  expect_error<tinyquant::InvalidArgument>([&] { format_table(rows, 0.9, 0); },
                                           {"float_bytes = 0"});
}

TEST(Report, SvgIsWellFormedWithALogBytesAxis) {
  const std::vector<ResultRow> rows = {{"a<b&c", 0.80, 1000, 1, "", ""},
                                       {"b", 0.85, 10000, 1, "", ""},
                                       {"c", 0.90, 100000, 1, "", ""}};
  const std::string svg = accuracy_bytes_svg(rows, 0.89, "title \"q\"");
  std::string why;
  EXPECT_TRUE(well_formed(svg, &why)) << why;
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("a&lt;b&amp;c"), std::string::npos);
  EXPECT_NE(svg.find("title &quot;q&quot;"), std::string::npos);
  const std::regex circle("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  std::vector<double> cx, cy;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator();
       ++it) {
    cx.push_back(std::stod((*it)[1]));
    cy.push_back(std::stod((*it)[2]));
  }
  ASSERT_EQ(cx.size(), 3u);
  // Equal ratios of bytes are equal distances; higher accuracy is higher up (smaller y).
  EXPECT_NEAR(cx[1] - cx[0], cx[2] - cx[1], 0.15);
  EXPECT_GT(cx[1], cx[0]);
  EXPECT_LT(cy[2], cy[1]);
  EXPECT_NEAR((cy[0] - cy[1]), (cy[1] - cy[2]), 0.15);
  std::string bad;
  EXPECT_FALSE(well_formed("<svg><g></svg>", &bad));  // the checker can fail
  expect_error<tinyquant::InvalidArgument>([&] { accuracy_bytes_svg({}, 0.9, "t"); }, {"no rows"});
  expect_error<tinyquant::InvalidArgument>(
      [&] {
        accuracy_bytes_svg({{"zero", 0.5, 0, 1, "", ""}}, 0.9, "t");
      },
      {"'zero'", "bytes = 0"});
  const std::string path = temp_path("plot.svg");
  write_text_file(path, svg);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string back(svg.size() + 1, '\0');
  back.resize(std::fread(&back[0], 1, back.size(), f));
  std::fclose(f);
  EXPECT_EQ(back, svg);
  std::remove(path.c_str());
  expect_error<tinyquant::IoError>([&] { write_text_file("/proc/no/such/dir/x.svg", "x"); },
                                   {"/proc/no/such/dir"});
}

namespace {

std::string read_all(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "<missing " + path + ">";
  std::string s;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

}  // namespace

TEST(Firmware, BundleHoldsThePixelBytesLabelsTableModelAndHostLogits) {
  // Images of pixel bytes / 255, as the loader makes them.
  const int n = 12, pixels = 20;
  Dataset d = tiny_dataset(n, pixels, 5);
  std::mt19937 rng(6);
  std::vector<uint8_t> bytes(static_cast<size_t>(n * pixels));
  for (int i = 0; i < n * pixels; ++i) {
    bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(rng() % 256);
    d.images(i / pixels, i % pixels) =
        static_cast<float>(bytes[static_cast<size_t>(i)]) * (1.0f / 255.0f);
  }
  const FloatMlp mlp = he_init({pixels, 8, 3}, 7);
  const QuantMlp q = quantize_mlp(mlp, calibrate_ranges(mlp, d.images),
                                  tinyquant::QuantSpec::int8_weights_per_channel(0), false);
  const std::string dir = temp_path("firmware");
  const int used = 10;  // the bundle holds the first `used` images only
  write_firmware_test_set(d, used, dir);
  write_firmware_model(mlp, q, d, used, dir, "m");

  EXPECT_EQ(read_all(dir + "/test_images.u8"),
            std::string(bytes.begin(), bytes.begin() + used * pixels));
  EXPECT_EQ(read_all(dir + "/test_labels.u8"),
            std::string(d.labels.begin(), d.labels.begin() + used));

  // The table: entry p is the int8 quantize_activation gives p / 255.
  const std::string lut = read_all(dir + "/m/input.h");
  const std::string body = lut.substr(lut.find('{') + 1);
  std::vector<int> table;
  const std::regex number("-?[0-9]+");
  for (auto it = std::sregex_iterator(body.begin(), body.end(), number);
       it != std::sregex_iterator(); ++it)
    table.push_back(std::stoi(it->str()));
  ASSERT_EQ(table.size(), 256u);
  for (int p = 0; p < 256; ++p)
    EXPECT_EQ(table[static_cast<size_t>(p)],
              tinyquant::quantize_activation(static_cast<float>(p) / 255.0f, q.input))
        << "pixel " << p;

  // The model file holds the layers' integers and float biases.
  const tinyquant::io::Model model = tinyquant::io::load_model(dir + "/m/model.tqm");
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const std::string name = "fc" + std::to_string(i + 1);
    const std::vector<uint8_t>& stored = model.find(name + ".weight").part("data").bytes;
    const std::vector<uint8_t>& expected = q.layers[i].weights().data;
    EXPECT_EQ(stored, expected) << name;
    EXPECT_EQ(model.find(name + ".bias").shape, (tinyquant::Shape{mlp.layers[i].out_features()}));
  }
  EXPECT_NE(read_all(dir + "/m/model.h").find("FMNIST_FC2_OUT_FEATURES 3"), std::string::npos);

  // Host logits: an integer forward of each image through plain loops over the layers' integers.
  const std::string logits = read_all(dir + "/m/host_logits.s8");
  ASSERT_EQ(logits.size(), static_cast<size_t>(used * 3));
  for (int i = 0; i < used; ++i) {
    std::vector<int8_t> x(static_cast<size_t>(pixels));
    for (int k = 0; k < pixels; ++k)
      x[static_cast<size_t>(k)] =
          static_cast<int8_t>(table[bytes[static_cast<size_t>(i * pixels + k)]]);
    for (const tinyquant::QuantizedLinear& l : q.layers) {
      const std::vector<uint8_t>& w = l.weights().data;  // int8 per channel, one byte each
      std::vector<int8_t> y(static_cast<size_t>(l.out_features()));
      for (int64_t o = 0; o < l.out_features(); ++o) {
        int64_t acc = l.kernel_bias()[static_cast<size_t>(o)];
        for (int64_t k = 0; k < l.in_features(); ++k)
          acc += int64_t{static_cast<int8_t>(w[static_cast<size_t>(o * l.in_features() + k)])} *
                 x[static_cast<size_t>(k)];
        const int32_t v = tinyquant::rt::requantize(static_cast<int32_t>(acc),
                                                    l.multipliers()[static_cast<size_t>(o)],
                                                    l.shifts()[static_cast<size_t>(o)]) +
                          l.kernel_params().output_offset;
        y[static_cast<size_t>(o)] = static_cast<int8_t>(
            std::clamp(v, l.kernel_params().act_min, l.kernel_params().act_max));
      }
      x = y;
    }
    EXPECT_EQ(logits.substr(static_cast<size_t>(i * 3), 3),
              std::string(reinterpret_cast<const char*>(x.data()), 3))
        << "image " << i;
  }
  std::filesystem::remove_all(dir);
}

TEST(Firmware, RejectsImagesThatAreNotPixelBytes) {
  Dataset d = tiny_dataset(2, 4, 3);
  d.images.setZero();
  d.images(1, 2) = 0.5f;  // 127.5 / 255
  const std::string dir = temp_path("firmware_bad");
  expect_error<tinyquant::InvalidArgument>([&] { write_firmware_test_set(d, 0, dir); },
                                           {"image 1", "pixel 2", "not a byte / 255"});
  std::filesystem::remove_all(dir);
}
