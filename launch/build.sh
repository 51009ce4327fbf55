#!/usr/bin/env bash
# build.sh [BUILD_DIR] [cmake options...] — configures and builds wanrun (default: build/,
# RelWithDebInfo, WR_CUDA=AUTO). Environment: WR_JOBS (parallel jobs, default nproc),
# WR_TARGET (build only this target, e.g. wanrun; default all).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
jobs="${WR_JOBS:-$(nproc)}"
cmake -S "$root" -B "$build" -DWR_CUDA=AUTO "$@"
if [ -n "${WR_TARGET:-}" ]; then
    cmake --build "$build" -j "$jobs" --target "$WR_TARGET"
else
    cmake --build "$build" -j "$jobs"
fi
