#include "dataset.hpp"

#include <fmt/format.h>

#include <filesystem>

#include "tinyquant/error.hpp"
#include "tinyquant/io/idx.hpp"

namespace fmnist {

using tinyquant::Shape;

namespace {

std::string find_file(const std::string& dir, const std::string& stem) {
  const std::filesystem::path base(dir);
  const std::filesystem::path gz = base / (stem + ".gz");
  if (std::filesystem::exists(gz)) return gz.string();
  const std::filesystem::path raw = base / stem;
  if (std::filesystem::exists(raw)) return raw.string();
  return gz.string();  // let the reader report the missing file by its usual name
}

const char* const kStems[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

}  // namespace

Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path) {
  const tinyquant::io::IdxArray images = tinyquant::io::read_idx(images_path);
  const tinyquant::io::IdxArray labels = tinyquant::io::read_idx(labels_path);
  if (images.shape.size() != 3 || images.shape[1] != kRows || images.shape[2] != kCols)
    throw tinyquant::ShapeError(fmt::format("{}: images have shape {}, expected [n, {}, {}]",
                                            images_path, tinyquant::to_string(images.shape), kRows,
                                            kCols));
  if (labels.shape.size() != 1 || labels.shape[0] != images.shape[0])
    throw tinyquant::ShapeError(fmt::format("{}: labels have shape {}, expected [{}] to match {}",
                                            labels_path, tinyquant::to_string(labels.shape),
                                            images.shape[0], images_path));
  const int64_t n = images.shape[0];
  Dataset d;
  d.labels = labels.data;
  for (int64_t i = 0; i < n; ++i)
    if (d.labels[static_cast<size_t>(i)] >= kClasses)
      throw tinyquant::DataError(fmt::format("{}: label {} at index {} is outside [0, {}]",
                                             labels_path, d.labels[static_cast<size_t>(i)], i,
                                             kClasses - 1));
  d.images.resize(n, kPixels);
  const Eigen::Map<const Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
      pixels(images.data.data(), n, kPixels);
  d.images = pixels.cast<float>() * (1.0f / 255.0f);
  return d;
}

FashionMnist load_fashion_mnist(const std::string& dir) {
  FashionMnist f;
  f.train = load_idx_pair(find_file(dir, kStems[0]), find_file(dir, kStems[1]));
  f.test = load_idx_pair(find_file(dir, kStems[2]), find_file(dir, kStems[3]));
  return f;
}

bool fashion_mnist_present(const std::string& dir) {
  return fashion_mnist_missing(dir).empty();
}

std::vector<std::string> fashion_mnist_missing(const std::string& dir) {
  std::vector<std::string> missing;
  for (const char* stem : kStems) {
    const std::string path = find_file(dir, stem);
    if (!std::filesystem::exists(path)) missing.push_back(path);
  }
  return missing;
}

Dataset slice(const Dataset& d, int64_t begin, int64_t count) {
  if (begin < 0 || count < 0 || begin > d.size() || count > d.size() - begin)
    throw tinyquant::InvalidArgument(fmt::format(
        "slice: rows [{}, {}) are outside the dataset's {} rows", begin, begin + count, d.size()));
  Dataset s;
  s.images = d.images.middleRows(begin, count);
  s.labels.assign(d.labels.begin() + begin, d.labels.begin() + begin + count);
  return s;
}

TrainValSplit split_train_val(const Dataset& full, int64_t val_count, int64_t train_limit) {
  const int64_t n = full.size();
  if (val_count < 1 || val_count >= n)
    throw tinyquant::InvalidArgument(fmt::format(
        "split_train_val: val_count = {} must be in [1, {}] for {} images", val_count, n - 1, n));
  const int64_t rest = n - val_count;
  const int64_t train_count = train_limit > 0 && train_limit < rest ? train_limit : rest;
  TrainValSplit s;
  s.train = slice(full, 0, train_count);
  s.val = slice(full, rest, val_count);
  return s;
}

}  // namespace fmnist
