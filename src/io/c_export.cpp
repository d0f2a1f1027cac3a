// C source export of a model: see include/tinyquant/io/c_export.hpp for the contract.
#include "tinyquant/io/c_export.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "../detail/check.hpp"
#include "tinyquant/rt/fixed_point.hpp"

namespace tinyquant::io {
namespace {

using detail::fail;
using tinyquant::to_string;
using tinyquant::io::to_string;

// An array's values as numbers, written out as C literals only when the text is made: one
// byte per int8 / uint8 value rather than a string per element, the bulk of a model.
class Values {
 public:
  enum class Literal { kInt8, kHex, kInt, kUnsigned, kUnsigned32, kFloat };

  static Values bytes(Literal literal, std::vector<uint8_t> v) {  // kInt8 or kHex
    Values out(literal);
    out.bytes_ = std::move(v);
    return out;
  }
  static Values ints(Literal literal, std::vector<int64_t> v) {  // kInt, kUnsigned(32)
    Values out(literal);
    out.ints_ = std::move(v);
    return out;
  }
  static Values floats(std::vector<float> v) {  // finite, checked by the caller
    Values out(Literal::kFloat);
    out.floats_ = std::move(v);
    return out;
  }

  size_t size() const {
    return literal_ == Literal::kFloat                               ? floats_.size()
           : literal_ == Literal::kInt8 || literal_ == Literal::kHex ? bytes_.size()
                                                                     : ints_.size();
  }
  bool empty() const { return size() == 0; }
  // C has no empty arrays: one 0 of the array's type.
  void push_zero() {
    if (literal_ == Literal::kFloat)
      floats_.push_back(0.0f);
    else if (literal_ == Literal::kInt8 || literal_ == Literal::kHex)
      bytes_.push_back(0);
    else
      ints_.push_back(0);
  }
  void append(std::string* s, size_t i) const;

 private:
  explicit Values(Literal literal) : literal_(literal) {}
  Literal literal_;
  std::vector<uint8_t> bytes_;
  std::vector<int64_t> ints_;
  std::vector<float> floats_;
};

struct CArray {
  std::string ctype;  // "int8_t", "uint8_t", "int16_t", "int32_t", "float"
  std::string name;   // full C identifier
  std::string comment;
  Values values;
};

struct CModel {
  std::string guard;   // include guard and macro prefix, upper case
  std::string prefix;  // identifier prefix, as given (sanitised)
  std::vector<std::pair<std::string, std::string>> macros;
  std::vector<std::string> notes;  // comment lines for the header top
  std::vector<CArray> arrays;
  std::set<std::string> layers;            // base names of the layers found
  std::set<std::string> conv_layers;       // those given a geometry
  std::set<std::string> depthwise_layers;  // those exported as depthwise
  // Base names of "X.weight" entries no kernel runs, with the reason (a note says it).
  std::map<std::string, std::string> skipped;
};

// Appends `text` to *id with every character outside [A-Za-z0-9_] made '_' and no '_' after an
// '_' already there (nor at the start of an empty id): C++ reserves identifiers with "__".
void append_sanitised(std::string* id, const std::string& text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const char k = std::isalnum(u) != 0 && u < 128 ? c : '_';
    if (k != '_' || (!id->empty() && id->back() != '_')) id->push_back(k);
  }
}

// The C name of an entry or layer `name` under the (sanitised) prefix. Unlike c_identifier alone,
// a name that starts with a digit needs no '_' of its own here, and every run of '_' the
// sanitising makes becomes one, with none left at the end where a "_suffix" follows (a name with
// nothing to keep, such as ".", is the prefix itself): no name holds "__", which C++ reserves.
std::string scoped_identifier(const std::string& prefix, const std::string& name) {
  std::string id = prefix + "_";
  append_sanitised(&id, name);
  if (id.back() == '_') id.pop_back();  // before a "_suffix"
  return id;
}

// The prefix as a C identifier, sanitised as entry names are, with no '_' at either end: the '_'
// before each name would double a trailing one, and file-scope names that start with '_' are
// reserved in C. Nothing left gives "model"; a leading digit gets "tq_" in front.
std::string prefix_identifier(const std::string& prefix) {
  std::string id;
  append_sanitised(&id, prefix);
  if (!id.empty() && id.back() == '_') id.pop_back();
  if (id.empty()) return "model";
  if (std::isdigit(static_cast<unsigned char>(id[0])) != 0) id.insert(0, "tq_");
  return id;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Shortest text that reads back as the same finite float, with a suffix that keeps it a float
// literal.
std::string float_text(float v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s + "f";
}

std::string float_literal(float v, const std::string& where) {
  if (!std::isfinite(v)) fail<DataError>("export-c: {}: non-finite value {}", where, v);
  return float_text(v);
}

// Negative values in parentheses so macros expand safely; INT32_MIN has no literal in C
// ("-2147483648" negates a constant too wide for int).
std::string int_literal(int64_t v) {
  if (v == INT32_MIN) return "(-2147483647 - 1)";
  return v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v);
}

void Values::append(std::string* s, size_t i) const {
  switch (literal_) {
    case Literal::kInt8:
      fmt::format_to(std::back_inserter(*s), "{}", static_cast<int8_t>(bytes_[i]));
      return;
    case Literal::kHex:
      fmt::format_to(std::back_inserter(*s), "0x{:02x}", bytes_[i]);
      return;
    case Literal::kInt:
      s->append(int_literal(ints_[i]));
      return;
    case Literal::kUnsigned:
    case Literal::kUnsigned32:
      fmt::format_to(std::back_inserter(*s), "{}{}", ints_[i],
                     literal_ == Literal::kUnsigned32 ? "u" : "");
      return;
    case Literal::kFloat:
      s->append(float_text(floats_[i]));
      return;
  }
}

Values int_values(const std::vector<int32_t>& v) {
  return Values::ints(Values::Literal::kInt, std::vector<int64_t>(v.begin(), v.end()));
}

// Every value checked finite here, where the entry is known, so writing cannot fail.
Values float_values(std::vector<float> v, const std::string& where) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      fail<DataError>("export-c: {}[{}]: non-finite value {}", where, i, v[i]);
  return Values::floats(std::move(v));
}

template <class T>
Values unsigned_values(const std::vector<T>& v) {
  return Values::ints(sizeof(T) == 4 ? Values::Literal::kUnsigned32 : Values::Literal::kUnsigned,
                      std::vector<int64_t>(v.begin(), v.end()));
}

Values int8_values(std::vector<uint8_t> bytes) {
  return Values::bytes(Values::Literal::kInt8, std::move(bytes));
}

Values hex_values(std::vector<uint8_t> bytes) {
  return Values::bytes(Values::Literal::kHex, std::move(bytes));
}

