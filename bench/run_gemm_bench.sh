#!/bin/sh
# Runs bench_gemm twice so its ratio table compares against oneDNN both as it runs by default
# (AMX-INT8 where the CPU has it) and capped at AVX-512 VNNI: oneDNN fixes its ISA once per
# process, so the capped rows (both matmuls: s8 out with zero points and scales, and raw s32)
# come from a separate process and are handed over in a file.
#
# usage: bench/run_gemm_bench.sh <build>/bench/bench_gemm [more Google Benchmark flags]
# Pinned to CPU 1, single-thread rows, 3 repetitions, medians (set TINYQUANT_BENCH_CPU to pin
# elsewhere).
set -eu
bin=$1
shift
cpu=${TINYQUANT_BENCH_CPU:-1}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT INT TERM
common="--benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_min_time=0.1 --benchmark_filter=threads:1"
# shellcheck disable=SC2086  # $common is a list of flags
TINYQUANT_BENCH_ONEDNN_CAP=vnni TINYQUANT_BENCH_ROWS_OUT="$rows" taskset -c "$cpu" "$bin" $common "$@"
# shellcheck disable=SC2086
TINYQUANT_BENCH_ROWS_IN="$rows" taskset -c "$cpu" "$bin" $common "$@"
