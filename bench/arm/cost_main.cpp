// Cortex-M4 cost of one tinyquant::rt kernel call, for bench/arm/measure.sh.
//
// Built once per case (-DTQ_COST_CASE=<index>, or -1 for a main that calls no kernel) so that,
// with -ffunction-sections and --gc-sections, the ELF holds only that kernel and its helpers.
// The call runs between tq_region_begin() and tq_region_end(), two empty noinline functions the
// QEMU plugin (tools/qemu-insn-plugin) uses as markers; an empty begin/end pair runs first so the
// harness can subtract the markers' own cost. Peak stack is measured by painting the stack below
// the caller with a pattern and finding the deepest word the kernel overwrote.
// Prints one line: "cost <name> macs <n> scratch <bytes> stack <bytes> status <name>". The
// output is then compared with a plain loop over the kernels' formula (harness code, not the
// runtime's); a difference makes the status "mismatch".
//
// Sparse cases (-DTQ_COST_SPARSE=<index> instead of TQ_COST_CASE) prune one FC layer by
// magnitude to an exact sparsity (sparse_build.hpp), store it in one sparse format and run two
// regions after the empty one: the dense kernel on the pruned weights (the baseline), then
// rt::sparse_fully_connected_s8 on the smlad path. Both outputs are compared on the target; any
// difference, or a status other than ok, makes the status "mismatch" / the failing status.
// Prints "sparse <name> macs <dense MACs> nnz <stored values> scratch <sparse scratch bytes>
// stack <dense stack> <sparse stack> status <name>". -DTQ_COST_SPARSE_ONLY=1 leaves the dense
// call and the validation out, so the ELF's .text is the sparse call's alone.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "region_markers.h"
#include "sparse_build.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"

namespace rt = tinyquant::rt;

#if !defined(TQ_COST_CASE)
#define TQ_COST_CASE -1
#endif
#if !defined(TQ_COST_SPARSE)
#define TQ_COST_SPARSE -1
#endif
#if !defined(TQ_COST_SPARSE_ONLY)
#define TQ_COST_SPARSE_ONLY 0
#endif

