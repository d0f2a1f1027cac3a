// .npy reader and writer: exact bytes NumPy writes (built here from the format description),
// hand-built files for every version, order and byte order, and one test per kind of corruption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/float16.hpp"
#include "tinyquant/io/npy.hpp"

using namespace tinyquant;
using namespace tq_test;
using namespace tinyquant::io;

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

template <class T>
std::vector<uint8_t> le_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// A .npy file written out from the format description: magic, version, header length (2 bytes
// for 1.0, 4 for 2.0/3.0, little-endian), the dict padded with spaces to a 16-byte boundary and
// a newline (as NumPy < 1.24 did), then data.
std::vector<uint8_t> npy_file(int major, const std::string& dict,
                              const std::vector<uint8_t>& data) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 16 != 0) header += ' ';
  header += '\n';
  std::vector<uint8_t> f = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < prefix - 8; ++i)
    f.push_back(static_cast<uint8_t>(header.size() >> (8 * i)));
  f.insert(f.end(), header.begin(), header.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

std::string dict(const std::string& descr, bool fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

void expect_format_error(const std::vector<uint8_t>& file,
                         std::initializer_list<const char*> words) {
  expect_error<FormatError>([&] { read_npy(file); }, words);
}

}  // namespace

// np.save of np.arange(1, 7, dtype='<f4').reshape(2, 3) with NumPy >= 1.24: the 59-byte dict,
// 21 - len("2") = 20 growth spaces, then 38 pad spaces and '\n' so 10 + 118 = 128 = 2 x 64.
TEST(NpyWrite, ExactNumpyBytesFloat32) {
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
                         std::string(20 + 38, ' ') + "\n";
  ASSERT_EQ(expected.size(), 128u);
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> want = bytes_of(expected);
  // 1.0f = 0x3F800000, 2.0f = 0x40000000, 3.0f = 0x40400000, 4.0f = 0x40800000,
  // 5.0f = 0x40A00000, 6.0f = 0x40C00000, little-endian.
  for (uint32_t bits :
       {0x3F800000u, 0x40000000u, 0x40400000u, 0x40800000u, 0x40A00000u, 0x40C00000u})
    for (int b = 0; b < 4; ++b) want.push_back(static_cast<uint8_t>(bits >> (8 * b)));
  EXPECT_EQ(write_npy(NpyArray::from(v, {2, 3})), want);
  const NpyArray back = read_npy(want);
  EXPECT_EQ(back.dtype, DType::kFloat32);
  EXPECT_EQ(back.shape, (Shape{2, 3}));
  EXPECT_EQ(back.as<float>(), v);
}

// np.save(np.asfortranarray(a)) for an int8 a of shape (3, 2): growth room follows the last axis,
// the data is column-major, and '|i1' marks the byte order as irrelevant.
TEST(NpyWrite, ExactNumpyBytesFortranInt8) {
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                         "{'descr': '|i1', 'fortran_order': True, 'shape': (3, 2), }" +
                         std::string(20 + 39, ' ') + "\n";
  ASSERT_EQ(expected.size(), 128u);
  // a = [[1, -2], [3, -4], [5, -6]] stored column by column.
  const std::vector<int8_t> column_major = {1, 3, 5, -2, -4, -6};
  std::vector<uint8_t> want = bytes_of(expected);
  for (int8_t x : column_major) want.push_back(static_cast<uint8_t>(x));
  EXPECT_EQ(write_npy(NpyArray::from(column_major, {3, 2}, true)), want);
  const NpyArray back = read_npy(want);
  EXPECT_FALSE(back.fortran_order);
  EXPECT_EQ(back.as<int8_t>(), (std::vector<int8_t>{1, -2, 3, -4, 5, -6}));
}

// A 0-d float64: shape () gets no growth room; 55 + 62 + 1 = 118.
TEST(NpyWrite, ExactNumpyBytesScalar) {
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                         "{'descr': '<f8', 'fortran_order': False, 'shape': (), }" +
                         std::string(62, ' ') + "\n";
  std::vector<uint8_t> want = bytes_of(expected);
  const uint64_t bits = 0xC004000000000000ull;  // -2.5
  for (int b = 0; b < 8; ++b) want.push_back(static_cast<uint8_t>(bits >> (8 * b)));
  EXPECT_EQ(write_npy(NpyArray::from(std::vector<double>{-2.5}, {})), want);
  EXPECT_EQ(read_npy(want).as<double>(), std::vector<double>{-2.5});
}

// When the dict, its growth room and the newline end exactly on a 64-byte boundary, NumPy still
// pads: 64 - (10 + 118) % 64 = 64 spaces. The 97-byte dict plus 21 - len("0") = 20 growth
// spaces plus '\n' is that case; a header length of 118 + 64 = 182 (0xb6) bytes.
TEST(NpyWrite, HeaderEndingOnA64ByteBoundaryGetsAFullPad) {
  const Shape shape{0, 1, 1, 1, 1, 1, 1, 1, 1, 100000000000000};
  const std::string d =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1, 1, 1, 1, 1, 1, 1, 1, "
      "100000000000000), }";
  ASSERT_EQ(d.size(), 97u);
  const std::string expected =
      std::string("\x93NUMPY\x01\x00\xb6\x00", 10) + d + std::string(20 + 64, ' ') + "\n";
  ASSERT_EQ(expected.size(), 192u);
  NpyArray a;
  a.dtype = DType::kFloat32;
  a.shape = shape;
  EXPECT_EQ(write_npy(a), bytes_of(expected));
  EXPECT_EQ(read_npy(bytes_of(expected)).shape, shape);
}

TEST(NpyWrite, OneDimensionalShapeIsAOneTuple) {
  const std::vector<uint8_t> f = write_npy(NpyArray::from(std::vector<int16_t>{7, -8, 9}, {3}));
  const std::string text(f.begin() + 10, f.begin() + 10 + 60);
  EXPECT_NE(text.find("'shape': (3,), }"), std::string::npos) << text;
  EXPECT_EQ((f.size() - 6) % 64, 0u);
}

// NumPy before 1.24 wrote no growth room and aligned to 16 bytes; such files must still load.
TEST(NpyRead, OldNumpyAlignment) {
  const std::vector<uint8_t> f =
      npy_file(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }",
               {0x07, 0x00, 0xF8, 0xFF, 0x00, 0x80});
  const NpyArray a = read_npy(f);
  EXPECT_EQ(a.dtype, DType::kInt16);
  EXPECT_EQ(a.as<int16_t>(), (std::vector<int16_t>{7, -8, -32768}));
}

