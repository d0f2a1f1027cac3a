// Sparse fully-connected: argument checks, index validation, path dispatch and the reference
// path (obvious scalar loops, the oracle for the smlad and avx2 paths).
#include "tinyquant/rt/sparse.hpp"

#include "scratch.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#define TINYQUANT_SPARSE_HAVE_AVX2 1
#else
#define TINYQUANT_SPARSE_HAVE_AVX2 0
#endif

namespace tinyquant::rt {
namespace {

bool avx2_supported() noexcept {
#if TINYQUANT_SPARSE_HAVE_AVX2
  return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("popcnt") != 0;
#else
  return false;
#endif
}

bool vnni_supported() noexcept {
#if TINYQUANT_SPARSE_HAVE_AVX2
  return avx2_supported() && __builtin_cpu_supports("avx512f") != 0 &&
         __builtin_cpu_supports("avx512bw") != 0 && __builtin_cpu_supports("avx512vl") != 0 &&
         __builtin_cpu_supports("avx512vnni") != 0;
#else
  return false;
#endif
}

#if TINYQUANT_SPARSE_HAVE_AVX2
// The AVX-512 VNNI path's own body runs block CSR, and bitmap where vpexpandb (VBMI2) is there;
// every other format takes the AVX2 body.
bool vnni_body(const SparseMatrixS8& w) noexcept {
  return w.format == SparseFormat::kBlockCsr ||
         (w.format == SparseFormat::kBitmap && __builtin_cpu_supports("avx512vbmi2") != 0);
}
#endif

// kAuto follows a globally forced reference, smlad or avx2 path (force_path / TINYQUANT_PATH),
// so forcing a path checks sparse layers too; otherwise the widest the CPU has.
Path resolve_path(Path requested) noexcept {
  if (requested != Path::kAuto) return requested;
  const Path global = default_path();
  if (global == Path::kReference || global == Path::kSmlad) return global;
  if (global == Path::kAvx2 && avx2_supported()) return Path::kAvx2;
  if (vnni_supported()) return Path::kAvx512Vnni;
  return avx2_supported() ? Path::kAvx2 : Path::kReference;
}

int32_t bitmap_row_bytes(int32_t cols) noexcept {
  return (cols + 7) / 8;
}

int32_t popcount8(uint32_t b) noexcept {
  return __builtin_popcount(b);
}

// O(rows) consistency of the counts; the kernels rely on it to stay inside the arrays.
Status check_counts(const SparseMatrixS8& w) noexcept {
  if (w.rows < 1 || w.cols < 1 || w.cols > kSparseMaxCols) return Status::kBadDimension;
  if (w.value_count < 0) return Status::kBadSparseData;
  if (w.value_count > 0 && w.values == nullptr) return Status::kNullPointer;
  switch (w.format) {
    case SparseFormat::kCsrU8Delta:
    case SparseFormat::kCsrU16: {
      if (w.row_nnz == nullptr) return Status::kNullPointer;
      if (w.format == SparseFormat::kCsrU8Delta && w.value_count > 0 && w.col_delta == nullptr)
        return Status::kNullPointer;
      if (w.format == SparseFormat::kCsrU16) {
        if (w.cols > 65536) return Status::kBadDimension;
        if (w.value_count > 0 && w.col_index == nullptr) return Status::kNullPointer;
      }
      // A row holds at most `cols` entries (validate_sparse_s8's strictly increasing columns);
      // the x86 path decodes a row into scratch sized by that bound, so it is checked here.
      int64_t total = 0;
      for (int32_t r = 0; r < w.rows; ++r) {
        if (w.row_nnz[r] > w.cols) return Status::kBadSparseData;
        total += w.row_nnz[r];
      }
      return total == w.value_count ? Status::kOk : Status::kBadSparseData;
    }
    case SparseFormat::kBitmap:
      return w.bitmap == nullptr ? Status::kNullPointer : Status::kOk;
    case SparseFormat::kNm: {
      if (w.nm_m < 1 || w.nm_m > 256 || w.nm_n < 1 || w.nm_n > w.nm_m) return Status::kBadArgument;
      if (w.nm_index == nullptr && nm_index_bits(w.nm_m) > 0) return Status::kNullPointer;
      const int64_t expect = int64_t{w.rows} * nm_groups(w.cols, w.nm_m) * w.nm_n;
      return expect == w.value_count ? Status::kOk : Status::kBadSparseData;
    }
    case SparseFormat::kBlockCsr: {
      if (w.block_rows < 1 || w.block_cols < 1) return Status::kBadArgument;
      if (w.rows % w.block_rows != 0 || w.cols % w.block_cols != 0) return Status::kBadDimension;
      if (w.cols / w.block_cols > 65536) return Status::kBadDimension;
      if (w.block_row_ptr == nullptr) return Status::kNullPointer;
      if (w.value_count > 0 && w.block_col == nullptr) return Status::kNullPointer;
      const int32_t block_rows = w.rows / w.block_rows;
      if (w.block_row_ptr[0] != 0) return Status::kBadSparseData;
      for (int32_t r = 0; r < block_rows; ++r) {
        if (w.block_row_ptr[r + 1] < w.block_row_ptr[r]) return Status::kBadSparseData;
      }
      const int64_t expect =
          int64_t{w.block_row_ptr[block_rows]} * w.block_rows * int64_t{w.block_cols};
      return expect == w.value_count ? Status::kOk : Status::kBadSparseData;
    }
  }
  return Status::kBadArgument;
}

uint32_t read_bits(const uint8_t* base, int64_t bit, int32_t bits) noexcept {
  uint32_t v = 0;
  for (int32_t i = 0; i < bits; ++i) {
    const int64_t b = bit + i;
    v |= static_cast<uint32_t>((base[b >> 3] >> (b & 7)) & 1u) << i;
  }
  return v;
}

}  // namespace

Status validate_sparse_s8(const SparseMatrixS8& w) noexcept {
  const Status st = check_counts(w);
  if (st != Status::kOk) return st;
  switch (w.format) {
    case SparseFormat::kCsrU8Delta: {
      int64_t i = 0;
      for (int32_t r = 0; r < w.rows; ++r) {
        int64_t col = 0;
        for (int32_t j = 0; j < w.row_nnz[r]; ++j, ++i) {
          col += w.col_delta[i];
          // Every entry, padding (delta 255, value 0) included, lands inside the row, and the
          // columns strictly increase after the first: a row has at most `cols` entries.
          if (col >= w.cols) return Status::kBadSparseData;
          if (j > 0 && w.col_delta[i] == 0) return Status::kBadSparseData;
        }
      }
      return Status::kOk;
    }
    case SparseFormat::kCsrU16: {
      int64_t i = 0;
      for (int32_t r = 0; r < w.rows; ++r) {
        int32_t prev = -1;
        for (int32_t j = 0; j < w.row_nnz[r]; ++j, ++i) {
          const int32_t c = w.col_index[i];
          if (c >= w.cols || c <= prev) return Status::kBadSparseData;
          prev = c;
        }
      }
      return Status::kOk;
    }
    case SparseFormat::kBitmap: {
      const int32_t rb = bitmap_row_bytes(w.cols);
      const int32_t tail_bits = w.cols % 8;
      int64_t total = 0;
      for (int32_t r = 0; r < w.rows; ++r) {
        const uint8_t* row = w.bitmap + static_cast<int64_t>(r) * rb;
        for (int32_t b = 0; b < rb; ++b) total += popcount8(row[b]);
        if (tail_bits != 0 && (row[rb - 1] >> tail_bits) != 0) return Status::kBadSparseData;
      }
      return total == w.value_count ? Status::kOk : Status::kBadSparseData;
    }
    case SparseFormat::kNm: {
      const int32_t bits = nm_index_bits(w.nm_m);
      const int32_t groups = nm_groups(w.cols, w.nm_m);
      const int32_t row_bytes = nm_row_index_bytes(w.cols, w.nm_n, w.nm_m);
      int64_t v = 0;
      for (int32_t r = 0; r < w.rows; ++r) {
        const uint8_t* idx = w.nm_index + static_cast<int64_t>(r) * row_bytes;
        int64_t slot = 0;
        for (int32_t g = 0; g < groups; ++g) {
          const int32_t size = (g == groups - 1 && w.cols % w.nm_m != 0) ? w.cols % w.nm_m : w.nm_m;
          uint32_t used[8];  // one bit per index of the group's nonzero slots (m <= 256)
          for (int32_t i = 0; i < (size + 31) / 32; ++i) used[i] = 0;
          for (int32_t s = 0; s < w.nm_n; ++s, ++slot, ++v) {
            const uint32_t p = bits > 0 ? read_bits(idx, slot * bits, bits) : 0u;
            if (static_cast<int32_t>(p) >= size) return Status::kBadSparseData;
            if (w.values[v] != 0) {
              const uint32_t bit = 1u << (p & 31u);
              if ((used[p >> 5] & bit) != 0) return Status::kBadSparseData;
              used[p >> 5] |= bit;
            }
          }
        }
      }
      return Status::kOk;
    }
    case SparseFormat::kBlockCsr: {
      const int32_t block_cols = w.cols / w.block_cols;
      for (int32_t r = 0; r < w.rows / w.block_rows; ++r) {
        int32_t prev = -1;
        for (uint32_t b = w.block_row_ptr[r]; b < w.block_row_ptr[r + 1]; ++b) {
          const int32_t c = w.block_col[b];
          if (c >= block_cols || c <= prev) return Status::kBadSparseData;
          prev = c;
        }
      }
      return Status::kOk;
    }
  }
  return Status::kBadArgument;
}

namespace {

#if TINYQUANT_SPARSE_HAVE_AVX2
// The x86 bodies store int32 words and vectors into scratch, which the caller may hand over at
// any alignment: they get it aligned up to 64 bytes, and ask for that much more.
constexpr int32_t kX86ScratchAlign = 64;

int32_t x86_need(int32_t body_bytes) noexcept {
  if (body_bytes <= 0) return 0;
  return body_bytes > INT32_MAX - (kX86ScratchAlign - 1) ? INT32_MAX
                                                         : body_bytes + (kX86ScratchAlign - 1);
}

#endif

}  // namespace

int32_t sparse_fully_connected_s8_scratch_size(const FcDims& dims, const SparseMatrixS8& weights,
                                               Path path) noexcept {
  // A layer the kernel refuses needs no scratch: the kernel returns its error before it looks at
  // the scratch, and sizes computed from it (an N:M group of 0 columns, say) mean nothing.
  if (dims.batch < 1 || dims.in_features < 1 || dims.out_features < 1 ||
      weights.rows != dims.out_features || weights.cols != dims.in_features ||
      check_counts(weights) != Status::kOk)
    return 0;
  const Path p = resolve_path(path);
  if (p == Path::kSmlad) return detail::sparse_fc_s8_smlad_scratch_size(dims, weights);
#if TINYQUANT_SPARSE_HAVE_AVX2
  if (p == Path::kAvx512Vnni && vnni_body(weights))
    return x86_need(detail::sparse_fc_s8_avx512vnni_scratch_size(dims, weights));
  if (p == Path::kAvx2 || p == Path::kAvx512Vnni)
    return x86_need(detail::sparse_fc_s8_avx2_scratch_size(dims, weights));
#endif
  return 0;
}

namespace {

// The path's scratch: `need` bytes at ctx.scratch. The size queries saturate at INT32_MAX, so a
// need of INT32_MAX may stand for more than any int32 size holds: never met.
bool scratch_fits(const Context& ctx, int32_t need) noexcept {
  return need <= 0 || (need < INT32_MAX && ctx.scratch != nullptr && ctx.scratch_size >= need);
}

}  // namespace

Status sparse_fully_connected_s8(const Context& ctx, const FcParams& params, const Requant& requant,
                                 const FcDims& dims, const int8_t* input,
                                 const SparseMatrixS8& weights, const int32_t* bias,
                                 int8_t* output) noexcept {
  if (input == nullptr || output == nullptr) return Status::kNullPointer;
  if (requant.multiplier == nullptr || requant.shift == nullptr) return Status::kNullPointer;
  if (requant.rounding != Rounding::kDouble && requant.rounding != Rounding::kSingle)
    return Status::kBadArgument;
  if (dims.batch < 1 || dims.in_features < 1 || dims.out_features < 1) return Status::kBadDimension;
  if (weights.rows != dims.out_features || weights.cols != dims.in_features)
    return Status::kBadDimension;
  if (params.input_offset < -127 || params.input_offset > 128) return Status::kBadOffset;
  if (params.filter_offset < -127 || params.filter_offset > 128) return Status::kBadOffset;
  if (params.output_offset < -128 || params.output_offset > 127) return Status::kBadOffset;
  if (params.act_min > params.act_max || params.act_min < -128 || params.act_max > 127)
    return Status::kBadActivationRange;
  const int32_t channels = requant.per_channel ? dims.out_features : 1;
  for (int32_t c = 0; c < channels; ++c) {
    if (!shift_in_range(requant.shift[c])) return Status::kBadShift;
    if (requant.multiplier[c] < 0) return Status::kBadMultiplier;
  }
  const Status st = check_counts(weights);
  if (st != Status::kOk) return st;

  const Path path = resolve_path(ctx.path);
  detail::SparseFcArgs args;
  args.params = &params;
  args.requant = &requant;
  args.dims = &dims;
  args.input = input;
  args.weights = &weights;
  args.bias = bias;
  args.output = output;
  args.scratch = ctx.scratch;
  switch (path) {
    case Path::kReference:
      detail::sparse_fc_s8_reference(args);
      return Status::kOk;
    case Path::kSmlad:
      if (!scratch_fits(ctx, detail::sparse_fc_s8_smlad_scratch_size(dims, weights)))
        return Status::kScratchTooSmall;
      detail::sparse_fc_s8_smlad(args);
      return Status::kOk;
    case Path::kAvx2: {
#if TINYQUANT_SPARSE_HAVE_AVX2
      if (!avx2_supported()) return Status::kPathUnavailable;
      if (!scratch_fits(ctx, x86_need(detail::sparse_fc_s8_avx2_scratch_size(dims, weights))))
        return Status::kScratchTooSmall;
      args.scratch = detail::align_scratch(ctx.scratch, kX86ScratchAlign);
      detail::sparse_fc_s8_avx2(args);
      return Status::kOk;
#else
      return Status::kPathUnavailable;
#endif
    }
    case Path::kAvx512Vnni: {
#if TINYQUANT_SPARSE_HAVE_AVX2
      if (!vnni_supported()) return Status::kPathUnavailable;
      const bool own = vnni_body(weights);
      const int32_t need = own ? detail::sparse_fc_s8_avx512vnni_scratch_size(dims, weights)
                               : detail::sparse_fc_s8_avx2_scratch_size(dims, weights);
      if (!scratch_fits(ctx, x86_need(need))) return Status::kScratchTooSmall;
      args.scratch = detail::align_scratch(ctx.scratch, kX86ScratchAlign);
      if (own)
        detail::sparse_fc_s8_avx512vnni(args);
      else
        detail::sparse_fc_s8_avx2(args);
      return Status::kOk;
#else
      return Status::kPathUnavailable;
#endif
    }
    default:
      return Status::kPathUnavailable;
  }
}

namespace detail {

// The decoded column and value of every stored entry, row by row, fed to `visit(col, w)`.
template <class Visit>
void for_each_entry(const SparseMatrixS8& w, int32_t row, int64_t* cursor, Visit visit) noexcept {
  switch (w.format) {
    case SparseFormat::kCsrU8Delta: {
      int32_t col = 0;
      for (int32_t j = 0; j < w.row_nnz[row]; ++j, ++*cursor) {
        col += w.col_delta[*cursor];
        visit(col, w.values[*cursor]);
      }
      return;
    }
    case SparseFormat::kCsrU16:
      for (int32_t j = 0; j < w.row_nnz[row]; ++j, ++*cursor)
        visit(static_cast<int32_t>(w.col_index[*cursor]), w.values[*cursor]);
      return;
    case SparseFormat::kBitmap: {
      const uint8_t* bm = w.bitmap + static_cast<int64_t>(row) * ((w.cols + 7) / 8);
      for (int32_t k = 0; k < w.cols; ++k) {
        if ((bm[k >> 3] >> (k & 7)) & 1u) visit(k, w.values[(*cursor)++]);
      }
      return;
    }
    case SparseFormat::kNm: {
      const int32_t bits = nm_index_bits(w.nm_m);
      const uint8_t* idx =
          w.nm_index + static_cast<int64_t>(row) * nm_row_index_bytes(w.cols, w.nm_n, w.nm_m);
      const int32_t groups = nm_groups(w.cols, w.nm_m);
      int64_t slot = 0;
      for (int32_t g = 0; g < groups; ++g) {
        for (int32_t s = 0; s < w.nm_n; ++s, ++slot) {
          const uint32_t p = bits > 0 ? read_bits(idx, slot * bits, bits) : 0u;
          visit(g * w.nm_m + static_cast<int32_t>(p), w.values[(*cursor)++]);
        }
      }
      return;
    }
    case SparseFormat::kBlockCsr: {
      // Row `row` is row i of block row R: slice i of each of R's blocks, in block order.
      const int32_t block_row = row / w.block_rows, i = row % w.block_rows;
      const int64_t block_size = int64_t{w.block_rows} * w.block_cols;
      for (uint32_t b = w.block_row_ptr[block_row]; b < w.block_row_ptr[block_row + 1]; ++b) {
        const int8_t* v = w.values + b * block_size + int64_t{i} * w.block_cols;
        for (int32_t j = 0; j < w.block_cols; ++j) visit(w.block_col[b] * w.block_cols + j, v[j]);
      }
      return;
    }
  }
}

void sparse_fc_s8_reference(const SparseFcArgs& a) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    int32_t xsum = 0;
    for (int32_t k = 0; k < d.in_features; ++k) xsum = wrap_add(xsum, x[k] + p.input_offset);
    const int32_t pruned_term = wrap_mul(xsum, p.filter_offset);
    int64_t cursor = 0;
    for (int32_t o = 0; o < d.out_features; ++o) {
      int32_t acc = wrap_add(a.bias != nullptr ? a.bias[o] : 0, pruned_term);
      for_each_entry(w, o, &cursor, [&](int32_t col, int8_t v) {
        acc = wrap_add(acc, (x[col] + p.input_offset) * v);
      });
      a.output[static_cast<int64_t>(b) * d.out_features + o] =
          sparse_fc_finish(acc, o, p, *a.requant);
    }
  }
}

}  // namespace detail
}  // namespace tinyquant::rt
