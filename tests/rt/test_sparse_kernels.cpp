// Sparse int8 fully-connected: every format x every runnable path against the dense formula
// written out below with plain loops on the same pruned weights (zeros put back).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"
#include "tinyquant/sparse.hpp"

using namespace tinyquant;
using rt::Path;
using rt::Status;

namespace {

struct Case {
  int32_t batch = 1, k = 1, n = 1;
  rt::FcParams params;
  bool per_channel = false;
  rt::Rounding rounding = rt::Rounding::kDouble;
  std::vector<int8_t> input, weights;  // weights dense [n][k], pruned entries 0
  std::vector<int32_t> bias, multiplier, shift;
  bool with_bias = true;
};

// The dense kernel's definition, computed directly.
std::vector<int8_t> dense_oracle(const Case& c) {
  std::vector<int8_t> out(static_cast<size_t>(c.batch * c.n));
  for (int32_t b = 0; b < c.batch; ++b) {
    for (int32_t o = 0; o < c.n; ++o) {
      uint32_t acc = c.with_bias ? static_cast<uint32_t>(c.bias[static_cast<size_t>(o)]) : 0u;
      for (int32_t kk = 0; kk < c.k; ++kk) {
        const int32_t x = c.input[static_cast<size_t>(b * c.k + kk)] + c.params.input_offset;
        const int32_t w = c.weights[static_cast<size_t>(o * c.k + kk)] + c.params.filter_offset;
        acc += static_cast<uint32_t>(x * w);
      }
      const size_t ch = c.per_channel ? static_cast<size_t>(o) : 0;
      int32_t r =
          rt::requantize(static_cast<int32_t>(acc), c.multiplier[ch], c.shift[ch], c.rounding);
      r = static_cast<int32_t>(static_cast<uint32_t>(r) +
                               static_cast<uint32_t>(c.params.output_offset));
      if (r < c.params.act_min) r = c.params.act_min;
      if (r > c.params.act_max) r = c.params.act_max;
      out[static_cast<size_t>(b * c.n + o)] = static_cast<int8_t>(r);
    }
  }
  return out;
}

Case random_case(std::mt19937& rng, int32_t batch, int32_t k, int32_t n, double sparsity,
                 bool extreme) {
  Case c;
  c.batch = batch;
  c.k = k;
  c.n = n;
  std::uniform_int_distribution<int> i8(-128, 127);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  c.input.resize(static_cast<size_t>(batch * k));
  for (auto& v : c.input) v = static_cast<int8_t>(i8(rng));
  c.weights.resize(static_cast<size_t>(n * k));
  for (auto& v : c.weights) v = u(rng) < sparsity ? int8_t{0} : static_cast<int8_t>(i8(rng));
  if (extreme) {
    c.params.input_offset = (rng() & 1) ? 128 : -127;
    c.params.filter_offset = (rng() & 1) ? 128 : -127;
    c.params.output_offset = (rng() & 1) ? 127 : -128;
  } else {
    c.params.input_offset = std::uniform_int_distribution<int>(-127, 128)(rng);
    c.params.filter_offset =
        (rng() % 3 == 0) ? 0 : std::uniform_int_distribution<int>(-20, 20)(rng);
    c.params.output_offset = std::uniform_int_distribution<int>(-128, 127)(rng);
  }
  c.params.act_min = std::uniform_int_distribution<int>(-128, -20)(rng);
  c.params.act_max = std::uniform_int_distribution<int>(20, 127)(rng);
  c.per_channel = (rng() & 1) != 0;
  c.rounding = (rng() & 1) ? rt::Rounding::kSingle : rt::Rounding::kDouble;
  c.with_bias = (rng() % 4) != 0;
  c.bias.resize(static_cast<size_t>(n));
  for (auto& v : c.bias) v = std::uniform_int_distribution<int32_t>(-200000, 200000)(rng);
  const size_t chans = c.per_channel ? static_cast<size_t>(n) : 1;
  for (size_t i = 0; i < chans; ++i) {
    c.multiplier.push_back(std::uniform_int_distribution<int32_t>(1 << 30, INT32_MAX)(rng));
    c.shift.push_back(std::uniform_int_distribution<int32_t>(-18, 1)(rng));
  }
  return c;
}

bool vnni_supported() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512bw") != 0 &&
         __builtin_cpu_supports("avx512vl") != 0 && __builtin_cpu_supports("avx512vnni") != 0;
#else
  return false;
#endif
}

std::vector<Path> runnable_paths() {
  std::vector<Path> paths = {Path::kAuto, Path::kReference, Path::kSmlad};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") != 0) paths.push_back(Path::kAvx2);
#endif
  if (vnni_supported()) paths.push_back(Path::kAvx512Vnni);
  return paths;
}

Status run(const Case& c, const rt::SparseMatrixS8& w, Path path, std::vector<int8_t>* out) {
  rt::FcDims dims;
  dims.batch = c.batch;
  dims.in_features = c.k;
  dims.out_features = c.n;
  std::vector<uint8_t> scratch(
      static_cast<size_t>(rt::sparse_fully_connected_s8_scratch_size(dims, w, path)));
  rt::Context ctx;
  ctx.scratch = scratch.empty() ? nullptr : scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  ctx.path = path;
  rt::Requant rq;
  rq.multiplier = c.multiplier.data();
  rq.shift = c.shift.data();
  rq.per_channel = c.per_channel;
  rq.rounding = c.rounding;
  out->assign(static_cast<size_t>(c.batch * c.n), int8_t{-99});
  return rt::sparse_fully_connected_s8(ctx, c.params, rq, dims, c.input.data(), w,
                                       c.with_bias ? c.bias.data() : nullptr, out->data());
}