TEST(NpyRead, AllVersionsDtypesAndOrders) {
  // A 2x3x2 array holding 0..11 in C order; element (i, j, k) is 6i + 2j + k.
  const Shape shape = {2, 3, 2};
  struct Case {
    const char* descr;
    DType dtype;
  };
  for (const Case c :
       {Case{"<f4", DType::kFloat32}, Case{"<f8", DType::kFloat64}, Case{"|i1", DType::kInt8},
        Case{"|u1", DType::kUInt8}, Case{"<i2", DType::kInt16}, Case{"<i4", DType::kInt32},
        Case{"<i8", DType::kInt64}}) {
    for (int major : {1, 2, 3}) {
      for (bool fortran : {false, true}) {
        // The storage order written by hand: Fortran puts i fastest, then j, then k.
        std::vector<double> stored;
        if (fortran) {
          for (int k = 0; k < 2; ++k)
            for (int j = 0; j < 3; ++j)
              for (int i = 0; i < 2; ++i) stored.push_back(6 * i + 2 * j + k);
        } else {
          for (int x = 0; x < 12; ++x) stored.push_back(x);
        }
        std::vector<uint8_t> data;
        for (double x : stored) {
          switch (c.dtype) {
            case DType::kFloat32: {
              auto b = le_bytes(std::vector<float>{static_cast<float>(x)});
              data.insert(data.end(), b.begin(), b.end());
              break;
            }
            case DType::kFloat64: {
              auto b = le_bytes(std::vector<double>{x});
              data.insert(data.end(), b.begin(), b.end());
              break;
            }
            case DType::kInt8:
            case DType::kUInt8:
              data.push_back(static_cast<uint8_t>(x));
              break;
            case DType::kInt16: {
              auto b = le_bytes(std::vector<int16_t>{static_cast<int16_t>(x)});
              data.insert(data.end(), b.begin(), b.end());
              break;
            }
            case DType::kInt32: {
              auto b = le_bytes(std::vector<int32_t>{static_cast<int32_t>(x)});
              data.insert(data.end(), b.begin(), b.end());
              break;
            }
            default: {
              auto b = le_bytes(std::vector<int64_t>{static_cast<int64_t>(x)});
              data.insert(data.end(), b.begin(), b.end());
              break;
            }
          }
        }
        const auto f = npy_file(major, dict(c.descr, fortran, "(2, 3, 2)"), data);
        const NpyArray a = read_npy(f);
        SCOPED_TRACE(std::string(c.descr) + " v" + std::to_string(major) + (fortran ? " F" : " C"));
        EXPECT_EQ(a.dtype, c.dtype);
        EXPECT_EQ(a.shape, shape);
        EXPECT_FALSE(a.fortran_order);
        const std::vector<double> got = a.as<double>();
        for (int x = 0; x < 12; ++x) EXPECT_EQ(got[static_cast<size_t>(x)], x);
        // Write what was read, read it again: same dtype, shape and bytes.
        const NpyArray again = read_npy(write_npy(a));
        EXPECT_EQ(again.dtype, a.dtype);
        EXPECT_EQ(again.shape, a.shape);
        EXPECT_EQ(again.data, a.data);
      }
    }
  }
}