// Little-endian bytes of unsigned integers, and back (a sparse entry's parts).
template <class T>
std::vector<uint8_t> le_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t b = 0; b < sizeof(T); ++b)
      out[i * sizeof(T) + b] = static_cast<uint8_t>(static_cast<uint64_t>(v[i]) >> (8 * b));
  return out;
}

template <class T>
std::vector<T> le_part(const ModelEntry& e, const char* name) {
  const std::vector<uint8_t>& bytes = e.part(name).bytes;
  if (bytes.size() % sizeof(T) != 0)
    fail<FormatError>("sparse entry '{}': part '{}' has {} bytes, not a multiple of {}",
                      printable(e.name), name, bytes.size(), sizeof(T));
  std::vector<T> out(bytes.size() / sizeof(T));
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t v = 0;
    for (size_t b = 0; b < sizeof(T); ++b)
      v |= static_cast<uint64_t>(bytes[i * sizeof(T) + b]) << (8 * b);
    out[i] = static_cast<T>(v);
  }
  return out;
}

rt::SparseFormat rt_format(StorageFormat f) {
  switch (f) {
    case StorageFormat::kCsrU16:
      return rt::SparseFormat::kCsrU16;
    case StorageFormat::kBitmap:
      return rt::SparseFormat::kBitmap;
    case StorageFormat::kNm:
      return rt::SparseFormat::kNm;
    case StorageFormat::kBlockCsr:
      return rt::SparseFormat::kBlockCsr;
    case StorageFormat::kCsrU8:
    case StorageFormat::kDense:
      break;
  }
  return rt::SparseFormat::kCsrU8Delta;
}

const ModelEntry* find_entry(const Model& model, const std::string& name) {
  for (const ModelEntry& e : model.entries)
    if (e.name == name) return &e;
  return nullptr;
}

// The float bias "<base>.bias" of a layer with `channels` outputs, or empty when absent. Only
// asked for when the layer's kernel parameters are computed: a bias stored otherwise is still
// exported as an array of its own.
std::vector<float> layer_bias(const Model& model, const std::string& base, int64_t channels) {
  const ModelEntry* b = find_entry(model, base + ".bias");
  if (b == nullptr) return {};
  if (b->storage != Storage::kFloat32 || b->format != 0 || b->shape != Shape{channels})
    fail<InvalidArgument>(
        "export-c: entry '{}': expected a dense float32 bias of shape [{}] for layer '{}', got {} "
        "{}{}",
        printable(b->name), channels, printable(base), to_string(b->storage), to_string(b->shape),
        b->storage != Storage::kFloat32
            ? " (the kernel's int32 bias is computed from the float bias: keep biases float32, "
              "or export without activation parameters)"
            : "");
  return to_floats(*b);
}

// The activation parameters of layer `base`: its own (options.layers), else the common pair,
// else none (the header then says how to compute the layer arrays).
std::optional<LayerActivations> activations_for(CModel* out, const CExportOptions& opt,
                                                const std::string& base, const std::string& id) {
  out->layers.insert(base);
  const auto it = opt.layers.find(base);
  if (it != opt.layers.end()) return it->second;
  if (opt.input && opt.output) return LayerActivations{*opt.input, *opt.output};
  out->notes.push_back(fmt::format(
      "layer {}: no activation parameters given; compute multiplier/shift per channel from "
      "input_scale * {}_scales[c] / output_scale and the int32 bias with scale input_scale * "
      "{}_scales[c]",
      base, id, id));
  return std::nullopt;
}

// QuantizedLinear on q, its errors reported as the export's.
QuantizedLinear make_linear(const QTensor& q, const std::vector<float>& bias,
                            const LayerActivations& act, const std::string& base,
                            const ModelEntry& e) {
  try {
    return QuantizedLinear(q, bias.empty() ? nullptr : bias.data(), act.input, act.output, act.act);
  } catch (const Error& err) {
    fail<InvalidArgument>("export-c: layer '{}' (entry '{}'): {}", printable(base),
                          printable(e.name), err.what());
  }
}

// The scale per output channel that the layer's multipliers encode with its input and output
// scales: the weight scale (one for per-tensor weights), or for per-group weights the row's
// largest group scale, by the runtime's rt::group_row_scales as QuantizedLinear computes it.
std::vector<float> requant_scales(const QuantizedLinear& layer) {
  const QuantParams& p = layer.weights().params;
  if (p.spec.granularity != Granularity::kPerGroup) return p.scales;
  const auto rows = static_cast<int32_t>(layer.out_features());
  const auto groups = static_cast<int32_t>(p.scales.size() / static_cast<size_t>(rows));
  std::vector<float> row(static_cast<size_t>(rows));
  check_kernel_status(rt::group_row_scales(p.scales.data(), rows, groups, row.data()), "export-c",
                      "group_row_scales");
  return row;
}

// The requantization in the chosen form, and the int32 kernel bias.
void add_requant(CModel* out, const std::string& lid, const QuantizedLinear& layer,
                 const std::string& bias_comment, RequantForm form) {
  if (form == RequantForm::kScales) {
    const std::string lmac = upper(lid);
    out->macros.emplace_back(lmac + "_INPUT_SCALE",
                             float_literal(layer.input_params().scale, lid + " input scale"));
    out->macros.emplace_back(lmac + "_OUTPUT_SCALE",
                             float_literal(layer.output_params().scale, lid + " output scale"));
    out->arrays.push_back({"float", lid + "_requant_scales",
                           "requantization scale per output channel (one if _PER_CHANNEL is 0): "
                           "the multiplier / shift of _INPUT_SCALE * it / _OUTPUT_SCALE, computed "
                           "at init by rt::multipliers_from_scales",
                           float_values(requant_scales(layer), lid + "_requant_scales")});
  } else {
    out->arrays.push_back({"int32_t", lid + "_multipliers",
                           "requantization multipliers, Q31, [0, 2^31 - 1]",
                           int_values(layer.multipliers())});
    out->arrays.push_back({"int32_t", lid + "_shifts", "requantization shifts, [-31, 30]",
                           int_values(layer.shifts())});
  }
  out->arrays.push_back(
      {"int32_t", lid + "_kernel_bias", bias_comment, int_values(layer.kernel_bias())});
}

