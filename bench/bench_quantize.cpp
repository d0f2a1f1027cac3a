// Quantize / dequantize throughput on one 64 MiB float tensor ([4096, 4096]), single thread,
// with memcpy of the same 64 MiB in the same binary as the yardstick. Counters: items/s are
// elements, bytes/s are float bytes (4 per element) for every benchmark, so the two columns
// compare directly with memcpy's. Goal: int8 quantize >= 0.7x memcpy's element throughput.
// TINYQUANT_BENCH_SMOKE=1 shrinks the tensor to [64, 256] so the CTest smoke run is quick.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "tinyquant/layers.hpp"
#include "tinyquant/quantize.hpp"

namespace {

using tinyquant::QuantParams;
using tinyquant::QuantSpec;
using tinyquant::Shape;

bool smoke() {
  const char* s = std::getenv("TINYQUANT_BENCH_SMOKE");
  return s != nullptr && s[0] == '1';
}

const Shape& shape() {
  static const Shape s = smoke() ? Shape{64, 256} : Shape{4096, 4096};
  return s;
}

int64_t count() {
  return shape()[0] * shape()[1];
}

// Weights-like data: normal, with every 97th row scaled up as an outlier channel.
const std::vector<float>& tensor() {
  static const std::vector<float> data = [] {
    std::vector<float> v(static_cast<size_t>(count()));
    std::mt19937 rng(42);
    std::normal_distribution<float> n(0.0f, 0.05f);
    const size_t cols = static_cast<size_t>(shape()[1]);
    for (size_t i = 0; i < v.size(); ++i) v[i] = n(rng) * ((i / cols) % 97 == 0 ? 8.0f : 1.0f);
    return v;
  }();
  return data;
}

void set_counters(benchmark::State& state) {
  const int64_t n = static_cast<int64_t>(state.iterations()) * count();
  state.SetItemsProcessed(n);
  state.SetBytesProcessed(n * static_cast<int64_t>(sizeof(float)));
}

void BM_memcpy(benchmark::State& state) {
  const std::vector<float>& src = tensor();
  std::vector<float> dst(src.size(), 1.0f);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

void run_quantize(benchmark::State& state, const QuantSpec& spec, tinyquant::RoundMode mode) {
  const std::vector<float>& x = tensor();
  const QuantParams p = tinyquant::params_for(x.data(), shape(), spec);
  const int64_t bytes = tinyquant::storage_bytes(spec.bits, count());
  std::vector<uint8_t> out(static_cast<size_t>(bytes), 1);
  for (auto _ : state) {
    tinyquant::quantize(x.data(), shape(), p, out.data(), bytes, mode);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

void BM_quantize_s8_per_channel(benchmark::State& state) {
  run_quantize(state, QuantSpec::int8_weights_per_channel(0),
               tinyquant::RoundMode::kHalfAwayFromZero);
}

void BM_quantize_s8_per_channel_half_even(benchmark::State& state) {
  run_quantize(state, QuantSpec::int8_weights_per_channel(0), tinyquant::RoundMode::kHalfToEven);
}

void BM_quantize_s8_per_channel_last_axis(benchmark::State& state) {
  run_quantize(state, QuantSpec::int8_weights_per_channel(1),
               tinyquant::RoundMode::kHalfAwayFromZero);
}

void BM_quantize_s8_per_tensor(benchmark::State& state) {
  run_quantize(state, QuantSpec::int8_activations(), tinyquant::RoundMode::kHalfAwayFromZero);
}

// Quantize + pack to s4 nibbles, groups of 32 along the rows.
void BM_quantize_s4_per_group32(benchmark::State& state) {
  run_quantize(state, QuantSpec::int4_per_group(32), tinyquant::RoundMode::kHalfAwayFromZero);
}

void BM_dequantize_s8_per_channel(benchmark::State& state) {
  const std::vector<float>& x = tensor();
  const tinyquant::QTensor q =
      tinyquant::quantize_weights(x.data(), shape(), QuantSpec::int8_weights_per_channel(0));
  std::vector<float> out(x.size(), 1.0f);
  for (auto _ : state) {
    tinyquant::dequantize(q, out.data(), count());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

// An activation tensor (int8, one scale and zero point, TFLite's rounding with the quotient in
// double) in one call, and the same through the per-value function as the yardstick.
tinyquant::ActivationParams activation_params() {
  const std::vector<float>& x = tensor();
  float lo = x[0], hi = x[0];
  for (const float v : x) {
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  return tinyquant::ActivationParams::from_range(lo, hi);
}

void BM_quantize_activations(benchmark::State& state) {
  const std::vector<float>& x = tensor();
  const tinyquant::ActivationParams p = activation_params();
  std::vector<int8_t> out(x.size(), 1);
  for (auto _ : state) {
    tinyquant::quantize_activations(x.data(), count(), p, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

void BM_quantize_activation_per_value(benchmark::State& state) {
  const std::vector<float>& x = tensor();
  const tinyquant::ActivationParams p = activation_params();
  std::vector<int8_t> out(x.size(), 1);
  for (auto _ : state) {
    for (size_t i = 0; i < x.size(); ++i) out[i] = tinyquant::quantize_activation(x[i], p);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

BENCHMARK(BM_memcpy)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_s8_per_channel)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_s8_per_channel_half_even)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_s8_per_channel_last_axis)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_s8_per_tensor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_s4_per_group32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_dequantize_s8_per_channel)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_activations)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quantize_activation_per_value)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