// Fortran round trip through the writer on a rank-4 array with uneven extents, checked against
// the column-major index formula.
TEST(NpyRoundTrip, FortranRank4) {
  const Shape s = {2, 3, 4, 5};
  std::vector<int32_t> col(120);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        for (int d = 0; d < 5; ++d)
          col[static_cast<size_t>(a + 2 * (b + 3 * (c + 4 * d)))] = 1000 * a + 100 * b + 10 * c + d;
  const NpyArray back = read_npy(write_npy(NpyArray::from(col, s, true)));
  const std::vector<int32_t> got = back.as<int32_t>();
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        for (int d = 0; d < 5; ++d)
          EXPECT_EQ(got[static_cast<size_t>(((a * 3 + b) * 4 + c) * 5 + d)],
                    1000 * a + 100 * b + 10 * c + d);
}

TEST(NpyRoundTrip, EveryWritableDtypeAndEmptyShapes) {
  EXPECT_EQ(read_npy(write_npy(NpyArray::from(std::vector<uint8_t>{0, 255, 7}, {3}))).as<uint8_t>(),
            (std::vector<uint8_t>{0, 255, 7}));
  EXPECT_EQ(
      read_npy(write_npy(NpyArray::from(std::vector<int64_t>{-(int64_t{1} << 62), 5}, {2, 1})))
          .as<int64_t>(),
      (std::vector<int64_t>{-(int64_t{1} << 62), 5}));
  const std::vector<float> specials = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                                       std::numeric_limits<float>::denorm_min()};
  const NpyArray f = read_npy(write_npy(NpyArray::from(specials, {4})));
  EXPECT_EQ(f.data, le_bytes(specials));  // bit-exact, including -0
  for (const Shape& s : {Shape{0}, Shape{3, 0}, Shape{0, 5, 0}}) {
    const NpyArray e = read_npy(write_npy(NpyArray::from(std::vector<float>{}, s, true)));
    EXPECT_EQ(e.shape, s);
    EXPECT_TRUE(e.data.empty());
  }
}

TEST(NpyRead, BigEndianIsByteSwapped) {
  // >i4: 0x01020304 and -2 (FF FF FF FE) stored most significant byte first.
  const NpyArray a =
      read_npy(npy_file(1, dict(">i4", false, "(2,)"), {1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFE}));
  EXPECT_EQ(a.as<int32_t>(), (std::vector<int32_t>{0x01020304, -2}));
  // >f8 1.5 = 0x3FF8000000000000.
  const NpyArray d =
      read_npy(npy_file(1, dict(">f8", false, "(1,)"), {0x3F, 0xF8, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(d.as<double>(), std::vector<double>{1.5});
  // >i1 and >u1 have nothing to swap.
  EXPECT_EQ(read_npy(npy_file(1, dict(">u1", false, "(1,)"), {200})).as<uint8_t>(),
            std::vector<uint8_t>{200});
  // Big-endian and Fortran together: (2, 2) >i2 [[1, 2], [3, 4]] column-major.
  const NpyArray m = read_npy(npy_file(2, dict(">i2", true, "(2, 2)"), {0, 1, 0, 3, 0, 2, 0, 4}));
  EXPECT_EQ(m.as<int16_t>(), (std::vector<int16_t>{1, 2, 3, 4}));
}

// Half values by hand: 1.0 = 0x3C00, -2 = 0xC000, 65504 = 0x7BFF (largest finite),
// 2^-14 = 0x0400 (smallest normal), 2^-24 = 0x0001 (smallest subnormal),
// 1023 * 2^-24 = 0x03FF (largest subnormal), -0 = 0x8000, inf = 0x7C00, NaN = 0x7E00.
TEST(NpyRead, Float16WidensExactly) {
  const std::vector<uint16_t> bits = {0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001,
                                      0x03FF, 0x8000, 0x7C00, 0xFC00, 0x7E00};
  const NpyArray a = read_npy(npy_file(1, dict("<f2", false, "(10,)"), le_bytes(bits)));
  EXPECT_EQ(a.dtype, DType::kFloat16);
  const std::vector<float> f = a.as<float>();
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], 65504.0f);
  EXPECT_EQ(f[3], std::ldexp(1.0f, -14));
  EXPECT_EQ(f[4], std::ldexp(1.0f, -24));
  EXPECT_EQ(f[5], 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(f[6], 0.0f);
  EXPECT_TRUE(std::signbit(f[6]));
  EXPECT_EQ(f[7], std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[8], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f[9]));
  // Writing float16 keeps the bits.
  EXPECT_EQ(read_npy(write_npy(a)).data, a.data);
}

// Every one of the 2^16 half patterns against the value formula (-1)^s * 2^(e-15) * (1 + m/1024),
// or m * 2^-24 for e = 0.
TEST(Float16, AllPatternsMatchFormula) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const int s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    const float got = half_to_float(static_cast<uint16_t>(h));
    if (e == 31) {
      if (m == 0) {
        EXPECT_TRUE(std::isinf(got) && std::signbit(got) == (s == 1)) << h;
      } else {
        EXPECT_TRUE(std::isnan(got)) << h;
      }
      continue;
    }
    const double mag = e == 0 ? m * std::ldexp(1.0, -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
    EXPECT_EQ(static_cast<double>(got), s ? -mag : mag) << h;
    EXPECT_EQ(std::signbit(got), s == 1) << h;
  }
}