// A fully-connected layer "X.weight" [out][in] (dense, sparse or per-group): its kernel
// parameters as tinyquant::QuantizedLinear computes them.
void add_layer(CModel* out, const Model& model, const ModelEntry& e, const QTensor& q,
               const std::string& id, const CExportOptions& opt) {
  const std::string base = e.name.substr(0, e.name.size() - std::strlen(".weight"));
  const std::string lid = scoped_identifier(out->prefix, base);
  const std::string lmac = upper(lid);
  const std::optional<LayerActivations> act = activations_for(out, opt, base, id);
  if (!act) return;
  const QuantizedLinear layer = make_linear(q, layer_bias(model, base, e.shape[0]), *act, base, e);
  const rt::FcParams& p = layer.kernel_params();
  const bool grouped = q.params.spec.granularity == Granularity::kPerGroup;
  out->macros.emplace_back(lmac + "_IN_FEATURES", std::to_string(layer.in_features()));
  out->macros.emplace_back(lmac + "_OUT_FEATURES", std::to_string(layer.out_features()));
  out->macros.emplace_back(lmac + "_INPUT_OFFSET", int_literal(p.input_offset));
  out->macros.emplace_back(lmac + "_FILTER_OFFSET", int_literal(p.filter_offset));
  out->macros.emplace_back(lmac + "_OUTPUT_OFFSET", int_literal(p.output_offset));
  out->macros.emplace_back(lmac + "_ACT_MIN", int_literal(p.act_min));
  out->macros.emplace_back(lmac + "_ACT_MAX", int_literal(p.act_max));
  out->macros.emplace_back(lmac + "_PER_CHANNEL",
                           q.params.spec.granularity == Granularity::kPerTensor ? "0" : "1");
  if (grouped) {
    out->macros.emplace_back(lmac + "_GROUP_SIZE", std::to_string(layer.kernel_group_size()));
    out->macros.emplace_back(
        lmac + "_GROUPS_PER_ROW",
        std::to_string(layer.group_ratios().size() / static_cast<size_t>(layer.out_features())));
    out->arrays.push_back(
        {"uint8_t", lid + "_group_ratios",
         "per [out][group]: round(group scale / row's largest * 256) - 1 (rt::GroupScales)",
         unsigned_values(layer.group_ratios())});
  }
  add_requant(out, lid, layer,
              grouped ? "int32 bias, scale input_scale * the row's largest group scale (run with "
                        "_INPUT_OFFSET)"
                      : "int32 bias with the input offset folded in (run with input_offset 0)",
              opt.requant);
}

// A convolution "X.weight" [out_c][kh][kw][in_c / groups]: multipliers, shifts and int32 bias
// as tinyquant::QuantizedConv2d computes them (the same per-channel formula as the linear
// layer, so QuantizedLinear on the flattened [out_c][kh * kw * in] weights with input zero
// point 0 gives them without folding anything into the bias), the offsets and clamps, and the
// geometry when it was given.
void add_conv(CModel* out, const Model& model, const ModelEntry& e, const QTensor& q,
              const std::string& id, const CExportOptions& opt) {
  const std::string base = e.name.substr(0, e.name.size() - std::strlen(".weight"));
  const std::string lid = scoped_identifier(out->prefix, base);
  const std::string lmac = upper(lid);
  out->macros.emplace_back(lmac + "_OUT_C", std::to_string(e.shape[0]));
  out->macros.emplace_back(lmac + "_KERNEL_H", std::to_string(e.shape[1]));
  out->macros.emplace_back(lmac + "_KERNEL_W", std::to_string(e.shape[2]));
  out->macros.emplace_back(lmac + "_IN_C_PER_GROUP", std::to_string(e.shape[3]));
  const auto geo = opt.conv.find(base);
  const auto dw = opt.depthwise.find(base);
  const int64_t mult = dw == opt.depthwise.end() ? 0 : dw->second;
  const bool depthwise = geo != opt.conv.end() && mult >= 1 && q.params.spec.bits == 8 &&
                         e.shape[3] == 1 && e.shape[0] % mult == 0;
  if (geo == opt.conv.end()) {
    out->notes.push_back(fmt::format(
        "layer {}: convolution; stride, padding, dilation and groups are not in the model file "
        "and were not given, so the header has no _STRIDE_* / _PAD* / _DILATION_* / _GROUPS",
        base));
  } else {
    const Conv2dGeometry& g = geo->second;
    if (g.stride_h < 1 || g.stride_w < 1 || g.dilation_h < 1 || g.dilation_w < 1)
      fail<InvalidArgument>("export-c: layer {}: stride {}x{} and dilation {}x{} must be >= 1",
                            base, g.stride_h, g.stride_w, g.dilation_h, g.dilation_w);
    if (g.padding != Padding::kSame && g.padding != Padding::kValid)
      fail<InvalidArgument>("export-c: layer {}: unknown padding {}", base,
                            static_cast<int>(g.padding));
    // A depthwise layer's groups come from its shape; any other must divide out_c (in_c is
    // shape[3] * groups, so it divides that by construction).
    if (!depthwise && (g.groups < 1 || e.shape[0] % g.groups != 0))
      fail<InvalidArgument>("export-c: layer {}: groups = {} must be >= 1 and divide out_c = {}",
                            base, g.groups, e.shape[0]);
    out->conv_layers.insert(base);
    out->macros.emplace_back(lmac + "_STRIDE_H", std::to_string(g.stride_h));
    out->macros.emplace_back(lmac + "_STRIDE_W", std::to_string(g.stride_w));
    out->macros.emplace_back(lmac + "_DILATION_H", std::to_string(g.dilation_h));
    out->macros.emplace_back(lmac + "_DILATION_W", std::to_string(g.dilation_w));
    out->macros.emplace_back(lmac + "_GROUPS",
                             std::to_string(depthwise ? e.shape[0] / mult : g.groups));
    out->macros.emplace_back(lmac + "_PADDING_SAME", g.padding == Padding::kSame ? "1" : "0");
  }
  if (depthwise) {
    // OHWI [out_c][kh][kw][1] -> [kh][kw][out_c]: output channel c * M + m stays channel o.
    out->depthwise_layers.insert(base);
    out->macros.emplace_back(lmac + "_DEPTH_MULTIPLIER", std::to_string(mult));
    out->macros.emplace_back(lmac + "_IN_C", std::to_string(e.shape[0] / mult));
    const int64_t oc = e.shape[0], taps = e.shape[1] * e.shape[2];
    std::vector<uint8_t> hwc(q.data.size());
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t t = 0; t < taps; ++t)
        hwc[static_cast<size_t>(t * oc + o)] = q.data[static_cast<size_t>(o * taps + t)];
    out->arrays.push_back({"int8_t", lid + "_depthwise_weight",
                           "the weights as [kh][kw][in_c * depth multiplier] for "
                           "rt::depthwise_conv2d_s8",
                           int8_values(hwc)});
  }
  const std::optional<LayerActivations> act = activations_for(out, opt, base, id);
  if (!act) return;
  QTensor flat = q;
  flat.shape = {e.shape[0], e.shape[1] * e.shape[2] * e.shape[3]};
  const QuantizedLinear layer =
      make_linear(flat, layer_bias(model, base, e.shape[0]),
                  LayerActivations{{act->input.scale, 0}, act->output, act->act}, base, e);
  const rt::FcParams& p = layer.kernel_params();  // its clamp is the conv's
  out->macros.emplace_back(lmac + "_INPUT_OFFSET", int_literal(-act->input.zero_point));
  out->macros.emplace_back(lmac + "_FILTER_OFFSET", "0");
  out->macros.emplace_back(lmac + "_OUTPUT_OFFSET", int_literal(act->output.zero_point));
  out->macros.emplace_back(lmac + "_ACT_MIN", int_literal(p.act_min));
  out->macros.emplace_back(lmac + "_ACT_MAX", int_literal(p.act_max));
  out->macros.emplace_back(lmac + "_PER_CHANNEL",
                           q.params.spec.granularity == Granularity::kPerTensor ? "0" : "1");
  add_requant(out, lid, layer,
              "int32 bias, scale input_scale * weight scale (run with _INPUT_OFFSET: padding "
              "makes folding it inexact)",
              opt.requant);
}

