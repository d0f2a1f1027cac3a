// IDX reader: tiny files built byte by byte here (gzipped with zlib directly), every rejection
// checked for its exception type and the words of its message.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "../expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/idx.hpp"

using namespace tinyquant;
using namespace tq_test;
using Bytes = std::vector<uint8_t>;

namespace {

// An IDX header for `type` and `dims`, then `data` as is.
Bytes make_idx(const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes b{0x00, 0x00, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    b.push_back(static_cast<uint8_t>(d >> 24));
    b.push_back(static_cast<uint8_t>(d >> 16));
    b.push_back(static_cast<uint8_t>(d >> 8));
    b.push_back(static_cast<uint8_t>(d));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes gzip(const Bytes& raw) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(raw.size())) + 32);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Bytes iota_bytes(size_t n, uint8_t mul = 7) {
  Bytes v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * mul + 3);
  return v;
}

std::string write_temp(const std::string& name, const Bytes& bytes) {
  const std::string path =
      ::testing::TempDir() + "tinyquant_test_idx_" + std::to_string(::getpid()) + "_" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr) << path;
  if (f != nullptr) {
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  return path;
}

void expect_format_error(const Bytes& bytes, std::initializer_list<std::string> words) {
  expect_error<FormatError>([&] { io::parse_idx(bytes.data(), bytes.size(), "mem.idx"); }, words);
}

}  // namespace

TEST(Idx, ReadsRawThreeDimensional) {
  const Bytes data = iota_bytes(2 * 3 * 4);
  const std::string path = write_temp("raw3", make_idx({2, 3, 4}, data));
  const io::IdxArray a = io::read_idx(path);
  EXPECT_EQ(a.shape, (Shape{2, 3, 4}));
  EXPECT_EQ(a.data, data);
  std::remove(path.c_str());
}

TEST(Idx, ReadsLabelsAndBigEndianExtents) {
  // 300 = 0x0000012C: checks the byte order of the extent, not just its low byte.
  const Bytes data = iota_bytes(300, 1);
  const Bytes file = make_idx({300}, data);
  EXPECT_EQ(file[4], 0x00);
  EXPECT_EQ(file[6], 0x01);
  EXPECT_EQ(file[7], 0x2C);
  const io::IdxArray a = io::parse_idx(file.data(), file.size(), "labels");
  EXPECT_EQ(a.shape, (Shape{300}));
  EXPECT_EQ(a.data, data);
  // All four bytes: 0x01020304 = 16909060, reported in the shape of the (truncated) file.
  expect_format_error(make_idx({0x01020304}, {1, 2, 3}), {"data truncated", "[16909060]"});
}

TEST(Idx, ReadsGzipWhateverTheName) {
  const Bytes data = iota_bytes(5 * 28 * 28, 13);
  const Bytes raw = make_idx({5, 28, 28}, data);
  const Bytes gz = gzip(raw);
  ASSERT_EQ(gz[0], 0x1F);
  ASSERT_EQ(gz[1], 0x8B);
  const std::string with_ext = write_temp("img.gz", gz);
  const std::string without_ext = write_temp("img_nogzext", gz);
  for (const std::string& p : {with_ext, without_ext}) {
    const io::IdxArray a = io::read_idx(p);
    EXPECT_EQ(a.shape, (Shape{5, 28, 28}));
    EXPECT_EQ(a.data, data);
    std::remove(p.c_str());
  }
}

TEST(Idx, ReadsConcatenatedGzipMembers) {
  const Bytes data = iota_bytes(40);
  const Bytes raw = make_idx({4, 10}, data);
  const Bytes head(raw.begin(), raw.begin() + 13);  // split inside the header
  const Bytes tail(raw.begin() + 13, raw.end());
  Bytes gz = gzip(head);
  const Bytes gz2 = gzip(tail);
  gz.insert(gz.end(), gz2.begin(), gz2.end());
  const io::IdxArray a = io::parse_idx(gz.data(), gz.size(), "two.gz");
  EXPECT_EQ(a.shape, (Shape{4, 10}));
  EXPECT_EQ(a.data, data);
}

