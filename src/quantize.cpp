#include "tinyquant/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "detail/check.hpp"
#include "detail/hot_clones.hpp"  // hot loops get an AVX2 clone

// The rounding and NaN checks below rely on IEEE arithmetic in the default rounding mode.
#if defined(__FAST_MATH__)
#error "src/quantize.cpp must not be compiled with -ffast-math"
#endif

namespace tinyquant {

using detail::fail;

namespace {

// fake_quant needs the integer before the clamp: x / scale is first limited to +-2^20, far
// beyond any qmax - zero_point (< 2^17), so the in/out-of-range answer is unchanged, the rounding
// tricks below stay exact and the float -> int32 conversion never overflows. NaN maps to +-2^20.
constexpr float kQuotientLimit = 1048576.0f;

inline float clamp_quotient(float v) {
  const float a = std::fabs(v);
  return std::copysign(a < kQuotientLimit ? a : kQuotientLimit, v);
}

// Half away from zero for |v| <= 2^22: add the largest float below 0.5 with v's sign, then
// truncate. Unlike v + 0.5 this never rounds the sum up across an integer it should not reach
// (0.49999997f + 0.49999997f = 0.99999994f stays below 1), while every true tie k + 0.5 still
// lands on k + 1; checked against std::round for every float of magnitude up to 2^22.
inline int32_t round_half_away(float v) {
  constexpr float kBelowHalf = 0.49999997f;  // nextafter(0.5f, 0.0f)
  return static_cast<int32_t>(v + std::copysign(kBelowHalf, v));
}

// Half to even for |v| <= 2^22: adding 1.5 * 2^23 moves v to where the float spacing is 1, so
// the addition itself rounds to the nearest integer, ties to even (default rounding mode).
inline int32_t round_half_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return static_cast<int32_t>((v + kMagic) - kMagic);
}

template <RoundMode M>
inline int32_t round_quotient(float v) {
  const float c = clamp_quotient(v);
  return M == RoundMode::kHalfToEven ? round_half_even(c) : round_half_away(c);
}

// Nonzero iff x is NaN or +-Inf: x - x is +0 for every finite x and NaN otherwise. Two
// instructions a vector, OR-ed across the loop; the caller re-scans only when it is set.
inline uint32_t non_finite_bits(float x) {
  const float z = x - x;
  uint32_t b;
  std::memcpy(&b, &z, sizeof b);
  return b;
}

inline int32_t clamp_int(int32_t q, int32_t lo, int32_t hi) {
  q = q < lo ? lo : q;
  return q > hi ? hi : q;
}

// Storage sinks: int8 elements, and int16 elements written byte-wise in host order.
struct Int8Out {
  int8_t* p;
  void put(int64_t i, int32_t q) const { p[i] = static_cast<int8_t>(q); }
};
struct Int16Out {
  uint8_t* p;
  void put(int64_t i, int32_t q) const {
    const int16_t v = static_cast<int16_t>(q);
    std::memcpy(p + 2 * i, &v, sizeof v);
  }
};

template <RoundMode M>
inline int32_t round_exact(float v) {
  return M == RoundMode::kHalfToEven ? round_half_even(v) : round_half_away(v);
}

// clamp(round(v) + zp, qmin, qmax) == round(clamp(v, qmin - zp, qmax - zp)) + zp, because the
// bounds are integers and rounding is monotone; clamping the float first keeps the loop short
// and the conversion in range. Written so NaN becomes lo (no undefined conversion); NaN inputs
// are reported by the caller anyway.
template <RoundMode M>
inline int32_t quantize_one(float v, float lo, float hi) {
  v = v >= lo ? v : lo;
  v = v <= hi ? v : hi;
  return round_exact<M>(v);
}

// One run of n elements sharing one (scale, zero point). Returns 1 if any x is NaN / Inf.
template <RoundMode M, class Out>
inline uint32_t quantize_run_uniform(const float* x, int64_t n, float scale, int32_t zp,
                                     int32_t qmin, int32_t qmax, Out out) {
  const float lo = static_cast<float>(qmin - zp), hi = static_cast<float>(qmax - zp);
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    bad |= non_finite_bits(x[i]);
    out.put(i, quantize_one<M>(x[i] / scale, lo, hi) + zp);
  }
  return bad;
}

