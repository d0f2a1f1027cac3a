// Internal helpers for throwing the toolkit's typed errors with formatted messages.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>
#include <utility>

#include "tinyquant/error.hpp"

namespace tinyquant {
struct QTensor;
}

namespace tinyquant::detail {

template <class E, class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format(f, std::forward<Args>(args)...));
}

// Index of the first NaN or infinity in data[0, n), or -1. Reads the bits so it vectorises.
int64_t first_non_finite(const float* data, int64_t n) noexcept;

// Throws DataError "<what>: non-finite value <v> at index <i>" if data has a NaN or infinity.
void check_finite(const float* data, int64_t n, const char* what);

// Throws ShapeError "<what>: QTensor holds <n> bytes, but <count> <bits>-bit elements of shape
// <shape> need <m>" unless q.data is exactly storage_bytes(bits, numel) long (its bit width is
// checked by storage_bytes, its parameters not at all). Defined in quantize.cpp.
void check_storage(const char* what, const QTensor& q);

// Element i of quantized storage holding `bits`-bit codes as QTensor lays them out (bits <= 4:
// nibbles, low first; 5..8: int8 bytes; 16: int16 little-endian). Defined in quantize.cpp.
int32_t stored_code(const uint8_t* data, int bits, int64_t i) noexcept;

}  // namespace tinyquant::detail
