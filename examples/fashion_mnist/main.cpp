// Fashion-MNIST end to end: train a float 784-128-64-10 MLP (or load it from the cache),
// quantize it to int8 (activation ranges calibrated on the validation split) and compare float
// and integer-only accuracy on the 10k test images.
//
//   fashion_mnist [--data-dir DIR] [--cache-dir DIR] [--seed N] [--epochs N] [--batch N]
//                 [--lr X] [--train-limit N] [--retrain] [--no-cache]
//
// Exit status: 0 on success, 1 on an error, 2 on a bad command line, 77 if the dataset is not
// installed (CTest reports the smoke test as skipped rather than failed).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "dataset.hpp"
#include "float_mlp.hpp"
#include "int8_mlp.hpp"
#include "model_cache.hpp"
#include "tinyquant/error.hpp"
#include "train.hpp"

#ifndef TINYQUANT_FMNIST_DATA_DIR
#define TINYQUANT_FMNIST_DATA_DIR "/usr/share/datasets/fashion-mnist"
#endif
#ifndef TINYQUANT_FMNIST_CACHE_DIR
#define TINYQUANT_FMNIST_CACHE_DIR "."
#endif

namespace {

constexpr int kExitSkip = 77;
constexpr uint32_t kDefaultSeed = 1;

struct Options {
  std::string data_dir = TINYQUANT_FMNIST_DATA_DIR;
  std::string cache_dir;
  fmnist::TrainConfig train;
  int64_t train_limit = 0;  // 0: all 55000
  bool retrain = false;
  bool no_cache = false;
};

void usage(std::FILE* to) {
  std::fputs(
      "usage: fashion_mnist [options]\n"
      "  --data-dir DIR     Fashion-MNIST IDX files (default " TINYQUANT_FMNIST_DATA_DIR
      ")\n"
      "  --cache-dir DIR    where the trained model is cached (default $XDG_CACHE_HOME/tinyquant\n"
      "                     if set, else " TINYQUANT_FMNIST_CACHE_DIR
      ")\n"
      "  --seed N           init / shuffle seed (default 1)\n"
      "  --epochs N         training epochs (default 12)\n"
      "  --batch N          minibatch size (default 64)\n"
      "  --lr X             Adam step size (default 0.001)\n"
      "  --train-limit N    train on the first N of the 55000 training images\n"
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
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    double v = 0.0;
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--data-dir" || a == "--cache-dir") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fashion_mnist: %s needs a value\n", a.c_str());
        return false;
      }
      (a == "--data-dir" ? o->data_dir : o->cache_dir) = argv[++i];
    } else if (a == "--seed") {
      if (!number(&i, "--seed", 0, 4294967295.0, &v) || v != static_cast<uint32_t>(v)) return false;
      o->train.seed = static_cast<uint32_t>(v);
    } else if (a == "--epochs") {
      if (!number(&i, "--epochs", 1, 1000, &v) || v != static_cast<int>(v)) return false;
      o->train.epochs = static_cast<int>(v);
    } else if (a == "--batch") {
      if (!number(&i, "--batch", 1, 65536, &v) || v != static_cast<int>(v)) return false;
      o->train.batch = static_cast<int>(v);
    } else if (a == "--lr") {
      if (!number(&i, "--lr", 1e-7, 1.0, &v)) return false;
      o->train.lr = static_cast<float>(v);
    } else if (a == "--train-limit") {
      if (!number(&i, "--train-limit", 1, 1e9, &v) || v != static_cast<int64_t>(v)) return false;
      o->train_limit = static_cast<int64_t>(v);
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

int run(const Options& o) {
  if (!fmnist::fashion_mnist_present(o.data_dir)) {
    std::printf(
        "Fashion-MNIST not found in %s (install Debian's dataset-fashion-mnist or pass "
        "--data-dir): skipping\n",
        o.data_dir.c_str());
    return kExitSkip;
  }
  auto t0 = std::chrono::steady_clock::now();
  const fmnist::FashionMnist data = fmnist::load_fashion_mnist(o.data_dir);
  const fmnist::TrainValSplit split =
      fmnist::split_train_val(data.train, fmnist::kValidationCount, o.train_limit);
  fmt::print("data: {} train / {} validation / {} test images from {} ({:.2f} s)\n",
             split.train.size(), split.val.size(), data.test.size(), o.data_dir, seconds_since(t0));

  const fmnist::TrainConfig& c = o.train;
  fmnist::TrainKey key;
  key.sizes = {fmnist::kPixels, 128, 64, fmnist::kClasses};
  key.seed = c.seed;
  key.epochs = static_cast<uint32_t>(c.epochs);
  key.batch = static_cast<uint32_t>(c.batch);
  key.lr = c.lr;
  key.train_count = static_cast<uint64_t>(split.train.size());
  const std::string cache_path = o.cache_dir + "/fashion_mnist_mlp_" + key.tag() + ".tqmlp";

  std::optional<fmnist::FloatMlp> mlp;
  if (!o.no_cache && !o.retrain) {
    try {
      mlp = fmnist::load_model(cache_path, key);
      if (mlp) fmt::print("float model: loaded from cache {}\n", cache_path);
    } catch (const tinyquant::Error& e) {
      fmt::print("float model: ignoring the cache ({})\n", e.what());
    }
  }
  if (!mlp) {
    fmt::print("float model: training {} for {} epochs (batch {}, Adam lr {}, seed {})\n",
               fmt::join(key.sizes, "-"), c.epochs, c.batch, c.lr, c.seed);
    std::fflush(stdout);
    t0 = std::chrono::steady_clock::now();
    mlp = fmnist::he_init(key.sizes, c.seed);
    fmnist::train_mlp(&*mlp, split.train, split.val, c, [&](const fmnist::EpochStats& s) {
      fmt::print("  epoch {:2d}/{}  loss {:.4f}  val acc {:.2f}%  {:.2f} s\n", s.epoch, c.epochs,
                 s.train_loss, 100.0 * s.val_accuracy, s.seconds);
      std::fflush(stdout);
    });
    fmt::print("float model: trained in {:.1f} s\n", seconds_since(t0));
    if (!o.no_cache) {
      try {
        fmnist::save_model(cache_path, *mlp, key);
        fmt::print("float model: cached in {}\n", cache_path);
      } catch (const tinyquant::Error& e) {
        fmt::print("float model: not cached ({})\n", e.what());
      }
    }
  }

  t0 = std::chrono::steady_clock::now();
  const double val_acc = fmnist::accuracy(*mlp, split.val);
  const double test_acc = fmnist::accuracy(*mlp, data.test);
  fmt::print("float accuracy: validation {:.2f}%, test {:.2f}% ({:.2f} s)\n", 100.0 * val_acc,
             100.0 * test_acc, seconds_since(t0));

  // Integer-only: calibrate activation ranges on the validation images only, then run every
  // layer through rt::fully_connected_s8.
  t0 = std::chrono::steady_clock::now();
  const std::vector<fmnist::ActRange> ranges = fmnist::calibrate_ranges(*mlp, split.val.images);
  const fmnist::Int8Mlp q8 = fmnist::quantize_mlp_int8(*mlp, ranges);
  for (size_t i = 0; i < ranges.size(); ++i)
    fmt::print("  calibration: {} range [{:.4f}, {:.4f}]\n",
               i == 0 ? std::string("input") : fmt::format("layer {} output", i - 1), ranges[i].min,
               ranges[i].max);
  const double val8 = fmnist::accuracy_int8(q8, split.val);
  const double test8 = fmnist::accuracy_int8(q8, data.test);
  fmt::print("int8 accuracy (path {}): validation {:.2f}%, test {:.2f}% ({:.2f} s)\n",
             tinyquant::rt::path_name(tinyquant::rt::default_path()), 100.0 * val8, 100.0 * test8,
             seconds_since(t0));

  int64_t float_params = 0;
  for (const fmnist::DenseLayer& l : mlp->layers) float_params += l.w.size() + l.b.size();
  fmt::print("\n{:<34} {:>12} {:>10} {:>10}\n", "model", "param bytes", "val acc", "test acc");
  fmt::print("{:<34} {:>12} {:>9.2f}% {:>9.2f}%\n", "float32", 4 * float_params, 100.0 * val_acc,
             100.0 * test_acc);
  fmt::print("{:<34} {:>12} {:>9.2f}% {:>9.2f}%\n", "int8 w per-channel / int8 act",
             q8.parameter_bytes(), 100.0 * val8, 100.0 * test8);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.train.seed = kDefaultSeed;
  if (!parse(argc, argv, &o)) return 2;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
}
