// A small binary cache of the trained float model, so a second run skips training.
//
// Layout, every integer little-endian, floats as their IEEE-754 bits:
//   "TQMLPF32" | u32 version (3) | u32 n | u32 sizes[n]
//   | u32 seed | u32 epochs | u32 batch | f32 lr | u64 train_count
//   | u32 recipe length | recipe bytes                                     (the TrainKey)
//   | for each layer: f32 w[out][in] row-major, f32 b[out]
//   | u32 p: 0, or the layer count when the weight parameters are stored   (version 3 only)
//   | p times: u32 bits | u32 group_size | f32 scales[out][ceil(in / group_size)]
//   | u32 CRC-32 (zlib's polynomial) of every byte before it
// The weight parameters are per-group, symmetric, narrow-range ones grouped along the inputs
// (QuantSpec::int4_per_group(group_size, 1) with `bits`), e.g. the scales qat_finetune learned.
// Version 2 files (no parameter section) are read as models without parameters.
// Written to a temporary file in the same directory and renamed over the target, so a reader
// never sees a half-written file. A file whose key differs from the requested one is rejected
// (the name normally differs already, the key makes it certain).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "float_mlp.hpp"
#include "tinyquant/quant_params.hpp"

namespace fmnist {

inline constexpr uint32_t kCacheVersion = 3;

// Everything that determines the trained weights (besides the data files themselves).
struct TrainKey {
  std::vector<int> sizes;
  uint32_t seed = 0;
  uint32_t epochs = 0;
  uint32_t batch = 0;
  float lr = 0.0f;
  uint64_t train_count = 0;
  // What else shaped the weights: the schedule, or for a fine-tuned model its base model and
  // pruning (file-name characters only: letters, digits, '.', '-', '_'; at most 200).
  std::string recipe;

  bool operator==(const TrainKey& o) const;
  // "784-128-64-10_s1_e12_b64_lr0.001_n55000", then "_<recipe>" if the recipe is not empty.
  std::string tag() const;
};

// Serialises / parses the layout above, with the per-layer weight parameters when `params` is
// given (serialize_model throws tinyquant::InvalidArgument for parameters of another kind or
// count, tinyquant::ShapeError if they do not fit the layers). parse_model throws
// tinyquant::FormatError naming `name` and the offset for a bad magic, version, size, checksum,
// parameter section (bits, group size, non-finite or non-positive scale), or a key other than
// `expected`; it fills `params` (if given) with the stored parameters, empty if none.
std::vector<uint8_t> serialize_model(const FloatMlp& mlp, const TrainKey& key,
                                     const std::vector<tinyquant::QuantParams>* params = nullptr);
FloatMlp parse_model(const std::vector<uint8_t>& bytes, const TrainKey& expected,
                     const std::string& name,
                     std::vector<tinyquant::QuantParams>* params = nullptr);

// Writes the file whole or not at all (write_file, report.hpp); creates the directory. Throws
// tinyquant::IoError.
void save_model(const std::string& path, const FloatMlp& mlp, const TrainKey& key,
                const std::vector<tinyquant::QuantParams>* params = nullptr);
// nullopt if the file does not exist; otherwise parse_model's result or its exceptions
// (tinyquant::IoError if the file cannot be read).
std::optional<FloatMlp> load_model(const std::string& path, const TrainKey& expected,
                                   std::vector<tinyquant::QuantParams>* params = nullptr);

}  // namespace fmnist
