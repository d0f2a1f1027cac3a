// GPTQ (Frantar et al. 2022): weight quantization that looks at the layer's inputs.
//
// For a fully-connected layer y = W x with W [out][in] (row-major, the runtime's layout) and
// calibration inputs X [samples][in], GPTQ chooses integer weights Q that keep the layer's
// output error ||X W^T - X Q^T||_F small, not each weight's own error. With the Hessian of that
// error, H = 2 X^T X / samples, it quantizes the input columns one at a time and spreads each
// column's rounding error over the columns not yet quantized:
//   H' = H + damp * mean(diag(H)) * I                        (dead inputs first: see below)
//   U  = upper Cholesky factor of H'^-1                       (H'^-1 = U^T U)
//   for each column i in order:
//     q_i   = quantize(w_i)                                   (every row at once)
//     e     = (w_i - dequantize(q_i)) / U[i][i]
//     w_j  -= e * U[i][j]   for every later column j
// H = identity (or any diagonal H) moves nothing: the result is plain round-to-nearest.
// Dead inputs (H[i][i] == 0: the input is 0 on every sample) get weight 0 and H[i][i] = 1, as
// GPTQ does: they contribute nothing to the output on the calibration data.
//
// Rounding is that of tinyquant::quantize (x / scale a float division, half away from zero,
// clamp to [qmin, qmax]); the arithmetic of the error feedback is double (an updated weight past
// the float range is rounded as the largest float of its sign, i.e. clamped).
//
// Quantization parameters, by spec (symmetric or affine):
//   per-tensor         fitted once from the original weights
//   per-channel        axis 0 (one per output row), fitted from the original weights
//   per-group          along the inputs (axis 1 or -1): each row's group is fitted when the
//                      column pass reaches the group's first column, from that group's current,
//                      error-updated weights (GPTQ's "groups fitted as you go")
// each from its own values with params_for_mse (the default) or their min / max (params_for).
// act_order (columns in order of decreasing H[i][i], GPTQ's "act order") would let a group be
// reached at any of its columns, so with it every parameter is fitted beforehand from the
// original weights ("static groups").
//
// snap_group_scales (per-group only): the grouped int4 kernel applies each group scale as
// S * r / 256, S the row's largest group scale and r = clamp(round(s / S * 256), 1, 256)
// (rt/grouped.hpp). GPTQ must round against those scales, so with this option S is fixed
// beforehand as the row's largest scale of a fit of the original weights (that group keeps it:
// r = 256; groups whose weights are all 0 do not count) and every group scale is moved onto the
// grid when it is fitted. The returned scales are then exactly those QuantizedLinear deploys.
//
// Reproducibility: the Hessian, the Cholesky factorisations and the solve are Eigen products,
// whose block depth follows the L1 size Eigen plans with (detected from the CPU unless set with
// Eigen::setCpuCacheSizes). So on CPUs with different caches H can differ in its last bits (seen:
// 5 000 x 784 inputs planned for 16 KiB and for 32 KiB), and an error-updated weight that sits on a
// rounding boundary could round the other way. For the same integers on every machine, fix the
// sizes before calling, as the Fashion-MNIST example does (FixedEigenBlocking).
//
// Errors: W, X or H null, a dimension < 1 -> InvalidArgument; X with no samples -> DataError;
// [out][in], [samples][in] or [in][in] with more elements than int64 counts -> ShapeError (before
// any value is read); NaN / Inf in W, X or H -> DataError naming the argument and index; H with
// a diagonal entry < 0, not symmetric (|H[i][j] - H[j][i]| > 1e-9 sqrt(H[i][i] H[j][j])), or not
// positive definite after damping (a Cholesky pivot^2 <= in * DBL_EPSILON * its diagonal entry, as
// from dependent inputs with damp = 0) -> DataError; weights so close to the float limit that a
// dequantized value overflows -> DataError; a spec the layer cannot use (bits, group size, axis,
// snap_group_scales without symmetric per-group) -> InvalidArgument; damp < 0 or not finite,
// and with mse_params mse_steps < 1 or mse_min_ratio outside (0, 1] -> InvalidArgument (without
// it the two are not read). Messages start with "gptq:", except those of the spec's own checks
// (bits, group size: "quant spec: ...") and, in the Shape overload, numel's for a negative extent.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/shape.hpp"

namespace tinyquant {

struct GptqOptions {
  double damp = 0.01;      // >= 0: fraction of mean(diag(H)) added to the diagonal
  bool act_order = false;  // columns by decreasing H[i][i]; parameters fitted beforehand
  bool mse_params = true;  // params_for_mse (true) or min / max (false) for each fit
  int mse_steps = 40;      // params_for_mse's clip-ratio grid
  float mse_min_ratio = 0.5f;
  bool snap_group_scales = false;  // per-group scales on the grouped kernel's grid (see above)
};

struct GptqResult {
  // Integer weights [out][in] with their parameters: QuantizedLinear(weights, ...) takes them.
  QTensor weights;
  // dequantize(weights), [out][in] row-major.
  std::vector<float> dequantized;
};

// H = 2 X^T X / samples for X [samples][in] row-major ([in][in], row-major, double). Errors as
// gptq_quantize's for X.
std::vector<double> gptq_hessian(const float* x, int64_t samples, int64_t in);

// GPTQ of W [out][in] against calibration inputs X [samples][in].
GptqResult gptq_quantize(const float* w, int64_t out, int64_t in, const float* x, int64_t samples,
                         const QuantSpec& spec, const GptqOptions& options = {});

// The same with the shapes checked: w [out][in] and x [samples][in] hold numel(shape) values each;
// ShapeError naming both shapes (or the size and the shape) otherwise.
GptqResult gptq_quantize(const std::vector<float>& w, const Shape& w_shape,
                         const std::vector<float>& x, const Shape& x_shape, const QuantSpec& spec,
                         const GptqOptions& options = {});

// The same from the Hessian H [in][in] (row-major), e.g. gptq_hessian's or one accumulated over
// several batches.
GptqResult gptq_quantize_hessian(const float* w, int64_t out, int64_t in, const double* h,
                                 const QuantSpec& spec, const GptqOptions& options = {});

// The scale the grouped kernel applies for a group scale s in a row whose largest group scale is
// row_scale (rt/grouped.hpp): row_scale * clamp(round(s / row_scale * 256), 1, 256) / 256.
// s or row_scale not finite or not > 0 -> InvalidArgument.
float snap_group_scale(float s, float row_scale);

// Per-group parameters of the [out][in] weights w (groups along the inputs), every group scale
// moved onto that grid: S is the largest scale among the row's groups that hold a nonzero weight
// (an all-zero group's scale represents its zeros at any scale and must not coarsen the row; a
// row of zeros takes its largest scale), each group then snap_group_scale(s, S). Idempotent; S
// is kept exactly; other granularities are returned unchanged; groups along another axis ->
// InvalidArgument.
QuantParams snap_group_scales(QuantParams params, const Shape& shape, const float* w);

}  // namespace tinyquant
