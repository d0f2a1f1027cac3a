// Per-path throughput of the public rt kernels at TinyML layer shapes: every path this build and
// CPU support (reference, smlad, avx2, avx512vnni) runs fully_connected_s8, conv2d_s8 and
// depthwise_conv2d_s8, so the table reads across paths for one layer; fully_connected_s4_grouped
// runs on each path it has, next to fully_connected_s8 on the default path. GOP/s counts 2 * MACs.
// Every row's output is compared with the reference path's before it is timed; a row whose
// output differs fails instead of reporting a rate.
// TINYQUANT_BENCH_SMOKE=1 shrinks the layers so the CTest smoke run is quick.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tinyquant/rt/grouped.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace rt = tinyquant::rt;

namespace {

bool smoke() {
  return std::getenv("TINYQUANT_BENCH_SMOKE") != nullptr;
}

std::vector<int8_t> random_s8(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int32_t>(rng() % 255) - 127);
  return v;
}

struct Requant {
  std::vector<int32_t> mult, shift;
  explicit Requant(int32_t channels)
      : mult(static_cast<size_t>(channels), 1 << 30), shift(static_cast<size_t>(channels), -10) {}
  rt::Requant get() const { return {mult.data(), shift.data(), true, rt::Rounding::kDouble}; }
};

// Runs call(ctx, out) once on `path` and once on the reference path, each with the scratch
// scratch_size(path) asks for; false (the benchmark marked as failed) if a call fails or the two
// outputs differ, so a kernel that computes the wrong thing cannot report a rate.
template <class ScratchSize, class Call>
bool matches_reference(benchmark::State& state, rt::Path path, size_t out_size,
                       ScratchSize&& scratch_size, Call&& call) {
  std::vector<int8_t> outs[2];
  const rt::Path paths[2] = {path, rt::Path::kReference};
  for (int i = 0; i < 2; ++i) {
    std::vector<uint8_t> scratch(static_cast<size_t>(scratch_size(paths[i])));
    const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), paths[i]};
    outs[i].assign(out_size, 0);
    if (const rt::Status st = call(ctx, outs[i].data()); st != rt::Status::kOk) {
      state.SkipWithError(rt::status_name(st));
      return false;
    }
  }
  if (outs[0] == outs[1]) return true;
  state.SkipWithError("output differs from the reference path");
  return false;
}

void set_rate(benchmark::State& state, double macs) {
  state.counters["GOP/s"] = benchmark::Counter(
      2.0 * macs * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void fc(benchmark::State& state, rt::Path path, int32_t k, int32_t n) {
  const rt::FcDims d{1, k, n};
  const auto in = random_s8(static_cast<size_t>(k), 1);
  const auto w = random_s8(static_cast<size_t>(k) * n, 2);
  const std::vector<int32_t> bias(static_cast<size_t>(n), 100);
  const Requant rq(n);
  rt::FcParams p;
  p.input_offset = 5;
  const rt::Requant r = rq.get();
  auto scratch_size = [&](rt::Path pt) { return rt::fully_connected_s8_scratch_size(d, pt); };
  auto call = [&](const rt::Context& c, int8_t* o) {
    return rt::fully_connected_s8(c, p, r, d, in.data(), w.data(), bias.data(), o);
  };
  if (!matches_reference(state, path, static_cast<size_t>(n), scratch_size, call)) return;
  std::vector<uint8_t> scratch(static_cast<size_t>(scratch_size(path)));
  const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), path};
  std::vector<int8_t> out(static_cast<size_t>(n));
  for (auto _ : state) {
    call(ctx, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state, double{1.0} * k * n);
}

// fully_connected_s4_grouped (int4 weights, one ratio byte per group of `group` inputs), or
// fully_connected_s8_grouped (int8 weights) when s8, GEMV.
void fc_grouped(benchmark::State& state, rt::Path path, int32_t k, int32_t n, int32_t group,
                bool s8) {
  const rt::FcDims d{1, k, n};
  const auto in = random_s8(static_cast<size_t>(k), 1);
  const auto w = random_s8(static_cast<size_t>(k) * n / (s8 ? 1 : 2), 2);  // int4: 2 per byte
  const auto r = random_s8(static_cast<size_t>(n) * ((k - 1) / group + 1), 5);
  const std::vector<uint8_t> ratio(r.begin(), r.end());
  const rt::GroupScales gs{group, ratio.data()};
  const std::vector<int32_t> bias(static_cast<size_t>(n), 100);
  const Requant rq(n);
  rt::FcParams p;
  p.input_offset = 5;
  const rt::Requant req = rq.get();
  const auto* wb = reinterpret_cast<const uint8_t*>(w.data());
  auto scratch_size = [&](rt::Path pt) {
    return s8 ? rt::fully_connected_s8_grouped_scratch_size(d, gs, pt)
              : rt::fully_connected_s4_grouped_scratch_size(d, gs, pt);
  };
  auto call = [&](const rt::Context& c, int8_t* o) {
    return s8 ? rt::fully_connected_s8_grouped(c, p, req, d, gs, in.data(), w.data(), bias.data(),
                                               o)
              : rt::fully_connected_s4_grouped(c, p, req, d, gs, in.data(), wb, bias.data(), o);
  };
  if (!matches_reference(state, path, static_cast<size_t>(n), scratch_size, call)) return;
  std::vector<uint8_t> scratch(static_cast<size_t>(scratch_size(path)));
  const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), path};
  std::vector<int8_t> out(static_cast<size_t>(n));
  for (auto _ : state) {
    call(ctx, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state, double{1.0} * k * n);
}

