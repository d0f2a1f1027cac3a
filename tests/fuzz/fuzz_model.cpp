// Feeds arbitrary bytes to the .tqm model reader. A tinyquant::Error is the expected outcome for
// bad input; any other exception, a sanitizer report or a broken invariant (trap) is a bug.
// Whatever parses must serialize back to bytes that parse to an equal model, and serializing
// that model again must give the same bytes (the writer is deterministic).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model_equal.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/model_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tinyquant;
  io::Model m;
  try {
    m = io::parse_model(data, size, "fuzz");
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