// One run of n elements with their own (scale[i], zp[i]) and float bounds lo[i] = qmin - zp[i],
// hi[i] = qmax - zp[i] (precomputed once per call: two loads are cheaper than two conversions).
template <RoundMode M, class Out>
inline uint32_t quantize_run_each(const float* x, int64_t n, const float* scale, const int32_t* zp,
                                  const float* lo, const float* hi, Out out) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    bad |= non_finite_bits(x[i]);
    out.put(i, quantize_one<M>(x[i] / scale[i], lo[i], hi[i]) + zp[i]);
  }
  return bad;
}

// The int8 variants are the hot ones and get ISA clones; int16 stays on the templates.
TINYQUANT_HOT_CLONES uint32_t quantize_s8_uniform_away(const float* x, int64_t n, float s,
                                                       int32_t zp, int32_t lo, int32_t hi,
                                                       int8_t* out) {
  return quantize_run_uniform<RoundMode::kHalfAwayFromZero>(x, n, s, zp, lo, hi, Int8Out{out});
}
TINYQUANT_HOT_CLONES uint32_t quantize_s8_uniform_even(const float* x, int64_t n, float s,
                                                       int32_t zp, int32_t lo, int32_t hi,
                                                       int8_t* out) {
  return quantize_run_uniform<RoundMode::kHalfToEven>(x, n, s, zp, lo, hi, Int8Out{out});
}
TINYQUANT_HOT_CLONES uint32_t quantize_s8_each_away(const float* x, int64_t n, const float* s,
                                                    const int32_t* zp, const float* lo,
                                                    const float* hi, int8_t* out) {
  return quantize_run_each<RoundMode::kHalfAwayFromZero>(x, n, s, zp, lo, hi, Int8Out{out});
}
TINYQUANT_HOT_CLONES uint32_t quantize_s8_each_even(const float* x, int64_t n, const float* s,
                                                    const int32_t* zp, const float* lo,
                                                    const float* hi, int8_t* out) {
  return quantize_run_each<RoundMode::kHalfToEven>(x, n, s, zp, lo, hi, Int8Out{out});
}

TINYQUANT_HOT_CLONES void dequantize_s8_uniform(const int8_t* q, int64_t n, float s, int32_t zp,
                                                float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = s * static_cast<float>(static_cast<int32_t>(q[i]) - zp);
}
TINYQUANT_HOT_CLONES void dequantize_s8_each(const int8_t* q, int64_t n, const float* s,
                                             const int32_t* zp, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = s[i] * static_cast<float>(static_cast<int32_t>(q[i]) - zp[i]);
}

int16_t load_s16(const uint8_t* p, int64_t i) {
  int16_t v;
  std::memcpy(&v, p + 2 * i, sizeof v);
  return v;
}

// Splits the tensor into contiguous runs of elements whose parameters are either one shared
// pair (uniform) or consecutive pairs (each), and calls
//   f(first_element, count, first_param, uniform).
template <class F>
void for_each_run(const ParamLayout& l, int64_t n, F&& f) {
  const int64_t a_len = l.axis_len, inner = l.inner;
  switch (l.granularity) {
    case Granularity::kPerTensor:
      if (n > 0) f(int64_t{0}, n, int64_t{0}, true);
      return;
    case Granularity::kPerChannel:
      for (int64_t o = 0; o < l.outer; ++o) {
        if (inner == 1) {
          f(o * a_len, a_len, int64_t{0}, false);
        } else {
          for (int64_t a = 0; a < a_len; ++a) f((o * a_len + a) * inner, inner, a, true);
        }
      }
      return;
    case Granularity::kPerGroup:
      for (int64_t o = 0; o < l.outer; ++o) {
        if (inner == 1) {
          for (int64_t g = 0; g < l.groups; ++g) {
            const int64_t start = g * l.group_size;
            f(o * a_len + start, std::min(l.group_size, a_len - start), o * l.groups + g, true);
          }
        } else {
          for (int64_t a = 0; a < a_len; ++a)
            f((o * a_len + a) * inner, inner, (o * l.groups + a / l.group_size) * inner, false);
        }
      }
      return;
  }
}

