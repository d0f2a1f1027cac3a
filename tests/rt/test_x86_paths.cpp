// x86 paths (AVX2, AVX-512 VNNI, AMX-INT8): their tables called directly and through the public
// kernels, checked against plain loops written here and against the reference path, tolerance 0.
// Also: prepacked weights == plain weights on every path, threaded == single-threaded.
#include <cpuid.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "expect_error.hpp"
#include "rt/kernel_tester.hpp"
#include "rt/path_kernels.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/parallel.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

namespace rt = tinyquant::rt;
using rt::Path;
using rt::Status;
using tinyquant_test::elems;

namespace {

bool cpu_has(Path p) {
  if (p == Path::kAvx2) return __builtin_cpu_supports("avx2") != 0;
  if (p == Path::kAvx512Vnni) {
    return __builtin_cpu_supports("avx512vnni") != 0 && __builtin_cpu_supports("avx512bw") != 0 &&
           __builtin_cpu_supports("avx512vl") != 0;
  }
  if (p == Path::kAmx) {
    // Read here, not taken from the library: CPUID leaf 7, sub-leaf 0, EDX bits 24 (AMX-TILE)
    // and 25 (AMX-INT8), the AVX-512 VNNI the path also runs, and on Linux the kernel's grant
    // of the tile data state (ARCH_REQ_XCOMP_PERM for feature 18; asking twice is allowed).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    if (((edx >> 24) & 1u) == 0 || ((edx >> 25) & 1u) == 0 || !cpu_has(Path::kAvx512Vnni))
      return false;
#if defined(__linux__)
    return syscall(SYS_arch_prctl, 0x1023L, 18L) == 0;
#else
    return true;
#endif
  }
  return true;
}

const rt::detail::PathKernels* table(Path p) {
  if (p == Path::kAmx) return rt::detail::amx_kernels();
  return p == Path::kAvx2 ? rt::detail::avx2_kernels() : rt::detail::avx512vnni_kernels();
}

#define TQ_SKIP_UNLESS_CPU(p)                                                               \
  if (!cpu_has(p))                                                                          \
  GTEST_SKIP() << "CPU lacks " << rt::path_name(p) << " instructions (or, for amx, the OS " \
               << "refused the tile state)"

// The gate of every test below: the library must report each x86 path exactly when the CPU
// (and for AMX the OS) has it, else a detection bug would turn those tests into skips.
TEST(X86Detection, SupportedPathsAgreeWithCpuid) {
  for (Path p : {Path::kAvx2, Path::kAvx512Vnni, Path::kAmx})
    EXPECT_EQ((rt::supported_paths() & rt::path_bits(p)) != 0, cpu_has(p)) << rt::path_name(p);
}

uint32_t u(int32_t v) {
  return static_cast<uint32_t>(v);
}

// One random problem: a [m][lda], b [n][ldb] (or int4 stream), requantization, ranges.
struct Case {
  int32_t m = 1, n = 1, k = 1, lda = 1, ldb = 1, ldc = 1;
  int32_t a_offset = 0, b_offset = 0, c_offset = 0, act_min = -128, act_max = 127;
  bool per_channel = false, s4 = false, with_bias = true;
  rt::Rounding rounding = rt::Rounding::kDouble;
  std::vector<int8_t> a, b;   // b is int8 values even when s4 (then in [-8, 7])
  std::vector<uint8_t> b_s4;  // nibble stream of b (row-major, element 2i low nibble)
  std::vector<int32_t> bias, mult, shift;
};

// Plain loops: acc = bias + sum (a + ao)(b + bo) mod 2^32, requantize, + c_offset, clamp.
std::vector<int8_t> oracle_s8(const Case& c) {
  std::vector<int8_t> out(elems(c.m, c.ldc), 0x55);
  for (int32_t i = 0; i < c.m; ++i) {
    for (int32_t j = 0; j < c.n; ++j) {
      uint32_t acc = c.with_bias ? u(c.bias[elems(j)]) : 0u;
      for (int32_t t = 0; t < c.k; ++t) {
        acc +=
            u(c.a[elems(i * c.lda + t)] + c.a_offset) * u(c.b[elems(j * c.ldb + t)] + c.b_offset);
      }
      const int32_t q = c.per_channel ? j : 0;
      int32_t v = rt::requantize(static_cast<int32_t>(acc), c.mult[elems(q)], c.shift[elems(q)],
                                 c.rounding);
      v = rt::wrap_add(v, c.c_offset);  // the kernels' documented 32-bit wrap
      v = v < c.act_min ? c.act_min : (v > c.act_max ? c.act_max : v);
      out[elems(i * c.ldc + j)] = static_cast<int8_t>(v);
    }
  }
  return out;
}

int8_t pick_s8(std::mt19937& rng, bool extremes) {
  if (extremes && rng() % 4 == 0) return rng() % 2 != 0 ? int8_t{-128} : int8_t{127};
  return static_cast<int8_t>(static_cast<int32_t>(rng() % 256) - 128);
}

Case random_case(std::mt19937& rng, int32_t m, int32_t n, int32_t k, bool s4) {
  Case c;
  c.m = m, c.n = n, c.k = k, c.s4 = s4;
  const bool padded = !s4 && rng() % 3 == 0;
  c.lda = k + (padded ? static_cast<int32_t>(rng() % 5) : 0);
  c.ldb = s4 ? k : k + (padded ? static_cast<int32_t>(rng() % 5) : 0);
  c.ldc = n + (padded ? static_cast<int32_t>(rng() % 3) : 0);
  const int32_t offs[] = {-127, 128, 0, 1, -1, 127};
  c.a_offset = rng() % 2 != 0 ? offs[rng() % 6] : static_cast<int32_t>(rng() % 256) - 127;
  c.b_offset = rng() % 2 != 0 ? offs[rng() % 6] : static_cast<int32_t>(rng() % 256) - 127;
  c.c_offset = static_cast<int32_t>(rng() % 256) - 128;
  c.act_min = -128 + static_cast<int32_t>(rng() % 40);
  c.act_max = 127 - static_cast<int32_t>(rng() % 40);
  c.per_channel = rng() % 2 != 0;
  c.with_bias = rng() % 4 != 0;
  c.rounding = rng() % 2 != 0 ? rt::Rounding::kSingle : rt::Rounding::kDouble;
  const bool extremes = rng() % 2 != 0;
  c.a.resize(elems(m, c.lda));
  for (auto& v : c.a) v = pick_s8(rng, extremes);
  c.b.resize(elems(n, c.ldb));
  for (auto& v : c.b) {
    v = s4 ? static_cast<int8_t>(static_cast<int32_t>(rng() % 16) - 8) : pick_s8(rng, extremes);
  }
  if (s4) {
    c.b_s4.assign((elems(n, k) + 1) / 2, 0);
    for (size_t e = 0; e < c.b.size(); ++e) {
      const auto nib = static_cast<uint8_t>(c.b[e] & 0x0F);
      c.b_s4[e / 2] = static_cast<uint8_t>(c.b_s4[e / 2] | (e % 2 != 0 ? nib << 4 : nib));
    }
  }
  c.bias.resize(static_cast<size_t>(n));
  for (auto& v : c.bias) {
    v = rng() % 8 == 0 ? static_cast<int32_t>(rng())
                       : static_cast<int32_t>(rng() % 200001) - 100000;
  }
  const int32_t channels = c.per_channel ? n : 1;
  for (int32_t q = 0; q < channels; ++q) {
    const auto kind = static_cast<uint32_t>(rng() % 6);
    int32_t mult = static_cast<int32_t>((1u << 30) + rng() % (1u << 30));  // [2^30, 2^31 - 1]
    if (kind == 0) mult = INT32_MAX;
    if (kind == 1) mult = 1 << 30;
    if (kind == 2) mult = static_cast<int32_t>(rng() % 1000);
    // Mostly shifts that keep outputs in range (rounding exercised); some anywhere in range.
    int32_t sh = -static_cast<int32_t>(6 + rng() % 12);
    if (kind >= 4) sh = static_cast<int32_t>(rng() % 62) - 31;
    if (kind == 5 && rng() % 2 != 0) sh = rng() % 2 != 0 ? -31 : 30;
    c.mult.push_back(mult);
    c.shift.push_back(sh);
  }
  return c;
}

// The GemmS8Args fields both table runners below fill the same way from a case: m, n, k, a,
// bias, offsets, requantization and clamp; the output (0x55 everywhere) goes to *out.
rt::detail::GemmS8Args case_args(const Case& c, std::vector<int8_t>* out) {
  rt::detail::GemmS8Args g;
  g.m = c.m, g.n = c.n, g.k = c.k;
  g.a = c.a.data(), g.lda = c.lda;
  g.bias = c.with_bias ? c.bias.data() : nullptr;
  g.a_offset = c.a_offset, g.b_offset = c.b_offset;
  out->assign(elems(c.m, c.ldc), 0x55);
  g.c = out->data(), g.ldc = c.ldc;
  g.multiplier = c.mult.data(), g.shift = c.shift.data();
  g.per_channel = c.per_channel, g.rounding = c.rounding;
  g.c_offset = c.c_offset, g.act_min = c.act_min, g.act_max = c.act_max;
  return g;
}

// The path's gemm_s8 table entry on the case, with exactly the scratch it asks for (64-aligned,
// as the public kernels hand it over).
std::vector<int8_t> run_table_s8(Path p, const Case& c) {
  const rt::detail::PathKernels* t = table(p);
  const int32_t bytes = t->gemm_s8_scratch(c.m, c.n, c.k, c.s4);
  std::vector<uint8_t> scratch(static_cast<size_t>(bytes) + 64);
  const auto addr = reinterpret_cast<uintptr_t>(scratch.data());
  std::vector<int8_t> out;
  rt::detail::GemmS8Args g = case_args(c, &out);
  if (c.s4) {
    g.b_s4 = c.b_s4.data();
  } else {
    g.b = c.b.data();
    g.ldb = c.ldb;
  }
  g.scratch = reinterpret_cast<void*>((addr + 63) / 64 * 64);
  t->gemm_s8(g);
  return out;
}

std::string describe(const Case& c) {
  return "m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
         " ao=" + std::to_string(c.a_offset) + " bo=" + std::to_string(c.b_offset) +
         (c.s4 ? " s4" : " s8") + (c.per_channel ? " per-channel" : " per-tensor") +
         (c.rounding == rt::Rounding::kSingle ? " single" : " double");
}

class X86Path : public ::testing::TestWithParam<Path> {};

// Shapes that hit every tail: 1xK GEMV, K % 4 / % 16 / % 64 != 0, N not a multiple of the tile;
// for AMX (m >= 16): m and n not multiples of 16 or 32, a second 128-row panel, k < 64 and
// k > 64 with a tail.
const int32_t kShapes[][3] = {
    {1, 1, 1},   {1, 7, 3},     {1, 8, 16},   {1, 9, 17},     {1, 13, 27},  {1, 128, 27},
    {1, 33, 64}, {1, 17, 65},   {1, 64, 127}, {1, 10, 784},   {2, 5, 5},    {3, 4, 63},
    {4, 4, 64},  {5, 9, 129},   {7, 3, 200},  {8, 16, 255},   {9, 31, 31},  {16, 20, 256},
    {33, 7, 1},  {6, 130, 300}, {1, 3, 1030}, {70, 19, 1100}, {17, 33, 65}, {32, 48, 128},
    {31, 2, 1},  {129, 47, 70}, {48, 16, 64}};

TEST_P(X86Path, GemmS8TableMatchesLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(1234);
  for (const auto& s : kShapes) {
    for (int rep = 0; rep < 6; ++rep) {
      const Case c = random_case(rng, s[0], s[1], s[2], false);
      ASSERT_EQ(run_table_s8(GetParam(), c), oracle_s8(c)) << describe(c);
    }
  }
}

TEST_P(X86Path, GemmS4TableMatchesLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(99);
  for (const auto& s : kShapes) {
    for (int rep = 0; rep < 4; ++rep) {
      const Case c = random_case(rng, s[0], s[1], s[2], true);  // odd k: rows share bytes
      ASSERT_EQ(run_table_s8(GetParam(), c), oracle_s8(c)) << describe(c);
    }
  }
}

// Plain loops for gemm_s32: c = row_add[i] + col_add[j] + sum (a + ao)(b + bo) mod 2^32 (either
// add may be absent); entries outside the n columns of each row keep `fill`.
std::vector<int32_t> oracle_s32(const Case& c, const int32_t* row_add, const int32_t* col_add,
                                int32_t fill) {
  std::vector<int32_t> want(elems(c.m, c.ldc), fill);
  for (int32_t i = 0; i < c.m; ++i) {
    for (int32_t j = 0; j < c.n; ++j) {
      uint32_t acc =
          (row_add != nullptr ? u(row_add[i]) : 0u) + (col_add != nullptr ? u(col_add[j]) : 0u);
      for (int32_t q = 0; q < c.k; ++q) {
        acc +=
            u(c.a[elems(i * c.lda + q)] + c.a_offset) * u(c.b[elems(j * c.ldb + q)] + c.b_offset);
      }
      want[elems(i * c.ldc + j)] = static_cast<int32_t>(acc);
    }
  }
  return want;
}

// The path's gemm_s32 table entry on the case, with exactly the scratch it asks for.
std::vector<int32_t> run_table_s32(Path p, const Case& c, const int32_t* row_add,
                                   const int32_t* col_add, int32_t fill) {
  const rt::detail::PathKernels* t = table(p);
  std::vector<int32_t> got(elems(c.m, c.ldc), fill);
  std::vector<uint8_t> scratch(static_cast<size_t>(t->gemm_s32_scratch(c.m, c.n, c.k)) + 64);
  const auto addr = reinterpret_cast<uintptr_t>(scratch.data());
  rt::detail::GemmS32Args g;
  g.m = c.m, g.n = c.n, g.k = c.k, g.a = c.a.data(), g.lda = c.lda, g.b = c.b.data();
  g.ldb = c.ldb, g.a_offset = c.a_offset, g.b_offset = c.b_offset;
  g.row_add = row_add, g.col_add = col_add;
  g.c = got.data(), g.ldc = c.ldc;
  g.scratch = reinterpret_cast<void*>((addr + 63) / 64 * 64);
  t->gemm_s32(g);
  return got;
}

TEST_P(X86Path, GemmS32TableMatchesLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(7);
  for (const auto& s : kShapes) {
    for (int rep = 0; rep < 4; ++rep) {
      Case c = random_case(rng, s[0], s[1], s[2], false);
      // gemm_s32 admits -128 for both offsets.
      if (rep == 0) c.a_offset = -128, c.b_offset = -128;
      if (rep == 1) c.a_offset = 128, c.b_offset = -128;
      std::vector<int32_t> row_add(static_cast<size_t>(c.m)), col_add(static_cast<size_t>(c.n));
      for (auto& v : row_add) v = static_cast<int32_t>(rng());
      for (auto& v : col_add) v = static_cast<int32_t>(rng());
      const int32_t* row = rep % 2 == 0 ? row_add.data() : nullptr;
      const int32_t* col = rep % 3 != 2 ? col_add.data() : nullptr;
      ASSERT_EQ(run_table_s32(GetParam(), c, row, col, 77), oracle_s32(c, row, col, 77))
          << describe(c);
    }
  }
}

// Requantization edges one at a time, so a failure names the edge: shift -31..30 for multipliers
// near 2^30 and 2^31 - 1, both roundings, accumulators up to the int32 ends (through the bias).
TEST_P(X86Path, RequantizationEdges) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(5);
  for (int32_t shift = rt::kMinShift; shift <= rt::kMaxShift; ++shift) {
    for (int32_t mult : {0, 1, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX}) {
      for (auto rounding : {rt::Rounding::kDouble, rt::Rounding::kSingle}) {
        // 16 rows so the AMX path runs its tiles rather than the VNNI GEMV.
        Case c = random_case(rng, GetParam() == Path::kAmx ? 16 : 1, 19, 5, false);
        c.per_channel = false;
        c.mult = {mult};
        c.shift = {shift};
        c.rounding = rounding;
        c.with_bias = true;
        const int32_t ends[] = {INT32_MIN, INT32_MAX, -1, 1, 0, 1 << 20, -(1 << 20), 3, -3};
        for (size_t j = 0; j < c.bias.size(); ++j) {
          c.bias[j] = j < 9 ? ends[j] : static_cast<int32_t>(rng());
        }
        ASSERT_EQ(run_table_s8(GetParam(), c), oracle_s8(c))
            << "shift " << shift << " multiplier " << mult << " " << describe(c);
      }
    }
  }
}

