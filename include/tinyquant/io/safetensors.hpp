// .safetensors files: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the
// data section. The JSON object maps tensor names to {"dtype", "shape", "data_offsets": [begin,
// end)} (offsets relative to the data section) plus an optional "__metadata__" object of
// string -> string.
//
// The reader treats its input as untrusted and enforces the format's rules: the header starts
// with '{' and is at most kSafetensorsMaxHeader bytes of at most kSafetensorsMaxValues values;
// the JSON is strict (objects, arrays, strings with escapes, integers; no duplicate keys, valid
// UTF-8); each tensor has exactly the three keys, a supported dtype, non-negative extents and
// end - begin == numel * itemsize; and the tensors tile the data section exactly, with no hole,
// overlap or trailing byte. Violations throw FormatError with the file offset and what was
// expected; OS failures throw IoError.
// Supported dtypes: F16, BF16, F32, F64, I8, U8, I16, I32, I64 (data little-endian).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tinyquant/io/npy.hpp"  // DType, convert_elements, file helpers

namespace tinyquant::io {

// Largest JSON header accepted (the limit of the reference implementation).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;
// Most JSON values (objects, arrays, strings, integers, keys not counted) a header may hold:
// about 100 000 tensors. It bounds the parsed tree, which takes some 30 times the bytes of a
// header of tiny values (a 100 MB header of them would need about 3 GB).
constexpr size_t kSafetensorsMaxValues = size_t{1} << 20;

struct SafeTensor {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  std::vector<uint8_t> data;  // numel(shape) * itemsize(dtype) bytes, little-endian, C order

  int64_t numel() const { return tinyquant::numel(shape); }

  // The elements converted to T: F16 and BF16 widen exactly to float (see convert_elements).
  template <class T>
  std::vector<T> as() const {
    const int64_t n = numel();
    // Compared as n == size / itemsize so that no product wraps (n up to 2^63 - 1).
    const uint64_t item = static_cast<uint64_t>(itemsize(dtype));
    if (data.size() % item != 0 || static_cast<uint64_t>(n) != data.size() / item)
      throw_size_mismatch();
    std::vector<T> out(static_cast<size_t>(n));
    convert_elements(dtype, data.data(), n, DTypeOf<T>::kValue, out.data(), name.c_str());
    return out;
  }

  // A tensor of dtype from raw little-endian bytes, e.g. F16/BF16 bit patterns.
  static SafeTensor raw(std::string name, DType dtype, Shape shape, std::vector<uint8_t> bytes) {
    SafeTensor t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = std::move(bytes);
    return t;
  }

  template <class T>
  static SafeTensor from(std::string name, const std::vector<T>& values, Shape shape) {
    std::vector<uint8_t> bytes(values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return raw(std::move(name), DTypeOf<T>::kValue, std::move(shape), std::move(bytes));
  }

 private:
  [[noreturn]] void throw_size_mismatch() const;
};

struct SafeTensors {
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in file order
  std::vector<SafeTensor> tensors;  // read: sorted by data offset; write: laid out in this order

  // The tensor called name, or nullptr.
  const SafeTensor* find(const std::string& name) const;
  // The tensor called name; throws InvalidArgument listing the names present if absent.
  const SafeTensor& at(const std::string& name) const;
};

// Parses a whole .safetensors file held in memory. data may be null only when size is 0.
SafeTensors read_safetensors(const uint8_t* data, size_t size);
inline SafeTensors read_safetensors(const std::vector<uint8_t>& bytes) {
  return read_safetensors(bytes.data(), bytes.size());
}
SafeTensors load_safetensors(const std::string& path);

// Serialises metadata first, then the tensors in vector order with contiguous offsets; the header
// is padded with spaces to a multiple of 8 bytes so the data section is 8-byte aligned. Throws
// InvalidArgument for a duplicate, "__metadata__" or non-UTF-8 name or metadata string,
// and ShapeError when a tensor's data does not match its shape.
std::vector<uint8_t> write_safetensors(const SafeTensors& file);
void save_safetensors(const std::string& path, const SafeTensors& file);

// "F32", "BF16", ...
const char* safetensors_dtype_name(DType dtype) noexcept;

}  // namespace tinyquant::io
