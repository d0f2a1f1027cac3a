// Shapes: a row-major list of non-negative extents, int64 so a tensor may exceed 2^31 elements.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tinyquant {

using Shape = std::vector<int64_t>;

// Product of the extents; throws ShapeError for a negative extent or if the product of the
// nonzero extents overflows int64 (also for an empty tensor: [0, 2^40, 2^40] is rejected).
int64_t numel(const Shape& shape);
// The same count without throwing: false for a negative extent or an overflow (readers report
// those in their own terms, with the file offset).
bool checked_numel(const Shape& shape, int64_t* count) noexcept;
// "[3, 4, 5]"
std::string to_string(const Shape& shape);
// Normalises a possibly negative axis (-1 is the last); throws InvalidArgument if out of range.
int normalize_axis(int axis, const Shape& shape, const char* what);

}  // namespace tinyquant
