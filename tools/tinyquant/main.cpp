// The `tinyquant` command: quantize, prune, inspect and export models from the shell.
//
// Exit codes: 0 success; 2 a command line wrong in itself, found before any input is read
// (unknown option, missing or malformed value, a value outside the option's range, options that
// rule each other out, an option the command would ignore, an output that is the input); 1 anything
// found once the input is read (a tinyquant::Error: bad data, an unreadable or corrupt file, an
// output that cannot be written, or an option the input cannot take: an axis the tensor lacks, a
// layer it does not hold, blocks that do not tile it).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "progress.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/atomic_file.hpp"
#include "tinyquant/io/c_export.hpp"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/io/npy.hpp"
#include "tinyquant/io/safetensors.hpp"
#include "tinyquant/layers.hpp"
#include "tinyquant/metrics.hpp"
#include "tinyquant/prune.hpp"
#include "tinyquant/quantize.hpp"
#include "tinyquant/sparse.hpp"

namespace {

using tinyquant::Shape;
using tinyquant::cli::ProgressBar;

struct FloatTensor {
  std::string name;
  Shape shape;
  std::vector<float> data;
};

// An error about a file other than the command's input (the output, --reference, --source). Its
// message names that file, so the input's name is not put in front of it.
class OtherFileError : public tinyquant::Error {
 public:
  using Error::Error;
};

// f(), with the toolkit's errors turned into OtherFileError, prefixed by `label` when given.
template <class F>
auto about_other_file(const std::string& label, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const tinyquant::Error& e) {
    throw OtherFileError(label.empty() ? std::string(e.what()) : label + ": " + e.what());
  }
}

// A float taking all of `text`, or nothing. Out of float's range is not "not a number": a value
// too large reads as infinity and one too small as a subnormal or 0, for the caller's range
// check to name (std::stof would throw out_of_range for both, and for every subnormal).
std::optional<float> parse_float(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0])) != 0) return std::nullopt;
  char* end = nullptr;
  const float v = std::strtof(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

// A whole decimal number in [lo, hi] taking all of `text`, or nothing (sscanf's %d would be
// undefined on overflow).
std::optional<int64_t> parse_whole(const std::string& text, int64_t lo, int64_t hi) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0])) != 0) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno == ERANGE || end != text.c_str() + text.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

// A CLI11 check for a whole number in [lo, hi], saying so when the text is not one (the stock
// Range check reads "Value abc not in range 2 to 8" for a non-number).
CLI::Validator whole_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& v) {
        return parse_whole(v, lo, hi)
                   ? std::string()
                   : fmt::format("expected a whole number from {} to {}, got '{}'", lo, hi, v);
      },
      fmt::format("INT in [{} - {}]", lo, hi));
}

// What keeps `text` from being an activation scale (a number float32 holds finite and > 0), or
// "" if nothing. The text is quoted as typed: 1e-46 is 0 in float32, and "scale = 0" would not
// say why. Every option that takes a scale says it this way.
std::string scale_problem(const std::string& text) {
  const std::optional<float> f = parse_float(text);
  if (!f) return fmt::format("expected a number, got '{}'", text);
  if (std::isfinite(*f) && *f > 0.0f) return {};
  const double d = std::strtod(text.c_str(), nullptr);
  return std::isfinite(d) && d > 0.0
             ? fmt::format("the scale '{}' is {} in float32; it must be finite and > 0", text, *f)
             : fmt::format("the scale '{}' must be finite and > 0", text);
}

// A CLI11 check for an activation scale (scale_problem).
CLI::Validator positive_scale() {
  return CLI::Validator([](std::string& v) { return scale_problem(v); }, "FLOAT > 0");
}

bool has_extension(const std::string& path, const char* ext) {
  return std::filesystem::path(path).extension() == ext;
}

bool is_float(tinyquant::io::DType d) {
  using tinyquant::io::DType;
  return d == DType::kFloat16 || d == DType::kBFloat16 || d == DType::kFloat32 ||
         d == DType::kFloat64;
}

// A float64 value beyond float32's range would reach the quantizers as an infinity that the
// file never held: name it as what it is.
template <class Array>
std::vector<float> floats_of(const Array& a, const std::string& path, const std::string& name) {
  if (a.dtype != tinyquant::io::DType::kFloat64) return a.template as<float>();
  const std::vector<double> d = a.template as<double>();
  // The finite doubles that round to float infinity: at least FLT_MAX plus half its ulp (the
  // tie rounds to even, which is infinity). Checked before the conversion, which C++ leaves
  // undefined for a value out of float's range.
  constexpr double kRoundsToInf = 0x1.ffffffp+127;
  std::vector<float> f(d.size());
  for (size_t i = 0; i < f.size(); ++i) {
    if (std::isfinite(d[i]) && std::fabs(d[i]) >= kRoundsToInf)
      throw tinyquant::DataError(
          fmt::format("{}: '{}': float64 value {} at index {} is beyond float32's range", path,
                      tinyquant::printable(name), d[i], i));
    f[i] = static_cast<float>(d[i]);
  }
  return f;
}

// The float tensors of a .npy (one, named `name` or the file stem) or .safetensors file.
std::vector<FloatTensor> load_floats(const std::string& path, const std::string& name) {
  std::vector<FloatTensor> out;
  if (has_extension(path, ".npy")) {
    const tinyquant::io::NpyArray a = tinyquant::io::load_npy(path);
    if (!is_float(a.dtype))
      throw tinyquant::InvalidArgument(
          fmt::format("{}: dtype {} is not a float type (float16/32/64 expected)", path,
                      tinyquant::io::to_string(a.dtype)));
    const std::string tensor = name.empty() ? std::filesystem::path(path).stem().string() : name;
    out.push_back({tensor, a.shape, floats_of(a, path, tensor)});
  } else if (has_extension(path, ".safetensors")) {
    const tinyquant::io::SafeTensors f = tinyquant::io::load_safetensors(path);
    for (const tinyquant::io::SafeTensor& t : f.tensors) {
      if (!is_float(t.dtype)) {
        fmt::print(stderr, "tinyquant: note: skipping '{}' ({}, not a float tensor)\n",
                   tinyquant::printable(t.name), tinyquant::io::safetensors_dtype_name(t.dtype));
        continue;
      }
      out.push_back({t.name, t.shape, floats_of(t, path, t.name)});
    }
    if (out.empty())
      throw tinyquant::DataError(fmt::format("{}: no float tensor to quantize", path));
  } else {
    throw tinyquant::InvalidArgument(
        fmt::format("{}: unknown input type (expected a .npy or .safetensors file)", path));
  }
  return out;
}

// What a model file cannot hold is a fault of the input: said about the input, before any work
// (save_model would say it at the end, about the output), by save_model's own rules. i counts
// the file's float tensors.
void check_storable(const std::vector<FloatTensor>& tensors) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const FloatTensor& t = tensors[i];
    const std::string problem = tinyquant::io::entry_header_problem(t.name, t.shape.size());
    if (!problem.empty())
      throw tinyquant::DataError(fmt::format("tensor {} ('{}') {}: a model file cannot hold it: {}",
                                             i, tinyquant::printable(t.name),
                                             tinyquant::to_string(t.shape), problem));
  }
}

struct QuantizeOptions {
  int bits = 8;
  std::string scheme = "symmetric";
  std::string granularity = "channel";
  std::optional<int> axis;
  int64_t group_size = 32;
  std::string rounding = "away";
  bool quantize_1d = false;
  // --input-scale: per layer (the name before ".weight"), and for every other layer.
  std::map<std::string, float> input_scales;
  std::optional<float> input_scale;
};

