#!/usr/bin/env bash
# run_fuzz.sh [SECONDS] [BUILD_DIR] — builds tests/fuzz/fuzz_st_header with clang (libFuzzer,
# ASan, UBSan) and fuzzes the safetensors header validator for SECONDS (default 30).
#
# BUILD_DIR defaults to build-fuzz under the repository root. The seed corpus is every file
# under tests/data/bad and tests/data/good (flattened, the .tsv/.json manifests skipped),
# copied into a fresh temporary directory, so the repository is never written to (apart from
# BUILD_DIR). On a crash the reproducer is kept, its path printed, and the script exits 1;
# replay it with `BUILD_DIR/tests/fuzz/fuzz_st_header PATH`.
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-$root/build-fuzz}"

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS] [BUILD_DIR]  (SECONDS: a positive integer)" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/wr-fuzz.XXXXXX")"
corpus="$work/corpus"
artifacts="$work/artifacts"
mkdir "$corpus" "$artifacts"
keep=0
cleanup() {
    if [ "$keep" -eq 1 ]; then rm -rf "$corpus"; else rm -rf "$work"; fi
}
trap cleanup EXIT

cd "$root"
if ! CC=clang cmake -S . -B "$build" -DWR_CUDA=OFF -DWR_BUILD_FUZZ=ON -DWR_BUILD_TESTS=OFF \
    -DWR_BUILD_BENCH=OFF -DWR_SANITIZE=address,undefined >"$work/configure.log" 2>&1; then
    cat "$work/configure.log" >&2
    echo "configure failed" >&2
    exit 1
fi
cmake --build "$build" --target fuzz_st_header -j "$(nproc)"
fuzzer="$build/tests/fuzz/fuzz_st_header"

# Flatten: tests/data/bad/index_wrong_shard/x.safetensors -> bad__index_wrong_shard__x.safetensors
nseeds=0
while IFS= read -r -d '' f; do
    rel="${f#tests/data/}"
    cp "$f" "$corpus/${rel//\//__}"
    nseeds=$((nseeds + 1))
done < <(find tests/data/bad tests/data/good -type f ! -name '*.tsv' ! -name '*.json' -print0)
echo "seed corpus: $nseeds files; fuzzing for ${seconds}s"

log="$artifacts/fuzz.log"
rc=0
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?

if [ "$rc" -ne 0 ]; then
    keep=1
    tail -n 60 "$log" >&2
    echo "fuzz_st_header FAILED (exit $rc); full log: $log" >&2
    found=0
    for a in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* \
        "$artifacts"/oom-* "$artifacts"/slow-unit-*; do
        [ -e "$a" ] || continue
        echo "reproducer: $a" >&2
        echo "replay:     $fuzzer $a" >&2
        found=1
    done
    [ "$found" -eq 1 ] || echo "no reproducer was written; see the log" >&2
    exit 1
fi

runs="$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
echo "fuzz_st_header OK: ${runs:-?} executions in ${seconds}s, no crash"