// Keeps at most n nonzeros per group of m along each row (the first ones met).
void make_nm(Case& c, int n, int m) {
  for (int32_t o = 0; o < c.n; ++o) {
    for (int32_t g = 0; g < c.k; g += m) {
      int kept = 0;
      for (int32_t j = g; j < std::min(c.k, g + m); ++j) {
        int8_t& v = c.weights[static_cast<size_t>(o * c.k + j)];
        if (v != 0 && ++kept > n) v = 0;
      }
    }
  }
}

void check_all_paths(const Case& c, const SparseOptions& opt, const std::string& what) {
  const SparseMatrix sm = SparseMatrix::from_dense(c.weights.data(), c.n, c.k, opt);
  const rt::SparseMatrixS8 w = sm.view();
  ASSERT_EQ(rt::validate_sparse_s8(w), Status::kOk) << what;
  const std::vector<int8_t> expect = dense_oracle(c);
  for (Path p : runnable_paths()) {
    std::vector<int8_t> got;
    ASSERT_EQ(run(c, w, p, &got), Status::kOk) << what << " path " << rt::path_name(p);
    ASSERT_EQ(got, expect) << what << " path " << rt::path_name(p);
  }
}

// Zeroes whole br x bc blocks with probability `sparsity` (kept blocks keep their random
// values, zeros included), so the block format's sparsity is the requested one.
void make_blocks(Case& c, int32_t br, int32_t bc, double sparsity, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int32_t r = 0; r < c.n; r += br) {
    for (int32_t k = 0; k < c.k; k += bc) {
      if (u(rng) >= sparsity) continue;
      for (int32_t i = r; i < std::min(c.n, r + br); ++i)
        for (int32_t j = k; j < std::min(c.k, k + bc); ++j)
          c.weights[static_cast<size_t>(i * c.k + j)] = 0;
    }
  }
}

SparseOptions block_opt(int32_t br, int32_t bc) {
  SparseOptions o;
  o.format = StorageFormat::kBlockCsr;
  o.block_rows = br;
  o.block_cols = bc;
  return o;
}

SparseOptions fmt_opt(StorageFormat f, int n = 2, int m = 4) {
  SparseOptions o;
  o.format = f;
  o.nm_n = n;
  o.nm_m = m;
  return o;
}

}  // namespace