// The output offset may ride in the 64-bit requantization bias (where 1 + 2|c_offset| <=
// 2^(32 - e) for the call's largest right shift e), and with b_offset 0 the column term too
// (where D + column term cannot leave int32): every right shift with the extreme offsets, per
// tensor and per channel (the other channels shifting less or as much), one panel of rows and
// several (the AMX path's two ways of building its constants); accumulators up to the int32 ends
// through the bias, or, with b_offset 0, up to the largest column term that still folds.
TEST_P(X86Path, OutputOffsetWithEveryRightShift) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(11);
  const int32_t k = 9;
  const int32_t near = INT32_MAX - 2 * k * 128 * 128;  // + a_offset * colsum stays foldable
  for (int32_t shift = rt::kMinShift; shift <= 1; ++shift) {
    for (int32_t c_offset : {-128, 127, -1}) {
      for (int32_t m : {16, 40}) {
        for (bool raw : {false, true}) {
          Case c = random_case(rng, GetParam() == Path::kAmx ? m : m / 8, 35, k, false);
          c.rounding = rt::Rounding::kDouble;
          c.c_offset = c_offset;
          c.with_bias = true;
          c.per_channel = (shift + m / 8) % 2 != 0;
          const size_t channels = c.per_channel ? elems(c.n) : 1;
          c.mult.assign(channels, INT32_MAX);
          c.shift.assign(channels, shift);
          for (size_t q = 1; q < channels; q += 2) {
            c.mult[q] = rng() % 2 != 0 ? 1 << 30 : static_cast<int32_t>(rng() % (1u << 31));
            c.shift[q] = shift < 0 ? shift + static_cast<int32_t>(rng() % 3) : shift;
          }
          const int32_t wide[] = {INT32_MIN, INT32_MAX, -1, 1, 0, 1 << 20, -(1 << 20), 3, -3};
          const int32_t folding[] = {-near, near, -1, 1, 0, near - 1, 1 - near, 3, -3};
          for (size_t j = 0; j < c.bias.size(); ++j) {
            if (j < 9) {
              c.bias[j] = raw ? folding[j] : wide[j];
            } else {
              c.bias[j] =
                  raw ? static_cast<int32_t>(rng() % 2001) - 1000 : static_cast<int32_t>(rng());
            }
          }
          if (raw || c_offset == -1) c.b_offset = 0;  // wide biases: the column term can wrap
          ASSERT_EQ(run_table_s8(GetParam(), c), oracle_s8(c))
              << "shift " << shift << " c_offset " << c_offset << " " << describe(c);
        }
      }
    }
  }
}

// The path's packed entries on the case: b packed by the path (64-byte aligned), then its
// gemm_s8_packed with exactly the scratch it asks for.
std::vector<int8_t> run_packed_table_s8(Path p, const Case& c) {
  const rt::detail::PackedGemmKernels* t = p == Path::kAmx ? rt::detail::amx_packed_kernels()
                                           : p == Path::kAvx512Vnni
                                               ? rt::detail::avx512vnni_packed_kernels()
                                               : rt::detail::avx2_packed_kernels();
  auto aligned = [](std::vector<uint8_t>* v, int64_t bytes) {
    v->resize(static_cast<size_t>(bytes) + 64);
    const auto addr = reinterpret_cast<uintptr_t>(v->data());
    return reinterpret_cast<void*>((addr + 63) / 64 * 64);
  };
  std::vector<uint8_t> packed_buf, scratch_buf;
  void* packed = aligned(&packed_buf, t->packed_bytes(c.n, c.k));
  t->pack(c.b.data(), c.n, c.k, c.ldb, c.b_offset, packed);
  std::vector<int8_t> out;
  rt::detail::GemmS8Args g = case_args(c, &out);
  g.scratch = aligned(&scratch_buf, t->gemm_s8_packed_scratch(c.m, c.n, c.k));
  t->gemm_s8_packed(g, packed);
  return out;
}

