#include "firmware.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "report.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/c_export.hpp"
#include "tinyquant/io/model_file.hpp"

namespace fmnist {

namespace tq = tinyquant;

namespace {

int64_t image_count(const Dataset& d, int64_t count) {
  return count > 0 ? std::min(count, d.size()) : d.size();
}

// The pixel byte p with p / 255 == v exactly as the loader computes it (float p * (1 / 255)).
uint8_t pixel_byte(float v, int64_t image, int64_t k) {
  const long p = std::lround(static_cast<double>(v) * 255.0);
  if (p < 0 || p > 255 || static_cast<float>(p) * (1.0f / 255.0f) != v)
    throw tq::InvalidArgument(
        fmt::format("firmware test set: image {} pixel {} = {} is not a byte / 255", image, k, v));
  return static_cast<uint8_t>(p);
}

}  // namespace

void write_firmware_test_set(const Dataset& d, int64_t count, const std::string& dir) {
  const int64_t n = image_count(d, count);
  const int64_t pixels = d.images.cols();
  std::string images(static_cast<size_t>(n * pixels), '\0'), labels(static_cast<size_t>(n), '\0');
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < pixels; ++k)
      images[static_cast<size_t>(i * pixels + k)] =
          static_cast<char>(pixel_byte(d.images(i, k), i, k));
    labels[static_cast<size_t>(i)] = static_cast<char>(d.labels[static_cast<size_t>(i)]);
  }
  write_text_file(dir + "/test_images.u8", images);
  write_text_file(dir + "/test_labels.u8", labels);
}

void write_firmware_model(const FloatMlp& mlp, const QuantMlp& q, const Dataset& d, int64_t count,
                          const std::string& dir, const std::string& name) {
  if (q.layers.size() != mlp.layers.size())
    throw tq::ShapeError(fmt::format("write_firmware_model({}): {} quantized layers for {} float",
                                     name, q.layers.size(), mlp.layers.size()));
  tq::io::Model model;
  tq::io::CExportOptions options;
  options.prefix = "fmnist";
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const tq::QuantizedLinear& l = q.layers[i];
    const std::string layer = fmt::format("fc{}", i + 1);
    if (q.sparse[i]) {
      model.entries.push_back(
          tq::io::make_sparse_entry(layer + ".weight", *q.sparse[i], l.weights().params));
    } else {
      model.entries.push_back(tq::io::make_entry(layer + ".weight", l.weights()));
    }
    const Eigen::VectorXf& b = mlp.layers[i].b;
    model.entries.push_back(tq::io::make_entry(layer + ".bias", b.data(), tq::Shape{b.size()}));
    tq::io::LayerActivations acts;
    acts.input = l.input_params();
    acts.output = l.output_params();
    acts.act = mlp.is_hidden(i) ? tq::Activation::kRelu : tq::Activation::kNone;
    options.layers[layer] = acts;
  }
  // The same header from the command line: `tinyquant` with these arguments, in `out`.
  std::string command = "tinyquant export-c model.tqm model.h --prefix fmnist";
  for (const auto& [layer, acts] : options.layers)
    command += fmt::format(" --act {}:{},{},{},{}{}", layer, acts.input.scale,
                           acts.input.zero_point, acts.output.scale, acts.output.zero_point,
                           acts.act == tq::Activation::kRelu ? ",relu" : "");
  const std::string out = dir + "/" + name;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) throw tq::IoError(fmt::format("cannot create directory '{}': {}", out, ec.message()));
  tq::io::save_model(model, out + "/model.tqm");
  write_text_file(out + "/model.h", tq::io::export_c_header(model, options));
  write_text_file(out + "/export-c.txt", command + "\n");

  // The input quantization as a table, pixel byte p -> the int8 for p / 255: what the firmware
  // compiles in, and what the host logits below are computed from.
  int8_t table[256];
  std::string lut =
      "// Fashion-MNIST input quantization as a table: pixel byte p -> the int8 the network reads\n"
      "// for p / 255 (scale and zero point calibrated on the validation images).\n"
      "#pragma once\n#include <stdint.h>\n"
      "static const int8_t FMNIST_INPUT_LUT[256] = {";
  for (int p = 0; p < 256; ++p) {
    table[p] = tq::quantize_activation(static_cast<float>(p) * (1.0f / 255.0f), q.input);
    lut += fmt::format("{}{}{}", p % 16 == 0 ? "\n  " : " ", static_cast<int>(table[p]), ",");
  }
  lut += "\n};\n";
  write_text_file(out + "/input.h", lut);

  const int64_t n = image_count(d, count);
  const int64_t pixels = d.images.cols();
  std::vector<int8_t> x(static_cast<size_t>(pixels)), logits;
  std::string all;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < pixels; ++k)
      x[static_cast<size_t>(k)] = table[pixel_byte(d.images(i, k), i, k)];
    forward_quant(q, x.data(), 1, &logits);
    all.append(reinterpret_cast<const char*>(logits.data()), logits.size());
  }
  write_text_file(out + "/host_logits.s8", all);
}

}  // namespace fmnist
