// Feeds arbitrary bytes to the .tqm model reader. A tinyquant::Error is the expected outcome for
// bad input; any other exception, a sanitizer report or a broken invariant (trap) is a bug.
// Whatever parses must serialize back to bytes that parse to an equal model, and serializing
// that model again must give the same bytes (the writer is deterministic).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model_fuzz.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/model_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tinyquant;
  // Odd first byte: the input as it is (CRC checks reached); even: CRCs and size fixed up.
  const std::vector<uint8_t> input = size > 0 && (data[0] & 1u) != 0
                                         ? std::vector<uint8_t>(data, data + size)
                                         : fuzz::with_fixed_crcs(data, size);
  io::Model m;
  try {
    m = io::parse_model(input.data(), input.size(), "fuzz");
  } catch (const Error&) {
    return 0;
  }
  // From here on the model is valid: a throw is a bug, so nothing is caught.
  const std::vector<uint8_t> bytes = io::serialize_model(m);
  const io::Model back = io::parse_model(bytes.data(), bytes.size(), "round trip");
  if (!fuzz::same_model(m, back)) __builtin_trap();
  if (io::serialize_model(back) != bytes) __builtin_trap();
  return 0;
}
