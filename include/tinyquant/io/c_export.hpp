// Export of a model (.tqm contents) as C source: const arrays a firmware build compiles in.
//
// Output contract:
//  - one header (and optionally a separate .c file holding the array definitions) that compiles
//    as C99/C11 and as C++11 or later with -Wall -Wextra -Werror;
//  - every array is aligned to 16 bytes through the TQ_<PREFIX>_ALIGN macro (C11 _Alignas,
//    C++ alignas, GCC/Clang attribute otherwise);
//  - per entry <prefix>_<name>: the data (int8 for bits 5..8, uint8 s4 nibble stream for bits
//    2..4, float for float32, int32 for int32), _NDIM / _DIM<i> / _NUMEL / _BITS constants, and
//    for quantized entries the _scales (float) and _zero_points (int32) arrays. Names are
//    sanitised into C identifiers (every character outside [A-Za-z0-9_] becomes '_');
//  - for every 2-D entry named "X.weight" quantized symmetric per-channel (axis 0) or
//    per-tensor with bits 2..8, when layer parameters are given: _multipliers, _shifts and
//    _kernel_bias (int32) as tinyquant::QuantizedLinear computes them, with the input offset
//    folded into the bias, so rt::fully_connected_s8 / _s4 run with input_offset 0 and
//    output_offset = output zero point. A float "X.bias" entry, if present, is used.
// Errors: sparse entries, an empty model, clashing C names and bad layer parameters throw
// InvalidArgument naming the entry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "tinyquant/io/model_file.hpp"
#include "tinyquant/layers.hpp"

namespace tinyquant::io {

struct CExportOptions {
  std::string prefix = "model";  // C identifier prefix; sanitised like entry names
  // Activation parameters of the fully-connected layers; when absent no requantization arrays
  // are emitted and the header says how to compute them.
  std::optional<ActivationParams> input;
  std::optional<ActivationParams> output;
  // When set, export_c_header emits declarations only and export_c_source the definitions;
  // the source then #includes this header name.
  std::string header_name;
};

// "conv1.weight" -> "conv1_weight"; a leading digit gets a '_' prefix.
std::string c_identifier(const std::string& name);

// The whole header: definitions when options.header_name is empty, else declarations only.
std::string export_c_header(const Model& model, const CExportOptions& options);
// The .c definitions that go with export_c_header(model, options) (options.header_name set).
std::string export_c_source(const Model& model, const CExportOptions& options);

}  // namespace tinyquant::io
