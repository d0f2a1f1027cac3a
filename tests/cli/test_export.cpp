// Compiles against the C arrays that `tinyquant export-c` wrote from model.tqm (see
// CMakeLists.txt), checks every value against the model file read at run time, and runs the
// exported fully-connected layer through rt::fully_connected_s8 against a float reference.
// The sparse exports (sparse_*.h, one per storage format of a pruned layer) run through
// rt::sparse_fully_connected_s8 and must match tinyquant::QuantizedLinear on the same pruned
// weights stored dense, bit for bit. So do a two-layer model exported with per-layer activation
// parameters, a convolution (rt::conv2d_s8 against QuantizedConv2d) and an int4 per-group layer
// (rt::fully_connected_s4_grouped against QuantizedLinear). Layers exported with fused ReLU /
// ReLU6 match QuantizedLinear / QuantizedConv2d with that activation, and layers exported with
// --requant scales (per-tensor, per-channel, per-group, convolution), their multipliers computed
// from the shipped scales as firmware does at init, match the --requant multipliers export and
// the toolkit's layers bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "dw.h"
#include "dw_scales.h"
#include "exported.h"
#include "exported_one.h"
#include "exported_s4.h"
#include "grouped.h"
#include "grouped_scales.h"
#include "mlp.h"
#include "mlp4.h"
#include "relu.h"
#include "relu_scales.h"
#include "sparse_blk.h"
#include "sparse_bmp.h"
#include "sparse_csr16.h"
#include "sparse_csr8.h"
#include "sparse_nm.h"
#include "tensor.h"
#include "tensor_scales.h"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/io/safetensors.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/grouped.hpp"
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

std::vector<int8_t> test_input(size_t n, int seed) {
  std::vector<int8_t> x(n);
  for (size_t i = 0; i < n; ++i)
    x[i] = static_cast<int8_t>(static_cast<int>((i * 37 + static_cast<size_t>(seed) * 11) % 256) -
                               128);
  return x;
}

// Runs rt::fully_connected_s8 on exported arrays (reference path); per_channel false reads one
// multiplier and shift.
std::vector<int8_t> run_fc(const tinyquant::rt::FcParams& p, const int32_t* mult,
                           const int32_t* shift, int in, int out, const std::vector<int8_t>& x,
                           const int8_t* w, const int32_t* bias, bool per_channel = true) {
  namespace rt = tinyquant::rt;
  rt::Requant rq;
  rq.multiplier = mult;
  rq.shift = shift;
  rq.per_channel = per_channel;
  rt::FcDims d;
  d.batch = static_cast<int32_t>(x.size()) / in;
  d.in_features = in;
  d.out_features = out;
  rt::Context ctx;
  ctx.path = rt::Path::kReference;
  std::vector<uint8_t> scratch(
      static_cast<size_t>(rt::fully_connected_s8_scratch_size(d, ctx.path)) + 1);
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  std::vector<int8_t> y(static_cast<size_t>(d.batch * out));
  EXPECT_EQ(rt::fully_connected_s8(ctx, p, rq, d, x.data(), w, bias, y.data()), rt::Status::kOk);
  return y;
}

#define TQ_FC_PARAMS(U)                  \
  [] {                                   \
    tinyquant::rt::FcParams p;           \
    p.input_offset = U##_INPUT_OFFSET;   \
    p.filter_offset = U##_FILTER_OFFSET; \
    p.output_offset = U##_OUTPUT_OFFSET; \
    p.act_min = U##_ACT_MIN;             \
    p.act_max = U##_ACT_MAX;             \
    return p;                            \
  }()

const io::Model& net_model() {
  static const io::Model m = io::load_model(TINYQUANT_CLI_DATA "/net.tqm");
  return m;
}

tinyquant::QuantizedLinear net_linear(const std::string& name, tinyquant::ActivationParams in,
                                      tinyquant::ActivationParams out,
                                      tinyquant::Activation act = tinyquant::Activation::kNone) {
  const std::vector<float> bias = io::to_floats(net_model().find(name + ".bias"));
  return tinyquant::QuantizedLinear(io::to_qtensor(net_model().find(name + ".weight")), bias.data(),
                                    in, out, act);
}

