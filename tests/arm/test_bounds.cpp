// Reads and writes stay inside their buffers (Linux targets, run under qemu-user): every operand
// of fully_connected_s8 / _s4, gemm_s8s8_s32 and fully_connected_s8_prepacked (a, b, the packed
// buffer, bias, multipliers, shifts, row and column adds, the output and exactly
// *_scratch_size() bytes of scratch) ends on the last byte before a PROT_NONE page, so a load or
// store one byte past any of them faults. Shapes: m 1-9
// (the GEMV, the packed kernel from m = 2 and its 8-row tiles with every short last tile), n 1-9
// (one column, short 4- and 8-column panels), k 1-3, 15-17 and 33 (no whole 16-k step, a whole
// step and a tail), and two long-K shapes whose -128 are placed so that neon's flags kept from
// its first block of rows decide the others' results (mark_first_strip); strides past k and n
// for gemm_s32. Outputs equal the reference path's (run on
// the same guarded buffers), tolerance 0. Built for the AArch64 Linux targets only (bare-metal
// ones have no pages to protect).
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "check.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace rt = tinyquant::rt;

#if defined(__linux__)
namespace {

// `bytes` bytes ending right before a PROT_NONE page; released by the destructor.
class PageEnd {
 public:
  explicit PageEnd(size_t bytes) {
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t body = (bytes + page - 1) / page * page;
    len_ = body + page;
    void* p = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(p);
    if (mprotect(base_ + body, page, PROT_NONE) != 0) return;
    data_ = base_ + body - bytes;
  }
  ~PageEnd() {
    if (base_ != nullptr) munmap(base_, len_);
  }
  PageEnd(const PageEnd&) = delete;
  PageEnd& operator=(const PageEnd&) = delete;
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(data_);
  }
  bool ok() const { return data_ != nullptr; }

 private:
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t len_ = 0;
};

constexpr rt::Path kPaths[] = {rt::Path::kReference, rt::Path::kNeon, rt::Path::kNeonDot};
// kFcS8Prepacked: fully_connected_s8_prepacked on the weights prepacked for the path, the packed
// buffer at a page end too (its size rounded up to the 4-byte alignment prepack needs).
enum class Op { kFcS8, kFcS4, kGemmS32, kFcS8Prepacked };

struct Shape {
  int32_t m, n, k;
};

// From this K on, neon's 4x4c16 tiles run m = 9 in several blocks of rows (32 KiB of a each),
// keeping the -128 flags of the first block's strips in scratch for the others.
constexpr int32_t kLongK = 4096;

// Long K: only the first strip of 4 columns of b holds -128, at k = 0 and 8 of its first column,
// where every row of a holds -128 too. There the paired step (right for the other strips, which
// hold no -128) would wrap its int16 lane (2 * 128 * 128), so every block of rows must run that
// strip with the exact step: a flag lost between blocks changes the result.
void mark_first_strip(const Shape& s, int32_t lda, int32_t ldb, int8_t* a, int8_t* b) {
  for (int32_t j = 0; j < s.n; ++j) {
    for (int32_t t = 0; t < s.k; ++t) {
      int8_t& v = b[int64_t{j} * ldb + t];
      if (v == INT8_MIN) v = -127;
    }
  }
  b[0] = b[8] = INT8_MIN;
  for (int32_t i = 0; i < s.m; ++i) a[int64_t{i} * lda] = a[int64_t{i} * lda + 8] = INT8_MIN;
}

