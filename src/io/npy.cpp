#include "tinyquant/io/npy.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>

#include "../detail/check.hpp"
#include "tinyquant/io/float16.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tinyquant::io assumes a little-endian host"
#endif

namespace tinyquant::io {

using detail::fail;
using tinyquant::to_string;

bool known_dtype(DType dtype) noexcept {
  switch (dtype) {
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64:
      return true;
  }
  return false;
}

int64_t itemsize(DType dtype) noexcept {
  switch (dtype) {
    case DType::kInt8:
    case DType::kUInt8:
      return 1;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
      return 2;
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
  }
  return 1;
}

const char* to_string(DType dtype) noexcept {
  switch (dtype) {
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kInt16:
      return "int16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
  }
  return "unknown";
}

namespace {

template <class T>
T load(const uint8_t* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class Src, class Dst>
void cast_loop(const uint8_t* src, int64_t n, Dst* dst) noexcept {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = static_cast<Dst>(load<Src>(src + static_cast<size_t>(i) * sizeof(Src)));
}

template <class Dst>
void convert_to(DType from, const uint8_t* src, int64_t n, Dst* dst) noexcept {
  switch (from) {
    case DType::kFloat16:
      for (int64_t i = 0; i < n; ++i)
        dst[i] = static_cast<Dst>(half_to_float(load<uint16_t>(src + 2 * i)));
      return;
    case DType::kBFloat16:
      for (int64_t i = 0; i < n; ++i)
        dst[i] = static_cast<Dst>(bfloat16_to_float(load<uint16_t>(src + 2 * i)));
      return;
    case DType::kFloat32:
      return cast_loop<float>(src, n, dst);
    case DType::kFloat64:
      return cast_loop<double>(src, n, dst);
    case DType::kInt8:
      return cast_loop<int8_t>(src, n, dst);
    case DType::kUInt8:
      return cast_loop<uint8_t>(src, n, dst);
    case DType::kInt16:
      return cast_loop<int16_t>(src, n, dst);
    case DType::kInt32:
      return cast_loop<int32_t>(src, n, dst);
    case DType::kInt64:
      return cast_loop<int64_t>(src, n, dst);
  }
}

// Whether every value of `from` is exactly representable in the integer type `to`.
bool integer_fits(DType from, DType to) noexcept {
  auto rank = [](DType d) {
    switch (d) {
      case DType::kInt8:
        return 1;
      case DType::kInt16:
        return 2;
      case DType::kInt32:
        return 3;
      case DType::kInt64:
        return 4;
      default:
        return 0;
    }
  };
  if (to == DType::kUInt8) return from == DType::kUInt8;
  if (rank(to) == 0) return false;
  if (from == DType::kUInt8) return rank(to) >= 2;
  return rank(from) != 0 && rank(from) <= rank(to);
}

}  // namespace

void convert_elements(DType from, const uint8_t* src, int64_t n, DType to, void* dst,
                      const char* what) {
  if (n < 0) fail<InvalidArgument>("{}: element count {} is negative", what, n);
  for (const DType d : {from, to})
    if (!known_dtype(d))
      fail<InvalidArgument>("{}: unknown dtype code {}", what, static_cast<int>(d));
  switch (to) {
    case DType::kFloat32:
      return convert_to(from, src, n, static_cast<float*>(dst));
    case DType::kFloat64:
      return convert_to(from, src, n, static_cast<double*>(dst));
    case DType::kFloat16:
    case DType::kBFloat16:
      fail<InvalidArgument>(
          "{}: conversion from {} to {} is not supported (only widening to "
          "float32/float64 is)",
          what, to_string(from), to_string(to));
    default:
      break;
  }
  if (!integer_fits(from, to))
    fail<InvalidArgument>("{}: cannot convert {} to {} without loss", what, to_string(from),
                          to_string(to));
  switch (to) {
    case DType::kInt8:
      return convert_to(from, src, n, static_cast<int8_t*>(dst));
    case DType::kUInt8:
      return convert_to(from, src, n, static_cast<uint8_t*>(dst));
    case DType::kInt16:
      return convert_to(from, src, n, static_cast<int16_t*>(dst));
    case DType::kInt32:
      return convert_to(from, src, n, static_cast<int32_t*>(dst));
    case DType::kInt64:
      return convert_to(from, src, n, static_cast<int64_t*>(dst));
    default:
      break;
  }
}

int64_t NpyArray::checked_numel() const {
  const int64_t n = tinyquant::numel(shape);
  const int64_t item = itemsize(dtype);
  if (n > std::numeric_limits<int64_t>::max() / item ||
      static_cast<uint64_t>(n * item) != data.size())
    fail<ShapeError>("npy array: data holds {} bytes but shape {} of {} needs {} x {} bytes",
                     data.size(), to_string(shape), to_string(dtype), n, item);
  return n;
}

void NpyArray::copy_bytes(uint8_t* dst, const void* src, size_t n) {
  std::memcpy(dst, src, n);
}

// ---------------------------------------------------------------------------------------------
// Reading

namespace {

constexpr uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr int kMaxRank = 64;  // NumPy 2's NPY_MAXDIMS

std::string describe_byte(const uint8_t* p, size_t n, size_t pos) {
  if (pos >= n) return "end of header";
  const uint8_t c = p[pos];
  if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", static_cast<char>(c));
  return fmt::format("byte 0x{:02x}", c);
}

struct Descr {
  DType dtype;
  bool big_endian;
};

// The dict literal of a .npy header: {'descr': ..., 'fortran_order': ..., 'shape': (...), }
// followed by spaces and a final newline. Only the Python syntax NumPy writes is accepted.
class HeaderParser {
 public:
  HeaderParser(const uint8_t* p, size_t n, size_t base) : p_(p), n_(n), base_(base) {}

