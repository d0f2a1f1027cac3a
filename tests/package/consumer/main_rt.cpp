// Links only tinyquant::rt, as firmware would.
#include <tinyquant/rt/fixed_point.hpp>

int main() {
  tinyquant::rt::QuantizedMultiplier qm;
  if (!tinyquant::rt::ok(tinyquant::rt::quantize_multiplier(0.25, &qm))) return 1;
  return tinyquant::rt::requantize(8, qm.multiplier, qm.shift) == 2 ? 0 : 1;
}
