#include "tinyquant/io/model_file.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include "../detail/check.hpp"
#include "tinyquant/io/atomic_file.hpp"
#include "tinyquant/io/npy.hpp"

namespace tinyquant::io {

using detail::fail;

namespace {

constexpr char kMagic[8] = {'T', 'Q', 'M', 'O', 'D', 'E', 'L', '\0'};
constexpr char kEntryMagic[4] = {'T', 'Q', 'E', 'N'};
constexpr size_t kHeaderSize = 64;
constexpr size_t kEntryHeaderSize = 32;
constexpr uint64_t kAlign = 64;
constexpr size_t kMaxName = kMaxEntryName;
constexpr size_t kMaxRank = kMaxEntryRank;
constexpr size_t kMaxParts = 16;

uint64_t align_up(uint64_t v) {
  return (v + kAlign - 1) / kAlign * kAlign;
}

int64_t element_bits(Storage s) {
  switch (s) {
    case Storage::kFloat32:
      return 32;
    case Storage::kInt8:
      return 8;
    case Storage::kInt4:
      return 4;
    case Storage::kInt16:
      return 16;
    case Storage::kInt32:
      return 32;
  }
  return 0;
}

Storage storage_for_bits(int bits) {
  if (bits <= 4) return Storage::kInt4;
  if (bits <= 8) return Storage::kInt8;
  return Storage::kInt16;
}

// Little-endian writer.
struct Writer {
  std::vector<uint8_t> out;
  void u8(uint8_t v) { out.push_back(v); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void i32(int32_t v) { le(static_cast<uint32_t>(v), 4); }
  void i64(int64_t v) { le(static_cast<uint64_t>(v), 8); }
  void f32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    u32(b);
  }
  void bytes(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  void pad_to(uint64_t size) { out.resize(static_cast<size_t>(size), 0); }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
};

void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

// Bounds-checked little-endian reader over [begin, end) of a buffer; errors name the absolute
// offset, the file and what was being read.
struct Reader {
  const uint8_t* data;
  uint64_t pos, end;
  const std::string& source;
  std::string where;

