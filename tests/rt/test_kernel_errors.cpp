// Every bad argument of the public kernels returns its documented Status and leaves the output
// untouched. Each test starts from a valid call (checked to succeed) and breaks one thing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

namespace rt = tinyquant::rt;
using rt::Path;
using rt::Status;

namespace {

constexpr int8_t kSentinel = 0x33;

// A path this build or CPU cannot run, or kAuto when every path is supported.
Path unavailable_path() {
  for (Path p : {Path::kNeonDot, Path::kNeon, Path::kAvx512Vnni, Path::kAvx2}) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) return p;
  }
  return Path::kAuto;
}

// A valid fully-connected call: batch 2, 5 -> 3, per-channel requantization.
struct Fc {
  std::vector<int8_t> x = std::vector<int8_t>(10, 3), w = std::vector<int8_t>(15, -2);
  std::vector<uint8_t> w4 = std::vector<uint8_t>(8, 0x21);
  std::vector<int32_t> bias = {1, 2, 3}, mult = {1 << 30, 1 << 30, 1 << 30}, shift = {-2, -2, -2};
  std::vector<int8_t> out = std::vector<int8_t>(6, kSentinel);
  rt::FcParams params;
  rt::FcDims dims{2, 5, 3};
  rt::Requant rq;
  rt::Context ctx;
  bool s4 = false;

  std::vector<uint8_t> scratch;

  Fc() {
    rq.multiplier = mult.data();
    rq.shift = shift.data();
    rq.per_channel = true;
    const int32_t need = std::max(rt::fully_connected_s8_scratch_size(dims, ctx.path),
                                  rt::fully_connected_s4_scratch_size(dims, ctx.path));
    scratch.resize(static_cast<size_t>(need) + 1);
    ctx.scratch = scratch.data();
    ctx.scratch_size = need;
  }
  Status run() {
    return s4 ? rt::fully_connected_s4(ctx, params, rq, dims, x.data(), w4.data(), bias.data(),
                                       out.data())
              : rt::fully_connected_s8(ctx, params, rq, dims, x.data(), w.data(), bias.data(),
                                       out.data());
  }
  bool untouched() const {
    for (int8_t v : out) {
      if (v != kSentinel) return false;
    }
    return true;
  }
};

// A valid conv: 1 x 5 x 5 x 4 input, 3x3 kernel, 6 outputs in 2 groups, pad 1; scratch sized
// for the default path.
struct Conv {
  std::vector<int8_t> x = std::vector<int8_t>(100, 1), w = std::vector<int8_t>(108, 1);
  std::vector<uint8_t> w4 = std::vector<uint8_t>(54, 0x11);
  std::vector<int32_t> mult = std::vector<int32_t>(8, 1 << 30);
  std::vector<int32_t> shift = std::vector<int32_t>(8, -3);
  std::vector<int8_t> out = std::vector<int8_t>(200, kSentinel);
  std::vector<uint8_t> scratch;
  rt::ConvParams params;
  rt::ConvDims dims{1, 5, 5, 4, 3, 3, 5, 5, 6};
  rt::Requant rq;
  rt::Context ctx;
  enum Kind { kS8, kS4, kDepthwise } kind = kS8;

  explicit Conv(Kind k = kS8) : kind(k) {
    params.pad_top = params.pad_left = 1;
    params.groups = 2;
    if (kind == kDepthwise) {
      params.groups = 1;
      params.depth_multiplier = 2;
      dims.out_c = 8;
    }
    rq.multiplier = mult.data();
    rq.shift = shift.data();
    rq.per_channel = true;
    scratch.resize(static_cast<size_t>(need()) + 1);
    ctx.scratch = scratch.data();
    ctx.scratch_size = need();
  }
  int32_t need() const {
    switch (kind) {
      case kS4:
        return rt::conv2d_s4_scratch_size(params, dims, ctx.path);
      case kDepthwise:
        return rt::depthwise_conv2d_s8_scratch_size(params, dims, ctx.path);
      default:
        return rt::conv2d_s8_scratch_size(params, dims, ctx.path);
    }
  }
  Status run() {
    switch (kind) {
      case kS4:
        return rt::conv2d_s4(ctx, params, rq, dims, x.data(), w4.data(), nullptr, out.data());
      case kDepthwise:
        return rt::depthwise_conv2d_s8(ctx, params, rq, dims, x.data(), w.data(), nullptr,
                                       out.data());
      default:
        return rt::conv2d_s8(ctx, params, rq, dims, x.data(), w.data(), nullptr, out.data());
    }
  }
  bool untouched() const {
    for (int8_t v : out) {
      if (v != kSentinel) return false;
    }
    return true;
  }
};

