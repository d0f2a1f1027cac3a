// The demo's quantized models as a firmware build takes them: the Cortex-M program in
// examples/cortex_m (fashion_mnist_m4.cpp) compiles a model's C header in, reads the test images
// through semihosting, runs them integer-only and checks every logit against the host's.
//
// A bundle directory holds:
//   test_images.u8   [n][784] raw pixels (the IDX bytes), n = the images the demo evaluated
//   test_labels.u8   [n] labels
// and one sub-directory per model:
//   model.tqm        the layers as a tinyquant model file: "fcN.weight" (dense, or a sparse entry
//                    in the format the demo's table counted) and "fcN.bias" (float32)
//   model.h          tinyquant::io::export_c_header of model.tqm with prefix "fmnist" and each
//                    layer's activation parameters and fused ReLU
//   export-c.txt     the `tinyquant export-c` command line that writes the same model.h from
//                    model.tqm (the activation parameters as --act, floats in shortest form)
//   input.h          FMNIST_INPUT_LUT[256]: the network's int8 input for each pixel byte, as the
//                    host computes it (the input quantization becomes one table lookup)
//   host_logits.s8   [n][10] the host's int8 logits for the test images (forward_quant)
#pragma once

#include <string>

#include "dataset.hpp"
#include "float_mlp.hpp"
#include "quant_mlp.hpp"

namespace fmnist {

// Writes test_images.u8 and test_labels.u8 for the first `count` images of d (all when
// count <= 0) into dir. Throws tinyquant::IoError if a file cannot be written, and
// tinyquant::InvalidArgument if an image value is not a pixel byte / 255.
void write_firmware_test_set(const Dataset& d, int64_t count, const std::string& dir);

// Writes dir/<name>/{model.tqm, model.h, export-c.txt, input.h, host_logits.s8} for q, the
// quantized form of mlp (whose float biases the exporter requantizes as q's layers did), over the
// first `count` images of d. Throws the toolkit's errors (export, I/O, kernels).
void write_firmware_model(const FloatMlp& mlp, const QuantMlp& q, const Dataset& d, int64_t count,
                          const std::string& dir, const std::string& name);

}  // namespace fmnist
