// Sparse vs dense int8 fully-connected on the host's default path.
// Args: {in_features, out_features, sparsity %, batch}; counters: bytes of the weight format and
// its ratio to dense int8. Every row's output is compared with the dense reference path's on the
// same weights before it is timed. TINYQUANT_BENCH_SMOKE=1 shrinks the layers so a CTest run is
// quick.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "tinyquant/prune.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"
#include "tinyquant/sparse.hpp"

namespace {

using namespace tinyquant;

bool smoke() {
  return std::getenv("TINYQUANT_BENCH_SMOKE") != nullptr;
}

struct Layer {
  int32_t k = 0, n = 0, batch = 1;
  std::vector<int8_t> input, weights;  // input [batch][k]; weights [n][k], pruned by magnitude
  std::vector<int32_t> bias, multiplier, shift;
  rt::FcParams params;
  rt::Requant requant;
  rt::FcDims dims;
};

// block_rows 0: unstructured magnitude pruning; else block_rows x 16 blocks (block_mask, mean
// |w| score), the block CSR kernels' tile. nm_m > 0: nm_n of every nm_m weights kept (nm_mask;
// sparsity_pct unused).
Layer make_layer(int32_t k, int32_t n, int sparsity_pct, int32_t batch, int32_t block_rows = 0,
                 int nm_n = 0, int nm_m = 0) {
  if (smoke()) {
    k = k > 64 ? 64 : k;
    n = n > 16 ? 16 : n;
  }
  Layer l;
  l.k = k;
  l.n = n;
  l.batch = batch;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(k) * static_cast<size_t>(n));
  for (float& v : w) v = normal(rng);
  const Mask mask = nm_m > 0 ? nm_mask({w.data(), {n, k}}, nm_n, nm_m)
                    : block_rows == 0
                        ? magnitude_mask({w.data(), {n, k}}, sparsity_pct / 100.0)
                        : block_mask({w.data(), {n, k}}, block_rows, 16, sparsity_pct / 100.0);
  l.weights.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    const float q = w[i] * 32.0f;
    const float c = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
    l.weights[i] = mask[i] ? static_cast<int8_t>(c >= 0 ? c + 0.5f : c - 0.5f) : int8_t{0};
    if (mask[i] && l.weights[i] == 0) l.weights[i] = 1;  // keep the pruned count exact
  }
  std::uniform_int_distribution<int> i8(-128, 127);
  l.input.resize(static_cast<size_t>(batch) * static_cast<size_t>(k));
  for (auto& v : l.input) v = static_cast<int8_t>(i8(rng));
  l.bias.assign(static_cast<size_t>(n), 1000);
  l.multiplier.assign(static_cast<size_t>(n), 1 << 30);
  l.shift.assign(static_cast<size_t>(n), -8);
  l.params.input_offset = 3;
  l.requant.multiplier = l.multiplier.data();
  l.requant.shift = l.shift.data();
  l.requant.per_channel = true;
  l.dims.batch = batch;
  l.dims.in_features = k;
  l.dims.out_features = n;
  return l;
}

Layer layer_of(const benchmark::State& state, int32_t block_rows = 0) {
  return make_layer(static_cast<int32_t>(state.range(0)), static_cast<int32_t>(state.range(1)),
                    static_cast<int>(state.range(2)), static_cast<int32_t>(state.range(3)),
                    block_rows);
}

