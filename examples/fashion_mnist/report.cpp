#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "tinyquant/error.hpp"
#include "tinyquant/io/atomic_file.hpp"

namespace fmnist {

std::string format_table(const std::vector<ResultRow>& rows, double float_accuracy,
                         int64_t float_bytes) {
  if (float_bytes <= 0)
    throw tinyquant::InvalidArgument(
        fmt::format("format_table: float_bytes = {} must be > 0", float_bytes));
  size_t name_w = 6;
  for (const ResultRow& r : rows) name_w = std::max(name_w, r.config.size());
  std::string out =
      fmt::format("{:<{}}  {:>8}  {:>8}  {:>9}  {:>6}  {:>8}  {}\n", "config", name_w, "accuracy",
                  "drop pp", "bytes", "ratio", "us/img", "claim | reference");
  out += std::string(name_w + 58, '-') + "\n";
  for (const ResultRow& r : rows) {
    std::string note = r.claim;
    if (!r.reference.empty()) note += (note.empty() ? "" : " | ") + r.reference;
    out += fmt::format("{:<{}}  {:>7.2f}%  {:>+8.2f}  {:>9}  {:>5.2f}x  {:>8.1f}  {}\n", r.config,
                       name_w, 100.0 * r.accuracy, 100.0 * (r.accuracy - float_accuracy), r.bytes,
                       static_cast<double>(float_bytes) / static_cast<double>(r.bytes),
                       r.us_per_sample, note);
  }
  return out;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string accuracy_bytes_svg(const std::vector<ResultRow>& rows, double float_accuracy,
                               const std::string& title) {
  if (rows.empty()) throw tinyquant::InvalidArgument("accuracy_bytes_svg: no rows to plot");
  double lo_b = 1e300, hi_b = 0.0, lo_a = 100.0 * float_accuracy, hi_a = lo_a;
  for (const ResultRow& r : rows) {
    if (r.bytes <= 0)
      throw tinyquant::InvalidArgument(fmt::format(
          "accuracy_bytes_svg: row '{}' has bytes = {}, must be > 0", r.config, r.bytes));
    lo_b = std::min(lo_b, static_cast<double>(r.bytes));
    hi_b = std::max(hi_b, static_cast<double>(r.bytes));
    lo_a = std::min(lo_a, 100.0 * r.accuracy);
    hi_a = std::max(hi_a, 100.0 * r.accuracy);
  }
  const double d0 = std::floor(std::log10(lo_b));
  const double d1 = std::max(d0 + 1.0, std::ceil(std::log10(hi_b)));
  const double a0 = std::floor(lo_a - 0.5), a1 = std::ceil(hi_a + 0.5);
  const double w = 1000, h = 560, left = 70, right = 330, top = 50, bottom = 60;
  const double pw = w - left - right, ph = h - top - bottom;
  auto x_of = [&](double bytes) { return left + (std::log10(bytes) - d0) / (d1 - d0) * pw; };
  auto y_of = [&](double acc) { return top + (a1 - acc) / (a1 - a0) * ph; };

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"28\" font-size=\"16\">{3}</text>\n",
      w, h, left, xml_escape(title));
  // Axes, decade ticks with 2x and 5x minor ticks, accuracy ticks every whole percent (or more).
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n"
      "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"black\"/>\n",
      left, top + ph, left + pw, top);
  for (double d = d0; d <= d1; d += 1.0) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, d);
      if (std::log10(v) > d1 + 1e-9) break;
      const double x = x_of(v);
      s += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"{3}\"/>\n", x, top,
          top + ph, m == 1.0 ? "#bbbbbb" : "#eeeeee");
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x,
                       top + ph + 18,
                       m == 1.0 ? fmt::format("1e{}", static_cast<int>(d))
                                : fmt::format("{}e{}", m, static_cast<int>(d)));
    }
  }
  const double step = std::max(1.0, std::ceil((a1 - a0) / 12.0));
  for (double a = a0; a <= a1 + 1e-9; a += step) {
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#eeeeee\"/>\n", left,
        y_of(a), left + pw);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}%</text>\n", left - 6,
                     y_of(a) + 4, a);
  }
  s += fmt::format(
      "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">bytes (weights + biases + quantization "
      "parameters, log scale)</text>\n",
      left + pw / 2, h - 15);
  s += fmt::format(
      "<text x=\"18\" y=\"{:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1f})\">"
      "test accuracy</text>\n",
      top + ph / 2, top + ph / 2);
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#888888\" "
      "stroke-dasharray=\"6 4\"/>\n<text x=\"{3}\" y=\"{4:.1f}\">float {5:.2f}%</text>\n",
      left, y_of(100.0 * float_accuracy), left + pw, left + pw + 6,
      y_of(100.0 * float_accuracy) + 4, 100.0 * float_accuracy);
  for (size_t i = 0; i < rows.size(); ++i) {
    const ResultRow& r = rows[i];
    const double x = x_of(static_cast<double>(r.bytes)), y = y_of(100.0 * r.accuracy);
    const double dy = i % 2 == 0 ? -6.0 : 14.0;  // alternate above / below against overlaps
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"#1f77b4\"/>\n", x, y);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\">{} ({:.2f}%)</text>\n",
                     x + 6, y + dy, xml_escape(r.config), 100.0 * r.accuracy);
  }
  s += "</svg>\n";
  return s;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes, bool allow_in_place) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  if (ec)
    throw tinyquant::IoError(fmt::format("cannot create directory '{}': {}",
                                         target.parent_path().string(), ec.message()));
  tinyquant::io::AtomicFile file(path, allow_in_place);
  file.write(bytes);
  file.commit();
}

void write_text_file(const std::string& path, const std::string& text) {
  // A FIFO or device (--plot /dev/stdout) is written in place; anything else whole or not at all.
  write_file(path, std::vector<uint8_t>(text.begin(), text.end()), true);
}

}  // namespace fmnist
