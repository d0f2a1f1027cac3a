// The Fashion-MNIST example's pieces on tiny synthetic data, each against a plain reference:
// forward pass vs triple loops, training gradients vs central finite differences in double,
// the int8 network vs the kernel formula written out with plain loops, the cache file format
// vs its own corruptions, and the dataset helpers vs hand-built IDX files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>

#include "dataset.hpp"
#include "float_mlp.hpp"
#include "int8_mlp.hpp"
#include "model_cache.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/rt/fixed_point.hpp"
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

// One full-batch Adam step with eps = 1 moves each parameter by -lr g / (|g| + 1), so the step
// reveals every gradient, which must match central finite differences of the plain-loop loss.
TEST(Train, OneAdamStepFollowsFiniteDifferenceGradients) {
  const FloatMlp before = he_init({4, 5, 3}, 21);
  const Dataset d = tiny_dataset(6, 4, 9);
  FloatMlp after = before;
  TrainConfig c;
  c.epochs = 1;
  c.batch = 6;
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
      const double g =
          (reference_loss(plus, d.images, d.labels) - reference_loss(minus, d.images, d.labels)) /
          (2.0 * static_cast<double>(h));
      FloatMlp copy = before;
      const double step = static_cast<double>(param(after)) - static_cast<double>(param(copy));
      const double u = -step / static_cast<double>(c.lr);  // = g / (|g| + 1)
      const double g_from_step = u / (1.0 - std::fabs(u));
      EXPECT_NEAR(g_from_step, g, 2e-3 + 2e-2 * std::fabs(g)) << "layer " << li << " param " << k;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4 * 5 + 5 + 5 * 3 + 3);
}

TEST(Train, DeterministicAndLearnsASeparableProblem) {
  // Label = index of the largest of the first three pixels: learnable, so the loss must fall.
  Dataset d = tiny_dataset(600, 8, 4);
  for (int r = 0; r < 600; ++r) {
    Eigen::Index best;
    d.images.row(r).head(3).maxCoeff(&best);
    d.labels[static_cast<size_t>(r)] = static_cast<uint8_t>(best);
  }
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
  EXPECT_EQ(q.parameter_bytes(), 60 + 18 + 4 * 3 * (6 + 3));
  expect_error<tinyquant::ShapeError>([&] { quantize_mlp_int8(mlp, std::vector<ActRange>(2)); },
                                      {"2 ranges", "2 layers", "need 3"});
}

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
  // Header 8 + 4 + 4 + 3*4 + 4*3 + 4 + 8, floats 4*(28 + 4 + 8 + 2), CRC 4.
  EXPECT_EQ(bytes.size(), 52u + 4u * 42u + 4u);
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
  TrainKey key;
  key.sizes = {3, 2};
  key.seed = 1;
  key.epochs = 1;
  key.batch = 1;
  key.lr = 0.5f;
  key.train_count = 10;
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
