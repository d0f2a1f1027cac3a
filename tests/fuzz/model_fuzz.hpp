// Shared by the model-file fuzz targets: field-by-field equality of two parsed models (scales
// compared bit for bit: a round trip must not change a single bit of a float), and a copy of the
// input with the file size and every CRC recomputed, so mutations reach the checks behind them.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "tinyquant/io/model_file.hpp"

namespace tinyquant::fuzz {

inline bool same_params(const QuantParams& a, const QuantParams& b) {
  const QuantSpec& x = a.spec;
  const QuantSpec& y = b.spec;
  if (x.bits != y.bits || x.scheme != y.scheme || x.narrow_range != y.narrow_range ||
      x.granularity != y.granularity || x.axis != y.axis || x.group_size != y.group_size)
    return false;
  if (a.zero_points != b.zero_points || a.scales.size() != b.scales.size()) return false;
  return a.scales.empty() ||
         std::memcmp(a.scales.data(), b.scales.data(), a.scales.size() * sizeof(float)) == 0;
}

inline bool same_entry(const io::ModelEntry& a, const io::ModelEntry& b) {
  if (a.name != b.name || a.storage != b.storage || a.shape != b.shape || a.format != b.format)
    return false;
  if (a.params.has_value() != b.params.has_value()) return false;
  if (a.params && !same_params(*a.params, *b.params)) return false;
  if (a.parts.size() != b.parts.size()) return false;
  for (size_t i = 0; i < a.parts.size(); ++i) {
    if (a.parts[i].name != b.parts[i].name || a.parts[i].bytes != b.parts[i].bytes) return false;
  }
  return true;
}

inline bool same_model(const io::Model& a, const io::Model& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (size_t i = 0; i < a.entries.size(); ++i) {
    if (!same_entry(a.entries[i], b.entries[i])) return false;
  }
  return true;
}

inline uint64_t get_le(const std::vector<uint8_t>& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<size_t>(i)];
  return v;
}

inline void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

// Walks the layout of model_file.hpp as far as it holds and rewrites the file size and the CRCs
// of the header, each entry header, meta and payload. Returns the input unchanged when it is too
// short for a header.
inline std::vector<uint8_t> with_fixed_crcs(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (size < 64) return b;
  for (int i = 0; i < 8; ++i)
    b[16 + static_cast<size_t>(i)] = static_cast<uint8_t>(size >> (8 * i));
  put_u32(b, 28, io::crc32(b.data(), 28));
  const uint64_t count = get_le(b, 12, 4);
  uint64_t at = 64;
  for (uint64_t e = 0; e < count && at + 32 <= size; ++e) {
    const size_t h = static_cast<size_t>(at);
    const uint64_t meta = get_le(b, h + 4, 4);
    const uint64_t payload = get_le(b, h + 8, 8);
    if (meta > size || payload > size) break;
    const uint64_t meta_at = at + 32;
    if (meta_at + meta <= size)
      put_u32(b, h + 16, io::crc32(b.data() + meta_at, static_cast<size_t>(meta)));
    const uint64_t payload_at = (meta_at + meta + 63) / 64 * 64;
    if (payload_at + payload <= size)
      put_u32(b, h + 20, io::crc32(b.data() + payload_at, static_cast<size_t>(payload)));
    put_u32(b, h + 24, io::crc32(b.data() + h, 24));
    at = (payload_at + payload + 63) / 64 * 64;
  }
  return b;
}

}  // namespace tinyquant::fuzz
