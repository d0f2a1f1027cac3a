// Uses the toolkit and the runtime the way a downstream project would; exits non-zero on error.
#include <tinyquant/quant_params.hpp>
#include <tinyquant/rt/fixed_point.hpp>

#include <cstdio>
#include <vector>

int main() {
  const std::vector<float> w{-0.5f, 0.25f, 0.8f, -0.1f};
  const tinyquant::QuantParams p = tinyquant::params_for(w.data(), {2, 2}, tinyquant::QuantSpec{});
  tinyquant::rt::QuantizedMultiplier qm;
  if (tinyquant::rt::quantize_multiplier(0.5, &qm) != tinyquant::rt::Status::kOk) return 1;
  if (tinyquant::rt::requantize(3, qm.multiplier, qm.shift) != 2) return 2;
  std::printf("scale %g zero point %d\n", static_cast<double>(p.scales[0]), p.zero_points[0]);
  return p.zero_points[0] == -30 ? 0 : 3;
}
