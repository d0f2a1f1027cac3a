#include "tinyquant/io/idx.hpp"

#include <zlib.h>

#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "../detail/check.hpp"
#include "tinyquant/io/npy.hpp"  // read_file_bytes

namespace tinyquant::io {

using detail::fail;

namespace {

const char* type_name(uint8_t code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return nullptr;
  }
}

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// A byte stream over an in-memory file: either the bytes themselves or their gzip inflation.
// read() fills as much as it can and returns the count; fewer than asked means the stream ended.
class ByteStream {
 public:
  ByteStream(const uint8_t* bytes, size_t size, const std::string& name)
      : bytes_(bytes), size_(size), name_(name) {
    gzip_ = size >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B;
    if (gzip_) {
      zs_ = std::make_unique<z_stream>();
      std::memset(zs_.get(), 0, sizeof(z_stream));
      if (inflateInit2(zs_.get(), 15 + 16) != Z_OK) throw std::bad_alloc();
      zs_->next_in = const_cast<Bytef*>(bytes);  // zlib's API is not const-correct
      zs_->avail_in = 0;
    }
  }
  ~ByteStream() {
    if (zs_) inflateEnd(zs_.get());
  }
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  bool gzip() const { return gzip_; }

  size_t read(uint8_t* dst, size_t n) {
    if (!gzip_) {
      const size_t take = n < size_ - pos_ ? n : size_ - pos_;
      if (take > 0) std::memcpy(dst, bytes_ + pos_, take);
      pos_ += take;
      return take;
    }
    return inflate_into(dst, n);
  }

 private:
  size_t compressed_offset() const { return static_cast<size_t>(zs_->next_in - bytes_); }

  // Feeds zlib at most 1 GiB at a time: avail_in and avail_out are 32-bit.
  void refill_input() {
    if (zs_->avail_in > 0) return;
    const size_t left = size_ - compressed_offset();
    zs_->avail_in = static_cast<uInt>(left < (size_t{1} << 30) ? left : (size_t{1} << 30));
  }

  size_t inflate_into(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      refill_input();
      if (member_ended_) {
        if (zs_->avail_in == 0) break;  // the last member ended with the file: end of stream
        const size_t at = compressed_offset();
        // Another gzip member may follow (concatenated .gz files are one stream).
        if (size_ - at < 2 || bytes_[at] != 0x1F || bytes_[at + 1] != 0x8B)
          fail<FormatError>(
              "{}: {} bytes of garbage after the end of the gzip stream at compressed offset {}",
              name_, size_ - at, at);
        if (inflateReset(zs_.get()) != Z_OK) throw std::bad_alloc();
        member_ended_ = false;
      }
      const size_t want = n - done < (size_t{1} << 30) ? n - done : (size_t{1} << 30);
      zs_->next_out = dst + done;
      zs_->avail_out = static_cast<uInt>(want);
      const int ret = inflate(zs_.get(), Z_NO_FLUSH);
      done += want - zs_->avail_out;
      switch (ret) {
        case Z_OK:
          break;
        case Z_STREAM_END:
          member_ended_ = true;
          break;
        case Z_BUF_ERROR:
          // No progress possible: out of input before the member's end (output room remains).
          if (zs_->avail_in == 0)
            fail<FormatError>(
                "{}: truncated gzip stream: the compressed data ends at offset {} before the end "
                "of the gzip member ({} bytes inflated so far)",
                name_, size_, zs_->total_out);
          fail<FormatError>("{}: gzip inflation stalled at compressed offset {}", name_,
                            compressed_offset());
        case Z_MEM_ERROR:
          throw std::bad_alloc();
        default:  // Z_DATA_ERROR (corrupt data, bad CRC or length), Z_NEED_DICT, Z_STREAM_ERROR
          fail<FormatError>("{}: corrupt gzip data near compressed offset {}: {}", name_,
                            compressed_offset(), zs_->msg != nullptr ? zs_->msg : "zlib error");
      }
    }
    return done;
  }

  const uint8_t* bytes_;
  size_t size_;
  const std::string& name_;
  bool gzip_ = false;
  size_t pos_ = 0;
  std::unique_ptr<z_stream> zs_;
  bool member_ended_ = false;
};

}  // namespace