// Everything a run needs: scales, zero points, the integer range and per-pair float bounds.
struct ParamTable {
  const float* s;
  const int32_t* z;
  int32_t qmin, qmax;
  std::vector<float> lo, hi;  // qmin - z[k], qmax - z[k]
  bool even;

  ParamTable(const QuantParams& p, RoundMode mode)
      : s(p.scales.data()),
        z(p.zero_points.data()),
        qmin(p.spec.qmin()),
        qmax(p.spec.qmax()),
        even(mode == RoundMode::kHalfToEven) {
    lo.resize(p.zero_points.size());
    hi.resize(p.zero_points.size());
    for (size_t k = 0; k < lo.size(); ++k) {
      lo[k] = static_cast<float>(qmin - z[k]);
      hi[k] = static_cast<float>(qmax - z[k]);
    }
  }
};

// One run of c elements into int8 through the clone that fits; k is the first parameter index.
uint32_t quantize_s8_run(const float* x, int64_t c, const ParamTable& t, int64_t k, bool uniform,
                         int8_t* q) {
  if (uniform)
    return t.even ? quantize_s8_uniform_even(x, c, t.s[k], t.z[k], t.qmin, t.qmax, q)
                  : quantize_s8_uniform_away(x, c, t.s[k], t.z[k], t.qmin, t.qmax, q);
  const float* lo = t.lo.data() + k;
  const float* hi = t.hi.data() + k;
  return t.even ? quantize_s8_each_even(x, c, t.s + k, t.z + k, lo, hi, q)
                : quantize_s8_each_away(x, c, t.s + k, t.z + k, lo, hi, q);
}

// Quantizes into int8 (bits <= 8) or int16 storage; returns 1 if any input was NaN / Inf.
uint32_t quantize_unpacked(const float* x, int64_t n, const ParamLayout& l, const QuantParams& p,
                           RoundMode mode, uint8_t* out) {
  const ParamTable t(p, mode);
  uint32_t bad = 0;
  if (p.spec.bits <= 8) {
    int8_t* q = reinterpret_cast<int8_t*>(out);
    for_each_run(l, n, [&](int64_t e, int64_t c, int64_t k, bool uniform) {
      bad |= quantize_s8_run(x + e, c, t, k, uniform, q + e);
    });
  } else {
    const int32_t lo = t.qmin, hi = t.qmax;
    const float* s = t.s;
    const int32_t* z = t.z;
    const bool even = t.even;
    for_each_run(l, n, [&](int64_t e, int64_t c, int64_t k, bool uniform) {
      const Int16Out o{out + 2 * e};
      if (uniform) {
        bad |= even ? quantize_run_uniform<RoundMode::kHalfToEven>(x + e, c, s[k], z[k], lo, hi, o)
                    : quantize_run_uniform<RoundMode::kHalfAwayFromZero>(x + e, c, s[k], z[k], lo,
                                                                         hi, o);
      } else {
        const float* fl = t.lo.data() + k;
        const float* fh = t.hi.data() + k;
        bad |= even ? quantize_run_each<RoundMode::kHalfToEven>(x + e, c, s + k, z + k, fl, fh, o)
                    : quantize_run_each<RoundMode::kHalfAwayFromZero>(x + e, c, s + k, z + k, fl,
                                                                      fh, o);
      }
    });
  }
  return bad;
}

TINYQUANT_HOT_CLONES void pack_int4_unchecked(const int8_t* v, int64_t n, uint8_t* packed) {
  const int64_t pairs = n / 2;
  for (int64_t i = 0; i < pairs; ++i) {
    const uint32_t low = static_cast<uint32_t>(v[2 * i]) & 0x0Fu;
    const uint32_t high = (static_cast<uint32_t>(v[2 * i + 1]) & 0x0Fu) << 4;
    packed[i] = static_cast<uint8_t>(low | high);
  }
  if (n % 2 != 0) packed[pairs] = static_cast<uint8_t>(static_cast<uint32_t>(v[n - 1]) & 0x0Fu);
}

