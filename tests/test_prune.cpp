// Pruning masks against brute force (full sorts with the documented tie rule) and hand-worked
// examples; schedules against the formula; every bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/prune.hpp"

using namespace tinyquant;
using namespace tq_test;

namespace {

// Brute force: order indices by (score ascending, index descending); prune the first k.
Mask brute_prune(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
    if (score[static_cast<size_t>(a)] != score[static_cast<size_t>(b)])
      return score[static_cast<size_t>(a)] < score[static_cast<size_t>(b)];
    return a > b;
  });
  Mask m(score.size(), 1);
  for (int64_t i = 0; i < k; ++i) m[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 0;
  return m;
}

// Values from a small set so ties are everywhere.
std::vector<float> tie_heavy(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> v(-4, 4);
  std::vector<float> w(n);
  for (float& x : w) x = 0.25f * static_cast<float>(v(rng));
  return w;
}

}  // namespace

TEST(MagnitudeMask, MatchesBruteForceWithTiesAndExactCount) {
  std::mt19937 rng(1);
  for (size_t n : {1u, 2u, 7u, 100u, 1001u}) {
    const std::vector<float> w = tie_heavy(rng, n);
    for (double s : {0.0, 0.1, 0.25, 0.5, 0.9, 0.99}) {
      const Mask m = magnitude_mask({w.data(), {static_cast<int64_t>(n)}}, s);
      std::vector<double> score(n);
      for (size_t i = 0; i < n; ++i) score[i] = std::fabs(w[i]);
      const int64_t k = std::llround(s * static_cast<double>(n));
      EXPECT_EQ(m, brute_prune(score, k)) << "n " << n << " s " << s;
      EXPECT_EQ(std::count(m.begin(), m.end(), 0), k);
    }
  }
  // Hand example: |w| = 1, 2, 2, 2, 3; prune 2 -> the 1 and the last of the tied 2s.
  const std::vector<float> w = {-1, 2, -2, 2, 3};
  EXPECT_EQ(magnitude_mask({w.data(), {5}}, 0.4), (Mask{0, 1, 1, 0, 1}));
}

TEST(MagnitudeMask, GlobalUsesOneThresholdAcrossTensors) {
  std::mt19937 rng(2);
  const std::vector<float> a = tie_heavy(rng, 30), b = tie_heavy(rng, 57);
  const std::vector<Mask> m = global_magnitude_masks({{a.data(), {5, 6}}, {b.data(), {57}}}, 0.6);
  std::vector<double> score;
  for (float x : a) score.push_back(std::fabs(x));
  for (float x : b) score.push_back(std::fabs(x));
  const Mask all = brute_prune(score, std::llround(0.6 * 87));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], Mask(all.begin(), all.begin() + 30));
  EXPECT_EQ(m[1], Mask(all.begin() + 30, all.end()));
  // Hand example: the small tensor loses everything before the large one loses anything.
  const std::vector<float> small = {0.1f, 0.2f}, large = {5, 6, 7, 8};
  const auto g = global_magnitude_masks({{small.data(), {2}}, {large.data(), {4}}}, 0.5);
  EXPECT_EQ(g[0], (Mask{0, 0}));
  EXPECT_EQ(g[1], (Mask{0, 1, 1, 1}));
}

TEST(MagnitudeMask, RejectsBadInput) {
  const std::vector<float> w = {1, 2, 3};
  for (double s : {-0.1, 1.0, 1.5, std::nan("")}) {
    const std::string msg = thrown_message<InvalidArgument>([&] {
      magnitude_mask({w.data(), {3}}, s);
    });
    EXPECT_TRUE(contains(msg, "sparsity =") && contains(msg, "outside [0, 1)")) << msg;
  }
  std::string msg = thrown_message<InvalidArgument>([&] { global_magnitude_masks({}, 0.5); });
  EXPECT_TRUE(contains(msg, "tensor list is empty")) << msg;
  const std::vector<float> bad = {1, std::nanf(""), 3};
  EXPECT_THROW(magnitude_mask({bad.data(), {3}}, 0.5), DataError);
  std::vector<float> x = {1, 2, 3};
  msg = thrown_message<ShapeError>([&] { apply_mask(x.data(), 3, Mask{1, 0}); });
  EXPECT_TRUE(contains(msg, "mask has 2 entries but the tensor has 3")) << msg;
  apply_mask(x.data(), 3, Mask{1, 0, 1});
  EXPECT_EQ(x, (std::vector<float>{1, 0, 3}));
  EXPECT_DOUBLE_EQ(mask_sparsity(Mask{1, 0, 1, 0}), 0.5);
}

