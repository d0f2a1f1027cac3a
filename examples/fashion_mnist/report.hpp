// The demo's results: one text table (accuracy, drop vs float, bytes, compression, latency, and
// the textbook claim / reference figure beside the rows they concern) and an SVG plot of accuracy
// against bytes (log-scale bytes axis, one labelled point per configuration).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fmnist {

struct ResultRow {
  std::string config;
  double accuracy = 0.0;  // [0, 1]
  int64_t bytes = 0;      // > 0
  double us_per_sample = 0.0;
  std::string claim;      // textbook claim for this kind of row, or empty
  std::string reference;  // reference figure to match, or empty
};

// Rows as a fixed-width table; the drop is (accuracy - float_accuracy) in percentage points
// (negative = worse), the ratio float_bytes / bytes. float_bytes > 0.
std::string format_table(const std::vector<ResultRow>& rows, double float_accuracy,
                         int64_t float_bytes);

// A standalone SVG document: x = bytes on a log10 axis spanning whole decades around the data,
// y = accuracy in percent, a dashed line at float_accuracy, a circle and the config name per
// row. Throws tinyquant::InvalidArgument for no rows or a row with bytes <= 0 (naming it).
std::string accuracy_bytes_svg(const std::vector<ResultRow>& rows, double float_accuracy,
                               const std::string& title);

// Characters escaped for XML text and attribute values (& < > " ').
std::string xml_escape(const std::string& s);

// Writes bytes to path whole or not at all (tinyquant::io::AtomicFile: a temporary file renamed
// over it; with allow_in_place, a FIFO or device is written in place); creates the directory.
// Throws tinyquant::IoError naming the path.
void write_file(const std::string& path, const std::vector<uint8_t>& bytes, bool allow_in_place);

// write_file of text, a FIFO or device written in place.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace fmnist
