// Fluent testers for the rt kernels (XNNPACK style):
//   FcTester().batch(3).in(27).out(13).input_offset(128).per_channel(true).test(Path::kSmlad);
// Each test() builds random operands, runs the kernel through the public API on the reference
// path and on the path under test, and requires byte-for-byte equality (tolerance 0). The
// reference output itself is checked against an oracle written here straight from the
// definition (nested loops over the NHWC/OHWI tensors, int64 accumulation wrapped to 32 bits,
// no im2col), so a bug shared by the lowering and every path is caught too.
// Scratch is exactly *_scratch_size() bytes at an odd address; outputs carry guard bytes that
// must survive.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "tinyquant/rt/fixed_point.hpp"
#include "tinyquant/rt/kernels.hpp"

namespace tinyquant::rt {
// Readable test names and failure messages for parametrized suites.
inline void PrintTo(Path p, std::ostream* os) {
  *os << path_name(p);
}
}  // namespace tinyquant::rt

namespace tinyquant_test {

namespace rt = tinyquant::rt;
using rt::Path;

inline bool path_supported(Path p) {
  return (rt::supported_paths() & rt::path_bits(p)) != 0;
}

inline std::string unsupported_reason(Path p) {
  switch (p) {
    case Path::kAvx2:
      return "CPU lacks AVX2 or the AVX2 path is not compiled in";
    case Path::kAvx512Vnni:
      return "CPU lacks AVX-512 VNNI/BW/VL or the AVX-512 VNNI path is not compiled in";
    case Path::kNeon:
      return "not an AArch64 build";
    case Path::kNeonDot:
      return "not an AArch64 build with the dot-product extension";
    default:
      return std::string("path ") + rt::path_name(p) + " is not available";
  }
}

// Every path that can exist, so a suite lists each (and skips the ones this machine lacks).
inline std::vector<Path> all_paths() {
  return {Path::kReference, Path::kSmlad, Path::kAvx2,   Path::kAvx512Vnni,
          Path::kAmx,       Path::kNeon,  Path::kNeonDot};
}

// A product of non-negative dimensions (or one index) as a size_t, for buffer sizes and vector
// subscripts.
template <typename... T>
constexpr size_t elems(T... d) {
  return static_cast<size_t>((int64_t{1} * ... * static_cast<int64_t>(d)));
}

constexpr size_t kGuard = 16;
constexpr int8_t kSentinel = 0x5A;

inline int32_t wrap64(int64_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v)));
}

inline int8_t oracle_output(int64_t acc, int32_t mult, int32_t shift, rt::Rounding rounding,
                            int32_t out_offset, int32_t act_min, int32_t act_max) {
  int64_t r = rt::requantize(wrap64(acc), mult, shift, rounding);
  r = wrap64(r + out_offset);
  return static_cast<int8_t>(std::clamp<int64_t>(r, act_min, act_max));
}

// Shared random-operand settings.
template <typename Derived>
class TesterBase {
 public:
  Derived& input_offset(int32_t v) { return set(input_offset_, v); }
  Derived& filter_offset(int32_t v) { return set(filter_offset_, v); }
  Derived& output_offset(int32_t v) { return set(output_offset_, v); }
  Derived& act(int32_t lo, int32_t hi) {
    act_min_ = lo;
    return set(act_max_, hi);
  }
  Derived& per_channel(bool v) { return set(per_channel_, v); }
  Derived& shift_range(int32_t lo, int32_t hi) {
    shift_lo_ = lo;
    return set(shift_hi_, hi);
  }
  Derived& multiplier_range(int32_t lo, int32_t hi) {
    mult_lo_ = lo;
    return set(mult_hi_, hi);
  }
  Derived& rounding(rt::Rounding v) { return set(rounding_, v); }
  Derived& bias(bool v) { return set(bias_, v); }
  Derived& int4(bool v) { return set(int4_, v); }
  // Operands within +-1 of their zero point and a small bias, so accumulators stay tiny and
  // large left shifts do not saturate every output.
  Derived& small_values(bool v) { return set(small_, v); }
  Derived& seed(uint32_t v) { return set(seed_, v); }

