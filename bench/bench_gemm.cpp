// Integer GEMM throughput (GOP/s = 2 * M * N * K per call) of tinyquant's paths against peers
// built into the same binary when CMake found them: gemmlowp (uint8, offsets, bias, per-channel
// fixed-point output pipeline), oneDNN (two matmuls, weights reordered once outside the timed
// loop: s8 x s8 -> s8 doing the job of the tinyquant int8 rows, and s8 x s8 -> s32 raw
// accumulators), Eigen (int32 product of int8-cast data; float product as yardstick) and
// OpenBLAS (sgemm, float yardstick). Shapes are M x K x N; tinyquant rows are fully_connected_s8
// (int8 out, per-channel requantization), its prepacked form, gemm_s8s8_s32 (raw int32, weights
// packed per call) and fully_connected_s8_prepacked_s32 (raw int32 on prepacked weights).
// Rows pair_tq_onednn_s8 interleave tinyquant's prepacked int8 call (default path) with oneDNN's
// s8-output matmul (both on weights packed once), rows pair_avx2_gemmlowp the avx2 path's
// prepacked call with gemmlowp's (which packs both operands on every call) and
// pair_avx2_plain_gemmlowp the avx2 path's plain call (packing per call too), 10 calls each per
// round, and report the fastest call of each and their ratio (see interleave).
// Before its timed loop every tinyquant row compares its output with the reference path's
// (int8 rows with fully_connected_s8, raw int32 rows with gemm_s8s8_s32) and fails if they differ.
// After the run a table of ratios (best tinyquant row / peer) for each shape is printed: int8
// rows against oneDNN's s8 output, int32 rows against its s32 output, and the paired ratios.
// TINYQUANT_BENCH_SMOKE=1 caps every dimension at 32 so the CTest smoke run is quick.
//
// oneDNN picks its ISA once per process (AMX-INT8 where present). For a second set of oneDNN
// rows capped at AVX-512 VNNI, run the binary once with TINYQUANT_BENCH_ONEDNN_CAP=vnni (only
// the oneDNN rows run, named onednn_vnni_*; dnnl::set_max_cpu_isa before any primitive)
// and TINYQUANT_BENCH_ROWS_OUT=<file> (each row's median GOP/s is written there), then the
// full run with TINYQUANT_BENCH_ROWS_IN=<file> so its ratio table has both oneDNN columns.
// bench/run_gemm_bench.sh does exactly that.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "tinyquant/parallel.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

#if defined(TINYQUANT_HAVE_GEMMLOWP)
#include <gemmlowp/public/gemmlowp.h>
#endif
#if defined(TINYQUANT_HAVE_DNNL)
#include <omp.h>

#include <dnnl.hpp>
#endif
#if defined(TINYQUANT_HAVE_OPENBLAS)
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace rt = tinyquant::rt;

namespace {

struct Shape {
  int m, k, n;
};

// Caller memory as the runtime recommends it (prepack.hpp, kernels.hpp): 64-byte aligned, so the
// packed weights and scratch start on a cache line, as a firmware section or an aligned arena
// would give them.
class AlignedBytes {
 public:
  explicit AlignedBytes(size_t bytes)
      : size_(bytes),
        data_(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64))) {
    if (data_ == nullptr) throw std::bad_alloc();
  }
  ~AlignedBytes() { std::free(data_); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  uint8_t* data_;
};

bool smoke() {
  return std::getenv("TINYQUANT_BENCH_SMOKE") != nullptr;
}

// True in the capped run: only oneDNN rows, limited to AVX-512 VNNI.
bool onednn_capped() {
  const char* cap = std::getenv("TINYQUANT_BENCH_ONEDNN_CAP");
  return cap != nullptr && std::string(cap) == "vnni";
}

std::string shape_name(const Shape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n);
}

