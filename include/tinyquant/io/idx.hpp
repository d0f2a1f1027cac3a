// IDX reader: the file format of the MNIST-style datasets (MNIST, Fashion-MNIST, KMNIST).
//
// Layout (all integers big-endian):
//   offset 0  two zero bytes
//   offset 2  element type code; only 0x08 (unsigned byte) is supported
//   offset 3  number of dimensions, >= 1
//   offset 4  one uint32 extent per dimension, each >= 1
//   then      the elements, row-major, exactly product(extents) of them, nothing after
// A file that starts with the gzip magic (1f 8b) is decompressed on the fly, whatever its name;
// concatenated gzip members are read as one stream. Decompression stops once the declared data
// is in, so a hostile header cannot make the reader inflate more than it declared.
//
// Errors: IoError when the file cannot be opened or read (names the path); FormatError for any
// byte that breaks the layout above, naming the file, the offset (in the decompressed stream for
// gzip files) and the offending value; FormatError also for a gzip stream that is corrupt, fails
// its CRC or ends early (naming the compressed offset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tinyquant/shape.hpp"

namespace tinyquant::io {

inline constexpr uint8_t kIdxTypeU8 = 0x08;
// Refuse headers that declare more than this many elements (4 GiB of bytes).
inline constexpr int64_t kIdxMaxElements = int64_t{1} << 32;

struct IdxArray {
  Shape shape;                // extents as declared, e.g. {60000, 28, 28}
  std::vector<uint8_t> data;  // numel(shape) elements, row-major
};

// Reads a uint8 IDX file, gzip-compressed or raw.
IdxArray read_idx(const std::string& path);

// Parses IDX bytes already in memory (gzip-compressed or raw); `name` stands for the file in
// error messages.
IdxArray parse_idx(const uint8_t* bytes, size_t size, const std::string& name);

}  // namespace tinyquant::io