  [[noreturn]] void bad(const std::string& what) const {
    fail<FormatError>("{}: {}: {} at byte offset {}", source, where, what, pos);
  }
  void need(uint64_t n, const char* what) const {
    if (n > end - pos)
      bad(fmt::format("truncated {} (needs {} bytes, {} left)", what, n, end - pos));
  }
  uint64_t le(int n, const char* what) {
    need(static_cast<uint64_t>(n), what);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{data[pos + static_cast<uint64_t>(i)]} << (8 * i);
    pos += static_cast<uint64_t>(n);
    return v;
  }
  uint8_t u8(const char* w) { return static_cast<uint8_t>(le(1, w)); }
  uint16_t u16(const char* w) { return static_cast<uint16_t>(le(2, w)); }
  uint32_t u32(const char* w) { return static_cast<uint32_t>(le(4, w)); }
  uint64_t u64(const char* w) { return le(8, w); }
  int32_t i32(const char* w) { return static_cast<int32_t>(u32(w)); }
  int64_t i64(const char* w) { return static_cast<int64_t>(u64(w)); }
  float f32(const char* w) {
    const uint32_t b = u32(w);
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
};

void check_zero(const uint8_t* data, uint64_t from, uint64_t to, const std::string& source,
                const char* what) {
  for (uint64_t i = from; i < to; ++i)
    if (data[i] != 0)
      fail<FormatError>("{}: {}: padding byte is {:#04x}, expected 0, at byte offset {}", source,
                        what, data[i], i);
}

void write_meta(Writer& w, const ModelEntry& e, const std::vector<uint64_t>& part_offsets) {
  w.u16(static_cast<uint16_t>(e.name.size()));
  w.bytes(e.name.data(), e.name.size());
  w.u8(static_cast<uint8_t>(e.storage));
  w.u8(static_cast<uint8_t>(e.shape.size()));
  for (int64_t d : e.shape) w.i64(d);
  w.u8(e.params ? 1 : 0);
  if (e.params) {
    const QuantParams& p = *e.params;
    w.u8(static_cast<uint8_t>(p.spec.bits));
    w.u8(static_cast<uint8_t>(p.spec.scheme));
    w.u8(p.spec.narrow_range ? 1 : 0);
    w.u8(static_cast<uint8_t>(p.spec.granularity));
    w.i32(p.spec.axis);
    w.i64(p.spec.group_size);
    w.u64(p.scales.size());
    for (float s : p.scales) w.f32(s);
    for (int32_t z : p.zero_points) w.i32(z);
  }
  w.u8(e.format);
  w.u8(static_cast<uint8_t>(e.parts.size()));
  for (size_t i = 0; i < e.parts.size(); ++i) {
    w.u16(static_cast<uint16_t>(e.parts[i].name.size()));
    w.bytes(e.parts[i].name.data(), e.parts[i].name.size());
    w.u64(part_offsets[i]);
    w.u64(e.parts[i].bytes.size());
  }
}

// The codes of a dense quantized entry lie in its parameters' [qmin, qmax]: a code outside it
// (an int8 byte of 127 under 5-bit parameters) is no value of the tensor. `b` has the entry's
// exact byte count. Skipped when the range covers the whole storage type.
void check_codes(const ModelEntry& e, const std::vector<uint8_t>& b, int64_t n,
                 const std::string& where) {
  const QuantSpec& spec = e.params->spec;
  const int32_t lo = spec.qmin(), hi = spec.qmax();
  const auto bits = static_cast<int>(element_bits(e.storage));  // 4, 8 or 16 here
  if (lo == -(int32_t{1} << (bits - 1)) && hi == (int32_t{1} << (bits - 1)) - 1) return;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t code = detail::stored_code(b.data(), bits, i);
    if (code < lo || code > hi)
      fail<InvalidArgument>("{}: element {} holds code {}, outside the {}-bit{} range [{}, {}]",
                            where, i, code, spec.bits, spec.narrow_range ? " narrow" : "", lo, hi);
  }
}

// The part of e named part_name, or null.
const ModelPart* find_part(const ModelEntry& e, const std::string& part_name) {
  for (const ModelPart& p : e.parts)
    if (p.name == part_name) return &p;
  return nullptr;
}

void validate_entry(const ModelEntry& e, const std::string& where) {
  const std::string header = entry_header_problem(e.name, e.shape.size());
  if (!header.empty()) fail<InvalidArgument>("{}: {}", where, header);
  if (static_cast<uint8_t>(e.storage) > static_cast<uint8_t>(Storage::kInt32))
    fail<InvalidArgument>("{}: unknown storage {}", where, static_cast<int>(e.storage));
  const int64_t n = numel(e.shape);
  if (e.parts.empty() || e.parts.size() > kMaxParts)
    fail<InvalidArgument>("{}: {} parts (must be 1..{})", where, e.parts.size(), kMaxParts);
  for (const ModelPart& p : e.parts)
    if (p.name.empty() || p.name.size() > 64)
      fail<InvalidArgument>("{}: part name length {} must be in [1, 64]", where, p.name.size());
  for (size_t i = 1; i < e.parts.size(); ++i)
    for (size_t k = 0; k < i; ++k)
      if (e.parts[i].name == e.parts[k].name)
        fail<InvalidArgument>("{}: parts {} and {} are both named '{}'", where, k, i,
                              tinyquant::printable(e.parts[i].name));
  if (e.params) {
    e.params->validate(e.shape);
    if (storage_for_bits(e.params->spec.bits) != e.storage)
      fail<InvalidArgument>("{}: {}-bit parameters with {} storage", where, e.params->spec.bits,
                            to_string(e.storage));
  }
  if (e.format == 0) {
    const ModelPart* data = find_part(e, "data");
    if (data == nullptr)
      fail<InvalidArgument>("{}: dense entry has no part named 'data' ({} other parts)", where,
                            e.parts.size());
    const ModelPart& d = *data;
    const int64_t bits = element_bits(e.storage);
    if (n > (std::numeric_limits<int64_t>::max() - 7) / bits)
      fail<InvalidArgument>("{}: dense {} data of shape {} needs more than 2^63 bytes, has {}",
                            where, to_string(e.storage), tinyquant::to_string(e.shape),
                            d.bytes.size());
    const uint64_t want = static_cast<uint64_t>((n * bits + 7) / 8);
    if (d.bytes.size() != want)
      fail<InvalidArgument>("{}: dense {} data of shape {} needs {} bytes, has {}", where,
                            to_string(e.storage), tinyquant::to_string(e.shape), want,
                            d.bytes.size());
    if (e.params) check_codes(e, d.bytes, n, where);
  }
}

}  // namespace

std::string entry_header_problem(std::string_view name, size_t rank) {
  if (name.empty() || name.size() > kMaxName)
    return fmt::format("name length {} must be in [1, {}]", name.size(), kMaxName);
  if (name.find('\0') != std::string_view::npos) return "name contains a NUL byte";
  if (rank > kMaxRank) return fmt::format("rank {} exceeds {}", rank, kMaxRank);
  return {};
}

const char* to_string(Storage s) noexcept {
  switch (s) {
    case Storage::kFloat32:
      return "float32";
    case Storage::kInt8:
      return "int8";
    case Storage::kInt4:
      return "int4";
    case Storage::kInt16:
      return "int16";
    case Storage::kInt32:
      return "int32";
  }
  return "unknown";
}

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) noexcept {
  static const struct Table {
    uint32_t t[256];
    Table() {
      for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
      }
    }
  } table;
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table.t[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

const ModelPart& ModelEntry::part(const std::string& part_name) const {
  if (const ModelPart* p = find_part(*this, part_name)) return *p;
  fail<FormatError>("model entry '{}' has no part '{}'", tinyquant::printable(name),
                    tinyquant::printable(part_name));
}

const ModelEntry& Model::find(const std::string& name) const {
  for (const ModelEntry& e : entries)
    if (e.name == name) return e;
  fail<InvalidArgument>("model has no tensor named '{}' ({} tensors)", tinyquant::printable(name),
                        entries.size());
}

std::vector<uint8_t> serialize_model(const Model& model) {
  std::set<std::string> names;
  for (size_t i = 0; i < model.entries.size(); ++i) {
    const ModelEntry& e = model.entries[i];
    validate_entry(e, fmt::format("model entry {} ('{}')", i, tinyquant::printable(e.name)));
    if (!names.insert(e.name).second)
      fail<InvalidArgument>("model entry {}: duplicate name '{}'", i, tinyquant::printable(e.name));
  }
  if (model.entries.size() > std::numeric_limits<uint32_t>::max())
    fail<InvalidArgument>("model of {} entries exceeds the format's 32-bit entry count",
                          model.entries.size());
  Writer w;
  w.bytes(kMagic, 8);
  w.u32(kModelFileVersion);
  w.u32(static_cast<uint32_t>(model.entries.size()));
  w.u64(0);  // file size, patched below
  w.u32(0);  // flags
  w.u32(0);  // header CRC, patched below
  w.pad_to(kHeaderSize);
  for (const ModelEntry& e : model.entries) {
    std::vector<uint64_t> offsets;
    uint64_t payload = 0;
    for (const ModelPart& p : e.parts) {
      offsets.push_back(payload);
      payload = align_up(payload + p.bytes.size());
    }
    Writer meta;
    write_meta(meta, e, offsets);
    if (meta.out.size() > std::numeric_limits<uint32_t>::max())
      fail<InvalidArgument>(
          "model entry '{}': its metadata (shape, quantization parameters, part table) takes {} "
          "bytes, more than the format's 32-bit meta size holds",
          tinyquant::printable(e.name), meta.out.size());
    std::vector<uint8_t> body(static_cast<size_t>(payload), 0);
    for (size_t i = 0; i < e.parts.size(); ++i)
      if (!e.parts[i].bytes.empty())
        std::memcpy(body.data() + offsets[i], e.parts[i].bytes.data(), e.parts[i].bytes.size());
    const size_t at = w.out.size();
    w.bytes(kEntryMagic, 4);
    w.u32(static_cast<uint32_t>(meta.out.size()));
    w.u64(payload);
    w.u32(crc32(meta.out.data(), meta.out.size()));
    w.u32(crc32(body.data(), body.size()));
    w.u32(crc32(w.out.data() + at, 24));
    w.u32(0);
    w.bytes(meta.out.data(), meta.out.size());
    w.pad_to(align_up(w.out.size()));
    w.bytes(body.data(), body.size());
  }
  std::vector<uint8_t>& out = w.out;
  for (int i = 0; i < 8; ++i)
    out[16 + static_cast<size_t>(i)] = static_cast<uint8_t>(uint64_t{out.size()} >> (8 * i));
  put_u32(out, 28, crc32(out.data(), 28));
  return out;
}

Model parse_model(const uint8_t* data, size_t size, const std::string& source) {
  if (data == nullptr && size != 0) fail<InvalidArgument>("{}: null buffer", source);
  Reader r{data, 0, size, source, "file header"};
  r.need(kHeaderSize, "file header");
  if (std::memcmp(data, kMagic, 8) != 0) r.bad("bad magic (not a tinyquant model file)");
  r.pos = 8;
  const uint32_t version = r.u32("version");
  if (version != kModelFileVersion)
    r.bad(fmt::format("unsupported version {} (this reader knows {})", version, kModelFileVersion));
  const uint32_t count = r.u32("entry count");
  const uint64_t file_size = r.u64("file size");
  const uint32_t flags = r.u32("flags");
  const uint32_t header_crc = r.u32("header CRC");
  if (crc32(data, 28) != header_crc) {
    r.pos = 28;
    r.bad("file header CRC mismatch");
  }
  if (file_size != size) {
    r.pos = 16;
    r.bad(fmt::format("file size field says {} bytes but there are {} ({})", file_size, size,
                      file_size > size ? "truncated" : "trailing bytes"));
  }
  if (flags != 0) {
    r.pos = 24;
    r.bad(fmt::format("unknown flags {:#x}", flags));
  }
  check_zero(data, 32, kHeaderSize, source, "file header");
  if (count > (size - kHeaderSize) / kAlign) r.bad(fmt::format("entry count {} cannot fit", count));

  Model model;
  std::set<std::string> names;
  uint64_t pos = kHeaderSize;
  for (uint32_t i = 0; i < count; ++i) {
    Reader h{data, pos, size, source, fmt::format("entry {}", i)};
    h.need(kEntryHeaderSize, "entry header");
    if (std::memcmp(data + pos, kEntryMagic, 4) != 0) h.bad("bad entry magic");
    h.pos += 4;
    const uint32_t meta_size = h.u32("meta size");
    const uint64_t payload_size = h.u64("payload size");
    const uint32_t meta_crc = h.u32("meta CRC");
    const uint32_t payload_crc = h.u32("payload CRC");
    const uint32_t entry_crc = h.u32("entry header CRC");
    if (crc32(data + pos, 24) != entry_crc) {
      h.pos = pos;
      h.bad("entry header CRC mismatch");
    }
    if (h.u32("reserved") != 0) h.bad("reserved field is not 0");
    const uint64_t meta_at = pos + kEntryHeaderSize;
    h.pos = meta_at;
    h.need(meta_size, "meta");
    if (crc32(data + meta_at, meta_size) != meta_crc) h.bad("meta CRC mismatch");
    const uint64_t payload_at = align_up(meta_at + meta_size);
    if (payload_at > size) h.bad("truncated before payload");
    check_zero(data, meta_at + meta_size, payload_at, source, "padding after meta");
    h.pos = payload_at;
    h.need(payload_size, "payload");
    if (payload_size % kAlign != 0)
      h.bad(fmt::format("payload size {} is not a multiple of 64", payload_size));
    if (crc32(data + payload_at, static_cast<size_t>(payload_size)) != payload_crc)
      h.bad("payload CRC mismatch");

    // Meta: every field bounds-checked against the meta size.
    Reader m{data, meta_at, meta_at + meta_size, source, fmt::format("entry {} meta", i)};
    ModelEntry e;
    const uint16_t name_len = m.u16("name length");
    if (name_len == 0 || name_len > kMaxName) m.bad(fmt::format("name length {}", name_len));
    m.need(name_len, "name");
    e.name.assign(reinterpret_cast<const char*>(data + m.pos), name_len);
    m.pos += name_len;
    const uint8_t storage = m.u8("storage");
    if (storage > static_cast<uint8_t>(Storage::kInt32))
      m.bad(fmt::format("unknown storage {}", storage));
    e.storage = static_cast<Storage>(storage);
    const uint8_t rank = m.u8("rank");
    if (rank > kMaxRank) m.bad(fmt::format("rank {} exceeds {}", rank, kMaxRank));
    for (uint8_t d = 0; d < rank; ++d) {
      const int64_t ext = m.i64("dimension");
      if (ext < 0) m.bad(fmt::format("negative dimension {}", ext));
      e.shape.push_back(ext);
    }
    const std::string label =
        fmt::format("{}: entry {} ('{}')", source, i, tinyquant::printable(e.name));
    try {
      (void)numel(e.shape);  // rejects element counts that overflow int64
    } catch (const ShapeError& err) {
      fail<FormatError>("{}: {}", label, err.what());
    }
    const uint8_t has_params = m.u8("quantization flag");
    if (has_params > 1) m.bad(fmt::format("quantization flag {}", has_params));
    if (has_params) {
      QuantParams p;
      p.spec.bits = m.u8("bits");
      const uint8_t scheme = m.u8("scheme"), narrow = m.u8("narrow range"),
                    gran = m.u8("granularity");
      if (scheme > 1 || narrow > 1 || gran > 2)
        m.bad(fmt::format("bad scheme {} / narrow {} / granularity {}", scheme, narrow, gran));
      p.spec.scheme = static_cast<Scheme>(scheme);
      p.spec.narrow_range = narrow != 0;
      p.spec.granularity = static_cast<Granularity>(gran);
      p.spec.axis = m.i32("axis");
      p.spec.group_size = m.i64("group size");
      const uint64_t pc = m.u64("parameter count");
      if (pc > (m.end - m.pos) / 8) m.bad(fmt::format("parameter count {} exceeds the meta", pc));
      p.scales.resize(static_cast<size_t>(pc));
      p.zero_points.resize(static_cast<size_t>(pc));
      for (float& s : p.scales) s = m.f32("scale");
      for (int32_t& z : p.zero_points) z = m.i32("zero point");
      try {
        p.validate(e.shape);
      } catch (const Error& err) {
        fail<FormatError>("{}: invalid quantization parameters: {}", label, err.what());
      }
      e.params = std::move(p);
    }
    e.format = m.u8("format");
    const uint8_t parts = m.u8("part count");
    if (parts == 0 || parts > kMaxParts) m.bad(fmt::format("part count {}", parts));
    uint64_t next_free = 0;
    for (uint8_t k = 0; k < parts; ++k) {
      ModelPart part;
      const uint16_t pn = m.u16("part name length");
      if (pn == 0 || pn > 64) m.bad(fmt::format("part name length {}", pn));
      m.need(pn, "part name");
      part.name.assign(reinterpret_cast<const char*>(data + m.pos), pn);
      m.pos += pn;
      const uint64_t off = m.u64("part offset"), len = m.u64("part size");
      if (off % kAlign != 0 || off < next_free || off > payload_size || len > payload_size - off)
        m.bad(
            fmt::format("part '{}' [{}, +{}) is misaligned, overlapping or outside the {}-byte "
                        "payload",
                        tinyquant::printable(part.name), off, len, payload_size));
      const uint64_t pad_end = k + 1 == parts ? payload_size : align_up(off + len);
      check_zero(data, payload_at + next_free, payload_at + off, source, "payload padding");
      part.bytes.assign(data + payload_at + off, data + payload_at + off + len);
      next_free = off + len;
      if (k + 1 == parts)
        check_zero(data, payload_at + next_free, payload_at + pad_end, source, "payload padding");
      e.parts.push_back(std::move(part));
    }
    if (m.pos != m.end)
      m.bad(fmt::format("{} unexpected bytes at the end of the meta", m.end - m.pos));
    try {
      validate_entry(e, label);
    } catch (const InvalidArgument& err) {
      fail<FormatError>("{}", err.what());
    }
    if (!names.insert(e.name).second) fail<FormatError>("{}: duplicate tensor name", label);
    model.entries.push_back(std::move(e));
    pos = payload_at + payload_size;
  }
  if (pos != size)
    fail<FormatError>("{}: {} trailing bytes after the last entry at byte offset {}", source,
                      size - pos, pos);
  return model;
}

void save_model(const Model& model, const std::string& path) {
  const std::vector<uint8_t> bytes = serialize_model(model);
  AtomicFile file(path, false);  // a rename cannot write to a device or a FIFO
  file.write(bytes);
  file.commit();
}

Model load_model(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_model(bytes.data(), bytes.size(), path);
}

ModelEntry make_entry(const std::string& name, const QTensor& q) {
  q.params.validate(q.shape);
  ModelEntry e;
  e.name = name;
  e.storage = storage_for_bits(q.bits());
  e.shape = q.shape;
  e.params = q.params;
  e.parts.push_back({"data", q.data});
  return e;
}

ModelEntry make_entry(const std::string& name, const float* data, const Shape& shape) {
  ModelEntry e;
  e.name = name;
  e.storage = Storage::kFloat32;
  e.shape = shape;
  const size_t n = static_cast<size_t>(numel(shape));
  if (n != 0 && data == nullptr)
    fail<InvalidArgument>("make_entry '{}': data is null for shape {}", tinyquant::printable(name),
                          tinyquant::to_string(shape));
  std::vector<uint8_t> b(n * 4);
  if (n != 0) std::memcpy(b.data(), data, n * 4);  // little-endian hosts only (see header)
  e.parts.push_back({"data", std::move(b)});
  return e;
}

ModelEntry make_entry(const std::string& name, const int32_t* data, const Shape& shape) {
  ModelEntry e = make_entry(name, reinterpret_cast<const float*>(data), shape);
  e.storage = Storage::kInt32;
  return e;
}

namespace {

// The data part of a dense entry, checked against its shape and storage: an entry built in memory
// (not read by parse_model, which checks the same) with too few or too many bytes must not be read
// or copied past its end.
const std::vector<uint8_t>& dense_data(const ModelEntry& e) {
  const std::vector<uint8_t>& b = e.part("data").bytes;
  const int64_t n = numel(e.shape);
  const int64_t bits = element_bits(e.storage);
  if (bits == 0 || n < 0 || n > (std::numeric_limits<int64_t>::max() - 7) / bits ||
      b.size() != static_cast<uint64_t>((n * bits + 7) / 8))
    fail<FormatError>(
        "model entry '{}': dense {} data of shape {} needs {} bytes, has {}",
        tinyquant::printable(e.name), to_string(e.storage), tinyquant::to_string(e.shape),
        bits == 0 ? std::string("?") : fmt::format("{}", (n * bits + 7) / 8), b.size());
  return b;
}

}  // namespace

QTensor to_qtensor(const ModelEntry& e) {
  if (!e.params || e.format != 0)
    fail<FormatError>("model entry '{}' is not a dense quantized tensor",
                      tinyquant::printable(e.name));
  if (storage_for_bits(e.params->spec.bits) != e.storage)
    fail<FormatError>("model entry '{}': {}-bit parameters with {} storage",
                      tinyquant::printable(e.name), e.params->spec.bits, to_string(e.storage));
  QTensor q;
  q.shape = e.shape;
  q.params = *e.params;
  q.data = dense_data(e);
  // An entry built in memory has not met the file's checks: its parameters and codes are
  // checked here, as parse_model and serialize_model check them.
  const std::string where = fmt::format("model entry '{}'", tinyquant::printable(e.name));
  try {
    q.params.validate(q.shape);
  } catch (const Error& err) {
    fail<FormatError>("{}: {}", where, err.what());
  }
  try {
    check_codes(e, q.data, numel(q.shape), where);  // its messages start with `where`
  } catch (const InvalidArgument& err) {
    fail<FormatError>("{}", err.what());
  }
  return q;
}

std::vector<float> to_floats(const ModelEntry& e) {
  if (e.storage != Storage::kFloat32 || e.format != 0)
    fail<FormatError>("model entry '{}' is {} (format {}), not dense float32",
                      tinyquant::printable(e.name), to_string(e.storage), e.format);
  const std::vector<uint8_t>& b = dense_data(e);
  std::vector<float> v(b.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
  return v;
}

std::vector<int32_t> to_int32(const ModelEntry& e) {
  if (e.storage != Storage::kInt32 || e.format != 0)
    fail<FormatError>("model entry '{}' is {} (format {}), not dense int32",
                      tinyquant::printable(e.name), to_string(e.storage), e.format);
  const std::vector<uint8_t>& b = dense_data(e);
  std::vector<int32_t> v(b.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
  return v;
}

}  // namespace tinyquant::io
