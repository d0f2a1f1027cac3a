// The model file: round trips, alignment, CRC-32 against zlib, every truncation and every single
// bit flip rejected, and atomic saving (a killed writer never leaves a partial file).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <thread>
#include <tuple>

#include "expect_error.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/atomic_file.hpp"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/io/npy.hpp"

using namespace tinyquant;
using namespace tinyquant::io;
using tq_test::expect_error;

namespace {

// The path of a file whose path starts with prefix (in prefix's directory), else "".
std::string file_with_prefix(const std::string& prefix) {
  const std::filesystem::path p(prefix);
  const std::string name = p.filename().string();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path(), ec))
    if (e.path().filename().string().rfind(name, 0) == 0) return e.path().string();
  return {};
}

Model sample_model() {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> w(12 * 10);
  for (float& v : w) v = n(rng);
  Model m;
  m.entries.push_back(make_entry(
      "fc1.weight", quantize_weights(w.data(), {12, 10}, QuantSpec::int8_weights_per_channel(0))));
  m.entries.push_back(make_entry(
      "fc1.weight_int4", quantize_weights(w.data(), {12, 10}, QuantSpec::int4_per_group(4, 1))));
  const std::vector<int32_t> bias{1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12};
  m.entries.push_back(make_entry("fc1.bias", bias.data(), {12}));
  m.entries.push_back(make_entry("input.example", w.data(), {3, 5}));
  ModelEntry sparse;
  sparse.name = "fc2.weight";
  sparse.storage = Storage::kInt8;
  sparse.shape = {4, 4};
  sparse.format = 3;
  sparse.parts.push_back({"bitmap", {0x0F, 0xF0}});
  sparse.parts.push_back({"values", {1, 2, 3, 4, 5, 6, 7, 8}});
  m.entries.push_back(sparse);
  return m;
}

void expect_equal(const Model& a, const Model& b) {
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const ModelEntry &x = a.entries[i], &y = b.entries[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.storage, y.storage);
    EXPECT_EQ(x.shape, y.shape);
    EXPECT_EQ(x.format, y.format);
    ASSERT_EQ(x.params.has_value(), y.params.has_value());
    if (x.params) {
      EXPECT_EQ(x.params->scales, y.params->scales);
      EXPECT_EQ(x.params->zero_points, y.params->zero_points);
      EXPECT_EQ(x.params->spec.bits, y.params->spec.bits);
      EXPECT_EQ(x.params->spec.granularity, y.params->spec.granularity);
      EXPECT_EQ(x.params->spec.group_size, y.params->spec.group_size);
      EXPECT_EQ(x.params->spec.axis, y.params->spec.axis);
    }
    ASSERT_EQ(x.parts.size(), y.parts.size());
    for (size_t k = 0; k < x.parts.size(); ++k) {
      EXPECT_EQ(x.parts[k].name, y.parts[k].name);
      EXPECT_EQ(x.parts[k].bytes, y.parts[k].bytes);
    }
  }
}

std::string error_of(const std::vector<uint8_t>& b) {
  try {
    parse_model(b.data(), b.size(), "m.tqm");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelFile, Crc32MatchesZlib) {
  const char* s = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  std::vector<uint8_t> buf(10000);
  std::mt19937 rng(2);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  EXPECT_EQ(crc32(buf.data(), buf.size()),
            static_cast<uint32_t>(::crc32(0L, buf.data(), static_cast<uInt>(buf.size()))));
}

TEST(ModelFile, RoundTripAndAlignment) {
  const Model m = sample_model();
  const std::vector<uint8_t> bytes = serialize_model(m);
  EXPECT_EQ(bytes.size() % 64, 0u);
  const Model back = parse_model(bytes.data(), bytes.size());
  expect_equal(m, back);
  EXPECT_EQ(to_qtensor(back.find("fc1.weight")).data, m.entries[0].parts[0].bytes);
  EXPECT_EQ(to_int32(back.find("fc1.bias"))[11], -12);
  // Every part's data starts at a 64-byte boundary of the file (so it can be mapped or placed
  // in flash as is): find each part's bytes in the file.
  for (const ModelEntry& e : m.entries)
    for (const ModelPart& p : e.parts) {
      bool found_aligned = false;
      for (size_t at = 0; at + p.bytes.size() <= bytes.size(); at += 64)
        if (std::memcmp(bytes.data() + at, p.bytes.data(), p.bytes.size()) == 0)
          found_aligned = true;
      EXPECT_TRUE(found_aligned) << e.name << "/" << p.name;
    }
}

TEST(ModelFile, EveryTruncationIsRejected) {
  const std::vector<uint8_t> bytes = serialize_model(sample_model());
  for (size_t len = 0; len < bytes.size(); ++len) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(len));
    ASSERT_NE(error_of(cut), "") << "truncated to " << len << " bytes was accepted";
  }
  EXPECT_NE(error_of(std::vector<uint8_t>(bytes.begin(), bytes.end() - 64)).find("truncated"),
            std::string::npos);
}

TEST(ModelFile, EveryBitFlipIsRejected) {
  const std::vector<uint8_t> bytes = serialize_model(sample_model());
  std::vector<uint8_t> b = bytes;
  for (size_t i = 0; i < b.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      b[i] ^= static_cast<uint8_t>(1u << bit);
      ASSERT_NE(error_of(b), "") << "flip of bit " << bit << " of byte " << i << " was accepted";
      b[i] = bytes[i];
    }
}

TEST(ModelFile, MessagesSayWhatAndWhere) {
  std::vector<uint8_t> b = serialize_model(sample_model());
  std::vector<uint8_t> c = b;
  c[0] = 'X';
  EXPECT_NE(error_of(c).find("bad magic"), std::string::npos) << error_of(c);
  c = b;
  c[70] ^= 1;  // inside the first entry header
  EXPECT_NE(error_of(c).find("entry 0: entry header CRC mismatch"), std::string::npos)
      << error_of(c);
  c = b;
  c[b.size() - 1] ^= 0x80;  // last payload padding / data
  const std::string msg = error_of(c);
  EXPECT_TRUE(msg.find("CRC mismatch") != std::string::npos ||
              msg.find("padding") != std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.tqm"), std::string::npos);
  c = b;
  c.push_back(0);
  EXPECT_NE(error_of(c).find("trailing bytes"), std::string::npos) << error_of(c);
}

TEST(ModelFile, RejectsInvalidModelsOnWrite) {
  Model m = sample_model();
  m.entries[1].name = m.entries[0].name;
  EXPECT_THROW(serialize_model(m), InvalidArgument);
  m = sample_model();
  m.entries[0].parts[0].bytes.pop_back();
  try {
    serialize_model(m);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("needs 120 bytes, has 119"), std::string::npos)
        << e.what();
  }
  m = sample_model();
  m.entries[0].name = "";
  EXPECT_THROW(serialize_model(m), InvalidArgument);
  EXPECT_THROW(sample_model().find("nope"), InvalidArgument);
}