// One call of op on `path` with every operand at a page end; the output copied to out.
rt::Status run(Op op, const Shape& s, rt::Path path, uint32_t seed, bool per_channel,
               int32_t* out) {
  const int32_t lda = op == Op::kGemmS32 ? s.k + 3 : s.k;
  const int32_t ldb = op == Op::kGemmS32 ? s.k + 1 : s.k;
  const int32_t ldc = op == Op::kGemmS32 ? s.n + 2 : s.n;
  const size_t a_bytes = static_cast<size_t>((s.m - 1) * lda + s.k);
  const size_t b_bytes = op == Op::kFcS4 ? static_cast<size_t>((s.n * s.k + 1) / 2)
                                         : static_cast<size_t>((s.n - 1) * ldb + s.k);
  const size_t c_elems = static_cast<size_t>((s.m - 1) * ldc + s.n);
  const int32_t channels = per_channel ? s.n : 1;
  PageEnd a(a_bytes), b(b_bytes), bias(4 * static_cast<size_t>(s.n));
  PageEnd row_add(4 * static_cast<size_t>(s.m)), mult(4 * static_cast<size_t>(channels));
  PageEnd shift(4 * static_cast<size_t>(channels));
  PageEnd c(c_elems * (op == Op::kGemmS32 ? 4 : 1));
  if (!a.ok() || !b.ok() || !bias.ok() || !row_add.ok() || !mult.ok() || !shift.ok() || !c.ok()) {
    return rt::Status::kBadArgument;
  }
  tq::XorShift32 rng;
  rng.s = 0x9E3779B9u * seed + 7u;
  for (size_t i = 0; i < a_bytes; ++i)
    a.as<int8_t>()[i] = static_cast<int8_t>(rng.range(-128, 127));
  for (size_t i = 0; i < b_bytes; ++i)
    b.as<int8_t>()[i] = static_cast<int8_t>(rng.range(-128, 127));
  if (s.k >= kLongK && op != Op::kFcS4)
    mark_first_strip(s, lda, ldb, a.as<int8_t>(), b.as<int8_t>());
  for (int32_t j = 0; j < s.n; ++j) bias.as<int32_t>()[j] = rng.range(-30000, 30000);
  for (int32_t i = 0; i < s.m; ++i) row_add.as<int32_t>()[i] = rng.next_i32();
  for (int32_t j = 0; j < channels; ++j) {
    mult.as<int32_t>()[j] = rng.range(1 << 30, INT32_MAX);
    shift.as<int32_t>()[j] = rng.range(-12, -6);
  }
  const bool s8 = op == Op::kFcS8 || op == Op::kFcS8Prepacked;
  const int32_t in_off = rng.range(-127, 128), w_off = s8 ? rng.range(-127, 128) : 0;
  rt::FcParams p;
  p.input_offset = in_off;
  p.filter_offset = w_off;

  int32_t need = 0;
  const rt::FcDims fc{s.m, s.k, s.n};
  const rt::GemmDims gd{s.m, s.n, s.k, lda, ldb, ldc};
  const int32_t packed_size =
      op == Op::kFcS8Prepacked ? rt::fully_connected_s8_prepacked_size(fc, path) : 0;
  PageEnd packed(static_cast<size_t>((packed_size + 3) / 4 * 4));
  if (op == Op::kFcS8Prepacked) {
    if (!packed.ok() ||
        rt::fully_connected_s8_prepack(p, fc, b.as<int8_t>(), path, packed.as<void>(),
                                       packed_size) != rt::Status::kOk) {
      return rt::Status::kBadArgument;
    }
    need = rt::fully_connected_s8_prepacked_scratch_size(fc, packed.as<void>());
  }
  if (op == Op::kFcS8) need = rt::fully_connected_s8_scratch_size(fc, path);
  if (op == Op::kFcS4) need = rt::fully_connected_s4_scratch_size(fc, path);
  if (op == Op::kGemmS32) need = rt::gemm_s8s8_s32_scratch_size(gd, path);
  PageEnd scratch(static_cast<size_t>(need > 0 ? need : 1));
  if (!scratch.ok()) return rt::Status::kBadArgument;
  rt::Context ctx;
  ctx.scratch = need > 0 ? scratch.as<void>() : nullptr;
  ctx.scratch_size = need;
  ctx.path = path;

  rt::Status st = rt::Status::kBadArgument;
  if (op == Op::kGemmS32) {
    st = rt::gemm_s8s8_s32(ctx, gd, a.as<int8_t>(), in_off, b.as<int8_t>(), w_off,
                           seed % 2 == 0 ? row_add.as<int32_t>() : nullptr, bias.as<int32_t>(),
                           c.as<int32_t>());
    for (size_t i = 0; i < c_elems; ++i) out[i] = c.as<int32_t>()[i];
    return st;
  }
  p.output_offset = rng.range(-128, 127);
  rt::Requant rq;
  rq.multiplier = mult.as<int32_t>();
  rq.shift = shift.as<int32_t>();
  rq.per_channel = per_channel;
  rq.rounding = seed % 3 == 0 ? rt::Rounding::kSingle : rt::Rounding::kDouble;
  if (op == Op::kFcS8Prepacked) {
    st = rt::fully_connected_s8_prepacked(ctx, p, rq, fc, a.as<int8_t>(), packed.as<void>(),
                                          bias.as<int32_t>(), c.as<int8_t>());
  } else if (op == Op::kFcS8) {
    st = rt::fully_connected_s8(ctx, p, rq, fc, a.as<int8_t>(), b.as<int8_t>(), bias.as<int32_t>(),
                                c.as<int8_t>());
  } else {
    st = rt::fully_connected_s4(ctx, p, rq, fc, a.as<int8_t>(), b.as<uint8_t>(), bias.as<int32_t>(),
                                c.as<int8_t>());
  }
  for (size_t i = 0; i < c_elems; ++i) out[i] = c.as<int8_t>()[i];
  return st;
}