// Expects `breaker` applied to a fresh valid case to make run() return `want` without writing.
template <typename Case>
void expect_rejected(Status want, const std::function<void(Case&)>& breaker, Case fresh = Case()) {
  {
    Case ok = fresh;
    ok.ctx.scratch = ok.scratch_ptr();
    ASSERT_EQ(ok.run(), Status::kOk) << "baseline call must succeed";
  }
  Case c = fresh;
  c.ctx.scratch = c.scratch_ptr();
  breaker(c);
  EXPECT_EQ(c.run(), want) << "got " << rt::status_name(c.run());
  EXPECT_TRUE(c.untouched()) << "output written despite " << rt::status_name(want);
}

}  // namespace

namespace {
// Fc or Conv, whose copies point at their own buffers.
template <class Base>
struct Rebound : Base {
  using Base::Base;
  Rebound() = default;
  Rebound(const Rebound& o) : Base(o) { rebind(); }
  Rebound& operator=(const Rebound& o) {
    Base::operator=(o);
    rebind();
    return *this;
  }
  void* scratch_ptr() { return this->scratch.data(); }
  void rebind() {
    this->rq.multiplier = this->mult.data();
    this->rq.shift = this->shift.data();
    this->ctx.scratch = this->scratch.data();
  }
};
using FcCase = Rebound<Fc>;
using ConvCase = Rebound<Conv>;
using FcFix = std::function<void(FcCase&)>;
using ConvFix = std::function<void(ConvCase&)>;
}  // namespace

TEST(KernelErrors, FcNullPointers) {
  for (bool s4 : {false, true}) {
    FcCase base;
    base.s4 = s4;
    FcCase c = base;
    EXPECT_EQ(rt::fully_connected_s8(c.ctx, c.params, c.rq, c.dims, nullptr, c.w.data(), nullptr,
                                     c.out.data()),
              Status::kNullPointer);
    EXPECT_EQ(rt::fully_connected_s8(c.ctx, c.params, c.rq, c.dims, c.x.data(), nullptr, nullptr,
                                     c.out.data()),
              Status::kNullPointer);
    EXPECT_EQ(rt::fully_connected_s4(c.ctx, c.params, c.rq, c.dims, c.x.data(), nullptr, nullptr,
                                     c.out.data()),
              Status::kNullPointer);
    EXPECT_EQ(rt::fully_connected_s4(c.ctx, c.params, c.rq, c.dims, nullptr, c.w4.data(), nullptr,
                                     c.out.data()),
              Status::kNullPointer);
    EXPECT_EQ(rt::fully_connected_s8(c.ctx, c.params, c.rq, c.dims, c.x.data(), c.w.data(), nullptr,
                                     nullptr),
              Status::kNullPointer);
    EXPECT_TRUE(c.untouched());
    expect_rejected<FcCase>(Status::kNullPointer,
                            FcFix([](FcCase& f) { f.rq.multiplier = nullptr; }), base);
    expect_rejected<FcCase>(Status::kNullPointer, FcFix([](FcCase& f) { f.rq.shift = nullptr; }),
                            base);
  }
}

TEST(KernelErrors, FcDimensions) {
  for (bool s4 : {false, true}) {
    FcCase base;
    base.s4 = s4;
    expect_rejected<FcCase>(Status::kBadDimension, FcFix([](FcCase& f) { f.dims.batch = 0; }),
                            base);
    expect_rejected<FcCase>(Status::kBadDimension, FcFix([](FcCase& f) { f.dims.in_features = 0; }),
                            base);
    expect_rejected<FcCase>(Status::kBadDimension,
                            FcFix([](FcCase& f) { f.dims.out_features = -1; }), base);
    expect_rejected<FcCase>(Status::kBadDimension, FcFix([](FcCase& f) {
                              f.dims.in_features = 1 << 20;
                              f.dims.out_features = 1 << 12;
                            }),
                            base);
    // One element past the documented limit, 2^31 - 2^16 (kernels.hpp), in either dimension.
    expect_rejected<FcCase>(Status::kBadDimension, FcFix([](FcCase& f) {
                              f.dims.in_features = INT32_MAX - 65535 + 1;
                              f.dims.out_features = 1;
                            }),
                            base);
    expect_rejected<FcCase>(Status::kBadDimension, FcFix([](FcCase& f) {
                              f.dims.in_features = 1;
                              f.dims.out_features = INT32_MAX - 65535 + 1;
                            }),
                            base);
  }
}

