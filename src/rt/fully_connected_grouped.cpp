// Grouped fully-connected kernels (see grouped.hpp): argument checks, path choice, the portable
// scalar definition, and the per-batch-row preparation the SIMD and smlad bodies share
// (grouped_paths.hpp). Every path is bit-identical to the scalar loops below.
#include "tinyquant/rt/grouped.hpp"

#include "grouped_paths.hpp"
#include "scratch.hpp"
#include "validate.hpp"

namespace tinyquant::rt {
namespace {

constexpr int32_t kChunk = 256;  // weights decoded per step: (255 * 255) * 256 < 2^31

// Weights [i, i + n) of the row-major stream as int8, n <= kChunk. Branch-free so it vectorises.
inline void decode(const int8_t* w8, const uint8_t* w4, int64_t i, int32_t n,
                   int8_t* out) noexcept {
  if (w8 != nullptr) {
    for (int32_t t = 0; t < n; ++t) out[t] = w8[i + t];
    return;
  }
  int32_t t = 0;
  if ((i & 1) != 0) {  // starts on a high nibble
    out[t++] = static_cast<int8_t>(((w4[i >> 1] >> 4) ^ 8) - 8);
  }
  const uint8_t* src = w4 + ((i + t) >> 1);
  const int32_t pairs = (n - t) / 2;
  for (int32_t j = 0; j < pairs; ++j) {  // two weights per byte, low nibble first
    const int32_t byte = src[j];
    out[t + 2 * j] = static_cast<int8_t>(((byte & 0x0F) ^ 8) - 8);
    out[t + 2 * j + 1] = static_cast<int8_t>(((byte >> 4) ^ 8) - 8);
  }
  t += 2 * pairs;
  if (t < n) out[t] = static_cast<int8_t>(((src[pairs] & 0x0F) ^ 8) - 8);
}

int32_t group_count(const FcDims& d, const GroupScales& g) noexcept {
  return (d.in_features - 1) / g.group_size + 1;
}

// The longest group of a row.
int32_t longest_group(const FcDims& d, const GroupScales& g) noexcept {
  return g.group_size < d.in_features ? g.group_size : d.in_features;
}

// bias + t, requantized, offset and clamped: the same for every path.
inline int8_t finish(const FcParams& p, const Requant& rq, const int32_t* bias, int32_t o,
                     int32_t t) noexcept {
  const int32_t acc = wrap_add(bias != nullptr ? bias[o] : 0, t);
  const int32_t c = rq.per_channel ? o : 0;
  int32_t out = wrap_add(requantize(acc, rq.multiplier[c], rq.shift[c], rq.rounding),
                         p.output_offset);  // wraps like the other kernels
  out = out < p.act_min ? p.act_min : (out > p.act_max ? p.act_max : out);
  return static_cast<int8_t>(out);
}

// The definition: one output row at a time, each group's sum in wrapping 32 bits.
void run_scalar(const FcParams& p, const Requant& rq, const FcDims& d, const GroupScales& g,
                const int8_t* input, const int8_t* w8, const uint8_t* w4, const int32_t* bias,
                int8_t* output) noexcept {
  const int32_t groups = group_count(d, g);
  const int32_t k_total = d.in_features;
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = input + int64_t{b} * k_total;
    for (int32_t o = 0; o < d.out_features; ++o) {
      const int64_t row = int64_t{o} * k_total;
      const uint8_t* ratio = g.ratio + int64_t{o} * groups;
      int64_t total = 0;
      for (int32_t gi = 0; gi < groups; ++gi) {
        const int32_t k0 = gi * g.group_size;
        const int32_t k1 = k_total - k0 > g.group_size ? k0 + g.group_size : k_total;
        int32_t acc = 0;
        for (int32_t c0 = k0; c0 < k1; c0 += kChunk) {
          const int32_t n = k1 - c0 < kChunk ? k1 - c0 : kChunk;
          int8_t wv[kChunk];
          decode(w8, w4, row + c0, n, wv);
          int32_t part = 0;  // |part| < 255 * 255 * kChunk: no overflow
          for (int32_t t = 0; t < n; ++t)
            part += (x[c0 + t] + p.input_offset) * (wv[t] + p.filter_offset);
          acc = wrap_add(acc, part);
        }
        total += int64_t{acc} * (int32_t{ratio[gi]} + 1);
      }
      const auto t = static_cast<int32_t>((total + (int64_t{1} << 7)) >> 8);
      output[int64_t{b} * d.out_features + o] = finish(p, rq, bias, o, t);
    }
  }
}

bool available(Path p) noexcept {
  return p == Path::kReference || detail::runnable_path(p);
}

// kAuto follows a forced reference, smlad or avx2 path (force_path / TINYQUANT_PATH) and the
// AArch64 paths (forced or default), else takes the widest x86 path the CPU has (AMX CPUs run
// the AVX-512 VNNI body), else the reference.
Path resolve(Path requested) noexcept {
  if (requested != Path::kAuto) return requested;
  const Path global = default_path();
  if (global == Path::kReference || global == Path::kSmlad || global == Path::kAvx2 ||
      global == Path::kNeon || global == Path::kNeonDot) {
    return global;
  }
  if (available(Path::kAvx512Vnni)) return Path::kAvx512Vnni;
  return available(Path::kAvx2) ? Path::kAvx2 : Path::kReference;
}

// Scratch carving: parts 64-byte aligned (4 for smlad) from an aligned base.
struct Carver {
  int64_t used = 0;
  int64_t align = 64;
  int64_t take(int64_t bytes) noexcept {
    const int64_t at = (used + align - 1) / align * align;
    used = at + bytes;
    return at;
  }
  int64_t total() const noexcept { return used + align - 1; }  // any base alignment
};

#if defined(TINYQUANT_HAVE_X86_PATHS)
int32_t chunk_of(Path p, bool s4) noexcept {
  if (p == Path::kAvx512Vnni)
    return s4 ? detail::kGroupedChunkAvx512 : detail::kGroupedChunkAvx512S8;
  return s4 ? detail::kGroupedChunkAvx2 : detail::kGroupedChunkAvx2S8;
}

// k per int32 lane: int4 8 (two nibbles per byte, four bytes per lane), int8 4.
int32_t lane_k(bool s4) noexcept {
  return s4 ? 8 : 4;
}

// Bytes of x_even per k: int4 half a byte (x_odd has the other half), int8 one byte, AVX2 int8
// two (x + io as int16).
int64_t x_bytes(Path p, bool s4, int64_t k) noexcept {
  if (s4) return k / 2;
  return p == Path::kAvx2 ? 2 * k : k;
}

struct LaneLayout {
  int64_t x_even, x_odd, group_x, chunk_group, lane_group, ratio_row, t, bytes;
};

LaneLayout lane_layout(const FcDims& d, const GroupScales& g, Path p, bool s4) noexcept {
  const int32_t chunk = chunk_of(p, s4);
  const int64_t chunks = (int64_t{d.in_features} + chunk - 1) / chunk;
  const int64_t lanes = chunk / lane_k(s4);
  const int64_t groups = group_count(d, g);
  Carver c;
  LaneLayout l{};
  l.x_even = c.take(x_bytes(p, s4, chunks * chunk));
  l.x_odd = c.take(s4 ? chunks * chunk / 2 : 0);
  l.group_x = c.take((groups + lanes) * 4);
  l.chunk_group = c.take(chunks * 4);
  l.lane_group = c.take(chunks * lanes * 4);
  // AVX2: two rows' r (the next row's is stored while this one runs).
  l.ratio_row = c.take(p == Path::kAvx2 ? 2 * detail::avx2_ratio_stride(groups) * 4 : 0);
  l.t = c.take(int64_t{d.out_features} * 4);
  l.bytes = c.total();
  return l;
}

// Whether the x86 lane bodies run this shape (grouped_paths.hpp); others run scalar.
bool lane_fits(const FcDims& d, const GroupScales& g, Path p, bool s4) noexcept {
  return (!s4 || d.in_features % 2 == 0) &&
         (g.group_size % lane_k(s4) == 0 || g.group_size >= d.in_features) &&
         longest_group(d, g) <= detail::kGroupedLaneMaxGroup &&
         lane_layout(d, g, p, s4).bytes <= INT32_MAX;
}
#endif

// The row bodies' scratch (smlad, NEON): smlad's x + io pairs (2 bytes per k, in blocks of 8),
// fo * X_g, t; NEON's unpacked int4 rows.
struct RowLayout {
  int64_t quads, group_fx, unpacked, t, bytes;
};

RowLayout row_layout(const FcDims& d, const GroupScales& g, Path p, bool s4) noexcept {
  Carver c;
  c.align = p == Path::kSmlad ? 4 : 16;
  RowLayout l{};
  l.quads = c.take(p == Path::kSmlad ? (int64_t{d.in_features} + 7) / 8 * 16 : 0);
  l.group_fx = c.take(int64_t{group_count(d, g)} * 4);
  l.unpacked =
      c.take(p != Path::kSmlad && s4 ? int64_t{detail::kGroupedNeonRows} * d.in_features : 0);
  l.t = c.take(int64_t{d.out_features} * 4);
  l.bytes = c.total();
  return l;
}

bool row_fits(const FcDims& d, const GroupScales& g, Path p, bool s4) noexcept {
  return (p != Path::kSmlad || !s4 || longest_group(d, g) < detail::kGroupedSmladMaxGroup) &&
         row_layout(d, g, p, s4).bytes <= INT32_MAX;
}

bool row_path(Path p) noexcept {
#if defined(TINYQUANT_HAVE_NEON_PATHS)
  if (p == Path::kNeon || p == Path::kNeonDot) return true;
#endif
  return p == Path::kSmlad;
}

// Scratch bytes of `path` (already resolved) for this shape; 0 when it runs the scalar loops.
int32_t scratch_bytes(const FcDims& d, const GroupScales& g, Path path, bool s4) noexcept {
  if (detail::check_fc_dims(d) != Status::kOk || g.group_size < 1 || !available(path)) return 0;
  if (row_path(path)) {
    return row_fits(d, g, path, s4) ? static_cast<int32_t>(row_layout(d, g, path, s4).bytes) : 0;
  }
#if defined(TINYQUANT_HAVE_X86_PATHS)
  if (path == Path::kAvx2 || path == Path::kAvx512Vnni) {
    return lane_fits(d, g, path, s4) ? static_cast<int32_t>(lane_layout(d, g, path, s4).bytes) : 0;
  }
#endif
  return 0;
}

template <class T>
T* at(uint8_t* base, int64_t offset) noexcept {
  return reinterpret_cast<T*>(base + offset);
}

// X_g = sum_{k in g} (x + io), g < groups.
void group_sums(const int8_t* x, const FcDims& d, const GroupScales& g, int32_t io,
                int32_t* out) noexcept {
  const int32_t groups = group_count(d, g);
  for (int32_t gi = 0; gi < groups; ++gi) {
    const int32_t k0 = gi * g.group_size;
    const int32_t k1 = d.in_features - k0 > g.group_size ? k0 + g.group_size : d.in_features;
    uint32_t s = 0;  // wraps like the definition's sums (the lane bodies bound the groups)
    for (int32_t k = k0; k < k1; ++k) s += static_cast<uint32_t>(x[k] + io);
    out[gi] = static_cast<int32_t>(s);
  }
}

// fo * X_g per group (wrapping), g < groups.
void group_fx(const int8_t* x, const FcDims& d, const GroupScales& g, const FcParams& p,
              uint32_t* out) noexcept {
  group_sums(x, d, g, p.input_offset, reinterpret_cast<int32_t*>(out));
  const int32_t groups = group_count(d, g);
  for (int32_t gi = 0; gi < groups; ++gi) out[gi] *= static_cast<uint32_t>(p.filter_offset);
}

#if defined(TINYQUANT_HAVE_X86_PATHS)
void run_lanes(Path path, void* scratch, const FcParams& p, const Requant& rq, const FcDims& d,
               const GroupScales& g, const int8_t* input, const int8_t* w8, const uint8_t* w4,
               const int32_t* bias, int8_t* output) noexcept {
  const bool s4 = w4 != nullptr;
  const bool avx2_s8 = !s4 && path == Path::kAvx2;
  const int32_t chunk = chunk_of(path, s4);
  const LaneLayout l = lane_layout(d, g, path, s4);
  uint8_t* base = detail::align_scratch(scratch, 64);
  detail::GroupedLaneArgs a;
  a.n = d.out_features;
  a.k = d.in_features;
  a.groups = group_count(d, g);
  a.chunks = (d.in_features + chunk - 1) / chunk;
  a.lanes = chunk / lane_k(s4);
  a.w4 = w4;
  a.w8 = w8;
  a.ratio = g.ratio;
  auto* x_even = at<int8_t>(base, l.x_even);
  auto* x_odd = at<int8_t>(base, l.x_odd);
  auto* group_x = at<int32_t>(base, l.group_x);
  auto* chunk_group = at<int32_t>(base, l.chunk_group);
  auto* lane_group = at<int32_t>(base, l.lane_group);
  a.x_even = x_even;
  a.x_odd = x_odd;
  a.group_x = group_x;
  a.chunk_group = chunk_group;
  a.lane_group = lane_group;
  a.ratio_row = at<int32_t>(base, l.ratio_row);
  a.input_offset = p.input_offset;
  a.x_scale = p.filter_offset - (s4 ? 8 : (avx2_s8 ? 0 : 128));
  a.t = at<int32_t>(base, l.t);
  a.params = &p;
  a.rq = &rq;
  a.bias = bias;
  // Where chunks and groups tile each other, every chunk but the last (whose lanes past k
  // keep the last group) has the first chunk's lane table.
  const bool repeats = chunk % g.group_size == 0 || g.group_size % chunk == 0;
  for (int32_t c = 0; c < a.chunks; ++c) {  // one division per chunk, then steps
    const int32_t first = c * chunk / g.group_size;
    chunk_group[c] = first;
    if (repeats && c > 0 && c + 1 < a.chunks) {
      for (int32_t lane = 0; lane < a.lanes; ++lane)
        lane_group[c * a.lanes + lane] = lane_group[lane];
      continue;
    }
    int32_t gi = first;
    int64_t next = int64_t{first + 1} * g.group_size;    // first k of group gi + 1
    for (int32_t block = 0; block < a.lanes; ++block) {  // the chunk's k blocks in k order
      const int32_t k = c * chunk + lane_k(s4) * block;
      while (k >= next && gi + 1 < a.groups) {  // lanes past k keep the last group (times 0)
        ++gi;
        next += g.group_size;
      }
      int32_t lane = block;
      for (int32_t i = 0; avx2_s8 && i < a.lanes; ++i) {
        if (detail::kGroupedAvx2S8LaneBlock[i] == block) lane = i;
      }
      lane_group[c * a.lanes + lane] = gi - first;
    }
  }
  for (int32_t i = 0; i < a.lanes; ++i) group_x[a.groups + i] = 0;
  const int32_t padded = a.chunks * chunk;
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = input + int64_t{b} * d.in_features;
    if (s4) {
      const int32_t pairs = d.in_features / 2;  // in_features is even here
      for (int32_t j = 0; j < pairs; ++j) {
        x_even[j] = x[2 * j];
        x_odd[j] = x[2 * j + 1];
      }
      for (int32_t j = pairs; j < padded / 2; ++j) x_even[j] = x_odd[j] = 0;
    } else if (avx2_s8) {
      auto* xw = at<int16_t>(base, l.x_even);
      for (int32_t j = 0; j < d.in_features; ++j)
        xw[j] = static_cast<int16_t>(x[j] + p.input_offset);
      for (int32_t j = d.in_features; j < padded; ++j) xw[j] = 0;
    } else {
      for (int32_t j = 0; j < d.in_features; ++j) x_even[j] = x[j];
      for (int32_t j = d.in_features; j < padded; ++j) x_even[j] = 0;
    }
    group_sums(x, d, g, p.input_offset, group_x);
    a.out = output + int64_t{b} * d.out_features;
    if (avx2_s8)
      detail::s8s8_grouped_fc_1x1c32_avx2(a);
    else if (!s4)
      detail::s8s8_grouped_fc_1x1c64_avx512vnni(a);
    else if (path == Path::kAvx512Vnni)
      detail::s8s4_grouped_fc_1x1c128_avx512vnni(a);
    else
      detail::s8s4_grouped_fc_1x1c64_avx2(a);
  }
}
#endif

