// fully_connected_s8_prepacked_s32: the raw int32 accumulators on prepacked weights, on every
// path this CPU runs, against a slow obvious loop written here (tolerance 0). Also the
// precedence of the requantization checks (validate.hpp's check_requant).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "rt/kernel_tester.hpp"
#include "rt/validate.hpp"
#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/prepack.hpp"

namespace rt = tinyquant::rt;
using rt::Path;
using rt::Status;
using tinyquant_test::elems;

namespace {

constexpr Path kAllPaths[] = {Path::kReference, Path::kSmlad,   Path::kAvx2, Path::kAvx512Vnni,
                              Path::kNeon,      Path::kNeonDot, Path::kAmx};

struct S32Case {
  rt::FcDims dims{};
  rt::FcParams params{};
  std::vector<int8_t> input, weights;
  std::vector<int32_t> bias;  // empty: no bias
  const int32_t* bias_ptr() const { return bias.empty() ? nullptr : bias.data(); }
};

// Values in [-128, 127]; `extreme` draws only -128 and 127.
int8_t draw(std::mt19937& rng, bool extreme) {
  if (extreme) return static_cast<int8_t>(rng() % 2 == 0 ? -128 : 127);
  return static_cast<int8_t>(static_cast<int32_t>(rng() % 256) - 128);
}

S32Case make_case(std::mt19937& rng, int32_t batch, int32_t out, int32_t in, int32_t in_off,
                  int32_t w_off, bool with_bias, bool extreme) {
  S32Case c;
  c.dims = {batch, in, out};
  c.params.input_offset = in_off;
  c.params.filter_offset = w_off;
  c.params.output_offset = 5;  // ignored by the s32 run
  c.input.resize(elems(batch, in));
  c.weights.resize(elems(out, in));
  for (auto& v : c.input) v = draw(rng, extreme);
  for (auto& v : c.weights) v = draw(rng, extreme);
  if (with_bias) {
    // Near the int32 limits as well, so the sums wrap.
    for (int32_t o = 0; o < out; ++o) {
      const uint32_t r = static_cast<uint32_t>(rng());
      c.bias.push_back(o % 3 == 0   ? INT32_MAX - static_cast<int32_t>(r % 1000)
                       : o % 3 == 1 ? INT32_MIN + static_cast<int32_t>(r % 1000)
                                    : static_cast<int32_t>(r % 200001) - 100000);
    }
  }
  return c;
}

// The definition, term by term, in uint32 (wrapping).
std::vector<int32_t> slow_acc(const S32Case& c) {
  const rt::FcDims& d = c.dims;
  std::vector<int32_t> acc(elems(d.batch, d.out_features));
  for (int32_t b = 0; b < d.batch; ++b) {
    for (int32_t o = 0; o < d.out_features; ++o) {
      uint32_t s = c.bias.empty() ? 0u : static_cast<uint32_t>(c.bias[static_cast<size_t>(o)]);
      for (int32_t k = 0; k < d.in_features; ++k) {
        const int32_t x = c.input[elems(b * d.in_features + k)] + c.params.input_offset;
        const int32_t w = c.weights[elems(o * d.in_features + k)] + c.params.filter_offset;
        s += static_cast<uint32_t>(x * w);
      }
      acc[elems(b * d.out_features + o)] = static_cast<int32_t>(s);
    }
  }
  return acc;
}

// A packed buffer, 64-byte aligned.
struct Packed {
  std::vector<uint64_t> storage;
  void* data() { return storage.data(); }
};

Packed pack(const S32Case& c, Path p) {
  const int32_t size = rt::fully_connected_s8_prepacked_size(c.dims, p);
  EXPECT_GT(size, 64);
  Packed pk;
  pk.storage.resize(static_cast<size_t>(size) / 8 + 1);
  EXPECT_EQ(rt::fully_connected_s8_prepack(c.params, c.dims, c.weights.data(), p, pk.data(), size),
            Status::kOk);
  return pk;
}

constexpr int32_t kGuard = 8;
constexpr int32_t kGuardValue = 0x5A5A5A5A;

// Runs the s32 entry with exactly the queried scratch; acc plus kGuard guard words after it,
// which must stay untouched.
Status run(const S32Case& c, const void* packed, Path ctx_path, std::vector<int32_t>* acc) {
  std::vector<uint8_t> scratch(
      static_cast<size_t>(rt::fully_connected_s8_prepacked_s32_scratch_size(c.dims, packed)));
  const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), ctx_path};
  const size_t n = elems(c.dims.batch, c.dims.out_features);
  acc->assign(n + kGuard, kGuardValue);
  const Status s = rt::fully_connected_s8_prepacked_s32(ctx, c.params, c.dims, c.input.data(),
                                                        packed, c.bias_ptr(), acc->data());
  for (size_t i = n; i < n + kGuard; ++i) EXPECT_EQ((*acc)[i], kGuardValue) << "wrote past acc";
  acc->resize(n);
  return s;
}