// Operands shared by every implementation of one shape.
struct Problem {
  Shape s;
  std::vector<int8_t> a, b;  // a [m][k], b [n][k]
  std::vector<int32_t> bias, mult, shift;
  rt::FcParams params;
  explicit Problem(Shape sh) : s(sh) {
    std::mt19937 rng(static_cast<uint32_t>(sh.m * 131 + sh.k * 7 + sh.n));
    a.resize(static_cast<size_t>(s.m) * s.k);
    b.resize(static_cast<size_t>(s.n) * s.k);
    for (auto& v : a) v = static_cast<int8_t>(static_cast<int32_t>(rng() % 256) - 128);
    for (auto& v : b) v = static_cast<int8_t>(static_cast<int32_t>(rng() % 255) - 127);
    for (int j = 0; j < s.n; ++j) {
      bias.push_back(static_cast<int32_t>(rng() % 2001) - 1000);
      mult.push_back(static_cast<int32_t>((1u << 30) + rng() % (1u << 30)));
      shift.push_back(-12);
    }
    params.input_offset = 17;  // asymmetric activations, symmetric weights (TFLite's int8)
    params.filter_offset = 0;
    params.output_offset = -3;
  }
  rt::Requant requant() const { return {mult.data(), shift.data(), true, rt::Rounding::kDouble}; }
  // The real per-channel scale of the requantization: multiplier * 2^(shift - 31).
  std::vector<float> real_scales() const {
    std::vector<float> r;
    for (size_t j = 0; j < mult.size(); ++j) {
      r.push_back(static_cast<float>(std::ldexp(static_cast<double>(mult[j]), shift[j] - 31)));
    }
    return r;
  }
  rt::FcDims dims() const { return {s.m, s.k, s.n}; }
  rt::GemmDims gemm_dims() const { return {s.m, s.n, s.k, 0, 0, 0}; }
  // The reference path's int8 output and raw int32 accumulators (input offset and bias added),
  // computed on first use. Every tinyquant row's output is compared with them before it is
  // timed, so a kernel that computes the wrong thing cannot report a rate.
  const std::vector<int8_t>& ref_s8() const {
    if (ref_s8_.empty()) {
      std::vector<uint8_t> scratch(
          static_cast<size_t>(rt::fully_connected_s8_scratch_size(dims(), rt::Path::kReference)));
      const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()),
                            rt::Path::kReference};
      ref_s8_.resize(static_cast<size_t>(s.m) * s.n);
      if (rt::fully_connected_s8(ctx, params, requant(), dims(), a.data(), b.data(), bias.data(),
                                 ref_s8_.data()) != rt::Status::kOk) {
        std::fprintf(stderr, "reference fully_connected_s8 failed on %s\n", shape_name(s).c_str());
        std::exit(1);
      }
    }
    return ref_s8_;
  }
  const std::vector<int32_t>& ref_s32() const {
    if (ref_s32_.empty()) {
      std::vector<uint8_t> scratch(
          static_cast<size_t>(rt::gemm_s8s8_s32_scratch_size(gemm_dims(), rt::Path::kReference)));
      const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()),
                            rt::Path::kReference};
      ref_s32_.resize(static_cast<size_t>(s.m) * s.n);
      if (rt::gemm_s8s8_s32(ctx, gemm_dims(), a.data(), params.input_offset, b.data(), 0, nullptr,
                            bias.data(), ref_s32_.data()) != rt::Status::kOk) {
        std::fprintf(stderr, "reference gemm_s8s8_s32 failed on %s\n", shape_name(s).c_str());
        std::exit(1);
      }
    }
    return ref_s32_;
  }

 private:
  mutable std::vector<int8_t> ref_s8_;
  mutable std::vector<int32_t> ref_s32_;
};

// False, with the benchmark marked as failed, if out differs from the reference path's output.
template <class T>
bool matches_reference(benchmark::State& state, const std::vector<T>& out,
                       const std::vector<T>& ref) {
  if (out == ref) return true;
  state.SkipWithError("output differs from the reference path");
  return false;
}

void set_rate(benchmark::State& state, const Shape& s) {
  state.counters["GOP/s"] =
      benchmark::Counter(2.0 * s.m * s.n * s.k * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

// One call, its status and output checked against the reference path's, then the timed loop.
template <class Call, class T>
void time_checked(benchmark::State& state, const Problem* p, Call& call, const std::vector<T>& out,
                  const std::vector<T>& ref) {
  if (const rt::Status st = call(); st != rt::Status::kOk) {
    state.SkipWithError(rt::status_name(st));
    return;
  }
  if (!matches_reference(state, out, ref)) return;
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, p->s);
}

void tq_fc(benchmark::State& state, const Problem* p, rt::Path path, int threads) {
  const rt::FcDims d = p->dims();
  AlignedBytes scratch(static_cast<size_t>(rt::fully_connected_s8_scratch_size(d, path)));
  std::vector<int8_t> out(static_cast<size_t>(p->s.m) * p->s.n);
  const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), path};
  const rt::Requant rq = p->requant();
  auto call = [&] {
    if (threads > 1) {
      tinyquant::fully_connected_s8_parallel(threads, p->params, rq, d, p->a.data(), p->b.data(),
                                             p->bias.data(), out.data(), path);
      return rt::Status::kOk;
    }
    return rt::fully_connected_s8(ctx, p->params, rq, d, p->a.data(), p->b.data(), p->bias.data(),
                                  out.data());
  };
  time_checked(state, p, call, out, p->ref_s8());
}

