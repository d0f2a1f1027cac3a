// Quickstart: quantize one realistic weight matrix three ways and compare error and size.
//
// The matrix is a 256 x 784 fully-connected layer (an MNIST-sized first layer): seeded normal
// weights with a few outlier output channels ten times wider than the rest, as trained layers
// often have. Each configuration calibrates on the weights themselves (params_for), quantizes,
// dequantizes, and reports the error against the float original and the bytes it takes
// (integer data + a float32 scale and a zero point per parameter pair).
#include <fmt/format.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/metrics.hpp"
#include "tinyquant/quantize.hpp"

namespace {

constexpr int64_t kRows = 256;  // output channels
constexpr int64_t kCols = 784;  // inputs
constexpr uint32_t kSeed = 2026;

std::vector<float> make_weights(std::vector<int64_t>* outlier_rows) {
  std::mt19937 rng(kSeed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(kRows * kCols));
  for (float& v : w) v = normal(rng);
  *outlier_rows = {3, 77, 140, 201};
  for (int64_t r : *outlier_rows)
    for (int64_t c = 0; c < kCols; ++c) w[static_cast<size_t>(r * kCols + c)] *= 10.0f;
  return w;
}

struct Config {
  std::string name;
  tinyquant::QuantSpec spec;
};

}  // namespace

int main() {
  using namespace tinyquant;
  std::vector<int64_t> outliers;
  const std::vector<float> w = make_weights(&outliers);
  const Shape shape{kRows, kCols};

  QuantSpec per_tensor = QuantSpec::int8_weights_per_channel(0);
  per_tensor.granularity = Granularity::kPerTensor;
  const std::vector<Config> configs{
      {"int8 per-channel", QuantSpec::int8_weights_per_channel(0)},
      {"int4 per-group 32", QuantSpec::int4_per_group(32)},
      {"int8 per-tensor", per_tensor},
  };

  fmt::print(
      "tinyquant quickstart: a {} x {} weight matrix, N(0, 0.05) with {} outlier rows x10 "
      "(seed {})\n",
      kRows, kCols, outliers.size(), kSeed);
  fmt::print("All configs are symmetric, narrow range; round half away from zero (TFLite).\n\n");
  const std::string rule(96, '-');
  fmt::print("{:<20} {:>12} {:>12} {:>9} {:>10} {:>10} {:>8} {:>9}\n", "config", "MSE", "max |err|",
             "SQNR dB", "cosine", "bytes", "ratio", "params");
  fmt::print("{}\n", rule);
  fmt::print("{:<20} {:>12} {:>12} {:>9} {:>10} {:>10} {:>8} {:>9}\n", "float32", "-", "-", "-",
             "-", w.size() * sizeof(float), "1.00x", "-");
  std::vector<ErrorReport> errors;
  std::vector<QTensor> tensors;
  try {
    for (const Config& c : configs) {
      const QuantParams params = params_for(w.data(), shape, c.spec);  // calibrate
      tensors.push_back(quantize(w.data(), shape, params));
      const QTensor& q = tensors.back();
      errors.push_back(error_report(w, q));  // dequantizes q and compares with w
      const ErrorReport& e = errors.back();
      const SizeReport s = size_report(q);
      fmt::print("{:<20} {:>12.3e} {:>12.3e} {:>9.2f} {:>10.6f} {:>10} {:>7.2f}x {:>9}\n", c.name,
                 e.mse, e.max_abs_error, e.sqnr_db, e.cosine_similarity, s.quantized_bytes, s.ratio,
                 params.scales.size());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
  }
  fmt::print("{}\n", rule);
  fmt::print(
      "int8 per-tensor loses {:.1f} dB of SQNR against per-channel: its single scale is set by "
      "the\n"
      "outlier rows, which leaves the ordinary rows few integer levels.\n",
      errors[0].sqnr_db - errors[2].sqnr_db);
  const QTensor& q4 = tensors[1];
  const int64_t q4_bytes = quantized_bytes(q4);
  const int64_t q4_param_bytes = q4_bytes - static_cast<int64_t>(q4.data.size());
  fmt::print(
      "int4 per-group 32 packs two weights a byte; its {} scales and zero points are {:.0f}% of\n"
      "its {} bytes.\n",
      q4.params.scales.size(),
      100.0 * static_cast<double>(q4_param_bytes) / static_cast<double>(q4_bytes), q4_bytes);
  return 0;
}