TEST(SparseFcS8, EveryFormatAndPathMatchesDenseFormula) {
  std::mt19937 rng(1234);
  // Batches 1-9 and 13: the bitmap bodies take batch rows 4, 2 and 1 at a time (6 = 4 + 2,
  // 7 = 4 + 2 + 1, 8 = 4 + 4, 9 = 4 + 4 + 1), the AVX2 column-list body (CSR, N:M) 8 at a time
  // while more than 4 are left, then the rest as 4 (9 = 8 + 1, 13 = 8 + 5 in a second 8);
  // with and without a column tail (columns % 8) and a tail of rows.
  const int32_t shapes[][3] = {{1, 1, 1},    {1, 7, 5},    {3, 33, 17}, {2, 64, 8},   {5, 300, 9},
                               {1, 784, 12}, {4, 129, 31}, {9, 17, 3},  {6, 200, 13}, {8, 784, 12},
                               {7, 129, 6},  {9, 300, 13}, {13, 101, 7}};
  const double sparsities[] = {0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99};
  int cases = 0;
  for (const auto& s : shapes) {
    for (double sp : sparsities) {
      for (bool extreme : {false, true}) {
        const Case c = random_case(rng, s[0], s[1], s[2], sp, extreme);
        const std::string what = "batch " + std::to_string(s[0]) + " k " + std::to_string(s[1]) +
                                 " n " + std::to_string(s[2]) + " sparsity " + std::to_string(sp);
        check_all_paths(c, fmt_opt(StorageFormat::kCsrU8), what + " csr-u8");
        check_all_paths(c, fmt_opt(StorageFormat::kCsrU16), what + " csr-u16");
        check_all_paths(c, fmt_opt(StorageFormat::kBitmap), what + " bitmap");
        // 2:4, 1:4, 1:2 and 2:16 take the AVX2 body's whole-byte index table (4, 4, 8 and 2
        // slots per byte), the others its slot-by-slot decoder.
        for (auto nm : {std::pair{2, 4}, std::pair{1, 4}, std::pair{2, 8}, std::pair{4, 8},
                        std::pair{1, 1}, std::pair{3, 16}, std::pair{1, 2}, std::pair{2, 16}}) {
          Case cn = c;
          make_nm(cn, nm.first, nm.second);
          check_all_paths(
              cn, fmt_opt(StorageFormat::kNm, nm.first, nm.second),
              what + " nm " + std::to_string(nm.first) + ":" + std::to_string(nm.second));
        }
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 13 * 7 * 2);
}

TEST(SparseFcS8, EmptyRowsAllZeroAndLongGaps) {
  std::mt19937 rng(7);
  // All-zero matrix: only bias + filter_offset * sum(x + io) remains.
  Case zero = random_case(rng, 3, 45, 6, 1.0, false);
  zero.params.filter_offset = 77;
  for (auto f : {StorageFormat::kCsrU8, StorageFormat::kCsrU16, StorageFormat::kBitmap})
    check_all_paths(zero, fmt_opt(f), std::string("all zero ") + to_string(f));
  check_all_paths(zero, fmt_opt(StorageFormat::kNm, 2, 4), "all zero nm");
  // Empty rows between full ones, and gaps > 255 that need padding entries in CSR u8.
  Case gaps = random_case(rng, 2, 1000, 5, 1.0, true);
  gaps.weights[0 * 1000 + 999] = -128;  // row 0: one entry at the far end
  for (int j = 0; j < 1000; ++j) gaps.weights[static_cast<size_t>(2 * 1000 + j)] = 1;  // full
  gaps.weights[4 * 1000 + 0] = 127;  // row 4: column 0 and 510, 765
  gaps.weights[4 * 1000 + 510] = -5;
  gaps.weights[4 * 1000 + 765] = 9;
  const SparseMatrix sm =
      SparseMatrix::from_dense(gaps.weights.data(), 5, 1000, fmt_opt(StorageFormat::kCsrU8));
  // row 0: 999 = 255 * 3 + 234 -> 3 padding + 1; row 4: 0, 510 = 255 + 255 (1 pad), 765: 4 total.
  EXPECT_EQ(sm.arrays().row_nnz[0], 4);
  EXPECT_EQ(sm.arrays().row_nnz[1], 0);
  EXPECT_EQ(sm.arrays().row_nnz[4], 4);
  for (auto f : {StorageFormat::kCsrU8, StorageFormat::kCsrU16, StorageFormat::kBitmap})
    check_all_paths(gaps, fmt_opt(f), std::string("gaps ") + to_string(f));
  // Gaps of more than 8 * 255 columns at batch 9 (a group of 8 batch rows, then 1): a CSR u8 row
  // of 10 padding entries in a row, decoded 8 deltas at a time, then its last entry.
  Case wide = random_case(rng, 9, 2600, 3, 1.0, false);
  wide.weights[0 * 2600 + 0] = 3;
  wide.weights[0 * 2600 + 2599] = -7;  // 2599 = 10 * 255 + 49
  wide.weights[2 * 2600 + 2100] = 11;  // 2100 = 8 * 255 + 60
  const SparseMatrix wide_u8 =
      SparseMatrix::from_dense(wide.weights.data(), 3, 2600, fmt_opt(StorageFormat::kCsrU8));
  EXPECT_EQ(wide_u8.arrays().row_nnz[0], 12);
  EXPECT_EQ(wide_u8.arrays().row_nnz[2], 9);
  for (auto f : {StorageFormat::kCsrU8, StorageFormat::kCsrU16})
    check_all_paths(wide, fmt_opt(f), std::string("wide gaps ") + to_string(f));
}

TEST(SparseFcS8, RejectsBadArguments) {
  std::mt19937 rng(3);
  Case c = random_case(rng, 2, 20, 4, 0.5, false);
  SparseMatrix sm =
      SparseMatrix::from_dense(c.weights.data(), 4, 20, fmt_opt(StorageFormat::kCsrU16));
  rt::SparseMatrixS8 w = sm.view();
  std::vector<int8_t> out;
  // Mismatched dims.
  rt::SparseMatrixS8 bad = w;
  bad.cols = 21;
  EXPECT_EQ(run(c, bad, Path::kReference, &out), Status::kBadDimension);
  // Wider than the index range: an N:M row's slot and index-byte counts would overflow int32.
  {
    rt::SparseMatrixS8 wide = w;
    wide.format = rt::SparseFormat::kNm;
    wide.nm_n = 2;
    wide.nm_m = 4;
    wide.cols = rt::kSparseMaxCols + 1;
    const rt::FcDims dims{1, wide.cols, wide.rows};
    rt::Requant rq;
    rq.multiplier = c.multiplier.data();
    rq.shift = c.shift.data();
    rq.per_channel = c.per_channel;
    int8_t y[4] = {-99, -99, -99, -99};
    EXPECT_EQ(rt::sparse_fully_connected_s8(rt::Context{}, c.params, rq, dims, c.input.data(), wide,
                                            nullptr, y),
              Status::kBadDimension);
    // The size query asks nothing for a layer the kernel refuses, without computing sizes from
    // it (an N:M group of 0 columns would divide by zero, a width past the limit overflow).
    rt::SparseMatrixS8 no_group = w;
    no_group.format = rt::SparseFormat::kNm;
    no_group.nm_n = 0;
    no_group.nm_m = 0;
    const rt::FcDims small{2, no_group.cols, no_group.rows};
    for (Path p : runnable_paths()) {
      EXPECT_EQ(rt::sparse_fully_connected_s8_scratch_size(dims, wide, p), 0) << rt::path_name(p);
      EXPECT_EQ(rt::sparse_fully_connected_s8_scratch_size(small, no_group, p), 0)
          << rt::path_name(p);
      EXPECT_EQ(rt::sparse_fully_connected_s8_scratch_size(rt::FcDims{0, 20, 4}, w, p), 0)
          << rt::path_name(p);
    }
    EXPECT_EQ(rt::nm_groups(rt::kSparseMaxCols, 4), (rt::kSparseMaxCols + 3) / 4);
    EXPECT_EQ(rt::nm_row_index_bytes(rt::kSparseMaxCols, 4, 4),
              static_cast<int32_t>((int64_t{(rt::kSparseMaxCols + 3) / 4} * 4 * 2 + 7) / 8));
  }
  // Row counts that do not add up to the value count.
  bad = w;
  bad.value_count += 1;
  EXPECT_EQ(run(c, bad, Path::kReference, &out), Status::kBadSparseData);
  EXPECT_EQ(out, std::vector<int8_t>(8, int8_t{-99}));  // output untouched
  // Row counts that add up but put more than `cols` entries in one row: the x86 path decodes a
  // row into scratch sized for `cols` entries, so every path refuses them.
  {
    for (StorageFormat f : {StorageFormat::kCsrU16, StorageFormat::kCsrU8}) {
      const SparseMatrix full =
          SparseMatrix::from_dense(std::vector<int8_t>(80, 1).data(), 4, 20, fmt_opt(f));
      ASSERT_EQ(full.arrays().row_nnz, (std::vector<uint16_t>{20, 20, 20, 20}));
      for (const std::vector<uint16_t>& counts :
           {std::vector<uint16_t>{21, 19, 20, 20}, std::vector<uint16_t>{40, 0, 40, 0},
            std::vector<uint16_t>{0, 0, 0, 80}}) {
        rt::SparseMatrixS8 skewed = full.view();
        skewed.row_nnz = counts.data();
        for (Path p : runnable_paths()) {
          EXPECT_EQ(run(c, skewed, p, &out), Status::kBadSparseData)
              << to_string(f) << " " << rt::path_name(p);
          EXPECT_EQ(out, std::vector<int8_t>(8, int8_t{-99})) << rt::path_name(p);
        }
        EXPECT_EQ(rt::validate_sparse_s8(skewed), Status::kBadSparseData);
      }
    }
  }
  // Offsets and activation range.
  Case off = c;
  off.params.input_offset = 129;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadOffset);
  off = c;
  off.params.filter_offset = -128;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadOffset);
  // The first value past each end of kernels.hpp's ranges: input and filter offsets in
  // [-127, 128], output offset in [-128, 127].
  for (const auto& [io, fo, oo] : {std::tuple{-128, 0, 0}, std::tuple{0, 129, 0},
                                   std::tuple{0, 0, 128}, std::tuple{0, 0, -129}}) {
    off = c;
    off.params.input_offset = io;
    off.params.filter_offset = fo;
    off.params.output_offset = oo;
    EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadOffset)
        << io << " " << fo << " " << oo;
  }
  off = c;
  off.params.act_min = -129;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadActivationRange);
  off = c;
  off.params.act_max = 128;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadActivationRange);
  off = c;
  off.params.act_min = 10;
  off.params.act_max = 9;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadActivationRange);
  off = c;
  off.shift[0] = 31;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadShift);
  off = c;
  off.multiplier[0] = -1;
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadMultiplier);
  off = c;
  off.rounding = static_cast<tinyquant::rt::Rounding>(7);  // as the dense kernels refuse it
  EXPECT_EQ(run(off, w, Path::kReference, &out), Status::kBadArgument);
  // Paths the sparse kernels do not have.
  EXPECT_EQ(run(c, w, Path::kNeon, &out), Status::kPathUnavailable);
  EXPECT_EQ(run(c, w, Path::kAvx512Vnni, &out),
            vnni_supported() ? Status::kOk : Status::kPathUnavailable);
  // N:M parameters out of range.
  SparseMatrix nm = SparseMatrix::from_dense(std::vector<int8_t>(80, 0).data(), 4, 20,
                                             fmt_opt(StorageFormat::kNm));
  bad = nm.view();
  bad.nm_n = 5;
  EXPECT_EQ(run(c, bad, Path::kReference, &out), Status::kBadArgument);
  bad.nm_n = 2;
  bad.value_count -= 1;
  EXPECT_EQ(run(c, bad, Path::kReference, &out), Status::kBadSparseData);
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") != 0) {
    rt::FcDims dims{2, 20, 4};
    rt::Context ctx;
    ctx.path = Path::kAvx2;
    rt::Requant rq;
    rq.multiplier = c.multiplier.data();
    rq.shift = c.shift.data();
    out.assign(8, 0);
    EXPECT_EQ(rt::sparse_fully_connected_s8(ctx, c.params, rq, dims, c.input.data(), w, nullptr,
                                            out.data()),
              Status::kScratchTooSmall);
  }
