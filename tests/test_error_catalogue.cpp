// The catalogue of rejected inputs (docs/errors.md): one test per row, named by the row's id,
// asserting the exception type (or rt::Status) and the exact text the user sees. A last test
// checks that every id of the table has its test here, so the two cannot drift apart.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/gptq.hpp"
#include "tinyquant/io/c_export.hpp"
#include "tinyquant/io/idx.hpp"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/io/npy.hpp"
#include "tinyquant/io/safetensors.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/metrics.hpp"
#include "tinyquant/observers.hpp"
#include "tinyquant/parallel.hpp"
#include "tinyquant/prune.hpp"
#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"
#include "tinyquant/shape.hpp"
#include "tinyquant/sparse.hpp"

namespace {

using namespace tinyquant;

// Runs f, requires it to throw exactly E (not a sibling type), returns what().
template <typename E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type, message: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

// The catalogue text must be the whole message.
#define TQ_EXPECT_MESSAGE(E, expr, text) EXPECT_EQ(message_of<E>([&] { expr; }), text)

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

std::vector<uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

// A small valid int8 fully-connected case for the kernel rows (1 x 4 -> 2).
struct Fc {
  rt::FcParams params;
  rt::FcDims dims{1, 4, 2};
  int32_t multiplier = 1 << 30, shift = -1;
  std::vector<int8_t> input = std::vector<int8_t>(4, 1), weights = std::vector<int8_t>(8, 2);
  std::vector<int8_t> output = std::vector<int8_t>(2);
  rt::Requant requant() const { return {&multiplier, &shift, false, rt::Rounding::kDouble}; }
  rt::Status run(rt::Path path = rt::Path::kReference) {
    const rt::Context ctx{nullptr, 0, path};
    return rt::fully_connected_s8(ctx, params, requant(), dims, input.data(), weights.data(),
                                  nullptr, output.data());
  }
};

io::Model small_model() {
  io::Model m;
  const float v[2] = {1.0f, -2.0f};
  m.entries.push_back(io::make_entry("w", v, Shape{2}));
  return m;
}

// ---- shapes, axes ---------------------------------------------------------------------------

TEST(ErrorCatalogue, E01) {
  TQ_EXPECT_MESSAGE(ShapeError, numel({2, -3}),
                    "shape [2, -3]: extent -3 of dimension 1 is negative");
}
TEST(ErrorCatalogue, E02) {
  TQ_EXPECT_MESSAGE(ShapeError, numel({int64_t{1} << 40, int64_t{1} << 40}),
                    "shape [1099511627776, 1099511627776]: element count overflows int64");
}
TEST(ErrorCatalogue, E03) {
  TQ_EXPECT_MESSAGE(InvalidArgument, normalize_axis(2, Shape{3, 4}, "axis"),
                    "axis: axis 2 is out of range for a tensor of rank 2 (shape [3, 4])");
}

// ---- quantization parameters ----------------------------------------------------------------

TEST(ErrorCatalogue, E04) {
  QuantSpec s;
  s.bits = 9;
  TQ_EXPECT_MESSAGE(InvalidArgument, s.validate(),
                    "quant spec: bits = 9 is not supported (expected 2..8 or 16)");
}
TEST(ErrorCatalogue, E05) {
  QuantSpec s;
  s.granularity = Granularity::kPerGroup;
  s.group_size = 0;
  TQ_EXPECT_MESSAGE(InvalidArgument, s.validate(),
                    "quant spec: group_size = 0 must be >= 1 for per-group quantization");
}
TEST(ErrorCatalogue, E06) {
  TQ_EXPECT_MESSAGE(InvalidArgument,
                    param_layout(QuantSpec::int8_weights_per_channel(3), Shape{4, 8}),
                    "per-channel: axis 3 is out of range for a tensor of rank 2 (shape [4, 8])");
}
TEST(ErrorCatalogue, E07) {
  QuantParams p;
  p.scales = {kNaN};
  p.zero_points = {0};
  TQ_EXPECT_MESSAGE(InvalidArgument, p.validate(Shape{4}),
                    "quant params: scale[0] = nan must be finite and > 0");
}
TEST(ErrorCatalogue, E08) {
  QuantParams p;
  p.scales = {0.5f};
  p.zero_points = {300};
  TQ_EXPECT_MESSAGE(InvalidArgument, p.validate(Shape{4}),
                    "quant params: zero_point[0] = 300 is outside [-128, 127]");
}
TEST(ErrorCatalogue, E09) {
  QuantParams p = {QuantSpec::int8_weights_per_channel(0), {1.0f, 1.0f}, {0, 0}};
  TQ_EXPECT_MESSAGE(ShapeError, p.validate(Shape{3, 2}),
                    "quant params: 2 scales and 2 zero points, but a per-channel 8-bit spec on "
                    "shape [3, 2] needs 3");
}
TEST(ErrorCatalogue, E10) {
  TQ_EXPECT_MESSAGE(DataError, choose_scale_zero_point(kNaN, 1.0f, QuantSpec{}),
                    "range [nan, 1] is not finite");
}
TEST(ErrorCatalogue, E11) {
  TQ_EXPECT_MESSAGE(DataError, choose_scale_zero_point(2.0f, 1.0f, QuantSpec{}),
                    "range [2, 1] has min > max");
}
TEST(ErrorCatalogue, E12) {
  const std::vector<float> v = {0.5f, kInf, 1.0f};
  TQ_EXPECT_MESSAGE(DataError, params_for(v.data(), Shape{3}, QuantSpec{}),
                    "ranges_of: non-finite value inf at index 1");
}
TEST(ErrorCatalogue, E13) {
  const std::vector<float> v(6, 0.0f);
  TQ_EXPECT_MESSAGE(DataError, params_for(v.data(), Shape{2, 3}, QuantSpec{}),
                    "params_from_ranges: zero range: every range is [0, 0] (shape [2, 3], "
                    "per-tensor), so there is no scale to calibrate");
}

// ---- quantize / pack ------------------------------------------------------------------------

TEST(ErrorCatalogue, E14) {
  TQ_EXPECT_MESSAGE(InvalidArgument, storage_bytes(12, 10),
                    "storage_bytes: bits = 12 is not supported (expected 2..8 or 16)");
}
TEST(ErrorCatalogue, E15) {
  TQ_EXPECT_MESSAGE(InvalidArgument, pack_int4(std::vector<int8_t>{1, -8, 9}),
                    "pack_int4: value 9 at index 2 is outside [-8, 7]");
}
TEST(ErrorCatalogue, E16) {
  TQ_EXPECT_MESSAGE(ShapeError, unpack_int4(std::vector<uint8_t>{1, 2, 3}, 3),
                    "unpack_int4: 3 packed bytes, but 3 elements need 2");
}
TEST(ErrorCatalogue, E17) {
  const std::vector<float> v = {0.5f, 1.0f, 1.5f, 2.0f};
  const QuantParams p = params_for(v.data(), Shape{4}, QuantSpec{});
  std::vector<uint8_t> out(3);
  TQ_EXPECT_MESSAGE(ShapeError, quantize(v.data(), Shape{4}, p, out.data(), 3),
                    "quantize: output buffer has 3 bytes, but 4 8-bit elements need 4");
}
TEST(ErrorCatalogue, E18) {
  const std::vector<float> v = {0.5f, kNaN, 1.5f, 2.0f};
  QuantParams p = {QuantSpec{}, {0.1f}, {0}};
  TQ_EXPECT_MESSAGE(DataError, quantize(v.data(), Shape{4}, p),
                    "quantize: non-finite value nan at index 1");
}

// ---- observers ------------------------------------------------------------------------------

TEST(ErrorCatalogue, E19) {
  MinMaxObserver o;
  TQ_EXPECT_MESSAGE(DataError, o.params(),
                    "minmax observer: empty calibration: no values observed");
}
TEST(ErrorCatalogue, E20) {
  MinMaxObserver o(QuantSpec::int8_weights_per_channel(0));
  const std::vector<float> v(12, 1.0f);
  o.observe(v.data(), Shape{3, 4});
  TQ_EXPECT_MESSAGE(ShapeError, o.observe(v.data(), Shape{4, 3}),
                    "minmax observer: batch shape [4, 3] has 4 channels along axis 0, but the "
                    "first batch's [3, 4] has 3");
}
TEST(ErrorCatalogue, E21) {
  MinMaxObserver o;
  const std::vector<float> v = {1.0f, 2.0f, kNaN};
  TQ_EXPECT_MESSAGE(DataError, o.observe(v.data(), Shape{3}),
                    "minmax observer: non-finite value nan at index 2 of a batch of shape [3]");
}
TEST(ErrorCatalogue, E22) {
  TQ_EXPECT_MESSAGE(InvalidArgument, PercentileObserver(QuantSpec{}, 150.0),
                    "percentile observer: percentile = 150 is outside (0, 100]");
}
TEST(ErrorCatalogue, E23) {
  MinMaxObserver a;
  PercentileObserver b;
  const std::vector<float> v = {1.0f};
  b.observe(v.data(), Shape{1});
  TQ_EXPECT_MESSAGE(InvalidArgument, a.merge(b),
                    "minmax observer: cannot merge a percentile observer into it");
}

// ---- layers ---------------------------------------------------------------------------------

TEST(ErrorCatalogue, E24) {
  TQ_EXPECT_MESSAGE(InvalidArgument, (ActivationParams{0.0f, 0}.validate("input")),
                    "input: activation scale = 0 must be finite and > 0");
}
TEST(ErrorCatalogue, E25) {
  TQ_EXPECT_MESSAGE(InvalidArgument, (ActivationParams{0.1f, 200}.validate("output")),
                    "output: activation zero point = 200 is outside [-128, 127]");
}
TEST(ErrorCatalogue, E26) {
  const std::vector<float> w(8, 0.5f);
  QuantSpec s = QuantSpec::int8_weights_per_channel(0);
  s.bits = 16;
  TQ_EXPECT_MESSAGE(InvalidArgument,
                    QuantizedLinear(w.data(), 2, 4, nullptr, s, {0.1f, 0}, {0.1f, 0}),
                    "QuantizedLinear: 16-bit weights are not supported by the int8 kernels");
}
TEST(ErrorCatalogue, E27) {
  const std::vector<float> w(8, 0.5f);
  const QuantizedLinear l(w.data(), 2, 4, nullptr, QuantSpec::int8_weights_per_channel(0),
                          {0.1f, 0}, {0.1f, 0});
  TQ_EXPECT_MESSAGE(
      ShapeError, l.forward(std::vector<int8_t>(5)),
      "QuantizedLinear::forward: input has 5 values, not a positive multiple of in_features = 4");
}

// ---- pruning --------------------------------------------------------------------------------

TEST(ErrorCatalogue, E28) {
  const std::vector<float> w(8, 1.0f);
  TQ_EXPECT_MESSAGE(InvalidArgument, magnitude_mask({w.data(), {2, 4}}, 1.5),
                    "magnitude_mask: sparsity = 1.5 is outside [0, 1)");
}
TEST(ErrorCatalogue, E29) {
  const std::vector<float> w(8, 1.0f);
  TQ_EXPECT_MESSAGE(InvalidArgument, nm_mask({w.data(), {2, 4}}, 3, 2),
                    "nm_mask: N:M = 3:2 is invalid (need 1 <= N <= M <= 256)");
}
TEST(ErrorCatalogue, E30) {
  const std::vector<float> w(12, 1.0f);
  TQ_EXPECT_MESSAGE(
      InvalidArgument, block_mask({w.data(), {3, 4}}, 2, 2, 0.5),
      "block_mask: block 2x2 does not tile the 3x4 matrix of a tensor of shape [3, 4]");
}
TEST(ErrorCatalogue, E31) {
  std::vector<float> w(8, 1.0f);
  TQ_EXPECT_MESSAGE(ShapeError, apply_mask(w.data(), 8, Mask(7, 1)),
                    "apply_mask: mask has 7 entries but the tensor has 8 weights");
}
TEST(ErrorCatalogue, E32) {
  TQ_EXPECT_MESSAGE(InvalidArgument, global_magnitude_masks({}, 0.5),
                    "global_magnitude_masks: the tensor list is empty");
}

// ---- sparse storage -------------------------------------------------------------------------

TEST(ErrorCatalogue, E33) {
  const std::vector<int8_t> d(8, 1);
  SparseOptions o;
  o.format = StorageFormat::kNm;
  o.nm_n = 2;
  o.nm_m = 4;
  TQ_EXPECT_MESSAGE(
      InvalidArgument, SparseMatrix::from_dense(d.data(), 2, 4, o),
      "SparseMatrix::from_dense: row 0 group at column 0 has more than 2 nonzeros (2:4 format)");
}
TEST(ErrorCatalogue, E34) {
  SparseArrays a;
  a.row_nnz = {2, 1};
  a.col_delta = {1, 2};
  a.values = {5, 6};
  TQ_EXPECT_MESSAGE(FormatError, SparseMatrix::from_arrays(2, 6, SparseOptions{}, a),
                    "csr-u8 matrix: row counts sum to 3 but there are 2 indices and 2 values");
}
TEST(ErrorCatalogue, E35) {
  SparseArrays a;
  a.row_nnz = {1};
  a.col_index = {9};
  a.values = {5};
  SparseOptions o;
  o.format = StorageFormat::kCsrU16;
  TQ_EXPECT_MESSAGE(FormatError, SparseMatrix::from_arrays(1, 6, o, a),
                    "csr-u16 matrix: row 0 entry 0: column 9 is out of range [0, 6)");
}
TEST(ErrorCatalogue, E36) {
  SparseArrays a;
  a.bitmap = {0x03};
  a.values = {1};
  SparseOptions o;
  o.format = StorageFormat::kBitmap;
  TQ_EXPECT_MESSAGE(FormatError, SparseMatrix::from_arrays(1, 8, o, a),
                    "bitmap matrix: bitmap popcount 2 differs from the value count 1");
}

// ---- files ----------------------------------------------------------------------------------

TEST(ErrorCatalogue, E37) {
  TQ_EXPECT_MESSAGE(FormatError, io::read_npy(bytes_of("PK\x03\x04 not an npy file")),
                    "npy: bad magic at offset 0: expected 93 4e 55 4d 50 59 (\\x93NUMPY), found 6 "
                    "bytes '504b0304206e'");
}
TEST(ErrorCatalogue, E38) {
  io::NpyArray a;
  a.shape = {4};
  a.data.resize(16);
  std::vector<uint8_t> b = io::write_npy(a);
  b.resize(b.size() - 3);
  TQ_EXPECT_MESSAGE(FormatError, io::read_npy(b),
                    "npy: truncated: expected 16 data bytes, found 13 (shape [4] of float32, data "
                    "at offset 128)");
}
TEST(ErrorCatalogue, E39) {
  std::string h = "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }";
  h.resize(118, ' ');
  h += '\n';
  const std::string f = std::string("\x93NUMPY\x01\x00", 8) + char(118) + char(0) + h;
  TQ_EXPECT_MESSAGE(FormatError, io::read_npy(bytes_of(f)),
                    "npy header: unsupported descr '<c8' at offset 20 (expected one of f2 f4 f8 i1 "
                    "u1 i2 i4 i8 with byte order '<', '>' or '|')");
}
TEST(ErrorCatalogue, E40) {
  TQ_EXPECT_MESSAGE(
      FormatError, io::read_safetensors(bytes_of(std::string("\x05\x00\x00", 3))),
      "safetensors: truncated at offset 0: expected an 8-byte header length, found 3 bytes");
}
TEST(ErrorCatalogue, E41) {
  const std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  std::string f(8, '\0');
  f[0] = static_cast<char>(json.size());
  f += json + std::string(12, '\0');
  TQ_EXPECT_MESSAGE(FormatError, io::read_safetensors(bytes_of(f)),
                    "safetensors: tensor \"b\" (header offset 62) data_offsets [4, 12] overlap "
                    "tensor \"a\" which ends at 8");
}
TEST(ErrorCatalogue, E42) {
  const std::vector<uint8_t> b = {0, 0, 0x0c, 1, 0, 0, 0, 2, 1, 2};
  TQ_EXPECT_MESSAGE(FormatError, io::parse_idx(b.data(), b.size(), "labels.idx"),
                    "labels.idx: IDX type code 0x0c (int32) at offset 2 is not supported: only "
                    "0x08 (unsigned byte)");
}
TEST(ErrorCatalogue, E43) {
  const std::vector<uint8_t> b = {1, 0, 8, 1, 0, 0, 0, 2, 1, 2};
  TQ_EXPECT_MESSAGE(
      FormatError, io::parse_idx(b.data(), b.size(), "labels.idx"),
      "labels.idx: bad magic at offset 0: bytes 0x01 0x00, an IDX file starts with 0x00 0x00");
}
TEST(ErrorCatalogue, E44) {
  std::vector<uint8_t> b = io::serialize_model(small_model());
  b[0] = 'X';
  TQ_EXPECT_MESSAGE(FormatError, io::parse_model(b.data(), b.size(), "m.tqm"),
                    "m.tqm: file header: bad magic (not a tinyquant model file) at byte offset 0");
}
TEST(ErrorCatalogue, E45) {
  std::vector<uint8_t> b = io::serialize_model(small_model());
  b[b.size() - 64] ^= 1;  // first byte of the payload
  TQ_EXPECT_MESSAGE(FormatError, io::parse_model(b.data(), b.size(), "m.tqm"),
                    "m.tqm: entry 0: payload CRC mismatch at byte offset 192");
}
TEST(ErrorCatalogue, E46) {
  std::vector<uint8_t> b = io::serialize_model(small_model());
  b.resize(b.size() - 1);
  TQ_EXPECT_MESSAGE(FormatError, io::parse_model(b.data(), b.size(), "m.tqm"),
                    "m.tqm: file header: file size field says 256 bytes but there are 255 "
                    "(truncated) at byte offset 16");
}
TEST(ErrorCatalogue, E47) {
  TQ_EXPECT_MESSAGE(
      IoError, io::load_model("/nonexistent/dir/model.tqm"),
      "cannot open '/nonexistent/dir/model.tqm' for reading: No such file or directory");
}
TEST(ErrorCatalogue, E48) {
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(io::Model{}, io::CExportOptions{}),
                    "export-c: the model has no entries");
}
TEST(ErrorCatalogue, E49) {
  io::Model m = small_model();
  m.entries.push_back(m.entries[0]);
  m.entries[0].name = "conv.w";
  m.entries[1].name = "conv_w";
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(m, io::CExportOptions{}),
                    "export-c: entries 'conv.w' and 'conv_w' both give the C name 'model_conv_w' "
                    "(names are sanitised to [A-Za-z0-9_] and macros upper-cased); rename one");
}

