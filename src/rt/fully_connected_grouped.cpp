// Portable implementation of the grouped fully-connected kernels (see grouped.hpp). Scalar on
// purpose: it is the definition, and on a Cortex-M the nibble unpacking dominates anyway.
#include "tinyquant/rt/grouped.hpp"

#include "validate.hpp"

namespace tinyquant::rt {
namespace {

inline int32_t weight_at(const int8_t* w8, const uint8_t* w4, int64_t i) noexcept {
  if (w8 != nullptr) return w8[i];
  const uint8_t byte = w4[i >> 1];
  const int32_t nibble = (i & 1) ? (byte >> 4) : (byte & 0x0F);
  return nibble >= 8 ? nibble - 16 : nibble;
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
        for (int32_t k = k0; k < k1; ++k) {
          const int32_t xv = x[k] + p.input_offset;
          const int32_t wv = weight_at(w8, w4, row + k) + p.filter_offset;
          acc = wrap_add(acc, wrap_mul(xv, wv));
        }
        total += int64_t{acc} * (int32_t{ratio[gi]} + 1);
      }
      const int32_t t = static_cast<int32_t>((total + (int64_t{1} << 7)) >> 8);
      const int32_t acc = wrap_add(bias != nullptr ? bias[o] : 0, t);
      const int32_t c = rq.per_channel ? o : 0;
      int32_t out = requantize(acc, rq.multiplier[c], rq.shift[c], rq.rounding) + p.output_offset;
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