  void parse() {
    skip_ws();
    expect('{', "'{' opening the header dict");
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    for (;;) {
      skip_ws();
      if (peek() == '}') break;
      const size_t key_pos = pos_;
      const std::string key = parse_string("a quoted key");
      skip_ws();
      expect(':', "':' after a key");
      skip_ws();
      bool* seen = nullptr;
      if (key == "descr") {
        seen = &seen_descr;
      } else if (key == "fortran_order") {
        seen = &seen_fortran;
      } else if (key == "shape") {
        seen = &seen_shape;
      } else {
        fail<FormatError>(
            "npy header: unexpected key '{}' at offset {} (expected only 'descr', "
            "'fortran_order' and 'shape')",
            key, base_ + key_pos);
      }
      if (*seen)
        fail<FormatError>("npy header: duplicate key '{}' at offset {}", key, base_ + key_pos);
      *seen = true;
      if (key == "descr") {
        parse_descr();
      } else if (key == "fortran_order") {
        parse_bool();
      } else {
        parse_shape();
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') error("',' or '}' after a value");
    }
    ++pos_;  // '}'
    const char* missing = !seen_descr     ? "descr"
                          : !seen_fortran ? "fortran_order"
                          : !seen_shape   ? "shape"
                                          : nullptr;
    if (missing != nullptr)
      fail<FormatError>("npy header: missing key '{}' (the dict ends at offset {})", missing,
                        base_ + pos_ - 1);
    while (pos_ < n_ && p_[pos_] == ' ') ++pos_;
    if (pos_ + 1 != n_ || p_[pos_] != '\n')
      error("spaces and a final newline after the header dict");
  }

  Descr descr{DType::kFloat32, false};
  bool fortran = false;
  Shape shape;

 private:
  [[noreturn]] void error(std::string_view expected) const {
    fail<FormatError>("npy header: expected {} at offset {}, found {}", expected, base_ + pos_,
                      describe_byte(p_, n_, pos_));
  }
  int peek() const { return pos_ < n_ ? p_[pos_] : -1; }
  void expect(char c, std::string_view what) {
    if (peek() != static_cast<uint8_t>(c)) error(what);
    ++pos_;
  }
  void skip_ws() {
    while (pos_ < n_ && (p_[pos_] == ' ' || p_[pos_] == '\t')) ++pos_;
  }

