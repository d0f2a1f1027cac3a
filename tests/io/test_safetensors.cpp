// .safetensors reader and writer: hand-built files (8-byte length + JSON + data), exact widening
// of F16/BF16, the strict JSON subset and every layout rule of the format, one test per corruption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/safetensors.hpp"

using namespace tinyquant;
using namespace tq_test;
using namespace tinyquant::io;

namespace {

template <class T>
std::vector<uint8_t> le_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// The file layout by hand: header length as 8 little-endian bytes, the JSON text, the data.
std::vector<uint8_t> st_file(const std::string& json, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> f;
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<uint8_t>(uint64_t{json.size()} >> (8 * i)));
  f.insert(f.end(), json.begin(), json.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

void expect_format_error(const std::vector<uint8_t>& file,
                         std::initializer_list<const char*> words) {
  expect_error<FormatError>([&] { read_safetensors(file); }, words);
}

void expect_header_error(const std::string& json, std::initializer_list<const char*> words) {
  expect_format_error(st_file(json, {}), words);
}

}  // namespace

TEST(SafetensorsWrite, ExactBytes) {
  SafeTensors st;
  st.metadata = {{"format", "pt"}};
  st.tensors.push_back(SafeTensor::from("a", std::vector<float>{1.0f, -2.0f}, {2}));
  st.tensors.push_back(SafeTensor::from("b", std::vector<int8_t>{-1}, {1, 1}));
  const std::string json =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"I8\",\"shape\":[1,1],\"data_offsets\":[8,9]}}";
  ASSERT_EQ(json.size(), 139u);  // padded with 5 spaces to 144
  const std::vector<uint8_t> want =
      st_file(json + "     ", {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0, 0xFF});
  EXPECT_EQ(write_safetensors(st), want);
  const SafeTensors back = read_safetensors(want);
  ASSERT_EQ(back.metadata.size(), 1u);
  EXPECT_EQ(back.metadata[0].first, "format");
  EXPECT_EQ(back.metadata[0].second, "pt");
  ASSERT_EQ(back.tensors.size(), 2u);
  EXPECT_EQ(back.at("a").as<float>(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(back.at("b").shape, (Shape{1, 1}));
  EXPECT_EQ(back.at("b").as<int32_t>(), std::vector<int32_t>{-1});
}

// A header already a multiple of 8 bytes long gets no padding: 56 bytes here.
TEST(SafetensorsWrite, AlignedHeaderIsNotPadded) {
  SafeTensors st;
  st.tensors.push_back(SafeTensor::from("abcd", std::vector<int8_t>{5}, {1}));
  const std::string json = "{\"abcd\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  ASSERT_EQ(json.size(), 56u);
  EXPECT_EQ(write_safetensors(st), st_file(json, {0x05}));
}

TEST(SafetensorsRead, EveryDtype) {
  std::vector<uint8_t> data;
  std::string json = "{";
  uint64_t off = 0;
  auto add = [&](const std::string& name, const char* dtype, const std::string& shape,
                 const std::vector<uint8_t>& bytes) {
    if (json.size() > 1) json += ",";
    json += entry(name, dtype, shape,
                  "[" + std::to_string(off) + "," + std::to_string(off + bytes.size()) + "]");
    data.insert(data.end(), bytes.begin(), bytes.end());
    off += bytes.size();
  };
  add("f16", "F16", "[3]",
      le_bytes(std::vector<uint16_t>{0x3C00, 0xB800, 0x0200}));                 // 1, -0.5, 2^-15
  add("bf16", "BF16", "[2]", le_bytes(std::vector<uint16_t>{0x4049, 0xFF80}));  // 3.140625, -inf
  add("f32", "F32", "[1]", le_bytes(std::vector<float>{0.1f}));
  add("f64", "F64", "[1]", le_bytes(std::vector<double>{-1e300}));
  add("i8", "I8", "[2]", {0x80, 0x7F});
  add("u8", "U8", "[1]", {0xFF});
  add("i16", "I16", "[1]", le_bytes(std::vector<int16_t>{-300}));
  add("i32", "I32", "[1]", le_bytes(std::vector<int32_t>{-70000}));
  add("i64", "I64", "[1]", le_bytes(std::vector<int64_t>{int64_t{1} << 40}));
  json += "}";
  const SafeTensors st = read_safetensors(st_file(json, data));
  ASSERT_EQ(st.tensors.size(), 9u);
  EXPECT_EQ(st.at("f16").dtype, DType::kFloat16);
  EXPECT_EQ(st.at("f16").as<float>(), (std::vector<float>{1.0f, -0.5f, std::ldexp(1.0f, -15)}));
  EXPECT_EQ(st.at("bf16").as<float>(),
            (std::vector<float>{3.140625f, -std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(st.at("f32").as<float>(), std::vector<float>{0.1f});
  EXPECT_EQ(st.at("f64").as<double>(), std::vector<double>{-1e300});
  EXPECT_EQ(st.at("i8").as<int8_t>(), (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(st.at("u8").as<uint8_t>(), std::vector<uint8_t>{255});
  EXPECT_EQ(st.at("i16").as<int32_t>(), std::vector<int32_t>{-300});
  EXPECT_EQ(st.at("i32").as<int32_t>(), std::vector<int32_t>{-70000});
  EXPECT_EQ(st.at("i64").as<int64_t>(), std::vector<int64_t>{int64_t{1} << 40});
  expect_error<InvalidArgument>([&] { st.at("i64").as<int32_t>(); },
                                {"i64", "cannot convert int64 to int32"});
  expect_error<InvalidArgument>([&] { st.at("nope"); }, {"no tensor named \"nope\"", "\"f16\""});
  // Written back in offset order, the file is the same apart from the header's padding.
  const SafeTensors again = read_safetensors(write_safetensors(st));
  ASSERT_EQ(again.tensors.size(), st.tensors.size());
  for (size_t i = 0; i < st.tensors.size(); ++i) {
    EXPECT_EQ(again.tensors[i].name, st.tensors[i].name);
    EXPECT_EQ(again.tensors[i].dtype, st.tensors[i].dtype);
    EXPECT_EQ(again.tensors[i].shape, st.tensors[i].shape);
    EXPECT_EQ(again.tensors[i].data, st.tensors[i].data);
  }
}

// F16 subnormals, extremes and NaN through the file path, values by hand.
TEST(SafetensorsRead, HalfAndBFloat16Specials) {
  const std::vector<uint16_t> half = {0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFC00, 0x7C01};
  const std::vector<uint16_t> bf = {0x0001, 0x0080, 0x7F7F, 0x8000, 0x7FC0};
  const std::string json =
      "{" + entry("h", "F16", "[7]", "[0,14]") + "," + entry("b", "BF16", "[5]", "[14,24]") + "}";
  std::vector<uint8_t> data = le_bytes(half);
  const std::vector<uint8_t> b = le_bytes(bf);
  data.insert(data.end(), b.begin(), b.end());
  const SafeTensors st = read_safetensors(st_file(json, data));
  const std::vector<float> h = st.at("h").as<float>();
  EXPECT_EQ(h[0], std::ldexp(1.0f, -24));
  EXPECT_EQ(h[1], -std::ldexp(1.0f, -24));
  EXPECT_EQ(h[2], std::ldexp(1023.0f, -24));
  EXPECT_EQ(h[3], std::ldexp(1.0f, -14));
  EXPECT_EQ(h[4], 65504.0f);
  EXPECT_EQ(h[5], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(h[6]));  // signalling NaN payload stays a NaN
  const std::vector<double> w = st.at("b").as<double>();
  EXPECT_EQ(w[0], std::ldexp(1.0, -133));  // bf16 subnormal = float subnormal
  EXPECT_EQ(w[1], std::ldexp(1.0, -126));
  EXPECT_EQ(w[2], (2.0 - std::ldexp(1.0, -7)) * std::ldexp(1.0, 127));  // largest finite bf16
  EXPECT_TRUE(w[3] == 0.0 && std::signbit(w[3]));
  EXPECT_TRUE(std::isnan(w[4]));
}

TEST(SafetensorsRead, HeaderOrderIsNotOffsetOrder) {
  // "z" comes first in the header but second in the data; zero-byte tensors share an offset.
  const std::string json =
      "{ " + entry("z", "U8", "[2]", "[1, 3]") + " ,\n\t" + entry("a", "U8", "[1]", "[0,1]") + "," +
      entry("e", "F32", "[0,4]", "[3,3]") + "," + entry("s", "F64", "[]", "[3,11]") + "," +
      entry("e2", "I8", "[0]", "[3,3]") + "}   ";
  std::vector<uint8_t> data = {10, 20, 30};
  const std::vector<uint8_t> scalar = le_bytes(std::vector<double>{2.5});
  data.insert(data.end(), scalar.begin(), scalar.end());
  const SafeTensors st = read_safetensors(st_file(json, data));
  ASSERT_EQ(st.tensors.size(), 5u);
  EXPECT_EQ(st.tensors[0].name, "a");
  EXPECT_EQ(st.tensors[1].name, "z");
  EXPECT_EQ(st.at("z").as<uint8_t>(), (std::vector<uint8_t>{20, 30}));
  EXPECT_EQ(st.at("e").shape, (Shape{0, 4}));
  EXPECT_EQ(st.at("s").as<double>(), std::vector<double>{2.5});
  EXPECT_TRUE(st.at("s").shape.empty());
}

// Many zero-byte tensors at one offset keep their header order, so a write -> read round trip
// gives back the same list (an unstable sort shuffled them).
TEST(SafetensorsRead, ZeroByteTensorsKeepHeaderOrder) {
  std::string json = "{";
  for (int i = 0; i < 40; ++i) {
    if (i) json += ",";
    json += entry("t" + std::to_string(39 - i), "F32", "[0]", "[4,4]");
  }
  json += "," + entry("first", "F32", "[1]", "[0,4]") + "}";
  const SafeTensors st = read_safetensors(st_file(json, {0, 0, 0, 0}));
  ASSERT_EQ(st.tensors.size(), 41u);
  EXPECT_EQ(st.tensors[0].name, "first");
  for (int i = 0; i < 40; ++i)
    EXPECT_EQ(st.tensors[static_cast<size_t>(i) + 1].name, "t" + std::to_string(39 - i));
  const SafeTensors again = read_safetensors(write_safetensors(st));
  for (size_t i = 0; i < st.tensors.size(); ++i)
    EXPECT_EQ(again.tensors[i].name, st.tensors[i].name);
}

TEST(SafetensorsRead, EmptyFileHeaders) {
  EXPECT_TRUE(read_safetensors(st_file("{}", {})).tensors.empty());
  EXPECT_TRUE(read_safetensors(st_file("{\"__metadata__\":{}}  ", {})).metadata.empty());
  EXPECT_TRUE(read_safetensors(write_safetensors(SafeTensors{})).tensors.empty());
}

TEST(SafetensorsRead, StringEscapesAndUtf8) {
  // \" \\ \/ \n \u00e9 (é), a surrogate pair for U+1F600 and raw UTF-8 ("ü").
  const std::string json =
      "{\"__metadata__\":{\"k\\\"\\\\\\/\\n\":\"caf\\u00e9 \\ud83d\\ude00 \xc3\xbc\"}," +
      entry("t\\u0001", "U8", "[1]", "[0,1]") + "}";
  const SafeTensors st = read_safetensors(st_file(json, {5}));
  ASSERT_EQ(st.metadata.size(), 1u);
  EXPECT_EQ(st.metadata[0].first, "k\"\\/\n");
  EXPECT_EQ(st.metadata[0].second, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3\xbc");
  EXPECT_EQ(st.tensors[0].name, std::string("t\x01"));
  // The writer escapes what JSON requires and the reader restores it.
  const SafeTensors again = read_safetensors(write_safetensors(st));
  EXPECT_EQ(again.metadata, st.metadata);
  EXPECT_EQ(again.tensors[0].name, st.tensors[0].name);
}

TEST(SafetensorsFile, RoundTripAndOsErrors) {
  const std::string path =
      ::testing::TempDir() + "tinyquant_test_" + std::to_string(::getpid()) + ".safetensors";
  SafeTensors st;
  st.tensors.push_back(SafeTensor::from("w", std::vector<int16_t>{1, -2, 3, -4}, {2, 2}));
  save_safetensors(path, st);
  EXPECT_EQ(load_safetensors(path).at("w").as<int16_t>(), (std::vector<int16_t>{1, -2, 3, -4}));
  std::remove(path.c_str());
  expect_error<IoError>([] { load_safetensors("/nonexistent-dir/m.safetensors"); },
                        {"/nonexistent-dir/m.safetensors", "No such file or directory"});
  expect_error<IoError>([&] { save_safetensors("/nonexistent-dir/m.safetensors", st); },
                        {"for writing", "No such file"});
}

TEST(SafetensorsWrite, RejectsBadInput) {
  SafeTensors st;
  st.tensors.push_back(SafeTensor::from("x", std::vector<float>{1}, {1}));
  st.tensors.push_back(SafeTensor::from("x", std::vector<float>{2}, {1}));
  expect_error<InvalidArgument>([&] { write_safetensors(st); },
                                {"duplicate tensor name \"x\"", "index 1"});
  st.tensors[1].name = "__metadata__";
  expect_error<InvalidArgument>([&] { write_safetensors(st); }, {"tensor 1", "reserved name"});
  st.tensors[1].name = "";  // legal in the format: must round trip
  EXPECT_EQ(read_safetensors(write_safetensors(st)).at("").as<float>(), std::vector<float>{2});
  st.tensors[1].name = "bad\xff";
  expect_error<InvalidArgument>([&] { write_safetensors(st); }, {"not valid UTF-8"});
  st.tensors[1].name = "y";
  st.tensors[1].shape = {3};
  expect_error<ShapeError>([&] { write_safetensors(st); },
                           {"tensor \"y\"", "data holds 4 bytes", "[3]"});
  expect_error<ShapeError>([&] { st.tensors[1].as<float>(); },
                           {"tensor \"y\"", "data holds 4 bytes", "[3]"});
  st.tensors.pop_back();
  st.metadata = {{"a", "1"}, {"a", "2"}};
  expect_error<InvalidArgument>([&] { write_safetensors(st); }, {"duplicate metadata key \"a\""});
}

// ---------------------------------------------------------------------------------------------
// Corruptions

TEST(SafetensorsCorrupt, LengthPrefix) {
  expect_format_error({1, 2, 3},
                      {"truncated at offset 0", "8-byte header length", "found 3 bytes"});
  std::vector<uint8_t> f = st_file("{}", {});
  f[3] = 0x10;  // 2^28 + 2 > 100 MB
  expect_format_error(f, {"header length 268435458", "exceeds the limit of 100000000"});
  f[3] = 0;
  f[0] = 3;
  expect_format_error(f, {"header length 3", "runs past the end", "2 bytes after"});
  std::vector<uint8_t> g = st_file("{}", {});
  for (int i = 0; i < 8; ++i) g[static_cast<size_t>(i)] = 0xFF;
  expect_format_error(g, {"exceeds the limit"});
}

TEST(SafetensorsCorrupt, MalformedJson) {
  expect_header_error("", {"'{' as the first byte of the header", "offset 8", "end of header"});
  expect_header_error(" {}", {"'{' as the first byte", "found ' '"});
  expect_header_error("[]", {"'{' as the first byte"});
  expect_header_error("{", {"a string key", "offset 9"});
  expect_header_error("{\"a\" 1}", {"':' after an object key", "offset 13"});
  expect_header_error("{\"a\":1,}", {"a string key", "found '}'"});
  expect_header_error("{\"a\":1 \"b\":2}", {"',' or '}' in an object"});
  expect_header_error("{\"a\":[1 2]}", {"',' or ']' in an array"});
  expect_header_error("{\"a\":[1,]}", {"an object, array, string or integer", "found ']'"});
  expect_header_error("{\"a", {"a closing '\"'"});
  expect_header_error("{\"a\\x\":1}", {"after '\\'", "found 'x'"});
  expect_header_error("{\"a\tb\":1}", {"escaped control character"});
  expect_header_error("{\"\\u12\":1}", {"four hex digits"});
  expect_header_error("{\"\\udc00\":1}", {"a high surrogate before a low surrogate"});
  expect_header_error("{\"\\ud800x\":1}", {"a low surrogate after a high surrogate"});
  expect_header_error("{\"\\ud800\\u0041\":1}", {"a low surrogate (DC00..DFFF)"});
  expect_header_error("{\"\xc0\x80\":1}", {"valid UTF-8", "byte 0xc0"});  // overlong
  expect_header_error("{\"\xed\xa0\x80\":1}", {"valid UTF-8"});           // surrogate
  expect_header_error("{\"\xf4\x90\x80\x80\":1}", {"valid UTF-8"});       // > U+10FFFF
  expect_header_error("{\"\xe2\x82\":1}", {"valid UTF-8"});               // cut short
  expect_header_error("{\"a\":1.5}", {"no fraction or exponent"});
  expect_header_error("{\"a\":1e3}", {"no fraction or exponent"});
  expect_header_error("{\"a\":01}", {"no leading zero"});
  expect_header_error("{\"a\":-}", {"a digit"});
  expect_header_error("{\"a\":true}", {"an object, array, string or integer", "found 't'"});
  expect_header_error("{\"a\":null}", {"found 'n'"});
  expect_header_error("{\"a\":99999999999999999999}", {"integer at offset 13 overflows int64"});
  expect_header_error("{\"a\":9223372036854775808}", {"overflows int64"});
  // -2^63 is the one negative integer without a positive counterpart; one below it overflows.
  expect_header_error("{\"a\":-9223372036854775809}", {"integer at offset 13 overflows int64"});
  expect_header_error("{" + entry("t", "I8", "[-9223372036854775808]", "[0,0]") + "}",
                      {"shape extent -9223372036854775808", "is negative"});
  expect_header_error("{} x", {"only whitespace after the header object", "offset 11"});
  expect_header_error(std::string("{}\0", 3), {"only whitespace", "byte 0x00"});
  expect_header_error("{\"a\":[[[[[[[[[[1]]]]]]]]]]}", {"nesting deeper than 8"});
  std::string long_array = "{\"a\":[";
  for (int i = 0; i < 65; ++i) long_array += i ? ",0" : "0";
  expect_header_error(long_array + "]}", {"more than 64 items"});
  expect_header_error("{\"a\":{},\"a\":{}}", {"duplicate key \"a\"", "offset 16"});
}

TEST(SafetensorsCorrupt, BadTensorEntries) {
  expect_header_error("{\"t\":[]}", {"tensor \"t\"", "must be an object, found an array"});
  expect_header_error("{\"t\":{\"shape\":[],\"data_offsets\":[0,0]}}", {"missing key \"dtype\""});
  expect_header_error("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}",
                      {"missing key \"shape\""});
  expect_header_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[0]}}",
                      {"missing key \"data_offsets\""});
  expect_header_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1}}",
                      {"unexpected key \"x\""});
  expect_header_error("{" + entry("t", "BOOL", "[1]", "[0,1]") + "}",
                      {"unsupported dtype \"BOOL\"", "offset 22"});
  expect_header_error("{" + entry("t", "f32", "[1]", "[0,4]") + "}", {"unsupported dtype \"f32\""});
  expect_header_error("{\"t\":{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,4]}}",
                      {"dtype", "must be a string, found an integer"});
  expect_header_error("{" + entry("t", "F32", "4", "[0,16]") + "}", {"shape", "must be an array"});
  expect_header_error("{" + entry("t", "F32", "[\"4\"]", "[0,16]") + "}",
                      {"shape extent", "must be an integer, found a string"});
  expect_header_error("{" + entry("t", "F32", "[2,-1]", "[0,0]") + "}",
                      {"shape extent -1", "negative"});
  expect_header_error("{" + entry("t", "U8", "[4294967296,4294967296]", "[0,0]") + "}",
                      {"element count overflows int64"});
  expect_header_error("{" + entry("t", "U8", "[0,4294967296,4294967296]", "[0,0]") + "}",
                      {"element count overflows int64"});
  expect_header_error("{" + entry("t", "F64", "[2305843009213693952]", "[0,0]") + "}",
                      {"byte count overflows int64"});
  expect_header_error("{" + entry("t", "F32", "[1]", "[0,4,8]") + "}",
                      {"must have 2 items, found 3"});
  expect_header_error("{" + entry("t", "F32", "[1]", "{}") + "}",
                      {"data_offsets", "must be an array"});
  expect_header_error("{" + entry("t", "F32", "[1]", "[-4,0]") + "}",
                      {"data offset -4", "negative"});
  expect_header_error("{" + entry("t", "F32", "[1]", "[8,4]") + "}",
                      {"[8, 4]", "end before they begin"});
  expect_header_error("{" + entry("t", "F32", "[2]", "[0,4]") + "}",
                      {"tensor \"t\"", "span 4 bytes, expected 8", "[2] of F32"});
  expect_header_error("{\"__metadata__\":[]}", {"__metadata__", "must be an object"});
  expect_header_error("{\"__metadata__\":{\"k\":1}}",
                      {"__metadata__ value of \"k\"", "must be a string"});
}

TEST(SafetensorsCorrupt, LayoutRules) {
  const std::vector<uint8_t> twelve(12, 0);
  expect_format_error(st_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                                  entry("b", "F32", "[1]", "[8,12]") + "}",
                              twelve),
                      {"hole in the data section", "bytes [4, 8)", "tensor \"b\""});
  expect_format_error(
      st_file("{" + entry("a", "F32", "[1]", "[4,8]") + "}", std::vector<uint8_t>(8, 0)),
      {"hole", "bytes [0, 4)"});
  expect_format_error(st_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                                  entry("b", "F32", "[2]", "[4,12]") + "}",
                              twelve),
                      {"tensor \"b\"", "[4, 12]", "overlap tensor \"a\" which ends at 8"});
  // Two tensors at the same bytes.
  expect_format_error(st_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                                  entry("b", "I32", "[1]", "[0,4]") + "}",
                              std::vector<uint8_t>(4, 0)),
                      {"overlap"});
  expect_format_error(
      st_file("{" + entry("a", "F32", "[3]", "[0,12]") + "}", std::vector<uint8_t>(11, 0)),
      {"truncated: tensors need 12 data bytes", "found 11"});
  expect_format_error(
      st_file("{" + entry("a", "F32", "[3]", "[0,12]") + "}", std::vector<uint8_t>(13, 0)),
      {"1 trailing bytes", "belong to no tensor", "expected 12 data bytes, found 13"});
  expect_format_error(st_file("{}", {1}), {"1 trailing bytes"});
  // Huge offsets on a tiny file are rejected before any allocation.
  expect_format_error(
      st_file("{" + entry("a", "U8", "[1000000000000]", "[0,1000000000000]") + "}", {}),
      {"truncated: tensors need 1000000000000 data bytes"});
}

