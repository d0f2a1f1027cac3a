// Fashion-MNIST for the end-to-end example: loading the IDX files and splitting them.
//
// Images are [n][784] row-major floats, pixel / 255 so every value is in [0, 1] and a multiple
// of 1/255 (an int8 input with scale 1/255 and zero point -128 represents them exactly).
// Labels are in [0, 9]. The split is fixed, not random: validation is the *last* val_count
// training images, training the first ones (optionally capped), the test set stays untouched.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace fmnist {

using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline constexpr int kRows = 28;
inline constexpr int kCols = 28;
inline constexpr int kPixels = kRows * kCols;
inline constexpr int kClasses = 10;
inline constexpr int64_t kValidationCount = 5000;

struct Dataset {
  MatrixRM images;              // [n][kPixels], values in [0, 1]
  std::vector<uint8_t> labels;  // [n], values in [0, kClasses)

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct FashionMnist {
  Dataset train;  // 60000 images
  Dataset test;   // 10000 images
};

// Reads one images/labels pair of IDX files (gzip or raw). Throws tinyquant::IoError for a
// missing file, tinyquant::FormatError for a bad file, tinyquant::ShapeError when the shapes are
// not [n][28][28] and [n], tinyquant::DataError for a label outside [0, 9].
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path);

// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz under `dir` (Debian's dataset-fashion-mnist
// layout), falling back to the same names without .gz.
FashionMnist load_fashion_mnist(const std::string& dir);

// True if `dir` holds the four files (gzip or raw) that load_fashion_mnist() reads.
bool fashion_mnist_present(const std::string& dir);
// The paths (the .gz names) of those files that `dir` lacks, in load order.
std::vector<std::string> fashion_mnist_missing(const std::string& dir);

// Rows [begin, begin + count) of d. Throws tinyquant::InvalidArgument when out of range.
Dataset slice(const Dataset& d, int64_t begin, int64_t count);

struct TrainValSplit {
  Dataset train;  // the first min(n - val_count, train_limit) images
  Dataset val;    // the last val_count images
};

// Holds out the last val_count images for validation / calibration; train_limit <= 0 means all
// the rest. Throws tinyquant::InvalidArgument if val_count is not in [1, n - 1].
TrainValSplit split_train_val(const Dataset& full, int64_t val_count, int64_t train_limit);

}  // namespace fmnist