TEST(ModelFile, MakeEntryRefusesNullData) {
  tq_test::expect_error<InvalidArgument>(
      [] { io::make_entry("w", static_cast<const float*>(nullptr), Shape{3}); },
      {"make_entry 'w': data is null for shape [3]"});
  tq_test::expect_error<InvalidArgument>(
      [] {
        io::make_entry("b", static_cast<const int32_t*>(nullptr), Shape{2, 2});
      },
      {"make_entry 'b': data is null"});
  // No elements, nothing to read: null is fine.
  const io::ModelEntry e = io::make_entry("e", static_cast<const float*>(nullptr), Shape{0});
  EXPECT_TRUE(e.part("data").bytes.empty());
}

TEST(ModelFile, SaveAndLoad) {
  const std::string dir = testing::TempDir();
  const std::string path = dir + "/tq_model_test_" + std::to_string(::getpid()) + ".tqm";
  const Model m = sample_model();
  save_model(m, path);
  expect_equal(m, load_model(path));
  try {
    save_model(m, dir + "/no/such/dir/x.tqm");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_model(dir + "/missing.tqm"), IoError);
  std::remove(path.c_str());
  // An empty path is refused as such, not as a rename to "" that failed.
  try {
    save_model(m, "");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_STREQ(e.what(), "cannot write a file: the path is empty");
  }
}

