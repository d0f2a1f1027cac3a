// Sparse storage: round trips, byte counts worked out by hand, the format chooser, and
// corrupt index data.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/prune.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"
#include "tinyquant/sparse.hpp"

using namespace tinyquant;
using namespace tq_test;

namespace {

SparseOptions opt(StorageFormat f, ValueType vt = ValueType::kInt8) {
  SparseOptions o;
  o.format = f;
  o.value_type = vt;
  return o;
}

// Block CSR with br x bc blocks.
SparseOptions block_opt(int32_t br, int32_t bc) {
  SparseOptions o = opt(StorageFormat::kBlockCsr);
  o.block_rows = br;
  o.block_cols = bc;
  return o;
}

std::vector<int8_t> random_dense(std::mt19937& rng, int64_t rows, int64_t cols, double sparsity,
                                 int lo, int hi) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::uniform_int_distribution<int> v(lo, hi);
  std::vector<int8_t> d(static_cast<size_t>(rows * cols));
  for (auto& x : d) x = u(rng) < sparsity ? int8_t{0} : static_cast<int8_t>(v(rng));
  return d;
}

// (flat index, value) of every nonzero of a dense matrix, row-major.
std::vector<std::pair<int64_t, int8_t>> nonzeros(const std::vector<int8_t>& d) {
  std::vector<std::pair<int64_t, int8_t>> out;
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] != 0) out.emplace_back(static_cast<int64_t>(i), d[i]);
  return out;
}

// What for_each_value visits, sorted by index (block CSR visits block by block); an index
// visited twice shows up twice.
std::vector<std::pair<int64_t, int8_t>> visited(const SparseMatrix& m) {
  std::vector<std::pair<int64_t, int8_t>> out;
  m.for_each_value([&](int64_t i, int8_t v) { out.emplace_back(i, v); });
  std::sort(out.begin(), out.end());
  return out;
}

// The decoded matrix, and the values visited without decoding, both against the source.
void expect_holds(const SparseMatrix& m, const std::vector<int8_t>& d, const std::string& what) {
  EXPECT_EQ(m.to_dense(), d) << what;
  EXPECT_EQ(visited(m), nonzeros(d)) << what;
}

}  // namespace

TEST(SparseMatrix, RoundTripEveryFormatInt8AndInt4) {
  std::mt19937 rng(11);
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {8, 300}, {16, 64}, {5, 1000}};
  for (const auto& s : shapes) {
    for (double sp : {0.0, 0.5, 0.9, 0.999}) {
      for (ValueType vt : {ValueType::kInt8, ValueType::kInt4}) {
        const std::vector<int8_t> d = vt == ValueType::kInt8
                                          ? random_dense(rng, s[0], s[1], sp, -128, 127)
                                          : random_dense(rng, s[0], s[1], sp, -8, 7);
        for (StorageFormat f :
             {StorageFormat::kCsrU8, StorageFormat::kCsrU16, StorageFormat::kBitmap}) {
          const SparseMatrix m = SparseMatrix::from_dense(d.data(), s[0], s[1], opt(f, vt));
          expect_holds(
              m, d,
              std::string(to_string(f)) + " " + std::to_string(s[0]) + "x" + std::to_string(s[1]));
        }
        SparseOptions b = opt(StorageFormat::kBlockCsr, vt);
        b.block_rows = 1;
        b.block_cols = 1;
        expect_holds(SparseMatrix::from_dense(d.data(), s[0], s[1], b), d, "block 1x1");
      }
    }
  }
  // N:M and 4x4 blocks on matrices built to fit them.
  std::vector<int8_t> d = random_dense(rng, 8, 22, 0.0, 1, 100);
  for (int64_t r = 0; r < 8; ++r) {
    for (int64_t c = 0; c < 22; ++c) {
      if (c % 4 == 1 || c % 4 == 2) d[static_cast<size_t>(r * 22 + c)] = 0;  // <= 2 of 4 kept
    }
  }
  SparseOptions nm = opt(StorageFormat::kNm);
  expect_holds(SparseMatrix::from_dense(d.data(), 8, 22, nm), d, "2:4");
  nm.nm_n = 4;  // 4 of every 8 (two 2-of-4 groups), the tail of 6 keeps 4
  nm.nm_m = 8;
  expect_holds(SparseMatrix::from_dense(d.data(), 8, 22, nm), d, "4:8");
  const SparseOptions b = block_opt(4, 2);
  expect_holds(SparseMatrix::from_dense(d.data(), 8, 22, b), d, "block 4x2");
}

