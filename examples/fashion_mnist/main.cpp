// Fashion-MNIST end to end: train a float 784-128-64-10 MLP (or load it from the cache), then
// quantize (int8 / int4, per-tensor / per-channel / per-group, int4 also with GPTQ on the
// validation images), prune (global magnitude with a fine-tune, structured neurons) and compare
// every configuration's integer-only test accuracy, bytes and latency in one table, with an SVG
// plot of accuracy against bytes. Activation ranges and GPTQ are calibrated on the validation
// split only; the test images are only ever evaluated.
//
//   fashion_mnist [--data-dir DIR] [--cache-dir DIR] [--seed N] [--epochs N] [--batch N]
//                 [--lr X] [--train-limit N] [--finetune-epochs N] [--finetune-lr X]
//                 [--distill A] [--calibration C] [--eval-limit N]
//                 [--plot PATH] [--firmware DIR] [--retrain] [--no-cache]
//
// Exit status: 0 on success, 1 on an error, 2 on a bad command line, 77 if the dataset is not
// installed (CTest reports the smoke test as skipped rather than failed).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataset.hpp"
#include "firmware.hpp"
#include "float_mlp.hpp"
#include "int8_mlp.hpp"
#include "model_cache.hpp"
#include "prune_mlp.hpp"
#include "qat_mlp.hpp"
#include "quant_mlp.hpp"
#include "report.hpp"
#include "tinyquant/error.hpp"
#include "train.hpp"

#ifndef TINYQUANT_FMNIST_DATA_DIR
#define TINYQUANT_FMNIST_DATA_DIR "/usr/share/datasets/fashion-mnist"
#endif
#ifndef TINYQUANT_FMNIST_CACHE_DIR
#define TINYQUANT_FMNIST_CACHE_DIR "."
#endif
#ifndef TINYQUANT_FMNIST_OUTPUT_DIR
#define TINYQUANT_FMNIST_OUTPUT_DIR "."
#endif

