#!/usr/bin/env bash
# Reproduces the "Cortex-M4 cost" table of bench/README.md: instructions per MAC (QEMU TCG plugin
# counting the instructions executed inside the kernel call), .text bytes of the runtime code each
# kernel pulls in, and peak scratch + stack, for the smlad path built for Cortex-M4 at -O2 and -Os.
#   bench/arm/measure.sh [--cross-check]
# --cross-check also counts one case from a `-d in_asm,exec,nochain` trace (trace_count.py) and
# requires it to equal the plugin's count.
# Needs gcc, cmake, ninja, arm-none-eabi-gcc, qemu-system-arm >= 7 built with plugin support.
# Build directories: $TQ_COST_BUILD-O2, $TQ_COST_BUILD-Os and results in $TQ_COST_BUILD
# (default build/arm-cost), so several trees can be measured side by side.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="${TQ_COST_BUILD:-$ROOT/build/arm-cost}"
mkdir -p "$OUT"
CROSS_CHECK=0
[ "${1:-}" = "--cross-check" ] && CROSS_CHECK=1

PLUGIN="$OUT/libinsn_count.so"
gcc -O2 -shared -fPIC -Wall -Wextra -Werror -o "$PLUGIN" "$ROOT/tools/qemu-insn-plugin/insn_count.c"

QEMU=(qemu-system-arm -M mps2-an386 -nographic -semihosting)

# Instructions between the markers, minus the empty region every ELF runs first.
count_insns() {  # elf -> "insns program-output"
  local elf=$1 begin end log
  begin=$(arm-none-eabi-nm "$elf" | awk '$3 == "tq_region_begin" {print "0x" $1}')
  end=$(arm-none-eabi-nm "$elf" | awk '$3 == "tq_region_end" {print "0x" $1}')
  log=$("${QEMU[@]}" -plugin "$PLUGIN,begin=$begin,end=$end" -d plugin -kernel "$elf" 2>&1)
  local empty kernel
  empty=$(awk '$2 == "region" && $3 == 0 {print $4}' <<<"$log")
  kernel=$(awk '$2 == "region" && $3 == 1 {print $4}' <<<"$log")
  echo "$((kernel - empty))"
  grep '^cost ' <<<"$log" >"$elf.out"
}

# Bytes of code from libtinyquant_rt.a that ended up in the ELF (kernel, path, helpers).
rt_text_bytes() {  # elf archive
  arm-none-eabi-nm --defined-only "$2" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[TtWw]$/ {print $3}' \
    | sort -u >"$OUT/rt_syms.txt"
  local total=0 sym size
  while read -r sym size; do total=$((total + 0x$size)); done < <(
    arm-none-eabi-nm -S "$1" | awk 'NF == 4 && $3 ~ /^[TtWw]$/ {print $4, $2}' | sort -k1,1 \
      | join - "$OUT/rt_syms.txt")
  echo "$total"
}

RESULTS="$OUT/results.md"
{
  echo "| kernel | MACs | insn/MAC -O2 | insn/MAC -Os | .text B -O2 | .text B -Os | scratch B | stack B -O2 |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$RESULTS"

for opt in O2 Os; do
  dir="$OUT-$opt"
  cmake -S "$ROOT/bench/arm" -B "$dir" -G Ninja -DTINYQUANT_WERROR=ON -DTQ_COST_OPT=$opt \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/cortex-m4.cmake" >"$dir.log" 2>&1
  cmake --build "$dir" -j 2 >>"$dir.log" 2>&1
done

for i in 0 1 2 3 4 5 6 7 8; do
  declare -A ipm=() text=()
  for opt in O2 Os; do
    dir="$OUT-$opt"
    elf="$dir/cost_$i.elf"
    insns=$(count_insns "$elf")
    line=$(cat "$elf.out")
    macs=$(sed -E 's/.* macs ([0-9]+).*/\1/' <<<"$line")
    status=$(sed -E 's/.* status ([a-z_]+).*/\1/' <<<"$line")
    [ "$status" = ok ] || { echo "case $i ($opt): status $status" >&2; exit 1; }
    ipm[$opt]=$(awk -v n="$insns" -v m="$macs" 'BEGIN {printf "%.2f", n / m}')
    text[$opt]=$(rt_text_bytes "$elf" "$dir/tinyquant/src/rt/libtinyquant_rt.a")
    if [ $opt = O2 ]; then
      scratch=$(sed -E 's/.* scratch ([0-9]+).*/\1/' <<<"$line")
      stack=$(sed -E 's/.* stack ([0-9]+).*/\1/' <<<"$line")
      name=$(sed -E 's/^cost (.*) macs .*/\1/' <<<"$line")
    fi
  done
  echo "| $name | $macs | ${ipm[O2]} | ${ipm[Os]} | ${text[O2]} | ${text[Os]} | $scratch | $stack |" \
    | tee -a "$RESULTS"
done

if [ $CROSS_CHECK = 1 ]; then
  elf="$OUT-O2/cost_2.elf"
  trace="$OUT/trace.log"
  "${QEMU[@]}" -d in_asm,exec,nochain -D "$trace" -kernel "$elf" >/dev/null
  from_trace=$(python3 "$ROOT/bench/arm/trace_count.py" "$trace" \
    "0x$(arm-none-eabi-nm "$elf" | awk '$3 == "tq_region_begin" {print $1}')" \
    "0x$(arm-none-eabi-nm "$elf" | awk '$3 == "tq_region_end" {print $1}')")
  from_plugin=$(count_insns "$elf")
  echo "cross-check cost_2: plugin $from_plugin, trace $from_trace"
  [ "$from_plugin" = "$from_trace" ] || { echo "cross-check FAILED" >&2; exit 1; }
fi
echo "results: $RESULTS"