// A matrix far too large to decode: for_each_value walks only what is stored.
TEST(SparseMatrix, ForEachValueNeedsNoDenseCopy) {
  const int64_t cols = (int64_t{1} << 31) - 256;
  SparseArrays a;
  a.row_nnz = {0, 2};
  a.col_index = {5, 65535};
  a.values = {-3, 9};
  const SparseMatrix csr = SparseMatrix::from_arrays(2, 65536, opt(StorageFormat::kCsrU16), a);
  const std::vector<std::pair<int64_t, int8_t>> want = {{65536 + 5, -3}, {65536 + 65535, 9}};
  EXPECT_EQ(visited(csr), want);
  SparseArrays b;
  b.row_nnz = {1, 0, 0};
  b.col_delta = {200};
  b.values = {7};
  const SparseMatrix wide = SparseMatrix::from_arrays(3, cols, opt(StorageFormat::kCsrU8), b);
  EXPECT_EQ(visited(wide), (std::vector<std::pair<int64_t, int8_t>>{{200, 7}}));
}

// 2 x 10 matrix, nonzeros: row 0 at columns 2 and 7, row 1 at column 9.
TEST(SparseMatrix, ByteCountsByHand) {
  std::vector<int8_t> d(20, 0);
  d[2] = 5;
  d[7] = -3;
  d[19] = 1;
  auto bytes = [&](SparseOptions o) {
    return SparseMatrix::from_dense(d.data(), 2, 10, o).bytes();
  };
  // row counts 2 * 2 + 3 deltas + 3 values
  EXPECT_EQ(bytes(opt(StorageFormat::kCsrU8)), 4 + 3 + 3);
  EXPECT_EQ(bytes(opt(StorageFormat::kCsrU16)), 4 + 6 + 3);
  // bitmap 2 rows * 2 bytes + 3 values; int4 values: ceil(3 / 2) = 2
  EXPECT_EQ(bytes(opt(StorageFormat::kBitmap)), 4 + 3);
  EXPECT_EQ(bytes(opt(StorageFormat::kBitmap, ValueType::kInt4)), 4 + 2);
  // 1x2 blocks: row 0 blocks 1 and 3, row 1 block 4: 3 row pointers * 4 + 3 * 2 + 6 values
  const SparseOptions b = block_opt(1, 2);
  EXPECT_EQ(bytes(b), 12 + 6 + 6);
  // 2:4: 3 groups per row (last of 2 columns) * 2 slots = 6 slots * 2 bits = 2 bytes per row
  EXPECT_EQ(bytes(opt(StorageFormat::kNm)), 2 * 2 + 12);
  // A gap of 600 costs two padding entries in CSR u8.
  std::vector<int8_t> wide(700, 0);
  wide[600] = 9;
  const SparseMatrix w = SparseMatrix::from_dense(wide.data(), 1, 700, opt(StorageFormat::kCsrU8));
  EXPECT_EQ(w.arrays().col_delta, (std::vector<uint8_t>{255, 255, 90}));
  EXPECT_EQ(w.bytes(), 2 + 3 + 3);
  EXPECT_EQ(w.to_dense(), wide);
}

TEST(SparseMatrix, Int4ValuesShipAsNibbleStream) {
  const std::vector<int8_t> d = {0, -8, 7, 0, -1, 3};
  const SparseMatrix m =
      SparseMatrix::from_dense(d.data(), 1, 6, opt(StorageFormat::kCsrU8, ValueType::kInt4));
  // values -8, 7, -1, 3 -> bytes (7 << 4 | 0x8), (3 << 4 | 0xF)
  EXPECT_EQ(m.packed_values(), (std::vector<uint8_t>{0x78, 0x3F}));
  const std::string msg = thrown_message<InvalidArgument>([&] {
    const std::vector<int8_t> bad = {0, 8};
    SparseMatrix::from_dense(bad.data(), 1, 2, opt(StorageFormat::kBitmap, ValueType::kInt4));
  });
  EXPECT_TRUE(contains(msg, "int4 value 8 at row 0, column 1")) << msg;
  EXPECT_THROW(m.view(), InvalidArgument);
}

TEST(SparseMatrix, RejectsBadOptions) {
  const std::vector<int8_t> d(12, 1);
  SparseOptions o = block_opt(2, 5);
  std::string msg =
      thrown_message<InvalidArgument>([&] { SparseMatrix::from_dense(d.data(), 2, 6, o); });
  EXPECT_TRUE(contains(msg, "block 2x5 does not tile the 2x6")) << msg;
  o = opt(StorageFormat::kNm);
  o.nm_n = 5;
  msg = thrown_message<InvalidArgument>([&] { SparseMatrix::from_dense(d.data(), 2, 6, o); });
  EXPECT_TRUE(contains(msg, "N:M = 5:4")) << msg;
  o.nm_n = 2;
  msg = thrown_message<InvalidArgument>([&] { SparseMatrix::from_dense(d.data(), 2, 6, o); });
  EXPECT_TRUE(contains(msg, "row 0 group at column 0 has more than 2 nonzeros")) << msg;
  msg = thrown_message<InvalidArgument>(
      [&] { SparseMatrix::from_dense(d.data(), 0, 6, opt(StorageFormat::kCsrU8)); });
  EXPECT_TRUE(contains(msg, "0x6")) << msg;
}

