// Every instruction wrapper of tinyquant/rt/dsp.hpp on a core with the DSP extension: the real
// instruction (tinyquant::rt::dsp) against the portable emulation (tinyquant::rt::dsp::emu) over
// an edge table (every pair, and every triple for the accumulating forms) and 10^6 xorshift
// inputs. Results must agree bit for bit; the Q flag is not compared.
//
// tq_dsp_probe() runs before the C library starts (bare metal: from startup.c's tq_pre_start
// hook), so on a core without DSP (the Cortex-M3 control, expect_fault.cmake) the first undefined
// instruction is inside it and not in newlib, whose ARMv7E-M strlen uses DSP instructions too.
#include <cstdint>

#include "check.hpp"
#include "tinyquant/rt/dsp.hpp"

#if !TINYQUANT_RT_NATIVE_DSP
#error "test_dsp compares the real DSP instructions against their emulation: build for a DSP core"
#endif

namespace dsp = tinyquant::rt::dsp;
namespace emu = tinyquant::rt::dsp::emu;

volatile uint32_t g_probe_in[3] = {0x7FFF8000u, 0x80007FFFu, 5u};

// Initialised (in .data), so the pre-start hook's write survives crt0's .bss clearing.
volatile uint32_t g_probe_out = 1u;

// SXTB16 first: QEMU 7.2's Cortex-M3 model traps SXTB16 but lets SMLAD/SMUAD through, so only
// the former makes the control meaningful. The probe is the smlad kernels' data flow in miniature.
extern "C" __attribute__((noinline)) uint32_t tq_dsp_probe() {
  const uint32_t lo = dsp::sxtb16(g_probe_in[0]);
  const uint32_t hi = dsp::sxtb16<8>(g_probe_in[1]);
  return dsp::smlad(lo, hi, g_probe_in[2]);
}

extern "C" void tq_pre_start() {
  g_probe_out = tq_dsp_probe();
}

