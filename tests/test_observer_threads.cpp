// Calibration split over threads: one observer per thread (observers are not thread-safe), each
// fed its own share of the batches, then merged in thread order. The merged result must equal
// one observer fed every batch on one thread, and min/max must equal plain loops over the data.
// Built and run under ThreadSanitizer by scripts/test.sh, so a shared-state race fails there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "tinyquant/observers.hpp"

namespace {

using namespace tinyquant;

constexpr int kThreads = 4;
constexpr int kBatchesPerThread = 5;
constexpr int64_t kChannels = 3, kWidth = 257;

// Deterministic, channel-dependent data with a few outliers, batch b.
std::vector<float> batch_data(int b) {
  std::vector<float> v(static_cast<size_t>(kChannels * kWidth));
  for (size_t i = 0; i < v.size(); ++i) {
    const double c = static_cast<double>(i / static_cast<size_t>(kWidth)) + 1.0;
    v[i] = static_cast<float>(c * std::sin(0.37 * static_cast<double>(i) + 1.3 * b));
  }
  v[static_cast<size_t>(b) % v.size()] = 4.0f + static_cast<float>(b);  // a new maximum
  return v;
}

using Factory = std::function<std::unique_ptr<ObserverBase>()>;

// Runs the threaded calibration and the single pass; returns {merged, single}.
std::pair<std::unique_ptr<ObserverBase>, std::unique_ptr<ObserverBase>> calibrate(
    const Factory& make, const std::vector<std::vector<float>>& batches) {
  std::vector<std::unique_ptr<ObserverBase>> per_thread;
  for (int t = 0; t < kThreads; ++t) per_thread.push_back(make());
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int b = t * kBatchesPerThread; b < (t + 1) * kBatchesPerThread; ++b)
        per_thread[static_cast<size_t>(t)]->observe(batches[static_cast<size_t>(b)].data(),
                                                    Shape{kChannels, kWidth});
    });
  }
  for (std::thread& w : workers) w.join();
  for (int t = 1; t < kThreads; ++t) per_thread[0]->merge(*per_thread[static_cast<size_t>(t)]);

  std::unique_ptr<ObserverBase> single = make();
  for (const std::vector<float>& b : batches) single->observe(b.data(), Shape{kChannels, kWidth});
  return {std::move(per_thread[0]), std::move(single)};
}

void expect_same_params(const ObserverBase& merged, const ObserverBase& single) {
  const QuantParams a = merged.params();
  const QuantParams b = single.params();
  EXPECT_EQ(a.scales, b.scales) << merged.name();
  EXPECT_EQ(a.zero_points, b.zero_points) << merged.name();
  EXPECT_EQ(merged.values_observed(), single.values_observed()) << merged.name();
  EXPECT_EQ(merged.batches_observed(), single.batches_observed()) << merged.name();
}

TEST(ObserverThreads, MergeOfPerThreadObserversEqualsOnePass) {
  std::vector<std::vector<float>> batches;
  for (int b = 0; b < kThreads * kBatchesPerThread; ++b) batches.push_back(batch_data(b));

  const QuantSpec per_channel = QuantSpec::int8_weights_per_channel(0);
  const std::vector<Factory> factories = {
      [&] { return std::make_unique<MinMaxObserver>(per_channel); },
      [&] { return std::make_unique<PercentileObserver>(per_channel, 99.9, 512); },
      [] { return std::make_unique<PercentileObserver>(QuantSpec::int8_activations(), 99.0); },
      [] { return std::make_unique<EntropyObserver>(); },
      [] { return std::make_unique<MseObserver>(QuantSpec::int8_activations(), 512); },
  };
  for (const Factory& make : factories) {
    auto [merged, single] = calibrate(make, batches);
    expect_same_params(*merged, *single);
  }

  // Min/max against plain loops over every batch.
  auto [merged, single] = calibrate(factories[0], batches);
  const auto& mm = static_cast<const MinMaxObserver&>(*merged);
  for (int64_t c = 0; c < kChannels; ++c) {
    float lo = batches[0][static_cast<size_t>(c * kWidth)], hi = lo;
    for (const std::vector<float>& b : batches) {
      for (int64_t i = 0; i < kWidth; ++i) {
        const float x = b[static_cast<size_t>(c * kWidth + i)];
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
      }
    }
    EXPECT_EQ(mm.mins()[static_cast<size_t>(c)], lo) << "channel " << c;
    EXPECT_EQ(mm.maxs()[static_cast<size_t>(c)], hi) << "channel " << c;
  }
}

}  // namespace