// batch, out_features, in_features: batch 1 (GEMV) and > 1 around the AMX thresholds (16-row
// tiles, 32-row panels), column tails around 16 / 32 / 64, k tails around 2 / 4 / 64, k a
// multiple of 512 (the AMX panel is copied there).
constexpr int32_t kShapes[][3] = {
    {1, 1, 1},     {1, 7, 3},     {1, 16, 64},   {1, 17, 65},    {1, 300, 129}, {2, 5, 2},
    {3, 33, 63},   {5, 64, 130},  {15, 40, 27},  {16, 16, 64},   {16, 64, 256}, {17, 17, 65},
    {31, 100, 7},  {32, 32, 128}, {33, 48, 200}, {48, 65, 1},    {64, 80, 512}, {70, 130, 300},
    {16, 256, 33}, {40, 3, 96},   {1, 257, 4},   {100, 18, 100},
};

struct Offsets {
  int32_t in, w;
};
constexpr Offsets kOffsets[] = {{17, 0},     {0, 0},     {-127, 128},
                                {128, -127}, {128, 128}, {-127, -127}};

TEST(PrepackedS32, EqualsTheDefinitionOnEveryPath) {
  std::mt19937 rng(2026);
  int paths_run = 0;
  for (Path p : kAllPaths) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;  // not on this CPU
    ++paths_run;
    int shape_index = 0;
    for (const auto& s : kShapes) {
      for (const Offsets& off : kOffsets) {
        const bool with_bias = (shape_index++ % 2) == 0;
        const bool extreme = off.in == 128 || off.in == -127;
        const S32Case c = make_case(rng, s[0], s[1], s[2], off.in, off.w, with_bias, extreme);
        Packed pk = pack(c, p);
        ASSERT_EQ(rt::fully_connected_s8_prepacked_path(pk.data()), p);
        std::vector<int32_t> got;
        ASSERT_EQ(run(c, pk.data(), p, &got), Status::kOk) << rt::path_name(p);
        ASSERT_EQ(got, slow_acc(c))
            << rt::path_name(p) << " batch=" << s[0] << " out=" << s[1] << " in=" << s[2]
            << " offsets " << off.in << ", " << off.w << (with_bias ? " bias" : " no bias")
            << (extreme ? " extreme values" : "");
      }
    }
  }
  EXPECT_GE(paths_run, 2);  // reference and smlad at least, on any host
}

// Every tile remainder of the prepacked kernels: batch 1 to 13 covers every leftover row count of
// the 6-row (and 2- and 4-row) tiles, one tile and two; out 16 to 130 every count of 16-column
// blocks in a 64-column tile, with and without a short last block.
TEST(PrepackedS32, EveryTileRemainderEqualsTheDefinition) {
  std::mt19937 rng(77);
  for (Path p : kAllPaths) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;  // not on this CPU
    for (int32_t batch = 1; batch <= 13; ++batch)
      for (int32_t out : {16, 35, 48, 64, 100, 130}) {
        const S32Case c = make_case(rng, batch, out, 37, 3, -2, batch % 2 == 0, false);
        Packed pk = pack(c, p);
        std::vector<int32_t> got;
        ASSERT_EQ(run(c, pk.data(), p, &got), Status::kOk) << rt::path_name(p);
        ASSERT_EQ(got, slow_acc(c))
            << rt::path_name(p) << " batch=" << batch << " out=" << out << " in=37";
      }
  }
}

