#include "float_mlp.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "tinyquant/error.hpp"

namespace fmnist {

std::vector<int> FloatMlp::sizes() const {
  std::vector<int> s;
  if (layers.empty()) return s;
  s.push_back(layers.front().in_features());
  for (const DenseLayer& l : layers) s.push_back(l.out_features());
  return s;
}

namespace {

// Uniform in (0, 1] with 24 random bits: never 0, so log() below is finite.
double uniform01(std::mt19937& rng) {
  return (static_cast<double>(rng() >> 8) + 1.0) * (1.0 / 16777216.0);
}

}  // namespace

FloatMlp he_init(const std::vector<int>& sizes, uint32_t seed) {
  if (sizes.size() < 2)
    throw tinyquant::InvalidArgument(
        fmt::format("he_init: {} layer sizes, need at least 2", sizes.size()));
  for (size_t i = 0; i < sizes.size(); ++i)
    if (sizes[i] < 1)
      throw tinyquant::InvalidArgument(
          fmt::format("he_init: sizes[{}] = {} must be >= 1", i, sizes[i]));
  std::mt19937 rng(seed);
  FloatMlp mlp;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    DenseLayer l;
    l.w.resize(sizes[i + 1], sizes[i]);
    l.b = Eigen::VectorXf::Zero(sizes[i + 1]);
    const double stddev = std::sqrt(2.0 / sizes[i]);
    constexpr double kTwoPi = 6.283185307179586;
    float* w = l.w.data();
    const Eigen::Index n = l.w.size();
    for (Eigen::Index k = 0; k < n; k += 2) {
      // Box-Muller: two independent standard normals from two uniforms.
      const double r = std::sqrt(-2.0 * std::log(uniform01(rng)));
      const double theta = kTwoPi * uniform01(rng);
      w[k] = static_cast<float>(stddev * r * std::cos(theta));
      if (k + 1 < n) w[k + 1] = static_cast<float>(stddev * r * std::sin(theta));
    }
    mlp.layers.push_back(std::move(l));
  }
  return mlp;
}

FixedEigenBlocking::FixedEigenBlocking()
    : l1_(Eigen::l1CacheSize()), l2_(Eigen::l2CacheSize()), l3_(Eigen::l3CacheSize()) {
  Eigen::setCpuCacheSizes(kL1, kL2, kL3);
}

FixedEigenBlocking::~FixedEigenBlocking() {
  Eigen::setCpuCacheSizes(l1_, l2_, l3_);
}

MatrixRM layer_output(const FloatMlp& mlp, size_t i, const MatrixRM& x) {
  const DenseLayer& l = mlp.layers.at(i);
  if (x.cols() != l.in_features())
    throw tinyquant::ShapeError(
        fmt::format("layer {} expects {} inputs, got {}", i, l.in_features(), x.cols()));
  MatrixRM y = x * l.w.transpose();
  y.rowwise() += l.b.transpose();
  if (mlp.is_hidden(i)) y = y.cwiseMax(0.0f);
  return y;
}

std::vector<MatrixRM> layer_activations(const FloatMlp& mlp, const MatrixRM& x) {
  std::vector<MatrixRM> acts;
  acts.reserve(mlp.layers.size() + 1);
  acts.push_back(x);
  for (size_t i = 0; i < mlp.layers.size(); ++i) acts.push_back(layer_output(mlp, i, acts.back()));
  return acts;
}

MatrixRM forward(const FloatMlp& mlp, const MatrixRM& x) {
  MatrixRM a = x;
  for (size_t i = 0; i < mlp.layers.size(); ++i) a = layer_output(mlp, i, a);
  return a;
}

std::vector<int> argmax_rows(const MatrixRM& logits) {
  std::vector<int> out(static_cast<size_t>(logits.rows()));
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    Eigen::Index best = 0;
    logits.row(r).maxCoeff(&best);
    out[static_cast<size_t>(r)] = static_cast<int>(best);
  }
  return out;
}

double accuracy(const FloatMlp& mlp, const Dataset& d, int64_t batch) {
  if (d.size() == 0) return 0.0;
  int64_t correct = 0;
  for (int64_t start = 0; start < d.size(); start += batch) {
    const int64_t n = std::min(batch, d.size() - start);
    const std::vector<int> pred = argmax_rows(forward(mlp, d.images.middleRows(start, n)));
    for (int64_t i = 0; i < n; ++i)
      correct += pred[static_cast<size_t>(i)] == d.labels[static_cast<size_t>(start + i)];
  }
  return static_cast<double>(correct) / static_cast<double>(d.size());
}

}  // namespace fmnist
