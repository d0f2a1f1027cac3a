// Exports every model the .tqm reader accepts as C source and reads the generated array literals
// back with a small parser written here (comments, preprocessor lines, declarations of the form
// `... const <type> <name>[<count>] ... = { v, v, ... };`). Every entry's data, scales and zero
// points must come back as the same values (floats bit for bit), every array name must be
// unique, and the declared count must match the literal count. Export may reject a model with a
// tinyquant::Error (bad sparse entries, clashing C names, bad layer parameters); nothing else.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "model_fuzz.hpp"
#include "tinyquant/error.hpp"
#include "tinyquant/io/c_export.hpp"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/quantize.hpp"

namespace {

using namespace tinyquant;

struct CArrayText {
  std::string ctype;
  std::vector<std::string> values;
};

[[noreturn]] void bug() {
  __builtin_trap();
}

bool is_ident(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\n' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// The text with every /* ... */ comment removed.
std::string without_comments(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 2, "/*") == 0) {
      const size_t end = s.find("*/", i + 2);
      if (end == std::string::npos) bug();
      i = end + 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// name -> array; traps on anything that is not a comment, a preprocessor line or an array
// definition, and on a name defined twice.
std::map<std::string, CArrayText> parse_arrays(const std::string& s) {
  std::map<std::string, CArrayText> out;
  size_t i = 0;
  bool line_start = true;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\n') {
      line_start = true;
      ++i;
    } else if (c == ' ' || c == '\t') {
      ++i;
    } else if (s.compare(i, 2, "/*") == 0) {
      const size_t end = s.find("*/", i + 2);
      if (end == std::string::npos) bug();
      i = end + 2;
    } else if (c == '#' && line_start) {
      const size_t end = s.find('\n', i);
      i = end == std::string::npos ? s.size() : end;
    } else {
      // A declaration up to its ';'. Literals hold no ';', '{' or '}'.
      const size_t semi = s.find(';', i);
      if (semi == std::string::npos) bug();
      const std::string decl = s.substr(i, semi - i);
      i = semi + 1;
      line_start = false;
      const size_t open = decl.find('{'), close = decl.rfind('}');
      const size_t lb = decl.find('[');
      if (open == std::string::npos || close == std::string::npos || lb == std::string::npos ||
          lb > open)
        bug();
      const size_t rb = decl.find(']', lb);
      if (rb == std::string::npos || rb > open) bug();
      // Name: the identifier before '['; type: the identifier before the name.
      size_t ne = lb;
      size_t nb = ne;
      while (nb > 0 && is_ident(decl[nb - 1])) --nb;
      if (nb == ne) bug();
      const std::string name = decl.substr(nb, ne - nb);
      size_t te = nb;
      while (te > 0 && decl[te - 1] == ' ') --te;
      size_t tb = te;
      while (tb > 0 && is_ident(decl[tb - 1])) --tb;
      CArrayText a;
      a.ctype = decl.substr(tb, te - tb);
      const std::string count_text = decl.substr(lb + 1, rb - lb - 1);
      const unsigned long long count = std::strtoull(count_text.c_str(), nullptr, 10);
      const std::string body = decl.substr(open + 1, close - open - 1);
      size_t p = 0;
      while (p < body.size()) {
        size_t comma = body.find(',', p);
        if (comma == std::string::npos) comma = body.size();
        const std::string v = trim(body.substr(p, comma - p));
        if (!v.empty()) a.values.push_back(v);
        p = comma + 1;
      }
      if (a.values.size() != count) bug();
      if (!out.emplace(name, std::move(a)).second) bug();
    }
  }
  return out;
}

int64_t parse_int(std::string v) {
  if (v == "(-2147483647 - 1)") return INT32_MIN;
  if (!v.empty() && v.front() == '(') {
    if (v.back() != ')') bug();
    v = v.substr(1, v.size() - 2);
  }
  char* end = nullptr;
  errno = 0;
  const bool hex = v.size() > 2 && v[0] == '0' && v[1] == 'x';
  const long long x = std::strtoll(v.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || end == v.c_str() || *end != '\0') bug();
  return x;
}

