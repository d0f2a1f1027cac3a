// Feeds arbitrary bytes to the .safetensors reader. A tinyquant::Error is the expected outcome
// for bad input; any other exception, a sanitizer report or a broken invariant (trap) is a bug.
// Whatever parses must survive a write -> read round trip unchanged and convert to double.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tinyquant::io;
  try {
    const SafeTensors a = read_safetensors(data, size);
    const SafeTensors b = read_safetensors(write_safetensors(a));
    if (b.metadata != a.metadata || b.tensors.size() != a.tensors.size()) __builtin_trap();
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      const SafeTensor& x = a.tensors[i];
      const SafeTensor& y = b.tensors[i];
      if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data)
        __builtin_trap();
      if (&a.at(x.name) != &x) __builtin_trap();  // names are unique
      if (x.as<double>().size() != static_cast<size_t>(x.numel())) __builtin_trap();
    }
  } catch (const tinyquant::Error&) {
  }
  return 0;
}