void parse_input_scale(const std::string& v, QuantizeOptions* o);

void add_quantize_options(CLI::App* cmd, QuantizeOptions* o) {
  cmd->add_option("--bits", o->bits, "Bit width of the quantized weights, 2..8 (default 8)")
      ->check(whole_in(2, 8));
  cmd->add_option("--scheme", o->scheme,
                  "symmetric (zero point 0, narrow range [-(2^(b-1)-1), 2^(b-1)-1]) or affine "
                  "(min/max mapped to the full range)")
      ->check(CLI::IsMember({"symmetric", "affine"}));
  cmd->add_option("--granularity", o->granularity,
                  "One scale per tensor, per channel (along --axis) or per group of "
                  "--group-size values along --axis (default channel)")
      ->check(CLI::IsMember({"tensor", "channel", "group"}));
  cmd->add_option("--axis", o->axis,
                  "Channel / group axis; negative counts from the end (default 0 for channel, -1 "
                  "for group)");
  cmd->add_option("--group-size", o->group_size, "Values per group with --granularity group (>= 1)")
      ->check(whole_in(1, std::numeric_limits<int64_t>::max()));
  cmd->add_option("--rounding", o->rounding,
                  "Rounding of x / scale: away (half away from zero, as TFLite) or even (half to "
                  "even)")
      ->check(CLI::IsMember({"away", "even"}));
  cmd->add_flag("--quantize-1d", o->quantize_1d,
                "Also quantize tensors of rank < 2 (biases, norms); by default they stay float32. "
                "export-c computes a layer's int32 kernel bias from a float32 bias only: with "
                "this flag it exports a layer's arrays, but refuses activation parameters for it");
  cmd->add_option_function<std::vector<std::string>>(
         "--input-scale",
         [o](const std::vector<std::string>& values) {
           for (const std::string& v : values) parse_input_scale(v, o);
         },
         "Input activation scale of a layer, repeatable: LAYER:SCALE (LAYER is the name before "
         ".weight), or SCALE alone for every layer X.weight (rank >= 2) with an X.bias of one "
         "value per output channel. A weight scale (per tensor, per channel, or a per-group row's "
         "largest) at which the bias would get an int32 code above 2^30 (|bias| / (input scale x "
         "weight scale): a unit whose weights are tiny next to its bias) is raised until it does "
         "not, as the toolkit's layers do from float weights. Give the scales export-c will get: "
         "without it such a layer stops export-c")
      ->allow_extra_args(false);
}

void add_progress_option(CLI::App* cmd, std::string* mode) {
  cmd->add_option("--progress", *mode,
                  "Progress bar on stderr (never on stdout): auto draws it only when stderr is a "
                  "terminal, always also into pipes and files, never not at all. Plain ASCII, "
                  "redrawn at most 10 times a second")
      ->check(CLI::IsMember({"auto", "always", "never"}));
}

// How prune stores the quantized 2-D weights: "dense", "auto" (the smallest format
// tinyquant::choose_format finds, dense included) or one sparse format.
struct SparseStorage {
  std::string storage = "dense";
  tinyquant::SparseOptions options;  // N:M and block shape
};

const std::vector<std::pair<std::string, tinyquant::StorageFormat>>& storage_names() {
  static const std::vector<std::pair<std::string, tinyquant::StorageFormat>> kNames = {
      {"csr-u8", tinyquant::StorageFormat::kCsrU8},
      {"csr-u16", tinyquant::StorageFormat::kCsrU16},
      {"block-csr", tinyquant::StorageFormat::kBlockCsr},
      {"bitmap", tinyquant::StorageFormat::kBitmap},
      {"nm", tinyquant::StorageFormat::kNm}};
  return kNames;
}

struct StoredEntry {
  tinyquant::io::ModelEntry entry;
  std::string format = "dense";
  int64_t data_bytes = 0;  // the values and, if sparse, every index array
};

// The model entry of a quantized tensor: sparse when `sparse` asks for it and the tensor is a
// matrix, else dense.
StoredEntry stored_entry(const std::string& name, const tinyquant::QTensor& q,
                         const SparseStorage* sparse) {
  const StoredEntry dense_entry{tinyquant::io::make_entry(name, q), "dense",
                                static_cast<int64_t>(q.data.size())};
  if (sparse == nullptr || sparse->storage == "dense" || q.shape.size() != 2) return dense_entry;
  tinyquant::SparseOptions o = sparse->options;
  o.value_type = q.bits() <= 4 ? tinyquant::ValueType::kInt4 : tinyquant::ValueType::kInt8;
  std::vector<int8_t> dense(static_cast<size_t>(q.numel()));
  for (int64_t i = 0; i < q.numel(); ++i)
    dense[static_cast<size_t>(i)] = static_cast<int8_t>(q.value(i));
  try {
    if (sparse->storage == "auto") {
      o.format = tinyquant::choose_format(dense.data(), q.shape[0], q.shape[1], o).best;
      if (o.format == tinyquant::StorageFormat::kDense) return dense_entry;
    } else {
      for (const auto& [n, f] : storage_names())
        if (n == sparse->storage) o.format = f;
    }
    const tinyquant::SparseMatrix m =
        tinyquant::SparseMatrix::from_dense(dense.data(), q.shape[0], q.shape[1], o);
    return {tinyquant::io::make_sparse_entry(name, m, q.params), tinyquant::to_string(o.format),
            m.bytes()};
  } catch (const tinyquant::InvalidArgument& e) {
    throw tinyquant::DataError(
        fmt::format("tensor '{}' {}: --storage {}: {}", tinyquant::printable(name),
                    tinyquant::to_string(q.shape), sparse->storage, e.what()));
  }
}

// "NAME:rest" -> (NAME, rest); a usage error naming `option` without a ':' or a name.
std::pair<std::string, std::string> split_layer(const std::string& v, const char* option) {
  const size_t colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw CLI::ValidationError(option, "expected LAYER:..., got '" + v + "'");
  return {v.substr(0, colon), v.substr(colon + 1)};
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (const char c : s) {
    if (c == sep)
      out.emplace_back();
    else
      out.back() += c;
  }
  return out;
}

// "AxB", both whole numbers in [lo, hi].
std::optional<std::pair<int64_t, int64_t>> parse_pair(const std::string& text, int64_t lo,
                                                      int64_t hi) {
  const size_t x = text.find('x');
  if (x == std::string::npos) return std::nullopt;
  const std::optional<int64_t> a = parse_whole(text.substr(0, x), lo, hi);
  const std::optional<int64_t> b = parse_whole(text.substr(x + 1), lo, hi);
  if (!a || !b) return std::nullopt;
  return std::make_pair(*a, *b);
}

