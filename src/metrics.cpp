#include "tinyquant/metrics.hpp"

#include <cmath>
#include <limits>

#include "detail/check.hpp"

namespace tinyquant {

using detail::fail;

namespace {

struct Sums {
  double sq_err = 0.0;   // sum (r - a)^2
  double max_abs = 0.0;  // max |r - a|
  double sq_ref = 0.0;   // sum r^2
  double sq_app = 0.0;   // sum a^2
  double dot = 0.0;      // sum r * a
};

Sums accumulate(const char* what, const float* r, int64_t nr, const float* a, int64_t na) {
  if (nr != na)
    fail<ShapeError>("{}: reference has {} elements but approximation has {}", what, nr, na);
  if (nr < 0) fail<InvalidArgument>("{}: element count {} is negative", what, nr);
  if (nr == 0) fail<DataError>("{}: inputs are empty", what);
  if (r == nullptr || a == nullptr)
    fail<InvalidArgument>("{}: null data for {} elements", what, nr);
  const int64_t bad_r = detail::first_non_finite(r, nr);
  if (bad_r >= 0)
    fail<DataError>("{}: reference has non-finite value {} at index {}", what, r[bad_r], bad_r);
  const int64_t bad_a = detail::first_non_finite(a, na);
  if (bad_a >= 0)
    fail<DataError>("{}: approximation has non-finite value {} at index {}", what, a[bad_a], bad_a);
  Sums s;
  for (int64_t i = 0; i < nr; ++i) {
    const double x = r[i], y = a[i], d = x - y;
    s.sq_err += d * d;
    s.max_abs = std::fmax(s.max_abs, std::fabs(d));
    s.sq_ref += x * x;
    s.sq_app += y * y;
    s.dot += x * y;
  }
  return s;
}

double sqnr_of(const Sums& s) {
  if (s.sq_err == 0.0) return std::numeric_limits<double>::infinity();
  if (s.sq_ref == 0.0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(s.sq_ref / s.sq_err);
}

double cosine_of(const Sums& s) {
  if (s.sq_ref == 0.0 && s.sq_app == 0.0) return 1.0;
  if (s.sq_ref == 0.0 || s.sq_app == 0.0) return 0.0;
  // Rounding can put |dot| a few ulps above |r| |a|; the similarity is bounded by [-1, 1].
  const double c = s.dot / (std::sqrt(s.sq_ref) * std::sqrt(s.sq_app));
  return std::fmin(1.0, std::fmax(-1.0, c));
}

int64_t size_of(const std::vector<float>& v) {
  return static_cast<int64_t>(v.size());
}

}  // namespace

double mse(const float* reference, int64_t n_reference, const float* approx, int64_t n_approx) {
  const Sums s = accumulate("mse", reference, n_reference, approx, n_approx);
  return s.sq_err / static_cast<double>(n_reference);
}

double max_abs_error(const float* reference, int64_t n_reference, const float* approx,
                     int64_t n_approx) {
  return accumulate("max_abs_error", reference, n_reference, approx, n_approx).max_abs;
}

double sqnr_db(const float* reference, int64_t n_reference, const float* approx, int64_t n_approx) {
  return sqnr_of(accumulate("sqnr_db", reference, n_reference, approx, n_approx));
}

double cosine_similarity(const float* reference, int64_t n_reference, const float* approx,
                         int64_t n_approx) {
  return cosine_of(accumulate("cosine_similarity", reference, n_reference, approx, n_approx));
}

double mse(const std::vector<float>& reference, const std::vector<float>& approx) {
  return mse(reference.data(), size_of(reference), approx.data(), size_of(approx));
}
double max_abs_error(const std::vector<float>& reference, const std::vector<float>& approx) {
  return max_abs_error(reference.data(), size_of(reference), approx.data(), size_of(approx));
}
double sqnr_db(const std::vector<float>& reference, const std::vector<float>& approx) {
  return sqnr_db(reference.data(), size_of(reference), approx.data(), size_of(approx));
}
double cosine_similarity(const std::vector<float>& reference, const std::vector<float>& approx) {
  return cosine_similarity(reference.data(), size_of(reference), approx.data(), size_of(approx));
}

ErrorReport error_report(const float* reference, int64_t n_reference, const float* approx,
                         int64_t n_approx) {
  const Sums s = accumulate("error_report", reference, n_reference, approx, n_approx);
  ErrorReport e;
  e.mse = s.sq_err / static_cast<double>(n_reference);
  e.max_abs_error = s.max_abs;
  e.sqnr_db = sqnr_of(s);
  e.cosine_similarity = cosine_of(s);
  return e;
}

ErrorReport error_report(const std::vector<float>& reference, const std::vector<float>& approx) {
  return error_report(reference.data(), size_of(reference), approx.data(), size_of(approx));
}

ErrorReport error_report(const std::vector<float>& reference, const QTensor& q) {
  const std::vector<float> approx = dequantize(q);
  return error_report(reference, approx);
}

int64_t zero_point_bytes(int bits) {
  if (!((bits >= 2 && bits <= 8) || bits == 16))
    fail<InvalidArgument>("zero_point_bytes: bits = {} is not supported (expected 2..8 or 16)",
                          bits);
  return bits <= 8 ? 1 : 2;
}

int64_t quantized_bytes(const QTensor& q) {
  // The data must be what the shape says (so numel * 4 in size_report cannot overflow either).
  detail::check_storage("quantized_bytes", q);
  const int64_t params = static_cast<int64_t>(q.params.scales.size());
  return static_cast<int64_t>(q.data.size()) +
         params * (static_cast<int64_t>(sizeof(float)) + zero_point_bytes(q.bits()));
}

SizeReport size_report(const QTensor& q) {
  SizeReport r;
  r.quantized_bytes = quantized_bytes(q);  // checks the data against the shape first
  r.float_bytes = q.numel() * static_cast<int64_t>(sizeof(float));
  r.ratio = r.float_bytes == 0
                ? 0.0
                : static_cast<double>(r.float_bytes) / static_cast<double>(r.quantized_bytes);
  return r;
}

}  // namespace tinyquant
