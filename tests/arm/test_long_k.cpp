// int32 wrap-around over long K on every path (src/rt/neon_mac16.inc's paired and exact steps
// in particular): every input is -128 and every weight of row j one value v[j] (-127 and 127 in
// the first 4-column strip, which the neon path runs on its paired step, -128, -127 and 127 in
// the last, which holds -128 and keeps the exact step), so each output is
//   k * (-128 + a_offset) * (v[j] + b_offset) mod 2^32,
// a formula, not another kernel. k = 133011 > 2^31 / (128 * 127) makes the sums wrap; k % 16 = 3
// leaves a K tail; m = 5 leaves a one-row last tile. Built for the AArch64 Linux targets (about
// 1.6 MB of operands, 2 MB of scratch).
#include <cstdint>
#include <cstdio>

#include "check.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace rt = tinyquant::rt;

namespace {

constexpr int32_t kM = 5, kN = 7, kK = 133011;
constexpr int8_t kWeight[kN] = {-127, 127, -127, 127, -128, -127, 127};

int8_t g_a[kM * kK];
int8_t g_b[kN * kK];
int32_t g_c[kM * kN];
alignas(64) uint8_t g_scratch[1 << 21];  // the neondot path packs a panel of 8 rows of b

}  // namespace

int main() {
  static_assert(int64_t{kK} * 128 * 127 > INT32_MAX, "the sums must wrap");
  for (int8_t& x : g_a) x = INT8_MIN;
  for (int32_t j = 0; j < kN; ++j)
    for (int32_t t = 0; t < kK; ++t) g_b[j * kK + t] = kWeight[j];
  const rt::GemmDims dims{kM, kN, kK, 0, 0, 0};
  const struct { int32_t a_offset, b_offset; } offsets[] = {{0, 0}, {3, -5}, {-127, 128}};
  const rt::Path paths[] = {rt::Path::kReference, rt::Path::kNeon, rt::Path::kNeonDot};
  int runs = 0;
  for (const auto& o : offsets) {
    for (rt::Path path : paths) {
      if ((rt::supported_paths() & rt::path_bits(path)) == 0) continue;
      const int32_t need = rt::gemm_s8s8_s32_scratch_size(dims, path);
      if (!TQ_CHECK_EQ(need <= static_cast<int32_t>(sizeof g_scratch), true, "scratch fits")) {
        continue;
      }
      rt::Context ctx;
      ctx.scratch = g_scratch;
      ctx.scratch_size = static_cast<int32_t>(sizeof g_scratch);
      ctx.path = path;
      const rt::Status st =
          rt::gemm_s8s8_s32(ctx, dims, g_a, o.a_offset, g_b, o.b_offset, nullptr, nullptr, g_c);
      ++runs;
      TQ_CHECK_EQ(static_cast<int>(st), 0, "status");
      int wrong = 0;
      for (int32_t i = 0; i < kM; ++i) {
        for (int32_t j = 0; j < kN; ++j) {
          const uint32_t want = static_cast<uint32_t>(kK) *
                                static_cast<uint32_t>(-128 + o.a_offset) *
                                static_cast<uint32_t>(kWeight[j] + o.b_offset);
          if (!TQ_CHECK_EQ(static_cast<uint32_t>(g_c[i * kN + j]), want, "output")) ++wrong;
        }
      }
      if (wrong != 0) {
        std::printf("path %s, offsets %d / %d: %d wrong outputs\n", rt::path_name(path),
                    static_cast<int>(o.a_offset), static_cast<int>(o.b_offset), wrong);
      }
    }
  }
  std::printf("%d path runs\n", runs);
  return tq::finish("test_long_k");
}