uint32_t parse_float_bits(const std::string& v) {
  if (v.size() < 2 || v.back() != 'f') bug();
  const std::string t = v.substr(0, v.size() - 1);
  if (t.find_first_of(".e") == std::string::npos) bug();  // must stay a float literal
  char* end = nullptr;
  const float f = std::strtof(t.c_str(), &end);
  if (end == t.c_str() || *end != '\0') bug();
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

const CArrayText& find(const std::map<std::string, CArrayText>& arrays, const std::string& name,
                       const char* ctype) {
  const auto it = arrays.find(name);
  if (it == arrays.end() || it->second.ctype != ctype) bug();
  return it->second;
}

void check_floats(const CArrayText& a, const std::vector<float>& want) {
  if (a.values.size() != want.size()) bug();
  for (size_t i = 0; i < want.size(); ++i) {
    uint32_t w = 0;
    std::memcpy(&w, &want[i], sizeof w);
    if (parse_float_bits(a.values[i]) != w) bug();
  }
}

template <typename T>
void check_ints(const CArrayText& a, const std::vector<T>& want) {
  if (a.values.size() != want.size()) bug();
  for (size_t i = 0; i < want.size(); ++i) {
    if (parse_int(a.values[i]) != static_cast<int64_t>(want[i])) bug();
  }
}

// The C name of entry `name` under the prefix, as c_export.hpp states the rule: every byte outside
// [A-Za-z0-9_] becomes '_', a run of '_' becomes one, and a trailing '_' is dropped.
std::string entry_id(const std::string& prefix, const std::string& name) {
  std::string tail;
  for (const char c : name) {
    const char k = is_ident(c) ? c : '_';
    if (k != '_' || tail.empty() || tail.back() != '_') tail.push_back(k);
  }
  if (!tail.empty() && tail.front() == '_') tail.erase(0, 1);  // the prefix's '_' comes before
  if (!tail.empty() && tail.back() == '_') tail.pop_back();
  return tail.empty() ? prefix : prefix + "_" + tail;  // nothing kept: the prefix itself
}

void check_model(const io::Model& m, const std::string& prefix,
                 const std::map<std::string, CArrayText>& arrays) {
  for (const io::ModelEntry& e : m.entries) {
    const std::string id = entry_id(prefix, e.name);
    if (e.format != 0) {  // sparse: the shipped values (from_arrays checked the index arrays)
      const std::vector<uint8_t> v = io::sparse_matrix(e).packed_values();
      const bool int8 = e.storage == io::Storage::kInt8;
      const CArrayText& a = find(arrays, id + "_values", int8 ? "int8_t" : "uint8_t");
      if (v.empty()) {  // C has no empty arrays: one unused 0
        if (a.values.size() != 1 || a.values[0] != "0") bug();
      } else if (int8) {
        check_ints(a, std::vector<int8_t>(v.begin(), v.end()));
      } else {
        check_ints(a, v);
      }
      continue;
    }
    if (!e.params) {
      if (e.storage == io::Storage::kFloat32)
        check_floats(find(arrays, id, "float"), io::to_floats(e));
      else
        check_ints(find(arrays, id, "int32_t"), io::to_int32(e));
      continue;
    }
    const QTensor q = io::to_qtensor(e);
    const int bits = q.params.spec.bits;
    if (bits <= 4) {
      check_ints(find(arrays, id, "uint8_t"), q.data);
    } else if (bits <= 8) {
      std::vector<int8_t> s(q.data.size());
      for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<int8_t>(q.data[i]);
      check_ints(find(arrays, id, "int8_t"), s);
    } else {
      std::vector<int32_t> v(static_cast<size_t>(q.numel()));
      for (size_t i = 0; i < v.size(); ++i) v[i] = q.value(static_cast<int64_t>(i));
      check_ints(find(arrays, id, "int16_t"), v);
    }
    check_floats(find(arrays, id + "_scales", "float"), q.params.scales);
    check_ints(find(arrays, id + "_zero_points", "int32_t"), q.params.zero_points);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> input = fuzz::with_fixed_crcs(data, size);
  io::Model m;
  try {
    m = io::parse_model(input.data(), input.size(), "fuzz");
  } catch (const Error&) {
    return 0;
  }
  io::CExportOptions plain;
  io::CExportOptions layers;
  layers.prefix = "net";
  layers.input = ActivationParams{0.05f, 3};
  layers.output = ActivationParams{0.125f, -2};
  layers.header_name = "net.h";
  std::string header, header_decl, source;
  try {
    header = io::export_c_header(m, plain);
    header_decl = io::export_c_header(m, layers);
    source = io::export_c_source(m, layers);
  } catch (const Error&) {
    return 0;
  }
  check_model(m, "model", parse_arrays(header));
  check_model(m, "net", parse_arrays(source));
  // The declarations-only header defines no array (names may hold "= {" inside comments).
  if (without_comments(header_decl).find("= {") != std::string::npos) bug();
  return 0;
}