namespace {

constexpr int kExitSkip = 77;
constexpr uint32_t kDefaultSeed = 1;
// Global pruning fine-tunes: epochs (unless --finetune-epochs), the best validation epoch at the
// final sparsity kept; chosen on the validation images (README, "What was tried"). Like the QAT
// (fmnist::demo_qat), they start at fmnist::kDemoFinetuneLrScale times the training lr (unless
// --finetune-lr) and are regularized by fmnist::apply_demo_regularization.
constexpr int kPruneEpochs = 10;

struct Options {
  std::string data_dir = TINYQUANT_FMNIST_DATA_DIR;
  bool data_dir_given = false;  // then missing files are an error, not a skipped run
  std::string cache_dir;
  fmnist::TrainConfig train;
  int64_t train_limit = 0;  // 0: all 55000
  int finetune_epochs = 4;
  bool finetune_epochs_given = false;  // then QAT and the pruning fine-tunes use it too
  float finetune_lr = 0.0f;            // 0: each fine-tune's default (above)
  fmnist::ActCalibration calibration;  // of the hidden activations
  float distill = 0.0f;                // weight of the float model's soft targets in the fine-tunes
  int64_t eval_limit = 0;              // 0: all 10000 test images
  std::string plot_path = TINYQUANT_FMNIST_OUTPUT_DIR "/fashion_mnist_accuracy_vs_bytes.svg";
  std::string firmware_dir;  // empty: no firmware bundle
  std::vector<double> sparsities = {0.5, 0.7, 0.9};
  bool retrain = false;
  bool no_cache = false;
};

void usage(std::FILE* to) {
  std::fputs(
      "usage: fashion_mnist [options]\n"
      "  --data-dir DIR     Fashion-MNIST IDX files (default " TINYQUANT_FMNIST_DATA_DIR
      ")\n"
      "  --cache-dir DIR    where trained models are cached (default $XDG_CACHE_HOME/tinyquant\n"
      "                     if set, else " TINYQUANT_FMNIST_CACHE_DIR
      ")\n"
      "  --seed N           init / shuffle seed (default 1)\n"
      "  --epochs N         training epochs (default 20; cosine decay, best validation epoch "
      "kept)\n"
      "  --batch N          minibatch size (default 64)\n"
      "  --lr X             Adam step size (default 0.001)\n"
      "  --train-limit N    train on the first N of the 55000 training images\n"
      "  --finetune-epochs N  epochs of every fine-tune (default 12 for QAT, 10 for global\n"
      "                     pruning, 4 for structured pruning)\n"
      "  --finetune-lr X    Adam step size of every fine-tune (default 2 x --lr for QAT and\n"
      "                     global pruning, --lr for structured pruning)\n"
      "  --calibration C    hidden activation ranges: minmax (default), mse, or pP (percentile\n"
      "                     P > 50 of the values, e.g. p99.99), from the validation images\n"
      "  --distill A        fine-tunes also learn the float model's soft targets (temperature\n"
      "                     2) with weight A in [0, 1] (default 0: off)\n"
      "  --eval-limit N     evaluate on the first N test images only (default all 10000)\n"
      "  --plot PATH        where the accuracy-vs-bytes SVG goes "
      "(default " TINYQUANT_FMNIST_OUTPUT_DIR
      "/fashion_mnist_accuracy_vs_bytes.svg)\n"
      "  --firmware DIR     also write the int8 per-channel, int4 per-group 32 + QAT, 70 %\n"
      "                     pruned int8 and -50 % neurons int8 models as C headers, with the\n"
      "                     evaluated test images and the host's logits, for the Cortex-M\n"
      "                     program (examples/cortex_m)\n"
      "  --retrain          train even if a cached model exists (and refresh the cache)\n"
      "  --no-cache         neither read nor write the cache\n",
      to);
}

// Parses "--name value" pairs; returns false (after printing why) on a bad command line.
bool parse(int argc, char** argv, Options* o) {
  auto number = [&](int* i, const char* name, double lo, double hi, double* out) {
    if (*i + 1 >= argc) {
      std::fprintf(stderr, "fashion_mnist: %s needs a value\n", name);
      return false;
    }
    const char* text = argv[++*i];
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= lo && v <= hi)) {
      std::fprintf(stderr, "fashion_mnist: %s = '%s' is not a number in [%g, %g]\n", name, text, lo,
                   hi);
      return false;
    }
    *out = v;
    return true;
  };
  // Decimal digits only: strtod would also take 0x10, 1e3 or " 5" for a seed.
  auto integer = [&](int* i, const char* name, double lo, double hi, double* out) {
    if (*i + 1 < argc) {
      const std::string text = argv[*i + 1];
      if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
        std::fprintf(stderr, "fashion_mnist: %s = '%s' is not a whole number in [%.0f, %.0f]\n",
                     name, text.c_str(), lo, hi);
        return false;
      }
    }
    return number(i, name, lo, hi, out);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    double v = 0.0;
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--data-dir" || a == "--cache-dir" || a == "--plot" || a == "--firmware") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fashion_mnist: %s needs a value\n", a.c_str());
        return false;
      }
      std::string& value = a == "--data-dir"   ? o->data_dir
                           : a == "--plot"     ? o->plot_path
                           : a == "--firmware" ? o->firmware_dir
                                               : o->cache_dir;
      value = argv[++i];
      if (value.empty()) {
        std::fprintf(stderr, "fashion_mnist: %s: the path is empty\n", a.c_str());
        return false;
      }
      if (a == "--data-dir") o->data_dir_given = true;
    } else if (a == "--finetune-epochs") {
      if (!integer(&i, "--finetune-epochs", 1, 1000, &v)) return false;
      o->finetune_epochs = static_cast<int>(v);
      o->finetune_epochs_given = true;
    } else if (a == "--eval-limit") {
      if (!integer(&i, "--eval-limit", 1, 1e9, &v)) return false;
      o->eval_limit = static_cast<int64_t>(v);
    } else if (a == "--seed") {
      if (!integer(&i, "--seed", 0, 4294967295.0, &v)) return false;
      o->train.seed = static_cast<uint32_t>(v);
    } else if (a == "--epochs") {
      if (!integer(&i, "--epochs", 1, 1000, &v)) return false;
      o->train.epochs = static_cast<int>(v);
    } else if (a == "--batch") {
      if (!integer(&i, "--batch", 1, 65536, &v)) return false;
      o->train.batch = static_cast<int>(v);
    } else if (a == "--distill") {
      if (!number(&i, "--distill", 0, 1, &v)) return false;
      o->distill = static_cast<float>(v);
    } else if (a == "--finetune-lr") {
      if (!number(&i, "--finetune-lr", 1e-7, 1.0, &v)) return false;
      o->finetune_lr = static_cast<float>(v);
    } else if (a == "--lr") {
      if (!number(&i, "--lr", 1e-7, 1.0, &v)) return false;
      o->train.lr = static_cast<float>(v);
    } else if (a == "--train-limit") {
      if (!integer(&i, "--train-limit", 1, 1e9, &v)) return false;
      o->train_limit = static_cast<int64_t>(v);
    } else if (a == "--calibration") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fashion_mnist: --calibration needs a value\n");
        return false;
      }
      const std::string m = argv[++i];
      char* end = nullptr;
      const double p = m.size() > 1 && m[0] == 'p' ? std::strtod(m.c_str() + 1, &end) : 0.0;
      if (m == "minmax") {
        o->calibration.kind = fmnist::ActCalibration::kMinMax;
      } else if (m == "mse") {
        o->calibration.kind = fmnist::ActCalibration::kMse;
      } else if (end != nullptr && *end == '\0' && p > 50.0 && p <= 100.0) {
        o->calibration.kind = fmnist::ActCalibration::kPercentile;
        o->calibration.percentile = p;
      } else {
        std::fprintf(stderr,
                     "fashion_mnist: --calibration '%s' is not minmax, mse or pP with P in "
                     "(50, 100]\n",
                     m.c_str());
        return false;
      }
    } else if (a == "--retrain") {
      o->retrain = true;
    } else if (a == "--no-cache") {
      o->no_cache = true;
    } else {
      std::fprintf(stderr, "fashion_mnist: unknown option '%s'\n", a.c_str());
      usage(stderr);
      return false;
    }
  }
  if (o->cache_dir.empty()) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    o->cache_dir = xdg != nullptr && *xdg != '\0' ? std::string(xdg) + "/tinyquant"
                                                  : std::string(TINYQUANT_FMNIST_CACHE_DIR);
  }
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void flush() {
  std::fflush(stdout);
}