TEST(SparseMatrix, CorruptArraysThrowFormatError) {
  const SparseOptions csr = opt(StorageFormat::kCsrU16);
  SparseArrays a;
  a.row_nnz = {2, 1};
  a.col_index = {2, 7, 9};
  a.values = {5, -3, 1};
  EXPECT_EQ(SparseMatrix::from_arrays(2, 10, csr, a).to_dense()[7], -3);
  SparseArrays bad = a;
  bad.col_index[2] = 10;
  std::string msg =
      thrown_message<FormatError>([&] { SparseMatrix::from_arrays(2, 10, csr, bad); });
  EXPECT_TRUE(contains(msg, "row 1 entry 0: column 10 is out of range")) << msg;
  bad = a;
  bad.col_index[1] = 2;
  msg = thrown_message<FormatError>([&] { SparseMatrix::from_arrays(2, 10, csr, bad); });
  EXPECT_TRUE(contains(msg, "row 0 entry 1: column 2 does not increase")) << msg;
  bad = a;
  bad.row_nnz = {2, 2};
  msg = thrown_message<FormatError>([&] { SparseMatrix::from_arrays(2, 10, csr, bad); });
  EXPECT_TRUE(contains(msg, "row counts sum to 4 but there are 3 indices and 3 values")) << msg;

  SparseArrays u8;
  u8.row_nnz = {2, 1};
  u8.col_delta = {2, 0, 9};
  u8.values = {5, -3, 1};
  msg = thrown_message<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 10, opt(StorageFormat::kCsrU8), u8); });
  EXPECT_TRUE(contains(msg, "row 0 entry 1 repeats column 2")) << msg;

  SparseArrays bm;
  bm.bitmap = {0x84, 0x00, 0x00, 0x02};  // row 0: columns 2, 7; row 1: column 9
  bm.values = {5, -3};
  msg = thrown_message<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 10, opt(StorageFormat::kBitmap), bm); });
  EXPECT_TRUE(contains(msg, "popcount 3 differs from the value count 2")) << msg;
  bm.values.push_back(1);
  EXPECT_EQ(SparseMatrix::from_arrays(2, 10, opt(StorageFormat::kBitmap), bm).to_dense()[19], 1);
  bm.bitmap[3] = 0x06;  // column 10 of 10
  msg = thrown_message<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 10, opt(StorageFormat::kBitmap), bm); });
  EXPECT_TRUE(contains(msg, "row 1 sets bits past column 9")) << msg;

  const SparseOptions b = block_opt(1, 2);
  SparseArrays blk;
  blk.block_row_ptr = {0, 2, 1};
  blk.block_col = {1, 3};
  blk.values = {0, 5, 0, -3};
  msg = thrown_message<FormatError>([&] { SparseMatrix::from_arrays(2, 10, b, blk); });
  EXPECT_TRUE(contains(msg, "not monotone at block row 1 (1 after 2)")) << msg;
  blk.block_row_ptr = {0, 1, 2};
  blk.block_col = {1, 5};
  msg = thrown_message<FormatError>([&] { SparseMatrix::from_arrays(2, 10, b, blk); });
  EXPECT_TRUE(contains(msg, "block row 1: block column 5 is out of range [0, 5)")) << msg;

  SparseArrays nm;
  nm.nm_index = {0x0D, 0x00};  // 2:4 over 4 columns: slots 1 and 3
  nm.values = {5, -3, 0, 0};
  EXPECT_EQ(SparseMatrix::from_arrays(2, 4, opt(StorageFormat::kNm), nm).to_dense(),
            (std::vector<int8_t>{0, 5, 0, -3, 0, 0, 0, 0}));
  nm.nm_index = {0x05, 0x00};  // slot 0 and 1 both index 1
  msg = thrown_message<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 4, opt(StorageFormat::kNm), nm); });
  EXPECT_TRUE(contains(msg, "row 0 group 0 slot 1: index 1 is used twice")) << msg;
  nm.values.pop_back();
  msg = thrown_message<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 4, opt(StorageFormat::kNm), nm); });
  EXPECT_TRUE(contains(msg, "3 values, expected 2 and 4")) << msg;
}

