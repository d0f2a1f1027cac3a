#!/usr/bin/env bash
# The whole test suite: release build (with -Werror) of the library, tests, examples and
# benchmarks (each benchmark runs once, briefly), packaging tests, the same suite under
# ASan + UBSan (built with clang), the threaded tests under TSan, the examples under valgrind
# memcheck, the ARM targets under QEMU and a short fuzzing run.
# Set TINYQUANT_SKIP="valgrind asan tsan arm fuzz" (any subset) to skip stages while iterating.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
jobs=$(nproc)
skip=" ${TINYQUANT_SKIP:-} "
t0=$(date +%s)
stage() { printf '\n=== tinyquant: %s (%d s in) ===\n' "$*" $(($(date +%s) - t0)); }
# The sanitizer builds compile at -O1 with line tables only: about half the compile time of
# -O2 -g (the ASan + UBSan build was most of the suite's time), with file:line in every report.
san_flags="-O1 -g1 -DNDEBUG"

stage "release build"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DTINYQUANT_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs"
stage "release tests"
ctest --test-dir build/release -j"$jobs" --output-on-failure --timeout 900

if [[ $skip != *" valgrind "* ]]; then
  stage "valgrind memcheck on the examples"
  bash scripts/valgrind-examples.sh build/release
fi

if [[ $skip != *" asan "* ]]; then
  # Built with clang: its UBSan checks more than GCC's (an offset from a null pointer, for one),
  # and a second compiler draws out what GCC 12 lets pass (a target without C++17, arguments
  # whose order of evaluation a test relied on); the release build above is GCC's.
  stage "ASan + UBSan build (clang)"
  CC=clang CXX=clang++ cmake -S . -B build/asan-clang -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$san_flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$san_flags" \
    -DTINYQUANT_SANITIZE=address,undefined -DTINYQUANT_BUILD_BENCH=OFF >/dev/null
  cmake --build build/asan-clang -j"$jobs"
  stage "ASan + UBSan tests"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan-clang -j"$jobs" --output-on-failure --timeout 900 -LE package
fi

if [[ $skip != *" tsan "* ]]; then
  # Only what starts threads: the parallel GEMM / FC split (include/tinyquant/parallel.hpp, with
  # the run-time dispatch it calls from every thread) and observers calibrated on several threads.
  stage "TSan build (threaded tests)"
  cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTINYQUANT_SANITIZE=thread \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$san_flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$san_flags" \
    -DTINYQUANT_BUILD_BENCH=OFF -DTINYQUANT_BUILD_EXAMPLES=OFF -DTINYQUANT_BUILD_CLI=OFF >/dev/null
  cmake --build build/tsan -j"$jobs" --target test_x86_paths test_observer_threads
  stage "TSan tests"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build/tsan -j"$jobs" --output-on-failure --timeout 600 \
    -R '^(Parallel|ObserverThreads)\.'
fi

if [[ $skip != *" arm "* ]] && [ -f scripts/arm-tests.sh ]; then
  stage "ARM targets under QEMU"
  bash scripts/arm-tests.sh
fi

if [[ $skip != *" fuzz "* ]] && [ -f tests/fuzz/CMakeLists.txt ]; then
  stage "fuzzers (short run)"
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTINYQUANT_BUILD_FUZZERS=ON -DTINYQUANT_BUILD_TESTS=OFF -DTINYQUANT_BUILD_BENCH=OFF \
    -DTINYQUANT_BUILD_EXAMPLES=OFF -DTINYQUANT_BUILD_CLI=OFF >/dev/null
  cmake --build build/fuzz -j"$jobs"
  ctest --test-dir build/fuzz -j"$jobs" --output-on-failure -L fuzz
fi

stage "all stages passed in $(( $(date +%s) - t0 )) s"
