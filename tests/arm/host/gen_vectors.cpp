// Host side of the on-target tests: writes expected results as C arrays, so the ARM programs can
// check that the target computes them for the same inputs.
//
//   gen_vectors <out-dir>      writes <out-dir>/fixed_point_vectors.h and kernel_vectors.h
//
// The fixed-point vectors are tinyquant::rt's results on the build machine (the host test suite
// checks those functions against exact arithmetic, tests/rt/test_fixed_point.cpp). The kernel
// vectors are computed from the formulas (oracle.hpp); every path this host supports (reference,
// smlad emulation, x86 SIMD) must give the same bytes, or nothing is written.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../check.hpp"
#include "../kernel_cases.hpp"
#include "oracle.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace rt = tinyquant::rt;

namespace {

struct RqCase {
  int32_t x, m, shift;
};

void write_i32_array(FILE* f, const char* name, const int32_t* v, int n) {
  std::fprintf(f, "static const int32_t %s[%d] = {", name, n);
  for (int i = 0; i < n; ++i) {
    std::fprintf(f, "%s%" PRId32, (i % 8 == 0) ? "\n    " : " ", v[i]);
    if (i + 1 < n) std::fputc(',', f);
  }
  std::fprintf(f, "};\n");
}

void write_u64_array(FILE* f, const char* name, const uint64_t* v, int n) {
  std::fprintf(f, "static const uint64_t %s[%d] = {", name, n);
  for (int i = 0; i < n; ++i) {
    std::fprintf(f, "%s0x%016" PRIx64 "ull", (i % 4 == 0) ? "\n    " : " ", v[i]);
    if (i + 1 < n) std::fputc(',', f);
  }
  std::fprintf(f, "};\n");
}

// Requantization inputs: the corners of every argument's range, then random values drawn from
// the full range and from the small range real accumulators live in.
constexpr int kRqCount = 4096;
constexpr int kQmCount = 1024;
// multipliers_from_scales inputs: (input, weight, output) scale triples.
constexpr int kMsCount = 512;

// A positive float 2^e * (1 + u), u in [0, 1), e in [lo, hi], as its bits.
int32_t random_scale_bits(tq::XorShift32& rng, int32_t lo, int32_t hi) {
  const uint32_t exp = static_cast<uint32_t>(127 + rng.range(lo, hi));
  const uint32_t bits = exp << 23 | (rng.next() & 0x7FFFFFu);
  return static_cast<int32_t>(bits);
}

float float_of(int32_t bits) {
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

int gen_fixed_point(const std::string& dir) {
  static RqCase cases[kRqCount];
  const int32_t xs[] = {0,
                        1,
                        -1,
                        2,
                        -2,
                        3,
                        -3,
                        127,
                        -128,
                        1 << 20,
                        -(1 << 20),
                        INT32_MAX,
                        INT32_MIN,
                        INT32_MAX - 1,
                        INT32_MIN + 1};
  const int32_t ms[] = {0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX, 1518500250};
  const int32_t shifts[] = {-31, -30, -16, -8, -1, 0, 1, 8, 30};
  int n = 0;
  for (int32_t x : xs)
    for (int32_t m : ms)
      for (int32_t s : shifts)
        if (n < kRqCount / 2) cases[n++] = {x, m, s};
  tq::XorShift32 rng;
  while (n < kRqCount) {
    const bool small = (rng.next() & 1u) != 0;
    const int32_t x = small ? rng.range(-(1 << 20), 1 << 20) : rng.next_i32();
    const int32_t m = rng.range(1 << 30, INT32_MAX);
    const int32_t s = rng.range(rt::kMinShift, rt::kMaxShift);
    cases[n++] = {x, m, s};
  }
  static int32_t cx[kRqCount], cm[kRqCount], cs[kRqCount], rd[kRqCount], rs[kRqCount];
  for (int i = 0; i < kRqCount; ++i) {
    cx[i] = cases[i].x;
    cm[i] = cases[i].m;
    cs[i] = cases[i].shift;
    rd[i] = rt::requantize(cx[i], cm[i], cs[i], rt::Rounding::kDouble);
    rs[i] = rt::requantize(cx[i], cm[i], cs[i], rt::Rounding::kSingle);
  }

  // quantize_multiplier inputs: exact powers of two, values that round up to 2^31, the flush and
  // saturation edges, subnormals, and random positive doubles across the exponent range.
  static uint64_t bits[kQmCount];
  static int32_t qm[kQmCount], qs[kQmCount];
  const double fixed[] = {0.0,
                          1.0,
                          0.5,
                          0.25,
                          2.0,
                          1.0 / 3.0,
                          0.9999999999,
                          0x1.fffffffffffffp-1,
                          0x1p-31,
                          0x1p-32,
                          0x1.8p-33,
                          0x1p+29,
                          0x1p+30,
                          0x1p+31,
                          1e-300,
                          4.9e-324,
                          1e10,
                          0.0078125,
                          0.003921568627,
                          1.5e-5};
  int q = 0;
  for (double d : fixed) std::memcpy(&bits[q++], &d, sizeof d);
  while (q < kQmCount) {
    // Random mantissa, exponent mostly in the representable multiplier range [-40, 40].
    const uint64_t mant =
        (static_cast<uint64_t>(rng.next()) << 20 ^ rng.next()) & ((uint64_t{1} << 52) - 1);
    const uint64_t exp = static_cast<uint64_t>(1023 + rng.range(-40, 40));
    bits[q++] = exp << 52 | mant;
  }
  for (int i = 0; i < kQmCount; ++i) {
    double d = 0;
    std::memcpy(&d, &bits[i], sizeof d);
    rt::QuantizedMultiplier out;
    if (rt::quantize_multiplier(d, &out) != rt::Status::kOk) {
      std::fprintf(stderr, "gen_vectors: quantize_multiplier(%a) failed on the host\n", d);
      return 1;
    }
    qm[i] = out.multiplier;
    qs[i] = out.shift;
  }

  // Scale triples: activation scales around 2^-8..2^1, weight scales 2^-14..2^-1, some ranges
  // wide enough to reach both clamps of quantize_multiplier; the pairs the host computes.
  static int32_t ms_in[kMsCount], ms_w[kMsCount], ms_out[kMsCount], ms_m[kMsCount], ms_s[kMsCount];
  for (int i = 0; i < kMsCount; ++i) {
    const bool wide = i % 8 == 7;
    ms_in[i] = random_scale_bits(rng, wide ? -60 : -8, wide ? 60 : 1);
    ms_w[i] = random_scale_bits(rng, wide ? -60 : -14, wide ? 60 : -1);
    ms_out[i] = random_scale_bits(rng, wide ? -60 : -8, wide ? 60 : 1);
    const float w = float_of(ms_w[i]);
    if (rt::multipliers_from_scales(float_of(ms_in[i]), &w, false, float_of(ms_out[i]), 1, &ms_m[i],
                                    &ms_s[i]) != rt::Status::kOk) {
      std::fprintf(stderr, "gen_vectors: multipliers_from_scales failed on the host\n");
      return 1;
    }
  }

  const std::string path = dir + "/fixed_point_vectors.h";
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "gen_vectors: cannot write %s\n", path.c_str());
    return 1;
  }
  std::fprintf(f,
               "// Generated by tests/arm/host/gen_vectors.cpp on the build host. Do not edit.\n");
  std::fprintf(f, "#pragma once\n#include <stdint.h>\n");
  std::fprintf(f, "#define TQ_RQ_COUNT %d\n#define TQ_QM_COUNT %d\n", kRqCount, kQmCount);
  write_i32_array(f, "kRqX", cx, kRqCount);
  write_i32_array(f, "kRqM", cm, kRqCount);
  write_i32_array(f, "kRqShift", cs, kRqCount);
  write_i32_array(f, "kRqDouble", rd, kRqCount);
  write_i32_array(f, "kRqSingle", rs, kRqCount);
  write_u64_array(f, "kQmBits", bits, kQmCount);
  write_i32_array(f, "kQmMultiplier", qm, kQmCount);
  write_i32_array(f, "kQmShift", qs, kQmCount);
  std::fprintf(f, "#define TQ_MS_COUNT %d\n", kMsCount);
  write_i32_array(f, "kMsInputBits", ms_in, kMsCount);
  write_i32_array(f, "kMsWeightBits", ms_w, kMsCount);
  write_i32_array(f, "kMsOutputBits", ms_out, kMsCount);
  write_i32_array(f, "kMsMultiplier", ms_m, kMsCount);
  write_i32_array(f, "kMsShift", ms_s, kMsCount);
  return std::fclose(f) == 0 ? 0 : 1;
}