namespace {

enum class Op { kNone, kFcS8, kFcS4, kConv, kDepthwise };

struct CostCase {
  const char* name;
  Op op;
  int32_t batch, in_h, in_w, in_c;  // FC: batch, -, -, in_features
  int32_t out_c;                    // FC: out_features
  int32_t kernel, stride, pad;      // conv / depthwise
};

// The shapes CMSIS-NN's figures in bench/README.md were measured on.
constexpr CostCase kCases[] = {
    {"fc_s8 1x784x128", Op::kFcS8, 1, 1, 1, 784, 128, 0, 0, 0},
    {"fc_s8 1x128x64", Op::kFcS8, 1, 1, 1, 128, 64, 0, 0, 0},
    {"fc_s8 1x27x128", Op::kFcS8, 1, 1, 1, 27, 128, 0, 0, 0},
    {"fc_s8 16x256x256", Op::kFcS8, 16, 1, 1, 256, 256, 0, 0, 0},
    {"fc_s4 1x784x128", Op::kFcS4, 1, 1, 1, 784, 128, 0, 0, 0},
    {"conv 32x32x3->16 3x3 same", Op::kConv, 1, 32, 32, 3, 16, 3, 1, 1},
    {"conv 16x16x16->32 3x3 same", Op::kConv, 1, 16, 16, 16, 32, 3, 1, 1},
    {"conv 1x1 16x16x32->64", Op::kConv, 1, 16, 16, 32, 64, 1, 1, 0},
    {"depthwise 16x16x32 3x3 same", Op::kDepthwise, 1, 16, 16, 32, 32, 3, 1, 1},
};
constexpr int kNumCases = static_cast<int>(sizeof kCases / sizeof kCases[0]);

// Sparse cases: the layer out x in, pruned to `percent` % zeros, stored in `format` (a, b:
// N:M n and m, or block rows and columns).
struct SparseCase {
  int32_t in, out, percent;
  rt::SparseFormat format;
  int32_t a, b;
};

constexpr int32_t kSparseLayers[][2] = {{784, 128}, {1024, 1024}};
constexpr int32_t kSparsePercents[] = {50, 70, 90, 95};
constexpr int32_t kPerLayer = 4 * 4 + 2;  // 4 sparsities x 4 formats, N:M 2:4 and 1:4
constexpr int kNumSparseCases = 2 * kPerLayer;

constexpr SparseCase sparse_case(int i) {
  const int32_t in = kSparseLayers[i / kPerLayer][0], out = kSparseLayers[i / kPerLayer][1];
  const int j = i % kPerLayer;
  if (j == 16) return {in, out, 50, rt::SparseFormat::kNm, 2, 4};
  if (j == 17) return {in, out, 75, rt::SparseFormat::kNm, 1, 4};
  constexpr rt::SparseFormat kFormats[] = {rt::SparseFormat::kCsrU8Delta, rt::SparseFormat::kCsrU16,
                                           rt::SparseFormat::kBitmap, rt::SparseFormat::kBlockCsr};
  const rt::SparseFormat f = kFormats[j % 4];
  return {in, out, kSparsePercents[j / 4], f, f == rt::SparseFormat::kBlockCsr ? 4 : 0, 16};
}

#if TQ_COST_SPARSE >= 0
#if defined(TQ_COST_SPARSE_COUNT)
static_assert(TQ_COST_SPARSE_COUNT == kNumSparseCases, "bench/arm/CMakeLists.txt case count");
#endif
static_assert(TQ_COST_SPARSE < kNumSparseCases, "no such sparse case");
constexpr SparseCase kSparse = sparse_case(TQ_COST_SPARSE);
constexpr int32_t kSparseWeights = kSparse.in * kSparse.out;
// Stored values at most: the kept ones plus CSR u8 padding (one per 255 columns of gap).
constexpr int32_t kValuesCap = kSparseWeights - kSparseWeights / 100 * kSparse.percent +
                               kSparseWeights / 255 + kSparse.out + 64;
constexpr int32_t kBitmapBytes = kSparse.out * ((kSparse.in + 7) / 8);
constexpr int32_t kIndexCap = 2 * kValuesCap > kBitmapBytes ? 2 * kValuesCap : kBitmapBytes;
#else
constexpr int32_t kSparseWeights = 0;
#endif

// Elements of a dense case's input, weights (bytes: int4 packs two per byte) and output.
enum class Extent { kInput, kWeights, kOutput };
constexpr int32_t extent(const CostCase& c, Extent e) {
  if (c.op == Op::kFcS8 || c.op == Op::kFcS4)
    return e == Extent::kInput    ? c.batch * c.in_c
           : e == Extent::kOutput ? c.batch * c.out_c
           : c.op == Op::kFcS8    ? c.out_c * c.in_c
                                  : (c.out_c * c.in_c + 1) / 2;
  const int32_t out_h = (c.in_h + 2 * c.pad - c.kernel) / c.stride + 1;
  const int32_t out_w = (c.in_w + 2 * c.pad - c.kernel) / c.stride + 1;
  return e == Extent::kInput    ? c.in_h * c.in_w * c.in_c
         : e == Extent::kOutput ? out_h * out_w * c.out_c
         : c.op == Op::kConv    ? c.out_c * c.kernel * c.kernel * c.in_c
                                : c.kernel * c.kernel * c.out_c;
}
constexpr int32_t largest(Extent e) {
  int32_t m = 0;
  for (const CostCase& c : kCases) m = extent(c, e) > m ? extent(c, e) : m;
  return m;
}

constexpr int32_t kMaxInput = largest(Extent::kInput);
constexpr int32_t kDenseWeights = largest(Extent::kWeights);  // what the dense cases fill
constexpr int32_t kMaxWeights = kSparseWeights > kDenseWeights ? kSparseWeights : kDenseWeights;
constexpr int32_t kMaxOutput = largest(Extent::kOutput);
constexpr int32_t kDenseChannels = 256;  // what the dense cases fill
static_assert([] {
  for (const CostCase& c : kCases)
    if (c.out_c > kDenseChannels) return false;
  return true;
}());
constexpr int32_t kMaxChannels = 1024;
constexpr int32_t kMaxScratch = 64 * 1024;

int8_t g_input[kMaxInput];
int8_t g_weights[kMaxWeights];
[[maybe_unused]] int8_t g_output[kMaxOutput];  // unused by the sparse-only ELF
int32_t g_bias[kMaxChannels], g_multiplier[kMaxChannels], g_shift[kMaxChannels];
alignas(8) uint8_t g_scratch[kMaxScratch];

#if TQ_COST_SPARSE >= 0
static_assert(kSparse.in <= kMaxInput && kSparse.out <= kMaxOutput && kSparse.out <= kMaxChannels,
              "the sparse case's input, dense output and channels fit the buffers");
int8_t g_values[kValuesCap];
alignas(4) uint8_t g_index[kIndexCap];
uint16_t g_row_nnz[kMaxChannels];
uint32_t g_block_row_ptr[kMaxChannels + 1];
int8_t g_sparse_output[kMaxChannels];
#endif

uint32_t g_rng = 2463534242u;
uint32_t next_random() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

constexpr uint32_t kPaint = 0xA5C3A5C3u;
constexpr int32_t kPaintWords = 4096;  // 16 KB below the caller's frame

// Paints [sp - 64 - 4 * kPaintWords, sp - 64) with kPaint; returns the top of the painted area.
__attribute__((noinline)) uint32_t* paint_stack() {
  uint32_t* sp = nullptr;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  uint32_t* top = sp - 16;
  volatile uint32_t* p = top - kPaintWords;
  for (int32_t i = 0; i < kPaintWords; ++i) p[i] = kPaint;
  return top;
}

int32_t stack_used(const uint32_t* top) {
  const volatile uint32_t* p = top - kPaintWords;
  int32_t i = 0;
  while (i < kPaintWords && p[i] == kPaint) ++i;
  return (kPaintWords - i) * 4;
}

void fill_weights_and_requant(int32_t weights, int32_t channels) {
  for (int32_t i = 0; i < weights; ++i) {
    g_weights[i] = static_cast<int8_t>(static_cast<int32_t>(next_random() % 255u) - 127);
  }
  for (int32_t i = 0; i < channels; ++i) {
    g_bias[i] = static_cast<int32_t>(next_random() % 20001u) - 10000;
    g_multiplier[i] = static_cast<int32_t>((1u << 30) + (next_random() >> 2));
    g_shift[i] = -9 - static_cast<int32_t>(next_random() % 3u);
  }
}

rt::Requant requant() {
  rt::Requant rq;
  rq.multiplier = g_multiplier;
  rq.shift = g_shift;
  rq.per_channel = true;
  return rq;
}

#if TQ_COST_SPARSE < 0
struct Result {
  rt::Status status = rt::Status::kOk;
  int64_t macs = 0;
  int32_t scratch = 0;
};

int8_t g_expected[kMaxOutput];

// One output from its accumulator, as the kernels' contract (kernels.hpp) defines it: offsets
// -3 (output) and the full int8 range.
int8_t requantized(int64_t acc, int32_t channel) {
  const int32_t v =
      rt::requantize(static_cast<int32_t>(acc), g_multiplier[channel], g_shift[channel]) - 3;
  return static_cast<int8_t>(v < -128 ? -128 : v > 127 ? 127 : v);
}

// The weight at flat index i: int8, or the int4 nibble of a packed stream (element 2j in the low
// nibble of byte j), sign-extended.
int32_t weight_at(const CostCase& c, int32_t i) {
  if (c.op != Op::kFcS4) return g_weights[i];
  const uint8_t byte = static_cast<uint8_t>(g_weights[i / 2]);
  const int32_t nibble = (i % 2 == 0 ? byte : byte >> 4) & 0xF;
  return nibble >= 8 ? nibble - 16 : nibble;
}

// The case's outputs by the kernels' formula, one plain loop per output element, into
// g_expected (the run's input offset is 128, its filter offset 0). Returns the element count.
// Harness code outside the runtime library, so the .text measured stays the kernel's.
__attribute__((noinline)) int32_t expected_outputs(const CostCase& c) {
  if (c.op == Op::kFcS8 || c.op == Op::kFcS4) {
    for (int32_t b = 0; b < c.batch; ++b)
      for (int32_t o = 0; o < c.out_c; ++o) {
        int64_t acc = g_bias[o];
        for (int32_t k = 0; k < c.in_c; ++k)
          acc += int64_t{g_input[b * c.in_c + k] + 128} * weight_at(c, o * c.in_c + k);
        g_expected[b * c.out_c + o] = requantized(acc, o);
      }
    return c.batch * c.out_c;
  }
  const int32_t out_h = (c.in_h + 2 * c.pad - c.kernel) / c.stride + 1;
  const int32_t out_w = (c.in_w + 2 * c.pad - c.kernel) / c.stride + 1;
  for (int32_t y = 0; y < out_h; ++y)
    for (int32_t x = 0; x < out_w; ++x)
      for (int32_t o = 0; o < c.out_c; ++o) {
        int64_t acc = g_bias[o];
        for (int32_t ky = 0; ky < c.kernel; ++ky)
          for (int32_t kx = 0; kx < c.kernel; ++kx) {
            const int32_t iy = y * c.stride - c.pad + ky, ix = x * c.stride - c.pad + kx;
            if (iy < 0 || iy >= c.in_h || ix < 0 || ix >= c.in_w) continue;  // padding: adds 0
            const int8_t* px = g_input + (iy * c.in_w + ix) * c.in_c;
            if (c.op == Op::kDepthwise) {  // weights [kh][kw][out_c]; o reads o / multiplier
              acc += int64_t{px[o / (c.out_c / c.in_c)] + 128} *
                     g_weights[(ky * c.kernel + kx) * c.out_c + o];
            } else {  // weights OHWI
              const int8_t* w = g_weights + ((o * c.kernel + ky) * c.kernel + kx) * c.in_c;
              for (int32_t i = 0; i < c.in_c; ++i) acc += int64_t{px[i] + 128} * w[i];
            }
          }
        g_expected[(y * out_w + x) * c.out_c + o] = requantized(acc, o);
      }
  return out_h * out_w * c.out_c;
}

// Fills the inputs, then runs the kernel once between the markers.
__attribute__((noinline)) Result run(const CostCase& c) {
  for (int32_t i = 0; i < kMaxInput; ++i) g_input[i] = static_cast<int8_t>(next_random());
  fill_weights_and_requant(kDenseWeights, kDenseChannels);
  const rt::Requant rq = requant();
  rt::Context ctx;
  ctx.scratch = g_scratch;
  ctx.path = rt::Path::kSmlad;
  Result r;
  if (c.op == Op::kFcS8 || c.op == Op::kFcS4) {
    rt::FcDims d;
    d.batch = c.batch;
    d.in_features = c.in_c;
    d.out_features = c.out_c;
    rt::FcParams p;
    p.input_offset = 128;
    p.output_offset = -3;
    r.macs = int64_t{c.batch} * c.in_c * c.out_c;
    r.scratch = c.op == Op::kFcS8 ? rt::fully_connected_s8_scratch_size(d, ctx.path)
                                  : rt::fully_connected_s4_scratch_size(d, ctx.path);
    ctx.scratch_size = r.scratch;
    if (r.scratch > kMaxScratch) return {rt::Status::kScratchTooSmall, r.macs, r.scratch};
    tq_region_begin();
    r.status =
        c.op == Op::kFcS8
            ? rt::fully_connected_s8(ctx, p, rq, d, g_input, g_weights, g_bias, g_output)
            : rt::fully_connected_s4(ctx, p, rq, d, g_input,
                                     reinterpret_cast<const uint8_t*>(g_weights), g_bias, g_output);
    tq_region_end();
    return r;
  }
  rt::ConvDims d;
  d.batch = c.batch;
  d.in_h = c.in_h;
  d.in_w = c.in_w;
  d.in_c = c.in_c;
  d.kernel_h = d.kernel_w = c.kernel;
  d.out_h = (c.in_h + 2 * c.pad - c.kernel) / c.stride + 1;
  d.out_w = (c.in_w + 2 * c.pad - c.kernel) / c.stride + 1;
  d.out_c = c.out_c;
  rt::ConvParams p;
  p.input_offset = 128;
  p.output_offset = -3;
  p.stride_h = p.stride_w = c.stride;
  p.pad_top = p.pad_left = c.pad;
  const int64_t taps = int64_t{d.out_h} * d.out_w * c.kernel * c.kernel;
  if (c.op == Op::kConv) {
    r.macs = taps * c.in_c * c.out_c;
    r.scratch = rt::conv2d_s8_scratch_size(p, d, ctx.path);
  } else {
    r.macs = taps * c.out_c;
    r.scratch = rt::depthwise_conv2d_s8_scratch_size(p, d, ctx.path);
  }
  ctx.scratch_size = r.scratch;
  if (r.scratch > kMaxScratch) return {rt::Status::kScratchTooSmall, r.macs, r.scratch};
  tq_region_begin();
  r.status = c.op == Op::kConv
                 ? rt::conv2d_s8(ctx, p, rq, d, g_input, g_weights, g_bias, g_output)
                 : rt::depthwise_conv2d_s8(ctx, p, rq, d, g_input, g_weights, g_bias, g_output);
  tq_region_end();
  return r;
}

#else
const char* format_name(rt::SparseFormat f) {
  switch (f) {
    case rt::SparseFormat::kCsrU8Delta:
      return "csr_u8";
    case rt::SparseFormat::kCsrU16:
      return "csr_u16";
    case rt::SparseFormat::kBitmap:
      return "bitmap";
    case rt::SparseFormat::kNm:
      return "nm";
    case rt::SparseFormat::kBlockCsr:
      return "block";
  }
  return "?";
}

struct SparseRun {
  rt::FcDims dims;
  rt::FcParams params;
  rt::Requant rq;
  rt::SparseMatrixS8 w;
  int32_t dense_scratch = 0, sparse_scratch = 0;
};

// Inputs as the dense cases make them; weights pruned and stored as the case says.
rt::Status prepare_sparse(const SparseCase& c, SparseRun* s) {
  for (int32_t i = 0; i < c.in; ++i) g_input[i] = static_cast<int8_t>(next_random());
  fill_weights_and_requant(c.in * c.out, c.out);
  const int32_t n = c.in * c.out;
  // Entries (or blocks) kept of `total`: the rest, percent % of them, rounded down, pruned.
  auto keep = [&c](int32_t total) {
    return total - static_cast<int32_t>(int64_t{total} * c.percent / 100);
  };
  if (c.format == rt::SparseFormat::kNm)
    tq::prune_nm(g_weights, c.out, c.in, c.a, c.b);
  else if (c.format == rt::SparseFormat::kBlockCsr)
    tq::prune_blocks(g_weights, c.out, c.in, c.a, c.b, keep(n / (c.a * c.b)));
  else
    tq::prune_magnitude(g_weights, n, keep(n));
  const tq::SparseStore store{g_values, kValuesCap, g_index, kIndexCap, g_row_nnz, g_block_row_ptr};
  if (!tq::encode_sparse(g_weights, c.out, c.in, c.format, c.a, c.b, store, &s->w))
    return rt::Status::kBadSparseData;
#if !TQ_COST_SPARSE_ONLY
  const rt::Status valid = rt::validate_sparse_s8(s->w);
  if (valid != rt::Status::kOk) return valid;
#endif
  s->dims.batch = 1;
  s->dims.in_features = c.in;
  s->dims.out_features = c.out;
  s->params.input_offset = 128;
  s->params.output_offset = -3;
  s->rq = requant();
  s->dense_scratch = rt::fully_connected_s8_scratch_size(s->dims, rt::Path::kSmlad);
  s->sparse_scratch = rt::sparse_fully_connected_s8_scratch_size(s->dims, s->w, rt::Path::kSmlad);
  if (s->dense_scratch > kMaxScratch || s->sparse_scratch > kMaxScratch)
    return rt::Status::kScratchTooSmall;
  return rt::Status::kOk;
}

rt::Context smlad_context(int32_t scratch) {
  rt::Context ctx;
  ctx.scratch = g_scratch;
  ctx.scratch_size = scratch;
  ctx.path = rt::Path::kSmlad;
  return ctx;
}

#if !TQ_COST_SPARSE_ONLY
__attribute__((noinline)) rt::Status run_dense(const SparseRun& s) {
  const rt::Context ctx = smlad_context(s.dense_scratch);
  tq_region_begin();
  const rt::Status st =
      rt::fully_connected_s8(ctx, s.params, s.rq, s.dims, g_input, g_weights, g_bias, g_output);
  tq_region_end();
  return st;
}
#endif

__attribute__((noinline)) rt::Status run_sparse(const SparseRun& s) {
  const rt::Context ctx = smlad_context(s.sparse_scratch);
  tq_region_begin();
  const rt::Status st = rt::sparse_fully_connected_s8(ctx, s.params, s.rq, s.dims, g_input, s.w,
                                                      g_bias, g_sparse_output);
  tq_region_end();
  return st;
}
#endif

}  // namespace

