// Portable implementation of the grouped fully-connected kernels (see grouped.hpp). Scalar on
// purpose: it is the definition, and on a Cortex-M the nibble unpacking dominates anyway.
#include "tinyquant/rt/grouped.hpp"

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

Status run(const Context& ctx, const FcParams& p, const Requant& rq, const FcDims& d,
           const GroupScales& g, const int8_t* input, const int8_t* w8, const uint8_t* w4,
           const int32_t* bias, int8_t* output) noexcept {
  (void)ctx;
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
  const int32_t groups = (d.in_features - 1) / g.group_size + 1;

  const int32_t k_total = d.in_features;
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = input + int64_t{b} * k_total;
    for (int32_t o = 0; o < d.out_features; ++o) {
      const int64_t row = int64_t{o} * k_total;
      const uint8_t* ratio = g.ratio + int64_t{o} * groups;
      int64_t total = 0;
      for (int32_t gi = 0; gi < groups; ++gi) {
        const int32_t k0 = gi * g.group_size;
        const int32_t k1 = k0 + g.group_size < k_total ? k0 + g.group_size : k_total;
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
      const int32_t t = static_cast<int32_t>((total + (int64_t{1} << 7)) >> 8);
      const int32_t acc = wrap_add(bias != nullptr ? bias[o] : 0, t);
      const int32_t c = rq.per_channel ? o : 0;
      int32_t out = wrap_add(requantize(acc, rq.multiplier[c], rq.shift[c], rq.rounding),
                             p.output_offset);  // wraps like the other kernels
      out = out < p.act_min ? p.act_min : (out > p.act_max ? p.act_max : out);
      output[int64_t{b} * d.out_features + o] = static_cast<int8_t>(out);
    }
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

}  // namespace tinyquant::rt
