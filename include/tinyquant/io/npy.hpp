// NumPy .npy files (format versions 1.0, 2.0 and 3.0) and the element types shared by the
// toolkit's tensor readers.
//
// Readers treat their input as untrusted: every size is checked for overflow and against the
// bytes actually present, and anything malformed throws FormatError naming the byte offset and
// what was expected. Files that cannot be opened, read or written throw IoError with the path and
// the operating system's reason.
//
// Layout contract of the arrays returned by the readers:
//  - data holds numel(shape) * itemsize(dtype) bytes, little-endian (big-endian files are
//    byte-swapped on load; this library supports little-endian hosts only);
//  - data is always in C (row-major) order: Fortran-ordered files are transposed on load and come
//    back with fortran_order = false.
// Supported .npy descriptors: f2 (read only as float16), f4, f8, i1, u1, i2, i4, i8, each with
// byte order '<' or '>' ('|' also accepted for one-byte types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tinyquant/shape.hpp"

namespace tinyquant::io {

enum class DType : uint8_t {
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
  kInt8,
  kUInt8,
  kInt16,
  kInt32,
  kInt64,
};

// Whether dtype is one of the values above (not a DType cast from another number).
bool known_dtype(DType dtype) noexcept;
// Bytes per element: 1, 2, 4 or 8.
int64_t itemsize(DType dtype) noexcept;
// "float32", "int8", ...
const char* to_string(DType dtype) noexcept;

template <class T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType kValue = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType kValue = DType::kFloat64;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType kValue = DType::kInt8;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType kValue = DType::kUInt8;
};
template <>
struct DTypeOf<int16_t> {
  static constexpr DType kValue = DType::kInt16;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType kValue = DType::kInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType kValue = DType::kInt64;
};

// Converts n little-endian elements of type `from` at src into n elements of type `to` at dst.
// Conversions to float32 and float64 accept every dtype (float64 -> float32 and large integers
// round to nearest); conversions to an integer type accept only integer types whose every value
// fits (int8 -> int16, uint8 -> int32, ...). Anything else, and conversions to float16/bfloat16,
// throw InvalidArgument naming `what` and both dtypes.
void convert_elements(DType from, const uint8_t* src, int64_t n, DType to, void* dst,
                      const char* what);

// An n-dimensional array as stored in a .npy file.
struct NpyArray {
  DType dtype = DType::kFloat32;
  Shape shape;
  // Set only on arrays built by the caller for writing; the readers always return C order.
  bool fortran_order = false;
  std::vector<uint8_t> data;  // numel(shape) * itemsize(dtype) bytes, little-endian

  int64_t numel() const { return tinyquant::numel(shape); }

  // The elements in storage order converted to T (see convert_elements for the rules).
  template <class T>
  std::vector<T> as() const {
    const int64_t n = checked_numel();
    std::vector<T> out(static_cast<size_t>(n));
    convert_elements(dtype, data.data(), n, DTypeOf<T>::kValue, out.data(), "npy array");
    return out;
  }

  // Builds an array of T holding values (numel(shape) of them, in C order unless fortran).
  template <class T>
  static NpyArray from(const std::vector<T>& values, Shape shape, bool fortran = false) {
    NpyArray a;
    a.dtype = DTypeOf<T>::kValue;
    a.shape = std::move(shape);
    a.fortran_order = fortran;
    a.data.resize(values.size() * sizeof(T));
    if (!values.empty()) copy_bytes(a.data.data(), values.data(), a.data.size());
    a.checked_numel();
    return a;
  }

 private:
  // numel(shape), after checking that data has exactly that many elements (ShapeError if not).
  int64_t checked_numel() const;
  static void copy_bytes(uint8_t* dst, const void* src, size_t n);
};

// Parses a whole .npy file held in memory. data may be null only when size is 0.
NpyArray read_npy(const uint8_t* data, size_t size);
inline NpyArray read_npy(const std::vector<uint8_t>& bytes) {
  return read_npy(bytes.data(), bytes.size());
}
NpyArray load_npy(const std::string& path);

// Serialises byte for byte as NumPy 1.24+ does: version 1.0, keys in sorted order, room for the
// growth axis (first, or last if Fortran) to reach 21 digits, the data start aligned to 64 bytes.
// The data is written in the order fortran_order says it is in. Throws InvalidArgument for
// bfloat16 (NumPy has no such type) or rank > 64, ShapeError if data does not match shape.
std::vector<uint8_t> write_npy(const NpyArray& array);
void save_npy(const std::string& path, const NpyArray& array);

// Whole-file helpers used by the readers and writers; IoError names the path and the reason.
std::vector<uint8_t> read_file_bytes(const std::string& path);
void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace tinyquant::io