// The rename that makes a write atomic would replace whatever sits at the path: a symbolic link
// is followed to the file it names, and a directory or FIFO is refused, naming the path.
TEST(ModelFile, SaveFollowsLinksAndRefusesWhatIsNotAFile) {
  const std::string dir = testing::TempDir() + "/tq_model_links_" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const Model m = sample_model();
  ASSERT_EQ(::mkdir((dir + "/sub").c_str(), 0755), 0);
  const std::string target = dir + "/sub/target.tqm";
  Model old_model = sample_model();
  old_model.entries[0].name = "old";
  save_model(old_model, target);  // an old file behind the link
  ASSERT_EQ(::symlink("sub/target.tqm", (dir + "/link.tqm").c_str()), 0);  // relative link
  ASSERT_EQ(::symlink("link.tqm", (dir + "/link2.tqm").c_str()), 0);       // link to a link
  save_model(m, dir + "/link2.tqm");
  struct stat st {};
  ASSERT_EQ(::lstat((dir + "/link2.tqm").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::lstat((dir + "/link.tqm").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  expect_equal(m, load_model(target));
  // A dangling link: the file it names is created.
  ASSERT_EQ(::symlink("sub/new.tqm", (dir + "/dangling.tqm").c_str()), 0);
  save_model(m, dir + "/dangling.tqm");
  expect_equal(m, load_model(dir + "/sub/new.tqm"));
  // Not regular files.
  ASSERT_EQ(::mkfifo((dir + "/fifo.tqm").c_str(), 0644), 0);
  // (A device such as /dev/null is refused the same way; it is not used here, so that a broken
  // build cannot replace it.)
  for (const std::string& bad : {dir + "/fifo.tqm", dir + "/sub"}) {
    try {
      save_model(m, bad);
      ADD_FAILURE() << bad;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
  ASSERT_EQ(::lstat((dir + "/fifo.tqm").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // A loop of links.
  ASSERT_EQ(::symlink("loop_b.tqm", (dir + "/loop_a.tqm").c_str()), 0);
  ASSERT_EQ(::symlink("loop_a.tqm", (dir + "/loop_b.tqm").c_str()), 0);
  EXPECT_THROW(save_model(m, dir + "/loop_a.tqm"), IoError);
  for (const char* f : {"/link2.tqm", "/link.tqm", "/dangling.tqm", "/fifo.tqm", "/loop_a.tqm",
                        "/loop_b.tqm", "/sub/target.tqm", "/sub/new.tqm"})
    std::remove((dir + f).c_str());
  ::rmdir((dir + "/sub").c_str());
  ::rmdir(dir.c_str());
}

// A writer killed at any moment leaves either the old complete file or the new complete file
// under the final name, never a partial one.
TEST(ModelFile, KilledWriterNeverLeavesAPartialFile) {
  const std::string path =
      testing::TempDir() + "/tq_model_kill_" + std::to_string(::getpid()) + ".tqm";
  const Model old_model = sample_model();
  save_model(old_model, path);
  Model big;
  std::vector<float> data(16 * 1024 * 1024, 0.25f);  // 64 MiB: takes a while to write
  big.entries.push_back(make_entry("big", data.data(), {static_cast<int64_t>(data.size())}));
  const size_t full_size = serialize_model(big).size();
  int killed_mid_write = 0;
  // Kill the writer as soon as its temporary appears, then a little later each round, so the
  // kill lands while the bytes are being written or flushed. On a loaded machine the writer may
  // finish its bytes before the kill in all four; then up to eight more immediate kills.
  const int delays[] = {0, 1, 3, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t round = 0; round < std::size(delays) && (round < 4 || killed_mid_write == 0);
       ++round) {
    const int extra_ms = delays[round];
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        save_model(big, path);
      } catch (...) {
        _exit(2);
      }
      _exit(0);
    }
    // The child's temporary file: "<path>.tmp.<its pid>.<n>".
    const std::string prefix = path + ".tmp." + std::to_string(pid) + ".";
    std::string tmp;
    for (int i = 0; i < 60000 && (tmp = file_with_prefix(prefix)).empty(); ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    std::error_code ec;
    const auto tmp_size = std::filesystem::file_size(tmp, ec);
    if (!ec && tmp_size < full_size) ++killed_mid_write;
    const Model now = load_model(path);  // must parse: complete old or complete new
    const bool is_new = now.entries.size() == 1 && now.entries[0].name == "big";
    const bool is_old = now.entries.size() == old_model.entries.size();
    EXPECT_TRUE(is_new || is_old) << "extra delay " << extra_ms << " ms";
    std::filesystem::remove(tmp, ec);
    save_model(old_model, path);  // reset for the next round
  }
  // At least one kill must have landed while the file was being written, or the test proved
  // nothing.
  EXPECT_GE(killed_mid_write, 1);
  // A killed writer's temporary files, never the final name.
  for (std::string tmp; !(tmp = file_with_prefix(path + ".tmp.")).empty();)
    std::filesystem::remove(tmp);
  std::remove(path.c_str());
}

// ---- Files built here from the layout in model_file.hpp, every size and CRC field computed
// with zlib, so a structural check the reader skips cannot hide behind a CRC mismatch ----------

namespace {

// Little-endian fields, appended in order.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes& u8(uint64_t v) { return le(v, 1); }
  Bytes& u16(uint64_t v) { return le(v, 2); }
  Bytes& u32(uint64_t v) { return le(v, 4); }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& str(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& f32(float f) {
    uint32_t v;
    std::memcpy(&v, &f, 4);
    return u32(v);
  }
  // A part record: name length, name, offset in the payload, size.
  Bytes& part(const std::string& name, uint64_t off, uint64_t len) {
    return u16(name.size()).str(name).u64(off).u64(len);
  }
};

uint32_t zlib_crc(const uint8_t* p, size_t n) {
  return static_cast<uint32_t>(::crc32(0L, p, static_cast<uInt>(n)));
}

struct RawEntry {
  std::vector<uint8_t> meta;
  std::vector<uint8_t> payload;  // written as given
  int64_t payload_size = -1;     // the payload size field; -1: payload.size()
};

std::vector<uint8_t> hand_file(const std::vector<RawEntry>& entries, uint32_t version = 1,
                               uint32_t flags = 0, int64_t count = -1) {
  Bytes f;
  f.str(std::string("TQMODEL", 8)).u32(version);
  f.u32(count < 0 ? entries.size() : static_cast<uint64_t>(count)).u64(0).u32(flags).u32(0);
  f.b.resize(64, 0);
  for (const RawEntry& e : entries) {
    Bytes h;
    h.str("TQEN").u32(e.meta.size());
    h.u64(e.payload_size < 0 ? e.payload.size() : static_cast<uint64_t>(e.payload_size));
    h.u32(zlib_crc(e.meta.data(), e.meta.size()));
    h.u32(zlib_crc(e.payload.data(), e.payload.size()));
    h.u32(zlib_crc(h.b.data(), 24)).u32(0);
    f.b.insert(f.b.end(), h.b.begin(), h.b.end());
    f.b.insert(f.b.end(), e.meta.begin(), e.meta.end());
    if (!e.payload.empty()) f.b.resize((f.b.size() + 63) / 64 * 64, 0);
    f.b.insert(f.b.end(), e.payload.begin(), e.payload.end());
  }
  for (int i = 0; i < 8; ++i)
    f.b[16 + static_cast<size_t>(i)] = static_cast<uint8_t>(f.b.size() >> (8 * i));
  const uint32_t crc = zlib_crc(f.b.data(), 28);
  for (int i = 0; i < 4; ++i)
    f.b[28 + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (8 * i));
  return f.b;
}

// Meta of a dense float32 entry: name, storage, rank and extents, no parameters, format 0.
Bytes float_meta(const std::string& name, const std::vector<int64_t>& shape) {
  Bytes m;
  m.u16(name.size()).str(name).u8(0).u8(shape.size());
  for (int64_t d : shape) m.u64(static_cast<uint64_t>(d));
  return m;
}

// Entry "w", float32 [2] = {1, -2}, one "data" part in a 64-byte payload.
RawEntry float_entry(const std::string& name = "w") {
  RawEntry e;
  Bytes m = float_meta(name, {2});
  m.u8(0).u8(0).u8(1).part("data", 0, 8);
  e.meta = m.b;
  Bytes p;
  p.f32(1.0f).f32(-2.0f);
  p.b.resize(64, 0);
  e.payload = p.b;
  return e;
}

// Entry "w", int8 [2] = codes ({1, 2} unless given) with quantization parameters: `params` is the
// parameter block as the meta holds it (bits, scheme, narrow, granularity, axis, group size,
// count, then the scales and zero points).
RawEntry int8_entry(const Bytes& params, int8_t code0 = 1, int8_t code1 = 2) {
  RawEntry e;
  e.payload.assign(64, 0);
  e.payload[0] = static_cast<uint8_t>(code0);
  e.payload[1] = static_cast<uint8_t>(code1);
  Bytes m;
  m.u16(1).str("w").u8(1).u8(1).u64(2).u8(1);  // int8 storage, rank 1, [2], parameters follow
  m.b.insert(m.b.end(), params.b.begin(), params.b.end());
  e.meta = m.u8(0).u8(1).part("data", 0, 2).b;
  return e;
}

}  // namespace

TEST(ModelFile, WriterAndReaderFollowTheDocumentedLayout) {
  const std::vector<uint8_t> file = hand_file({float_entry()});
  // File header 64, entry header 32 + meta 38 padded to 128, payload 64.
  ASSERT_EQ(file.size(), 256u);
  const Model m = parse_model(file.data(), file.size());
  ASSERT_EQ(m.entries.size(), 1u);
  EXPECT_EQ(to_floats(m.entries[0]), (std::vector<float>{1.0f, -2.0f}));
  const std::vector<float> w{1.0f, -2.0f};
  Model written;
  written.entries.push_back(make_entry("w", w.data(), {2}));
  EXPECT_EQ(serialize_model(written), file);
}

TEST(ModelFile, StructuralChecksHoldEvenWithValidCrcs) {
  struct Case {
    const char* what;
    std::vector<uint8_t> file;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({"version", hand_file({float_entry()}, 2),
                   "file header: unsupported version 2 (this reader knows 1) at byte offset 12"});
  cases.push_back({"flags", hand_file({float_entry()}, 1, 1),
                   "file header: unknown flags 0x1 at byte offset 24"});
  cases.push_back({"count", hand_file({float_entry()}, 1, 0, 5),
                   "file header: entry count 5 cannot fit at byte offset 32"});
  {
    RawEntry e = float_entry();
    e.payload.resize(8);  // the data without its padding to 64
    cases.push_back({"payload size", hand_file({e}),
                     "entry 0: payload size 8 is not a multiple of 64 at byte offset 192"});
  }
  {
    RawEntry e;
    e.meta = float_meta("w", {1, 1, 1, 1, 1, 1, 1, 1, 2}).u8(0).u8(0).u8(1).part("data", 0, 8).b;
    e.payload = float_entry().payload;
    cases.push_back({"rank", hand_file({e}), "entry 0 meta: rank 9 exceeds 8 at byte offset"});
  }
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {-1}).u8(0).u8(0).u8(1).part("data", 0, 8).b;
    cases.push_back(
        {"negative extent", hand_file({e}), "entry 0 meta: negative dimension -1 at byte offset"});
  }
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {2}).u8(2).u8(0).u8(1).part("data", 0, 8).b;
    cases.push_back({"params flag", hand_file({e}), "entry 0 meta: quantization flag 2 at"});
  }
  cases.push_back({"granularity",
                   hand_file({int8_entry(
                       Bytes().u8(8).u8(0).u8(0).u8(3).u32(0).u64(0).u64(1).f32(1.0f).u32(0))}),
                   "entry 0 meta: bad scheme 0 / narrow 0 / granularity 3 at"});
  cases.push_back({"parameter count",
                   hand_file({int8_entry(
                       Bytes().u8(8).u8(0).u8(0).u8(0).u32(0).u64(0).u64(uint64_t{1} << 40))}),
                   "entry 0 meta: parameter count 1099511627776 exceeds the meta at"});
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {2}).u8(0).u8(0).u8(0).b;
    cases.push_back({"no parts", hand_file({e}), "entry 0 meta: part count 0 at"});
  }
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {2}).u8(0).u8(0).u8(1).part("data", 8, 8).b;
    cases.push_back({"misaligned part", hand_file({e}),
                     "part 'data' [8, +8) is misaligned, overlapping or outside the 64-byte"});
  }
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {2}).u8(0).u8(0).u8(2).part("data", 0, 8).part("x", 0, 4).b;
    cases.push_back({"overlapping parts", hand_file({e}),
                     "part 'x' [0, +4) is misaligned, overlapping or outside the 64-byte"});
  }
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {2}).u8(0).u8(0).u8(2).part("data", 0, 8).part("x", 64, 4).b;
    e.payload.resize(128, 0);
    e.payload[10] = 1;  // between the two parts
    cases.push_back({"padding between parts", hand_file({e}),
                     "payload padding: padding byte is 0x01, expected 0, at byte offset 202"});
  }
  {
    RawEntry e = float_entry();
    e.meta.push_back(0);
    cases.push_back(
        {"meta tail", hand_file({e}), "entry 0 meta: 1 unexpected bytes at the end of the meta"});
  }
  cases.push_back({"duplicate", hand_file({float_entry(), float_entry()}),
                   "entry 1 ('w'): duplicate tensor name"});
  cases.push_back({"bits vs storage",  // 4-bit parameters on int8 storage
                   hand_file({int8_entry(
                       Bytes().u8(4).u8(1).u8(1).u8(0).u32(0).u64(0).u64(1).f32(1.0f).u32(0))}),
                   "4-bit parameters with int8 storage"});
  {
    RawEntry e = float_entry();
    e.meta = Bytes().u16(0).u8(0).u8(1).u64(2).u8(0).u8(0).u8(1).part("data", 0, 8).b;
    cases.push_back({"empty name", hand_file({e}), "entry 0 meta: name length 0 at byte offset"});
  }
  {
    RawEntry e = float_entry();
    e.payload.pop_back();  // 63 bytes where the header promises 64
    e.payload_size = 64;
    cases.push_back({"short payload", hand_file({e}),
                     "entry 0: truncated payload (needs 64 bytes, 63 left) at byte offset 192"});
  }
  {
    RawEntry e = float_entry();
    e.payload.clear();  // the file ends with the meta, before its padding
    e.payload_size = 0;
    cases.push_back({"no payload", hand_file({e}), "entry 0: truncated before payload"});
  }
  {
    RawEntry e = float_entry();
    e.meta = float_meta("w", {2}).u8(0).u8(0).u8(1).part(std::string(65, 'p'), 0, 8).b;
    cases.push_back({"part name", hand_file({e}), "entry 0 meta: part name length 65 at"});
  }
  for (const Case& c : cases) {
    const std::string msg = error_of(c.file);
    EXPECT_NE(msg.find(c.message), std::string::npos) << c.what << ": " << msg;
  }
}