TEST(ExportC, TwoLayersWithTheirOwnActivationParametersMatchQuantizedLinear) {
  // --act fc1:0.02,-3,0.05,4 --act fc2:0.05,4,0.1,-2 (CMakeLists.txt)
  static_assert(MLP_FC1_OUTPUT_OFFSET == 4 && MLP_FC2_OUTPUT_OFFSET == -2, "per-layer output");
  static_assert(MLP_FC1_IN_FEATURES == 48 && MLP_FC2_IN_FEATURES == MLP_FC1_OUT_FEATURES, "chain");
  const tinyquant::QuantizedLinear fc1 = net_linear("fc1", {0.02f, -3}, {0.05f, 4});
  const tinyquant::QuantizedLinear fc2 = net_linear("fc2", {0.05f, 4}, {0.1f, -2});
  const std::vector<int8_t> x = test_input(2 * 48, 1);
  const std::vector<int8_t> want_h = fc1.forward(x, tinyquant::rt::Path::kReference);
  const std::vector<int8_t> want_y = fc2.forward(want_h, tinyquant::rt::Path::kReference);
  const std::vector<int8_t> h = run_fc(TQ_FC_PARAMS(MLP_FC1), mlp_fc1_multipliers, mlp_fc1_shifts,
                                       48, 16, x, mlp_fc1_weight, mlp_fc1_kernel_bias);
  const std::vector<int8_t> y = run_fc(TQ_FC_PARAMS(MLP_FC2), mlp_fc2_multipliers, mlp_fc2_shifts,
                                       16, 8, h, mlp_fc2_weight, mlp_fc2_kernel_bias);
  EXPECT_EQ(h, want_h);
  EXPECT_EQ(y, want_y);
  EXPECT_GT(std::set<int8_t>(y.begin(), y.end()).size(), 6u);
  // The second layer's parameters differ from the first's: one shared pair could not give both.
  EXPECT_NE(mlp_fc1_multipliers[0], mlp_fc2_multipliers[0]);
}

// One exported convolution, filled from its header's macros and arrays alone.
struct ConvExport {
  tinyquant::rt::ConvParams p;  // everything but the padding, which depends on the input size
  tinyquant::rt::ConvDims d;    // kernel and channels; batch and spatial sizes set per run
  bool same = false;
  const int32_t* multipliers;
  const int32_t* shifts;
  const int32_t* bias;
  const uint8_t* weights;  // int8 or the s4 nibble stream
  size_t weight_bytes;
  bool s4;
  const int8_t* depthwise = nullptr;  // depthwise layers: the [kh][kw][out_c] weights
};

