// Cortex-M DSP-extension instructions (ARMv7E-M / ARMv8-M Mainline), bit-exact.
//
// tinyquant::rt::dsp::emu  portable constexpr emulation of each instruction's pseudo-code in the
//                          ARM Architecture Reference Manual; always available, so a test on an
//                          ARM core can compare it against the real instruction.
// tinyquant::rt::dsp       the real instruction (ACLE intrinsic or inline asm) when compiled with
//                          __ARM_FEATURE_DSP and __ARM_FEATURE_SIMD32, else the emulation.
//                          Immediate operands (rotation, saturation width, pack shift) are
//                          template parameters there, because the instructions encode them in
//                          the opcode.
//
// Operands and results are uint32_t bit patterns, as in CMSIS-Core: a "pair" is two int16
// halfwords (low = bits 15:0), a "quad" four int8 bytes. 32-bit results wrap modulo 2^32.
// The emulation reports the sticky Q flag through an optional `bool* q`: it is set to true when
// the instruction would set APSR.Q and left alone otherwise (it is never cleared). Instructions
// that set Q: SMLAD, SMLADX, SMLSD, SMUAD, SMUADX (sum does not fit int32), SMLABB (ditto),
// SSAT, USAT (saturated), QADD, QSUB (saturated). SMUSD, SMULBB cannot overflow.
#pragma once

#include <cstdint>

// The real instructions need the DSP extension and its SIMD32 half (SXTB16, SMLAD, ...): ARMv5TE
// sets __ARM_FEATURE_DSP alone and gets the emulation.
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#define TINYQUANT_RT_NATIVE_DSP 1
#include <arm_acle.h>
#else
#define TINYQUANT_RT_NATIVE_DSP 0
#endif

