// Quantize and dequantize float tensors with QuantParams, int4 packing, and fake-quant.
//
// Formula (TFLite's reference quantizer, bit for bit):
//   q = clamp(round(x / scale) + zero_point, qmin, qmax)     x / scale is a float division
//   x' = scale * (q - zero_point)                             one float multiply
// round() is RoundMode::kHalfAwayFromZero (TFLite, std::round) or kHalfToEven (nearbyint in the
// default floating-point environment); ties are decided exactly, 0.49999997f rounds to 0.
//
// Storage of a QTensor's bytes, by bit width (row-major element order):
//   bits 5..8   one int8 per element
//   bits 2..4   packed two per byte, CMSIS-NN / TFLite Micro "s4" layout: a single nibble stream
//               over the whole tensor; element 2i is the low nibble of byte i, element 2i + 1
//               the high nibble; nibbles are two's complement and sign-extended on unpack; an
//               odd element count leaves the last high nibble 0. Storage is ceil(n / 2) bytes.
//   bits 16     one int16 per element in host byte order (little-endian on every supported
//               target: x86-64, aarch64, Cortex-M).
// Errors: NaN / Inf input -> DataError naming the index; parameters that do not fit the shape
// -> ShapeError / InvalidArgument (QuantParams::validate); a caller buffer of the wrong size ->
// ShapeError naming both sizes. When an overload writing into a caller buffer throws, the
// buffer's contents are unspecified.
#pragma once

#include <cstdint>
#include <vector>

#include "tinyquant/quant_params.hpp"
#include "tinyquant/shape.hpp"

namespace tinyquant {

// A quantized tensor: shape, parameters and the integer data stored as described above.
struct QTensor {
  Shape shape;
  QuantParams params;
  std::vector<uint8_t> data;

  int bits() const noexcept { return params.spec.bits; }
  int64_t numel() const { return tinyquant::numel(shape); }
  // Element i as an integer in [qmin, qmax], whatever the storage; bounds are not checked.
  int32_t value(int64_t i) const noexcept;
};

// Bytes of storage for n elements of the given bit width (see the header comment).
// Throws InvalidArgument for bits outside {2..8, 16}, n < 0; ShapeError if 16-bit elements
// would take more bytes than int64 holds.
int64_t storage_bytes(int bits, int64_t n);

// Packs n int8 values in [-8, 7] into ceil(n / 2) bytes (s4 layout). Throws InvalidArgument
// naming the index and value of the first value out of range.
void pack_int4(const int8_t* values, int64_t n, uint8_t* packed);
std::vector<uint8_t> pack_int4(const std::vector<int8_t>& values);
// Unpacks n values from ceil(n / 2) bytes, sign-extending each nibble to [-8, 7].
void unpack_int4(const uint8_t* packed, int64_t n, int8_t* values);
// Throws ShapeError if packed.size() != ceil(n / 2).
std::vector<int8_t> unpack_int4(const std::vector<uint8_t>& packed, int64_t n);

// Quantizes numel(shape) floats. Every granularity and axis of QuantParams is supported.
QTensor quantize(const float* data, const Shape& shape, const QuantParams& params,
                 RoundMode mode = RoundMode::kHalfAwayFromZero);
// The same into a caller buffer of exactly storage_bytes(params.spec.bits, numel(shape)) bytes.
void quantize(const float* data, const Shape& shape, const QuantParams& params, uint8_t* out,
              int64_t out_bytes, RoundMode mode = RoundMode::kHalfAwayFromZero);

// A QTensor from integers already on params' grid (e.g. rounded by GPTQ or read from another
// format): values[i] in [qmin, qmax] of params.spec, numel(shape) of them, stored as above.
// Errors: parameters that do not fit the shape as quantize's; values null for a non-empty shape
// -> InvalidArgument; a value outside [qmin, qmax] -> InvalidArgument naming its index.
QTensor from_integers(const int32_t* values, const Shape& shape, const QuantParams& params);

// Real values of a QTensor, numel(shape) floats.
std::vector<float> dequantize(const QTensor& q);
// The same into a caller buffer of exactly q.numel() floats.
void dequantize(const QTensor& q, float* out, int64_t out_count);

// params_for(data, shape, spec) then quantize: weights calibrated on themselves.
QTensor quantize_weights(const float* data, const Shape& shape, const QuantSpec& spec,
                         RoundMode mode = RoundMode::kHalfAwayFromZero);

// Fake quantization for quantization-aware training.
//   values[i]: x quantized then dequantized with params (same rounding as quantize);
//   mask[i]:   the clipped straight-through estimator's gradient, 1 where the integer before the
//              clamp, round(x / scale) + zero_point, lies within [qmin, qmax], else 0.
struct FakeQuantResult {
  std::vector<float> values;
  std::vector<uint8_t> mask;
};
FakeQuantResult fake_quant(const float* data, const Shape& shape, const QuantParams& params,
                           RoundMode mode = RoundMode::kHalfAwayFromZero);

}  // namespace tinyquant
