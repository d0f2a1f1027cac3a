#!/usr/bin/env bash
# Reproduces the "AArch64 paths" table of bench/README.md: guest instructions per int8 GEMM
# (rt::fully_connected_s8 on the reference, neon and neondot paths, and gemmlowp's NEON kernels),
# counted under qemu-aarch64 by the instruction-count plugin (tools/qemu-insn-plugin). Counts,
# not times: they say how much work each implementation issues, not how fast a core runs it.
# Weights are symmetric int8 ([-127, 127]); the neon path is counted twice more: on the weights
# prepacked for it (rt::fully_connected_s8_prepacked; packing not counted), and with a -128 in
# every weight row, which keeps it on its exact multiply step; the neondot path once more, on the
# weights prepacked for it.
#   bench/arm/a64/count.sh          -> table on stdout, also in $OUT/results.md
# Two builds: ARMv8-A run as a Cortex-A53 (neon; gemmlowp's plain NEON kernels) and
# ARMv8.2-A+dotprod run as a Cortex-A76 (neon and neondot; gemmlowp's UDOT kernel).
# Needs gcc, cmake, ninja, g++-aarch64-linux-gnu, qemu-user (>= 7, with plugin support) and,
# for the peer rows, libgemmlowp-dev. Build directories: $OUT-cortex-a53 and $OUT-cortex-a76 (default
# OUT=build/a64-count).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT="${TQ_A64_COUNT_BUILD:-$ROOT/build/a64-count}"
mkdir -p "$OUT"
PLUGIN="$OUT/libinsn_count.so"
gcc -O2 -shared -fPIC -Wall -Wextra -Werror -o "$PLUGIN" "$ROOT/tools/qemu-insn-plugin/insn_count.c"

# Prints "<label> <shape> <macs> <insns>" per counted region of one build, markers subtracted.
count() {  # cpu toolchain
  local cpu=$1 dir="$OUT-$1" elf begin end
  cmake -S "$ROOT/bench/arm/a64" -B "$dir" -G Ninja -DTINYQUANT_WERROR=ON \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/$2.cmake" >"$dir.log" 2>&1
  cmake --build "$dir" -j "${JOBS:-2}" >>"$dir.log" 2>&1
  elf="$dir/a64_count"
  begin=$(aarch64-linux-gnu-nm "$elf" | awk '$3 == "tq_region_begin" {print "0x" $1}')
  end=$(aarch64-linux-gnu-nm "$elf" | awk '$3 == "tq_region_end" {print "0x" $1}')
  qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu -plugin "$PLUGIN,begin=$begin,end=$end" \
    -d plugin "$elf" >"$dir.out" 2>"$dir.plugin"
  # Region i of the plugin is line i of the program's output (region 0: the empty one).
  awk 'NR == FNR {if ($2 == "region") n[$3] = $4; next}
       $1 == "region" {r = FNR - 1; if (r == 0) empty = n[0]; else print $2, $3, $5, n[r] - empty}' \
    "$dir.plugin" "$dir.out"
}

{
  count cortex-a53 aarch64-linux-gnu | sed 's/^/a53 /'
  count cortex-a76 aarch64-linux-gnu-dotprod | sed 's/^/a76 /'
} >"$OUT/regions.txt"

# One row per shape: instructions per MAC of each column, and ours over gemmlowp's.
awk '
  {key = $1 " " $2; v[$3, key] = $5; macs[$3] = $4; if (!($3 in seen)) {seen[$3] = 1; order[++n] = $3}}
  function ipm(s, k) { return (v[s, k] == "") ? "-" : sprintf("%.3f", v[s, k] / macs[s]) }
  function ratio(s, a, b) { return (v[s, a] == "" || v[s, b] == "") ? "-" : sprintf("%.2f", v[s, a] / v[s, b]) }
  END {
    print "| M x K x N | reference | neon (A53) | gemmlowp NEON (A53) | neon / gemmlowp | neon prepacked (A53) | neon, -128 in every row (A53) | neon (A76) | neondot (A76) | neondot prepacked (A76) | gemmlowp UDOT (A76) | neondot / gemmlowp UDOT |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; ++i) {
      s = order[i]
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s,
        ipm(s, "a53 reference"), ipm(s, "a53 neon"), ipm(s, "a53 gemmlowp"),
        ratio(s, "a53 neon", "a53 gemmlowp"), ipm(s, "a53 neon_prepacked"), ipm(s, "a53 neon_w128"),
        ipm(s, "a76 neon"), ipm(s, "a76 neondot"), ipm(s, "a76 neondot_prepacked"), ipm(s, "a76 gemmlowp"),
        ratio(s, "a76 neondot", "a76 gemmlowp")
    }
  }' "$OUT/regions.txt" | tee "$OUT/results.md"