IdxArray parse_idx(const uint8_t* bytes, size_t size, const std::string& name) {
  if (bytes == nullptr && size > 0)
    fail<InvalidArgument>("{}: bytes is null but size is {}", name, size);
  static const uint8_t kEmpty = 0;
  ByteStream in(bytes != nullptr ? bytes : &kEmpty, size, name);
  const char* where = in.gzip() ? " of the decompressed data" : "";

  uint8_t head[4];
  const size_t got = in.read(head, 4);
  if (got == 0) fail<FormatError>("{}: file is empty, expected an IDX header", name);
  if (got < 4)
    fail<FormatError>("{}: IDX header truncated at offset {}{}: it needs at least 4 bytes", name,
                      got, where);
  if (head[0] != 0 || head[1] != 0)
    fail<FormatError>(
        "{}: bad magic at offset 0{}: bytes 0x{:02x} 0x{:02x}, an IDX file starts with 0x00 0x00",
        name, where, head[0], head[1]);
  if (head[2] != kIdxTypeU8) {
    const char* type = type_name(head[2]);
    if (type == nullptr)
      fail<FormatError>("{}: unknown IDX type code 0x{:02x} at offset 2{}", name, head[2], where);
    fail<FormatError>(
        "{}: IDX type code 0x{:02x} ({}) at offset 2{} is not supported: only 0x08 (unsigned byte)",
        name, head[2], type, where);
  }
  const int ndims = head[3];
  if (ndims == 0)
    fail<FormatError>("{}: number of dimensions is 0 at offset 3{}: must be >= 1", name, where);

  std::vector<uint8_t> dims_be(static_cast<size_t>(ndims) * 4);
  const size_t got_dims = in.read(dims_be.data(), dims_be.size());
  if (got_dims < dims_be.size())
    fail<FormatError>(
        "{}: IDX header truncated at offset {}{}: {} dimensions need the header to end at offset "
        "{}",
        name, 4 + got_dims, where, ndims, 4 + dims_be.size());

  IdxArray out;
  out.shape.resize(static_cast<size_t>(ndims));
  int64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    const size_t off = static_cast<size_t>(d) * 4;
    const uint32_t extent = load_be32(dims_be.data() + off);
    if (extent == 0)
      fail<FormatError>("{}: dimension {} is 0 at offset {}{}: every extent must be >= 1", name, d,
                        4 + off, where);
    out.shape[static_cast<size_t>(d)] = static_cast<int64_t>(extent);
    if (count > kIdxMaxElements / static_cast<int64_t>(extent))
      fail<FormatError>(
          "{}: dimension {} = {} at offset {}{} makes more than {} elements: not a plausible file",
          name, d, extent, 4 + off, where, kIdxMaxElements);
    count *= static_cast<int64_t>(extent);
  }

  const size_t data_offset = 4 + dims_be.size();
  const size_t expected = static_cast<size_t>(count);
  if (!in.gzip() && size - data_offset < expected)
    fail<FormatError>(
        "{}: IDX data truncated: the file ends at offset {} but shape {} needs {} data bytes from "
        "offset {} to {}",
        name, size, tinyquant::to_string(out.shape), expected, data_offset, data_offset + expected);
  // Raw data is known to be all there (checked above). Compressed data is inflated in chunks so a
  // few bytes of hostile gzip that declare a huge shape cannot make the reader allocate it all.
  size_t got_data = 0;
  if (!in.gzip()) {
    out.data.resize(expected);
    got_data = in.read(out.data.data(), expected);
  } else {
    constexpr size_t kChunk = size_t{1} << 24;
    while (got_data < expected) {
      const size_t want = expected - got_data < kChunk ? expected - got_data : kChunk;
      out.data.resize(got_data + want);
      const size_t chunk_got = in.read(out.data.data() + got_data, want);
      got_data += chunk_got;
      if (chunk_got < want) break;
    }
  }
  if (got_data < expected)
    fail<FormatError>(
        "{}: IDX data truncated: the data ends at offset {}{} but shape {} needs {} data bytes "
        "from offset {} to {}",
        name, data_offset + got_data, where, tinyquant::to_string(out.shape), expected, data_offset,
        data_offset + expected);
  uint8_t extra = 0;
  if (in.read(&extra, 1) != 0) {
    const size_t end = data_offset + expected;
    if (in.gzip())
      fail<FormatError>("{}: unexpected bytes after the IDX data at offset {}{} (shape {})", name,
                        end, where, tinyquant::to_string(out.shape));
    fail<FormatError>("{}: {} unexpected bytes after the IDX data at offset {} (shape {})", name,
                      size - end, end, tinyquant::to_string(out.shape));
  }
  return out;
}

IdxArray read_idx(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_idx(bytes.data(), bytes.size(), path);
}

}  // namespace tinyquant::io