 protected:
  template <typename T, typename V>
  Derived& set(T& field, V v) {
    field = v;
    return static_cast<Derived&>(*this);
  }

  int8_t random_input(std::mt19937& rng) const {
    if (!small_) return static_cast<int8_t>(std::uniform_int_distribution<int>(-128, 127)(rng));
    const int v = -input_offset_ + std::uniform_int_distribution<int>(-1, 1)(rng);
    return static_cast<int8_t>(std::clamp(v, -128, 127));
  }
  // int4 weights are in [-8, 7]; int8 in [-128, 127].
  int8_t random_weight(std::mt19937& rng) const {
    const int lo = int4_ ? -8 : -128, hi = int4_ ? 7 : 127;
    if (!small_) return static_cast<int8_t>(std::uniform_int_distribution<int>(lo, hi)(rng));
    const int v = -filter_offset_ + std::uniform_int_distribution<int>(-1, 1)(rng);
    return static_cast<int8_t>(std::clamp(v, lo, hi));
  }
  int32_t random_bias(std::mt19937& rng) const {
    return small_ ? std::uniform_int_distribution<int32_t>(-3, 3)(rng)
                  : std::uniform_int_distribution<int32_t>(-40000, 40000)(rng);
  }
  void make_requant(std::mt19937& rng, int32_t channels, std::vector<int32_t>* mult,
                    std::vector<int32_t>* shift) const {
    const int32_t count = per_channel_ ? channels : 1;
    std::uniform_int_distribution<int32_t> md(mult_lo_, mult_hi_), sd(shift_lo_, shift_hi_);
    for (int32_t i = 0; i < count; ++i) {
      mult->push_back(md(rng));
      shift->push_back(sd(rng));
    }
  }
  rt::Requant requant(const std::vector<int32_t>& mult, const std::vector<int32_t>& shift) const {
    rt::Requant rq;
    rq.multiplier = mult.data();
    rq.shift = shift.data();
    rq.per_channel = per_channel_;
    rq.rounding = rounding_;
    return rq;
  }
  int8_t oracle(int64_t acc, int32_t ch, const std::vector<int32_t>& mult,
                const std::vector<int32_t>& shift) const {
    const size_t i = per_channel_ ? static_cast<size_t>(ch) : 0;
    return oracle_output(acc, mult[i], shift[i], rounding_, output_offset_, act_min_, act_max_);
  }
  static std::vector<uint8_t> pack_s4(const std::vector<int8_t>& w) {
    std::vector<uint8_t> packed((w.size() + 1) / 2, 0);
    for (size_t i = 0; i < w.size(); ++i) {
      const auto nib = static_cast<uint8_t>(static_cast<uint8_t>(w[i]) & 0xF);
      packed[i / 2] = static_cast<uint8_t>(packed[i / 2] | (i % 2 == 0 ? nib : nib << 4));
    }
    return packed;
  }

  int32_t input_offset_ = 0, filter_offset_ = 0, output_offset_ = 0;
  int32_t act_min_ = -128, act_max_ = 127;
  bool per_channel_ = false;
  int32_t shift_lo_ = -12, shift_hi_ = -6;
  int32_t mult_lo_ = 1 << 30, mult_hi_ = INT32_MAX;
  rt::Rounding rounding_ = rt::Rounding::kDouble;
  bool bias_ = true, int4_ = false, small_ = false;
  uint32_t seed_ = 1234;
};