// A quantized entry's codes lie in its parameters' range, even where the storage holds more: an
// int8 byte of 127 under 5-bit parameters ([-16, 15]) is refused, read (FormatError naming the
// file, the entry, the element and the code) or written (InvalidArgument); the ends of the range
// are accepted. Narrow range raises qmin; int4 elements are nibbles (element 2i + 1 in the high
// nibble of byte i), int16 ones little-endian.
TEST(ModelFile, CodesOutsideTheParametersRangeAreRefused) {
  // bits, scheme, narrow, per-tensor, axis 0, group 0, one scale 1 with zero point 0
  const auto params = [](uint8_t bits, uint8_t narrow) {
    return Bytes().u8(bits).u8(1).u8(narrow).u8(0).u32(0).u64(0).u64(1).f32(1.0f).u32(0);
  };
  EXPECT_EQ(error_of(hand_file({int8_entry(params(5, 0), 1, 127)})),
            "m.tqm: entry 0 ('w'): element 1 holds code 127, outside the 5-bit range [-16, 15]");
  EXPECT_EQ(error_of(hand_file({int8_entry(params(5, 0), -17, 0)})),
            "m.tqm: entry 0 ('w'): element 0 holds code -17, outside the 5-bit range [-16, 15]");
  EXPECT_EQ(error_of(hand_file({int8_entry(params(8, 1), 0, -128)})),
            "m.tqm: entry 0 ('w'): element 1 holds code -128, outside the 8-bit narrow range "
            "[-127, 127]");
  for (const auto& [file, lo, hi] :
       {std::make_tuple(hand_file({int8_entry(params(5, 0), -16, 15)}), -16, 15),
        std::make_tuple(hand_file({int8_entry(params(8, 1), -127, 127)}), -127, 127),
        std::make_tuple(hand_file({int8_entry(params(8, 0), -128, 127)}), -128, 127)}) {
    const Model m = parse_model(file.data(), file.size(), "m.tqm");
    const QTensor q = to_qtensor(m.entries.at(0));
    EXPECT_EQ(q.value(0), lo);
    EXPECT_EQ(q.value(1), hi);
  }

  // The same entry built in memory is refused on write, naming its index.
  QuantParams p5;
  p5.spec.bits = 5;
  p5.spec.scheme = Scheme::kSymmetric;
  p5.scales = {1.0f};
  p5.zero_points = {0};
  QTensor q;
  q.shape = {2};
  q.params = p5;
  q.data = {1, 127};
  Model m;
  m.entries.push_back(make_entry("w", q));
  expect_error<InvalidArgument>(
      [&] { serialize_model(m); },
      {"model entry 0 ('w'): element 1 holds code 127, outside the 5-bit range [-16, 15]"});
  // to_qtensor (what export-c and inspect read entries with) checks an in-memory entry too.
  expect_error<FormatError>(
      [&] { (void)to_qtensor(m.entries[0]); },
      {"model entry 'w': element 1 holds code 127, outside the 5-bit range [-16, 15]"});
  m.entries[0].params->scales = {1.0f, 2.0f};  // two scales for a per-tensor spec
  expect_error<FormatError>([&] { (void)to_qtensor(m.entries[0]); },
                            {"model entry 'w': quant params: 2 scales"});
  m.entries[0].params->scales = {1.0f};
  m.entries[0].parts[0].bytes = {0xF0, 15};  // -16 and 15: the ends of the range
  const std::vector<uint8_t> ok = serialize_model(m);
  EXPECT_EQ(to_qtensor(parse_model(ok.data(), ok.size()).entries.at(0)).value(0), -16);

  // int4 storage, 3-bit parameters ([-4, 3]): element 3 (high nibble of byte 1) is -5 (0xB).
  QuantParams p3 = p5;
  p3.spec.bits = 3;
  q.shape = {4};
  q.params = p3;
  q.data = {0x3C, 0xB0};  // -4, 3, 0, -5
  m.entries[0] = make_entry("w4", q);
  EXPECT_EQ(m.entries[0].storage, Storage::kInt4);
  expect_error<InvalidArgument>(
      [&] { serialize_model(m); },
      {"model entry 0 ('w4'): element 3 holds code -5, outside the 3-bit range [-4, 3]"});
  m.entries[0].parts[0].bytes = {0x3C, 0x30};  // -4, 3, 0, 3
  EXPECT_NO_THROW(serialize_model(m));

  // int16 storage, narrow 16-bit parameters: -32768 (0x8000) is refused, -32767 accepted.
  QuantParams p16 = p5;
  p16.spec.bits = 16;
  p16.spec.narrow_range = true;
  q.shape = {2};
  q.params = p16;
  q.data = {0xFF, 0x7F, 0x00, 0x80};  // 32767, -32768
  m.entries[0] = make_entry("w16", q);
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w16'): element 1 holds code -32768, outside the "
                                 "16-bit narrow range [-32767, 32767]"});
  m.entries[0].parts[0].bytes[2] = 0x01;  // -32767
  EXPECT_NO_THROW(serialize_model(m));
}