#endif
}

namespace {

// 3 x 10, nonzero at (0, 2), (0, 7) and (2, 9): the matrix the index-corruption tests edit.
std::vector<int8_t> three_sparse_rows() {
  std::vector<int8_t> dense(3 * 10, 0);
  dense[0 * 10 + 2] = 5;
  dense[0 * 10 + 7] = -3;
  dense[2 * 10 + 9] = 1;
  return dense;
}

}  // namespace

TEST(ValidateSparseS8, FindsCorruptIndexData) {
  const std::vector<int8_t> dense = three_sparse_rows();
  const SparseMatrix u8 =
      SparseMatrix::from_dense(dense.data(), 3, 10, fmt_opt(StorageFormat::kCsrU8));
  std::vector<uint8_t> delta = u8.arrays().col_delta;  // {2, 5, 9}
  ASSERT_EQ(delta, (std::vector<uint8_t>{2, 5, 9}));
  rt::SparseMatrixS8 w = u8.view();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  delta[2] = 10;  // column 10 of 10
  w.col_delta = delta.data();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);
  delta = {2, 0, 9};  // repeats column 2
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);

  const SparseMatrix u16 =
      SparseMatrix::from_dense(dense.data(), 3, 10, fmt_opt(StorageFormat::kCsrU16));
  std::vector<uint16_t> idx = u16.arrays().col_index;  // {2, 7, 9}
  w = u16.view();
  w.col_index = idx.data();
  idx[1] = 1;  // not increasing
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);

  const SparseMatrix bm =
      SparseMatrix::from_dense(dense.data(), 3, 10, fmt_opt(StorageFormat::kBitmap));
  std::vector<uint8_t> bits = bm.arrays().bitmap;
  w = bm.view();
  w.bitmap = bits.data();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  bits[1] |= 0x80;  // bit past column 9 in row 0
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);
  bits = bm.arrays().bitmap;
  bits[2] |= 0x01;  // one more set bit than values
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);

  std::vector<int8_t> nmd(2 * 6, 0);
  nmd[1] = 4;
  nmd[3] = 6;
  nmd[5] = 7;  // tail group of 2 (columns 4, 5)
  const SparseMatrix nm = SparseMatrix::from_dense(nmd.data(), 2, 6, fmt_opt(StorageFormat::kNm));
  std::vector<uint8_t> ni = nm.arrays().nm_index;
  w = nm.view();
  w.nm_index = ni.data();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  // Row 0 slots: group 0 (1, 3), group 1 (1, 0): slot 2 holds index 1 at bits 4..5; make it 3,
  // outside the tail group of 2.
  ni[0] = static_cast<uint8_t>(ni[0] | (3u << 4));
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);
  ni = nm.arrays().nm_index;
  ni[0] = static_cast<uint8_t>((ni[0] & ~0x0Cu) | (1u << 2));  // slot 1 -> index 1, twice
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);
  w.nm_index = nullptr;
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kNullPointer);
}