// A case for the epilogue-limit tests below: m rows when all_rows (AMX, or a test of the VNNI
// epilogue), else (m + 7) / 8 (the VNNI paths, whose epilogue is not under test there), 35
// columns, row strides k, b_offset 0 (raw D), kDouble, with bias.
Case limit_case(std::mt19937& rng, bool all_rows, int32_t m, int32_t k, int32_t ldc) {
  Case c = random_case(rng, all_rows ? m : (m + 7) / 8, 35, k, false);
  c.lda = k, c.ldb = k, c.ldc = ldc;
  c.b_offset = 0;
  c.rounding = rt::Rounding::kDouble;
  c.with_bias = true;
  return c;
}

// Biases that make column j's term ((a_offset - a_shift) * colsum + bias) equal targets[j] for
// j < count, and a random value in [-spread, spread] after. a_shift: 0 for s8 x s8 D (AMX), 128
// for D = sum (a + 128) * b (VNNI).
void set_column_terms(Case* c, const int32_t* targets, int32_t count, int32_t spread,
                      std::mt19937& rng, int32_t a_shift = 0) {
  for (int32_t j = 0; j < c->n; ++j) {
    uint32_t colsum = 0;
    for (int32_t t = 0; t < c->k; ++t) colsum += u(c->b[elems(j * c->ldb + t)]);
    const int32_t target =
        j < count ? targets[j]
                  : static_cast<int32_t>(rng() % static_cast<uint32_t>(2 * spread + 1)) - spread;
    c->bias[elems(j)] = static_cast<int32_t>(u(target) - (u(c->a_offset) - u(a_shift)) * colsum);
  }
}

// The table entry and the prepacked one both equal the loops.
void expect_limit_case(Path p, const Case& c, const std::string& what) {
  const std::vector<int8_t> want = oracle_s8(c);
  ASSERT_EQ(run_table_s8(p, c), want) << what;
  ASSERT_EQ(run_packed_table_s8(p, c), want) << "prepacked " << what;
}

// The limits of the AMX epilogue's folds (b_offset 0, so raw D with |D| <= k * 128 * 128), each
// met exactly and missed by one: the column term at INT32_MAX - k * 2^14 and at 2^14 * k -
// INT32_MAX (with a row and a column of -128 so D + column term reaches INT32_MAX) and one past
// either, for k = 64, 100 and 131071 (where the bound leaves column terms of +-16383); right
// shifts 23 and 24 with output offsets 127, -128 and 128 (1 + 2|c| against 2^(32 - e)); column
// terms -1 and -2 on a row of zeros with multipliers 2^30 and 2^30 + 1 (x * m at -2^30, -2^30 - 1
// and -2^31: the half-away test against -2^30 - ct * m); per tensor and per channel with groups of
// 16 columns that all shift right (the 32-bit final shift), groups mixing e = 0 or left shifts
// in; n 35 (a short last group), m 16, 17, 33 and 48 (one panel, several); plain and prepacked.
TEST_P(X86Path, FoldLimitsMatchLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(23);
  const bool amx = GetParam() == Path::kAmx;
  for (int32_t k : {64, 100, 131071}) {
    const int64_t d_bound = int64_t{k} * 128 * 128;
    const auto top = static_cast<int32_t>(INT32_MAX - d_bound);
    const int32_t tops[] = {top, top + 1, top, top};          // at, one past, at, at
    const int32_t lows[] = {-top, -top, -top - 1, -top + 1};  // at, at, one past, inside
    for (int variant = 0; variant < 4; ++variant) {
      for (int32_t m : {16, 17, 33, 48}) {
        if (k > 100 && m != 17) continue;  // one large-k call per variant is enough
        Case c = limit_case(rng, amx, m, k, 35 + variant);
        c.a_offset = variant % 2 == 0 ? -128 : 128;
        // Row 0 all -128, row 1 all 127, row 2 all 0; column 0 all -128, column 1 all 127.
        for (int32_t t = 0; t < k; ++t) {
          c.a[elems(t)] = -128;
          if (c.m > 1) c.a[elems(c.lda + t)] = 127;
          if (c.m > 2) c.a[elems(2 * c.lda + t)] = 0;
          c.b[elems(t)] = -128;
          c.b[elems(c.ldb + t)] = 127;
        }
        const int32_t targets[] = {tops[variant], lows[variant], -1, -2, -1, 0};
        set_column_terms(&c, targets, 6, 16383, rng);
        for (int32_t c_offset : {127, -128, 128}) {
          for (int32_t e : {23, 24}) {
            for (int mix = 0; mix < 4; ++mix) {
              // The output-offset and shift limits do not depend on k: at k = 131071 (the
              // column-term limit only, and the costliest loops) one of them, per tensor and
              // per channel.
              if (k > 100 && (c_offset != 127 || e != 23 || mix > 1)) continue;
              c.c_offset = c_offset;
              c.per_channel = mix != 0;
              c.act_min = mix == 2 ? -100 : -128;
              c.act_max = mix == 2 ? 90 : 127;
              const size_t channels = c.per_channel ? elems(c.n) : 1;
              c.mult.assign(channels, INT32_MAX);
              c.shift.assign(channels, -e);
              for (size_t q = 0; q < channels; ++q) {
                const int32_t mults[] = {INT32_MAX, 1 << 30, (1 << 30) + 1, INT32_MAX - 1};
                c.mult[q] = q < 6 && q >= 2 ? (q == 4 ? (1 << 30) + 1 : 1 << 30) : mults[q % 4];
                // mix 1: every column shifts right by 1..e; mix 2: the second group of 16
                // also has e = 0 columns; mix 3: and left shifts.
                if (mix >= 1 && q % 3 == 1) c.shift[q] = -1 - static_cast<int32_t>(rng() % 23);
                if (mix >= 2 && q >= 16 && q % 5 == 0) c.shift[q] = 0;
                if (mix == 3 && q >= 16 && q % 7 == 0) c.shift[q] = static_cast<int32_t>(rng() % 3);
              }
              // Row 2 (x = column term), shift 1: x * m = -2^30 (h = 0) in column 2, -2^31 in
              // column 3, and -2^30 - 1 in column 4 (h = -1, which must round to -1, not 0).
              if (c.per_channel) c.shift[2] = c.shift[3] = c.shift[4] = -1;
              expect_limit_case(GetParam(), c,
                                "variant " + std::to_string(variant) + " c_offset " +
                                    std::to_string(c_offset) + " e " + std::to_string(e) + " mix " +
                                    std::to_string(mix) + " " + describe(c));
              if (HasFatalFailure()) return;
            }
          }
        }
      }
    }
  }
}

