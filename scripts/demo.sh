#!/usr/bin/env bash
# The main demo: Fashion-MNIST (Debian's dataset-fashion-mnist) from a float MLP to integer-only
# inference through tinyquant's kernels. Extra arguments go to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target fashion_mnist -j"$(nproc)"
exec build/release/examples/fashion_mnist/fashion_mnist "$@"