// fully_connected_s8_prepacked (int8 out) or, with s32, fully_connected_s8_prepacked_s32 (raw
// int32) on weights packed once, at construction (outside any timed loop).
class TqPrepacked {
 public:
  TqPrepacked(const Problem* p, rt::Path path, bool s32)
      : p_(p),
        s32_(s32),
        d_(p->dims()),
        packed_(static_cast<size_t>(rt::fully_connected_s8_prepacked_size(d_, path))),
        rq_(p->requant()),
        pack_status_(rt::fully_connected_s8_prepack(p->params, d_, p->b.data(), path,
                                                    packed_.data(),
                                                    static_cast<int32_t>(packed_.size()))) {
    const int32_t scratch =
        s32 ? rt::fully_connected_s8_prepacked_s32_scratch_size(d_, packed_.data())
            : rt::fully_connected_s8_prepacked_scratch_size(d_, packed_.data());
    scratch_ = std::make_unique<AlignedBytes>(static_cast<size_t>(std::max(scratch, 0)));
    ctx_ = {scratch_->data(), static_cast<int32_t>(scratch_->size()), path};
    out_.resize(static_cast<size_t>(p->s.m) * p->s.n);
    acc_.resize(s32 ? out_.size() : 0);
  }
  // The prepack's status if it failed, else the run's.
  rt::Status run() {
    if (pack_status_ != rt::Status::kOk) return pack_status_;
    const rt::Status st =
        s32_ ? rt::fully_connected_s8_prepacked_s32(ctx_, p_->params, d_, p_->a.data(),
                                                    packed_.data(), p_->bias.data(), acc_.data())
             : rt::fully_connected_s8_prepacked(ctx_, p_->params, rq_, d_, p_->a.data(),
                                                packed_.data(), p_->bias.data(), out_.data());
    benchmark::DoNotOptimize(out_.data());
    benchmark::DoNotOptimize(acc_.data());
    benchmark::ClobberMemory();
    return st;
  }
  const std::vector<int8_t>& out() const { return out_; }
  // One call, its output compared with the reference path's; false (the benchmark marked as
  // failed) if the call fails or the output differs.
  bool check(benchmark::State& state) {
    if (const rt::Status st = run(); st != rt::Status::kOk) {
      state.SkipWithError(rt::status_name(st));
      return false;
    }
    return s32_ ? matches_reference(state, acc_, p_->ref_s32())
                : matches_reference(state, out_, p_->ref_s8());
  }

 private:
  const Problem* p_;
  bool s32_;
  rt::FcDims d_;
  AlignedBytes packed_;
  std::unique_ptr<AlignedBytes> scratch_;
  rt::Context ctx_{};
  rt::Requant rq_;
  rt::Status pack_status_;
  std::vector<int8_t> out_;
  std::vector<int32_t> acc_;
};

// fully_connected_s8 (int8 out) on the weights as given: whatever packing the path does is part
// of every call, as it is of every gemmlowp call.
class TqPlain {
 public:
  TqPlain(const Problem* p, rt::Path path)
      : p_(p),
        d_(p->dims()),
        rq_(p->requant()),
        scratch_(static_cast<size_t>(rt::fully_connected_s8_scratch_size(d_, path))),
        ctx_{scratch_.data(), static_cast<int32_t>(scratch_.size()), path},
        out_(static_cast<size_t>(p->s.m) * p->s.n) {}
  rt::Status run() {
    const rt::Status st = rt::fully_connected_s8(ctx_, p_->params, rq_, d_, p_->a.data(),
                                                 p_->b.data(), p_->bias.data(), out_.data());
    benchmark::DoNotOptimize(out_.data());
    benchmark::ClobberMemory();
    return st;
  }
  bool check(benchmark::State& state) {
    if (const rt::Status st = run(); st != rt::Status::kOk) {
      state.SkipWithError(rt::status_name(st));
      return false;
    }
    return matches_reference(state, out_, p_->ref_s8());
  }

 private:
  const Problem* p_;
  rt::FcDims d_;
  rt::Requant rq_;
  AlignedBytes scratch_;
  rt::Context ctx_;
  std::vector<int8_t> out_;
};

void tq_fc_prepacked(benchmark::State& state, const Problem* p, rt::Path path, bool s32) {
  TqPrepacked tq(p, path, s32);
  if (!tq.check(state)) return;
  for (auto _ : state) {
    const rt::Status st = tq.run();
    if (st != rt::Status::kOk) {
      state.SkipWithError(rt::status_name(st));
      break;
    }
  }
  set_rate(state, p->s);
}

void tq_s32(benchmark::State& state, const Problem* p, rt::Path path, int threads) {
  const rt::GemmDims d = p->gemm_dims();
  AlignedBytes scratch(static_cast<size_t>(rt::gemm_s8s8_s32_scratch_size(d, path)));
  std::vector<int32_t> out(static_cast<size_t>(p->s.m) * p->s.n);
  const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), path};
  const int32_t io = p->params.input_offset;
  auto call = [&] {
    if (threads > 1) {
      tinyquant::gemm_s8s8_s32_parallel(threads, d, p->a.data(), io, p->b.data(), 0, nullptr,
                                        p->bias.data(), out.data(), path);
      return rt::Status::kOk;
    }
    return rt::gemm_s8s8_s32(ctx, d, p->a.data(), io, p->b.data(), 0, nullptr, p->bias.data(),
                             out.data());
  };
  time_checked(state, p, call, out, p->ref_s32());
}

