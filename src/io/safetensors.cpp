#include "tinyquant/io/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>

#include "../detail/check.hpp"

namespace tinyquant::io {

using detail::fail;
using tinyquant::to_string;

namespace {

// Arrays in a safetensors header are shapes and offset pairs; anything longer is not a header.
constexpr size_t kMaxArrayItems = 64;
constexpr int kMaxDepth = 8;  // header -> tensor -> shape is depth 3

// Length of the valid UTF-8 sequence starting at p[0] (of at most n bytes), or 0 if invalid:
// overlong forms, surrogates and code points above U+10FFFF are invalid.
size_t utf8_sequence(const uint8_t* p, size_t n) noexcept {
  const uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1Fu, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0Fu, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool valid_utf8(const std::string& s) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence(p + i, s.size() - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct JsonMember;

// The subset of JSON a safetensors header uses. offset is the file offset of the first byte.
struct Json {
  enum class Kind { kObject, kArray, kString, kInteger };
  Kind kind = Kind::kObject;
  size_t offset = 0;
  std::string str;
  int64_t integer = 0;
  std::vector<Json> items;
  std::vector<JsonMember> members;
};

struct JsonMember {
  std::string key;
  size_t key_offset;
  Json value;
};

const char* kind_name(Json::Kind k) {
  switch (k) {
    case Json::Kind::kObject:
      return "an object";
    case Json::Kind::kArray:
      return "an array";
    case Json::Kind::kString:
      return "a string";
    case Json::Kind::kInteger:
      return "an integer";
  }
  return "?";
}

class JsonParser {
 public:
  JsonParser(const uint8_t* p, size_t n, size_t base) : p_(p), n_(n), base_(base) {}

  Json parse_header() {
    if (peek() != '{') error("'{' as the first byte of the header");
    Json root = parse_value(0);
    skip_ws();  // writers pad the header with spaces
    if (pos_ != n_) error("only whitespace after the header object");
    return root;
  }

 private:
  [[noreturn]] void error(std::string_view expected) const {
    std::string found = "end of header";
    if (pos_ < n_) {
      const uint8_t c = p_[pos_];
      found = c >= 0x20 && c < 0x7F ? fmt::format("'{}'", static_cast<char>(c))
                                    : fmt::format("byte 0x{:02x}", c);
    }
    fail<FormatError>("safetensors header: expected {} at offset {}, found {}", expected,
                      base_ + pos_, found);
  }
  int peek() const { return pos_ < n_ ? p_[pos_] : -1; }
  void skip_ws() {
    while (pos_ < n_ &&
           (p_[pos_] == ' ' || p_[pos_] == '\t' || p_[pos_] == '\n' || p_[pos_] == '\r'))
      ++pos_;
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth)
      fail<FormatError>("safetensors header: nesting deeper than {} at offset {}", kMaxDepth,
                        base_ + pos_);
    if (++values_ > kSafetensorsMaxValues)
      fail<FormatError>("safetensors header: more than {} values at offset {}",
                        kSafetensorsMaxValues, base_ + pos_);
    skip_ws();
    Json v;
    v.offset = base_ + pos_;
    const int c = peek();
    if (c == '{') {
      v.kind = Json::Kind::kObject;
      parse_object(v, depth);
    } else if (c == '[') {
      v.kind = Json::Kind::kArray;
      parse_array(v, depth);
    } else if (c == '"') {
      v.kind = Json::Kind::kString;
      v.str = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = Json::Kind::kInteger;
      v.integer = parse_integer();
    } else {
      error("an object, array, string or integer");
    }
    return v;
  }

  void parse_object(Json& v, int depth) {
    ++pos_;  // '{'
    std::set<std::string> keys;
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      if (peek() != '"') error("a string key");
      const size_t key_offset = base_ + pos_;
      std::string key = parse_string();
      if (!keys.insert(key).second)
        fail<FormatError>("safetensors header: duplicate key \"{}\" at offset {}",
                          tinyquant::printable(key), key_offset);
      skip_ws();
      if (peek() != ':') error("':' after an object key");
      ++pos_;
      Json value = parse_value(depth + 1);
      v.members.push_back(JsonMember{std::move(key), key_offset, std::move(value)});
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') error("',' or '}' in an object");
      ++pos_;
      return;
    }
  }

  void parse_array(Json& v, int depth) {
    ++pos_;  // '['
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      if (v.items.size() == kMaxArrayItems)
        fail<FormatError>("safetensors header: array at offset {} has more than {} items", v.offset,
                          kMaxArrayItems);
      v.items.push_back(parse_value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ']') error("',' or ']' in an array");
      ++pos_;
      return;
    }
  }

