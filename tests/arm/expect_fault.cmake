# Negative control: run a DSP test binary on a core without the DSP extension and require that it
# stops with "undefined instruction" (exit code 2 from startup.c) at an address inside SYMBOL,
# i.e. the real DSP instruction was compiled in and executed, not emulated or compiled away.
#   cmake -DQEMU=... -DMACHINE=mps2-an385 -DELF=... -DNM=arm-none-eabi-nm -DSYMBOL=tq_dsp_probe
#         -P expect_fault.cmake
execute_process(COMMAND ${QEMU} -M ${MACHINE} -nographic -semihosting -kernel ${ELF}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message(STATUS "exit ${rc}: ${out}${err}")
if(NOT rc STREQUAL "2")
  message(FATAL_ERROR "expected exit code 2 (undefined instruction) on ${MACHINE}, got ${rc}")
endif()
if(NOT "${out}${err}" MATCHES "pc 0x([0-9a-f]+)")
  message(FATAL_ERROR "no fault address in the output")
endif()
math(EXPR pc "0x${CMAKE_MATCH_1}")
execute_process(COMMAND ${NM} -S ${ELF} OUTPUT_VARIABLE syms)
if(NOT syms MATCHES "([0-9a-f]+) ([0-9a-f]+) [Tt] ${SYMBOL}\n")
  message(FATAL_ERROR "symbol ${SYMBOL} not found in ${ELF}")
endif()
math(EXPR lo "0x${CMAKE_MATCH_1}")
math(EXPR hi "0x${CMAKE_MATCH_1} + 0x${CMAKE_MATCH_2}")
if(pc LESS lo OR NOT pc LESS hi)
  message(FATAL_ERROR "fault at ${pc} is outside ${SYMBOL} [${lo}, ${hi})")
endif()
message(STATUS "faulted inside ${SYMBOL} as expected")
