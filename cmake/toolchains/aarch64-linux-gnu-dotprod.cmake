# AArch64 Linux with the ARMv8.2 dot-product extension (SDOT/UDOT), emulated as a Cortex-A76.
set(TINYQUANT_AARCH64_MARCH armv8.2-a+dotprod)
set(TINYQUANT_QEMU_CPU cortex-a76)
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
