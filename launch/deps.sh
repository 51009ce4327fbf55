#!/usr/bin/env bash
# deps.sh — installs what wanrun needs to build and test on Debian/Ubuntu, idempotently:
# nothing is installed (and apt is not touched) when every package is already present;
# otherwise `apt-get update` runs first, then one `apt-get install` of the missing ones.
# The CUDA toolkit is not an apt dependency: where nvcc exists (/usr/local/cuda), the CUDA
# backend is built too.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    libopenmpi-dev openmpi-bin
    check libsubunit-dev
    libopenblas-dev libopenblas-openmp-dev libcjson-dev libsentencepiece-dev
    libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libpng-dev libjpeg-dev
    clang libclang-rt-dev clang-format
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages present"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        sudo="sudo"
    else
        echo "deps: missing packages (${missing[*]}) and not root; install them, then re-run" >&2
        exit 1
    fi
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