// The s32 run and the int8 run share the packed buffer: requantizing the accumulators by hand
// gives the int8 run's output.
TEST(PrepackedS32, RequantizedEqualsTheInt8Run) {
  std::mt19937 rng(7);
  for (Path p : kAllPaths) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
    for (const int32_t batch : {1, 16, 37}) {
      S32Case c = make_case(rng, batch, 50, 90, 17, 0, true, false);
      for (auto& b : c.bias) b %= 5000;  // a realistic range, so the output is not all clamped
      c.params.act_min = -100;
      c.params.act_max = 120;
      std::vector<int32_t> mult, shift;
      for (int32_t o = 0; o < c.dims.out_features; ++o) {
        mult.push_back(static_cast<int32_t>((1u << 30) + rng() % (1u << 30)));
        shift.push_back(-static_cast<int32_t>(6 + rng() % 6));
      }
      const rt::Requant rq{mult.data(), shift.data(), true, rt::Rounding::kDouble};
      Packed pk = pack(c, p);
      std::vector<int32_t> acc;
      ASSERT_EQ(run(c, pk.data(), p, &acc), Status::kOk);
      std::vector<uint8_t> scratch(
          static_cast<size_t>(rt::fully_connected_s8_prepacked_scratch_size(c.dims, pk.data())));
      const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), p};
      std::vector<int8_t> out(acc.size());
      ASSERT_EQ(rt::fully_connected_s8_prepacked(ctx, c.params, rq, c.dims, c.input.data(),
                                                 pk.data(), c.bias_ptr(), out.data()),
                Status::kOk);
      for (size_t i = 0; i < acc.size(); ++i) {
        const size_t o = i % static_cast<size_t>(c.dims.out_features);
        int32_t v = rt::requantize(acc[i], mult[o], shift[o], rt::Rounding::kDouble) +
                    c.params.output_offset;
        v = v < c.params.act_min ? c.params.act_min : v > c.params.act_max ? c.params.act_max : v;
        ASSERT_EQ(out[i], v) << rt::path_name(p) << " batch " << batch << " element " << i;
      }
    }
  }
}

TEST(PrepackedS32, RejectsBadArgumentsAndLeavesAccUntouched) {
  std::mt19937 rng(5);
  for (Path p : kAllPaths) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
    const S32Case c = make_case(rng, 20, 24, 70, 17, 3, true, false);
    Packed pk = pack(c, p);
    const int32_t need = rt::fully_connected_s8_prepacked_s32_scratch_size(c.dims, pk.data());
    std::vector<uint8_t> scratch(static_cast<size_t>(need));
    const rt::Context ctx{scratch.data(), need, p};
    std::vector<int32_t> acc(static_cast<size_t>(20 * 24), kGuardValue);
    auto call = [&](const rt::Context& cx, const rt::FcParams& prm, const rt::FcDims& d,
                    const int8_t* in, const void* pkd, int32_t* out) {
      return rt::fully_connected_s8_prepacked_s32(cx, prm, d, in, pkd, c.bias_ptr(), out);
    };
    EXPECT_EQ(call(ctx, c.params, c.dims, nullptr, pk.data(), acc.data()), Status::kNullPointer);
    EXPECT_EQ(call(ctx, c.params, c.dims, c.input.data(), pk.data(), nullptr),
              Status::kNullPointer);
    EXPECT_EQ(call(ctx, c.params, c.dims, c.input.data(), nullptr, acc.data()),
              Status::kNullPointer);
    rt::FcParams bad = c.params;
    bad.input_offset = 129;
    EXPECT_EQ(call(ctx, bad, c.dims, c.input.data(), pk.data(), acc.data()), Status::kBadOffset);
    bad = c.params;
    bad.filter_offset = 4;  // packed with 3
    EXPECT_EQ(call(ctx, bad, c.dims, c.input.data(), pk.data(), acc.data()), Status::kBadArgument);
    rt::FcDims other = c.dims;
    other.out_features = 23;
    EXPECT_EQ(call(ctx, c.params, other, c.input.data(), pk.data(), acc.data()),
              Status::kBadArgument);
    other = c.dims;
    other.batch = 0;
    EXPECT_EQ(call(ctx, c.params, other, c.input.data(), pk.data(), acc.data()),
              Status::kBadDimension);
    const Path wrong = p == Path::kReference ? Path::kSmlad : Path::kReference;
    rt::Context cx = ctx;
    cx.path = wrong;
    EXPECT_EQ(call(cx, c.params, c.dims, c.input.data(), pk.data(), acc.data()),
              Status::kBadArgument);
    if (need > 0) {
      cx = ctx;
      cx.scratch_size = need - 1;
      EXPECT_EQ(call(cx, c.params, c.dims, c.input.data(), pk.data(), acc.data()),
                Status::kScratchTooSmall);
    }
    // The output fields are not read: an output offset or activation range the int8 run would
    // reject does not matter here.
    bad = c.params;
    bad.output_offset = 1000;
    bad.act_min = 5;
    bad.act_max = -5;
    for (int32_t v : acc) ASSERT_EQ(v, kGuardValue) << rt::path_name(p) << ": acc written";
    EXPECT_EQ(call(ctx, bad, c.dims, c.input.data(), pk.data(), acc.data()), Status::kOk);
  }
}