// Prepacked sizes at the element limit: every path pads its dimensions to its tiles, and the
// padded size must be counted without wrapping: 0 (too large for int32) or at least the weights
// and the 64-byte header; one element past the limit, 0.
TEST(KernelErrors, PrepackedSizesAtTheElementLimit) {
  const int32_t limit = INT32_MAX - 65535;
  const rt::FcDims at[] = {{1, limit, 1},     {1, 1, limit},     {1, limit / 2, 2},
                           {1, 2, limit / 2}, {1, 46340, 46339}, {1, 65536, limit / 65536}};
  // INT32_MAX x 1 and 1 x INT32_MAX: padded in int32, they wrapped to sizes of 128 and 1152
  // bytes on avx2, avx512vnni and amx when they were within the limit.
  const rt::FcDims past[] = {{1, limit + 1, 1},
                             {1, 1, limit + 1},
                             {1, 46341, 46340},
                             {1, INT32_MAX, 1},
                             {1, 1, INT32_MAX}};
  for (Path p : {Path::kReference, Path::kSmlad, Path::kAvx2, Path::kAvx512Vnni, Path::kAmx,
                 Path::kNeon, Path::kNeonDot}) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
    for (const rt::FcDims& d : at) {
      const int64_t size = rt::fully_connected_s8_prepacked_size(d, p);
      const int64_t weights = int64_t{d.in_features} * d.out_features;
      // The reference and smlad paths store the weights unchanged after the 64-byte header:
      // exactly that, so dims at the limit must be accepted there. Packed layouts may pad past
      // INT32_MAX (size 0).
      if (p == Path::kReference || p == Path::kSmlad) {
        EXPECT_EQ(size, weights + 64)
            << rt::path_name(p) << " " << d.in_features << " x " << d.out_features;
      } else {
        EXPECT_TRUE(size == 0 || size >= weights + 64)
            << rt::path_name(p) << " " << d.in_features << " x " << d.out_features << ": " << size;
      }
    }
    for (const rt::FcDims& d : past)
      EXPECT_EQ(rt::fully_connected_s8_prepacked_size(d, p), 0)
          << rt::path_name(p) << " " << d.in_features << " x " << d.out_features;
  }
}

TEST(KernelErrors, FcOffsetsAndActivation) {
  expect_rejected<FcCase>(Status::kBadOffset,
                          FcFix([](FcCase& f) { f.params.input_offset = 129; }));
  expect_rejected<FcCase>(Status::kBadOffset,
                          FcFix([](FcCase& f) { f.params.input_offset = -128; }));
  expect_rejected<FcCase>(Status::kBadOffset,
                          FcFix([](FcCase& f) { f.params.filter_offset = -128; }));
  expect_rejected<FcCase>(Status::kBadOffset,
                          FcFix([](FcCase& f) { f.params.filter_offset = 129; }));
  expect_rejected<FcCase>(Status::kBadOffset,
                          FcFix([](FcCase& f) { f.params.output_offset = 128; }));
  expect_rejected<FcCase>(Status::kBadOffset,
                          FcFix([](FcCase& f) { f.params.output_offset = -129; }));
  expect_rejected<FcCase>(Status::kBadActivationRange, FcFix([](FcCase& f) {
                            f.params.act_min = 5;
                            f.params.act_max = 4;
                          }));
  expect_rejected<FcCase>(Status::kBadActivationRange,
                          FcFix([](FcCase& f) { f.params.act_min = -129; }));
  expect_rejected<FcCase>(Status::kBadActivationRange,
                          FcFix([](FcCase& f) { f.params.act_max = 128; }));
}