// Found by fuzz_c_export: an entry name is copied into a C comment, so "*/" in a name used to end
// the comment and turn the rest of the name into code. Names are now escaped in comments.
TEST(ErrorCatalogue, E65) {
  io::Model m = small_model();
  m.entries[0].name = "w */ int x = 1; /*";
  // Accepted (docs/errors.md), with the name escaped in its comments ...
  const std::string text = io::export_c_header(m, io::CExportOptions{});
  EXPECT_NE(text.find("'w * / int x = 1; / *'"), std::string::npos) << text;
  // ... so nothing of the name is left outside the comments.
  std::string code;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "/*") == 0) {
      const size_t end = text.find("*/", i + 2);
      ASSERT_NE(end, std::string::npos);
      i = end + 2;
    } else {
      code += text[i++];
    }
  }
  EXPECT_EQ(code.find("int x = 1"), std::string::npos) << text;
}

// Found by fuzz_model and fuzz_c_export: a dense entry whose shape has a huge element count used
// to overflow int64 in the byte count check (src/io/model_file.cpp); it is now rejected first.
TEST(ErrorCatalogue, E66) {
  const std::vector<uint8_t> b =
      io::read_file_bytes(TINYQUANT_FUZZ_DIR "/regressions/model_numel_overflow_1.tqm");
  TQ_EXPECT_MESSAGE(FormatError, io::parse_model(b.data(), b.size()),
                    "<memory>: entry 0 ('9 lives/x-y'): dense float32 data of shape "
                    "[3530822107858468868] needs more than 2^63 bytes, has 16");
  // The second input the fuzzers found: int16, the overflow in the second extent.
  const std::vector<uint8_t> b2 =
      io::read_file_bytes(TINYQUANT_FUZZ_DIR "/regressions/model_numel_overflow_2.tqm");
  TQ_EXPECT_MESSAGE(FormatError, io::parse_model(b2.data(), b2.size()),
                    "<memory>: entry 0 ('t16'): dense int16 data of shape "
                    "[2, 3635635718357020525] needs more than 2^63 bytes, has 8");
}