// conv2d (depthwise when dw) over one NHWC image, SAME padding, stride 1.
void conv(benchmark::State& state, rt::Path path, bool dw, int32_t h, int32_t w, int32_t cin,
          int32_t cout, int32_t ksize) {
  rt::ConvDims d;
  d.in_h = d.out_h = h, d.in_w = d.out_w = w, d.in_c = cin, d.out_c = cout;
  d.kernel_h = d.kernel_w = ksize;
  rt::ConvParams p;
  p.pad_top = p.pad_left = ksize / 2;
  p.input_offset = 5;
  p.depth_multiplier = dw ? cout / cin : 1;
  const auto in = random_s8(static_cast<size_t>(h) * w * cin, 3);
  const auto wt = random_s8(static_cast<size_t>(ksize) * ksize * (dw ? cout : cin * cout), 4);
  const Requant rq(cout);
  const rt::Requant r = rq.get();
  auto scratch_size = [&](rt::Path pt) {
    return dw ? rt::depthwise_conv2d_s8_scratch_size(p, d, pt)
              : rt::conv2d_s8_scratch_size(p, d, pt);
  };
  auto call = [&](const rt::Context& c, int8_t* o) {
    return dw ? rt::depthwise_conv2d_s8(c, p, r, d, in.data(), wt.data(), nullptr, o)
              : rt::conv2d_s8(c, p, r, d, in.data(), wt.data(), nullptr, o);
  };
  const size_t out_size = static_cast<size_t>(h) * w * cout;
  if (!matches_reference(state, path, out_size, scratch_size, call)) return;
  std::vector<uint8_t> scratch(static_cast<size_t>(scratch_size(path)));
  const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), path};
  std::vector<int8_t> out(out_size);
  for (auto _ : state) {
    call(ctx, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  // Every tap of every output pixel, padding taps included (as the Cortex-M4 cost table counts).
  const double macs = double{1.0} * h * w * cout * ksize * ksize * (dw ? 1 : cin);
  set_rate(state, macs);
}

}  // namespace

int main(int argc, char** argv) {
  const bool s = smoke();
  const uint32_t paths = rt::supported_paths();
  for (rt::Path path : {rt::Path::kReference, rt::Path::kSmlad, rt::Path::kAvx2,
                        rt::Path::kAvx512Vnni, rt::Path::kAmx}) {
    if ((paths & rt::path_bits(path)) == 0) continue;
    const std::string pn = rt::path_name(path);
    const int32_t hw32 = s ? 8 : 32, hw16 = s ? 6 : 16;
    benchmark::RegisterBenchmark(("fc/1x784x128/" + pn).c_str(), fc, path, s ? 64 : 784, 128);
    benchmark::RegisterBenchmark(("fc/1x128x64/" + pn).c_str(), fc, path, 128, 64);
    benchmark::RegisterBenchmark(("conv3x3/32x32x3->16/" + pn).c_str(), conv, path, false, hw32,
                                 hw32, 3, 16, 3);
    benchmark::RegisterBenchmark(("conv3x3/16x16x16->32/" + pn).c_str(), conv, path, false, hw16,
                                 hw16, 16, 32, 3);
    benchmark::RegisterBenchmark(("conv1x1/16x16x32->64/" + pn).c_str(), conv, path, false, hw16,
                                 hw16, 32, 64, 1);
    benchmark::RegisterBenchmark(("dwconv3x3/16x16x32/" + pn).c_str(), conv, path, true, hw16, hw16,
                                 32, 32, 3);
  }
  // Grouped int4 and int8 GEMV (group 32) on each path they have, with int8 fully_connected_s8
  // on the default path as the yardstick.
  for (rt::Path path : {rt::Path::kReference, rt::Path::kSmlad, rt::Path::kAvx2,
                        rt::Path::kAvx512Vnni, rt::Path::kNeon, rt::Path::kNeonDot}) {
    if ((paths & rt::path_bits(path)) == 0) continue;
    const std::string pn = rt::path_name(path);
    for (const bool s8 : {false, true}) {
      const std::string name = s8 ? "fc_s8_grouped32/" : "fc_s4_grouped32/";
      benchmark::RegisterBenchmark((name + "1x784x128/" + pn).c_str(), fc_grouped, path,
                                   s ? 64 : 784, 128, 32, s8);
      benchmark::RegisterBenchmark((name + "1x128x64/" + pn).c_str(), fc_grouped, path, 128, 64, 32,
                                   s8);
    }
  }
  benchmark::RegisterBenchmark("fc/1x784x128/auto", fc, rt::Path::kAuto, s ? 64 : 784, 128);
  benchmark::RegisterBenchmark("fc/1x128x64/auto", fc, rt::Path::kAuto, 128, 64);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
