// Error and size metrics, checked against hand-computed values and brute-force loops.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/metrics.hpp"

using namespace tinyquant;
using namespace tq_test;

namespace {}  // namespace

TEST(Metrics, HandComputed) {
  const std::vector<float> r{1, 2, 3, 4}, a{1, 2, 3, 5};
  EXPECT_DOUBLE_EQ(mse(r, a), 0.25);
  EXPECT_DOUBLE_EQ(max_abs_error(r, a), 1.0);
  // signal 1 + 4 + 9 + 16 = 30, noise 1.
  EXPECT_DOUBLE_EQ(sqnr_db(r, a), 10.0 * std::log10(30.0));
  EXPECT_NEAR(sqnr_db(r, a), 14.7712, 1e-4);
  // dot 34, |r|^2 30, |a|^2 39.
  EXPECT_DOUBLE_EQ(cosine_similarity(r, a), 34.0 / std::sqrt(30.0 * 39.0));
  const ErrorReport e = error_report(r, a);
  EXPECT_DOUBLE_EQ(e.mse, 0.25);
  EXPECT_DOUBLE_EQ(e.max_abs_error, 1.0);
  EXPECT_DOUBLE_EQ(e.sqnr_db, 10.0 * std::log10(30.0));
  EXPECT_DOUBLE_EQ(e.cosine_similarity, 34.0 / std::sqrt(1170.0));
  // Pointer overloads agree.
  EXPECT_DOUBLE_EQ(mse(r.data(), 4, a.data(), 4), 0.25);
  // Negative differences count by magnitude.
  EXPECT_DOUBLE_EQ(max_abs_error(std::vector<float>{0, 0}, std::vector<float>{-3, 2}), 3.0);
  EXPECT_DOUBLE_EQ(cosine_similarity(std::vector<float>{1, 0}, std::vector<float>{-2, 0}), -1.0);
}

TEST(Metrics, EdgeCasesOfSqnrAndCosine) {
  const std::vector<float> r{1, -2, 3}, zero{0, 0, 0};
  EXPECT_EQ(sqnr_db(r, r), std::numeric_limits<double>::infinity());
  EXPECT_EQ(sqnr_db(zero, r), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(sqnr_db(zero, zero), std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(cosine_similarity(r, r), 1.0);
  EXPECT_EQ(cosine_similarity(zero, zero), 1.0);
  EXPECT_EQ(cosine_similarity(zero, r), 0.0);
  EXPECT_EQ(cosine_similarity(r, zero), 0.0);
  EXPECT_EQ(mse(r, r), 0.0);
  // error_report gives the same edge values as the single metrics.
  const ErrorReport same = error_report(r, r), zeros = error_report(zero, zero),
                    from_zero = error_report(zero, r), to_zero = error_report(r, zero);
  EXPECT_EQ(same.sqnr_db, std::numeric_limits<double>::infinity());
  EXPECT_EQ(zeros.sqnr_db, std::numeric_limits<double>::infinity());
  EXPECT_EQ(from_zero.sqnr_db, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(zeros.cosine_similarity, 1.0);
  EXPECT_EQ(from_zero.cosine_similarity, 0.0);
  EXPECT_EQ(to_zero.cosine_similarity, 0.0);
  EXPECT_EQ(zeros.mse, 0.0);
  EXPECT_EQ(zeros.max_abs_error, 0.0);
  // The signal of r is 14 and the noise 14 too: 0 dB.
  EXPECT_DOUBLE_EQ(to_zero.sqnr_db, 0.0);
}

TEST(Metrics, CosineStaysWithinMinusOneAndOne) {
  // |r| |a| rounds below dot(r, a) for parallel vectors (sqrt(3)^2 = 2.9999999999999996), which
  // must not push the similarity past 1 (acos of it would be NaN).
  const std::vector<float> r{1, 1, 1}, neg{-1, -1, -1};
  EXPECT_LE(cosine_similarity(r, r), 1.0);
  EXPECT_GE(cosine_similarity(r, neg), -1.0);
  EXPECT_LE(error_report(r, r).cosine_similarity, 1.0);
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int t = 0; t < 200; ++t) {
    std::vector<float> v(1 + rng() % 40), minus_v(v.size()), twice_v(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = d(rng);
      minus_v[i] = -v[i];
      twice_v[i] = 2 * v[i];
    }
    EXPECT_LE(cosine_similarity(v, v), 1.0) << "size " << v.size();
    EXPECT_LE(cosine_similarity(v, twice_v), 1.0) << "size " << v.size();
    EXPECT_GE(cosine_similarity(v, minus_v), -1.0) << "size " << v.size();
  }
}

TEST(Metrics, RandomAgainstBruteForce) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> r(1001), a(1001);
  for (size_t i = 0; i < r.size(); ++i) {
    r[i] = d(rng);
    a[i] = r[i] + 0.01f * d(rng);
  }
  long double se = 0, mx = 0, ss = 0, sa = 0, dot = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const long double x = r[i], y = a[i];
    se += (x - y) * (x - y);
    mx = std::max(mx, std::fabs(x - y));
    ss += x * x;
    sa += y * y;
    dot += x * y;
  }
  const ErrorReport e = error_report(r, a);
  EXPECT_NEAR(e.mse, static_cast<double>(se / 1001), 1e-12);
  EXPECT_EQ(e.max_abs_error, static_cast<double>(mx));
  EXPECT_NEAR(e.sqnr_db, static_cast<double>(10 * std::log10(ss / se)), 1e-9);
  EXPECT_NEAR(e.cosine_similarity, static_cast<double>(dot / std::sqrt(ss * sa)), 1e-12);
}