TEST(Float16, BFloat16IsTheTopHalf) {
  EXPECT_EQ(bfloat16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bfloat16_to_float(0xC040), -3.0f);
  EXPECT_EQ(bfloat16_to_float(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
  EXPECT_EQ(bfloat16_to_float(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bfloat16_to_float(0x7FC1)));
}

// An array built by hand whose byte count overflows int64 must not pass as matching its data:
// 2^62 float32 elements need 2^64 bytes, which wraps to 0 = the size of an empty buffer.
TEST(NpyArray, ByteCountOverflowIsNotAMatch) {
  NpyArray a;
  a.dtype = DType::kFloat32;
  a.shape = {int64_t{1} << 62};
  expect_error<ShapeError>([&] { (void)a.as<float>(); },
                           {"data holds 0 bytes but shape [4611686018427387904] of float32 needs "
                            "4611686018427387904 x 4 bytes"});
}

TEST(NpyArray, ConversionRules) {
  const NpyArray i8 = NpyArray::from(std::vector<int8_t>{-128, 127}, {2});
  EXPECT_EQ(i8.as<int32_t>(), (std::vector<int32_t>{-128, 127}));
  EXPECT_EQ(i8.as<float>(), (std::vector<float>{-128.0f, 127.0f}));
  const NpyArray u8 = NpyArray::from(std::vector<uint8_t>{255}, {1});
  EXPECT_EQ(u8.as<int16_t>(), std::vector<int16_t>{255});
  expect_error<InvalidArgument>([&] { u8.as<int8_t>(); },
                                {"cannot convert uint8 to int8", "without loss"});
  expect_error<InvalidArgument>([&] { i8.as<uint8_t>(); }, {"cannot convert int8 to uint8"});
  const NpyArray i32 = NpyArray::from(std::vector<int32_t>{1 << 24 | 1}, {1});
  expect_error<InvalidArgument>([&] { i32.as<int16_t>(); }, {"cannot convert int32 to int16"});
  EXPECT_EQ(i32.as<float>(), std::vector<float>{16777216.0f});  // rounds to nearest, documented
  const NpyArray f = NpyArray::from(std::vector<float>{1.5f}, {1});
  expect_error<InvalidArgument>([&] { f.as<int32_t>(); }, {"cannot convert float32 to int32"});
  EXPECT_EQ(NpyArray::from(std::vector<double>{0.1}, {1}).as<float>(), std::vector<float>{0.1f});
  NpyArray bad = f;
  bad.shape = {2};
  expect_error<ShapeError>([&] { bad.as<float>(); }, {"data holds 4 bytes", "[2]"});
}

TEST(NpyWrite, RejectsWhatNumpyCannotHold) {
  NpyArray bf;
  bf.dtype = DType::kBFloat16;
  bf.shape = {1};
  bf.data = {0, 0};
  expect_error<InvalidArgument>([&] { write_npy(bf); }, {"bfloat16", "no .npy descriptor"});
  NpyArray mismatch = NpyArray::from(std::vector<float>{1, 2, 3}, {3});
  mismatch.shape = {2, 2};
  expect_error<ShapeError>([&] { write_npy(mismatch); }, {"data holds 12 bytes", "[2, 2]"});
  NpyArray deep;
  deep.dtype = DType::kUInt8;
  deep.shape = Shape(65, 1);
  deep.data = {1};
  expect_error<InvalidArgument>([&] { write_npy(deep); }, {"rank 65"});
}

TEST(NpyFile, RoundTripAndOsErrors) {
  const std::string path =
      ::testing::TempDir() + "tinyquant_test_npy_" + std::to_string(::getpid()) + ".npy";
  const NpyArray a = NpyArray::from(std::vector<float>{0.25f, -1.0f}, {1, 2});
  save_npy(path, a);
  EXPECT_EQ(load_npy(path).as<float>(), (std::vector<float>{0.25f, -1.0f}));
  std::remove(path.c_str());
  expect_error<IoError>([] { load_npy("/nonexistent-dir/x.npy"); },
                        {"/nonexistent-dir/x.npy", "No such file or directory"});
  expect_error<IoError>([&] { save_npy("/nonexistent-dir/y.npy", a); },
                        {"/nonexistent-dir/y.npy", "for writing", "No such file"});
  // A corrupt file names its path.
  const std::string bad =
      ::testing::TempDir() + "tinyquant_test_bad_" + std::to_string(::getpid()) + ".npy";
  write_file_bytes(bad, bytes_of("not numpy"));
  expect_error<FormatError>([&] { load_npy(bad); }, {bad.c_str(), "bad magic"});
  std::remove(bad.c_str());
}

// ---------------------------------------------------------------------------------------------
// Corruptions

const std::vector<uint8_t> kSixFloats = le_bytes(std::vector<float>{1, 2, 3, 4, 5, 6});

TEST(NpyCorrupt, BadMagic) {
  expect_format_error({}, {"bad magic at offset 0", "found 0 bytes"});
  expect_format_error(bytes_of("\x93NUMP"), {"bad magic"});
  auto f = npy_file(1, dict("<f4", false, "(2, 3)"), kSixFloats);
  f[1] = 'n';
  expect_format_error(f, {"bad magic", "found 6 bytes '936e554d5059'"});
}

TEST(NpyCorrupt, BadVersion) {
  for (auto [major, minor] : {std::pair<int, int>{0, 0}, {4, 0}, {1, 1}, {2, 5}}) {
    auto f = npy_file(1, dict("<f4", false, "(2, 3)"), kSixFloats);
    f[6] = static_cast<uint8_t>(major);
    f[7] = static_cast<uint8_t>(minor);
    const std::string v = std::to_string(major) + "." + std::to_string(minor);
    expect_format_error(f, {"unsupported format version", v.c_str(), "offset 6"});
  }
  expect_format_error(bytes_of(std::string("\x93NUMPY\x01", 7)),
                      {"truncated at offset 6", "version"});
  expect_format_error(bytes_of(std::string("\x93NUMPY\x02\x00\x10\x00", 10)),
                      {"truncated at offset 8", "4-byte header length", "found 2 bytes"});
}

TEST(NpyCorrupt, HeaderLengthBeyondFile) {
  auto f = npy_file(1, dict("<f4", false, "(2, 3)"), {});
  f[8] = 0xFF;
  f[9] = 0xFF;
  expect_format_error(f, {"header length 65535", "runs past the end"});
  auto g = npy_file(2, dict("<f4", false, "(2, 3)"), {});
  g[11] = 0x80;  // 2^31 + ...
  expect_format_error(g, {"runs past the end"});
}

TEST(NpyCorrupt, MissingExtraDuplicateKeys) {
  expect_format_error(npy_file(1, "{'descr': '<f4', 'fortran_order': False, }", {}),
                      {"missing key 'shape'"});
  expect_format_error(npy_file(1, "{'shape': (1,), 'fortran_order': False}", {0, 0, 0, 0}),
                      {"missing key 'descr'"});
  expect_format_error(
      npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1, }",
               {0, 0, 0, 0}),
      {"unexpected key 'extra'", "offset 66"});
  expect_format_error(
      npy_file(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
               {0, 0, 0, 0}),
      {"duplicate key 'descr'"});
  expect_format_error(npy_file(1, "{}", {}), {"missing key 'descr' (the dict ends at offset 11)"});
  // The header is ASCII: a byte beyond it (latin-1 0xE9 here) is refused where it stands, so no
  // message quotes a key or descr that is not valid UTF-8.
  expect_format_error(npy_file(1, "{'\xe9': 1}", {}),
                      {"expected a printable ASCII character inside a string at offset 12, found "
                       "byte 0xe9"});
  // Double quotes are legal Python; keys written that way are accepted.
  EXPECT_NO_THROW(read_npy(npy_file(
      1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,)}", {0, 0, 0, 0})));
}

TEST(NpyCorrupt, NotADictLiteral) {
  expect_format_error(npy_file(1, "['descr', '<f4']", {}),
                      {"expected '{' opening the header dict", "offset 10"});
  expect_format_error(npy_file(1, "{'descr' '<f4'}", {}), {"expected ':' after a key"});
  expect_format_error(npy_file(1, "{descr: '<f4'}", {}), {"expected a quoted key", "found 'd'"});
  expect_format_error(npy_file(1, "{'descr': '<f4' 'shape': (1,)}", {}),
                      {"',' or '}' after a value"});
  expect_format_error(npy_file(1, "{'descr': '<f4", {}),
                      {"printable ASCII character inside a string", "byte 0x0a"});
  expect_format_error(npy_file(1, "{'des\\cr': '<f4'}", {}), {"without escape sequences"});
  expect_format_error(npy_file(1, "{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}", {}),
                      {"True or False", "found 'f'"});
  expect_format_error(npy_file(1, dict("<f4", false, "(1,)") + " x", {0, 0, 0, 0}),
                      {"spaces and a final newline after the header dict", "found 'x'"});
  // No final newline: the last header byte is a space.
  std::vector<uint8_t> f = npy_file(1, dict("<f4", false, "(1,)"), {0, 0, 0, 0});
  f[f.size() - 5] = ' ';
  expect_format_error(f, {"final newline"});
  // Nor any other last byte after the padding.
  f[f.size() - 5] = 'x';
  expect_format_error(f, {"spaces and a final newline after the header dict", "found 'x'"});
}

TEST(NpyCorrupt, BadDescr) {
  for (const char* d : {"<c8", "<f3", "f4", "<f4 ", "<u2", "<b1", "<U4", ""})
    expect_format_error(npy_file(1, dict(d, false, "(1,)"), {0, 0, 0, 0}),
                        {"unsupported descr", ("'" + std::string(d) + "'").c_str()});
  expect_format_error(npy_file(1, dict("|f4", false, "(1,)"), {0, 0, 0, 0}),
                      {"descr '|f4'", "byte order '|'", "expected '<' or '>')"});
  expect_format_error(npy_file(1, dict("=i2", false, "(1,)"), {0, 0}), {"byte order '='"});
}

TEST(NpyCorrupt, BadShapes) {
  expect_format_error(npy_file(1, dict("<f4", false, "(2, -3)"), {}),
                      {"shape extent -3", "is negative"});
  expect_format_error(npy_file(1, dict("<f4", false, "(99999999999999999999,)"), {}),
                      {"shape extent", "overflows int64"});
  // 2^32 * 2^32 elements overflow int64; 2^61 float32 elements overflow the byte count.
  expect_format_error(npy_file(1, dict("<f4", false, "(4294967296, 4294967296)"), {}),
                      {"[4294967296, 4294967296]", "element count overflows int64"});
  expect_format_error(npy_file(1, dict("<f4", false, "(2305843009213693952,)"), {}),
                      {"byte count overflows int64"});
  // An empty array's other extents must multiply within int64 too (numel's rule), or the array
  // the reader returns cannot be counted, converted or written back.
  expect_format_error(npy_file(1, dict("<f4", false, "(0, 4294967296, 4294967296)"), {}),
                      {"[0, 4294967296, 4294967296]", "element count overflows int64"});
  expect_format_error(npy_file(1, dict("<f4", false, "(4294967296, 0, 4294967296)"), {}),
                      {"element count overflows int64"});
  expect_format_error(npy_file(1, dict("<f4", false, "(3)"), {}), {"one-element tuple"});
  expect_format_error(npy_file(1, dict("<f4", false, "[3]"), {}), {"'(' opening the shape tuple"});
  expect_format_error(npy_file(1, dict("<f4", false, "(3,,)"), {}), {"integer shape extent"});
  expect_format_error(npy_file(1, dict("<f4", false, "(3 4)"), {}),
                      {"',' or ')' in the shape tuple"});
  expect_format_error(npy_file(1, dict("<f4", false, "(1.5,)"), {}), {"',' or ')'", "found '.'"});
  std::string deep = "(";
  for (int i = 0; i < 65; ++i) deep += "1, ";
  expect_format_error(npy_file(1, dict("<f4", false, deep + ")"), {}), {"more than 64 dimensions"});
}

TEST(NpyCorrupt, TruncatedAndTrailingData) {
  auto f = npy_file(1, dict("<f4", false, "(2, 3)"), kSixFloats);
  f.pop_back();
  f.pop_back();
  f.pop_back();
  f.pop_back();
  expect_format_error(f, {"truncated: expected 24 data bytes, found 20"});
  auto g = npy_file(3, dict("<f4", false, "(2, 3)"), kSixFloats);
  g.push_back(0);
  expect_format_error(g, {"1 trailing bytes", "expected 24 data bytes, found 25"});
  // A huge shape with no data fails before anything is allocated.
  expect_format_error(npy_file(1, dict("<f4", false, "(1000000000, 8)"), {}),
                      {"truncated: expected 32000000000 data bytes, found 0"});
}

TEST(NpyCorrupt, NullPointerWithSize) {
  expect_error<InvalidArgument>([] { read_npy(nullptr, 5); }, {"null", "size is 5"});
}

// The fuzz seeds stay meaningful: the valid ones parse, the ones named bad_* are rejected.
#ifdef TINYQUANT_FUZZ_CORPUS
TEST(NpySeeds, ValidSeedsParseBadSeedsFail) {
  const std::string dir = std::string(TINYQUANT_FUZZ_CORPUS) + "/npy/";
  for (const char* name : {"f4_c_v1.npy", "f4_f_v2.npy", "i1_v3.npy", "u1_scalar.npy", "i2_be.npy",
                           "i4_f_rank3.npy", "f8_old16.npy", "f2.npy", "i8_empty.npy"})
    EXPECT_NO_THROW(load_npy(dir + name)) << name;
  // i4_f_rank3 holds 0..7 in Fortran order for shape (2, 2, 2): C element (i, j, k) = i + 2j + 4k.
  const std::vector<int32_t> r = load_npy(dir + "i4_f_rank3.npy").as<int32_t>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 2; ++k)
        EXPECT_EQ(r[static_cast<size_t>(4 * i + 2 * j + k)], i + 2 * j + 4 * k);
  expect_error<FormatError>([&] { load_npy(dir + "bad_truncated.npy"); },
                            {"truncated: expected 24 data bytes, found 21"});
  expect_error<FormatError>([&] { load_npy(dir + "bad_descr.npy"); }, {"unsupported descr '<c8'"});
}
#endif