// --act LAYER:in_scale,in_zero_point,out_scale,out_zero_point[,relu|relu6]
void parse_act(const std::string& v, tinyquant::io::CExportOptions* opt) {
  const auto [layer, rest] = split_layer(v, "--act");
  const std::vector<std::string> f = split(rest, ',');
  tinyquant::io::LayerActivations a;
  try {
    size_t used = 0;
    if (f.size() != 4 && f.size() != 5) throw std::invalid_argument("count");
    const std::optional<float> in_scale = parse_float(f[0]);
    if (!in_scale) throw std::invalid_argument(f[0]);
    a.input.scale = *in_scale;
    a.input.zero_point = std::stoi(f[1], &used);
    if (used != f[1].size()) throw std::invalid_argument(f[1]);
    const std::optional<float> out_scale = parse_float(f[2]);
    if (!out_scale) throw std::invalid_argument(f[2]);
    a.output.scale = *out_scale;
    a.output.zero_point = std::stoi(f[3], &used);
    if (used != f[3].size()) throw std::invalid_argument(f[3]);
  } catch (const std::logic_error&) {
    throw CLI::ValidationError("--act",
                               "expected LAYER:in_scale,in_zero_point,out_scale,"
                               "out_zero_point[,relu|relu6], e.g. fc1:0.02,-3,0.05,4, got '" +
                                   v + "'");
  }
  for (const auto& [side, text] : {std::pair{"input", f[0]}, std::pair{"output", f[2]}}) {
    const std::string problem = scale_problem(text);
    if (!problem.empty())
      throw CLI::ValidationError("--act", fmt::format("{} {}: {}", layer, side, problem));
  }
  if (f.size() == 5) {
    if (f[4] == "relu")
      a.act = tinyquant::Activation::kRelu;
    else if (f[4] == "relu6")
      a.act = tinyquant::Activation::kRelu6;
    else
      throw CLI::ValidationError(
          "--act", "unknown activation '" + f[4] + "' in '" + v + "' (expected relu or relu6)");
  }
  try {
    a.input.validate(("--act " + layer + " input").c_str());
    a.output.validate(("--act " + layer + " output").c_str());
  } catch (const tinyquant::Error& e) {
    throw CLI::ValidationError("--act", e.what());
  }
  if (!opt->layers.emplace(layer, a).second)
    throw CLI::ValidationError("--act", "layer '" + layer + "' is given twice");
}

// --input-scale [LAYER:]SCALE
void parse_input_scale(const std::string& v, QuantizeOptions* o) {
  const bool named = v.find(':') != std::string::npos;
  const auto [layer, text] = named ? split_layer(v, "--input-scale") : std::make_pair(v, v);
  const std::optional<float> parsed = parse_float(text);
  if (!parsed)
    throw CLI::ValidationError("--input-scale",
                               "expected [LAYER:]SCALE, e.g. fc1:0.02, got '" + v + "'");
  const float scale = *parsed;
  const std::string problem = scale_problem(text);
  if (!problem.empty())
    throw CLI::ValidationError("--input-scale",
                               named ? fmt::format("{}: {}", layer, problem) : problem);
  if (!named) {
    if (o->input_scale) throw CLI::ValidationError("--input-scale", "SCALE alone is given twice");
    o->input_scale = scale;
  } else if (!o->input_scales.emplace(layer, scale).second) {
    throw CLI::ValidationError("--input-scale", "layer '" + layer + "' is given twice");
  }
}

// --conv LAYER:stride=SHxSW,dilation=DHxDW,padding=same|valid,groups=G,depthwise=M (every key
// optional)
void parse_conv(const std::string& v, tinyquant::io::CExportOptions* opt) {
  const auto [layer, rest] = split_layer(v, "--conv");
  tinyquant::Conv2dGeometry g;
  const auto bad = [&v](const std::string& why) {
    throw CLI::ValidationError("--conv", why + " in '" + v +
                                             "' (expected LAYER:stride=SHxSW,dilation=DHxDW,"
                                             "padding=same|valid,groups=G,depthwise=M)");
  };
  int32_t depth_multiplier = 0;
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  const auto pair = [&](const std::string& text, int32_t* a, int32_t* b) {
    const auto p = parse_pair(text, 1, kMax);
    if (!p) bad("bad pair '" + text + "' (two whole numbers from 1 to 2^31 - 1)");
    *a = static_cast<int32_t>(p->first);
    *b = static_cast<int32_t>(p->second);
  };
  std::set<std::string> seen;
  for (const std::string& kv : rest.empty() ? std::vector<std::string>{} : split(rest, ',')) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq),
                      value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (!seen.insert(key).second) bad("setting '" + key + "' given twice");
    if (key == "stride") {
      pair(value, &g.stride_h, &g.stride_w);
    } else if (key == "dilation") {
      pair(value, &g.dilation_h, &g.dilation_w);
    } else if (key == "padding" && (value == "same" || value == "valid")) {
      g.padding = value == "same" ? tinyquant::Padding::kSame : tinyquant::Padding::kValid;
    } else if (key == "groups" || key == "depthwise") {
      const std::optional<int64_t> n = parse_whole(value, 1, kMax);
      if (!n) bad("bad " + key + " '" + value + "' (a whole number from 1 to 2^31 - 1)");
      (key == "groups" ? g.groups : depth_multiplier) = static_cast<int32_t>(*n);
    } else {
      bad("unknown setting '" + kv + "'");
    }
  }
  if (depth_multiplier > 0 && seen.count("groups") != 0)
    bad("groups does not go with depthwise (a depthwise convolution has groups = in_c)");
  if (!opt->conv.emplace(layer, g).second)
    throw CLI::ValidationError("--conv", "layer '" + layer + "' is given twice");
  if (depth_multiplier > 0) opt->depthwise[layer] = depth_multiplier;
}

tinyquant::QuantSpec make_spec(const QuantizeOptions& o) {
  tinyquant::QuantSpec s;
  s.bits = o.bits;
  s.scheme = o.scheme == "affine" ? tinyquant::Scheme::kAffine : tinyquant::Scheme::kSymmetric;
  s.narrow_range = s.scheme == tinyquant::Scheme::kSymmetric;
  if (o.granularity == "tensor") {
    s.granularity = tinyquant::Granularity::kPerTensor;
  } else if (o.granularity == "channel") {
    s.granularity = tinyquant::Granularity::kPerChannel;
    s.axis = o.axis.value_or(0);
  } else {
    s.granularity = tinyquant::Granularity::kPerGroup;
    s.axis = o.axis.value_or(-1);
    s.group_size = o.group_size;
  }
  return s;
}

// "  scale raised to fit X.bias" (per tensor), "  scales of N channels raised to fit X.bias".
std::string raised_note(int64_t raised, const tinyquant::QuantSpec& spec, const std::string& bias) {
  if (raised == 0) return {};
  if (spec.granularity == tinyquant::Granularity::kPerTensor)
    return fmt::format("  scale raised to fit {}", bias);
  return fmt::format("  scales of {} channel{} raised to fit {}", raised, raised == 1 ? "" : "s",
                     bias);
}

struct LayerBias {
  const FloatTensor* bias;
  float input_scale;
};

