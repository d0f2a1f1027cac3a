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
//    sanitised into C identifiers (every character outside [A-Za-z0-9_] becomes '_', a run of
//    '_' one '_', and a trailing one is dropped: C++ reserves names with "__");
//  - no generated name (array or macro) is one the header cannot declare: a keyword of C (C99 to
//    C23, _Bool and the like included) or of C++ (to C++20, with the alternative tokens "and",
//    "or", "not", ...); a name <stdint.h> defines, which the header includes (the types
//    u?int{8,16,32,64}_t, u?int_least / u?int_fast{8..64}_t, u?intptr_t, u?intmax_t, their _MIN /
//    _MAX / _WIDTH macros, INTn_C, SIZE_MAX, PTRDIFF_*, SIG_ATOMIC_*, WCHAR_*, WINT_*); a name
//    <stddef.h> defines (NULL, offsetof, size_t, ptrdiff_t, max_align_t, nullptr_t; bool,
//    alignas and the rest of <stdbool.h> / <stdalign.h> are keywords); "std" or "main"; a macro
//    GCC and clang predefine in their GNU modes ("linux", "unix", "i386"). Prefix
//    "int8" with an entry "t" (int8_t), "SIZE" with "MAX", "int" with "." (the prefix alone)
//    throw InvalidArgument naming the entry and the name; names only close to these ("int8_ts",
//    "my_int") are kept. No name is one C reserves ("__x", "_X"): every one starts with the
//    prefix, which starts with a letter, or with "TQ_";
//  - for every 2-D entry named "X.weight" quantized symmetric per-channel (axis 0) or
//    per-tensor with bits 2..8, when layer parameters are given (options.layers["X"], else
//    options.input / output): _multipliers, _shifts and _kernel_bias (int32) as
//    tinyquant::QuantizedLinear computes them, with the input offset folded into the bias, so
//    rt::fully_connected_s8 / _s4 run with input_offset 0 and output_offset = output zero point,
//    and X_IN_FEATURES, X_OUT_FEATURES, X_INPUT_OFFSET, X_FILTER_OFFSET, X_OUTPUT_OFFSET,
//    X_ACT_MIN, X_ACT_MAX, X_PER_CHANNEL. A float "X.bias" entry, if present, is used.
//    X_ACT_MIN / X_ACT_MAX are the clamp of the layer's fused activation (LayerActivations::act:
//    none gives the int8 range, ReLU / ReLU6 clamp as tinyquant::activation_range does).
//    Symmetric per-group weights (axis 1) also get _group_ratios (uint8 [out][groups], the
//    rt::GroupScales ratio bytes), X_GROUP_SIZE and X_GROUPS_PER_ROW for
//    rt::fully_connected_s4_grouped / _s8_grouped; their bias keeps the input offset
//    (X_INPUT_OFFSET is the negated input zero point), as QuantizedLinear runs them.
//  - for every 4-D "X.weight" [out_c][kh][kw][in_c / groups], 8 or 4 bits, symmetric
//    per-channel (axis 0) or per-tensor: X_OUT_C, X_KERNEL_H, X_KERNEL_W, X_IN_C_PER_GROUP and,
//    with layer parameters, _multipliers, _shifts, _kernel_bias (no input offset folded: the
//    kernel pads with it), X_PER_CHANNEL and the offsets / clamps of rt::conv2d_s8 / _s4, as
//    tinyquant::QuantizedConv2d computes them. Stride, dilation, padding and groups are not in
//    the model file: X_STRIDE_H/W, X_DILATION_H/W, X_GROUPS and X_PADDING_SAME (1 SAME, 0
//    VALID) appear only when options.conv["X"] gives them, else the header says so.
//    A depthwise convolution (options.depthwise["X"] = channel multiplier M, with a geometry) is
//    stored as a grouped conv with one input channel per group, 8-bit [in_c * M][kh][kw][1];
//    it also gets X_depthwise_weight, the same weights in rt::depthwise_conv2d_s8's layout
//    [kh][kw][in_c * M], X_DEPTH_MULTIPLIER and X_IN_C, and X_GROUPS = in_c (implied).
//  - for every sparse entry (see "Sparse entries" below): _values (int8, or the uint8 s4 nibble
//    stream for int4), the index arrays of its format (_row_nnz uint16, _col_delta uint8,
//    _col_index uint16, _bitmap uint8, _nm_index uint8, _block_row_ptr uint32, _block_col
//    uint16, named as rt::SparseMatrixS8's fields), _scales and _zero_points, and the constants
//    that fill an rt::SparseMatrixS8: _SPARSE_FORMAT (the rt::SparseFormat value), _ROWS,
//    _COLS, _VALUE_COUNT, _NM_N / _NM_M (N:M), _BLOCK_ROWS / _BLOCK_COLS (block CSR), and
//    _SPARSE_BYTES (every shipped array of the format, as SparseMatrix::bytes() counts).
//    An int8 "X.weight" sparse entry quantized as above also gets the layer arrays, for
//    rt::sparse_fully_connected_s8 (bit-identical to the dense kernel on the same weights).
//  - requantization form (options.requant): kMultipliers ships the int32 _multipliers and
//    _shifts above (8 bytes per output channel); kScales ships what a TFLite flatbuffer does
//    instead: X_requant_scales (float, per output channel the weight scale, for per-group
//    weights the row's largest group scale S[o], one value when X_PER_CHANNEL is 0) and the
//    float X_INPUT_SCALE / X_OUTPUT_SCALE macros; the firmware computes the pairs once at init
//    with rt::multipliers_from_scales into its own int32 arrays (the header says how), and gets
//    exactly the _multipliers / _shifts the other form ships.
//  - a 2-D or 4-D quantized "X.weight" none of the above kernels takes (affine per-channel, a
//    per-channel axis other than 0, 16 bits, a conv of other than 8 or 4 bits) gets a comment
//    saying why it has no layer arrays; options.layers["X"] for it throws saying the same.
//  - C has no empty arrays: an array with no element (a fully pruned matrix) is emitted with one
//    unused 0 and its count macro says 0.
// Errors: an empty model, clashing C names (between entries, with the header's own macros, or
// with the names above) and bad layer parameters throw InvalidArgument naming the entry; sparse
// entries whose arrays do not describe a valid matrix throw FormatError naming the entry.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "tinyquant/io/model_file.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/sparse.hpp"