// ---- metrics, parallel ----------------------------------------------------------------------

TEST(ErrorCatalogue, E50) {
  TQ_EXPECT_MESSAGE(ShapeError, mse(std::vector<float>(3), std::vector<float>(4)),
                    "mse: reference has 3 elements but approximation has 4");
}
TEST(ErrorCatalogue, E51) {
  Fc f;
  TQ_EXPECT_MESSAGE(InvalidArgument,
                    fully_connected_s8_parallel(-1, f.params, f.requant(), f.dims, f.input.data(),
                                                f.weights.data(), nullptr, f.output.data()),
                    "fully_connected_s8_parallel: threads = -1 (must be >= 0)");
}
TEST(ErrorCatalogue, E52) {
  const std::vector<float> w(8, 0.5f);
  const QuantizedLinear l(w.data(), 2, 4, nullptr, QuantSpec::int8_weights_per_channel(0),
                          {0.1f, 0}, {0.1f, 0});
  const rt::Path missing = (rt::supported_paths() & rt::path_bits(rt::Path::kNeon)) != 0
                               ? rt::Path::kAvx2
                               : rt::Path::kNeon;
  try {
    l.forward(std::vector<int8_t>(4), missing);
    ADD_FAILURE() << "no exception";
  } catch (const KernelError& e) {
    EXPECT_EQ(e.status(), rt::Status::kPathUnavailable);
    EXPECT_EQ(std::string(e.what()),
              "QuantizedLinear::forward: path_unavailable (layer [2 x 4], batch 1, path neon)");
  }
}

