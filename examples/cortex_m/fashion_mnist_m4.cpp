// Fashion-MNIST on a Cortex-M: one of the demo's quantized three-layer MLPs (784 inputs, 10
// classes), as tinyquant's C exporter wrote it (fashion_mnist --firmware DIR; model.h and input.h
// of one model), compiled into the firmware and run integer-only with tinyquant::rt over the test
// images the demo evaluated. The images, their labels and the host's int8 logits are the host's
// files, read through semihosting one image at a time: the firmware itself holds only the model,
// the code, the activations and the kernels' scratch.
//
//   fashion_mnist_m4.elf <bundle dir> [images] [counted]
//     images   how many test images to run (default: every image in the bundle)
//     counted  how many of the first images to bracket with the instruction-count markers
//              (tq_region_begin / tq_region_end; run_example.cmake reads the counts)
//
// Prints the accuracy and how many images' logits equal the host's; exits 0 only if every
// logit of every image equals the host's and no kernel failed.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "input.h"
#include "model.h"
#include "region_markers.h"
#include "tinyquant/rt/grouped.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "tinyquant/rt/sparse.hpp"

#ifndef TQ_FMNIST_MODEL_NAME
#define TQ_FMNIST_MODEL_NAME "model"
#endif

namespace rt = tinyquant::rt;

namespace {

constexpr int kPixels = 784;
constexpr int kClasses = 10;
constexpr int kLayers = 3;

enum class Kind { kDenseS8, kDenseS4, kGroupedS8, kGroupedS4, kSparseS8 };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kDenseS8:
      return "dense int8";
    case Kind::kDenseS4:
      return "dense int4";
    case Kind::kGroupedS8:
      return "int8 per-group";
    case Kind::kGroupedS4:
      return "int4 per-group";
    case Kind::kSparseS8:
      return "sparse int8";
  }
  return "?";
}

struct Layer {
  Kind kind = Kind::kDenseS8;
  rt::FcDims dims;
  rt::FcParams params;
  rt::Requant requant;
  const int32_t* bias = nullptr;
  const int8_t* w8 = nullptr;
  const uint8_t* w4 = nullptr;
  rt::GroupScales groups;
  rt::SparseMatrixS8 sparse;
  long weight_bytes = 0;  // every array the layer reads: weights (+ indices, ratios), bias, requant
};

#define TQ_CAT2(a, b) a##b
#define TQ_CAT(a, b) TQ_CAT2(a, b)

Layer layer1(){
#define TQ_U FMNIST_FC1
#define TQ_P fmnist_fc1
#include "fashion_mnist_layer.inc"
#undef TQ_U
#undef TQ_P
} Layer layer2(){
#define TQ_U FMNIST_FC2
#define TQ_P fmnist_fc2
#include "fashion_mnist_layer.inc"
#undef TQ_U
#undef TQ_P
} Layer layer3(){
#define TQ_U FMNIST_FC3
#define TQ_P fmnist_fc3
#include "fashion_mnist_layer.inc"
#undef TQ_U
#undef TQ_P
}

int32_t scratch_size(const Layer& l) {
  switch (l.kind) {
    case Kind::kDenseS8:
      return rt::fully_connected_s8_scratch_size(l.dims, rt::Path::kAuto);
    case Kind::kDenseS4:
      return rt::fully_connected_s4_scratch_size(l.dims, rt::Path::kAuto);
    case Kind::kGroupedS8:
      return rt::fully_connected_s8_grouped_scratch_size(l.dims, l.groups, rt::Path::kAuto);
    case Kind::kGroupedS4:
      return rt::fully_connected_s4_grouped_scratch_size(l.dims, l.groups, rt::Path::kAuto);
    case Kind::kSparseS8:
      return rt::sparse_fully_connected_s8_scratch_size(l.dims, l.sparse, rt::Path::kAuto);
  }
  return -1;
}

// Static RAM of the inference: the activations between layers and the kernels' scratch (the
// largest any layer asks for is checked against it at start-up).
constexpr int32_t kScratchBytes = 4096;
alignas(4) uint8_t g_scratch[kScratchBytes];
int8_t g_input[kPixels];
int8_t g_hidden1[FMNIST_FC1_OUT_FEATURES];
int8_t g_hidden2[FMNIST_FC2_OUT_FEATURES];
int8_t g_logits[FMNIST_FC3_OUT_FEATURES];
static_assert(FMNIST_FC1_IN_FEATURES == kPixels && FMNIST_FC3_OUT_FEATURES == kClasses,
              "the model is not a 784-input, 10-class Fashion-MNIST classifier");

rt::Status run(const Layer& l, const int8_t* x, int8_t* y) {
  rt::Context ctx;
  ctx.scratch = g_scratch;
  ctx.scratch_size = kScratchBytes;
  switch (l.kind) {
    case Kind::kDenseS8:
      return rt::fully_connected_s8(ctx, l.params, l.requant, l.dims, x, l.w8, l.bias, y);
    case Kind::kDenseS4:
      return rt::fully_connected_s4(ctx, l.params, l.requant, l.dims, x, l.w4, l.bias, y);
    case Kind::kGroupedS8:
      return rt::fully_connected_s8_grouped(ctx, l.params, l.requant, l.dims, l.groups, x, l.w8,
                                            l.bias, y);
    case Kind::kGroupedS4:
      return rt::fully_connected_s4_grouped(ctx, l.params, l.requant, l.dims, l.groups, x, l.w4,
                                            l.bias, y);
    case Kind::kSparseS8:
      return rt::sparse_fully_connected_s8(ctx, l.params, l.requant, l.dims, x, l.sparse, l.bias,
                                           y);
  }
  return rt::Status::kBadArgument;
}

