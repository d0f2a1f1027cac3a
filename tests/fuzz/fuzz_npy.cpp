// Feeds arbitrary bytes to the .npy reader. A tinyquant::Error is the expected outcome for bad
// input; any other exception, a sanitizer report or a broken invariant (trap) is a bug. Whatever
// parses must survive a write -> read round trip unchanged and convert to double.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tinyquant::io;
  try {
    const NpyArray a = read_npy(data, size);
    if (a.fortran_order) __builtin_trap();  // readers always return C order
    const int64_t n = a.numel();
    if (static_cast<uint64_t>(n) * static_cast<uint64_t>(itemsize(a.dtype)) != a.data.size())
      __builtin_trap();
    const NpyArray b = read_npy(write_npy(a));
    if (b.dtype != a.dtype || b.shape != a.shape || b.data != a.data) __builtin_trap();
    if (a.as<double>().size() != static_cast<size_t>(n)) __builtin_trap();
  } catch (const tinyquant::Error&) {
  }
  return 0;
}