// The weights "X.weight" (rank >= 2) that --input-scale gives a scale and that have an "X.bias"
// of one value per output channel, by weight name. A layer named in --input-scale without both
// tensors is an error: its scale would otherwise be dropped without a word.
std::map<std::string, LayerBias> layers_with_bias(const std::vector<FloatTensor>& tensors,
                                                  const QuantizeOptions& o) {
  std::map<std::string, const FloatTensor*> by_name;
  for (const FloatTensor& t : tensors) by_name.emplace(t.name, &t);
  const auto bias_of = [&](const std::string& layer) -> const FloatTensor* {
    const auto w = by_name.find(layer + ".weight");
    const auto b = by_name.find(layer + ".bias");
    if (w == by_name.end() || b == by_name.end() || w->second->shape.size() < 2 ||
        b->second->shape != Shape{w->second->shape[0]})
      return nullptr;
    return b->second;
  };
  std::map<std::string, LayerBias> out;
  for (const auto& [layer, scale] : o.input_scales) {
    const FloatTensor* b = bias_of(layer);
    if (b == nullptr)
      throw tinyquant::InvalidArgument(fmt::format(
          "--input-scale {}: the input has no '{}.weight' (rank >= 2) with a '{}.bias' of one "
          "value per output channel",
          layer, layer, layer));
    out.emplace(layer + ".weight", LayerBias{b, scale});
  }
  if (o.input_scale) {
    const std::string suffix = ".weight";
    for (const FloatTensor& t : tensors) {
      if (t.name.size() <= suffix.size() ||
          t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string layer = t.name.substr(0, t.name.size() - suffix.size());
      const FloatTensor* b = bias_of(layer);
      if (b != nullptr) out.emplace(t.name, LayerBias{b, *o.input_scale});  // keeps LAYER:SCALE
    }
  }
  return out;
}

// Quantizes every tensor (rank >= 2, or all with --quantize-1d), saves the model and prints one
// line per tensor. `sparsity` (optional, one per tensor) is the pruned fraction to report.
void quantize_and_save(const std::vector<FloatTensor>& tensors, const QuantizeOptions& o,
                       const std::string& out_path, const std::vector<double>* sparsity,
                       const SparseStorage* sparse, ProgressBar* bar) {
  const tinyquant::QuantSpec base = make_spec(o);
  const tinyquant::RoundMode mode = o.rounding == "even" ? tinyquant::RoundMode::kHalfToEven
                                                         : tinyquant::RoundMode::kHalfAwayFromZero;
  tinyquant::io::Model model;
  const std::map<std::string, LayerBias> biased = layers_with_bias(tensors, o);
  int64_t total_float = 0, total_q = 0;
  for (const FloatTensor& t : tensors) total_float += 4 * static_cast<int64_t>(t.data.size());
  bar->start("quantize", total_float, "bytes");
  int64_t done = 0;
  const bool stdout_tty = isatty(STDOUT_FILENO) != 0;
  // One table row on stdout, then the bar (blanked first when both share the terminal).
  const auto row = [&](const std::string& text) {
    if (stdout_tty) bar->clear();
    fmt::print("{}\n", text);
    bar->set(done);
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const FloatTensor& t = tensors[i];
    const std::string sp = sparsity ? fmt::format("  sparsity {:.3f}", (*sparsity)[i]) : "";
    const int64_t fbytes = 4 * static_cast<int64_t>(t.data.size());
    done += fbytes;
    // A tensor without values has no range to quantize with; it is kept, as a 1-D one is.
    if ((t.shape.size() < 2 && !o.quantize_1d) || t.data.empty()) {
      model.entries.push_back(tinyquant::io::make_entry(t.name, t.data.data(), t.shape));
      total_q += fbytes;
      row(fmt::format("{:<32} {:<16} float32  kept as float{}  {} bytes{}",
                      tinyquant::printable(t.name), tinyquant::to_string(t.shape),
                      t.data.empty() ? " (no values)" : "", fbytes, sp));
      continue;
    }
    tinyquant::QuantSpec spec = base;
    if (t.shape.size() < 2 && spec.granularity != tinyquant::Granularity::kPerTensor &&
        t.shape.size() == 1)
      spec.axis = 0;
    if (t.shape.empty()) spec.granularity = tinyquant::Granularity::kPerTensor;
    tinyquant::QTensor q;
    // A tensor of zeros (fully pruned, or a zero bias) has no range to calibrate; any scale
    // stores it exactly, so it gets 1 in every slot (zero point 0) instead of an error.
    const bool all_zero = !t.data.empty() && std::all_of(t.data.begin(), t.data.end(),
                                                         [](float v) { return v == 0.0f; });
    const auto layer = biased.find(t.name);
    int64_t raised = 0;
    try {
      if (layer != biased.end() && !all_zero) {
        q = tinyquant::quantize_weights_for_bias(t.data.data(), t.shape, spec,
                                                 layer->second.bias->data.data(),
                                                 layer->second.input_scale, mode, &raised);
      } else if (all_zero) {
        tinyquant::QuantParams p;
        p.spec = spec;
        const int64_t count = tinyquant::param_layout(spec, t.shape).count;
        p.scales.assign(static_cast<size_t>(count), 1.0f);
        p.zero_points.assign(static_cast<size_t>(count), 0);
        q = tinyquant::quantize(t.data.data(), t.shape, p, mode);
      } else {
        q = tinyquant::quantize_weights(t.data.data(), t.shape, spec, mode);
      }
    } catch (const tinyquant::Error& e) {
      throw tinyquant::DataError(fmt::format("tensor '{}' {}: {}", tinyquant::printable(t.name),
                                             tinyquant::to_string(t.shape), e.what()));
    }
    const tinyquant::SizeReport size = tinyquant::size_report(q);
    const double sqnr = tinyquant::sqnr_db(t.data, tinyquant::dequantize(q));
    const std::string sqnr_text =
        all_zero ? std::string("all zeros, exact") : fmt::format("SQNR {:6.2f} dB", sqnr);
    StoredEntry stored = stored_entry(t.name, q, sparse);
    model.entries.push_back(std::move(stored.entry));
    const std::string& format = stored.format;
    // Sparse: the dense data bytes replaced by every array of the sparse format.
    const int64_t qbytes =
        size.quantized_bytes - static_cast<int64_t>(q.data.size()) + stored.data_bytes;
    total_q += qbytes;
    row(fmt::format(
        "{:<32} {:<16} int{}  {}  {} bytes  ratio {:.2f}x{}{}{}", tinyquant::printable(t.name),
        tinyquant::to_string(t.shape), spec.bits, sqnr_text, qbytes,
        qbytes > 0 ? static_cast<double>(fbytes) / static_cast<double>(qbytes) : 0.0, sp,
        format == "dense" ? "" : "  " + format,
        raised_note(raised, spec, layer == biased.end() ? "" : layer->second.bias->name)));
  }
  bar->finish();
  about_other_file("", [&] { tinyquant::io::save_model(model, out_path); });
  fmt::print("wrote {}: {} tensors, {} -> {} bytes ({:.2f}x)\n", out_path, model.entries.size(),
             total_float, total_q,
             total_q > 0 ? static_cast<double>(total_float) / static_cast<double>(total_q) : 0.0);
}

struct PruneOptions {
  std::string method = "magnitude";
  double sparsity = 0.5;
  int n = 2, m = 4;
  int64_t block_rows = 1, block_cols = 16;
  std::string criterion = "l1";
};

// Masks the float weights of rank >= 2 in place; returns each tensor's fraction of zeros.
std::vector<double> prune(std::vector<FloatTensor>* tensors, const PruneOptions& p,
                          ProgressBar* bar) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < tensors->size(); ++i)
    if ((*tensors)[i].shape.size() >= 2) idx.push_back(i);
  if (idx.empty()) throw tinyquant::DataError("prune: no tensor of rank >= 2 to prune");
  std::vector<tinyquant::Mask> masks;
  bar->start("prune", static_cast<int64_t>(idx.size()), "tensors");
  if (p.method == "global") {
    std::vector<tinyquant::WeightView> views;
    for (const size_t i : idx) views.push_back({(*tensors)[i].data.data(), (*tensors)[i].shape});
    masks = tinyquant::global_magnitude_masks(views, p.sparsity);
    bar->advance(static_cast<int64_t>(idx.size()));  // one threshold for all: done at once
  } else {
    for (const size_t i : idx) {
      const FloatTensor& t = (*tensors)[i];
      const tinyquant::WeightView w{t.data.data(), t.shape};
      try {
        if (p.method == "magnitude") {
          masks.push_back(tinyquant::magnitude_mask(w, p.sparsity));
        } else if (p.method == "nm") {
          masks.push_back(tinyquant::nm_mask(w, p.n, p.m));
          if (t.shape.back() < p.m) {
            bar->clear();
            fmt::print(stderr,
                       "tinyquant: note: '{}' {}: its last axis ({}) is shorter than m = {}, so "
                       "each row is one group of {} that keeps up to n = {}\n",
                       tinyquant::printable(t.name), tinyquant::to_string(t.shape), t.shape.back(),
                       p.m, t.shape.back(), p.n);
          }
        } else if (p.method == "block") {
          masks.push_back(tinyquant::block_mask(w, p.block_rows, p.block_cols, p.sparsity));
        } else {
          const tinyquant::Criterion c = p.criterion == "l2" ? tinyquant::Criterion::kL2
                                         : p.criterion == "fpgm"
                                             ? tinyquant::Criterion::kGeometricMedian
                                             : tinyquant::Criterion::kL1;
          masks.push_back(tinyquant::expand_slice_mask(
              tinyquant::structured_mask(w, 0, p.sparsity, c), w.shape, 0));
        }
      } catch (const tinyquant::Error& e) {
        throw tinyquant::DataError(fmt::format("prune: tensor '{}' {}: {}",
                                               tinyquant::printable(t.name),
                                               tinyquant::to_string(t.shape), e.what()));
      }
      bar->advance();
    }
  }
  bar->finish();
  std::vector<double> zeros(tensors->size(), 0.0);
  for (size_t k = 0; k < idx.size(); ++k) {
    FloatTensor& t = (*tensors)[idx[k]];
    tinyquant::apply_mask(t.data.data(), static_cast<int64_t>(t.data.size()), masks[k]);
  }
  for (size_t i = 0; i < tensors->size(); ++i) {
    const FloatTensor& t = (*tensors)[i];
    int64_t z = 0;
    for (const float v : t.data) z += v == 0.0f ? 1 : 0;
    zeros[i] = t.data.empty() ? 0.0 : static_cast<double>(z) / static_cast<double>(t.data.size());
  }
  return zeros;
}