  uint32_t parse_hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = peek();
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        error("four hex digits after \\u");
      }
      v = v * 16 + d;
      ++pos_;
    }
    return v;
  }

  std::string parse_string() {
    ++pos_;  // '"'
    std::string s;
    for (;;) {
      const int c = peek();
      if (c < 0) error("a closing '\"'");
      if (c == '"') {
        ++pos_;
        return s;
      }
      if (c < 0x20) error("an escaped control character");
      if (c == '\\') {
        ++pos_;
        const int e = peek();
        ++pos_;
        switch (e) {
          case '"':
            s += '"';
            break;
          case '\\':
            s += '\\';
            break;
          case '/':
            s += '/';
            break;
          case 'b':
            s += '\b';
            break;
          case 'f':
            s += '\f';
            break;
          case 'n':
            s += '\n';
            break;
          case 'r':
            s += '\r';
            break;
          case 't':
            s += '\t';
            break;
          case 'u': {
            uint32_t cp = parse_hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
              pos_ -= 6;
              error("a high surrogate before a low surrogate");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (peek() != '\\' || pos_ + 1 >= n_ || p_[pos_ + 1] != 'u')
                error("\\u and a low surrogate after a high surrogate");
              pos_ += 2;
              const uint32_t lo = parse_hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) {
                pos_ -= 4;
                error("a low surrogate (DC00..DFFF)");
              }
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(s, cp);
            break;
          }
          default:
            --pos_;
            error("one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\'");
        }
        continue;
      }
      const size_t len = utf8_sequence(p_ + pos_, n_ - pos_);
      if (len == 0) error("valid UTF-8");
      s.append(reinterpret_cast<const char*>(p_ + pos_), len);
      pos_ += len;
    }
  }

  int64_t parse_integer() {
    const size_t start = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (peek() < '0' || peek() > '9') error("a digit");
    if (peek() == '0' && pos_ + 1 < n_ && p_[pos_ + 1] >= '0' && p_[pos_ + 1] <= '9')
      error("no leading zero in an integer");
    uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const auto d = static_cast<uint64_t>(peek() - '0');
      if (v > (uint64_t{1} << 63) / 10 || v * 10 + d > (uint64_t{1} << 63))
        fail<FormatError>("safetensors header: integer at offset {} overflows int64",
                          base_ + start);
      v = v * 10 + d;
      ++pos_;
    }
    if (peek() == '.' || peek() == 'e' || peek() == 'E')
      error("an integer (no fraction or exponent)");
    if (!negative && v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail<FormatError>("safetensors header: integer at offset {} overflows int64", base_ + start);
    if (negative)
      return v == (uint64_t{1} << 63) ? std::numeric_limits<int64_t>::min()
                                      : -static_cast<int64_t>(v);
    return static_cast<int64_t>(v);
  }

  const uint8_t* p_;
  size_t n_;
  size_t base_;
  size_t pos_ = 0;
  size_t values_ = 0;  // parsed so far, against kSafetensorsMaxValues
};

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypes[] = {
    {"F16", DType::kFloat16}, {"BF16", DType::kBFloat16}, {"F32", DType::kFloat32},
    {"F64", DType::kFloat64}, {"I8", DType::kInt8},       {"U8", DType::kUInt8},
    {"I16", DType::kInt16},   {"I32", DType::kInt32},     {"I64", DType::kInt64},
};

void expect_kind(const Json& v, Json::Kind kind, std::string_view what) {
  if (v.kind != kind)
    fail<FormatError>("safetensors header: {} at offset {} must be {}, found {}", what, v.offset,
                      kind_name(kind), kind_name(v.kind));
}

struct Entry {
  SafeTensor tensor;
  int64_t begin;
  int64_t end;
  size_t offset;  // of the entry's name in the file
};