// The limit of the AMX epilogue's doubled form (b_offset 0, raw D <= k * 128 * 128; see
// DoubleParams in avx512_epilogue.hpp): the largest |x| = D + column term with xb + 2^(e-1) (1 +
// 2|c_offset|) <= 2^31 - 1 met exactly, where row 0 of column 0 reaches V = INT32_MAX (x = xb,
// m = 2^31 - 1), and missed by one or by up to x = INT32_MAX (the call must take the other form,
// else V wraps); e 31 with c_offset 0, e 23 with 128 and -128, e 24 with 64, e 1 with 128 (where
// only x near INT32_MAX wraps V). In the same call: multipliers 2^30 - 1 (2m fits an int32),
// 2^30 (m2 = INT32_MIN) and 0 at x = xb; column terms -1, 0 and 1 on a row of zeros with m =
// 2^30 + 1 and e = 1 (the half-away test x < 0 at its edge: h = -1 must round to -1, h = 1 to
// 1), and with e = 0 (no correction); later columns with moderate x and multipliers on both
// sides of 2^30; per tensor and per channel, one panel and several, plain and prepacked.
TEST_P(X86Path, DoubledFormLimitsMatchLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(29);
  const bool amx = GetParam() == Path::kAmx;
  struct Edge {
    int32_t e, c_offset;
  };
  for (const Edge edge : {Edge{31, 0}, Edge{23, 128}, Edge{23, -128}, Edge{24, 64}, Edge{1, 128}}) {
    const int64_t spare = (int64_t{1} << (edge.e - 1)) * (2 * std::abs(edge.c_offset) + 1);
    const int64_t xb = INT32_MAX - spare;  // the largest |x| the doubled form admits
    for (int32_t k : {64, 100}) {
      const int64_t d_bound = int64_t{k} * 128 * 128;
      for (const int64_t past : {int64_t{0}, int64_t{1}, spare}) {  // spare: x up to INT32_MAX
        const auto top = static_cast<int32_t>(xb - d_bound + past);
        for (int32_t m : {16, 33}) {
          Case c = limit_case(rng, amx, m, k, 35);
          c.c_offset = edge.c_offset;
          c.act_min = -128, c.act_max = 127;
          // Row 0 all -128, row 1 all 127, row 2 all 0; columns 0, 2, 3, 4 and 9 all -128,
          // column 1 all 127.
          for (int32_t t = 0; t < k; ++t) {
            c.a[elems(t)] = -128;
            if (c.m > 1) c.a[elems(c.lda + t)] = 127;
            if (c.m > 2) c.a[elems(2 * c.lda + t)] = 0;
            for (int32_t j : {0, 2, 3, 4, 9}) c.b[elems(j * c.ldb + t)] = -128;
            c.b[elems(c.ldb + t)] = 127;
          }
          const int32_t targets[] = {top, -top, top, top, top, -1, 0, 1, -1, top};
          set_column_terms(&c, targets, 10, 16383, rng);
          for (bool per_channel : {false, true}) {
            c.per_channel = per_channel;
            const size_t channels = per_channel ? elems(c.n) : 1;
            c.mult.assign(channels, INT32_MAX);
            c.shift.assign(channels, -edge.e);
            for (size_t q = 2; q < channels; ++q) {
              const int32_t mults[] = {(1 << 30) - 1, 1 << 30,       0,
                                       (1 << 30) + 1, (1 << 30) + 1, (1 << 30) + 1,
                                       (1 << 30) + 1, INT32_MAX};
              // Columns 10 on: moderate x, right shifts 8..13 (or 0), so most outputs do not
              // saturate and a wrong D or c term shows.
              const int32_t later[] = {(1 << 30) - 1, 1 << 30, (1 << 30) + 1, INT32_MAX,
                                       static_cast<int32_t>(rng() % (1u << 31))};
              c.mult[q] = q < 10 ? mults[q - 2] : later[q % 5];
              if (q >= 5 && q <= 7) c.shift[q] = -1;
              if (q >= 10) c.shift[q] = -8 - static_cast<int32_t>(rng() % 6);
              if (q == 8 || q == 9 || (q >= 10 && q % 7 == 0)) c.shift[q] = 0;
            }
            expect_limit_case(GetParam(), c,
                              "e " + std::to_string(edge.e) + " c_offset " +
                                  std::to_string(edge.c_offset) + " past " + std::to_string(past) +
                                  " " + describe(c));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// The AMX epilogue's doubled form at the longest k it admits (b_offset 0, |D| <= k * 2^14; see
// DoubleParams in avx512_epilogue.hpp): k = 131071 leaves column terms of +-16382 with right
// shifts 0 and 1 and c_offset 0 (xb + 1 <= 2^31 - 1), so raw D itself reaches 2^31 - 2^14 and
// 2D does not fit an int32 (the form must double m, never D: doubling D passes every test with
// k <= 100). Rows and columns of constant values give D = k * a * b from -128 * -128 down to
// 127 * -128; small multipliers keep most outputs unsaturated, and m = 1 puts x * m below -2^30
// (h = -1, where the correction c = [x < 0] decides the result), so an error in D, in the
// add-back of D (m >= 2^30) or in c shows; per tensor and per channel, one panel and several,
// plain and prepacked.
TEST_P(X86Path, DoubledFormLongKMatchesLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(31);
  const bool amx = GetParam() == Path::kAmx;
  constexpr int32_t k = 131071;
  const int8_t row_values[] = {-128, 127, 0, 1, -1, 64, -64, 3, -2, 2};
  const int8_t col_values[] = {-128, 127, -128, 127, 1, -1, 100, -100, -128, 127, 64, -64};
  for (int32_t m : {16, 33}) {
    Case c = limit_case(rng, amx, m, k, 35);
    c.c_offset = 0;
    c.act_min = -128, c.act_max = 127;
    for (int32_t i = 0; i < c.m && i < 10; ++i)
      for (int32_t t = 0; t < k; ++t) c.a[elems(i * c.lda + t)] = row_values[i];
    for (int32_t j = 0; j < 12; ++j)
      for (int32_t t = 0; t < k; ++t) c.b[elems(j * c.ldb + t)] = col_values[j];
    // Column terms: +-16382 (the largest the bound admits) in columns 0-3, random within it after.
    const int32_t targets[] = {16382, -16382, -16382, 16382};
    set_column_terms(&c, targets, 4, 16382, rng);
    const int32_t mults[] = {1, 2, 3, 7, 100, 1000, 0, (1 << 30) - 1, 1 << 30, INT32_MAX, 12345};
    for (int variant = 0; variant < 3; ++variant) {
      c.per_channel = variant == 2;
      const size_t channels = c.per_channel ? elems(c.n) : 1;
      c.mult.assign(channels, variant == 0 ? 5 : (1 << 30) + 5);
      c.shift.assign(channels, variant == 0 ? -1 : 0);
      for (size_t q = 0; c.per_channel && q < channels; ++q) {
        c.mult[q] = mults[q % 11];
        c.shift[q] = q % 3 == 2 ? 0 : -1;
      }
      expect_limit_case(GetParam(), c, "variant " + std::to_string(variant) + " " + describe(c));
      if (HasFatalFailure()) return;
    }
  }
}

// The prepacked VNNI GEMM (also the AMX path's below 16 rows) folds the column term into the
// requantization for m > 1 when D + column term cannot wrap, with raw D = sum (a + 128) * b,
// so |D| <= k * 255 * 128 (a row of 127 against columns of 127 and -128: D = 32385 k and
// -32640 k). Column terms (a_offset - 128) * colsum + bias at that bound, and past it where
// D + column term wraps int32 (the call must then not fold: the reference wraps); a bound
// taken from the s8 x s8 product (k * 128 * 128) folds those and fails. m 2, 7 and 13 (tiles
// of 6 rows and their tails), n 35, per tensor and per channel.
TEST_P(X86Path, PackedVnniFoldLimitsMatchLoops) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  if (GetParam() == Path::kAvx2) GTEST_SKIP() << "the avx2 epilogue has no fold";
  std::mt19937 rng(37);
  for (int32_t k : {64, 100}) {
    const auto top = static_cast<int32_t>(INT32_MAX - int64_t{k} * 255 * 128);
    const auto wrap_high = static_cast<int32_t>(INT32_MAX - int64_t{k} * 255 * 127 + 1);
    const int32_t highs[] = {top, wrap_high, top};  // at the bound, wrapping, at
    const int32_t lows[] = {-top, -top, -top - 1};  // at, at, wrapping
    for (int variant = 0; variant < 3; ++variant) {
      for (int32_t m : {2, 7, 13}) {
        Case c = limit_case(rng, true, m, k, 35);
        c.a_offset = variant == 1 ? 128 : -127;
        for (int32_t t = 0; t < k; ++t) {
          c.a[elems(t)] = 127;           // fed to vpdpbusd as 255
          c.a[elems(c.lda + t)] = -128;  // as 0: D = 0, x = the column term
          c.b[elems(t)] = 127;
          c.b[elems(c.ldb + t)] = -128;
        }
        const int32_t targets[] = {highs[variant], lows[variant]};
        set_column_terms(&c, targets, 2, 10000, rng, 128);
        for (bool per_channel : {false, true}) {
          c.per_channel = per_channel;
          const size_t channels = per_channel ? elems(c.n) : 1;
          c.mult.assign(channels, (1 << 30) + 12345);
          c.shift.assign(channels, -24);
          for (size_t q = 1; q < channels; ++q) c.shift[q] = -1 - static_cast<int32_t>(q % 24);
          c.c_offset = variant == 2 ? -128 : 5;
          expect_limit_case(GetParam(), c,
                            "variant " + std::to_string(variant) + " " + describe(c));
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Through the public kernels: forced path == reference path, for FC (s8, s4), conv2d, gemm_s32.
TEST_P(X86Path, PublicKernelsMatchReference) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  std::mt19937 rng(42);
  for (const auto& s : kShapes) {
    for (bool s4 : {false, true}) {
      Case c = random_case(rng, s[0], s[1], s[2], s4);
      rt::FcParams fp{c.a_offset, c.b_offset, c.c_offset, c.act_min, c.act_max};
      if (fp.filter_offset < -127) fp.filter_offset = -127;
      rt::Requant rq{c.mult.data(), c.shift.data(), c.per_channel, c.rounding};
      const rt::FcDims d{c.m, c.k, c.n};
      std::vector<int8_t> a(elems(c.m, c.k));
      for (int32_t i = 0; i < c.m; ++i)
        std::memcpy(&a[elems(i * c.k)], &c.a[elems(i * c.lda)], elems(c.k));
      std::vector<int8_t> w(elems(c.n, c.k));
      for (int32_t j = 0; j < c.n; ++j)
        std::memcpy(&w[elems(j * c.k)], &c.b[elems(j * c.ldb)], elems(c.k));
      std::vector<int8_t> got(elems(c.m, c.n), 1), want(got.size(), 2);
      for (Path p : {GetParam(), Path::kReference}) {
        std::vector<uint8_t> scratch(
            static_cast<size_t>(s4 ? rt::fully_connected_s4_scratch_size(d, p)
                                   : rt::fully_connected_s8_scratch_size(d, p)));
        rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), p};
        int8_t* out = p == Path::kReference ? want.data() : got.data();
        const int32_t* bias = c.with_bias ? c.bias.data() : nullptr;
        const Status st =
            s4 ? rt::fully_connected_s4(ctx, fp, rq, d, a.data(), c.b_s4.data(), bias, out)
               : rt::fully_connected_s8(ctx, fp, rq, d, a.data(), w.data(), bias, out);
        ASSERT_EQ(st, Status::kOk) << rt::path_name(p);
      }
      ASSERT_EQ(got, want) << describe(c);
    }
  }
  // conv2d lowers onto gemm_s8 (im2col and the direct 1x1 form).
  for (int rep = 0; rep < 8; ++rep) {
    rt::ConvDims d;
    d.in_h = 5 + static_cast<int32_t>(rng() % 6), d.in_w = 4 + static_cast<int32_t>(rng() % 6);
    d.in_c = 1 + static_cast<int32_t>(rng() % 20);
    const bool pointwise = rep % 2 == 0;
    d.kernel_h = d.kernel_w = pointwise ? 1 : 3;
    rt::ConvParams cp;
    cp.pad_top = cp.pad_left = pointwise ? 0 : 1;
    d.out_h = d.in_h, d.out_w = d.in_w, d.out_c = 1 + static_cast<int32_t>(rng() % 40);
    cp.input_offset = static_cast<int32_t>(rng() % 256) - 127;
    cp.filter_offset = rep == 1 ? 128 : 0;
    cp.output_offset = -5;
    std::vector<int8_t> in(elems(d.in_h, d.in_w, d.in_c));
    std::vector<int8_t> w(elems(d.out_c, d.kernel_h, d.kernel_w, d.in_c));
    for (auto& v : in) v = pick_s8(rng, true);
    for (auto& v : w) v = pick_s8(rng, true);
    std::vector<int32_t> mult(static_cast<size_t>(d.out_c), 1 << 30), shift(mult.size(), -9);
    const rt::Requant rq{mult.data(), shift.data(), true, rt::Rounding::kDouble};
    std::vector<int8_t> got(elems(d.out_h, d.out_w, d.out_c)), want(got.size());
    for (Path p : {GetParam(), Path::kReference}) {
      std::vector<uint8_t> scratch(static_cast<size_t>(rt::conv2d_s8_scratch_size(cp, d, p)));
      rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), p};
      ASSERT_EQ(rt::conv2d_s8(ctx, cp, rq, d, in.data(), w.data(), nullptr,
                              p == Path::kReference ? want.data() : got.data()),
                Status::kOk);
    }
    ASSERT_EQ(got, want) << "conv rep " << rep;
  }
  for (const auto& s : kShapes) {
    const Case c = random_case(rng, s[0], s[1], s[2], false);
    const rt::GemmDims d{c.m, c.n, c.k, c.lda, c.ldb, c.ldc};
    std::vector<int32_t> got(elems(c.m, c.ldc), 3), want(got.size(), 3);
    for (Path p : {GetParam(), Path::kReference}) {
      std::vector<uint8_t> scratch(static_cast<size_t>(rt::gemm_s8s8_s32_scratch_size(d, p)));
      rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), p};
      ASSERT_EQ(rt::gemm_s8s8_s32(ctx, d, c.a.data(), c.a_offset, c.b.data(), c.b_offset, nullptr,
                                  c.bias.data(), p == Path::kReference ? want.data() : got.data()),
                Status::kOk);
    }
    ASSERT_EQ(got, want) << describe(c);
  }
}

// Depthwise through the public kernel, forced path == reference path == the tester's own loops:
// 3x3 / 5x5 / 1x1 kernels, stride 1 and 2, SAME / VALID / explicit padding, dilation 2, channel
// multipliers 1-3, channel counts around both kernels' 16- and 32-lane blocks, batch 2, the
// extreme offsets, both roundings, null bias, narrow clamps.
TEST_P(X86Path, DepthwiseMatchesReference) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  using tinyquant_test::ConvTester;
  struct Geometry {
    int32_t h, w, k, stride, dilation;
    bool same;
  };
  const Geometry geometries[] = {{7, 6, 3, 1, 1, true},  {9, 8, 5, 2, 1, false},
                                 {4, 5, 1, 1, 1, false}, {8, 9, 3, 2, 2, true},
                                 {6, 7, 3, 1, 2, false}, {5, 5, 5, 1, 1, true}};
  const int32_t offsets[][2] = {{0, 0},      {-127, 0},  {0, 128},    {128, -127},
                                {-127, 128}, {128, 128}, {-127, -127}};
  uint32_t seed = 0;
  for (int32_t channels : {1, 7, 8, 15, 16, 17, 31, 32, 33}) {
    for (int32_t mult : {1, 2, 3}) {
      for (const Geometry& g : geometries) {
        ++seed;
        const auto& off = offsets[seed % 7];
        ConvTester t;
        t.batch(seed % 4 == 0 ? 2 : 1)
            .input(g.h, g.w, channels)
            .kernel(g.k, g.k)
            .stride(g.stride, g.stride)
            .dilation(g.dilation, g.dilation)
            .depth_multiplier(mult)
            .input_offset(off[0])
            .filter_offset(off[1])
            .output_offset(static_cast<int32_t>(seed % 7) * 40 - 128)
            .per_channel(seed % 2 == 0)
            .rounding(seed % 3 == 0 ? rt::Rounding::kSingle : rt::Rounding::kDouble)
            .bias(seed % 5 != 1)
            .seed(seed);
        if (seed % 6 == 2) t.act(-3, 7);
        // Both offsets extreme: every product has one sign, so scale the sums (mean about
        // -+16000 a tap) into the output range instead of saturating them all.
        if (off[0] != 0 && off[1] != 0) {
          const int32_t s = g.k == 1 ? -8 : (g.k == 3 ? -11 : -12);
          t.shift_range(s, s);
        }
        if (g.same) {
          t.padding_same();
        } else {
          t.padding_valid();
        }
        SCOPED_TRACE(::testing::Message()
                     << "channels " << channels << " multiplier " << mult << " kernel " << g.k
                     << " stride " << g.stride << " dilation " << g.dilation << " seed " << seed);
        t.test_depthwise(GetParam());
        if (HasFatalFailure()) return;
      }
    }
  }
  // Asymmetric explicit padding (bottom/right negative: rows and columns left unread) and a
  // padding larger than the kernel reach, so whole output rows see no input.
  ConvTester().input(7, 8, 17).kernel(3, 3).padding(2, 0, -1, 3).test_depthwise(GetParam());
  // Non-square kernels, and one past the kernels' interior weight table (7x7 = 49 taps).
  ConvTester().input(6, 9, 20).kernel(2, 5).padding_valid().test_depthwise(GetParam());
  ConvTester()
      .input(5, 6, 9)
      .kernel(5, 2)
      .depth_multiplier(2)
      .stride(1, 2)
      .padding_same()
      .test_depthwise(GetParam());
  ConvTester()
      .input(10, 9, 18)
      .kernel(7, 7)
      .depth_multiplier(2)
      .padding_same()
      .shift_range(-14, -10)
      .test_depthwise(GetParam());
  ConvTester()
      .input(3, 4, 33)
      .kernel(3, 3)
      .depth_multiplier(2)
      .padding(4, 4, 4, 4)
      .test_depthwise(GetParam());
  // Requantization edges: every shift with multipliers near 2^31, per channel and per tensor,
  // on small accumulators so large left shifts do not saturate every output.
  for (int32_t shift = rt::kMinShift; shift <= rt::kMaxShift; ++shift) {
    for (auto rounding : {rt::Rounding::kDouble, rt::Rounding::kSingle}) {
      ConvTester()
          .input(4, 3, 19)
          .kernel(3, 3)
          .padding_same()
          .depth_multiplier(shift % 2 == 0 ? 1 : 2)
          .input_offset(shift % 3 == 0 ? 128 : -127)
          .filter_offset(-5)
          .small_values(true)
          .per_channel(shift % 2 != 0)
          .shift_range(shift, shift)
          .multiplier_range(INT32_MAX - 3, INT32_MAX)
          .rounding(rounding)
          .seed(static_cast<uint32_t>(shift + 100))
          .test_depthwise(GetParam());
      if (HasFatalFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, X86Path,
                         ::testing::Values(Path::kAvx2, Path::kAvx512Vnni, Path::kAmx),
                         [](const ::testing::TestParamInfo<Path>& param_info) {
                           return std::string(rt::path_name(param_info.param));
                         });

// ---- Prepacking -------------------------------------------------------------------------------

struct FcCase {
  rt::FcParams params;
  rt::FcDims dims;
  std::vector<int8_t> input, weights;
  std::vector<int32_t> bias, mult, shift;
  rt::Rounding rounding = rt::Rounding::kDouble;
  rt::Requant requant() const { return {mult.data(), shift.data(), true, rounding}; }
};

FcCase random_fc(std::mt19937& rng, int32_t batch, int32_t k, int32_t n) {
  FcCase f;
  f.dims = {batch, k, n};
  f.params.input_offset = static_cast<int32_t>(rng() % 256) - 127;
  f.params.filter_offset = static_cast<int32_t>(rng() % 256) - 127;
  f.params.output_offset = 3;
  f.input.resize(elems(batch, k));
  f.weights.resize(elems(n, k));
  for (auto& v : f.input) v = pick_s8(rng, true);
  for (auto& v : f.weights) v = pick_s8(rng, true);
  for (int32_t j = 0; j < n; ++j) {
    f.bias.push_back(static_cast<int32_t>(rng() % 20001) - 10000);
    f.mult.push_back(static_cast<int32_t>((1u << 30) + rng() % (1u << 30)));
    f.shift.push_back(-static_cast<int32_t>(8 + rng() % 10));
  }
  return f;
}

std::vector<int8_t> run_fc(const FcCase& f, Path p) {
  std::vector<uint8_t> scratch(static_cast<size_t>(rt::fully_connected_s8_scratch_size(f.dims, p)));
  rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), p};
  std::vector<int8_t> out(elems(f.dims.batch, f.dims.out_features));
  const rt::Requant rq = f.requant();
  EXPECT_EQ(rt::fully_connected_s8(ctx, f.params, rq, f.dims, f.input.data(), f.weights.data(),
                                   f.bias.data(), out.data()),
            Status::kOk);
  return out;
}

// A 64-byte aligned packed buffer for f on path p.
struct Packed {
  std::vector<uint64_t> storage;
  void* data() { return storage.data(); }
};

Packed pack_fc(const FcCase& f, Path p) {
  const int32_t size = rt::fully_connected_s8_prepacked_size(f.dims, p);
  EXPECT_GT(size, 64);
  Packed pk;
  pk.storage.resize(static_cast<size_t>(size) / 8 + 1);
  EXPECT_EQ(rt::fully_connected_s8_prepack(f.params, f.dims, f.weights.data(), p, pk.data(), size),
            Status::kOk);
  return pk;
}

Status run_packed(const FcCase& f, const void* packed, Path ctx_path, int8_t* out) {
  std::vector<uint8_t> scratch(
      static_cast<size_t>(rt::fully_connected_s8_prepacked_scratch_size(f.dims, packed)));
  rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), ctx_path};
  const rt::Requant rq = f.requant();
  return rt::fully_connected_s8_prepacked(ctx, f.params, rq, f.dims, f.input.data(), packed,
                                          f.bias.data(), out);
}

// Sets header word `word` (0-6: the fields the check word covers) to value and rewrites the
// check word (word 7: FNV-1a over the little-endian bytes of words 0-6), so the header stays
// valid and only that field differs.
void rewrite_header_word(Packed* pk, int word, uint32_t value) {
  auto* words = reinterpret_cast<uint32_t*>(pk->data());
  words[word] = value;
  uint32_t x = 2166136261u;
  for (int w = 0; w < 7; ++w) {
    for (int b = 0; b < 4; ++b) {
      x ^= (words[w] >> (8 * b)) & 0xFFu;
      x *= 16777619u;
    }
  }
  words[7] = x;
}

TEST(Prepack, PackedEqualsUnpackedOnEveryPath) {
  std::mt19937 rng(11);
  for (Path p : {Path::kReference, Path::kSmlad, Path::kAvx2, Path::kAvx512Vnni, Path::kAmx}) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;  // not on this CPU
    for (const auto& s : kShapes) {
      const FcCase f = random_fc(rng, s[0], s[2], s[1]);
      Packed pk = pack_fc(f, p);
      EXPECT_EQ(rt::fully_connected_s8_prepacked_path(pk.data()), p);
      std::vector<int8_t> got(elems(s[0], s[1]));
      ASSERT_EQ(run_packed(f, pk.data(), Path::kAuto, got.data()), Status::kOk);
      ASSERT_EQ(got, run_fc(f, Path::kReference))
          << rt::path_name(p) << " m=" << s[0] << " n=" << s[1] << " k=" << s[2];
    }
  }
}

