// Every kernel on every path this target supports, against the outputs the host computed for the
// same inputs (kernel_vectors.h; the host generator already required its reference, smlad
// emulation and SIMD paths to agree) and against the reference path run on the target itself;
// the int8 FC cases also on weights prepacked for each path.
// On a Cortex-M4 this means host emulation, host SIMD and the real SXTB16/SMLAD agree bit for bit.
#include <cstdint>
#include <cstring>

#include "check.hpp"
#include "kernel_cases.hpp"
#include "kernel_vectors.h"

namespace rt = tinyquant::rt;

namespace {

tq::KernelBuffers g_bufs;
uint8_t g_reference[tq::kMaxBytes];

int32_t first_difference(const uint8_t* a, const uint8_t* b, int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return i;
  }
  return -1;
}

// Case c (Op::kFcS8) on prepacked weights, every path: the int8 output equal to the host's, the
// raw accumulators (fully_connected_s8_prepacked_s32) equal to the reference path's.
void check_prepacked(const tq::KernelCase& c, const uint8_t* host) {
  const int32_t n = c.fc.batch * c.fc.out_features;
  if (!TQ_CHECK_EQ(n <= tq::kMaxBytes / 4, true, c.name)) return;
  const rt::Status ref =
      tq::run_case(c, rt::Path::kReference, g_bufs, tq::FcWeights::kPrepackedS32);
  TQ_CHECK_EQ(static_cast<int>(ref), 0, c.name);
  std::memcpy(g_reference, g_bufs.output32, sizeof(int32_t) * static_cast<size_t>(n));
  for (rt::Path p : tq::kPaths) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
    rt::Status st = tq::run_case(c, p, g_bufs, tq::FcWeights::kPrepacked);
    TQ_CHECK_EQ(static_cast<int>(st), 0, c.name);
    const int32_t vs_host =
        first_difference(reinterpret_cast<const uint8_t*>(g_bufs.output), host, n);
    st = tq::run_case(c, p, g_bufs, tq::FcWeights::kPrepackedS32);
    TQ_CHECK_EQ(static_cast<int>(st), 0, c.name);
    const int32_t vs_ref =
        first_difference(reinterpret_cast<const uint8_t*>(g_bufs.output32), g_reference, 4 * n);
    if (vs_host >= 0 || vs_ref >= 0) {
      std::printf(
          "%s, path %s, prepacked: first byte differing from host %ld, int32 from the "
          "reference path %ld\n",
          c.name, rt::path_name(p), static_cast<long>(vs_host), static_cast<long>(vs_ref));
    }
    TQ_CHECK_EQ(vs_host, -1, "prepacked: first byte differing from the host's output");
    TQ_CHECK_EQ(vs_ref, -1, "prepacked s32: first byte differing from the reference path");
  }
}

// The packed buffer of case c for every path: verify() accepts it whole and refuses it with any
// single payload byte altered (each path lays out its payload differently: rows, panels, sums,
// -128 flags, padding), and a call pinned to another path refuses it with the output untouched.
void check_packed_buffers(const tq::KernelCase& c) {
  static uint8_t packed[sizeof g_bufs.packed];
  const auto p = tq::with_quant(rt::FcParams{}, c.q);
  const int32_t out_bytes = c.fc.batch * c.fc.out_features;
  rt::Requant rq;
  rq.multiplier = g_bufs.multiplier;
  rq.shift = g_bufs.shift;
  for (rt::Path path : tq::kPaths) {
    if ((rt::supported_paths() & rt::path_bits(path)) == 0) continue;
    const int32_t size = rt::fully_connected_s8_prepacked_size(c.fc, path);
    if (!TQ_CHECK_EQ(size > 64 && size <= static_cast<int32_t>(sizeof packed), true, c.name))
      return;
    TQ_CHECK_EQ(static_cast<int>(
                    rt::fully_connected_s8_prepack(p, c.fc, g_bufs.weights, path, packed, size)),
                0, "prepack");
    TQ_CHECK_EQ(static_cast<int>(rt::fully_connected_s8_prepacked_verify(packed, size)), 0,
                "verify, intact buffer");
    long accepted = 0;
    for (int32_t i = 64; i < size; ++i) {
      packed[i] ^= 0x10u;
      if (rt::fully_connected_s8_prepacked_verify(packed, size) == rt::Status::kOk) {
        if (++accepted == 1)
          std::printf("%s: payload byte %ld altered, accepted\n", rt::path_name(path),
                      static_cast<long>(i));
      }
      packed[i] ^= 0x10u;
    }
    TQ_CHECK_EQ(accepted, 0L, "verify: altered payload bytes accepted");
    TQ_CHECK_EQ(static_cast<int>(rt::fully_connected_s8_prepacked_verify(packed, size)), 0,
                "verify, restored buffer");
    for (rt::Path other : tq::kPaths) {
      if (other == path || (rt::supported_paths() & rt::path_bits(other)) == 0) continue;
      rt::Context ctx;
      ctx.scratch = g_bufs.scratch;
      ctx.scratch_size = tq::kMaxScratch;
      ctx.path = other;
      std::memset(g_bufs.output, 0x55, static_cast<size_t>(out_bytes));
      TQ_CHECK_EQ(static_cast<int>(rt::fully_connected_s8_prepacked(
                      ctx, p, rq, c.fc, g_bufs.input, packed, nullptr, g_bufs.output)),
                  static_cast<int>(rt::Status::kBadArgument), "call pinned to another path");
      int32_t touched = 0;
      for (int32_t i = 0; i < out_bytes; ++i) touched += g_bufs.output[i] != 0x55 ? 1 : 0;
      TQ_CHECK_EQ(touched, 0, "refused call: output bytes written");
    }
  }
}