  std::string parse_string(std::string_view what) {
    const int q = peek();
    if (q != '\'' && q != '"') error(what);
    const size_t start = ++pos_;
    while (pos_ < n_ && p_[pos_] != q) {
      if (p_[pos_] == '\\') error("a string without escape sequences");
      // Only ASCII is taken (versions 1 and 2 define the header so; no key or descr needs more
      // in version 3's UTF-8), so messages quoting it stay valid UTF-8.
      if (p_[pos_] < 0x20 || p_[pos_] > 0x7E) error("a printable ASCII character inside a string");
      ++pos_;
    }
    if (pos_ >= n_) error("a closing quote");
    std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
    ++pos_;
    return s;
  }

  void parse_descr() {
    const size_t at = pos_;
    const std::string d = parse_string("a quoted descr string");
    struct Entry {
      const char* code;
      DType dtype;
    };
    static constexpr Entry kTable[] = {
        {"f2", DType::kFloat16}, {"f4", DType::kFloat32}, {"f8", DType::kFloat64},
        {"i1", DType::kInt8},    {"u1", DType::kUInt8},   {"i2", DType::kInt16},
        {"i4", DType::kInt32},   {"i8", DType::kInt64},
    };
    if (d.size() == 3) {
      for (const Entry& e : kTable) {
        if (d.compare(1, 2, e.code) != 0) continue;
        const char order = d[0];
        const bool one_byte = itemsize(e.dtype) == 1;
        if (order == '<' || order == '>' || (order == '|' && one_byte)) {
          descr = {e.dtype, order == '>' && !one_byte};
          return;
        }
        fail<FormatError>(
            "npy header: descr '{}' at offset {} has byte order '{}' (expected '<' or '>'{})", d,
            base_ + at, order, one_byte ? " or '|'" : "");
      }
    }
    fail<FormatError>(
        "npy header: unsupported descr '{}' at offset {} (expected one of f2 f4 f8 i1 u1 i2 i4 "
        "i8 with byte order '<', '>' or '|')",
        d, base_ + at);
  }

  void parse_bool() {
    if (n_ - pos_ >= 4 && std::memcmp(p_ + pos_, "True", 4) == 0) {
      fortran = true;
      pos_ += 4;
    } else if (n_ - pos_ >= 5 && std::memcmp(p_ + pos_, "False", 5) == 0) {
      fortran = false;
      pos_ += 5;
    } else {
      error("True or False for 'fortran_order'");
    }
  }

  int64_t parse_extent() {
    const size_t at = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (peek() < '0' || peek() > '9') error("an integer shape extent");
    int64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const int digit = peek() - '0';
      if (v > (std::numeric_limits<int64_t>::max() - digit) / 10)
        fail<FormatError>("npy header: shape extent at offset {} overflows int64", base_ + at);
      v = v * 10 + digit;
      ++pos_;
    }
    if (negative)
      fail<FormatError>("npy header: shape extent -{} at offset {} is negative", v, base_ + at);
    return v;
  }

  void parse_shape() {
    expect('(', "'(' opening the shape tuple");
    skip_ws();
    bool trailing_comma = false;
    while (peek() != ')') {
      if (shape.size() >= static_cast<size_t>(kMaxRank))
        fail<FormatError>("npy header: shape at offset {} has more than {} dimensions",
                          base_ + pos_, kMaxRank);
      shape.push_back(parse_extent());
      skip_ws();
      trailing_comma = false;
      if (peek() == ',') {
        ++pos_;
        trailing_comma = true;
        skip_ws();
      } else if (peek() != ')') {
        error("',' or ')' in the shape tuple");
      }
    }
    // In Python (3) is an int, not a tuple: a one-element tuple needs its trailing comma.
    if (shape.size() == 1 && !trailing_comma) error("',' making (n,) a one-element tuple");
    ++pos_;
  }