namespace tinyquant::io {

struct LayerActivations {
  ActivationParams input, output;
  Activation act = Activation::kNone;  // fused into X_ACT_MIN / X_ACT_MAX
};

// How a layer's requantization is shipped (see the contract above).
enum class RequantForm : uint8_t {
  kMultipliers = 0,  // int32 multiplier + int32 shift per output channel
  kScales = 1,       // float scales; rt::multipliers_from_scales at init (TFLite Micro's form)
};

struct CExportOptions {
  // C identifier prefix, sanitised like entry names and with no '_' at either end ("net." ->
  // "net"); empty after that -> "model", a leading digit gets "tq_" ("1net" -> "tq_1net").
  // Macros and the include guard take it in upper case, so two headers in one translation unit
  // need prefixes that differ in more than case ("net" and "NET" share TQ_NET_H_ and every
  // NET_... macro: the second header would be skipped).
  std::string prefix = "model";
  // Activation parameters of every layer without its own entry in `layers`; when a layer has
  // neither, no requantization arrays are emitted for it and the header says how to compute them.
  std::optional<ActivationParams> input;
  std::optional<ActivationParams> output;
  // Per layer, by base name ("fc1" for "fc1.weight"). A name with no such layer throws.
  std::map<std::string, LayerActivations> layers;
  // Convolution geometry per layer (not stored in the model file); a name with no 4-D layer of
  // that name throws. Without it the header has no stride / padding / dilation / groups macros.
  std::map<std::string, Conv2dGeometry> conv;
  // Depthwise convolutions, by layer: the channel multiplier (see the contract above). A layer
  // without a geometry in `conv`, or whose weight is not 8-bit [out_c][kh][kw][1] with out_c a
  // multiple of the multiplier, throws.
  std::map<std::string, int32_t> depthwise;
  RequantForm requant = RequantForm::kMultipliers;
  // When set, export_c_header emits declarations only and export_c_source the definitions;
  // the source then #includes this header name.
  std::string header_name;
};

// Sparse entries: how a .tqm entry holds a pruned [rows][cols] weight matrix in the storage of
// tinyquant/sparse.hpp (the container is unchanged; this gives its format byte and parts a
// meaning for sparse weights):
//   format   static_cast<uint8_t>(StorageFormat): 1 CSR u8, 2 CSR u16, 3 block CSR, 4 bitmap,
//            5 N:M (0 is dense)
//   storage  kInt8 (int8 values) or kInt4 (values as the s4 nibble stream), with the
//            quantization parameters of the dense matrix (the values are codes in their
//            [qmin, qmax]); shape [rows, cols]
//   parts    "layout": 5 little-endian uint32 (value count, nm_n, nm_m, block_rows,
//            block_cols); "values"; and the index arrays of the format, little-endian, named
//            after SparseArrays' fields ("row_nnz", "col_delta", "col_index", "bitmap",
//            "nm_index", "block_row_ptr", "block_col").
// A dense matrix, parameters that do not fit the value type or the shape, or a stored value
// outside the parameters' [qmin, qmax] -> InvalidArgument naming the entry.
ModelEntry make_sparse_entry(const std::string& name, const SparseMatrix& matrix,
                             const QuantParams& params);
// The matrix of a sparse entry, checked by SparseMatrix::from_arrays; FormatError naming the
// entry for a dense entry, invalid parameters, an unknown format, a missing or misaligned part,
// bad arrays or a stored value outside its parameters' [qmin, qmax] (int8 127 under 5-bit
// parameters; the error names the value's index among the stored values, the code and the
// range).
SparseMatrix sparse_matrix(const ModelEntry& entry);

// "conv1.weight" -> "conv1_weight"; a leading digit gets a '_' prefix.
std::string c_identifier(const std::string& name);

// The whole header: definitions when options.header_name is empty, else declarations only.
std::string export_c_header(const Model& model, const CExportOptions& options);
// The .c definitions that go with export_c_header(model, options) (options.header_name set).
std::string export_c_source(const Model& model, const CExportOptions& options);

}  // namespace tinyquant::io
