#include "tinyquant/shape.hpp"

#include <limits>

#include "detail/check.hpp"

namespace tinyquant {

bool checked_numel(const Shape& shape, int64_t* count) noexcept {
  // The product of the nonzero extents must fit too, so that any partial product of extents (an
  // outer or inner block count) does, even for an empty tensor.
  int64_t n = 1;
  bool empty = false;
  for (const int64_t e : shape) {
    if (e < 0) return false;
    if (e == 0) {
      empty = true;
      continue;
    }
    if (n > std::numeric_limits<int64_t>::max() / e) return false;
    n *= e;
  }
  *count = empty ? 0 : n;
  return true;
}

int64_t numel(const Shape& shape) {
  int64_t n = 0;
  if (checked_numel(shape, &n)) return n;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] < 0)
      detail::fail<ShapeError>("shape {}: extent {} of dimension {} is negative", to_string(shape),
                               shape[d], d);
  detail::fail<ShapeError>("shape {}: element count overflows int64", to_string(shape));
}

std::string to_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int normalize_axis(int axis, const Shape& shape, const char* what) {
  const int rank = static_cast<int>(shape.size());
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    detail::fail<InvalidArgument>("{}: axis {} is out of range for a tensor of rank {} (shape {})",
                                  what, axis, rank, to_string(shape));
  return a;
}

}  // namespace tinyquant