// Two parts of one entry with the same name (which of them would ModelEntry::part return?) are
// refused when read, with valid CRCs, and when written.
TEST(ModelFile, PartNamesAreUniqueInAnEntry) {
  RawEntry e = float_entry();
  e.meta = float_meta("w", {2}).u8(0).u8(0).u8(2).part("data", 0, 8).part("data", 64, 4).b;
  e.payload.resize(128, 0);
  EXPECT_EQ(error_of(hand_file({e})), "m.tqm: entry 0 ('w'): parts 0 and 1 are both named 'data'");
  e.meta = float_meta("w", {2}).u8(0).u8(0).u8(2).part("data", 0, 8).part("datb", 64, 4).b;
  const std::vector<uint8_t> ok = hand_file({e});
  EXPECT_EQ(parse_model(ok.data(), ok.size()).entries.at(0).parts.size(), 2u);

  const float f[2] = {1.0f, -2.0f};
  Model m;
  m.entries.push_back(make_entry("w", f, Shape{2}));
  m.entries[0].parts.push_back({"x", {1}});
  m.entries[0].parts.push_back({"data", {}});
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w'): parts 0 and 2 are both named 'data'"});
}

// Entries built in memory are checked when written and when converted, like parsed ones.
TEST(ModelFile, EntriesAreCheckedOnWriteAndConversion) {
  const std::vector<float> f{1.0f, -2.0f};
  const std::vector<int32_t> i{1, -2};
  Model m;
  m.entries.push_back(make_entry(std::string(1025, 'n'), f.data(), {2}));
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"name length 1025 must be in [1, 1024]"});
  m.entries[0] = make_entry("w", f.data(), {2});
  m.entries[0].parts[0].name = std::string(65, 'p');
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"part name length 65 must be in [1, 64]"});
  // Storage and format decide what an entry converts to.
  expect_error<FormatError>([&] { to_floats(make_entry("b", i.data(), {2})); },
                            {"model entry 'b' is int32 (format 0), not dense float32"});
  expect_error<FormatError>([&] { to_int32(make_entry("w", f.data(), {2})); },
                            {"model entry 'w' is float32 (format 0), not dense int32"});
  const QTensor q = quantize_weights(f.data(), {2}, QuantSpec{});
  ModelEntry e = make_entry("q", q);
  e.format = 3;
  expect_error<FormatError>([&] { to_qtensor(e); },
                            {"model entry 'q' is not a dense quantized tensor"});
  e = make_entry("q", q);
  e.storage = Storage::kInt4;
  expect_error<FormatError>([&] { to_qtensor(e); }, {"8-bit parameters with int4 storage"});
  e = make_entry("q", q);
  e.parts[0].bytes.push_back(0);
  expect_error<FormatError>([&] { to_qtensor(e); },
                            {"dense int8 data of shape [2] needs 2 bytes, has 3"});
  EXPECT_EQ(to_qtensor(make_entry("q", q)).data, q.data);
}

