// Field-by-field equality of two parsed models, shared by the model-file fuzz targets. Scales are
// compared bit for bit: a round trip must not change a single bit of a float.
#pragma once

#include <cstring>

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

}  // namespace tinyquant::fuzz
