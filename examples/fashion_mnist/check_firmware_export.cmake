# The --firmware bundle's headers are what the command line writes: runs the demo on a small
# model with --firmware, then, for every model, the `tinyquant export-c` command recorded in its
# export-c.txt, and requires the two headers to be byte for byte the same.
#   cmake -DDEMO=... -DCLI=... -DDIR=... -P check_firmware_export.cmake
foreach(v DEMO CLI DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_firmware_export.cmake: ${v} is not set")
  endif()
endforeach()
file(REMOVE_RECURSE ${DIR})
execute_process(
  COMMAND ${DEMO} --train-limit 2000 --epochs 1 --finetune-epochs 1 --eval-limit 50 --no-cache
          --plot ${DIR}/plot.svg --firmware ${DIR}
  OUTPUT_QUIET RESULT_VARIABLE rc)
if(rc EQUAL 77)
  message("Fashion-MNIST is not installed: skipping")  # the exit code CTest reads as skipped
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fashion_mnist --firmware exited with ${rc}")
endif()
set(models int8 int4_g32_qat prune70_int8 neurons50_int8)
foreach(m ${models})
  file(READ ${DIR}/${m}/export-c.txt line)
  string(STRIP "${line}" line)
  separate_arguments(args UNIX_COMMAND "${line}")
  list(GET args 0 program)
  list(GET args 3 header)
  if(NOT program STREQUAL "tinyquant" OR NOT header STREQUAL "model.h")
    message(FATAL_ERROR "${m}/export-c.txt: unexpected command '${line}'")
  endif()
  list(REMOVE_AT args 0 3)
  list(INSERT args 0 ${CLI})
  list(INSERT args 3 cli.h)
  execute_process(COMMAND ${args} WORKING_DIRECTORY ${DIR}/${m} OUTPUT_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${m}: '${line}' exited with ${rc}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${DIR}/${m}/model.h ${DIR}/${m}/cli.h
                  RESULT_VARIABLE same)
  if(NOT same EQUAL 0)
    message(FATAL_ERROR "${m}: the header `${line}` writes differs from the bundle's model.h")
  endif()
  message("${m}: the command's header equals the bundle's")
endforeach()