// ---- runtime kernels: rt::Status ------------------------------------------------------------

TEST(ErrorCatalogue, E53) {
  Fc f;
  const rt::Context ctx{nullptr, 0, rt::Path::kReference};
  EXPECT_EQ(rt::fully_connected_s8(ctx, f.params, f.requant(), f.dims, nullptr, f.weights.data(),
                                   nullptr, f.output.data()),
            rt::Status::kNullPointer);
}
TEST(ErrorCatalogue, E54) {
  Fc f;
  f.dims.batch = 0;
  EXPECT_EQ(f.run(), rt::Status::kBadDimension);
}
TEST(ErrorCatalogue, E55) {
  Fc f;
  f.shift = 31;
  EXPECT_EQ(f.run(), rt::Status::kBadShift);
}
TEST(ErrorCatalogue, E56) {
  Fc f;
  f.multiplier = -1;
  EXPECT_EQ(f.run(), rt::Status::kBadMultiplier);
}
TEST(ErrorCatalogue, E57) {
  Fc f;
  f.params.input_offset = 129;
  EXPECT_EQ(f.run(), rt::Status::kBadOffset);
}
TEST(ErrorCatalogue, E58) {
  Fc f;
  f.params.act_min = 10;
  f.params.act_max = 5;
  EXPECT_EQ(f.run(), rt::Status::kBadActivationRange);
}
TEST(ErrorCatalogue, E59) {
  Fc f;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") == 0) GTEST_SKIP() << "the CPU lacks AVX2";
  // The AVX2 body widens the activations into scratch, so this layer needs some.
  ASSERT_GT(rt::fully_connected_s8_scratch_size(f.dims, rt::Path::kAvx2), 0);
  EXPECT_EQ(f.run(rt::Path::kAvx2), rt::Status::kScratchTooSmall);
#else
  GTEST_SKIP() << "the AVX2 path exists on x86-64 only";
#endif
}
TEST(ErrorCatalogue, E60) {
  Fc f;
  const rt::Path missing = (rt::supported_paths() & rt::path_bits(rt::Path::kNeon)) != 0
                               ? rt::Path::kAvx2
                               : rt::Path::kNeon;
  EXPECT_EQ(f.run(missing), rt::Status::kPathUnavailable);
}
TEST(ErrorCatalogue, E61) {
  const uint16_t row_nnz[1] = {2};
  const uint16_t cols[2] = {3, 1};  // not increasing
  const int8_t values[2] = {1, 2};
  rt::SparseMatrixS8 w;
  w.format = rt::SparseFormat::kCsrU16;
  w.rows = 1;
  w.cols = 4;
  w.values = values;
  w.value_count = 2;
  w.row_nnz = row_nnz;
  w.col_index = cols;
  EXPECT_EQ(rt::validate_sparse_s8(w), rt::Status::kBadSparseData);
}
TEST(ErrorCatalogue, E62) {
  EXPECT_STREQ(rt::status_name(rt::Status::kBadShift), "bad_shift");
}

