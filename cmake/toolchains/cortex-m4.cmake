# Cortex-M4F (ARMv7E-M with the DSP extension, single-precision FPU, hard-float ABI), bare metal.
# Runs under `qemu-system-arm -M mps2-an386`.
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/cortex-m4.cmake \
#         -DTINYQUANT_RUNTIME_ONLY=ON
set(TINYQUANT_MCU_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
set(TINYQUANT_QEMU_MACHINE mps2-an386)
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)
