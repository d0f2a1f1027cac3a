/* Minimal Cortex-M startup for the QEMU MPS2 boards: vector table, FPU enable, and fault handlers
 * that leave through semihosting with an exit code naming the fault, so a test harness can tell
 * "the CPU lacks an instruction" (UNDEFINSTR) from any other crash:
 *   2  usage fault, undefined instruction (e.g. a DSP instruction on a Cortex-M3)
 *   3  usage fault, no coprocessor (FPU instruction with the FPU absent or disabled)
 *   4  any other usage fault (unaligned access, divide by zero, invalid state)
 *   5  bus or memory-management fault
 *   1  anything else (hard fault without a recorded cause, NMI, unexpected interrupt)
 * Before exiting it prints "fault: code <n> pc 0x<address>" on the semihosting console, the
 * address of the instruction that faulted, so a harness can check which instruction it was. */
#include <stdint.h>

extern char __stack[];
extern void _start(void); /* rdimon's crt0: zeroes .bss, runs constructors, calls main, exit */

#define TQ_SCB_CPACR (*(volatile uint32_t*)0xE000ED88u)
#define TQ_SCB_CFSR (*(volatile uint32_t*)0xE000ED28u)

static void semihosting_exit(uint32_t code) {
  /* SYS_EXIT_EXTENDED: block {reason = ADP_Stopped_ApplicationExit, exit code}. */
  static uint32_t block[2];
  block[0] = 0x20026u;
  block[1] = code;
  register uint32_t r0 __asm__("r0") = 0x20u;
  register uint32_t r1 __asm__("r1") = (uint32_t)block;
  __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
  for (;;) {
  }
}

static uint32_t fault_code(void) {
  const uint32_t cfsr = TQ_SCB_CFSR;
  const uint32_t ufsr = cfsr >> 16;
  if (ufsr & 0x1u) return 2u;
  if (ufsr & 0x8u) return 3u;
  if (ufsr != 0u) return 4u;
  if (cfsr & 0xFFFFu) return 5u;
  return 1u;
}

static void semihosting_write0(const char* text) {
  register uint32_t r0 __asm__("r0") = 0x04u; /* SYS_WRITE0 */
  register const char* r1 __asm__("r1") = text;
  __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
}

/* frame: the exception stack frame {r0, r1, r2, r3, r12, lr, pc, xpsr}. */
__attribute__((used)) void tq_fault_report(const uint32_t* frame) {
  static char text[] = "fault: code 0 pc 0x00000000\n";
  const uint32_t code = fault_code();
  const uint32_t pc = frame[6];
  text[12] = (char)('0' + code);
  for (int i = 0; i < 8; ++i) {
    const uint32_t nibble = (pc >> (28 - 4 * i)) & 0xFu;
    text[19 + i] = (char)(nibble < 10u ? '0' + nibble : 'a' + (nibble - 10u));
  }
  semihosting_write0(text);
  semihosting_exit(code);
}

/* Finds the stacked frame (main or process stack, from EXC_RETURN bit 2) without touching it. */
__attribute__((naked)) void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "b tq_fault_report\n\t");
}

/* Optional hook a test may define to run code before the C library starts (rdimon's crt0 already
 * calls newlib's strlen, which itself uses DSP instructions on ARMv7E-M). .bss is not zeroed yet:
 * a hook may only write initialised data. */
extern void tq_pre_start(void) __attribute__((weak));

void Reset_Handler(void) {
#if defined(__ARM_FP)
  /* Full access to CP10/CP11 before any floating-point instruction. */
  TQ_SCB_CPACR |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  if (tq_pre_start) tq_pre_start();
  _start();
}

__attribute__((section(".isr_vector"), used)) void (*const tq_vectors[16])(void) = {
    (void (*)(void))__stack, /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