bool is_weight_name(const std::string& name) {
  return name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
}

// A 2-D "X.weight" the fully-connected kernels run: bits <= 8, per-tensor, symmetric
// per-channel along the output axis, or symmetric per-group along the input axis.
bool is_linear_weight(const ModelEntry& e, const QuantSpec& s) {
  if (e.shape.size() != 2 || !is_weight_name(e.name) || s.bits > 8) return false;
  if (s.granularity == Granularity::kPerTensor) return true;
  const int axis = normalize_axis(s.axis, e.shape, "axis");
  return s.scheme == Scheme::kSymmetric &&
         ((s.granularity == Granularity::kPerChannel && axis == 0) ||
          (s.granularity == Granularity::kPerGroup && axis == 1));
}

// A 4-D "X.weight" [out][kh][kw][in] the conv kernels run: 8 or 4 bits, symmetric per-tensor or
// per-channel along axis 0.
bool is_conv_weight(const ModelEntry& e, const QuantSpec& s) {
  return e.shape.size() == 4 && is_weight_name(e.name) && (s.bits == 8 || s.bits == 4) &&
         s.scheme == Scheme::kSymmetric &&
         (s.granularity == Granularity::kPerTensor ||
          (s.granularity == Granularity::kPerChannel &&
           normalize_axis(s.axis, e.shape, "axis") == 0));
}

void add_params(CModel* out, const std::string& id, const std::string& mac, const ModelEntry& e) {
  const QuantParams& p = *e.params;
  out->arrays.push_back(
      {"float", id + "_scales", "scale per parameter", float_values(p.scales, e.name + " scales")});
  out->arrays.push_back(
      {"int32_t", id + "_zero_points", "zero point per parameter", int_values(p.zero_points)});
  out->macros.emplace_back(mac + "_NPARAMS", std::to_string(p.scales.size()));
}

void add_sparse(CModel* out, const Model& model, const ModelEntry& e, const std::string& id,
                const std::string& mac, const std::string& comment, const CExportOptions& opt) {
  const SparseMatrix m = sparse_matrix(e);
  const SparseOptions& o = m.options();
  const SparseArrays& a = m.arrays();
  const bool int8 = o.value_type == ValueType::kInt8;
  out->macros.emplace_back(mac + "_BITS", std::to_string(e.params->spec.bits));
  out->macros.emplace_back(mac + "_SPARSE_FORMAT",
                           std::to_string(static_cast<int>(rt_format(o.format))));
  out->macros.emplace_back(mac + "_ROWS", std::to_string(m.rows()));
  out->macros.emplace_back(mac + "_COLS", std::to_string(m.cols()));
  out->macros.emplace_back(mac + "_VALUE_COUNT", std::to_string(a.values.size()));
  out->macros.emplace_back(mac + "_SPARSE_BYTES", std::to_string(m.bytes()));
  // The sparse kernel runs int8 per-tensor or per-channel rows (no per-group ratios).
  const bool runs = int8 && e.params->spec.granularity != Granularity::kPerGroup &&
                    is_linear_weight(e, e.params->spec);
  const std::string what =
      fmt::format("{}, {} {}{}", comment, to_string(o.format),
                  int8 ? "int8 values" : "s4 nibble stream of values",
                  runs ? ""
                       : "; storage only: rt::sparse_fully_connected_s8 takes int8 per-tensor or "
                         "per-channel rows, so the header has no layer parameters for it");
  out->arrays.push_back({int8 ? "int8_t" : "uint8_t", id + "_values", what,
                         int8 ? int8_values(m.packed_values()) : hex_values(m.packed_values())});
  switch (o.format) {
    case StorageFormat::kCsrU8:
      out->arrays.push_back(
          {"uint16_t", id + "_row_nnz", "entries per row", unsigned_values(a.row_nnz)});
      out->arrays.push_back({"uint8_t", id + "_col_delta", "column step from the previous entry",
                             unsigned_values(a.col_delta)});
      break;
    case StorageFormat::kCsrU16:
      out->arrays.push_back(
          {"uint16_t", id + "_row_nnz", "entries per row", unsigned_values(a.row_nnz)});
      out->arrays.push_back(
          {"uint16_t", id + "_col_index", "column of each entry", unsigned_values(a.col_index)});
      break;
    case StorageFormat::kBitmap:
      out->arrays.push_back(
          {"uint8_t", id + "_bitmap", "stored columns, LSB first, per row", hex_values(a.bitmap)});
      break;
    case StorageFormat::kNm:
      out->macros.emplace_back(mac + "_NM_N", std::to_string(o.nm_n));
      out->macros.emplace_back(mac + "_NM_M", std::to_string(o.nm_m));
      out->arrays.push_back({"uint8_t", id + "_nm_index", "slot positions, packed LSB first",
                             hex_values(a.nm_index)});
      break;
    case StorageFormat::kBlockCsr:
      out->macros.emplace_back(mac + "_BLOCK_ROWS", std::to_string(o.block_rows));
      out->macros.emplace_back(mac + "_BLOCK_COLS", std::to_string(o.block_cols));
      out->arrays.push_back({"uint32_t", id + "_block_row_ptr", "first block of each block row",
                             unsigned_values(a.block_row_ptr)});
      out->arrays.push_back({"uint16_t", id + "_block_col", "block column of each block",
                             unsigned_values(a.block_col)});
      break;
    case StorageFormat::kDense:
      break;
  }
  add_params(out, id, mac, e);
  if (!runs && is_weight_name(e.name))
    out->skipped.emplace(e.name.substr(0, e.name.size() - std::strlen(".weight")),
                         fmt::format("'{}' is sparse storage only (rt::sparse_fully_connected_s8 "
                                     "takes int8 per-tensor or per-channel rows)",
                                     e.name));
  if (runs) {
    // The layer arrays come from QuantizedLinear on the dense matrix; past the kernels' int32
    // element count there is no layer to run (and the dense copy would be huge).
    if (m.rows() * m.cols() > INT32_MAX)
      fail<InvalidArgument>(
          "export-c: layer entry '{}': {}x{} weights exceed the kernels' int32 element count",
          e.name, m.rows(), m.cols());
    const std::vector<int8_t> dense = m.to_dense();
    QTensor q;
    q.shape = e.shape;
    q.params = *e.params;
    q.data.assign(dense.begin(), dense.end());
    add_layer(out, model, e, q, id, opt);
  }
}

