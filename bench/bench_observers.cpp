// Calibration observers on one large float tensor, single thread, against memcpy of the same
// bytes as the yardstick (bytes/s counters). Goal: the histogram observer at >= 0.25x memcpy.
// TINYQUANT_BENCH_SMOKE=1 shrinks the tensor so the CTest smoke run is quick.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "tinyquant/observers.hpp"

namespace {

using tinyquant::Shape;

int64_t tensor_size() {
  const char* smoke = std::getenv("TINYQUANT_BENCH_SMOKE");
  return (smoke != nullptr && smoke[0] == '1') ? int64_t{1} << 16 : int64_t{1} << 24;  // 64 MiB
}

const std::vector<float>& tensor() {
  static const std::vector<float> data = [] {
    std::vector<float> v(static_cast<size_t>(tensor_size()));
    std::mt19937 rng(42);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (float& x : v) x = n(rng);
    return v;
  }();
  return data;
}

void set_bytes(benchmark::State& state, int64_t n) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * n *
                          static_cast<int64_t>(sizeof(float)));
}

void BM_memcpy(benchmark::State& state) {
  const std::vector<float>& src = tensor();
  std::vector<float> dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, static_cast<int64_t>(src.size()));
}

template <class Obs>
void run_observer(benchmark::State& state, Obs& obs) {
  const std::vector<float>& src = tensor();
  const Shape shape{static_cast<int64_t>(src.size())};
  for (auto _ : state) {
    obs.observe(src.data(), shape);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(obs.values_observed());
  set_bytes(state, static_cast<int64_t>(src.size()));
}

void BM_minmax_observer(benchmark::State& state) {
  tinyquant::MinMaxObserver obs;
  run_observer(state, obs);
}

void BM_percentile_observer_affine(benchmark::State& state) {
  tinyquant::PercentileObserver obs(tinyquant::QuantSpec{}, 99.99, 2048);
  run_observer(state, obs);
}

void BM_percentile_observer_symmetric(benchmark::State& state) {
  tinyquant::QuantSpec spec;
  spec.scheme = tinyquant::Scheme::kSymmetric;
  tinyquant::PercentileObserver obs(spec, 99.99, 2048);
  run_observer(state, obs);
}

// Per-channel along the last axis of [N, 64]: short runs, the slow layout.
void BM_minmax_observer_per_channel_last_axis(benchmark::State& state) {
  tinyquant::MinMaxObserver obs(tinyquant::QuantSpec::int8_weights_per_channel(1));
  const std::vector<float>& src = tensor();
  const Shape shape{static_cast<int64_t>(src.size()) / 64, 64};
  for (auto _ : state) obs.observe(src.data(), shape);
  set_bytes(state, static_cast<int64_t>(src.size()));
}

// params() cost on a filled 2048-bin histogram (search over cut bins).
template <class Obs>
void BM_params(benchmark::State& state) {
  tinyquant::QuantSpec spec;
  spec.scheme = tinyquant::Scheme::kSymmetric;
  Obs obs(spec);
  const std::vector<float>& src = tensor();
  obs.observe(src.data(), Shape{static_cast<int64_t>(std::min<size_t>(src.size(), 1 << 16))});
  for (auto _ : state) benchmark::DoNotOptimize(obs.params());
}

BENCHMARK(BM_memcpy)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_minmax_observer)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_percentile_observer_affine)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_percentile_observer_symmetric)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_minmax_observer_per_channel_last_axis)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_params, tinyquant::EntropyObserver)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_params, tinyquant::MseObserver)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
