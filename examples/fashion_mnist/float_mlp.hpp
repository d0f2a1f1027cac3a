// The float multilayer perceptron of the example: dense layers, ReLU between them, raw logits out.
//
// Layer i computes y = x W_i^T + b_i for a batch x [batch][in]; W_i is [out][in] row-major (the
// runtime's fully-connected weight layout), b_i is [out]. Every layer but the last is followed
// by ReLU; the last one's output are the logits (softmax is only part of the training loss).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataset.hpp"

namespace fmnist {

struct DenseLayer {
  MatrixRM w;         // [out][in]
  Eigen::VectorXf b;  // [out]

  int in_features() const { return static_cast<int>(w.cols()); }
  int out_features() const { return static_cast<int>(w.rows()); }
};

struct FloatMlp {
  std::vector<DenseLayer> layers;

  // {784, 128, 64, 10} for the example's model.
  std::vector<int> sizes() const;
  bool is_hidden(size_t layer) const { return layer + 1 < layers.size(); }
};

// Eigen plans its GEMM blocks from the L1 / L2 / L3 sizes it detects at run time, and the L1
// size sets the block depth, i.e. where a long dot product (784 terms in the first layer) is cut
// into partial sums. So the same seed trained slightly different weights on CPUs with different
// caches (seed 1's float model: 89.33 % test accuracy planned for a 32 KiB L1, 89.23 % for a
// 48 KiB one, on the same machine). While one of these lives, Eigen plans with fixed sizes
// (kL1 / kL2 / kL3) instead; the sizes in effect before are restored at its end. Only the L1
// size changes any sum; L2 and L3 only split rows and columns. Process-wide state: not for use
// from several threads at once.
class FixedEigenBlocking {
 public:
  static constexpr std::ptrdiff_t kL1 = std::ptrdiff_t{32} << 10;
  static constexpr std::ptrdiff_t kL2 = std::ptrdiff_t{1} << 20;
  static constexpr std::ptrdiff_t kL3 = std::ptrdiff_t{32} << 20;

  FixedEigenBlocking();
  ~FixedEigenBlocking();
  FixedEigenBlocking(const FixedEigenBlocking&) = delete;
  FixedEigenBlocking& operator=(const FixedEigenBlocking&) = delete;

 private:
  std::ptrdiff_t l1_, l2_, l3_;  // the sizes to restore
};

// He (Kaiming) normal init: W ~ N(0, 2 / fan_in), b = 0; deterministic for a seed (the normal
// deviates come from a portable Box-Muller over std::mt19937, not std::normal_distribution).
// sizes needs at least 2 entries, all >= 1.
FloatMlp he_init(const std::vector<int>& sizes, uint32_t seed);

// Output of layer i (after ReLU for hidden layers) for its input x [batch][in]; throws
// tinyquant::ShapeError if x does not have the layer's input width.
MatrixRM layer_output(const FloatMlp& mlp, size_t i, const MatrixRM& x);

// Logits [batch][classes] for x [batch][in].
MatrixRM forward(const FloatMlp& mlp, const MatrixRM& x);

// Every layer's input and output for x: result[0] = x, result[i + 1] = output of layer i (after
// ReLU for hidden layers, logits for the last). So layer i reads result[i] and writes
// result[i + 1] — what activation calibration needs.
std::vector<MatrixRM> layer_activations(const FloatMlp& mlp, const MatrixRM& x);

// Index of the largest logit of each row (the first one on ties).
std::vector<int> argmax_rows(const MatrixRM& logits);

// Fraction of d classified correctly, evaluated in batches of `batch` rows.
double accuracy(const FloatMlp& mlp, const Dataset& d, int64_t batch = 1000);

}  // namespace fmnist