TEST(Prepack, RejectsBadAndMismatchedBuffers) {
  std::mt19937 rng(3);
  const Path p = rt::default_path();
  const FcCase f = random_fc(rng, 1, 40, 24);
  Packed pk = pack_fc(f, p);
  std::vector<int8_t> out(24, 9);
  const std::vector<int8_t> untouched = out;

  // Corrupt header: magic, and a field the check word covers.
  Packed bad = pk;
  reinterpret_cast<uint8_t*>(bad.data())[0] ^= 1;
  EXPECT_EQ(run_packed(f, bad.data(), Path::kAuto, out.data()), Status::kBadArgument);
  bad = pk;
  reinterpret_cast<uint8_t*>(bad.data())[16] ^= 4;  // k
  EXPECT_EQ(run_packed(f, bad.data(), Path::kAuto, out.data()), Status::kBadArgument);
  // Other dims, other filter_offset, other path than the packed one.
  FcCase g = f;
  g.dims.in_features = 39;
  EXPECT_EQ(run_packed(g, pk.data(), Path::kAuto, out.data()), Status::kBadArgument);
  g = f;
  g.dims.out_features = 23;
  EXPECT_EQ(run_packed(g, pk.data(), Path::kAuto, out.data()), Status::kBadArgument);
  g = f;
  g.params.filter_offset = f.params.filter_offset == 0 ? 1 : 0;
  EXPECT_EQ(run_packed(g, pk.data(), Path::kAuto, out.data()), Status::kBadArgument);
  const Path other = p == Path::kReference ? Path::kSmlad : Path::kReference;
  EXPECT_EQ(run_packed(f, pk.data(), other, out.data()), Status::kBadArgument);
  // Misaligned and null buffers.
  // The buffer must be 4-byte aligned: every other offset inside a word is refused.
  std::vector<uint8_t> shifted(pk.storage.size() * 8 + 8);
  for (size_t off : {1, 2, 3}) {
    std::memcpy(shifted.data() + off, pk.data(), pk.storage.size() * 8);
    EXPECT_EQ(run_packed(f, shifted.data() + off, Path::kAuto, out.data()), Status::kBadArgument)
        << off;
  }
  EXPECT_EQ(run_packed(f, nullptr, Path::kAuto, out.data()), Status::kNullPointer);
  EXPECT_EQ(rt::fully_connected_s8_prepacked_path(bad.data()), Path::kAuto);
  EXPECT_EQ(out, untouched);
  // A run with the right buffer but scratch one byte short.
  const int32_t need = rt::fully_connected_s8_prepacked_scratch_size(f.dims, pk.data());
  if (need > 0) {
    std::vector<uint8_t> scratch(static_cast<size_t>(need));
    rt::Context ctx{scratch.data(), need - 1, Path::kAuto};
    const rt::Requant rq = f.requant();
    EXPECT_EQ(rt::fully_connected_s8_prepacked(ctx, f.params, rq, f.dims, f.input.data(), pk.data(),
                                               f.bias.data(), out.data()),
              Status::kScratchTooSmall);
  }

  // Packing itself: too small a buffer, bad filter_offset, bad dims, null pointers.
  const int32_t size = rt::fully_connected_s8_prepacked_size(f.dims, p);
  std::vector<uint64_t> buf(static_cast<size_t>(size) / 8 + 1);
  EXPECT_EQ(
      rt::fully_connected_s8_prepack(f.params, f.dims, f.weights.data(), p, buf.data(), size - 1),
      Status::kScratchTooSmall);
  rt::FcParams bp = f.params;
  bp.filter_offset = -128;
  EXPECT_EQ(rt::fully_connected_s8_prepack(bp, f.dims, f.weights.data(), p, buf.data(), size),
            Status::kBadOffset);
  rt::FcDims bd = f.dims;
  bd.in_features = 0;
  EXPECT_EQ(rt::fully_connected_s8_prepack(f.params, bd, f.weights.data(), p, buf.data(), size),
            Status::kBadDimension);
  EXPECT_EQ(rt::fully_connected_s8_prepacked_size(bd, p), 0);
  EXPECT_EQ(rt::fully_connected_s8_prepack(f.params, f.dims, nullptr, p, buf.data(), size),
            Status::kNullPointer);
  EXPECT_EQ(rt::fully_connected_s8_prepack(f.params, f.dims, f.weights.data(), p, nullptr, size),
            Status::kNullPointer);
  EXPECT_EQ(rt::fully_connected_s8_prepack(f.params, f.dims, f.weights.data(), Path::kNeon,
                                           buf.data(), size),
            Status::kPathUnavailable);
  // Into a buffer with room for size bytes at any offset, 4-byte aligned or not.
  std::vector<uint64_t> roomy(static_cast<size_t>(size) / 8 + 2);
  for (size_t off : {1, 2, 3}) {
    EXPECT_EQ(rt::fully_connected_s8_prepack(f.params, f.dims, f.weights.data(), p,
                                             reinterpret_cast<uint8_t*>(roomy.data()) + off, size),
              Status::kBadArgument)
        << off;
  }
}

