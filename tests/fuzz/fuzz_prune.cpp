// Feeds arbitrary weights and options to the pruning masks: magnitude_mask,
// global_magnitude_masks, nm_mask, block_mask (mean and max score) and structured_mask (L1, L2,
// FPGM), then apply_mask, mask_sparsity and expand_slice_mask.
//
// Input layout: byte 0 picks the mask, byte 1 the value encoding (as in fuzz_quantize: raw float
// bits, small integers times one power of two, edge values), then the rank and extents, the
// options (sparsity, n and m, block shape, axis) and the values. An input that runs out reads
// zeros.
//
// Checks beyond "no crash", against a reference written here (a full sort instead of the
// library's nth_element):
//  - non-finite weights -> DataError, a sparsity outside [0, 1) or bad n / m / block / axis ->
//    InvalidArgument (or ShapeError), and nothing else is refused;
//  - every mask has one byte per weight (per slice for structured), each 0 or 1, and prunes
//    exactly llround(sparsity * count) weights, blocks or slices;
//  - magnitude-ranked masks equal the reference ranking (|w| ascending, the higher index pruned
//    first among equals) exactly; N:M keeps min(n, group size) per group, the largest |w|, ties
//    to the lower index; block and structured masks equal the reference ranking of their scores
//    when the weights are small integers times one power of two (every score then exact),
//    and prune the right count otherwise;
//  - apply_mask zeroes exactly the pruned weights and mask_sparsity counts them.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#include "fuzz_common.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/prune.hpp"

namespace {

using namespace tinyquant;
using fuzz::Bytes;

// Values: raw float bits (0), int8 times one shared power of two (1: every sum of a few of them
// is exact in double), or edge values (2).
struct Values {
  std::vector<float> v;
  bool exact = false;  // encoding 1
};

Values read_values(Bytes& in, uint8_t encoding, int64_t n) {
  Values out;
  out.v.resize(static_cast<size_t>(n));
  out.exact = encoding % 3 == 1;
  const int e = static_cast<int>(in.u8() % 64) - 40;
  for (float& x : out.v) {
    switch (encoding % 3) {
      case 0:
        x = in.f32();
        break;
      case 1:
        x = std::ldexp(static_cast<float>(static_cast<int8_t>(in.u8())), e);
        break;
      default:
        x = fuzz::edge_value(in.u8());
    }
  }
  return out;
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// A sparsity from one byte: mostly in [0, 1), sometimes 1 or beyond, or negative.
double read_sparsity(Bytes& in) {
  const uint8_t b = in.u8();
  if (b == 255) return 1.0;
  if (b == 254) return -0.25;
  if (b == 253) return std::nan("");
  return b / 253.0;
}

int64_t pruned(const Mask& m) {
  int64_t z = 0;
  for (uint8_t b : m) {
    FUZZ_REQUIRE(b == 0 || b == 1);
    z += b == 0 ? 1 : 0;
  }
  return z;
}

// The reference ranking: the k lowest scores pruned, the higher index first among equals.
Mask reference_lowest(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const double sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
    return sa != sb ? sa < sb : a > b;
  });
  Mask m(score.size(), 1);
  for (int64_t i = 0; i < k; ++i) m[static_cast<size_t>(order[static_cast<size_t>(i)])] = 0;
  return m;
}

std::vector<double> magnitudes(const std::vector<float>& v) {
  std::vector<double> s(v.size());
  for (size_t i = 0; i < v.size(); ++i) s[i] = std::fabs(static_cast<double>(v[i]));
  return s;
}

void check_applied(const std::vector<float>& w, const Mask& m) {
  std::vector<float> copy = w;
  apply_mask(copy.data(), static_cast<int64_t>(copy.size()), m);
  int64_t zeros = 0;
  for (size_t i = 0; i < copy.size(); ++i) {
    if (m[i] == 0) FUZZ_REQUIRE(copy[i] == 0.0f);
    if (m[i] == 1) FUZZ_REQUIRE(std::memcmp(&copy[i], &w[i], sizeof(float)) == 0);
    zeros += m[i] == 0 ? 1 : 0;
  }
  const double expect =
      m.empty() ? 0.0 : static_cast<double>(zeros) / static_cast<double>(m.size());
  FUZZ_REQUIRE(mask_sparsity(m) == expect);
}