// x + io of one batch row as smlad's int16 pairs (grouped_paths.hpp), four words per block of
// 8 k: int4 (a0, a4) (a2, a6) (a1, a5) (a3, a7), int8 (a0, a2) (a1, a3) (a4, a6) (a5, a7).
void smlad_pairs(const int8_t* x, int32_t k, int32_t io, bool s4, uint32_t* quads) noexcept {
  static constexpr int32_t kS4[8] = {0, 4, 2, 6, 1, 5, 3, 7};
  static constexpr int32_t kS8[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  const int32_t* order = s4 ? kS4 : kS8;
  const int32_t blocks = (k + 7) / 8;
  for (int32_t q = 0; q < blocks; ++q) {
    for (int32_t i = 0; i < 4; ++i) {
      const int32_t k0 = 8 * q + order[2 * i];
      const int32_t k1 = 8 * q + order[2 * i + 1];
      const auto v0 = static_cast<uint16_t>(k0 < k ? x[k0] + io : 0);
      const auto v1 = static_cast<uint16_t>(k1 < k ? x[k1] + io : 0);
      quads[4 * q + i] = v0 | (uint32_t{v1} << 16);
    }
  }
}

// The row bodies: smlad, NEON, NEON dot product.
void run_rows(Path path, void* scratch, const FcParams& p, const Requant& rq, const FcDims& d,
              const GroupScales& g, const int8_t* input, const int8_t* w8, const uint8_t* w4,
              const int32_t* bias, int8_t* output) noexcept {
  const bool s4 = w4 != nullptr;
  const RowLayout l = row_layout(d, g, path, s4);
  uint8_t* base = detail::align_scratch(scratch, path == Path::kSmlad ? 4 : 16);
  detail::GroupedRowArgs a;
  a.n = d.out_features;
  a.k = d.in_features;
  a.group_size = g.group_size;
  a.groups = group_count(d, g);
  a.w4 = w4;
  a.w8 = w8;
  a.ratio = g.ratio;
  a.input_offset = p.input_offset;
  auto* quads = at<uint32_t>(base, l.quads);
  auto* fx = at<uint32_t>(base, l.group_fx);
  a.quads = quads;
  a.group_fx = fx;
  a.unpacked = at<int8_t>(base, l.unpacked);
  a.t = at<int32_t>(base, l.t);
  void (*body)(const detail::GroupedRowArgs&) noexcept =
      s4 ? detail::s8s4_grouped_fc_1x1c8_smlad : detail::s8s8_grouped_fc_1x1c4_smlad;
#if defined(TINYQUANT_HAVE_NEON_PATHS)
  if (path == Path::kNeon)
    body = s4 ? detail::s8s4_grouped_fc_1x4c16_neon : detail::s8s8_grouped_fc_1x4c16_neon;
  if (path == Path::kNeonDot)
    body = s4 ? detail::s8s4_grouped_fc_1x4c16_neondot : detail::s8s8_grouped_fc_1x4c16_neondot;
#endif
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = input + int64_t{b} * d.in_features;
    a.x = x;
    if (path == Path::kSmlad) smlad_pairs(x, d.in_features, p.input_offset, s4, quads);
    group_fx(x, d, g, p, fx);
    body(a);
    int8_t* out = output + int64_t{b} * d.out_features;
    for (int32_t o = 0; o < d.out_features; ++o) out[o] = finish(p, rq, bias, o, a.t[o]);
  }
}