Entry parse_entry(const JsonMember& m) {
  const std::string where = fmt::format("tensor \"{}\"", tinyquant::printable(m.key));
  expect_kind(m.value, Json::Kind::kObject, where);
  const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
  for (const JsonMember& f : m.value.members) {
    if (f.key == "dtype") {
      dtype = &f.value;
    } else if (f.key == "shape") {
      shape = &f.value;
    } else if (f.key == "data_offsets") {
      offsets = &f.value;
    } else {
      fail<FormatError>(
          "safetensors header: {} has unexpected key \"{}\" at offset {} (expected only dtype, "
          "shape, data_offsets)",
          where, tinyquant::printable(f.key), f.key_offset);
    }
  }
  const char* missing = dtype == nullptr     ? "dtype"
                        : shape == nullptr   ? "shape"
                        : offsets == nullptr ? "data_offsets"
                                             : nullptr;
  if (missing != nullptr)
    fail<FormatError>("safetensors header: {} at offset {} is missing key \"{}\"", where,
                      m.key_offset, missing);

  Entry e{};
  e.tensor.name = m.key;
  e.offset = m.key_offset;
  expect_kind(*dtype, Json::Kind::kString, where + " dtype");
  const DTypeName* found = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                        [&](const DTypeName& d) { return dtype->str == d.name; });
  if (found == std::end(kDTypes))
    fail<FormatError>(
        "safetensors header: {} has unsupported dtype \"{}\" at offset {} (expected F16, BF16, "
        "F32, F64, I8, U8, I16, I32 or I64)",
        where, tinyquant::printable(dtype->str), dtype->offset);
  e.tensor.dtype = found->dtype;

  expect_kind(*shape, Json::Kind::kArray, where + " shape");
  for (const Json& x : shape->items) {
    expect_kind(x, Json::Kind::kInteger, where + " shape extent");
    if (x.integer < 0)
      fail<FormatError>("safetensors header: {} shape extent {} at offset {} is negative", where,
                        x.integer, x.offset);
    e.tensor.shape.push_back(x.integer);
  }
  int64_t n = 0;  // no extent is negative here, so false is an overflow
  if (!checked_numel(e.tensor.shape, &n))
    fail<FormatError>("safetensors header: {} shape at offset {}: element count overflows int64",
                      where, shape->offset);
  const int64_t item = itemsize(e.tensor.dtype);
  if (n > std::numeric_limits<int64_t>::max() / item)
    fail<FormatError>("safetensors header: {} shape at offset {}: byte count overflows int64",
                      where, shape->offset);

  expect_kind(*offsets, Json::Kind::kArray, where + " data_offsets");
  if (offsets->items.size() != 2)
    fail<FormatError>(
        "safetensors header: {} data_offsets at offset {} must have 2 items, found {}", where,
        offsets->offset, offsets->items.size());
  for (const Json& x : offsets->items) {
    expect_kind(x, Json::Kind::kInteger, where + " data offset");
    if (x.integer < 0)
      fail<FormatError>("safetensors header: {} data offset {} at offset {} is negative", where,
                        x.integer, x.offset);
  }
  e.begin = offsets->items[0].integer;
  e.end = offsets->items[1].integer;
  if (e.end < e.begin)
    fail<FormatError>(
        "safetensors header: {} data_offsets [{}, {}] at offset {} end before they begin", where,
        e.begin, e.end, offsets->offset);
  if (e.end - e.begin != n * item)
    fail<FormatError>(
        "safetensors header: {} data_offsets [{}, {}] at offset {} span {} bytes, expected {} "
        "(shape {} of {})",
        where, e.begin, e.end, offsets->offset, e.end - e.begin, n * item,
        to_string(e.tensor.shape), safetensors_dtype_name(e.tensor.dtype));
  return e;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) noexcept {
  for (const DTypeName& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

void SafeTensor::throw_size_mismatch() const {
  fail<ShapeError>(
      "tensor \"{}\": data holds {} bytes but shape {} of {} needs {} bytes per element",
      tinyquant::printable(name), data.size(), to_string(shape), to_string(dtype), itemsize(dtype));
}

const SafeTensor* SafeTensors::find(const std::string& name) const {
  for (const SafeTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const SafeTensor& SafeTensors::at(const std::string& name) const {
  if (const SafeTensor* t = find(name)) return *t;
  std::vector<std::string> names;
  for (const SafeTensor& t : tensors) names.push_back("\"" + tinyquant::printable(t.name) + "\"");
  fail<InvalidArgument>("safetensors: no tensor named \"{}\" (present: {})",
                        tinyquant::printable(name), fmt::join(names, ", "));
}

SafeTensors read_safetensors(const uint8_t* data, size_t size) {
  if (data == nullptr && size != 0)
    fail<InvalidArgument>("read_safetensors: data is null but size is {}", size);
  if (size < 8)
    fail<FormatError>(
        "safetensors: truncated at offset 0: expected an 8-byte header length, "
        "found {} bytes",
        size);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t{data[i]} << (8 * i);
  if (header_len > kSafetensorsMaxHeader)
    fail<FormatError>("safetensors: header length {} at offset 0 exceeds the limit of {} bytes",
                      header_len, kSafetensorsMaxHeader);
  if (header_len > size - 8)
    fail<FormatError>(
        "safetensors: header length {} at offset 0 runs past the end of the file "
        "({} bytes after the length field)",
        header_len, size - 8);
  const size_t data_start = 8 + static_cast<size_t>(header_len);
  const uint64_t data_len = size - data_start;

  JsonParser parser(data + 8, static_cast<size_t>(header_len), 8);
  const Json root = parser.parse_header();

  SafeTensors out;
  std::vector<Entry> entries;
  for (const JsonMember& m : root.members) {
    if (m.key == "__metadata__") {
      expect_kind(m.value, Json::Kind::kObject, "__metadata__");
      for (const JsonMember& kv : m.value.members) {
        expect_kind(kv.value, Json::Kind::kString,
                    fmt::format("__metadata__ value of \"{}\"", tinyquant::printable(kv.key)));
        out.metadata.emplace_back(kv.key, kv.value.str);
      }
      continue;
    }
    entries.push_back(parse_entry(m));
  }

  // The tensors must tile [0, data_len) exactly: sorted by offset, each begins where the previous
  // one ends, the last ends at the end of the file. Zero-byte tensors may share an offset; the
  // sort is stable so they keep their header order and a write -> read round trip is exact.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    const auto begin = static_cast<uint64_t>(e.begin);
    if (begin > covered)
      fail<FormatError>(
          "safetensors: hole in the data section: bytes [{}, {}) before tensor \"{}\" (header "
          "offset {}) belong to no tensor",
          covered, begin, tinyquant::printable(e.tensor.name), e.offset);
    if (begin < covered)
      fail<FormatError>(
          "safetensors: tensor \"{}\" (header offset {}) data_offsets [{}, {}] overlap tensor "
          "\"{}\" which ends at {}",
          tinyquant::printable(e.tensor.name), e.offset, e.begin, e.end,
          tinyquant::printable(prev != nullptr ? prev->tensor.name : ""), covered);
    covered = static_cast<uint64_t>(e.end);
    prev = &e;
  }
  if (covered != data_len) {
    if (covered > data_len)
      fail<FormatError>(
          "safetensors: truncated: tensors need {} data bytes after offset {}, found {}", covered,
          data_start, data_len);
    fail<FormatError>(
        "safetensors: {} trailing bytes at offset {} belong to no tensor (expected {} "
        "data bytes, found {})",
        data_len - covered, data_start + covered, covered, data_len);
  }

  out.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    const uint8_t* src = data + data_start + static_cast<size_t>(e.begin);
    e.tensor.data.assign(src, src + (e.end - e.begin));
    out.tensors.push_back(std::move(e.tensor));
  }
  return out;
}

SafeTensors load_safetensors(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  try {
    return read_safetensors(bytes);
  } catch (const FormatError& e) {
    throw FormatError(fmt::format("{}: {}", path, e.what()));
  }
}

namespace {

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += ch;
    }
  }
  out += '"';
}