// The timed loop every format shares: call(ctx, out) runs the layer once on `path` with
// scratch_bytes of scratch; weight_bytes is the size of the weight format.
template <class Call>
void time_fc(benchmark::State& state, const Layer& l, rt::Path path, int32_t scratch_bytes,
             size_t weight_bytes, Call&& call) {
  std::vector<uint8_t> scratch(static_cast<size_t>(scratch_bytes) + 1);
  rt::Context ctx;
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  ctx.path = path;
  std::vector<int8_t> out(static_cast<size_t>(l.batch) * static_cast<size_t>(l.n));
  // The dense reference path on the same pruned weights: a format or kernel that computes the
  // wrong thing fails instead of reporting a time.
  std::vector<uint8_t> ref_scratch(
      static_cast<size_t>(rt::fully_connected_s8_scratch_size(l.dims, rt::Path::kReference)));
  rt::Context ref_ctx;
  ref_ctx.scratch = ref_scratch.data();
  ref_ctx.scratch_size = static_cast<int32_t>(ref_scratch.size());
  ref_ctx.path = rt::Path::kReference;
  std::vector<int8_t> ref(out.size());
  for (const rt::Status st :
       {rt::fully_connected_s8(ref_ctx, l.params, l.requant, l.dims, l.input.data(),
                               l.weights.data(), l.bias.data(), ref.data()),
        call(ctx, out.data())}) {
    if (st != rt::Status::kOk) {
      state.SkipWithError(rt::status_name(st));
      return;
    }
  }
  if (out != ref) {
    state.SkipWithError("output differs from the dense reference path");
    return;
  }
  for (auto _ : state) {
    call(ctx, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(weight_bytes);
  state.counters["bytes_vs_dense"] =
      static_cast<double>(weight_bytes) / static_cast<double>(l.weights.size());
}

void BM_DenseFc(benchmark::State& state, rt::Path path) {
  const Layer l = layer_of(state);
  time_fc(state, l, path, rt::fully_connected_s8_scratch_size(l.dims, path), l.weights.size(),
          [&](const rt::Context& ctx, int8_t* out) {
            return rt::fully_connected_s8(ctx, l.params, l.requant, l.dims, l.input.data(),
                                          l.weights.data(), l.bias.data(), out);
          });
  state.SetLabel(rt::path_name(path == rt::Path::kAuto ? rt::default_path() : path));
}

// The sparse kernel on l's weights stored as opt says.
void time_sparse_fc(benchmark::State& state, const Layer& l, const SparseOptions& opt,
                    rt::Path path) {
  const SparseMatrix sm = SparseMatrix::from_dense(l.weights.data(), l.n, l.k, opt);
  const rt::SparseMatrixS8 w = sm.view();
  if (rt::validate_sparse_s8(w) != rt::Status::kOk) {
    state.SkipWithError("invalid sparse data");
    return;
  }
  time_fc(state, l, path, rt::sparse_fully_connected_s8_scratch_size(l.dims, w, path), sm.bytes(),
          [&](const rt::Context& ctx, int8_t* out) {
            return rt::sparse_fully_connected_s8(ctx, l.params, l.requant, l.dims, l.input.data(),
                                                 w, l.bias.data(), out);
          });
}

void BM_SparseFc(benchmark::State& state, StorageFormat format, rt::Path path) {
  SparseOptions opt;
  opt.format = format;
  time_sparse_fc(state, layer_of(state), opt, path);
}

// N:M: nm_n of every nm_m consecutive weights of a row kept by magnitude, stored as N:M.
void BM_NmFc(benchmark::State& state, int nm_n, int nm_m, rt::Path path) {
  SparseOptions opt;
  opt.format = StorageFormat::kNm;
  opt.nm_n = nm_n;
  opt.nm_m = nm_m;
  const Layer l =
      make_layer(static_cast<int32_t>(state.range(0)), static_cast<int32_t>(state.range(1)), 0,
                 static_cast<int32_t>(state.range(3)), 0, nm_n, nm_m);
  time_sparse_fc(state, l, opt, path);
}

// Block CSR with block_rows x 16 blocks on block-pruned weights at the same sparsity.
void BM_BlockFc(benchmark::State& state, int32_t block_rows, rt::Path path) {
  SparseOptions opt;
  opt.format = StorageFormat::kBlockCsr;
  opt.block_rows = block_rows;
  opt.block_cols = 16;
  time_sparse_fc(state, layer_of(state, block_rows), opt, path);
}

// Batch 1 (a microcontroller's case) at every sparsity, and batch 8 at 70 % and 90 %: the dense
// kernels reuse each weight across the batch, and so do the sparse x86 bodies: bitmap decodes a
// row's weights once for four batch rows, CSR / N:M once for eight, block CSR loads a block's
// weights once for four (AVX-512) or for four / two (AVX2, 1x16 / 4x16).
void shapes(benchmark::internal::Benchmark* b) {
  for (int pct : {50, 70, 90, 95}) {
    b->Args({784, 128, pct, 1});
    b->Args({1024, 1024, pct, 1});
  }
  for (int pct : {70, 90}) {
    b->Args({784, 128, pct, 8});
    b->Args({1024, 1024, pct, 8});
  }
}

// Dense: the host's default path (the fastest the CPU has) and AVX2 for a same-ISA view.
BENCHMARK_CAPTURE(BM_DenseFc, default_path, rt::Path::kAuto)->Apply(shapes);
BENCHMARK_CAPTURE(BM_DenseFc, avx2, rt::Path::kAvx2)->Apply(shapes);
// Sparse: default path (AVX-512 VNNI where the CPU has it: CSR on the AVX2 bodies, bitmap on
// vpexpandb where AVX-512 VBMI2 is there), bitmap on AVX2 for comparison, and the scalar
// reference on CSR.
BENCHMARK_CAPTURE(BM_SparseFc, csr_u8, StorageFormat::kCsrU8, rt::Path::kAuto)->Apply(shapes);
BENCHMARK_CAPTURE(BM_SparseFc, csr_u16, StorageFormat::kCsrU16, rt::Path::kAuto)->Apply(shapes);
BENCHMARK_CAPTURE(BM_SparseFc, bitmap, StorageFormat::kBitmap, rt::Path::kAuto)->Apply(shapes);
BENCHMARK_CAPTURE(BM_SparseFc, bitmap_avx2, StorageFormat::kBitmap, rt::Path::kAvx2)->Apply(shapes);
// Block CSR 1x16 and 4x16 (block-pruned weights): default path (AVX-512 VNNI where the CPU
// has it), AVX2, and the smlad data flow for scale.
// N:M fixes its own sparsity (2:4 50 %, 1:4 75 %; the sparsity argument is that figure, for
// the table): both layers at batch 1 and 8.
void nm_shapes(benchmark::internal::Benchmark* b, int pct) {
  for (int batch : {1, 8}) {
    b->Args({784, 128, pct, batch});
    b->Args({1024, 1024, pct, batch});
  }
}
BENCHMARK_CAPTURE(BM_NmFc, nm_2_4, 2, 4, rt::Path::kAuto)->Apply([](auto* b) { nm_shapes(b, 50); });
BENCHMARK_CAPTURE(BM_NmFc, nm_1_4, 1, 4, rt::Path::kAuto)->Apply([](auto* b) { nm_shapes(b, 75); });
BENCHMARK_CAPTURE(BM_NmFc, nm_4_8, 4, 8, rt::Path::kAuto)->Apply([](auto* b) { nm_shapes(b, 50); });
BENCHMARK_CAPTURE(BM_BlockFc, bsr_1x16, 1, rt::Path::kAuto)->Apply(shapes);
BENCHMARK_CAPTURE(BM_BlockFc, bsr_4x16, 4, rt::Path::kAuto)->Apply(shapes);
BENCHMARK_CAPTURE(BM_BlockFc, bsr_1x16_avx2, 1, rt::Path::kAvx2)->Apply(shapes);
BENCHMARK_CAPTURE(BM_BlockFc, bsr_4x16_avx2, 4, rt::Path::kAvx2)->Apply(shapes);
BENCHMARK_CAPTURE(BM_SparseFc, csr_u8_reference, StorageFormat::kCsrU8, rt::Path::kReference)
    ->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