int64_t entry_bytes(const tinyquant::io::ModelEntry& e) {
  int64_t b = 0;
  for (const tinyquant::io::ModelPart& p : e.parts) b += static_cast<int64_t>(p.bytes.size());
  return b;
}

// Real values of an entry (float32, int32, quantized dense or sparse), or nullopt for storage
// that has none. `sparse` is the entry's matrix when it has a sparse format.
std::optional<std::vector<float>> real_values(const tinyquant::io::ModelEntry& e,
                                              const tinyquant::SparseMatrix* sparse) {
  if (sparse != nullptr) {
    const std::vector<int8_t> dense = sparse->to_dense();
    tinyquant::QTensor q;
    q.shape = e.shape;
    q.params = *e.params;
    q.data = q.bits() <= 4 ? tinyquant::pack_int4(dense)
                           : std::vector<uint8_t>(dense.begin(), dense.end());
    return tinyquant::dequantize(q);
  }
  if (e.params) return tinyquant::dequantize(tinyquant::io::to_qtensor(e));
  if (e.storage == tinyquant::io::Storage::kFloat32) return tinyquant::io::to_floats(e);
  if (e.storage == tinyquant::io::Storage::kInt32) {
    const std::vector<int32_t> v = tinyquant::io::to_int32(e);
    return std::vector<float>(v.begin(), v.end());
  }
  return std::nullopt;
}

bool has_real_values(const tinyquant::io::ModelEntry& e) {
  return e.format != 0 || e.params || e.storage == tinyquant::io::Storage::kFloat32 ||
         e.storage == tinyquant::io::Storage::kInt32;
}

// Fraction of a sparse entry's real values that are 0, from the stored values alone (a crafted
// file of a few bytes can declare a [2^31 - 1][2^31 - 256] matrix). A position reads 0 exactly
// when its code equals its zero point, as scales are finite and > 0; a position that stores
// nothing holds code 0.
double sparse_zero_fraction(const tinyquant::io::ModelEntry& e, const tinyquant::SparseMatrix& m) {
  const tinyquant::QuantParams& p = *e.params;
  const tinyquant::ParamLayout layout = tinyquant::param_layout(p.spec, e.shape);
  const int64_t n = tinyquant::numel(e.shape);
  if (n == 0) return 0.0;
  // Positions whose zero point is 0, where code 0 reads 0.
  int64_t zeros = 0;
  for (int64_t k = 0; k < layout.count; ++k) {
    if (p.zero_points[static_cast<size_t>(k)] != 0) continue;
    switch (layout.granularity) {
      case tinyquant::Granularity::kPerTensor:
        zeros += n;
        break;
      case tinyquant::Granularity::kPerChannel:
        zeros += layout.outer * layout.inner;
        break;
      case tinyquant::Granularity::kPerGroup: {
        const int64_t g = (k / layout.inner) % layout.groups;
        zeros += std::min(layout.group_size, layout.axis_len - g * layout.group_size);
        break;
      }
    }
  }
  // Each nonzero stored code replaces the code 0 counted above at its position.
  m.for_each_value([&](int64_t i, int8_t code) {
    const int32_t zp = p.zero_points[static_cast<size_t>(layout.param_index(i))];
    zeros += (code == zp ? 1 : 0) - (zp == 0 ? 1 : 0);
  });
  return static_cast<double>(zeros) / static_cast<double>(n);
}

nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