TEST(NmMask, KeepsNLargestPerGroupIncludingTail) {
  std::mt19937 rng(3);
  // Groups longer than 16 too: std::sort stops being stable there, the tie rule must not.
  for (auto [n, m] : {std::pair{2, 4}, std::pair{1, 4}, std::pair{2, 8}, std::pair{4, 8},
                      std::pair{8, 32}, std::pair{5, 64}}) {
    for (int64_t in : {8, 13, 3, 77}) {
      const std::vector<float> w = tie_heavy(rng, static_cast<size_t>(5 * in));
      const Mask got = nm_mask({w.data(), {5, in}}, n, m);
      Mask expect(w.size(), 0);
      for (int64_t r = 0; r < 5; ++r) {
        for (int64_t g = 0; g < in; g += m) {
          // brute force inside the group: prune the (size - min(n, size)) smallest
          const int64_t size = std::min<int64_t>(m, in - g);
          std::vector<double> score;
          for (int64_t j = 0; j < size; ++j)
            score.push_back(std::fabs(w[static_cast<size_t>(r * in + g + j)]));
          const Mask gm = brute_prune(score, size - std::min<int64_t>(n, size));
          for (int64_t j = 0; j < size; ++j)
            expect[static_cast<size_t>(r * in + g + j)] = gm[static_cast<size_t>(j)];
        }
      }
      EXPECT_EQ(got, expect) << n << ":" << m << " in " << in;
    }
  }
  // Hand example, 2:4 over 6 inputs: group {3, -1, 4, 1} keeps 3 and 4; tail {-5, 9} keeps both.
  const std::vector<float> w = {3, -1, 4, 1, -5, 9};
  EXPECT_EQ(nm_mask({w.data(), {1, 6}}, 2, 4), (Mask{1, 0, 1, 0, 1, 1}));
  EXPECT_EQ(nm_mask({w.data(), {1, 6}}, 1, 4), (Mask{0, 0, 1, 0, 0, 1}));
}

TEST(NmMask, RejectsBadNm) {
  const std::vector<float> w(8, 1.0f);
  for (const auto& nm :
       {std::pair{5, 4}, std::pair{0, 4}, std::pair{-1, 4}, std::pair{2, 0}, std::pair{1, 300}}) {
    const int n = nm.first, m = nm.second;  // plain locals: lambdas may not capture bindings
    const std::string msg = thrown_message<InvalidArgument>([&] {
      nm_mask({w.data(), {2, 4}}, n, m);
    });
    EXPECT_TRUE(contains(msg, "N:M = " + std::to_string(n) + ":" + std::to_string(m))) << msg;
  }
}

TEST(BlockMask, ScoresBlocksByMeanOrMax) {
  // 2 x 4 matrix, 1x2 blocks: A = {1, 1} (mean 1, max 1), B = {0, 3} (mean 1.5, max 3),
  //                           C = {2, 2} (mean 2, max 2),  D = {0.5, 0} (mean .25, max .5).
  const std::vector<float> w = {1, -1, 0, 3, 2, 2, 0.5f, 0};
  EXPECT_EQ(block_mask({w.data(), {2, 4}}, 1, 2, 0.5, BlockScore::kMean),
            (Mask{0, 0, 1, 1, 1, 1, 0, 0}));  // prune D and A
  EXPECT_EQ(block_mask({w.data(), {2, 4}}, 1, 2, 0.5, BlockScore::kMax),
            (Mask{0, 0, 1, 1, 1, 1, 0, 0}));  // D (.5) and A (1)
  EXPECT_EQ(block_mask({w.data(), {2, 4}}, 1, 2, 0.75, BlockScore::kMax),
            (Mask{0, 0, 1, 1, 0, 0, 0, 0}));  // then C (2) before B (3)
  EXPECT_EQ(block_mask({w.data(), {2, 4}}, 1, 2, 0.75, BlockScore::kMean),
            (Mask{0, 0, 0, 0, 1, 1, 0, 0}));  // then B (1.5) before C (2)
  // Random 4x4 blocks against brute force.
  std::mt19937 rng(4);
  const std::vector<float> r = tie_heavy(rng, 8 * 12);
  const Mask got = block_mask({r.data(), {8, 12}}, 4, 4, 0.5, BlockScore::kMean);
  std::vector<double> score;
  for (int br = 0; br < 2; ++br) {
    for (int bc = 0; bc < 3; ++bc) {
      double s = 0;
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j)
          s += std::fabs(r[static_cast<size_t>((br * 4 + i) * 12 + bc * 4 + j)]);
      }
      score.push_back(static_cast<double>(static_cast<float>(s / 16)));
    }
  }
  const Mask blocks = brute_prune(score, 3);
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 12; ++j)
      EXPECT_EQ(got[static_cast<size_t>(i * 12 + j)],
                blocks[static_cast<size_t>((i / 4) * 3 + j / 4)]);
  }
}