// ---- the tinyquant command: exit code 2 for usage errors, 1 for rejected input ---------------

// Runs the built command with `args`, stderr folded into the returned text.
int run_cli(const std::string& args, std::string* text) {
#ifdef TINYQUANT_CLI
  FILE* p = popen((std::string("\"") + TINYQUANT_CLI + "\" " + args + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[512];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text->append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
#else
  (void)args;
  (void)text;
  return -1;
#endif
}

TEST(ErrorCatalogue, E63) {
#ifndef TINYQUANT_CLI
  GTEST_SKIP() << "the tinyquant command is not built (TINYQUANT_BUILD_CLI=OFF)";
#endif
  std::string text;
  EXPECT_EQ(run_cli("inspect /nonexistent/dir/model.tqm", &text), 1);
  EXPECT_EQ(text,
            "tinyquant: error: cannot open '/nonexistent/dir/model.tqm' for reading: No such file "
            "or directory\n");
}
TEST(ErrorCatalogue, E64) {
#ifndef TINYQUANT_CLI
  GTEST_SKIP() << "the tinyquant command is not built (TINYQUANT_BUILD_CLI=OFF)";
#endif
  std::string text;
  EXPECT_EQ(run_cli("quantize --bits 9 in.npy out.tqm", &text), 2);
  EXPECT_EQ(text,
            "--bits: expected a whole number from 2 to 8, got '9'\nRun with --help for more "
            "information.\n");
}

// ---- sparse model entries, per-layer export parameters ---------------------------------------

io::Model sparse_model() {
  const int8_t dense[4] = {1, 0, 0, 2};
  const SparseMatrix m = SparseMatrix::from_dense(dense, 2, 2, SparseOptions{});
  QuantParams p;
  p.spec = QuantSpec::int8_weights_per_channel(0);
  p.scales = {0.5f, 0.25f};
  p.zero_points = {0, 0};
  io::Model model;
  model.entries.push_back(io::make_sparse_entry("fc.weight", m, p));
  return model;
}

TEST(ErrorCatalogue, E67) {
  const int8_t dense[4] = {1, 0, 0, 2};
  const SparseMatrix m = SparseMatrix::from_dense(dense, 2, 2, SparseOptions{});
  QuantParams p;
  p.spec = QuantSpec::int8_weights_per_channel(0);
  p.spec.bits = 4;
  p.scales = {0.5f, 0.25f};
  p.zero_points = {0, 0};
  TQ_EXPECT_MESSAGE(InvalidArgument, io::make_sparse_entry("w", m, p),
                    "make_sparse_entry: 'w': 4-bit parameters for int8 values");
}
TEST(ErrorCatalogue, E68) {
  io::ModelEntry e = sparse_model().entries[0];
  e.name = "w";
  e.parts[0].bytes.resize(16);  // "layout"
  TQ_EXPECT_MESSAGE(FormatError, io::sparse_matrix(e),
                    "sparse entry 'w': part 'layout' holds 4 values, expected 5");
}
TEST(ErrorCatalogue, E69) {
  io::CExportOptions o;
  o.layers["fd"] = io::LayerActivations{{0.02f, -3}, {0.05f, 4}};
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(sparse_model(), o),
                    "export-c: activation parameters given for layer 'fd', but the model has no "
                    "layer 'fd.weight' the kernels run");
}
TEST(ErrorCatalogue, E70) {
  io::CExportOptions o;
  o.conv["fc"] = Conv2dGeometry{};
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(sparse_model(), o),
                    "export-c: a convolution geometry given for layer 'fc', but the model has no "
                    "4-D 'fc.weight' the conv kernels run");
}
TEST(ErrorCatalogue, E71) {
#ifndef TINYQUANT_CLI
  GTEST_SKIP() << "the tinyquant command is not built (TINYQUANT_BUILD_CLI=OFF)";
#endif
  std::string text;
  EXPECT_EQ(run_cli("export-c m.tqm m.h --act fc1:0.02", &text), 2);
  EXPECT_EQ(text,
            "--act: expected LAYER:in_scale,in_zero_point,out_scale,out_zero_point[,relu|relu6], "
            "e.g. fc1:0.02,-3,0.05,4, got 'fc1:0.02'\nRun with --help for more information.\n");
}
TEST(ErrorCatalogue, E72) {
#ifndef TINYQUANT_CLI
  GTEST_SKIP() << "the tinyquant command is not built (TINYQUANT_BUILD_CLI=OFF)";
#endif
  std::string text;
  EXPECT_EQ(run_cli("export-c m.tqm m.h --act fc1:0.02,-3,0.05,4,gelu", &text), 2);
  EXPECT_EQ(text,
            "--act: unknown activation 'gelu' in 'fc1:0.02,-3,0.05,4,gelu' (expected relu or "
            "relu6)\nRun with --help for more information.\n");
}
TEST(ErrorCatalogue, E73) {
  const float w = 0.5f;
  int32_t m = 0, s = 0;
  EXPECT_EQ(rt::multipliers_from_scales(0.02f, &w, true, 0.0f, 1, &m, &s),
            rt::Status::kBadMultiplier);
  EXPECT_STREQ(rt::status_name(rt::Status::kBadMultiplier), "bad_multiplier");
}
TEST(ErrorCatalogue, E74) {
  io::CExportOptions o;
  o.depthwise["fc"] = 2;
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(sparse_model(), o),
                    "export-c: depthwise multiplier 2 given for layer 'fc', but the model has no "
                    "8-bit 'fc.weight' [out_c][kh][kw][1] with out_c a multiple of 2 and a "
                    "convolution geometry");
}
TEST(ErrorCatalogue, E75) {
  const std::vector<float> w(8, 0.5f);
  TQ_EXPECT_MESSAGE(DataError,
                    gptq_quantize(w.data(), 2, 4, w.data(), 0, QuantSpec::int4_per_group(2, 1)),
                    "gptq: calibration inputs are empty (0 samples of 4 inputs)");
}
TEST(ErrorCatalogue, E76) {
  const std::vector<float> w(8, 0.5f), x(15, 1.0f);
  TQ_EXPECT_MESSAGE(ShapeError,
                    gptq_quantize(w, {2, 4}, x, {5, 3}, QuantSpec::int4_per_group(2, 1)),
                    "gptq: calibration inputs [5, 3] have 3 features but the weights [2, 4] take "
                    "4 inputs");
}
TEST(ErrorCatalogue, E77) {
  const std::vector<float> w(8, 0.5f);
  std::vector<float> x(12, 1.0f);
  x[6] = std::numeric_limits<float>::quiet_NaN();
  TQ_EXPECT_MESSAGE(DataError,
                    gptq_quantize(w.data(), 2, 4, x.data(), 3, QuantSpec::int4_per_group(2, 1)),
                    "gptq: calibration inputs: non-finite value nan at index 6");
}
TEST(ErrorCatalogue, E78) {
  const std::vector<float> w(8, 0.5f), x(12, 1.0f);  // identical samples: H has rank 1
  GptqOptions o;
  o.damp = 0.0;
  TQ_EXPECT_MESSAGE(
      DataError, gptq_quantize(w.data(), 2, 4, x.data(), 3, QuantSpec::int4_per_group(2, 1), o),
      "gptq: Hessian + 0 * mean(diag) is not positive definite (4 inputs); raise damp");
}
TEST(ErrorCatalogue, E79) {
  const std::vector<float> w = {0.5f, -0.25f, 0.75f};
  const std::vector<double> h = {2, 1, 0, 1.5, 2, 0, 0, 0, 2};
  TQ_EXPECT_MESSAGE(
      DataError,
      gptq_quantize_hessian(w.data(), 1, 3, h.data(), QuantSpec::int8_weights_per_channel(0)),
      "gptq: Hessian is not symmetric: H[1][0] = 1.5 but H[0][1] = 1");
}
TEST(ErrorCatalogue, E80) {
  const std::vector<float> w(8, 0.5f), x(12, 1.0f);
  QuantSpec affine = QuantSpec::int4_per_group(2, 1);
  affine.scheme = Scheme::kAffine;
  GptqOptions o;
  o.snap_group_scales = true;
  TQ_EXPECT_MESSAGE(InvalidArgument, gptq_quantize(w.data(), 2, 4, x.data(), 3, affine, o),
                    "gptq: snap_group_scales needs symmetric per-group weights, got affine "
                    "per-group");
}
TEST(ErrorCatalogue, E81) {
  const std::vector<float> w(4, 1.0f);
  const int64_t big = int64_t{1} << 32;
  TQ_EXPECT_MESSAGE(
      ShapeError,
      gptq_quantize(w.data(), big, big, w.data(), 1, QuantSpec::int8_weights_per_channel(0)),
      "gptq: weights [4294967296][4294967296]: the element count overflows int64");
}

