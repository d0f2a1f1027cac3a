#!/usr/bin/env bash
# Builds tinyquant's runtime for every ARM target and runs the on-target tests under QEMU:
#   m4      Cortex-M4F bare metal, qemu-system-arm -M mps2-an386 (plus the Cortex-M3 control)
#   m7      Cortex-M7 bare metal, qemu-system-arm -M mps2-an500
#   armv7   ARMv7-A Linux, qemu-arm
#   a64     AArch64 ARMv8-A, qemu-aarch64 -cpu cortex-a53 and -cpu cortex-a76
#   a64dot  AArch64 ARMv8.2-A+dotprod, qemu-aarch64 -cpu cortex-a76
#   m4cost  the Cortex-M4 cost harness (bench/arm/measure.sh --cross-check): builds every cost
#           case at -O2 and -Os, runs them with the instruction-count plugin, and requires the
#           plugin to agree with an exec trace; the table lands in build/arm-cost/results.md
#   a64count the AArch64 instruction counts (bench/arm/a64/count.sh): reference, neon, neondot
#           and gemmlowp per GEMM shape under qemu-aarch64; every path's output must equal the
#           reference path's; the table lands in build/a64-count/results.md
# Installs missing cross compilers and emulators first (apt-get, only when something is missing).
# Usage: scripts/arm-tests.sh [target...]   (default: all). Exit status non-zero on any failure.
# Build directories: build/arm-<target>. Jobs: $JOBS (default 2).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-2}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(m4 m7 armv7 a64 a64dot m4cost a64count)

need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need arm-none-eabi-gcc gcc-arm-none-eabi
need qemu-system-arm qemu-system-arm
need arm-linux-gnueabihf-g++ g++-arm-linux-gnueabihf
need aarch64-linux-gnu-g++ g++-aarch64-linux-gnu
need qemu-arm qemu-user
need qemu-aarch64 qemu-user
need cmake cmake
need ninja ninja-build
need g++ g++
need python3 python3
[ -d /usr/lib/arm-none-eabi/newlib ] || need_pkgs+=(libnewlib-arm-none-eabi)
[ -d /usr/include/newlib/c++ ] || need_pkgs+=(libstdc++-arm-none-eabi-dev)
# The m4 target's Fashion-MNIST firmware: the host demo (zlib) trains and exports a model.
[ -f /usr/include/zlib.h ] || need_pkgs+=(zlib1g-dev)
[ -d /usr/share/datasets/fashion-mnist ] || need_pkgs+=(dataset-fashion-mnist)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  echo "arm-tests: installing ${need_pkgs[*]}"
  $sudo_cmd apt-get update -qq && \
    $sudo_cmd apt-get install -y --no-install-recommends "${need_pkgs[@]}" || {
      echo "arm-tests: package installation failed" >&2; exit 2; }
fi

toolchain_of() {
  case "$1" in
    m4) echo cortex-m4 ;;
    m7) echo cortex-m7 ;;
    armv7) echo arm-linux-gnueabihf ;;
    a64) echo aarch64-linux-gnu ;;
    a64dot) echo aarch64-linux-gnu-dotprod ;;
    m4cost) echo cortex-m4 ;;
    a64count) echo aarch64-linux-gnu ;;
    *) return 1 ;;
  esac
}

declare -A result
failed=0
start=$(date +%s)
mkdir -p "$ROOT/build"  # the per-target logs live beside the build directories
for t in "${TARGETS[@]}"; do
  tc=$(toolchain_of "$t") || { echo "arm-tests: unknown target $t" >&2; exit 2; }
  dir="$ROOT/build/arm-$t"
  log="$dir.log"
  echo "== $t ($tc)"
  if [ "$t" = m4cost ]; then
    if "$ROOT/bench/arm/measure.sh" --cross-check >"$log" 2>&1; then
      result[$t]="ok: $(grep -E '^cross-check' "$log")"
    else
      result[$t]="FAILED (see $log)"; failed=1; tail -20 "$log"
    fi
    continue
  fi
  if [ "$t" = a64count ]; then
    if "$ROOT/bench/arm/a64/count.sh" >"$log" 2>&1; then
      result[$t]="ok: $(grep -c '^| [0-9]' "$log") shapes, every path equal to the reference"
    else
      result[$t]="FAILED (see $log)"; failed=1; tail -20 "$log"
    fi
    continue
  fi
  if ! cmake -S "$ROOT/tests/arm" -B "$dir" -G Ninja -DTINYQUANT_WERROR=ON \
      -DTQ_HOST_TOOLS_DIR="$ROOT/build/arm-host" \
      -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/$tc.cmake" >"$log" 2>&1; then
    result[$t]="configure FAILED (see $log)"; failed=1; tail -20 "$log"; continue
  fi
  if ! cmake --build "$dir" -j "$JOBS" >>"$log" 2>&1; then
    result[$t]="build FAILED (see $log)"; failed=1; grep -E "error|FAILED" "$log" | head -20
    continue
  fi
  if ctest --test-dir "$dir" -j "$JOBS" --output-on-failure >>"$log" 2>&1; then
    result[$t]="ok: $(grep -E 'tests passed' "$log" | tail -1)"
  else
    result[$t]="FAILED: $(grep -E 'tests passed' "$log" | tail -1)"; failed=1
    sed -n '/The following tests FAILED/,$p' "$log"
  fi
done

echo
echo "== ARM summary ($(($(date +%s) - start)) s)"
for t in "${TARGETS[@]}"; do printf '  %-7s %s\n' "$t" "${result[$t]:-not run}"; done
exit $failed
