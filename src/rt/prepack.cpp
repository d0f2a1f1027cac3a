// Prepacked fully-connected weights (see prepack.hpp): the header, its checks, and the hand-off
// to a path's packed gemm (PackedGemmKernels in path_kernels.hpp) or, for paths without one, to
// the plain kernel on the stored weights.
#include "tinyquant/rt/prepack.hpp"

#include <cstdint>
#include <cstring>

#include "path_kernels.hpp"
#include "validate.hpp"

namespace tinyquant::rt {
namespace {

constexpr uint32_t kMagic = 0x4B505154u;  // "TQPK" little-endian
// 2: AVX-512 VNNI moved to the k4 layout shared with AMX; 3: AVX2 moved to k-pair panels;
// 4: neon's weights gained their sums and -128 flags after them; 5: neondot's weights moved to
// its packed kernel's panel order, with their sums after them.
constexpr uint32_t kVersion = 5;
constexpr int64_t kHeaderBytes = 64;
constexpr int64_t kAlign = 64;

struct Header {
  uint32_t magic;
  uint32_t version;
  uint32_t path;  // path_bits of a concrete path
  int32_t n;
  int32_t k;
  int32_t filter_offset;
  int32_t payload_bytes;
  uint32_t check;          // mixes the fields above: catches a stray or overwritten buffer
  uint32_t payload_check;  // fnv1a() of the payload bytes, read only by the verify entry
  uint32_t reserved[7];
};
static_assert(sizeof(Header) == kHeaderBytes, "header is 64 bytes");

constexpr uint32_t kFnvBasis = 2166136261u;

// FNV-1a over bytes, continuing from x.
uint32_t fnv1a(uint32_t x, const uint8_t* bytes, int64_t count) noexcept {
  for (int64_t i = 0; i < count; ++i) {
    x ^= bytes[i];
    x *= 16777619u;
  }
  return x;
}

// fnv1a over the little-endian bytes of the fields before `check`.
uint32_t header_check(const Header& h) noexcept {
  const uint32_t f[7] = {h.magic,
                         h.version,
                         h.path,
                         static_cast<uint32_t>(h.n),
                         static_cast<uint32_t>(h.k),
                         static_cast<uint32_t>(h.filter_offset),
                         static_cast<uint32_t>(h.payload_bytes)};
  uint8_t bytes[sizeof f];
  for (size_t i = 0; i < sizeof f; ++i) bytes[i] = static_cast<uint8_t>(f[i / 4] >> (8 * (i % 4)));
  return fnv1a(kFnvBasis, bytes, sizeof bytes);
}

// The path's packed table, or null when the path stores plain weights.
const detail::PackedGemmKernels* packed_table(Path p) noexcept {
#if defined(TINYQUANT_HAVE_X86_PATHS)
  if (p == Path::kAvx2) return detail::avx2_packed_kernels();
  if (p == Path::kAvx512Vnni) return detail::avx512vnni_packed_kernels();
  if (p == Path::kAmx) return detail::amx_packed_kernels();
#elif defined(TINYQUANT_HAVE_NEON_PATHS)
  if (p == Path::kNeon) return detail::neon_packed_kernels();
  if (p == Path::kNeonDot) return detail::neondot_packed_kernels();
#else
  (void)p;
#endif
  return nullptr;
}

Path resolve(Path p) noexcept {
  return p == Path::kAuto ? default_path() : p;
}

int64_t payload_bytes(const FcDims& d, Path p) noexcept {
  const detail::PackedGemmKernels* t = packed_table(p);
  return t != nullptr ? t->packed_bytes(d.out_features, d.in_features)
                      : int64_t{d.out_features} * d.in_features;
}

// Reads and checks the header; kOk with *h filled, else kNullPointer / kBadArgument.
Status read_header(const void* packed, Header* h) noexcept {
  if (packed == nullptr) return Status::kNullPointer;
  if ((reinterpret_cast<uintptr_t>(packed) & 3u) != 0) return Status::kBadArgument;
  std::memcpy(h, packed, sizeof(Header));
  if (h->magic != kMagic || h->version != kVersion || h->check != header_check(*h)) {
    return Status::kBadArgument;
  }
  return Status::kOk;
}

// Scratch of a packed path's call on checked dims and header, INT32_MAX when it would not fit.
int32_t packed_scratch(const detail::PackedGemmKernels& t, const FcDims& dims,
                       const Header& h) noexcept {
  const int64_t bytes = int64_t{t.gemm_s8_packed_scratch(dims.batch, h.n, h.k)} + kAlign - 1;
  return bytes > INT32_MAX ? INT32_MAX : static_cast<int32_t>(bytes);
}

}  // namespace

int32_t fully_connected_s8_prepacked_size(const FcDims& dims, Path path) noexcept {
  FcDims d = dims;
  d.batch = 1;
  const Path p = resolve(path);
  if (detail::check_fc_dims(d) != Status::kOk || detail::path_kernels(p) == nullptr) return 0;
  const int64_t bytes = kHeaderBytes + payload_bytes(d, p);
  return bytes > INT32_MAX ? 0 : static_cast<int32_t>(bytes);
}

Status fully_connected_s8_prepack(const FcParams& params, const FcDims& dims, const int8_t* weights,
                                  Path path, void* packed, int32_t packed_size) noexcept {
  if (weights == nullptr || packed == nullptr) return Status::kNullPointer;
  FcDims d = dims;
  d.batch = 1;
  Status s = detail::check_fc_dims(d);
  if (s != Status::kOk) return s;
  if (!detail::in_range(params.filter_offset, -127, 128)) return Status::kBadOffset;
  const Path p = resolve(path);
  if (detail::path_kernels(p) == nullptr) return Status::kPathUnavailable;
  if ((reinterpret_cast<uintptr_t>(packed) & 3u) != 0) return Status::kBadArgument;
  const int32_t need = fully_connected_s8_prepacked_size(d, p);
  if (need == 0) return Status::kBadDimension;
  if (packed_size < need) return Status::kScratchTooSmall;

  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.path = path_bits(p);
  h.n = d.out_features;
  h.k = d.in_features;
  h.filter_offset = params.filter_offset;
  h.payload_bytes = static_cast<int32_t>(need - kHeaderBytes);
  h.check = header_check(h);
  auto* out = static_cast<uint8_t*>(packed);
  std::memcpy(out, &h, sizeof h);
  const detail::PackedGemmKernels* t = packed_table(p);
  if (t != nullptr) {
    t->pack(weights, d.out_features, d.in_features, d.in_features, params.filter_offset,
            out + kHeaderBytes);
  } else {
    std::memcpy(out + kHeaderBytes, weights, static_cast<size_t>(h.payload_bytes));
  }
  h.payload_check = fnv1a(kFnvBasis, out + kHeaderBytes, h.payload_bytes);
  std::memcpy(out, &h, sizeof h);
  return Status::kOk;
}

Status fully_connected_s8_prepacked_verify(const void* packed, int32_t packed_size) noexcept {
  // The size first: the header itself may lie past a short buffer.
  if (packed != nullptr && packed_size < kHeaderBytes) return Status::kBadArgument;
  Header h{};
  const Status s = read_header(packed, &h);
  if (s != Status::kOk) return s;
  if (h.payload_bytes < 0 || packed_size < 0 || packed_size - kHeaderBytes < h.payload_bytes) {
    return Status::kBadArgument;
  }
  const auto* payload = static_cast<const uint8_t*>(packed) + kHeaderBytes;
  return fnv1a(kFnvBasis, payload, h.payload_bytes) == h.payload_check ? Status::kOk
                                                                       : Status::kBadArgument;
}

Path fully_connected_s8_prepacked_path(const void* packed) noexcept {
  Header h{};
  if (read_header(packed, &h) != Status::kOk) return Path::kAuto;
  return static_cast<Path>(h.path);
}

namespace {

// Scratch of either run on a packed buffer (s32: the raw-int32 one), 0 for bad dims or buffer.
int32_t scratch_query(const FcDims& dims, const void* packed, bool s32) noexcept {
  Header h{};
  if (read_header(packed, &h) != Status::kOk || detail::check_fc_dims(dims) != Status::kOk) {
    return 0;
  }
  const auto p = static_cast<Path>(h.path);
  const detail::PackedGemmKernels* t = packed_table(p);
  if (t != nullptr) return packed_scratch(*t, dims, h);  // covers both runs
  if (!s32) return fully_connected_s8_scratch_size(dims, p);
  return gemm_s8s8_s32_scratch_size(GemmDims{dims.batch, dims.out_features, dims.in_features}, p);
}

// The checked header matches the call (dims, filter_offset, ctx.path, payload size) and its
// path runs on this CPU.
Status check_match(const Context& ctx, const FcParams& params, const FcDims& dims,
                   const Header& h) noexcept {
  const auto p = static_cast<Path>(h.path);
  if (h.n != dims.out_features || h.k != dims.in_features ||
      h.filter_offset != params.filter_offset || (ctx.path != Path::kAuto && ctx.path != p) ||
      h.payload_bytes != payload_bytes(dims, p)) {
    return Status::kBadArgument;
  }
  if (detail::path_kernels(p) == nullptr) return Status::kPathUnavailable;
  return Status::kOk;
}

// Checks the caller's scratch for a packed path's run on checked dims and header; on kOk,
// *scratch is its 64-aligned start (null when none is needed).
Status packed_scratch_of(const Context& ctx, const detail::PackedGemmKernels& t, const FcDims& dims,
                         const Header& h, void** scratch) noexcept {
  const int32_t need = packed_scratch(t, dims, h);
  if (need == INT32_MAX) return Status::kBadDimension;  // scratch would not fit in int32
  const Status s = detail::check_scratch(ctx, need);
  if (s != Status::kOk) return s;
  const auto addr = reinterpret_cast<uintptr_t>(ctx.scratch);
  *scratch = need > 0 ? reinterpret_cast<void*>((addr + static_cast<uintptr_t>(kAlign - 1)) &
                                                ~static_cast<uintptr_t>(kAlign - 1))
                      : nullptr;
  return Status::kOk;
}

const int8_t* payload_of(const void* packed) noexcept {
  return static_cast<const int8_t*>(packed) + kHeaderBytes;
}

}  // namespace

int32_t fully_connected_s8_prepacked_scratch_size(const FcDims& dims, const void* packed) noexcept {
  return scratch_query(dims, packed, false);
}

int32_t fully_connected_s8_prepacked_s32_scratch_size(const FcDims& dims,
                                                      const void* packed) noexcept {
  return scratch_query(dims, packed, true);
}

Status fully_connected_s8_prepacked(const Context& ctx, const FcParams& params,
                                    const Requant& requant, const FcDims& dims, const int8_t* input,
                                    const void* packed, const int32_t* bias,
                                    int8_t* output) noexcept {
  if (input == nullptr || output == nullptr) return Status::kNullPointer;
  Header h{};
  Status s = read_header(packed, &h);
  if (s != Status::kOk) return s;
  s = detail::check_fc_dims(dims);
  if (s == Status::kOk) {
    s = detail::check_offsets(params.input_offset, params.filter_offset, params.output_offset);
  }
  if (s == Status::kOk) s = detail::check_activation(params.act_min, params.act_max);
  if (s == Status::kOk) s = detail::check_requant(requant, dims.out_features);
  if (s == Status::kOk) s = check_match(ctx, params, dims, h);
  if (s != Status::kOk) return s;
  const auto p = static_cast<Path>(h.path);
  const detail::PackedGemmKernels* t = packed_table(p);
  if (t == nullptr) {
    Context c = ctx;
    c.path = p;
    return fully_connected_s8(c, params, requant, dims, input, payload_of(packed), bias, output);
  }
  void* scratch = nullptr;
  s = packed_scratch_of(ctx, *t, dims, h, &scratch);  // header and dims checked above
  if (s != Status::kOk) return s;
  detail::GemmS8Args g = detail::fc_gemm_args(params, requant, dims, input, bias, output);
  g.scratch = scratch;
  t->gemm_s8_packed(g, payload_of(packed));
  return Status::kOk;
}

Status fully_connected_s8_prepacked_s32(const Context& ctx, const FcParams& params,
                                        const FcDims& dims, const int8_t* input, const void* packed,
                                        const int32_t* bias, int32_t* acc) noexcept {
  if (input == nullptr || acc == nullptr) return Status::kNullPointer;
  Header h{};
  Status s = read_header(packed, &h);
  if (s != Status::kOk) return s;
  s = detail::check_fc_dims(dims);
  if (s == Status::kOk && (!detail::in_range(params.input_offset, -127, 128) ||
                           !detail::in_range(params.filter_offset, -127, 128))) {
    s = Status::kBadOffset;
  }
  if (s == Status::kOk) s = check_match(ctx, params, dims, h);
  if (s != Status::kOk) return s;
  const auto p = static_cast<Path>(h.path);
  const detail::PackedGemmKernels* t = packed_table(p);
  if (t == nullptr) {  // plain weights: the path's int32 GEMM on them
    Context c = ctx;
    c.path = p;
    return gemm_s8s8_s32(c, GemmDims{dims.batch, dims.out_features, dims.in_features}, input,
                         params.input_offset, payload_of(packed), params.filter_offset, nullptr,
                         bias, acc);
  }
  void* scratch = nullptr;
  s = packed_scratch_of(ctx, *t, dims, h, &scratch);
  if (s != Status::kOk) return s;
  detail::GemmS32Args g;
  detail::set_fc_shape(&g, params, dims, input, acc);
  g.col_add = bias;
  g.scratch = scratch;
  t->gemm_s32_packed(g, payload_of(packed));
  return Status::kOk;
}

}  // namespace tinyquant::rt
