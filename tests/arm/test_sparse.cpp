// Sparse int8 fully-connected on the target: every format, on every path this target has,
// against the dense kernel (reference path) on the same pruned weights. Shapes cover rows of
// 0..19 stored entries, odd in_features, bitmap word tails, CSR u8 gaps over 255 (padding
// entries), N:4 tails, block CSR; offsets at the ends of their ranges, both roundings,
// per-tensor and per-channel requantization, null bias.
#include <cstdint>
#include <cstring>

#include "check.hpp"
#include "sparse_build.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"

namespace rt = tinyquant::rt;

namespace {

constexpr int32_t kMaxIn = 600, kMaxOut = 24, kMaxBatch = 3;
constexpr int32_t kMaxWeights = kMaxIn * kMaxOut;

int8_t g_input[kMaxBatch * kMaxIn];
int8_t g_weights[kMaxWeights];
int8_t g_values[kMaxWeights + 64];
alignas(4) uint8_t g_index[2 * kMaxWeights + 64];
uint16_t g_row_nnz[kMaxOut];
uint32_t g_block_row_ptr[kMaxOut + 1];
int32_t g_bias[kMaxOut], g_multiplier[kMaxOut], g_shift[kMaxOut];
int8_t g_expect[kMaxBatch * kMaxOut], g_got[kMaxBatch * kMaxOut];
alignas(4) uint8_t g_scratch[4 * kMaxIn + 64];

tq::XorShift32 g_rng;

struct Shape {
  int32_t batch, in, out;
};

struct Format {
  rt::SparseFormat format;
  int32_t a, b;
};

constexpr Format kFormats[] = {
    {rt::SparseFormat::kCsrU8Delta, 0, 0}, {rt::SparseFormat::kCsrU16, 0, 0},
    {rt::SparseFormat::kBitmap, 0, 0},     {rt::SparseFormat::kNm, 1, 4},
    {rt::SparseFormat::kNm, 2, 4},         {rt::SparseFormat::kNm, 3, 8},
    {rt::SparseFormat::kBlockCsr, 4, 16},  {rt::SparseFormat::kBlockCsr, 2, 4},
    {rt::SparseFormat::kBlockCsr, 1, 3}};

// Random weights, then the format's pruning: rows of o % 20 entries (CSR / bitmap), N:M, or
// half the blocks.
void make_weights(const Shape& s, const Format& f) {
  for (int32_t i = 0; i < s.in * s.out; ++i) g_weights[i] = static_cast<int8_t>(g_rng.next());
  if (f.format == rt::SparseFormat::kNm) {
    tq::prune_nm(g_weights, s.out, s.in, f.a, f.b);
  } else if (f.format == rt::SparseFormat::kBlockCsr) {
    tq::prune_blocks(g_weights, s.out, s.in, f.a, f.b, (s.out / f.a) * (s.in / f.b) / 2);
  } else {
    for (int32_t o = 0; o < s.out; ++o) {
      int8_t* row = g_weights + o * s.in;
      tq::prune_magnitude(row, s.in, o % 20 < s.in ? o % 20 : s.in);
      if (o == 1 && s.in > 1) {  // first and last column only: a long gap
        for (int32_t k = 0; k < s.in; ++k) row[k] = 0;
        row[0] = -128;
        row[s.in - 1] = 127;
      }
    }
  }
}

}  // namespace

