// io::export_c_header / export_c_source without the command: literals, names and every error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/io/c_export.hpp"

namespace {

namespace io = tinyquant::io;
using tinyquant::InvalidArgument;

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

template <class E, class F>
void expect_error(F f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    for (const std::string& w : words) EXPECT_TRUE(contains(e.what(), w)) << e.what() << " / " << w;
  }
}

io::Model float_model(const std::vector<float>& v, const std::string& name = "w") {
  io::Model m;
  m.entries.push_back(io::make_entry(name, v.data(), {static_cast<int64_t>(v.size())}));
  return m;
}

// A 2x3 int8 per-channel layer "fc" (weights 1..6), with a float "fc.bias" when bias is not
// empty.
io::Model fc_model(const std::vector<float>& bias = {}) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  io::Model m;
  m.entries.push_back(io::make_entry(
      "fc.weight", tinyquant::quantize_weights(w.data(), {2, 3},
                                               tinyquant::QuantSpec::int8_weights_per_channel())));
  if (!bias.empty())
    m.entries.push_back(
        io::make_entry("fc.bias", bias.data(), {static_cast<int64_t>(bias.size())}));
  return m;
}

// Input scale 0.1 and output scale 0.2, zero points 0, for every layer.
io::CExportOptions common_scales() {
  io::CExportOptions o;
  o.input = tinyquant::ActivationParams{0.1f, 0};
  o.output = tinyquant::ActivationParams{0.2f, 0};
  return o;
}

TEST(CExport, IdentifiersAreSanitised) {
  EXPECT_EQ(io::c_identifier("conv1.weight"), "conv1_weight");
  EXPECT_EQ(io::c_identifier("0a-b"), "_0a_b");
  EXPECT_EQ(io::c_identifier(""), "_");
  EXPECT_EQ(io::c_identifier("a\xc3\xa9"), "a__");
}

