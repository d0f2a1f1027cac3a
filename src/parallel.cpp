// Column-split threading of the rt GEMM / fully-connected kernels (see parallel.hpp).
#include "tinyquant/parallel.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "detail/check.hpp"
#include "rt/validate.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/rt/status.hpp"

namespace tinyquant {
namespace {

constexpr int32_t kColumnGrain = 16;  // slice widths are multiples of this (SIMD tile friendly)

struct Slice {
  int32_t first = 0;
  int32_t count = 0;
};

std::vector<Slice> split_columns(const char* fn, int threads, int32_t n) {
  if (threads < 0) detail::fail<InvalidArgument>("{}: threads = {} (must be >= 0)", fn, threads);
  const int want = threads == 0 ? default_thread_count() : threads;
  const int32_t grains = (n + kColumnGrain - 1) / kColumnGrain;
  const int32_t parts = std::max<int32_t>(1, std::min<int32_t>(want, grains));
  std::vector<Slice> slices;
  int32_t first = 0;
  for (int32_t p = 0; p < parts; ++p) {
    // Grains spread as evenly as possible; the last slice takes the remainder columns.
    const int32_t g = grains / parts + (p < grains % parts ? 1 : 0);
    const int32_t count = std::min(n - first, g * kColumnGrain);
    slices.push_back({first, count});
    first += count;
  }
  return slices;
}

// Runs body(slice_index) on one thread per slice (the caller's thread takes slice 0). Slices
// whose thread the system cannot start (std::system_error) run on the caller's thread too, so
// the started threads are always joined and the result does not depend on how many started.
template <class Body>
void run_slices(size_t count, Body&& body) {
  std::vector<std::thread> pool;
  pool.reserve(count > 0 ? count - 1 : 0);
  size_t started = 1;
  for (; started < count; ++started) {
    try {
      pool.emplace_back([&body, started] { body(started); });
    } catch (const std::system_error&) {
      break;
    }
  }
  for (size_t s = started; s < count; ++s) body(s);
  if (count > 0) body(0);
  for (auto& t : pool) t.join();
}

void check_offset(const char* fn, const char* name, int32_t v, int32_t lo, int32_t hi) {
  if (v < lo || v > hi) {
    detail::fail<InvalidArgument>("{}: {} = {} outside [{}, {}]", fn, name, v, lo, hi);
  }
}

void check_status(const char* fn, rt::Status s, const Slice& sl) {
  if (s != rt::Status::kOk) {
    throw KernelError(s, fmt::format("{}: rt kernel returned {} on columns [{}, {})", fn,
                                     rt::status_name(s), sl.first, sl.first + sl.count));
  }
}

rt::Path resolve(rt::Path p) {
  return p == rt::Path::kAuto ? rt::default_path() : p;
}

}  // namespace

int default_thread_count() noexcept {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

void gemm_s8s8_s32_parallel(int threads, const rt::GemmDims& dims, const int8_t* a,
                            int32_t a_offset, const int8_t* b, int32_t b_offset,
                            const int32_t* row_add, const int32_t* col_add, int32_t* c,
                            rt::Path path) {
  constexpr const char* kFn = "gemm_s8s8_s32_parallel";
  if (dims.m < 1 || dims.n < 1 || dims.k < 1) {
    detail::fail<ShapeError>("{}: dims m = {}, n = {}, k = {} (each must be >= 1)", kFn, dims.m,
                             dims.n, dims.k);
  }
  const int32_t lda = dims.lda == 0 ? dims.k : dims.lda;
  const int32_t ldb = dims.ldb == 0 ? dims.k : dims.ldb;
  const int32_t ldc = dims.ldc == 0 ? dims.n : dims.ldc;
  if (lda < dims.k || ldb < dims.k || ldc < dims.n) {
    detail::fail<ShapeError>("{}: lda = {}, ldb = {} must be >= k = {} and ldc = {} >= n = {}", kFn,
                             lda, ldb, dims.k, ldc, dims.n);
  }
  int32_t lda_checked = 0, ldb_checked = 0, ldc_checked = 0;  // as one rt call on all n columns
  if (rt::detail::check_gemm_dims(dims, &lda_checked, &ldb_checked, &ldc_checked) !=
      rt::Status::kOk) {
    detail::fail<ShapeError>(
        "{}: dims m = {}, n = {}, k = {} (lda = {}, ldb = {}, ldc = {}) exceed the kernels' limit "
        "of {} elements per operand",
        kFn, dims.m, dims.n, dims.k, lda, ldb, ldc, rt::detail::kMaxElements);
  }
  check_offset(kFn, "a_offset", a_offset, -128, 128);
  check_offset(kFn, "b_offset", b_offset, -128, 128);
  if (a == nullptr || b == nullptr || c == nullptr) {
    detail::fail<InvalidArgument>("{}: null pointer (a = {}, b = {}, c = {})", kFn,
                                  static_cast<const void*>(a), static_cast<const void*>(b),
                                  static_cast<const void*>(c));
  }
  const rt::Path p = resolve(path);
  const std::vector<Slice> slices = split_columns(kFn, threads, dims.n);
  std::vector<std::vector<uint8_t>> scratch(slices.size());
  std::vector<rt::Status> status(slices.size(), rt::Status::kOk);
  for (size_t s = 0; s < slices.size(); ++s) {
    rt::GemmDims d{dims.m, slices[s].count, dims.k, lda, ldb, ldc};
    scratch[s].resize(static_cast<size_t>(std::max(0, rt::gemm_s8s8_s32_scratch_size(d, p))));
  }
  run_slices(slices.size(), [&](size_t s) {
    const Slice& sl = slices[s];
    const rt::GemmDims d{dims.m, sl.count, dims.k, lda, ldb, ldc};
    rt::Context ctx;
    ctx.path = p;
    ctx.scratch = scratch[s].data();
    ctx.scratch_size = static_cast<int32_t>(scratch[s].size());
    status[s] =
        rt::gemm_s8s8_s32(ctx, d, a, a_offset, b + int64_t{sl.first} * ldb, b_offset, row_add,
                          col_add != nullptr ? col_add + sl.first : nullptr, c + sl.first);
  });
  for (size_t s = 0; s < slices.size(); ++s) check_status(kFn, status[s], slices[s]);
}

void fully_connected_s8_parallel(int threads, const rt::FcParams& params,
                                 const rt::Requant& requant, const rt::FcDims& dims,
                                 const int8_t* input, const int8_t* weights, const int32_t* bias,
                                 int8_t* output, rt::Path path) {
  constexpr const char* kFn = "fully_connected_s8_parallel";
  if (dims.batch < 1 || dims.in_features < 1 || dims.out_features < 1) {
    detail::fail<ShapeError>(
        "{}: dims batch = {}, in_features = {}, out_features = {} (each "
        "must be >= 1)",
        kFn, dims.batch, dims.in_features, dims.out_features);
  }
  if (rt::detail::check_fc_dims(dims) != rt::Status::kOk) {  // as one rt call on every column
    detail::fail<ShapeError>(
        "{}: dims batch = {}, in_features = {}, out_features = {} exceed the kernels' limit of {} "
        "elements per operand",
        kFn, dims.batch, dims.in_features, dims.out_features, rt::detail::kMaxElements);
  }
  check_offset(kFn, "input_offset", params.input_offset, -127, 128);
  check_offset(kFn, "filter_offset", params.filter_offset, -127, 128);
  check_offset(kFn, "output_offset", params.output_offset, -128, 127);
  if (params.act_min < -128 || params.act_max > 127 || params.act_min > params.act_max) {
    detail::fail<InvalidArgument>(
        "{}: activation range [{}, {}] {}", kFn, params.act_min, params.act_max,
        params.act_min > params.act_max ? "has min > max" : "is not within [-128, 127]");
  }
  if (requant.rounding != rt::Rounding::kDouble && requant.rounding != rt::Rounding::kSingle) {
    detail::fail<InvalidArgument>("{}: requant rounding = {} is neither kDouble nor kSingle", kFn,
                                  static_cast<int>(requant.rounding));
  }
  if (input == nullptr || weights == nullptr || output == nullptr ||
      requant.multiplier == nullptr || requant.shift == nullptr) {
    detail::fail<InvalidArgument>(
        "{}: null pointer (input = {}, weights = {}, output = {}, multiplier = {}, shift = {})",
        kFn, static_cast<const void*>(input), static_cast<const void*>(weights),
        static_cast<const void*>(output), static_cast<const void*>(requant.multiplier),
        static_cast<const void*>(requant.shift));
  }
  const int32_t channels = requant.per_channel ? dims.out_features : 1;
  for (int32_t i = 0; i < channels; ++i) {
    if (requant.multiplier[i] < 0) {
      detail::fail<InvalidArgument>("{}: multiplier[{}] = {} is negative", kFn, i,
                                    requant.multiplier[i]);
    }
    if (!rt::shift_in_range(requant.shift[i])) {
      detail::fail<InvalidArgument>("{}: shift[{}] = {} outside [{}, {}]", kFn, i, requant.shift[i],
                                    rt::kMinShift, rt::kMaxShift);
    }
  }
  const rt::Path p = resolve(path);
  const std::vector<Slice> slices = split_columns(kFn, threads, dims.out_features);
  const bool direct = dims.batch == 1 || slices.size() == 1;  // output rows are contiguous
  std::vector<std::vector<uint8_t>> scratch(slices.size());
  std::vector<std::vector<int8_t>> staged(direct ? 0 : slices.size());
  std::vector<rt::Status> status(slices.size(), rt::Status::kOk);
  for (size_t s = 0; s < slices.size(); ++s) {
    const rt::FcDims d{dims.batch, dims.in_features, slices[s].count};
    scratch[s].resize(static_cast<size_t>(std::max(0, rt::fully_connected_s8_scratch_size(d, p))));
    if (!direct)
      staged[s].resize(static_cast<size_t>(dims.batch) * static_cast<size_t>(slices[s].count));
  }
  run_slices(slices.size(), [&](size_t s) {
    const Slice& sl = slices[s];
    const rt::FcDims d{dims.batch, dims.in_features, sl.count};
    rt::Requant rq = requant;
    if (rq.per_channel) {
      rq.multiplier += sl.first;
      rq.shift += sl.first;
    }
    rt::Context ctx;
    ctx.path = p;
    ctx.scratch = scratch[s].data();
    ctx.scratch_size = static_cast<int32_t>(scratch[s].size());
    status[s] = rt::fully_connected_s8(
        ctx, params, rq, d, input, weights + int64_t{sl.first} * dims.in_features,
        bias != nullptr ? bias + sl.first : nullptr, direct ? output + sl.first : staged[s].data());
  });
  for (size_t s = 0; s < slices.size(); ++s) check_status(kFn, status[s], slices[s]);
  if (direct) return;
  for (size_t s = 0; s < slices.size(); ++s) {
    for (int32_t r = 0; r < dims.batch; ++r) {
      std::memcpy(output + int64_t{r} * dims.out_features + slices[s].first,
                  staged[s].data() + int64_t{r} * slices[s].count,
                  static_cast<size_t>(slices[s].count));
    }
  }
}

}  // namespace tinyquant