// The avx2 path's 6x16 outer-product kernel (plain int8 calls with m >= kAvx2C2MinRows, and every
// prepacked call): row counts of every residue mod 6 around the hand-over from the 2x4 tiles,
// two blocks of widened rows, every column residue mod 16 and k from 1 (one padded pair) up.
TEST(Avx2Kernel6x16, EveryTailMatchesLoops) {
  TQ_SKIP_UNLESS_CPU(Path::kAvx2);
  constexpr int32_t kMin = rt::detail::kAvx2C2MinRows;
  std::mt19937 rng(616);
  int32_t cases = 0;
  for (int32_t m : {kMin - 1, kMin, kMin + 1, 6, 11, 13, 24, 47}) {
    for (int32_t n = 1; n <= 34; n += n < 18 ? 1 : 15) {
      for (int32_t k : {1, 2, 3, 16, 17, 34}) {
        Case c = random_case(rng, m, n, k, false);
        if (cases % 5 == 0) c.a_offset = -128, c.b_offset = -128;  // gemm_s32 extremes
        ASSERT_EQ(run_table_s8(Path::kAvx2, c), oracle_s8(c)) << describe(c);
        std::vector<int32_t> col_add(static_cast<size_t>(n), -3 * n);
        std::vector<int32_t> row_add(static_cast<size_t>(m), 1 << 30);
        ASSERT_EQ(run_table_s32(Path::kAvx2, c, row_add.data(), col_add.data(), 7),
                  oracle_s32(c, row_add.data(), col_add.data(), 7))
            << describe(c);
        ++cases;
      }
    }
  }
  // k large enough that the widened rows of a come in several blocks (and the last is short).
  for (int32_t m : {kMin, 50, 97}) {
    Case c = random_case(rng, m, 21, 1601, false);
    ASSERT_EQ(run_table_s8(Path::kAvx2, c), oracle_s8(c)) << describe(c);
    ASSERT_EQ(run_table_s32(Path::kAvx2, c, nullptr, nullptr, 7),
              oracle_s32(c, nullptr, nullptr, 7))
        << describe(c);
  }
  // Prepacked weights run the same kernel at every m, GEMV included.
  for (int32_t m : {1, 2, 5, 6, 7, 13, 50}) {
    for (int32_t n : {1, 15, 16, 17, 40, 64, 81, 130}) {  // GEMV: 4 panels a pass, then single ones
      for (int32_t k : {1, 2, 17, 33, 1601}) {
        const FcCase f = random_fc(rng, m, k, n);
        Packed pk = pack_fc(f, Path::kAvx2);
        std::vector<int8_t> got(elems(m, n));
        ASSERT_EQ(run_packed(f, pk.data(), Path::kAvx2, got.data()), Status::kOk);
        ASSERT_EQ(got, run_fc(f, Path::kReference)) << "m=" << m << " n=" << n << " k=" << k;
      }
    }
  }
}

// Callers size scratch once for the largest call and then run smaller ones (conv2d: the last,
// shorter im2col block), so a path's reported scratch must not shrink as m shrinks, also across
// the avx2 hand-over between the 2x4 tiles and the 6x16 kernel.
TEST_P(X86Path, ScratchNeverShrinksWithM) {
  TQ_SKIP_UNLESS_CPU(GetParam());
  const rt::detail::PathKernels* t = table(GetParam());
  for (int32_t n : {1, 16, 64, 300, 1000}) {
    for (int32_t k : {1, 9, 27, 300, 2000}) {
      int32_t prev_s8 = 0, prev_s4 = 0, prev_s32 = 0;
      for (int32_t m = 1; m <= 40; ++m) {
        const int32_t s8 = t->gemm_s8_scratch(m, n, k, false);
        const int32_t s4 = t->gemm_s8_scratch(m, n, k, true);
        const int32_t s32 = t->gemm_s32_scratch(m, n, k);
        ASSERT_GE(s8, prev_s8) << "m=" << m << " n=" << n << " k=" << k;
        ASSERT_GE(s4, prev_s4) << "m=" << m << " n=" << n << " k=" << k;
        ASSERT_GE(s32, prev_s32) << "m=" << m << " n=" << n << " k=" << k;
        prev_s8 = s8, prev_s4 = s4, prev_s32 = s32;
      }
    }
  }
}

// conv2d sizes its scratch for full im2col blocks of 8 rows (the 6x16 kernel on avx2) and runs
// the last, shorter block on the 2x4 tiles: that call must stay inside the reported scratch.
// Guard bytes after it must come back untouched, and the output must match the reference.
TEST(Avx2Kernel6x16, ConvShortLastBlockStaysInScratch) {
  TQ_SKIP_UNLESS_CPU(Path::kAvx2);
  std::mt19937 rng(77);
  for (int32_t out_c : {16, 64, 200}) {
    rt::ConvDims d;
    d.in_h = 2, d.in_w = 5, d.in_c = 1, d.kernel_h = d.kernel_w = 3;  // 10 pixels: 8 + 2
    d.out_h = 2, d.out_w = 5, d.out_c = out_c;
    rt::ConvParams cp;
    cp.pad_top = cp.pad_left = 1;
    cp.input_offset = 5;
    std::vector<int8_t> in(10), w(elems(out_c, 9));
    for (auto& v : in) v = pick_s8(rng, true);
    for (auto& v : w) v = pick_s8(rng, true);
    std::vector<int32_t> mult(static_cast<size_t>(out_c), 1 << 30), shift(mult.size(), -7);
    const rt::Requant rq{mult.data(), shift.data(), true, rt::Rounding::kDouble};
    std::vector<int8_t> got(elems(10, out_c)), want(got.size());
    for (Path p : {Path::kAvx2, Path::kReference}) {
      const int32_t need = rt::conv2d_s8_scratch_size(cp, d, p);
      std::vector<uint8_t> scratch(static_cast<size_t>(need) + 256, 0xA5);
      rt::Context ctx{scratch.data(), need, p};
      ASSERT_EQ(rt::conv2d_s8(ctx, cp, rq, d, in.data(), w.data(), nullptr,
                              p == Path::kReference ? want.data() : got.data()),
                Status::kOk);
      for (size_t i = static_cast<size_t>(need); i < scratch.size(); ++i) {
        ASSERT_EQ(scratch[i], 0xA5) << rt::path_name(p) << " out_c=" << out_c << " byte " << i;
      }
    }
    ASSERT_EQ(got, want) << "out_c=" << out_c;
  }
}

