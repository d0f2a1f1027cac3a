// A tiny self-checking harness for on-target tests: no GoogleTest, no heap, no exceptions, so
// the same program runs bare metal (semihosting printf, exit code) and under qemu-user.
// TQ_CHECK_EQ counts every mismatch and prints the first few; main returns tq::finish(), which is
// the process exit code CTest reads (0 = pass).
#pragma once

#include <cstdint>
#include <cstdio>

namespace tq {

inline long& failures() {
  static long n = 0;
  return n;
}
inline long& checks() {
  static long n = 0;
  return n;
}

constexpr long kMaxPrinted = 20;

inline bool report(bool ok, const char* file, int line, const char* what, long long got,
                   long long want) {
  ++checks();
  if (ok) return true;
  if (++failures() <= kMaxPrinted) {
    std::printf("%s:%d: FAIL %s: got %lld (0x%llx), want %lld (0x%llx)\n", file, line, what, got,
                static_cast<unsigned long long>(got), want, static_cast<unsigned long long>(want));
  }
  return false;
}

inline int finish(const char* name) {
  std::printf("%s: %ld checks, %ld failures\n", name, checks(), failures());
  return failures() == 0 ? 0 : 1;
}

// xorshift32: the same stream on host and target, no library state.
struct XorShift32 {
  uint32_t s = 2463534242u;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
  int32_t next_i32() { return static_cast<int32_t>(next()); }
  // Uniform-ish in [lo, hi]; bias is irrelevant for test inputs.
  int32_t range(int32_t lo, int32_t hi) {
    const uint32_t span = static_cast<uint32_t>(hi - lo) + 1u;
    return span == 0 ? next_i32() : lo + static_cast<int32_t>(next() % span);
  }
};

}  // namespace tq

#define TQ_CHECK_EQ(got, want, what)                                                   \
  ::tq::report((got) == (want), __FILE__, __LINE__, what, static_cast<long long>(got), \
               static_cast<long long>(want))