TEST(KernelErrors, FcRequantization) {
  // One bad channel among good ones.
  expect_rejected<FcCase>(Status::kBadShift, FcFix([](FcCase& f) { f.shift[2] = 31; }));
  expect_rejected<FcCase>(Status::kBadShift, FcFix([](FcCase& f) { f.shift[1] = -32; }));
  expect_rejected<FcCase>(Status::kBadMultiplier, FcFix([](FcCase& f) { f.mult[2] = -1; }));
  expect_rejected<FcCase>(Status::kBadMultiplier, FcFix([](FcCase& f) { f.mult[0] = INT32_MIN; }));
  // Per-tensor: only entry 0 is read, so a bad entry 1 is ignored, a bad entry 0 is not.
  FcCase per_tensor;
  per_tensor.rq.per_channel = false;
  per_tensor.shift[1] = 99;
  EXPECT_EQ(per_tensor.run(), Status::kOk);
  expect_rejected<FcCase>(Status::kBadShift, FcFix([](FcCase& f) {
                            f.rq.per_channel = false;
                            f.shift[0] = 40;
                          }));
  expect_rejected<FcCase>(Status::kBadArgument,
                          FcFix([](FcCase& f) { f.rq.rounding = static_cast<rt::Rounding>(7); }));
}

TEST(KernelErrors, ConvNullPointersAndDimensions) {
  ConvCase c;
  EXPECT_EQ(
      rt::conv2d_s8(c.ctx, c.params, c.rq, c.dims, nullptr, c.w.data(), nullptr, c.out.data()),
      Status::kNullPointer);
  EXPECT_EQ(
      rt::conv2d_s8(c.ctx, c.params, c.rq, c.dims, c.x.data(), nullptr, nullptr, c.out.data()),
      Status::kNullPointer);
  EXPECT_EQ(rt::conv2d_s8(c.ctx, c.params, c.rq, c.dims, c.x.data(), c.w.data(), nullptr, nullptr),
            Status::kNullPointer);
  EXPECT_EQ(
      rt::conv2d_s4(c.ctx, c.params, c.rq, c.dims, c.x.data(), nullptr, nullptr, c.out.data()),
      Status::kNullPointer);
  EXPECT_EQ(rt::depthwise_conv2d_s8(c.ctx, c.params, c.rq, c.dims, c.x.data(), nullptr, nullptr,
                                    c.out.data()),
            Status::kNullPointer);
  EXPECT_TRUE(c.untouched());
  for (auto kind : {Conv::kS8, Conv::kS4, Conv::kDepthwise}) {
    const ConvCase base(kind);
    expect_rejected<ConvCase>(Status::kNullPointer,
                              ConvFix([](ConvCase& f) { f.rq.shift = nullptr; }), base);
    expect_rejected<ConvCase>(Status::kBadDimension, ConvFix([](ConvCase& f) { f.dims.batch = 0; }),
                              base);
    expect_rejected<ConvCase>(Status::kBadDimension, ConvFix([](ConvCase& f) { f.dims.in_h = 0; }),
                              base);
    expect_rejected<ConvCase>(Status::kBadDimension,
                              ConvFix([](ConvCase& f) { f.dims.kernel_w = -1; }), base);
    expect_rejected<ConvCase>(Status::kBadDimension, ConvFix([](ConvCase& f) { f.dims.out_w = 0; }),
                              base);
    expect_rejected<ConvCase>(Status::kBadArgument,
                              ConvFix([](ConvCase& f) { f.params.stride_h = 0; }), base);
    expect_rejected<ConvCase>(Status::kBadArgument,
                              ConvFix([](ConvCase& f) { f.params.dilation_w = 0; }), base);
    expect_rejected<ConvCase>(Status::kBadArgument,
                              ConvFix([](ConvCase& f) { f.params.pad_top = -1; }), base);
    expect_rejected<ConvCase>(Status::kBadOffset,
                              ConvFix([](ConvCase& f) { f.params.input_offset = 200; }), base);
    expect_rejected<ConvCase>(Status::kBadActivationRange, ConvFix([](ConvCase& f) {
                                f.params.act_min = 10;
                                f.params.act_max = -10;
                              }),
                              base);
    expect_rejected<ConvCase>(Status::kBadShift, ConvFix([](ConvCase& f) { f.shift[5] = 31; }),
                              base);
    expect_rejected<ConvCase>(Status::kBadMultiplier, ConvFix([](ConvCase& f) { f.mult[5] = -7; }),
                              base);
  }
}

