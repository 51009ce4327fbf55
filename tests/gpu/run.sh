#!/usr/bin/env bash
# tests/gpu/run.sh — the one script for a GPU machine (issue #16). Built and packed here
# (../shared/device/pack.sh), it runs inside the bundle on a bare GPU machine:
#
#   bash build-bundle/run.sh bash tests/gpu/run.sh OUTDIR
#
# Steps (each logged to OUTDIR/<step>.log, a summary line per step at the end; a failing step
# does not stop the next ones, the exit status is the number of steps that failed):
#   doctor     the GPU (nvidia-smi -L) and the CUDA backend's probe (wanrun --version)
#   ctest-gpu  the CTest suite's gpu label: test_backend_ops (every CUDA op against the CPU
#              backend, NMSE per op) and test_cuda_cast
#   memcheck   test_backend_ops under compute-sanitizer's memcheck (out-of-bounds and
#              misaligned device accesses, leaks at exit)
#   pipeline   the tiny pipeline with --backend cuda at levels 0-3, and on 2 ranks sharing the
#              GPU (context parallel, device collectives staged through host memory)
#   bench      bench_cuda: GEMM TFLOP/s at the DiT's shapes next to the 8192^3 figure, and
#              pinned / pageable H2D GB/s
# Each step has a time limit (STEP_TIMEOUT, default 240 s) so the whole stays inside the
# machine's budget.
set -u -o pipefail
out=${1:-${OUT:-/tmp/wanrun-gpu}}
mkdir -p "$out"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
limit=${STEP_TIMEOUT:-240}
summary=()
failed=0

step() { # NAME command...
    local name=$1 t0=$SECONDS rc
    shift
    echo "=== $name: $*"
    timeout -k 10 "$limit" bash -c '"$@"' "$name" "$@" >"$out/$name.log" 2>&1
    rc=$?
    tail -n 40 "$out/$name.log"
    summary+=("$(printf '%-10s exit %3d  %4d s' "$name" "$rc" $((SECONDS - t0)))")
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
    echo "=== $name: exit $rc ($((SECONDS - t0)) s)"
}

ctest_gpu() {
    [ -n "${WANRUN_BUNDLE:-}" ] || { echo "not inside the bundle (bash build-bundle/run.sh bash $0)"; return 2; }
    mkdir -p "$WANRUN_CTEST_WORK/ctest"
    cp "$WANRUN_BUNDLE/ctest/CTestTestfile.cmake" "$WANRUN_CTEST_WORK/ctest/"
    (cd "$WANRUN_CTEST_WORK/ctest" && ctest -L gpu --output-on-failure --timeout 200 "$@")
}

pipeline() {
    local rc=0 lvl
    for lvl in 0 1 2 3; do
        echo "--- level $lvl"
        CK_FORK=no wanrun --backend cuda --model "$here/tests/data/wan-tiny" --prompt "a fox" \
            --size 32x32 --frames 5 --steps 2 --low-mem-level "$lvl" \
            --out "$out/tiny-l$lvl.y4m" || rc=1
    done
    echo "--- 2 ranks on this GPU (context parallel; device buffers staged through host memory)"
    mpiexec -n 2 wanrun --backend cuda --model "$here/tests/data/wan-tiny" --prompt "a fox" \
        --size 32x32 --frames 5 --steps 2 --cp-size 2 --out "$out/tiny-cp2.y4m" || rc=1
    return $rc
}

export -f ctest_gpu pipeline
export here out

step doctor bash -c 'nvidia-smi -L && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv && wanrun --version'
step ctest-gpu ctest_gpu
step memcheck env CK_FORK=no compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
    test_backend_ops
step pipeline pipeline
step bench bench_cuda all 10

echo
echo "summary (logs in $out):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