// Two nonzero slots of one N:M group on the same index are rejected whatever the group size,
// indices past 64 included (m goes up to 256); a zero slot may repeat an index (padding).
TEST(ValidateSparseS8, NmIndexUsedTwiceInWideGroups) {
  for (const int32_t m : {65, 128, 256}) {
    const int32_t bits = rt::nm_index_bits(m);
    for (const uint32_t index : {0u, 31u, 63u, 64u, 100u, static_cast<uint32_t>(m - 1)}) {
      if (index >= static_cast<uint32_t>(m)) continue;
      // One row, one group of m columns, two slots: both on `index`.
      const uint32_t packed = index | (index << bits);
      const uint8_t nm_index[3] = {static_cast<uint8_t>(packed), static_cast<uint8_t>(packed >> 8),
                                   static_cast<uint8_t>(packed >> 16)};
      int8_t values[2] = {3, 5};
      rt::SparseMatrixS8 w;
      w.format = rt::SparseFormat::kNm;
      w.rows = 1;
      w.cols = m;
      w.values = values;
      w.value_count = 2;
      w.nm_index = nm_index;
      w.nm_n = 2;
      w.nm_m = m;
      ASSERT_LE(rt::nm_row_index_bytes(m, 2, m), 3);
      EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData)
          << "m " << m << " index " << index;
      values[1] = 0;
      EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk) << "m " << m << " index " << index;
    }
  }
}

// Indices one past the last column (or the last column of a tail group) are the first invalid
// ones: each format's check must reject exactly there.
TEST(ValidateSparseS8, RejectsTheFirstColumnPastTheEnd) {
  const std::vector<int8_t> dense = three_sparse_rows();
  const SparseMatrix u16 =
      SparseMatrix::from_dense(dense.data(), 3, 10, fmt_opt(StorageFormat::kCsrU16));
  std::vector<uint16_t> idx = u16.arrays().col_index;
  ASSERT_EQ(idx, (std::vector<uint16_t>{2, 7, 9}));
  rt::SparseMatrixS8 w = u16.view();
  w.col_index = idx.data();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  idx[2] = 10;  // column 10 of 10
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);

  const SparseMatrix bm =
      SparseMatrix::from_dense(dense.data(), 3, 10, fmt_opt(StorageFormat::kBitmap));
  std::vector<uint8_t> bits = bm.arrays().bitmap;  // 2 bytes per row
  w = bm.view();
  w.bitmap = bits.data();
  bits[0] = static_cast<uint8_t>(bits[0] & ~0x80u);  // column 7 off ...
  bits[1] |= 0x04;                                   // ... column 10 on: the count still agrees
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);

  // N:M 1:3 over 7 columns: groups of 3, 3 and a tail of 1, two index bits per slot.
  std::vector<int8_t> nmd(7, 0);
  nmd[1] = 4;
  nmd[5] = 6;
  nmd[6] = 7;
  const SparseMatrix nm =
      SparseMatrix::from_dense(nmd.data(), 1, 7, fmt_opt(StorageFormat::kNm, 1, 3));
  std::vector<uint8_t> ni = nm.arrays().nm_index;
  ASSERT_EQ(ni, (std::vector<uint8_t>{1 | (2 << 2) | (0 << 4)}));
  w = nm.view();
  w.nm_index = ni.data();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  ni[0] = static_cast<uint8_t>(ni[0] | (1u << 4));  // tail slot -> index 1 of a 1-column group
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);

  // Block CSR 1x4 over 2 x 8: block columns 0 and 1; the last block of the last block row moved
  // to block column 2, one past the end (and still increasing).
  std::vector<int8_t> bd(2 * 8, 0);
  bd[0 * 8 + 1] = 3;
  bd[1 * 8 + 6] = -2;
  const SparseMatrix blk = SparseMatrix::from_dense(bd.data(), 2, 8, block_opt(1, 4));
  std::vector<uint16_t> bc = blk.arrays().block_col;
  ASSERT_EQ(bc, (std::vector<uint16_t>{0, 1}));
  w = blk.view();
  w.block_col = bc.data();
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  bc[1] = 2;
  EXPECT_EQ(rt::validate_sparse_s8(w), Status::kBadSparseData);
}

// N:M index width is ceil(log2(m)) bits; every other test uses powers of two, where an
// off-by-one in that width does not show. Checked against the bit length of m - 1, and run
// end to end for group sizes that are not powers of two (tail groups included).
TEST(SparseFcS8, NmGroupSizesThatAreNotPowersOfTwo) {
  for (int32_t m = 1; m <= 256; ++m) {
    int32_t bits = 0;
    while (((m - 1) >> bits) != 0) ++bits;
    EXPECT_EQ(rt::nm_index_bits(m), bits) << "m " << m;
  }
  std::mt19937 rng(77);
  for (const auto& [n, m] : {std::pair{1, 3}, std::pair{2, 3}, std::pair{2, 5}, std::pair{3, 6},
                             std::pair{1, 7}, std::pair{5, 9}, std::pair{4, 12}}) {
    for (int32_t k : {m, 2 * m + 1, 5 * m - 1, 64}) {
      Case c = random_case(rng, 2, k, 5, 0.2, (k & 1) != 0);
      make_nm(c, n, m);
      check_all_paths(
          c, fmt_opt(StorageFormat::kNm, n, m),
          "nm " + std::to_string(n) + ":" + std::to_string(m) + " k " + std::to_string(k));
    }
  }
}

// N:4 with every N: the smlad path has its own loops for 1:4 and 2:4 and must send 3:4 and 4:4
// to its general decoder (every other test uses N <= 2 with M = 4).
TEST(SparseFcS8, NmFourWithEveryN) {
  std::mt19937 rng(91);
  for (int n = 1; n <= 4; ++n) {
    for (int32_t k : {4, 7, 16, 33}) {
      Case c = random_case(rng, 2, k, 6, 0.1, (k & 1) != 0);
      make_nm(c, n, 4);
      check_all_paths(c, fmt_opt(StorageFormat::kNm, n, 4),
                      "nm " + std::to_string(n) + ":4 k " + std::to_string(k));
    }
  }
}