namespace tinyquant::rt::dsp {

namespace emu {
namespace bits {

constexpr int32_t as_signed(uint32_t x) noexcept {
  return x < 0x80000000u ? static_cast<int32_t>(x)
                         : -static_cast<int32_t>(~x) - 1;  // two's complement, no UB
}
constexpr int32_t low16(uint32_t x) noexcept {
  const auto h = static_cast<int32_t>(x & 0xFFFFu);
  return h >= 0x8000 ? h - 0x10000 : h;
}
constexpr int32_t high16(uint32_t x) noexcept {
  return low16(x >> 16);
}
constexpr int32_t byte_s(uint32_t x) noexcept {
  const auto b = static_cast<int32_t>(x & 0xFFu);
  return b >= 0x80 ? b - 0x100 : b;
}
constexpr uint32_t ror(uint32_t x, unsigned r) noexcept {
  r &= 31u;
  return r == 0 ? x : (x >> r) | (x << (32u - r));
}
// Low 32 bits of v; sets *q when v is outside int32.
constexpr uint32_t wrap_q(int64_t v, bool* q) noexcept {
  if (q != nullptr && (v < INT32_MIN || v > INT32_MAX)) *q = true;
  return static_cast<uint32_t>(static_cast<uint64_t>(v));
}
constexpr uint32_t pair(int32_t lo, int32_t hi) noexcept {
  return (static_cast<uint32_t>(lo) & 0xFFFFu) | ((static_cast<uint32_t>(hi) & 0xFFFFu) << 16);
}
constexpr uint32_t saturate(int64_t v, int64_t lo, int64_t hi, bool* q) noexcept {
  if (v < lo || v > hi) {
    if (q != nullptr) *q = true;
    v = v < lo ? lo : hi;
  }
  return static_cast<uint32_t>(static_cast<uint64_t>(v));
}

}  // namespace bits

// SMLAD: acc + x.lo * y.lo + x.hi * y.hi
constexpr uint32_t smlad(uint32_t x, uint32_t y, uint32_t acc, bool* q = nullptr) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(x)} * low16(y) + int64_t{high16(x)} * high16(y) + as_signed(acc), q);
}
// SMLADX: acc + x.lo * y.hi + x.hi * y.lo
constexpr uint32_t smladx(uint32_t x, uint32_t y, uint32_t acc, bool* q = nullptr) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(x)} * high16(y) + int64_t{high16(x)} * low16(y) + as_signed(acc), q);
}
// SMLSD: acc + x.lo * y.lo - x.hi * y.hi
constexpr uint32_t smlsd(uint32_t x, uint32_t y, uint32_t acc, bool* q = nullptr) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(x)} * low16(y) - int64_t{high16(x)} * high16(y) + as_signed(acc), q);
}
// SMUAD: x.lo * y.lo + x.hi * y.hi (overflows only for four INT16_MIN)
constexpr uint32_t smuad(uint32_t x, uint32_t y, bool* q = nullptr) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(x)} * low16(y) + int64_t{high16(x)} * high16(y), q);
}
// SMUADX: x.lo * y.hi + x.hi * y.lo
constexpr uint32_t smuadx(uint32_t x, uint32_t y, bool* q = nullptr) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(x)} * high16(y) + int64_t{high16(x)} * low16(y), q);
}
// SMUSD: x.lo * y.lo - x.hi * y.hi (always fits; no Q)
constexpr uint32_t smusd(uint32_t x, uint32_t y) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(x)} * low16(y) - int64_t{high16(x)} * high16(y), nullptr);
}
// SXTB16: rotate right by rot (0, 8, 16 or 24), then sign-extend bytes 0 and 2 to halfwords.
constexpr uint32_t sxtb16(uint32_t x, unsigned rot = 0) noexcept {
  using namespace bits;
  const uint32_t r = ror(x, rot);
  return pair(byte_s(r), byte_s(r >> 16));
}
// SXTAB16: a.lo + sext(byte 0), a.hi + sext(byte 2) of x rotated by rot; each halfword wraps.
constexpr uint32_t sxtab16(uint32_t a, uint32_t x, unsigned rot = 0) noexcept {
  using namespace bits;
  const uint32_t r = ror(x, rot);
  return pair(low16(a) + byte_s(r), high16(a) + byte_s(r >> 16));
}
// UXTB16: rotate right by rot, then zero-extend bytes 0 and 2 to halfwords.
constexpr uint32_t uxtb16(uint32_t x, unsigned rot = 0) noexcept {
  return bits::ror(x, rot) & 0x00FF00FFu;
}
// PKHBT: low half of a, high half of (b << shift); shift in [0, 31].
constexpr uint32_t pkhbt(uint32_t a, uint32_t b, unsigned shift = 0) noexcept {
  return (a & 0xFFFFu) | ((b << (shift & 31u)) & 0xFFFF0000u);
}
// PKHTB: high half of a, low half of (b >> shift) arithmetic; shift in [0, 32] (32 = sign fill).
constexpr uint32_t pkhtb(uint32_t a, uint32_t b, unsigned shift = 0) noexcept {
  const int64_t shifted = int64_t{bits::as_signed(b)} >> (shift > 32u ? 32u : shift);
  return (a & 0xFFFF0000u) | (static_cast<uint32_t>(static_cast<uint64_t>(shifted)) & 0xFFFFu);
}
// SSAT: clamp signed x to [-2^(n-1), 2^(n-1) - 1], n in [1, 32].
constexpr uint32_t ssat(uint32_t x, unsigned n, bool* q = nullptr) noexcept {
  const int64_t top = (int64_t{1} << (n - 1)) - 1;
  return bits::saturate(bits::as_signed(x), -top - 1, top, q);
}
// USAT: clamp signed x to [0, 2^n - 1], n in [0, 31].
constexpr uint32_t usat(uint32_t x, unsigned n, bool* q = nullptr) noexcept {
  return bits::saturate(bits::as_signed(x), 0, (int64_t{1} << n) - 1, q);
}
// QADD / QSUB: signed 32-bit add / subtract saturating to [INT32_MIN, INT32_MAX].
constexpr uint32_t qadd(uint32_t a, uint32_t b, bool* q = nullptr) noexcept {
  return bits::saturate(int64_t{bits::as_signed(a)} + bits::as_signed(b), INT32_MIN, INT32_MAX, q);
}
constexpr uint32_t qsub(uint32_t a, uint32_t b, bool* q = nullptr) noexcept {
  return bits::saturate(int64_t{bits::as_signed(a)} - bits::as_signed(b), INT32_MIN, INT32_MAX, q);
}
// SMULBB: a.lo * b.lo (|product| <= 2^30; no Q).
constexpr uint32_t smulbb(uint32_t a, uint32_t b) noexcept {
  return bits::wrap_q(int64_t{bits::low16(a)} * bits::low16(b), nullptr);
}
// SMLABB: acc + a.lo * b.lo
constexpr uint32_t smlabb(uint32_t a, uint32_t b, uint32_t acc, bool* q = nullptr) noexcept {
  using namespace bits;
  return wrap_q(int64_t{low16(a)} * low16(b) + as_signed(acc), q);
}

}  // namespace emu