namespace {

// The elements of a as int64, read through as<T>() for the integer T of `to`.
std::vector<int64_t> as_integers(const NpyArray& a, DType to) {
  auto widen = [](const auto& v) { return std::vector<int64_t>(v.begin(), v.end()); };
  switch (to) {
    case DType::kInt8:
      return widen(a.as<int8_t>());
    case DType::kUInt8:
      return widen(a.as<uint8_t>());
    case DType::kInt16:
      return widen(a.as<int16_t>());
    case DType::kInt32:
      return widen(a.as<int32_t>());
    default:
      return a.as<int64_t>();
  }
}

}  // namespace

// Every integer-to-integer conversion: allowed exactly when every value of the source type fits
// the target (table below, written from the types' ranges), and then exact at both ends of the
// source range; refused otherwise, naming both types.
TEST(NpyArray, EveryIntegerConversionIsLosslessOrRefused) {
  struct Src {
    NpyArray array;
    std::vector<int64_t> values;
  };
  const int64_t i64_min = std::numeric_limits<int64_t>::min();
  const int64_t i64_max = std::numeric_limits<int64_t>::max();
  const Src srcs[] = {
      {NpyArray::from(std::vector<int8_t>{-128, 127, 0}, {3}), {-128, 127, 0}},
      {NpyArray::from(std::vector<uint8_t>{0, 255, 7}, {3}), {0, 255, 7}},
      {NpyArray::from(std::vector<int16_t>{-32768, 32767, -1}, {3}), {-32768, 32767, -1}},
      {NpyArray::from(std::vector<int32_t>{INT32_MIN, INT32_MAX, 1}, {3}),
       {-2147483648LL, 2147483647LL, 1}},
      {NpyArray::from(std::vector<int64_t>{i64_min, i64_max, -2}, {3}), {i64_min, i64_max, -2}},
  };
  const DType types[] = {DType::kInt8, DType::kUInt8, DType::kInt16, DType::kInt32, DType::kInt64};
  const char* names[] = {"int8", "uint8", "int16", "int32", "int64"};
  // fits[from][to], in the order of `types`.
  const bool fits[5][5] = {{true, false, true, true, true},
                           {false, true, true, true, true},
                           {false, false, true, true, true},
                           {false, false, false, true, true},
                           {false, false, false, false, true}};
  for (int f = 0; f < 5; ++f)
    for (int t = 0; t < 5; ++t) {
      if (fits[f][t]) {
        EXPECT_EQ(as_integers(srcs[f].array, types[t]), srcs[f].values)
            << names[f] << " -> " << names[t];
      } else {
        expect_error<InvalidArgument>([&] { as_integers(srcs[f].array, types[t]); },
                                      {"npy array: cannot convert " + std::string(names[f]) +
                                       " to " + names[t] + " without loss"});
      }
    }
}