TEST(ChooseFormat, PicksTheSmallestAndListsOnlyFormatsThatFit) {
  std::mt19937 rng(5);
  const std::vector<int8_t> d = random_dense(rng, 16, 64, 0.8, -128, 127);
  SparseOptions o;
  o.block_rows = 3;  // does not tile 16 rows: no block CSR entry
  const FormatChoice c = choose_format(d.data(), 16, 64, o);
  int64_t smallest = INT64_MAX;
  bool has_block = false, has_nm = false;
  for (const auto& [f, b] : c.sizes) {
    if (f != StorageFormat::kDense) {
      SparseOptions fo = o;
      fo.format = f;
      EXPECT_EQ(b, SparseMatrix::from_dense(d.data(), 16, 64, fo).bytes()) << to_string(f);
    } else {
      EXPECT_EQ(b, 16 * 64);
    }
    smallest = std::min(smallest, b);
    has_block |= f == StorageFormat::kBlockCsr;
    has_nm |= f == StorageFormat::kNm;
  }
  EXPECT_EQ(c.best_bytes, smallest);
  EXPECT_FALSE(has_block);
  EXPECT_FALSE(has_nm);  // 80% random sparsity leaves some 4-groups with 3 or 4 nonzeros
  // A dense matrix stays dense.
  const std::vector<int8_t> full(64, 3);
  EXPECT_EQ(choose_format(full.data(), 8, 8, SparseOptions{}).best, StorageFormat::kDense);
}

// A 784-128-64-10 MLP with random normal weights, pruned by magnitude per tensor, quantized per
// output channel to int8: at 50% the bitmap beats CSR and CSR is larger than dense; at 90%
// CSR with uint8 relative indices is the smallest.
TEST(ChooseFormat, MlpWeightSetAt50And90Percent) {
  std::mt19937 rng(2026);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t dims[][2] = {{128, 784}, {64, 128}, {10, 64}};  // [out][in]
  std::vector<std::vector<float>> layers;
  for (const auto& dm : dims) {
    layers.emplace_back(static_cast<size_t>(dm[0] * dm[1]));
    for (float& w : layers.back()) w = normal(rng);
  }
  for (double sparsity : {0.5, 0.9}) {
    std::vector<Mask> masks;
    for (size_t l = 0; l < 3; ++l)
      masks.push_back(magnitude_mask({layers[l].data(), {dims[l][0], dims[l][1]}}, sparsity));
    int64_t total[6] = {0, 0, 0, 0, 0, 0};  // by StorageFormat
    for (size_t l = 0; l < 3; ++l) {
      const int64_t rows = dims[l][0], cols = dims[l][1];
      std::vector<int8_t> q(static_cast<size_t>(rows * cols));
      for (int64_t r = 0; r < rows; ++r) {
        float mx = 0.0f;
        for (int64_t c = 0; c < cols; ++c)
          mx = std::max(mx, std::fabs(layers[l][static_cast<size_t>(r * cols + c)]));
        for (int64_t c = 0; c < cols; ++c) {
          const size_t i = static_cast<size_t>(r * cols + c);
          q[i] = masks[l][i] ? static_cast<int8_t>(std::lround(layers[l][i] / mx * 127.0f))
                             : int8_t{0};
        }
      }
      const FormatChoice c = choose_format(q.data(), rows, cols, SparseOptions{});
      int64_t dense = 0, csr = 0, bitmap = 0;
      for (const auto& [f, b] : c.sizes) {
        total[static_cast<int>(f)] += b;
        if (f == StorageFormat::kDense) dense = b;
        if (f == StorageFormat::kCsrU8) csr = b;
        if (f == StorageFormat::kBitmap) bitmap = b;
      }
      if (sparsity == 0.5) {
        EXPECT_LT(bitmap, csr) << "layer " << l;
        EXPECT_GT(csr, dense) << "layer " << l;
        EXPECT_EQ(c.best, StorageFormat::kBitmap) << "layer " << l;
      } else if (l < 2) {
        // The 64x10 layer is too small: its 10 row counts tip it to the bitmap (144 vs 148 B).
        EXPECT_EQ(c.best, StorageFormat::kCsrU8) << "layer " << l;
      }
    }
    const int64_t dense = total[0], csr = total[1], bitmap = total[4];
    EXPECT_EQ(dense, 784 * 128 + 128 * 64 + 64 * 10);
    if (sparsity == 0.5) {
      EXPECT_LT(bitmap, csr);
      EXPECT_GT(csr, dense);
    } else {
      EXPECT_LT(csr, bitmap);
      EXPECT_LT(csr, total[2]);  // u16 indices
      EXPECT_LT(csr, dense / 4);
    }
  }
}