// 16-bit parameters are stored as int16, two little-endian bytes an element: 1000 = 0x03E8,
// -32768 = 0x8000, 32767 = 0x7FFF. A data part of the wrong length names the storage and the
// byte count it needs (3 x 2).
TEST(ModelFile, Int16EntriesRoundTripAndAreSizeChecked) {
  QuantParams p;
  p.spec.bits = 16;
  p.scales = {0.5f};
  p.zero_points = {0};
  const std::vector<int32_t> v{1000, -32768, 32767};
  const ModelEntry e = make_entry("s16", from_integers(v.data(), {3}, p));
  EXPECT_EQ(e.storage, Storage::kInt16);
  EXPECT_STREQ(to_string(Storage::kInt16), "int16");
  EXPECT_EQ(e.part("data").bytes, (std::vector<uint8_t>{0xE8, 0x03, 0x00, 0x80, 0xFF, 0x7F}));
  Model m;
  m.entries.push_back(e);
  const std::vector<uint8_t> bytes = serialize_model(m);
  const Model back = parse_model(bytes.data(), bytes.size());
  ASSERT_EQ(back.entries.size(), 1u);
  EXPECT_EQ(back.entries[0].storage, Storage::kInt16);
  const QTensor q = to_qtensor(back.entries[0]);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(q.value(i), v[static_cast<size_t>(i)]) << i;

  m.entries[0].parts[0].bytes.pop_back();
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('s16')",
                                 "dense int16 data of shape [3] needs 6 "
                                 "bytes, has 5"});
  expect_error<FormatError>([&] { to_qtensor(m.entries[0]); },
                            {"model entry 's16'",
                             "dense int16 data of shape [3] needs 6 bytes, "
                             "has 5"});
}

// What serialize_model refuses in an entry built in memory, each naming the entry's index and
// name: a storage outside the enum, a rank above 8, and 0 or 17 parts.
TEST(ModelFile, RejectsMalformedEntriesOnWrite) {
  const std::vector<float> f{1.0f, -2.0f};
  Model m;
  m.entries.push_back(make_entry("w", f.data(), {2}));
  m.entries[0].storage = static_cast<Storage>(9);
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w'): unknown storage 9"});
  m.entries[0] = make_entry("w", f.data(), {1, 1, 1, 1, 1, 1, 1, 1, 2});
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w'): rank 9 exceeds 8"});
  m.entries[0] = make_entry("w", f.data(), {2});
  m.entries[0].parts.clear();
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w'): 0 parts (must be 1..16)"});
  m.entries[0] = make_entry("w", f.data(), {2});
  for (int i = 1; i < 17; ++i) m.entries[0].parts.push_back({"p" + std::to_string(i), {}});
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w'): 17 parts (must be 1..16)"});
}

// A dense entry must have a "data" part; ModelEntry::part names the entry and the missing part.
TEST(ModelFile, MissingPartIsNamed) {
  const std::vector<float> f{1.0f, -2.0f};
  ModelEntry e = make_entry("w", f.data(), {2});
  expect_error<FormatError>([&] { e.part("bitmap"); }, {"model entry 'w' has no part 'bitmap'"});
  e.parts[0].name = "values";
  Model m;
  m.entries.push_back(e);
  expect_error<InvalidArgument>([&] { serialize_model(m); },
                                {"model entry 0 ('w'): dense entry has no part named 'data'"});
  expect_error<FormatError>([&] { to_floats(e); }, {"model entry 'w' has no part 'data'"});
  // A file whose only part is not "data" (CRCs valid) names the file and the entry.
  RawEntry raw;
  raw.meta = float_meta("w", {2}).u8(0).u8(0).u8(1).part("datx", 0, 8).b;
  raw.payload = float_entry().payload;
  const std::vector<uint8_t> file = hand_file({raw});
  expect_error<FormatError>([&] { parse_model(file.data(), file.size(), "f.tqm"); },
                            {"f.tqm: entry 0 ('w'): dense entry has no part named 'data'"});
}

// Writing only: a rename that fails (the target became a non-empty directory after write())
// removes the temporary file at once, not only when the writer is destroyed.
TEST(AtomicFile, AFailedCommitRemovesTheTemporaryFile) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir() + "/tq_commit_" + std::to_string(::getpid());
  fs::remove_all(dir);
  ASSERT_TRUE(fs::create_directory(dir));
  const std::string path = dir + "/f.bin";
  AtomicFile f(path, false);
  f.write({'n', 'e', 'w'});
  ASSERT_FALSE(f.temporary().empty());
  ASSERT_TRUE(fs::exists(f.temporary()));
  ASSERT_TRUE(fs::create_directory(path));
  write_file_bytes(path + "/x", {'x'});
  expect_error<IoError>([&] { f.commit(); }, {"cannot write '" + path + "': cannot rename"});
  EXPECT_FALSE(fs::exists(f.temporary()));
  fs::remove_all(dir);
}

// A file name of 250 bytes leaves no room for ".tmp.<pid>.<n>" within NAME_MAX (255): the
// temporary file takes a short name in the same directory, and the save works.
TEST(AtomicFile, LongFileNamesCanBeSaved) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir() + "/tq_long_" + std::to_string(::getpid());
  fs::remove_all(dir);
  ASSERT_TRUE(fs::create_directory(dir));
  const std::string path = dir + "/" + std::string(246, 'm') + ".tqm";
  save_model(sample_model(), path);
  EXPECT_EQ(load_model(path).entries.size(), sample_model().entries.size());
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1u);  // no temporary file left
  fs::remove_all(dir);
}

// Storage byte 5 (past int32 = 4): meta starts at 64 + 32 = 96; after the name length (2), the
// name (1) and the storage byte the reader is at offset 100.
TEST(ModelFile, UnknownStorageByteIsRejected) {
  RawEntry e = float_entry();
  e.meta = Bytes().u16(1).str("w").u8(5).u8(1).u64(2).u8(0).u8(0).u8(1).part("data", 0, 8).b;
  expect_error<FormatError>(
      [&] {
        const std::vector<uint8_t> b = hand_file({e});
        parse_model(b.data(), b.size(), "m.tqm");
      },
      {"m.tqm: entry 0 meta: unknown storage 5 at byte offset 100"});
}

// A path whose file name is longer than NAME_MAX (255) cannot even be inspected: the error names
// the path and the system's reason.
TEST(ModelFile, SaveReportsAPathThatCannotBeInspected) {
  const std::string path = testing::TempDir() + "/" + std::string(300, 'n') + ".tqm";
  expect_error<IoError>(
      [&] { save_model(sample_model(), path); },
      {"cannot write '" + path + "': cannot inspect '" + path + "'", std::strerror(ENAMETOOLONG)});
}

