// The tinyquant model file (.tqm): a versioned, little-endian container of named tensors with
// their quantization parameters and storage format, laid out so it can be memory-mapped or
// placed in flash as is, and checked so that every truncation and every flipped bit is caught.
//
// Layout (all integers little-endian; the file header's ranges count from the start of the file,
// an entry header's from the start of that entry, and part offsets from the entry's payload):
//   file header, 64 bytes
//     [0, 8)   magic "TQMODEL\0"          [8, 12)  u32 version (1)
//     [12, 16) u32 entry count            [16, 24) u64 file size
//     [24, 28) u32 flags (0)              [28, 32) u32 CRC-32 of bytes [0, 28)
//     [32, 64) zero
//   then per entry, each starting at a multiple of 64:
//     entry header, 32 bytes
//       [0, 4) "TQEN"  [4, 8) u32 meta size  [8, 16) u64 payload size
//       [16, 20) u32 CRC-32 of meta  [20, 24) u32 CRC-32 of payload
//       [24, 28) u32 CRC-32 of the entry header bytes [0, 24)  [28, 32) zero
//     meta (meta size bytes): name, storage, shape, quantization parameters, format, parts
//     zero padding to a multiple of 64, then the payload (payload size bytes; each part at a
//     multiple of 64 within it, so data is at least 64-byte aligned in the file), zero padding
//     to a multiple of 64.
// The reader checks magic, version, sizes, every CRC, that padding is zero, that parts lie
// inside their payload without overlap and that an entry's part names are unique, that dense data
// has exactly numel * element size bytes, that quantization parameters are valid for the shape,
// that a dense quantized entry's codes lie in its parameters' [qmin, qmax] (an int8 byte of 127
// under 5-bit parameters is refused), and that entry names are unique. Any failure
// is a FormatError naming the file and the entry; errors in the bytes themselves (sizes, CRCs,
// padding, layout) also give the byte offset, those about an entry's meaning (its parameters or
// codes, a duplicate name, a shape whose count overflows) the entry's name and index.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tinyquant/quant_params.hpp"
#include "tinyquant/quantize.hpp"

namespace tinyquant::io {

inline constexpr uint32_t kModelFileVersion = 1;
inline constexpr size_t kMaxEntryName = 1024;  // bytes of an entry's name (at least 1)
inline constexpr size_t kMaxEntryRank = 8;

// What keeps a model file from holding an entry of this name and rank, or "" if nothing does:
// save_model's own rules (a name of 1..kMaxEntryName bytes without a NUL byte, a rank of at most
// kMaxEntryRank), for callers that check their input before any work.
std::string entry_header_problem(std::string_view name, size_t rank);

// Element storage of an entry's primary data.
enum class Storage : uint8_t {
  kFloat32 = 0,
  kInt8 = 1,
  kInt4 = 2,  // s4 nibble stream (element 2i low nibble of byte i)
  kInt16 = 3,
  kInt32 = 4,
};
const char* to_string(Storage s) noexcept;

// A named byte array of an entry: "data" for dense tensors; a sparse format's arrays otherwise.
struct ModelPart {
  std::string name;
  std::vector<uint8_t> bytes;
};

struct ModelEntry {
  std::string name;  // 1..kMaxEntryName bytes, unique in the file
  Storage storage = Storage::kFloat32;
  Shape shape;                        // rank 0..kMaxEntryRank
  std::optional<QuantParams> params;  // set for quantized tensors
  uint8_t format = 0;                 // 0 = dense; other values name a sparse format
  std::vector<ModelPart> parts;       // 1..16 parts

  const ModelPart& part(const std::string& part_name) const;  // throws FormatError if absent
};

struct Model {
  std::vector<ModelEntry> entries;
  const ModelEntry& find(const std::string& name) const;  // throws InvalidArgument if absent
};

// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib and PNG compute it.
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0) noexcept;

std::vector<uint8_t> serialize_model(const Model& model);
Model parse_model(const uint8_t* data, size_t size, const std::string& source = "<memory>");

// Writes to a temporary file beside `path`, flushes it to disk, then renames it into place, so
// an interrupted write never leaves a partial file under the final name; a file replaced keeps its
// permission bits (see tinyquant/io/atomic_file.hpp). A symbolic link is
// followed (the file it names is replaced, the link stays); a path that exists as anything but a
// regular file (a directory, a device such as /dev/full, a FIFO) is an IoError, since the rename
// would replace it rather than write to it. Throws IoError, naming `path`.
void save_model(const Model& model, const std::string& path);
Model load_model(const std::string& path);

// Dense entries from tensors, and back. Null data for a shape with elements -> InvalidArgument.
ModelEntry make_entry(const std::string& name, const QTensor& q);
ModelEntry make_entry(const std::string& name, const float* data, const Shape& shape);
ModelEntry make_entry(const std::string& name, const int32_t* data, const Shape& shape);
// FormatError unless a dense quantized entry whose parameters fit its shape and whose codes lie in
// their [qmin, qmax] (checked here too, for entries built in memory).
QTensor to_qtensor(const ModelEntry& e);
std::vector<float> to_floats(const ModelEntry& e);   // dense float32 entries
std::vector<int32_t> to_int32(const ModelEntry& e);  // dense int32 entries

}  // namespace tinyquant::io