TEST(ErrorCatalogue, E82) {
  const float dummy = 0.0f;
  TQ_EXPECT_MESSAGE(DataError, structured_mask({&dummy, {4, 0}}, 0, 0.5, Criterion::kL2),
                    "structured_mask: tensor of shape [4, 0] is empty");
}
TEST(ErrorCatalogue, E83) {
  SparseOptions o;
  o.format = StorageFormat::kNm;
  TQ_EXPECT_MESSAGE(InvalidArgument, SparseMatrix::from_arrays(16, 2147483647, o, SparseArrays{}),
                    "SparseMatrix::from_arrays: matrix 16x2147483647 exceeds the index range (at "
                    "most 2^31 - 1 rows and 2^31 - 256 columns)");
}
TEST(ErrorCatalogue, E84) {
  const std::vector<float> w(8 * 3 * 3 * 4, 0.5f);
  io::Model m;
  m.entries.push_back(io::make_entry(
      "conv.weight",
      quantize_weights(w.data(), {8, 3, 3, 4}, QuantSpec::int8_weights_per_channel(0))));
  io::CExportOptions opt;
  Conv2dGeometry g;
  g.groups = 3;
  opt.conv["conv"] = g;
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(m, opt),
                    "export-c: layer conv: groups = 3 must be >= 1 and divide out_c = 8");
}
TEST(ErrorCatalogue, E85) {
  TQ_EXPECT_MESSAGE(ShapeError, numel({0, int64_t{1} << 40, int64_t{1} << 40}),
                    "shape [0, 1099511627776, 1099511627776]: element count overflows int64");
}
TEST(ErrorCatalogue, E86) {
  const float w[2] = {1e-6f, -1e-6f}, bias = 100.0f;
  const QTensor q = quantize_weights(w, Shape{1, 2}, QuantSpec{});
  TQ_EXPECT_MESSAGE(DataError, QuantizedLinear(q, &bias, {0.5f, 0}, {1.0f, 0}),
                    "QuantizedLinear: bias[0] = 100 does not fit int32 at scale "
                    "3.921568403342235e-09 (input scale x weight scale); quantize the weights "
                    "knowing the input scale (quantize_weights_for_bias, `tinyquant quantize "
                    "--input-scale`) or build the layer from float weights: both raise that weight "
                    "scale");
}
TEST(ErrorCatalogue, E87) {
  TQ_EXPECT_MESSAGE(DataError,
                    quantize_activation(std::numeric_limits<float>::quiet_NaN(), {0.1f, 5}),
                    "quantize_activation: x = nan is not a number");
}
TEST(ErrorCatalogue, E88) {
  const float v[4] = {1, 2, 3, 4};
  io::Model m;
  m.entries.push_back(io::make_entry("f", v, Shape{4}));
  m.entries[0].parts[0].bytes.resize(12);
  TQ_EXPECT_MESSAGE(FormatError, io::export_c_header(m, io::CExportOptions{}),
                    "model entry 'f': dense float32 data of shape [4] needs 16 bytes, has 12");
}
TEST(ErrorCatalogue, E89) {
  std::vector<float> v(1000, 0.0f);
  v[0] = -5.0f;
  PercentileObserver obs(QuantSpec{}, 99.0);
  obs.observe(v.data(), Shape{1000});
  TQ_EXPECT_MESSAGE(DataError, obs.params(),
                    "percentile observer: every chosen range is [0, 0], although range 0 observed "
                    "[-5, 0]: the estimate clips every nonzero value (raise the percentile, or "
                    "calibrate with min / max)");
}