// Exported names never hold "__" (reserved in C++): not after the prefix for a leading digit,
// not from a run of replaced characters, not before a suffix such as _NUMEL.
TEST(CExport, ExportedNamesHoldNoDoubleUnderscore) {
  io::Model m = float_model({1.0f}, "0.weight");
  m.entries.push_back(float_model({2.0f}, "blocks..1/w.").entries[0]);
  m.entries.push_back(float_model({3.0f}, "./").entries[0]);  // nothing to keep: the prefix
  const std::string h = io::export_c_header(m, {});
  EXPECT_TRUE(contains(h, "model_0_weight[1]")) << h;
  EXPECT_TRUE(contains(h, "model[1]")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_NUMEL 1")) << h;
  EXPECT_TRUE(contains(h, "model_blocks_1_w[1]")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_BLOCKS_1_W_NUMEL 1")) << h;
  // Every identifier the exporter makes (they all carry the prefix).
  const std::regex ident("[A-Za-z_][A-Za-z0-9_]*");
  int made = 0;
  for (auto it = std::sregex_iterator(h.begin(), h.end(), ident); it != std::sregex_iterator();
       ++it) {
    const std::string id = it->str();
    if (!contains(id, "model") && !contains(id, "MODEL")) continue;
    ++made;
    EXPECT_FALSE(contains(id, "__")) << id;
  }
  EXPECT_GT(made, 10);
}

// The header's own macros (alignment, unused, include guard) are not names an entry may take:
// an entry that would define one is an error, not a header that does not compile.
TEST(CExport, EntriesCannotTakeTheHeadersOwnMacroNames) {
  io::CExportOptions o;
  o.prefix = "TQ";
  for (const std::string name : {"TQ_ALIGN", "TQ.UNUSED"}) {
    const io::Model m = float_model({1.0f}, name);
    expect_error<InvalidArgument>([&] { io::export_c_header(m, o); },
                                  {"'" + name + "'", "a macro the header defines for itself"});
  }
  // Under another prefix the same entries are ordinary names.
  EXPECT_TRUE(
      contains(io::export_c_header(float_model({1.0f}, "TQ_ALIGN"), {}), "model_TQ_ALIGN[1]"));
}

// A generated name that is a keyword or a name the standard headers define (the header includes
// <stdint.h>) would make a header that does not compile: the export refuses it, naming the
// entry, the name and why.
TEST(CExport, NamesOfTheLanguageOrItsStandardHeadersAreRefused) {
  struct Case {
    const char *prefix, *entry, *name, *why;
  };
  const char* const stdint = "a name <stdint.h> defines";
  for (const Case& c : std::vector<Case>{{"int8", "t", "int8_t", stdint},
                                         {"INT8", "MAX", "INT8_MAX", stdint},
                                         {"SIZE", "MAX", "SIZE_MAX", stdint},
                                         {"int", ".", "int", "a C or C++ keyword"},
                                         {"uint", "fast16_t", "uint_fast16_t", stdint},
                                         {"int", "least64.t", "int_least64_t", stdint},
                                         {"uintptr", "t", "uintptr_t", stdint},
                                         {"UINTMAX", "C", "UINTMAX_C", stdint},
                                         {"INT32", "WIDTH", "INT32_WIDTH", stdint},
                                         {"PTRDIFF", "MIN", "PTRDIFF_MIN", stdint},
                                         {"and", ".", "and", "a C or C++ keyword"},
                                         {"not", "/", "not", "a C or C++ keyword"},
                                         {"bool", ".", "bool", "a C or C++ keyword"},
                                         {"alignas", ".", "alignas", "a C or C++ keyword"},
                                         {"Bool", ".", "Bool", nullptr},  // not _Bool
                                         {"size", "t", "size_t", "a name <stddef.h> defines"},
                                         {"std", ".", "std", "namespace"},
                                         {"linux", ".", "linux", "GNU compiler modes predefine"},
                                         {"unix", ".", "unix", "GNU compiler modes predefine"}}) {
    SCOPED_TRACE(std::string(c.prefix) + " / " + c.entry);
    io::CExportOptions o;
    o.prefix = c.prefix;
    const io::Model m = float_model({1.0f}, c.entry);
    if (c.why == nullptr) {
      EXPECT_TRUE(contains(io::export_c_header(m, o), std::string(" ") + c.name + "[1] "));
      continue;
    }
    expect_error<InvalidArgument>(
        [&] { io::export_c_header(m, o); },
        {"entry '" + std::string(c.entry) + "' gives the C name '" + c.name + "', ", c.why,
         "choose another prefix (--prefix)"});
  }
  // Names only close to those are kept.
  const std::pair<const char*, const char*> close[] = {
      {"int8", "ts"},  {"my", "int"}, {"INT8", "MAXIMUM"}, {"int8", "t.x"},
      {"SIZE", "max"}, {"Int", "."},  {"uint", "8"},       {"stdint", "."}};
  for (const auto& [prefix, entry] : close) {
    io::CExportOptions o;
    o.prefix = prefix;
    EXPECT_NO_THROW(io::export_c_header(float_model({1.0f}, entry), o)) << prefix << " " << entry;
  }
}

// Names close to the refused ones compile, as C11 and as C++17 (when there is a compiler to run).
TEST(CExport, NamesCloseToTheStandardOnesCompileAsCAndCpp) {
  if (std::system("cc --version >/dev/null 2>&1") != 0 ||
      std::system("c++ --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no cc / c++ to compile the headers with";
  const std::string dir =
      ::testing::TempDir() + "tq_close_names_" + std::to_string(static_cast<long>(getpid()));
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  struct Header {
    const char* prefix;
    std::vector<const char*> entries;
  };
  // One translation unit per header: "int8" and "INT8" share the include guard TQ_INT8_H_, so
  // in one unit the second header would be skipped, its names never compiled.
  int unit = 0;
  for (const Header& h : std::vector<Header>{{"int8", {"ts", "t.x", "T"}},
                                             {"INT8", {"MAXIMUM", "MIN.0", "c"}},
                                             {"SIZE", {"max", "MAX.0"}},
                                             {"my", {"int", "bool", "and", "size_t"}},
                                             {"uintptr", {"ts", "t.t"}}}) {
    io::Model m;
    for (const char* e : h.entries) m.entries.push_back(float_model({1.0f}, e).entries[0]);
    io::CExportOptions o;
    o.prefix = h.prefix;
    const std::string name = "close_" + std::to_string(++unit);
    std::ofstream(dir + "/" + name + ".h") << io::export_c_header(m, o);
    std::ofstream(dir + "/" + name + ".c") << "#include \"" + name + ".h\"\n";
    for (const std::string compile :
         {"cc -std=c11 -Wpedantic -x c", "c++ -std=c++17 -Wpedantic -x c++"}) {
      const std::string cmd = compile + " -Wall -Wextra -Werror -fsyntax-only '" + dir + "/" +
                              name + ".c' 2>'" + dir + "/out.txt'";
      const int rc = std::system(cmd.c_str());
      std::ifstream out(dir + "/out.txt");
      const std::string text((std::istreambuf_iterator<char>(out)),
                             std::istreambuf_iterator<char>());
      EXPECT_EQ(rc, 0) << h.prefix << ": " << compile << "\n" << text;
    }
  }
  if (!HasFailure()) {  // else kept to look at
    EXPECT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
  }
}

TEST(CExport, FloatLiteralsReadBackExactly) {
  const std::string h = io::export_c_header(float_model({1.0f, -2.5f, 1e-5f, 0.1f}), {});
  EXPECT_TRUE(contains(h, "1.0f, -2.5f, 1e-05f, 0.1f")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_W_NUMEL 4"));
  EXPECT_TRUE(contains(h, "TQ_MODEL_ALIGN static const float model_w[4]"));
}

TEST(CExport, Int32MinAndNegativeMacrosAreParenthesised) {
  io::Model m;
  const std::vector<int32_t> v = {std::numeric_limits<int32_t>::min(), 5};
  m.entries.push_back(io::make_entry("i", v.data(), {2}));
  const std::string h = io::export_c_header(m, {});
  EXPECT_TRUE(contains(h, "(-2147483647 - 1), 5")) << h;
  EXPECT_FALSE(contains(h, "-2147483648"));
  // Unquantized entries: int32 are 32-bit, float 0.
  EXPECT_TRUE(contains(h, "#define MODEL_I_BITS 32\n")) << h;
  EXPECT_TRUE(contains(io::export_c_header(float_model({1.0f}), {}), "#define MODEL_W_BITS 0\n"));
}

TEST(CExport, Int4DataIsTheNibbleStream) {
  const std::vector<float> w = {1.0f, -1.0f, 0.6f, 0.0f, 0.25f, -0.75f};
  tinyquant::QuantSpec spec;
  spec.bits = 4;
  spec.scheme = tinyquant::Scheme::kSymmetric;
  spec.narrow_range = true;
  // scale = 1 / 7: q = {7, -7, 4 (4.2), 0, 2 (1.75), -5 (-5.25)}
  io::Model m;
  m.entries.push_back(io::make_entry("w", tinyquant::quantize_weights(w.data(), {2, 3}, spec)));
  const std::string h = io::export_c_header(m, {});
  // bytes: (lo 7, hi -7=0x9) 0x97, (4, 0) 0x04, (2, -5=0xb) 0xb2
  EXPECT_TRUE(contains(h, "static const uint8_t model_w[3]")) << h;
  EXPECT_TRUE(contains(h, "0x97, 0x04, 0xb2")) << h;
}

TEST(CExport, SplitHeaderDeclaresAndSourceDefines) {
  io::CExportOptions o;
  o.prefix = "my net";
  o.header_name = "net.h";
  const io::Model m = float_model({1.0f, 2.0f});
  const std::string h = io::export_c_header(m, o);
  const std::string c = io::export_c_source(m, o);
  EXPECT_TRUE(contains(h, "extern const float my_net_w[2];")) << h;
  EXPECT_FALSE(contains(h, "= {"));
  EXPECT_TRUE(contains(c, "#include \"net.h\""));
  EXPECT_TRUE(contains(c, "TQ_MY_NET_ALIGN const float my_net_w[2] = {")) << c;
}

// The prefix is sanitised as entry names are, and never leaves "__" (reserved in C++) or a
// leading '_' (reserved at file scope in C) in a name.
TEST(CExport, PrefixIsSanitisedWithoutReservedNames) {
  const io::Model m = float_model({1.0f, 2.0f});
  const std::pair<const char*, const char*> cases[] = {
      {"net.", "net_w"},        {"a..b", "a_b_w"},  {"_x", "x_w"},   {"__x__", "x_w"},
      {"1net", "tq_1net_w"},    {"...", "model_w"}, {"", "model_w"}, {"my net", "my_net_w"},
      {"caf\xc3\xa9", "caf_w"}, {"Net", "Net_w"}};
  for (const auto& [prefix, name] : cases) {
    io::CExportOptions o;
    o.prefix = prefix;
    const std::string h = io::export_c_header(m, o);
    EXPECT_TRUE(contains(h, std::string(" const float ") + name + "[2] ")) << prefix << "\n" << h;
    EXPECT_FALSE(contains(h, "__w")) << prefix;
  }
}

// A symmetric per-channel [4][3][3][1] convolution "dw.weight" of `bits` bits.
io::Model conv_model(int bits) {
  std::vector<float> w(4 * 3 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 7) - 3.0f;
  tinyquant::QuantSpec spec = tinyquant::QuantSpec::int8_weights_per_channel(0);
  spec.bits = bits;
  io::Model m;
  m.entries.push_back(
      io::make_entry("dw.weight", tinyquant::quantize_weights(w.data(), {4, 3, 3, 1}, spec)));
  return m;
}

TEST(CExport, ConvolutionGeometriesTheKernelsCannotRunAreRejected) {
  const io::Model m8 = conv_model(8);
  io::CExportOptions o;
  o.conv["dw"] = tinyquant::Conv2dGeometry{};
  EXPECT_TRUE(contains(io::export_c_header(m8, o), "#define MODEL_DW_GROUPS 1"));
  for (const auto& [sh, sw, dh, dw] : std::vector<std::array<int32_t, 4>>{
           {0, 1, 1, 1}, {1, 0, 1, 1}, {1, 1, 0, 1}, {1, 1, 1, 0}}) {
    tinyquant::Conv2dGeometry g;
    g.stride_h = sh;
    g.stride_w = sw;
    g.dilation_h = dh;
    g.dilation_w = dw;
    o.conv["dw"] = g;
    expect_error<InvalidArgument>([&] { io::export_c_header(m8, o); },
                                  {"layer dw", "must be >= 1"});
  }
  // Groups must divide out_c = 4: 3 does not, 0 is none, 2 and 4 do.
  for (const int32_t groups : {3, 0, -2}) {
    tinyquant::Conv2dGeometry g;
    g.groups = groups;
    o.conv["dw"] = g;
    expect_error<InvalidArgument>([&] { io::export_c_header(m8, o); },
                                  {"groups = " + std::to_string(groups), "out_c = 4"});
  }
  for (const int32_t groups : {2, 4}) {
    tinyquant::Conv2dGeometry g;
    g.groups = groups;
    o.conv["dw"] = g;
    EXPECT_TRUE(
        contains(io::export_c_header(m8, o), "#define MODEL_DW_GROUPS " + std::to_string(groups)));
  }
  // rt::depthwise_conv2d_s8 takes int8 weights only: a 4-bit [4][3][3][1] layer is no depthwise
  // layer (its multiplier is an error) and has no _depthwise_weight array.
  o.conv["dw"] = tinyquant::Conv2dGeometry{};
  o.depthwise["dw"] = 2;
  const std::string h8 = io::export_c_header(m8, o);
  EXPECT_TRUE(contains(h8, "model_dw_depthwise_weight[36]")) << h8;
  EXPECT_TRUE(contains(h8, "#define MODEL_DW_GROUPS 2")) << h8;
  expect_error<InvalidArgument>([&] { io::export_c_header(conv_model(4), o); },
                                {"depthwise multiplier 2", "'dw'", "8-bit"});
}

// Entry names reach /* */ comments: a "*/" must not end the comment, control characters are
// written as \xNN so the comment stays on its line.
TEST(CExport, EntryNamesInCommentsCannotEndThemOrBreakLines) {
  io::Model m = float_model({1.0f}, "a*/b");
  m.entries.push_back(float_model({2.0f}, std::string("c\td\x1f"
                                                      "e\x7f"
                                                      "f\ng"))
                          .entries[0]);
  const std::string h = io::export_c_header(m, {});
  EXPECT_TRUE(contains(h, "'a* /b'")) << h;
  EXPECT_FALSE(contains(h, "a*/b")) << h;
  EXPECT_TRUE(contains(h, "'c\\x09d\\x1fe\\x7ff\\x0ag'")) << h;
  // Every comment opened is closed once and nothing closes a comment outside one; a comment
  // that quotes an entry name opens and closes on one line.
  size_t comments = 0;
  for (size_t i = 0; i + 1 < h.size(); ++i) {
    ASSERT_FALSE(h[i] == '*' && h[i + 1] == '/') << "a comment closed outside one at " << i;
    if (h[i] != '/' || h[i + 1] != '*') continue;
    const size_t end = h.find("*/", i + 2);
    ASSERT_NE(end, std::string::npos) << "comment at " << i << " never closed";
    const std::string body = h.substr(i + 2, end - i - 2);
    if (body.find('\'') != std::string::npos) {
      EXPECT_EQ(body.find('\n'), std::string::npos) << "comment at " << i << " spans lines";
    }
    EXPECT_EQ(body.find("/*"), std::string::npos) << "comment at " << i << " opens another";
    ++comments;
    i = end + 1;
  }
  EXPECT_GE(comments, 2u) << h;
}

TEST(CExport, BadInputsThrowNamingTheEntry) {
  expect_error<InvalidArgument>([] { io::export_c_header(io::Model{}, {}); }, {"no entries"});
  expect_error<InvalidArgument>([] { io::export_c_source(float_model({1.0f}), {}); },
                                {"header_name"});
  for (const char* name : {"a\"b.h", "a\\b.h", "a\nb.h"}) {
    io::CExportOptions split;
    split.header_name = name;
    for (int source = 0; source < 2; ++source)
      expect_error<InvalidArgument>(
          [&] {
            source != 0 ? io::export_c_source(float_model({1.0f}), split)
                        : io::export_c_header(float_model({1.0f}), split);
          },
          {"header name", "cannot be #included"});
  }
  io::Model clash = float_model({1.0f}, "a.b");
  clash.entries.push_back(float_model({2.0f}, "a_b").entries[0]);
  expect_error<InvalidArgument>([&] { io::export_c_header(clash, {}); },
                                {"'a.b'", "'a_b'", "model_a_b", "both give the C name"});
  io::Model sparse = float_model({1.0f}, "s");
  sparse.entries[0].format = 2;
  expect_error<tinyquant::FormatError>([&] { io::export_c_header(sparse, {}); },
                                       {"sparse entry 's'", "float32 [1]", "without parameters"});
  io::Model empty;
  empty.entries.push_back(io::make_entry("e", static_cast<const float*>(nullptr), {0, 3}));
  expect_error<InvalidArgument>([&] { io::export_c_header(empty, {}); },
                                {"'e'", "empty", "[0, 3]"});
  expect_error<tinyquant::DataError>(
      [] {
        io::export_c_header(float_model({1.0f, std::nanf("")}), {});
      },
      {"w[1]", "non-finite", "nan"});
}

// Entries built in memory are not checked by the file reader: a data part of the wrong size
// must stop the export naming the entry, not be read or copied past its end, nor give an array
// shorter than its _NUMEL.
TEST(CExport, DenseEntriesWithTheWrongDataSizeThrowNamingTheEntry) {
  const auto resized = [](io::Model m, size_t index, size_t bytes) {
    m.entries[index].parts[0].bytes.resize(bytes);
    return m;
  };
  expect_error<tinyquant::FormatError>(
      [&] {
        io::export_c_header(resized(float_model({1, 2, 3, 4}, "f"), 0, 12), {});
      },
      {"'f'", "float32", "[4]", "needs 16 bytes, has 12"});
  expect_error<tinyquant::FormatError>(  // not even whole floats
      [&] {
        io::export_c_header(resized(float_model({1, 2}, "f"), 0, 7), {});
      },
      {"'f'", "needs 8 bytes, has 7"});
  const std::vector<int32_t> iv = {1, 2, 3};
  io::Model ints;
  ints.entries.push_back(io::make_entry("i", iv.data(), {3}));
  expect_error<tinyquant::FormatError>([&] { io::export_c_header(resized(ints, 0, 8), {}); },
                                       {"'i'", "int32", "needs 12 bytes, has 8"});

  const io::Model m = fc_model({1, 2});
  const io::CExportOptions o = common_scales();
  expect_error<tinyquant::FormatError>([&] { io::export_c_header(resized(m, 0, 5), o); },
                                       {"'fc.weight'", "int8", "needs 6 bytes, has 5"});
  expect_error<tinyquant::FormatError>([&] { io::export_c_header(resized(m, 1, 4), o); },
                                       {"'fc.bias'", "needs 8 bytes, has 4"});
  io::Model nibbles = m;  // 4-bit parameters on int8 storage: the bytes are not a nibble stream
  nibbles.entries[0].params->spec.bits = 4;
  expect_error<tinyquant::FormatError>([&] { io::export_c_header(nibbles, o); },
                                       {"'fc.weight'", "4-bit parameters with int8 storage"});
}

TEST(CExport, LayerBiasOfTheWrongShapeIsRejected) {
  io::Model m = fc_model({1, 2, 3});
  const io::CExportOptions o = common_scales();
  expect_error<InvalidArgument>([&] { io::export_c_header(m, o); },
                                {"'fc.bias'", "shape [2]", "[3]"});
  // The bias must be float32: an int32 "fc.bias" of the right shape is no layer bias.
  io::Model ints = fc_model();
  const std::vector<int32_t> ib = {1, 2};
  ints.entries.push_back(io::make_entry("fc.bias", ib.data(), {2}));
  expect_error<InvalidArgument>([&] { io::export_c_header(ints, o); },
                                {"'fc.bias'", "dense float32 bias", "int32"});
  // Without activation parameters the layer arrays are left to the user, with a note.
  m.entries.pop_back();
  const std::string h = io::export_c_header(m, {});
  EXPECT_TRUE(contains(h, "no activation parameters given"));
  EXPECT_FALSE(contains(h, "_multipliers"));
}

// A quantized bias (`quantize --quantize-1d`) cannot give the kernel's int32 bias, but the model
// still exports as arrays when no layer parameters are asked for; asking for them says why not.
TEST(CExport, QuantizedBiasExportsAsAnArrayButGivesNoLayerParameters) {
  io::Model m = fc_model();
  const std::vector<float> b = {0.5f, -0.25f};
  m.entries.push_back(io::make_entry(
      "fc.bias", tinyquant::quantize_weights(b.data(), {2}, tinyquant::QuantSpec{})));
  const std::string h = io::export_c_header(m, {});
  EXPECT_TRUE(contains(h, "fc_bias")) << h;
  EXPECT_TRUE(contains(h, "no activation parameters given")) << h;
  expect_error<InvalidArgument>(
      [&] { io::export_c_header(m, common_scales()); },
      {"'fc.bias'", "dense float32 bias", "got int8 [2]", "keep biases float32"});
}

TEST(CExport, ScalesFormReplacesMultipliersAndShiftsAndReluSetsTheClamp) {
  const io::Model m = fc_model();
  io::CExportOptions o;
  o.layers["fc"] = io::LayerActivations{{0.1f, 0}, {0.2f, -1}, tinyquant::Activation::kRelu};
  std::string h = io::export_c_header(m, o);  // default: the multipliers form
  EXPECT_TRUE(contains(h, "model_fc_multipliers[2]")) << h;
  EXPECT_TRUE(contains(h, "model_fc_shifts[2]")) << h;
  EXPECT_FALSE(contains(h, "_requant_scales")) << h;
  EXPECT_FALSE(contains(h, "MODEL_FC_INPUT_SCALE")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_FC_ACT_MIN (-1)\n#define MODEL_FC_ACT_MAX 127")) << h;
  // A layer's own parameters win over the common pair (no ReLU: the full int8 range).
  io::CExportOptions both = o;
  both.input = tinyquant::ActivationParams{0.1f, 0};
  both.output = tinyquant::ActivationParams{0.2f, 0};
  EXPECT_TRUE(contains(io::export_c_header(m, both), "#define MODEL_FC_ACT_MIN (-1)\n"));
  both.layers.clear();
  EXPECT_TRUE(contains(io::export_c_header(m, both), "#define MODEL_FC_ACT_MIN (-128)\n"));
  o.requant = io::RequantForm::kScales;
  h = io::export_c_header(m, o);
  EXPECT_TRUE(contains(h, "static const float model_fc_requant_scales[2]")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_FC_INPUT_SCALE 0.1f\n#define MODEL_FC_OUTPUT_SCALE 0.2f"))
      << h;
  EXPECT_TRUE(contains(h, "multipliers_from_scales(X_INPUT_SCALE")) << h;  // the init call
  EXPECT_FALSE(contains(h, "_multipliers[")) << h;
  EXPECT_FALSE(contains(h, "_shifts[")) << h;
  EXPECT_TRUE(contains(h, "model_fc_kernel_bias[2]")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_FC_ACT_MIN (-1)")) << h;
}

// A 4x8 int8 matrix with zeros: row 1 empty, row 3 dense, 2 nonzeros per group of 4 elsewhere.
// Its values lie in [-7, 7], the codes of params_for(bits) for 4 bits and more.
std::vector<int8_t> pruned_matrix() {
  return {5, 0, -3, 0, 0, 7, 0, 1,   //
          0, 0, 0,  0, 0, 0, 0, 0,   //
          0, 0, -7, 6, 2, 0, 0, -1,  //
          1, 2, 3,  4, 5, 6, 7, -7};
}

tinyquant::QuantParams params_for(int bits) {
  tinyquant::QuantSpec spec;
  spec.bits = bits;
  spec.scheme = tinyquant::Scheme::kSymmetric;
  spec.narrow_range = true;
  spec.granularity = tinyquant::Granularity::kPerChannel;
  spec.axis = 0;
  tinyquant::QuantParams p;
  p.spec = spec;
  p.scales = {0.5f, 0.25f, 0.125f, 1.0f};
  p.zero_points = {0, 0, 0, 0};
  return p;
}

TEST(CExport, SparseEntriesSurviveTheFileInEveryFormatAndValueType) {
  const std::vector<int8_t> dense = pruned_matrix();
  for (const tinyquant::ValueType vt : {tinyquant::ValueType::kInt8, tinyquant::ValueType::kInt4}) {
    for (const tinyquant::StorageFormat f :
         {tinyquant::StorageFormat::kCsrU8, tinyquant::StorageFormat::kCsrU16,
          tinyquant::StorageFormat::kBlockCsr, tinyquant::StorageFormat::kBitmap,
          tinyquant::StorageFormat::kNm}) {
      SCOPED_TRACE(tinyquant::to_string(f));
      tinyquant::SparseOptions o;
      o.format = f;
      o.value_type = vt;
      o.nm_n = 4;  // row 3 is dense: 4 of 4
      o.nm_m = 4;
      o.block_rows = 2;
      o.block_cols = 4;
      const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
      io::Model model;
      model.entries.push_back(io::make_sparse_entry(
          "fc.weight", m, params_for(vt == tinyquant::ValueType::kInt8 ? 8 : 4)));
      EXPECT_EQ(model.entries[0].format, static_cast<uint8_t>(f));
      const std::vector<uint8_t> bytes = io::serialize_model(model);
      const io::Model back = io::parse_model(bytes.data(), bytes.size());
      const tinyquant::SparseMatrix r = io::sparse_matrix(back.entries[0]);
      EXPECT_EQ(r.to_dense(), dense);  // the matrix written, element by element
      EXPECT_EQ(r.bytes(), m.bytes());
      EXPECT_EQ(r.options().nm_n, 4);
      EXPECT_EQ(r.options().block_cols, 4);
      const std::string h = io::export_c_header(back, {});
      EXPECT_TRUE(contains(h, "#define MODEL_FC_WEIGHT_SPARSE_BYTES " + std::to_string(m.bytes())))
          << h;
      EXPECT_TRUE(contains(h, vt == tinyquant::ValueType::kInt8
                                  ? "static const int8_t model_fc_weight_values["
                                  : "static const uint8_t model_fc_weight_values["))
          << h;
    }
  }
}

TEST(CExport, SparseLayersGetTheSparseKernelsRequantizationButNotPerGroupRatios) {
  const std::vector<int8_t> dense = pruned_matrix();
  tinyquant::SparseOptions o;  // CSR u8
  const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
  io::CExportOptions opt;
  opt.input = tinyquant::ActivationParams{0.1f, 2};
  opt.output = tinyquant::ActivationParams{0.2f, -1};
  io::Model model;
  model.entries.push_back(io::make_sparse_entry("fc.weight", m, params_for(8)));
  std::string h = io::export_c_header(model, opt);
  EXPECT_TRUE(contains(h, "model_fc_multipliers[4]")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_FC_INPUT_OFFSET 0")) << h;  // folded into the bias
  EXPECT_FALSE(contains(h, "storage only")) << h;
  // Per-group int8 weights: the sparse kernel has no group ratios, so no layer arrays.
  tinyquant::QuantParams grouped;
  grouped.spec.bits = 8;
  grouped.spec.scheme = tinyquant::Scheme::kSymmetric;
  grouped.spec.narrow_range = true;
  grouped.spec.granularity = tinyquant::Granularity::kPerGroup;
  grouped.spec.axis = 1;
  grouped.spec.group_size = 4;
  grouped.scales.assign(8, 0.5f);
  grouped.zero_points.assign(8, 0);
  model.entries[0] = io::make_sparse_entry("fc.weight", m, grouped);
  h = io::export_c_header(model, opt);
  EXPECT_FALSE(contains(h, "_multipliers")) << h;
  EXPECT_FALSE(contains(h, "_group_ratios")) << h;
  EXPECT_TRUE(contains(h, "model_fc_weight_values[")) << h;
  EXPECT_TRUE(contains(h, "storage only: rt::sparse_fully_connected_s8 takes int8")) << h;
  // int4 values: no sparse kernel takes them; the header says so instead of leaving them out
  // without a word.
  tinyquant::SparseOptions o4 = o;
  o4.value_type = tinyquant::ValueType::kInt4;
  model.entries[0] = io::make_sparse_entry(
      "fc.weight", tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o4), params_for(4));
  h = io::export_c_header(model, opt);
  EXPECT_FALSE(contains(h, "_multipliers")) << h;
  EXPECT_TRUE(contains(h, "s4 nibble stream of values; storage only")) << h;
}

// A "X.weight" no kernel runs gets a note saying why instead of silently no layer arrays, and
// activation parameters given for it say why too.
TEST(CExport, WeightsNoKernelRunsAreNamedWithTheReason) {
  std::vector<float> w(4 * 3 * 3 * 2);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 7) - 3.0f;
  tinyquant::QuantSpec affine = tinyquant::QuantSpec::int8_weights_per_channel();
  affine.scheme = tinyquant::Scheme::kAffine;
  affine.narrow_range = false;
  tinyquant::QuantSpec six = tinyquant::QuantSpec::int8_weights_per_channel();
  six.bits = 6;
  io::Model m;
  m.entries.push_back(
      io::make_entry("fc.weight", tinyquant::quantize_weights(w.data(), {4, 18}, affine)));
  m.entries.push_back(
      io::make_entry("conv.weight", tinyquant::quantize_weights(w.data(), {4, 3, 3, 2}, six)));
  const std::vector<int8_t> dense = pruned_matrix();
  tinyquant::SparseOptions so;
  so.value_type = tinyquant::ValueType::kInt4;
  m.entries.push_back(io::make_sparse_entry(
      "sp.weight", tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, so), params_for(4)));
  // Per-group along the outputs (axis 0), an affine convolution, and a weight named only
  // ".weight" (no layer name).
  m.entries.push_back(io::make_entry(
      "grp.weight",
      tinyquant::quantize_weights(w.data(), {4, 18}, tinyquant::QuantSpec::int4_per_group(2, 0))));
  tinyquant::QuantSpec affine_tensor;  // 8-bit affine per-tensor
  m.entries.push_back(io::make_entry(
      "aconv.weight", tinyquant::quantize_weights(w.data(), {4, 3, 3, 2}, affine_tensor)));
  m.entries.push_back(io::make_entry(
      ".weight", tinyquant::quantize_weights(w.data(), {4, 18},
                                             tinyquant::QuantSpec::int8_weights_per_channel())));
  const std::string h = io::export_c_header(m, common_scales());
  EXPECT_FALSE(contains(h, "_multipliers")) << h;
  EXPECT_TRUE(contains(h,
                       "/* layer fc: no kernel parameters: 'fc.weight' holds 8-bit affine "
                       "per-channel (axis 0) weights, none of what the fully-connected "
                       "kernels take"))
      << h;
  EXPECT_TRUE(contains(h,
                       "/* layer conv: no kernel parameters: 'conv.weight' holds 6-bit "
                       "symmetric per-channel (axis 0) weights, none of what the conv kernels "
                       "take"))
      << h;
  EXPECT_TRUE(contains(h,
                       "/* layer grp: no kernel parameters: 'grp.weight' holds 4-bit "
                       "symmetric per-group (axis 0)"))
      << h;
  EXPECT_TRUE(contains(h,
                       "/* layer aconv: no kernel parameters: 'aconv.weight' holds 8-bit "
                       "affine per-tensor"))
      << h;
  for (const char* layer : {"fc", "conv", "sp"}) {
    io::CExportOptions one;
    one.layers[layer] = io::LayerActivations{{0.1f, 0}, {0.2f, 0}};
    expect_error<InvalidArgument>(
        [&] { io::export_c_header(m, one); },
        {"activation parameters given for layer '" + std::string(layer) + "'",
         "'" + std::string(layer) + ".weight'", std::string(layer) == "sp" ? "sparse" : "holds"});
  }
}

TEST(CExport, AFullyPrunedMatrixGetsOneUnusedElementPerEmptyArray) {
  const std::vector<int8_t> zeros(2 * 3, 0);
  tinyquant::SparseOptions o;  // CSR u8
  const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(zeros.data(), 2, 3, o);
  tinyquant::QuantParams p = params_for(8);
  p.scales.resize(2);
  p.zero_points.resize(2);
  io::Model model;
  model.entries.push_back(io::make_sparse_entry("w", m, p));
  const std::string h = io::export_c_header(model, {});
  EXPECT_TRUE(contains(h, "#define MODEL_W_VALUE_COUNT 0")) << h;
  EXPECT_TRUE(contains(h, "model_w_values[1] TQ_MODEL_UNUSED = {\n    0\n};")) << h;
  EXPECT_TRUE(contains(h, "(empty: one unused element)")) << h;
  EXPECT_TRUE(contains(h, "model_w_row_nnz[2] TQ_MODEL_UNUSED = {\n    0, 0\n};")) << h;
}

// An odd number of int4 values fills (count + 1) / 2 bytes, the last high nibble unused.
TEST(CExport, SparseInt4EntryWithAnOddValueCountRoundTrips) {
  std::vector<int8_t> dense(4 * 8, 0);
  dense[1] = 3;
  dense[10] = -7;
  dense[31] = 5;
  tinyquant::SparseOptions o;
  o.format = tinyquant::StorageFormat::kCsrU16;
  o.value_type = tinyquant::ValueType::kInt4;
  const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
  const io::ModelEntry e = io::make_sparse_entry("w", m, params_for(4));
  EXPECT_EQ(e.part("values").bytes.size(), 2u);
  EXPECT_EQ(io::sparse_matrix(e).to_dense(), dense);
}

// Sparse layers are run up to the kernels' int32 element count, far past 16-bit sizes:
// 200 x 200 = 40000 elements with one nonzero per row.
TEST(CExport, LargeSparseLayerGetsItsLayerArrays) {
  const int64_t n = 200;
  std::vector<int8_t> dense(static_cast<size_t>(n * n), 0);
  for (int64_t r = 0; r < n; ++r) dense[static_cast<size_t>(r * n + (r * 7) % n)] = 9;
  tinyquant::SparseOptions o;
  o.format = tinyquant::StorageFormat::kCsrU16;
  const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), n, n, o);
  tinyquant::QuantParams p = params_for(8);
  p.scales.assign(static_cast<size_t>(n), 0.01f);
  p.zero_points.assign(static_cast<size_t>(n), 0);
  io::Model model;
  model.entries.push_back(io::make_sparse_entry("fc.weight", m, p));
  const std::string h = io::export_c_header(model, common_scales());
  EXPECT_TRUE(contains(h, "model_fc_multipliers[200]")) << h.substr(0, 2000);
  EXPECT_TRUE(contains(h, "#define MODEL_FC_IN_FEATURES 200")) << h.substr(0, 2000);
}

TEST(CExport, BadSparseEntriesThrowNamingTheEntryAndThePart) {
  const std::vector<int8_t> dense = pruned_matrix();
  tinyquant::SparseOptions o;
  o.format = tinyquant::StorageFormat::kCsrU16;
  const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
  expect_error<InvalidArgument>([&] { io::make_sparse_entry("w", m, params_for(4)); },
                                {"'w'", "4-bit parameters for int8 values"});
  const io::ModelEntry good = io::make_sparse_entry("w", m, params_for(8));
  const auto broken = [&](const std::function<void(io::ModelEntry*)>& edit) {
    io::ModelEntry e = good;
    edit(&e);
    return [e] { io::sparse_matrix(e); };
  };
  expect_error<tinyquant::FormatError>(broken([](io::ModelEntry* e) { e->format = 9; }),
                                       {"'w'", "format 9"});
  // The sparse formats are 1..5: the first past them and 0 (dense) are not.
  expect_error<tinyquant::FormatError>(broken([](io::ModelEntry* e) { e->format = 6; }),
                                       {"'w'", "format 6", "(1..5)"});
  expect_error<tinyquant::FormatError>(broken([](io::ModelEntry* e) { e->format = 0; }),
                                       {"'w'", "format 0"});
  // Layout values are uint32 on file but int32 in the matrix: 2^31 is out of range.
  expect_error<tinyquant::FormatError>(
      broken([](io::ModelEntry* e) { e->parts[0].bytes[7] = 0x80; }),  // nm_n (2) + 2^31
      {"'w'", "layout nm_n = 2147483650", "out of range"});
  expect_error<tinyquant::FormatError>(
      broken([](io::ModelEntry* e) { e->parts[0].bytes.resize(16); }),
      {"'w'", "'layout' holds 4 values, expected 5"});
  expect_error<tinyquant::FormatError>(
      broken([](io::ModelEntry* e) { e->parts[1].bytes.pop_back(); }),
      {"'w'", "'values'", "need 16"});
  expect_error<tinyquant::FormatError>(
      broken([](io::ModelEntry* e) { e->parts[3].bytes.pop_back(); }),
      {"'w'", "'col_index'", "not a multiple of 2"});
  expect_error<tinyquant::FormatError>(
      broken([](io::ModelEntry* e) { e->parts[3].bytes[0] = 8; }),  // column 8 of 8
      {"sparse entry 'w'", "column"});
  // A few bytes describing a huge empty matrix: valid, but no layer the kernels can run, and
  // the export does not build a dense copy of it.
  tinyquant::SparseArrays none;
  none.row_nnz = {0, 0};
  const tinyquant::SparseMatrix huge = tinyquant::SparseMatrix::from_arrays(
      2, (int64_t{1} << 30) + 1, tinyquant::SparseOptions{}, none);
  tinyquant::QuantParams p = params_for(8);
  p.scales.resize(2);
  p.zero_points.resize(2);
  io::Model model;
  model.entries.push_back(io::make_sparse_entry("fc.weight", huge, p));
  expect_error<InvalidArgument>([&] { io::export_c_header(model, common_scales()); },
                                {"'fc.weight'", "2x1073741825", "int32 element count"});
}

// A sparse entry's stored values are codes of its parameters: one outside their [qmin, qmax]
// (int8 127 under 5-bit parameters) is refused, naming the entry, the stored value, the code and
// the range, rather than exported with _BITS 5. Every value type and format.
TEST(CExport, SparseValuesOutsideTheParametersRangeAreRejected) {
  const auto entry = [](tinyquant::ValueType vt, tinyquant::StorageFormat f, int8_t corner,
                        int bits) {
    std::vector<int8_t> dense = pruned_matrix();
    dense[7] = corner;  // row 0's fourth stored value (1 before)
    tinyquant::SparseOptions o;
    o.format = f;
    o.value_type = vt;
    o.nm_n = 4;
    o.nm_m = 4;
    o.block_rows = 2;
    o.block_cols = 4;
    const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
    // Built under full-range parameters of the value type (make_sparse_entry refuses codes
    // outside the parameters it is given), then given the narrower ones to read back.
    tinyquant::QuantParams built = params_for(vt == tinyquant::ValueType::kInt8 ? 8 : 4);
    built.spec.narrow_range = false;
    io::Model model;
    model.entries.push_back(io::make_sparse_entry("fc.weight", m, built));
    model.entries[0].params = params_for(bits);  // narrow range: [-(2^(bits-1) - 1), ...]
    return model;
  };
  // make_sparse_entry refuses the same codes under the parameters it is given.
  {
    std::vector<int8_t> dense = pruned_matrix();
    dense[7] = -8;
    tinyquant::SparseOptions o;
    o.format = tinyquant::StorageFormat::kCsrU8;
    o.value_type = tinyquant::ValueType::kInt4;
    const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
    expect_error<InvalidArgument>(
        [&] { io::make_sparse_entry("fc.weight", m, params_for(4)); },
        {"make_sparse_entry: 'fc.weight': stored value 3 holds code -8, outside the 4-bit narrow "
         "range [-7, 7]"});
  }
  for (const tinyquant::StorageFormat f :
       {tinyquant::StorageFormat::kCsrU8, tinyquant::StorageFormat::kCsrU16,
        tinyquant::StorageFormat::kBlockCsr, tinyquant::StorageFormat::kBitmap,
        tinyquant::StorageFormat::kNm}) {
    SCOPED_TRACE(tinyquant::to_string(f));
    const tinyquant::ValueType s8 = tinyquant::ValueType::kInt8, s4 = tinyquant::ValueType::kInt4;
    expect_error<tinyquant::FormatError>([&] { io::export_c_header(entry(s8, f, 127, 5), {}); },
                                         {"sparse entry 'fc.weight': stored value ",
                                          " holds code 127, outside the 5-bit narrow "
                                          "range [-15, 15]"});
    expect_error<tinyquant::FormatError>(
        [&] { io::export_c_header(entry(s8, f, -16, 5), {}); },
        {"'fc.weight'", "holds code -16, outside the 5-bit narrow range [-15, 15]"});
    // int4 values: -8 is a nibble, but no code of narrow 4-bit parameters.
    expect_error<tinyquant::FormatError>(
        [&] { io::sparse_matrix(entry(s4, f, -8, 4).entries[0]); },
        {"'fc.weight'", "holds code -8, outside the 4-bit narrow range [-7, 7]"});
    // The ends of the ranges, with every other value of pruned_matrix(), are accepted.
    for (const int8_t corner : {int8_t{15}, int8_t{-15}})
      EXPECT_TRUE(contains(io::export_c_header(entry(s8, f, corner, 5), {}),
                           "#define MODEL_FC_WEIGHT_BITS 5"));
    for (const int8_t corner : {int8_t{7}, int8_t{-7}})
      EXPECT_TRUE(contains(io::export_c_header(entry(s4, f, corner, 4), {}),
                           "#define MODEL_FC_WEIGHT_BITS 4"));
  }
  // Stored values are counted in storage order: CSR row 0 holds 5, -3, 7, then the corner. Full
  // range parameters take -16 too.
  const auto wide = [&](int8_t corner) {
    io::Model m = entry(tinyquant::ValueType::kInt8, tinyquant::StorageFormat::kCsrU16, corner, 5);
    m.entries[0].params->spec.narrow_range = false;
    return m;
  };
  expect_error<tinyquant::FormatError>(
      [&] { io::export_c_header(wide(127), {}); },
      {"sparse entry 'fc.weight': stored value 3 holds code 127, outside the 5-bit range [-16, "
       "15]"});
  EXPECT_NO_THROW(io::export_c_header(wide(-16), {}));
}

// 16-bit entries ship as int16_t, one C literal per element (negative ones parenthesised).
TEST(CExport, SixteenBitEntriesAreInt16Arrays) {
  tinyquant::QuantParams p;
  p.spec.bits = 16;
  p.scales = {0.5f};
  p.zero_points = {0};
  const std::vector<int32_t> v = {1000, -32768, 32767};
  io::Model m;
  m.entries.push_back(io::make_entry("s16", tinyquant::from_integers(v.data(), {3}, p)));
  const std::string h = io::export_c_header(m, {});
  EXPECT_TRUE(contains(h, "#define MODEL_S16_BITS 16")) << h;
  EXPECT_TRUE(contains(h,
                       "static const int16_t model_s16[3] TQ_MODEL_UNUSED = {\n"
                       "    1000, (-32768), 32767\n};"))
      << h;
}

// Without parameters only float32 and int32 data can be written out.
TEST(CExport, UnquantizedIntegerStorageOtherThanInt32IsRejected) {
  const std::vector<float> f = {1.0f, 2.0f};
  for (const auto& [storage, bytes, name] : {std::tuple{io::Storage::kInt8, size_t{2}, "int8"},
                                             std::tuple{io::Storage::kInt16, size_t{4}, "int16"},
                                             std::tuple{io::Storage::kInt4, size_t{1}, "int4"}}) {
    io::Model m = float_model(f, "x");
    m.entries[0].storage = storage;
    m.entries[0].parts[0].bytes.resize(bytes);
    expect_error<InvalidArgument>(
        [&] { io::export_c_header(m, {}); },
        {"export-c: entry 'x': unquantized " + std::string(name) + " storage is not supported"});
  }
}

// A convolution without a geometry gets its shape macros and a note saying the geometry macros
// are missing, and none of them.
TEST(CExport, ConvolutionWithoutGeometryIsNoted) {
  const std::string h = io::export_c_header(conv_model(8), {});
  EXPECT_TRUE(contains(h, "#define MODEL_DW_OUT_C 4")) << h;
  EXPECT_TRUE(contains(h, "#define MODEL_DW_KERNEL_H 3")) << h;
  EXPECT_TRUE(contains(h,
                       "/* layer dw: convolution; stride, padding, dilation and groups are not in "
                       "the model file and were not given, so the header has no _STRIDE_* / "
                       "_PAD* / _DILATION_* / _GROUPS */"))
      << h;
  EXPECT_FALSE(contains(h, "MODEL_DW_STRIDE_H")) << h;
  EXPECT_FALSE(contains(h, "MODEL_DW_GROUPS")) << h;
}

// A padding value outside the enum (SAME = 1, VALID = 0) is refused by number.
TEST(CExport, UnknownPaddingIsRejected) {
  io::CExportOptions o;
  tinyquant::Conv2dGeometry g;
  g.padding = static_cast<tinyquant::Padding>(7);
  o.conv["dw"] = g;
  expect_error<InvalidArgument>([&] { io::export_c_header(conv_model(8), o); },
                                {"export-c: layer dw: unknown padding 7"});
}

// uint32 parts ("layout", "block_row_ptr") must hold whole 4-byte values.
TEST(CExport, Uint32PartsOfTheWrongLengthAreRejected) {
  const std::vector<int8_t> dense = pruned_matrix();
  tinyquant::SparseOptions o;
  o.format = tinyquant::StorageFormat::kBlockCsr;
  o.block_rows = 2;
  o.block_cols = 4;
  const tinyquant::SparseMatrix m = tinyquant::SparseMatrix::from_dense(dense.data(), 4, 8, o);
  const io::ModelEntry good = io::make_sparse_entry("w", m, params_for(8));
  EXPECT_EQ(io::sparse_matrix(good).to_dense(), dense);
  for (const char* part : {"layout", "block_row_ptr"}) {
    io::ModelEntry e = good;
    size_t size = 0;
    for (io::ModelPart& p : e.parts)
      if (p.name == part) {
        p.bytes.pop_back();
        size = p.bytes.size();
      }
    ASSERT_EQ(size % 4, 3u) << part;
    expect_error<tinyquant::FormatError>(
        [&] { io::sparse_matrix(e); }, {"sparse entry 'w': part '" + std::string(part) + "' has " +
                                        std::to_string(size) + " bytes, not a multiple of 4"});
  }
}

}  // namespace

// Entry names in the exporter's errors are shown with control bytes as \xNN.
TEST(CExport, ControlBytesInNamesAreEscapedInErrors) {
  // "x\x01" and "x\x02" both sanitise to the C name model_x_.
  io::Model m = float_model({1.0f}, "x\x01");
  m.entries.push_back(float_model({2.0f}, "x\x02").entries[0]);
  expect_error<InvalidArgument>([&] { io::export_c_header(m, {}); },
                                {"entries 'x\\x01' and 'x\\x02' both give the C name"});
}