// The whole network on g_input; the pixel -> int8 table is the input quantization.
__attribute__((noinline)) rt::Status infer(const Layer* layers, const uint8_t* pixels) {
  for (int k = 0; k < kPixels; ++k) g_input[k] = FMNIST_INPUT_LUT[pixels[k]];
  rt::Status s = run(layers[0], g_input, g_hidden1);
  if (s == rt::Status::kOk) s = run(layers[1], g_hidden1, g_hidden2);
  if (s == rt::Status::kOk) s = run(layers[2], g_hidden2, g_logits);
  return s;
}

int argmax(const int8_t* v) {
  int best = 0;
  for (int i = 1; i < kClasses; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

std::FILE* open_file(const char* dir, const char* name) {
  char path[512];
  std::snprintf(path, sizeof path, "%s/%s", dir, name);
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) std::printf("fashion_mnist_m4: cannot open %s\n", path);
  return f;
}

long parse_count(const char* text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0) {
    std::printf("fashion_mnist_m4: %s = '%s' is not a count\n", what, text);
    return -1;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::printf("usage: fashion_mnist_m4 <bundle dir> [images] [counted]\n");
    return 2;
  }
  const char* dir = argv[1];
  const long limit = argc > 2 ? parse_count(argv[2], "images") : 0;
  const long counted = argc > 3 ? parse_count(argv[3], "counted") : 0;
  if (limit < 0 || counted < 0) return 2;

  const Layer layers[kLayers] = {layer1(), layer2(), layer3()};
  long model_bytes = 0;
  int32_t scratch_needed = 0;
  for (const Layer& l : layers) {
    model_bytes += l.weight_bytes;
    const int32_t s = scratch_size(l);
    if (s > scratch_needed) scratch_needed = s;
  }
  std::printf(
      "fashion_mnist_m4: model %s, layers %s / %s / %s, %ld bytes of weights, biases and "
      "requantization; path %s; scratch %ld of %ld bytes\n",
      TQ_FMNIST_MODEL_NAME, kind_name(layers[0].kind), kind_name(layers[1].kind),
      kind_name(layers[2].kind), model_bytes, rt::path_name(rt::default_path()),
      static_cast<long>(scratch_needed), static_cast<long>(kScratchBytes));
  if (scratch_needed > kScratchBytes) {
    std::printf("fashion_mnist_m4: the kernels need %ld bytes of scratch, more than %ld\n",
                static_cast<long>(scratch_needed), static_cast<long>(kScratchBytes));
    return 1;
  }

  std::FILE* images = open_file(dir, "test_images.u8");
  std::FILE* labels = open_file(dir, "test_labels.u8");
  std::FILE* host = open_file(dir, TQ_FMNIST_MODEL_NAME "/host_logits.s8");
  if (images == nullptr || labels == nullptr || host == nullptr) return 1;

  tq_region_begin();  // empty region: the markers' own cost, subtracted by the runner
  tq_region_end();
  long n = 0, correct = 0, host_correct = 0, equal = 0, failed = 0;
  uint8_t pixels[kPixels];
  int8_t host_logits[kClasses];
  while (limit == 0 || n < limit) {
    unsigned char label = 0;
    const size_t got = std::fread(pixels, 1, kPixels, images);
    if (got == 0) break;
    if (got != kPixels || std::fread(&label, 1, 1, labels) != 1 ||
        std::fread(host_logits, 1, kClasses, host) != kClasses) {
      std::printf(
          "fashion_mnist_m4: image %ld: truncated test set (images, labels and host "
          "logits disagree in length)\n",
          n);
      return 1;
    }
    const bool count = n < counted;
    if (count) tq_region_begin();
    const rt::Status st = infer(layers, pixels);
    if (count) tq_region_end();
    if (st != rt::Status::kOk) {
      if (failed++ < 5) std::printf("image %ld: kernel status %s\n", n, rt::status_name(st));
    } else if (std::memcmp(g_logits, host_logits, kClasses) == 0) {
      ++equal;
    } else if (n - equal - failed < 5) {
      std::printf("image %ld: logits differ from the host's\n", n);
    }
    correct += argmax(g_logits) == label;
    host_correct += argmax(host_logits) == label;
    ++n;
    if (n % 1000 == 0) {
      std::printf("  %ld images, %ld correct, logits equal to the host's in %ld\n", n, correct,
                  equal);
    }
  }
  if (limit != 0 && n < limit) {
    std::printf("fashion_mnist_m4: asked for %ld images, the bundle has %ld\n", limit, n);
    return 1;
  }
  if (limit == 0) {  // every image read: the labels and logits must end with them
    unsigned char extra = 0;
    if (std::fread(&extra, 1, 1, labels) != 0 || std::fread(&extra, 1, 1, host) != 0) {
      std::printf(
          "fashion_mnist_m4: the labels or host logits go on past the %ld images (files "
          "from another run?)\n",
          n);
      return 1;
    }
  }
  // Percentages in hundredths, rounded half up (no floating point in the firmware).
  const long acc = n > 0 ? (correct * 10000 + n / 2) / n : 0;
  const long host_acc = n > 0 ? (host_correct * 10000 + n / 2) / n : 0;
  std::printf(
      "fashion_mnist_m4: %ld images, accuracy %ld.%02ld %% (host %ld.%02ld %%), logits equal to "
      "the host's in %ld of %ld\n",
      n, acc / 100, acc % 100, host_acc / 100, host_acc % 100, equal, n);
  return n > 0 && equal == n && failed == 0 ? 0 : 1;
}