TEST(KernelErrors, ConvGroupsAndDepthwiseChannels) {
  expect_rejected<ConvCase>(Status::kBadDimension,
                            ConvFix([](ConvCase& f) { f.params.groups = 3; }));
  expect_rejected<ConvCase>(Status::kBadArgument,
                            ConvFix([](ConvCase& f) { f.params.groups = 0; }));
  expect_rejected<ConvCase>(Status::kBadDimension, ConvFix([](ConvCase& f) { f.dims.out_c = 5; }));
  const ConvCase dw(Conv::kDepthwise);
  expect_rejected<ConvCase>(Status::kBadDimension, ConvFix([](ConvCase& f) { f.dims.out_c = 7; }),
                            dw);
  expect_rejected<ConvCase>(Status::kBadDimension,
                            ConvFix([](ConvCase& f) { f.params.depth_multiplier = 3; }), dw);
  expect_rejected<ConvCase>(Status::kBadArgument,
                            ConvFix([](ConvCase& f) { f.params.depth_multiplier = 0; }), dw);
}

TEST(KernelErrors, ConvScratch) {
  for (auto kind : {Conv::kS8, Conv::kS4}) {
    const ConvCase base(kind);
    ASSERT_GT(base.need(), 0);
    expect_rejected<ConvCase>(Status::kScratchTooSmall,
                              ConvFix([](ConvCase& f) { f.ctx.scratch_size = f.need() - 1; }),
                              base);
    expect_rejected<ConvCase>(Status::kScratchTooSmall,
                              ConvFix([](ConvCase& f) { f.ctx.scratch_size = 0; }), base);
    expect_rejected<ConvCase>(Status::kNullPointer,
                              ConvFix([](ConvCase& f) { f.ctx.scratch = nullptr; }), base);
  }
}

TEST(KernelErrors, GemmS32) {
  std::vector<int8_t> a(12, 1), b(12, 2);
  std::vector<int32_t> c(9, 77);
  const rt::GemmDims d{3, 3, 4};
  std::vector<uint8_t> scratch(static_cast<size_t>(rt::gemm_s8s8_s32_scratch_size(d, Path::kAuto)));
  rt::Context ctx;
  ctx.scratch = scratch.data();
  ctx.scratch_size = static_cast<int32_t>(scratch.size());
  ASSERT_EQ(rt::gemm_s8s8_s32(ctx, d, a.data(), 0, b.data(), 0, nullptr, nullptr, c.data()),
            Status::kOk);
  std::fill(c.begin(), c.end(), 77);
  auto bad = [&](Status want, rt::GemmDims dd, const int8_t* pa, int32_t ao, const int8_t* pb,
                 int32_t bo, int32_t* pc) {
    EXPECT_EQ(rt::gemm_s8s8_s32(ctx, dd, pa, ao, pb, bo, nullptr, nullptr, pc), want);
    for (int32_t v : c) EXPECT_EQ(v, 77);
  };
  bad(Status::kNullPointer, d, nullptr, 0, b.data(), 0, c.data());
  bad(Status::kNullPointer, d, a.data(), 0, nullptr, 0, c.data());
  bad(Status::kNullPointer, d, a.data(), 0, b.data(), 0, nullptr);
  bad(Status::kBadOffset, d, a.data(), 129, b.data(), 0, c.data());
  bad(Status::kBadOffset, d, a.data(), 0, b.data(), -129, c.data());
  bad(Status::kBadDimension, rt::GemmDims{0, 3, 4}, a.data(), 0, b.data(), 0, c.data());
  bad(Status::kBadDimension, rt::GemmDims{3, 3, 0}, a.data(), 0, b.data(), 0, c.data());
  bad(Status::kBadDimension, rt::GemmDims{3, 3, 4, 3}, a.data(), 0, b.data(), 0, c.data());
  bad(Status::kBadDimension, rt::GemmDims{3, 3, 4, 0, 2}, a.data(), 0, b.data(), 0, c.data());
  bad(Status::kBadDimension, rt::GemmDims{3, 3, 4, 0, 0, 2}, a.data(), 0, b.data(), 0, c.data());
}