TEST(Idx, MissingFileIsIoError) {
  const std::string path = ::testing::TempDir() + "tinyquant_no_such_dir/none-idx1-ubyte.gz";
  expect_error<IoError>([&] { io::read_idx(path); }, {path, "cannot open"});
}

TEST(Idx, DirectoryIsIoError) {
  const std::string dir = ::testing::TempDir();
  expect_error<IoError>([&] { io::read_idx(dir); }, {dir});
}

TEST(Idx, EmptyAndShortHeader) {
  expect_format_error({}, {"mem.idx", "empty"});
  // A gzip stream that inflates to nothing is an empty file too.
  expect_format_error(gzip({}), {"mem.idx", "empty"});
  expect_format_error({0x00, 0x00, 0x08}, {"mem.idx", "header truncated", "offset 3"});
  const std::string path = write_temp("empty", {});
  expect_error<FormatError>([&] { io::read_idx(path); }, {path, "empty"});
  std::remove(path.c_str());
}

TEST(Idx, BadMagic) {
  Bytes b = make_idx({2}, {1, 2});
  b[1] = 0x01;
  expect_format_error(b, {"mem.idx", "bad magic", "offset 0", "0x00 0x01"});
  // A PNG, say: first byte non-zero.
  expect_format_error({0x89, 'P', 'N', 'G', 0, 0, 0, 0}, {"bad magic", "0x89 0x50"});
  // Only 0x1F 0x8B marks gzip (RFC 1952): a lone 0x1F is a raw file with a bad magic.
  expect_format_error({0x1F, 0x00, 0x08, 0x01, 0, 0, 0, 1, 7}, {"bad magic", "0x1f 0x00"});
}

TEST(Idx, UnsupportedAndUnknownTypeCodes) {
  expect_format_error(make_idx({1}, {0, 0, 0, 0}, 0x0D),
                      {"mem.idx", "type code 0x0d", "float32", "offset 2", "not supported"});
  expect_format_error(make_idx({1}, {0}, 0x09), {"type code 0x09", "signed byte"});
  expect_format_error(make_idx({1}, {0}, 0x42), {"unknown", "type code 0x42", "offset 2"});
}

TEST(Idx, ZeroDimensionsAndZeroExtent) {
  expect_format_error({0x00, 0x00, 0x08, 0x00, 1, 2}, {"number of dimensions is 0", "offset 3"});
  // Second extent (offset 8) is zero.
  expect_format_error(make_idx({3, 0, 2}, {}), {"dimension 1 is 0", "offset 8"});
  // The first extent (offset 4) too, even with no data to follow.
  expect_format_error(make_idx({0}, {}), {"dimension 0 is 0", "offset 4"});
  expect_format_error(make_idx({0, 5}, {}), {"dimension 0 is 0", "offset 4"});
}

TEST(Idx, TruncatedDimensions) {
  Bytes b = make_idx({7, 7, 7}, {});
  b.resize(4 + 4 + 2);  // one full extent and half of the next
  expect_format_error(b, {"header truncated", "offset 10", "3 dimensions", "offset 16"});
}

TEST(Idx, ImplausiblyLargeShape) {
  // 65536 * 65536 * 2 = 2^33 elements > the 2^32 limit; no data follows and none is allocated.
  expect_format_error(make_idx({65536, 65536, 2}, {}),
                      {"dimension 2 = 2", "offset 12", "4294967296"});
  // 65536 * 65536 = 2^32 exactly is allowed by the header check and then fails as truncated.
  expect_format_error(make_idx({65536, 65536}, {1, 2, 3}),
                      {"data truncated", "[65536, 65536]", "4294967296"});
  // The same header gzipped: a 40-byte file must not make the reader allocate 4 GiB up front
  // (found by fuzzing); it inflates in chunks and stops at the real end of the data.
  expect_format_error(gzip(make_idx({65536, 65536}, {1, 2, 3})),
                      {"data truncated", "offset 15 of the decompressed data", "[65536, 65536]"});
}