// MULT / SHIFT: the requantization arrays (exported, or computed at init from exported scales).
#define TQ_CONV_EXPORT(P, U, MULT, SHIFT)                     \
  [&] {                                                       \
    ConvExport c;                                             \
    c.p.input_offset = U##_INPUT_OFFSET;                      \
    c.p.filter_offset = U##_FILTER_OFFSET;                    \
    c.p.output_offset = U##_OUTPUT_OFFSET;                    \
    c.p.stride_h = U##_STRIDE_H;                              \
    c.p.stride_w = U##_STRIDE_W;                              \
    c.p.dilation_h = U##_DILATION_H;                          \
    c.p.dilation_w = U##_DILATION_W;                          \
    c.p.groups = U##_GROUPS;                                  \
    c.p.act_min = U##_ACT_MIN;                                \
    c.p.act_max = U##_ACT_MAX;                                \
    c.d.in_c = U##_IN_C_PER_GROUP * U##_GROUPS;               \
    c.d.kernel_h = U##_KERNEL_H;                              \
    c.d.kernel_w = U##_KERNEL_W;                              \
    c.d.out_c = U##_OUT_C;                                    \
    c.same = U##_PADDING_SAME != 0;                           \
    c.multipliers = MULT;                                     \
    c.shifts = SHIFT;                                         \
    c.bias = P##_kernel_bias;                                 \
    c.weights = reinterpret_cast<const uint8_t*>(P##_weight); \
    c.weight_bytes = sizeof(P##_weight);                      \
    c.s4 = U##_WEIGHT_BITS == 4;                              \
    return c;                                                 \
  }()

// Runs the exported conv through rt::conv2d_s8 / _s4 (or rt::depthwise_conv2d_s8 on the
// depthwise layout) as firmware would (output size and padding from the macros and the input
// size: TFLite's SAME puts the extra row at the bottom / right) and compares with
// QuantizedConv2d built from the float source "<layer>.weight" / "<layer>.bias" of `source` with
// the geometry and activation parameters given on the export's command line (a depthwise layer
// is the grouped conv with one input channel per group).
void check_conv(const ConvExport& c, const std::string& model_file,
                const tinyquant::Conv2dGeometry& g, tinyquant::ActivationParams in,
                tinyquant::ActivationParams out,
                tinyquant::Activation act = tinyquant::Activation::kNone,
                const std::string& source = "net.safetensors", const std::string& layer = "conv") {
  namespace rt = tinyquant::rt;
  const io::SafeTensors st = io::load_safetensors(std::string(TINYQUANT_CLI_DATA "/") + source);
  std::vector<float> w, b;
  for (const io::SafeTensor& t : st.tensors) {
    if (t.name == layer + ".weight") w = t.as<float>();
    if (t.name == layer + ".bias") b = t.as<float>();
  }
  ASSERT_EQ(w.size(), static_cast<size_t>(c.d.out_c * c.d.kernel_h * c.d.kernel_w * c.d.in_c /
                                          g.groups));  // OHWI [out][kh][kw][in / groups]
  const io::Model model = io::load_model(std::string(TINYQUANT_CLI_DATA "/") + model_file);
  const tinyquant::QuantizedConv2d conv(w.data(), c.d.out_c, c.d.kernel_h, c.d.kernel_w, c.d.in_c,
                                        b.data(), g, model.find(layer + ".weight").params->spec, in,
                                        out, act);
  // The exported weights are the ones QuantizedConv2d quantizes from the float source.
  ASSERT_EQ(c.weight_bytes, conv.weights().data.size());
  EXPECT_TRUE(std::equal(c.weights, c.weights + c.weight_bytes, conv.weights().data.begin()));

  const int batch = 2, in_h = 9, in_w = 8;
  int32_t out_h = 0, out_w = 0;
  conv.output_size(in_h, in_w, &out_h, &out_w);
  const std::vector<int8_t> x = test_input(static_cast<size_t>(batch * in_h * in_w * c.d.in_c), 2);
  std::vector<int8_t> want(static_cast<size_t>(batch * out_h * out_w * c.d.out_c));
  conv.forward(x.data(), batch, in_h, in_w, want.data(), rt::Path::kReference);

  rt::ConvParams p = c.p;
  rt::ConvDims d = c.d;
  d.batch = batch;
  d.in_h = in_h;
  d.in_w = in_w;
  const int eff_h = (d.kernel_h - 1) * p.dilation_h + 1,
            eff_w = (d.kernel_w - 1) * p.dilation_w + 1;
  if (c.same) {
    d.out_h = (in_h + p.stride_h - 1) / p.stride_h;
    d.out_w = (in_w + p.stride_w - 1) / p.stride_w;
    p.pad_top = std::max(0, (d.out_h - 1) * p.stride_h + eff_h - in_h) / 2;
    p.pad_left = std::max(0, (d.out_w - 1) * p.stride_w + eff_w - in_w) / 2;
  } else {
    d.out_h = (in_h - eff_h) / p.stride_h + 1;
    d.out_w = (in_w - eff_w) / p.stride_w + 1;
  }
  ASSERT_EQ(d.out_h, out_h);
  ASSERT_EQ(d.out_w, out_w);
  rt::Requant rq;
  rq.multiplier = c.multipliers;
  rq.shift = c.shifts;
  rq.per_channel = true;
  rt::Context ctx;
  ctx.path = rt::Path::kReference;
  std::vector<uint8_t> scratch(
      static_cast<size_t>(c.depthwise != nullptr
                              ? rt::depthwise_conv2d_s8_scratch_size(p, d, ctx.path)
                          : c.s4 ? rt::conv2d_s4_scratch_size(p, d, ctx.path)
                                 : rt::conv2d_s8_scratch_size(p, d, ctx.path)) +
      1);
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  std::vector<int8_t> got(want.size());
  const rt::Status status =
      c.depthwise != nullptr
          ? rt::depthwise_conv2d_s8(ctx, p, rq, d, x.data(), c.depthwise, c.bias, got.data())
      : c.s4 ? rt::conv2d_s4(ctx, p, rq, d, x.data(), c.weights, c.bias, got.data())
             : rt::conv2d_s8(ctx, p, rq, d, x.data(), reinterpret_cast<const int8_t*>(c.weights),
                             c.bias, got.data());
  ASSERT_EQ(status, rt::Status::kOk);
  EXPECT_EQ(got, want);
  EXPECT_GT(std::set<int8_t>(got.begin(), got.end()).size(), 10u);
}

TEST(ExportC, ConvolutionMatchesQuantizedConv2d) {
  // --act conv:0.03,5,0.04,-7 --conv conv:stride=2x1,padding=same (CMakeLists.txt)
  static_assert(MLP_CONV_OUT_C == 8 && MLP_CONV_KERNEL_H == 3 && MLP_CONV_KERNEL_W == 3 &&
                    MLP_CONV_IN_C_PER_GROUP == 4,
                "OHWI shape");
  static_assert(MLP_CONV_STRIDE_H == 2 && MLP_CONV_STRIDE_W == 1 && MLP_CONV_DILATION_H == 1 &&
                    MLP_CONV_GROUPS == 1 && MLP_CONV_PADDING_SAME == 1,
                "geometry from --conv");
  static_assert(MLP_CONV_INPUT_OFFSET == -5 && MLP_CONV_OUTPUT_OFFSET == -7, "offsets");
  tinyquant::Conv2dGeometry g;
  g.stride_h = 2;
  g.padding = tinyquant::Padding::kSame;
  check_conv(TQ_CONV_EXPORT(mlp_conv, MLP_CONV, mlp_conv_multipliers, mlp_conv_shifts), "net.tqm",
             g, {0.03f, 5}, {0.04f, -7});
}

TEST(ExportC, Int4GroupedDilatedValidConvolutionMatchesQuantizedConv2d) {
  // --act conv:0.03,5,0.04,-7 --conv conv:stride=1x2,dilation=2x1,padding=valid,groups=2
  static_assert(MLP4_CONV_WEIGHT_BITS == 4 && sizeof(mlp4_conv_weight) == 288 / 2, "s4 stream");
  static_assert(MLP4_CONV_GROUPS == 2 && MLP4_CONV_PADDING_SAME == 0 && MLP4_CONV_DILATION_H == 2,
                "geometry from --conv");
  tinyquant::Conv2dGeometry g;
  g.stride_w = 2;
  g.dilation_h = 2;
  g.padding = tinyquant::Padding::kValid;
  g.groups = 2;
  check_conv(TQ_CONV_EXPORT(mlp4_conv, MLP4_CONV, mlp4_conv_multipliers, mlp4_conv_shifts),
             "net4.tqm", g, {0.03f, 5}, {0.04f, -7});
}

// Runs rt::fully_connected_s4_grouped on exported arrays (reference path); P / U are the lower /
// upper case layer prefix, MULT / SHIFT the requantization arrays.
#define TQ_RUN_GROUPED(P, U, MULT, SHIFT, x)                                              \
  [&] {                                                                                   \
    namespace rt = tinyquant::rt;                                                         \
    rt::Requant rq;                                                                       \
    rq.multiplier = MULT;                                                                 \
    rq.shift = SHIFT;                                                                     \
    rq.per_channel = U##_PER_CHANNEL != 0;                                                \
    rt::FcDims d;                                                                         \
    d.in_features = U##_IN_FEATURES;                                                      \
    d.out_features = U##_OUT_FEATURES;                                                    \
    d.batch = static_cast<int32_t>((x).size()) / d.in_features;                           \
    rt::GroupScales gs;                                                                   \
    gs.group_size = U##_GROUP_SIZE;                                                       \
    gs.ratio = P##_group_ratios;                                                          \
    rt::Context ctx;                                                                      \
    ctx.path = rt::Path::kReference;                                                      \
    std::vector<int8_t> y(static_cast<size_t>(d.batch * d.out_features));                 \
    EXPECT_EQ(rt::fully_connected_s4_grouped(ctx, TQ_FC_PARAMS(U), rq, d, gs, (x).data(), \
                                             P##_weight, P##_kernel_bias, y.data()),      \
              rt::Status::kOk);                                                           \
    return y;                                                                             \
  }()

tinyquant::QuantizedLinear grouped_linear() {
  const io::Model m = io::load_model(TINYQUANT_CLI_DATA "/grouped.tqm");
  const std::vector<float> bias = io::to_floats(m.find("fc.bias"));
  return tinyquant::QuantizedLinear(io::to_qtensor(m.find("fc.weight")), bias.data(), {0.02f, -3},
                                    {0.05f, 4});
}

TEST(ExportC, Int4PerGroupLayerMatchesQuantizedLinear) {
  static_assert(GRP_FC_WEIGHT_BITS == 4 && GRP_FC_GROUP_SIZE == 16 && GRP_FC_GROUPS_PER_ROW == 3,
                "48 inputs in groups of 16");
  static_assert(sizeof(grp_fc_group_ratios) == 16 * 3, "one ratio byte per group");
  static_assert(GRP_FC_INPUT_OFFSET == 3, "grouped rows keep the input offset");
  const tinyquant::QuantizedLinear layer = grouped_linear();
  const std::vector<int8_t> x = test_input(3 * 48, 3);
  const std::vector<int8_t> want = layer.forward(x, tinyquant::rt::Path::kReference);
  const std::vector<int8_t> got =
      TQ_RUN_GROUPED(grp_fc, GRP_FC, grp_fc_multipliers, grp_fc_shifts, x);
  EXPECT_EQ(got, want);
  EXPECT_GT(std::set<int8_t>(got.begin(), got.end()).size(), 10u);
  // The ratios are not all 255 (every group at the row's largest scale): the test exercises them.
  int below = 0;
  for (const uint8_t r : grp_fc_group_ratios) below += r < 255 ? 1 : 0;
  EXPECT_GT(below, 8);
}

// ---- fused activations and the requantization shipped as scales ---------------------------

TEST(ExportC, FusedReluAndRelu6ClampAsQuantizedLinearAndQuantizedConv2d) {
  // --act fc1:0.02,-3,0.05,4,relu --act fc2:0.05,4,0.1,-2,relu6 --act conv:0.03,5,0.04,-7,relu
  static_assert(RELU_FC1_ACT_MIN == 4 && RELU_FC1_ACT_MAX == 127, "ReLU: from the zero point");
  static_assert(RELU_FC2_ACT_MIN == -2 && RELU_FC2_ACT_MAX == 58, "ReLU6: 6 / 0.1 - 2 = 58");
  static_assert(RELU_CONV_ACT_MIN == -7 && RELU_CONV_ACT_MAX == 127, "ReLU on the conv");
  static_assert(MLP_FC1_ACT_MIN == -128 && MLP_FC1_ACT_MAX == 127, "no activation: int8 range");
  namespace tq = tinyquant;
  const tq::QuantizedLinear fc1 = net_linear("fc1", {0.02f, -3}, {0.05f, 4}, tq::Activation::kRelu);
  const tq::QuantizedLinear fc2 = net_linear("fc2", {0.05f, 4}, {0.1f, -2}, tq::Activation::kRelu6);
  const std::vector<int8_t> x = test_input(4 * 48, 5);
  const std::vector<int8_t> want_h = fc1.forward(x, tq::rt::Path::kReference);
  const std::vector<int8_t> want_y = fc2.forward(want_h, tq::rt::Path::kReference);
  const std::vector<int8_t> h =
      run_fc(TQ_FC_PARAMS(RELU_FC1), relu_fc1_multipliers, relu_fc1_shifts, 48, 16, x,
             relu_fc1_weight, relu_fc1_kernel_bias);
  const std::vector<int8_t> y =
      run_fc(TQ_FC_PARAMS(RELU_FC2), relu_fc2_multipliers, relu_fc2_shifts, 16, 8, h,
             relu_fc2_weight, relu_fc2_kernel_bias);
  EXPECT_EQ(h, want_h);
  EXPECT_EQ(y, want_y);
  // The clamps bite: without the activation the same layers give values outside them.
  const std::vector<int8_t> free_h =
      net_linear("fc1", {0.02f, -3}, {0.05f, 4}).forward(x, tq::rt::Path::kReference);
  EXPECT_LT(*std::min_element(free_h.begin(), free_h.end()), RELU_FC1_ACT_MIN);
  EXPECT_EQ(*std::min_element(h.begin(), h.end()), RELU_FC1_ACT_MIN);
  const std::vector<int8_t> free_y =
      net_linear("fc2", {0.05f, 4}, {0.1f, -2}).forward(h, tq::rt::Path::kReference);
  EXPECT_NE(free_y, y);
  EXPECT_GT(std::set<int8_t>(h.begin(), h.end()).size(), 6u);

  tq::Conv2dGeometry g;
  g.stride_h = 2;
  g.padding = tq::Padding::kSame;
  check_conv(TQ_CONV_EXPORT(relu_conv, RELU_CONV, relu_conv_multipliers, relu_conv_shifts),
             "net.tqm", g, {0.03f, 5}, {0.04f, -7}, tq::Activation::kRelu);
}

// What a firmware does at init with a layer exported with --requant scales: its own RAM arrays,
// filled by rt::multipliers_from_scales from the shipped scales.
struct InitRequant {
  std::vector<int32_t> mult, shift;
};

InitRequant init_requant(float in_scale, const float* scales, int per_channel, float out_scale,
                         int channels) {
  InitRequant r;
  r.mult.assign(static_cast<size_t>(channels), -1);
  r.shift.assign(static_cast<size_t>(channels), -99);
  EXPECT_EQ(tinyquant::rt::multipliers_from_scales(in_scale, scales, per_channel != 0, out_scale,
                                                   channels, r.mult.data(), r.shift.data()),
            tinyquant::rt::Status::kOk);
  return r;
}

template <size_t N>
std::vector<int32_t> as_vector(const int32_t (&a)[N]) {
  return std::vector<int32_t>(a, a + N);
}

TEST(ExportC, PerChannelScalesFormIsBitIdenticalToTheMultipliersForm) {
  static_assert(RELUS_FC1_PER_CHANNEL == 1 && sizeof(relus_fc1_requant_scales) == 16 * 4,
                "one float per output channel");
  static_assert(RELUS_FC2_ACT_MAX == RELU_FC2_ACT_MAX && RELUS_FC1_ACT_MIN == RELU_FC1_ACT_MIN,
                "the same clamps in both forms");
  EXPECT_EQ(RELUS_FC1_INPUT_SCALE, 0.02f);
  EXPECT_EQ(RELUS_FC1_OUTPUT_SCALE, 0.05f);
  EXPECT_EQ(RELUS_FC2_INPUT_SCALE, 0.05f);
  EXPECT_EQ(RELUS_FC2_OUTPUT_SCALE, 0.1f);
  // The shipped scales are the weight scales of the model file.
  const tinyquant::QTensor w1 = io::to_qtensor(net_model().find("fc1.weight"));
  ASSERT_EQ(w1.params.scales.size(), 16u);
  for (size_t c = 0; c < 16; ++c) EXPECT_EQ(relus_fc1_requant_scales[c], w1.params.scales[c]);

  const InitRequant r1 =
      init_requant(RELUS_FC1_INPUT_SCALE, relus_fc1_requant_scales, RELUS_FC1_PER_CHANNEL,
                   RELUS_FC1_OUTPUT_SCALE, RELUS_FC1_OUT_FEATURES);
  const InitRequant r2 =
      init_requant(RELUS_FC2_INPUT_SCALE, relus_fc2_requant_scales, RELUS_FC2_PER_CHANNEL,
                   RELUS_FC2_OUTPUT_SCALE, RELUS_FC2_OUT_FEATURES);
  EXPECT_EQ(r1.mult, as_vector(relu_fc1_multipliers));
  EXPECT_EQ(r1.shift, as_vector(relu_fc1_shifts));
  EXPECT_EQ(r2.mult, as_vector(relu_fc2_multipliers));
  EXPECT_EQ(r2.shift, as_vector(relu_fc2_shifts));

  const std::vector<int8_t> x = test_input(4 * 48, 5);
  const std::vector<int8_t> h = run_fc(TQ_FC_PARAMS(RELUS_FC1), r1.mult.data(), r1.shift.data(), 48,
                                       16, x, relus_fc1_weight, relus_fc1_kernel_bias);
  const std::vector<int8_t> y = run_fc(TQ_FC_PARAMS(RELUS_FC2), r2.mult.data(), r2.shift.data(), 16,
                                       8, h, relus_fc2_weight, relus_fc2_kernel_bias);
  const std::vector<int8_t> mh =
      run_fc(TQ_FC_PARAMS(RELU_FC1), relu_fc1_multipliers, relu_fc1_shifts, 48, 16, x,
             relu_fc1_weight, relu_fc1_kernel_bias);
  EXPECT_EQ(h, mh);
  const tinyquant::QuantizedLinear fc1 =
      net_linear("fc1", {0.02f, -3}, {0.05f, 4}, tinyquant::Activation::kRelu);
  const tinyquant::QuantizedLinear fc2 =
      net_linear("fc2", {0.05f, 4}, {0.1f, -2}, tinyquant::Activation::kRelu6);
  EXPECT_EQ(h, fc1.forward(x, tinyquant::rt::Path::kReference));
  EXPECT_EQ(y, fc2.forward(h, tinyquant::rt::Path::kReference));

  // The convolution in the scales form.
  static_assert(RELUS_CONV_PER_CHANNEL == 1 && sizeof(relus_conv_requant_scales) == 8 * 4,
                "per-channel conv");
  const InitRequant rc =
      init_requant(RELUS_CONV_INPUT_SCALE, relus_conv_requant_scales, RELUS_CONV_PER_CHANNEL,
                   RELUS_CONV_OUTPUT_SCALE, RELUS_CONV_OUT_C);
  EXPECT_EQ(rc.mult, as_vector(relu_conv_multipliers));
  EXPECT_EQ(rc.shift, as_vector(relu_conv_shifts));
  tinyquant::Conv2dGeometry g;
  g.stride_h = 2;
  g.padding = tinyquant::Padding::kSame;
  check_conv(TQ_CONV_EXPORT(relus_conv, RELUS_CONV, rc.mult.data(), rc.shift.data()), "net.tqm", g,
             {0.03f, 5}, {0.04f, -7}, tinyquant::Activation::kRelu);
}

TEST(ExportC, PerTensorScalesFormIsBitIdenticalToTheMultipliersForm) {
  static_assert(PTS_FC_PER_CHANNEL == 0 && PT_FC_PER_CHANNEL == 0, "per-tensor weights");
  static_assert(sizeof(pts_fc_requant_scales) == 4, "one scale for the layer");
  static_assert(sizeof(pt_fc_multipliers) == 16 * 4, "the multipliers form repeats the pair");
  const io::Model m = io::load_model(TINYQUANT_CLI_DATA "/tensor.tqm");
  const tinyquant::QTensor w = io::to_qtensor(m.find("fc.weight"));
  ASSERT_EQ(w.params.scales.size(), 1u);
  EXPECT_EQ(pts_fc_requant_scales[0], w.params.scales[0]);
  const InitRequant r = init_requant(PTS_FC_INPUT_SCALE, pts_fc_requant_scales, PTS_FC_PER_CHANNEL,
                                     PTS_FC_OUTPUT_SCALE, PTS_FC_OUT_FEATURES);
  EXPECT_EQ(r.mult, as_vector(pt_fc_multipliers));
  EXPECT_EQ(r.shift, as_vector(pt_fc_shifts));

  const std::vector<float> bias = io::to_floats(m.find("fc.bias"));
  const tinyquant::QuantizedLinear layer(w, bias.data(), {0.02f, -3}, {0.05f, 4});
  const std::vector<int8_t> x = test_input(3 * 48, 7);
  const std::vector<int8_t> want = layer.forward(x, tinyquant::rt::Path::kReference);
  // Firmware may also keep just one pair for a per-tensor layer: the kernel reads the first.
  const InitRequant one = init_requant(PTS_FC_INPUT_SCALE, pts_fc_requant_scales,
                                       PTS_FC_PER_CHANNEL, PTS_FC_OUTPUT_SCALE, 1);
  EXPECT_EQ(run_fc(TQ_FC_PARAMS(PTS_FC), r.mult.data(), r.shift.data(), 48, 16, x, pts_fc_weight,
                   pts_fc_kernel_bias),
            want);
  EXPECT_EQ(run_fc(TQ_FC_PARAMS(PT_FC), pt_fc_multipliers, pt_fc_shifts, 48, 16, x, pt_fc_weight,
                   pt_fc_kernel_bias),
            want);
  ASSERT_EQ(one.mult.size(), 1u);
  EXPECT_EQ(run_fc(TQ_FC_PARAMS(PTS_FC), one.mult.data(), one.shift.data(), 48, 16, x,
                   pts_fc_weight, pts_fc_kernel_bias, PTS_FC_PER_CHANNEL != 0),
            want);
  EXPECT_GT(std::set<int8_t>(want.begin(), want.end()).size(), 10u);
}

TEST(ExportC, PerGroupScalesFormShipsTheRowsLargestScaleAndIsBitIdentical) {
  static_assert(GRPS_FC_PER_CHANNEL == 1 && sizeof(grps_fc_requant_scales) == 16 * 4,
                "one scale per row: S[o] = max_g s[o][g]");
  const tinyquant::QuantizedLinear layer = grouped_linear();
  const std::vector<float>& s = layer.weights().params.scales;  // [16][3]
  ASSERT_EQ(s.size(), 48u);
  for (size_t o = 0; o < 16; ++o)
    EXPECT_EQ(grps_fc_requant_scales[o], std::max({s[3 * o], s[3 * o + 1], s[3 * o + 2]})) << o;
  const InitRequant r =
      init_requant(GRPS_FC_INPUT_SCALE, grps_fc_requant_scales, GRPS_FC_PER_CHANNEL,
                   GRPS_FC_OUTPUT_SCALE, GRPS_FC_OUT_FEATURES);
  EXPECT_EQ(r.mult, as_vector(grp_fc_multipliers));
  EXPECT_EQ(r.shift, as_vector(grp_fc_shifts));
  const std::vector<int8_t> x = test_input(3 * 48, 3);
  const std::vector<int8_t> got =
      TQ_RUN_GROUPED(grps_fc, GRPS_FC, r.mult.data(), r.shift.data(), x);
  EXPECT_EQ(got, layer.forward(x, tinyquant::rt::Path::kReference));
  EXPECT_EQ(got, TQ_RUN_GROUPED(grp_fc, GRP_FC, grp_fc_multipliers, grp_fc_shifts, x));
}

// ---- depthwise convolution -------------------------------------------------------------

TEST(ExportC, DepthwiseConvolutionMatchesTheGroupedQuantizedConv2d) {
  // --act dw:0.03,5,0.1,-7,relu6 --conv dw:stride=2x1,padding=same,depthwise=2
  static_assert(DW_DW_DEPTH_MULTIPLIER == 2 && DW_DW_IN_C == 4 && DW_DW_OUT_C == 8 &&
                    DW_DW_GROUPS == 4 && DW_DW_IN_C_PER_GROUP == 1,
                "4 channels, multiplier 2: groups = in_c");
  static_assert(sizeof(dw_dw_depthwise_weight) == 3 * 3 * 8, "[kh][kw][in_c * multiplier]");
  static_assert(DW_DW_ACT_MIN == -7 && DW_DW_ACT_MAX == 53, "ReLU6: 6 / 0.1 - 7");
  // The depthwise layout is the OHWI array transposed: [y][x][o] = [o][y][x].
  for (int o = 0; o < 8; ++o)
    for (int t = 0; t < 9; ++t)
      ASSERT_EQ(dw_dw_depthwise_weight[t * 8 + o], dw_dw_weight[o * 9 + t]) << o << " " << t;
  tinyquant::Conv2dGeometry g;
  g.stride_h = 2;
  g.padding = tinyquant::Padding::kSame;
  g.groups = 4;
  ConvExport c = TQ_CONV_EXPORT(dw_dw, DW_DW, dw_dw_multipliers, dw_dw_shifts);
  c.p.depth_multiplier = DW_DW_DEPTH_MULTIPLIER;
  c.depthwise = dw_dw_depthwise_weight;
  check_conv(c, "dw.tqm", g, {0.03f, 5}, {0.1f, -7}, tinyquant::Activation::kRelu6,
             "dw.safetensors", "dw");
}

TEST(ExportC, DepthwiseScalesFormWithDilationAndValidPaddingMatches) {
  // --act dw:0.03,5,0.04,-7 --conv dw:stride=1x2,dilation=2x1,padding=valid,depthwise=2
  //   --requant scales
  static_assert(DWS_DW_PER_CHANNEL == 1 && sizeof(dws_dw_requant_scales) == 8 * 4, "scales");
  const InitRequant r = init_requant(DWS_DW_INPUT_SCALE, dws_dw_requant_scales, DWS_DW_PER_CHANNEL,
                                     DWS_DW_OUTPUT_SCALE, DWS_DW_OUT_C);
  tinyquant::Conv2dGeometry g;
  g.stride_w = 2;
  g.dilation_h = 2;
  g.padding = tinyquant::Padding::kValid;
  g.groups = 4;
  ConvExport c = TQ_CONV_EXPORT(dws_dw, DWS_DW, r.mult.data(), r.shift.data());
  c.p.depth_multiplier = DWS_DW_DEPTH_MULTIPLIER;
  c.depthwise = dws_dw_depthwise_weight;
  check_conv(c, "dw.tqm", g, {0.03f, 5}, {0.04f, -7}, tinyquant::Activation::kNone,
             "dw.safetensors", "dw");
}

}  // namespace