// force_path takes one path: a mask of several (here reference | smlad, which every build has)
// would pass a test for any common bit and leave every kAuto call without a kernel.
TEST(KernelErrors, ForcePathRefusesAMaskOfPaths) {
  const Path before = rt::default_path();
  for (const uint32_t bits : {3u, 0x7fu, 1u << 7}) {
    EXPECT_EQ(rt::force_path(static_cast<Path>(bits)), Status::kPathUnavailable) << bits;
    EXPECT_EQ(rt::default_path(), before) << bits;
  }
  FcCase f;
  EXPECT_EQ(f.run(), Status::kOk);
  expect_rejected<FcCase>(Status::kPathUnavailable,
                          FcFix([](FcCase& g) { g.ctx.path = static_cast<Path>(3); }));
}

// verify() is the check for untrusted buffers: a size below the 64-byte header is refused
// before the header is read (an exact 16-byte heap block, so ASan sees any read past it).
TEST(KernelErrors, PrepackedVerifyChecksTheSizeBeforeTheHeader) {
  std::vector<uint32_t> tiny(4, 0);
  EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(tiny.data(), 16), Status::kBadArgument);
  EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(tiny.data(), 0), Status::kBadArgument);
  EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(tiny.data(), -1), Status::kBadArgument);
  EXPECT_EQ(rt::fully_connected_s8_prepacked_verify(nullptr, 16), Status::kNullPointer);
}

// A 1x1 kernel's dilation is never applied, so any value >= 1 is valid; the im2col steps after
// the last (only) tap must not overflow (UBSan watches the sanitizer build).
TEST(KernelErrors, OneTapKernelTakesAnyDilation) {
  const rt::ConvDims d{1, 4, 4, 2, 1, 1, 2, 2, 2};  // batch, in 4x4x2, kernel 1x1, out 2x2x2
  std::vector<int8_t> x(32), w = {3, -1, 2, 5};
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<int8_t>(static_cast<int>(i * 7) % 61 - 30);
  std::vector<int32_t> mult(2, 1 << 30), shift(2, -1);
  rt::Requant rq;
  rq.multiplier = mult.data();
  rq.shift = shift.data();
  rq.per_channel = true;
  std::vector<int8_t> want(8), got(8);
  for (const int32_t dil : {1, 1 << 20, INT32_MAX}) {
    rt::ConvParams p;
    p.stride_h = p.stride_w = 2;
    p.dilation_h = p.dilation_w = dil;
    std::vector<uint8_t> scratch(
        static_cast<size_t>(std::max(1, rt::conv2d_s8_scratch_size(p, d, Path::kAuto))));
    rt::Context ctx;
    ctx.scratch = scratch.data();
    ctx.scratch_size = static_cast<int32_t>(scratch.size());
    std::vector<int8_t>& y = dil == 1 ? want : got;
    ASSERT_EQ(rt::conv2d_s8(ctx, p, rq, d, x.data(), w.data(), nullptr, y.data()), Status::kOk)
        << dil;
    if (dil != 1) {
      EXPECT_EQ(got, want) << dil;
    }
  }
}

TEST(KernelErrors, PathUnavailable) {
  const Path missing = unavailable_path();
  if (missing == Path::kAuto) GTEST_SKIP() << "every path is supported on this machine";
  EXPECT_EQ(rt::force_path(missing), Status::kPathUnavailable);
  EXPECT_NE(rt::default_path(), missing);
  expect_rejected<FcCase>(Status::kPathUnavailable,
                          FcFix([missing](FcCase& f) { f.ctx.path = missing; }));
  expect_rejected<ConvCase>(Status::kPathUnavailable,
                            ConvFix([missing](ConvCase& f) { f.ctx.path = missing; }));
  expect_rejected<ConvCase>(Status::kPathUnavailable,
                            ConvFix([missing](ConvCase& f) { f.ctx.path = missing; }),
                            ConvCase(Conv::kDepthwise));
  std::vector<int8_t> a(4, 1);
  int32_t c = 5;
  rt::Context ctx;
  ctx.path = missing;
  EXPECT_EQ(
      rt::gemm_s8s8_s32(ctx, rt::GemmDims{1, 1, 4}, a.data(), 0, a.data(), 0, nullptr, nullptr, &c),
      Status::kPathUnavailable);
  EXPECT_EQ(c, 5);
  EXPECT_EQ(rt::fully_connected_s8_scratch_size(rt::FcDims{1, 4, 4}, missing), 0);
}