// One entry's arrays and macros.
void collect_entry(CModel* out, const Model& model, const ModelEntry& e,
                   const CExportOptions& opt) {
  const int64_t n = numel(e.shape);
  if (n == 0)
    fail<InvalidArgument>("export-c: entry '{}' is empty (shape {})", printable(e.name),
                          to_string(e.shape));
  const std::string id = scoped_identifier(out->prefix, e.name);
  const std::string mac = upper(id);
  out->macros.emplace_back(mac + "_NDIM", std::to_string(e.shape.size()));
  for (size_t d = 0; d < e.shape.size(); ++d)
    out->macros.emplace_back(fmt::format("{}_DIM{}", mac, d), std::to_string(e.shape[d]));
  out->macros.emplace_back(mac + "_NUMEL", std::to_string(n));
  const std::string comment =
      fmt::format("'{}' {} {}", e.name, to_string(e.storage), to_string(e.shape));
  if (e.format != 0) {
    add_sparse(out, model, e, id, mac, comment, opt);
    return;
  }
  if (!e.params) {
    out->macros.emplace_back(mac + "_BITS", e.storage == Storage::kInt32 ? "32" : "0");
    if (e.storage == Storage::kFloat32)
      out->arrays.push_back({"float", id, comment, float_values(to_floats(e), e.name)});
    else if (e.storage == Storage::kInt32)
      out->arrays.push_back({"int32_t", id, comment, int_values(to_int32(e))});
    else
      fail<InvalidArgument>("export-c: entry '{}': unquantized {} storage is not supported",
                            printable(e.name), to_string(e.storage));
    return;
  }
  const QTensor q = to_qtensor(e);
  const QuantSpec& s = q.params.spec;
  out->macros.emplace_back(mac + "_BITS", std::to_string(s.bits));
  std::optional<Values> values;
  std::string ctype;
  if (s.bits <= 4) {
    ctype = "uint8_t";
    values = hex_values(q.data);
  } else if (s.bits <= 8) {
    ctype = "int8_t";
    values = int8_values(q.data);
  } else {
    ctype = "int16_t";
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = q.value(i);
    values = Values::ints(Values::Literal::kInt, std::move(v));
  }
  out->arrays.push_back(
      {ctype, id,
       fmt::format("{}, {} {} (axis {}){}", comment, to_string(s.scheme), to_string(s.granularity),
                   s.axis, s.bits <= 4 ? ", s4 nibbles: element 2i = low nibble" : ""),
       std::move(*values)});
  add_params(out, id, mac, e);
  if (is_linear_weight(e, s)) {
    add_layer(out, model, e, q, id, opt);
  } else if (is_conv_weight(e, s)) {
    add_conv(out, model, e, q, id, opt);
  } else if (is_weight_name(e.name) && (e.shape.size() == 2 || e.shape.size() == 4)) {
    // A layer the kernels cannot run: say so rather than leave its arrays out silently.
    const std::string base = e.name.substr(0, e.name.size() - std::strlen(".weight"));
    const std::string why =
        e.shape.size() == 2
            ? fmt::format(
                  "'{}' holds {}-bit {} {} (axis {}) weights, none of what the "
                  "fully-connected kernels take (bits <= 8; per-tensor, symmetric "
                  "per-channel along axis 0 or symmetric per-group along axis 1)",
                  e.name, s.bits, to_string(s.scheme), to_string(s.granularity), s.axis)
            : fmt::format(
                  "'{}' holds {}-bit {} {} (axis {}) weights, none of what the conv "
                  "kernels take (8 or 4 bits, symmetric per-tensor or per-channel "
                  "along axis 0)",
                  e.name, s.bits, to_string(s.scheme), to_string(s.granularity), s.axis);
    out->skipped.emplace(base, why);
    out->notes.push_back(fmt::format("layer {}: no kernel parameters: {}", base, why));
  }
}