#if TINYQUANT_RT_NATIVE_DSP

inline constexpr bool kNativeDsp = true;

inline uint32_t smlad(uint32_t x, uint32_t y, uint32_t acc) noexcept {
  return static_cast<uint32_t>(
      __smlad(static_cast<int32_t>(x), static_cast<int32_t>(y), static_cast<int32_t>(acc)));
}
inline uint32_t smladx(uint32_t x, uint32_t y, uint32_t acc) noexcept {
  return static_cast<uint32_t>(
      __smladx(static_cast<int32_t>(x), static_cast<int32_t>(y), static_cast<int32_t>(acc)));
}
inline uint32_t smlsd(uint32_t x, uint32_t y, uint32_t acc) noexcept {
  return static_cast<uint32_t>(
      __smlsd(static_cast<int32_t>(x), static_cast<int32_t>(y), static_cast<int32_t>(acc)));
}
inline uint32_t smuad(uint32_t x, uint32_t y) noexcept {
  return static_cast<uint32_t>(__smuad(static_cast<int32_t>(x), static_cast<int32_t>(y)));
}
inline uint32_t smuadx(uint32_t x, uint32_t y) noexcept {
  return static_cast<uint32_t>(__smuadx(static_cast<int32_t>(x), static_cast<int32_t>(y)));
}
inline uint32_t smusd(uint32_t x, uint32_t y) noexcept {
  return static_cast<uint32_t>(__smusd(static_cast<int32_t>(x), static_cast<int32_t>(y)));
}
// The rotated forms are inline asm with the ROR operand: GCC 12 does not fold a rotate written
// in C into __sxtb16 / __sxtab16 / __uxtb16 and emits a separate MOV ROR before each.
template <unsigned Rot = 0>
inline uint32_t sxtb16(uint32_t x) noexcept {
  static_assert(Rot == 0 || Rot == 8 || Rot == 16 || Rot == 24, "rotation is 0, 8, 16 or 24");
  if constexpr (Rot == 0) {
    return static_cast<uint32_t>(__sxtb16(static_cast<int32_t>(x)));
  } else {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror %2" : "=r"(r) : "r"(x), "i"(Rot));
    return r;
  }
}
template <unsigned Rot = 0>
inline uint32_t sxtab16(uint32_t a, uint32_t x) noexcept {
  static_assert(Rot == 0 || Rot == 8 || Rot == 16 || Rot == 24, "rotation is 0, 8, 16 or 24");
  if constexpr (Rot == 0) {
    return static_cast<uint32_t>(__sxtab16(static_cast<int32_t>(a), static_cast<int32_t>(x)));
  } else {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror %3" : "=r"(r) : "r"(a), "r"(x), "i"(Rot));
    return r;
  }
}
template <unsigned Rot = 0>
inline uint32_t uxtb16(uint32_t x) noexcept {
  static_assert(Rot == 0 || Rot == 8 || Rot == 16 || Rot == 24, "rotation is 0, 8, 16 or 24");
  if constexpr (Rot == 0) {
    return __uxtb16(x);
  } else {
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror %2" : "=r"(r) : "r"(x), "i"(Rot));
    return r;
  }
}
// No ACLE intrinsic, and GCC 12 does not select PKHBT / PKHTB from the mask-and-or pattern
// (3 to 5 instructions): inline asm. PKHTB with shift 0 is PKHBT with the operands swapped.
template <unsigned Shift = 0>
inline uint32_t pkhbt(uint32_t a, uint32_t b) noexcept {
  static_assert(Shift <= 31, "PKHBT shift is 0..31");
  uint32_t r;
  if constexpr (Shift == 0)
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  else
    __asm__("pkhbt %0, %1, %2, lsl %3" : "=r"(r) : "r"(a), "r"(b), "i"(Shift));
  return r;
}
template <unsigned Shift = 0>
inline uint32_t pkhtb(uint32_t a, uint32_t b) noexcept {
  static_assert(Shift <= 32, "PKHTB shift is 0..32");
  uint32_t r;
  if constexpr (Shift == 0)
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(b), "r"(a));
  else
    __asm__("pkhtb %0, %1, %2, asr %3" : "=r"(r) : "r"(a), "r"(b), "i"(Shift));
  return r;
}
template <unsigned N>
inline uint32_t ssat(uint32_t x) noexcept {
  static_assert(N >= 1 && N <= 32, "SSAT width is 1..32");
  return static_cast<uint32_t>(__ssat(static_cast<int32_t>(x), N));
}
template <unsigned N>
inline uint32_t usat(uint32_t x) noexcept {
  static_assert(N <= 31, "USAT width is 0..31");
  return static_cast<uint32_t>(__usat(static_cast<int32_t>(x), N));
}
inline uint32_t qadd(uint32_t a, uint32_t b) noexcept {
  return static_cast<uint32_t>(__qadd(static_cast<int32_t>(a), static_cast<int32_t>(b)));
}
inline uint32_t qsub(uint32_t a, uint32_t b) noexcept {
  return static_cast<uint32_t>(__qsub(static_cast<int32_t>(a), static_cast<int32_t>(b)));
}
inline uint32_t smulbb(uint32_t a, uint32_t b) noexcept {
  uint32_t r;
  __asm__("smulbb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
inline uint32_t smlabb(uint32_t a, uint32_t b, uint32_t acc) noexcept {
  return static_cast<uint32_t>(
      __smlabb(static_cast<int32_t>(a), static_cast<int32_t>(b), static_cast<int32_t>(acc)));
}

#else  // portable: the emulation, same signatures as the native block

inline constexpr bool kNativeDsp = false;

constexpr uint32_t smlad(uint32_t x, uint32_t y, uint32_t acc) noexcept {
  return emu::smlad(x, y, acc);
}
constexpr uint32_t smladx(uint32_t x, uint32_t y, uint32_t acc) noexcept {
  return emu::smladx(x, y, acc);
}
constexpr uint32_t smlsd(uint32_t x, uint32_t y, uint32_t acc) noexcept {
  return emu::smlsd(x, y, acc);
}
constexpr uint32_t smuad(uint32_t x, uint32_t y) noexcept {
  return emu::smuad(x, y);
}
constexpr uint32_t smuadx(uint32_t x, uint32_t y) noexcept {
  return emu::smuadx(x, y);
}
constexpr uint32_t smusd(uint32_t x, uint32_t y) noexcept {
  return emu::smusd(x, y);
}
template <unsigned Rot = 0>
constexpr uint32_t sxtb16(uint32_t x) noexcept {
  static_assert(Rot == 0 || Rot == 8 || Rot == 16 || Rot == 24, "rotation is 0, 8, 16 or 24");
  return emu::sxtb16(x, Rot);
}
template <unsigned Rot = 0>
constexpr uint32_t sxtab16(uint32_t a, uint32_t x) noexcept {
  static_assert(Rot == 0 || Rot == 8 || Rot == 16 || Rot == 24, "rotation is 0, 8, 16 or 24");
  return emu::sxtab16(a, x, Rot);
}
template <unsigned Rot = 0>
constexpr uint32_t uxtb16(uint32_t x) noexcept {
  static_assert(Rot == 0 || Rot == 8 || Rot == 16 || Rot == 24, "rotation is 0, 8, 16 or 24");
  return emu::uxtb16(x, Rot);
}
template <unsigned Shift = 0>
constexpr uint32_t pkhbt(uint32_t a, uint32_t b) noexcept {
  static_assert(Shift <= 31, "PKHBT shift is 0..31");
  return emu::pkhbt(a, b, Shift);
}
template <unsigned Shift = 0>
constexpr uint32_t pkhtb(uint32_t a, uint32_t b) noexcept {
  static_assert(Shift <= 32, "PKHTB shift is 0..32");
  return emu::pkhtb(a, b, Shift);
}
template <unsigned N>
constexpr uint32_t ssat(uint32_t x) noexcept {
  static_assert(N >= 1 && N <= 32, "SSAT width is 1..32");
  return emu::ssat(x, N);
}
template <unsigned N>
constexpr uint32_t usat(uint32_t x) noexcept {
  static_assert(N <= 31, "USAT width is 0..31");
  return emu::usat(x, N);
}
constexpr uint32_t qadd(uint32_t a, uint32_t b) noexcept {
  return emu::qadd(a, b);
}
constexpr uint32_t qsub(uint32_t a, uint32_t b) noexcept {
  return emu::qsub(a, b);
}
constexpr uint32_t smulbb(uint32_t a, uint32_t b) noexcept {
  return emu::smulbb(a, b);
}
constexpr uint32_t smlabb(uint32_t a, uint32_t b, uint32_t acc) noexcept {
  return emu::smlabb(a, b, acc);
}

#endif

}  // namespace tinyquant::rt::dsp