void inspect(const std::string& path, const std::string& reference, bool json, ProgressBar* bar) {
  const tinyquant::io::Model model = tinyquant::io::load_model(path);
  std::vector<FloatTensor> ref;
  if (!reference.empty())
    ref = about_other_file("--reference", [&] { return load_floats(reference, ""); });
  const bool reference_is_npy = has_extension(reference, ".npy");
  nlohmann::json out = {{"file", path}, {"tensors", nlohmann::json::array()}};
  bar->start("inspect", static_cast<int64_t>(model.entries.size()), "tensors");
  std::vector<std::string> sqnr_text(model.entries.size());
  for (size_t index = 0; index < model.entries.size(); ++index) {
    const tinyquant::io::ModelEntry& e = model.entries[index];
    nlohmann::json t = {
        {"name", e.name},
        {"storage", tinyquant::io::to_string(e.storage)},
        {"format", e.format},
        {"format_name", tinyquant::to_string(static_cast<tinyquant::StorageFormat>(e.format))},
        {"shape", e.shape},
        {"params", tinyquant::numel(e.shape)},
        {"bytes", entry_bytes(e)}};
    if (e.params) {
      const tinyquant::QuantSpec& s = e.params->spec;
      t["bits"] = s.bits;
      t["scheme"] = tinyquant::to_string(s.scheme);
      t["granularity"] = tinyquant::to_string(s.granularity);
      t["axis"] = s.axis;
      if (s.granularity == tinyquant::Granularity::kPerGroup) t["group_size"] = s.group_size;
      t["scales"] = e.params->scales.size();
    }
    std::optional<tinyquant::SparseMatrix> sparse;
    if (e.format != 0) sparse = tinyquant::io::sparse_matrix(e);
    const FloatTensor* r = nullptr;
    if (!reference.empty() && has_real_values(e)) {
      // Matched by name (a .npy file's tensor is named after the file); a .npy reference also
      // matches a model's only entry, whatever its name.
      for (const FloatTensor& c : ref)
        if (c.name == e.name || (reference_is_npy && model.entries.size() == 1)) r = &c;
      if (r == nullptr)
        throw tinyquant::InvalidArgument(fmt::format("--reference {}: no tensor named '{}'",
                                                     reference, tinyquant::printable(e.name)));
      if (r->shape != e.shape)
        throw tinyquant::ShapeError(
            fmt::format("--reference {}: tensor '{}' has shape {}, the model has {}", reference,
                        tinyquant::printable(r->name), tinyquant::to_string(r->shape),
                        tinyquant::to_string(e.shape)));
    }
    // A dense entry's values are in the file. A sparse one is decoded only to be compared with a
    // reference, whose floats of the same shape are already in memory.
    std::optional<std::vector<float>> values;
    if (!sparse || r != nullptr) values = real_values(e, sparse ? &*sparse : nullptr);
    if (sparse) {
      t["sparsity"] = sparse_zero_fraction(e, *sparse);
    } else if (values) {
      int64_t z = 0;
      for (const float v : *values) z += v == 0.0f ? 1 : 0;
      t["sparsity"] =
          values->empty() ? 0.0 : static_cast<double>(z) / static_cast<double>(values->size());
    }
    // A tensor without values has no error to report (error_report refuses empty inputs).
    if (r != nullptr && values && !values->empty()) {
      const tinyquant::ErrorReport er = about_other_file(
          fmt::format("--reference {}: tensor '{}'", reference, tinyquant::printable(r->name)),
          [&] { return tinyquant::error_report(r->data, *values); });
      t["error"] = {{"mse", er.mse},
                    {"max_abs", er.max_abs_error},
                    {"sqnr_db", finite_or_null(er.sqnr_db)},
                    {"cosine", er.cosine_similarity}};
      // JSON has no infinities (null above); the table says which one.
      sqnr_text[static_cast<size_t>(index)] =
          std::isfinite(er.sqnr_db) ? fmt::format("{:.2f}", er.sqnr_db)
          : std::isnan(er.sqnr_db)  ? std::string("nan")
                                    : std::string(er.sqnr_db > 0 ? "inf" : "-inf");
    }
    out["tensors"].push_back(t);
    bar->advance();
  }
  bar->finish();
  if (json) {
    // Entry names are bytes; those that are not UTF-8 reach JSON with U+FFFD in place of each
    // invalid sequence (a truncated multi-byte sequence is one), so two such names can read alike.
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  fmt::print("{}: {} tensors\n", path, model.entries.size());
  for (size_t index = 0; index < model.entries.size(); ++index) {
    const nlohmann::json& t = out["tensors"][index];
    std::string q = "-";
    if (t.contains("bits"))
      q = fmt::format("int{} {} {} axis {}", t["bits"].get<int>(), t["scheme"].get<std::string>(),
                      t["granularity"].get<std::string>(), t["axis"].get<int>());
    fmt::print("{:<32} {:<8} {:<9} {:<16} {:<36} params {:>9}  bytes {:>9}",
               tinyquant::printable(t["name"].get<std::string>()), t["storage"].get<std::string>(),
               t["format_name"].get<std::string>(), tinyquant::to_string(t["shape"].get<Shape>()),
               q, t["params"].get<int64_t>(), t["bytes"].get<int64_t>());
    if (t.contains("sparsity")) fmt::print("  sparsity {:.3f}", t["sparsity"].get<double>());
    if (t.contains("error")) {
      const nlohmann::json& er = t["error"];
      fmt::print("  mse {:.3g}  max_abs {:.3g}  SQNR {} dB  cos {:.6f}", er["mse"].get<double>(),
                 er["max_abs"].get<double>(), sqnr_text[index], er["cosine"].get<double>());
    }
    fmt::print("\n");
  }
}

// True when `path` names the file standard output writes to (/dev/stdout, /proc/self/fd/1, the
// pipe or file it is redirected to).
bool writes_to_stdout(const std::string& path) {
  struct stat out {};
  struct stat p {};
  return ::fstat(STDOUT_FILENO, &out) == 0 && ::stat(path.c_str(), &p) == 0 &&
         out.st_dev == p.st_dev && out.st_ino == p.st_ino;
}

// Writes the header and, if `source` is given, the .c file, whole or not at all: both go to
// temporary files first (io::AtomicFile), and only when both are written are they renamed over
// their paths. A device or a FIFO given as a path is written in place, before the renames, since
// that write can fail where a rename does not.
void write_pair(const std::string& out, const std::string& header, const std::string& source,
                const std::string& c) {
  about_other_file("", [&] {
    tinyquant::io::AtomicFile h(out, true);
    std::optional<tinyquant::io::AtomicFile> s;
    if (!source.empty()) s.emplace(source, true);
    h.write(std::vector<uint8_t>(header.begin(), header.end()));
    if (s) s->write(std::vector<uint8_t>(c.begin(), c.end()));
    for (const bool in_place : {true, false}) {
      if (h.in_place() == in_place) h.commit();
      if (s && s->in_place() == in_place) s->commit();
    }
  });
}

// Whether two paths lead to the same file: symbolic links followed as a write would follow them
// (a dangling one to the file it would create), then the same file system object where both
// exist, else the same absolute path. A path that cannot be resolved compares unequal; writing
// it reports why.
bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::string ta, tb;
  try {
    bool special = false;
    ta = tinyquant::io::resolve_write_target(a, &special);
    tb = tinyquant::io::resolve_write_target(b, &special);
  } catch (const tinyquant::Error&) {
    return false;
  }
  std::error_code ec;
  if (fs::exists(ta, ec) && fs::exists(tb, ec)) {
    const bool same = fs::equivalent(ta, tb, ec);
    return !ec && same;
  }
  // weakly_canonical resolves the part that exists ("." and ".." in it included) and leaves a
  // relative path with no existing part as it is: absolute first.
  const auto resolved = [&ec](const std::string& p) {
    const fs::path abs = fs::absolute(p, ec);
    return ec ? fs::path() : fs::weakly_canonical(abs, ec);
  };
  const fs::path ca = resolved(ta);
  if (ec) return false;
  const fs::path cb = resolved(tb);
  return !ec && ca == cb;
}