// A write cut short (here by a file size limit, RLIMIT_FSIZE, with SIGXFSZ ignored so write()
// fails with EFBIG) is an IoError naming the path and the temporary file, and removes the
// temporary file; nothing appears under the final name. Run in a child process; the limit is
// lifted again before it exits, so that its coverage data can be written.
TEST(ModelFileDeathTest, FailedWriteRemovesTheTemporaryFile) {
  const std::string path =
      testing::TempDir() + "/tq_model_fsize_" + std::to_string(::getpid()) + ".tqm";
  std::remove(path.c_str());
  auto run = [&] {
    const Model m = sample_model();
    ASSERT_GT(serialize_model(m).size(), 1024u);
    rlimit old{};
    if (::getrlimit(RLIMIT_FSIZE, &old) != 0) std::exit(2);
    rlimit lim = old;
    lim.rlim_cur = 1024;
    ::signal(SIGXFSZ, SIG_IGN);
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) std::exit(3);
    std::string msg;
    try {
      save_model(m, path);
    } catch (const IoError& e) {
      msg = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    const std::string prefix = path + ".tmp." + std::to_string(::getpid()) + ".";
    const bool named =
        msg.find("cannot write '" + path + "' (temporary file '" + prefix) != std::string::npos &&
        msg.find("'): " + std::string(std::strerror(EFBIG))) != std::string::npos;
    std::exit(!named                              ? 4
              : !file_with_prefix(prefix).empty() ? 5
              : std::filesystem::exists(path)     ? 6
                                                  : 0);
  };
  EXPECT_EXIT(run(), ::testing::ExitedWithCode(0), "");
  EXPECT_FALSE(std::filesystem::exists(path));
}

// AtomicFile: the target keeps its bytes until commit(), a writer that is not committed leaves no
// temporary file, a link is followed to the file it names (a dangling one to the file it would
// create), and what a rename cannot replace is refused or, when allowed, written in place.
TEST(AtomicFile, TheTargetChangesOnlyAtCommit) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir() + "/tq_atomic_" + std::to_string(::getpid());
  fs::remove_all(dir);
  ASSERT_TRUE(fs::create_directory(dir));
  const std::string path = dir + "/f.bin";
  write_file_bytes(path, {'o', 'l', 'd'});
  const auto count_files = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
    return n;
  };
  {
    AtomicFile f(path, false);
    EXPECT_FALSE(f.in_place());
    f.write({'n', 'e', 'w'});
    EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'o', 'l', 'd'}));
    EXPECT_EQ(count_files(), 2u);  // the target and the temporary file
  }
  EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'o', 'l', 'd'}));
  EXPECT_EQ(count_files(), 1u);  // not committed: the temporary file is gone
  {
    AtomicFile f(path, false);
    f.write({'n', 'e', 'w'});
    f.commit();
  }
  EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'n', 'e', 'w'}));
  EXPECT_EQ(count_files(), 1u);
  // A dangling link: the target is the file it names, created at commit; the link stays.
  ASSERT_EQ(::symlink("made.bin", (dir + "/link.bin").c_str()), 0);
  {
    AtomicFile f(dir + "/link.bin", false);
    EXPECT_EQ(f.target(), dir + "/made.bin");
    f.write({'x'});
    EXPECT_FALSE(fs::exists(dir + "/made.bin"));
    f.commit();
  }
  EXPECT_TRUE(fs::is_symlink(dir + "/link.bin"));
  EXPECT_EQ(read_file_bytes(dir + "/made.bin"), (std::vector<uint8_t>{'x'}));
  // Not a regular file: refused, or written in place at commit (a directory cannot be).
  const std::string sub = dir + "/sub";
  ASSERT_TRUE(fs::create_directory(sub));
  expect_error<IoError>([&] { AtomicFile f(sub, false); }, {"'" + sub + "'", "not a regular file"});
  {
    AtomicFile f(sub, true);
    EXPECT_TRUE(f.in_place());
    f.write({'y'});
    EXPECT_THROW(f.commit(), IoError);
  }
  EXPECT_TRUE(fs::is_directory(sub));
  // Misuse.
  AtomicFile twice(path, false);
  twice.write({'a'});
  EXPECT_THROW(twice.write({'b'}), IoError);
  AtomicFile unwritten(path, false);
  EXPECT_THROW(unwritten.commit(), IoError);
  expect_error<IoError>([] { AtomicFile f("", false); }, {"the path is empty"});
  fs::remove_all(dir);
}

// Replacing a file keeps its permission bits: a private 0600 file does not become 0644 (the
// temporary file's mode) when it is written again, directly, through save_model or through a
// link. A new file still gets 0644 less the umask. A hard link to the old file keeps the old
// contents: the rename replaces the name.
TEST(AtomicFile, ReplacingAFileKeepsItsMode) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir() + "/tq_atomic_mode_" + std::to_string(::getpid());
  fs::remove_all(dir);
  ASSERT_TRUE(fs::create_directory(dir));
  const auto mode_of = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  const auto replace = [](const std::string& p, std::vector<uint8_t> bytes) {
    AtomicFile f(p, false);
    f.write(bytes);
    f.commit();
  };
  // Restored however the test ends (an ASSERT returns early): later tests keep their umask.
  struct UmaskGuard {
    mode_t old;
    ~UmaskGuard() { ::umask(old); }
  } guard{::umask(027)};
  const std::string path = dir + "/private.bin";
  write_file_bytes(path, {'o', 'l', 'd'});
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(::link(path.c_str(), (dir + "/hard.bin").c_str()), 0);
  replace(path, {'n', 'e', 'w'});
  EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'n', 'e', 'w'}));
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(read_file_bytes(dir + "/hard.bin"), (std::vector<uint8_t>{'o', 'l', 'd'}));
  // Modes the umask (027) would not give: kept whole, through save_model too.
  const std::string model = dir + "/m.tqm";
  write_file_bytes(model, {'x'});
  ASSERT_EQ(::chmod(model.c_str(), 0604), 0);
  save_model(sample_model(), model);
  EXPECT_EQ(mode_of(model), 0604u);
  ASSERT_EQ(::chmod(model.c_str(), 0640), 0);
  save_model(sample_model(), model);
  EXPECT_EQ(mode_of(model), 0640u);
  // Through a link: the file it names keeps its mode, the link stays a link.
  ASSERT_EQ(::symlink("private.bin", (dir + "/link.bin").c_str()), 0);
  replace(dir + "/link.bin", {'l'});
  EXPECT_TRUE(fs::is_symlink(dir + "/link.bin"));
  EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'l'}));
  EXPECT_EQ(mode_of(path), 0600u);
  // A new file: 0644 less the umask, as before.
  replace(dir + "/new.bin", {'n'});
  EXPECT_EQ(mode_of(dir + "/new.bin"), 0640u);
  ::umask(022);
  save_model(sample_model(), dir + "/new.tqm");
  EXPECT_EQ(mode_of(dir + "/new.tqm"), 0644u);
  fs::remove_all(dir);
}