// End to end: 1x16 block pruning (the x86 kernels' tile) -> int8 per channel -> the chooser
// picks block CSR at its exact byte count -> the sparse kernel on every path equals the dense
// kernel on the same pruned weights and the dense formula written out here.
TEST(BlockCsr, PruneChooseAndRunEndToEnd) {
  std::mt19937 rng(404);
  const int64_t rows = 32, cols = 784;
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> wf(static_cast<size_t>(rows * cols));
  for (float& v : wf) v = normal(rng);
  const Mask mask = block_mask({wf.data(), {rows, cols}}, 1, 16, 0.9);
  std::vector<int8_t> q(wf.size());
  for (int64_t r = 0; r < rows; ++r) {
    float mx = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      mx = std::max(mx, std::fabs(wf[static_cast<size_t>(r * cols + c)]));
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      q[i] = mask[i] ? static_cast<int8_t>(std::lround(wf[i] / mx * 127.0f)) : int8_t{0};
    }
  }
  // round(0.9 * 32 * 49) = 1411 of 1568 blocks pruned: 157 kept.
  int64_t kept_blocks = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < cols / 16; ++b)
      kept_blocks += mask[static_cast<size_t>(r * cols + b * 16)];
  ASSERT_EQ(kept_blocks, 157);
  const FormatChoice choice = choose_format(q.data(), rows, cols, SparseOptions{});
  EXPECT_EQ(choice.best, StorageFormat::kBlockCsr);
  // (32 + 1) uint32 row pointers + 157 uint16 block columns + 157 * 16 values.
  EXPECT_EQ(choice.best_bytes, 33 * 4 + 157 * 2 + 157 * 16);
  SparseOptions o;
  o.format = StorageFormat::kBlockCsr;
  const SparseMatrix sm = SparseMatrix::from_dense(q.data(), rows, cols, o);
  EXPECT_EQ(sm.bytes(), choice.best_bytes);
  const rt::SparseMatrixS8 w = sm.view();
  ASSERT_EQ(rt::validate_sparse_s8(w), rt::Status::kOk);

  const int32_t batch = 3;
  std::uniform_int_distribution<int> i8(-128, 127);
  std::vector<int8_t> x(static_cast<size_t>(batch * cols));
  for (auto& v : x) v = static_cast<int8_t>(i8(rng));
  std::vector<int32_t> bias(static_cast<size_t>(rows)), mult(static_cast<size_t>(rows)),
      shift(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    bias[static_cast<size_t>(r)] = std::uniform_int_distribution<int32_t>(-5000, 5000)(rng);
    mult[static_cast<size_t>(r)] = std::uniform_int_distribution<int32_t>(1 << 30, INT32_MAX)(rng);
    shift[static_cast<size_t>(r)] = -9;
  }
  rt::FcParams p;
  p.input_offset = 17;
  p.output_offset = -3;
  rt::Requant rq;
  rq.multiplier = mult.data();
  rq.shift = shift.data();
  rq.per_channel = true;
  rt::FcDims dims{batch, static_cast<int32_t>(cols), static_cast<int32_t>(rows)};
  // Dense formula.
  std::vector<int8_t> expect(static_cast<size_t>(batch * rows));
  for (int32_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      int64_t acc = bias[static_cast<size_t>(r)];
      for (int64_t c = 0; c < cols; ++c)
        acc += (x[static_cast<size_t>(b * cols + c)] + p.input_offset) *
               q[static_cast<size_t>(r * cols + c)];
      int32_t y = rt::requantize(static_cast<int32_t>(acc), mult[static_cast<size_t>(r)],
                                 shift[static_cast<size_t>(r)], rq.rounding) +
                  p.output_offset;
      expect[static_cast<size_t>(b * rows + r)] = static_cast<int8_t>(std::clamp(y, -128, 127));
    }
  }
  rt::Context dctx;
  dctx.path = rt::Path::kReference;
  std::vector<int8_t> dense_out(expect.size());
  ASSERT_EQ(
      rt::fully_connected_s8(dctx, p, rq, dims, x.data(), q.data(), bias.data(), dense_out.data()),
      rt::Status::kOk);
  EXPECT_EQ(dense_out, expect);
  // The paths to run, from the CPU's own feature bits: a path the library wrongly reports as
  // unavailable fails below instead of being skipped.
  std::vector<rt::Path> paths = {rt::Path::kAuto, rt::Path::kReference, rt::Path::kSmlad};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") != 0) paths.push_back(rt::Path::kAvx2);
  if (__builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512bw") != 0 &&
      __builtin_cpu_supports("avx512vl") != 0 && __builtin_cpu_supports("avx512vnni") != 0)
    paths.push_back(rt::Path::kAvx512Vnni);