// Weights of n x k with n * k near INT32_MAX (one row, or one column) are valid dims, but every
// layout stores at least n * k bytes after its 64-byte header, so the prepacked size must be 0
// (does not fit in int32) on every path, whatever padding its layout adds to k or n.
void check_prepacked_size_limits() {
  const rt::FcDims dims[] = {{1, INT32_MAX, 1}, {1, INT32_MAX - 15, 1}, {1, INT32_MAX - 60, 1},
                             {1, 1, INT32_MAX}, {1, 1, INT32_MAX - 7},  {1, 2, INT32_MAX / 2}};
  for (rt::Path path : tq::kPaths) {
    if ((rt::supported_paths() & rt::path_bits(path)) == 0) continue;
    for (const rt::FcDims& d : dims) {
      const int32_t size = rt::fully_connected_s8_prepacked_size(d, path);
      if (size != 0) {
        std::printf("%s: prepacked size %ld for %ld x %ld weights\n", rt::path_name(path),
                    static_cast<long>(size), static_cast<long>(d.out_features),
                    static_cast<long>(d.in_features));
      }
      TQ_CHECK_EQ(size, 0, "prepacked size of weights past int32");
    }
  }
}

}  // namespace

int main() {
  check_prepacked_size_limits();
  int paths_run = 0;
  for (int ci = 0; ci < tq::kNumKernelCases; ++ci) {
    const tq::KernelCase& c = tq::kKernelCases[ci];
    const int32_t n = tq::output_bytes(c);
    const uint8_t* host = kCaseOutput + kCaseOffset[ci];
    TQ_CHECK_EQ(kCaseOffset[ci + 1] - kCaseOffset[ci], n, c.name);
    TQ_CHECK_EQ(static_cast<int>(tq::run_case(c, rt::Path::kReference, g_bufs)), 0, c.name);
    std::memcpy(g_reference, tq::case_output(c, g_bufs), static_cast<size_t>(n));
    for (rt::Path p : tq::kPaths) {
      if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
      ++paths_run;
      const rt::Status st = tq::run_case(c, p, g_bufs);
      if (!TQ_CHECK_EQ(static_cast<int>(st), 0, c.name)) continue;
      const uint8_t* got = tq::case_output(c, g_bufs);
      const int32_t vs_host = first_difference(got, host, n);
      const int32_t vs_ref = first_difference(got, g_reference, n);
      if (vs_host >= 0 || vs_ref >= 0) {
        std::printf("%s, path %s: first byte differing from host %ld, from target reference %ld\n",
                    c.name, rt::path_name(p), static_cast<long>(vs_host),
                    static_cast<long>(vs_ref));
      }
      TQ_CHECK_EQ(vs_host, -1, "first byte differing from the host's output");
      TQ_CHECK_EQ(vs_ref, -1, "first byte differing from the target's reference path");
    }
    if (c.op == tq::Op::kFcS8) check_prepacked(c, host);
    // The buffer checks on the short cases (weights of the case still in g_bufs).
    if (c.op == tq::Op::kFcS8 && c.fc.batch <= 3) check_packed_buffers(c);
  }
  std::printf("paths: %s default, supported mask 0x%lx, %d case-path runs\n",
              rt::path_name(rt::default_path()), static_cast<unsigned long>(rt::supported_paths()),
              paths_run);
  return tq::finish("test_kernels");
}
