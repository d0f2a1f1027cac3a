#include "tinyquant/rt/status.hpp"

namespace tinyquant::rt {

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNullPointer: return "null_pointer";
    case Status::kBadDimension: return "bad_dimension";
    case Status::kBadShift: return "bad_shift";
    case Status::kBadMultiplier: return "bad_multiplier";
    case Status::kBadOffset: return "bad_offset";
    case Status::kBadActivationRange: return "bad_activation_range";
    case Status::kScratchTooSmall: return "scratch_too_small";
    case Status::kBadArgument: return "bad_argument";
    case Status::kPathUnavailable: return "path_unavailable";
    case Status::kBadSparseData: return "bad_sparse_data";
  }
  return "unknown_status";
}

}  // namespace tinyquant::rt