int run(int argc, char** argv) {
  CLI::App app{
      "tinyquant: quantize, prune, inspect and export models for microcontrollers.\n"
      "Exit codes: 0 success; 2 a command line wrong in itself (checked before any input is "
      "read); 1 an error found once the input is read: bad data, a file that cannot be read or "
      "written, or an option the input cannot take (an axis the tensor lacks, a layer it does "
      "not hold)."};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();  // show defaults in every --help

  std::string in, out, name;
  QuantizeOptions qo;
  CLI::App* quantize = app.add_subcommand(
      "quantize", "Quantize the float tensors of a .npy or .safetensors file into a .tqm model");
  quantize->add_option("IN", in, "Input .npy (one tensor) or .safetensors (every float tensor)")
      ->required();
  quantize->add_option("OUT", out, "Output model file (.tqm)")->required();
  quantize->add_option("--name", name, "Tensor name for a .npy input (default: the file stem)");
  add_quantize_options(quantize, &qo);
  std::string progress = "auto";
  add_progress_option(quantize, &progress);

  PruneOptions po;
  CLI::App* prune_cmd = app.add_subcommand(
      "prune", "Prune the float weights (rank >= 2), then quantize them like `quantize`");
  prune_cmd->add_option("IN", in, "Input .npy or .safetensors file")->required();
  prune_cmd->add_option("OUT", out, "Output model file (.tqm)")->required();
  prune_cmd->add_option("--name", name, "Tensor name for a .npy input (default: the file stem)");
  prune_cmd
      ->add_option("--method", po.method,
                   "magnitude (smallest |w| per tensor), global (one threshold over all "
                   "tensors), nm (N:M along the last axis), structured (whole output rows), "
                   "block (--block blocks of lowest mean |w|)")
      ->check(CLI::IsMember({"magnitude", "global", "nm", "structured", "block"}));
  CLI::Option* sparsity_opt =
      prune_cmd
          ->add_option("--sparsity", po.sparsity,
                       "Fraction of weights (or rows, for structured) to prune, in [0, 1); "
                       "not for --method nm, whose sparsity is 1 - n / m")
          ->check(CLI::Validator(
              [](std::string& v) {
                const double s = std::strtod(v.c_str(), nullptr);
                return s >= 0.0 && s < 1.0 ? std::string() : "sparsity " + v + " is outside [0, 1)";
              },
              "in [0, 1)"));
  prune_cmd
      ->add_option(
          "--n", po.n,
          "N of N:M (--method nm, --storage nm or auto): values kept per group (1 <= n <= m)")
      ->check(whole_in(1, 256));
  prune_cmd->add_option("--m", po.m, "M of N:M (as --n): group length along the last axis (<= 256)")
      ->check(whole_in(1, 256));
  prune_cmd
      ->add_option("--criterion", po.criterion,
                   "Row score for structured pruning: l1, l2 or fpgm (geometric median)")
      ->check(CLI::IsMember({"l1", "l2", "fpgm"}));
  prune_cmd->add_option_function<std::string>(
      "--block",
      [&po](const std::string& v) {
        const auto p = parse_pair(v, 1, 65536);
        if (!p)
          throw CLI::ValidationError(
              "--block", "expected ROWSxCOLS (each from 1 to 65536), e.g. 1x16, got " + v);
        po.block_rows = p->first;
        po.block_cols = p->second;
      },
      "Block shape ROWSxCOLS for --method block and --storage block-csr or auto; must tile every "
      "pruned matrix (default 1x16: 16 inputs of one output, the x86 SIMD tile)");
  SparseStorage storage;
  prune_cmd
      ->add_option("--storage", storage.storage,
                   "How the pruned 2-D weights are stored: dense; a sparse format (csr-u8, "
                   "csr-u16, block-csr with --block, bitmap, nm with --n/--m) for every matrix, "
                   "an error naming the tensor if it does not fit; or auto, the smallest of "
                   "dense and the formats that fit, per matrix. Tensors of other ranks (conv "
                   "weights) stay dense. export-c writes the sparse arrays for "
                   "rt::sparse_fully_connected_s8 (int8 values). Sparse storage needs "
                   "--scheme symmetric")
      ->check(CLI::IsMember({"dense", "auto", "csr-u8", "csr-u16", "block-csr", "bitmap", "nm"}));
  add_quantize_options(prune_cmd, &qo);
  add_progress_option(prune_cmd, &progress);

  std::string reference;
  bool json = false;
  CLI::App* inspect_cmd = app.add_subcommand(
      "inspect", "Describe every tensor of a .tqm model (and its error against a float source)");
  inspect_cmd->add_option("FILE", in, "Model file (.tqm)")->required();
  inspect_cmd->add_option("--reference", reference,
                          "Float source (.npy or .safetensors) to report MSE, max abs error, "
                          "SQNR and cosine similarity against, tensor by tensor, matched by "
                          "name (a .npy file's tensor is named after the file and also matches "
                          "a model's only tensor)");
  inspect_cmd->add_flag("--json", json, "Print machine-readable JSON instead of a table");
  add_progress_option(inspect_cmd, &progress);

  std::string source, prefix = "model";
  std::optional<float> in_scale, out_scale;
  int in_zp = 0, out_zp = 0;
  CLI::App* export_cmd = app.add_subcommand(
      "export-c", "Write a model as C arrays (a header, or a header and a .c file)");
  export_cmd->add_option("FILE", in, "Model file (.tqm)")->required();
  export_cmd->add_option("OUT", out, "Output header (.h)")->required();
  CLI::Option* source_opt =
      export_cmd->add_option("--source", source,
                             "Also write the array definitions to this .c file; the header then "
                             "only declares them");
  export_cmd->add_option("--prefix", prefix,
                         "Prefix of every C name (sanitised to an identifier, default model)");
  CLI::Option* is =
      export_cmd
          ->add_option(
              "--input-scale", in_scale,
              "Input activation scale of every layer (X.weight [+ X.bias]: fully-connected, dense, "
              "sparse or per-group, and 4-D convolutions) that has no --act of its own; with "
              "--output-scale emits per-channel multipliers, shifts and int32 bias. A layer with "
              "neither gets a comment saying how to compute those")
          ->check(positive_scale());
  CLI::Option* os = export_cmd
                        ->add_option("--output-scale", out_scale,
                                     "Output activation scale (> 0), as --input-scale")
                        ->check(positive_scale());
  is->needs(os);
  os->needs(is);
  export_cmd
      ->add_option("--input-zero-point", in_zp,
                   "Input activation zero point, -128..127 (with --input-scale)")
      ->check(whole_in(-128, 127))
      ->needs(is);
  export_cmd
      ->add_option("--output-zero-point", out_zp,
                   "Output activation zero point, -128..127 (with --output-scale)")
      ->check(whole_in(-128, 127))
      ->needs(os);
  tinyquant::io::CExportOptions export_opt;
  export_cmd
      ->add_option_function<std::vector<std::string>>(
          "--act",
          [&export_opt](const std::vector<std::string>& values) {
            for (const std::string& v : values) parse_act(v, &export_opt);
          },
          "Activation parameters of one layer, repeatable: "
          "LAYER:in_scale,in_zero_point,out_scale,out_zero_point[,relu|relu6] (e.g. --act "
          "fc1:0.02,-3,0.05,4,relu --act fc2:0.05,4,0.1,0; LAYER is the name before .weight). "
          "A fused relu / relu6 clamps _ACT_MIN / _ACT_MAX as the toolkit's layers do (default: "
          "none, the whole int8 range). Overrides --input-scale and friends for that layer; a "
          "layer the model does not have is an error")
      ->allow_extra_args(false);
  export_cmd
      ->add_option_function<std::vector<std::string>>(
          "--conv",
          [&export_opt](const std::vector<std::string>& values) {
            for (const std::string& v : values) parse_conv(v, &export_opt);
          },
          "Geometry of one convolution (4-D LAYER.weight [out][kh][kw][in]), repeatable: "
          "LAYER:stride=SHxSW,dilation=DHxDW,padding=same|valid,groups=G,depthwise=M, each "
          "setting optional (defaults 1x1, 1x1, same, 1). The model file does not hold it; "
          "without it the header has no stride / padding / dilation / groups macros for the "
          "layer. depthwise=M marks an 8-bit [in_c * M][kh][kw][1] weight as a depthwise "
          "convolution with channel multiplier M (groups = in_c): the header then also holds "
          "its weights in rt::depthwise_conv2d_s8's [kh][kw][in_c * M] layout")
      ->allow_extra_args(false);

  std::string requant = "multipliers";
  export_cmd
      ->add_option("--requant", requant,
                   "How each layer's requantization is shipped: multipliers (default) writes the "
                   "int32 _multipliers and _shifts (8 bytes per output channel); scales writes "
                   "what a TFLite flatbuffer holds, one float _requant_scales per output channel "
                   "and the layer's _INPUT_SCALE / _OUTPUT_SCALE (4 bytes per channel + 8), from "
                   "which the firmware computes the same multipliers and shifts once at init "
                   "with rt::multipliers_from_scales (the header says how)")
      ->check(CLI::IsMember({"multipliers", "scales"}));

  // A first word that is no command would otherwise read "A subcommand is required".
  if (argc >= 2 && argv[1][0] != '-') {
    try {
      app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      fmt::print(stderr,
                 "tinyquant: error: unknown command '{}' (the commands are quantize, prune, "
                 "inspect and export-c; see tinyquant --help)\n",
                 argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
    // Values each option takes alone are checked by its validator; these depend on others.
    if (prune_cmd->parsed() && po.method == "nm" && sparsity_opt->count() > 0)
      throw CLI::ValidationError("--sparsity",
                                 "does not apply to --method nm: N:M keeps n of "
                                 "every m values, a sparsity of 1 - n / m");
    if (prune_cmd->parsed() && (po.method == "nm" || storage.storage == "nm") && po.n > po.m)
      throw CLI::ValidationError("--n", fmt::format("n = {} is larger than m = {}: N:M keeps n "
                                                    "of every m values",
                                                    po.n, po.m));
    // An option the command would ignore is a mistake in the command line: say so rather than
    // run without it.
    CLI::App* const weights_cmd = quantize->parsed() ? quantize : prune_cmd;
    const auto given = [&](const char* option) {
      const CLI::Option* opt = weights_cmd->get_option_no_throw(option);
      return weights_cmd->parsed() && opt != nullptr && opt->count() > 0;
    };
    if (given("--name") && !has_extension(in, ".npy"))
      throw CLI::ValidationError("--name", "applies to a .npy input only; the tensors of '" + in +
                                               "' are named by the file");
    if (given("--axis") && qo.granularity == "tensor")
      throw CLI::ValidationError("--axis", "does not apply to --granularity tensor");
    if (given("--group-size") && qo.granularity != "group")
      throw CLI::ValidationError("--group-size", "applies to --granularity group only");
    if (given("--criterion") && po.method != "structured")
      throw CLI::ValidationError("--criterion", "applies to --method structured only");
    // --storage auto sizes block CSR and N:M with them too.
    if (given("--block") && po.method != "block" && storage.storage != "block-csr" &&
        storage.storage != "auto")
      throw CLI::ValidationError("--block",
                                 "applies to --method block and --storage block-csr or auto");
    for (const char* option : {"--n", "--m"})
      if (given(option) && po.method != "nm" && storage.storage != "nm" &&
          storage.storage != "auto")
        throw CLI::ValidationError(option, "applies to --method nm and --storage nm or auto");
    // Affine weights quantize a pruned 0 to the zero point, a code no sparse format drops.
    if (prune_cmd->parsed() && storage.storage != "dense" && qo.scheme == "affine")
      throw CLI::ValidationError(
          "--storage", storage.storage +
                           " needs --scheme symmetric: affine weights quantize pruned values to "
                           "their zero point, not to 0, so a sparse format would store them all");
    if ((quantize->parsed() || prune_cmd->parsed() || export_cmd->parsed()) && out.empty())
      throw CLI::ValidationError("OUT", "the output path is empty");
    if (export_cmd->parsed() && source_opt->count() > 0 && source.empty())
      throw CLI::ValidationError("--source", "the path is empty");
    // A command never writes over a file it reads, and export-c's two outputs are two files.
    if ((quantize->parsed() || prune_cmd->parsed() || export_cmd->parsed()) && same_file(in, out))
      throw CLI::ValidationError("OUT", fmt::format("'{}' is the input file '{}'; the command "
                                                    "would overwrite what it reads",
                                                    out, in));
    if (export_cmd->parsed() && !source.empty() && same_file(in, source))
      throw CLI::ValidationError("--source", fmt::format("'{}' is the input file '{}'; the "
                                                         "command would overwrite what it reads",
                                                         source, in));
    if (export_cmd->parsed() && !source.empty() && same_file(out, source))
      throw CLI::ValidationError(
          "--source", fmt::format("'{}' is the header OUT '{}'; the .c file needs a path of "
                                  "its own",
                                  source, out));
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  const tinyquant::cli::ProgressMode mode =
      progress == "always"  ? tinyquant::cli::ProgressMode::kAlways
      : progress == "never" ? tinyquant::cli::ProgressMode::kNever
                            : tinyquant::cli::ProgressMode::kAuto;
  try {
    ProgressBar bar(
        tinyquant::cli::progress_wanted(mode, isatty(STDERR_FILENO) != 0),
        [](const std::string& text) {
          std::fputs(text.c_str(), stderr);
          std::fflush(stderr);
        },
        tinyquant::cli::terminal_width());
    if (quantize->parsed()) {
      const std::vector<FloatTensor> tensors = load_floats(in, name);
      check_storable(tensors);
      quantize_and_save(tensors, qo, out, nullptr, nullptr, &bar);
    } else if (prune_cmd->parsed()) {
      std::vector<FloatTensor> tensors = load_floats(in, name);
      check_storable(tensors);
      const std::vector<double> zeros = prune(&tensors, po, &bar);
      storage.options.nm_n = po.n;
      storage.options.nm_m = po.m;
      storage.options.block_rows = po.block_rows;
      storage.options.block_cols = po.block_cols;
      quantize_and_save(tensors, qo, out, &zeros, &storage, &bar);
    } else if (inspect_cmd->parsed()) {
      inspect(in, reference, json, &bar);
    } else if (export_cmd->parsed()) {
      const tinyquant::io::Model model = tinyquant::io::load_model(in);
      tinyquant::io::CExportOptions& opt = export_opt;
      opt.prefix = prefix;
      opt.requant = requant == "scales" ? tinyquant::io::RequantForm::kScales
                                        : tinyquant::io::RequantForm::kMultipliers;
      if (in_scale) {
        opt.input = tinyquant::ActivationParams{*in_scale, in_zp};
        opt.output = tinyquant::ActivationParams{*out_scale, out_zp};  // checked when parsed
      }
      if (!source.empty()) opt.header_name = std::filesystem::path(out).filename().string();
      // Both texts first: an error leaves no file half of a pair.
      const std::string header = tinyquant::io::export_c_header(model, opt);
      const std::string c =
          source.empty() ? std::string() : tinyquant::io::export_c_source(model, opt);
      write_pair(out, header, source, c);
      // A header written to standard output (export-c m.tqm /dev/stdout | ...) must stay a
      // header: the status line then goes to stderr.
      const bool to_stdout = writes_to_stdout(out) || (!source.empty() && writes_to_stdout(source));
      fmt::print(to_stdout ? stderr : stdout, "wrote {}{}\n", out,
                 source.empty() ? "" : " and " + source);
    }
  } catch (const OtherFileError& e) {
    fmt::print(stderr, "tinyquant: error: {}\n", e.what());
    return 1;
  } catch (const tinyquant::Error& e) {
    // Name the input file unless the message already does (errors about one entry of a model
    // file name the entry only).
    const std::string what = e.what();
    fmt::print(stderr, "tinyquant: error: {}{}\n",
               in.empty() || what.find(in) != std::string::npos ? "" : in + ": ", what);
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "tinyquant: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // Not one of the toolkit's own errors (a library below it): still a message, not an abort.
    fmt::print(stderr, "tinyquant: error: {}\n", e.what());
    return 1;
  }
  // What went to standard output must have arrived (a full disk, a closed pipe).
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || !std::cout.flush()) {
    fmt::print(stderr, "tinyquant: error: cannot write to standard output: {}\n",
               std::strerror(errno));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run(argc, argv);
}