TEST(SafetensorsCorrupt, NullPointerWithSize) {
  expect_error<InvalidArgument>([] { read_safetensors(nullptr, 9); }, {"null", "size is 9"});
}

// The fuzz seeds stay meaningful: the valid ones parse, the ones named bad_* are rejected.
#ifdef TINYQUANT_FUZZ_CORPUS
TEST(SafetensorsSeeds, ValidSeedsParseBadSeedsFail) {
  const std::string dir = std::string(TINYQUANT_FUZZ_CORPUS) + "/safetensors/";
  for (const char* name : {"two.safetensors", "half.safetensors", "ints.safetensors",
                           "escapes.safetensors", "empty.safetensors"})
    EXPECT_NO_THROW(load_safetensors(dir + name)) << name;
  EXPECT_EQ(load_safetensors(dir + "half.safetensors").at("h").as<float>(),
            (std::vector<float>{1.0f, std::ldexp(1023.0f, -24)}));
  expect_error<FormatError>([&] { load_safetensors(dir + "bad_trailing.safetensors"); },
                            {"1 trailing bytes"});
  expect_error<FormatError>([&] { load_safetensors(dir + "bad_overlap.safetensors"); },
                            {"tensor \"b\"", "overlap tensor \"a\""});
}
#endif

// The remaining one-letter escapes (\b \f \r \t) and \u escapes in the three-byte UTF-8 range
// (U+0800..U+FFFF), in upper- and lower-case hex: U+0800 = E0 A0 80, U+20AC (euro sign) =
// E2 82 AC, U+FFFF = EF BF BF; U+00E9 stays two bytes (C3 A9).
TEST(SafetensorsRead, ControlEscapesAndThreeByteUtf8) {
  const std::string json =
      "{\"__metadata__\":{\"\\b\\f\\r\\t\":\"\\u0800|\\u20AC|\\uFFFF|\\uffff|\\u00E9\"}}";
  const SafeTensors st = read_safetensors(st_file(json, {}));
  ASSERT_EQ(st.metadata.size(), 1u);
  EXPECT_EQ(st.metadata[0].first, "\b\f\r\t");
  EXPECT_EQ(st.metadata[0].second, "\xE0\xA0\x80|\xE2\x82\xAC|\xEF\xBF\xBF|\xEF\xBF\xBF|\xC3\xA9");
  // Written back (control characters as \u00XX, UTF-8 as is), they read the same.
  EXPECT_EQ(read_safetensors(write_safetensors(st)).metadata, st.metadata);
}

