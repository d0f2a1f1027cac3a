#!/usr/bin/env bash
# The Fashion-MNIST demo's models on a Cortex-M4 (QEMU's mps2-an386 board): the demo trains its
# models on the host (or loads them from its cache) and exports the int8 per-channel, the int4
# per-group 32 + QAT, the 70 % pruned int8 and the -50 % neurons int8 model as C headers
# (--firmware); each is compiled
# into a firmware with tinyquant::rt, which runs all 10 000 test images, counts the instructions
# of the first three inferences, and fails unless every logit equals the host's.
# Extra arguments go to the demo (e.g. --seed 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/deps.sh m4
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target fashion_mnist -j"$(nproc)"
bundle=$root/build/fashion-mnist-m4/bundle
build/release/examples/fashion_mnist/fashion_mnist --firmware "$bundle" "$@"
echo
echo "== building the Cortex-M4 firmware"
cmake -S tests/arm -B build/fashion-mnist-m4/arm -G Ninja -DTINYQUANT_FMNIST_BUNDLE="$bundle" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/cortex-m4.cmake" >/dev/null
cmake --build build/fashion-mnist-m4/arm -j"$(nproc)" \
  --target fashion_mnist_m4_int8 fashion_mnist_m4_int4_g32_qat fashion_mnist_m4_prune70_int8 \
  fashion_mnist_m4_neurons50_int8 tq_cortex_m_plugin
for m in int8 int4_g32_qat prune70_int8 neurons50_int8; do
  arm-none-eabi-size "build/fashion-mnist-m4/arm/cortex_m/fashion_mnist_m4_$m.elf" | tail -1 |
    awk -v m="$m" '{printf "%s firmware: text %d bytes (code + model), data %d, bss %d\n", m, $1, $2, $3}'
done
echo
echo "== running the firmware under QEMU (every test image)"
ctest --test-dir build/fashion-mnist-m4/arm -R '^example\.fashion_mnist_m4\.' -V |
  grep -E 'fashion_mnist_m4:|images|instructions|^[0-9]+: image [0-9]+:|Passed|Failed|tests passed'
