// Feeds arbitrary bytes (raw or gzip) to the IDX reader. A tinyquant::Error is the expected
// outcome for bad input; any other exception, a sanitizer report or a broken invariant (trap) is
// a bug. Whatever parses must hold exactly numel(shape) elements with every extent >= 1.
#include <cstddef>
#include <cstdint>

#include "tinyquant/error.hpp"
#include "tinyquant/io/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tinyquant::io::IdxArray a = tinyquant::io::parse_idx(data, size, "fuzz");
    if (a.shape.empty()) __builtin_trap();
    int64_t n = 1;
    for (int64_t d : a.shape) {
      if (d < 1) __builtin_trap();
      n *= d;
    }
    if (static_cast<uint64_t>(n) != a.data.size()) __builtin_trap();
  } catch (const tinyquant::Error&) {
  }
  return 0;
}