// A dtype code outside the enum (a cast) is refused, not written as a name the reader rejects.
TEST(SafetensorsWrite, UnknownDtypeCodeIsRefused) {
  SafeTensors st;
  st.tensors.push_back(SafeTensor::raw("w", static_cast<DType>(42), {2}, {1, 2}));
  tq_test::expect_error<InvalidArgument>([&] { write_safetensors(st); },
                                         {"write_safetensors", "\"w\"", "unknown dtype code 42"});
}

// Names and keys come from the file: a control byte in one is shown as \xNN in the reader's
// messages, so the message stays whole and on one line.
TEST(SafetensorsRead, ControlBytesInNamesAreEscapedInMessages) {
  const std::vector<uint8_t> bad_dtype =
      st_file(R"({"a\u0007b":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}})", {0});
  expect_error<FormatError>([&] { read_safetensors(bad_dtype); },
                            {"tensor \"a\\x07b\" has unsupported dtype \"X9\""});
  const std::vector<uint8_t> hole =
      st_file(R"({"x\ny":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", {0, 0});
  expect_error<FormatError>([&] { read_safetensors(hole); },
                            {"bytes [0, 1) before tensor \"x\\x0ay\""});
}

// as<T>() compares the data size with numel x itemsize without a product that wraps: 2^62 F32
// elements would need 2^64 bytes, which wrapped to 0 and matched an empty buffer.
TEST(SafetensorsRead, AsRefusesACountWhoseByteSizeWraps) {
  const SafeTensor f32 = SafeTensor::raw("x", DType::kFloat32, {int64_t{1} << 62}, {});
  tq_test::expect_error<ShapeError>([&] { (void)f32.as<float>(); },
                                    {"tensor \"x\": data holds 0 bytes"});
  const SafeTensor f64 = SafeTensor::raw("y", DType::kFloat64, {int64_t{1} << 61}, {});
  tq_test::expect_error<ShapeError>([&] { (void)f64.as<double>(); },
                                    {"tensor \"y\": data holds 0 bytes"});
}

// The header holds at most kSafetensorsMaxValues JSON values: beyond that the parser stops
// before its tree outgrows the file many times over (tiny values cost some 30x their bytes).
TEST(SafetensorsCorrupt, TooManyValues) {
  std::string json = "{\"__metadata__\":{";
  for (size_t i = 0; i < kSafetensorsMaxValues; ++i)
    json += (i == 0 ? "\"" : ",\"") + std::to_string(i) + "\":\"\"";
  json += "}}";
  // Root, metadata object and 2^20 strings: value 2^20 + 1, the next-to-last string, trips it.
  expect_header_error(json, {"more than 1048576 values at offset"});
}