// Names a generated array or macro may not take although they are valid identifiers, each with
// why: the header would not compile under them in C or in C++, or would take a name a standard
// header gives something else (INT8_C, offsetof). An explicit list rather than a pattern, so
// that names merely close to these ("int8_ts", "my_int", "INT8_MAXIMUM") still export. Names C
// reserves ("__x", "_X") need no entry: every generated name starts with the sanitised prefix,
// which starts with a letter, or with "TQ_".
const std::map<std::string, std::string>& reserved_c_names() {
  static const std::map<std::string, std::string> names = [] {
    std::map<std::string, std::string> m;
    const auto add = [&m](std::initializer_list<const char*> list, const char* why) {
      for (const char* name : list) m.emplace(name, why);  // the first reason given stays
    };
    // Keywords of C99 / C11 / C23 and of C++11 .. C++20, with C++'s alternative tokens (macros
    // of <iso646.h> in C). The ones starting with '_' cannot be generated; they are listed so
    // that the list is the whole of each language's keywords.
    add({"auto",       "break",      "case",           "char",
         "const",      "continue",   "default",        "do",
         "double",     "else",       "enum",           "extern",
         "float",      "for",        "goto",           "if",
         "inline",     "int",        "long",           "register",
         "restrict",   "return",     "short",          "signed",
         "sizeof",     "static",     "struct",         "switch",
         "typedef",    "union",      "unsigned",       "void",
         "volatile",   "while",      "_Bool",          "_Complex",
         "_Imaginary", "_Alignas",   "_Alignof",       "_Atomic",
         "_Generic",   "_Noreturn",  "_Static_assert", "_Thread_local",
         "_BitInt",    "_Decimal32", "_Decimal64",     "_Decimal128",
         "alignas",    "alignof",    "bool",           "constexpr",
         "false",      "nullptr",    "static_assert",  "thread_local",
         "true",       "typeof",     "typeof_unqual"},
        "a C or C++ keyword");
    // C++ only.
    add({"asm",       "catch",       "char8_t",    "char16_t",
         "char32_t",  "class",       "co_await",   "co_return",
         "co_yield",  "concept",     "const_cast", "consteval",
         "constinit", "decltype",    "delete",     "dynamic_cast",
         "explicit",  "export",      "friend",     "mutable",
         "namespace", "new",         "noexcept",   "operator",
         "private",   "protected",   "public",     "reinterpret_cast",
         "requires",  "static_cast", "template",   "this",
         "throw",     "try",         "typeid",     "typename",
         "using",     "virtual",     "wchar_t",    "and",
         "and_eq",    "bitand",      "bitor",      "compl",
         "not",       "not_eq",      "or",         "or_eq",
         "xor",       "xor_eq"},
        "a C or C++ keyword");
    // <stdint.h>, which the header includes: the exact-width, least, fast, pointer and max
    // integer types, their limits (_MIN for the signed ones, _MAX, and C23's _WIDTH, which
    // glibc also defines for g++), the constant macros, and the other types' limits.
    const std::string sizes[] = {"8", "16", "32", "64"};
    std::vector<std::string> stems;
    for (const std::string& n : sizes)
      for (const char* kind : {"int", "int_least", "int_fast"}) stems.push_back(kind + n);
    stems.emplace_back("intptr");
    stems.emplace_back("intmax");
    const char* stdint = "a name <stdint.h> defines (the header includes it)";
    for (const std::string& stem : stems) {
      for (const std::string sign : {"", "u"}) {
        m.emplace(sign + stem + "_t", stdint);
        const std::string mac = upper(sign + stem);
        if (sign.empty()) m.emplace(mac + "_MIN", stdint);
        m.emplace(mac + "_MAX", stdint);
        m.emplace(mac + "_WIDTH", stdint);
      }
    }
    for (const std::string& n : sizes) {
      m.emplace("INT" + n + "_C", stdint);
      m.emplace("UINT" + n + "_C", stdint);
    }
    add({"INTMAX_C", "UINTMAX_C", "SIZE_MAX", "SIZE_WIDTH", "PTRDIFF_MIN", "PTRDIFF_MAX",
         "PTRDIFF_WIDTH", "SIG_ATOMIC_MIN", "SIG_ATOMIC_MAX", "SIG_ATOMIC_WIDTH", "WCHAR_MIN",
         "WCHAR_MAX", "WCHAR_WIDTH", "WINT_MIN", "WINT_MAX", "WINT_WIDTH"},
        stdint);
    // <stddef.h>, which a translation unit including the header usually has too (<stdalign.h>
    // and <stdbool.h> define only keywords listed above, and names C reserves).
    add({"NULL", "offsetof", "size_t", "ptrdiff_t", "max_align_t", "nullptr_t"},
        "a name <stddef.h> defines");
    // Not keywords, but no C++ variable at global scope can take them.
    add({"std"}, "the C++ standard library's namespace");
    add({"main"}, "the name of a C++ program's main function");
    // Predefined as 1 by GCC and clang in their GNU modes (-std=gnu11, gnu++17, the default
    // of both) on Linux; i386 on 32-bit x86.
    add({"linux", "unix", "i386"}, "a macro GNU compiler modes predefine");
    return m;
  }();
  return names;
}

CModel collect(const Model& model, const CExportOptions& opt) {
  if (model.entries.empty()) fail<InvalidArgument>("export-c: the model has no entries");
  CModel out;
  out.prefix = prefix_identifier(opt.prefix);
  out.guard = upper(out.prefix);
  // Every array and macro name, with the entry that produced it: names are sanitised and macros
  // upper-cased, so different entries can meet ("w" and "w_scales", "fc" and "FC").
  std::map<std::string, std::string> owner;
  // The header's own macros (append_preamble, export_c_header) are no entry's to take.
  const std::set<std::string> own = {"TQ_" + out.guard + "_ALIGN", "TQ_" + out.guard + "_UNUSED",
                                     "TQ_" + out.guard + "_H_"};
  for (const ModelEntry& e : model.entries) {
    const size_t arrays0 = out.arrays.size(), macros0 = out.macros.size();
    collect_entry(&out, model, e, opt);
    const auto claim = [&](const std::string& name) {
      if (own.count(name) != 0)
        fail<InvalidArgument>(
            "export-c: entry '{}' gives the C name '{}', a macro the header defines for itself; "
            "rename the entry or choose another prefix",
            printable(e.name), name);
      const auto reserved = reserved_c_names().find(name);
      if (reserved != reserved_c_names().end())
        fail<InvalidArgument>(
            "export-c: entry '{}' gives the C name '{}', {}; rename the entry or choose another "
            "prefix (--prefix)",
            printable(e.name), name, reserved->second);
      const auto [it, fresh] = owner.emplace(name, e.name);
      if (!fresh)
        fail<InvalidArgument>(
            "export-c: entries '{}' and '{}' both give the C name '{}' (names are sanitised to "
            "[A-Za-z0-9_] and macros upper-cased); rename one",
            printable(it->second), printable(e.name), name);
    };
    for (size_t i = arrays0; i < out.arrays.size(); ++i) claim(out.arrays[i].name);
    for (size_t i = macros0; i < out.macros.size(); ++i) claim(out.macros[i].first);
  }
  for (const auto& [name, act] : opt.layers) {
    if (out.layers.count(name) != 0) continue;
    const auto skipped = out.skipped.find(name);
    if (skipped != out.skipped.end())
      fail<InvalidArgument>("export-c: activation parameters given for layer '{}', but {}",
                            printable(name), skipped->second);
    fail<InvalidArgument>(
        "export-c: activation parameters given for layer '{}', but the model has no layer "
        "'{}.weight' the kernels run",
        printable(name), printable(name));
  }
  for (const auto& [name, geometry] : opt.conv)
    if (out.conv_layers.count(name) == 0)
      fail<InvalidArgument>(
          "export-c: a convolution geometry given for layer '{}', but the model has no 4-D "
          "'{}.weight' the conv kernels run",
          name, name);
  for (const auto& [name, mult] : opt.depthwise)
    if (out.depthwise_layers.count(name) == 0)
      fail<InvalidArgument>(
          "export-c: depthwise multiplier {} given for layer '{}', but the model has no 8-bit "
          "'{}.weight' [out_c][kh][kw][1] with out_c a multiple of {} and a convolution geometry",
          mult, name, name, mult);
  for (CArray& a : out.arrays) {
    if (!a.values.empty()) continue;
    a.values.push_zero();  // C has no empty arrays
    a.comment += " (empty: one unused element)";
  }
  return out;
}

void append_preamble(std::string* s, const CModel& m) {
  const std::string& g = m.guard;
  fmt::format_to(std::back_inserter(*s),
                 "#if defined(__cplusplus)\n"
                 "#define TQ_{0}_ALIGN alignas(16)\n"
                 "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L\n"
                 "#define TQ_{0}_ALIGN _Alignas(16)\n"
                 "#elif defined(__GNUC__)\n"
                 "#define TQ_{0}_ALIGN __attribute__((aligned(16)))\n"
                 "#else\n"
                 "#define TQ_{0}_ALIGN\n"
                 "#endif\n"
                 "#if defined(__GNUC__)\n"
                 "#define TQ_{0}_UNUSED __attribute__((unused))\n"
                 "#else\n"
                 "#define TQ_{0}_UNUSED\n"
                 "#endif\n\n",
                 g);
}

