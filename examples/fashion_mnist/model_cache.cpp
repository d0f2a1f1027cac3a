#include "model_cache.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "report.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/npy.hpp"

namespace fmnist {

namespace {

constexpr char kMagic[8] = {'T', 'Q', 'M', 'L', 'P', 'F', '3', '2'};

uint32_t crc32_of(const uint8_t* p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(n < (size_t{1} << 30) ? n : (size_t{1} << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

class Writer {
 public:
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void f32(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    u32(bits);
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  Reader(const std::vector<uint8_t>& bytes, size_t end, const std::string& name)
      : bytes_(bytes), end_(end), name_(name) {}
  uint32_t u32(const char* what) {
    need(4, what);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{bytes_[pos_ + static_cast<size_t>(i)]} << (8 * i);
    pos_ += 4;
    return v;
  }
  uint8_t u8(const char* what) {
    need(1, what);
    return bytes_[pos_++];
  }
  uint64_t u64(const char* what) {
    const uint64_t lo = u32(what);
    return lo | (uint64_t{u32(what)} << 32);
  }
  float f32(const char* what) {
    const uint32_t bits = u32(what);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  size_t pos() const { return pos_; }

 private:
  void need(size_t n, const char* what) {
    if (end_ - pos_ < n)
      throw tinyquant::FormatError(
          fmt::format("{}: truncated: {} at offset {} needs {} bytes, "
                      "only {} remain before the checksum",
                      name_, what, pos_, n, end_ - pos_));
  }
  const std::vector<uint8_t>& bytes_;
  size_t end_;
  const std::string& name_;
  size_t pos_ = sizeof kMagic;
};

void write_key(Writer* w, const TrainKey& k) {
  w->u32(static_cast<uint32_t>(k.sizes.size()));
  for (int s : k.sizes) w->u32(static_cast<uint32_t>(s));
  w->u32(k.seed);
  w->u32(k.epochs);
  w->u32(k.batch);
  w->f32(k.lr);
  w->u64(k.train_count);
  w->u32(static_cast<uint32_t>(k.recipe.size()));
  for (char ch : k.recipe) w->out.push_back(static_cast<uint8_t>(ch));
}

}  // namespace

bool TrainKey::operator==(const TrainKey& o) const {
  return sizes == o.sizes && seed == o.seed && epochs == o.epochs && batch == o.batch &&
         lr == o.lr && train_count == o.train_count && recipe == o.recipe;
}

std::string TrainKey::tag() const {
  std::string t = fmt::format("{}_s{}_e{}_b{}_lr{}_n{}", fmt::join(sizes, "-"), seed, epochs, batch,
                              lr, train_count);
  if (!recipe.empty()) t += "_" + recipe;
  return t;
}

std::vector<uint8_t> serialize_model(const FloatMlp& mlp, const TrainKey& key,
                                     const std::vector<tinyquant::QuantParams>* params) {
  if (mlp.sizes() != key.sizes)
    throw tinyquant::ShapeError(fmt::format("serialize_model: model sizes {} but key sizes {}",
                                            fmt::join(mlp.sizes(), "-"),
                                            fmt::join(key.sizes, "-")));
  if (key.recipe.size() > 200)
    throw tinyquant::InvalidArgument(
        fmt::format("serialize_model: recipe of {} characters exceeds 200", key.recipe.size()));
  for (size_t i = 0; i < key.recipe.size(); ++i) {
    const char ch = key.recipe[i];
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '_')
      throw tinyquant::InvalidArgument(fmt::format(
          "serialize_model: recipe '{}' has character '{}' at index {}: only letters, digits, "
          "'.', '-', '_' are allowed",
          key.recipe, std::string(1, ch), i));
  }
  Writer w;
  w.out.assign(kMagic, kMagic + sizeof kMagic);
  w.u32(kCacheVersion);
  write_key(&w, key);
  for (const DenseLayer& l : mlp.layers) {
    for (Eigen::Index i = 0; i < l.w.size(); ++i) w.f32(l.w.data()[i]);
    for (Eigen::Index i = 0; i < l.b.size(); ++i) w.f32(l.b[i]);
  }
  w.u32(params != nullptr ? static_cast<uint32_t>(mlp.layers.size()) : 0u);
  if (params != nullptr) {
    if (params->size() != mlp.layers.size())
      throw tinyquant::InvalidArgument(
          fmt::format("serialize_model: {} weight parameters for {} layers", params->size(),
                      mlp.layers.size()));
    for (size_t i = 0; i < params->size(); ++i) {
      const tinyquant::QuantParams& p = (*params)[i];
      const DenseLayer& l = mlp.layers[i];
      const tinyquant::QuantSpec& s = p.spec;
      if (s.granularity != tinyquant::Granularity::kPerGroup ||
          s.scheme != tinyquant::Scheme::kSymmetric || !s.narrow_range || s.bits > 8 ||
          (s.axis != 1 && s.axis != -1))
        throw tinyquant::InvalidArgument(fmt::format(
            "serialize_model: layer {} parameters are not per-group symmetric narrow-range "
            "weights grouped along the inputs",
            i));
      p.validate(tinyquant::Shape{l.w.rows(), l.w.cols()});
      w.u32(static_cast<uint32_t>(s.bits));
      w.u32(static_cast<uint32_t>(s.group_size));
      for (float v : p.scales) w.f32(v);
    }
  }
  w.u32(crc32_of(w.out.data(), w.out.size()));
  return std::move(w.out);
}

FloatMlp parse_model(const std::vector<uint8_t>& bytes, const TrainKey& expected,
                     const std::string& name, std::vector<tinyquant::QuantParams>* params) {
  if (bytes.size() < sizeof kMagic + 8)
    throw tinyquant::FormatError(
        fmt::format("{}: {} bytes is too short for a model cache file", name, bytes.size()));
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw tinyquant::FormatError(
        fmt::format("{}: bad magic at offset 0: not a tinyquant model cache file", name));
  const size_t body = bytes.size() - 4;
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= uint32_t{bytes[body + static_cast<size_t>(i)]} << (8 * i);
  const uint32_t actual = crc32_of(bytes.data(), body);
  if (stored != actual)
    throw tinyquant::FormatError(
        fmt::format("{}: checksum mismatch at offset {}: stored CRC-32 0x{:08x}, data has 0x{:08x}",
                    name, body, stored, actual));
  Reader r(bytes, body, name);
  const uint32_t version = r.u32("version");
  if (version != kCacheVersion && version != 2)
    throw tinyquant::FormatError(fmt::format(
        "{}: version {} at offset 8, this build reads 2 and {}", name, version, kCacheVersion));
  TrainKey key;
  const uint32_t n = r.u32("layer count");
  if (n < 2 || n > 64)
    throw tinyquant::FormatError(fmt::format("{}: {} layer sizes at offset 12", name, n));
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t s = r.u32("layer size");
    if (s < 1 || s > (1u << 20))
      throw tinyquant::FormatError(
          fmt::format("{}: layer size {} = {} at offset {}", name, i, s, r.pos() - 4));
    key.sizes.push_back(static_cast<int>(s));
  }
  key.seed = r.u32("seed");
  key.epochs = r.u32("epochs");
  key.batch = r.u32("batch");
  key.lr = r.f32("lr");
  key.train_count = r.u64("train count");
  const uint32_t recipe_len = r.u32("recipe length");
  if (recipe_len > 200)
    throw tinyquant::FormatError(fmt::format("{}: recipe length {} at offset {} exceeds 200", name,
                                             recipe_len, r.pos() - 4));
  for (uint32_t i = 0; i < recipe_len; ++i) key.recipe.push_back(static_cast<char>(r.u8("recipe")));
  if (!(key == expected))
    throw tinyquant::FormatError(
        fmt::format("{}: trained with {}, but {} was asked for", name, key.tag(), expected.tag()));
  FloatMlp mlp;
  for (size_t i = 0; i + 1 < key.sizes.size(); ++i) {
    DenseLayer l;
    l.w.resize(key.sizes[i + 1], key.sizes[i]);
    l.b.resize(key.sizes[i + 1]);
    for (Eigen::Index k = 0; k < l.w.size(); ++k) l.w.data()[k] = r.f32("weights");
    for (Eigen::Index k = 0; k < l.b.size(); ++k) l.b[k] = r.f32("biases");
    mlp.layers.push_back(std::move(l));
  }
  std::vector<tinyquant::QuantParams> stored_params;
  const uint32_t p = version >= 3 ? r.u32("parameter layer count") : 0;
  if (p != 0 && p != mlp.layers.size())
    throw tinyquant::FormatError(fmt::format("{}: {} parameter layers at offset {} for {} layers",
                                             name, p, r.pos() - 4, mlp.layers.size()));
  for (uint32_t i = 0; i < p; ++i) {
    const DenseLayer& l = mlp.layers[i];
    const uint32_t bits = r.u32("parameter bits");
    if (bits < 2 || bits > 8)
      throw tinyquant::FormatError(
          fmt::format("{}: layer {} parameter bits {} at offset {}", name, i, bits, r.pos() - 4));
    const uint32_t group = r.u32("group size");
    if (group < 1 || group > static_cast<uint32_t>(l.w.cols()))
      throw tinyquant::FormatError(
          fmt::format("{}: layer {} group size {} at offset {} (inputs {})", name, i, group,
                      r.pos() - 4, l.w.cols()));
    tinyquant::QuantParams q;
    q.spec = tinyquant::QuantSpec::int4_per_group(group, 1);
    q.spec.bits = static_cast<int>(bits);
    const int64_t count = l.w.rows() * ((l.w.cols() + group - 1) / group);
    for (int64_t k = 0; k < count; ++k) {
      const float s = r.f32("group scales");
      if (!std::isfinite(s) || !(s > 0.0f))
        throw tinyquant::FormatError(fmt::format("{}: layer {} group scale {} = {} at offset {}",
                                                 name, i, k, s, r.pos() - 4));
      q.scales.push_back(s);
    }
    q.zero_points.assign(static_cast<size_t>(count), 0);
    stored_params.push_back(std::move(q));
  }
  if (params != nullptr) *params = std::move(stored_params);
  if (r.pos() != body)
    throw tinyquant::FormatError(
        fmt::format("{}: {} unexpected bytes after the weights and parameters at offset {}", name,
                    body - r.pos(), r.pos()));
  return mlp;
}

void save_model(const std::string& path, const FloatMlp& mlp, const TrainKey& key,
                const std::vector<tinyquant::QuantParams>* params) {
  write_file(path, serialize_model(mlp, key, params), false);
}

std::optional<FloatMlp> load_model(const std::string& path, const TrainKey& expected,
                                   std::vector<tinyquant::QuantParams>* params) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec) return std::nullopt;  // not cached yet
  const std::vector<uint8_t> bytes = tinyquant::io::read_file_bytes(path);
  return parse_model(bytes, expected, path, params);
}

}  // namespace fmnist
