#!/usr/bin/env bash
# test.sh — installs what is missing, builds, and runs every test:
#   1. formatting of src/, launch/, tests/ (clang-format, .clang-format at the root);
#   2. the normal build (CUDA compiled where nvcc exists) and its CTest suite three times: on
#      the plain CPU backend, in the strict CPU device mode (WR_STRICT_DEVICE=1: device memory
#      the host cannot touch) and in the async mode (=async: every stream on its own thread);
#      then its multi-rank tests again under other OpenBLAS kernels (OPENBLAS_CORETYPE);
#   3. an AddressSanitizer + UndefinedBehaviorSanitizer build and the same suite, and a clang
#      UndefinedBehaviorSanitizer build (with float-cast-overflow) and the same suite;
#   4. a ThreadSanitizer build of the threaded tests (the copy thread, the streamers, MPI ranks);
#   5. the libFuzzer targets (safetensors headers, prompt tokenization, tokenizer.json, model
#      directory configs, --config), WR_FUZZ_SECONDS each (default 30).
# Exit status is non-zero when any step fails. Build folders: build/, build-asan/, build-ubsan/,
# build-tsan/, build-fuzz/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash launch/deps.sh

echo "== format check"
mapfile -t files < <(git ls-files -co --exclude-standard -- 'src/*.c' 'src/*.h' 'src/*.cu' \
    'launch/*.c' 'tests/*.c' 'tests/*.h' | sort -u)
if ! clang-format --dry-run --Werror "${files[@]}"; then
    echo "test.sh: files above are not formatted; run: clang-format -i <file>" >&2
    exit 1
fi

# Open MPI as root (CI containers) and oversubscription for multi-rank tests on 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

echo "== build (build/)"
bash launch/build.sh "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWR_BUILD_TESTS=ON \
    -DWR_SANITIZE=
echo "== tests (build/, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, plain CPU backend)"
(cd build && WR_STRICT_DEVICE=0 ctest --output-on-failure --timeout 300)
# The device contract (src/kernels/backend.h): the same suite where a host read of device
# memory is a SIGSEGV, and where every stream runs on its own thread behind a lag (a missing
# wait or a host read before a sync gives wrong bits).
for mode in 1 async; do
    echo "== tests (build/, WR_STRICT_DEVICE=$mode)"
    (cd build && WR_STRICT_DEVICE=$mode ctest --output-on-failure --timeout 300)
done

# Device collectives staged through host memory and MPI (what ranks sharing one GPU use, where
# NCCL refuses): the multi-rank tests again with every communicator staged, on the async
# backend, so a staged copy that races an op or misses the result gives other bits.
echo "== multi-rank tests (build/, WR_COMM_STAGED=1, WR_STRICT_DEVICE=async)"
(cd build && WR_COMM_STAGED=1 WR_STRICT_DEVICE=async ctest --output-on-failure --timeout 300 -L multirank)

# The multi-rank tests compare N ranks with one: bitwise where only data moves, to an NMSE
# bound where each rank's GEMMs have other row counts (tests/harness.h). Whether a row's bits
# change with the row count is a property of the BLAS kernel, so they run again under the
# kernels this run did not use: OpenBLAS's default for this CPU (the variable unset), Haswell
# (AVX2) and Sandybridge (AVX), each where the CPU has the instructions.
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
for core in default Haswell Sandybridge; do
    [ "$core" = "${OPENBLAS_CORETYPE:-default}" ] && continue
    case "$core" in
    Haswell) [[ "$cpu_flags" == *" avx2"* ]] || continue ;;
    Sandybridge) [[ "$cpu_flags" == *" avx"* ]] || continue ;;
    esac
    echo "== multi-rank tests (build/, OPENBLAS_CORETYPE=$core)"
    if [ "$core" = default ]; then
        (cd build && env -u OPENBLAS_CORETYPE WR_STRICT_DEVICE=0 ctest --output-on-failure --timeout 300 -L multirank)
    else
        (cd build && OPENBLAS_CORETYPE=$core WR_STRICT_DEVICE=0 ctest --output-on-failure --timeout 300 -L multirank)
    fi
done

echo "== sanitizers: address + undefined (build-asan/)"
bash launch/build.sh "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DWR_CUDA=OFF \
    -DWR_SANITIZE=address,undefined -DWR_BUILD_TESTS=ON -DWR_BUILD_BENCH=OFF
# Leak detection is off for the MPI programs: Open MPI leaves allocations at exit inside
# plugins it has already unloaded, so LeakSanitizer reports them with no usable stack to
# suppress. Leaks in our parser are still caught: the fuzzer below runs LeakSanitizer on
# every input (it does not initialise MPI).
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# on the plain CPU backend: its device buffers come from malloc, with AddressSanitizer's
# redzones around them (the strict mode's pages have none)
(cd build-asan && WR_STRICT_DEVICE=0 ctest --output-on-failure --timeout 600)

# clang's UndefinedBehaviorSanitizer has checks GCC's lacks, float-cast-overflow first (a float
# outside an integer type's range cast to it: a --config number, a config value, a size).
echo "== sanitizer: clang undefined + float-cast-overflow (build-ubsan/)"
CC=clang CXX=clang++ bash launch/build.sh "$root/build-ubsan" -DCMAKE_BUILD_TYPE=Debug \
    -DWR_CUDA=OFF -DWR_SANITIZE=undefined,float-cast-overflow -DWR_BUILD_TESTS=ON \
    -DWR_BUILD_BENCH=OFF
(cd build-ubsan && ctest --output-on-failure --timeout 600)

echo "== sanitizer: thread, the threaded tests (build-tsan/)"
# The programs whose threads are ours: test_vram (the pool's copy thread, the streamers'
# prefetch), test_t5 (a streamed text encoder) and test_parallel on 1 and 2 ranks (the pipeline
# at level 3 under MPI, beside the MPI heartbeat thread). test_vram's whole-pipeline test
# (tag "whole-pipeline", 30 s under TSan) is left out: the same threads run above. OpenMP and
# OpenBLAS run one thread here (their runtimes are not instrumented: false reports otherwise).
# tests/tsan.supp suppresses reports inside Open MPI's shared-memory transport only (the
# heartbeat thread and the main thread both send; Open MPI's atomics are invisible to TSan).
# halt_on_error: the first report fails the step.
WR_TARGET=test_vram bash launch/build.sh "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWR_CUDA=OFF -DWR_SANITIZE=thread -DWR_BUILD_TESTS=ON -DWR_BUILD_BENCH=OFF
cmake --build "$root/build-tsan" -j "${WR_JOBS:-$(nproc)}" --target test_t5 test_parallel
# GCC 12's TSan cannot map its shadow where the kernel randomises mmap with more than 28 bits
# (32 on some distributions' recent kernels): run without address randomisation there, where
# that is allowed.
tsan_run=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] &&
    setarch "$(uname -m)" -R true 2>/dev/null; then
    tsan_run=(setarch "$(uname -m)" -R)
fi
(cd build-tsan && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 CK_EXCLUDE_TAGS=whole-pipeline \
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp" \
    "${tsan_run[@]}" ctest --output-on-failure --timeout 600 \
    -R '^(test_vram_np1|test_t5_np1|test_parallel_np1|test_parallel_np2)$')

echo "== fuzz (build-fuzz/)"
bash tests/fuzz/run_fuzz.sh "${WR_FUZZ_SECONDS:-30}" "$root/build-fuzz"

echo "test.sh: all steps passed"