#if TQ_COST_SPARSE >= 0
int main() {
  tq_region_begin();  // empty region: the markers' own cost
  tq_region_end();
  const SparseCase& c = kSparse;
  SparseRun s;
  rt::Status st = prepare_sparse(c, &s);
  int32_t dense_stack = 0, sparse_stack = 0;
  if (st == rt::Status::kOk) {
#if !TQ_COST_SPARSE_ONLY
    const uint32_t* top = paint_stack();
    st = run_dense(s);
    dense_stack = stack_used(top);
#endif
    const uint32_t* top2 = paint_stack();
    const rt::Status sparse_st = run_sparse(s);
    sparse_stack = stack_used(top2);
    if (st == rt::Status::kOk) st = sparse_st;
  }
  bool match = st == rt::Status::kOk;
#if !TQ_COST_SPARSE_ONLY
  match = match && std::memcmp(g_output, g_sparse_output, static_cast<size_t>(c.out)) == 0;
#endif
  std::printf("sparse 1x%ldx%ld %ld%% %s", static_cast<long>(c.in), static_cast<long>(c.out),
              static_cast<long>(c.percent), format_name(c.format));
  if (c.format == rt::SparseFormat::kNm || c.format == rt::SparseFormat::kBlockCsr)
    std::printf(" %ld%s%ld", static_cast<long>(c.a), c.format == rt::SparseFormat::kNm ? ":" : "x",
                static_cast<long>(c.b));
  std::printf(" macs %ld nnz %ld scratch %ld stack %ld %ld status %s\n",
              static_cast<long>(c.in * c.out), static_cast<long>(s.w.value_count),
              static_cast<long>(s.sparse_scratch), static_cast<long>(dense_stack),
              static_cast<long>(sparse_stack),
              st != rt::Status::kOk ? rt::status_name(st) : (match ? "ok" : "mismatch"));
  return match ? 0 : 1;
}
#else
int main() {
  tq_region_begin();  // empty region: the markers' own cost
  tq_region_end();
  if (TQ_COST_CASE < 0 || TQ_COST_CASE >= kNumCases) {
    std::printf("cost none macs 0 scratch 0 stack 0 status ok\n");
    return 0;
  }
  const CostCase& c = kCases[TQ_COST_CASE];
  const uint32_t* top = paint_stack();
  const Result r = run(c);
  const int32_t stack = stack_used(top);
  const int32_t outputs = extent(c, Extent::kOutput);
  const bool match = r.status == rt::Status::kOk && expected_outputs(c) == outputs &&
                     std::memcmp(g_output, g_expected, static_cast<size_t>(outputs)) == 0;
  std::printf(
      "cost %s macs %lld scratch %ld stack %ld status %s\n", c.name, static_cast<long long>(r.macs),
      static_cast<long>(r.scratch), static_cast<long>(stack),
      r.status != rt::Status::kOk ? rt::status_name(r.status) : (match ? "ok" : "mismatch"));
  return match ? 0 : 1;
}
#endif