// Text placed inside a /* */ comment: a "*/" in a tensor name would end the comment early and
// turn the rest of the name into code, a "/*" inside it trips -Wcomment, and control characters
// would break the line structure.
std::string comment_safe(const std::string& text) {
  // Control bytes as \xNN first: the escapes hold no '*' or '/', so the pairs below are the
  // text's own.
  const std::string escaped = tinyquant::printable(text);
  std::string out;
  out.reserve(escaped.size());
  for (size_t i = 0; i < escaped.size(); ++i) {
    const bool next_slash = i + 1 < escaped.size() && escaped[i + 1] == '/';
    const bool next_star = i + 1 < escaped.size() && escaped[i + 1] == '*';
    if (escaped[i] == '*' && next_slash)
      out += "* ";  // "*/" -> "* /"
    else if (escaped[i] == '/' && next_star)
      out += "/ ";  // "/*" -> "/ *"
    else
      out += escaped[i];
  }
  return out;
}

void append_definition(std::string* s, const CModel& m, const CArray& a, bool is_static) {
  fmt::format_to(std::back_inserter(*s), "/* {} */\nTQ_{}_ALIGN {}const {} {}[{}]{} = {{",
                 comment_safe(a.comment), m.guard, is_static ? "static " : "", a.ctype, a.name,
                 a.values.size(), is_static ? fmt::format(" TQ_{}_UNUSED", m.guard) : "");
  for (size_t i = 0; i < a.values.size(); ++i) {
    s->append(i % 12 == 0 ? "\n    " : " ");
    a.values.append(s, i);
    if (i + 1 < a.values.size()) s->push_back(',');
  }
  s->append("\n};\n\n");
}

// The first stored value outside the parameters' [qmin, qmax], said as "stored value i holds
// code c, outside the b-bit range [lo, hi]", or "" when every one is a code of `spec`. Padding
// entries and unused N:M slots hold 0, inside every range.
std::string stored_value_problem(const std::vector<int8_t>& values, const QuantSpec& spec) {
  const int32_t lo = spec.qmin(), hi = spec.qmax();
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] < lo || values[i] > hi)
      return fmt::format("stored value {} holds code {}, outside the {}-bit{} range [{}, {}]", i,
                         int32_t{values[i]}, spec.bits, spec.narrow_range ? " narrow" : "", lo, hi);
  return {};
}

}  // namespace

ModelEntry make_sparse_entry(const std::string& name, const SparseMatrix& matrix,
                             const QuantParams& params) {
  const SparseOptions& o = matrix.options();
  if (o.format == StorageFormat::kDense)
    fail<InvalidArgument>("make_sparse_entry: '{}': the matrix is dense", printable(name));
  const bool int8 = o.value_type == ValueType::kInt8;
  const int bits = params.spec.bits;
  if (int8 ? (bits < 5 || bits > 8) : (bits < 2 || bits > 4))
    fail<InvalidArgument>("make_sparse_entry: '{}': {}-bit parameters for {} values",
                          printable(name), bits, int8 ? "int8" : "int4");
  ModelEntry e;
  e.name = name;
  e.storage = int8 ? Storage::kInt8 : Storage::kInt4;
  e.shape = {matrix.rows(), matrix.cols()};
  params.validate(e.shape);
  e.params = params;
  e.format = static_cast<uint8_t>(o.format);
  const SparseArrays& a = matrix.arrays();
  // The values are codes of `params`: refused here, where the caller can still mend them, and
  // not first by whoever reads the entry back (sparse_matrix checks the same).
  const std::string bad = stored_value_problem(a.values, params.spec);
  if (!bad.empty()) fail<InvalidArgument>("make_sparse_entry: '{}': {}", printable(name), bad);
  e.parts.push_back(
      {"layout", le_bytes(std::vector<uint32_t>{
                     static_cast<uint32_t>(a.values.size()), static_cast<uint32_t>(o.nm_n),
                     static_cast<uint32_t>(o.nm_m), static_cast<uint32_t>(o.block_rows),
                     static_cast<uint32_t>(o.block_cols)})});
  e.parts.push_back({"values", matrix.packed_values()});
  switch (o.format) {
    case StorageFormat::kCsrU8:
      e.parts.push_back({"row_nnz", le_bytes(a.row_nnz)});
      e.parts.push_back({"col_delta", a.col_delta});
      break;
    case StorageFormat::kCsrU16:
      e.parts.push_back({"row_nnz", le_bytes(a.row_nnz)});
      e.parts.push_back({"col_index", le_bytes(a.col_index)});
      break;
    case StorageFormat::kBitmap:
      e.parts.push_back({"bitmap", a.bitmap});
      break;
    case StorageFormat::kNm:
      e.parts.push_back({"nm_index", a.nm_index});
      break;
    case StorageFormat::kBlockCsr:
      e.parts.push_back({"block_row_ptr", le_bytes(a.block_row_ptr)});
      e.parts.push_back({"block_col", le_bytes(a.block_col)});
      break;
    case StorageFormat::kDense:
      break;
  }
  return e;
}