int32_t g_ref[9 * 11], g_got[9 * 11];

// Every path but the reference on shape s, against the reference path; returns the runs.
int check_shape(Op op, const Shape& s, uint32_t seed) {
  const bool per_channel = seed % 2 != 0;
  const auto count = static_cast<size_t>((s.m - 1) * (op == Op::kGemmS32 ? s.n + 2 : s.n) + s.n);
  std::memset(g_ref, 0, sizeof g_ref);
  TQ_CHECK_EQ(static_cast<int>(run(op, s, rt::Path::kReference, seed, per_channel, g_ref)), 0,
              "reference status");
  int runs = 0;
  for (rt::Path path : kPaths) {
    if (path == rt::Path::kReference) continue;
    if ((rt::supported_paths() & rt::path_bits(path)) == 0) continue;
    std::memset(g_got, 0, sizeof g_got);
    const rt::Status st = run(op, s, path, seed, per_channel, g_got);
    ++runs;
    TQ_CHECK_EQ(static_cast<int>(st), 0, "status");
    const bool same = std::memcmp(g_got, g_ref, count * sizeof(int32_t)) == 0;
    if (!same) {
      std::printf("op %d m=%d n=%d k=%d path %s differs from the reference path\n",
                  static_cast<int>(op), static_cast<int>(s.m), static_cast<int>(s.n),
                  static_cast<int>(s.k), rt::path_name(path));
    }
    TQ_CHECK_EQ(same, true, "output equal to the reference path's");
  }
  return runs;
}

}  // namespace

int main() {
  const int32_t ms[] = {1, 2, 3, 7, 8, 9};
  const int32_t ns[] = {1, 3, 8, 9};
  const int32_t ks[] = {1, 2, 3, 15, 16, 17, 33};
  const Op ops[] = {Op::kFcS8, Op::kFcS4, Op::kGemmS32, Op::kFcS8Prepacked};
  // Long K: neon's rows in blocks of 4 (k = 4099: 4, 4, 1; k = 8193: 4, 1), a short last strip.
  const Shape long_k[] = {{9, 9, 4099}, {5, 3, 8193}};
  uint32_t seed = 1;
  int runs = 0;
  for (Op op : ops) {
    for (int32_t m : ms) {
      for (int32_t n : ns) {
        for (int32_t k : ks) runs += check_shape(op, Shape{m, n, k}, seed++);
      }
    }
    for (const Shape& s : long_k) runs += check_shape(op, s, seed++);
  }
  std::printf("%d guarded path runs\n", runs);
  return tq::finish("test_bounds");
}
#else
#error "test_bounds needs mmap / mprotect (tests/arm/CMakeLists.txt builds it for Linux only)"
#endif