Status run(const Context& ctx, const FcParams& p, const Requant& rq, const FcDims& d,
           const GroupScales& g, const int8_t* input, const int8_t* w8, const uint8_t* w4,
           const int32_t* bias, int8_t* output) noexcept {
  if (input == nullptr || (w8 == nullptr && w4 == nullptr) || output == nullptr ||
      g.ratio == nullptr) {
    return Status::kNullPointer;
  }
  Status s = detail::check_fc_dims(d);
  if (s != Status::kOk) return s;
  if (g.group_size < 1) return Status::kBadArgument;
  s = detail::check_offsets(p.input_offset, p.filter_offset, p.output_offset);
  if (s != Status::kOk) return s;
  s = detail::check_activation(p.act_min, p.act_max);
  if (s != Status::kOk) return s;
  s = detail::check_requant(rq, d.out_features);
  if (s != Status::kOk) return s;

  const Path path = resolve(ctx.path);
  if (path == Path::kAmx) return Status::kPathUnavailable;
  if (!available(path)) return Status::kPathUnavailable;
  const int32_t need = scratch_bytes(d, g, path, w4 != nullptr);
  if (need > 0 && (ctx.scratch == nullptr || ctx.scratch_size < need))
    return Status::kScratchTooSmall;
  if (need == 0) {
    run_scalar(p, rq, d, g, input, w8, w4, bias, output);
  } else if (row_path(path)) {
    run_rows(path, ctx.scratch, p, rq, d, g, input, w8, w4, bias, output);
  } else {
#if defined(TINYQUANT_HAVE_X86_PATHS)
    run_lanes(path, ctx.scratch, p, rq, d, g, input, w8, w4, bias, output);
#endif
  }
  return Status::kOk;
}

}  // namespace