// check_requant: a negative multiplier anywhere wins over a bad shift anywhere, whichever
// comes first; the shift range ends are exact.
constexpr int32_t kGoodMult[4] = {1 << 30, 0, INT32_MAX, 1 << 30};
constexpr int32_t kNegLast[4] = {1 << 30, 0, INT32_MAX, -1};
constexpr int32_t kNegFirst[4] = {INT32_MIN, 0, INT32_MAX, 1 << 30};
constexpr int32_t kGoodShift[4] = {rt::kMinShift, 0, rt::kMaxShift, -5};
constexpr int32_t kHighShiftFirst[4] = {rt::kMaxShift + 1, 0, 0, 0};
constexpr int32_t kLowShiftLast[4] = {0, 0, 0, rt::kMinShift - 1};
constexpr int32_t kFarShift[4] = {0, INT32_MIN, 0, 0};

constexpr Status check(const int32_t* m, const int32_t* s, bool per_channel = true) {
  return rt::detail::check_requant(rt::Requant{m, s, per_channel, rt::Rounding::kDouble}, 4);
}
static_assert(check(kGoodMult, kGoodShift) == Status::kOk);
static_assert(check(kNegLast, kHighShiftFirst) == Status::kBadMultiplier);
static_assert(check(kNegFirst, kLowShiftLast) == Status::kBadMultiplier);
static_assert(check(kGoodMult, kHighShiftFirst) == Status::kBadShift);
static_assert(check(kGoodMult, kLowShiftLast) == Status::kBadShift);
static_assert(check(kGoodMult, kFarShift) == Status::kBadShift);
static_assert(check(kNegLast, kLowShiftLast, false) == Status::kOk);  // only entry 0 read

TEST(CheckRequant, PrecedenceThroughEveryKernelPath) {
  // Four channels, both kinds of bad entry at once: kBadMultiplier on every path, whatever the
  // order; a bad shift alone: kBadShift.
  const rt::FcDims dims{2, 8, 4};
  std::vector<int8_t> x(16, 3), w(32, -2), out(8, 0);
  rt::FcParams params;
  for (Path p : kAllPaths) {
    if ((rt::supported_paths() & rt::path_bits(p)) == 0) continue;
    std::vector<uint8_t> scratch(static_cast<size_t>(rt::fully_connected_s8_scratch_size(dims, p)));
    const rt::Context ctx{scratch.data(), static_cast<int32_t>(scratch.size()), p};
    auto fc = [&](const int32_t* m, const int32_t* s) {
      const rt::Requant rq{m, s, true, rt::Rounding::kDouble};
      return rt::fully_connected_s8(ctx, params, rq, dims, x.data(), w.data(), nullptr, out.data());
    };
    EXPECT_EQ(fc(kNegLast, kHighShiftFirst), Status::kBadMultiplier) << rt::path_name(p);
    EXPECT_EQ(fc(kNegFirst, kLowShiftLast), Status::kBadMultiplier) << rt::path_name(p);
    EXPECT_EQ(fc(kGoodMult, kLowShiftLast), Status::kBadShift) << rt::path_name(p);
    EXPECT_EQ(fc(kGoodMult, kFarShift), Status::kBadShift) << rt::path_name(p);
    EXPECT_EQ(fc(kGoodMult, kGoodShift), Status::kOk) << rt::path_name(p);
  }
}

}  // namespace