// Block CSR: the SIMD tiles (1x16, 4x16), the word-load smlad tiles (bc % 4 == 0, <= 8 rows)
// and shapes that take the scalar loops, over random block sparsity 0..100%, batches 1..7 and 9,
// random and extreme offsets, both roundings, per-tensor and per-channel requantization.
TEST(SparseFcS8, BlockCsrEveryShapeAndPathMatchesDenseFormula) {
  std::mt19937 rng(99);
  const int32_t shapes[][2] = {{1, 16}, {4, 16}, {2, 8}, {1, 4}, {8, 16},
                               {16, 4}, {3, 5},  {1, 1}, {4, 4}, {1, 32}};
  // {batch, block columns, block rows}: K and N are multiples of the block shape. The AVX-512
  // body takes batch rows 4, 2 and 1 at a time (6 = 4 + 2, 7 = 4 + 2 + 1, 9 = 4 + 4 + 1) and
  // block rows 4 at a time (5, 6, 9: a second step of 1, 2, 1).
  const int32_t dims[][3] = {{1, 4, 4}, {3, 6, 2}, {5, 10, 3}, {2, 49, 1},
                             {4, 1, 7}, {6, 3, 5}, {7, 2, 9},  {9, 5, 6}};
  const double sparsities[] = {0.0, 0.3, 0.7, 0.9, 0.97, 1.0};
  int cases = 0;
  for (const auto& sh : shapes) {
    for (const auto& dm : dims) {
      for (double sp : sparsities) {
        for (bool extreme : {false, true}) {
          Case c = random_case(rng, dm[0], dm[1] * sh[1], dm[2] * sh[0], 0.2, extreme);
          make_blocks(c, sh[0], sh[1], sp, rng);
          const std::string what = "block " + std::to_string(sh[0]) + "x" + std::to_string(sh[1]) +
                                   " batch " + std::to_string(c.batch) + " k " +
                                   std::to_string(c.k) + " n " + std::to_string(c.n) +
                                   " sparsity " + std::to_string(sp) + (extreme ? " extreme" : "");
          check_all_paths(c, block_opt(sh[0], sh[1]), what);
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 10 * 8 * 6 * 2);
}

// Odd K: blocks must tile, so 16-column blocks do not fit K = 33 (the toolkit refuses to build
// them, the kernel refuses a view that claims them); 1x3 and 1x1 blocks tile it and run.
TEST(SparseFcS8, BlockCsrOddK) {
  std::mt19937 rng(17);
  Case c = random_case(rng, 3, 33, 8, 0.0, true);
  make_blocks(c, 1, 3, 0.6, rng);
  check_all_paths(c, block_opt(1, 3), "1x3 k 33");
  check_all_paths(c, block_opt(1, 1), "1x1 k 33");
  check_all_paths(c, block_opt(8, 1), "8x1 k 33");
  EXPECT_THROW(SparseMatrix::from_dense(c.weights.data(), 8, 33, block_opt(1, 16)),
               InvalidArgument);
  // A 1x3 view relabelled as 1x11 blocks still tiles 33 but the counts no longer match.
  const SparseMatrix sm = SparseMatrix::from_dense(c.weights.data(), 8, 33, block_opt(1, 3));
  rt::SparseMatrixS8 w = sm.view();
  std::vector<int8_t> out;
  for (Path p : runnable_paths()) {
    rt::SparseMatrixS8 bad = w;
    bad.block_cols = 16;  // 33 % 16 != 0
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadDimension) << rt::path_name(p);
    bad = w;
    bad.block_rows = 3;  // 8 % 3 != 0
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadDimension) << rt::path_name(p);
    bad = w;
    bad.block_cols = 11;
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadSparseData) << rt::path_name(p);
    EXPECT_EQ(out, std::vector<int8_t>(3 * 8, int8_t{-99}));  // output untouched
  }
}

TEST(SparseFcS8, BlockCsrRejectsCorruptBlockData) {
  std::mt19937 rng(23);
  Case c = random_case(rng, 2, 64, 8, 0.0, false);
  make_blocks(c, 4, 16, 0.5, rng);
  c.weights[0] = 5;             // block (0, 0) kept
  c.weights[4 * 64 + 63] = -7;  // block (1, 3) kept
  c.weights[4 * 64 + 16] = 0;   // (no effect on block presence beyond the random pattern)
  const SparseMatrix sm = SparseMatrix::from_dense(c.weights.data(), 8, 64, block_opt(4, 16));
  const rt::SparseMatrixS8 w = sm.view();
  ASSERT_EQ(rt::validate_sparse_s8(w), Status::kOk);
  std::vector<uint32_t> ptr = sm.arrays().block_row_ptr;
  std::vector<uint16_t> col = sm.arrays().block_col;
  ASSERT_EQ(ptr.size(), 3u);
  ASSERT_GE(ptr[1], 1u);
  ASSERT_GE(ptr[2], ptr[1] + 1);
  std::vector<int8_t> out;
  for (Path p : runnable_paths()) {
    const std::string where = rt::path_name(p);
    rt::SparseMatrixS8 bad = w;
    std::vector<uint32_t> bp = ptr;
    bad.block_row_ptr = bp.data();
    bp[0] = 1;  // must start at 0
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadSparseData) << where;
    bp = ptr;
    bp[1] = ptr[2] + 1;  // not monotone
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadSparseData) << where;
    bp = ptr;
    bp[2] = ptr[2] - 1;  // block count disagrees with value_count
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadSparseData) << where;
    bad = w;
    bad.block_rows = 0;
    EXPECT_EQ(run(c, bad, p, &out), Status::kBadArgument) << where;
    bad = w;
    bad.block_row_ptr = nullptr;
    EXPECT_EQ(run(c, bad, p, &out), Status::kNullPointer) << where;
    bad = w;
    bad.block_col = nullptr;
    EXPECT_EQ(run(c, bad, p, &out), Status::kNullPointer) << where;
    EXPECT_EQ(out, std::vector<int8_t>(2 * 8, int8_t{-99})) << where;
  }
  // Block indices are O(blocks) data: validate_sparse_s8 checks them.
  std::vector<uint16_t> bc = col;
  rt::SparseMatrixS8 bad = w;
  bad.block_col = bc.data();
  bc[0] = 4;  // 64 / 16 = 4 block columns: 4 is out of range
  EXPECT_EQ(rt::validate_sparse_s8(bad), Status::kBadSparseData);
  bc = col;
  if (ptr[1] >= 2) {
    bc[1] = bc[0];  // repeated block column
    EXPECT_EQ(rt::validate_sparse_s8(bad), Status::kBadSparseData);
  }
  bc = col;
  bc[ptr[1]] = 65535;  // first block of block row 1
  EXPECT_EQ(rt::validate_sparse_s8(bad), Status::kBadSparseData);
  bc = col;
  EXPECT_EQ(rt::validate_sparse_s8(bad), Status::kOk);
  // Too many block columns for the uint16 index.
  bad = w;
  bad.cols = 65537 * 16;
  EXPECT_EQ(rt::validate_sparse_s8(bad), Status::kBadDimension);
}

