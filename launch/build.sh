#!/usr/bin/env bash
# build.sh [BUILD_DIR] [cmake options...] — configures and builds wanrun (default: build/,
# RelWithDebInfo, WR_CUDA=AUTO). Sourced settings: WR_JOBS (parallel jobs, default nproc).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
jobs="${WR_JOBS:-$(nproc)}"
cmake -S "$root" -B "$build" -DWR_CUDA=AUTO "$@"
cmake --build "$build" -j "$jobs"
