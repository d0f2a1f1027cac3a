# Cortex-M7 (ARMv7E-M with the DSP extension, double-precision FPU, hard-float ABI), bare metal.
# Runs under `qemu-system-arm -M mps2-an500`.
set(TINYQUANT_MCU_FLAGS "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16")
set(TINYQUANT_QEMU_MACHINE mps2-an500)
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)