// Weights packed in an earlier format (the avx2 layout of version 2, or the version before the
// current one) are refused, not misread. The header is rewritten with a valid check word, so
// only the version differs.
TEST(Prepack, RefusesOlderFormatVersion) {
  TQ_SKIP_UNLESS_CPU(Path::kAvx2);
  std::mt19937 rng(2);
  const FcCase f = random_fc(rng, 3, 40, 24);
  Packed pk = pack_fc(f, Path::kAvx2);
  const uint32_t current = reinterpret_cast<const uint32_t*>(pk.data())[1];
  std::vector<int8_t> out(elems(3, 24), 9);
  for (const uint32_t older : {2u, current - 1}) {
    rewrite_header_word(&pk, 1, older);
    EXPECT_EQ(run_packed(f, pk.data(), Path::kAuto, out.data()), Status::kBadArgument) << older;
    EXPECT_EQ(rt::fully_connected_s8_prepacked_path(pk.data()), Path::kAuto) << older;
    EXPECT_EQ(out, std::vector<int8_t>(out.size(), 9)) << older;
  }
  rewrite_header_word(&pk, 1, current);  // the same rewrite with the current version is accepted
  ASSERT_EQ(run_packed(f, pk.data(), Path::kAuto, out.data()), Status::kOk);
  EXPECT_EQ(out, run_fc(f, Path::kReference));
}

// verify() accepts an intact buffer and refuses every single altered byte of the payload and of
// the checked header fields (FNV-1a changes with any one byte), a packed_size short of the buffer,
// and a header that claims more payload than packed_size covers, on every path (each lays its
// payload out differently: sums, flags, k4 or panel layouts).
TEST(Prepack, VerifyRefusesEveryAlteredByte) {
  std::mt19937 rng(5);
  for (Path p : {Path::kReference, Path::kSmlad, Path::kAvx2, Path::kAvx512Vnni, Path::kAmx}) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;  // not on this CPU
    const FcCase f = random_fc(rng, 2, 37, 20);
    const int32_t size = rt::fully_connected_s8_prepacked_size(f.dims, p);
    Packed pk = pack_fc(f, p);
    auto* bytes = reinterpret_cast<uint8_t*>(pk.data());
    ASSERT_EQ(rt::fully_connected_s8_prepacked_verify(pk.data(), size), Status::kOk)
        << rt::path_name(p);
    EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(pk.data(), size - 1), Status::kBadArgument);
    EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(nullptr, size), Status::kNullPointer);
    int refused = 0, bytes_tried = 0;
    for (int32_t i = 0; i < size; ++i) {
      if (i >= 36 && i < 64) continue;  // reserved header words: not read
      ++bytes_tried;
      bytes[i] ^= 0x10;
      refused += rt::fully_connected_s8_prepacked_verify(pk.data(), size) == Status::kBadArgument;
      bytes[i] ^= 0x10;
    }
    EXPECT_EQ(refused, bytes_tried) << rt::path_name(p);
    ASSERT_EQ(rt::fully_connected_s8_prepacked_verify(pk.data(), size), Status::kOk);
    // A valid-looking header claiming a payload past the caller's buffer: refused, not read.
    Packed forged = pk;
    rewrite_header_word(&forged, 6, static_cast<uint32_t>(size));  // payload_bytes
    EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(forged.data(), size), Status::kBadArgument);
  }
}

// ---- Threads ----------------------------------------------------------------------------------

// ---- AMX dispatch -----------------------------------------------------------------------------

TEST(AmxPath, NamedForcedAndPreferredWhenSupported) {
  EXPECT_STREQ(rt::path_name(Path::kAmx), "amx");
  EXPECT_EQ(rt::path_bits(Path::kAmx), 1u << 6);
  const bool supported = (rt::supported_paths() & rt::path_bits(Path::kAmx)) != 0;
  if (!supported) {
    EXPECT_EQ(rt::force_path(Path::kAmx), Status::kPathUnavailable);
    GTEST_SKIP() << "CPU lacks AMX-INT8 (or the OS refused the tile state)";
  }
  EXPECT_EQ(rt::default_path(), Path::kAmx);  // fastest supported, unless a path is forced
  ASSERT_EQ(rt::force_path(Path::kAvx2), Status::kOk);
  EXPECT_EQ(rt::default_path(), Path::kAvx2);
  ASSERT_EQ(rt::force_path(Path::kAmx), Status::kOk);
  EXPECT_EQ(rt::default_path(), Path::kAmx);
  ASSERT_EQ(rt::force_path(Path::kAuto), Status::kOk);
}

// Weights packed for AMX run only on AMX: the k4 layout is shared with the VNNI path, but the
// header names the path and a mismatch is refused rather than run.
TEST(AmxPath, PackedBufferBelongsToItsPath) {
  TQ_SKIP_UNLESS_CPU(Path::kAmx);
  std::mt19937 rng(21);
  for (int32_t batch : {1, 15, 16, 40}) {
    const FcCase f = random_fc(rng, batch, 100, 37);
    Packed pk = pack_fc(f, Path::kAmx);
    std::vector<int8_t> out(elems(batch, 37));
    EXPECT_EQ(run_packed(f, pk.data(), Path::kAvx512Vnni, out.data()), Status::kBadArgument);
    ASSERT_EQ(run_packed(f, pk.data(), Path::kAmx, out.data()), Status::kOk);
    EXPECT_EQ(out, run_fc(f, Path::kReference)) << "batch " << batch;
  }
}

TEST(Parallel, ThreadedEqualsSingleThreaded) {
  std::mt19937 rng(8);
  const int32_t shapes[][3] = {{1, 100, 200}, {3, 37, 65}, {16, 64, 256}, {2, 5, 1}, {5, 33, 17}};
  for (const auto& s : shapes) {
    const FcCase f = random_fc(rng, s[0], s[1], s[2]);
    const std::vector<int8_t> single = run_fc(f, Path::kReference);
    for (int threads : {0, 1, 2, 3, 7}) {
      for (Path p : {Path::kAuto, Path::kReference}) {
        std::vector<int8_t> out(single.size(), 0);
        tinyquant::fully_connected_s8_parallel(threads, f.params, f.requant(), f.dims,
                                               f.input.data(), f.weights.data(), f.bias.data(),
                                               out.data(), p);
        ASSERT_EQ(out, single) << "threads " << threads << " batch " << s[0];
      }
    }
    // gemm: a = input [batch][k], b = weights [n][k], with a padded ldc.
    const rt::GemmDims d{s[0], s[2], s[1], 0, 0, s[2] + 3};
    std::vector<int32_t> col(static_cast<size_t>(s[2]), 5), row(static_cast<size_t>(s[0]), -7);
    std::vector<int32_t> want(elems(s[0], s[2] + 3), 1), got(want.size(), 1);
    rt::Context ctx{nullptr, 0, Path::kReference};
    ASSERT_EQ(rt::gemm_s8s8_s32(ctx, d, f.input.data(), -128, f.weights.data(), 128, row.data(),
                                col.data(), want.data()),
              Status::kOk);
    for (int threads : {1, 2, 5}) {
      std::fill(got.begin(), got.end(), 1);
      tinyquant::gemm_s8s8_s32_parallel(threads, d, f.input.data(), -128, f.weights.data(), 128,
                                        row.data(), col.data(), got.data());
      ASSERT_EQ(got, want) << "threads " << threads;
    }
  }
}

template <class E>
void expect_throw_with(const std::function<void()>& fn, const std::vector<std::string>& words) {
  try {
    fn();
    FAIL() << "no exception";
  } catch (const E& e) {
    for (const auto& w : words) {
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what() << " / " << w;
    }
  }
}

TEST(Parallel, BadArgumentsThrowTypedErrors) {
  std::mt19937 rng(1);
  FcCase f = random_fc(rng, 1, 8, 20);
  std::vector<int8_t> out(20, 4);
  auto fc = [&](int threads, const FcCase& c, Path p = Path::kAuto) {
    return [&, threads, p] {
      tinyquant::fully_connected_s8_parallel(threads, c.params, c.requant(), c.dims, c.input.data(),
                                             c.weights.data(), c.bias.data(), out.data(), p);
    };
  };
  expect_throw_with<tinyquant::InvalidArgument>(fc(-1, f), {"threads = -1"});
  FcCase g = f;
  g.params.input_offset = 129;
  expect_throw_with<tinyquant::InvalidArgument>(fc(2, g), {"input_offset = 129"});
  g = f;
  g.shift[17] = 31;
  expect_throw_with<tinyquant::InvalidArgument>(fc(2, g), {"shift[17] = 31"});
  g = f;
  g.mult[3] = -5;
  expect_throw_with<tinyquant::InvalidArgument>(fc(2, g), {"multiplier[3] = -5"});
  g = f;
  g.params.act_min = 10, g.params.act_max = 5;
  expect_throw_with<tinyquant::InvalidArgument>(fc(2, g),
                                                {"activation range [10, 5] has min > max"});
  g = f;
  g.params.act_max = 128;
  expect_throw_with<tinyquant::InvalidArgument>(fc(2, g), {"is not within [-128, 127]"});
  g = f;
  g.rounding = static_cast<rt::Rounding>(7);
  expect_throw_with<tinyquant::InvalidArgument>(fc(2, g), {"requant rounding = 7"});
  g = f;
  g.dims.batch = 0;
  expect_throw_with<tinyquant::ShapeError>(fc(2, g), {"batch = 0"});
  expect_throw_with<tinyquant::KernelError>(fc(2, f, Path::kNeon), {"path_unavailable", "[0, 16)"});
  EXPECT_EQ(out, std::vector<int8_t>(20, 4));  // nothing written on error

  std::vector<int32_t> c(20);
  const rt::GemmDims bad{2, 20, 8, 4, 0, 0};
  expect_throw_with<tinyquant::ShapeError>(
      [&] {
        tinyquant::gemm_s8s8_s32_parallel(2, bad, f.input.data(), 0, f.weights.data(), 0, nullptr,
                                          nullptr, c.data());
      },
      {"lda = 4", "k = 8"});
  expect_throw_with<tinyquant::InvalidArgument>(
      [&] {
        tinyquant::gemm_s8s8_s32_parallel(2, rt::GemmDims{1, 20, 8}, f.input.data(), -129,
                                          f.weights.data(), 0, nullptr, nullptr, c.data());
      },
      {"a_offset = -129"});
  expect_throw_with<tinyquant::ShapeError>(
      [&] {
        tinyquant::gemm_s8s8_s32_parallel(2, rt::GemmDims{1, 0, 8}, f.input.data(), 0,
                                          f.weights.data(), 0, nullptr, nullptr, c.data());
      },
      {"n = 0"});
}