TEST(ErrorCatalogue, E90) {
  const float x[5] = {1, 2, 3, kNaN, 5};
  int8_t out[5] = {};
  TQ_EXPECT_MESSAGE(DataError, quantize_activations(x, 5, {0.1f, 0}, out),
                    "quantize_activations: x[3] = nan is not a number");
}
TEST(ErrorCatalogue, E91) {
  TQ_EXPECT_MESSAGE(InvalidArgument, quantize_activation(0.0f, {0.0f, 0}),
                    "quantize_activation: activation scale = 0 must be finite and > 0");
}

TEST(ErrorCatalogue, E92) {
  QuantSpec s16 = QuantSpec::int8_activations();
  s16.bits = 16;
  TQ_EXPECT_MESSAGE(InvalidArgument, EntropyObserver o(s16),
                    "entropy observer: 16-bit ranges need 32768 magnitude levels, more than the "
                    "16384 bins its KL search takes (the percentile and MSE observers take 16-bit "
                    "specs)");
}
TEST(ErrorCatalogue, E93) {
  TQ_EXPECT_MESSAGE(
      ShapeError, storage_bytes(16, int64_t{1} << 62),
      "storage_bytes: 4611686018427387904 16-bit elements take more bytes than int64 holds");
}
TEST(ErrorCatalogue, E94) {
  const std::vector<float> w(40, 1.0f);
  QTensor q = quantize_weights(w.data(), {4, 10}, QuantSpec::int8_weights_per_channel(0));
  q.data.pop_back();
  TQ_EXPECT_MESSAGE(ShapeError, quantized_bytes(q),
                    "quantized_bytes: QTensor holds 39 bytes, but 40 8-bit elements of shape "
                    "[4, 10] need 40");
}
TEST(ErrorCatalogue, E95) {
  const float v = 1.0f;
  io::Model m;
  m.entries.push_back(io::make_entry("w", &v, Shape{1}));
  TQ_EXPECT_MESSAGE(IoError, io::save_model(m, ""), "cannot write a file: the path is empty");
}
TEST(ErrorCatalogue, E96) {
  const float v = 1.0f;
  io::Model m;
  m.entries.push_back(io::make_entry("TQ_ALIGN", &v, Shape{1}));
  io::CExportOptions o;
  o.prefix = "TQ";
  TQ_EXPECT_MESSAGE(InvalidArgument, io::export_c_header(m, o),
                    "export-c: entry 'TQ_ALIGN' gives the C name 'TQ_TQ_ALIGN', a macro the header "
                    "defines for itself; rename the entry or choose another prefix");
}
TEST(ErrorCatalogue, E97) {
#ifndef TINYQUANT_CLI
  GTEST_SKIP() << "the tinyquant command is not built (TINYQUANT_BUILD_CLI=OFF)";
#endif
  std::string text;
  EXPECT_EQ(run_cli("export-c model.tqm model.h --source ./model.h", &text), 2);
  EXPECT_EQ(text,
            "--source: './model.h' is the header OUT 'model.h'; the .c file needs a path of its "
            "own\nRun with --help for more information.\n");
}
TEST(ErrorCatalogue, E98) {
  // int8 [2] = {1, 15} under 5-bit parameters, then code 127 with the CRCs made valid again.
  QuantParams p;
  p.spec.bits = 5;
  p.spec.scheme = Scheme::kSymmetric;
  p.scales = {1.0f};
  p.zero_points = {0};
  const int32_t codes[2] = {1, 15};
  io::Model m;
  m.entries.push_back(io::make_entry("w", from_integers(codes, Shape{2}, p)));
  std::vector<uint8_t> b = io::serialize_model(m);
  const size_t payload = b.size() - 64, entry = 64;
  b[payload + 1] = 127;
  const auto put = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  };
  put(entry + 20, io::crc32(b.data() + payload, 64));  // payload CRC
  put(entry + 24, io::crc32(b.data() + entry, 24));    // entry header CRC
  TQ_EXPECT_MESSAGE(
      FormatError, io::parse_model(b.data(), b.size(), "m.tqm"),
      "m.tqm: entry 0 ('w'): element 1 holds code 127, outside the 5-bit range [-16, 15]");
}