// Runs `run(ctx, out_ptr)` with exactly `scratch` bytes at an odd address into a guarded buffer
// of n outputs; returns the n outputs.
template <typename T, typename Run>
std::vector<T> run_guarded(Path path, int32_t scratch, size_t n, Run run) {
  std::vector<uint8_t> scratch_buf(static_cast<size_t>(scratch) + 1);
  rt::Context ctx;
  ctx.path = path;
  ctx.scratch = scratch > 0 ? scratch_buf.data() + 1 : nullptr;
  ctx.scratch_size = scratch;
  std::vector<T> out(n + kGuard, static_cast<T>(kSentinel));
  const rt::Status st = run(ctx, out.data());
  EXPECT_EQ(st, rt::Status::kOk) << rt::status_name(st) << " on path " << rt::path_name(path);
  for (size_t i = n; i < n + kGuard; ++i) {
    EXPECT_EQ(out[i], static_cast<T>(kSentinel)) << "guard byte " << i - n << " overwritten";
  }
  out.resize(n);
  return out;
}

class FcTester : public TesterBase<FcTester> {
 public:
  FcTester& batch(int32_t v) { return set(batch_, v); }
  FcTester& in(int32_t v) { return set(in_, v); }
  FcTester& out(int32_t v) { return set(out_, v); }

  void test(Path path) const {
    std::mt19937 rng(seed_);
    std::vector<int8_t> x(static_cast<size_t>(batch_ * in_)), w(static_cast<size_t>(out_ * in_));
    std::vector<int32_t> b(static_cast<size_t>(out_)), mult, shift;
    for (auto& v : x) v = random_input(rng);
    for (auto& v : w) v = random_weight(rng);
    for (auto& v : b) v = random_bias(rng);
    make_requant(rng, out_, &mult, &shift);
    const std::vector<uint8_t> packed = pack_s4(w);

    rt::FcParams p;
    p.input_offset = input_offset_;
    p.filter_offset = filter_offset_;
    p.output_offset = output_offset_;
    p.act_min = act_min_;
    p.act_max = act_max_;
    const rt::FcDims d{batch_, in_, out_};
    const rt::Requant rq = requant(mult, shift);
    const int32_t* bias_ptr = bias_ ? b.data() : nullptr;
    const size_t n = static_cast<size_t>(batch_ * out_);
    auto run = [&](Path pa) {
      const int32_t need = int4_ ? rt::fully_connected_s4_scratch_size(d, pa)
                                 : rt::fully_connected_s8_scratch_size(d, pa);
      return run_guarded<int8_t>(pa, need, n, [&](const rt::Context& ctx, int8_t* o) {
        return int4_ ? rt::fully_connected_s4(ctx, p, rq, d, x.data(), packed.data(), bias_ptr, o)
                     : rt::fully_connected_s8(ctx, p, rq, d, x.data(), w.data(), bias_ptr, o);
      });
    };
    const std::vector<int8_t> ref = run(Path::kReference);

    std::vector<int8_t> expected(n);
    for (int32_t bi = 0; bi < batch_; ++bi) {
      for (int32_t o = 0; o < out_; ++o) {
        int64_t acc = bias_ ? b[static_cast<size_t>(o)] : 0;
        for (int32_t k = 0; k < in_; ++k) {
          acc += int64_t{x[static_cast<size_t>(bi * in_ + k)] + input_offset_} *
                 (w[static_cast<size_t>(o * in_ + k)] + filter_offset_);
        }
        expected[static_cast<size_t>(bi * out_ + o)] = oracle(acc, o, mult, shift);
      }
    }
    ASSERT_EQ(ref, expected) << "reference path disagrees with the direct formula";
    if (path != Path::kReference) {
      ASSERT_EQ(run(path), ref) << "path " << rt::path_name(path);
    }
  }

 private:
  int32_t batch_ = 1, in_ = 8, out_ = 4;
};