#if defined(TINYQUANT_HAVE_GEMMLOWP)
// gemmlowp's uint8 GEMM with its fixed-point output pipeline: the same job as the tinyquant int8
// rows on the uint8 form of the data (each value + 128, the offsets moved to match): int32 bias,
// per-channel multipliers and exponents (TFLite's rounding, as Rounding::kDouble), output offset,
// saturating cast. Its output minus 128 equals the reference path's int8 output.
class GemmlowpU8 {
 public:
  using RowVector = gemmlowp::VectorMap<const int32_t, gemmlowp::VectorShape::Row>;
  GemmlowpU8(const Problem* p, int threads)
      : p_(p), a_(p->a.size()), b_(p->b.size()), c_(static_cast<size_t>(p->s.m) * p->s.n) {
    for (size_t i = 0; i < a_.size(); ++i) a_[i] = static_cast<uint8_t>(p->a[i] + 128);
    for (size_t i = 0; i < b_.size(); ++i) b_[i] = static_cast<uint8_t>(p->b[i] + 128);
    context_.set_max_num_threads(threads);
  }
  void run() {
    const gemmlowp::MatrixMap<const uint8_t, gemmlowp::MapOrder::RowMajor> lhs(a_.data(), p_->s.m,
                                                                               p_->s.k);
    const gemmlowp::MatrixMap<const uint8_t, gemmlowp::MapOrder::ColMajor> rhs(b_.data(), p_->s.k,
                                                                               p_->s.n);
    gemmlowp::MatrixMap<uint8_t, gemmlowp::MapOrder::RowMajor> res(c_.data(), p_->s.m, p_->s.n);
    gemmlowp::OutputStageBiasAddition<RowVector> bias;
    bias.bias_vector = RowVector(p_->bias.data(), p_->s.n);
    gemmlowp::OutputStageScaleInt32ByFixedPointAndExponentPC<gemmlowp::VectorShape::Row> scale;
    scale.result_fixedpoint_multiplier = RowVector(p_->mult.data(), p_->s.n);
    scale.result_exponent = RowVector(p_->shift.data(), p_->s.n);
    scale.result_offset_after_shift = p_->params.output_offset + 128;
    const auto pipeline =
        std::make_tuple(bias, scale, gemmlowp::OutputStageSaturatingCastToUint8());
    gemmlowp::GemmWithOutputPipeline<uint8_t, uint8_t, gemmlowp::DefaultL8R8BitDepthParams>(
        &context_, lhs, rhs, &res, p_->params.input_offset - 128, -128, pipeline);
    benchmark::DoNotOptimize(c_.data());
    benchmark::ClobberMemory();
  }
  // The largest difference between the output (back in int8) and the reference path's.
  int max_diff_to_reference() const {
    const std::vector<int8_t>& ref = p_->ref_s8();
    int diff = 0;
    for (size_t i = 0; i < c_.size(); ++i) diff = std::max(diff, std::abs(c_[i] - 128 - ref[i]));
    return diff;
  }

 private:
  const Problem* p_;
  std::vector<uint8_t> a_, b_, c_;
  gemmlowp::GemmContext context_;
};

void gemmlowp_u8(benchmark::State& state, const Problem* p, int threads) {
  GemmlowpU8 lowp(p, threads);
  lowp.run();
  if (lowp.max_diff_to_reference() != 0) {
    state.SkipWithError("gemmlowp's output differs from the reference path's");
    return;
  }
  for (auto _ : state) lowp.run();
  set_rate(state, p->s);
}
#endif

// Interleaved pair, single thread: each iteration is one round of 10 calls of a tinyquant int8
// entry (TqPrepacked or TqPlain), then 10 of a peer's, each call timed on its own; the counters are
// the fastest call of each over the run (microseconds) and their ratio (peer time / tinyquant time:
// above 1, tinyquant is faster). Interleaving exposes both to the same machine state, and the
// fastest call is the least disturbed by other work on a shared core, where medians of rows run one
// after the other move by up to 1.5x between runs (up to 2.5x at 1024x1024x1024). False if
// tinyquant's call failed (the benchmark is then marked as skipped with its status).
template <class Tq, class Peer>
bool interleave(benchmark::State& state, Tq& tq, Peer& peer) {
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(clock::now() - t0).count();
  };
  double best_tq = 1e30, best_peer = 1e30;
  for (auto _ : state) {
    for (int i = 0; i < 10; ++i) {
      const auto t0 = clock::now();
      const rt::Status st = tq.run();
      const double us = since(t0);
      if (st != rt::Status::kOk) {
        state.SkipWithError(rt::status_name(st));
        return false;
      }
      best_tq = std::min(best_tq, us);
    }
    for (int i = 0; i < 10; ++i) {
      const auto t0 = clock::now();
      peer.run();
      best_peer = std::min(best_peer, since(t0));
    }
  }
  state.counters["tq_us"] = best_tq;
  state.counters["peer_us"] = best_peer;
  state.counters["ratio"] = best_peer / best_tq;
  return true;
}