void check_name(const std::string& s, std::string_view what) {
  if (!valid_utf8(s))
    fail<InvalidArgument>("write_safetensors: {} \"{}\" is not valid UTF-8", what,
                          tinyquant::printable(s));
}

}  // namespace

std::vector<uint8_t> write_safetensors(const SafeTensors& file) {
  std::string header = "{";
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    std::set<std::string> keys;
    for (size_t i = 0; i < file.metadata.size(); ++i) {
      const auto& [k, v] = file.metadata[i];
      check_name(k, "metadata key");
      check_name(v, "metadata value");
      if (!keys.insert(k).second)
        fail<InvalidArgument>("write_safetensors: duplicate metadata key \"{}\" at index {}",
                              tinyquant::printable(k), i);
      if (i != 0) header += ',';
      append_json_string(header, k);
      header += ':';
      append_json_string(header, v);
    }
    header += '}';
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const SafeTensor& t = file.tensors[i];
    if (t.name == "__metadata__")
      fail<InvalidArgument>("write_safetensors: tensor {} has the reserved name \"__metadata__\"",
                            i);
    check_name(t.name, "tensor name");
    if (!names.insert(t.name).second)
      fail<InvalidArgument>("write_safetensors: duplicate tensor name \"{}\" at index {}",
                            tinyquant::printable(t.name), i);
    if (!known_dtype(t.dtype))
      fail<InvalidArgument>("write_safetensors: tensor \"{}\" has unknown dtype code {}",
                            tinyquant::printable(t.name), static_cast<int>(t.dtype));
    const int64_t n = t.numel();
    const auto item = static_cast<uint64_t>(itemsize(t.dtype));
    if (static_cast<uint64_t>(n) > std::numeric_limits<uint64_t>::max() / item ||
        static_cast<uint64_t>(n) * item != t.data.size())
      fail<ShapeError>(
          "write_safetensors: tensor \"{}\": data holds {} bytes but shape {} of {} needs {} x {} "
          "bytes",
          tinyquant::printable(t.name), t.data.size(), to_string(t.shape),
          safetensors_dtype_name(t.dtype), n, item);
    if (header.size() > 1) header += ',';
    append_json_string(header, t.name);
    header += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          safetensors_dtype_name(t.dtype), fmt::join(t.shape, ","), offset,
                          offset + t.data.size());
    offset += t.data.size();
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + static_cast<size_t>(offset));
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const SafeTensor& t : file.tensors) out.insert(out.end(), t.data.begin(), t.data.end());
  return out;
}

void save_safetensors(const std::string& path, const SafeTensors& file) {
  write_file_bytes(path, write_safetensors(file));
}

}  // namespace tinyquant::io
