// Pruning masks for float weights, to apply and update inside a C++ training loop.
//
// A mask has one byte per weight (1 = keep, 0 = prune) in the weights' row-major order.
// Weight layouts follow kernels.hpp: fully-connected [out][in], conv OHWI [out][kh][kw][in]; the
// "input dimension" is the last axis.
//
// Tie rule (every magnitude-ranked mask): weights are ranked by |w|, and among equal |w| the
// lower flat index ranks higher (is kept first). So exactly round(sparsity * n) weights are
// pruned (half away from zero), the same ones on every run and platform.
// Sparsities are in [0, 1). NaN or infinite weights throw DataError.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/shape.hpp"

namespace tinyquant {

using Mask = std::vector<uint8_t>;

// A read-only float tensor.
struct WeightView {
  const float* data = nullptr;
  Shape shape;
};

// Zero the pruned weights; throws ShapeError if mask.size() != n.
void apply_mask(float* weights, int64_t n, const Mask& mask);
// Fraction of zeros in a mask, in [0, 1].
double mask_sparsity(const Mask& mask);

// Prune the round(sparsity * n) smallest |w| of one tensor. O(n) (std::nth_element).
Mask magnitude_mask(const WeightView& w, double sparsity);
// One threshold over all tensors together (flat index = position in the concatenation, so the
// tie rule prefers earlier tensors). Throws InvalidArgument for an empty list.
std::vector<Mask> global_magnitude_masks(const std::vector<WeightView>& tensors, double sparsity);

// N:M along the input (last) axis: in each group of m consecutive inputs of a row keep the n
// largest |w|. A tail group of r = in % m inputs keeps its min(n, r) largest (it is stored as a
// full group of n slots by the N:M sparse format). 1 <= n <= m <= 256.
Mask nm_mask(const WeightView& w, int n, int m);

enum class BlockScore : uint8_t { kMean, kMax };
// Blocks of block_rows x block_cols over the tensor seen as 2-D [shape[0]][rest] (a 1-D tensor
// is [1][n]); blocks must tile it exactly (else InvalidArgument). Prunes round(sparsity *
// blocks) blocks with the lowest mean or max |w| (tie rule on the block's row-major index).
Mask block_mask(const WeightView& w, int64_t block_rows, int64_t block_cols, double sparsity,
                BlockScore score = BlockScore::kMean);

enum class Criterion : uint8_t {
  kL1,              // smallest sum |w| pruned first
  kL2,              // smallest sqrt(sum w^2) pruned first
  kGeometricMedian  // FPGM: smallest sum of L2 distances to all other slices pruned first
};
// Structured pruning of whole slices along `axis` (0: output neurons / conv filters; -1: input
// channels). Returns one byte per slice (shape[axis] entries); round(sparsity * slices) pruned.
// An empty tensor throws DataError.
Mask structured_mask(const WeightView& w, int axis, double sparsity, Criterion criterion);
// Expands a per-slice mask to an element mask of `shape`.
Mask expand_slice_mask(const Mask& slices, const Shape& shape, int axis);

// Physically removes the pruned output rows of a layer and the matching inputs of the next one.
struct ShrinkResult {
  std::vector<float> weights;  // [kept][rest of shape]
  Shape shape;
  std::vector<float> bias;          // [kept], empty if no bias was given
  std::vector<float> next_weights;  // next layer with its last (input) axis reduced to kept
  Shape next_shape;
  std::vector<int64_t> kept;  // original indices of the kept outputs, ascending
};
// `keep` has shape[0] entries. bias is null or [shape[0]]. next may have null data (then no
// next layer); otherwise its last axis must equal shape[0] (fully-connected [out2][in2] or conv
// OHWI). A mask that keeps nothing throws InvalidArgument: a layer without outputs would
// disconnect the network.
ShrinkResult shrink(const WeightView& layer, const float* bias, const WeightView& next,
                    const Mask& keep);

// Sparsity schedules, as in TF Model Optimization. The mask is updated at step t when
// begin_step <= t <= end_step and (t - begin_step) % frequency == 0.
struct ConstantSparsity {
  double target = 0.5;      // [0, 1)
  int64_t begin_step = 0;   // >= 0
  int64_t end_step = 1;     // > begin_step
  int64_t frequency = 100;  // >= 1
  void validate() const;
  double sparsity(int64_t step) const;  // target
  bool should_update(int64_t step) const;
};

// s(t) = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))^power, with t clamped to
// [t0, t_end] (so s_i before t0 and s_f after t_end).
struct PolynomialDecay {
  double initial = 0.0;     // s_i, [0, 1)
  double final = 0.8;       // s_f, [0, 1)
  int64_t begin_step = 0;   // t0 >= 0
  int64_t end_step = 1000;  // t_end > t0
  double power = 3.0;       // > 0
  int64_t frequency = 100;  // >= 1
  void validate() const;
  double sparsity(int64_t step) const;
  bool should_update(int64_t step) const;
};

}  // namespace tinyquant