#if defined(TINYQUANT_HAVE_GEMMLOWP)
// The avx2 path's int8 call against gemmlowp (the goal: avx2 >= 1.5x gemmlowp). gemmlowp has
// no prepacked-weights entry: it packs both operands on every call. With prepacked, tinyquant's
// weights are packed once outside the timed loop, so the pair counts packing on gemmlowp's side
// only; without, tinyquant's plain call does whatever packing its path does per call (like for
// like).
void pair_avx2_vs_gemmlowp(benchmark::State& state, const Problem* p, bool prepacked) {
  TqPrepacked tq_packed(p, rt::Path::kAvx2, false);
  TqPlain tq_plain(p, rt::Path::kAvx2);
  if (!(prepacked ? tq_packed.check(state) : tq_plain.check(state))) return;
  GemmlowpU8 lowp(p, 1);
  if (!(prepacked ? interleave(state, tq_packed, lowp) : interleave(state, tq_plain, lowp))) {
    return;
  }
  state.counters["max_diff"] = lowp.max_diff_to_reference();
}
#endif

#if defined(TINYQUANT_HAVE_DNNL)
// oneDNN matmul, weights reordered once to the primitive's layout at construction (outside any
// timed loop). s8 out: the job of the tinyquant int8 rows: src zero point -17 (input offset 17),
// symmetric s8 weights, s32 bias, per-channel output scales equal to the requantization's real
// multipliers, dst zero point -3 (the output offset), s8 saturation. s32 out: raw sum_k a * b
// only (no zero point, bias or scale).
class OnednnMatmul {
 public:
  OnednnMatmul(const Problem* p, bool s8_out) : eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::dim m = p->s.m, k = p->s.k, n = p->s.n;
    const dnnl::memory::desc a_md({m, k}, dt::s8, tag::ab);
    const dnnl::memory::desc b_user_md({k, n}, dt::s8, tag::ba);  // our [n][k] rows
    const dnnl::memory::desc b_any_md({k, n}, dt::s8, tag::any);
    const dnnl::memory::desc bias_md({1, n}, dt::s32, tag::ab);
    const dnnl::memory::desc c_md({m, n}, s8_out ? dt::s8 : dt::s32, tag::ab);
    dnnl::primitive_attr attr;
    if (s8_out) {
      attr.set_output_scales(1 << 1, p->real_scales());
      attr.set_zero_points(DNNL_ARG_SRC, 0, {-p->params.input_offset});
      attr.set_zero_points(DNNL_ARG_DST, 0, {p->params.output_offset});
    }
    const dnnl::matmul::desc desc = s8_out ? dnnl::matmul::desc(a_md, b_any_md, bias_md, c_md)
                                           : dnnl::matmul::desc(a_md, b_any_md, c_md);
    const dnnl::matmul::primitive_desc pd(desc, attr, eng_);
    dnnl::memory a_mem(a_md, eng_, const_cast<int8_t*>(p->a.data()));
    dnnl::memory b_user(b_user_md, eng_, const_cast<int8_t*>(p->b.data()));
    dnnl::memory b_mem(pd.weights_desc(), eng_);
    dnnl::reorder(b_user, b_mem).execute(strm_, b_user, b_mem);
    dnnl::memory bias_mem(bias_md, eng_, const_cast<int32_t*>(p->bias.data()));
    c_mem_ = dnnl::memory(c_md, eng_);
    prim_ = dnnl::matmul(pd);
    args_ = {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem_}};
    if (s8_out) args_.emplace(DNNL_ARG_BIAS, bias_mem);
  }
  void run() {
    prim_.execute(strm_, args_);
    strm_.wait();
  }
  const void* out() const { return c_mem_.get_data_handle(); }

 private:
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::memory c_mem_;
  dnnl::matmul prim_;
  std::unordered_map<int, dnnl::memory> args_;
};

// The largest difference between two int8 outputs (tinyquant's fixed-point requantization
// against oneDNN's float scales: 0 or 1 is expected).
int max_diff(const int8_t* x, const int8_t* y, size_t count) {
  int diff = 0;
  for (size_t i = 0; i < count; ++i) diff = std::max(diff, std::abs(x[i] - y[i]));
  return diff;
}