  const uint8_t* p_;
  size_t n_;
  size_t base_;
  size_t pos_ = 0;
};

void fortran_to_c(const uint8_t* src, uint8_t* dst, const Shape& shape, int64_t n, size_t item) {
  const size_t rank = shape.size();
  std::vector<int64_t> fstride(rank), idx(rank, 0);
  fstride[0] = 1;
  for (size_t j = 1; j < rank; ++j) fstride[j] = fstride[j - 1] * shape[j - 1];
  int64_t f = 0;
  for (int64_t c = 0; c < n; ++c) {
    std::memcpy(dst + static_cast<size_t>(c) * item, src + static_cast<size_t>(f) * item, item);
    for (size_t j = rank; j-- > 0;) {
      if (++idx[j] < shape[j]) {
        f += fstride[j];
        break;
      }
      f -= (shape[j] - 1) * fstride[j];
      idx[j] = 0;
    }
  }
}

void byteswap(uint8_t* p, size_t n_bytes, size_t item) {
  for (size_t i = 0; i + item <= n_bytes; i += item)
    for (size_t a = i, b = i + item - 1; a < b; ++a, --b) std::swap(p[a], p[b]);
}

}  // namespace

NpyArray read_npy(const uint8_t* data, size_t size) {
  if (data == nullptr && size != 0)
    fail<InvalidArgument>("read_npy: data is null but size is {}", size);
  if (size < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
    const size_t n = size < sizeof kMagic ? size : sizeof kMagic;
    std::string found;
    for (size_t i = 0; i < n; ++i) found += fmt::format("{:02x}", data[i]);
    fail<FormatError>(
        "npy: bad magic at offset 0: expected 93 4e 55 4d 50 59 (\\x93NUMPY), found "
        "{} bytes '{}'",
        n, found);
  }
  if (size < 8)
    fail<FormatError>("npy: truncated at offset 6: expected 2 version bytes, found {}", size - 6);
  const int major = data[6], minor = data[7];
  if (minor != 0 || major < 1 || major > 3)
    fail<FormatError>(
        "npy: unsupported format version {}.{} at offset 6 (expected 1.0, 2.0 or 3.0)", major,
        minor);
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (size < 8 + len_bytes)
    fail<FormatError>(
        "npy: truncated at offset 8: expected a {}-byte header length, found {} bytes", len_bytes,
        size - 8);
  uint64_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) header_len |= uint64_t{data[8 + i]} << (8 * i);
  const size_t header_start = 8 + len_bytes;
  if (header_len > size - header_start)
    fail<FormatError>(
        "npy: header length {} at offset 8 runs past the end of the file ({} bytes, "
        "{} after the length field)",
        header_len, size, size - header_start);
  HeaderParser parser(data + header_start, static_cast<size_t>(header_len), header_start);
  parser.parse();

  NpyArray out;
  out.dtype = parser.descr.dtype;
  out.shape = std::move(parser.shape);
  int64_t n = 0;  // the parser gives no negative extent, so false is an overflow
  if (!checked_numel(out.shape, &n))
    fail<FormatError>("npy: shape {} at offset {}: element count overflows int64",
                      to_string(out.shape), header_start);
  const int64_t item = itemsize(out.dtype);
  if (n > std::numeric_limits<int64_t>::max() / item)
    fail<FormatError>("npy: shape {} of {}: byte count overflows int64", to_string(out.shape),
                      to_string(out.dtype));
  const uint64_t expected = static_cast<uint64_t>(n * item);
  const size_t data_start = header_start + static_cast<size_t>(header_len);
  const uint64_t found = size - data_start;
  if (found < expected)
    fail<FormatError>(
        "npy: truncated: expected {} data bytes, found {} (shape {} of {}, data at "
        "offset {})",
        expected, found, to_string(out.shape), to_string(out.dtype), data_start);
  if (found > expected)
    fail<FormatError>("npy: {} trailing bytes at offset {}: expected {} data bytes, found {}",
                      found - expected, data_start + expected, expected, found);

  out.data.resize(static_cast<size_t>(expected));
  const uint8_t* src = data + data_start;
  if (parser.fortran && out.shape.size() > 1 && n > 0) {
    fortran_to_c(src, out.data.data(), out.shape, n, static_cast<size_t>(item));
  } else if (expected > 0) {
    std::memcpy(out.data.data(), src, static_cast<size_t>(expected));
  }
  if (parser.descr.big_endian)
    byteswap(out.data.data(), out.data.size(), static_cast<size_t>(item));
  return out;
}