// ---- the table and the tests stay in sync ---------------------------------------------------

TEST(ErrorCatalogue, EveryRowOfTheTableHasItsTest) {
  std::ifstream doc(TINYQUANT_ERRORS_MD);
  ASSERT_TRUE(doc) << "cannot open " << TINYQUANT_ERRORS_MD;
  std::ifstream self(TINYQUANT_CATALOGUE_TEST);
  ASSERT_TRUE(self) << "cannot open " << TINYQUANT_CATALOGUE_TEST;
  std::stringstream src;
  src << self.rdbuf();
  const std::regex row(R"(^\| (E[0-9]{2}) \|)");
  std::set<std::string> ids;
  std::string line;
  while (std::getline(doc, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    EXPECT_TRUE(ids.insert(m[1]).second) << "id " << m[1] << " appears twice in the table";
    EXPECT_NE(src.str().find("TEST(ErrorCatalogue, " + m[1].str() + ")"), std::string::npos)
        << m[1] << " has no test";
  }
  EXPECT_GE(ids.size(), 40u);
  // And every test has its row.
  const std::regex test_id(R"(TEST\(ErrorCatalogue, (E[0-9]{2})\))");
  const std::string s = src.str();
  for (std::sregex_iterator it(s.begin(), s.end(), test_id), end; it != end; ++it)
    EXPECT_EQ(ids.count((*it)[1]), 1u) << (*it)[1] << " has no row in docs/errors.md";
}

}  // namespace