void onednn_matmul(benchmark::State& state, const Problem* p, int threads, bool s8_out) {
  omp_set_num_threads(threads);
  OnednnMatmul dnn(p, s8_out);
  for (auto _ : state) dnn.run();
  set_rate(state, p->s);
  if (s8_out) {
    // The same job: the largest difference from the reference path's int8 output.
    const std::vector<int8_t>& ref = p->ref_s8();
    state.counters["max_diff"] =
        max_diff(ref.data(), static_cast<const int8_t*>(dnn.out()), ref.size());
  }
}

// tinyquant's prepacked int8 call on the default path against oneDNN's s8-output matmul, with
// the largest difference of their outputs (0 or 1: fixed-point against float scales).
void pair_vs_onednn(benchmark::State& state, const Problem* p) {
  omp_set_num_threads(1);
  TqPrepacked tq(p, rt::Path::kAuto, false);
  if (!tq.check(state)) return;
  OnednnMatmul dnn(p, true);
  if (!interleave(state, tq, dnn)) return;
  state.counters["max_diff"] =
      max_diff(tq.out().data(), static_cast<const int8_t*>(dnn.out()), tq.out().size());
}
#endif

// The Eigen rows run on one thread. bench_gemm is built with OpenMP (for oneDNN), and with it
// Eigen parallelises its products over omp_get_max_threads() threads, which is whatever the last
// oneDNN row set (or every CPU, when no oneDNN row ran before), while the rows are timed on the
// calling thread's CPU time.
void eigen_i32(benchmark::State& state, const Problem* p) {
  Eigen::setNbThreads(1);
  using Mat = Eigen::Matrix<int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Mat a =
      Eigen::Map<const Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          p->a.data(), p->s.m, p->s.k)
          .cast<int32_t>();
  const Mat b =
      Eigen::Map<const Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          p->b.data(), p->s.n, p->s.k)
          .cast<int32_t>();
  Mat c(p->s.m, p->s.n);
  for (auto _ : state) {
    c.noalias() = a * b.transpose();
    benchmark::DoNotOptimize(c.data());
  }
  set_rate(state, p->s);
}

void eigen_f32(benchmark::State& state, const Problem* p) {
  Eigen::setNbThreads(1);
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Mat a = Mat::Random(p->s.m, p->s.k);
  const Mat b = Mat::Random(p->s.n, p->s.k);
  Mat c(p->s.m, p->s.n);
  for (auto _ : state) {
    c.noalias() = a * b.transpose();
    benchmark::DoNotOptimize(c.data());
  }
  set_rate(state, p->s);
}

#if defined(TINYQUANT_HAVE_OPENBLAS)
void openblas_f32(benchmark::State& state, const Problem* p, int threads) {
  openblas_set_num_threads(threads);
  std::vector<float> a(p->a.begin(), p->a.end()), b(p->b.begin(), p->b.end());
  std::vector<float> c(static_cast<size_t>(p->s.m) * p->s.n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->s.m, p->s.n, p->s.k, 1.0f, a.data(),
                p->s.k, b.data(), p->s.k, 0.0f, c.data(), p->s.n);
    benchmark::DoNotOptimize(c.data());
  }
  set_rate(state, p->s);
}
#endif

// Console output as usual, plus the GOP/s of every row (median when aggregated) for the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> gops;
  std::map<std::string, double> pair_ratio;  // the interleaved rows' peer / tinyquant ratio
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.str();                       // without the aggregate suffix
      for (const char* part : {"/real_time", "/iterations:"}) {  // row() names, without these
        const size_t at = name.find(part);
        if (at != std::string::npos) name.erase(at, name.find('/', at + 1) - at);
      }
      if (const auto it = r.counters.find("GOP/s"); it != r.counters.end())
        gops[name] = it->second.value;
      if (const auto it = r.counters.find("ratio"); it != r.counters.end())
        pair_ratio[name] = it->second.value;
    }
  }
};

// Rows on 2 threads are timed by the wall clock: CPU time would count only the calling thread.
void timed(int threads, benchmark::internal::Benchmark* b) {
  if (threads > 1) b->UseRealTime();
}

std::string row(const Shape& s, const std::string& impl, int threads) {
  return "gemm/" + shape_name(s) + "/" + impl + "/threads:" + std::to_string(threads);
}

}  // namespace

int main(int argc, char** argv) {
  const bool capped = onednn_capped();
#if defined(TINYQUANT_HAVE_DNNL)
  if (capped) dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core_vnni);  // before any primitive
#else
  if (capped) {
    std::fprintf(stderr, "TINYQUANT_BENCH_ONEDNN_CAP: this build has no oneDNN rows\n");
    return 0;
  }