#endif
  for (rt::Path path : paths) {
    std::vector<uint8_t> scratch(
        static_cast<size_t>(rt::sparse_fully_connected_s8_scratch_size(dims, w, path)));
    rt::Context ctx;
    ctx.path = path;
    ctx.scratch = scratch.data();
    ctx.scratch_size = static_cast<int32_t>(scratch.size());
    std::vector<int8_t> out(expect.size(), 0);
    const rt::Status st =
        rt::sparse_fully_connected_s8(ctx, p, rq, dims, x.data(), w, bias.data(), out.data());
    ASSERT_EQ(st, rt::Status::kOk) << rt::path_name(path);
    EXPECT_EQ(out, expect) << rt::path_name(path);
  }
}

TEST(BlockCsr, OddWidthDoesNotTileAndIsRejected) {
  std::vector<int8_t> d(4 * 33, 1);
  SparseOptions o;
  o.format = StorageFormat::kBlockCsr;  // default 1x16
  const std::string msg =
      thrown_message<InvalidArgument>([&] { SparseMatrix::from_dense(d.data(), 4, 33, o); });
  EXPECT_TRUE(contains(msg, "block 1x16 does not tile the 4x33 matrix")) << msg;
  // The chooser lists no block CSR entry for it, and still lists the others.
  const FormatChoice c = choose_format(d.data(), 4, 33, SparseOptions{});
  for (const auto& [f, b] : c.sizes) EXPECT_NE(f, StorageFormat::kBlockCsr);
  EXPECT_EQ(c.best, StorageFormat::kDense);
}

// A column gap of exactly 256 needs one padding entry (delta 255, value 0) and then delta 1: a
// single uint8 delta of 256 would wrap to 0 and repeat the previous column.
TEST(SparseMatrix, CsrU8GapOfExactly256) {
  std::vector<int8_t> d(300, 0);
  d[0] = 5;
  d[256] = -3;
  d[299] = 7;  // gap 43
  const SparseMatrix m = SparseMatrix::from_dense(d.data(), 1, 300, opt(StorageFormat::kCsrU8));
  EXPECT_EQ(m.arrays().col_delta, (std::vector<uint8_t>{0, 255, 1, 43}));
  EXPECT_EQ(m.arrays().values, (std::vector<int8_t>{5, 0, -3, 7}));
  EXPECT_EQ(m.arrays().row_nnz, (std::vector<uint16_t>{4}));
  EXPECT_EQ(m.to_dense(), d);
  // The first nonzero 256 columns in: the gap counts from column 0.
  std::vector<int8_t> e(257, 0);
  e[256] = 1;
  const SparseMatrix n = SparseMatrix::from_dense(e.data(), 1, 257, opt(StorageFormat::kCsrU8));
  EXPECT_EQ(n.arrays().col_delta, (std::vector<uint8_t>{255, 1}));
  EXPECT_EQ(n.to_dense(), e);
}

// uint16 column indices reach column 65535: 65536 columns fit, 65537 do not.
TEST(SparseMatrix, CsrU16ColumnLimit) {
  std::vector<int8_t> d(65537, 0);
  d[65535] = 9;
  const SparseMatrix m = SparseMatrix::from_dense(d.data(), 1, 65536, opt(StorageFormat::kCsrU16));
  EXPECT_EQ(m.arrays().col_index, (std::vector<uint16_t>{65535}));
  EXPECT_EQ(m.to_dense(), std::vector<int8_t>(d.begin(), d.end() - 1));
  expect_error<InvalidArgument>(
      [&] { SparseMatrix::from_dense(d.data(), 1, 65537, opt(StorageFormat::kCsrU16)); },
      {"cols = 65537 exceeds 65536, the uint16 column index range"});
}