NpyArray load_npy(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  try {
    return read_npy(bytes);
  } catch (const FormatError& e) {
    throw FormatError(fmt::format("{}: {}", path, e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

const char* npy_descr(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return "<f2";
    case DType::kFloat32:
      return "<f4";
    case DType::kFloat64:
      return "<f8";
    case DType::kInt8:
      return "|i1";
    case DType::kUInt8:
      return "|u1";
    case DType::kInt16:
      return "<i2";
    case DType::kInt32:
      return "<i4";
    case DType::kInt64:
      return "<i8";
    case DType::kBFloat16:
      break;
  }
  fail<InvalidArgument>("write_npy: dtype {} has no .npy descriptor", to_string(dtype));
}

// Python's repr of a tuple of ints: (), (3,), (2, 3).
std::string shape_repr(const Shape& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

}  // namespace

std::vector<uint8_t> write_npy(const NpyArray& array) {
  const char* descr = npy_descr(array.dtype);
  if (array.shape.size() > static_cast<size_t>(kMaxRank))
    fail<InvalidArgument>("write_npy: rank {} exceeds the maximum of {} dimensions",
                          array.shape.size(), kMaxRank);
  const int64_t n = tinyquant::numel(array.shape);
  if (static_cast<uint64_t>(n) * static_cast<uint64_t>(itemsize(array.dtype)) !=
          array.data.size() ||
      n > std::numeric_limits<int64_t>::max() / itemsize(array.dtype))
    fail<ShapeError>("write_npy: data holds {} bytes but shape {} of {} needs {} x {} bytes",
                     array.data.size(), to_string(array.shape), to_string(array.dtype), n,
                     itemsize(array.dtype));
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}", descr,
                                   array.fortran_order ? "True" : "False", shape_repr(array.shape));
  // NumPy leaves room for the axis that np.save appends along to grow to 21 digits in place.
  if (!array.shape.empty()) {
    const int64_t grow = array.fortran_order ? array.shape.back() : array.shape.front();
    header.append(21 - fmt::formatted_size("{}", grow), ' ');
  }
  // With at most kMaxRank extents of at most 19 digits the header stays far below version 1.0's
  // 65535-byte limit, so versions 2.0 and 3.0 are never needed for writing.
  const size_t hlen = header.size() + 1;  // + '\n'
  constexpr int major = 1;
  constexpr size_t prefix = 10;
  const size_t pad = 64 - (prefix + hlen) % 64;
  const size_t total_header = hlen + pad;
  // Filled by index: one allocation of the final size, spaces where the padding goes.
  std::vector<uint8_t> out(prefix + total_header + array.data.size(), ' ');
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  out[6] = static_cast<uint8_t>(major);
  out[7] = 0;
  for (size_t i = 0; i < prefix - 8; ++i)
    out[8 + i] = static_cast<uint8_t>(total_header >> (8 * i));
  std::memcpy(out.data() + prefix, header.data(), header.size());
  out[prefix + total_header - 1] = '\n';
  if (!array.data.empty())
    std::memcpy(out.data() + prefix + total_header, array.data.data(), array.data.size());
  return out;
}

void save_npy(const std::string& path, const NpyArray& array) {
  write_file_bytes(path, write_npy(array));
}

// ---------------------------------------------------------------------------------------------
// Files

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) fail<IoError>("cannot open '{}' for reading: {}", path, std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  for (;;) {
    const size_t got = std::fread(buf, 1, sizeof buf, f);
    bytes.insert(bytes.end(), buf, buf + got);
    if (got < sizeof buf) break;
  }
  const bool bad = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (bad) fail<IoError>("cannot read '{}': {}", path, std::strerror(err));
  return bytes;
}

void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail<IoError>("cannot open '{}' for writing: {}", path, std::strerror(errno));
  const size_t put = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int err = errno;
  const bool close_failed = std::fclose(f) != 0;
  if (put != bytes.size())
    fail<IoError>("cannot write '{}': wrote {} of {} bytes: {}", path, put, bytes.size(),
                  std::strerror(err));
  if (close_failed) fail<IoError>("cannot write '{}': {}", path, std::strerror(errno));
}

}  // namespace tinyquant::io
