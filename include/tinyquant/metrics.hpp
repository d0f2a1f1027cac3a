// Error and size metrics for judging a quantization: how far the dequantized values are from
// the originals, and how many bytes the quantized tensor takes.
//
// Error metrics compare a reference r (the float original) with an approximation a (e.g. the
// dequantized tensor), element by element, accumulated in double:
//   mse          sum((r - a)^2) / n
//   max_abs      max |r - a|
//   sqnr_db      10 log10(sum(r^2) / sum((r - a)^2)); +inf when the noise is 0 (exact), -inf
//                when the signal is 0 but the noise is not
//   cosine       dot(r, a) / (|r| |a|), clamped to [-1, 1] against rounding; 1 when both are
//                all zeros, 0 when exactly one is
// Errors: sizes that differ -> ShapeError naming both sizes; empty input -> DataError; NaN / Inf
// -> DataError naming the index.
//
// Size convention (quantized_bytes): the integer data as stored (int4 packed two a byte, see
// quantize.hpp) plus, for every (scale, zero point) pair, a float32 scale and a zero point of
// the element type's width: int8 for bits 2..8, int16 for bits 16. Zero points are counted for
// symmetric parameters too, as runtimes that take per-channel arrays store them regardless.
// Derived fixed-point multipliers are not counted: they are recomputed from the scales.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/quantize.hpp"

namespace tinyquant {

double mse(const float* reference, int64_t n_reference, const float* approx, int64_t n_approx);
double max_abs_error(const float* reference, int64_t n_reference, const float* approx,
                     int64_t n_approx);
double sqnr_db(const float* reference, int64_t n_reference, const float* approx, int64_t n_approx);
double cosine_similarity(const float* reference, int64_t n_reference, const float* approx,
                         int64_t n_approx);

double mse(const std::vector<float>& reference, const std::vector<float>& approx);
double max_abs_error(const std::vector<float>& reference, const std::vector<float>& approx);
double sqnr_db(const std::vector<float>& reference, const std::vector<float>& approx);
double cosine_similarity(const std::vector<float>& reference, const std::vector<float>& approx);

struct ErrorReport {
  double mse = 0.0;
  double max_abs_error = 0.0;
  double sqnr_db = 0.0;
  double cosine_similarity = 0.0;
};

// All four metrics in one pass.
ErrorReport error_report(const float* reference, int64_t n_reference, const float* approx,
                         int64_t n_approx);
ErrorReport error_report(const std::vector<float>& reference, const std::vector<float>& approx);
// Against a quantized tensor: dequantizes q, then compares (reference has q.numel() floats).
ErrorReport error_report(const std::vector<float>& reference, const QTensor& q);

// Bytes a zero point takes for the given bit width: 1 for bits 2..8, 2 for bits 16.
int64_t zero_point_bytes(int bits);
// Data bytes + parameter bytes (see the header comment). Throws ShapeError if q's data is not
// storage_bytes(bits, numel) long (size_report too).
int64_t quantized_bytes(const QTensor& q);

struct SizeReport {
  int64_t float_bytes = 0;      // numel * 4
  int64_t quantized_bytes = 0;  // quantized_bytes(q)
  double ratio = 0.0;           // float_bytes / quantized_bytes (0 for an empty tensor)
};
SizeReport size_report(const QTensor& q);

}  // namespace tinyquant
