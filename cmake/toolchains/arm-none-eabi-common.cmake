# Shared part of the bare-metal Cortex-M toolchains (included by cortex-m4.cmake, cortex-m7.cmake).
# Expects TINYQUANT_MCU_FLAGS (CPU/FPU flags) and TINYQUANT_QEMU_MACHINE (an MPS2 board model).
# Only compiler and CPU settings live here; startup code, linker script and the C library specs
# (rdimon for semihosting, nosys for firmware) belong to the project that links executables.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
# No OS to link a test executable against during compiler checks.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
# The runtime must not reach for getenv and friends on a bare-metal target.
set(CMAKE_C_FLAGS_INIT "${TINYQUANT_MCU_FLAGS} -DTINYQUANT_RT_FREESTANDING")
set(CMAKE_CXX_FLAGS_INIT "${TINYQUANT_MCU_FLAGS} -DTINYQUANT_RT_FREESTANDING")
set(CMAKE_ASM_FLAGS_INIT "${TINYQUANT_MCU_FLAGS}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Semihosting executables run under QEMU's board model; exit(n) becomes QEMU's exit code.
# Arguments would follow the ELF and be read by QEMU: tests take none.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-system-arm -M ${TINYQUANT_QEMU_MACHINE} -nographic
    -semihosting -kernel)