bool sparsity_ok(double s) {
  return s >= 0.0 && s < 1.0;
}

int64_t count_of(double s, int64_t n) {
  return static_cast<int64_t>(std::llround(s * static_cast<double>(n)));
}

// *out = make(), or false when it threw what the weights or the sparsity call for: a DataError
// only for non-finite weights, an InvalidArgument only for a sparsity outside [0, 1).
template <class T, class F>
bool made(F&& make, T* out, bool finite, double sparsity) {
  try {
    *out = make();
    return true;
  } catch (const DataError&) {
    FUZZ_REQUIRE(!finite);
  } catch (const InvalidArgument&) {
    FUZZ_REQUIRE(!sparsity_ok(sparsity));
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const uint8_t op = in.u8() % 5;
  const uint8_t encoding = in.u8();
  const int rank = 1 + in.u8() % 3;
  Shape shape;
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    shape.push_back(in.u8() % 9);  // 0 allowed: empty tensors
    n *= shape.back();
  }
  const double sparsity = read_sparsity(in);
  const Values vals = read_values(in, encoding, n);
  const std::vector<float>& w = vals.v;
  const WeightView view{w.data(), shape};
  const bool finite = all_finite(w);

  switch (op) {
    case 0: {  // magnitude
      Mask m;
      if (!made([&] { return magnitude_mask(view, sparsity); }, &m, finite, sparsity)) return 0;
      FUZZ_REQUIRE(finite && sparsity_ok(sparsity) && static_cast<int64_t>(m.size()) == n);
      FUZZ_REQUIRE(pruned(m) == count_of(sparsity, n));
      FUZZ_REQUIRE(m == reference_lowest(magnitudes(w), count_of(sparsity, n)));
      check_applied(w, m);
      break;
    }
    case 1: {  // global over the tensor split in up to three parts
      const int parts = 1 + in.u8() % 3;
      std::vector<WeightView> views;
      const int64_t step = n / parts;
      int64_t at = 0;
      for (int p = 0; p < parts; ++p) {
        const int64_t len = p == parts - 1 ? n - at : step;
        views.push_back({w.data() + at, Shape{len}});
        at += len;
      }
      std::vector<Mask> masks;
      if (!made([&] { return global_magnitude_masks(views, sparsity); }, &masks, finite, sparsity))
        return 0;
      FUZZ_REQUIRE(finite && sparsity_ok(sparsity) && masks.size() == views.size());
      Mask all;
      for (const Mask& m : masks) all.insert(all.end(), m.begin(), m.end());
      FUZZ_REQUIRE(static_cast<int64_t>(all.size()) == n);
      FUZZ_REQUIRE(all == reference_lowest(magnitudes(w), count_of(sparsity, n)));
      break;
    }
    case 2: {  // N:M along the last axis
      const int mm = 1 + in.u8() % 16;
      const int nn = in.u8() % 18;  // 0 and n > m included
      Mask m;
      try {
        m = nm_mask(view, nn, mm);
      } catch (const DataError&) {
        FUZZ_REQUIRE(!finite);
        return 0;
      } catch (const InvalidArgument&) {
        FUZZ_REQUIRE(nn < 1 || nn > mm);
        return 0;
      }
      FUZZ_REQUIRE(finite && nn >= 1 && nn <= mm && static_cast<int64_t>(m.size()) == n);
      const int64_t cols = shape.back();
      for (int64_t row = 0; cols > 0 && row < n / cols; ++row)
        for (int64_t g = 0; g < cols; g += mm) {
          const int64_t len = std::min<int64_t>(mm, cols - g);
          std::vector<double> score(static_cast<size_t>(len));
          for (int64_t j = 0; j < len; ++j)
            score[static_cast<size_t>(j)] =
                std::fabs(static_cast<double>(w[static_cast<size_t>(row * cols + g + j)]));
          const int64_t keep = std::min<int64_t>(nn, len);
          const Mask want = reference_lowest(score, len - keep);
          for (int64_t j = 0; j < len; ++j)
            FUZZ_REQUIRE(m[static_cast<size_t>(row * cols + g + j)] ==
                         want[static_cast<size_t>(j)]);
        }
      check_applied(w, m);
      break;
    }
    case 3: {  // blocks over [shape[0]][rest]
      const int64_t br = 1 + in.u8() % 4, bc = 1 + in.u8() % 8;
      const BlockScore score = (in.u8() & 1) != 0 ? BlockScore::kMax : BlockScore::kMean;
      const int64_t rows = shape.size() == 1 ? 1 : shape[0];
      const int64_t cols = shape.size() == 1 ? shape[0] : (rows == 0 ? 0 : n / rows);
      Mask m;
      try {
        m = block_mask(view, br, bc, sparsity, score);
      } catch (const DataError&) {
        FUZZ_REQUIRE(!finite);
        return 0;
      } catch (const InvalidArgument&) {
        FUZZ_REQUIRE(!sparsity_ok(sparsity) || rows % br != 0 || cols % bc != 0 || !finite);
        return 0;
      }
      FUZZ_REQUIRE(finite && sparsity_ok(sparsity) && rows % br == 0 && cols % bc == 0);
      FUZZ_REQUIRE(static_cast<int64_t>(m.size()) == n);
      const int64_t brs = rows / br, bcs = cols / bc;
      std::vector<double> s(static_cast<size_t>(brs * bcs), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const double a = std::fabs(static_cast<double>(w[static_cast<size_t>(r * cols + c)]));
          double& t = s[static_cast<size_t>((r / br) * bcs + c / bc)];
          t = score == BlockScore::kMax ? std::max(t, a) : t + a;
        }
      const Mask want = reference_lowest(s, count_of(sparsity, brs * bcs));
      int64_t pruned_blocks = 0;
      for (int64_t b = 0; b < brs * bcs; ++b) {
        // Every weight of a block shares its fate.
        const int64_t r0 = (b / bcs) * br, c0 = (b % bcs) * bc;
        const uint8_t first = m[static_cast<size_t>(r0 * cols + c0)];
        for (int64_t r = 0; r < br; ++r)
          for (int64_t c = 0; c < bc; ++c)
            FUZZ_REQUIRE(m[static_cast<size_t>((r0 + r) * cols + c0 + c)] == first);
        pruned_blocks += first == 0 ? 1 : 0;
        if (vals.exact) FUZZ_REQUIRE(first == want[static_cast<size_t>(b)]);
      }
      FUZZ_REQUIRE(pruned_blocks == count_of(sparsity, brs * bcs));
      check_applied(w, m);
      break;
    }
    default: {  // structured slices
      const int axis = static_cast<int>(in.u8() % (2 * rank)) - rank;
      const Criterion crit = static_cast<Criterion>(in.u8() % 3);
      Mask slices;
      try {
        slices = structured_mask(view, axis, sparsity, crit);
      } catch (const DataError&) {
        FUZZ_REQUIRE(!finite || n == 0);
        return 0;
      } catch (const InvalidArgument&) {
        FUZZ_REQUIRE(!sparsity_ok(sparsity));
        return 0;
      }
      FUZZ_REQUIRE(finite && n > 0 && sparsity_ok(sparsity));
      const int a = axis < 0 ? axis + rank : axis;
      const int64_t len = shape[static_cast<size_t>(a)];
      FUZZ_REQUIRE(static_cast<int64_t>(slices.size()) == len);
      FUZZ_REQUIRE(pruned(slices) == count_of(sparsity, len));
      int64_t inner = 1;
      for (int d = a + 1; d < rank; ++d) inner *= shape[static_cast<size_t>(d)];
      if (vals.exact && crit != Criterion::kGeometricMedian) {
        std::vector<double> s(static_cast<size_t>(len), 0.0);
        for (int64_t i = 0; i < n; ++i) {
          const double x = w[static_cast<size_t>(i)];
          s[static_cast<size_t>((i / inner) % len)] +=
              crit == Criterion::kL1 ? std::fabs(x) : x * x;
        }
        FUZZ_REQUIRE(slices == reference_lowest(s, count_of(sparsity, len)));
      }
      const Mask full = expand_slice_mask(slices, shape, axis);
      FUZZ_REQUIRE(static_cast<int64_t>(full.size()) == n);
      for (int64_t i = 0; i < n; ++i)
        FUZZ_REQUIRE(full[static_cast<size_t>(i)] ==
                     slices[static_cast<size_t>((i / inner) % len)]);
      check_applied(w, full);
      break;
    }
  }
  return 0;
}