// Quantizes into s4 nibbles through a small int8 buffer that stays in cache: runs (in increasing
// element order) fill it, and every full buffer is packed. The buffer size is even, so each
// flush starts on a byte boundary.
uint32_t quantize_packed(const float* x, int64_t n, const ParamLayout& l, const QuantParams& p,
                         RoundMode mode, uint8_t* out) {
  constexpr int64_t kChunk = 16384;
  std::vector<int8_t> buf(static_cast<size_t>(kChunk));
  const ParamTable t(p, mode);
  uint32_t bad = 0;
  int64_t start = 0, fill = 0;  // buf holds elements [start, start + fill)
  for_each_run(l, n, [&](int64_t e, int64_t c, int64_t k, bool uniform) {
    for (int64_t done = 0; done < c;) {
      const int64_t take = std::min(c - done, kChunk - fill);
      const int64_t pk = uniform ? k : k + done;
      bad |= quantize_s8_run(x + e + done, take, t, pk, uniform, buf.data() + fill);
      fill += take;
      done += take;
      if (fill == kChunk) {
        pack_int4_unchecked(buf.data(), fill, out + start / 2);
        start += fill;
        fill = 0;
      }
    }
  });
  pack_int4_unchecked(buf.data(), fill, out + start / 2);
  return bad;
}

// Sign-extends a nibble: shift it to the top of a signed byte, then arithmetic-shift back.
inline int8_t nibble_to_s8(uint32_t nibble) {
  return static_cast<int8_t>(static_cast<int8_t>(static_cast<uint8_t>(nibble << 4)) >> 4);
}

void check_params(const char* what, const Shape& shape, const QuantParams& params) {
  try {
    params.validate(shape);
  } catch (const ShapeError& e) {
    fail<ShapeError>("{}: {}", what, e.what());
  } catch (const InvalidArgument& e) {
    fail<InvalidArgument>("{}: {}", what, e.what());
  }
}

void check_data(const char* what, const float* data, int64_t n) {
  if (n > 0 && data == nullptr) fail<InvalidArgument>("{}: data is null for {} elements", what, n);
}

void check_qtensor(const char* what, const QTensor& q) {
  check_params(what, q.shape, q.params);
  detail::check_storage(what, q);
}

}  // namespace

void detail::check_storage(const char* what, const QTensor& q) {
  const int64_t need = storage_bytes(q.bits(), q.numel());
  if (static_cast<int64_t>(q.data.size()) != need)
    fail<ShapeError>("{}: QTensor holds {} bytes, but {} {}-bit elements of shape {} need {}", what,
                     q.data.size(), q.numel(), q.bits(), to_string(q.shape), need);
}

int32_t detail::stored_code(const uint8_t* data, int bits, int64_t i) noexcept {
  if (bits <= 4) {
    const uint32_t byte = data[i / 2];
    return nibble_to_s8(i % 2 == 0 ? byte & 0x0Fu : byte >> 4);
  }
  if (bits <= 8) return static_cast<int8_t>(data[i]);
  return load_s16(data, i);
}

int32_t QTensor::value(int64_t i) const noexcept {
  return detail::stored_code(data.data(), params.spec.bits, i);
}

int64_t storage_bytes(int bits, int64_t n) {
  if (!((bits >= 2 && bits <= 8) || bits == 16))
    fail<InvalidArgument>("storage_bytes: bits = {} is not supported (expected 2..8 or 16)", bits);
  if (n < 0) fail<InvalidArgument>("storage_bytes: element count {} is negative", n);
  if (bits <= 4) return n / 2 + n % 2;
  if (bits <= 8) return n;
  if (n > std::numeric_limits<int64_t>::max() / 2)
    fail<ShapeError>("storage_bytes: {} 16-bit elements take more bytes than int64 holds", n);
  return 2 * n;
}

void pack_int4(const int8_t* values, int64_t n, uint8_t* packed) {
  if (n < 0) fail<InvalidArgument>("pack_int4: element count {} is negative", n);
  if (n > 0 && (values == nullptr || packed == nullptr))
    fail<InvalidArgument>("pack_int4: null buffer for {} elements", n);
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>(values[i] < -8 || values[i] > 7);
  if (bad != 0) {
    for (int64_t i = 0; i < n; ++i)
      if (values[i] < -8 || values[i] > 7)
        fail<InvalidArgument>("pack_int4: value {} at index {} is outside [-8, 7]",
                              static_cast<int>(values[i]), i);
  }
  pack_int4_unchecked(values, n, packed);
}