// Every dtype widens to float64 exactly; to float32, the integers past 2^24 round to nearest
// (2^31 - 1 and 2^63 - 1 to 2^31 and 2^63, as the header documents).
TEST(NpyArray, EveryDtypeConvertsToFloat) {
  const double two63 = std::ldexp(1.0, 63);
  NpyArray f16;
  f16.dtype = DType::kFloat16;
  f16.shape = {3};
  f16.data = le_bytes(std::vector<uint16_t>{0x3C00, 0xC000, 0x7BFF});  // 1, -2, 65504
  EXPECT_EQ(f16.as<double>(), (std::vector<double>{1.0, -2.0, 65504.0}));
  NpyArray bf16 = f16;
  bf16.dtype = DType::kBFloat16;
  bf16.data = le_bytes(std::vector<uint16_t>{0x4049, 0xC2F7, 0x0000});  // 3.140625, -123.5, 0
  EXPECT_EQ(bf16.as<double>(), (std::vector<double>{3.140625, -123.5, 0.0}));
  EXPECT_EQ(bf16.as<float>(), (std::vector<float>{3.140625f, -123.5f, 0.0f}));
  // 0.1f is exactly 13421773 / 2^27.
  EXPECT_EQ(NpyArray::from(std::vector<float>{0.1f}, {1}).as<double>(),
            std::vector<double>{13421773.0 / 134217728.0});
  EXPECT_EQ(NpyArray::from(std::vector<double>{-0.5}, {1}).as<double>(), std::vector<double>{-0.5});
  EXPECT_EQ(NpyArray::from(std::vector<int8_t>{-128, 127}, {2}).as<double>(),
            (std::vector<double>{-128.0, 127.0}));
  const NpyArray u8 = NpyArray::from(std::vector<uint8_t>{0, 255}, {2});
  EXPECT_EQ(u8.as<double>(), (std::vector<double>{0.0, 255.0}));
  EXPECT_EQ(u8.as<float>(), (std::vector<float>{0.0f, 255.0f}));
  const NpyArray i16 = NpyArray::from(std::vector<int16_t>{-32768, 32767}, {2});
  EXPECT_EQ(i16.as<double>(), (std::vector<double>{-32768.0, 32767.0}));
  EXPECT_EQ(i16.as<float>(), (std::vector<float>{-32768.0f, 32767.0f}));
  const NpyArray i32 = NpyArray::from(std::vector<int32_t>{INT32_MIN, INT32_MAX}, {2});
  EXPECT_EQ(i32.as<double>(), (std::vector<double>{-2147483648.0, 2147483647.0}));
  EXPECT_EQ(i32.as<float>(), (std::vector<float>{-2147483648.0f, 2147483648.0f}));
  const NpyArray i64 = NpyArray::from(
      std::vector<int64_t>{std::numeric_limits<int64_t>::min(), (int64_t{1} << 53) + 1,
                           std::numeric_limits<int64_t>::max()},
      {3});
  // 2^53 + 1 is a tie between 2^53 and 2^53 + 2 in double: to even, 2^53.
  EXPECT_EQ(i64.as<double>(), (std::vector<double>{-two63, 9007199254740992.0, two63}));
  EXPECT_EQ(i64.as<float>(), (std::vector<float>{static_cast<float>(-two63), 9007199254740992.0f,
                                                 static_cast<float>(two63)}));
}