TEST(BlockMask, RanksMeansThatOnlyDifferBelowFloatPrecision) {
  // Means 1 and 1 + 2^-24: distinct, but equal once rounded to float. The lower one (block 0)
  // is pruned, not the later index of a false tie.
  const std::vector<float> w = {1.0f, 1.0f, 1.0f, 1.0f + 0x1p-23f};
  EXPECT_EQ(block_mask({w.data(), {1, 4}}, 1, 2, 0.5, BlockScore::kMean), (Mask{0, 0, 1, 1}));
}

TEST(BlockMask, RejectsBlocksThatDoNotTile) {
  const std::vector<float> w(6 * 10, 1.0f);
  std::string msg = thrown_message<InvalidArgument>([&] {
    block_mask({w.data(), {6, 10}}, 4, 4, 0.5);
  });
  EXPECT_TRUE(contains(msg, "block 4x4 does not tile the 6x10 matrix")) << msg;
  msg = thrown_message<InvalidArgument>([&] { block_mask({w.data(), {6, 10}}, 1, 0, 0.5); });
  EXPECT_TRUE(contains(msg, "block 1x0")) << msg;
}

TEST(StructuredMask, L1L2AndGeometricMedian) {
  // Four output neurons of 2 inputs each.
  const std::vector<float> w = {3, 0, 1, 1, -2, -2, 0, 0.5f};
  // L1: 3, 2, 4, 0.5 -> prune neuron 3 then 1. L2: 3, 1.41, 2.83, 0.5 -> 3 then 1.
  EXPECT_EQ(structured_mask({w.data(), {4, 2}}, 0, 0.5, Criterion::kL1), (Mask{1, 0, 1, 0}));
  EXPECT_EQ(structured_mask({w.data(), {4, 2}}, 0, 0.5, Criterion::kL2), (Mask{1, 0, 1, 0}));
  // L1 and L2 disagree: {2, 2} has L1 4 > {3.5, 0} 3.5 but L2 2.83 < 3.5.
  const std::vector<float> v = {2, 2, 3.5f, 0};
  EXPECT_EQ(structured_mask({v.data(), {2, 2}}, 0, 0.5, Criterion::kL1), (Mask{1, 0}));
  EXPECT_EQ(structured_mask({v.data(), {2, 2}}, 0, 0.5, Criterion::kL2), (Mask{0, 1}));
  // FPGM on 1-value filters 0, 1, 2, 10: distance sums 13, 11, 11, 27; 1 and 2 tie, the later
  // index (2) goes first. L1 would drop filter 0 instead.
  const std::vector<float> f = {0, 1, 2, 10};
  EXPECT_EQ(structured_mask({f.data(), {4, 1}}, 0, 0.25, Criterion::kGeometricMedian),
            (Mask{1, 1, 0, 1}));
  EXPECT_EQ(structured_mask({f.data(), {4, 1}}, 0, 0.5, Criterion::kGeometricMedian),
            (Mask{1, 0, 0, 1}));
  EXPECT_EQ(structured_mask({f.data(), {4, 1}}, 0, 0.25, Criterion::kL1), (Mask{0, 1, 1, 1}));
  // FPGM sums distances, not squared distances: on 0, 1, 2, 3, 10 the sums are 16, 13, 12, 13,
  // 34 (prune filter 2, the median), the squared sums 114, 87, 70, 63, 294 (would prune 3).
  const std::vector<float> g = {0, 1, 2, 3, 10};
  EXPECT_EQ(structured_mask({g.data(), {5, 1}}, 0, 0.2, Criterion::kGeometricMedian),
            (Mask{1, 1, 0, 1, 1}));
  // Input channels (last axis) of a conv OHWI [2][1][1][3]: channel L1 = |1|+|4|, |0|+|-1|, 3+3.
  const std::vector<float> c = {1, 0, 3, 4, -1, 3};
  const Mask ch = structured_mask({c.data(), {2, 1, 1, 3}}, -1, 0.34, Criterion::kL1);
  EXPECT_EQ(ch, (Mask{1, 0, 1}));
  EXPECT_EQ(expand_slice_mask(ch, {2, 1, 1, 3}, -1), (Mask{1, 0, 1, 1, 0, 1}));
  const std::string msg = thrown_message<ShapeError>([&] {
    expand_slice_mask(Mask{1, 0}, {2, 1, 1, 3}, -1);
  });
  EXPECT_TRUE(contains(msg, "mask has 2 entries but axis -1")) << msg;
  EXPECT_THROW(structured_mask({c.data(), {2, 1, 1, 3}}, 4, 0.5, Criterion::kL1), InvalidArgument);
}

