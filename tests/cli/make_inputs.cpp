// Writes the small input files the command-line tests run on, into the directory argv[1]:
//   fc.npy             float32 [8][16] weights
//   model.safetensors  fc.weight float32 [8][16], fc.bias float32 [8], emb bfloat16 [4][6]
//   layer.safetensors  fc.weight float32 [16][48], fc.bias float32 [16]: pruned and stored in
//                      each sparse format by the export tests
//   net.safetensors    fc1 [16][48] -> fc2 [8][16] (+ biases) and conv.weight [8][3][3][4] OHWI
//                      (+ conv.bias [8]): a model with several layers and a convolution
//   dw.safetensors     dw.weight float32 [8][3][3][1] (+ dw.bias [8]): a depthwise convolution
//                      over 4 channels with channel multiplier 2, stored as a grouped conv
//   corrupt.tqm        a model file with one payload byte flipped (the CRC must catch it)
//   not_a_model.tqm    text, not a model
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tinyquant/io/model_file.hpp"
#include "tinyquant/io/npy.hpp"
#include "tinyquant/io/safetensors.hpp"

namespace {

// Deterministic values in about [-1, 1] (no zeros), independent of any library RNG.
std::vector<float> values(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>((s >> 8) % 2001u) / 1000.0f - 1.0f;
    if (x == 0.0f) x = 0.25f;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  namespace io = tinyquant::io;
  const std::vector<float> w = values(8 * 16, 1);
  io::save_npy(dir + "/fc.npy", io::NpyArray::from(w, {8, 16}));

  io::SafeTensors st;
  st.tensors.push_back(io::SafeTensor::from("fc.weight", w, {8, 16}));
  st.tensors.push_back(io::SafeTensor::from("fc.bias", values(8, 2), {8}));
  std::vector<uint8_t> f16;
  for (const float x : values(24, 3)) {
    uint32_t bits = 0;
    std::memcpy(&bits, &x, sizeof bits);
    const auto h = static_cast<uint16_t>(bits >> 16);  // bfloat16: truncated float32
    f16.push_back(static_cast<uint8_t>(h & 0xff));
    f16.push_back(static_cast<uint8_t>(h >> 8));
  }
  st.tensors.push_back(io::SafeTensor::raw("emb", io::DType::kBFloat16, {4, 6}, f16));
  io::save_safetensors(dir + "/model.safetensors", st);

  io::SafeTensors layer;
  layer.tensors.push_back(io::SafeTensor::from("fc.weight", values(16 * 48, 4), {16, 48}));
  layer.tensors.push_back(io::SafeTensor::from("fc.bias", values(16, 5), {16}));
  io::save_safetensors(dir + "/layer.safetensors", layer);

  io::SafeTensors net;
  net.tensors.push_back(io::SafeTensor::from("fc1.weight", values(16 * 48, 6), {16, 48}));
  net.tensors.push_back(io::SafeTensor::from("fc1.bias", values(16, 7), {16}));
  net.tensors.push_back(io::SafeTensor::from("fc2.weight", values(8 * 16, 8), {8, 16}));
  net.tensors.push_back(io::SafeTensor::from("fc2.bias", values(8, 9), {8}));
  net.tensors.push_back(
      io::SafeTensor::from("conv.weight", values(8 * 3 * 3 * 4, 10), {8, 3, 3, 4}));
  net.tensors.push_back(io::SafeTensor::from("conv.bias", values(8, 11), {8}));
  io::save_safetensors(dir + "/net.safetensors", net);

  io::SafeTensors dw;
  dw.tensors.push_back(io::SafeTensor::from("dw.weight", values(8 * 3 * 3, 12), {8, 3, 3, 1}));
  dw.tensors.push_back(io::SafeTensor::from("dw.bias", values(8, 13), {8}));
  io::save_safetensors(dir + "/dw.safetensors", dw);

  io::Model m;
  m.entries.push_back(io::make_entry("w", w.data(), {8, 16}));
  std::vector<uint8_t> bytes = io::serialize_model(m);
  bytes[bytes.size() - 100] ^= 0x10;  // inside the float payload
  io::write_file_bytes(dir + "/corrupt.tqm", bytes);
  const std::string text = "this is not a model\n";
  io::write_file_bytes(dir + "/not_a_model.tqm", std::vector<uint8_t>(text.begin(), text.end()));
  return 0;
}
