// The model file: round trips, alignment, CRC-32 against zlib, every truncation and every single
// bit flip rejected, and atomic saving (a killed writer never leaves a partial file).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <thread>

#include "tinyquant/error.hpp"
#include "tinyquant/io/model_file.hpp"

using namespace tinyquant;
using namespace tinyquant::io;

namespace {

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
    const std::string tmp = path + ".tmp." + std::to_string(pid);
    for (int i = 0; i < 60000 && !std::filesystem::exists(tmp); ++i)
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
  for (const auto& f : std::filesystem::directory_iterator(testing::TempDir()))
    if (f.path().filename().string().rfind(
            std::filesystem::path(path).filename().string() + ".tmp.", 0) == 0)
      std::filesystem::remove(f.path());  // a killed writer's temporary, never the final name
  std::remove(path.c_str());
}