TEST(Metrics, ReportAgainstQTensor) {
  const std::vector<float> w{-1.0f, 0.5f, 0.26f, 1.0f};
  QuantParams p;
  p.scales = {0.5f};
  p.zero_points = {0};
  const QTensor q = quantize(w.data(), {4}, p);
  // Dequantized: -1, 0.5, 0.5, 1 -> only 0.26 is off, by 0.24.
  const ErrorReport e = error_report(w, q);
  EXPECT_NEAR(e.max_abs_error, 0.24, 1e-7);
  EXPECT_NEAR(e.mse, 0.24 * 0.24 / 4, 1e-8);
}

TEST(Metrics, BadInputs) {
  const std::vector<float> three{1, 2, 3}, four{1, 2, 3, 4}, empty;
  expect_error<ShapeError>([&] { mse(three, four); }, {"mse", "3 elements", "4"});
  expect_error<ShapeError>([&] { max_abs_error(four, three); }, {"max_abs_error", "4", "3"});
  expect_error<ShapeError>([&] { sqnr_db(three, four); }, {"sqnr_db", "3", "4"});
  expect_error<ShapeError>([&] { cosine_similarity(three, four); }, {"cosine_similarity"});
  expect_error<ShapeError>([&] { error_report(three, four); }, {"error_report", "3", "4"});
  expect_error<DataError>([&] { mse(empty, empty); }, {"mse", "empty"});
  expect_error<DataError>([&] { error_report(empty, empty); }, {"empty"});
  expect_error<InvalidArgument>([&] { mse(three.data(), -1, three.data(), -1); },
                                {"mse: element count -1 is negative"});
  std::vector<float> bad{1, 2, std::numeric_limits<float>::quiet_NaN()};
  expect_error<DataError>([&] { mse(bad, three); }, {"reference", "nan", "index 2"});
  expect_error<DataError>([&] { sqnr_db(three, bad); }, {"approximation", "nan", "index 2"});
  expect_error<InvalidArgument>([&] { mse(three.data(), 3, nullptr, 3); }, {"mse", "null"});
  expect_error<InvalidArgument>([&] { error_report(nullptr, 3, three.data(), 3); }, {"null"});
  bad[2] = std::numeric_limits<float>::infinity();
  expect_error<DataError>([&] { cosine_similarity(bad, three); }, {"inf", "index 2"});
}

TEST(SizeReport, CountsDataAndParameters) {
  // int8 per-channel [4, 10]: 40 data bytes + 4 x (float scale + int8 zero point).
  std::vector<float> w(40);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) - 17.5f;
  const QTensor q8 = quantize_weights(w.data(), {4, 10}, QuantSpec::int8_weights_per_channel(0));
  EXPECT_EQ(quantized_bytes(q8), 40 + 4 * 5);
  SizeReport s = size_report(q8);
  EXPECT_EQ(s.float_bytes, 160);
  EXPECT_EQ(s.quantized_bytes, 60);
  EXPECT_DOUBLE_EQ(s.ratio, 160.0 / 60.0);
  // int4 per-group 2 along the last axis of [2, 5]: 3 groups per row -> 6 pairs; 10 values
  // packed in 5 bytes.
  const QTensor q4 = quantize_weights(w.data(), {2, 5}, QuantSpec::int4_per_group(2));
  EXPECT_EQ(quantized_bytes(q4), 5 + 6 * 5);
  // int16 per-tensor: 2 bytes a value, zero point int16.
  QuantSpec s16;
  s16.bits = 16;
  const QTensor q16 = quantize_weights(w.data(), {3}, s16);
  EXPECT_EQ(quantized_bytes(q16), 6 + 4 + 2);
  s = size_report(q16);
  EXPECT_DOUBLE_EQ(s.ratio, 1.0);
  EXPECT_EQ(zero_point_bytes(3), 1);
  EXPECT_EQ(zero_point_bytes(16), 2);
  expect_error<InvalidArgument>([] { zero_point_bytes(10); }, {"bits = 10"});
  // Supported: 2..8 and 16 only.
  for (const int bits : {-1, 0, 1, 9, 15, 17, 32})
    expect_error<InvalidArgument>([&] { zero_point_bytes(bits); },
                                  {"bits = " + std::to_string(bits)});
  for (int bits = 2; bits <= 8; ++bits) EXPECT_EQ(zero_point_bytes(bits), 1) << bits;
  // A tensor whose data is not what its shape says has no size: not a wrapped numel * 4.
  QTensor huge = q8;
  huge.shape = {int64_t{1} << 62};
  huge.params = QuantParams{};
  expect_error<ShapeError>([&] { size_report(huge); }, {"quantized_bytes", "40 bytes"});
  QTensor short_data = q8;
  short_data.data.pop_back();
  expect_error<ShapeError>([&] { quantized_bytes(short_data); },
                           {"quantized_bytes", "39 bytes", "need 40"});
}