class ConvTester : public TesterBase<ConvTester> {
 public:
  ConvTester& batch(int32_t v) { return set(batch_, v); }
  ConvTester& input(int32_t h, int32_t w, int32_t c) {
    in_h_ = h;
    in_w_ = w;
    return set(in_c_, c);
  }
  ConvTester& kernel(int32_t h, int32_t w) {
    kh_ = h;
    return set(kw_, w);
  }
  ConvTester& out_channels(int32_t c) { return set(out_c_, c); }
  ConvTester& stride(int32_t h, int32_t w) {
    sh_ = h;
    return set(sw_, w);
  }
  ConvTester& dilation(int32_t h, int32_t w) {
    dh_ = h;
    return set(dw_, w);
  }
  // Explicit padding: top, left, bottom, right (bottom/right may be negative: rows left unread).
  ConvTester& padding(int32_t top, int32_t left, int32_t bottom, int32_t right) {
    mode_ = kExplicit;
    pt_ = top;
    pl_ = left;
    pb_ = bottom;
    return set(pr_, right);
  }
  ConvTester& padding_same() { return set(mode_, kSame); }
  ConvTester& padding_valid() { return set(mode_, kValid); }
  ConvTester& groups(int32_t g) { return set(groups_, g); }
  ConvTester& depth_multiplier(int32_t m) { return set(mult_, m); }

  // Geometry after padding mode resolution, TFLite's SAME/VALID formulas.
  void resolve(rt::ConvParams* p, rt::ConvDims* d, int32_t out_c) const {
    const int32_t eh = (kh_ - 1) * dh_ + 1, ew = (kw_ - 1) * dw_ + 1;
    int32_t top = pt_, left = pl_, oh = 0, ow = 0;
    if (mode_ == kSame) {
      oh = (in_h_ + sh_ - 1) / sh_;
      ow = (in_w_ + sw_ - 1) / sw_;
      top = std::max((oh - 1) * sh_ + eh - in_h_, 0) / 2;
      left = std::max((ow - 1) * sw_ + ew - in_w_, 0) / 2;
    } else if (mode_ == kValid) {
      oh = (in_h_ - eh) / sh_ + 1;
      ow = (in_w_ - ew) / sw_ + 1;
      top = left = 0;
    } else {
      oh = (in_h_ + pt_ + pb_ - eh) / sh_ + 1;
      ow = (in_w_ + pl_ + pr_ - ew) / sw_ + 1;
    }
    p->input_offset = input_offset_;
    p->filter_offset = filter_offset_;
    p->output_offset = output_offset_;
    p->stride_h = sh_;
    p->stride_w = sw_;
    p->pad_top = top;
    p->pad_left = left;
    p->dilation_h = dh_;
    p->dilation_w = dw_;
    p->groups = groups_;
    p->depth_multiplier = mult_;
    p->act_min = act_min_;
    p->act_max = act_max_;
    *d = rt::ConvDims{batch_, in_h_, in_w_, in_c_, kh_, kw_, oh, ow, out_c};
  }

  void test(Path path) const { run_test(path, false); }
  void test_depthwise(Path path) const { run_test(path, true); }