// batch > 1 with an all-pruned block row in the middle and an all-kept one, extreme offsets: the
// pruned term (filter_offset * sum(x + io)) must be exact on every path.
TEST(SparseFcS8, BlockCsrEmptyAndFullBlockRows) {
  std::mt19937 rng(31);
  Case c = random_case(rng, 4, 128, 12, 0.0, true);
  for (int32_t o = 4; o < 8; ++o)
    for (int32_t k = 0; k < 128; ++k) c.weights[static_cast<size_t>(o * 128 + k)] = 0;
  for (int32_t o = 8; o < 12; ++o)
    for (int32_t k = 0; k < 128; ++k)
      c.weights[static_cast<size_t>(o * 128 + k)] = static_cast<int8_t>((k & 1) ? -128 : 127);
  for (int8_t& x : c.input) x = -128;
  c.params.input_offset = 128;
  c.params.filter_offset = 128;
  check_all_paths(c, block_opt(4, 16), "4x16 empty/full");
  check_all_paths(c, block_opt(1, 16), "1x16 empty/full");
  for (int8_t& x : c.input) x = 127;
  c.params.input_offset = -127;
  c.params.filter_offset = -127;
  check_all_paths(c, block_opt(4, 16), "4x16 empty/full x 127");
  check_all_paths(c, block_opt(1, 16), "1x16 empty/full x 127");
}

// The VNNI block path requantizes 16 outputs per vector: every shift in [-31, 30], multipliers
// at both ends, both roundings, against the scalar formula (one channel per shift value).
TEST(SparseFcS8, BlockCsrRequantizeExtremes) {
  std::mt19937 rng(77);
  for (rt::Rounding rounding : {rt::Rounding::kDouble, rt::Rounding::kSingle}) {
    for (int32_t br : {1, 4}) {
      Case c = random_case(rng, 2, 64, 64, 0.0, false);
      make_blocks(c, br, 16, 0.5, rng);
      c.per_channel = true;
      c.rounding = rounding;
      c.params.act_min = -128;
      c.params.act_max = 127;
      c.multiplier.resize(64);
      c.shift.resize(64);
      const int32_t mults[] = {0, 1, 1 << 30, INT32_MAX};
      for (int32_t o = 0; o < 64; ++o) {
        c.shift[static_cast<size_t>(o)] = -31 + o % 62;
        c.multiplier[static_cast<size_t>(o)] = mults[(o / 7) % 4];
      }
      check_all_paths(c, block_opt(br, 16),
                      "extremes " + std::to_string(br) + "x16 rounding " +
                          std::to_string(static_cast<int>(rounding)));
    }
  }
}

// Every entry count per row from 0 to 19 (the smlad path's 8-entry steps, its 4-entry step and
// its 0..3 leftover entries), columns at both ends of the row, bitmap rows of whole words plus
// tail bytes, extreme and random offsets, both roundings: every path against the dense formula.
TEST(SparseFcS8, EveryRowLengthAndTail) {
  std::mt19937 rng(4242);
  for (int32_t k : {19, 20, 40, 97, 300}) {
    for (bool extreme : {false, true}) {
      for (rt::Rounding rounding : {rt::Rounding::kDouble, rt::Rounding::kSingle}) {
        Case c = random_case(rng, 2, k, 20, 1.0, extreme);
        c.rounding = rounding;
        std::uniform_int_distribution<int> nonzero(-128, 126);  // 0 maps to 127
        for (int32_t o = 0; o < c.n; ++o) {
          const int32_t want = std::min(o, k);
          // The first and last columns, then random ones, until the row holds `want` entries.
          for (int32_t placed = 0; placed < want;) {
            const int32_t col = placed == 0 ? 0
                                : placed == 1
                                    ? k - 1
                                    : std::uniform_int_distribution<int32_t>(0, k - 1)(rng);
            int8_t& v = c.weights[static_cast<size_t>(o * k + col)];
            if (v != 0) continue;
            const int r = nonzero(rng);
            v = static_cast<int8_t>(r == 0 ? 127 : r);
            ++placed;
          }
        }
        const std::string what = "k " + std::to_string(k) + (extreme ? " extreme" : "") +
                                 " rounding " + std::to_string(static_cast<int>(rounding));
        check_all_paths(c, fmt_opt(StorageFormat::kCsrU8), what + " csr-u8");
        check_all_paths(c, fmt_opt(StorageFormat::kCsrU16), what + " csr-u16");
        check_all_paths(c, fmt_opt(StorageFormat::kBitmap), what + " bitmap");
      }
    }
  }
  // N:4 rows of 1..40 slots (k = 1..40 columns, tail groups of 1..3 columns included).
  for (int32_t k = 1; k <= 40; ++k) {
    for (int n : {1, 2}) {
      Case c = random_case(rng, 2, k, 3, 0.1, (k & 1) != 0);
      c.rounding = (k & 2) != 0 ? rt::Rounding::kSingle : rt::Rounding::kDouble;
      make_nm(c, n, 4);
      check_all_paths(c, fmt_opt(StorageFormat::kNm, n, 4),
                      "nm " + std::to_string(n) + ":4 k " + std::to_string(k));
    }
  }
}