TEST(Idx, TruncatedData) {
  const Bytes data = iota_bytes(12);
  Bytes b = make_idx({3, 4}, data);
  b.pop_back();  // 11 of 12 data bytes: the file ends at offset 12 + 11 = 23
  expect_format_error(b, {"mem.idx", "data truncated", "offset 23", "[3, 4]", "12 data bytes"});
  const Bytes gz = gzip(b);
  expect_format_error(gz, {"data truncated", "offset 23 of the decompressed data", "[3, 4]"});
}

TEST(Idx, TrailingBytes) {
  Bytes b = make_idx({2, 2}, {1, 2, 3, 4});
  b.push_back(9);
  b.push_back(9);
  expect_format_error(b, {"2 unexpected bytes", "offset 16", "[2, 2]"});
  expect_format_error(gzip(b), {"unexpected bytes", "offset 16 of the decompressed data"});
}

TEST(Idx, TruncatedGzip) {
  const Bytes gz = gzip(make_idx({10, 10}, iota_bytes(100)));
  // Cut into the 8-byte CRC/length trailer: every IDX byte may be inflated, the stream is not done.
  for (size_t cut : {size_t{3}, size_t{8}, gz.size() / 2}) {
    const Bytes part(gz.begin(), gz.end() - static_cast<std::ptrdiff_t>(cut));
    const std::string path = write_temp("cut.gz", part);
    expect_error<FormatError>([&] { io::read_idx(path); },
                              {path, "truncated gzip", "offset " + std::to_string(part.size())});
    std::remove(path.c_str());
  }
}

TEST(Idx, CorruptGzip) {
  Bytes gz = gzip(make_idx({10, 10}, iota_bytes(100)));
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x5A;  // inside the CRC-32 of the trailer
  expect_format_error(bad_crc, {"corrupt gzip", "compressed offset", "incorrect data check"});
  Bytes bad_len = gz;
  bad_len[bad_len.size() - 2] ^= 0x01;  // inside ISIZE, the uncompressed length
  expect_format_error(bad_len, {"corrupt gzip", "incorrect length check"});
  Bytes bad_method = gz;
  bad_method[2] = 0x07;  // compression method must be 8 (deflate)
  expect_format_error(bad_method, {"corrupt gzip", "compressed offset"});
}

TEST(Idx, GarbageAfterGzipStream) {
  Bytes gz = gzip(make_idx({2}, {5, 6}));
  gz.push_back(0x00);
  gz.push_back(0x11);
  gz.push_back(0x22);
  expect_format_error(gz, {"3 bytes of garbage", "gzip stream",
                           "compressed offset " + std::to_string(gz.size() - 3)});
  // A 0x1F alone does not start another member (RFC 1952: ID1 0x1F, ID2 0x8B).
  Bytes gz1 = gzip(make_idx({2}, {5, 6}));
  const size_t end = gz1.size();
  gz1.insert(gz1.end(), {0x1F, 0x00, 0x08});
  expect_format_error(gz1, {"3 bytes of garbage", "compressed offset " + std::to_string(end)});
}

TEST(Idx, NullBytes) {
  expect_error<InvalidArgument>([] { io::parse_idx(nullptr, 4, "x"); }, {"null", "4"});
  expect_error<InvalidArgument>([] { io::parse_idx(nullptr, 1, "x"); }, {"null", "size is 1"});
  expect_error<FormatError>([] { io::parse_idx(nullptr, 0, "x"); }, {"empty"});
}

// The other IDX type codes of the format (0x0B int16, 0x0C int32, 0x0E float64) are named in the
// refusal, raw or gzipped.
TEST(Idx, EveryKnownTypeCodeIsNamed) {
  expect_format_error(make_idx({1}, {0, 0}, 0x0B),
                      {"mem.idx", "type code 0x0b (int16) at offset 2 is not supported"});
  expect_format_error(make_idx({1}, {0, 0, 0, 0}, 0x0C), {"type code 0x0c (int32) at offset 2"});
  expect_format_error(make_idx({1}, Bytes(8, 0), 0x0E),
                      {"mem.idx", "type code 0x0e (float64) at offset 2 is not supported"});
  expect_format_error(gzip(make_idx({1}, Bytes(8, 0), 0x0E)),
                      {"type code 0x0e (float64) at offset 2 of the decompressed data"});
}
