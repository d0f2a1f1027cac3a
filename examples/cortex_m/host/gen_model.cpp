// Host side of the Cortex-M example: quantizes a small MLP with the toolkit and writes it, plus
// a few test inputs and the host's outputs for them, as C arrays the firmware compiles in.
//   gen_model <output header>
// The float weights are deterministic (a fixed-seed generator), so every build produces the same
// model. Layers: 196 -> 32 (ReLU) -> 10, int8 weights symmetric per output channel, int8
// activations; the input offset of each layer is folded into its bias (QuantizedLinear does it),
// so the firmware runs plain rt::fully_connected_s8 calls.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tinyquant/layers.hpp"
#include "tinyquant/quant_params.hpp"

namespace tq = tinyquant;

namespace {

constexpr int kIn = 196, kHidden = 32, kOut = 10, kSamples = 4;

std::vector<float> normal(std::mt19937& rng, size_t n, float stddev) {
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

template <typename T>
void write_array(FILE* f, const char* type, const char* name, const T* data, size_t n) {
  std::fprintf(f, "static const %s %s[%zu] = {", type, name, n);
  for (size_t i = 0; i < n; ++i) {
    std::fprintf(f, "%s%ld,", i % 16 == 0 ? "\n  " : " ", static_cast<long>(data[i]));
  }
  std::fprintf(f, "\n};\n");
}

void write_layer(FILE* f, const char* name, const tq::QuantizedLinear& l) {
  const std::string n = name;
  const auto& w = l.weights().data;
  write_array(f, "int8_t", (n + "_weights").c_str(), reinterpret_cast<const int8_t*>(w.data()),
              w.size());
  write_array(f, "int32_t", (n + "_bias").c_str(), l.kernel_bias().data(), l.kernel_bias().size());
  write_array(f, "int32_t", (n + "_multiplier").c_str(), l.multipliers().data(),
              l.multipliers().size());
  write_array(f, "int32_t", (n + "_shift").c_str(), l.shifts().data(), l.shifts().size());
  const tinyquant::rt::FcParams& p = l.kernel_params();
  std::fprintf(f,
               "static const struct tq_fc_layer %s = {%ld, %ld, %s_weights, %s_bias, "
               "%s_multiplier, %s_shift, %ld, %ld, %ld, %ld, %ld};\n",
               name, static_cast<long>(l.in_features()), static_cast<long>(l.out_features()), name,
               name, name, name, static_cast<long>(p.input_offset),
               static_cast<long>(p.filter_offset), static_cast<long>(p.output_offset),
               static_cast<long>(p.act_min), static_cast<long>(p.act_max));
}

int argmax(const int8_t* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output header>\n", argv[0]);
    return 2;
  }
  std::mt19937 rng(20261122);
  const std::vector<float> w1 = normal(rng, size_t{kHidden} * kIn, 1.0f / std::sqrt(kIn));
  const std::vector<float> b1 = normal(rng, kHidden, 0.1f);
  const std::vector<float> w2 = normal(rng, size_t{kOut} * kHidden, 1.0f / std::sqrt(kHidden));
  const std::vector<float> b2 = normal(rng, kOut, 0.1f);

  // Inputs in [0, 1) like pixel intensities; activation ranges chosen for this model.
  const auto in_q = tq::ActivationParams::from_range(0.0f, 1.0f);
  const auto hidden_q = tq::ActivationParams::from_range(0.0f, 2.0f);
  const auto out_q = tq::ActivationParams::from_range(-3.0f, 3.0f);
  const tq::QuantSpec spec = tq::QuantSpec::int8_weights_per_channel();
  const tq::QuantizedLinear fc1(w1.data(), kHidden, kIn, b1.data(), spec, in_q, hidden_q,
                                tq::Activation::kRelu);
  const tq::QuantizedLinear fc2(w2.data(), kOut, kHidden, b2.data(), spec, hidden_q, out_q);

  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::vector<int8_t> inputs(size_t{kSamples} * kIn);
  for (int8_t& x : inputs) x = tq::quantize_activation(pixel(rng), in_q);

  // The host's answer, on the reference path; the smlad path must agree before it is written.
  std::vector<int8_t> hidden(size_t{kSamples} * kHidden), logits(size_t{kSamples} * kOut);
  fc1.forward(inputs.data(), kSamples, hidden.data(), tinyquant::rt::Path::kReference);
  fc2.forward(hidden.data(), kSamples, logits.data(), tinyquant::rt::Path::kReference);
  std::vector<int8_t> check_hidden(hidden.size()), check_logits(logits.size());
  fc1.forward(inputs.data(), kSamples, check_hidden.data(), tinyquant::rt::Path::kSmlad);
  fc2.forward(check_hidden.data(), kSamples, check_logits.data(), tinyquant::rt::Path::kSmlad);
  if (check_logits != logits || check_hidden != hidden) {
    std::fprintf(stderr, "gen_model: smlad path disagrees with the reference path\n");
    return 1;
  }
  std::vector<int32_t> predictions(kSamples);
  for (int s = 0; s < kSamples; ++s)
    predictions[size_t(s)] = argmax(&logits[size_t(s) * kOut], kOut);

  FILE* f = std::fopen(argv[1], "w");
  if (f == nullptr) {
    std::perror(argv[1]);
    return 1;
  }
  std::fprintf(f,
               "/* Generated by examples/cortex_m/host/gen_model.cpp: do not edit. */\n"
               "#pragma once\n#include <stdint.h>\n\n"
               "struct tq_fc_layer {\n  int32_t in, out;\n  const int8_t* weights;\n"
               "  const int32_t *bias, *multiplier, *shift;\n"
               "  int32_t input_offset, filter_offset, output_offset, act_min, act_max;\n};\n\n");
  write_layer(f, "tq_fc1", fc1);
  write_layer(f, "tq_fc2", fc2);
  std::fprintf(f,
               "\n#define TQ_NUM_SAMPLES %d\n#define TQ_IN %d\n#define TQ_HIDDEN %d\n"
               "#define TQ_OUT %d\n",
               kSamples, kIn, kHidden, kOut);
  write_array(f, "int8_t", "tq_inputs", inputs.data(), inputs.size());
  write_array(f, "int8_t", "tq_expected_logits", logits.data(), logits.size());
  write_array(f, "int32_t", "tq_expected_class", predictions.data(), predictions.size());
  std::fclose(f);
  std::printf("gen_model: wrote %s (%d samples, classes", argv[1], kSamples);
  for (int32_t p : predictions) std::printf(" %ld", static_cast<long>(p));
  std::printf(")\n");
  return 0;
}