// Loads the model of `key` from the cache, or builds it with `make` and caches it.
template <class Make>
fmnist::FloatMlp cached_model(const Options& o, const fmnist::TrainKey& key, const char* what,
                              Make&& make) {
  const std::string path = o.cache_dir + "/fashion_mnist_mlp_" + key.tag() + ".tqmlp";
  if (!o.no_cache && !o.retrain) {
    try {
      if (std::optional<fmnist::FloatMlp> m = fmnist::load_model(path, key)) {
        fmt::print("{}: loaded from cache {}\n", what, path);
        return std::move(*m);
      }
    } catch (const tinyquant::Error& e) {
      fmt::print("{}: ignoring the cache ({})\n", what, e.what());
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  fmnist::FloatMlp m = make();
  fmt::print("{}: done in {:.1f} s\n", what, seconds_since(t0));
  if (!o.no_cache) {
    try {
      fmnist::save_model(path, m, key);
      fmt::print("{}: cached in {}\n", what, path);
    } catch (const tinyquant::Error& e) {
      fmt::print("{}: not cached ({})\n", what, e.what());
    }
  }
  flush();
  return m;
}

std::function<void(const fmnist::EpochStats&)> epoch_printer(int epochs) {
  return [epochs](const fmnist::EpochStats& s) {
    fmt::print("  epoch {:2d}/{}  lr {:.2e}  loss {:.4f}  val acc {:.2f}%  {:.2f} s\n", s.epoch,
               epochs, s.lr, s.train_loss, 100.0 * s.val_accuracy, s.seconds);
    flush();
  };
}

std::string percent_tag(double fraction) {
  return fmt::format("{}", static_cast<int>(std::lround(100.0 * fraction)));
}

int run(const Options& o) {
  namespace tq = tinyquant;
  // Training, calibration, GPTQ and the float rows: the same float sums whatever the CPU's caches.
  const fmnist::FixedEigenBlocking fixed_blocking;
  // The outputs' directories now, not after minutes of training: a --plot or --firmware path
  // that cannot be written ends the run before it starts.
  for (const auto& [option, dir] :
       {std::pair<const char*, std::filesystem::path>{
            "--plot", std::filesystem::path(o.plot_path).parent_path()},
        std::pair<const char*, std::filesystem::path>{"--firmware", o.firmware_dir}}) {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec || (!dir.empty() && !std::filesystem::is_directory(dir))) {
      std::fprintf(stderr, "fashion_mnist: %s: cannot create directory '%s': %s\n", option,
                   dir.string().c_str(), ec ? ec.message().c_str() : "not a directory");
      return 1;
    }
  }
  const std::vector<std::string> missing = fmnist::fashion_mnist_missing(o.data_dir);
  if (!missing.empty() && o.data_dir_given) {
    // Asked for by name: a typo or an incomplete copy, not a machine without the package.
    std::fprintf(stderr, "fashion_mnist: --data-dir %s: no %s (nor the same name without .gz)\n",
                 o.data_dir.c_str(), missing[0].c_str());
    return 1;
  }
  if (!missing.empty()) {
    std::printf(
        "Fashion-MNIST not found in %s (install Debian's dataset-fashion-mnist or pass "
        "--data-dir): skipping\n",
        o.data_dir.c_str());
    return kExitSkip;
  }
  const auto t_start = std::chrono::steady_clock::now();
  auto t0 = t_start;
  const fmnist::FashionMnist data = fmnist::load_fashion_mnist(o.data_dir);
  const fmnist::TrainValSplit split =
      fmnist::split_train_val(data.train, fmnist::kValidationCount, o.train_limit);
  fmt::print("data: {} train / {} validation / {} test images from {} ({:.2f} s)\n",
             split.train.size(), split.val.size(), data.test.size(), o.data_dir, seconds_since(t0));

  // 1. The float model (cosine learning-rate decay, weights of the best validation epoch).
  const fmnist::TrainConfig& c = o.train;
  fmnist::TrainKey key;
  key.sizes = {fmnist::kPixels, 128, 64, fmnist::kClasses};
  key.seed = c.seed;
  key.epochs = static_cast<uint32_t>(c.epochs);
  key.batch = static_cast<uint32_t>(c.batch);
  key.lr = c.lr;
  key.train_count = static_cast<uint64_t>(split.train.size());
  key.recipe = "cos-best-eigl1-32k";
  const fmnist::FloatMlp mlp = cached_model(o, key, "float model", [&] {
    fmt::print(
        "float model: training {} for {} epochs (batch {}, Adam lr {} cosine to 0, keep the "
        "best validation epoch, seed {})\n",
        fmt::join(key.sizes, "-"), c.epochs, c.batch, c.lr, c.seed);
    flush();
    fmnist::FloatMlp m = fmnist::he_init(key.sizes, c.seed);
    fmnist::train_mlp(&m, split.train, split.val, c, epoch_printer(c.epochs));
    return m;
  });

  // Fine-tunes start from the float model: same seed, batch and data, a peak lr cosine-decayed
  // to 0 (QAT and global pruning: kDemoFinetuneLrScale times the training lr), fewer epochs;
  // optionally distilled from the float model.
  fmnist::TrainConfig ft = c;
  ft.epochs = o.finetune_epochs;
  ft.lr = o.finetune_lr > 0.0f ? o.finetune_lr : c.lr;
  ft.keep_best = false;
  // QAT's and the global pruning fine-tunes' peak lr (--finetune-lr sets every fine-tune's).
  const float fast_lr = o.finetune_lr > 0.0f ? o.finetune_lr : fmnist::kDemoFinetuneLrScale * c.lr;
  if (o.distill > 0.0f) {
    ft.teacher = &mlp;
    ft.distill_weight = o.distill;
  }
  fmnist::TrainKey ft_key = key;
  ft_key.epochs = static_cast<uint32_t>(ft.epochs);
  ft_key.lr = ft.lr;
  // The fine-tune's own settings beyond the key's (distillation), then the model it starts from.
  const std::string kd_tag =
      ft.teacher != nullptr ? fmt::format("kd{}-t{}_", ft.distill_weight, ft.temperature) : "";
  const std::string base =
      fmt::format("{}from-e{}-lr{}-{}", kd_tag, key.epochs, key.lr, key.recipe);

  std::vector<fmnist::ResultRow> rows;
  const int64_t limit = o.eval_limit;
  const int64_t shown = limit > 0 ? std::min(limit, data.test.size()) : data.test.size();
  auto add_row = [&](const std::string& name, const fmnist::EvalResult& r, int64_t bytes,
                     std::string claim = {}, std::string reference = {}) {
    fmt::print("  {:<44} {:6.2f}%  {:>8} bytes  {:7.1f} us/img\n", name, 100.0 * r.accuracy, bytes,
               r.us_per_sample);
    flush();
    rows.push_back(
        {name, r.accuracy, bytes, r.us_per_sample, std::move(claim), std::move(reference)});
  };
  // Firmware bundles (--firmware): the test images the table evaluates, then one model each.
  if (!o.firmware_dir.empty()) fmnist::write_firmware_test_set(data.test, limit, o.firmware_dir);
  auto eval_quant = [&](const std::string& name, const fmnist::FloatMlp& m,
                        const tq::QuantSpec& spec, bool sparse, std::string claim = {},
                        std::string reference = {}, const fmnist::WeightParamsChoice& wp = {},
                        const std::string& firmware = {}) {
    // Activation ranges of this very model, from the validation images only.
    const fmnist::QuantMlp q = fmnist::quantize_mlp(
        m, fmnist::calibrate_ranges(m, split.val.images, o.calibration), spec, sparse, wp);
    std::string formats;
    if (sparse) {
      for (const fmnist::LayerBytes& b : q.bytes)
        formats += std::string(formats.empty() ? "" : ", ") + tq::to_string(b.format);
      formats = fmt::format(" [{}; {} of {} layers through the sparse kernel]", formats,
                            q.sparse_layers(), q.layers.size());
    }
    fmt::print("evaluating {}{} ...\n", name, formats);
    flush();
    add_row(name, fmnist::evaluate_quant(q, data.test, limit), q.total_bytes(), std::move(claim),
            std::move(reference));
    if (!o.firmware_dir.empty() && !firmware.empty()) {
      fmnist::write_firmware_model(m, q, data.test, limit, o.firmware_dir, firmware);
      fmt::print("  firmware: {}/{}/model.h\n", o.firmware_dir, firmware);
      flush();
    }
  };
  auto eval_float = [&](const std::string& name, const fmnist::FloatMlp& m, int64_t bytes,
                        std::string claim = {}) {
    fmt::print("evaluating {} ...\n", name);
    flush();
    add_row(name, fmnist::evaluate_float(m, data.test, limit), bytes, std::move(claim));
  };

  const tq::QuantSpec int8_tensor{8, tq::Scheme::kSymmetric, true, tq::Granularity::kPerTensor, 0,
                                  0};
  const tq::QuantSpec int8_channel = tq::QuantSpec::int8_weights_per_channel(0);
  const tq::QuantSpec int4_channel{4, tq::Scheme::kSymmetric, true, tq::Granularity::kPerChannel, 0,
                                   0};
  const tq::QuantSpec int4_group = tq::QuantSpec::int4_per_group(32, 1);
  const char* kInt8Claim = "textbook INT8: ~4x at 1-3% loss";
  const char* kInt4Claim = "textbook INT4: ~8x at 3-8% loss";

  fmt::print(
      "\ntest set: {} images, batch 1, integer-only through the runtime kernels (path {}); "
      "hidden activation ranges: {} over the validation images\n",
      shown, tq::rt::path_name(tq::rt::default_path()), o.calibration.tag());
  const int64_t fbytes = fmnist::float_bytes(mlp);
  eval_float("float32", mlp, fbytes);
  const double float_acc = rows.back().accuracy;
  eval_quant("int8 per-tensor", mlp, int8_tensor, false, kInt8Claim);
  eval_quant("int8 per-channel", mlp, int8_channel, false, kInt8Claim, "ref -0.02 pp @ 3.95x", {},
             "int8");
  eval_quant("int4 per-channel", mlp, int4_channel, false, kInt4Claim);
  eval_quant("int4 per-group 32", mlp, int4_group, false, kInt4Claim, "ref +0.49 pp @ 7.33x");

  // GPTQ (tinyquant/gptq.hpp) on the validation images: each layer's weights rounded column by
  // column, every rounding error spread over the columns not yet rounded so the layer's output
  // on those images moves least; a layer sees the outputs of the earlier layers' GPTQ weights.
  t0 = std::chrono::steady_clock::now();
  fmt::print("int4 per-group 32 GPTQ: {} layers on the {} validation images ...\n",
             mlp.layers.size(), split.val.size());
  flush();
  const fmnist::GptqMlp gptq =
      fmnist::gptq_mlp(mlp, split.val.images, int4_group, fmnist::demo_gptq_options(),
                       fmnist::GptqInputs::kSequential);
  fmt::print("int4 per-group 32 GPTQ: done in {:.1f} s\n", seconds_since(t0));
  {
    fmnist::WeightParamsChoice given;
    given.given = &gptq.params;
    eval_quant("int4 per-group 32, GPTQ", gptq.model, int4_group, false, kInt4Claim,
               "ref +0.49 pp @ 7.33x", given);
  }

  // Quantization-aware fine-tune for int4 per-group 32 (fmnist::demo_qat): forward and backward
  // on the fake-quantized weights, updates on the float ones. The group scales are snapped to
  // the ratio grid the integer layer applies, in the fine-tune and in the final quantization,
  // so the fine-tune trains the deployed weights exactly; the final re-fit of the master weights
  // is what qat_finetune returns.
  {
    fmnist::DemoQat q = fmnist::demo_qat(ft, c.lr);
    if (o.finetune_epochs_given) q.train.epochs = ft.epochs;
    q.train.lr = fast_lr;
    const fmnist::TrainConfig& qt = q.train;
    fmnist::TrainKey k = ft_key;
    k.epochs = static_cast<uint32_t>(qt.epochs);
    k.lr = qt.lr;
    k.recipe = fmnist::demo_qat_recipe(q, base);
    const fmnist::FloatMlp qat = cached_model(o, k, "int4 per-group 32 QAT", [&] {
      fmt::print(
          "int4 per-group 32 QAT: fine-tune {} epochs on fake-quantized weights, Adam lr {} "
          "cosine to 0, label smoothing {}, weight decay {} (straight-through estimator, "
          "ranges re-fitted every {} steps, group scales snapped to the kernel's ratio grid)\n",
          qt.epochs, qt.lr, qt.label_smoothing, qt.weight_decay, q.qat.refresh_every);
      flush();
      fmnist::FloatMlp m = mlp;
      fmnist::qat_finetune(&m, split.train, split.val, qt, int4_group, q.qat,
                           epoch_printer(qt.epochs));
      return m;
    });
    fmnist::WeightParamsChoice snapped;
    snapped.snap = true;
    eval_quant("int4 per-group 32 + QAT ft", qat, int4_group, false, kInt4Claim,
               "ref +0.49 pp @ 7.33x", snapped, "int4_g32_qat");
  }

  // 2. Global magnitude pruning with a polynomial-decay fine-tune, alone and quantized.
  for (const double sparsity : o.sparsities) {
    fmnist::PruneConfig pc;
    pc.sparsity = sparsity;
    fmnist::TrainConfig pt = ft;
    pt.epochs = o.finetune_epochs_given ? ft.epochs : kPruneEpochs;
    pt.lr = fast_lr;
    pt.keep_best = true;
    fmnist::apply_demo_regularization(&pt);
    fmnist::TrainKey k = ft_key;
    k.epochs = static_cast<uint32_t>(pt.epochs);
    k.lr = pt.lr;
    k.recipe =
        fmt::format("global{}-f{}-p{}-r{}-cos-best{}_{}", percent_tag(sparsity), pc.frequency,
                    pc.power, pc.ramp_fraction, fmnist::regularization_tag(pt), base);
    const std::string what = fmt::format("{}% global magnitude pruning", percent_tag(sparsity));
    const fmnist::FloatMlp pruned = cached_model(o, k, what.c_str(), [&] {
      fmt::print(
          "{}: fine-tune {} epochs, Adam lr {} cosine to 0, label smoothing {}, weight decay "
          "{}, sparsity 0 -> {} (polynomial decay, power {}, masks updated every {} steps over "
          "the first {:.0f}% of the steps; the best validation epoch at the final sparsity "
          "kept)\n",
          what, pt.epochs, pt.lr, pt.label_smoothing, pt.weight_decay, sparsity, pc.power,
          pc.frequency, 100.0 * pc.ramp_fraction);
      flush();
      fmnist::FloatMlp m = mlp;
      fmnist::prune_finetune(&m, split.train, split.val, pt, pc, epoch_printer(pt.epochs));
      return m;
    });
    const std::string p = "prune " + percent_tag(sparsity) + "%";
    const bool seventy = percent_tag(sparsity) == "70";
    eval_float(p + " + ft, float (sparse)", pruned, fmnist::sparse_float_bytes(pruned),
               seventy ? "textbook 70% pruning: ~3x at < 2% loss" : "");
    eval_quant(p + " + ft + int8 per-channel (sparse)", pruned, int8_channel, true, "",
               seventy ? "ref +0.16 pp @ 9.11x" : "", {}, seventy ? "prune70_int8" : "");
    eval_quant(p + " + ft + int4 per-group 32 (sparse)", pruned, int4_group, true);
  }

  // 3. Structured: remove half of every hidden layer's neurons (L2 norm), fine-tune, int8.
  {
    const double fraction = 0.5;
    fmnist::TrainKey k = ft_key;
    fmnist::FloatMlp shrunk = fmnist::shrink_hidden(mlp, fraction, tq::Criterion::kL2);
    k.sizes = shrunk.sizes();
    k.recipe = fmt::format("neurons{}-l2-cos_{}", percent_tag(fraction), base);
    const fmnist::FloatMlp tuned = cached_model(o, k, "structured pruning", [&] {
      fmt::print("structured pruning: {} -> {}, fine-tune {} epochs\n", fmt::join(key.sizes, "-"),
                 fmt::join(k.sizes, "-"), ft.epochs);
      flush();
      fmnist::train_mlp(&shrunk, split.train, split.val, ft, epoch_printer(ft.epochs));
      return shrunk;
    });
    const std::string name =
        fmt::format("neurons -{}% (L2) {} + ft", percent_tag(fraction), fmt::join(k.sizes, "-"));
    eval_float(name + ", float", tuned, fmnist::float_bytes(tuned));
    eval_quant(name + " + int8 per-channel", tuned, int8_channel, false, "", "", {},
               "neurons50_int8");
  }

  fmt::print(
      "\nFashion-MNIST test set ({} images), bytes = weights + biases + quantization "
      "parameters as stored (sparse rows: the format choose_format() picked per layer), "
      "ratio vs float32 {} bytes, latency batch 1 on this host:\n\n",
      shown, fbytes);
  fmt::print("{}", fmnist::format_table(rows, float_acc, fbytes));
  const std::string svg = fmnist::accuracy_bytes_svg(
      rows, float_acc,
      fmt::format("Fashion-MNIST 784-128-64-10: test accuracy vs bytes (seed {})", c.seed));
  try {
    fmnist::write_text_file(o.plot_path, svg);
  } catch (const tinyquant::Error& e) {
    throw tinyquant::IoError(fmt::format("--plot: {}", e.what()));
  }
  fmt::print("\nplot: {}\ntotal time {:.1f} s\n", o.plot_path, seconds_since(t_start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.train.seed = kDefaultSeed;
  o.train.epochs = 20;
  o.train.schedule = fmnist::LrSchedule::kCosine;
  o.train.keep_best = true;
  if (!parse(argc, argv, &o)) return 2;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
}
