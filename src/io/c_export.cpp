// C source export of a model: see include/tinyquant/io/c_export.hpp for the contract.
#include "tinyquant/io/c_export.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <iterator>
#include <set>
#include <vector>

#include "../detail/check.hpp"

namespace tinyquant::io {
namespace {

using detail::fail;
using tinyquant::to_string;
using tinyquant::io::to_string;

struct CArray {
  std::string ctype;  // "int8_t", "uint8_t", "int16_t", "int32_t", "float"
  std::string name;   // full C identifier
  std::string comment;
  std::vector<std::string> values;
};

struct CModel {
  std::string guard;   // include guard and macro prefix, upper case
  std::string prefix;  // identifier prefix, as given (sanitised)
  std::vector<std::pair<std::string, std::string>> macros;
  std::vector<std::string> notes;  // comment lines for the header top
  std::vector<CArray> arrays;
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Shortest text that reads back as the same float, with a suffix that keeps it a float literal.
std::string float_literal(float v, const std::string& where) {
  if (!std::isfinite(v)) fail<DataError>("export-c: {}: non-finite value {}", where, v);
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s + "f";
}

// Negative values in parentheses so macros expand safely; INT32_MIN has no literal in C
// ("-2147483648" negates a constant too wide for int).
std::string int_literal(int64_t v) {
  if (v == INT32_MIN) return "(-2147483647 - 1)";
  return v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v);
}

std::vector<std::string> int_values(const std::vector<int32_t>& v) {
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const int32_t x : v) out.push_back(int_literal(x));
  return out;
}

std::vector<std::string> float_values(const std::vector<float>& v, const std::string& where) {
  std::vector<std::string> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out.push_back(float_literal(v[i], fmt::format("{}[{}]", where, i)));
  return out;
}

const ModelEntry* find_entry(const Model& model, const std::string& name) {
  for (const ModelEntry& e : model.entries)
    if (e.name == name) return &e;
  return nullptr;
}

void add_layer(CModel* out, const Model& model, const ModelEntry& e, const QTensor& q,
               const std::string& id, const CExportOptions& opt) {
  const std::string base = e.name.substr(0, e.name.size() - std::strlen(".weight"));
  const ModelEntry* bias_entry = find_entry(model, base + ".bias");
  std::vector<float> bias;
  if (bias_entry != nullptr) {
    if (bias_entry->storage != Storage::kFloat32 || bias_entry->format != 0 ||
        bias_entry->shape != Shape{e.shape[0]})
      fail<InvalidArgument>(
          "export-c: entry '{}': expected a dense float32 bias of shape [{}] for layer '{}', got "
          "{} {}",
          bias_entry->name, e.shape[0], base, to_string(bias_entry->storage),
          to_string(bias_entry->shape));
    bias = to_floats(*bias_entry);
  }
  const std::string lid = out->prefix + "_" + c_identifier(base);
  const std::string lmac = upper(lid);
  if (!opt.input || !opt.output) {
    out->notes.push_back(fmt::format(
        "layer {}: no activation parameters given; compute multiplier/shift per channel from "
        "input_scale * {}_scales[c] / output_scale and the int32 bias with scale input_scale * "
        "{}_scales[c]",
        base, id, id));
    return;
  }
  std::optional<QuantizedLinear> layer;
  try {
    layer.emplace(q, bias.empty() ? nullptr : bias.data(), *opt.input, *opt.output);
  } catch (const Error& err) {
    fail<InvalidArgument>("export-c: layer '{}' (entry '{}'): {}", base, e.name, err.what());
  }
  const rt::FcParams& p = layer->kernel_params();
  out->macros.emplace_back(lmac + "_IN_FEATURES", std::to_string(layer->in_features()));
  out->macros.emplace_back(lmac + "_OUT_FEATURES", std::to_string(layer->out_features()));
  out->macros.emplace_back(lmac + "_INPUT_OFFSET", int_literal(p.input_offset));
  out->macros.emplace_back(lmac + "_FILTER_OFFSET", int_literal(p.filter_offset));
  out->macros.emplace_back(lmac + "_OUTPUT_OFFSET", int_literal(p.output_offset));
  out->macros.emplace_back(lmac + "_ACT_MIN", int_literal(p.act_min));
  out->macros.emplace_back(lmac + "_ACT_MAX", int_literal(p.act_max));
  out->macros.emplace_back(
      lmac + "_PER_CHANNEL",
      layer->multipliers().size() == static_cast<size_t>(e.shape[0]) ? "1" : "0");
  out->arrays.push_back({"int32_t", lid + "_multipliers",
                         "requantization multipliers, Q31, [0, 2^31 - 1]",
                         int_values(layer->multipliers())});
  out->arrays.push_back({"int32_t", lid + "_shifts", "requantization shifts, [-31, 30]",
                         int_values(layer->shifts())});
  out->arrays.push_back({"int32_t", lid + "_kernel_bias",
                         "int32 bias with the input offset folded in (run with input_offset 0)",
                         int_values(layer->kernel_bias())});
}

CModel collect(const Model& model, const CExportOptions& opt) {
  if (model.entries.empty()) fail<InvalidArgument>("export-c: the model has no entries");
  CModel out;
  out.prefix = c_identifier(opt.prefix.empty() ? std::string("model") : opt.prefix);
  out.guard = upper(out.prefix);
  std::set<std::string> ids;
  for (const ModelEntry& e : model.entries) {
    if (e.format != 0)
      fail<InvalidArgument>(
          "export-c: entry '{}' is stored sparse (format {}); only dense entries can be exported",
          e.name, static_cast<int>(e.format));
    const int64_t n = numel(e.shape);
    if (n == 0)
      fail<InvalidArgument>("export-c: entry '{}' is empty (shape {})", e.name, to_string(e.shape));
    const std::string id = out.prefix + "_" + c_identifier(e.name);
    if (!ids.insert(id).second)
      fail<InvalidArgument>("export-c: entry '{}' maps to the C name '{}' already used", e.name,
                            id);
    const std::string mac = upper(id);
    out.macros.emplace_back(mac + "_NDIM", std::to_string(e.shape.size()));
    for (size_t d = 0; d < e.shape.size(); ++d)
      out.macros.emplace_back(fmt::format("{}_DIM{}", mac, d), std::to_string(e.shape[d]));
    out.macros.emplace_back(mac + "_NUMEL", std::to_string(n));
    const std::string comment =
        fmt::format("'{}' {} {}", e.name, to_string(e.storage), to_string(e.shape));
    if (!e.params) {
      out.macros.emplace_back(mac + "_BITS", e.storage == Storage::kInt32 ? "32" : "0");
      if (e.storage == Storage::kFloat32)
        out.arrays.push_back({"float", id, comment, float_values(to_floats(e), e.name)});
      else if (e.storage == Storage::kInt32)
        out.arrays.push_back({"int32_t", id, comment, int_values(to_int32(e))});
      else
        fail<InvalidArgument>("export-c: entry '{}': unquantized {} storage is not supported",
                              e.name, to_string(e.storage));
      continue;
    }
    const QTensor q = to_qtensor(e);
    const QuantSpec& s = q.params.spec;
    out.macros.emplace_back(mac + "_BITS", std::to_string(s.bits));
    std::vector<std::string> values;
    std::string ctype;
    if (s.bits <= 4) {
      ctype = "uint8_t";
      for (const uint8_t b : q.data) values.push_back(fmt::format("0x{:02x}", b));
    } else if (s.bits <= 8) {
      ctype = "int8_t";
      for (const uint8_t b : q.data) values.push_back(std::to_string(static_cast<int8_t>(b)));
    } else {
      ctype = "int16_t";
      for (int64_t i = 0; i < n; ++i) values.push_back(std::to_string(q.value(i)));
    }
    out.arrays.push_back({ctype, id,
                          fmt::format("{}, {} {} (axis {}){}", comment, to_string(s.scheme),
                                      to_string(s.granularity), s.axis,
                                      s.bits <= 4 ? ", s4 nibbles: element 2i = low nibble" : ""),
                          std::move(values)});
    out.arrays.push_back({"float", id + "_scales", "scale per parameter",
                          float_values(q.params.scales, e.name + " scales")});
    out.arrays.push_back({"int32_t", id + "_zero_points", "zero point per parameter",
                          int_values(q.params.zero_points)});
    out.macros.emplace_back(mac + "_NPARAMS", std::to_string(q.params.scales.size()));
    const bool layer_like =
        e.shape.size() == 2 && e.name.size() > 7 &&
        e.name.compare(e.name.size() - 7, 7, ".weight") == 0 && s.bits <= 8 &&
        (s.granularity == Granularity::kPerTensor ||
         (s.scheme == Scheme::kSymmetric && s.granularity == Granularity::kPerChannel &&
          normalize_axis(s.axis, e.shape, "axis") == 0));
    if (layer_like) add_layer(&out, model, e, q, id, opt);
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
// turn the rest of the name into code, and control characters would break the line structure.
std::string comment_safe(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (text[i] == '*' && i + 1 < text.size() && text[i + 1] == '/') {
      out += "* ";  // "*/" -> "* /"
    } else if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += text[i];
    }
  }
  return out;
}

void append_definition(std::string* s, const CModel& m, const CArray& a, bool is_static) {
  fmt::format_to(std::back_inserter(*s), "/* {} */\nTQ_{}_ALIGN {}const {} {}[{}]{} = {{",
                 comment_safe(a.comment), m.guard, is_static ? "static " : "", a.ctype, a.name,
                 a.values.size(), is_static ? fmt::format(" TQ_{}_UNUSED", m.guard) : "");
  for (size_t i = 0; i < a.values.size(); ++i) {
    s->append(i % 12 == 0 ? "\n    " : " ");
    s->append(a.values[i]);
    if (i + 1 < a.values.size()) s->push_back(',');
  }
  s->append("\n};\n\n");
}

}  // namespace

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

std::string export_c_header(const Model& model, const CExportOptions& options) {
  const CModel m = collect(model, options);
  const bool split = !options.header_name.empty();
  std::string s;
  s += "/* Generated by tinyquant from a .tqm model; do not edit.\n";
  s += " * Quantized values: real = scale * (q - zero_point). Fully-connected layers run with\n";
  s += " * rt::fully_connected_s8 (or _s4 for the uint8 nibble arrays) on [out][in] weights. */\n";
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
  const CModel m = collect(model, options);
  std::string s = "/* Generated by tinyquant from a .tqm model; do not edit. */\n";
  fmt::format_to(std::back_inserter(s), "#include \"{}\"\n\n", options.header_name);
  for (const CArray& a : m.arrays) append_definition(&s, m, a, false);
  return s;
}

}  // namespace tinyquant::io
