// Compiles against the C arrays that `tinyquant export-c` wrote from model.tqm (see
// CMakeLists.txt), checks every value against the model file read at run time, and runs the
// exported fully-connected layer through rt::fully_connected_s8 against a float reference.
// The sparse exports (sparse_*.h, one per storage format of a pruned layer) run through
// rt::sparse_fully_connected_s8 and must match tinyquant::QuantizedLinear on the same pruned
// weights stored dense, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "exported.h"
#include "exported_one.h"
#include "exported_s4.h"
#include "sparse_blk.h"
#include "sparse_bmp.h"
#include "sparse_csr16.h"
#include "sparse_csr8.h"
#include "sparse_nm.h"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"

extern "C" int cli_c_weight_sum(void);

namespace {

namespace io = tinyquant::io;

const io::Model& model() {
  static const io::Model m = io::load_model(TINYQUANT_CLI_DATA "/model.tqm");
  return m;
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

TEST(ExportC, ArraysMatchTheModelFile) {
  const tinyquant::QTensor w = io::to_qtensor(model().find("fc.weight"));
  static_assert(NET_FC_WEIGHT_NDIM == 2, "rank");
  static_assert(NET_FC_WEIGHT_DIM0 == 8 && NET_FC_WEIGHT_DIM1 == 16, "shape");
  static_assert(NET_FC_WEIGHT_BITS == 8 && NET_FC_WEIGHT_NPARAMS == 8, "params");
  ASSERT_EQ(w.numel(), NET_FC_WEIGHT_NUMEL);
  for (int64_t i = 0; i < w.numel(); ++i) {
    EXPECT_EQ(net_fc_weight[i], w.value(i)) << i;
    EXPECT_EQ(one_fc_weight[i], w.value(i)) << i;
  }
  for (size_t c = 0; c < w.params.scales.size(); ++c) {
    EXPECT_EQ(net_fc_weight_scales[c], w.params.scales[c]) << c;  // bit-exact float literals
    EXPECT_EQ(net_fc_weight_zero_points[c], 0) << c;
  }
  const std::vector<float> bias = io::to_floats(model().find("fc.bias"));
  for (size_t c = 0; c < bias.size(); ++c) EXPECT_EQ(net_fc_bias[c], bias[c]) << c;
  const tinyquant::QTensor emb = io::to_qtensor(model().find("emb"));
  for (int64_t i = 0; i < emb.numel(); ++i) EXPECT_EQ(net_emb[i], emb.value(i)) << i;
  EXPECT_EQ(sizeof(net_emb), 24u);

  EXPECT_TRUE(aligned16(net_fc_weight));
  EXPECT_TRUE(aligned16(net_fc_weight_scales));
  EXPECT_TRUE(aligned16(net_fc_kernel_bias));
  EXPECT_TRUE(aligned16(one_fc_weight));
  EXPECT_EQ(cli_c_weight_sum(), NET_FC_WEIGHT_NUMEL);  // same values through C
}

// Weight (o, k) of an s4 nibble stream: element 2i is the low nibble of byte i.
int weight_at(const uint8_t* w, int o, int k) {
  const int i = o * 16 + k;
  const int nib = (w[i / 2] >> (4 * (i % 2))) & 0xf;
  return nib >= 8 ? nib - 16 : nib;
}

TEST(ExportC, Int4LayerRunsThroughFullyConnectedS4) {
  static_assert(S4_FC_WEIGHT_BITS == 4 && sizeof(s4_fc_weight) == 64, "s4 nibble stream");
  const double in_scale = 0.02, out_scale = 0.05;
  const int in_zp = -3, out_zp = 4;
  int8_t x[16];
  for (int k = 0; k < 16; ++k) x[k] = static_cast<int8_t>(k * 29 % 53 - 26);
  tinyquant::rt::FcParams p;
  p.input_offset = S4_FC_INPUT_OFFSET;
  p.filter_offset = S4_FC_FILTER_OFFSET;
  p.output_offset = S4_FC_OUTPUT_OFFSET;
  p.act_min = S4_FC_ACT_MIN;
  p.act_max = S4_FC_ACT_MAX;
  tinyquant::rt::Requant rq;
  rq.multiplier = s4_fc_multipliers;
  rq.shift = s4_fc_shifts;
  rq.per_channel = S4_FC_PER_CHANNEL != 0;
  tinyquant::rt::FcDims d;
  d.in_features = S4_FC_IN_FEATURES;
  d.out_features = S4_FC_OUT_FEATURES;
  tinyquant::rt::Context ctx;
  ctx.path = tinyquant::rt::Path::kReference;
  std::vector<uint8_t> scratch(
      static_cast<size_t>(tinyquant::rt::fully_connected_s4_scratch_size(d, ctx.path)) + 1);
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  int8_t y[8] = {};
  ASSERT_EQ(tinyquant::rt::fully_connected_s4(ctx, p, rq, d, x, s4_fc_weight, s4_fc_kernel_bias, y),
            tinyquant::rt::Status::kOk);
  for (int o = 0; o < 8; ++o) {
    double acc = s4_fc_bias[o];
    for (int k = 0; k < 16; ++k)
      acc += static_cast<double>(s4_fc_weight_scales[o]) * weight_at(s4_fc_weight, o, k) *
             in_scale * (x[k] - in_zp);
    const double q = std::fmin(127.0, std::fmax(-128.0, std::round(acc / out_scale) + out_zp));
    EXPECT_NEAR(y[o], q, 1.0) << "output " << o;
  }
}

TEST(ExportC, ExportedLayerMatchesAFloatReference) {
  // Activation parameters given to export-c in CMakeLists.txt.
  const double in_scale = 0.02, out_scale = 0.05;
  const int in_zp = -3, out_zp = 4;
  static_assert(NET_FC_INPUT_OFFSET == 0, "input offset folded into the bias");
  static_assert(NET_FC_OUTPUT_OFFSET == 4 && NET_FC_PER_CHANNEL == 1, "requant");

  std::vector<int8_t> x(16);
  for (int k = 0; k < 16; ++k) x[static_cast<size_t>(k)] = static_cast<int8_t>(k * 13 % 41 - 20);
  tinyquant::rt::FcParams p;
  p.input_offset = NET_FC_INPUT_OFFSET;
  p.filter_offset = NET_FC_FILTER_OFFSET;
  p.output_offset = NET_FC_OUTPUT_OFFSET;
  p.act_min = NET_FC_ACT_MIN;
  p.act_max = NET_FC_ACT_MAX;
  tinyquant::rt::Requant rq;
  rq.multiplier = net_fc_multipliers;
  rq.shift = net_fc_shifts;
  rq.per_channel = NET_FC_PER_CHANNEL != 0;
  tinyquant::rt::FcDims d;
  d.in_features = NET_FC_IN_FEATURES;
  d.out_features = NET_FC_OUT_FEATURES;
  tinyquant::rt::Context ctx;
  ctx.path = tinyquant::rt::Path::kReference;
  std::vector<uint8_t> scratch(
      static_cast<size_t>(tinyquant::rt::fully_connected_s8_scratch_size(d, ctx.path)) + 1);
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  int8_t y[8] = {};
  ASSERT_EQ(tinyquant::rt::fully_connected_s8(ctx, p, rq, d, x.data(), net_fc_weight,
                                              net_fc_kernel_bias, y),
            tinyquant::rt::Status::kOk);

  // Float reference from the dequantized weights and the float bias: within one step.
  for (int o = 0; o < 8; ++o) {
    double acc = net_fc_bias[o];
    for (int k = 0; k < 16; ++k)
      acc += static_cast<double>(net_fc_weight_scales[o]) * net_fc_weight[o * 16 + k] * in_scale *
             (x[static_cast<size_t>(k)] - in_zp);
    const double q = std::fmin(127.0, std::fmax(-128.0, std::round(acc / out_scale) + out_zp));
    EXPECT_NEAR(y[o], q, 1.0) << "output " << o;
  }
}

// One exported sparse layer: the rt view and requantization filled from the header alone.
struct SparseLayer {
  const char* name;
  tinyquant::rt::SparseMatrixS8 w;
  tinyquant::rt::FcParams p;
  tinyquant::rt::Requant rq;
  const int32_t* bias;
  int64_t shipped_bytes;  // sizeof of every array of the format
  int64_t sparse_bytes;   // the header's _SPARSE_BYTES
};

// The parts every format shares; P / U are the lower / upper case prefix.
#define TQ_SPARSE_LAYER(P, U, extra_bytes)                                              \
  SparseLayer l;                                                                        \
  l.name = #P;                                                                          \
  l.w.format = static_cast<tinyquant::rt::SparseFormat>(U##_FC_WEIGHT_SPARSE_FORMAT);   \
  l.w.rows = U##_FC_WEIGHT_ROWS;                                                        \
  l.w.cols = U##_FC_WEIGHT_COLS;                                                        \
  l.w.values = P##_fc_weight_values;                                                    \
  l.w.value_count = U##_FC_WEIGHT_VALUE_COUNT;                                          \
  l.p.input_offset = U##_FC_INPUT_OFFSET;                                               \
  l.p.filter_offset = U##_FC_FILTER_OFFSET;                                             \
  l.p.output_offset = U##_FC_OUTPUT_OFFSET;                                             \
  l.p.act_min = U##_FC_ACT_MIN;                                                         \
  l.p.act_max = U##_FC_ACT_MAX;                                                         \
  l.rq.multiplier = P##_fc_multipliers;                                                 \
  l.rq.shift = P##_fc_shifts;                                                           \
  l.rq.per_channel = U##_FC_PER_CHANNEL != 0;                                           \
  l.bias = P##_fc_kernel_bias;                                                          \
  l.shipped_bytes = static_cast<int64_t>(sizeof(P##_fc_weight_values)) + (extra_bytes); \
  l.sparse_bytes = U##_FC_WEIGHT_SPARSE_BYTES

std::vector<SparseLayer> sparse_layers() {
  std::vector<SparseLayer> out;
  {
    TQ_SPARSE_LAYER(csr8, CSR8, sizeof(csr8_fc_weight_row_nnz) + sizeof(csr8_fc_weight_col_delta));
    l.w.row_nnz = csr8_fc_weight_row_nnz;
    l.w.col_delta = csr8_fc_weight_col_delta;
    out.push_back(l);
  }
  {
    TQ_SPARSE_LAYER(csr16, CSR16,
                    sizeof(csr16_fc_weight_row_nnz) + sizeof(csr16_fc_weight_col_index));
    l.w.row_nnz = csr16_fc_weight_row_nnz;
    l.w.col_index = csr16_fc_weight_col_index;
    out.push_back(l);
  }
  {
    TQ_SPARSE_LAYER(blk, BLK,
                    sizeof(blk_fc_weight_block_row_ptr) + sizeof(blk_fc_weight_block_col));
    l.w.block_row_ptr = blk_fc_weight_block_row_ptr;
    l.w.block_col = blk_fc_weight_block_col;
    l.w.block_rows = BLK_FC_WEIGHT_BLOCK_ROWS;
    l.w.block_cols = BLK_FC_WEIGHT_BLOCK_COLS;
    out.push_back(l);
  }
  {
    TQ_SPARSE_LAYER(bmp, BMP, sizeof(bmp_fc_weight_bitmap));
    l.w.bitmap = bmp_fc_weight_bitmap;
    out.push_back(l);
  }
  {
    TQ_SPARSE_LAYER(nm, NM, sizeof(nm_fc_weight_nm_index));
    l.w.nm_index = nm_fc_weight_nm_index;
    l.w.nm_n = NM_FC_WEIGHT_NM_N;
    l.w.nm_m = NM_FC_WEIGHT_NM_M;
    out.push_back(l);
  }
  return out;
}

TEST(ExportC, SparseLayersMatchTheToolkitLayerBitExactly) {
  static_assert(CSR8_FC_WEIGHT_SPARSE_FORMAT == 0 && CSR16_FC_WEIGHT_SPARSE_FORMAT == 1 &&
                    BMP_FC_WEIGHT_SPARSE_FORMAT == 2 && NM_FC_WEIGHT_SPARSE_FORMAT == 3 &&
                    BLK_FC_WEIGHT_SPARSE_FORMAT == 4,
                "rt::SparseFormat values");
  static_assert(NM_FC_WEIGHT_NM_N == 2 && NM_FC_WEIGHT_NM_M == 4, "prune's default 2:4");
  static_assert(BLK_FC_WEIGHT_BLOCK_ROWS == 1 && BLK_FC_WEIGHT_BLOCK_COLS == 16, "1x16 blocks");
  constexpr int kBatch = 3, kIn = 48, kOut = 16;
  std::vector<int8_t> x(kBatch * kIn);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 256) - 128);
  namespace rt = tinyquant::rt;
  for (const SparseLayer& l : sparse_layers()) {
    SCOPED_TRACE(l.name);
    // The reference: the toolkit's integer layer on the same pruned weights stored dense.
    const io::Model dense =
        io::load_model(std::string(TINYQUANT_CLI_DATA "/sparse_") + l.name + "_dense.tqm");
    const std::vector<float> bias = io::to_floats(dense.find("fc.bias"));
    const tinyquant::QuantizedLinear layer(io::to_qtensor(dense.find("fc.weight")), bias.data(),
                                           tinyquant::ActivationParams{0.02f, -3},
                                           tinyquant::ActivationParams{0.05f, 4});
    std::vector<int8_t> want(kBatch * kOut);
    layer.forward(x.data(), kBatch, want.data(), rt::Path::kReference);
    // Not a test of clamping: the outputs spread over many levels.
    EXPECT_GT(std::set<int8_t>(want.begin(), want.end()).size(), 10u);

    ASSERT_EQ(rt::validate_sparse_s8(l.w), rt::Status::kOk);
    EXPECT_EQ(l.shipped_bytes, l.sparse_bytes);
    EXPECT_LT(l.sparse_bytes, kIn * kOut);  // 70% pruned: smaller than the dense int8 weights
    rt::FcDims d;
    d.batch = kBatch;
    d.in_features = kIn;
    d.out_features = kOut;
    for (const rt::Path path : {rt::Path::kReference, rt::Path::kAuto}) {
      rt::Context ctx;
      ctx.path = path;
      std::vector<uint8_t> scratch(
          static_cast<size_t>(rt::sparse_fully_connected_s8_scratch_size(d, l.w, path)) + 1);
      ctx.scratch = scratch.data();
      ctx.scratch_size = static_cast<int32_t>(scratch.size());
      std::vector<int8_t> got(kBatch * kOut, 0);
      ASSERT_EQ(rt::sparse_fully_connected_s8(ctx, l.p, l.rq, d, x.data(), l.w, l.bias, got.data()),
                rt::Status::kOk);
      EXPECT_EQ(got, want) << "path " << static_cast<int>(path);
    }
  }
}

}  // namespace
