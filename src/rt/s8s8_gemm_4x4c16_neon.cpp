// AArch64 Advanced SIMD path: s8 x s8 (and s8 x s4) GEMM on SMULL + SADALP, baseline ARMv8-A.
//
// Micro-kernels 4x4c16 (m > 1) and 1x8c16 (GEMV): each accumulator holds the partial dot product
// of one row of a with one row of b, 16 k values a step; horizontal sums happen once per tile.
// The tiles multiply the raw int8 values: a product is at most 128 * 128 = 2^14 and fits int16.
// The exact step (mac16) pair-sums each int16 product vector into int32 (vpadalq_s16) straight
// away, so no int16 sum of two products (up to 2^15) is formed. At m > 1 each 4-column strip of
// int8 b is first checked for -128 (in the pass that takes its column sums); a strip without one
// (TFLite's symmetric weights, [-127, 127]; int4 weights always) runs the paired step
// (mac16_paired): products are then at most 128 * 127, so those of k and k + 8 share one int16
// lane before the SADALP, 3 instructions per 16 MACs instead of 4; with several blocks of rows
// (long K), the flags of the first block are kept in scratch for the others. The GEMV keeps the
// exact step. The offsets enter afterwards through row and column sums, all mod 2^32 like the
// reference:
//   sum (a + ao)(b + bo) = sum a*b + bo * sum a + ao * sum b + k * ao * bo.
// In the K tail both operands are copied into zeroed 16-byte blocks, so padding adds 0.
// The epilogue (bias, requantize, output offset, clamp) runs on four lanes at a time and is
// exact as rt::requantize for both rounding modes. int4 weights are unpacked to int8 rows in
// scratch, a tile's rows at a time. Prepacked weights (prepack.cpp) keep the rows as given and
// add their sums and the strips' -128 flags, so such a call makes no pass of its own over b.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"

namespace tinyquant::rt::detail {
namespace {

#include "neon_mac16.inc"  // mac16 / sum16

// No packed kernel: ARMv8.0 has no multiply by element that reduces 4 int8 products.
constexpr int32_t kPackedMinRows = 0;
struct LaneMac;

#include "neon_gemm_common.inc"  // shared tiles and driver, compiled with this file's flags

constexpr PathKernels kTable{Path::kNeon, gemm_s8,         gemm_s32,
                             nullptr,     gemm_s8_scratch, gemm_s32_scratch};

// Prepacked weights (PackedGemmKernels): the int8 rows as given ([n][k]), then at a 4-byte
// boundary their sums (int32 [n]) and one byte per kNr-column strip, 1 when it holds -128; a
// call then skips the pass over b that takes both. Sums and flags are trusted as stored (the
// header check covers the header only, as on every packed path): a payload altered so that a
// strip holding -128 reads 0 gives wrong sums through the paired step's int16 wrap, but no
// undefined behaviour (every read stays inside the payload, the vector arithmetic wraps);
// fully_connected_s8_prepacked_verify() detects such a change.
int64_t sums_offset(int32_t n, int32_t k) {
  return (int64_t{n} * k + 3) / 4 * 4;
}
int64_t packed_bytes(int32_t n, int32_t k) {
  return sums_offset(n, k) + 4 * int64_t{n} + (int64_t{n} + kNr - 1) / kNr;
}
void pack(const int8_t* b, int32_t n, int32_t k, int32_t ldb, int32_t /*b_offset*/, void* out) {
  auto* rows = static_cast<int8_t*>(out);
  uint8_t* const sums = static_cast<uint8_t*>(out) + sums_offset(n, k);
  uint8_t* const strip_min = sums + 4 * int64_t{n};
  for (int32_t j0 = 0; j0 < n; j0 += kNr) {
    bool has_min = false;
    for (int32_t j = j0; j < n && j < j0 + kNr; ++j) {
      std::memcpy(rows + int64_t{j} * k, b + int64_t{j} * ldb, static_cast<size_t>(k));
      const int32_t sum = row_scan<true, true>(rows + int64_t{j} * k, k, &has_min);
      std::memcpy(sums + 4 * int64_t{j}, &sum, sizeof sum);
    }
    strip_min[j0 / kNr] = has_min ? 1 : 0;
  }
}
PrepackedB prepacked_b(const void* packed, int32_t n, int32_t k) {
  const auto* bytes = static_cast<const uint8_t*>(packed);
  const int64_t sums = sums_offset(n, k);
  return {static_cast<const int8_t*>(packed), nullptr,
          reinterpret_cast<const int32_t*>(bytes + sums), bytes + sums + 4 * int64_t{n}};
}

constexpr PackedGemmKernels kPackedTable{Path::kNeon,    packed_bytes,           pack,
                                         gemm_s8_packed, gemm_s8_packed_scratch, gemm_s32_packed};

}  // namespace

const PathKernels* neon_kernels() noexcept {
  return &kTable;
}

const PackedGemmKernels* neon_packed_kernels() noexcept {
  return &kPackedTable;
}

}  // namespace tinyquant::rt::detail
