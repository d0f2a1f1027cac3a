#include <cmath>
#include <cstring>
#include <limits>

#include "detail/check.hpp"

namespace tinyquant {

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out;
}

namespace detail {

int64_t first_non_finite(const float* data, int64_t n) noexcept {
  constexpr int64_t kBlock = 4096;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = start + kBlock < n ? start + kBlock : n;
    uint32_t any = 0;
    for (int64_t i = start; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, data + i, sizeof bits);
      any |= static_cast<uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
    }
    if (any != 0) {
      for (int64_t i = start; i < end; ++i)
        if (!std::isfinite(data[i])) return i;
    }
  }
  return -1;
}

void check_finite(const float* data, int64_t n, const char* what) {
  const int64_t i = first_non_finite(data, n);
  if (i >= 0) fail<DataError>("{}: non-finite value {} at index {}", what, data[i], i);
}

}  // namespace detail

}  // namespace tinyquant