SparseMatrix sparse_matrix(const ModelEntry& e) {
  if (e.format == 0 || e.format > static_cast<uint8_t>(StorageFormat::kNm))
    fail<FormatError>("sparse entry '{}': format {} is not a sparse format (1..5)",
                      printable(e.name), static_cast<int>(e.format));
  if ((e.storage != Storage::kInt8 && e.storage != Storage::kInt4) || !e.params ||
      e.shape.size() != 2)
    fail<FormatError>(
        "sparse entry '{}': {} {}{}: sparse weights are a quantized int8 / int4 matrix", e.name,
        to_string(e.storage), to_string(e.shape), e.params ? "" : " without parameters");
  // Parameters of an entry built in memory are unchecked: their errors name the entry too.
  try {
    e.params->validate(e.shape);
  } catch (const Error& err) {
    fail<FormatError>("sparse entry '{}': {}", printable(e.name), err.what());
  }
  const std::vector<uint32_t> layout = le_part<uint32_t>(e, "layout");
  if (layout.size() != 5)
    fail<FormatError>("sparse entry '{}': part 'layout' holds {} values, expected 5",
                      printable(e.name), layout.size());
  SparseOptions o;
  o.format = static_cast<StorageFormat>(e.format);
  o.value_type = e.storage == Storage::kInt8 ? ValueType::kInt8 : ValueType::kInt4;
  const auto as_int = [&](uint32_t v, const char* what) {
    if (v > static_cast<uint32_t>(INT32_MAX))
      fail<FormatError>("sparse entry '{}': layout {} = {} is out of range", printable(e.name),
                        what, v);
    return static_cast<int32_t>(v);
  };
  const int64_t count = as_int(layout[0], "value count");
  o.nm_n = as_int(layout[1], "nm_n");
  o.nm_m = as_int(layout[2], "nm_m");
  o.block_rows = as_int(layout[3], "block_rows");
  o.block_cols = as_int(layout[4], "block_cols");
  SparseArrays a;
  const std::vector<uint8_t>& values = e.part("values").bytes;
  const int64_t want = o.value_type == ValueType::kInt8 ? count : (count + 1) / 2;
  if (static_cast<int64_t>(values.size()) != want)
    fail<FormatError>("sparse entry '{}': part 'values' has {} bytes, {} values need {}",
                      printable(e.name), values.size(), count, want);
  if (o.value_type == ValueType::kInt8)
    a.values.assign(values.begin(), values.end());
  else
    a.values = unpack_int4(values, count);
  // The stored values are codes of the parameters, in their [qmin, qmax] as a dense entry's are
  // (the model file checks those): int8 127 under 5-bit parameters is no value of the matrix.
  const std::string bad = stored_value_problem(a.values, e.params->spec);
  if (!bad.empty()) fail<FormatError>("sparse entry '{}': {}", printable(e.name), bad);
  switch (o.format) {
    case StorageFormat::kCsrU8:
      a.row_nnz = le_part<uint16_t>(e, "row_nnz");
      a.col_delta = e.part("col_delta").bytes;
      break;
    case StorageFormat::kCsrU16:
      a.row_nnz = le_part<uint16_t>(e, "row_nnz");
      a.col_index = le_part<uint16_t>(e, "col_index");
      break;
    case StorageFormat::kBitmap:
      a.bitmap = e.part("bitmap").bytes;
      break;
    case StorageFormat::kNm:
      a.nm_index = e.part("nm_index").bytes;
      break;
    case StorageFormat::kBlockCsr:
      a.block_row_ptr = le_part<uint32_t>(e, "block_row_ptr");
      a.block_col = le_part<uint16_t>(e, "block_col");
      break;
    case StorageFormat::kDense:
      break;
  }
  try {
    return SparseMatrix::from_arrays(e.shape[0], e.shape[1], o, std::move(a));
  } catch (const Error& err) {  // bad arrays, or options no matrix can have
    fail<FormatError>("sparse entry '{}': {}", printable(e.name), err.what());
  }
}

std::string c_identifier(const std::string& name) {
  std::string id;
  id.reserve(name.size() + 1);
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    id.push_back(std::isalnum(u) != 0 && u < 128 ? c : '_');
  }
  if (id.empty() || std::isdigit(static_cast<unsigned char>(id[0])) != 0) id.insert(0, "_");
  return id;
}

namespace {

// #include "..." has no escapes: these characters would end or break the directive.
void check_header_name(const std::string& name) {
  if (name.find_first_of("\"\\\n\r") != std::string::npos)
    fail<InvalidArgument>(
        "export-c: header name '{}' cannot be #included: it holds a quote, a backslash or a "
        "line break",
        name);
}

}  // namespace

std::string export_c_header(const Model& model, const CExportOptions& options) {
  check_header_name(options.header_name);
  const CModel m = collect(model, options);
  const bool split = !options.header_name.empty();
  std::string s;
  s += "/* Generated by tinyquant from a .tqm model; do not edit.\n";
  s += " * Quantized values: real = scale * (q - zero_point). Fully-connected layers run with\n";
  s += " * rt::fully_connected_s8 (or _s4 for the uint8 nibble arrays) on [out][in] weights,\n";
  s += " * sparse ones with rt::sparse_fully_connected_s8 on an rt::SparseMatrixS8 filled from\n";
  s += " * the _values / index arrays and the _SPARSE_FORMAT, _ROWS, _COLS, ... constants.";
  if (options.requant == RequantForm::kScales)
    s += "\n *\n"
         " * Requantization as TFLite Micro ships it: per layer X, X_requant_scales (float, one "
         "per\n"
         " * output channel, one when X_PER_CHANNEL is 0) and the float X_INPUT_SCALE and\n"
         " * X_OUTPUT_SCALE. The firmware computes the int32 multipliers and shifts once at init\n"
         " * into its own RAM arrays (N = X_OUT_FEATURES, or X_OUT_C for a convolution):\n"
         " *   static int32_t x_mult[N], x_shift[N];\n"
         " *   tinyquant::rt::Status st = tinyquant::rt::multipliers_from_scales(X_INPUT_SCALE,\n"
         " *       x_requant_scales, X_PER_CHANNEL != 0, X_OUTPUT_SCALE, N, x_mult, x_shift);\n"
         " * (include/tinyquant/rt/fixed_point.hpp; st is kOk for every layer written here) and\n"
         " * passes x_mult / x_shift as rt::Requant::multiplier / shift. The pairs are "
         "bit-identical\n"
         " * to what `--requant multipliers` would have shipped.";
  s += " */\n";
  for (const std::string& note : m.notes)
    fmt::format_to(std::back_inserter(s), "/* {} */\n", comment_safe(note));
  fmt::format_to(std::back_inserter(s),
                 "#ifndef TQ_{0}_H_\n#define TQ_{0}_H_\n\n#include <stdint.h>\n\n", m.guard);
  for (const auto& [name, value] : m.macros)
    fmt::format_to(std::back_inserter(s), "#define {} {}\n", name, value);
  s += "\n";
  append_preamble(&s, m);
  if (split) {
    s += "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
    for (const CArray& a : m.arrays)
      fmt::format_to(std::back_inserter(s), "extern const {} {}[{}]; /* {} */\n", a.ctype, a.name,
                     a.values.size(), comment_safe(a.comment));
    s += "\n#ifdef __cplusplus\n}  /* extern \"C\" */\n#endif\n";
  } else {
    for (const CArray& a : m.arrays) append_definition(&s, m, a, true);
  }
  fmt::format_to(std::back_inserter(s), "\n#endif  /* TQ_{}_H_ */\n", m.guard);
  return s;
}

std::string export_c_source(const Model& model, const CExportOptions& options) {
  if (options.header_name.empty())
    fail<InvalidArgument>("export-c: header_name must be set to write a separate source file");
  check_header_name(options.header_name);
  const CModel m = collect(model, options);
  std::string s = "/* Generated by tinyquant from a .tqm model; do not edit. */\n";
  fmt::format_to(std::back_inserter(s), "#include \"{}\"\n\n", options.header_name);
  for (const CArray& a : m.arrays) append_definition(&s, m, a, false);
  return s;
}

}  // namespace tinyquant::io
