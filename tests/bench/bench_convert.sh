#!/usr/bin/env bash
# bench_convert.sh — issue #18's host-memory figure: N ranks on one node (default 8) loading a
# full-size random Wan2.1-T2V-1.3B transformer (make_wan_ckpt, f32, 5.7 GB) three ways:
#   f32 + --fp8 storage   every rank quantises its own copy of the block matrices at load
#   wanrun convert fp8    converted once; every rank maps the same e4m3 file
#   f32 as it is          every rank maps the f32 file (the reference: no conversion at all)
# Prints bench_convert_mem's per-rank smaps_rollup table for each, and the one-time conversion's
# wall time and peak RSS (/usr/bin/time).
#
#   tests/bench/bench_convert.sh [WORKDIR] [NRANKS]     (WORKDIR default /tmp/wanrun-convert;
#                                                       never inside the repository)
# Environment: BUILD_DIR (default build), MPIEXEC (mpirun).
set -euo pipefail
WORK=${1:-/tmp/wanrun-convert}
NP=${2:-8}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD_DIR:-$REPO/build}
MPIEXEC=${MPIEXEC:-mpirun}
case "$WORK/" in "$REPO"/*) echo "bench_convert.sh: refusing to write inside the repository" >&2; exit 2 ;; esac
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
make -C "$BUILD" wanrun make_wan_ckpt bench_convert_mem >/dev/null
mkdir -p "$WORK"
[ -f "$WORK/f32/transformer/config.json" ] || "$BUILD/tests/bench/make_wan_ckpt" "$WORK/f32" --dtype f32 --preset 1.3b
rm -rf "$WORK/fp8"
echo "== wanrun convert --dtype fp8 (one rank, once)"
/usr/bin/time -f "wall %e s, peak RSS %M kB" "$BUILD/wanrun" convert --model "$WORK/f32" \
    --out "$WORK/fp8" --dtype fp8 2>&1 | grep -E "wrote|wall"
for args in "$WORK/f32 --fp8" "$WORK/fp8" "$WORK/f32"; do
    echo "== $NP ranks: $args"
    # shellcheck disable=SC2086
    "$MPIEXEC" -n "$NP" --oversubscribe "$BUILD/tests/bench/bench_convert_mem" $args
done
