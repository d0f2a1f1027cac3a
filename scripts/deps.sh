#!/usr/bin/env bash
# Installs what tinyquant needs from Debian's packages, only if something is missing.
#   scripts/deps.sh demo   build + run the Fashion-MNIST demo
#   scripts/deps.sh m4     the demo plus the Cortex-M toolchain and QEMU (scripts/fashion-mnist-m4.sh)
#   scripts/deps.sh test   everything the full test suite uses (sanitizers, fuzzers, ARM + QEMU)
set -euo pipefail
what=${1:-test}
pkgs=(build-essential cmake ninja-build pkg-config libeigen3-dev libfmt-dev zlib1g-dev
      googletest libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
      dataset-fashion-mnist)
if [ "$what" = test ]; then
  pkgs+=(clang libclang-rt-14-dev libgemmlowp-dev libdnnl-dev libopenblas-dev valgrind
         g++-arm-linux-gnueabihf g++-aarch64-linux-gnu qemu-user gcc-arm-none-eabi
         libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev qemu-system-arm)
fi
if [ "$what" = m4 ]; then
  pkgs+=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev qemu-system-arm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tinyquant: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