Status fully_connected_s4_grouped(const Context& ctx, const FcParams& params,
                                  const Requant& requant, const FcDims& dims,
                                  const GroupScales& groups, const int8_t* input,
                                  const uint8_t* packed_weights, const int32_t* bias,
                                  int8_t* output) noexcept {
  if (packed_weights == nullptr) return Status::kNullPointer;
  return run(ctx, params, requant, dims, groups, input, nullptr, packed_weights, bias, output);
}

Status fully_connected_s8_grouped(const Context& ctx, const FcParams& params,
                                  const Requant& requant, const FcDims& dims,
                                  const GroupScales& groups, const int8_t* input,
                                  const int8_t* weights, const int32_t* bias,
                                  int8_t* output) noexcept {
  if (weights == nullptr) return Status::kNullPointer;
  return run(ctx, params, requant, dims, groups, input, weights, nullptr, bias, output);
}

int32_t fully_connected_s4_grouped_scratch_size(const FcDims& dims, const GroupScales& groups,
                                                Path path) noexcept {
  return scratch_bytes(dims, groups, resolve(path), true);
}

int32_t fully_connected_s8_grouped_scratch_size(const FcDims& dims, const GroupScales& groups,
                                                Path path) noexcept {
  return scratch_bytes(dims, groups, resolve(path), false);
}

}  // namespace tinyquant::rt