TEST(StructuredMask, RanksNormsThatOnlyDifferBelowFloatPrecision) {
  // Neuron 1 has the larger norm (1 + 1e-8 vs 1) although both round to 1.0f; neuron 0 is the
  // one to prune under every criterion that ranks by norm.
  const std::vector<float> w = {1.0f, 0.0f, 1.0f, 1e-8f};
  EXPECT_EQ(structured_mask({w.data(), {2, 2}}, 0, 0.5, Criterion::kL1), (Mask{0, 1}));
  const std::vector<float> v = {1.0f, 0.0f, 1.0f, 1e-4f};  // L2: 1 vs 1 + 5e-9
  EXPECT_EQ(structured_mask({v.data(), {2, 2}}, 0, 0.5, Criterion::kL2), (Mask{0, 1}));
}

TEST(Shrink, RemovesRowsBiasAndNextInputs) {
  // Layer [3][2], next layer [2][3].
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {10, 20, 30};
  const std::vector<float> next = {1, 2, 3, 4, 5, 6};
  const ShrinkResult r =
      shrink({w.data(), {3, 2}}, bias.data(), {next.data(), {2, 3}}, Mask{1, 0, 1});
  EXPECT_EQ(r.kept, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(r.shape, (Shape{2, 2}));
  EXPECT_EQ(r.weights, (std::vector<float>{1, 2, 5, 6}));
  EXPECT_EQ(r.bias, (std::vector<float>{10, 30}));
  EXPECT_EQ(r.next_shape, (Shape{2, 2}));
  EXPECT_EQ(r.next_weights, (std::vector<float>{1, 3, 4, 6}));
  // A shrunk pair computes what the masked pair computed (relu-free, so exact on these values).
  const std::vector<float> x = {1, -1};
  auto forward = [&](const std::vector<float>& w1, const std::vector<float>& b1, int64_t hidden,
                     const std::vector<float>& w2, const Mask& keep) {
    std::vector<float> h(static_cast<size_t>(hidden));
    for (int64_t o = 0; o < hidden; ++o)
      h[static_cast<size_t>(o)] = w1[static_cast<size_t>(o * 2)] * x[0] +
                                  w1[static_cast<size_t>(o * 2 + 1)] * x[1] +
                                  b1[static_cast<size_t>(o)];
    std::vector<float> y(2, 0.0f);
    for (int64_t o = 0; o < 2; ++o) {
      for (int64_t i = 0; i < hidden; ++i)
        if (keep.empty() || keep[static_cast<size_t>(i)])
          y[static_cast<size_t>(o)] +=
              w2[static_cast<size_t>(o * hidden + i)] * h[static_cast<size_t>(i)];
    }
    return y;
  };
  EXPECT_EQ(forward(w, bias, 3, next, Mask{1, 0, 1}),
            forward(r.weights, r.bias, 2, r.next_weights, {}));
}

TEST(Shrink, RejectsBadShapes) {
  const std::vector<float> w(6, 1.0f), next(6, 1.0f);
  std::string msg = thrown_message<ShapeError>([&] {
    shrink({w.data(), {3, 2}}, nullptr, {}, Mask{1, 0});
  });
  EXPECT_TRUE(contains(msg, "mask has 2 entries but the layer of shape [3, 2] has 3 outputs"))
      << msg;
  msg = thrown_message<ShapeError>([&] {
    shrink({w.data(), {3, 2}}, nullptr, {next.data(), {3, 2}}, Mask{1, 0, 1});
  });
  EXPECT_TRUE(contains(msg, "next layer of shape [3, 2] must have 3 inputs")) << msg;
  msg = thrown_message<InvalidArgument>([&] {
    shrink({w.data(), {3, 2}}, nullptr, {}, Mask{0, 0, 0});
  });
  EXPECT_TRUE(contains(msg, "keeps none of the 3 outputs")) << msg;
}

namespace {

// From 0.1 to 0.9 over [begin, end], power 3.
PolynomialDecay decay_01_to_09(int64_t begin, int64_t end, int64_t frequency = 100) {
  PolynomialDecay p;
  p.initial = 0.1;
  p.final = 0.9;
  p.begin_step = begin;
  p.end_step = end;
  p.power = 3;
  p.frequency = frequency;
  return p;
}

}  // namespace

TEST(Schedules, PolynomialDecayFollowsTheFormula) {
  const PolynomialDecay p = decay_01_to_09(100, 300, 50);
  EXPECT_DOUBLE_EQ(p.sparsity(0), 0.1);  // clamped to t0
  EXPECT_DOUBLE_EQ(p.sparsity(100), 0.1);
  EXPECT_DOUBLE_EQ(p.sparsity(200), 0.9 + (0.1 - 0.9) * 0.125);     // (1 - 1/2)^3
  EXPECT_DOUBLE_EQ(p.sparsity(250), 0.9 + (0.1 - 0.9) * 0.015625);  // (1/4)^3
  EXPECT_DOUBLE_EQ(p.sparsity(300), 0.9);
  EXPECT_DOUBLE_EQ(p.sparsity(5000), 0.9);  // clamped to t_end
  std::vector<int64_t> updates;
  for (int64_t t = 0; t <= 400; ++t) {
    if (p.should_update(t)) updates.push_back(t);
  }
  EXPECT_EQ(updates, (std::vector<int64_t>{100, 150, 200, 250, 300}));
  ConstantSparsity c;
  c.target = 0.7;
  c.begin_step = 10;
  c.end_step = 25;
  c.frequency = 5;
  EXPECT_DOUBLE_EQ(c.sparsity(0), 0.7);
  EXPECT_TRUE(c.should_update(10));
  EXPECT_TRUE(c.should_update(25));
  EXPECT_FALSE(c.should_update(12));
  EXPECT_FALSE(c.should_update(30));
  EXPECT_FALSE(c.should_update(5));
}

TEST(Schedules, PolynomialDecayIsExactlyInitialAndFinalAtTheEnds) {
  const PolynomialDecay p = decay_01_to_09(0, 100);
  EXPECT_EQ(p.sparsity(0), 0.1);
  EXPECT_EQ(p.sparsity(-7), 0.1);
  EXPECT_EQ(p.sparsity(100), 0.9);
  // The first update prunes what magnitude_mask(w, initial) prunes: round(0.1 * 5) = 1 weight.
  const std::vector<float> w = {1, 2, 3, 4, 5};
  EXPECT_EQ(magnitude_mask({w.data(), {5}}, p.sparsity(0)), (Mask{0, 1, 1, 1, 1}));
}

TEST(Schedules, RejectBadParameters) {
  PolynomialDecay p;
  p.end_step = 0;
  std::string msg = thrown_message<InvalidArgument>([&] { p.sparsity(0); });
  EXPECT_TRUE(contains(msg, "end_step = 0 must be > begin_step = 0")) << msg;
  p.end_step = 100;
  p.frequency = 0;
  msg = thrown_message<InvalidArgument>([&] { p.should_update(0); });
  EXPECT_TRUE(contains(msg, "frequency = 0 must be >= 1")) << msg;
  p.frequency = 10;
  p.final = 1.0;
  msg = thrown_message<InvalidArgument>([&] { p.validate(); });
  EXPECT_TRUE(contains(msg, "final: sparsity = 1")) << msg;
  p.final = 0.5;
  p.power = 0;
  EXPECT_THROW(p.validate(), InvalidArgument);
  ConstantSparsity c;
  c.begin_step = 50;
  c.end_step = 20;
  msg = thrown_message<InvalidArgument>([&] { c.validate(); });
  EXPECT_TRUE(contains(msg, "end_step = 20 must be > begin_step = 50")) << msg;
  c.end_step = 60;
  c.frequency = -3;
  msg = thrown_message<InvalidArgument>([&] { c.should_update(55); });
  EXPECT_TRUE(contains(msg, "frequency = -3")) << msg;
  c.frequency = 1;
  c.begin_step = -1;
  msg = thrown_message<InvalidArgument>([&] { c.validate(); });
  EXPECT_TRUE(contains(msg, "ConstantSparsity: begin_step = -1 must be >= 0")) << msg;
}

// Null data for a non-empty shape is refused by every mask function, naming it and the shape;
// an empty shape needs no data.
TEST(MagnitudeMask, RejectsNullDataForNonEmptyShapes) {
  const WeightView null23{nullptr, {2, 3}};
  expect_error<InvalidArgument>([&] { magnitude_mask(null23, 0.5); },
                                {"magnitude_mask: weights of shape [2, 3] are null"});
  expect_error<InvalidArgument>([&] { global_magnitude_masks({null23}, 0.5); },
                                {"global_magnitude_masks: weights of shape [2, 3] are null"});
  expect_error<InvalidArgument>([&] { nm_mask(null23, 2, 4); },
                                {"nm_mask: weights of shape [2, 3] are null"});
  expect_error<InvalidArgument>([&] { block_mask(null23, 1, 1, 0.5); },
                                {"block_mask: weights of shape [2, 3] are null"});
  expect_error<InvalidArgument>([&] { structured_mask(null23, 0, 0.5, Criterion::kL1); },
                                {"structured_mask: weights of shape [2, 3] are null"});
  EXPECT_EQ(magnitude_mask({nullptr, {0, 3}}, 0.5), Mask{});
}

// A 1-D tensor of 8 is the 1 x 8 matrix: 1x2 blocks with means 1.5, 0.1, 5 and 0.25; at 50%
// the two lowest (blocks 1 and 3) go. Its one row does not split into 2-row blocks.
TEST(BlockMask, OneDimensionalTensorIsOneRow) {
  const std::vector<float> w = {1, 2, 0.1f, -0.1f, 5, -5, 0.2f, 0.3f};
  EXPECT_EQ(block_mask({w.data(), {8}}, 1, 2, 0.5), (Mask{1, 1, 0, 0, 1, 1, 0, 0}));
  expect_error<InvalidArgument>(
      [&] {
        block_mask({w.data(), {8}}, 2, 1, 0.5);
      },
      {"block 2x1 does not tile the 1x8 matrix of a tensor of shape [8]"});
  // A scalar is the 1 x 1 matrix.
  EXPECT_EQ(block_mask({w.data(), {}}, 1, 1, 0.0), (Mask{1}));
}

TEST(Shrink, RejectsNullLayerWeights) {
  const std::vector<float> next(6, 1.0f);
  expect_error<InvalidArgument>(
      [&] {
        shrink({nullptr, {3, 2}}, nullptr, {next.data(), {2, 3}}, Mask{1, 0, 1});
      },
      {"shrink: layer weights of shape [3, 2] are null"});
}

// An empty tensor may still have many rows or slices; the masks of [2^40, 0] and [2^40, 4, 0]
// are empty and come back at once, as magnitude_mask's and nm_mask's do.
TEST(BlockMask, EmptyTensorWithManyRowsIsAnEmptyMask) {
  const float x = 0.0f;
  const int64_t huge = int64_t{1} << 40;
  EXPECT_EQ(block_mask({&x, {huge, 0}}, 1, 1, 0.5), Mask{});
  EXPECT_EQ(block_mask({&x, {0, huge}}, 1, 1, 0.5), Mask{});
  EXPECT_EQ(expand_slice_mask(Mask{1, 0, 1, 1}, {huge, 4, 0}, 1), Mask{});
  EXPECT_EQ(expand_slice_mask(Mask{}, {huge, 0, 3}, 1), Mask{});
}

TEST(ApplyMask, RejectsNullWeights) {
  expect_error<InvalidArgument>(
      [] {
        apply_mask(nullptr, 4, Mask{1, 0, 1, 1});
      },
      {"apply_mask: weights of 4 elements are null"});
  apply_mask(nullptr, 0, Mask{});  // nothing to write
}

// Enumerators outside the declared ones are refused, not run as the last branch.
TEST(StructuredMask, RejectsUnknownCriterionAndBlockScore) {
  const std::vector<float> w = {1, 2, 3, 4};
  expect_error<InvalidArgument>(
      [&] {
        structured_mask({w.data(), {2, 2}}, 0, 0.5, static_cast<Criterion>(7));
      },
      {"structured_mask: unknown criterion 7"});
  expect_error<InvalidArgument>(
      [&] {
        block_mask({w.data(), {2, 2}}, 1, 1, 0.5, static_cast<BlockScore>(7));
      },
      {"block_mask: unknown block score 7"});
}
