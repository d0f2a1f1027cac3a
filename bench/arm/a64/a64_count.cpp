// AArch64 work per int8 GEMM, for bench/arm/a64/count.sh: guest instructions of one
// rt::fully_connected_s8 call on each AArch64 path, and of one gemmlowp call on the same shape
// (its NEON kernels; with GEMMLOWP_DOTPROD_KERNEL its UDOT kernel), counted under qemu-aarch64 by
// the instruction-count plugin (tools/qemu-insn-plugin) between tq_region_begin() and
// tq_region_end(). An empty region runs first so the harness can subtract the markers' cost.
//
// Weights are symmetric, in [-127, 127] (TFLite's int8 weight spec); each shape is counted twice
// more on the neon path: on the weights prepacked (label neon_prepacked) and with the first
// weight of every row set to -128 (label neon_w128), which that path must detect and run on its
// exact step; and once more on the neondot path, on the weights prepacked for it
// (neondot_prepacked).
// Every counted call follows an uncounted warm-up call with the same arguments (gemmlowp
// allocates its packing buffers on first use). Each path's output is compared with the reference
// path's; any difference makes the program exit 1.
// Prints one line per counted region, in region order: "region <label> <M>x<K>x<N> macs <n>".
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "region_markers.h"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

#if defined(TQ_HAVE_GEMMLOWP)
#include <gemmlowp/public/gemmlowp.h>
#endif

namespace rt = tinyquant::rt;