// float16 and bfloat16 are storage types only: nothing converts to them, whatever the source.
TEST(NpyArray, NoConversionToHalfTypes) {
  const float one = 1.0f;
  uint16_t out = 0x1234;
  expect_error<InvalidArgument>(
      [&] {
        convert_elements(DType::kFloat32, reinterpret_cast<const uint8_t*>(&one), 1,
                         DType::kFloat16, &out, "w");
      },
      {"w: conversion from float32 to float16 is not supported (only widening to "
       "float32/float64 is)"});
  const double d = 1.0;
  expect_error<InvalidArgument>(
      [&] {
        convert_elements(DType::kFloat64, reinterpret_cast<const uint8_t*>(&d), 1, DType::kBFloat16,
                         &out, "w");
      },
      {"w: conversion from float64 to bfloat16 is not supported"});
  const uint16_t h = 0x3C00;
  expect_error<InvalidArgument>(
      [&] {
        convert_elements(DType::kFloat16, reinterpret_cast<const uint8_t*>(&h), 1, DType::kFloat16,
                         &out, "w");
      },
      {"w: conversion from float16 to float16 is not supported"});
  EXPECT_EQ(out, 0x1234);
}

// A write that the device refuses part-way (/dev/full: every write fails with ENOSPC) names the
// path, how much of it was written and the reason. 1 MiB is past any stdio buffer, so fwrite
// itself reports the short write.
TEST(NpyFile, ShortWriteIsAnIoError) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  const std::vector<uint8_t> bytes(1 << 20, 0x5A);
  expect_error<IoError>(
      [&] { write_file_bytes("/dev/full", bytes); },
      {"cannot write '/dev/full': wrote ", " of 1048576 bytes: ", std::strerror(ENOSPC)});
}

// A dtype code outside the enum (a cast) is refused by name, on either side of a conversion.
TEST(NpyArray, UnknownDtypeCodesAreRefused) {
  const uint8_t src[4] = {1, 2, 3, 4};
  float f[4] = {};
  const auto bad = static_cast<DType>(42);
  tq_test::expect_error<InvalidArgument>(
      [&] { convert_elements(bad, src, 4, DType::kFloat32, f, "x"); },
      {"x: unknown dtype code 42"});
  tq_test::expect_error<InvalidArgument>(
      [&] { convert_elements(DType::kUInt8, src, 4, bad, f, "x"); }, {"x: unknown dtype code 42"});
}
