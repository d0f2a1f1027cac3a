// Shared by the fuzz targets that carve their arguments from the input: a reader of little-endian
// values that yields zeros once the input runs out, so every input is a complete case, and
// FUZZ_REQUIRE, which names a broken invariant before trapping (libFuzzer then saves the input).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace tinyquant::fuzz {

// A float from one byte: the values every float routine must get right (signed zeros, the
// smallest normal and denormal, FLT_MAX, infinity, NaN, ...) for bytes 0..14, else a small
// multiple of 1/4.
inline float edge_value(uint8_t b) {
  static const float kEdges[] = {0.0f,    -0.0f,    FLT_MIN, -FLT_MIN, FLT_TRUE_MIN,
                                 FLT_MAX, -FLT_MAX, 1.0f,    -1.0f,    0.5f,
                                 1e-38f,  3e38f,    -3e38f,  INFINITY, NAN};
  return b < 15 ? kEdges[b] : static_cast<float>(static_cast<int8_t>(b)) * 0.25f;
}

[[noreturn]] inline void broken(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
  __builtin_trap();
}

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  // Each byte read in its own statement: the order of the reads is fixed.
  uint16_t u16() {
    const uint16_t lo = u8();
    return static_cast<uint16_t>(lo | (u8() << 8));
  }
  uint32_t u32() {
    const uint32_t lo = u16();
    return lo | (static_cast<uint32_t>(u16()) << 16);
  }
  uint64_t u64() {
    const uint64_t lo = u32();
    return lo | (static_cast<uint64_t>(u32()) << 32);
  }
  float f32() {
    const uint32_t bits = u32();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  double f64() {
    const uint64_t bits = u64();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace tinyquant::fuzz

#define FUZZ_REQUIRE(cond)                                             \
  do {                                                                 \
    if (!(cond)) ::tinyquant::fuzz::broken(__FILE__, __LINE__, #cond); \
  } while (false)