namespace {

struct Shape {
  int32_t m, k, n;
};

// The bench_gemm shapes that fit a QEMU run, two batched FC shapes of the earlier table, and a
// long-K one whose rows span several of neon's row blocks (8 rows of a per block at k = 4096).
constexpr Shape kShapes[] = {{1, 27, 128},    {1, 128, 64},   {1, 256, 256},  {1, 784, 128},
                             {1, 1024, 1000}, {8, 256, 256},  {16, 256, 256}, {32, 512, 128},
                             {256, 256, 256}, {32, 4096, 256}};

constexpr int32_t kInputOffset = 17;  // as bench_gemm: zero point -17

struct Problem {
  Shape s;
  std::vector<int8_t> x, w;
  std::vector<int32_t> bias, mult, shift;
};

Problem make_problem(const Shape& s, std::mt19937* rng) {
  Problem p;
  p.s = s;
  std::uniform_int_distribution<int> byte(-128, 127);
  std::uniform_int_distribution<int> weight(-127, 127);  // TFLite's int8 weights are symmetric
  std::uniform_int_distribution<int32_t> bias(-5000, 5000);
  std::uniform_int_distribution<int32_t> mult(1 << 30, INT32_MAX);
  std::uniform_int_distribution<int32_t> shift(-12, -6);
  p.x.resize(static_cast<size_t>(s.m) * s.k);
  p.w.resize(static_cast<size_t>(s.n) * s.k);
  for (int8_t& v : p.x) v = static_cast<int8_t>(byte(*rng));
  for (int8_t& v : p.w) v = static_cast<int8_t>(weight(*rng));
  for (int32_t o = 0; o < s.n; ++o) {
    p.bias.push_back(bias(*rng));
    p.mult.push_back(mult(*rng));
    p.shift.push_back(shift(*rng));
  }
  return p;
}

void print_region(const char* label, const Shape& s) {
  std::printf("region %s %dx%dx%d macs %lld\n", label, s.m, s.k, s.n,
              static_cast<long long>(s.m) * s.k * s.n);
}

// One counted rt::fully_connected_s8 call on `path` (after a warm-up call); output in out. With
// prepacked, the weights are prepacked for the path first (uncounted) and the call is
// rt::fully_connected_s8_prepacked.
bool run_tq(const Problem& p, rt::Path path, const char* label, std::vector<int8_t>* out,
            bool prepacked = false) {
  rt::FcParams params;
  params.input_offset = kInputOffset;
  rt::Requant rq;
  rq.multiplier = p.mult.data();
  rq.shift = p.shift.data();
  rq.per_channel = true;
  rt::FcDims d;
  d.batch = p.s.m;
  d.in_features = p.s.k;
  d.out_features = p.s.n;
  std::vector<uint8_t> packed;
  if (prepacked) {
    packed.resize(static_cast<size_t>(rt::fully_connected_s8_prepacked_size(d, path)));
    if (packed.empty() ||
        rt::fully_connected_s8_prepack(params, d, p.w.data(), path, packed.data(),
                                       static_cast<int32_t>(packed.size())) != rt::Status::kOk) {
      return false;
    }
  }
  std::vector<uint8_t> scratch(static_cast<size_t>(
      prepacked ? rt::fully_connected_s8_prepacked_scratch_size(d, packed.data())
                : rt::fully_connected_s8_scratch_size(d, path)));
  rt::Context ctx;
  ctx.path = path;
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  out->assign(static_cast<size_t>(p.s.m) * p.s.n, 0);
  auto call = [&] {
    if (prepacked) {
      return rt::fully_connected_s8_prepacked(ctx, params, rq, d, p.x.data(), packed.data(),
                                              p.bias.data(), out->data());
    }
    return rt::fully_connected_s8(ctx, params, rq, d, p.x.data(), p.w.data(), p.bias.data(),
                                  out->data());
  };
  if (call() != rt::Status::kOk) return false;
  tq_region_begin();
  const rt::Status st = call();
  tq_region_end();
  print_region(label, p.s);
  return st == rt::Status::kOk;
}

#if defined(TQ_HAVE_GEMMLOWP)
// gemmlowp's uint8 GEMM with bench_gemm's output pipeline (per-tensor fixed-point
// requantization, saturating cast), one thread: the same job up to per-channel scales and bias.
void run_gemmlowp(const Problem& p, const char* label) {
  const Shape& s = p.s;
  std::vector<uint8_t> a(p.x.size()), b(p.w.size()), c(static_cast<size_t>(s.m) * s.n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(p.x[i] + 128);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(p.w[i] + 128);
  gemmlowp::GemmContext context;
  context.set_max_num_threads(1);
  const gemmlowp::MatrixMap<const uint8_t, gemmlowp::MapOrder::RowMajor> lhs(a.data(), s.m, s.k);
  const gemmlowp::MatrixMap<const uint8_t, gemmlowp::MapOrder::ColMajor> rhs(b.data(), s.k, s.n);
  gemmlowp::MatrixMap<uint8_t, gemmlowp::MapOrder::RowMajor> res(c.data(), s.m, s.n);
  gemmlowp::OutputStageQuantizeDownInt32ByFixedPoint quant;
  quant.result_fixedpoint_multiplier = 1 << 30;
  quant.result_shift = 12;
  quant.result_offset_after_shift = 125;
  const auto pipeline = std::make_tuple(quant, gemmlowp::OutputStageSaturatingCastToUint8());
  auto call = [&] {
    gemmlowp::GemmWithOutputPipeline<uint8_t, uint8_t, gemmlowp::DefaultL8R8BitDepthParams>(
        &context, lhs, rhs, &res, -128 + kInputOffset, -128, pipeline);
  };
  call();
  tq_region_begin();
  call();
  tq_region_end();
  print_region(label, s);
}
#endif

}  // namespace

int main() {
  tq_region_begin();
  tq_region_end();
  std::printf("region empty 0x0x0 macs 0\n");
  std::mt19937 rng(7);
  const uint32_t have = rt::supported_paths();
  int failures = 0;
  for (const Shape& s : kShapes) {
    const Problem p = make_problem(s, &rng);
    std::vector<int8_t> ref, got;
    if (!run_tq(p, rt::Path::kReference, "reference", &ref)) ++failures;
    const struct {
      rt::Path path;
      const char* label;
    } paths[] = {{rt::Path::kNeon, "neon"}, {rt::Path::kNeonDot, "neondot"}};
    for (const auto& e : paths) {
      if ((have & rt::path_bits(e.path)) == 0) continue;
      if (!run_tq(p, e.path, e.label, &got) || got != ref) {
        std::fprintf(stderr, "%s differs from the reference at %dx%dx%d\n", e.label, s.m, s.k, s.n);
        ++failures;
      }
    }
#if defined(TQ_HAVE_GEMMLOWP)
    run_gemmlowp(p, "gemmlowp");
#endif
    // neondot on the weights prepacked for it (panel order, column sums stored).
    if ((have & rt::path_bits(rt::Path::kNeonDot)) != 0) {
      if (!run_tq(p, rt::Path::kNeonDot, "neondot_prepacked", &got, true) || got != ref) {
        std::fprintf(stderr, "neondot prepacked differs from the reference at %dx%dx%d\n", s.m, s.k,
                     s.n);
        ++failures;
      }
    }
    // neon on the same weights prepacked (column sums and -128 flags stored), then with a -128
    // in every row (its first), which keeps every strip of it on its exact step.
    if ((have & rt::path_bits(rt::Path::kNeon)) != 0) {
      if (!run_tq(p, rt::Path::kNeon, "neon_prepacked", &got, true) || got != ref) {
        std::fprintf(stderr, "neon prepacked differs from the reference at %dx%dx%d\n", s.m, s.k,
                     s.n);
        ++failures;
      }
      Problem q = p;
      for (int32_t j = 0; j < s.n; ++j) q.w[static_cast<size_t>(j) * s.k] = -128;
      if (!run_tq(q, rt::Path::kReference, "reference_w128", &ref) ||
          !run_tq(q, rt::Path::kNeon, "neon_w128", &got) || got != ref) {
        std::fprintf(stderr, "neon differs from the reference at %dx%dx%d with -128 weights\n", s.m,
                     s.k, s.n);
        ++failures;
      }
    }
  }
  return failures == 0 ? 0 : 1;
}
