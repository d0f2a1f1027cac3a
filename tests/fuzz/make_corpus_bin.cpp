// Writes the seed corpora of the binary-input fuzz targets: corpus/model/ (.tqm files, used by
// fuzz_model and fuzz_c_export) and corpus/sparse/ (carved inputs of fuzz_sparse, layout in
// fuzz_sparse.cpp). Deterministic: data comes from fixed formulas, not a random generator.
//   make_corpus_bin <tests/fuzz/corpus>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tinyquant/io/model_file.hpp"
#include "tinyquant/quantize.hpp"

namespace {

using namespace tinyquant;

void write(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

std::vector<float> ramp(size_t n, float step) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = step * static_cast<float>(static_cast<int>(i % 7) - 3);
  return v;
}

io::ModelEntry quantized(const std::string& name, const Shape& shape, const QuantSpec& spec) {
  const std::vector<float> v = ramp(static_cast<size_t>(numel(shape)), 0.25f);
  return io::make_entry(name, quantize_weights(v.data(), shape, spec));
}

void write_models(const std::string& dir) {
  io::Model mlp;
  mlp.entries.push_back(quantized("fc.weight", {4, 6}, QuantSpec::int8_weights_per_channel(0)));
  const std::vector<float> bias = ramp(4, 0.5f);
  mlp.entries.push_back(io::make_entry("fc.bias", bias.data(), {4}));
  const std::vector<uint8_t> mlp_bytes = io::serialize_model(mlp);
  write(dir + "/mlp.tqm", mlp_bytes);

  io::Model int4;
  int4.entries.push_back(quantized("w4.weight", {3, 5}, QuantSpec::int4_per_group(2, 1)));
  write(dir + "/int4_group.tqm", io::serialize_model(int4));

  io::Model mixed;
  QuantSpec s16;
  s16.bits = 16;
  mixed.entries.push_back(quantized("t16", {2, 2}, s16));
  QuantSpec a2;
  a2.bits = 2;
  mixed.entries.push_back(quantized("t2", {5}, a2));
  const std::vector<int32_t> ints = {-2147483647 - 1, -1, 0, 7, 2147483647};
  mixed.entries.push_back(io::make_entry("ints", ints.data(), {5}));
  const float scalar = -0.0f;
  mixed.entries.push_back(io::make_entry("scalar", &scalar, {}));
  write(dir + "/mixed.tqm", io::serialize_model(mixed));

  // Names a C export must sanitise or reject.
  io::Model names;
  names.entries.push_back(io::make_entry("9 lives/x-y", bias.data(), {4}));
  names.entries.push_back(io::make_entry("9_lives_x_y_", bias.data(), {4}));
  write(dir + "/names.tqm", io::serialize_model(names));

  // Near-valid: truncated, a flipped bit in the payload, a wrong version.
  write(dir + "/bad_truncated.tqm",
        std::vector<uint8_t>(mlp_bytes.begin(), mlp_bytes.begin() + 100));
  std::vector<uint8_t> flipped = mlp_bytes;
  flipped[flipped.size() - 70] ^= 0x10;
  write(dir + "/bad_flipped.tqm", flipped);
  std::vector<uint8_t> version = mlp_bytes;
  version[8] = 2;
  write(dir + "/bad_version.tqm", version);
}

void write_sparse(const std::string& dir) {
  // mode, rows, cols (u16), format fields, arrays, then kernel bytes (batch, offsets, shift).
  const std::vector<uint8_t> kernel = {1, 130, 127, 128, 5, 9, 200, 3};
  auto with_kernel = [&](std::vector<uint8_t> v) {
    v.insert(v.end(), kernel.begin(), kernel.end());
    return v;
  };
  // CSR u8, 2x6: row 0 = columns 1, 4; row 1 = column 0.
  write(dir + "/csr_u8", with_kernel({0, 1, 5, 0, 2, 1, 1, 3, 0, 10, 246, 100}));
  // CSR u8 2x300: a gap over 255 bridged by a padding entry (delta 255, value 0).
  write(dir + "/csr_u8_padding", with_kernel({0, 1, 43, 1, 2, 1, 255, 20, 7, 0, 9, 5}));
  // CSR u16, 2x6.
  write(dir + "/csr_u16", with_kernel({1, 1, 5, 0, 2, 1, 1, 0, 4, 0, 0, 0, 10, 246, 100}));
  // Block CSR 2x4 matrix, blocks 1x2 (raw options off): block_rows=1, block_cols=2.
  write(dir + "/block", with_kernel({2, 1, 3, 0, 0, 1, 1, 1, 0, 1, 1, 2, 3, 4, 5, 6}));
  // Bitmap 2x10: two bytes per row.
  write(dir + "/bitmap", with_kernel({3, 1, 9, 0, 0x05, 0x02, 0x80, 0x00, 1, 2, 3, 4}));
  // N:M 2:4, 1x8: groups {0,1,2,3},{4..7}; indices 2 bits each.
  write(dir + "/nm", with_kernel({4, 0, 7, 0, 3, 1, 0xd8, 0x00, 9, 8, 7, 6}));
  // int4 bitmap, and raw counts that disagree.
  write(dir + "/int4_bitmap", with_kernel({11, 0, 7, 0, 0x11, 7, 248}));
  write(dir + "/bad_counts", with_kernel({16, 1, 5, 0, 1, 2, 1, 3, 0, 1, 2, 3}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus_bin <corpus dir>\n");
    return 2;
  }
  const std::string root = argv[1];
  write_models(root + "/model");
  write_sparse(root + "/sparse");
  return 0;
}