int main() {
  const Shape shapes[] = {{1, 40, 20}, {2, 97, 20}, {3, 19, 8}, {1, 600, 24}, {2, 48, 16}};
  const rt::Path paths[] = {rt::Path::kAuto, rt::Path::kReference, rt::Path::kSmlad};
  int runs = 0;
  for (const Shape& s : shapes) {
    for (const Format& f : kFormats) {
      if (f.format == rt::SparseFormat::kBlockCsr && (s.out % f.a != 0 || s.in % f.b != 0))
        continue;
      for (int variant = 0; variant < 4; ++variant) {
        make_weights(s, f);
        for (int32_t i = 0; i < s.batch * s.in; ++i) g_input[i] = static_cast<int8_t>(g_rng.next());
        for (int32_t o = 0; o < s.out; ++o) {
          g_bias[o] = g_rng.range(-300000, 300000);
          g_multiplier[o] = g_rng.range(1 << 30, INT32_MAX);
          g_shift[o] = g_rng.range(-18, 1);
        }
        const bool extreme = (variant & 1) != 0;
        rt::FcParams p;
        p.input_offset = extreme ? (variant & 2 ? 128 : -127) : g_rng.range(-127, 128);
        p.filter_offset = extreme ? (variant & 2 ? -127 : 128) : g_rng.range(-20, 20);
        p.output_offset = extreme ? (variant & 2 ? 127 : -128) : g_rng.range(-128, 127);
        p.act_min = -128 + (variant == 2 ? 50 : 0);
        p.act_max = 127 - (variant == 2 ? 50 : 0);
        rt::Requant rq;
        rq.multiplier = g_multiplier;
        rq.shift = g_shift;
        rq.per_channel = (variant & 2) != 0;
        rq.rounding = variant < 2 ? rt::Rounding::kDouble : rt::Rounding::kSingle;
        const int32_t* bias = variant == 3 ? nullptr : g_bias;
        const rt::FcDims dims{s.batch, s.in, s.out};

        rt::SparseMatrixS8 w;
        const tq::SparseStore store{g_values,  static_cast<int32_t>(sizeof g_values),
                                    g_index,   static_cast<int32_t>(sizeof g_index),
                                    g_row_nnz, g_block_row_ptr};
        if (!TQ_CHECK_EQ(tq::encode_sparse(g_weights, s.out, s.in, f.format, f.a, f.b, store, &w),
                         true, "encode"))
          continue;
        TQ_CHECK_EQ(static_cast<int>(rt::validate_sparse_s8(w)), 0, "validate");

        rt::Context dense_ctx;
        dense_ctx.scratch = g_scratch;
        dense_ctx.scratch_size = static_cast<int32_t>(sizeof g_scratch);
        dense_ctx.path = rt::Path::kReference;
        TQ_CHECK_EQ(static_cast<int>(rt::fully_connected_s8(dense_ctx, p, rq, dims, g_input,
                                                            g_weights, bias, g_expect)),
                    0, "dense");
        for (rt::Path path : paths) {
          const int32_t need = rt::sparse_fully_connected_s8_scratch_size(dims, w, path);
          if (!TQ_CHECK_EQ(need <= static_cast<int32_t>(sizeof g_scratch) - 3, true, "scratch"))
            continue;
          rt::Context ctx;
          ctx.scratch = g_scratch + (runs & 3);  // any alignment
          ctx.scratch_size = need;
          ctx.path = path;
          std::memset(g_got, 0x5A, sizeof g_got);
          const rt::Status st =
              rt::sparse_fully_connected_s8(ctx, p, rq, dims, g_input, w, bias, g_got);
          ++runs;
          if (!TQ_CHECK_EQ(static_cast<int>(st), 0, rt::path_name(path))) continue;
          int32_t first = -1;
          for (int32_t i = 0; i < s.batch * s.out && first < 0; ++i)
            if (g_got[i] != g_expect[i]) first = i;
          if (first >= 0)
            std::printf("in %ld out %ld format %d %ld:%ld variant %d path %s: byte %ld differs\n",
                        static_cast<long>(s.in), static_cast<long>(s.out),
                        static_cast<int>(f.format), static_cast<long>(f.a), static_cast<long>(f.b),
                        variant, rt::path_name(path), static_cast<long>(first));
          TQ_CHECK_EQ(first, -1, "first byte differing from the dense kernel");
        }
      }
    }
  }
  std::printf("sparse runs: %d\n", runs);
  TQ_CHECK_EQ(runs > 300, true, "every case ran");
  return tq::finish("test_sparse");
}