// A CSR row's entry count is a uint16: a full row of 65536 columns fits neither CSR format, and
// the chooser leaves both out rather than failing.
TEST(SparseMatrix, CsrRowEntryCountLimit) {
  std::vector<int8_t> full(65536, 3);
  for (StorageFormat f : {StorageFormat::kCsrU8, StorageFormat::kCsrU16})
    expect_error<InvalidArgument>([&] { SparseMatrix::from_dense(full.data(), 1, 65536, opt(f)); },
                                  {"row 0 has 65536 entries, more than the uint16 count allows"});
  full[0] = 0;  // 65535 entries: the limit itself fits
  EXPECT_EQ(SparseMatrix::from_dense(full.data(), 1, 65536, opt(StorageFormat::kCsrU16)).to_dense(),
            full);
  full[0] = 3;
  const FormatChoice c = choose_format(full.data(), 1, 65536, SparseOptions{});
  for (const auto& [f, bytes] : c.sizes)
    EXPECT_TRUE(f != StorageFormat::kCsrU8 && f != StorageFormat::kCsrU16)
        << to_string(f) << " " << bytes;
  EXPECT_EQ(c.best, StorageFormat::kDense);
}
TEST(SparseMatrix, CorruptBlockRowStartAndNmTailIndex) {
  // Block row pointers must start at 0: {1, 1, 2} would leave block 0 stored but never read.
  const SparseOptions b = block_opt(1, 2);
  SparseArrays blk;
  blk.block_row_ptr = {1, 1, 2};
  blk.block_col = {1, 3};
  blk.values = {0, 5, 0, -3};
  expect_error<FormatError>([&] { SparseMatrix::from_arrays(2, 10, b, blk); },
                            {"the first block row pointer is 1, not 0"});
  blk.block_row_ptr = {0, 2};  // a count wrong in itself is said as such
  expect_error<FormatError>([&] { SparseMatrix::from_arrays(2, 10, b, blk); },
                            {"2 block row pointers for 2 block rows (need 3)"});
  // 2:4 over 6 columns: the tail group holds columns 4 and 5 only, so its index 2 (column 6)
  // is outside it although 2 bits could hold up to 3. Slots 2 bits each, LSB first:
  // group 0 {0, 1}, tail {2, 0}.
  SparseArrays nm;
  nm.nm_index = {0x24};
  nm.values = {1, 2, 3, 0};
  expect_error<FormatError>([&] { SparseMatrix::from_arrays(1, 6, opt(StorageFormat::kNm), nm); },
                            {"row 0 group 1 slot 0: index 2 is outside the group of 2"});
  nm.nm_index = {0x14};  // tail {1, 0}: column 5
  EXPECT_EQ(SparseMatrix::from_arrays(1, 6, opt(StorageFormat::kNm), nm).to_dense(),
            (std::vector<int8_t>{1, 2, 0, 0, 0, 3}));
}

// 1 x 8 int8 with 7 nonzeros: dense 8 bytes, bitmap 1 + 7 = 8, CSR u8 2 + 7 + 7 = 16, CSR u16
// 2 + 14 + 7 = 23 (2:4 does not hold it, 1x16 blocks do not tile it). Dense wins the tie.
TEST(ChooseFormat, TiesGoToTheEarlierFormat) {
  const std::vector<int8_t> d{1, 2, 3, 0, 5, 6, 7, 8};
  const FormatChoice c = choose_format(d.data(), 1, 8, SparseOptions{});
  using F = StorageFormat;
  EXPECT_EQ(c.sizes, (std::vector<std::pair<F, int64_t>>{
                         {F::kDense, 8}, {F::kCsrU8, 16}, {F::kCsrU16, 23}, {F::kBitmap, 8}}));
  EXPECT_EQ(c.best, F::kDense);
  EXPECT_EQ(c.best_bytes, 8);
}

// Index and count widths: a row's entry count is a uint16 (65535 at most) and a block column
// index is a uint16 (65536 block columns at most); beyond them the values would wrap silently.
TEST(SparseMatrix, CountAndBlockColumnWidths) {
  const std::vector<int8_t> ones(65537, 1);
  EXPECT_EQ(
      SparseMatrix::from_dense(ones.data(), 1, 65535, opt(StorageFormat::kCsrU8)).arrays().row_nnz,
      (std::vector<uint16_t>{65535}));
  expect_error<InvalidArgument>(
      [&] { SparseMatrix::from_dense(ones.data(), 1, 65536, opt(StorageFormat::kCsrU8)); },
      {"row 0 has 65536 entries, more than the uint16 count allows"});
  const SparseOptions b = block_opt(1, 1);
  EXPECT_EQ(SparseMatrix::from_dense(ones.data(), 1, 65536, b).arrays().block_col.back(), 65535);
  expect_error<InvalidArgument>([&] { SparseMatrix::from_dense(ones.data(), 1, 65537, b); },
                                {"65537 block columns exceed the uint16 index range"});
}

TEST(SparseMatrix, CorruptInt4ValueAndBlockValueCount) {
  SparseArrays bm;
  bm.bitmap = {0x01};
  bm.values = {8};
  expect_error<FormatError>(
      [&] { SparseMatrix::from_arrays(1, 8, opt(StorageFormat::kBitmap, ValueType::kInt4), bm); },
      {"int4 value 8 at value index 0 is outside [-8, 7]"});
  bm.values = {-9};
  expect_error<FormatError>(
      [&] { SparseMatrix::from_arrays(1, 8, opt(StorageFormat::kBitmap, ValueType::kInt4), bm); },
      {"int4 value -9 at value index 0"});
  // Two 1x2 blocks need 4 values; 3 would leave the last block read past the end.
  const SparseOptions b = block_opt(1, 2);
  SparseArrays blk;
  blk.block_row_ptr = {0, 1, 2};
  blk.block_col = {1, 3};
  blk.values = {0, 5, 0};
  expect_error<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 10, b, blk); },
      {"2 blocks by row pointers but 2 block columns and 3 values (expected 4)"});
}

