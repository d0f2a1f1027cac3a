#!/usr/bin/env bash
# The host examples under valgrind memcheck: any invalid read/write, use of uninitialised memory
# or leak fails the run. Fashion-MNIST runs a tiny configuration (2000 training images, one epoch,
# 200 test images: every row still runs its kernels, and the --firmware bundle is written; no
# model cache) so memcheck's ~30x slowdown stays within a few minutes (200 rather than 1000 test
# images saves about 40 s of the stage's 3 minutes); the Cortex-M firmware is ARM code and is
# not run here.
#   scripts/valgrind-examples.sh [build dir, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
vg=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --track-origins=yes --quiet)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for exe in "$build/examples/quickstart" "$build/examples/fashion_mnist/fashion_mnist"; do
  if [ ! -x "$exe" ]; then
    echo "valgrind-examples: $exe is not built" >&2
    exit 1
  fi
done

echo "--- valgrind: quickstart"
"${vg[@]}" "$build/examples/quickstart" >"$tmp/quickstart.out"
tail -n 3 "$tmp/quickstart.out"

echo "--- valgrind: fashion_mnist (tiny configuration)"
"${vg[@]}" "$build/examples/fashion_mnist/fashion_mnist" --train-limit 2000 --epochs 1 \
  --finetune-epochs 1 --eval-limit 200 --no-cache --cache-dir "$tmp/cache" \
  --plot "$tmp/plot.svg" --firmware "$tmp/firmware" >"$tmp/fashion_mnist.out"
tail -n 5 "$tmp/fashion_mnist.out"
echo "valgrind-examples: no memcheck errors"