 private:
  void run_test(Path path, bool depthwise) const {
    std::mt19937 rng(seed_);
    rt::ConvParams p;
    rt::ConvDims d;
    resolve(&p, &d, depthwise ? in_c_ * mult_ : out_c_);
    ASSERT_GE(d.out_h, 1);
    ASSERT_GE(d.out_w, 1);
    const int32_t icg = depthwise ? 1 : in_c_ / groups_;
    const int32_t ocg = depthwise ? mult_ : d.out_c / groups_;
    std::vector<int8_t> x(static_cast<size_t>(batch_ * in_h_ * in_w_ * in_c_));
    std::vector<int8_t> w(static_cast<size_t>(d.out_c * kh_ * kw_ * icg));
    std::vector<int32_t> b(static_cast<size_t>(d.out_c)), mult, shift;
    for (auto& v : x) v = random_input(rng);
    for (auto& v : w) v = random_weight(rng);
    for (auto& v : b) v = random_bias(rng);
    make_requant(rng, d.out_c, &mult, &shift);
    const std::vector<uint8_t> packed = pack_s4(w);
    const rt::Requant rq = requant(mult, shift);
    const int32_t* bias_ptr = bias_ ? b.data() : nullptr;
    const size_t n = static_cast<size_t>(batch_ * d.out_h * d.out_w * d.out_c);

    auto run = [&](Path pa) {
      int32_t need = 0;
      if (depthwise) {
        need = rt::depthwise_conv2d_s8_scratch_size(p, d, pa);
      } else {
        need = int4_ ? rt::conv2d_s4_scratch_size(p, d, pa) : rt::conv2d_s8_scratch_size(p, d, pa);
      }
      return run_guarded<int8_t>(pa, need, n, [&](const rt::Context& ctx, int8_t* o) {
        if (depthwise)
          return rt::depthwise_conv2d_s8(ctx, p, rq, d, x.data(), w.data(), bias_ptr, o);
        return int4_ ? rt::conv2d_s4(ctx, p, rq, d, x.data(), packed.data(), bias_ptr, o)
                     : rt::conv2d_s8(ctx, p, rq, d, x.data(), w.data(), bias_ptr, o);
      });
    };
    const std::vector<int8_t> ref = run(Path::kReference);

    // Direct definition. conv: out[b][oy][ox][oc] with oc in group g = oc / ocg reading input
    // channels g * icg + ci, weights OHWI [oc][ky][kx][ci]. depthwise: input channel oc / mult,
    // weights [ky][kx][oc].
    std::vector<int8_t> expected(n);
    for (int32_t bi = 0; bi < batch_; ++bi) {
      for (int32_t oy = 0; oy < d.out_h; ++oy) {
        for (int32_t ox = 0; ox < d.out_w; ++ox) {
          for (int32_t oc = 0; oc < d.out_c; ++oc) {
            int64_t acc = bias_ ? b[static_cast<size_t>(oc)] : 0;
            for (int32_t ky = 0; ky < kh_; ++ky) {
              for (int32_t kx = 0; kx < kw_; ++kx) {
                const int32_t iy = oy * sh_ - p.pad_top + ky * dh_;
                const int32_t ix = ox * sw_ - p.pad_left + kx * dw_;
                for (int32_t ci = 0; ci < icg; ++ci) {
                  const int32_t c = depthwise ? oc / mult_ : (oc / ocg) * icg + ci;
                  const bool inside = iy >= 0 && iy < in_h_ && ix >= 0 && ix < in_w_;
                  // A padded tap is x = -input_offset: it adds exactly 0.
                  const int32_t xv =
                      inside ? x[static_cast<size_t>(((bi * in_h_ + iy) * in_w_ + ix) * in_c_ + c)]
                             : -input_offset_;
                  const size_t wi =
                      depthwise ? static_cast<size_t>((ky * kw_ + kx) * d.out_c + oc)
                                : static_cast<size_t>(((oc * kh_ + ky) * kw_ + kx) * icg + ci);
                  acc += int64_t{xv + input_offset_} * (w[wi] + filter_offset_);
                }
              }
            }
            expected[static_cast<size_t>(((bi * d.out_h + oy) * d.out_w + ox) * d.out_c + oc)] =
                oracle(acc, oc, mult, shift);
          }
        }
      }
    }
    ASSERT_EQ(ref, expected) << "reference path disagrees with the direct formula";
    if (path != Path::kReference) {
      ASSERT_EQ(run(path), ref) << "path " << rt::path_name(path);
    }
  }

  enum Mode { kExplicit, kSame, kValid };
  int32_t batch_ = 1, in_h_ = 5, in_w_ = 5, in_c_ = 3, kh_ = 3, kw_ = 3, out_c_ = 4;
  int32_t sh_ = 1, sw_ = 1, dh_ = 1, dw_ = 1, groups_ = 1, mult_ = 1;
  int32_t pt_ = 0, pl_ = 0, pb_ = 0, pr_ = 0;
  Mode mode_ = kValid;
};