// A null operand is named with the pointer values (fmt prints a null pointer as 0x0); nothing
// is written.
TEST(Parallel, NullPointersAreRefusedByName) {
  std::mt19937 rng(2);
  const FcCase f = random_fc(rng, 1, 8, 20);
  std::vector<int32_t> c(20, 4);
  const rt::GemmDims d{1, 20, 8};
  tq_test::expect_error<tinyquant::InvalidArgument>(
      [&] {
        tinyquant::gemm_s8s8_s32_parallel(2, d, nullptr, 0, f.weights.data(), 0, nullptr, nullptr,
                                          c.data());
      },
      {"gemm_s8s8_s32_parallel: null pointer (a = 0x0, b = 0x"});
  tq_test::expect_error<tinyquant::InvalidArgument>(
      [&] {
        tinyquant::gemm_s8s8_s32_parallel(2, d, f.input.data(), 0, f.weights.data(), 0, nullptr,
                                          nullptr, nullptr);
      },
      {"gemm_s8s8_s32_parallel: null pointer", ", c = 0x0)"});
  EXPECT_EQ(c, std::vector<int32_t>(20, 4));

  std::vector<int8_t> out(20, 4);
  tq_test::expect_error<tinyquant::InvalidArgument>(
      [&] {
        tinyquant::fully_connected_s8_parallel(2, f.params, f.requant(), f.dims, f.input.data(),
                                               nullptr, f.bias.data(), out.data());
      },
      {"fully_connected_s8_parallel: null pointer", "weights = 0x0,"});
  rt::Requant no_shift = f.requant();
  no_shift.shift = nullptr;
  tq_test::expect_error<tinyquant::InvalidArgument>(
      [&] {
        tinyquant::fully_connected_s8_parallel(2, f.params, no_shift, f.dims, f.input.data(),
                                               f.weights.data(), f.bias.data(), out.data());
      },
      {"fully_connected_s8_parallel: null pointer", "shift = 0x0)"});
  EXPECT_EQ(out, std::vector<int8_t>(20, 4));
}

// Dimensions past the kernels' element limit (2^31 - 2^16 per operand) are refused up front as a
// single-threaded call refuses them, whatever the thread count; n = 2^31 - 1 must not overflow
// the column split (it produced slices of -2147483632 columns).
TEST(Parallel, DimensionsBeyondTheKernelLimitsAreRefused) {
  std::vector<int8_t> a(16), b(16), out(16, 4);
  std::vector<int32_t> c(16, 4);
  const int32_t mult = 1 << 30, shift = 0;
  rt::Requant rq;
  rq.multiplier = &mult;
  rq.shift = &shift;
  for (int threads : {1, 2, 3}) {
    expect_throw_with<tinyquant::ShapeError>(
        [&] {
          tinyquant::gemm_s8s8_s32_parallel(threads, rt::GemmDims{1, INT32_MAX, 1}, a.data(), 0,
                                            b.data(), 0, nullptr, nullptr, c.data());
        },
        {"n = 2147483647"});
    expect_throw_with<tinyquant::ShapeError>(
        [&] {
          tinyquant::fully_connected_s8_parallel(threads, rt::FcParams{}, rq,
                                                 rt::FcDims{1, 1, INT32_MAX}, a.data(), b.data(),
                                                 nullptr, out.data());
        },
        {"out_features = 2147483647"});
  }
  EXPECT_EQ(c, std::vector<int32_t>(16, 4));
  EXPECT_EQ(out, std::vector<int8_t>(16, 4));
}

// When the system cannot start a worker thread (here: an address-space limit leaves no room for
// more thread stacks) the slices it would have run run on the caller's thread: same results, no
// std::terminate from a std::system_error escaping with threads still joinable.
TEST(ParallelDeathTest, SlicesRunOnTheCallerWhenThreadsCannotStart) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers reserve address space the limit would take away";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  GTEST_SKIP() << "the sanitizers reserve address space the limit would take away";
#endif
#endif
  const int32_t m = 3, n = 64 * 16, k = 40;
  std::mt19937 rng(5);
  std::vector<int8_t> a(elems(m, k)), b(elems(n, k));
  for (int8_t& v : a) v = static_cast<int8_t>(rng());
  for (int8_t& v : b) v = static_cast<int8_t>(rng());
  const rt::GemmDims d{m, n, k};
  std::vector<int32_t> want(elems(m, n)), got(want.size());
  rt::Context ctx{nullptr, 0, Path::kReference};
  ASSERT_EQ(rt::gemm_s8s8_s32(ctx, d, a.data(), 3, b.data(), -2, nullptr, nullptr, want.data()),
            Status::kOk);
  // The address space in use, from /proc/self/status (0 when it cannot be read).
  const auto vm_size_kb = [] {
    long kb = 0;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmSize:", 0) == 0) kb = std::strtol(line.c_str() + 7, nullptr, 10);
    return kb;
  };
  if (vm_size_kb() == 0) GTEST_SKIP() << "no /proc/self/status to set the limit against";
  auto run_limited = [&] {
    const long vm_kb = vm_size_kb();  // in the child, plus room for a few 8 MiB thread stacks
    const rlimit lim{static_cast<rlim_t>(vm_kb + 32 * 1024) * 1024,
                     static_cast<rlim_t>(vm_kb + 32 * 1024) * 1024};
    if (vm_kb == 0 || setrlimit(RLIMIT_AS, &lim) != 0) std::exit(2);  // untested: a failure
    // First show that the limit bites: 64 waiting threads cannot all start under it.
    std::mutex mu;
    std::condition_variable cv;
    bool go = false, refused = false;
    std::vector<std::thread> waiting;
    for (int i = 0; i < 64 && !refused; ++i) {
      try {
        waiting.emplace_back([&] {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return go; });
        });
      } catch (const std::system_error&) {
        refused = true;
      }
    }
    {
      const std::lock_guard<std::mutex> lock(mu);
      go = true;
    }
    cv.notify_all();
    for (std::thread& t : waiting) t.join();
    if (!refused) std::exit(3);  // every thread started: the fallback would go untested
    tinyquant::gemm_s8s8_s32_parallel(64, d, a.data(), 3, b.data(), -2, nullptr, nullptr,
                                      got.data(), Path::kReference);
    std::exit(got == want ? 0 : 1);
  };
  EXPECT_EXIT(run_limited(), ::testing::ExitedWithCode(0), "");
}

// The AMX path's blocks and tails (m >= 16 runs the tiles): 32-row blocks and the last <= 16 rows
// in 16-row blocks 16 to 64 columns wide, m around every tile edge and past one and two 128-row
// panels, n tails, k of every residue mod 64 (the last 64-k step padded); a read in place (b
// offset 0, no row terms) or copied, tight and padded rows; full activation range (the saturating
// int8 store) and narrowed ones; the int8, int32 and prepacked entries.
TEST(AmxTiles, EveryBlockAndTailMatchesLoops) {
  TQ_SKIP_UNLESS_CPU(Path::kAmx);
  std::mt19937 rng(2611);
  int32_t cases = 0;
  auto check = [&](int32_t m, int32_t n, int32_t k) {
    Case c = random_case(rng, m, n, k, false);
    if (cases % 2 == 0) c.b_offset = 0;
    if (cases % 3 == 0) c.lda = k;
    if (cases % 4 < 2) c.act_min = -128, c.act_max = 127;
    ASSERT_EQ(run_table_s8(Path::kAmx, c), oracle_s8(c)) << describe(c);
    std::vector<int32_t> col_add(static_cast<size_t>(n), 1 << 29);
    std::vector<int32_t> row_add(static_cast<size_t>(m), -5);
    const int32_t* row = cases % 5 == 0 ? row_add.data() : nullptr;
    ASSERT_EQ(run_table_s32(Path::kAmx, c, row, col_add.data(), 9),
              oracle_s32(c, row, col_add.data(), 9))
        << describe(c);
    FcCase f = random_fc(rng, m, k, n);
    if (cases % 2 == 0) f.params.filter_offset = 0;
    if (cases % 4 == 3) f.params.act_min = -20, f.params.act_max = 100;
    Packed pk = pack_fc(f, Path::kAmx);
    std::vector<int8_t> got(elems(m, n));
    ASSERT_EQ(run_packed(f, pk.data(), Path::kAmx, got.data()), Status::kOk);
    ASSERT_EQ(got, run_fc(f, Path::kReference)) << "packed m=" << m << " n=" << n << " k=" << k;
    ++cases;
  };
  for (int32_t m : {16, 17, 20, 31, 32, 33, 47, 48, 49, 64, 127, 128, 129, 144, 257}) {
    for (int32_t n : {1, 16, 17, 31, 33, 48, 63, 64, 65, 100}) {
      check(m, n, cases % 2 == 0 ? 64 : 100);
    }
  }
  const int32_t mn[][2] = {{16, 17}, {33, 64}, {48, 20}, {130, 50}};
  for (int32_t k = 1; k <= 130; ++k) check(mn[k % 4][0], mn[k % 4][1], k);
}

}  // namespace
