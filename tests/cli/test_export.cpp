// Compiles against the C arrays that `tinyquant export-c` wrote from model.tqm (see
// CMakeLists.txt), checks every value against the model file read at run time, and runs the
// exported fully-connected layer through rt::fully_connected_s8 against a float reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "exported.h"
#include "exported_one.h"
#include "exported_s4.h"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/rt/kernels.hpp"

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

}  // namespace