std::vector<uint8_t> pack_int4(const std::vector<int8_t>& values) {
  const int64_t n = static_cast<int64_t>(values.size());
  std::vector<uint8_t> out(static_cast<size_t>(storage_bytes(4, n)));
  pack_int4(values.data(), n, out.data());
  return out;
}

void unpack_int4(const uint8_t* packed, int64_t n, int8_t* values) {
  if (n < 0) fail<InvalidArgument>("unpack_int4: element count {} is negative", n);
  if (n > 0 && (values == nullptr || packed == nullptr))
    fail<InvalidArgument>("unpack_int4: null buffer for {} elements", n);
  const int64_t pairs = n / 2;
  for (int64_t i = 0; i < pairs; ++i) {
    const uint32_t byte = packed[i];
    values[2 * i] = nibble_to_s8(byte & 0x0Fu);
    values[2 * i + 1] = nibble_to_s8(byte >> 4);
  }
  if (n % 2 != 0) values[n - 1] = nibble_to_s8(packed[pairs] & 0x0Fu);
}

std::vector<int8_t> unpack_int4(const std::vector<uint8_t>& packed, int64_t n) {
  const int64_t need = storage_bytes(4, n);
  if (static_cast<int64_t>(packed.size()) != need)
    fail<ShapeError>("unpack_int4: {} packed bytes, but {} elements need {}", packed.size(), n,
                     need);
  std::vector<int8_t> out(static_cast<size_t>(n));
  unpack_int4(packed.data(), n, out.data());
  return out;
}

void quantize(const float* data, const Shape& shape, const QuantParams& params, uint8_t* out,
              int64_t out_bytes, RoundMode mode) {
  check_params("quantize", shape, params);
  const ParamLayout l = param_layout(params.spec, shape);
  const int64_t n = numel(shape);
  check_data("quantize", data, n);
  const int bits = params.spec.bits;
  const int64_t need = storage_bytes(bits, n);
  if (out_bytes != need || (need > 0 && out == nullptr))
    fail<ShapeError>("quantize: output buffer has {} bytes, but {} {}-bit elements need {}",
                     out == nullptr ? 0 : out_bytes, n, bits, need);
  if (n == 0) return;
  uint32_t bad = 0;
  if (bits <= 4) {
    bad = quantize_packed(data, n, l, params, mode, out);
  } else {
    bad = quantize_unpacked(data, n, l, params, mode, out);
  }
  if (bad != 0) detail::check_finite(data, n, "quantize");
}

QTensor quantize(const float* data, const Shape& shape, const QuantParams& params, RoundMode mode) {
  check_params("quantize", shape, params);
  QTensor q;
  q.shape = shape;
  q.params = params;
  const int64_t bytes = storage_bytes(params.spec.bits, numel(shape));
  q.data.resize(static_cast<size_t>(bytes));
  quantize(data, shape, params, q.data.data(), bytes, mode);
  return q;
}

QTensor from_integers(const int32_t* values, const Shape& shape, const QuantParams& params) {
  check_params("from_integers", shape, params);
  const int64_t n = numel(shape);
  if (n > 0 && values == nullptr)
    fail<InvalidArgument>("from_integers: values are null for {} elements", n);
  const int32_t qmin = params.spec.qmin(), qmax = params.spec.qmax();
  for (int64_t i = 0; i < n; ++i)
    if (values[i] < qmin || values[i] > qmax)
      fail<InvalidArgument>("from_integers: value {} at index {} is outside [{}, {}] ({} bits)",
                            values[i], i, qmin, qmax, params.spec.bits);
  QTensor q;
  q.shape = shape;
  q.params = params;
  q.data.assign(static_cast<size_t>(storage_bytes(params.spec.bits, n)), 0);
  // Stored through quantize's own sinks and nibble packing, so the two cannot drift apart.
  const int bits = params.spec.bits;
  if (bits <= 4) {
    std::vector<int8_t> narrow(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) narrow[static_cast<size_t>(i)] = static_cast<int8_t>(values[i]);
    pack_int4_unchecked(narrow.data(), n, q.data.data());
  } else if (bits <= 8) {
    const Int8Out out{reinterpret_cast<int8_t*>(q.data.data())};
    for (int64_t i = 0; i < n; ++i) out.put(i, values[i]);
  } else {
    const Int16Out out{q.data.data()};
    for (int64_t i = 0; i < n; ++i) out.put(i, values[i]);
  }
  return q;
}