// Two writers of one target each get a temporary file of their own, so each commit installs its
// own bytes; a link planted under the next temporary name is neither followed nor truncated.
TEST(AtomicFile, WritersNeverShareOrFollowATemporaryName) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir() + "/tq_atomic2_" + std::to_string(::getpid());
  fs::remove_all(dir);
  ASSERT_TRUE(fs::create_directory(dir));
  const std::string path = dir + "/f.bin", victim = dir + "/victim.bin";
  write_file_bytes(victim, {'v'});
  AtomicFile a(path, false), b(path, false);
  a.write({'a'});
  const std::string prefix = path + ".tmp." + std::to_string(::getpid()) + ".";
  ASSERT_EQ(a.temporary().rfind(prefix, 0), 0u) << a.temporary();
  // The name the next writer would take: n one past a's.
  const unsigned long n = std::stoul(a.temporary().substr(prefix.size()));
  const std::string planted = prefix + std::to_string(n + 1);
  ASSERT_EQ(::symlink(victim.c_str(), planted.c_str()), 0);
  b.write({'b', 'b'});
  EXPECT_EQ(b.temporary(), prefix + std::to_string(n + 2));
  EXPECT_EQ(read_file_bytes(victim), (std::vector<uint8_t>{'v'}));
  a.commit();
  EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'a'}));
  b.commit();
  EXPECT_EQ(read_file_bytes(path), (std::vector<uint8_t>{'b', 'b'}));
  EXPECT_EQ(read_file_bytes(victim), (std::vector<uint8_t>{'v'}));
  EXPECT_TRUE(fs::is_symlink(planted));
  // A hundred names taken in a row: an error naming the last, nothing written through the links,
  // and no temporary file for the writer to remove. The next writer gets the name after them.
  AtomicFile c(path, false), d(path, false), e(path, false);
  c.write({'c'});
  const unsigned long m = std::stoul(c.temporary().substr(prefix.size()));
  for (unsigned long k = m + 1; k <= m + 100; ++k)
    ASSERT_EQ(::symlink(victim.c_str(), (prefix + std::to_string(k)).c_str()), 0);
  expect_error<IoError>([&] { d.write({'d'}); },
                        {"cannot write '" + path + "': cannot create the temporary file '" +
                             prefix + std::to_string(m + 100) + "'",
                         "(100 names taken in a row)"});
  EXPECT_EQ(d.temporary(), "");
  e.write({'e'});
  EXPECT_EQ(e.temporary(), prefix + std::to_string(m + 101));
  EXPECT_EQ(read_file_bytes(victim), (std::vector<uint8_t>{'v'}));
  EXPECT_TRUE(fs::is_symlink(prefix + std::to_string(m + 100)));
  // Any other failure stops at once: a directory that does not exist.
  AtomicFile lost(dir + "/no/such/f.bin", false);
  expect_error<IoError>(
      [&] { lost.write({'x'}); },
      {"cannot create the temporary file '" + dir + "/no/such/f.bin.tmp.", std::strerror(ENOENT)});
  EXPECT_EQ(lost.temporary(), "");
  fs::remove_all(dir);
}

// /dev/stdout on a pipe is a link to /proc/self/fd/1, itself a link whose text ("pipe:[N]") names
// no path: the write goes through the path to the pipe, in place, instead of to a temporary file
// beside a "pipe:[N]" that does not exist (or, refused, to nothing).
TEST(AtomicFile, WritesInPlaceThroughALinkToAPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string proc = "/proc/self/fd/" + std::to_string(fds[1]);
  const std::string link = testing::TempDir() + "/tq_stdout_" + std::to_string(::getpid());
  std::remove(link.c_str());
  ASSERT_EQ(::symlink(proc.c_str(), link.c_str()), 0);  // as /dev/stdout -> /proc/self/fd/1
  for (const std::string& path : {proc, link}) {
    bool special = false;
    EXPECT_EQ(io::resolve_write_target(path, &special), path);
    EXPECT_TRUE(special) << path;
    AtomicFile f(path, true);
    EXPECT_TRUE(f.in_place()) << path;
    f.write({'o', 'k'});
    f.commit();
    char got[3] = {};
    ASSERT_EQ(::read(fds[0], got, 2), 2) << path;
    EXPECT_STREQ(got, "ok") << path;
    expect_error<IoError>([&] { AtomicFile refused(path, false); },
                          {"'" + path + "'", "not a regular file"});
  }
  std::remove(link.c_str());
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Printable, EscapesControlBytesOnly) {
  EXPECT_EQ(printable(std::string("a\0\x1f\x7f b\xff\x80~", 9)), "a\\x00\\x1f\\x7f b\xff\x80~");
  EXPECT_EQ(printable("\x1b[31m\r\n"), "\\x1b[31m\\x0d\\x0a");
  EXPECT_EQ(printable(""), "");
}

// Names are quoted whole in messages, control bytes and NUL as \xNN: what() is a C string, so a
// raw NUL used to end the message inside the name, before it said what was wrong.
TEST(ModelFile, NamesWithControlBytesAreQuotedWholeInMessages) {
  const float f[2] = {1.0f, -2.0f};
  io::Model m;
  m.entries.push_back(io::make_entry(std::string("a\0b", 3), f, Shape{2}));
  tq_test::expect_error<InvalidArgument>([&] { io::serialize_model(m); },
                                         {"model entry 0 ('a\\x00b')", "name contains a NUL byte"});
  // Read from a file: the reader refuses the name, and says so after it.
  const std::vector<uint8_t> b = hand_file({float_entry(std::string("a\0b", 3))});
  const std::string what =
      tq_test::thrown_message<FormatError>([&] { io::parse_model(b.data(), b.size(), "m.tqm"); });
  EXPECT_NE(what.find("m.tqm: entry 0 ('a\\x00b')"), std::string::npos) << what;
  EXPECT_GT(what.size(), std::string("m.tqm: entry 0 ('a\\x00b')").size()) << what;
  // A line break in a name stays inside the quotes too.
  io::Model two;
  two.entries.push_back(io::make_entry("x\ny", f, Shape{2}));
  two.entries.push_back(io::make_entry("x\ny", f, Shape{2}));
  tq_test::expect_error<InvalidArgument>([&] { io::serialize_model(two); },
                                         {"duplicate name 'x\\x0ay'"});
}