int gen_kernels(const std::string& dir) {
  static tq::KernelBuffers bufs;
  static uint8_t expected[tq::kMaxBytes];
  const std::string path = dir + "/kernel_vectors.h";
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "gen_vectors: cannot write %s\n", path.c_str());
    return 1;
  }
  std::fprintf(f,
               "// Generated by tests/arm/host/gen_vectors.cpp on the build host. Do not edit.\n");
  std::fprintf(f, "#pragma once\n#include <stdint.h>\n");
  int failures = 0;
  std::string offsets = "static const int32_t kCaseOffset[] = {";
  int32_t total = 0;
  std::fprintf(f, "static const uint8_t kCaseOutput[] = {");
  for (int ci = 0; ci < tq::kNumKernelCases; ++ci) {
    const tq::KernelCase& c = tq::kKernelCases[ci];
    const int32_t n = tq::output_bytes(c);
    const rt::Status st = tq::run_case(c, rt::Path::kReference, bufs);
    if (st != rt::Status::kOk) {
      std::fprintf(stderr, "gen_vectors: %s: reference returned %s\n", c.name, rt::status_name(st));
      ++failures;
      continue;
    }
    // The expected bytes come from the formulas (oracle.hpp), on the operands run_case made;
    // the host's reference path and every other host path must give them too.
    const std::vector<uint8_t> want = tq::oracle::expected_output(c, bufs);
    std::memcpy(expected, want.data(), want.size());
    for (rt::Path p : tq::kPaths) {
      if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
      const rt::Status ps = tq::run_case(c, p, bufs);
      if (ps != rt::Status::kOk ||
          std::memcmp(expected, tq::case_output(c, bufs), static_cast<size_t>(n)) != 0) {
        std::fprintf(stderr,
                     "gen_vectors: %s: path %s disagrees with the formula on the host (%s)\n",
                     c.name, rt::path_name(p), rt::status_name(ps));
        ++failures;
      }
    }
    offsets += std::to_string(total) + ", ";
    for (int32_t i = 0; i < n; ++i) {
      std::fprintf(f, "%s%u,", (i % 16 == 0) ? "\n    " : " ", expected[i]);
    }
    total += n;
  }
  std::fprintf(f, "};\n%s%d};\n", offsets.c_str(), static_cast<int>(total));
  std::fclose(f);
  if (failures != 0) std::remove(path.c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gen_vectors <out-dir>\n");
    return 2;
  }
  if (gen_fixed_point(argv[1]) != 0) return 1;
  return gen_kernels(argv[1]);
}