void dequantize(const QTensor& q, float* out, int64_t out_count) {
  check_qtensor("dequantize", q);
  const int64_t n = q.numel();
  if (out_count != n || (n > 0 && out == nullptr))
    fail<ShapeError>("dequantize: output buffer has {} floats, but shape {} has {} elements",
                     out == nullptr ? 0 : out_count, to_string(q.shape), n);
  if (n == 0) return;
  const ParamLayout l = param_layout(q.params.spec, q.shape);
  const float* s = q.params.scales.data();
  const int32_t* z = q.params.zero_points.data();
  if (q.bits() == 16) {
    const uint8_t* p = q.data.data();
    for_each_run(l, n, [&](int64_t e, int64_t c, int64_t k, bool uniform) {
      for (int64_t i = 0; i < c; ++i) {
        const int64_t j = uniform ? k : k + i;
        out[e + i] = s[j] * static_cast<float>(load_s16(p, e + i) - z[j]);
      }
    });
    return;
  }
  std::vector<int8_t> tmp;
  const int8_t* v = reinterpret_cast<const int8_t*>(q.data.data());
  if (q.bits() <= 4) {
    tmp.resize(static_cast<size_t>(n));
    unpack_int4(q.data.data(), n, tmp.data());
    v = tmp.data();
  }
  for_each_run(l, n, [&](int64_t e, int64_t c, int64_t k, bool uniform) {
    if (uniform) {
      dequantize_s8_uniform(v + e, c, s[k], z[k], out + e);
    } else {
      dequantize_s8_each(v + e, c, s + k, z + k, out + e);
    }
  });
}

std::vector<float> dequantize(const QTensor& q) {
  check_qtensor("dequantize", q);
  std::vector<float> out(static_cast<size_t>(q.numel()));
  dequantize(q, out.data(), static_cast<int64_t>(out.size()));
  return out;
}

QTensor quantize_weights(const float* data, const Shape& shape, const QuantSpec& spec,
                         RoundMode mode) {
  return quantize(data, shape, params_for(data, shape, spec), mode);
}

FakeQuantResult fake_quant(const float* data, const Shape& shape, const QuantParams& params,
                           RoundMode mode) {
  check_params("fake_quant", shape, params);
  const ParamLayout l = param_layout(params.spec, shape);
  const int64_t n = numel(shape);
  check_data("fake_quant", data, n);
  detail::check_finite(data, n, "fake_quant");
  FakeQuantResult r;
  r.values.resize(static_cast<size_t>(n));
  r.mask.resize(static_cast<size_t>(n));
  const int32_t lo = params.spec.qmin(), hi = params.spec.qmax();
  const float* s = params.scales.data();
  const int32_t* z = params.zero_points.data();
  const bool even = mode == RoundMode::kHalfToEven;
  float* val = r.values.data();
  uint8_t* mask = r.mask.data();
  for_each_run(l, n, [&](int64_t e, int64_t c, int64_t k, bool uniform) {
    for (int64_t i = 0; i < c; ++i) {
      const int64_t j = uniform ? k : k + i;
      const float v = data[e + i] / s[j];
      const int32_t pre = (even ? round_quotient<RoundMode::kHalfToEven>(v)
                                : round_quotient<RoundMode::kHalfAwayFromZero>(v)) +
                          z[j];
      mask[e + i] = static_cast<uint8_t>(pre >= lo && pre <= hi);
      val[e + i] = s[j] * static_cast<float>(clamp_int(pre, lo, hi) - z[j]);
    }
  });
  return r;
}

}  // namespace tinyquant
