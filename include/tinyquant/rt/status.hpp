// Status codes returned by every tinyquant::rt function.
//
// The runtime never throws, never allocates and never aborts on bad arguments: it checks them
// and returns one of these codes. kOk is zero so `if (st != Status::kOk)` and `if (!ok(st))`
// read the same. status_name() gives a stable, human-readable name for logs on a device.
#pragma once

#include <cstdint>

namespace tinyquant::rt {

enum class Status : int32_t {
  kOk = 0,
  kNullPointer = 1,          // a required pointer argument is null
  kBadDimension = 2,         // a dimension is <= 0, or dimensions do not agree
  kBadShift = 3,             // a requantization shift outside [-31, 30]
  kBadMultiplier = 4,        // a requantization multiplier < 0, or a scale that is not finite > 0
  kBadOffset = 5,            // input/filter/output offset outside its documented range
  kBadActivationRange = 6,   // act_min > act_max, or outside the output type's range
  kScratchTooSmall = 7,      // caller-provided scratch is smaller than *_scratch_size() asked
  kBadArgument = 8,          // any other argument outside its documented range
  kPathUnavailable = 9,      // the forced kernel path is not compiled in or not supported by the CPU
  kBadSparseData = 10,       // sparse index data is inconsistent (out-of-range index, bad counts)
};

constexpr bool ok(Status s) noexcept { return s == Status::kOk; }

// A short, stable name, e.g. "bad_shift". Never null.
const char* status_name(Status s) noexcept;

}  // namespace tinyquant::rt