namespace {

constexpr uint32_t kEdges[] = {
    0x00000000u, 0x00000001u, 0xFFFFFFFFu, 0x7FFFFFFFu, 0x80000000u, 0x7FFF7FFFu, 0x80008000u,
    0x7FFF8000u, 0x80007FFFu, 0x00007FFFu, 0x00008000u, 0x7FFF0000u, 0x80000000u, 0xFFFF0001u,
    0x0001FFFFu, 0x7F7F7F7Fu, 0x80808080u, 0x7F807F80u, 0x807F807Fu, 0x000000FFu, 0x0000FF00u,
    0x00FF0000u, 0xFF000000u, 0x12345678u, 0xDEADBEEFu, 0x0000FFFFu, 0xFFFF0000u, 0x00010001u};
constexpr int kNumEdges = static_cast<int>(sizeof kEdges / sizeof kEdges[0]);

#define TQ_SAME(expr_native, expr_emu, name) TQ_CHECK_EQ((expr_native), (expr_emu), name)

void check_two(uint32_t a, uint32_t b) {
  TQ_SAME(dsp::smuad(a, b), emu::smuad(a, b), "smuad");
  TQ_SAME(dsp::smuadx(a, b), emu::smuadx(a, b), "smuadx");
  TQ_SAME(dsp::smusd(a, b), emu::smusd(a, b), "smusd");
  TQ_SAME(dsp::qadd(a, b), emu::qadd(a, b), "qadd");
  TQ_SAME(dsp::qsub(a, b), emu::qsub(a, b), "qsub");
  TQ_SAME(dsp::smulbb(a, b), emu::smulbb(a, b), "smulbb");
  TQ_SAME(dsp::sxtab16(a, b), emu::sxtab16(a, b, 0), "sxtab16");
  TQ_SAME(dsp::sxtab16<8>(a, b), emu::sxtab16(a, b, 8), "sxtab16 ror 8");
  TQ_SAME(dsp::sxtab16<16>(a, b), emu::sxtab16(a, b, 16), "sxtab16 ror 16");
  TQ_SAME(dsp::sxtab16<24>(a, b), emu::sxtab16(a, b, 24), "sxtab16 ror 24");
  TQ_SAME(dsp::pkhbt(a, b), emu::pkhbt(a, b, 0), "pkhbt");
  TQ_SAME(dsp::pkhbt<16>(a, b), emu::pkhbt(a, b, 16), "pkhbt lsl 16");
  TQ_SAME(dsp::pkhbt<31>(a, b), emu::pkhbt(a, b, 31), "pkhbt lsl 31");
  TQ_SAME(dsp::pkhtb(a, b), emu::pkhtb(a, b, 0), "pkhtb");
  TQ_SAME(dsp::pkhtb<16>(a, b), emu::pkhtb(a, b, 16), "pkhtb asr 16");
  TQ_SAME(dsp::pkhtb<32>(a, b), emu::pkhtb(a, b, 32), "pkhtb asr 32");
}

void check_three(uint32_t a, uint32_t b, uint32_t c) {
  TQ_SAME(dsp::smlad(a, b, c), emu::smlad(a, b, c), "smlad");
  TQ_SAME(dsp::smladx(a, b, c), emu::smladx(a, b, c), "smladx");
  TQ_SAME(dsp::smlsd(a, b, c), emu::smlsd(a, b, c), "smlsd");
  TQ_SAME(dsp::smlabb(a, b, c), emu::smlabb(a, b, c), "smlabb");
}

void check_one(uint32_t a) {
  TQ_SAME(dsp::sxtb16(a), emu::sxtb16(a, 0), "sxtb16");
  TQ_SAME(dsp::sxtb16<8>(a), emu::sxtb16(a, 8), "sxtb16 ror 8");
  TQ_SAME(dsp::sxtb16<16>(a), emu::sxtb16(a, 16), "sxtb16 ror 16");
  TQ_SAME(dsp::sxtb16<24>(a), emu::sxtb16(a, 24), "sxtb16 ror 24");
  TQ_SAME(dsp::uxtb16(a), emu::uxtb16(a, 0), "uxtb16");
  TQ_SAME(dsp::uxtb16<8>(a), emu::uxtb16(a, 8), "uxtb16 ror 8");
  TQ_SAME(dsp::ssat<1>(a), emu::ssat(a, 1), "ssat 1");
  TQ_SAME(dsp::ssat<8>(a), emu::ssat(a, 8), "ssat 8");
  TQ_SAME(dsp::ssat<16>(a), emu::ssat(a, 16), "ssat 16");
  TQ_SAME(dsp::ssat<32>(a), emu::ssat(a, 32), "ssat 32");
  TQ_SAME(dsp::usat<0>(a), emu::usat(a, 0), "usat 0");
  TQ_SAME(dsp::usat<8>(a), emu::usat(a, 8), "usat 8");
  TQ_SAME(dsp::usat<16>(a), emu::usat(a, 16), "usat 16");
  TQ_SAME(dsp::usat<31>(a), emu::usat(a, 31), "usat 31");
}

}  // namespace

int main() {
  // sxtb16(0x7FFF8000) = lanes (0, -1); sxtb16(ror(0x80007FFF, 8)) = lanes (127, -128);
  // smlad: 0 * 127 + (-1) * (-128) + 5 = 133.
#if !defined(__ARM_ARCH_PROFILE) || __ARM_ARCH_PROFILE != 'M'
  tq_pre_start();  // no startup hook under Linux
#endif
  TQ_CHECK_EQ(g_probe_out, 133u, "probe sxtb16 + smlad");
  // Hand-checked corner: both lanes INT16_MIN^2 sum to 2^31, which wraps to INT32_MIN.
  TQ_CHECK_EQ(dsp::smuad(0x80008000u, 0x80008000u), 0x80000000u, "smuad wraps");
  for (int i = 0; i < kNumEdges; ++i) {
    check_one(kEdges[i]);
    for (int j = 0; j < kNumEdges; ++j) {
      check_two(kEdges[i], kEdges[j]);
      for (int k = 0; k < kNumEdges; ++k) check_three(kEdges[i], kEdges[j], kEdges[k]);
    }
  }
  tq::XorShift32 rng;
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t a = rng.next(), b = rng.next(), c = rng.next();
    check_one(a);
    check_two(a, b);
    check_three(a, b, c);
  }
  return tq::finish("test_dsp");
}
