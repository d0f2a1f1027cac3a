# AArch64 Linux (ARMv8-A baseline, Advanced SIMD). Tests run through qemu-aarch64 user mode.
# TINYQUANT_AARCH64_MARCH selects the ISA the compiler may use (aarch64-linux-gnu-dotprod.cmake
# sets armv8.2-a+dotprod); TINYQUANT_QEMU_CPU pins the emulated core, since QEMU's default CPU has
# every extension: cortex-a53 lacks the dot product, cortex-a76 has it.
if(NOT DEFINED TINYQUANT_AARCH64_MARCH)
  set(TINYQUANT_AARCH64_MARCH armv8-a)
endif()
if(NOT DEFINED TINYQUANT_QEMU_CPU)
  set(TINYQUANT_QEMU_CPU cortex-a53)
endif()
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_C_FLAGS_INIT "-march=${TINYQUANT_AARCH64_MARCH}")
set(CMAKE_CXX_FLAGS_INIT "-march=${TINYQUANT_AARCH64_MARCH}")
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -cpu ${TINYQUANT_QEMU_CPU} -L /usr/aarch64-linux-gnu)