// Every path that asks for scratch reports its size, refuses one byte less, and takes the
// buffer at any alignment (the caller's buffer is not promised to be aligned: a path that stores
// 32-bit words or vectors there aligns it itself). The smlad path keeps x + input_offset there
// for every format but block CSR; the x86 paths their widened activations and row sums.
TEST(SparseFcS8, ScratchIsSizedCheckedAndTakenAtAnyAlignment) {
  std::mt19937 rng(5);
  Case c = random_case(rng, 2, 37, 6, 0.6, true);
  Case blocks = random_case(rng, 2, 32, 8, 0.0, true);
  make_blocks(blocks, 4, 16, 0.5, rng);
  Case nm = c;
  make_nm(nm, 2, 4);
  struct Matrix {
    const Case* c;
    SparseOptions opt;
  };
  // Batches 5 and 9 too: the x86 column-list body (CSR, N:M) then keeps 8 batch rows'
  // activations and sums, and the AVX-512 block and bitmap bodies the sums of 4.
  Case c5 = random_case(rng, 5, 37, 6, 0.6, true);
  Case c9 = random_case(rng, 9, 41, 7, 0.8, false);
  Case nm9 = c9;
  make_nm(nm9, 1, 4);
  Case blocks9 = random_case(rng, 9, 32, 8, 0.0, true);
  make_blocks(blocks9, 4, 16, 0.5, rng);
  const Matrix matrices[] = {{&c, fmt_opt(StorageFormat::kCsrU8)},
                             {&c, fmt_opt(StorageFormat::kCsrU16)},
                             {&c, fmt_opt(StorageFormat::kBitmap)},
                             {&nm, fmt_opt(StorageFormat::kNm, 2, 4)},
                             {&blocks, block_opt(4, 16)},
                             {&blocks, block_opt(1, 16)},
                             {&c5, fmt_opt(StorageFormat::kCsrU8)},
                             {&c9, fmt_opt(StorageFormat::kCsrU16)},
                             {&c9, fmt_opt(StorageFormat::kBitmap)},
                             {&nm9, fmt_opt(StorageFormat::kNm, 1, 4)},
                             {&blocks9, block_opt(4, 16)},
                             {&blocks9, block_opt(1, 16)}};
  int checked = 0;
  for (const Matrix& m : matrices) {
    const Case& k = *m.c;
    const std::vector<int8_t> expect = dense_oracle(k);
    const SparseMatrix sm = SparseMatrix::from_dense(k.weights.data(), k.n, k.k, m.opt);
    const rt::SparseMatrixS8 w = sm.view();
    rt::FcDims dims{k.batch, k.k, k.n};
    rt::Requant rq;
    rq.multiplier = k.multiplier.data();
    rq.shift = k.shift.data();
    rq.per_channel = k.per_channel;
    rq.rounding = k.rounding;
    const int32_t* bias = k.with_bias ? k.bias.data() : nullptr;
    for (Path p : runnable_paths()) {
      const std::string what = std::string(to_string(m.opt.format)) + " " +
                               std::to_string(w.block_rows) + " path " + rt::path_name(p);
      const int32_t need = rt::sparse_fully_connected_s8_scratch_size(dims, w, p);
      if (p == Path::kSmlad && m.opt.format != StorageFormat::kBlockCsr) {
        EXPECT_GE(need, 2 * k.k) << what;
      }
      if (need == 0) continue;
      ++checked;
      std::vector<int8_t> out(expect.size(), int8_t{-99});
      rt::Context ctx;
      ctx.path = p;
      EXPECT_EQ(rt::sparse_fully_connected_s8(ctx, k.params, rq, dims, k.input.data(), w, bias,
                                              out.data()),
                Status::kScratchTooSmall)
          << what;
      EXPECT_EQ(out, std::vector<int8_t>(expect.size(), int8_t{-99})) << what;
      // Past the `need` bytes handed over, the buffer holds a pattern the call must not touch.
      std::vector<uint8_t> buf(static_cast<size_t>(need) + 64);
      for (const size_t misalign : {0u, 1u, 2u, 3u, 5u, 33u}) {
        std::fill(buf.begin(), buf.end(), uint8_t{0xA5});
        ctx.scratch = buf.data() + misalign;
        ctx.scratch_size = need - 1;
        EXPECT_EQ(rt::sparse_fully_connected_s8(ctx, k.params, rq, dims, k.input.data(), w, bias,
                                                out.data()),
                  Status::kScratchTooSmall)
            << what;
        ctx.scratch_size = need;
        ASSERT_EQ(rt::sparse_fully_connected_s8(ctx, k.params, rq, dims, k.input.data(), w, bias,
                                                out.data()),
                  Status::kOk)
            << what;
        EXPECT_EQ(out, expect) << what << " misaligned by " << misalign;
        EXPECT_TRUE(std::all_of(buf.begin() + static_cast<std::ptrdiff_t>(misalign + need),
                                buf.end(), [](uint8_t v) { return v == 0xA5; }))
            << what << ": wrote past its scratch, misaligned by " << misalign;
      }
    }
  }
  EXPECT_GE(checked, 4);  // at least the smlad path's four formats
  // Block CSR runs the smlad path without scratch.
  const SparseMatrix sm =
      SparseMatrix::from_dense(blocks.weights.data(), blocks.n, blocks.k, block_opt(4, 16));
  const rt::FcDims block_dims{blocks.batch, blocks.k, blocks.n};
  EXPECT_EQ(rt::sparse_fully_connected_s8_scratch_size(block_dims, sm.view(), Path::kSmlad), 0);
}