#endif
  std::vector<Shape> shapes = {{1, 27, 128},    {1, 784, 128},     {1, 128, 64},
                               {1, 256, 256},   {16, 256, 256},    {1024, 288, 64},
                               {256, 256, 256}, {1024, 1024, 1024}};
  if (smoke()) {
    for (auto& s : shapes) s = {std::min(s.m, 32), std::min(s.k, 32), std::min(s.n, 32)};
    shapes = {shapes[0], shapes[1], shapes[4], shapes[5], shapes[6], shapes[7]};  // distinct
    shapes[4] = {4, 40, 24};
    shapes[5] = {8, 24, 40};
  }
  // The two largest shapes also run on 2 threads.
  const Shape two_thread[] = {shapes[smoke() ? 3 : 5], shapes[smoke() ? 5 : 7]};
  std::vector<std::unique_ptr<Problem>> problems;
  const uint32_t paths = rt::supported_paths();
  std::vector<std::pair<rt::Path, std::string>> tq_paths;
  for (rt::Path p : {rt::Path::kReference, rt::Path::kSmlad, rt::Path::kAvx2, rt::Path::kAvx512Vnni,
                     rt::Path::kAmx}) {
    if ((paths & rt::path_bits(p)) != 0 && !capped) tq_paths.emplace_back(p, rt::path_name(p));
  }
  std::vector<std::string> tq_rows_all, peer_rows_all;
  for (const Shape& s : shapes) {
    problems.push_back(std::make_unique<Problem>(s));
    const Problem* pr = problems.back().get();
    const double ops = 2.0 * s.m * s.n * s.k;
    for (int threads : {1, 2}) {
      const bool big = std::any_of(std::begin(two_thread), std::end(two_thread),
                                   [&](Shape t) { return t.m == s.m && t.k == s.k && t.n == s.n; });
      if (threads == 2 && !big) continue;
      for (const auto& [path, name] : tq_paths) {
        const bool scalar = path == rt::Path::kReference || path == rt::Path::kSmlad;
        if (scalar && (ops > 2e7 || threads > 1)) continue;  // scalar paths only at small sizes
        timed(threads, benchmark::RegisterBenchmark(row(s, "tq_" + name, threads).c_str(), tq_fc,
                                                    pr, path, threads));
        if (threads == 1 && !scalar) {
          benchmark::RegisterBenchmark(row(s, "tq_" + name + "_prepacked", 1).c_str(),
                                       tq_fc_prepacked, pr, path, false);
          benchmark::RegisterBenchmark(row(s, "tq_" + name + "_prepacked_s32", 1).c_str(),
                                       tq_fc_prepacked, pr, path, true);
        }
        if (!scalar) {
          timed(threads,
                benchmark::RegisterBenchmark(row(s, "tq_" + name + "_s32", threads).c_str(), tq_s32,
                                             pr, path, threads));
        }
      }
#if defined(TINYQUANT_HAVE_DNNL)
      for (const bool s8_out : {true, false}) {
        const std::string impl =
            std::string(capped ? "onednn_vnni_" : "onednn_") + (s8_out ? "s8s8s8" : "s8s8s32");
        timed(threads, benchmark::RegisterBenchmark(row(s, impl, threads).c_str(), onednn_matmul,
                                                    pr, threads, s8_out));
      }
      if (threads == 1 && !capped) {
        benchmark::RegisterBenchmark(row(s, "pair_tq_onednn_s8", 1).c_str(), pair_vs_onednn, pr)
            ->Iterations(smoke() ? 2 : 30);
      }
#endif
      if (capped) continue;
#if defined(TINYQUANT_HAVE_GEMMLOWP)
      timed(threads, benchmark::RegisterBenchmark(row(s, "gemmlowp_u8", threads).c_str(),
                                                  gemmlowp_u8, pr, threads));
      if (threads == 1 && (paths & rt::path_bits(rt::Path::kAvx2)) != 0) {
        for (const bool prepacked : {true, false}) {
          const char* impl = prepacked ? "pair_avx2_gemmlowp" : "pair_avx2_plain_gemmlowp";
          benchmark::RegisterBenchmark(row(s, impl, 1).c_str(), pair_avx2_vs_gemmlowp, pr,
                                       prepacked)
              ->Iterations(smoke() ? 2 : 30);
        }
      }
#endif
#if defined(TINYQUANT_HAVE_OPENBLAS)
      timed(threads, benchmark::RegisterBenchmark(row(s, "openblas_sgemm", threads).c_str(),
                                                  openblas_f32, pr, threads));
#endif
      if (threads == 1) {
        benchmark::RegisterBenchmark(row(s, "eigen_i32", 1).c_str(), eigen_i32, pr);
        benchmark::RegisterBenchmark(row(s, "eigen_f32", 1).c_str(), eigen_f32, pr);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  if (const char* out = std::getenv("TINYQUANT_BENCH_ROWS_OUT")) {
    std::ofstream f(out);
    for (const auto& [name, v] : reporter.gops) f << name << ' ' << v << '\n';
  }
  if (const char* in = std::getenv("TINYQUANT_BENCH_ROWS_IN")) {
    std::ifstream f(in);
    std::string name;
    double v = 0;
    while (f >> name >> v) reporter.gops.emplace(name, v);
  }
  if (capped) return 0;

  // Ratios, like for like: the best tinyquant int8-out row (plain or prepacked, any path) over
  // oneDNN's s8-out matmul, the best raw-int32 row over its s32-out matmul, each against oneDNN
  // as it runs by default (AMX where present) and capped at AVX-512 VNNI (when given); then
  // the best int8 row over oneDNN's s32 (less work than ours; kept for continuity) and over
  // gemmlowp, the better avx2 int8 row over gemmlowp, and the interleaved pairs' ratios: oneDNN's
  // fastest s8-output call over tinyquant's fastest prepacked int8 call on the default path
  // (pair/d), gemmlowp's fastest call over the avx2 path's prepacked one (pair/l: packing counted
  // for gemmlowp only) and over its plain one (pair/lp: packing counted on both sides).
  std::printf(
      "\n%-20s %-20s %7s %7s %6s %7s %6s  %-22s %7s %7s %6s %7s %6s  %8s %6s %6s %6s %6s %7s\n",
      "shape/threads", "best tq int8 row", "GOP/s", "dnn_s8", "ratio", "vnni_s8", "ratio",
      "best tq s32 row", "GOP/s", "dnn_s32", "ratio", "vnni_32", "ratio", "i8/dnn32", "/lowp",
      "avx2/l", "pair/d", "pair/l", "pair/lp");
  for (const Shape& s : shapes) {
    for (int threads : {1, 2}) {
      const std::string prefix = "gemm/" + shape_name(s) + "/tq_";
      const std::string suffix = "/threads:" + std::to_string(threads);
      // The fastest tinyquant row of one kind (raw int32 or int8 out), and its name.
      auto best_of = [&](bool s32, std::string* best_name) {
        double best = 0;
        for (const auto& [name, v] : reporter.gops) {
          if (name.rfind(prefix, 0) != 0 || name.find(suffix) == std::string::npos) continue;
          if ((name.find("_s32") != std::string::npos) != s32) continue;
          if (v > best) {
            best = v;
            *best_name = name.substr(prefix.size(), name.find('/', prefix.size()) - prefix.size());
          }
        }
        return best;
      };
      std::string int8_name, s32_name;
      const double best = best_of(false, &int8_name), best32 = best_of(true, &s32_name);
      double avx2 = 0;
      for (const char* impl : {"tq_avx2", "tq_avx2_prepacked"}) {
        const auto it = reporter.gops.find(row(s, impl, threads));
        if (it != reporter.gops.end()) avx2 = std::max(avx2, it->second);
      }
      auto peer = [&](const char* impl) {
        const auto it = reporter.gops.find(row(s, impl, threads));
        return it == reporter.gops.end() || it->second == 0 ? 0.0 : it->second;
      };
      const double dnn8 = peer("onednn_s8s8s8"), vnni8 = peer("onednn_vnni_s8s8s8");
      const double dnn32 = peer("onednn_s8s8s32"), vnni32 = peer("onednn_vnni_s8s8s32");
      const double lowp = peer("gemmlowp_u8");
      auto ratio = [](double x, double y) { return y > 0 ? x / y : 0.0; };
      auto paired = [&](const char* impl) {
        const auto it = reporter.pair_ratio.find(row(s, impl, threads));
        return it == reporter.pair_ratio.end() ? 0.0 : it->second;
      };
      const double pair_dnn = paired("pair_tq_onednn_s8"), pair_lowp = paired("pair_avx2_gemmlowp");
      const double pair_lowp_plain = paired("pair_avx2_plain_gemmlowp");
      if (best == 0 && pair_dnn == 0 && pair_lowp == 0 && pair_lowp_plain == 0) continue;
      std::printf(
          "%-20s %-20s %7.1f %7.1f %6.2f %7.1f %6.2f  %-22s %7.1f %7.1f %6.2f %7.1f %6.2f  %8.2f "
          "%6.2f %6.2f %6.2f %6.2f %7.2f\n",
          (shape_name(s) + "/t" + std::to_string(threads)).c_str(), int8_name.c_str(), best, dnn8,
          ratio(best, dnn8), vnni8, ratio(best, vnni8), s32_name.c_str(), best32, dnn32,
          ratio(best32, dnn32), vnni32, ratio(best32, vnni32), ratio(best, dnn32),
          ratio(best, lowp), ratio(avx2, lowp), pair_dnn, pair_lowp, pair_lowp_plain);
    }
  }
  return 0;
}
