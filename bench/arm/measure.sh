#!/usr/bin/env bash
# Reproduces the "Cortex-M4 cost" table of bench/README.md: instructions per MAC (QEMU TCG plugin
# counting the instructions executed inside the kernel call), .text bytes of the runtime code each
# kernel pulls in, and peak scratch + stack, for the smlad path built for Cortex-M4 at -O2 and -Os.
#   bench/arm/measure.sh [--cross-check]
# Then the sparse cases (bench/README.md "Pruning and sparse kernels"): sparse FC instructions per
# call against the dense kernel on the same pruned weights, in $TQ_COST_BUILD/sparse.md.
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

# Instructions between the markers, minus the empty region every ELF runs first: one number per
# kernel region (dense cases: one; sparse cases: dense baseline, then sparse). Program output in
# $elf.out.
count_insns() {  # elf
  local elf=$1 begin end log
  begin=$(arm-none-eabi-nm "$elf" | awk '$3 == "tq_region_begin" {print "0x" $1}')
  end=$(arm-none-eabi-nm "$elf" | awk '$3 == "tq_region_end" {print "0x" $1}')
  log=$("${QEMU[@]}" -plugin "$PLUGIN,begin=$begin,end=$end" -d plugin -kernel "$elf" 2>&1)
  awk '$2 == "region" && $3 == 0 {empty = $4}
       $2 == "region" && $3 > 0 {printf "%s%d", sep, $4 - empty; sep = " "}
       END {print ""}' <<<"$log"
  grep -E '^(cost|sparse) ' <<<"$log" >"$elf.out"
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

# Sparse cases: per call instructions of rt::sparse_fully_connected_s8 (smlad path) and of the
# dense kernel on the same pruned weights, in the same ELF and run; the ELF itself checked that
# both outputs are equal (status ok). "per dense MAC" divides by in x out. .text of the sparse
# call (the same code for every format) from cost_sparse_text, which makes no dense call.
SPARSE="$OUT/sparse.md"
declare -A stext=()
for opt in O2 Os; do
  stext[$opt]=$(rt_text_bytes "$OUT-$opt/cost_sparse_text.elf" \
    "$OUT-$opt/tinyquant/src/rt/libtinyquant_rt.a")
done
{
  echo "sparse .text B: -O2 ${stext[O2]}, -Os ${stext[Os]}"
  echo
  echo "| case | stored values | dense insn -O2 | sparse insn -O2 | per dense MAC -O2 | sparse/dense -O2 | per dense MAC -Os | sparse/dense -Os | scratch B | stack B dense / sparse |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$SPARSE"
n_sparse=$(find "$OUT-O2" -maxdepth 1 -name 'cost_sparse_[0-9]*.elf' | wc -l)
for ((i = 0; i < n_sparse; ++i)); do
  declare -A per=() ratio=() dn=() sp=()
  for opt in O2 Os; do
    elf="$OUT-$opt/cost_sparse_$i.elf"
    counts=$(count_insns "$elf")  # waits for $elf.out, unlike a process substitution
    read -r "dn[$opt]" "sp[$opt]" <<<"$counts"
    line=$(cat "$elf.out")
    status=$(sed -E 's/.* status ([a-z_]+).*/\1/' <<<"$line")
    [ "$status" = ok ] || { echo "sparse case $i ($opt): $line" >&2; exit 1; }
    macs=$(sed -E 's/.* macs ([0-9]+).*/\1/' <<<"$line")
    per[$opt]=$(awk -v n="${sp[$opt]}" -v m="$macs" 'BEGIN {printf "%.3f", n / m}')
    ratio[$opt]=$(awk -v s="${sp[$opt]}" -v d="${dn[$opt]}" 'BEGIN {printf "%.3f", s / d}')
    if [ $opt = O2 ]; then
      name=$(sed -E 's/^sparse (.*) macs .*/\1/' <<<"$line")
      nnz=$(sed -E 's/.* nnz ([0-9]+).*/\1/' <<<"$line")
      scratch=$(sed -E 's/.* scratch ([0-9]+).*/\1/' <<<"$line")
      stack=$(sed -E 's/.* stack ([0-9]+) ([0-9]+).*/\1 \/ \2/' <<<"$line")
    fi
  done
  echo "| $name | $nnz | ${dn[O2]} | ${sp[O2]} | ${per[O2]} | ${ratio[O2]} | ${per[Os]} | ${ratio[Os]} | $scratch | $stack |" \
    | tee -a "$SPARSE"
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
echo "results: $RESULTS, $SPARSE"
