// The float multilayer perceptron of the example: dense layers, ReLU between them, raw logits out.
//
// Layer i computes y = x W_i^T + b_i for a batch x [batch][in]; W_i is [out][in] row-major (the
// runtime's fully-connected weight layout), b_i is [out]. Every layer but the last is followed
// by ReLU; the last one's output are the logits (softmax is only part of the training loss).
#pragma once

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
