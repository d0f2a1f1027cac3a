// Internal: the caller's scratch may come at any alignment (kernels.hpp, Context::scratch).
// Paths that store 32-bit words or vectors there align it themselves and ask for align - 1
// bytes more in their *_scratch_size().
//
// Not a public header: only src/rt/ includes it.
#pragma once

#include <cstdint>

namespace tinyquant::rt::detail {

// The first address at or after p that is a multiple of align (> 0); null stays null.
inline uint8_t* align_scratch(void* p, uintptr_t align) noexcept {
  if (p == nullptr) return nullptr;
  const auto a = reinterpret_cast<uintptr_t>(p);
  return static_cast<uint8_t*>(p) + (align - a % align) % align;
}

}  // namespace tinyquant::rt::detail