class GemmTester {
 public:
  GemmTester& m(int32_t v) { return set(m_, v); }
  GemmTester& n(int32_t v) { return set(n_, v); }
  GemmTester& k(int32_t v) { return set(k_, v); }
  GemmTester& lda(int32_t v) { return set(lda_, v); }
  GemmTester& ldb(int32_t v) { return set(ldb_, v); }
  GemmTester& ldc(int32_t v) { return set(ldc_, v); }
  GemmTester& a_offset(int32_t v) { return set(a_off_, v); }
  GemmTester& b_offset(int32_t v) { return set(b_off_, v); }
  GemmTester& row_add(bool v) { return set(row_add_, v); }
  GemmTester& col_add(bool v) { return set(col_add_, v); }
  GemmTester& seed(uint32_t v) { return set(seed_, v); }

  void test(Path path) const {
    std::mt19937 rng(seed_);
    const rt::GemmDims d{m_, n_, k_, lda_, ldb_, ldc_};
    const int32_t lda = lda_ == 0 ? k_ : lda_, ldb = ldb_ == 0 ? k_ : ldb_;
    const int32_t ldc = ldc_ == 0 ? n_ : ldc_;
    std::vector<int8_t> a(static_cast<size_t>(m_ * lda)), b(static_cast<size_t>(n_ * ldb));
    std::vector<int32_t> ra(static_cast<size_t>(m_)), ca(static_cast<size_t>(n_));
    std::uniform_int_distribution<int> byte(-128, 127);
    std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX);
    for (auto& v : a) v = static_cast<int8_t>(byte(rng));
    for (auto& v : b) v = static_cast<int8_t>(byte(rng));
    for (auto& v : ra) v = any(rng);
    for (auto& v : ca) v = any(rng);
    const size_t n = static_cast<size_t>((m_ - 1) * ldc + n_);
    auto run = [&](Path pa) {
      return run_guarded<int32_t>(pa, rt::gemm_s8s8_s32_scratch_size(d, pa), n,
                                  [&](const rt::Context& ctx, int32_t* c) {
                                    return rt::gemm_s8s8_s32(ctx, d, a.data(), a_off_, b.data(),
                                                             b_off_, row_add_ ? ra.data() : nullptr,
                                                             col_add_ ? ca.data() : nullptr, c);
                                  });
    };
    const std::vector<int32_t> ref = run(Path::kReference);
    std::vector<int32_t> expected(n, static_cast<int32_t>(kSentinel));
    for (int32_t i = 0; i < m_; ++i) {
      for (int32_t j = 0; j < n_; ++j) {
        int64_t acc = (row_add_ ? ra[static_cast<size_t>(i)] : 0) +
                      int64_t{col_add_ ? ca[static_cast<size_t>(j)] : 0};
        for (int32_t kk = 0; kk < k_; ++kk) {
          acc += int64_t{a[static_cast<size_t>(i * lda + kk)] + a_off_} *
                 (b[static_cast<size_t>(j * ldb + kk)] + b_off_);
        }
        expected[static_cast<size_t>(i * ldc + j)] = wrap64(acc);
      }
    }
    ASSERT_EQ(ref, expected) << "reference path disagrees with the direct formula";
    if (path != Path::kReference) {
      ASSERT_EQ(run(path), ref) << "path " << rt::path_name(path);
    }
  }

 private:
  template <typename T>
  GemmTester& set(T& field, T v) {
    field = v;
    return *this;
  }
  int32_t m_ = 4, n_ = 4, k_ = 8, lda_ = 0, ldb_ = 0, ldc_ = 0, a_off_ = 0, b_off_ = 0;
  bool row_add_ = true, col_add_ = true;
  uint32_t seed_ = 99;
};

}  // namespace tinyquant_test