// A value type outside the enum (e.g. read from a corrupt header and cast) is named by number.
TEST(SparseMatrix, RejectsUnknownValueType) {
  const std::vector<int8_t> d{1, 0, 2, 0};
  const SparseOptions o = opt(StorageFormat::kCsrU8, static_cast<ValueType>(7));
  expect_error<InvalidArgument>([&] { SparseMatrix::from_dense(d.data(), 2, 2, o); },
                                {"SparseMatrix::from_dense", "unknown value type 7"});
  expect_error<InvalidArgument>([&] { SparseMatrix::from_arrays(2, 2, o, SparseArrays{}); },
                                {"SparseMatrix::from_arrays", "unknown value type 7"});
  expect_error<InvalidArgument>([&] { choose_format(d.data(), 2, 2, o); },
                                {"choose_format", "unknown value type 7"});
}

// CSR needs one row count per row; a bitmap needs ceil(cols / 8) bytes per row.
TEST(SparseMatrix, CorruptRowCountAndBitmapSizes) {
  SparseArrays csr;
  csr.row_nnz = {1};  // 3 rows
  csr.col_delta = {4};
  csr.values = {5};
  expect_error<FormatError>(
      [&] { SparseMatrix::from_arrays(3, 10, opt(StorageFormat::kCsrU8), csr); },
      {"csr-u8 matrix: 1 row counts for 3 rows"});
  csr.col_index = {4};
  expect_error<FormatError>(
      [&] { SparseMatrix::from_arrays(3, 10, opt(StorageFormat::kCsrU16), csr); },
      {"csr-u16 matrix: 1 row counts for 3 rows"});
  SparseArrays bm;
  bm.bitmap = {0x01, 0x00, 0x00};  // 2 rows of 10 columns: 2 bytes each
  bm.values = {5};
  expect_error<FormatError>(
      [&] { SparseMatrix::from_arrays(2, 10, opt(StorageFormat::kBitmap), bm); },
      {"bitmap matrix: bitmap has 3 bytes, expected 4"});
}

// Row-major index 5 of a 2 x 3 matrix is row 1, column 2.
TEST(ChooseFormat, RejectsInt4ValuesOutOfRange) {
  const std::vector<int8_t> d{1, 0, -8, 7, 0, -9};
  expect_error<InvalidArgument>(
      [&] { choose_format(d.data(), 2, 3, opt(StorageFormat::kCsrU8, ValueType::kInt4)); },
      {"choose_format: int4 value -9 at row 1, column 2 is outside [-8, 7]"});
}

// Options that no matrix could take are errors; a format that only cannot hold this matrix is
// left out of the list (TiesGoToTheEarlierFormat).
TEST(ChooseFormat, RejectsOptionsNoMatrixCouldTake) {
  const std::vector<int8_t> d{1, 0, 0, 0, 5, 0, 0, 8};
  SparseOptions o;
  o.nm_n = 0;
  expect_error<InvalidArgument>([&] { choose_format(d.data(), 1, 8, o); },
                                {"choose_format: N:M = 0:4 is invalid"});
  o = SparseOptions{};
  o.nm_n = 5;
  expect_error<InvalidArgument>([&] { choose_format(d.data(), 1, 8, o); },
                                {"choose_format: N:M = 5:4 is invalid"});
  o = SparseOptions{};
  o.block_rows = 0;
  expect_error<InvalidArgument>([&] { choose_format(d.data(), 1, 8, o); },
                                {"choose_format: block 0x16 is invalid"});
}

// The kernel view counts values in int32: a matrix storing more than 2^31 - 1 values is refused
// by view(), where the x86 bitmap body would otherwise read a truncated count as its bound. The
// matrix takes about 2.3 GB, so the test runs only when asked.
TEST(SparseMatrix, ViewRefusesMoreValuesThanInt32Counts) {
  const char* env = std::getenv("TINYQUANT_TEST_HUGE");
  if (env == nullptr || env[0] != '1') GTEST_SKIP() << "set TINYQUANT_TEST_HUGE=1 to run";
  const int64_t cols = 256, rows = (int64_t{1} << 23) + 1;  // 2^31 + 256 values
  SparseOptions o;
  o.format = StorageFormat::kBitmap;
  SparseArrays a;
  a.bitmap.assign(static_cast<size_t>(rows * cols / 8), 0xFF);
  a.values.assign(static_cast<size_t>(rows * cols), 1);
  const SparseMatrix m = SparseMatrix::from_arrays(rows, cols, o, std::move(a));
  expect_error<InvalidArgument>([&] { (void)m.view(); },
                                {"SparseMatrix::view: bitmap matrix 8388609x256 stores "
                                 "2147483904 values"});
}
